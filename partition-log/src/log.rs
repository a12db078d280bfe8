//! [`PartitionLog`], the single writer of one partition's directory, and
//! [`LogReader`], the cloneable handle many readers share.
//!
//! Invariants:
//! - Only the `PartitionLog` (one per directory, enforced by a lock file)
//!   writes files. Every method that can fail validates first and changes
//!   nothing on disk when it returns a validation error.
//! - The shared [`View`] (segments, start and end offsets) is updated under a
//!   short write lock *after* bytes are written, so a reader holding the read
//!   lock for a few instructions never waits for I/O and never sees a batch
//!   that is not wholly on disk (in the page cache, at least).
//! - Offsets are contiguous from the log start to the log end; segments are
//!   sorted by base offset and the last one is the active segment.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Instant, SystemTime},
};

use crate::{
    batch::{Batch, BatchHeader},
    config::{FsyncPolicy, LogConfig, Retention},
    epoch::{self, EpochEntry, EpochHistory},
    error::{LogError, Result},
    index::IndexEntry,
    segment::{self, INDEX_SUFFIX, LOG_SUFFIX, Recovery, Segment},
};

const LOCK_FILE: &str = ".lock";

/// Offsets written by one [`PartitionLog::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: u64,
    /// Offset after the last record appended: the new log end.
    pub next_offset: u64,
}

/// What [`PartitionLog::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub segments: usize,
    /// Bytes cut from the tail of the active segment.
    pub truncated_bytes: u64,
    /// Segments whose index was rebuilt.
    pub indexes_rebuilt: usize,
}

#[derive(Debug)]
struct View {
    segments: Vec<Arc<Segment>>,
    start_offset: u64,
    end_offset: u64,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    view: RwLock<View>,
    /// A copy of the writer's epoch history, for readers.
    epochs: RwLock<Vec<EpochEntry>>,
}

/// A cheap, cloneable, thread-safe read handle on a partition log.
#[derive(Debug, Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

impl LogReader {
    /// First offset still stored.
    pub fn start_offset(&self) -> u64 {
        self.shared.view.read().unwrap().start_offset
    }

    /// Offset the next appended record will get.
    pub fn end_offset(&self) -> u64 {
        self.shared.view.read().unwrap().end_offset
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        let view = self.shared.view.read().unwrap();
        view.segments.iter().map(|s| s.size()).sum()
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The latest leader epoch that wrote to this log.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.shared.epochs.read().unwrap().last().map(|e| e.epoch)
    }

    /// KIP-101 "end offset for epoch" (see
    /// [`PartitionLog::end_offset_for_epoch`]), without the writer.
    pub fn end_offset_for_epoch(&self, epoch: u32) -> Option<(u32, u64)> {
        let end = self.end_offset();
        epoch::end_offset_for(&self.shared.epochs.read().unwrap(), epoch, end)
    }

