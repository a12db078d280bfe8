//! Append and read throughput of one partition log (100-byte values).
//!
//! `cargo bench -p partition-log` — figures are records per second
//! (criterion's "elements"); see docs/performance.md for the latest run.

use std::{hint::black_box, time::Duration};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use partition_log::{BatchBuilder, FsyncPolicy, LogConfig, PartitionLog, batch};

const VALUE: [u8; 100] = [b'x'; 100];

fn encoded_batch(records: u32) -> Vec<u8> {
    let mut builder = BatchBuilder::with_capacity(0, records as usize * 104);
    for i in 0..records {
        builder.push(i64::from(i), None, &VALUE);
    }
    builder.finish()
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.measurement_time(Duration::from_secs(4));
    let policies = [
        ("never", FsyncPolicy::Never),
        (
            "interval_100ms",
            FsyncPolicy::Interval(Duration::from_millis(100)),
        ),
    ];
    for (policy_name, fsync) in policies {
        for records in [1u32, 100, 1000] {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                fsync,
                ..LogConfig::default()
            };
            let (mut log, _) = PartitionLog::open(dir.path(), config).unwrap();
            let mut bytes = encoded_batch(records);
            group.throughput(Throughput::Elements(u64::from(records)));
            group.bench_function(BenchmarkId::new(policy_name, records), |b| {
                b.iter(|| {
                    batch::stamp(&mut bytes, log.end_offset(), 1);
                    black_box(log.append(&bytes).unwrap());
                })
            });
        }
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    const RECORDS: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config).unwrap();
    let mut bytes = encoded_batch(1000);
    while log.end_offset() < RECORDS {
        batch::stamp(&mut bytes, log.end_offset(), 1);
        log.append(&bytes).unwrap();
    }
    let reader = log.reader();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.bench_function("sequential_1MiB_reads_decoded", |b| {
        b.iter(|| {
            let (mut offset, mut values) = (0, 0usize);
            while offset < RECORDS {
                let chunk = reader.read(offset, RECORDS, 1 << 20).unwrap();
                for batch in batch::batches(&chunk) {
                    let batch = batch.unwrap();
                    for record in batch.records() {
                        values += record.unwrap().value.len();
                    }
                    offset = batch.header.next_offset();
                }
            }
            black_box(values)
        })
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
