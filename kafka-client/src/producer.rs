//! The idempotent producer: the nemesis Kafka workload's, whose producers
//! connect through the nodes' front proxies, and `yak bench`'s, which
//! measures the Kafka listener with batches shaped like its binary-port
//! ones. It bootstraps from a list of Kafka addresses, asks any node for
//! Metadata, sends each batch to the partition's leader as Produce v9 with
//! acks=-1, and retries through failovers.
//!
//! - InitProducerId (v4) once, from any node: the producer id every batch
//!   carries, at the epoch the node handed out.
//! - Each partition numbers its records from 0 (Kafka's per-partition
//!   sequences); a batch takes its numbers when it is first sent and keeps
//!   them for every retry: a retry of a batch that was in fact stored is
//!   then answered with its original offset instead of being stored again.
//!   That is the idempotence the workload's duplicate check tests.
//! - On NOT_LEADER_OR_FOLLOWER, any retriable error, a lost connection or a
//!   timeout, it forgets the leader, asks the nodes for Metadata again
//!   (each in turn) and resends the same batch, with backoff, until the
//!   deadline.
//!
//! Invariants: one request at a time per connection (the producer is one
//! task's, so the answer read is the request's; the correlation id is
//! checked anyway); a connection that timed out or failed is dropped, never
//! reused; an error's write outcome is known only when every attempt said
//! nothing was stored ([`SendError::maybe_written`]).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    error::ParseResponseErrorCode,
    indexmap::IndexMap,
    messages::{
        ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
        ProducerId, TopicName,
        produce_request::{PartitionProduceData, TopicProduceData},
    },
    protocol::StrBytes,
    records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
};

use crate::{
    KafkaError,
    connection::{Connection, Dial, leaders},
};

/// The versions spoken (the broker serves them: `docs/kafka.md`).
const PRODUCE_VERSION: i16 = 9;
const INIT_PRODUCER_ID_VERSION: i16 = 4;
/// Largest answer accepted (answers to these requests are small).
const MAX_ANSWER: usize = 1 << 20;
const CLIENT_ID: &str = "yak-kafka-producer";

/// Timeouts and retries.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Give up retrying a batch after this long.
    pub deadline: Duration,
    /// Timeout of one request (and of connecting).
    pub request_timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Connections are made from this address when set (the nemesis front
    /// proxies tell clients from nodes by it).
    pub local_address: Option<IpAddr>,
}

impl KafkaConfig {
    fn dial(&self) -> Dial {
        Dial {
            client_id: CLIENT_ID,
            connect_timeout: self.request_timeout,
            local_address: self.local_address,
            max_answer: MAX_ANSWER,
        }
    }
}

/// A batch that was not acknowledged: the last attempt's error, and
/// whether any attempt may have stored it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct SendError {
    pub error: KafkaError,
    pub maybe_written: bool,
}

/// An idempotent producer to one topic.
pub struct KafkaProducer {
    bootstrap: Vec<SocketAddr>,
    /// Which bootstrap node to ask first next time (each in turn).
    next_bootstrap: usize,
    topic: String,
    config: KafkaConfig,
    producer_id: i64,
    producer_epoch: i16,
    /// Per partition, the sequence of its next record.
    sequences: HashMap<i32, i32>,
    /// Per partition, its leader's address as Metadata last said.
    leaders: HashMap<i32, SocketAddr>,
    /// Open connections to leaders, by address.
    connections: HashMap<SocketAddr, Connection>,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("topic", &self.topic)
            .field("producer_id", &self.producer_id)
            .field("leaders", &self.leaders)
            .finish_non_exhaustive()
    }
}

