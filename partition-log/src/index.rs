//! The sparse offset index of one segment: `(relative offset, byte position)`
//! pairs, 8 bytes each, big-endian, one every `index_interval_bytes` of log.
//!
//! Invariants: entries are strictly increasing in both fields, and each one
//! points at the first byte of a batch whose base offset is
//! `segment base + relative offset`. The index is only a hint for finding a
//! position quickly; it can always be rebuilt from the log, so it is never
//! fsynced and a damaged one is rebuilt on open.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::RwLock,
};

use crate::error::{LogError, Result};

pub(crate) const ENTRY_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// The in-memory index, shared by the writer and readers, and the file that
/// mirrors it (written by the writer only).
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    path: PathBuf,
    entries: RwLock<Vec<IndexEntry>>,
}

impl OffsetIndex {
    /// Loads the index file. Returns `None` if it is missing or not
    /// well-formed (wrong size, entries out of order); the caller rebuilds it.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::io(path)(e)),
        };
        if bytes.len() % ENTRY_LEN != 0 {
            return Ok(None);
        }
        let entries: Vec<IndexEntry> = bytes
            .chunks_exact(ENTRY_LEN)
            .map(|c| IndexEntry {
                relative_offset: u32::from_be_bytes(c[0..4].try_into().unwrap()),
                position: u32::from_be_bytes(c[4..8].try_into().unwrap()),
            })
            .collect();
        let ordered = entries
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
        Ok(ordered.then(|| Self::from_entries(path, entries)))
    }

    pub fn from_entries(path: &Path, entries: Vec<IndexEntry>) -> Self {
        Self {
            path: path.to_owned(),
            entries: RwLock::new(entries),
        }
    }

    /// The last entry at or before `relative_offset`, or the segment start.
    pub fn floor(&self, relative_offset: u32) -> IndexEntry {
        let entries = self.entries.read().unwrap();
        let i = entries.partition_point(|e| e.relative_offset <= relative_offset);
        match i {
            0 => IndexEntry {
                relative_offset: 0,
                position: 0,
            },
            i => entries[i - 1],
        }
    }

    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.read().unwrap().last().copied()
    }

    /// Adds an entry in memory and to the file.
    pub fn push(&self, file: &mut File, entry: IndexEntry) -> Result<()> {
        file.write_all(&encode(&[entry]))
            .map_err(LogError::io(&self.path))?;
        self.entries.write().unwrap().push(entry);
        Ok(())
    }

    /// Keeps only entries pointing below byte `position`; rewrites the file.
    pub fn truncate_to_position(&self, position: u64) -> Result<()> {
        let mut entries = self.entries.write().unwrap();
        entries.retain(|e| u64::from(e.position) < position);
        std::fs::write(&self.path, encode(&entries)).map_err(LogError::io(&self.path))
    }

    /// Replaces the index (memory and file) with `entries`.
    pub fn replace(&self, entries: Vec<IndexEntry>) -> Result<()> {
        std::fs::write(&self.path, encode(&entries)).map_err(LogError::io(&self.path))?;
        *self.entries.write().unwrap() = entries;
        Ok(())
    }

    /// Opens the index file for appending entries.
    pub fn open_for_append(&self) -> Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(LogError::io(&self.path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn encode(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN);
    for e in entries {
        out.extend_from_slice(&e.relative_offset.to_be_bytes());
        out.extend_from_slice(&e.position.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(relative_offset: u32, position: u32) -> IndexEntry {
        IndexEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn floor_finds_the_entry_at_or_before() {
        let dir = tempfile::tempdir().unwrap();
        let idx = OffsetIndex::from_entries(
            &dir.path().join("x.index"),
            vec![entry(10, 100), entry(20, 200)],
        );
        assert_eq!(idx.floor(5), entry(0, 0));
        assert_eq!(idx.floor(10), entry(10, 100));
        assert_eq!(idx.floor(19), entry(10, 100));
        assert_eq!(idx.floor(1000), entry(20, 200));
    }

    #[test]
    fn load_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        assert!(OffsetIndex::load(&path).unwrap().is_none());
        let idx = OffsetIndex::from_entries(&path, vec![]);
        let mut file = idx.open_for_append().unwrap();
        idx.push(&mut file, entry(1, 10)).unwrap();
        idx.push(&mut file, entry(5, 90)).unwrap();
        let loaded = OffsetIndex::load(&path).unwrap().unwrap();
        assert_eq!(loaded.last(), Some(entry(5, 90)));
        std::fs::write(&path, [0u8; 9]).unwrap();
        assert!(OffsetIndex::load(&path).unwrap().is_none(), "odd size");
        std::fs::write(&path, encode(&[entry(5, 90), entry(1, 10)])).unwrap();
        assert!(OffsetIndex::load(&path).unwrap().is_none(), "out of order");
    }
}