    /// Reads whole batches starting with the one that holds `from`, stopping
    /// before the first batch that reaches `upper` (exclusive; pass the
    /// high-water mark so that uncommitted records are never returned) and
    /// after about `max_bytes`. At least one batch is returned if one is
    /// readable, however large, so a reader always makes progress.
    ///
    /// The first batch may start before `from`; callers skip its records
    /// below `from`. An empty result means nothing is readable yet, or the
    /// segment ended: read again from the offset after the last batch.
    ///
    /// Errors with [`LogError::OffsetOutOfRange`] if `from` is below the log
    /// start or above the log end.
    pub fn read(&self, from: u64, upper: u64, max_bytes: usize) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.read_into(from, upper, max_bytes, &mut bytes)?;
        Ok(bytes)
    }

    /// [`LogReader::read`], appending the batches to `out` instead of
    /// returning a buffer of their own, so that a caller assembling one
    /// answer from several reads copies nothing. Returns how many bytes
    /// were appended (0: nothing readable, as an empty `read`). On an error
    /// `out` is as it was.
    pub fn read_into(
        &self,
        from: u64,
        upper: u64,
        max_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        let (segment, size, upper) = {
            let view = self.shared.view.read().unwrap();
            if from < view.start_offset || from > view.end_offset {
                return Err(LogError::OffsetOutOfRange {
                    offset: from,
                    start: view.start_offset,
                    end: view.end_offset,
                });
            }
            let upper = upper.min(view.end_offset);
            if from >= upper {
                return Ok(0);
            }
            let i = view.segments.partition_point(|s| s.base_offset <= from) - 1;
            let segment = Arc::clone(&view.segments[i]);
            let size = segment.size();
            (segment, size, upper)
        };
        let Some((position, first)) = segment.locate(from, size)? else {
            return Ok(0);
        };
        if first.last_offset() >= upper {
            return Ok(0);
        }
        let want = max_bytes.max(first.total_len()) as u64;
        let start = out.len();
        segment.read_into(position, want.min(size - position) as usize, out)?;
        let mut keep = 0;
        let mut rest = &out[start..];
        while let Ok((batch, tail)) = Batch::split_first(rest) {
            if batch.header.last_offset() >= upper {
                break;
            }
            keep += batch.header.total_len();
            rest = tail;
        }
        out.truncate(start + keep);
        Ok(keep)
    }
}

/// The writer of one partition log. Not `Clone`: there is exactly one.
#[derive(Debug)]
pub struct PartitionLog {
    reader: LogReader,
    config: LogConfig,
    active: Arc<Segment>,
    index_file: File,
    epochs: EpochHistory,
    last_sync: Instant,
    /// The active segment has appends not yet synced.
    unsynced: bool,
    /// Under `Interval`: segments closed by a roll before their last appends
    /// were synced, and whether a new segment's directory entry is unsynced.
    rolled: Vec<Arc<Segment>>,
    dir_unsynced: bool,
    _lock: File,
}

/// Fsyncs a log owes, taken from it to run on a blocking thread (so that an
/// async runtime's workers never wait on the disk): the data of the segments
/// appended to since the last sync, then the directory if a segment was
/// created. Holds the segments, not the log: the writer goes on appending.
#[derive(Debug)]
#[must_use = "a sync job does nothing until it is run"]
pub struct SyncJob {
    segments: Vec<Arc<Segment>>,
    dir: Option<PathBuf>,
}

