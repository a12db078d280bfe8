//! Record batches between the two formats: Kafka's RecordBatch v2 (what
//! clients send and read) and YAK's batch (what the log stores,
//! `docs/storage.md`).
//!
//! Invariants:
//! - A Kafka batch becomes exactly one YAK batch with the same records in
//!   the same order, and keeps its producer id and base sequence, so the
//!   partition writer's duplicate detection applies to Kafka producers.
//! - Every batch's header and CRC-32C are checked by the `kafka-protocol`
//!   crate; compressed batches are decoded by it too. YAK stores records
//!   uncompressed.
//! - What YAK cannot store faithfully is refused, never dropped: record
//!   headers, null values, transactional and control batches, message
//!   formats before v2.
//! - Every record is held to the node's key and payload limits as it is
//!   converted (`produce::CheckedBuilder`), so the produce service stores
//!   the batch without checking it again.
//! - A YAK batch becomes one uncompressed Kafka batch with the same base
//!   offset, leader epoch, producer id and base sequence, and the CRC-32C
//!   that clients check.
//!
//! Both directions read and write records in place rather than through a
//! `kafka_protocol::records::Record` per record (that cost about twice as
//! much: `docs/kafka.md`); the crate's encoder and decoder stay the
//! reference, and property tests hold the in-place paths to them byte for
//! byte.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use integer_encoding::VarInt;
use kafka_protocol::records::{
    BatchDecodeInfo, Compression, NO_PRODUCER_EPOCH, RecordBatchDecoder,
};
use partition_log::{
    Batch, BatchError, BatchHeader, Record,
    batch::{NO_PRODUCER, NO_SEQUENCE},
};

use crate::produce::{CheckedBatch, CheckedBuilder, ProduceError, RecordLimits};

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
    /// Valid, but over the node's limits ([`RecordLimits`]).
    #[error(transparent)]
    Refused(#[from] ProduceError),
}

/// The most a YAK record adds to its key and value: four varints
/// (`docs/storage.md`).
const MAX_RECORD_OVERHEAD: usize = 4 * 10;

/// Decodes the record batches of one produce partition into YAK batches,
/// one per Kafka batch, every record held to `limits`.
pub fn kafka_to_yak(
    records: &Bytes,
    limits: RecordLimits,
) -> Result<Vec<CheckedBatch>, RecordsError> {
    match uncompressed_to_yak(records, limits) {
        Some(converted) => converted,
        None => decoded_to_yak(records, limits),
    }
}

/// The common case, every batch uncompressed, without building a
/// `kafka_protocol::records::Record` per record: the crate reads each batch
/// header and checks its CRC-32C, and the records are read in place.
/// `None` hands anything else (a compressed
/// batch, an older message format) to [`decoded_to_yak`], which decides
/// the answer; on valid input both give the same batches (a property test
/// holds them to it).
fn uncompressed_to_yak(
    records: &Bytes,
    limits: RecordLimits,
) -> Option<Result<Vec<CheckedBatch>, RecordsError>> {
    let mut headers = records.clone();
    let infos = match RecordBatchDecoder::decode_batch_info(&mut headers) {
        Ok(infos) => infos,
        Err(e) => return Some(Err(RecordsError::Corrupt(e.to_string()))),
    };
    // Left over: a batch of an older format, which the full decoder refuses.
    if headers.has_remaining() || infos.iter().any(|i| i.compression != Compression::None) {
        return None;
    }
    let mut rest: &[u8] = records;
    let mut out = Vec::with_capacity(infos.len());
    for info in &infos {
        // Framing was checked by `decode_batch_info`: base offset and
        // length, then the batch_length bytes it covers.
        let length = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?) as usize;
        let batch = rest.get(..12 + length)?;
        rest = &rest[batch.len()..];
        out.push(batch_to_yak(info, batch.get(KAFKA_HEADER_LEN..)?, limits));
    }
    Some(out.into_iter().collect())
}

