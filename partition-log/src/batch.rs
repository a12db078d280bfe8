//! The record batch: YAK's unit of storage *and* of replication.
//!
//! A batch is a fixed 46-byte header followed by its records (the byte layout
//! is documented in `docs/storage.md`). The bytes a leader writes to its log
//! are the bytes it sends to followers and the bytes a follower writes: nothing
//! is re-encoded on the way.
//!
//! Invariants:
//! - The CRC-32C covers every byte after the CRC field, so the two fields a
//!   leader stamps when it appends (base offset and leader epoch) can be set
//!   in place without recomputing it.
//! - Record `i` of a batch has offset delta `i`: a batch holds `record_count`
//!   consecutive offsets starting at its base offset.

use integer_encoding::VarInt;

/// Length of the fixed batch header in bytes.
pub const HEADER_LEN: usize = 46;
/// Bytes before the `batch_length` field's coverage starts (base offset + length).
const LENGTH_PREFIX: usize = 12;
const CRC_END: usize = 20;

/// Value of `producer_id` and `base_sequence` when a batch is not idempotent.
pub const NO_PRODUCER: i64 = -1;
pub const NO_SEQUENCE: i32 = -1;

/// Why a byte string is not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch is truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("batch length field {0} is smaller than the header")]
    BadLength(u32),
    #[error("batch has no records")]
    Empty,
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("malformed record {index}: {reason}")]
    BadRecord { index: u32, reason: &'static str },
}

/// The decoded fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    /// Bytes after the length field: `total_len() - 12`.
    pub batch_length: u32,
    pub leader_epoch: u32,
    pub crc: u32,
    pub attributes: u16,
    pub producer_id: i64,
    pub base_sequence: i32,
    pub record_count: u32,
    /// Milliseconds since the Unix epoch.
    pub base_timestamp: i64,
}

impl BatchHeader {
    /// Parses and sanity-checks the header at the start of `bytes`.
    /// The records and CRC are not checked; see [`Batch::verify`].
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        }
        let header = Self {
            base_offset: u64::from_be_bytes(bytes[0..8].try_into().unwrap()),
            batch_length: u32::from_be_bytes(bytes[8..12].try_into().unwrap()),
            leader_epoch: u32::from_be_bytes(bytes[12..16].try_into().unwrap()),
            crc: u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
            attributes: u16::from_be_bytes(bytes[20..22].try_into().unwrap()),
            producer_id: i64::from_be_bytes(bytes[22..30].try_into().unwrap()),
            base_sequence: i32::from_be_bytes(bytes[30..34].try_into().unwrap()),
            record_count: u32::from_be_bytes(bytes[34..38].try_into().unwrap()),
            base_timestamp: i64::from_be_bytes(bytes[38..46].try_into().unwrap()),
        };
        if (header.batch_length as usize) < HEADER_LEN - LENGTH_PREFIX {
            return Err(BatchError::BadLength(header.batch_length));
        }
        if header.record_count == 0 {
            return Err(BatchError::Empty);
        }
        Ok(header)
    }

    /// Size of the whole batch, header included.
    pub fn total_len(&self) -> usize {
        LENGTH_PREFIX + self.batch_length as usize
    }

    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count) - 1
    }

    /// The offset right after this batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }
}

/// A borrowed, structurally valid batch.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub header: BatchHeader,
    bytes: &'a [u8],
}

impl<'a> Batch<'a> {
    /// Splits the first batch off `bytes`, checking its header and length
    /// (not its CRC). Returns the batch and the remaining bytes.
    pub fn split_first(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), BatchError> {
        let header = BatchHeader::parse(bytes)?;
        let len = header.total_len();
        if bytes.len() < len {
            return Err(BatchError::Truncated {
                needed: len,
                available: bytes.len(),
            });
        }
        let (bytes, rest) = bytes.split_at(len);
        Ok((Self { header, bytes }, rest))
    }

    /// Parses a byte string holding exactly one batch, CRC included.
    pub fn parse_verified(bytes: &'a [u8]) -> Result<Self, BatchError> {
        let (batch, rest) = Self::split_first(bytes)?;
        if !rest.is_empty() {
            return Err(BatchError::BadLength(batch.header.batch_length));
        }
        batch.verify()?;
        Ok(batch)
    }

    /// Checks the CRC-32C of the batch.
    pub fn verify(&self) -> Result<(), BatchError> {
        let computed = crc32c::crc32c(&self.bytes[CRC_END..]);
        if computed != self.header.crc {
            return Err(BatchError::CrcMismatch {
                stored: self.header.crc,
                computed,
            });
        }
        Ok(())
    }

