//! The produce service: what every way into the produce path shares —
//! topic resolution and auto-creation, the checks of a client's batch, the
//! write, and the produce metrics — with a typed [`ProduceError`]. The HTTP
//! handlers (`POST /produce`, `POST /produce/batch`, `POST /topics`) and the
//! binary port are thin adapters over it; `http::error` turns its errors
//! into answers, in one place.
//!
//! Invariants: nothing is created or stored unless every check passed (a
//! refused request changes nothing), and every error says whether records
//! may have been written ([`ProduceError::written`]).

use std::{collections::BTreeMap, sync::Arc};

use futures_util::future::join_all;
use partition_log::{
    Batch, LogError,
    batch::{BatchBuilder, NO_PRODUCER, NO_SEQUENCE},
};
use serde::Serialize;
use yak_protocol::{TopicConfig, Written, validate_topic_name};

use crate::{
    config::MAX_KEY_BYTES,
    metrics::Metrics,
    node::{Node, NodeError},
    partition::WriteError,
    store::StoreError,
    topics::Topic,
};

/// Why a produce (or a topic creation) was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("{0}")]
    InvalidTopic(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("topic {topic:?} has partitions 0 to {}; got {partition}", count - 1)]
    InvalidPartition {
        topic: String,
        partition: u32,
        count: u32,
    },
    #[error("{0}")]
    InvalidBatch(String),
    #[error("{0}")]
    KeyTooLarge(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// This node does not lead: the caller redirects to the leader.
    #[error("this node does not lead")]
    NotLeader,
    #[error("cluster metadata unavailable: {0}")]
    Metadata(#[from] StoreError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("storage: {0}")]
    Storage(#[from] LogError),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The writer acknowledged no batch for the request's one batch: a bug,
    /// reported as an error rather than an invented offset.
    #[error("the partition writer answered without a result")]
    NoResult,
}

impl ProduceError {
    /// Whether records may have been stored despite the error: only a
    /// failure in or after the write can leave that open.
    pub fn written(&self) -> Written {
        match self {
            ProduceError::Write(e) if !e.is_definite() => Written::Unknown,
            ProduceError::NoResult => Written::Unknown,
            _ => Written::No,
        }
    }
}

/// A stored client batch: where its records are.
#[derive(Debug, Serialize)]
pub struct Stored<'a> {
    pub topic: &'a str,
    pub partition: u32,
    /// Offset of the batch's first record; the others follow it.
    pub offset: u64,
    pub count: u32,
    /// The leader epoch the batch was acknowledged at.
    pub epoch: u64,
}

/// Checks and stores one client batch (the storage format, built by the
/// client): the whole produce path of `POST /produce/batch` and the binary
/// port.
pub async fn store_batch<'a>(
    node: &Node,
    topic: &'a str,
    partition: u32,
    body: &[u8],
) -> Result<Stored<'a>, ProduceError> {
    validate_topic_name(topic).map_err(ProduceError::InvalidTopic)?;
    // Checked before the copy, so a refused batch costs none.
    let checked = check_batch(node, body)?;
    store_checked(node, topic, partition, body.to_vec(), checked).await
}

/// Stores a batch the node built itself from a client's records (the
/// Kafka listener's, [`CheckedBuilder`]): its records were held to the
/// limits as they were added, so it is stored as it is, without a copy or
/// a second walk.
pub async fn store_built_batch<'a>(
    node: &Node,
    topic: &'a str,
    partition: u32,
    batch: CheckedBatch,
) -> Result<Stored<'a>, ProduceError> {
    validate_topic_name(topic).map_err(ProduceError::InvalidTopic)?;
    store_checked(node, topic, partition, batch.bytes, batch.checked).await
}

async fn store_checked<'a>(
    node: &Node,
    topic: &'a str,
    partition: u32,
    body: Vec<u8>,
    checked: Checked,
) -> Result<Stored<'a>, ProduceError> {
    if node.gate().epoch().is_none() {
        return Err(ProduceError::NotLeader);
    }
    let topics = resolve_topics(node, &[(topic, Some(partition))]).await?;
    let target = topics[topic].partitions[partition as usize].clone();
    let written = target.produce(vec![body]).await?;
    let first = written.first().ok_or(ProduceError::NoResult)?;
    count_produced(node, topic, u64::from(checked.records), checked.value_bytes);
    Ok(Stored {
        topic,
        partition,
        offset: first.base_offset,
        count: checked.records,
        epoch: first.epoch,
    })
}

/// Adds to the produce counters of `topic`: records, and the bytes of
/// their values (the same measure on every path).
pub fn count_produced(node: &Node, topic: &str, records: u64, value_bytes: u64) {
    let labels = Metrics::topic(topic);
    let metrics = node.metrics();
    metrics
        .produced_records
        .get_or_create(&labels)
        .inc_by(records);
    metrics
        .produced_bytes
        .get_or_create(&labels)
        .inc_by(value_bytes);
}