/// Bytes of a RecordBatch v2 header, up to its first record.
const KAFKA_HEADER_LEN: usize = 61;
/// The smallest Kafka record: its length, attributes, timestamp delta,
/// offset delta, key length, value length and header count, a byte each.
const MIN_KAFKA_RECORD: usize = 7;

/// One uncompressed Kafka batch, whose header `info` describes and whose
/// records are `records`, as a YAK batch.
fn batch_to_yak(
    info: &BatchDecodeInfo,
    mut records: &[u8],
    limits: RecordLimits,
) -> Result<CheckedBatch, RecordsError> {
    if info.transactional || info.control {
        return Err(RecordsError::Unsupported(
            "transactional and control batches (YAK has no transactions)",
        ));
    }
    if info.record_count == 0 {
        return Err(RecordsError::Empty);
    }
    let corrupt = |what: &str| RecordsError::Corrupt(format!("record batch: {what}"));
    // The count is the client's word: checked against the bytes before it
    // sizes anything.
    let count = info.record_count as usize;
    if count > records.len() / MIN_KAFKA_RECORD {
        return Err(corrupt("more records counted than its bytes can hold"));
    }
    let capacity = records.len() + MAX_RECORD_OVERHEAD * count;
    let mut builder: Option<CheckedBuilder> = None;
    for _ in 0..info.record_count {
        let size = read_varint(&mut records).and_then(|s| usize::try_from(s).ok());
        let Some(size) = size.filter(|s| *s <= records.len()) else {
            return Err(corrupt("a record runs past the batch"));
        };
        let (mut record, tail) = records.split_at(size);
        records = tail;
        let fields = (|| {
            let _attributes = record.first()?;
            record = &record[1..];
            let timestamp_delta: i64 = read_var(&mut record)?;
            let offset_delta = read_varint(&mut record)?;
            let key = read_bytes(&mut record)?;
            let value = read_bytes(&mut record)?;
            let headers = read_varint(&mut record)?;
            Some((timestamp_delta, offset_delta, key, value, headers))
        })();
        let Some((timestamp_delta, offset_delta, key, value, headers)) = fields else {
            return Err(corrupt("a record's fields run past the record"));
        };
        if headers != 0 {
            return Err(RecordsError::Unsupported("record headers"));
        }
        let value = value.ok_or(RecordsError::Unsupported("null values (tombstones)"))?;
        let timestamp = info.min_timestamp.wrapping_add(timestamp_delta);
        // The first record sets the batch's base timestamp and sequence.
        builder
            .get_or_insert_with(|| {
                let producer = match info.producer_id {
                    id if id < 0 => (NO_PRODUCER, NO_SEQUENCE),
                    id => (id, info.base_sequence.wrapping_add(offset_delta)),
                };
                CheckedBuilder::new(limits, timestamp, capacity, producer)
            })
            .push(timestamp, key, value)?;
    }
    if !records.is_empty() {
        return Err(corrupt("bytes after its last record"));
    }
    Ok(builder.ok_or(RecordsError::Empty)?.finish()?)
}

/// A zigzag varint, Kafka's `VARINT` and `VARLONG`: `integer-encoding`
/// zigzags signed types, as YAK's own records do (`docs/storage.md`).
fn read_var<T: VarInt>(buf: &mut &[u8]) -> Option<T> {
    let (value, len) = T::decode_var(buf)?;
    *buf = &buf[len..];
    Some(value)
}

fn read_varint(buf: &mut &[u8]) -> Option<i32> {
    read_var(buf)
}

/// A length-prefixed field: `None` when it runs past `buf` or its length is
/// below -1; `Some(None)` for a null.
fn read_bytes<'a>(buf: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    match read_varint(buf)? {
        -1 => Some(None),
        len => {
            let len = usize::try_from(len).ok().filter(|l| *l <= buf.len())?;
            let (bytes, tail) = buf.split_at(len);
            *buf = tail;
            Some(Some(bytes))
        }
    }
}

