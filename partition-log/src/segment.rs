//! One segment: a `.log` file of whole batches and its sparse `.index`, both
//! named by the segment's base offset (20 digits, zero-padded).
//!
//! Invariants:
//! - Bytes `[0, size)` of the `.log` file are whole, valid batches with
//!   contiguous offsets starting at the base offset. `size` only grows while
//!   the segment is active, and is published (Release) only after the bytes
//!   are written, so a reader that loads it (Acquire) never sees a partial
//!   batch.
//! - Readers use positional reads (`pread`) on a shared file handle: they
//!   never move a cursor and never load more of the file than they return.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufReader, Read, Seek, SeekFrom},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{
    batch::{Batch, BatchHeader, HEADER_LEN},
    error::{LogError, Result},
    index::{IndexEntry, OffsetIndex},
};

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";

/// How many bytes a header walk reads at a time.
const SCAN_CHUNK: usize = 16 * 1024;

/// Smallest encoded record: four one-byte varints (offset delta, timestamp
/// delta, key length, value length).
const MIN_RECORD_LEN: u64 = 4;

/// Total batch length from the raw length field of a header that did not
/// parse, if the field is at least a header long.
fn raw_total_len(header: &[u8]) -> Option<u64> {
    let field = u32::from_be_bytes(header.get(8..12)?.try_into().ok()?);
    let total = 12 + u64::from(field);
    (total >= HEADER_LEN as u64).then_some(total)
}

pub(crate) fn file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// Parses `00000000000000001234.log` into `1234`.
pub(crate) fn parse_log_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(LOG_SUFFIX)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// What opening a segment found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the segment (a torn or corrupt tail).
    pub truncated_bytes: u64,
    /// The index was missing or damaged and was rebuilt.
    pub index_rebuilt: bool,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    path: PathBuf,
    file: File,
    pub index: OffsetIndex,
    size: AtomicU64,
}

impl Segment {
    pub fn create(dir: &Path, base_offset: u64) -> Result<Self> {
        let path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(LogError::io(&path))?;
        let index_path = dir.join(file_name(base_offset, INDEX_SUFFIX));
        let index = OffsetIndex::from_entries(&index_path, Vec::new());
        index.replace(Vec::new())?;
        Ok(Self {
            base_offset,
            path,
            file,
            index,
            size: AtomicU64::new(0),
        })
    }

    /// Opens a closed segment, which must end exactly at `next_base`. Only
    /// headers are walked (from the last index entry); a missing or damaged
    /// index is rebuilt from the whole file.
    pub fn open_closed(
        dir: &Path,
        base_offset: u64,
        next_base: u64,
        index_interval: u64,
    ) -> Result<(Self, Recovery)> {
        let (mut segment, index) = Self::open_files(dir, base_offset)?;
        let len = segment.file_len()?;
        segment.size = AtomicU64::new(len);
        let mut recovery = Recovery::default();
        let from = match index {
            Some(index) if segment.index_entry_is_valid(&index, len)? => {
                segment.index = index;
                segment.index.last()
            }
            _ => {
                recovery.index_rebuilt = true;
                None
            }
        };
        let scan = segment.scan(from, len, index_interval, false)?;
        if let Some(bad) = scan.bad {
            return Err(segment.corrupt(bad.position, bad.reason));
        }
        if scan.next_offset != next_base {
            return Err(segment.corrupt(
                len,
                format!(
                    "segment ends at offset {} but the next segment starts at {next_base}",
                    scan.next_offset
                ),
            ));
        }
        if recovery.index_rebuilt {
            segment.index.replace(scan.index)?;
        } else if !scan.index.is_empty() {
            // The index is never fsynced: entries lost from its end are
            // re-derived by the walk from its last entry.
            let mut file = segment.index.open_for_append()?;
            for entry in scan.index {
                segment.index.push(&mut file, entry)?;
            }
        }
        Ok((segment, recovery))
    }

    /// Opens the last (active) segment and re-validates it batch by batch,
    /// CRCs included, from its last index entry. A torn or corrupt tail is
    /// cut; corruption followed by valid batches is an error, because cutting
    /// there would drop valid data.
    ///
    /// Returns the segment and the offset after its last batch.
    pub fn open_active(
        dir: &Path,
        base_offset: u64,
        index_interval: u64,
    ) -> Result<(Self, u64, Recovery)> {
        let (mut segment, index) = Self::open_files(dir, base_offset)?;
        let len = segment.file_len()?;
        let mut recovery = Recovery::default();
        let from = match index {
            Some(index) if segment.index_entry_is_valid(&index, len)? => {
                segment.index = index;
                segment.index.last()
            }
            _ => {
                recovery.index_rebuilt = true;
                None
            }
        };
        let scan = segment.scan(from, len, index_interval, true)?;
        let valid = match scan.bad {
            None => len,
            Some(bad) => {
                if segment.valid_batch_follows(&bad, len)? {
                    return Err(segment.corrupt(bad.position, bad.reason));
                }
                tracing::warn!(
                    segment = %segment.path.display(),
                    position = bad.position,
                    cut = len - bad.position,
                    reason = %bad.reason,
                    "cutting torn or corrupt tail"
                );
                recovery.truncated_bytes = len - bad.position;
                segment
                    .file
                    .set_len(bad.position)
                    .and_then(|()| segment.file.sync_all())
                    .map_err(LogError::io(&segment.path))?;
                bad.position
            }
        };
        if recovery.index_rebuilt {
            segment.index.replace(scan.index)?;
        } else {
            // Keep what was indexed before the scan start, plus what it found.
            segment.index.truncate_to_position(valid)?;
            let mut file = segment.index.open_for_append()?;
            for entry in scan.index {
                if segment
                    .index
                    .last()
                    .is_none_or(|l| l.position < entry.position)
                {
                    segment.index.push(&mut file, entry)?;
                }
            }
        }
        segment.size = AtomicU64::new(valid);
        Ok((segment, scan.next_offset, recovery))
    }

