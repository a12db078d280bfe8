//! Behaviour of the `PartitionLog` / `LogReader` API: typed errors that
//! change nothing, read bounds, segment rolling and truncation, retention,
//! fsync policies, the directory lock and concurrent readers.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use partition_log::{
    BatchBuilder, BatchError, EpochEntry, FsyncPolicy, LogConfig, LogError, LogReader,
    PartitionLog, Retention, batch,
};

const TS: i64 = 1_700_000_000_000;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

/// The value of the record at `offset`, so readers can check what they get.
fn value_for(offset: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (offset as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

/// A batch of `count` records at `base`, stamped with `epoch`.
fn batch_at(base: u64, epoch: u32, count: u32, value_len: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(TS + base as i64);
    for i in 0..count {
        let offset = base + u64::from(i);
        let key = format!("key-{offset}");
        let key = (!offset.is_multiple_of(3)).then_some(key.as_bytes());
        builder.push(TS + offset as i64, key, &value_for(offset, value_len));
    }
    let mut bytes = builder.finish();
    batch::stamp(&mut bytes, base, epoch);
    bytes
}

/// Appends `n` batches of `count` records; returns their bytes.
fn fill(
    log: &mut PartitionLog,
    n: usize,
    count: u32,
    value_len: usize,
    epoch: u32,
) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let bytes = batch_at(log.end_offset(), epoch, count, value_len);
            log.append(&bytes).unwrap();
            bytes
        })
        .collect()
}

/// `(base offset, next offset)` of each batch in a read result.
fn ranges(bytes: &[u8]) -> Vec<(u64, u64)> {
    batch::batches(bytes)
        .map(|b| {
            let b = b.unwrap();
            b.verify().unwrap();
            (b.header.base_offset, b.header.next_offset())
        })
        .collect()
}

/// Reads the whole log, one read at a time; returns the concatenated bytes.
fn read_all(reader: &LogReader) -> Vec<u8> {
    let mut from = reader.start_offset();
    let mut out = Vec::new();
    while from < reader.end_offset() {
        let bytes = reader.read(from, u64::MAX, 1 << 20).unwrap();
        let got = ranges(&bytes);
        assert_eq!(got.first().map(|r| r.0), Some(from), "read at {from}");
        from = got.last().unwrap().1;
        out.extend_from_slice(&bytes);
    }
    out
}

/// Every file in the directory but the lock, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != ".lock")
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Base offsets of the `.log` files.
fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|s| s.parse().unwrap())
        })
        .collect();
    bases.sort_unstable();
    bases
}

fn seg_path(dir: &Path, base: u64, suffix: &str) -> std::path::PathBuf {
    dir.join(format!("{base:020}{suffix}"))
}

/// Runs a failing append and checks that nothing changed.
fn assert_rejected(log: &mut PartitionLog, dir: &Path, bytes: &[u8]) -> LogError {
    let files = snapshot(dir);
    let (end, epochs) = (log.end_offset(), log.epochs().to_vec());
    let content = read_all(&log.reader());
    let err = log.append(bytes).unwrap_err();
    assert_eq!(snapshot(dir), files, "files changed after {err}");
    assert_eq!(log.end_offset(), end, "end moved after {err}");
    assert_eq!(
        log.epochs(),
        epochs.as_slice(),
        "epochs changed after {err}"
    );
    assert!(
        read_all(&log.reader()) == content,
        "content changed after {err}"
    );
    err
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap().0
}

#[test]
fn oversize_batch_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_batch_bytes: 1_000,
        ..config(1 << 20)
    };
    let mut log = open(dir.path(), cfg);
    fill(&mut log, 2, 3, 50, 1);
    let big = batch_at(log.end_offset(), 1, 10, 200);
    let err = assert_rejected(&mut log, dir.path(), &big);
    assert!(
        matches!(err, LogError::BatchTooLarge { size, max: 1_000 } if size == big.len()),
        "{err:?}"
    );
    // A valid batch in front of it is not written either.
    let mut both = batch_at(log.end_offset(), 1, 2, 10);
    both.extend_from_slice(&batch_at(log.end_offset() + 2, 1, 10, 200));
    let err = assert_rejected(&mut log, dir.path(), &both);
    assert!(matches!(err, LogError::BatchTooLarge { .. }), "{err:?}");
    // Exactly at the limit is fine.
    let exact = (0..1_000)
        .map(|pad| {
            let mut b = BatchBuilder::new(TS);
            b.push(TS, None, &vec![7; pad]);
            let mut bytes = b.finish();
            batch::stamp(&mut bytes, log.end_offset(), 1);
            bytes
        })
        .find(|b| b.len() == 1_000)
        .unwrap();
    log.append(&exact).unwrap();
}