    /// Decodes every record, handing each to `check`, and makes sure the
    /// records fill the batch exactly: what a node does with a batch that
    /// comes from a client rather than from its own builder.
    pub fn check_records<E>(
        &self,
        mut check: impl FnMut(&Record<'a>) -> Result<(), E>,
    ) -> Result<Result<(), E>, BatchError> {
        let mut records = self.records();
        for record in records.by_ref() {
            if let Err(e) = check(&record?) {
                return Ok(Err(e));
            }
        }
        if !records.rest.is_empty() {
            return Err(BatchError::BadRecord {
                index: self.header.record_count,
                reason: "bytes after the last record",
            });
        }
        Ok(Ok(()))
    }

    /// The whole batch as stored.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Iterates the records. Structural errors surface as `Err` items; after
    /// an error the iterator ends.
    pub fn records(&self) -> Records<'a> {
        Records {
            header: self.header,
            rest: &self.bytes[HEADER_LEN..],
            index: 0,
        }
    }
}

/// One record, borrowed from its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Iterator over the records of a [`Batch`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    header: BatchHeader,
    rest: &'a [u8],
    index: u32,
}

impl<'a> Records<'a> {
    fn take<T: VarInt>(&mut self, reason: &'static str) -> Result<T, BatchError> {
        let (value, len) = T::decode_var(self.rest).ok_or(BatchError::BadRecord {
            index: self.index,
            reason,
        })?;
        self.rest = &self.rest[len..];
        Ok(value)
    }

    fn take_bytes(&mut self, len: usize, reason: &'static str) -> Result<&'a [u8], BatchError> {
        if self.rest.len() < len {
            return Err(BatchError::BadRecord {
                index: self.index,
                reason,
            });
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(bytes)
    }

    fn decode(&mut self) -> Result<Record<'a>, BatchError> {
        let offset_delta: u32 = self.take("bad offset delta")?;
        if offset_delta != self.index {
            return Err(BatchError::BadRecord {
                index: self.index,
                reason: "offset delta out of sequence",
            });
        }
        let timestamp_delta: i64 = self.take("bad timestamp delta")?;
        let key_len: i32 = self.take("bad key length")?;
        let key = match key_len {
            -1 => None,
            n if n >= 0 => Some(self.take_bytes(n as usize, "key overruns the batch")?),
            _ => {
                return Err(BatchError::BadRecord {
                    index: self.index,
                    reason: "negative key length",
                });
            }
        };
        let value_len: u32 = self.take("bad value length")?;
        let value = self.take_bytes(value_len as usize, "value overruns the batch")?;
        Ok(Record {
            offset: self.header.base_offset + u64::from(offset_delta),
            timestamp: self.header.base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.header.record_count {
            return None;
        }
        let record = self.decode();
        self.index = match record {
            Ok(_) => self.index + 1,
            Err(_) => self.header.record_count,
        };
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.header.record_count - self.index) as usize;
        (0, Some(left))
    }
}

/// Iterates the whole batches in a buffer of concatenated batches (a read
/// result or a replication payload).
pub fn batches(bytes: &[u8]) -> impl Iterator<Item = Result<Batch<'_>, BatchError>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match Batch::split_first(rest) {
            Ok((batch, tail)) => {
                rest = tail;
                Some(Ok(batch))
            }
            Err(e) => {
                rest = &[];
                Some(Err(e))
            }
        }
    })
}

/// Builds one encoded batch. The base offset and leader epoch are stamped
/// later by whoever appends it (see [`stamp`]).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    record_count: u32,
    base_timestamp: i64,
}

impl BatchBuilder {
    /// Starts a batch whose timestamps are relative to `base_timestamp` (ms).
    pub fn new(base_timestamp: i64) -> Self {
        Self::with_capacity(base_timestamp, 0)
    }

