//! The fetch consumer: reads one partition through a node's Kafka listener
//! the way a Kafka client does, for `yak bench`'s Kafka consume figure.
//! kcat, the other client the bench has, spends about twice the node's CPU
//! per record, so its figure measures kcat; this one spends about what the
//! node does per record, and so measures the listener.
//!
//! - [`KafkaConsumer::connect`] asks a bootstrap node for Metadata and
//!   connects to the partition's leader (only the leader serves Fetch).
//! - The first poll of a consumer started at [`Start::Earliest`] asks
//!   ListOffsets (v6) where the log starts.
//! - Each poll reads one Fetch (v12, no fetch session) answer, whose record
//!   batches `kafka_protocol::records::RecordBatchDecoder` decodes,
//!   checking each batch's CRC-32C as real clients do; records below the
//!   position (an answer may start mid-batch, Kafka answers with whole
//!   batches), control records and records at or past the poll's end are
//!   not returned; each value becomes a `String`, as the binary consumer
//!   does with text payloads, so the work per record is comparable.
//! - Before decoding an answer, the poll sends the Fetch for the records
//!   after it (when the end is not reached), so the node reads and encodes
//!   them while this side decodes: one request ahead, like yak-client's
//!   consumer. Kafka answers one connection's requests in order, so both
//!   travel on the one connection.
//!
//! Invariants: at most one Fetch is ahead, and it asks from the offset the
//! next poll starts at, or its answer is read and dropped; the position
//! only moves forward past records returned or skipped as below it; any
//! error leaves the consumer's connection unusable (make a new consumer).

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use bytes::Bytes;
use kafka_protocol::{
    error::ParseResponseErrorCode,
    messages::{
        ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
        fetch_request::{FetchPartition, FetchTopic},
        list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    },
    protocol::StrBytes,
    records::RecordBatchDecoder,
};

use crate::{
    KafkaError,
    connection::{Connection, Dial, leaders},
};

/// The versions spoken (the broker serves Fetch 4–12, ListOffsets 1–6:
/// `docs/kafka.md`).
const FETCH_VERSION: i16 = 12;
const LIST_OFFSETS_VERSION: i16 = 6;
const CLIENT_ID: &str = "yak-kafka-consumer";
/// ListOffsets' timestamp for "where the log starts".
const EARLIEST: i64 = -2;
/// Bytes before a RecordBatch's length field counts (base offset, length).
const LOG_OVERHEAD: usize = 12;
/// A RecordBatch v2's fixed header up to its last offset delta.
const LAST_OFFSET_DELTA_END: usize = 27;

/// Timeouts and sizes of the fetches.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Timeout of connecting and of one request, on top of `max_wait`.
    pub request_timeout: Duration,
    /// How long the node may hold a Fetch waiting for records (Kafka's
    /// `fetch.max.wait.ms`).
    pub max_wait: Duration,
    /// Bytes one Fetch answer may carry, and bytes of this partition in it
    /// (the node answers with at least one whole batch even if larger).
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    /// Connections are made from this address when set.
    pub local_address: Option<IpAddr>,
}

impl Default for ConsumerConfig {
    /// About the binary consumer's 10,000 records of 100 bytes per poll.
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_wait: Duration::from_millis(10),
            max_bytes: 1 << 20,
            partition_max_bytes: 1 << 20,
            local_address: None,
        }
    }
}

/// Where a consumer starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Where the log starts (ListOffsets earliest, on the first poll).
    Earliest,
    Offset(i64),
}

/// One record read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<String>,
    pub value: Option<String>,
}

/// A consumer of one partition, on one connection to its leader.
pub struct KafkaConsumer {
    connection: Connection,
    topic: TopicName,
    partition: i32,
    config: ConsumerConfig,
    /// The offset of the next record a poll returns; `None` until the
    /// first poll found where the log starts.
    position: Option<i64>,
    /// The offset the Fetch sent ahead asks from, if one was sent.
    ahead: Option<i64>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("leader", &self.connection.addr())
            .field("topic", &self.topic.0.as_str())
            .field("partition", &self.partition)
            .field("position", &self.position)
            .field("ahead", &self.ahead)
            .finish_non_exhaustive()
    }
}