#[test]
fn non_contiguous_append_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    fill(&mut log, 3, 4, 20, 1);
    let end = log.end_offset();
    assert_eq!(end, 12);
    for base in [end + 1, end - 1, 0, u64::MAX - 5] {
        let err = assert_rejected(&mut log, dir.path(), &batch_at(base, 1, 2, 5));
        assert!(
            matches!(err, LogError::NonContiguous { expected, got } if expected == end && got == base),
            "{err:?}"
        );
    }
    // The second batch of one append must continue the first.
    let mut two = batch_at(end, 1, 2, 5);
    two.extend_from_slice(&batch_at(end + 3, 1, 2, 5));
    let err = assert_rejected(&mut log, dir.path(), &two);
    assert!(
        matches!(err, LogError::NonContiguous { expected, got } if expected == end + 2 && got == end + 3),
        "{err:?}"
    );
    let info = log.append(&batch_at(end, 1, 2, 5)).unwrap();
    assert_eq!((info.first_offset, info.next_offset), (end, end + 2));
}

#[test]
fn stale_epoch_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    fill(&mut log, 2, 2, 10, 3);
    fill(&mut log, 2, 2, 10, 5);
    let end = log.end_offset();
    let err = assert_rejected(&mut log, dir.path(), &batch_at(end, 4, 1, 1));
    assert!(
        matches!(err, LogError::StaleEpoch { got: 4, latest: 5 }),
        "{err:?}"
    );
    // Within one append too: 6 then 5. Epoch 6 must not be recorded.
    let mut two = batch_at(end, 6, 1, 1);
    two.extend_from_slice(&batch_at(end + 1, 5, 1, 1));
    let err = assert_rejected(&mut log, dir.path(), &two);
    assert!(
        matches!(err, LogError::StaleEpoch { got: 5, latest: 6 }),
        "{err:?}"
    );
    assert_eq!(log.latest_epoch(), Some(5));
    // The same epoch and newer ones are accepted.
    log.append(&batch_at(end, 5, 1, 1)).unwrap();
    log.append(&batch_at(end + 1, 9, 1, 1)).unwrap();
    assert_eq!(
        log.epochs(),
        &[
            EpochEntry {
                epoch: 3,
                start_offset: 0
            },
            EpochEntry {
                epoch: 5,
                start_offset: 4
            },
            EpochEntry {
                epoch: 9,
                start_offset: end + 1
            },
        ]
    );
    assert_eq!(log.end_offset_for_epoch(4), Some((3, 4)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, end + 1)));
    assert_eq!(log.end_offset_for_epoch(2), None);
    assert_eq!(log.end_offset_for_epoch(100), Some((9, end + 2)));
    // The history survives a reopen.
    let epochs = log.epochs().to_vec();
    drop(log);
    let log = open(dir.path(), config(1 << 20));
    assert_eq!(log.epochs(), epochs.as_slice());
}