impl SyncJob {
    /// Runs the fsyncs. On an error the data may not be durable: call
    /// [`PartitionLog::sync_failed`] so that the next job syncs again.
    pub fn run(self) -> Result<()> {
        for segment in &self.segments {
            segment.sync()?;
        }
        if let Some(dir) = &self.dir {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering the active segment.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<(Self, OpenReport)> {
        let dir = dir.as_ref().to_owned();
        assert!(
            config.segment_bytes <= LogConfig::MAX_SEGMENT_BYTES,
            "segment_bytes above {}",
            LogConfig::MAX_SEGMENT_BYTES
        );
        fs::create_dir_all(&dir).map_err(LogError::io(&dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(LogError::io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(LogError::Locked(dir));
        }

        let bases = list_segments(&dir)?;
        let mut report = OpenReport::default();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let end_offset = match bases.split_last() {
            None => {
                segments.push(Arc::new(Segment::create(&dir, 0)?));
                if config.fsync != FsyncPolicy::Never {
                    sync_dir(&dir)?;
                }
                0
            }
            Some((&last, closed)) => {
                let mut count =
                    |r: &Recovery| report.indexes_rebuilt += usize::from(r.index_rebuilt);
                for (i, &base) in closed.iter().enumerate() {
                    let next = bases[i + 1];
                    let (segment, recovery) =
                        Segment::open_closed(&dir, base, next, config.index_interval_bytes)?;
                    count(&recovery);
                    segments.push(Arc::new(segment));
                }
                let (segment, end, recovery) =
                    Segment::open_active(&dir, last, config.index_interval_bytes)?;
                count(&recovery);
                report.truncated_bytes = recovery.truncated_bytes;
                segments.push(Arc::new(segment));
                end
            }
        };
        report.segments = segments.len();

        let mut epochs = EpochHistory::load(&dir)?;
        // An epoch is recorded before its first batch is written, so after a
        // crash (or a cut tail) it may start at or beyond the log end: such an
        // epoch wrote nothing that survived.
        epochs.truncate_from(end_offset)?;

        let active = Arc::clone(segments.last().unwrap());
        let index_file = active.index.open_for_append()?;
        let start_offset = segments[0].base_offset;
        let reader = LogReader {
            shared: Arc::new(Shared {
                dir,
                view: RwLock::new(View {
                    segments,
                    start_offset,
                    end_offset,
                }),
                epochs: RwLock::new(epochs.entries().to_vec()),
            }),
        };
        let log = Self {
            reader,
            config,
            active,
            index_file,
            epochs,
            last_sync: Instant::now(),
            unsynced: false,
            rolled: Vec::new(),
            dir_unsynced: false,
            _lock: lock,
        };
        Ok((log, report))
    }

    /// A read handle sharing this log.
    pub fn reader(&self) -> LogReader {
        self.reader.clone()
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn start_offset(&self) -> u64 {
        self.reader.start_offset()
    }

    pub fn end_offset(&self) -> u64 {
        self.reader.end_offset()
    }

    /// See [`LogReader::read`].
    pub fn read(&self, from: u64, upper: u64, max_bytes: usize) -> Result<Vec<u8>> {
        self.reader.read(from, upper, max_bytes)
    }

    /// The leader-epoch history, oldest first.
    pub fn epochs(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// The latest leader epoch that wrote to this log.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.epochs.latest().map(|e| e.epoch)
    }

    /// KIP-101 "end offset for epoch": the largest epoch `<= epoch` in this
    /// log and the offset where it ended. A follower truncates to the
    /// smaller of this (asked of the leader) and its own end.
    pub fn end_offset_for_epoch(&self, epoch: u32) -> Option<(u32, u64)> {
        self.epochs.end_offset_for(epoch, self.end_offset())
    }

    /// Appends one or more concatenated, encoded batches whose offsets
    /// continue the log exactly (as a leader stamps them, or as a follower
    /// receives them). Everything is validated first (lengths, CRCs,
    /// contiguity, epochs); on error nothing is written.
    pub fn append(&mut self, batches: &[u8]) -> Result<AppendInfo> {
        let headers = self.validate(batches)?;
        let first_offset = self.end_offset();
        for h in &headers {
            if self
                .epochs
                .latest()
                .is_none_or(|l| h.leader_epoch > l.epoch)
            {
                self.epochs.assign(h.leader_epoch, h.base_offset)?;
                self.publish_epochs();
            }
        }

        let mut run_start = 0;
        let mut run_len = 0;
        let mut size = self.active.size();
        for h in &headers {
            let len = h.total_len();
            if size > 0 && size + len as u64 > self.config.segment_bytes {
                self.write_run(&batches[run_start..run_start + run_len], h.base_offset)?;
                self.roll(h.base_offset)?;
                run_start += run_len;
                run_len = 0;
                size = 0;
            }
            if let Some(entry) = self.index_entry_for(size, h) {
                self.active.index.push(&mut self.index_file, entry)?;
            }
            run_len += len;
            size += len as u64;
        }
        let next_offset = headers.last().unwrap().next_offset();
        self.write_run(&batches[run_start..run_start + run_len], next_offset)?;
        self.unsynced = true;
        if self.config.fsync == FsyncPolicy::Always {
            self.sync()?;
        }
        Ok(AppendInfo {
            first_offset,
            next_offset,
        })
    }

    fn validate(&self, mut bytes: &[u8]) -> Result<Vec<BatchHeader>> {
        if bytes.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        let mut expected = self.end_offset();
        let mut latest_epoch = self.latest_epoch().unwrap_or(0);
        let mut headers = Vec::new();
        while !bytes.is_empty() {
            if let Ok(h) = BatchHeader::parse(bytes)
                && h.total_len() > self.config.max_batch_bytes
            {
                return Err(LogError::BatchTooLarge {
                    size: h.total_len(),
                    max: self.config.max_batch_bytes,
                });
            }
            let (batch, rest) = Batch::split_first(bytes)?;
            batch.verify()?;
            let h = batch.header;
            if h.base_offset != expected {
                return Err(LogError::NonContiguous {
                    expected,
                    got: h.base_offset,
                });
            }
            if h.leader_epoch < latest_epoch {
                return Err(LogError::StaleEpoch {
                    got: h.leader_epoch,
                    latest: latest_epoch,
                });
            }
            latest_epoch = h.leader_epoch;
            expected = h.next_offset();
            headers.push(h);
            bytes = rest;
        }
        Ok(headers)
    }

    /// The index entry for a batch about to be written at `position`, if the
    /// interval since the last entry has passed (the rule recovery follows).
    fn index_entry_for(&self, position: u64, h: &BatchHeader) -> Option<IndexEntry> {
        let last = self
            .active
            .index
            .last()
            .map_or(0, |e| u64::from(e.position));
        (position > 0 && position - last >= self.config.index_interval_bytes).then(|| IndexEntry {
            relative_offset: (h.base_offset - self.active.base_offset) as u32,
            position: position as u32,
        })
    }

    /// Writes `bytes` at the end of the active segment and publishes them.
    fn write_run(&mut self, bytes: &[u8], next_offset: u64) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let size = self.active.size();
        self.active.write_at(size, bytes)?;
        self.active.set_size(size + bytes.len() as u64);
        self.reader.shared.view.write().unwrap().end_offset = next_offset;
        Ok(())
    }

    fn roll(&mut self, base_offset: u64) -> Result<()> {
        let segment = Arc::new(Segment::create(&self.reader.shared.dir, base_offset)?);
        // An fdatasync of the new file does not persist its directory
        // entry: without a directory sync, synced appends to it could vanish.
        match self.config.fsync {
            FsyncPolicy::Always => {
                self.active.sync()?;
                sync_dir(&self.reader.shared.dir)?;
            }
            // Owed to the next sync job, with the closed segment's tail.
            // (Whether or not `unsynced` says so yet: the append under
            // way may just have written to it.)
            FsyncPolicy::Interval(_) => {
                self.rolled.push(Arc::clone(&self.active));
                self.dir_unsynced = true;
            }
            FsyncPolicy::Never => {}
        }
        self.index_file = segment.index.open_for_append()?;
        self.reader
            .shared
            .view
            .write()
            .unwrap()
            .segments
            .push(Arc::clone(&segment));
        self.active = segment;
        tracing::debug!(base_offset, "rolled a new segment");
        Ok(())
    }

    fn publish_epochs(&self) {
        *self.reader.shared.epochs.write().unwrap() = self.epochs.entries().to_vec();
    }

    /// Forces appended bytes to disk now, on this thread.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(job) = self.take_sync() {
            job.run().inspect_err(|_| self.sync_failed())?;
        }
        Ok(())
    }

    /// Everything the log owes the disk, as a job to run elsewhere; `None`
    /// if nothing is unsynced. The log counts it as synced from now on.
    pub fn take_sync(&mut self) -> Option<SyncJob> {
        self.last_sync = Instant::now();
        if !self.unsynced && self.rolled.is_empty() && !self.dir_unsynced {
            return None;
        }
        let mut segments = std::mem::take(&mut self.rolled);
        if std::mem::take(&mut self.unsynced) {
            segments.push(Arc::clone(&self.active));
        }
        let dir = std::mem::take(&mut self.dir_unsynced).then(|| self.reader.shared.dir.clone());
        Some(SyncJob { segments, dir })
    }

    /// Under `Interval`, the sync job due once the interval has passed
    /// since the last sync. Take it from a timer (appends do not sync) and
    /// run it off the async runtime.
    pub fn sync_due(&mut self) -> Option<SyncJob> {
        match self.config.fsync {
            FsyncPolicy::Interval(every) if self.last_sync.elapsed() >= every => self.take_sync(),
            _ => None,
        }
    }

    /// A sync job failed: what it held counts as unsynced again.
    pub fn sync_failed(&mut self) {
        self.unsynced = true;
        self.dir_unsynced = true;
    }

    /// Removes every record at or after `offset`, which must be a batch
    /// boundary at or above the log start. A no-op at or past the log end.
    pub fn truncate_to(&mut self, offset: u64) -> Result<()> {
        let (start, end) = (self.start_offset(), self.end_offset());
        if offset < start {
            return Err(LogError::TruncateBelowStart { offset, start });
        }
        if offset >= end {
            return Ok(());
        }
        let (keep, position, dropped) = {
            let view = self.reader.shared.view.read().unwrap();
            let i = view.segments.partition_point(|s| s.base_offset <= offset) - 1;
            let segment = &view.segments[i];
            let position = match segment.locate(offset, segment.size())? {
                Some((position, h)) if h.base_offset == offset => position,
                _ => return Err(LogError::NotBatchBoundary(offset)),
            };
            // A segment cut to nothing is removed too, unless it is the first.
            let keep = if position == 0 && i > 0 { i - 1 } else { i };
            (keep, position, view.segments[keep + 1..].to_vec())
        };
        {
            let mut view = self.reader.shared.view.write().unwrap();
            view.segments.truncate(keep + 1);
            view.end_offset = offset;
        }
        for segment in &dropped {
            remove_segment_files(segment)?;
        }
        if !dropped.is_empty() {
            // Removed segments must not come back after a crash: the one
            // before them, cut and synced, would no longer reach them.
            sync_dir(&self.reader.shared.dir)?;
        }
        let active = Arc::clone(&self.reader.shared.view.read().unwrap().segments[keep]);
        if dropped.first().is_none_or(|d| d.base_offset != offset) {
            active.truncate(position)?;
        }
        self.index_file = active.index.open_for_append()?;
        self.active = active;
        self.epochs.truncate_from(offset)?;
        self.publish_epochs();
        tracing::info!(offset, cut = end - offset, "truncated log");
        Ok(())
    }

    /// Deletes whole closed segments, oldest first, while the log is larger
    /// than the retention size or the segment was last written before the
    /// retention age. Never the active segment, and never a segment holding
    /// offsets at or above `committed` (pass the high-water mark).
    /// Returns the base offsets of the deleted segments.
    pub fn apply_retention(&mut self, committed: u64, now: SystemTime) -> Result<Vec<u64>> {
        let retention = self.config.retention;
        if retention.max_bytes.is_none() && retention.max_age.is_none() {
            return Ok(Vec::new());
        }
        let segments = self.reader.shared.view.read().unwrap().segments.clone();
        let mut total: u64 = segments.iter().map(|s| s.size()).sum();
        let mut doomed = Vec::new();
        for pair in segments.windows(2) {
            let (segment, next) = (&pair[0], &pair[1]);
            if next.base_offset > committed {
                break;
            }
            let too_big = retention.max_bytes.is_some_and(|max| total > max);
            let too_old = match retention.max_age {
                Some(age) => {
                    let modified = fs::metadata(segment.path())
                        .and_then(|m| m.modified())
                        .map_err(LogError::io(segment.path()))?;
                    now.duration_since(modified).is_ok_and(|d| d > age)
                }
                None => false,
            };
            if !(too_big || too_old) {
                break;
            }
            total -= segment.size();
            doomed.push(Arc::clone(segment));
        }
        self.delete_first(doomed.len())
    }

    /// The rule [`apply_retention`](Self::apply_retention) applies.
    pub fn retention(&self) -> Retention {
        self.config.retention
    }

    /// Replaces the retention rule (a topic's rule may change after open).
    pub fn set_retention(&mut self, retention: Retention) {
        self.config.retention = retention;
    }

    /// Deletes the closed segments that hold only offsets below `offset`,
    /// oldest first: a follower's log start following its leader's. Never
    /// the active segment. Returns the base offsets of the deleted segments.
    pub fn delete_below(&mut self, offset: u64) -> Result<Vec<u64>> {
        let count = {
            let view = self.reader.shared.view.read().unwrap();
            view.segments
                .windows(2)
                .take_while(|pair| pair[1].base_offset <= offset)
                .count()
        };
        self.delete_first(count)
    }

    /// Removes the first `count` segments (never all of them).
    fn delete_first(&mut self, count: usize) -> Result<Vec<u64>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let doomed: Vec<Arc<Segment>> = {
            let mut view = self.reader.shared.view.write().unwrap();
            let doomed = view.segments.drain(..count).collect();
            view.start_offset = view.segments[0].base_offset;
            doomed
        };
        for segment in &doomed {
            remove_segment_files(segment)?;
        }
        let bases: Vec<u64> = doomed.iter().map(|s| s.base_offset).collect();
        tracing::info!(segments = ?bases, "deleted segments below the log start");
        Ok(bases)
    }

    /// Empties the log and starts it again at `offset`, at or beyond its end:
    /// a replica whose whole log is below its leader's log start (the leader
    /// deleted those records) continues from there. The leader-epoch history
    /// is cleared with the records it described.
    pub fn reset_to(&mut self, offset: u64) -> Result<()> {
        let end = self.end_offset();
        if offset < end {
            return Err(LogError::ResetBelowEnd { offset, end });
        }
        let old = std::mem::take(&mut self.reader.shared.view.write().unwrap().segments);
        // Old files first: a crash in between leaves an empty directory,
        // which opens as an empty log at 0, still below the leader's start.
        for segment in &old {
            remove_segment_files(segment)?;
        }
        let dir = self.reader.shared.dir.clone();
        let active = Arc::new(Segment::create(&dir, offset)?);
        if self.config.fsync != FsyncPolicy::Never {
            sync_dir(&dir)?;
        }
        {
            let mut view = self.reader.shared.view.write().unwrap();
            view.segments = vec![Arc::clone(&active)];
            view.start_offset = offset;
            view.end_offset = offset;
        }
        self.index_file = active.index.open_for_append()?;
        self.active = active;
        self.epochs.truncate_from(0)?;
        self.publish_epochs();
        tracing::info!(offset, "log reset to start at the leader's log start");
        Ok(())
    }
}

/// Makes file creations and removals in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io(dir))
}

fn remove_segment_files(segment: &Segment) -> Result<()> {
    for path in [segment.path(), segment.index.path()] {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LogError::io(path)(e)),
        }
    }
    Ok(())
}

/// Base offsets of the segments in `dir`, sorted. Removes index files whose
/// log is gone (left by an interrupted deletion).
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).map_err(LogError::io(dir))? {
        let entry = entry.map_err(LogError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_log_name(name) {
            bases.push(base);
        } else if name.ends_with(INDEX_SUFFIX) {
            indexes.push(entry.path());
        }
    }
    bases.sort_unstable();
    for index in indexes {
        let log = index.with_extension(&LOG_SUFFIX[1..]);
        if !log.exists() {
            fs::remove_file(&index).map_err(LogError::io(&index))?;
        }
    }
    Ok(bases)
}