impl KafkaConsumer {
    /// Asks the node at `bootstrap` which node leads `topic`/`partition`
    /// and connects to that one's Kafka listener.
    pub async fn connect(
        bootstrap: SocketAddr,
        topic: &str,
        partition: i32,
        start: Start,
        config: ConsumerConfig,
    ) -> Result<Self, KafkaError> {
        let dial = Dial {
            client_id: CLIENT_ID,
            connect_timeout: config.request_timeout,
            local_address: config.local_address,
            // An answer of max_bytes, or one batch larger than that, and
            // the answer's own fields.
            max_answer: (config.max_bytes.max(config.partition_max_bytes).max(0) as usize)
                .saturating_mul(2)
                .max(64 << 20),
        };
        let leader = leaders(bootstrap, &dial, topic, config.request_timeout)
            .await?
            .get(&partition)
            .copied()
            .ok_or_else(|| KafkaError::NoLeader {
                topic: topic.to_owned(),
                partition,
                message: format!("{bootstrap} names no leader"),
            })?;
        let connection = Connection::open(leader, &dial).await?;
        Ok(Self {
            connection,
            topic: TopicName(StrBytes::from_string(topic.to_owned())),
            partition,
            config,
            position: match start {
                Start::Earliest => None,
                Start::Offset(offset) => Some(offset),
            },
            ahead: None,
        })
    }

    /// The offset of the next record a poll returns (`None` before the
    /// first poll of a consumer started at [`Start::Earliest`]).
    pub fn position(&self) -> Option<i64> {
        self.position
    }

    /// Reads from the position next: the Fetch sent ahead for another
    /// offset, if any, is read and dropped by the next poll.
    pub fn seek(&mut self, offset: i64) {
        self.position = Some(offset);
    }

    /// The records of one Fetch answer from the position on, those below
    /// `end` only; moves the position past them. Empty when the position
    /// is at `end`, or when the node had nothing within the wait.
    pub async fn poll(&mut self, end: i64) -> Result<Vec<KafkaRecord>, KafkaError> {
        let position = match self.position {
            Some(position) => position,
            None => {
                let earliest = self.earliest().await?;
                self.position = Some(earliest);
                earliest
            }
        };
        let ready = match self.ahead.take() {
            Some(ahead) if ahead == position && position < end => true,
            Some(_) => {
                // Asked for before a seek or for a farther end: its answer
                // comes first, and is not this poll's.
                let _: FetchResponse = self
                    .connection
                    .receive(ApiKey::Fetch, self.fetch_timeout())
                    .await?;
                false
            }
            None => false,
        };
        if position >= end {
            return Ok(Vec::new());
        }
        if !ready {
            self.send_fetch(position).await?;
        }
        let answer: FetchResponse = self
            .connection
            .receive(ApiKey::Fetch, self.fetch_timeout())
            .await?;
        let records = self.partition_records(answer)?;
        let batches = split_batches(&records).map_err(|message| self.bad(message))?;
        let next = batches
            .last()
            .map_or(position, |b| b.last_offset + 1)
            .clamp(position, end);
        if next > position && next < end {
            self.send_fetch(next).await?;
            self.ahead = Some(next);
        }
        // Sized once from the batches' spans: growing moved every record
        // read so far.
        let mut read = Vec::with_capacity((next - position).max(0) as usize);
        for batch in batches {
            let mut bytes = batch.bytes;
            let set = RecordBatchDecoder::decode(&mut bytes)
                .map_err(|e| self.bad(format!("a batch at {}: {e}", batch.base_offset)))?;
            for record in set.records {
                if record.offset < batch.base_offset || record.offset > batch.last_offset {
                    return Err(self.bad(format!(
                        "record {} in the batch of offsets {} to {}",
                        record.offset, batch.base_offset, batch.last_offset
                    )));
                }
                if record.control || record.offset < position || record.offset >= end {
                    continue;
                }
                read.push(KafkaRecord {
                    offset: record.offset,
                    timestamp: record.timestamp,
                    key: record.key.as_deref().map(text),
                    value: record.value.as_deref().map(text),
                });
            }
        }
        self.position = Some(next);
        Ok(read)
    }

    /// Where the log starts (ListOffsets earliest). Only with no Fetch
    /// ahead (its answer would come first).
    async fn earliest(&mut self) -> Result<i64, KafkaError> {
        debug_assert_eq!(self.connection.pending(), 0);
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(self.topic.clone())
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(self.partition)
                            .with_timestamp(EARLIEST),
                    ]),
            ]);
        let answer: ListOffsetsResponse = self
            .connection
            .call(
                ApiKey::ListOffsets,
                LIST_OFFSETS_VERSION,
                &request,
                self.config.request_timeout,
            )
            .await?;
        let found = answer
            .topics
            .iter()
            .filter(|t| t.name == self.topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == self.partition)
            .ok_or_else(|| self.bad(format!("no offset for partition {}", self.partition)))?;
        match found.error_code.err() {
            None => Ok(found.offset),
            Some(error) => Err(KafkaError::Broker {
                error,
                message: None,
            }),
        }
    }

    async fn send_fetch(&mut self, offset: i64) -> Result<(), KafkaError> {
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(self.config.max_wait.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(self.config.max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(self.topic.clone())
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(self.partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(self.config.partition_max_bytes),
                    ]),
            ]);
        self.connection
            .send(
                ApiKey::Fetch,
                FETCH_VERSION,
                &request,
                self.config.request_timeout,
            )
            .await
    }

    /// The answer's records of this partition (empty if it had none), or
    /// the error it answered with.
    fn partition_records(&self, answer: FetchResponse) -> Result<Bytes, KafkaError> {
        if let Some(error) = answer.error_code.err() {
            return Err(KafkaError::Broker {
                error,
                message: None,
            });
        }
        let found = answer
            .responses
            .into_iter()
            .filter(|t| t.topic == self.topic)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == self.partition)
            .ok_or_else(|| self.bad(format!("no answer for partition {}", self.partition)))?;
        match found.error_code.err() {
            None => Ok(found.records.unwrap_or_default()),
            Some(error) => Err(KafkaError::Broker {
                error,
                message: None,
            }),
        }
    }

    fn fetch_timeout(&self) -> Duration {
        self.config.request_timeout + self.config.max_wait
    }

    fn bad(&self, message: String) -> KafkaError {
        KafkaError::BadAnswer {
            addr: self.connection.addr(),
            message,
        }
    }
}