#[test]
fn corrupt_batch_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    fill(&mut log, 2, 3, 30, 1);
    let good = batch_at(log.end_offset(), 1, 3, 30);

    let mut flipped = good.clone();
    flipped[60] ^= 0x04;
    let err = assert_rejected(&mut log, dir.path(), &flipped);
    assert!(
        matches!(err, LogError::InvalidBatch(BatchError::CrcMismatch { .. })),
        "{err:?}"
    );

    let err = assert_rejected(&mut log, dir.path(), &good[..good.len() - 1]);
    assert!(
        matches!(err, LogError::InvalidBatch(BatchError::Truncated { .. })),
        "{err:?}"
    );

    let err = assert_rejected(&mut log, dir.path(), &good[..20]);
    assert!(
        matches!(err, LogError::InvalidBatch(BatchError::Truncated { .. })),
        "{err:?}"
    );

    // A valid batch followed by garbage: nothing is written.
    for (garbage, what) in [(vec![0xAB; 20], "short"), (vec![0; 50], "zeros")] {
        let mut tail = good.clone();
        tail.extend_from_slice(&garbage);
        let err = assert_rejected(&mut log, dir.path(), &tail);
        assert!(matches!(err, LogError::InvalidBatch(_)), "{what}: {err:?}");
    }

    let mut empty = BatchBuilder::new(TS).finish();
    batch::stamp(&mut empty, log.end_offset(), 1);
    let err = assert_rejected(&mut log, dir.path(), &empty);
    assert!(
        matches!(err, LogError::InvalidBatch(BatchError::Empty)),
        "{err:?}"
    );

    log.append(&good).unwrap();
}

#[test]
fn empty_append_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    let err = assert_rejected(&mut log, dir.path(), &[]);
    assert!(matches!(err, LogError::EmptyAppend), "{err:?}");
    fill(&mut log, 1, 1, 1, 0);
    let err = assert_rejected(&mut log, dir.path(), &[]);
    assert!(matches!(err, LogError::EmptyAppend), "{err:?}");
}

#[test]
fn reads_outside_the_log_are_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    assert!(log.read(0, 10, 100).unwrap().is_empty(), "empty log at 0");
    let err = log.read(1, 10, 100).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OffsetOutOfRange {
                offset: 1,
                start: 0,
                end: 0
            }
        ),
        "{err:?}"
    );
    fill(&mut log, 3, 5, 10, 1);
    assert!(
        log.read(15, u64::MAX, 1 << 20).unwrap().is_empty(),
        "at end"
    );
    let err = log.read(16, u64::MAX, 1 << 20).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OffsetOutOfRange {
                offset: 16,
                start: 0,
                end: 15
            }
        ),
        "{err:?}"
    );
}

#[test]
fn upper_bound_hides_records_at_or_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    fill(&mut log, 4, 5, 10, 1); // batches [0,5) [5,10) [10,15) [15,20)
    let read = |from, upper| ranges(&log.read(from, upper, 1 << 20).unwrap());
    assert_eq!(read(0, 20), vec![(0, 5), (5, 10), (10, 15), (15, 20)]);
    assert_eq!(read(0, 15), vec![(0, 5), (5, 10), (10, 15)]);
    assert_eq!(read(0, 14), vec![(0, 5), (5, 10)]);
    assert_eq!(read(0, 10), vec![(0, 5), (5, 10)]);
    assert_eq!(read(0, 5), vec![(0, 5)]);
    assert_eq!(read(0, 4), vec![]);
    assert_eq!(read(0, 0), vec![]);
    assert_eq!(read(7, 7), vec![]);
    assert_eq!(read(7, 3), vec![]);
    // A batch is returned whole, even when `from` is inside it.
    assert_eq!(read(7, 20), vec![(5, 10), (10, 15), (15, 20)]);
    assert_eq!(read(7, 9), vec![]);
    // An upper bound past the end is the end.
    assert_eq!(read(12, u64::MAX), vec![(10, 15), (15, 20)]);
    // Decoded, no record at or above the bound.
    let bytes = log.read(3, 13, 1 << 20).unwrap();
    let offsets: Vec<u64> = batch::batches(&bytes)
        .flat_map(|b| {
            b.unwrap()
                .records()
                .map(|r| r.unwrap().offset)
                .collect::<Vec<_>>()
        })
        .filter(|&o| o >= 3)
        .collect();
    assert_eq!(offsets, (3..10).collect::<Vec<_>>());
}

#[test]
fn max_bytes_limits_reads_but_one_batch_always_comes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    let batches = fill(&mut log, 4, 5, 100, 1);
    let len: Vec<usize> = batches.iter().map(Vec::len).collect();
    let read = |max| ranges(&log.read(0, u64::MAX, max).unwrap());
    assert_eq!(read(0), vec![(0, 5)]);
    assert_eq!(read(1), vec![(0, 5)]);
    assert_eq!(read(len[0]), vec![(0, 5)]);
    assert_eq!(read(len[0] + len[1] - 1), vec![(0, 5)]);
    assert_eq!(read(len[0] + len[1]), vec![(0, 5), (5, 10)]);
    assert_eq!(
        read(len[0] + len[1] + len[2] + 1),
        vec![(0, 5), (5, 10), (10, 15)]
    );
    assert_eq!(read(1 << 20).len(), 4);
    // The one batch is whole and valid.
    let bytes = log.read(7, u64::MAX, 1).unwrap();
    assert!(bytes == batches[1]);
}