    fn open_files(dir: &Path, base_offset: u64) -> Result<(Self, Option<OffsetIndex>)> {
        let path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(LogError::io(&path))?;
        let index_path = dir.join(file_name(base_offset, INDEX_SUFFIX));
        let index = OffsetIndex::load(&index_path)?;
        let segment = Self {
            base_offset,
            path,
            file,
            index: OffsetIndex::from_entries(&index_path, Vec::new()),
            size: AtomicU64::new(0),
        };
        Ok((segment, index))
    }

    fn file_len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(LogError::io(&self.path))?
            .len())
    }

    /// An index can be trusted if its last entry points inside the file at a
    /// batch header with the offset it claims.
    fn index_entry_is_valid(&self, index: &OffsetIndex, len: u64) -> Result<bool> {
        let Some(last) = index.last() else {
            return Ok(true);
        };
        if u64::from(last.position) + HEADER_LEN as u64 > len {
            return Ok(false);
        }
        let bytes = self.read_at(u64::from(last.position), HEADER_LEN)?;
        Ok(BatchHeader::parse(&bytes)
            .is_ok_and(|h| h.base_offset == self.base_offset + u64::from(last.relative_offset)))
    }

    /// Walks batches from `from` (an index entry, or the segment start) to
    /// `len`, checking headers, offset contiguity and, if `verify`, CRCs.
    /// Collects the index entries the walk passes, by the append rule.
    fn scan(
        &self,
        from: Option<IndexEntry>,
        len: u64,
        index_interval: u64,
        verify: bool,
    ) -> Result<Scan> {
        let (mut position, mut expected) = match from {
            Some(e) => (
                u64::from(e.position),
                self.base_offset + u64::from(e.relative_offset),
            ),
            None => (0, self.base_offset),
        };
        let mut last_indexed = from.map_or(0, |e| u64::from(e.position));
        let mut index = Vec::new();
        let mut reader = BufReader::with_capacity(256 * 1024, &self.file);
        reader
            .seek(SeekFrom::Start(position))
            .map_err(LogError::io(&self.path))?;
        let mut buf = vec![0u8; HEADER_LEN];
        let bad = loop {
            if position == len {
                break None;
            }
            let bad = |reason: String, total_len: Option<u64>| {
                Some(BadBatch {
                    position,
                    reason,
                    expected,
                    total_len,
                })
            };
            if len - position < HEADER_LEN as u64 {
                break bad(
                    format!("{} trailing bytes, shorter than a header", len - position),
                    None,
                );
            }
            buf.resize(HEADER_LEN, 0);
            reader
                .read_exact(&mut buf)
                .map_err(LogError::io(&self.path))?;
            let header = match BatchHeader::parse(&buf) {
                Ok(h) => h,
                Err(e) => break bad(e.to_string(), raw_total_len(&buf)),
            };
            let total = header.total_len() as u64;
            let bad = |reason: String| bad(reason, Some(total));
            if header.base_offset != expected {
                break bad(format!(
                    "batch has base offset {}, expected {expected}",
                    header.base_offset
                ));
            }
            if position + total > len {
                break bad(format!(
                    "batch of {total} bytes runs past the end of the file ({} bytes left)",
                    len - position
                ));
            }
            if verify {
                buf.resize(header.total_len(), 0);
                reader
                    .read_exact(&mut buf[HEADER_LEN..])
                    .map_err(LogError::io(&self.path))?;
                if let Err(e) = Batch::split_first(&buf).and_then(|(b, _)| b.verify()) {
                    break bad(e.to_string());
                }
            } else {
                reader
                    .seek_relative((total - HEADER_LEN as u64) as i64)
                    .map_err(LogError::io(&self.path))?;
            }
            if position > 0 && position - last_indexed >= index_interval {
                index.push(IndexEntry {
                    relative_offset: (header.base_offset - self.base_offset) as u32,
                    position: position as u32,
                });
                last_indexed = position;
            }
            position += total;
            expected = header.next_offset();
        };
        Ok(Scan {
            next_offset: expected,
            index,
            bad,
        })
    }

    /// After a bad batch whose length field was readable: is the batch right
    /// after it (by that length) valid, CRC included, and plausibly the next
    /// one? Then the damage is in the middle of the log, not a torn tail.
    ///
    /// The damaged batch's own header is not trusted (its base offset and
    /// record count may be what was damaged): the next batch need only start
    /// above the offset the damaged one should have had, by no more records
    /// than the damaged one's bytes can hold.
    fn valid_batch_follows(&self, bad: &BadBatch, len: u64) -> Result<bool> {
        let Some(total) = bad.total_len else {
            return Ok(false);
        };
        let next = bad.position + total;
        if next + HEADER_LEN as u64 > len {
            return Ok(false);
        }
        let head = self.read_at(next, HEADER_LEN)?;
        let Ok(next_header) = BatchHeader::parse(&head) else {
            return Ok(false);
        };
        let max_records = (total - HEADER_LEN as u64) / MIN_RECORD_LEN;
        let plausible = next_header.base_offset > bad.expected
            && next_header.base_offset - bad.expected <= max_records;
        if !plausible || next + next_header.total_len() as u64 > len {
            return Ok(false);
        }
        let bytes = self.read_at(next, next_header.total_len())?;
        Ok(Batch::split_first(&bytes).is_ok_and(|(b, _)| b.verify().is_ok()))
    }

    fn corrupt(&self, position: u64, reason: String) -> LogError {
        LogError::Corrupt {
            path: self.path.clone(),
            position,
            reason,
        }
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::Release);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads up to `len` bytes at `position`; fewer if the file ends first.
    pub fn read_at(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_into(position, len, &mut buf)?;
        Ok(buf)
    }

    /// Appends up to `len` bytes at `position` to `buf`; fewer if the file
    /// ends first. Returns how many were appended.
    ///
    /// The space is grown with `resize`, not allocated zeroed: a zeroed
    /// allocation of a large read is a `calloc`, which the allocators hand
    /// back as fresh pages (an `madvise` and a page fault per 4 KiB, a fifth
    /// of a consume-heavy node's CPU), while `resize` reuses freed memory and
    /// zeroes it in place.
    pub fn read_into(&self, position: u64, len: usize, buf: &mut Vec<u8>) -> Result<usize> {
        let start = buf.len();
        buf.resize(start + len, 0);
        let mut filled = 0;
        while filled < len {
            match self
                .file
                .read_at(&mut buf[start + filled..], position + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    buf.truncate(start);
                    return Err(LogError::io(&self.path)(e));
                }
            }
        }
        buf.truncate(start + filled);
        Ok(filled)
    }

    pub fn write_at(&self, position: u64, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(bytes, position)
            .map_err(LogError::io(&self.path))
    }

    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(LogError::io(&self.path))
    }

    /// Cuts the segment to `position` bytes (a batch boundary).
    pub fn truncate(&self, position: u64) -> Result<()> {
        self.set_size(position.min(self.size()));
        self.file
            .set_len(position)
            .and_then(|()| self.file.sync_all())
            .map_err(LogError::io(&self.path))?;
        self.index.truncate_to_position(position)
    }

    /// Finds the batch that holds `offset` among the first `size` bytes:
    /// its position and header. `None` if the segment ends first.
    pub fn locate(&self, offset: u64, size: u64) -> Result<Option<(u64, BatchHeader)>> {
        let relative = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        let mut position = u64::from(self.index.floor(relative).position);
        let mut chunk = Vec::new();
        let mut chunk_start = position;
        while position + HEADER_LEN as u64 <= size {
            let in_chunk = position >= chunk_start
                && position + HEADER_LEN as u64 <= chunk_start + chunk.len() as u64;
            if !in_chunk {
                let want = (size - position).min(SCAN_CHUNK as u64) as usize;
                chunk = self.read_at(position, want)?;
                chunk_start = position;
                if chunk.len() < HEADER_LEN {
                    return Ok(None); // cut by a concurrent truncation
                }
            }
            let at = (position - chunk_start) as usize;
            let header = BatchHeader::parse(&chunk[at..])
                .map_err(|e| self.corrupt(position, e.to_string()))?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_len() as u64;
        }
        Ok(None)
    }
}

struct Scan {
    next_offset: u64,
    index: Vec<IndexEntry>,
    bad: Option<BadBatch>,
}

struct BadBatch {
    position: u64,
    reason: String,
    /// The offset the batch at `position` should have started at.
    expected: u64,
    /// The batch's total length according to its length field, if a whole
    /// header was there and the field is at least a header long. The field
    /// lies before the CRC, so it may itself be the damage.
    total_len: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digit_base_offsets() {
        assert_eq!(file_name(1234, LOG_SUFFIX), "00000000000000001234.log");
        assert_eq!(parse_log_name("00000000000000001234.log"), Some(1234));
        assert_eq!(parse_log_name("1234.log"), None);
        assert_eq!(parse_log_name("0000000000000000123x.log"), None);
        assert_eq!(parse_log_name("00000000000000001234.index"), None);
    }
}