impl KafkaProducer {
    /// Gets a producer id (InitProducerId) from the first node of
    /// `bootstrap` (Kafka `host:port`s) that answers.
    pub async fn start(
        bootstrap: Vec<SocketAddr>,
        topic: &str,
        config: KafkaConfig,
    ) -> Result<Self, KafkaError> {
        let mut last = None;
        for &addr in &bootstrap {
            let answer = async {
                // Not transactional: the crate's default is an empty
                // transactional id, which YAK refuses.
                let request = InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(-1)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1);
                let answer: InitProducerIdResponse = Connection::open(addr, &config.dial())
                    .await?
                    .call(
                        ApiKey::InitProducerId,
                        INIT_PRODUCER_ID_VERSION,
                        &request,
                        config.request_timeout,
                    )
                    .await?;
                match answer.error_code.err() {
                    Some(error) => Err(KafkaError::Broker {
                        error,
                        message: None,
                    }),
                    None => Ok(answer),
                }
            };
            match answer.await {
                Ok(answer) => {
                    return Ok(Self {
                        next_bootstrap: 0,
                        topic: topic.to_owned(),
                        producer_id: answer.producer_id.0,
                        producer_epoch: answer.producer_epoch,
                        sequences: HashMap::new(),
                        leaders: HashMap::new(),
                        connections: HashMap::new(),
                        bootstrap,
                        config,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| KafkaError::NoLeader {
            topic: topic.to_owned(),
            partition: -1,
            message: "no bootstrap address".to_owned(),
        }))
    }

    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    /// Finds the leaders of `partitions` and connects to them now, so that
    /// the first sends do not pay for it (`yak bench` does this before its
    /// clock starts, as its binary producers hold their connections).
    pub async fn connect(
        &mut self,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Result<(), KafkaError> {
        for partition in partitions {
            let leader = match self.leaders.get(&partition) {
                Some(&leader) => leader,
                None => self.refresh_leader(partition).await?,
            };
            if !self.connections.contains_key(&leader) {
                let connection = Connection::open(leader, &self.config.dial()).await?;
                self.connections.insert(leader, connection);
            }
        }
        Ok(())
    }

    /// Sends `values` to `partition` as one idempotent batch and waits for
    /// its acknowledgement (acks=-1): the offset of its first record.
    /// Retried with the same sequences until the deadline.
    pub async fn send(&mut self, partition: i32, values: &[Bytes]) -> Result<i64, SendError> {
        let sequence = self.sequences.entry(partition).or_insert(0);
        let base_sequence = *sequence;
        // The numbers are this batch's from now on, whatever its outcome: a
        // batch of unknown outcome may be stored under them.
        *sequence = sequence.wrapping_add(values.len() as i32);
        let request = self.produce_request(partition, base_sequence, values);

        let deadline = Instant::now() + self.config.deadline;
        let mut backoff = self.config.min_backoff;
        let mut maybe_written = false;
        loop {
            let error = match self.produce_once(partition, &request).await {
                Ok(offset) => return Ok(offset),
                Err(error) => error,
            };
            maybe_written |= error.maybe_written();
            // Jittered so that producers do not retry in step.
            let wait = backoff.mul_f64(rand::random_range(0.5..1.0));
            if !error.is_retriable() || Instant::now() + wait >= deadline {
                return Err(SendError {
                    error,
                    maybe_written,
                });
            }
            // Not a synchronisation: the backoff between retries.
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    fn produce_request(
        &self,
        partition: i32,
        base_sequence: i32,
        values: &[Bytes],
    ) -> ProduceRequest {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, value)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: base_sequence.wrapping_add(i as i32),
                timestamp: now,
                key: None,
                value: Some(value.clone()),
                headers: IndexMap::new(),
            })
            .collect();
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("a batch of plain records encodes");
        ProduceRequest::default()
            .with_transactional_id(None)
            .with_acks(-1)
            .with_timeout_ms(self.config.request_timeout.as_millis() as i32)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch.freeze())),
                    ]),
            ])
    }

    /// One attempt: to the leader Metadata names (asked for if unknown).
    async fn produce_once(
        &mut self,
        partition: i32,
        request: &ProduceRequest,
    ) -> Result<i64, KafkaError> {
        let leader = match self.leaders.get(&partition) {
            Some(&leader) => leader,
            None => self.refresh_leader(partition).await?,
        };
        let mut connection = match self.connections.remove(&leader) {
            Some(connection) => connection,
            None => Connection::open(leader, &self.config.dial()).await?,
        };
        let answer: Result<ProduceResponse, _> = connection
            .call(
                ApiKey::Produce,
                PRODUCE_VERSION,
                request,
                self.config.request_timeout,
            )
            .await;
        let answer = match answer {
            Ok(answer) => {
                self.connections.insert(leader, connection);
                answer
            }
            Err(e) => {
                // The connection is dropped; the leader may have moved.
                self.leaders.clear();
                return Err(e);
            }
        };
        let found = answer
            .responses
            .iter()
            .filter(|t| t.name.0.as_str() == self.topic)
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == partition);
        let Some(found) = found else {
            return Err(KafkaError::BadAnswer {
                addr: leader,
                message: format!("no answer for partition {partition}"),
            });
        };
        match found.error_code.err() {
            None => Ok(found.base_offset),
            Some(error) => {
                // Whatever the code, ask again who leads before the retry.
                self.leaders.clear();
                Err(KafkaError::Broker {
                    error,
                    message: found.error_message.as_ref().map(|m| m.to_string()),
                })
            }
        }
    }

    /// Asks the bootstrap nodes, each in turn, for the topic's Metadata
    /// until one names a leader for `partition`; remembers every
    /// partition's leader it names.
    async fn refresh_leader(&mut self, partition: i32) -> Result<SocketAddr, KafkaError> {
        let mut last = String::from("no node answered");
        for _ in 0..self.bootstrap.len() {
            let addr = self.bootstrap[self.next_bootstrap % self.bootstrap.len()];
            self.next_bootstrap += 1;
            let dial = self.config.dial();
            match leaders(addr, &dial, &self.topic, self.config.request_timeout).await {
                Ok(named) => self.leaders.extend(named),
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            }
            match self.leaders.get(&partition) {
                Some(&leader) => return Ok(leader),
                None => last = format!("{addr} names no leader"),
            }
        }
        Err(KafkaError::NoLeader {
            topic: self.topic.clone(),
            partition,
            message: last,
        })
    }
}
