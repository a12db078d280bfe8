//! Produce: each partition's record batch is converted to a YAK batch,
//! every record held to the node's limits on the way, and stored through
//! the produce service ([`store_built_batch`]), the path of
//! `POST /produce/batch` and the binary port, without a copy or a second
//! check.
//!
//! Invariant: whatever `acks` says, a partition's answer comes only after
//! YAK's own rule acknowledged it (replicated to the ISR, HWM committed):
//! acks=0 and acks=1 are served as acks=all. With acks=0 the client just
//! gets no answer.

use futures_util::future::join_all;
use kafka_protocol::{
    ResponseError,
    messages::{
        ProduceRequest, ProduceResponse,
        produce_response::{PartitionProduceResponse, TopicProduceResponse},
    },
    protocol::StrBytes,
};

use super::{
    code,
    records::{RecordsError, kafka_to_yak},
};
use crate::{
    node::Node,
    partition::WriteError,
    produce::{ProduceError, RecordLimits, store_built_batch},
};

pub async fn handle(node: &Node, request: ProduceRequest) -> ProduceResponse {
    let transactional = request.transactional_id.is_some();
    // Every partition at once: each waits for its replication round, and
    // those of different partitions overlap (a partition's own batches
    // stay in order).
    let topics = request.topic_data.into_iter().map(|topic| async move {
        let name = topic.name.0.to_string();
        let partitions = join_all(topic.partition_data.into_iter().map(|data| {
            let name = &name;
            async move {
                let answer = PartitionProduceResponse::default().with_index(data.index);
                let stored = match (transactional, data.records) {
                    (true, _) => Err(Refusal::Records(RecordsError::Unsupported(
                        "transactions (YAK has none)",
                    ))),
                    (false, None) => Err(Refusal::Records(RecordsError::Empty)),
                    (false, Some(records)) => store(node, name, data.index, &records).await,
                };
                match stored {
                    Ok(base_offset) => answer.with_base_offset(base_offset),
                    Err(refusal) => answer
                        .with_base_offset(-1)
                        .with_error_code(refusal.code())
                        .with_error_message(Some(StrBytes::from_string(refusal.to_string()))),
                }
            }
        }))
        .await;
        TopicProduceResponse::default()
            .with_name(topic.name)
            .with_partition_responses(partitions)
    });
    ProduceResponse::default().with_responses(join_all(topics).await)
}

/// Why a partition's records were not stored.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Records(#[from] RecordsError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error("partition {0} does not exist")]
    NegativePartition(i32),
}

impl Refusal {
    fn code(&self) -> i16 {
        code(match self {
            Refusal::Records(RecordsError::Corrupt(_)) => ResponseError::CorruptMessage,
            Refusal::Records(RecordsError::Refused(e)) | Refusal::Produce(e) => match e {
                ProduceError::NotLeader
                | ProduceError::Write(WriteError::NotLeader | WriteError::Fenced { .. }) => {
                    ResponseError::NotLeaderOrFollower
                }
                ProduceError::InvalidTopic(_) => ResponseError::InvalidTopicException,
                ProduceError::UnknownTopic(_) | ProduceError::InvalidPartition { .. } => {
                    ResponseError::UnknownTopicOrPartition
                }
                ProduceError::InvalidBatch(_) => ResponseError::CorruptMessage,
                ProduceError::KeyTooLarge(_) | ProduceError::PayloadTooLarge(_) => {
                    ResponseError::MessageTooLarge
                }
                ProduceError::Write(WriteError::SequenceConflict) => {
                    ResponseError::OutOfOrderSequenceNumber
                }
                ProduceError::Write(WriteError::NotEnoughReplicas {
                    appended: false, ..
                }) => ResponseError::NotEnoughReplicas,
                ProduceError::Write(WriteError::NotEnoughReplicas { .. }) => {
                    ResponseError::NotEnoughReplicasAfterAppend
                }
                ProduceError::Storage(_) => ResponseError::KafkaStorageError,
                // Retryable on the client's side: with idempotence the
                // retry is deduplicated.
                _ => ResponseError::RequestTimedOut,
            },
            Refusal::Records(_) => ResponseError::InvalidRecord,
            Refusal::NegativePartition(_) => ResponseError::UnknownTopicOrPartition,
        })
    }
}

/// Stores one partition's record batch; its base offset. Produce v3+
/// carries exactly one batch per partition (Kafka's own rule): several
/// would be stored apart, other writes between them, and the answer's one
/// base offset would be wrong for all but the first.
async fn store(
    node: &Node,
    topic: &str,
    partition: i32,
    records: &bytes::Bytes,
) -> Result<i64, Refusal> {
    let partition = u32::try_from(partition).map_err(|_| Refusal::NegativePartition(partition))?;
    let mut batches = kafka_to_yak(records, RecordLimits::of(node))?;
    if batches.len() > 1 {
        return Err(Refusal::Records(RecordsError::Unsupported(
            "more than one record batch for a partition in one request",
        )));
    }
    let batch = batches.pop().ok_or(Refusal::Records(RecordsError::Empty))?;
    let stored = store_built_batch(node, topic, partition, batch).await?;
    Ok(stored.offset as i64)
}
