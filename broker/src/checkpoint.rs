//! The node's own memory of cluster facts that Redis might forget: the
//! highest epoch it has seen and each partition's highest known HWM, kept in
//! `node-state.json` in the data directory.
//!
//! If Redis restarts without persistence, a node restores these values
//! before serving, so an epoch is never reused and an HWM never goes down.
//! The file is replaced atomically (write, fsync, rename).

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "node-state.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub highest_epoch: u64,
    /// `"topic/partition"` → highest HWM seen.
    pub hwm: BTreeMap<String, u64>,
}

#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    state: NodeState,
    written: NodeState,
}

impl Checkpoint {
    pub fn load(dir: &Path) -> io::Result<Self> {
        let path = dir.join(FILE_NAME);
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => NodeState::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            written: state.clone(),
            state,
        })
    }

    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// Raises the highest seen epoch. Returns true if it changed.
    pub fn see_epoch(&mut self, epoch: u64) -> bool {
        let raised = epoch > self.state.highest_epoch;
        if raised {
            self.state.highest_epoch = epoch;
        }
        raised
    }

    pub fn see_hwm(&mut self, topic: &str, partition: u32, hwm: u64) {
        let entry = self
            .state
            .hwm
            .entry(format!("{topic}/{partition}"))
            .or_default();
        *entry = (*entry).max(hwm);
    }

    pub fn hwm(&self, topic: &str, partition: u32) -> u64 {
        self.state
            .hwm
            .get(&format!("{topic}/{partition}"))
            .copied()
            .unwrap_or(0)
    }

    /// Writes the file if anything changed since the last write.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.state == self.written {
            return Ok(());
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(&self.state).expect("state serializes"))?;
        file.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        self.written = self.state.clone();
        Ok(())
    }
}

/// The checkpoint, shared by the tasks that learn epochs (the lease
/// driver, follower sessions, replication requests) and the node's upkeep,
/// which records HWMs.
#[derive(Debug, Clone)]
pub struct SharedCheckpoint(Arc<Mutex<Checkpoint>>);

impl SharedCheckpoint {
    pub fn new(checkpoint: Checkpoint) -> Self {
        Self(Arc::new(Mutex::new(checkpoint)))
    }

    /// Highest epoch this node has seen.
    pub fn highest_epoch(&self) -> u64 {
        self.lock().state().highest_epoch
    }

    /// Remembers an epoch seen in Redis or from a peer, on disk at once
    /// when it is new, so that it is never handed out again.
    pub fn see_epoch(&self, epoch: u64) {
        let mut checkpoint = self.lock();
        if checkpoint.see_epoch(epoch)
            && let Err(e) = checkpoint.flush()
        {
            tracing::error!("cannot persist the node state: {e}");
        }
    }

    /// The checkpoint itself, for several reads or updates at once.
    pub fn lock(&self) -> MutexGuard<'_, Checkpoint> {
        self.0.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_only_rise_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoint::load(dir.path()).unwrap();
        assert!(cp.see_epoch(5));
        assert!(!cp.see_epoch(3));
        cp.see_hwm("t", 0, 10);
        cp.see_hwm("t", 0, 7);
        cp.flush().unwrap();
        let cp = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(
            (cp.state().highest_epoch, cp.hwm("t", 0), cp.hwm("t", 1)),
            (5, 10, 0)
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(Checkpoint::load(dir.path()).is_err());
    }
}