#[test]
fn read_into_appends_what_read_returns_and_leaves_the_buffer_alone_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    let batches = fill(&mut log, 4, 5, 100, 1);
    let reader = log.reader();
    let mut out = b"before".to_vec();
    // The batch holding 7, then the rest below the upper bound 15.
    let n = reader.read_into(7, 15, 1 << 20, &mut out).unwrap();
    assert_eq!(n, batches[1].len() + batches[2].len());
    assert_eq!(&out[..6], b"before");
    assert_eq!(out[6..], reader.read(7, 15, 1 << 20).unwrap()[..]);
    assert_eq!(ranges(&out[6..]), vec![(5, 10), (10, 15)]);
    // Nothing readable: nothing appended.
    let len = out.len();
    assert_eq!(
        reader.read_into(20, u64::MAX, 1 << 20, &mut out).unwrap(),
        0
    );
    assert_eq!(reader.read_into(3, 4, 1 << 20, &mut out).unwrap(), 0);
    assert!(reader.read_into(21, u64::MAX, 1, &mut out).is_err());
    assert_eq!(out.len(), len);
}

#[test]
fn reads_stop_at_a_segment_boundary_and_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(2_048));
    let batches = fill(&mut log, 20, 4, 100, 1);
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 3, "segments: {bases:?}");
    assert_eq!(bases[0], 0);

    let mut from = 0;
    let mut all = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        assert_eq!(from, base);
        let bytes = log.read(from, u64::MAX, 1 << 20).unwrap();
        let got = ranges(&bytes);
        let next = bases.get(i + 1).copied().unwrap_or(log.end_offset());
        assert_eq!(got.first().unwrap().0, base);
        assert_eq!(
            got.last().unwrap().1,
            next,
            "read from {base} stops at the segment end"
        );
        from = next;
        all.extend_from_slice(&bytes);
    }
    assert_eq!(from, log.end_offset());
    assert!(all == batches.concat());
    // Reading from the middle of a closed segment finds the right batch.
    let mid = bases[1] + 5;
    let got = ranges(&log.read(mid, u64::MAX, 1).unwrap());
    assert_eq!(got, vec![(mid - mid % 4, mid - mid % 4 + 4)]);
}

