//! Record batches between the two formats: Kafka's RecordBatch v2 (what
//! clients send and read) and YAK's batch (what the log stores,
//! `docs/storage.md`).
//!
//! Invariants:
//! - A Kafka batch becomes exactly one YAK batch with the same records in
//!   the same order, and keeps its producer id and base sequence, so the
//!   partition writer's duplicate detection applies to Kafka producers.
//! - Compressed input is decoded (the `kafka-protocol` crate checks the
//!   CRC-32C and decompresses); YAK stores records uncompressed.
//! - What YAK cannot store faithfully is refused, never dropped: record
//!   headers, null values, transactional and control batches, message
//!   formats before v2.
//! - A YAK batch becomes one uncompressed Kafka batch with the same base
//!   offset, leader epoch, producer id and base sequence; the encoder
//!   computes the CRC-32C that clients check.

use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    indexmap::IndexMap,
    records::{
        Compression, NO_PRODUCER_EPOCH, Record, RecordBatchDecoder, RecordBatchEncoder,
        RecordEncodeOptions, TimestampType,
    },
};
use partition_log::{
    Batch, BatchError,
    batch::{BatchBuilder, NO_PRODUCER, NO_SEQUENCE},
};

/// Why a client's record batch cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// Not a valid RecordBatch v2: bad framing, CRC, or a codec this build
    /// cannot decode.
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// Valid Kafka, but something YAK's format has no place for.
    #[error("unsupported record: {0}")]
    Unsupported(&'static str),
    #[error("empty record batch")]
    Empty,
}

/// The most a YAK record adds to its key and value: four varints
/// (`docs/storage.md`).
const MAX_RECORD_OVERHEAD: usize = 4 * 10;

/// Decodes the record batches of one produce partition into YAK batches,
/// one per Kafka batch.
pub fn kafka_to_yak(records: &Bytes) -> Result<Vec<Vec<u8>>, RecordsError> {
    let mut buf = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|e| RecordsError::Corrupt(e.to_string()))?;
    let mut out = Vec::with_capacity(sets.len());
    for set in sets {
        let Some(first) = set.records.first() else {
            return Err(RecordsError::Empty);
        };
        if first.transactional || first.control {
            return Err(RecordsError::Unsupported(
                "transactional and control batches (YAK has no transactions)",
            ));
        }
        let (producer_id, base_sequence) = match first.producer_id {
            id if id < 0 => (NO_PRODUCER, NO_SEQUENCE),
            id => (id, first.sequence),
        };
        // Sized once: growing a batch of a megabyte copies it again and again.
        let size = set
            .records
            .iter()
            .map(|r| r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len))
            .sum::<usize>()
            + set.records.len() * MAX_RECORD_OVERHEAD;
        let mut builder =
            BatchBuilder::with_capacity(first.timestamp, size).producer(producer_id, base_sequence);
        for record in &set.records {
            if !record.headers.is_empty() {
                return Err(RecordsError::Unsupported("record headers"));
            }
            let value = record
                .value
                .as_deref()
                .ok_or(RecordsError::Unsupported("null values (tombstones)"))?;
            builder.push(record.timestamp, record.key.as_deref(), value);
        }
        out.push(builder.finish());
    }
    Ok(out)
}

