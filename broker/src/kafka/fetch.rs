//! Fetch: committed records (below the high-water mark) of each partition
//! asked for, re-encoded as Kafka RecordBatch v2, with the long poll Kafka
//! clients rely on (`max_wait_ms`, `min_bytes`).
//!
//! Invariants: only the leader answers with records (others say
//! NOT_LEADER_OR_FOLLOWER, so clients refresh their metadata); nothing
//! above the HWM is ever served; no fetch sessions are created (session id
//! 0 tells the client to keep sending full requests).

use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::select_all;
use kafka_protocol::{
    ResponseError,
    messages::{
        FetchRequest, FetchResponse,
        fetch_response::{FetchableTopicResponse, PartitionData},
    },
};
use tokio::time::Instant;

use super::{code, records::yak_to_kafka};
use crate::{node::Node, topics::Topic};

/// Longest long poll a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub async fn handle(node: &Node, request: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0).max(1);
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in &request.topics {
        topics.push(node.topic(&wanted.topic.0).await.ok().flatten());
    }
    loop {
        // Watch the HWMs before reading, so a commit between the read and
        // the wait is not missed.
        let mut watches = Vec::new();
        let mut responses = Vec::with_capacity(request.topics.len());
        let mut total = 0usize;
        for (wanted, topic) in request.topics.iter().zip(&topics) {
            let mut partitions = Vec::with_capacity(wanted.partitions.len());
            for p in &wanted.partitions {
                let room = max_bytes.saturating_sub(total);
                let limit = usize::try_from(p.partition_max_bytes)
                    .unwrap_or(0)
                    .min(room);
                let data = read(
                    node,
                    topic.as_deref(),
                    p.partition,
                    p.fetch_offset,
                    limit,
                    &mut watches,
                );
                total += data.records.as_ref().map_or(0, |r| r.len());
                partitions.push(data);
            }
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(wanted.topic.clone())
                    .with_partitions(partitions),
            );
        }
        let now = Instant::now();
        // min_bytes 0 answers at once; otherwise wait until enough bytes
        // are committed or the deadline passes.
        if total >= min_bytes || now >= deadline || watches.is_empty() {
            return FetchResponse::default().with_responses(responses);
        }
        let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        // A HWM moved: read again. The deadline, or a partition closing
        // (its watch ends), answers with what there is.
        if !matches!(
            tokio::time::timeout_at(deadline, changed).await,
            Ok((Ok(()), _, _))
        ) {
            return FetchResponse::default().with_responses(responses);
        }
    }
}

/// One partition's answer; pushes its HWM watch when it has nothing new.
fn read(
    node: &Node,
    topic: Option<&Topic>,
    index: i32,
    offset: i64,
    limit: usize,
    watches: &mut Vec<tokio::sync::watch::Receiver<u64>>,
) -> PartitionData {
    let answer = PartitionData::default().with_partition_index(index);
    let error = |e: ResponseError| answer.clone().with_error_code(code(e));
    let Some(partition) = topic.and_then(|t| t.partitions.get(usize::try_from(index).ok()?)) else {
        return error(ResponseError::UnknownTopicOrPartition);
    };
    if node.gate().epoch().is_none() {
        return error(ResponseError::NotLeaderOrFollower);
    }
    let mut watch = partition.watch_hwm();
    let hwm = *watch.borrow_and_update();
    let reader = partition.reader();
    let start = reader.start_offset();
    let answer = answer
        .with_high_watermark(hwm as i64)
        .with_last_stable_offset(hwm as i64)
        .with_log_start_offset(start as i64);
    let Some(offset) = u64::try_from(offset)
        .ok()
        .filter(|o| (start..=hwm).contains(o))
    else {
        return answer.with_error_code(code(ResponseError::OffsetOutOfRange));
    };
    let mut out = BytesMut::new();
    let mut chunk = Vec::new();
    let mut next = offset;
    // At least one batch goes out however large it is, so a client always
    // makes progress (the log's read returns one); then up to the limit.
    while next < hwm && (out.is_empty() || out.len() < limit) {
        chunk.clear();
        let room = limit.saturating_sub(out.len()).max(1);
        match reader.read_into(next, hwm, room, &mut chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("kafka fetch: reading the log: {e}");
                return answer.with_error_code(code(ResponseError::KafkaStorageError));
            }
        }
        // Kafka's framing adds about a tenth to YAK's for small records.
        out.reserve(chunk.len() + chunk.len() / 8);
        match yak_to_kafka(&chunk, &mut out) {
            Ok(Some(after)) => next = after,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("kafka fetch: converting a stored batch: {e}");
                return answer.with_error_code(code(ResponseError::CorruptMessage));
            }
        }
    }
    if out.is_empty() {
        watches.push(watch);
    }
    answer.with_records(Some(out.freeze()))
}
