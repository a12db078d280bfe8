//! Crash recovery: a log is written, dropped, its files damaged the way a
//! crash (or a disk) damages them, and reopened. Exactly the whole valid
//! batches must remain, appends must continue at the right offset, and
//! damage recovery cannot safely repair must be an error that changes
//! nothing.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use partition_log::{
    BatchBuilder, EpochEntry, FsyncPolicy, LogConfig, LogError, OpenReport, PartitionLog, batch,
};
use tempfile::TempDir;

const TS: i64 = 1_700_000_000_000;
/// Records per batch in these tests: batch `i` holds offsets `[5i, 5i + 5)`.
const COUNT: u32 = 5;

fn config(segment_bytes: u64, index_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

/// Small segments (about five batches each) and an index entry per batch.
fn small() -> LogConfig {
    config(2_048, 256)
}

/// The `i`-th test batch (offsets `[5i, 5i + 5)`), stamped with `epoch`.
fn nth_batch(i: u64, epoch: u32) -> Vec<u8> {
    let base = i * u64::from(COUNT);
    let mut builder = BatchBuilder::new(TS + base as i64);
    for r in 0..COUNT {
        let offset = base + u64::from(r);
        let value: Vec<u8> = (0..40 + (i * 7 % 50) as usize)
            .map(|j| (offset as usize * 13 + j) as u8)
            .collect();
        let key = format!("k{offset}");
        builder.push(
            TS + offset as i64,
            (r % 2 == 0).then_some(key.as_bytes()),
            &value,
        );
    }
    let mut bytes = builder.finish();
    batch::stamp(&mut bytes, base, epoch);
    bytes
}

/// A log of `n` test batches, written and closed cleanly.
fn write_log(dir: &Path, cfg: LogConfig, n: u64, epoch: impl Fn(u64) -> u32) -> Vec<Vec<u8>> {
    let (mut log, _) = PartitionLog::open(dir, cfg).unwrap();
    let batches: Vec<Vec<u8>> = (0..n).map(|i| nth_batch(i, epoch(i))).collect();
    for b in &batches {
        log.append(b).unwrap();
    }
    batches
}

fn seg_path(dir: &Path, base: u64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}{suffix}"))
}

fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|s| s.parse().unwrap())
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// Every file but the lock, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != ".lock")
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn copy_dir(from: &Path) -> TempDir {
    let to = tempfile::tempdir().unwrap();
    for (name, bytes) in snapshot(from) {
        fs::write(to.path().join(name), bytes).unwrap();
    }
    to
}

/// `(base offset, position, length)` of each batch of a `.log` file.
fn layout(path: &Path) -> Vec<(u64, u64, u64)> {
    let bytes = fs::read(path).unwrap();
    let mut position = 0;
    batch::batches(&bytes)
        .map(|b| {
            let b = b.unwrap();
            let len = b.as_bytes().len() as u64;
            position += len;
            (b.header.base_offset, position - len, len)
        })
        .collect()
}

/// `(relative offset, position)` entries of an `.index` file.
fn index_entries(path: &Path) -> Vec<(u32, u32)> {
    fs::read(path)
        .unwrap()
        .chunks_exact(8)
        .map(|c| {
            (
                u32::from_be_bytes(c[..4].try_into().unwrap()),
                u32::from_be_bytes(c[4..].try_into().unwrap()),
            )
        })
        .collect()
}

fn encode_index(entries: &[(u32, u32)]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|&(r, p)| r.to_be_bytes().into_iter().chain(p.to_be_bytes()))
        .collect()
}

fn read_all(log: &PartitionLog) -> Vec<u8> {
    let mut from = log.start_offset();
    let mut out = Vec::new();
    while from < log.end_offset() {
        let bytes = log.read(from, u64::MAX, 1 << 20).unwrap();
        let mut last = None;
        for b in batch::batches(&bytes) {
            let b = b.unwrap();
            b.verify().unwrap();
            last = Some(b.header.next_offset());
        }
        from = last.expect("no progress");
        out.extend_from_slice(&bytes);
    }
    out
}