/// Every batch through the crate's full decoder (decompressing as needed).
fn decoded_to_yak(
    records: &Bytes,
    limits: RecordLimits,
) -> Result<Vec<CheckedBatch>, RecordsError> {
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
        let producer = match first.producer_id {
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
        let mut builder = CheckedBuilder::new(limits, first.timestamp, size, producer);
        for record in &set.records {
            if !record.headers.is_empty() {
                return Err(RecordsError::Unsupported("record headers"));
            }
            let value = record
                .value
                .as_deref()
                .ok_or(RecordsError::Unsupported("null values (tombstones)"))?;
            builder.push(record.timestamp, record.key.as_deref(), value)?;
        }
        out.push(builder.finish()?);
    }
    Ok(out)
}

/// Encodes stored YAK batches (a chunk read from the log) as Kafka
/// RecordBatch v2, appending to `out`: one uncompressed Kafka batch per
/// YAK batch, byte for byte what the crate's `RecordBatchEncoder` writes
/// for the same records (a property test holds it to that), written
/// without building a `Record` per record or copying keys and values twice.
/// The first batch may start before the fetch offset; Kafka clients skip
/// such records themselves. Returns the offset after the last batch (`None`
/// for an empty chunk).
pub fn yak_to_kafka(chunk: &[u8], out: &mut BytesMut) -> Result<Option<u64>, BatchError> {
    let mut records = Vec::new();
    let mut after = None;
    for batch in partition_log::batch::batches(chunk) {
        let batch: Batch<'_> = batch?;
        records.clear();
        for record in batch.records() {
            records.push(record?);
        }
        encode_batch(&batch.header, &records, out, batch.as_bytes().len());
        after = Some(batch.header.next_offset());
    }
    Ok(after)
}