/// Encodes stored YAK batches (a chunk read from the log) as Kafka
/// RecordBatch v2, appending to `out`. The first batch may start before
/// the fetch offset; Kafka clients skip such records themselves.
pub fn yak_to_kafka(chunk: &[u8], out: &mut BytesMut) -> Result<(), BatchError> {
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    let mut records = Vec::new();
    for batch in partition_log::batch::batches(chunk) {
        let batch: Batch<'_> = batch?;
        let h = batch.header;
        let idempotent = h.producer_id != NO_PRODUCER;
        records.clear();
        for (i, record) in batch.records().enumerate() {
            let record = record?;
            records.push(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: h.leader_epoch as i32,
                producer_id: h.producer_id,
                producer_epoch: if idempotent { 0 } else { NO_PRODUCER_EPOCH },
                timestamp_type: TimestampType::Creation,
                offset: record.offset as i64,
                // The wire carries only the base sequence (-1 when not
                // idempotent); the encoder derives it from the records'
                // sequences, which must advance with the offsets or it
                // splits the batch.
                sequence: h.base_sequence.wrapping_add(i as i32),
                timestamp: record.timestamp,
                key: record.key.map(Bytes::copy_from_slice),
                value: Some(Bytes::copy_from_slice(record.value)),
                headers: IndexMap::new(),
            });
        }
        // One YAK batch is one Kafka batch: the encoder starts a new
        // batch per call, so offsets and sequences stay as stored.
        RecordBatchEncoder::encode(out, &records, &options).map_err(|_| BatchError::BadRecord {
            index: 0,
            reason: "cannot encode as a Kafka record batch",
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka_batch(compression: Compression, producer: Option<(i64, i32)>) -> Bytes {
        let (producer_id, sequence) = producer.unwrap_or((-1, -1));
        let records: Vec<Record> = (0..50)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch: if producer_id < 0 { -1 } else { 0 },
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: sequence.wrapping_add(i as i32),
                timestamp: 1_700_000_000_000 + i,
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value number {i} ").repeat(4))),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.freeze()
    }

    /// Kafka → YAK → Kafka keeps every record, key, value and timestamp,
    /// for every codec a client may send.
    #[test]
    fn round_trips_every_codec() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Snappy,
            Compression::Zstd,
        ] {
            let sent = kafka_batch(compression, None);
            let yak = kafka_to_yak(&sent).unwrap();
            assert_eq!(yak.len(), 1);
            let mut stored = yak[0].clone();
            partition_log::batch::stamp(&mut stored, 100, 3);
            Batch::parse_verified(&stored).unwrap();

            let mut served = BytesMut::new();
            yak_to_kafka(&stored, &mut served).unwrap();
            let mut served = served.freeze();
            // decode verifies the CRC-32C, as clients do.
            let back = RecordBatchDecoder::decode(&mut served).unwrap();
            assert_eq!(back.compression, Compression::None);
            let mut original = sent.clone();
            let original = RecordBatchDecoder::decode(&mut original).unwrap();
            assert_eq!(
                back.records.len(),
                original.records.len(),
                "{compression:?}"
            );
            for (b, o) in back.records.iter().zip(&original.records) {
                assert_eq!(b.offset, o.offset + 100);
                assert_eq!(
                    (&b.key, &b.value, b.timestamp),
                    (&o.key, &o.value, o.timestamp)
                );
                assert_eq!(b.partition_leader_epoch, 3);
            }
        }
    }

    #[test]
    fn keeps_producer_id_and_sequence() {
        let yak = kafka_to_yak(&kafka_batch(Compression::Gzip, Some((77, 1000)))).unwrap();
        let batch = Batch::parse_verified(&yak[0]).unwrap();
        assert_eq!(batch.header.producer_id, 77);
        assert_eq!(batch.header.base_sequence, 1000);
        let mut served = BytesMut::new();
        yak_to_kafka(&yak[0], &mut served).unwrap();
        let back = RecordBatchDecoder::decode(&mut served.freeze()).unwrap();
        assert_eq!(back.records[5].producer_id, 77);
        assert_eq!(back.records[5].sequence, 1005);
    }

    #[test]
    fn a_flipped_byte_fails_the_crc() {
        let mut sent = BytesMut::from(&kafka_batch(Compression::None, None)[..]);
        let last = sent.len() - 1;
        sent[last] ^= 0x40;
        assert!(matches!(
            kafka_to_yak(&sent.freeze()),
            Err(RecordsError::Corrupt(_))
        ));
    }

    #[test]
    fn refuses_what_yak_cannot_store() {
        let mut record = RecordBatchDecoder::decode(&mut kafka_batch(Compression::None, None))
            .unwrap()
            .records
            .remove(0);
        record.headers.insert("h".into(), None);
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            [&record],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        assert!(matches!(
            kafka_to_yak(&buf.freeze()),
            Err(RecordsError::Unsupported("record headers"))
        ));
    }

    /// The cost of converting on fetch, the figure behind the on-disk
    /// format decision in `docs/kafka.md`. A timed benchmark, not a check:
    /// `cargo test -p broker --release --lib kafka::records::tests::
    /// conversion_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a benchmark: run it with --release --ignored --nocapture"]
    fn conversion_cost() {
        use std::time::Instant;
        for (records, value_len) in [(1usize, 100usize), (100, 100), (100, 1000), (1000, 100)] {
            let mut builder = BatchBuilder::new(1_700_000_000_000);
            let value = vec![b'x'; value_len];
            for i in 0..records {
                builder.push(
                    1_700_000_000_000 + i as i64,
                    Some(format!("key-{i}").as_bytes()),
                    &value,
                );
            }
            let mut batch = builder.finish();
            partition_log::batch::stamp(&mut batch, 0, 1);
            // About 64 MiB of stored batches per run.
            let rounds = (64 << 20) / batch.len();
            let chunk = batch.repeat(16);
            let started = Instant::now();
            let mut out = BytesMut::with_capacity(chunk.len() * 2);
            for _ in 0..rounds / 16 {
                out.clear();
                yak_to_kafka(&chunk, &mut out).unwrap();
            }
            let convert = started.elapsed();
            let started = Instant::now();
            for _ in 0..rounds / 16 {
                out.clear();
                out.extend_from_slice(&chunk);
            }
            let copy = started.elapsed();
            let bytes = (rounds / 16 * chunk.len()) as f64;
            let total = (rounds / 16 * 16 * records) as f64;
            println!(
                "{records:>5} records x {value_len:>4} B: convert {:>7.0} MiB/s ({:>5.2} M records/s, \
                 {:>6.0} ns/batch); copy {:>7.0} MiB/s",
                bytes / convert.as_secs_f64() / f64::from(1 << 20),
                total / convert.as_secs_f64() / 1e6,
                convert.as_nanos() as f64 / (rounds / 16 * 16) as f64,
                bytes / copy.as_secs_f64() / f64::from(1 << 20),
            );
        }
    }
}