    /// Like [`BatchBuilder::new`] with room for `bytes` of records.
    pub fn with_capacity(base_timestamp: i64, bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN + bytes);
        buf.resize(HEADER_LEN, 0);
        buf[22..30].copy_from_slice(&NO_PRODUCER.to_be_bytes());
        buf[30..34].copy_from_slice(&NO_SEQUENCE.to_be_bytes());
        buf[38..46].copy_from_slice(&base_timestamp.to_be_bytes());
        Self {
            buf,
            record_count: 0,
            base_timestamp,
        }
    }

    /// Marks the batch as written by an idempotent producer.
    pub fn producer(mut self, producer_id: i64, base_sequence: i32) -> Self {
        self.buf[22..30].copy_from_slice(&producer_id.to_be_bytes());
        self.buf[30..34].copy_from_slice(&base_sequence.to_be_bytes());
        self
    }

    /// Appends a record.
    pub fn push(&mut self, timestamp: i64, key: Option<&[u8]>, value: &[u8]) {
        put_var(&mut self.buf, self.record_count);
        put_var(&mut self.buf, timestamp.wrapping_sub(self.base_timestamp));
        match key {
            Some(key) => {
                put_var(&mut self.buf, key.len() as i32);
                self.buf.extend_from_slice(key);
            }
            None => put_var(&mut self.buf, -1i32),
        }
        put_var(&mut self.buf, value.len() as u32);
        self.buf.extend_from_slice(value);
        self.record_count += 1;
    }

    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// Encoded size so far, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Finishes the batch: fills in the length, count and CRC. The base
    /// offset and epoch are zero until [`stamp`]ed.
    pub fn finish(mut self) -> Vec<u8> {
        let batch_length = (self.buf.len() - LENGTH_PREFIX) as u32;
        self.buf[8..12].copy_from_slice(&batch_length.to_be_bytes());
        self.buf[34..38].copy_from_slice(&self.record_count.to_be_bytes());
        let crc = crc32c::crc32c(&self.buf[CRC_END..]);
        self.buf[16..20].copy_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

fn put_var<T: VarInt>(buf: &mut Vec<u8>, value: T) {
    let mut scratch = [0u8; 10];
    let n = value.encode_var(&mut scratch);
    buf.extend_from_slice(&scratch[..n]);
}

/// Sets the base offset and leader epoch of an encoded batch in place. Both
/// lie before the CRC, so the CRC stays valid.
///
/// # Panics
/// If `batch` is shorter than a header; callers pass batches they built.
pub fn stamp(batch: &mut [u8], base_offset: u64, leader_epoch: u32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_records_sees_every_record_and_refuses_trailing_bytes() {
        let mut b = BatchBuilder::new(1_000);
        b.push(1_000, Some(b"k"), b"one");
        b.push(1_001, None, b"two");
        let bytes = b.finish();
        let batch = Batch::parse_verified(&bytes).unwrap();
        let mut seen = Vec::new();
        let outcome = batch.check_records(|r| {
            seen.push(r.value.to_vec());
            Ok::<_, ()>(())
        });
        assert_eq!(outcome, Ok(Ok(())));
        assert_eq!(seen, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(batch.check_records(|_| Err("no")), Ok(Err("no")));

        // A batch whose length (and CRC) cover one byte too many.
        let mut longer = bytes[..HEADER_LEN].to_vec();
        longer.extend_from_slice(&bytes[HEADER_LEN..]);
        longer.push(0);
        let len = (longer.len() - LENGTH_PREFIX) as u32;
        longer[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c::crc32c(&longer[CRC_END..]);
        longer[16..20].copy_from_slice(&crc.to_be_bytes());
        let batch = Batch::parse_verified(&longer).unwrap();
        assert!(matches!(
            batch.check_records(|_| Ok::<_, ()>(())),
            Err(BatchError::BadRecord {
                reason: "bytes after the last record",
                ..
            })
        ));
    }

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000).producer(7, 40);
        b.push(1_000, Some(b"k1"), b"hello");
        b.push(999, None, b"");
        b.push(1_500, Some(b""), b"world");
        let mut bytes = b.finish();
        stamp(&mut bytes, 42, 3);
        bytes
    }

    #[test]
    fn round_trips_header_and_records() {
        let bytes = sample();
        let batch = Batch::parse_verified(&bytes).unwrap();
        let h = batch.header;
        assert_eq!(
            (
                h.base_offset,
                h.leader_epoch,
                h.producer_id,
                h.base_sequence
            ),
            (42, 3, 7, 40)
        );
        assert_eq!(
            (h.record_count, h.last_offset(), h.next_offset()),
            (3, 44, 45)
        );
        assert_eq!(h.total_len(), bytes.len());
        let records: Vec<_> = batch.records().map(Result::unwrap).collect();
        assert_eq!(
            records,
            vec![
                Record {
                    offset: 42,
                    timestamp: 1_000,
                    key: Some(b"k1"),
                    value: b"hello"
                },
                Record {
                    offset: 43,
                    timestamp: 999,
                    key: None,
                    value: b""
                },
                Record {
                    offset: 44,
                    timestamp: 1_500,
                    key: Some(b""),
                    value: b"world"
                },
            ]
        );
    }

    #[test]
    fn stamping_keeps_the_crc_valid() {
        let mut bytes = sample();
        stamp(&mut bytes, u64::MAX - 10, u32::MAX);
        assert!(Batch::parse_verified(&bytes).is_ok());
    }

    #[test]
    fn detects_flipped_bits_after_the_crc() {
        let clean = sample();
        for i in CRC_END..clean.len() {
            let mut bytes = clean.clone();
            bytes[i] ^= 0x10;
            let verified = Batch::split_first(&bytes).and_then(|(b, _)| b.verify());
            assert!(verified.is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn rejects_short_and_empty_input() {
        let bytes = sample();
        assert!(matches!(
            Batch::split_first(&bytes[..10]),
            Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: 10
            })
        ));
        assert!(matches!(
            Batch::split_first(&bytes[..bytes.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let empty = BatchBuilder::new(0).finish();
        assert_eq!(BatchHeader::parse(&empty), Err(BatchError::Empty));
    }

    #[test]
    fn iterates_concatenated_batches() {
        let mut buf = sample();
        let mut second = sample();
        stamp(&mut second, 45, 3);
        buf.extend_from_slice(&second);
        let bases: Vec<_> = batches(&buf)
            .map(|b| b.unwrap().header.base_offset)
            .collect();
        assert_eq!(bases, vec![42, 45]);
        buf.truncate(buf.len() - 3);
        let results: Vec<_> = batches(&buf).collect();
        assert!(results[0].is_ok() && results[1].is_err() && results.len() == 2);
    }
}