/// Reopens a damaged log and checks that exactly the first `keep` batches
/// remain, that `truncated` bytes were cut, and that appends continue at
/// the right offset (also after another, clean, reopen).
fn check_recovered(
    dir: &Path,
    cfg: LogConfig,
    batches: &[Vec<u8>],
    keep: usize,
    truncated: u64,
) -> OpenReport {
    let (mut log, report) = PartitionLog::open(dir, cfg).unwrap();
    assert_eq!(report.truncated_bytes, truncated, "bytes cut");
    assert_eq!(report.segments, segment_bases(dir).len());
    let end = keep as u64 * u64::from(COUNT);
    assert_eq!(log.end_offset(), end, "end offset");
    assert!(read_all(&log) == batches[..keep].concat(), "content");
    let total: usize = batches[..keep].iter().map(Vec::len).sum();
    assert_eq!(log.reader().size_bytes(), total as u64);

    let epoch = log.latest_epoch().unwrap_or(1);
    let next = nth_batch(keep as u64, epoch);
    let mut wrong = [nth_batch(keep as u64 + 1, epoch)].to_vec();
    if keep > 0 {
        wrong.push(nth_batch(keep as u64 - 1, epoch));
    }
    for bad in wrong {
        let got = batch::BatchHeader::parse(&bad).unwrap().base_offset;
        let err = log.append(&bad).unwrap_err();
        assert!(
            matches!(err, LogError::NonContiguous { expected, got: g } if expected == end && g == got),
            "{err:?}"
        );
    }
    let info = log.append(&next).unwrap();
    assert_eq!(
        (info.first_offset, info.next_offset),
        (end, end + u64::from(COUNT))
    );
    drop(log);

    let (log, again) = PartitionLog::open(dir, cfg).unwrap();
    assert_eq!((again.truncated_bytes, again.indexes_rebuilt), (0, 0));
    let mut want = batches[..keep].concat();
    want.extend_from_slice(&next);
    assert!(read_all(&log) == want, "content after the next append");
    report
}

/// A cleanly written multi-segment log to copy and damage.
struct Pristine {
    dir: TempDir,
    batches: Vec<Vec<u8>>,
    bases: Vec<u64>,
}

impl Pristine {
    fn new(cfg: LogConfig, n: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let batches = write_log(dir.path(), cfg, n, |_| 1);
        let bases = segment_bases(dir.path());
        Self {
            dir,
            batches,
            bases,
        }
    }

    fn active(&self) -> u64 {
        *self.bases.last().unwrap()
    }

    fn path(&self, base: u64, suffix: &str) -> PathBuf {
        seg_path(self.dir.path(), base, suffix)
    }

    /// Index (in `batches`) of the batch at `offset`.
    fn batch_no(offset: u64) -> usize {
        (offset / u64::from(COUNT)) as usize
    }
}

/// The smallest log of at least 24 batches with three or more segments and
/// three or more batches in the active one.
fn pristine() -> Pristine {
    (24..64)
        .map(|n| Pristine::new(small(), n))
        .find(|p| p.bases.len() >= 3 && layout(&p.path(p.active(), ".log")).len() >= 3)
        .expect("no suitable layout")
}

/// Flips bit `bit % 8` of the byte at `position`.
fn flip(path: &Path, position: u64, bit: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position as usize] ^= 1 << (bit % 8);
    fs::write(path, bytes).unwrap();
}