/// What the checks of a client batch found.
#[derive(Debug)]
struct Checked {
    records: u32,
    value_bytes: u64,
}

/// Checks a client's batch before anything is stored: CRC, every record,
/// limits, idempotence fields.
fn check_batch(node: &Node, body: &[u8]) -> Result<Checked, ProduceError> {
    let invalid = |message: String| ProduceError::InvalidBatch(message);
    let batch = Batch::parse_verified(body).map_err(|e| invalid(e.to_string()))?;
    let h = batch.header;
    if h.attributes != 0 {
        return Err(invalid(format!(
            "attributes {:#x} are not supported (no compression, no transactions)",
            h.attributes
        )));
    }
    check_producer(h.producer_id, h.base_sequence, h.record_count)?;
    let limits = RecordLimits::of(node);
    let mut value_bytes = 0;
    let checked = batch
        .check_records(|r| {
            value_bytes += r.value.len() as u64;
            limits.check(r.offset - h.base_offset, r.key, r.value)
        })
        .map_err(|e| invalid(e.to_string()))?;
    checked?;
    Ok(Checked {
        records: h.record_count,
        value_bytes,
    })
}

/// A batch's producer id and base sequence: both -1 (not idempotent), or
/// both non-negative with every record's sequence within `i32`.
fn check_producer(id: i64, seq: i32, records: u32) -> Result<(), ProduceError> {
    let valid = (id, seq) == (NO_PRODUCER, NO_SEQUENCE)
        || (id >= 0 && seq >= 0 && i64::from(seq) + i64::from(records) <= i64::from(i32::MAX));
    if valid {
        return Ok(());
    }
    Err(ProduceError::InvalidBatch(format!(
        "producer id {id} and base sequence {seq}: both are -1, or both are \
         non-negative with the sequences of all records at most {}",
        i32::MAX
    )))
}

/// The node's limits on a client's records, the same on every path that
/// takes batches.
#[derive(Debug, Clone, Copy)]
pub struct RecordLimits {
    pub max_key: usize,
    pub max_payload: usize,
}

impl RecordLimits {
    pub fn of(node: &Node) -> Self {
        Self {
            max_key: MAX_KEY_BYTES,
            max_payload: node.config().max_payload_bytes,
        }
    }

    /// Checks record `at` (its index in the batch).
    fn check(&self, at: u64, key: Option<&[u8]>, value: &[u8]) -> Result<(), ProduceError> {
        if let Some(key) = key.filter(|k| k.len() > self.max_key) {
            return Err(ProduceError::KeyTooLarge(format!(
                "record {at}: key is {} bytes; the limit is {}",
                key.len(),
                self.max_key
            )));
        }
        if value.len() > self.max_payload {
            return Err(ProduceError::PayloadTooLarge(format!(
                "record {at}: payload is {} bytes; the limit is {}",
                value.len(),
                self.max_payload
            )));
        }
        Ok(())
    }
}

/// Builds a client's records (read from another format: the Kafka
/// listener's RecordBatches) into a batch the node vouches for: each record
/// is held to [`RecordLimits`] as it is added and the producer fields when
/// it is finished, so the batch is stored without the CRC check and record
/// walk that a batch built by a client gets ([`check_batch`]).
#[derive(Debug)]
pub struct CheckedBuilder {
    builder: BatchBuilder,
    limits: RecordLimits,
    producer: (i64, i32),
    value_bytes: u64,
}

impl CheckedBuilder {
    /// A batch whose first record's timestamp is `base_timestamp`, with
    /// room for `capacity` bytes of records, from `producer` (id and base
    /// sequence, or `NO_PRODUCER` and `NO_SEQUENCE`).
    pub fn new(
        limits: RecordLimits,
        base_timestamp: i64,
        capacity: usize,
        producer: (i64, i32),
    ) -> Self {
        Self {
            builder: BatchBuilder::with_capacity(base_timestamp, capacity)
                .producer(producer.0, producer.1),
            limits,
            producer,
            value_bytes: 0,
        }
    }

    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(), ProduceError> {
        let at = u64::from(self.builder.record_count());
        self.limits.check(at, key, value)?;
        self.builder.push(timestamp, key, value);
        self.value_bytes += value.len() as u64;
        Ok(())
    }

    pub fn finish(self) -> Result<CheckedBatch, ProduceError> {
        let records = self.builder.record_count();
        if records == 0 {
            return Err(ProduceError::InvalidBatch(
                "a batch holds no record".to_owned(),
            ));
        }
        check_producer(self.producer.0, self.producer.1, records)?;
        Ok(CheckedBatch {
            bytes: self.builder.finish(),
            checked: Checked {
                records,
                value_bytes: self.value_bytes,
            },
        })
    }
}