/// Writes one Kafka batch of `records` (a YAK batch's, at least one) with
/// `header`'s offsets, epoch and producer; `stored_len` sizes the buffer.
fn encode_batch(
    header: &BatchHeader,
    records: &[Record<'_>],
    out: &mut BytesMut,
    stored_len: usize,
) {
    let min_timestamp = records.iter().map(|r| r.timestamp).min().unwrap_or(0);
    let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(0);
    let idempotent = header.producer_id != NO_PRODUCER;
    // Kafka spends at most 11 bytes more per record (attributes, offset
    // delta, header count, a longer length) and 15 more per batch.
    out.reserve(stored_len + KAFKA_HEADER_LEN + 11 * records.len());
    let start = out.len();
    out.put_i64(header.base_offset as i64);
    out.put_i32(0); // batch length, below
    out.put_i32(header.leader_epoch as i32);
    out.put_i8(2); // magic
    out.put_u32(0); // CRC, below
    let covered = out.len();
    out.put_i16(0); // attributes: uncompressed, creation time, no flags
    out.put_i32(records.len() as i32 - 1);
    out.put_i64(min_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(header.producer_id);
    out.put_i16(if idempotent { 0 } else { NO_PRODUCER_EPOCH });
    out.put_i32(header.base_sequence);
    out.put_i32(records.len() as i32);
    for (index, record) in records.iter().enumerate() {
        let timestamp_delta = record.timestamp.wrapping_sub(min_timestamp);
        let offset_delta = index as i32;
        let key_len = record.key.map_or(-1, |k| k.len() as i32);
        let value_len = record.value.len() as i32;
        let size = 1
            + timestamp_delta.required_space()
            + offset_delta.required_space()
            + key_len.required_space()
            + record.key.map_or(0, <[u8]>::len)
            + value_len.required_space()
            + record.value.len()
            + 1;
        put_var(out, size as i32);
        out.put_i8(0); // attributes
        put_var(out, timestamp_delta);
        put_var(out, offset_delta);
        put_var(out, key_len);
        if let Some(key) = record.key {
            out.put_slice(key);
        }
        put_var(out, value_len);
        out.put_slice(record.value);
        put_var(out, 0i32); // headers
    }
    let length = (out.len() - start - 12) as i32;
    out[start + 8..start + 12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[covered..]);
    out[covered - 4..covered].copy_from_slice(&crc.to_be_bytes());
}

fn put_var(out: &mut BytesMut, value: impl VarInt) {
    let mut buf = [0u8; 10];
    let len = value.encode_var(&mut buf);
    out.put_slice(&buf[..len]);
}

#[cfg(test)]
mod tests {
    use kafka_protocol::{
        indexmap::IndexMap,
        records::{Record as KafkaRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
    };
    use partition_log::batch::BatchBuilder;
    use proptest::prelude::*;

    use super::*;

    /// No limits: the tests of the conversion itself.
    const UNLIMITED: RecordLimits = RecordLimits {
        max_key: usize::MAX,
        max_payload: usize::MAX,
    };

    fn bytes(batches: Vec<CheckedBatch>) -> Vec<Vec<u8>> {
        batches.iter().map(|b| b.as_bytes().to_vec()).collect()
    }

    /// What the crate's encoder writes for a chunk of stored batches, one
    /// `Record` per record: the reference [`yak_to_kafka`] must match.
    fn encoded_by_the_crate(chunk: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        for batch in partition_log::batch::batches(chunk) {
            let batch = batch.unwrap();
            let h = batch.header;
            let idempotent = h.producer_id != NO_PRODUCER;
            let records: Vec<KafkaRecord> = batch
                .records()
                .enumerate()
                .map(|(i, record)| {
                    let record = record.unwrap();
                    KafkaRecord {
                        transactional: false,
                        control: false,
                        delete_horizon: false,
                        partition_leader_epoch: h.leader_epoch as i32,
                        producer_id: h.producer_id,
                        producer_epoch: if idempotent { 0 } else { NO_PRODUCER_EPOCH },
                        timestamp_type: TimestampType::Creation,
                        offset: record.offset as i64,
                        sequence: h.base_sequence.wrapping_add(i as i32),
                        timestamp: record.timestamp,
                        key: record.key.map(Bytes::copy_from_slice),
                        value: Some(Bytes::copy_from_slice(record.value)),
                        headers: IndexMap::new(),
                    }
                })
                .collect();
            let options = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        }
        out
    }

    /// A record's key, value and timestamp.
    type Stored = (Option<Vec<u8>>, Vec<u8>, i64);
    /// A batch's records and its producer id and base sequence, if any.
    type StoredBatch = (Vec<Stored>, Option<(i64, i32)>);

    fn stored_records() -> impl Strategy<Value = Vec<Stored>> {
        let record = (
            prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
            prop::collection::vec(any::<u8>(), 0..300),
            // Wide spreads, but not past what the crate's encoder subtracts.
            prop_oneof![
                -(1i64 << 50)..1 << 50,
                1_700_000_000_000i64..1_700_000_100_000
            ],
        );
        prop::collection::vec(record, 1..40)
    }

    /// Stored YAK batches, stamped as the leader stamps them.
    fn stored_chunk(batches: &[StoredBatch], base: u64, epoch: u32) -> Vec<u8> {
        let mut chunk = Vec::new();
        let mut next = base;
        for (records, producer) in batches {
            let (id, sequence) = producer.unwrap_or((NO_PRODUCER, NO_SEQUENCE));
            let mut builder = BatchBuilder::new(records[0].2).producer(id, sequence);
            for (key, value, timestamp) in records {
                builder.push(*timestamp, key.as_deref(), value);
            }
            let mut batch = builder.finish();
            partition_log::batch::stamp(&mut batch, next, epoch);
            next += records.len() as u64;
            chunk.extend_from_slice(&batch);
        }
        chunk
    }

    /// Record `offset` of a client's batch, as a producer with
    /// `producer_id` (-1: none) numbers it from `sequence`.
    fn client_record(
        offset: i64,
        producer_id: i64,
        sequence: i32,
        timestamp: i64,
        key: Option<Bytes>,
        value: Bytes,
    ) -> KafkaRecord {
        KafkaRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: if producer_id < 0 { -1 } else { 0 },
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: sequence.wrapping_add(offset as i32),
            timestamp,
            key,
            value: Some(value),
            headers: IndexMap::new(),
        }
    }

    /// Kafka batches as a client's encoder writes them, uncompressed.
    fn client_batches(batches: &[StoredBatch], headers: bool) -> Bytes {
        let mut out = BytesMut::new();
        for (records, producer) in batches {
            let (producer_id, sequence) = producer.unwrap_or((-1, -1));
            let records: Vec<KafkaRecord> = records
                .iter()
                .enumerate()
                .map(|(i, (key, value, timestamp))| {
                    let key = key.clone().map(Bytes::from);
                    let mut record = client_record(
                        i as i64,
                        producer_id,
                        sequence,
                        *timestamp,
                        key,
                        Bytes::from(value.clone()),
                    );
                    if headers && i == 1 {
                        record.headers.insert("h".into(), None);
                    }
                    record
                })
                .collect();
            let options = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        }
        out.freeze()
    }

    fn batches() -> impl Strategy<Value = Vec<StoredBatch>> {
        let producer = prop::option::of((0i64..i64::MAX, any::<i32>()));
        prop::collection::vec((stored_records(), producer), 1..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Fetch writes exactly what the crate's encoder would.
        #[test]
        fn fetch_encodes_what_the_crate_encodes(
            batches in batches(),
            base in 0u64..1 << 40,
            epoch in any::<u32>(),
        ) {
            let chunk = stored_chunk(&batches, base, epoch);
            let mut served = BytesMut::new();
            yak_to_kafka(&chunk, &mut served).unwrap();
            prop_assert_eq!(&served[..], &encoded_by_the_crate(&chunk)[..]);
        }

        /// Produce reads uncompressed batches in place into the same YAK
        /// batches, and refuses the same ones, as the crate's full decoder.
        #[test]
        fn produce_reads_what_the_crate_decodes(batches in batches(), headers in any::<bool>()) {
            let sent = client_batches(&batches, headers);
            let fast = uncompressed_to_yak(&sent, UNLIMITED)
                .expect("uncompressed batches take the fast path");
            match (fast, decoded_to_yak(&sent, UNLIMITED)) {
                (Ok(fast), Ok(decoded)) => prop_assert_eq!(bytes(fast), bytes(decoded)),
                (Err(fast), Err(decoded)) => prop_assert_eq!(fast.to_string(), decoded.to_string()),
                (fast, decoded) => prop_assert!(false, "fast {:?}, decoded {:?}", fast, decoded),
            }
        }

        /// A damaged request never panics, and whatever the fast path
        /// stores the crate's decoder would store too.
        #[test]
        fn produce_takes_damaged_batches(
            batches in batches(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..,
            cut in any::<bool>(),
        ) {
            let sent = client_batches(&batches, false);
            let at = at.index(sent.len());
            let damaged = if cut {
                sent.slice(..at)
            } else {
                let mut bytes = sent.to_vec();
                bytes[at] ^= xor;
                Bytes::from(bytes)
            };
            if let Some(Ok(fast)) = uncompressed_to_yak(&damaged, UNLIMITED) {
                let decoded = decoded_to_yak(&damaged, UNLIMITED).ok().map(bytes);
                prop_assert_eq!(Some(bytes(fast)), decoded);
            }
        }
    }

    fn kafka_batch(compression: Compression, producer: Option<(i64, i32)>) -> Bytes {
        let (producer_id, sequence) = producer.unwrap_or((-1, -1));
        let records: Vec<KafkaRecord> = (0..50)
            .map(|i| {
                let key = (i % 2 == 0).then(|| Bytes::from(format!("k{i}")));
                let value = Bytes::from(format!("value number {i} ").repeat(4));
                client_record(i, producer_id, sequence, 1_700_000_000_000 + i, key, value)
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
            let yak = bytes(kafka_to_yak(&sent, UNLIMITED).unwrap());
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
        let sent = kafka_batch(Compression::Gzip, Some((77, 1000)));
        let yak = bytes(kafka_to_yak(&sent, UNLIMITED).unwrap());
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
            kafka_to_yak(&sent.freeze(), UNLIMITED),
            Err(RecordsError::Corrupt(_))
        ));
    }

    /// A record count far above what the bytes can hold (with a CRC that
    /// matches it) is refused before anything is sized by it.
    #[test]
    fn a_lying_record_count_is_refused() {
        let mut sent = BytesMut::from(&kafka_batch(Compression::None, None)[..]);
        sent[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&sent[21..]);
        sent[17..21].copy_from_slice(&crc.to_be_bytes());
        let refused = kafka_to_yak(&sent.freeze(), UNLIMITED);
        assert!(
            matches!(&refused, Err(RecordsError::Corrupt(m)) if m.contains("more records")),
            "{refused:?}"
        );
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
            kafka_to_yak(&buf.freeze(), UNLIMITED),
            Err(RecordsError::Unsupported("record headers"))
        ));
    }

    /// Keys and values over the node's limits are refused while the batch
    /// is converted, on both paths (the batch is not checked again).
    #[test]
    fn holds_records_to_the_limits() {
        // Even records have keys, k0 the first and k10 the first of 3
        // bytes; values are 60 bytes (records 0 to 9) or 64.
        let limits = |max_key, max_payload| RecordLimits {
            max_key,
            max_payload,
        };
        for compression in [Compression::None, Compression::Gzip] {
            let sent = kafka_batch(compression, None);
            let refused = kafka_to_yak(&sent, limits(2, usize::MAX));
            assert!(
                matches!(&refused, Err(RecordsError::Refused(ProduceError::KeyTooLarge(m)))
                    if m.starts_with("record 10: key is 3 bytes")),
                "{compression:?}: {refused:?}"
            );
            let refused = kafka_to_yak(&sent, limits(usize::MAX, 59));
            assert!(
                matches!(&refused, Err(RecordsError::Refused(ProduceError::PayloadTooLarge(m)))
                    if m.starts_with("record 0: payload is")),
                "{compression:?}: {refused:?}"
            );
            let stored = kafka_to_yak(&sent, limits(3, 80)).unwrap();
            assert_eq!(
                Batch::parse_verified(stored[0].as_bytes())
                    .unwrap()
                    .header
                    .record_count,
                50
            );
        }
    }

    /// A producer's sequences must fit in `i32`, as on every produce path.
    #[test]
    fn refuses_sequences_past_i32() {
        let sent = kafka_batch(Compression::None, Some((77, i32::MAX - 10)));
        let refused = kafka_to_yak(&sent, UNLIMITED);
        assert!(
            matches!(&refused, Err(RecordsError::Refused(ProduceError::InvalidBatch(m)))
                if m.contains("base sequence 2147483637")),
            "{refused:?}"
        );
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
            // Produce: one Kafka batch of the same records, in place and
            // through the crate's decoder.
            let sent = Bytes::from(encoded_by_the_crate(&batch).to_vec());
            type Convert = fn(&Bytes, RecordLimits) -> Result<Vec<CheckedBatch>, RecordsError>;
            let produce = |convert: Convert| {
                let started = Instant::now();
                for _ in 0..rounds {
                    convert(&sent, UNLIMITED).unwrap();
                }
                started.elapsed().as_nanos() as f64 / (rounds * records) as f64
            };
            let (in_place, decoded) = (produce(kafka_to_yak), produce(decoded_to_yak));
            let bytes = (rounds / 16 * chunk.len()) as f64;
            let total = (rounds / 16 * 16 * records) as f64;
            println!(
                "{records:>5} records x {value_len:>4} B: fetch {:>7.0} MiB/s ({:>5.2} M records/s, \
                 {:>6.0} ns/batch); copy {:>7.0} MiB/s; produce {in_place:>4.0} ns/record \
                 ({decoded:>4.0} through the crate's decoder)",
                bytes / convert.as_secs_f64() / f64::from(1 << 20),
                total / convert.as_secs_f64() / 1e6,
                convert.as_nanos() as f64 / (rounds / 16 * 16) as f64,
                bytes / copy.as_secs_f64() / f64::from(1 << 20),
            );
        }
    }
}
