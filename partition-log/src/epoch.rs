//! The leader-epoch history of a log: for every leader epoch that wrote to
//! it, the first offset written in that epoch (Kafka's leader-epoch
//! checkpoint, used for KIP-101/279 divergence detection).
//!
//! Invariants: entries are strictly increasing in epoch and non-decreasing
//! in start offset; the file is replaced atomically (write, fsync, rename,
//! fsync the directory) *before* the first batch of a new epoch is written,
//! so after a crash the history never misses an epoch that the log holds.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use crate::error::{LogError, Result};

const FILE_NAME: &str = "leader-epoch-checkpoint";
const VERSION: &str = "0";

/// `epoch` led the partition from `start_offset` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: u32,
    pub start_offset: u64,
}

/// KIP-101's "end offset for epoch": the largest epoch `<= epoch` in
/// `entries` and the offset where it ended (the next epoch's start, or
/// `log_end` for the latest). `None` if there is no such epoch.
pub(crate) fn end_offset_for(
    entries: &[EpochEntry],
    epoch: u32,
    log_end: u64,
) -> Option<(u32, u64)> {
    let i = entries.partition_point(|e| e.epoch <= epoch);
    let found = entries.get(i.checked_sub(1)?)?;
    let end = entries.get(i).map_or(log_end, |next| next.start_offset);
    Some((found.epoch, end))
}

#[derive(Debug)]
pub(crate) struct EpochHistory {
    dir: PathBuf,
    entries: Vec<EpochEntry>,
}

impl EpochHistory {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let corrupt = |reason: &str| LogError::Corrupt {
            path: path.clone(),
            position: 0,
            reason: reason.to_owned(),
        };
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(LogError::io(&path)(e)),
        };
        let mut entries = Vec::new();
        let mut lines = text.lines();
        if let Some(version) = lines.next() {
            if version != VERSION {
                return Err(corrupt("unknown checkpoint version"));
            }
            let count: usize = lines
                .next()
                .and_then(|l| l.parse().ok())
                .ok_or_else(|| corrupt("bad entry count"))?;
            for line in lines.by_ref().take(count) {
                let mut fields = line.split_whitespace().map(str::parse::<u64>);
                match (fields.next(), fields.next()) {
                    (Some(Ok(epoch)), Some(Ok(start_offset))) if epoch <= u64::from(u32::MAX) => {
                        entries.push(EpochEntry {
                            epoch: epoch as u32,
                            start_offset,
                        })
                    }
                    _ => return Err(corrupt("bad entry line")),
                }
            }
            if entries.len() != count {
                return Err(corrupt("fewer entries than announced"));
            }
            let ordered = entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset <= w[1].start_offset);
            if !ordered {
                return Err(corrupt("entries out of order"));
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            entries,
        })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `start_offset`, if it is new.
    pub fn assign(&mut self, epoch: u32, start_offset: u64) -> Result<()> {
        if self.latest().is_some_and(|l| l.epoch >= epoch) {
            return Ok(());
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()
    }

    /// Forgets epochs that start at or after `offset` (the log was cut there).
    pub fn truncate_from(&mut self, offset: u64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// KIP-101's "end offset for epoch"; see [`end_offset_for`].
    pub fn end_offset_for(&self, epoch: u32, log_end: u64) -> Option<(u32, u64)> {
        end_offset_for(&self.entries, epoch, log_end)
    }

    fn persist(&self) -> Result<()> {
        let path = self.dir.join(FILE_NAME);
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(LogError::io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offset_for_epoch_follows_kip_101() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = EpochHistory::load(dir.path()).unwrap();
        assert_eq!(h.end_offset_for(1, 0), None);
        h.assign(2, 0).unwrap();
        h.assign(4, 10).unwrap();
        h.assign(4, 12).unwrap(); // same epoch: no new entry
        h.assign(7, 30).unwrap();
        assert_eq!(h.end_offset_for(1, 50), None);
        assert_eq!(h.end_offset_for(2, 50), Some((2, 10)));
        assert_eq!(h.end_offset_for(3, 50), Some((2, 10)));
        assert_eq!(h.end_offset_for(4, 50), Some((4, 30)));
        assert_eq!(h.end_offset_for(9, 50), Some((7, 50)));
    }

    #[test]
    fn persists_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = EpochHistory::load(dir.path()).unwrap();
        h.assign(1, 0).unwrap();
        h.assign(3, 5).unwrap();
        h.assign(5, 9).unwrap();
        h.truncate_from(5).unwrap();
        let reloaded = EpochHistory::load(dir.path()).unwrap();
        assert_eq!(
            reloaded.entries(),
            &[EpochEntry {
                epoch: 1,
                start_offset: 0
            }]
        );
    }

    #[test]
    fn damaged_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "0\n2\n1 0\n").unwrap();
        assert!(matches!(
            EpochHistory::load(dir.path()),
            Err(LogError::Corrupt { .. })
        ));
    }
}
