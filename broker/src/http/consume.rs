//! `GET /consume`: committed records of one partition from an offset, with
//! an optional long poll. Any node serves it from its own log, below the
//! high-water mark it knows.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use partition_log::batch;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ApiError;
use yak_protocol::{ErrorCode, validate_topic_name};

use crate::{metrics::Metrics, node::Node};

const MAX_RECORDS: usize = 10_000;
const MAX_BYTES: usize = 16 * 1024 * 1024;
const MAX_WAIT_MS: u64 = 60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeQuery {
    topic: String,
    #[serde(default)]
    partition: u32,
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_max_records")]
    max_records: usize,
    #[serde(default = "default_max_bytes")]
    max_bytes: usize,
    #[serde(default)]
    wait_ms: u64,
}

fn default_max_records() -> usize {
    100
}

fn default_max_bytes() -> usize {
    1024 * 1024
}

#[derive(Debug, Serialize)]
struct RecordOut<'a> {
    offset: u64,
    key: Option<std::borrow::Cow<'a, str>>,
    payload: PayloadOut<'a>,
    timestamp: i64,
}

/// A payload as stored: JSON as it was sent; anything else as a string.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum PayloadOut<'a> {
    Json(&'a RawValue),
    Text(std::borrow::Cow<'a, str>),
}

impl<'a> PayloadOut<'a> {
    fn of(value: &'a [u8]) -> Self {
        let text = || PayloadOut::Text(String::from_utf8_lossy(value));
        // Most bytes that are not JSON show it in their first byte; a failed
        // parse costs an allocated error.
        match value.trim_ascii_start().first() {
            Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                serde_json::from_slice::<&RawValue>(value).map_or_else(|_| text(), PayloadOut::Json)
            }
            _ => text(),
        }
    }
}

#[derive(Debug, Serialize)]
struct ConsumeOut<'a> {
    topic: &'a str,
    partition: u32,
    records: Vec<RecordOut<'a>>,
    next_offset: u64,
    high_water_mark: u64,
    log_start_offset: u64,
}

/// Whole batches of committed records read for a query, from the batch
/// holding the query's offset up to the HWM.
struct Committed {
    /// The batches, concatenated: read straight into one buffer that
    /// becomes the answer of `/consume/batch` as it is.
    bytes: Vec<u8>,
    /// Records in `bytes` from the query's offset on.
    records: u64,
    hwm: u64,
    log_start: u64,
}

/// Room reserved beyond `max_bytes` for the batch that crosses it (a read
/// returns whole batches), so that it rarely needs the buffer to move.
const READ_SLACK: usize = 128 * 1024;