#[test]
fn rolled_segments_respect_segment_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(2_048));
    fill(&mut log, 10, 4, 100, 1);
    // A batch larger than a segment gets a segment of its own.
    let big = batch_at(log.end_offset(), 1, 10, 500);
    assert!(big.len() > 2_048);
    let big_base = log.end_offset();
    log.append(&big).unwrap();
    fill(&mut log, 3, 4, 100, 1);
    let bases = segment_bases(dir.path());
    assert!(bases.contains(&big_base));
    for (i, &base) in bases.iter().enumerate() {
        let size = std::fs::metadata(seg_path(dir.path(), base, ".log"))
            .unwrap()
            .len();
        assert!(seg_path(dir.path(), base, ".index").exists());
        if base == big_base {
            assert_eq!(size, big.len() as u64);
            assert_eq!(bases[i + 1], big_base + 10);
        } else {
            assert!(size <= 2_048, "segment {base}: {size} bytes");
        }
    }
    // Several batches in one append roll in the middle of it.
    let mut run = Vec::new();
    let mut base = log.end_offset();
    for _ in 0..8 {
        run.extend_from_slice(&batch_at(base, 1, 4, 100));
        base += 4;
    }
    let before = segment_bases(dir.path()).len();
    let info = log.append(&run).unwrap();
    assert_eq!(info.next_offset, base);
    assert!(segment_bases(dir.path()).len() > before);
    let total: u64 = segment_bases(dir.path())
        .iter()
        .map(|&b| {
            std::fs::metadata(seg_path(dir.path(), b, ".log"))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(log.reader().size_bytes(), total);
    assert_eq!(read_all(&log.reader()).len() as u64, total);
}

#[test]
fn truncate_to_a_segment_base_removes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(2_048);
    let mut log = open(dir.path(), cfg);
    let batches = fill(&mut log, 20, 4, 100, 1);
    fill(&mut log, 2, 4, 100, 2);
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 4, "{bases:?}");
    let cut = bases[2];

    log.truncate_to(cut).unwrap();
    assert_eq!(log.end_offset(), cut);
    assert_eq!(segment_bases(dir.path()), bases[..2].to_vec());
    for &gone in &bases[2..] {
        assert!(!seg_path(dir.path(), gone, ".log").exists());
        assert!(!seg_path(dir.path(), gone, ".index").exists());
    }
    let kept = batches[..(cut / 4) as usize].concat();
    assert!(read_all(&log.reader()) == kept);
    // The epoch-2 batches were cut with their epoch.
    assert_eq!(log.latest_epoch(), Some(1));

    // Appending continues at the cut, in the segment before it or a new one.
    let info = log.append(&batch_at(cut, 1, 4, 100)).unwrap();
    assert_eq!(info.first_offset, cut);
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!((report.truncated_bytes, report.indexes_rebuilt), (0, 0));
    assert_eq!(log.end_offset(), cut + 4);
    let mut want = kept;
    want.extend_from_slice(&batch_at(cut, 1, 4, 100));
    assert!(read_all(&log.reader()) == want);
}

#[test]
fn truncate_inside_a_segment_and_to_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(2_048);
    let mut log = open(dir.path(), cfg);
    let batches = fill(&mut log, 12, 4, 100, 1);
    let bases = segment_bases(dir.path());
    // A boundary inside the first segment, not its base.
    let cut = 8;
    assert!(bases[1] > cut);
    // Not a boundary: rejected, nothing changes.
    let files = snapshot(dir.path());
    for bad in [1, 9, bases[1] + 1] {
        let err = log.truncate_to(bad).unwrap_err();
        assert!(
            matches!(err, LogError::NotBatchBoundary(o) if o == bad),
            "{err:?}"
        );
    }
    assert_eq!(snapshot(dir.path()), files);
    // At or past the end: nothing to do.
    log.truncate_to(log.end_offset()).unwrap();
    log.truncate_to(log.end_offset() + 100).unwrap();
    assert_eq!(snapshot(dir.path()), files);

    log.truncate_to(cut).unwrap();
    assert_eq!(log.end_offset(), cut);
    assert_eq!(segment_bases(dir.path()), vec![0]);
    let size = std::fs::metadata(seg_path(dir.path(), 0, ".log"))
        .unwrap()
        .len();
    assert_eq!(size, (batches[0].len() + batches[1].len()) as u64);
    assert!(read_all(&log.reader()) == batches[..2].concat());

    log.truncate_to(0).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (0, 0));
    assert!(log.read(0, u64::MAX, 100).unwrap().is_empty());
    assert_eq!(log.latest_epoch(), None);
    drop(log);
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.end_offset(), 0);
    let again = fill(&mut log, 12, 4, 100, 7);
    assert!(read_all(&log.reader()) == again.concat());
}

/// A log of several closed segments plus the active one, with a retention
/// policy; returns the segment bases.
fn retention_log(dir: &Path, retention: Retention) -> (PartitionLog, Vec<u64>) {
    let cfg = LogConfig {
        retention,
        ..config(2_048)
    };
    let mut log = open(dir, cfg);
    fill(&mut log, 30, 4, 100, 1);
    let bases = segment_bases(dir);
    assert!(bases.len() >= 6, "{bases:?}");
    (log, bases)
}

fn segment_size(dir: &Path, base: u64) -> u64 {
    std::fs::metadata(seg_path(dir, base, ".log"))
        .unwrap()
        .len()
}