/// One whole RecordBatch of an answer, not yet decoded.
#[derive(Debug)]
struct Batch {
    bytes: Bytes,
    base_offset: i64,
    last_offset: i64,
}

/// Splits a Fetch answer's records into whole batches. Kafka may end an
/// answer with part of a batch (cut at the size limit): that part is left
/// for the next fetch, as Kafka clients do. Only the fields framing needs
/// are read here, at their fixed places (base offset, length, last offset
/// delta), so the next Fetch can go out before the decoding; the decoder
/// reads them again, and records outside the span are refused.
fn split_batches(records: &Bytes) -> Result<Vec<Batch>, String> {
    let be_i64 = |at: usize| i64::from_be_bytes(records[at..at + 8].try_into().expect("8 bytes"));
    let be_i32 = |at: usize| i32::from_be_bytes(records[at..at + 4].try_into().expect("4 bytes"));
    let mut batches = Vec::new();
    let mut at = 0;
    while records.len() - at >= LAST_OFFSET_DELTA_END {
        let base_offset = be_i64(at);
        let length = be_i32(at + 8);
        let Some(size) = usize::try_from(length)
            .ok()
            .filter(|&l| l >= LAST_OFFSET_DELTA_END - LOG_OVERHEAD)
            .map(|l| l + LOG_OVERHEAD)
        else {
            return Err(format!("a batch at {base_offset} of length {length}"));
        };
        if records.len() - at < size {
            break;
        }
        let last_delta = be_i32(at + LAST_OFFSET_DELTA_END - 4);
        if last_delta < 0 {
            return Err(format!(
                "a batch at {base_offset} ending {last_delta} before it"
            ));
        }
        batches.push(Batch {
            bytes: records.slice(at..at + size),
            base_offset,
            last_offset: base_offset + i64::from(last_delta),
        });
        at += size;
    }
    if batches.is_empty() && !records.is_empty() {
        // Kafka answers with at least one whole batch whatever the limits.
        return Err(format!(
            "{} bytes of records without a whole batch",
            records.len()
        ));
    }
    Ok(batches)
}

/// Bytes as a string, invalid UTF-8 replaced (`str::from_utf8` checks
/// ASCII a word at a time, as yak-client's consumer does for text).
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::{
        indexmap::IndexMap,
        records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
    };

    use super::*;

    fn batch(base: i64, count: i64) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i,
                // The encoder starts a new batch where offset minus
                // sequence changes.
                sequence: i as i32,
                timestamp: 1,
                key: None,
                value: Some(Bytes::from(format!("value {}", base + i))),
                headers: IndexMap::new(),
            })
            .collect();
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        out.freeze()
    }

    #[test]
    fn batches_are_split_and_a_cut_one_is_left_for_the_next_fetch() {
        let (first, second) = (batch(10, 3), batch(13, 2));
        let mut records = BytesMut::new();
        records.extend_from_slice(&first);
        records.extend_from_slice(&second);
        let whole = records.clone().freeze();
        let spans = split_batches(&whole).unwrap();
        let spans: Vec<_> = spans
            .iter()
            .map(|b| (b.base_offset, b.last_offset, b.bytes.len()))
            .collect();
        assert_eq!(spans, [(10, 12, first.len()), (13, 14, second.len())]);

        let cut = whole.slice(..first.len() + second.len() - 1);
        let spans = split_batches(&cut).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].last_offset, 12);

        assert!(split_batches(&first.slice(..first.len() - 1)).is_err());
        assert!(split_batches(&Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(text(b"plain"), "plain");
        assert_eq!(text(b"a\xffb"), "a\u{fffd}b");
    }
}