/// Checks the query, long-polls if it asks to, and reads.
async fn read_committed(node: &Node, q: &ConsumeQuery) -> Result<Committed, ApiError> {
    validate_topic_name(&q.topic).map_err(|m| ApiError::bad_request(ErrorCode::InvalidTopic, m))?;
    if !(1..=MAX_RECORDS).contains(&q.max_records) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            format!("max_records must be 1 to {MAX_RECORDS}"),
        ));
    }
    if !(1..=MAX_BYTES).contains(&q.max_bytes) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            format!("max_bytes must be 1 to {MAX_BYTES}"),
        ));
    }
    if q.wait_ms > MAX_WAIT_MS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            format!("wait_ms must be at most {MAX_WAIT_MS}"),
        ));
    }
    let topic = node
        .topic(&q.topic)
        .await?
        .ok_or_else(|| ApiError::unknown_topic(&q.topic))?;
    let count = topic.partitions.len() as u32;
    let partition = topic
        .partitions
        .get(q.partition as usize)
        .ok_or_else(|| ApiError::invalid_partition(&q.topic, q.partition, count))?;
    let reader = partition.reader();

    let mut hwm = partition.hwm();
    let start = reader.start_offset();
    if q.offset < start || q.offset > hwm {
        let why = if q.offset < start {
            format!(
                "records below {start} of {}/{} were deleted by retention; the earliest offset is {start}",
                q.topic, q.partition
            )
        } else {
            format!(
                "offset {} is beyond the committed records of {}/{} (high-water mark {hwm})",
                q.offset, q.topic, q.partition
            )
        };
        return Err(ApiError::bad_request(
            ErrorCode::OffsetOutOfRange,
            format!("{why}; read from an offset in [{start}, {hwm}]"),
        )
        .with("log_start_offset", start)
        .with("high_water_mark", hwm));
    }
    if q.offset == hwm && q.wait_ms > 0 {
        let mut changes = partition.watch_hwm();
        let wait = changes.wait_for(|&h| h > q.offset);
        if let Ok(Ok(h)) = tokio::time::timeout(Duration::from_millis(q.wait_ms), wait).await {
            hwm = *h;
        }
    }

    // Reserved only when there is something to read (a caught-up consumer
    // long-polls with nothing to answer), and at most the default answer's
    // size: a larger `max_bytes` grows the buffer as it fills.
    let mut bytes = if q.offset < hwm {
        Vec::with_capacity(q.max_bytes.min(default_max_bytes()) + READ_SLACK)
    } else {
        Vec::new()
    };
    let (mut next, mut records) = (q.offset, 0usize);
    while next < hwm && records < q.max_records && bytes.len() < q.max_bytes {
        let before = bytes.len();
        let read = reader
            .read_into(next, hwm, q.max_bytes - before, &mut bytes)
            .map_err(ApiError::storage)?;
        if read == 0 {
            break;
        }
        for b in batch::batches(&bytes[before..]).flatten() {
            records += (b.header.next_offset() - next.max(b.header.base_offset)) as usize;
            next = b.header.next_offset();
        }
    }
    Ok(Committed {
        bytes,
        records: records as u64,
        hwm,
        log_start: start,
    })
}

/// `GET /consume/batch`: the same read as `/consume`, answered with the
/// stored batches themselves (`application/vnd.yak.batch`, the storage
/// format; the first batch may start before `offset`) and the partition's
/// state in headers. No JSON per record: what a client that decodes
/// batches (yak-client) reads with.
pub async fn consume_batch(
    node: web::Data<Node>,
    query: web::Query<ConsumeQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let read = read_committed(&node, &q).await?;
    let labels = Metrics::topic(&q.topic);
    node.metrics()
        .consumed_records
        .get_or_create(&labels)
        .inc_by(read.records);
    Ok(HttpResponse::Ok()
        .content_type(yak_protocol::BATCH_CONTENT_TYPE)
        .insert_header(("yak-high-water-mark", read.hwm.to_string()))
        .insert_header(("yak-log-start-offset", read.log_start.to_string()))
        .body(read.bytes))
}

pub async fn consume(
    node: web::Data<Node>,
    query: web::Query<ConsumeQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let Committed {
        bytes,
        hwm,
        log_start: start,
        ..
    } = read_committed(&node, &q).await?;

    let mut out = Vec::new();
    let mut value_bytes = 0u64;
    'outer: for b in batch::batches(&bytes) {
        let b = b.map_err(ApiError::storage)?;
        for record in b.records() {
            let record = record.map_err(ApiError::storage)?;
            if record.offset < q.offset {
                continue;
            }
            if out.len() == q.max_records {
                break 'outer;
            }
            value_bytes += record.value.len() as u64;
            out.push(RecordOut {
                offset: record.offset,
                key: record.key.map(String::from_utf8_lossy),
                payload: PayloadOut::of(record.value),
                timestamp: record.timestamp,
            });
        }
    }
    let next_offset = out.last().map_or(q.offset, |r| r.offset + 1);
    let labels = Metrics::topic(&q.topic);
    node.metrics()
        .consumed_records
        .get_or_create(&labels)
        .inc_by(out.len() as u64);
    node.metrics()
        .consumed_bytes
        .get_or_create(&labels)
        .inc_by(value_bytes);
    Ok(HttpResponse::Ok().json(ConsumeOut {
        topic: &q.topic,
        partition: q.partition,
        records: out,
        next_offset,
        high_water_mark: hwm,
        log_start_offset: start,
    }))
}