#[test]
fn retention_by_size_deletes_the_oldest_closed_segments() {
    // Probe the layout, then keep everything but the first two segments.
    let probe = tempfile::tempdir().unwrap();
    let (log, bases) = retention_log(probe.path(), Retention::default());
    let total = log.reader().size_bytes();
    let two = segment_size(probe.path(), bases[0]) + segment_size(probe.path(), bases[1]);
    drop(log);

    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_bytes: Some(total - two),
        max_age: None,
    };
    let (mut log, same) = retention_log(dir.path(), retention);
    assert_eq!(same, bases);
    let end = log.end_offset();
    assert_eq!(
        log.apply_retention(end, SystemTime::now()).unwrap(),
        bases[..2]
    );
    assert_eq!(log.start_offset(), bases[2]);
    assert_eq!(segment_bases(dir.path()), bases[2..]);
    assert!(!seg_path(dir.path(), bases[0], ".index").exists());
    assert_eq!(log.reader().size_bytes(), total - two);
    // Already within the limit: nothing more.
    assert!(
        log.apply_retention(end, SystemTime::now())
            .unwrap()
            .is_empty()
    );
    // What remains reads back; below it is out of range.
    let err = log.read(bases[2] - 1, u64::MAX, 100).unwrap_err();
    assert!(matches!(err, LogError::OffsetOutOfRange { .. }), "{err:?}");
    let remaining = read_all(&log.reader());
    assert_eq!(remaining.len() as u64, total - two);
    // Truncating below the new start is refused; at it, allowed.
    let err = log.truncate_to(bases[1]).unwrap_err();
    assert!(
        matches!(err, LogError::TruncateBelowStart { offset, start } if offset == bases[1] && start == bases[2]),
        "{err:?}"
    );
    assert_eq!(log.end_offset(), end);
    drop(log);

    // The start survives a reopen.
    let cfg = LogConfig {
        retention,
        ..config(2_048)
    };
    let mut log = open(dir.path(), cfg);
    assert_eq!((log.start_offset(), log.end_offset()), (bases[2], end));
    assert!(read_all(&log.reader()) == remaining);
    log.truncate_to(bases[2]).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (bases[2], bases[2]));
}

#[test]
fn retention_never_deletes_the_active_or_uncommitted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_bytes: Some(0),
        max_age: None,
    };
    let (mut log, bases) = retention_log(dir.path(), retention);
    let end = log.end_offset();
    // Committed inside segment 2: segments 0 and 1 only (2 holds offsets
    // at or above it).
    let deleted = log
        .apply_retention(bases[2] + 1, SystemTime::now())
        .unwrap();
    assert_eq!(deleted, bases[..2]);
    assert_eq!(log.start_offset(), bases[2]);
    // Committed exactly at segment 4's base: segments 2 and 3 go.
    let deleted = log.apply_retention(bases[4], SystemTime::now()).unwrap();
    assert_eq!(deleted, bases[2..4]);
    // Everything committed: all closed segments go, the active one stays
    // even though the log is still over the limit.
    let deleted = log.apply_retention(end, SystemTime::now()).unwrap();
    assert_eq!(deleted, bases[4..bases.len() - 1]);
    let last = *bases.last().unwrap();
    assert_eq!(segment_bases(dir.path()), vec![last]);
    assert_eq!((log.start_offset(), log.end_offset()), (last, end));
    assert!(
        log.apply_retention(end, SystemTime::now())
            .unwrap()
            .is_empty()
    );
    // The log still takes appends.
    log.append(&batch_at(end, 1, 4, 100)).unwrap();
    assert_eq!(
        ranges(&log.read(end, u64::MAX, 1).unwrap()),
        vec![(end, end + 4)]
    );
}

#[test]
fn retention_by_age_deletes_old_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_bytes: None,
        max_age: Some(Duration::from_secs(3_600)),
    };
    let (mut log, bases) = retention_log(dir.path(), retention);
    let end = log.end_offset();
    let now = SystemTime::now();
    // Fresh segments are kept; so with a clock before the files were written.
    assert!(log.apply_retention(end, now).unwrap().is_empty());
    assert!(
        log.apply_retention(end, SystemTime::UNIX_EPOCH)
            .unwrap()
            .is_empty()
    );
    let later = now + Duration::from_secs(2 * 3_600);
    // Old, but only what is committed.
    assert_eq!(log.apply_retention(bases[1], later).unwrap(), bases[..1]);
    assert_eq!(log.start_offset(), bases[1]);
    let deleted = log.apply_retention(end, later).unwrap();
    assert_eq!(deleted, bases[1..bases.len() - 1]);
    assert_eq!(segment_bases(dir.path()), vec![*bases.last().unwrap()]);
    assert_eq!(log.start_offset(), *bases.last().unwrap());
    assert_eq!(log.end_offset(), end);
}