fn set_len(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append_bytes(path: &Path, extra: &[u8]) {
    let mut bytes = fs::read(path).unwrap();
    bytes.extend_from_slice(extra);
    fs::write(path, bytes).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn torn_tail_is_cut_to_the_last_whole_batch() {
    let p = pristine();
    let active = p.active();
    let log_path = p.path(active, ".log");
    let index = index_entries(&p.path(active, ".index"));
    let segs = layout(&log_path);
    let (last_base, last_pos, last_len) = *segs.last().unwrap();
    let (prev_base, prev_pos, prev_len) = segs[segs.len() - 2];

    // (cut point in the file, batches kept, bytes kept in the file)
    let mut cuts = vec![];
    for into in [1, 8, 12, 16, 20, 45, 46, 47, last_len / 2, last_len - 1] {
        cuts.push((last_pos + into, Pristine::batch_no(last_base), last_pos));
    }
    cuts.push((last_pos, Pristine::batch_no(last_base), last_pos));
    cuts.push((
        prev_pos + prev_len / 2,
        Pristine::batch_no(prev_base),
        prev_pos,
    ));
    cuts.push((prev_pos + 3, Pristine::batch_no(prev_base), prev_pos));

    for (cut, keep, valid) in cuts {
        let copy = copy_dir(p.dir.path());
        let path = seg_path(copy.path(), active, ".log");
        set_len(&path, cut);
        let report = check_recovered(copy.path(), small(), &p.batches, keep, cut - valid);
        assert!(report.indexes_rebuilt <= 1, "cut at {cut}");
        // The file ends at the last whole batch.
        let after_cut = layout(&path);
        assert_eq!(after_cut.len(), keep - Pristine::batch_no(active) + 1);
    }

    // Recovery leaves the index as the appends had built it, minus what
    // was cut. Checked without the extra append of `check_recovered`.
    for cut in [last_pos + 10, last_pos + 50, prev_pos + 30] {
        let copy = copy_dir(p.dir.path());
        set_len(&seg_path(copy.path(), active, ".log"), cut);
        let (log, _) = PartitionLog::open(copy.path(), small()).unwrap();
        let valid = if cut > last_pos { last_pos } else { prev_pos };
        let want: Vec<(u32, u32)> = index
            .iter()
            .copied()
            .filter(|&(_, pos)| u64::from(pos) < valid)
            .collect();
        assert_eq!(
            index_entries(&seg_path(copy.path(), active, ".index")),
            want
        );
        drop(log);
    }
}

#[test]
fn active_segment_cut_to_nothing_continues_at_its_base() {
    let p = pristine();
    let active = p.active();
    let copy = copy_dir(p.dir.path());
    set_len(&seg_path(copy.path(), active, ".log"), 0);
    let keep = Pristine::batch_no(active);
    check_recovered(copy.path(), small(), &p.batches, keep, 0);
    assert_eq!(
        segment_bases(copy.path()),
        p.bases,
        "appended into the same segment"
    );
    // Cut in the middle of its first batch.
    let copy = copy_dir(p.dir.path());
    set_len(&seg_path(copy.path(), active, ".log"), 30);
    check_recovered(copy.path(), small(), &p.batches, keep, 30);
}

#[test]
fn garbage_after_the_last_batch_is_cut() {
    let p = pristine();
    let active = p.active();
    let index = fs::read(p.path(active, ".index")).unwrap();
    let n = p.batches.len();
    let mut tails = Vec::new();
    for (i, len) in [1usize, 11, 45, 46, 47, 500, 3_000].into_iter().enumerate() {
        tails.push(noise(len, 0x9E37_79B9_7F4A_7C15 + i as u64));
        tails.push(vec![0; len]);
        tails.push(vec![0xFF; len]);
    }
    // A stale copy of a whole, valid batch (wrong offset), and two.
    tails.push(p.batches[n - 1].clone());
    tails.push(p.batches[n - 2..].concat());
    // The next batch, torn.
    let next = nth_batch(n as u64, 1);
    tails.push(next[..next.len() - 1].to_vec());

    for tail in tails {
        let copy = copy_dir(p.dir.path());
        append_bytes(&seg_path(copy.path(), active, ".log"), &tail);
        let report = check_recovered(copy.path(), small(), &p.batches, n, tail.len() as u64);
        assert_eq!(report.indexes_rebuilt, 0, "tail of {} bytes", tail.len());
    }
    // Without the extra append: the index is as it was.
    let copy = copy_dir(p.dir.path());
    append_bytes(&seg_path(copy.path(), active, ".log"), &noise(300, 7));
    drop(PartitionLog::open(copy.path(), small()).unwrap());
    assert_eq!(
        fs::read(seg_path(copy.path(), active, ".index")).unwrap(),
        index
    );
}

#[test]
fn flipped_bit_in_the_last_batch_cuts_it() {
    let p = pristine();
    let active = p.active();
    let (last_base, last_pos, last_len) = *layout(&p.path(active, ".log")).last().unwrap();
    let keep = Pristine::batch_no(last_base);
    // Every header byte but the leader epoch (bytes 12..16, not covered by
    // the CRC and stamped in place), and a spread of payload bytes.
    let mut at: Vec<u64> = (0..12).chain(16..46).collect();
    at.extend((46..last_len).step_by(5));
    at.push(last_len - 1);
    for into in at {
        let copy = copy_dir(p.dir.path());
        flip(
            &seg_path(copy.path(), active, ".log"),
            last_pos + into,
            into,
        );
        check_recovered(copy.path(), small(), &p.batches, keep, last_len);
    }
}

/// A single segment of `n` batches, with index entries only every
/// `interval` bytes.
fn single_segment(n: u64, interval: u64) -> (TempDir, Vec<Vec<u8>>, LogConfig) {
    let cfg = config(1 << 20, interval);
    let dir = tempfile::tempdir().unwrap();
    let batches = write_log(dir.path(), cfg, n, |_| 1);
    (dir, batches, cfg)
}

/// Damage at `position` of the log file must make `open` fail with
/// `Corrupt` at `batch_pos`, and leave every file as it was.
fn assert_corrupt_open(dir: &Path, cfg: LogConfig, path: &Path, batch_pos: u64) {
    let before = snapshot(dir);
    match PartitionLog::open(dir, cfg) {
        Err(LogError::Corrupt {
            path: p, position, ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(position, batch_pos);
        }
        other => panic!("expected Corrupt at {batch_pos}, got {other:?}"),
    }
    assert!(snapshot(dir) == before, "files changed by a failed open");
    // And again: still an error, still nothing changed.
    assert!(matches!(
        PartitionLog::open(dir, cfg),
        Err(LogError::Corrupt { .. })
    ));
    assert!(snapshot(dir) == before);
}

#[test]
fn damage_in_the_middle_of_the_active_segment_is_an_error() {
    // No index entries: the whole active segment is re-validated.
    let (dir, _, cfg) = single_segment(9, 1 << 20);
    let path = seg_path(dir.path(), 0, ".log");
    let segs = layout(&path);
    for victim in [0, 4, 7] {
        let (_, pos, len) = segs[victim];
        // The base offset (checked for contiguity), the CRC and everything
        // it covers; not the length or the epoch (see docs/storage.md).
        let mut at: Vec<u64> = (0..8).chain(16..46).collect();
        at.extend((46..len).step_by(7));
        at.push(len - 1);
        for into in at {
            let copy = copy_dir(dir.path());
            let damaged = seg_path(copy.path(), 0, ".log");
            flip(&damaged, pos + into, into + 3);
            assert_corrupt_open(copy.path(), cfg, &damaged, pos);
        }
    }
}

#[test]
fn damage_at_the_last_index_entry_with_batches_after_it_is_an_error() {
    // Sparse index entries: the scan starts at the last one. The smallest
    // log with two batches after the batch its last index entry points at.
    let (dir, batches, cfg, segs, k) = (10..40)
        .find_map(|n| {
            let (dir, batches, cfg) = single_segment(n, 1_000);
            let segs = layout(&seg_path(dir.path(), 0, ".log"));
            let index = index_entries(&seg_path(dir.path(), 0, ".index"));
            let (_, last_indexed) = *index.last()?;
            let k = segs
                .iter()
                .position(|s| s.1 == u64::from(last_indexed))
                .unwrap();
            (k + 2 < segs.len()).then_some((dir, batches, cfg, segs, k))
        })
        .expect("no suitable layout");
    for victim in [k, k + 1] {
        let (_, pos, len) = segs[victim];
        for into in [3, 17, 21, 35, 46, len / 2, len - 1] {
            let copy = copy_dir(dir.path());
            let damaged = seg_path(copy.path(), 0, ".log");
            flip(&damaged, pos + into, 5);
            assert_corrupt_open(copy.path(), cfg, &damaged, pos);
        }
    }
    // The same damage in the last batch is a torn tail: cut.
    let (_, pos, _) = *segs.last().unwrap();
    let copy = copy_dir(dir.path());
    flip(&seg_path(copy.path(), 0, ".log"), pos + 50, 1);
    let last_len = batches.last().unwrap().len() as u64;
    check_recovered(copy.path(), cfg, &batches, batches.len() - 1, last_len);
}

#[test]
fn damaged_closed_segment_is_an_error() {
    let p = pristine();
    let closed = p.bases[1];
    // Cut short: it no longer ends where the next segment starts.
    let segs = layout(&p.path(closed, ".log"));
    let (_, last_pos, last_len) = *segs.last().unwrap();
    for cut in [last_pos, last_pos + last_len / 2] {
        let copy = copy_dir(p.dir.path());
        let path = seg_path(copy.path(), closed, ".log");
        set_len(&path, cut);
        let before = snapshot(copy.path());
        let err = PartitionLog::open(copy.path(), small()).unwrap_err();
        assert!(
            matches!(&err, LogError::Corrupt { path: bad, .. } if *bad == path),
            "{err:?}"
        );
        assert!(snapshot(copy.path()) == before);
    }
    // A missing segment in the middle: the one before it ends too early.
    let copy = copy_dir(p.dir.path());
    fs::remove_file(seg_path(copy.path(), closed, ".log")).unwrap();
    let err = PartitionLog::open(copy.path(), small()).unwrap_err();
    let before_missing = seg_path(copy.path(), p.bases[0], ".log");
    assert!(
        matches!(&err, LogError::Corrupt { path: bad, .. } if *bad == before_missing),
        "{err:?}"
    );
}

#[test]
fn missing_indexes_are_rebuilt() {
    let p = pristine();
    let n = p.batches.len();
    for base in [p.active(), p.bases[1], p.bases[0]] {
        let copy = copy_dir(p.dir.path());
        let index = seg_path(copy.path(), base, ".index");
        fs::remove_file(&index).unwrap();
        let report = check_recovered(copy.path(), small(), &p.batches, n, 0);
        assert_eq!(report.indexes_rebuilt, 1, "segment {base}");
        if base != p.active() {
            // A closed segment's index is rebuilt exactly as it was.
            assert_eq!(
                fs::read(&index).unwrap(),
                fs::read(p.path(base, ".index")).unwrap()
            );
        }
    }
    // All of them at once; compared without the extra append.
    let copy = copy_dir(p.dir.path());
    for &base in &p.bases {
        fs::remove_file(seg_path(copy.path(), base, ".index")).unwrap();
    }
    let (log, report) = PartitionLog::open(copy.path(), small()).unwrap();
    assert_eq!(report.indexes_rebuilt, p.bases.len());
    assert_eq!(report.truncated_bytes, 0);
    assert!(read_all(&log) == p.batches.concat());
    for &base in &p.bases {
        assert_eq!(
            fs::read(seg_path(copy.path(), base, ".index")).unwrap(),
            fs::read(p.path(base, ".index")).unwrap(),
            "rebuilt index of {base}"
        );
    }
}

#[test]
fn damaged_indexes_are_rebuilt() {
    let p = pristine();
    let n = p.batches.len();
    for base in [p.bases[1], p.active()] {
        let original = fs::read(p.path(base, ".index")).unwrap();
        let entries = index_entries(&p.path(base, ".index"));
        assert!(
            entries.len() >= 2,
            "segment {base} has {} entries",
            entries.len()
        );
        let log_len = fs::metadata(p.path(base, ".log")).unwrap().len() as u32;
        let (rel, pos) = *entries.last().unwrap();
        let but_last = &entries[..entries.len() - 1];
        let with_last = |last: (u32, u32)| {
            let mut e = but_last.to_vec();
            e.push(last);
            encode_index(&e)
        };
        let mut swapped = entries.clone();
        swapped.swap(0, 1);
        let mut odd = original.clone();
        odd.extend_from_slice(&[1, 2, 3]);
        let damaged: Vec<(&str, Vec<u8>)> = vec![
            ("odd size", odd),
            ("one byte short", original[..original.len() - 1].to_vec()),
            ("out of order", encode_index(&swapped)),
            ("points inside a batch", with_last((rel, pos + 1))),
            ("claims the wrong offset", with_last((rel + 1, pos))),
            ("points past the end", with_last((rel + 100, log_len + 10))),
            (
                "points at the last bytes",
                with_last((rel + 100, log_len - 4)),
            ),
        ];
        for (what, bytes) in damaged {
            let copy = copy_dir(p.dir.path());
            let index = seg_path(copy.path(), base, ".index");
            fs::write(&index, &bytes).unwrap();
            let (log, report) = PartitionLog::open(copy.path(), small()).unwrap();
            assert_eq!(report.indexes_rebuilt, 1, "{what} in {base}");
            assert_eq!(report.truncated_bytes, 0, "{what} in {base}");
            assert!(read_all(&log) == p.batches.concat(), "{what} in {base}");
            assert_eq!(fs::read(&index).unwrap(), original, "{what} in {base}");
            drop(log);
            let copy = copy_dir(p.dir.path());
            fs::write(seg_path(copy.path(), base, ".index"), &bytes).unwrap();
            check_recovered(copy.path(), small(), &p.batches, n, 0);
        }
    }
}

#[test]
fn short_indexes_are_completed_without_a_rebuild() {
    // The index is never fsynced: a crash may lose the end of it. What is
    // left is valid; the entries after it are found again.
    let p = pristine();
    for base in [p.bases[0], p.bases[1], p.active()] {
        let original = fs::read(p.path(base, ".index")).unwrap();
        for keep in [0, 1] {
            let copy = copy_dir(p.dir.path());
            let index = seg_path(copy.path(), base, ".index");
            fs::write(&index, &original[..8 * keep]).unwrap();
            let (log, report) = PartitionLog::open(copy.path(), small()).unwrap();
            assert_eq!((report.indexes_rebuilt, report.truncated_bytes), (0, 0));
            assert_eq!(
                fs::read(&index).unwrap(),
                original,
                "index of {base} from {keep} entries"
            );
            assert!(read_all(&log) == p.batches.concat());
        }
    }
}

#[test]
fn orphan_index_files_are_removed() {
    let p = pristine();
    let copy = copy_dir(p.dir.path());
    let orphan = seg_path(copy.path(), 999_999, ".index");
    fs::write(&orphan, [0u8; 16]).unwrap();
    let (log, report) = PartitionLog::open(copy.path(), small()).unwrap();
    assert!(!orphan.exists());
    assert_eq!(report.segments, p.bases.len());
    assert!(read_all(&log) == p.batches.concat());
}

fn checkpoint(dir: &Path) -> String {
    fs::read_to_string(dir.join("leader-epoch-checkpoint")).unwrap()
}

fn entry(epoch: u32, start_offset: u64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

#[test]
fn epochs_beyond_a_cut_tail_are_dropped() {
    // Batches 0-2 in epoch 1, 3-5 in epoch 2, 6-7 in epoch 4.
    let epoch_of = |i: u64| match i {
        0..=2 => 1,
        3..=5 => 2,
        _ => 4,
    };
    let cfg = config(1 << 20, 256);
    let dir = tempfile::tempdir().unwrap();
    let batches = write_log(dir.path(), cfg, 8, epoch_of);
    let segs = layout(&seg_path(dir.path(), 0, ".log"));
    assert_eq!(
        checkpoint(dir.path()),
        "0\n3\n1 0\n2 15\n4 30\n",
        "checkpoint format"
    );

    // Cut inside the first epoch-4 batch: epoch 4 wrote nothing left.
    let copy = copy_dir(dir.path());
    set_len(&seg_path(copy.path(), 0, ".log"), segs[6].1 + 20);
    let (mut log, report) = PartitionLog::open(copy.path(), cfg).unwrap();
    assert_eq!(report.truncated_bytes, 20);
    assert_eq!(log.end_offset(), 30);
    assert_eq!(log.epochs(), &[entry(1, 0), entry(2, 15)]);
    assert_eq!(log.latest_epoch(), Some(2));
    assert_eq!(log.end_offset_for_epoch(4), Some((2, 30)));
    assert_eq!(checkpoint(copy.path()), "0\n2\n1 0\n2 15\n");
    // Epoch 3 is no longer stale.
    log.append(&nth_batch(6, 3)).unwrap();
    assert_eq!(log.epochs(), &[entry(1, 0), entry(2, 15), entry(3, 30)]);
    drop(log);

    // Cut inside the first epoch-2 batch.
    let copy = copy_dir(dir.path());
    set_len(&seg_path(copy.path(), 0, ".log"), segs[3].1 + 60);
    let report = check_recovered(copy.path(), cfg, &batches, 3, 60);
    assert_eq!(report.segments, 1);
    let (log, _) = PartitionLog::open(copy.path(), cfg).unwrap();
    assert_eq!(log.epochs(), &[entry(1, 0)]);

    // An epoch recorded just before a crash, whose batches never made it.
    let copy = copy_dir(dir.path());
    fs::write(
        copy.path().join("leader-epoch-checkpoint"),
        "0\n5\n1 0\n2 15\n4 30\n5 40\n6 52\n",
    )
    .unwrap();
    let (log, report) = PartitionLog::open(copy.path(), cfg).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.end_offset(), 40);
    assert_eq!(log.epochs(), &[entry(1, 0), entry(2, 15), entry(4, 30)]);
    assert_eq!(checkpoint(copy.path()), "0\n3\n1 0\n2 15\n4 30\n");
    drop(log);

    // A damaged checkpoint is an error, not silently forgotten history.
    let copy = copy_dir(dir.path());
    fs::write(copy.path().join("leader-epoch-checkpoint"), "0\n3\n1 0\n").unwrap();
    let err = PartitionLog::open(copy.path(), cfg).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { .. }), "{err:?}");
}

#[test]
fn index_entries_follow_the_interval_rule_on_append_and_rebuild() {
    // Batches of one size L: an entry for the batch at position p when
    // p > 0 and p - (last entry's position, or 0) >= interval.
    let uniform = |i: u64| {
        let base = i * u64::from(COUNT);
        let mut builder = BatchBuilder::new(TS);
        for _ in 0..COUNT {
            builder.push(TS, None, &[0x5A; 50]);
        }
        let mut bytes = builder.finish();
        batch::stamp(&mut bytes, base, 1);
        bytes
    };
    let len = uniform(0).len() as u64;
    assert!((0..10).all(|i| uniform(i).len() as u64 == len));
    let c = COUNT;
    let l = len as u32;
    for (interval, want) in [
        (
            2 * len - 1,
            vec![
                (2 * c, 2 * l),
                (4 * c, 4 * l),
                (6 * c, 6 * l),
                (8 * c, 8 * l),
            ],
        ),
        (
            2 * len,
            vec![
                (2 * c, 2 * l),
                (4 * c, 4 * l),
                (6 * c, 6 * l),
                (8 * c, 8 * l),
            ],
        ),
        (
            2 * len + 1,
            vec![(3 * c, 3 * l), (6 * c, 6 * l), (9 * c, 9 * l)],
        ),
        (1, (1..10).map(|i| (i * c, i * l)).collect()),
    ] {
        let cfg = config(1 << 20, interval);
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
        for i in 0..10 {
            log.append(&uniform(i)).unwrap();
        }
        drop(log);
        let index = seg_path(dir.path(), 0, ".index");
        assert_eq!(index_entries(&index), want, "appended, interval {interval}");
        fs::remove_file(&index).unwrap();
        let (log, report) = PartitionLog::open(dir.path(), cfg).unwrap();
        assert_eq!(report.indexes_rebuilt, 1);
        assert_eq!(index_entries(&index), want, "rebuilt, interval {interval}");
        // Reads through every entry find their batches.
        for offset in (0..50).step_by(3) {
            let bytes = log.read(offset, u64::MAX, 1).unwrap();
            let b = batch::batches(&bytes).next().unwrap().unwrap();
            assert_eq!(b.header.base_offset, offset - offset % u64::from(c));
        }
    }
}
