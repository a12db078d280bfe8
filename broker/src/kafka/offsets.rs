//! ListOffsets: the earliest offset (-2), the latest (-1: the high-water
//! mark, as Kafka's read-uncommitted clients see only committed records
//! here too) and the first offset at or after a timestamp.
//!
//! Invariant: only the leader answers; a timestamp search reads only
//! committed records.

use kafka_protocol::{
    ResponseError,
    messages::{
        ListOffsetsRequest, ListOffsetsResponse,
        list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
    },
};
use partition_log::LogReader;

use super::code;
use crate::node::Node;

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
/// Bytes read per step of a timestamp search.
const SEARCH_CHUNK: usize = 1024 * 1024;

pub async fn handle(node: &Node, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let topic = node.topic(&wanted.name.0).await.ok().flatten();
        let partitions = wanted
            .partitions
            .iter()
            .map(|p| {
                let answer = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                let Some(partition) = topic
                    .as_ref()
                    .and_then(|t| t.partitions.get(usize::try_from(p.partition_index).ok()?))
                else {
                    return answer.with_error_code(code(ResponseError::UnknownTopicOrPartition));
                };
                if node.gate().epoch().is_none() {
                    return answer.with_error_code(code(ResponseError::NotLeaderOrFollower));
                }
                let reader = partition.reader();
                let hwm = partition.hwm();
                let found = match p.timestamp {
                    EARLIEST => Ok(Some((reader.start_offset(), -1))),
                    LATEST => Ok(Some((hwm, -1))),
                    ts if ts >= 0 => first_at_or_after(reader, hwm, ts),
                    _ => {
                        return answer.with_error_code(code(ResponseError::InvalidRequest));
                    }
                };
                match found {
                    Ok(Some((offset, timestamp))) => {
                        answer.with_offset(offset as i64).with_timestamp(timestamp)
                    }
                    Ok(None) => answer,
                    Err(e) => {
                        tracing::warn!("kafka list offsets: reading the log: {e}");
                        answer.with_error_code(code(ResponseError::KafkaStorageError))
                    }
                }
            })
            .collect();
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(wanted.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// The first committed record with a timestamp at or after `ts`, and its
/// timestamp; `None` if there is none (Kafka then answers offset -1).
/// A linear scan: YAK has no time index yet.
fn first_at_or_after(
    reader: &LogReader,
    hwm: u64,
    ts: i64,
) -> Result<Option<(u64, i64)>, partition_log::LogError> {
    let mut next = reader.start_offset();
    while next < hwm {
        let chunk = reader.read(next, hwm, SEARCH_CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        for batch in partition_log::batch::batches(&chunk) {
            let batch = batch?;
            for record in batch.records() {
                let record = record?;
                if record.offset >= next && record.offset < hwm && record.timestamp >= ts {
                    return Ok(Some((record.offset, record.timestamp)));
                }
            }
            next = batch.header.next_offset();
        }
    }
    Ok(None)
}