#[test]
fn without_retention_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, bases) = retention_log(dir.path(), Retention::default());
    let end = log.end_offset();
    let far = SystemTime::now() + Duration::from_secs(1 << 30);
    assert!(log.apply_retention(end, far).unwrap().is_empty());
    assert_eq!(segment_bases(dir.path()), bases);
}

#[test]
fn every_fsync_policy_appends_and_reads_back() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(1)),
        FsyncPolicy::Interval(Duration::from_secs(3_600)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            fsync,
            ..config(2_048)
        };
        let mut log = open(dir.path(), cfg);
        let batches = fill(&mut log, 12, 4, 100, 1);
        if let Some(job) = log.sync_due() {
            job.run().unwrap();
        }
        log.sync().unwrap();
        assert!(segment_bases(dir.path()).len() >= 2, "{fsync}");
        assert!(read_all(&log.reader()) == batches.concat(), "{fsync}");
        drop(log);
        let (log, report) = PartitionLog::open(dir.path(), cfg).unwrap();
        assert_eq!((report.truncated_bytes, report.indexes_rebuilt), (0, 0));
        assert_eq!(log.config().fsync, fsync);
        assert!(read_all(&log.reader()) == batches.concat(), "{fsync}");
    }
}

#[test]
fn an_interval_log_owes_its_syncs_to_a_job_taken_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        fsync: FsyncPolicy::Interval(Duration::from_secs(3_600)),
        ..config(2_048)
    };
    let mut log = open(dir.path(), cfg);
    assert!(log.take_sync().is_none(), "nothing written, nothing owed");
    let batches = fill(&mut log, 12, 4, 100, 1);
    assert!(segment_bases(dir.path()).len() >= 2);
    assert!(log.sync_due().is_none(), "the interval has not passed");
    let job = log.take_sync().expect("appends and rolls are owed");
    assert!(log.take_sync().is_none(), "taken once");
    // Run elsewhere, as the broker does, while the log goes on appending.
    std::thread::spawn(move || job.run())
        .join()
        .unwrap()
        .unwrap();
    let more = fill(&mut log, 1, 4, 100, 1);
    log.sync_failed();
    assert!(log.take_sync().is_some(), "a failed job is owed again");
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert!(read_all(&log.reader()) == [batches.concat(), more.concat()].concat());
}

#[test]
fn a_second_open_of_the_same_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(2_048));
    fill(&mut log, 2, 2, 10, 1);
    let files = snapshot(dir.path());
    match PartitionLog::open(dir.path(), config(2_048)) {
        Err(LogError::Locked(path)) => assert_eq!(path, dir.path()),
        other => panic!("second open gave {other:?}"),
    }
    assert_eq!(snapshot(dir.path()), files);
    // The first handle still works, and the lock goes with it.
    fill(&mut log, 1, 2, 10, 1);
    drop(log);
    let log = open(dir.path(), config(2_048));
    assert_eq!(log.end_offset(), 6);
}