/// A batch [`CheckedBuilder`] built: what [`store_built_batch`] takes.
#[derive(Debug)]
pub struct CheckedBatch {
    bytes: Vec<u8>,
    checked: Checked,
}

impl CheckedBatch {
    /// The batch as it will be stored (before its offset is stamped).
    #[cfg(test)]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The topics a request names, each with the partition a record asks for
/// (if any), creating missing topics if allowed. Everything is checked
/// (topic known or creatable, partition in range) before anything is
/// created, so a refused request changes nothing.
pub async fn resolve_topics<'a>(
    node: &Node,
    wanted: &[(&'a str, Option<u32>)],
) -> Result<BTreeMap<&'a str, Arc<Topic>>, ProduceError> {
    let mut known = BTreeMap::new();
    let mut missing = Vec::new();
    for &(name, _) in wanted {
        if known.contains_key(name) || missing.contains(&name) {
            continue;
        }
        match node.topic(name).await? {
            Some(topic) => {
                known.insert(name, topic);
            }
            None if node.config().auto_create_topics => missing.push(name),
            None => return Err(ProduceError::UnknownTopic(name.to_owned())),
        }
    }
    let default = node.config().default_partitions;
    check_partitions(wanted, |name| {
        known.get(name).map_or(default, |t| partition_count(t))
    })?;
    for name in missing {
        let (topic, _) = create_topic(node, name, default, TopicConfig::default()).await?;
        known.insert(name, topic);
    }
    // A topic created concurrently with another partition count.
    check_partitions(wanted, |name| partition_count(&known[name]))?;
    Ok(known)
}

fn partition_count(topic: &Topic) -> u32 {
    topic.partitions.len() as u32
}

fn check_partitions(
    wanted: &[(&str, Option<u32>)],
    count: impl Fn(&str) -> u32,
) -> Result<(), ProduceError> {
    for &(topic, partition) in wanted {
        let count = count(topic);
        if let Some(partition) = partition.filter(|&p| p >= count) {
            return Err(ProduceError::InvalidPartition {
                topic: topic.to_owned(),
                partition,
                count,
            });
        }
    }
    Ok(())
}

/// Creates a topic in the cluster metadata and opens it here. An existing
/// topic (created concurrently) is opened as it is; the flag says whether
/// this call created it.
pub async fn create_topic(
    node: &Node,
    name: &str,
    partitions: u32,
    config: TopicConfig,
) -> Result<(Arc<Topic>, bool), ProduceError> {
    let config = config.or(node.config().retention);
    let created = node.store().create_topic(name, partitions, &config).await?;
    let partitions = if created {
        node.activity(
            "topic",
            format!("created topic {name} with {partitions} partitions"),
        );
        partitions
    } else {
        node.store()
            .topics()
            .await?
            .get(name)
            .copied()
            .unwrap_or(partitions)
    };
    let topic = node.open_topic(name, partitions)?;
    if created {
        topic.set_config(config);
        // Store each partition's ISR (every live replica) now, so that the
        // topic is replicated, and shown so, from its first write on. A
        // failure here is retried by the first write.
        let prepared = join_all(topic.partitions.iter().map(|p| p.prepare())).await;
        if let Some(Err(e)) = prepared.into_iter().find(Result::is_err) {
            tracing::warn!(topic = name, "cannot prepare the new partitions yet: {e}");
        }
    }
    Ok((topic, created))
}

/// Raises a topic's partition count to `partitions` (on the leader) and
/// makes the new partitions lead; their ISR is set like a new topic's.
/// Returns the count now stored, which is `partitions` unless the topic
/// already had at least as many.
pub async fn add_partitions(node: &Node, name: &str, partitions: u32) -> Result<u32, ProduceError> {
    let epoch = node.gate().epoch().ok_or(ProduceError::NotLeader)?;
    let stored = node
        .store()
        .grow_topic(epoch, name, partitions)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Fenced { .. } => ProduceError::NotLeader,
            e => ProduceError::Metadata(e),
        })?
        .ok_or_else(|| ProduceError::UnknownTopic(name.to_owned()))?;
    let before = node.topic(name).await?.map_or(0, |t| t.partitions.len());
    let topic = node.open_topic(name, stored)?;
    let prepared = join_all(
        topic.partitions[before.min(topic.partitions.len())..]
            .iter()
            .map(|p| p.prepare()),
    )
    .await;
    if let Some(Err(e)) = prepared.into_iter().find(Result::is_err) {
        tracing::warn!(topic = name, "cannot prepare the new partitions yet: {e}");
    }
    if stored as usize > before {
        node.activity(
            "topic",
            format!("topic {name} grew from {before} to {stored} partitions"),
        );
    }
    Ok(stored)
}
