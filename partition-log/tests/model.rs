//! Model-based property test: random sequences of appends, reads,
//! truncations and reopens run against a [`PartitionLog`] with tiny segments
//! and a dense index, and against a plain in-memory model of the batches.
//! After every operation the two must agree.

use std::{ops::Range, path::Path};

use partition_log::{
    BatchBuilder, EpochEntry, FsyncPolicy, LogConfig, LogError, PartitionLog, batch,
};
use proptest::{collection::vec, prelude::*};

/// `(offset, timestamp, key, value)`
type Rec = (u64, i64, Option<Vec<u8>>, Vec<u8>);

#[derive(Debug, Clone)]
struct RecSpec {
    ts_delta: i64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

#[derive(Debug, Clone)]
struct BatchSpec {
    /// Added to the log's latest epoch: epochs never go down.
    epoch_bump: u32,
    base_ts: i64,
    records: Vec<RecSpec>,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<BatchSpec>),
    /// Selectors, mapped onto the log's current range when run.
    Read {
        from: u64,
        upper: u64,
        max_bytes: usize,
    },
    Truncate {
        at: u64,
        mid_batch: bool,
    },
    Reopen,
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    (
        -5_000i64..5_000,
        prop::option::weighted(0.7, vec(any::<u8>(), 0..16)),
        vec(any::<u8>(), 0..=300),
    )
        .prop_map(|(ts_delta, key, value)| RecSpec {
            ts_delta,
            key,
            value,
        })
}

fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    (
        prop_oneof![6 => Just(0u32), 2 => Just(1u32), 1 => Just(3u32)],
        0i64..2_000_000_000_000,
        vec(rec_spec(), 1..=20),
    )
        .prop_map(|(epoch_bump, base_ts, records)| BatchSpec {
            epoch_bump,
            base_ts,
            records,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let max_bytes = prop_oneof![
        0usize..64,
        64usize..2_048,
        2_048usize..20_000,
        Just(1 << 20)
    ];
    prop_oneof![
        4 => vec(batch_spec(), 1..=5).prop_map(Op::Append),
        4 => (any::<u64>(), any::<u64>(), max_bytes)
            .prop_map(|(from, upper, max_bytes)| Op::Read { from, upper, max_bytes }),
        1 => (any::<u64>(), prop::bool::weighted(0.3))
            .prop_map(|(at, mid_batch)| Op::Truncate { at, mid_batch }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
struct ModelBatch {
    base: u64,
    epoch: u32,
    bytes: Vec<u8>,
    records: Vec<Rec>,
}

impl ModelBatch {
    fn next(&self) -> u64 {
        self.base + self.records.len() as u64
    }
    fn last(&self) -> u64 {
        self.next() - 1
    }
}

/// The log as a list of batches from offset 0 (the model never applies
/// retention, so the log start stays 0).
#[derive(Debug, Default)]
struct Model {
    batches: Vec<ModelBatch>,
}

impl Model {
    fn end(&self) -> u64 {
        self.batches.last().map_or(0, ModelBatch::next)
    }

    fn records(&self) -> impl Iterator<Item = &Rec> {
        self.batches.iter().flat_map(|b| &b.records)
    }

    /// The epoch history derived from the batches: each epoch that raised
    /// the maximum, with the base offset of its first batch.
    fn epochs(&self) -> Vec<EpochEntry> {
        let mut out: Vec<EpochEntry> = Vec::new();
        for b in &self.batches {
            if out.last().is_none_or(|l| b.epoch > l.epoch) {
                out.push(EpochEntry {
                    epoch: b.epoch,
                    start_offset: b.base,
                });
            }
        }
        out
    }

    fn latest_epoch(&self) -> Option<u32> {
        self.batches.iter().map(|b| b.epoch).max()
    }

    /// KIP-101 from the batches: the largest epoch `<= epoch` present, and
    /// the first offset written by a later epoch (or the log end).
    fn end_offset_for_epoch(&self, epoch: u32) -> Option<(u32, u64)> {
        let found = self
            .batches
            .iter()
            .map(|b| b.epoch)
            .filter(|&e| e <= epoch)
            .max()?;
        let end = self
            .batches
            .iter()
            .find(|b| b.epoch > found)
            .map_or(self.end(), |b| b.base);
        Some((found, end))
    }

    fn truncate(&mut self, offset: u64) {
        self.batches.retain(|b| b.base < offset);
    }

    /// Index of the batch holding `offset`.
    fn batch_of(&self, offset: u64) -> Option<usize> {
        self.batches
            .iter()
            .position(|b| b.base <= offset && offset < b.next())
    }
}

fn config(segment_bytes: u64, index_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

fn build(spec: &BatchSpec, base: u64, epoch: u32) -> ModelBatch {
    let mut builder = BatchBuilder::new(spec.base_ts);
    let mut records = Vec::new();
    for (i, r) in spec.records.iter().enumerate() {
        let ts = spec.base_ts + r.ts_delta;
        builder.push(ts, r.key.as_deref(), &r.value);
        records.push((base + i as u64, ts, r.key.clone(), r.value.clone()));
    }
    let mut bytes = builder.finish();
    batch::stamp(&mut bytes, base, epoch);
    ModelBatch {
        base,
        epoch,
        bytes,
        records,
    }
}

/// A batch as read: base offset, next offset, bytes.
type ReadBatch = (u64, u64, Vec<u8>);

/// Decodes a read result into its batches and records, checking every CRC.
fn decode(bytes: &[u8]) -> (Vec<ReadBatch>, Vec<Rec>) {
    let mut batches = Vec::new();
    let mut records = Vec::new();
    for b in batch::batches(bytes) {
        let b = b.expect("read returned a malformed batch");
        b.verify().expect("read returned a batch with a bad CRC");
        batches.push((
            b.header.base_offset,
            b.header.next_offset(),
            b.as_bytes().to_vec(),
        ));
        for r in b.records() {
            let r = r.expect("malformed record");
            records.push((
                r.offset,
                r.timestamp,
                r.key.map(<[u8]>::to_vec),
                r.value.to_vec(),
            ));
        }
    }
    (batches, records)
}

/// Base offsets and sizes of the `.log` files, by name.
fn segment_files(dir: &Path) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".log") {
            assert_eq!(stem.len(), 20, "segment name {name}");
            let index = dir.join(format!("{stem}.index"));
            assert!(index.exists(), "{name} has no index");
            out.push((stem.parse().unwrap(), entry.metadata().unwrap().len()));
        }
    }
    out.sort_unstable();
    out
}

/// Checks the segment files against the model: they start at 0, every
/// base is a batch boundary, each holds exactly its batches' bytes, and a
/// segment is over `segment_bytes` only if it holds a single batch.
fn check_segments(dir: &Path, model: &Model, segment_bytes: u64) {
    let files = segment_files(dir);
    assert_eq!(files[0].0, 0, "first segment");
    for (i, &(base, size)) in files.iter().enumerate() {
        let next = files.get(i + 1).map_or(u64::MAX, |f| f.0);
        let held: Vec<&ModelBatch> = model
            .batches
            .iter()
            .filter(|b| b.base >= base && b.base < next)
            .collect();
        if let Some(first) = held.first() {
            assert_eq!(first.base, base, "segment {base} does not start a batch");
        } else {
            assert_eq!(i, files.len() - 1, "empty closed segment {base}");
        }
        let bytes: u64 = held.iter().map(|b| b.bytes.len() as u64).sum();
        assert_eq!(size, bytes, "size of segment {base}");
        assert!(
            size <= segment_bytes || held.len() == 1,
            "segment {base} of {size} bytes holds {} batches",
            held.len()
        );
    }
}

/// Everything the log and the model must agree on, after any operation.
fn check_state(log: &PartitionLog, dir: &Path, model: &Model, segment_bytes: u64) {
    assert_eq!(log.start_offset(), 0);
    assert_eq!(log.end_offset(), model.end(), "end offset");
    assert_eq!(log.latest_epoch(), model.latest_epoch(), "latest epoch");
    assert_eq!(log.epochs(), model.epochs().as_slice(), "epoch history");
    let top = model.latest_epoch().map_or(1, |e| e + 2);
    for epoch in 0..=top {
        assert_eq!(
            log.end_offset_for_epoch(epoch),
            model.end_offset_for_epoch(epoch),
            "end offset for epoch {epoch}"
        );
    }
    let total: u64 = model.batches.iter().map(|b| b.bytes.len() as u64).sum();
    assert_eq!(log.reader().size_bytes(), total, "size in bytes");
    check_segments(dir, model, segment_bytes);

    // Reading everything, a large read at a time, gives back every batch
    // byte for byte.
    let mut from = 0;
    let mut got = Vec::new();
    while from < model.end() {
        let bytes = log.read(from, model.end(), 1 << 20).unwrap();
        assert!(!bytes.is_empty(), "no progress reading at {from}");
        let (batches, _) = decode(&bytes);
        assert_eq!(batches[0].0, from, "read from a boundary");
        from = batches.last().unwrap().1;
        got.extend_from_slice(&bytes);
    }
    let want: Vec<u8> = model.batches.iter().flat_map(|b| b.bytes.clone()).collect();
    assert!(got == want, "reading the whole log gives other bytes");
}

/// One read, checked against the model; then the same read continued
/// until it runs dry, which must have returned exactly the records in
/// `[from, last batch boundary <= upper)`.
fn check_read(log: &PartitionLog, dir: &Path, model: &Model, from: u64, upper: u64, max: usize) {
    let end = model.end();
    let upper_eff = upper.min(end);
    let bytes = log.read(from, upper, max).unwrap();
    let (batches, records) = decode(&bytes);

    // Which batches the model says are readable, starting with the one
    // holding `from`.
    let first = model.batch_of(from).filter(|_| from < upper_eff);
    let readable: Range<usize> = match first {
        Some(k) if model.batches[k].last() < upper_eff => {
            let n = model.batches[k..]
                .iter()
                .take_while(|b| b.last() < upper_eff)
                .count();
            k..k + n
        }
        _ => 0..0,
    };
    if readable.is_empty() {
        assert!(bytes.is_empty(), "read({from}, {upper}) returned data");
    } else {
        assert!(
            !batches.is_empty(),
            "read({from}, {upper}) returned nothing"
        );
        assert!(batches.len() <= readable.len(), "read past the upper bound");
        for (j, (base, _, b)) in batches.iter().enumerate() {
            let want = &model.batches[readable.start + j];
            assert_eq!(*base, want.base, "batch {j} of read({from})");
            assert!(*b == want.bytes, "bytes of batch {base}");
        }
        let first_len = model.batches[readable.start].bytes.len();
        assert!(bytes.len() <= max.max(first_len), "read over max_bytes");
        // It stops early only at max_bytes or at a segment boundary.
        if batches.len() < readable.len() {
            let next = &model.batches[readable.start + batches.len()];
            let segment_base = segment_files(dir).iter().any(|&(b, _)| b == next.base);
            assert!(
                segment_base || bytes.len() + next.bytes.len() > max,
                "read({from}, {upper}, {max}) stopped before batch {} for no reason",
                next.base
            );
        }
    }
    assert!(records.iter().all(|r| r.0 < upper_eff), "record >= upper");
    let records: Vec<Rec> = records.into_iter().filter(|r| r.0 >= from).collect();
    let stop = batches.last().map_or(from, |b| b.1);
    let want: Vec<Rec> = model
        .records()
        .filter(|r| r.0 >= from && r.0 < stop)
        .cloned()
        .collect();
    assert_eq!(records, want, "records of read({from}, {upper})");

    // Continue reading until nothing more comes.
    let mut cursor = from;
    let mut drained = Vec::new();
    loop {
        let bytes = log.read(cursor, upper, max).unwrap();
        if bytes.is_empty() {
            break;
        }
        let (batches, records) = decode(&bytes);
        assert!(batches[0].0 <= cursor, "read({cursor}) skipped records");
        drained.extend(records.into_iter().filter(|r| r.0 >= cursor));
        cursor = drained.last().unwrap().0 + 1;
    }
    let boundary = model
        .batches
        .iter()
        .map(ModelBatch::next)
        .filter(|&n| n <= upper_eff)
        .max()
        .unwrap_or(0);
    let want: Vec<Rec> = model
        .records()
        .filter(|r| r.0 >= from && r.0 < boundary)
        .cloned()
        .collect();
    assert_eq!(drained, want, "draining from {from} below {upper}");
}

fn run(segment_bytes: u64, index_interval: u64, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(segment_bytes, index_interval);
    let (mut log, report) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(report.segments, 1);
    let mut model = Model::default();

    for op in ops {
        match op {
            Op::Append(specs) => {
                let mut epoch = model.latest_epoch().unwrap_or(0);
                let mut base = model.end();
                let mut bytes = Vec::new();
                let mut new = Vec::new();
                for spec in &specs {
                    epoch += spec.epoch_bump;
                    let b = build(spec, base, epoch);
                    base = b.next();
                    bytes.extend_from_slice(&b.bytes);
                    new.push(b);
                }
                let info = log.append(&bytes).unwrap();
                assert_eq!(info.first_offset, model.end());
                assert_eq!(info.next_offset, base);
                model.batches.extend(new);
            }
            Op::Read {
                from,
                upper,
                max_bytes,
            } => {
                let end = model.end();
                let from = from % (end + 1);
                // Mostly an upper bound in [from, end]; sometimes anything up
                // to a little past the end.
                let upper = if upper % 4 == 0 {
                    (upper >> 2) % (end + 3)
                } else {
                    from + (upper >> 2) % (end - from + 1)
                };
                check_read(&log, dir.path(), &model, from, upper, max_bytes);
            }
            Op::Truncate { at, mid_batch } => {
                let inside: Vec<&ModelBatch> = model
                    .batches
                    .iter()
                    .filter(|b| b.records.len() >= 2)
                    .collect();
                if mid_batch && !inside.is_empty() {
                    let b = inside[(at % inside.len() as u64) as usize];
                    let offset = b.base + 1 + (at >> 8) % (b.records.len() as u64 - 1);
                    let err = log.truncate_to(offset).unwrap_err();
                    assert!(
                        matches!(err, LogError::NotBatchBoundary(o) if o == offset),
                        "truncate_to({offset}) mid-batch gave {err:?}"
                    );
                } else {
                    let mut boundaries: Vec<u64> = model.batches.iter().map(|b| b.base).collect();
                    boundaries.push(model.end());
                    boundaries.push(model.end() + 3);
                    let offset = boundaries[(at % boundaries.len() as u64) as usize];
                    log.truncate_to(offset).unwrap();
                    model.truncate(offset);
                }
            }
            Op::Reopen => {
                drop(log);
                let (reopened, report) = PartitionLog::open(dir.path(), cfg).unwrap();
                log = reopened;
                assert_eq!(report.truncated_bytes, 0, "clean reopen cut bytes");
                assert_eq!(report.indexes_rebuilt, 0, "clean reopen rebuilt indexes");
                assert_eq!(report.segments, segment_files(dir.path()).len());
            }
        }
        check_state(&log, dir.path(), &model, segment_bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_agrees_with_model(
        segment_bytes in prop_oneof![Just(2_048u64), Just(4_096), Just(8_192)],
        index_interval in prop_oneof![Just(128u64), Just(256), Just(512)],
        ops in vec(op(), 1..40),
    ) {
        run(segment_bytes, index_interval, ops);
    }
}