#[test]
fn concurrent_readers_see_only_whole_committed_batches() {
    const BATCHES: u64 = 300;
    const READERS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(4_096));
    let reader = log.reader();
    let count = |i: u64| (1 + i % 7) as u32;
    let value_len = |i: u64| (i * 37 % 250) as usize;
    let total: u64 = (0..BATCHES).map(|i| u64::from(count(i))).sum();
    // The high-water mark: lags the log end by the last append.
    let committed = AtomicU64::new(0);
    let done = AtomicBool::new(false);

    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for r in 0..READERS {
            let reader: LogReader = reader.clone();
            let (committed, done) = (&committed, &done);
            handles.push(s.spawn(move || {
                let mut next = 0u64;
                let mut reads = 0usize;
                while next < total {
                    let finished = done.load(Ordering::Acquire);
                    let hwm = committed.load(Ordering::Acquire);
                    // Half the reads bounded by the high-water mark, half by
                    // the log end, racing the writer.
                    let upper = if (reads + r).is_multiple_of(2) {
                        hwm
                    } else {
                        u64::MAX
                    };
                    let max = [1, 300, 2_000, 1 << 20][(reads + r) % 4];
                    reads += 1;
                    let bytes = reader.read(next, upper, max).unwrap();
                    let end_after = reader.end_offset();
                    if bytes.is_empty() {
                        assert!(!finished, "reader {r} stuck at {next} of {total}");
                        std::thread::yield_now();
                        continue;
                    }
                    for b in batch::batches(&bytes) {
                        let b = b.expect("partial batch");
                        b.verify().expect("batch with a bad CRC");
                        assert_eq!(b.header.base_offset, next, "offsets not contiguous");
                        assert!(b.header.last_offset() < upper, "record above the bound");
                        assert!(b.header.last_offset() < end_after, "record above the end");
                        for (i, rec) in b.records().enumerate() {
                            let rec = rec.unwrap();
                            assert_eq!(rec.offset, next + i as u64);
                            assert!(rec.value == value_for(rec.offset, rec.value.len()));
                        }
                        next = b.header.next_offset();
                    }
                }
                assert_eq!(next, total);
                reads
            }));
        }

        let mut i = 0;
        while i < BATCHES {
            // Now and then two batches in one append.
            let n = if i % 5 == 0 && i + 1 < BATCHES { 2 } else { 1 };
            let mut bytes = Vec::new();
            let mut base = log.end_offset();
            for j in i..i + n {
                bytes.extend_from_slice(&batch_at(base, 1, count(j), value_len(j)));
                base += u64::from(count(j));
            }
            let info = log.append(&bytes).unwrap();
            committed.store(info.first_offset, Ordering::Release);
            i += n;
        }
        committed.store(log.end_offset(), Ordering::Release);
        done.store(true, Ordering::Release);
        for h in handles {
            assert!(h.join().unwrap() > 0);
        }
    });
    assert_eq!(log.end_offset(), total);
    assert!(segment_bases(dir.path()).len() > 3);
}

#[test]
fn delete_below_removes_closed_segments_wholly_below_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, bases) = retention_log(dir.path(), Retention::default());
    let end = log.end_offset();
    // Inside the third segment: the first two go, the third stays.
    assert_eq!(log.delete_below(bases[2] + 1).unwrap(), bases[..2]);
    assert_eq!(log.start_offset(), bases[2]);
    assert_eq!(segment_bases(dir.path()), bases[2..]);
    // Nothing below the start: nothing to do.
    assert!(log.delete_below(bases[2]).unwrap().is_empty());
    // Never the active segment, whatever the offset.
    let last = *bases.last().unwrap();
    let deleted = log.delete_below(u64::MAX).unwrap();
    assert_eq!(deleted, bases[2..bases.len() - 1]);
    assert_eq!((log.start_offset(), log.end_offset()), (last, end));
    // Appends go on.
    fill(&mut log, 2, 4, 100, 1);
    assert_eq!(log.end_offset(), end + 8);
}

#[test]
fn reset_to_restarts_an_outdated_log_at_a_later_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = retention_log(dir.path(), Retention::default());
    let end = log.end_offset();
    assert!(matches!(
        log.reset_to(end - 1),
        Err(LogError::ResetBelowEnd { .. })
    ));
    assert_eq!(log.end_offset(), end, "a refused reset changes nothing");

    let at = end + 1000;
    log.reset_to(at).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (at, at));
    assert_eq!(log.latest_epoch(), None, "the epochs went with the records");
    assert_eq!(segment_bases(dir.path()), [at]);
    assert!(matches!(
        log.read(0, u64::MAX, 1024),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // It continues at `at`, with the leader's batches, and survives a reopen.
    let batch = batch_at(at, 3, 4, 100);
    log.append(&batch).unwrap();
    drop(log);
    let log = open(dir.path(), config(2_048));
    assert_eq!((log.start_offset(), log.end_offset()), (at, at + 4));
    assert_eq!(log.latest_epoch(), Some(3));
    assert!(read_all(&log.reader()) == batch);
}
