//! `POST /produce/batch?topic=..&partition=..`: the binary produce path.
//!
//! The body is one record batch in the storage format (`docs/storage.md`),
//! built by the client (yak-client's `Producer::send_records`). The leader
//! checks it completely — CRC, every record, limits, idempotence fields —
//! stamps its offsets and epoch in place and stores and replicates the
//! bytes it received: no JSON and no re-encoding per record. Nothing is
//! stored unless the whole batch is valid.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use partition_log::{
    Batch,
    batch::{NO_PRODUCER, NO_SEQUENCE},
};
use serde::{Deserialize, Serialize};

use super::{
    error::ApiError,
    produce::{create_topic, invalid_partition, path_and_query},
};
use crate::{
    config::MAX_KEY_BYTES,
    metrics::Metrics,
    node::Node,
    topics::{TopicConfig, validate_topic_name},
};

/// The media type of a binary batch body.
pub const CONTENT_TYPE: &str = "application/vnd.yak.batch";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    topic: String,
    partition: u32,
}

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

pub async fn produce_batch(
    node: web::Data<Node>,
    req: HttpRequest,
    query: web::Query<BatchQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let BatchQuery { topic, partition } = query.into_inner();
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(CONTENT_TYPE) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a binary batch is sent as {CONTENT_TYPE}, not {content_type:?}"),
        )
        .with("written", "no"));
    }
    let stored = store_batch(&node, &topic, partition, &body, &path_and_query(&req)).await?;
    Ok(HttpResponse::Ok().json(stored))
}

/// Checks and stores one client batch: the produce path that the HTTP
/// handler above and the binary port ([`crate::tcp`]) share. `path` is
/// what a `not_leader` redirect repeats on the leader.
pub async fn store_batch<'a>(
    node: &Node,
    topic: &'a str,
    partition: u32,
    body: &[u8],
    path: &str,
) -> Result<Stored<'a>, ApiError> {
    let not_written = |e: ApiError| e.with("written", "no");
    validate_topic_name(topic)
        .map_err(|m| not_written(ApiError::bad_request("invalid_topic", m)))?;
    let count = check_batch(node, body).map_err(not_written)?;
    if node.gate().epoch().is_none() {
        return Err(ApiError::not_leader(node.leader(), path));
    }
    let handle = match node.topic(topic).await.map_err(|e| not_written(e.into()))? {
        Some(handle) => handle,
        None if node.config().auto_create_topics => {
            let default = node.config().default_partitions;
            if partition >= default {
                return Err(not_written(invalid_partition(topic, partition, default)));
            }
            create_topic(node, topic, default, TopicConfig::default())
                .await
                .map_err(not_written)?
                .0
        }
        None => return Err(not_written(ApiError::unknown_topic(topic))),
    };
    let partitions = handle.partitions.len() as u32;
    let target = handle
        .partitions
        .get(partition as usize)
        .ok_or_else(|| not_written(invalid_partition(topic, partition, partitions)))?;
    let written = target.produce(vec![body.to_vec()]).await?;
    let (offset, epoch) = written.first().map_or((0, 0), |w| (w.base_offset, w.epoch));

    let labels = Metrics::topic(topic);
    let metrics = node.metrics();
    metrics
        .produced_records
        .get_or_create(&labels)
        .inc_by(u64::from(count));
    metrics
        .produced_bytes
        .get_or_create(&labels)
        .inc_by(body.len() as u64);
    Ok(Stored {
        topic,
        partition,
        offset,
        count,
        epoch,
    })
}

/// Checks a client's batch before anything is stored; returns its record
/// count.
fn check_batch(node: &Node, body: &[u8]) -> Result<u32, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_batch", message);
    let batch = Batch::parse_verified(body).map_err(|e| invalid(e.to_string()))?;
    let h = batch.header;
    if h.attributes != 0 {
        return Err(invalid(format!(
            "attributes {:#x} are not supported (no compression, no transactions)",
            h.attributes
        )));
    }
    let (id, seq) = (h.producer_id, h.base_sequence);
    let ids_valid = (id, seq) == (NO_PRODUCER, NO_SEQUENCE)
        || (id >= 0
            && seq >= 0
            && i64::from(seq) + i64::from(h.record_count) <= i64::from(i32::MAX));
    if !ids_valid {
        return Err(invalid(format!(
            "producer id {id} and base sequence {seq}: both are -1, or both are \
             non-negative with the sequences of all records at most {}",
            i32::MAX
        )));
    }
    let max_payload = node.config().max_payload_bytes;
    let checked = batch
        .check_records(|r| {
            let at = r.offset - h.base_offset;
            if let Some(key) = r.key.filter(|k| k.len() > MAX_KEY_BYTES) {
                return Err(ApiError::too_large(
                    "key_too_large",
                    format!(
                        "record {at}: key is {} bytes; the limit is {MAX_KEY_BYTES}",
                        key.len()
                    ),
                ));
            }
            if r.value.len() > max_payload {
                return Err(ApiError::too_large(
                    "payload_too_large",
                    format!(
                        "record {at}: payload is {} bytes; the limit is {max_payload}",
                        r.value.len()
                    ),
                ));
            }
            Ok(())
        })
        .map_err(|e| invalid(e.to_string()))?;
    checked?;
    Ok(h.record_count)
}
