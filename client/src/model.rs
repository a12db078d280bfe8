//! The broker's HTTP API shapes, as the client sends and receives them.
//! `docs/api.md` is the reference.

use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};
use yak_protocol::TopicConfig;

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub topic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub payload: Value,
    /// An explicit partition; otherwise the key (or spreading) decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
}

impl Record {
    pub fn new(topic: impl Into<String>, payload: Value) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            payload,
            partition: None,
        }
    }

    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }
}

/// A record to produce whose payload is JSON text already, borrowed
/// rather than owned: for callers that hold serialized JSON (read from a
/// file, received from elsewhere, or one payload sent many times), so that
/// [`Producer::send_raw_batch`](crate::Producer::send_raw_batch) neither
/// builds a [`Value`] per record nor escapes the payload again: its text is
/// copied into the request as it is. The broker stores the payload's text
/// as sent, exactly as for a [`Record`] whose `Value` serializes to it.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub topic: &'a str,
    pub key: Option<&'a str>,
    /// One JSON value (`serde_json::value::to_raw_value` or
    /// `RawValue::from_string` make one, checked).
    pub payload: &'a RawValue,
    /// An explicit partition; otherwise the key (or spreading) decides.
    pub partition: Option<u32>,
}

impl<'a> RawRecord<'a> {
    pub fn new(topic: &'a str, payload: &'a RawValue) -> Self {
        Self {
            topic,
            key: None,
            payload,
            partition: None,
        }
    }

    pub fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }
}

/// A record as sent, with the idempotence fields the producer adds. The
/// payload is a [`Value`] or, from [`RawRecord`], JSON text sent as it is.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WireRecord<'a, P: ?Sized> {
    // Flattened by hand: serde's `flatten` goes through a map serializer.
    pub topic: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    pub payload: &'a P,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// Where an acknowledged record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Produced {
    pub partition: u32,
    pub offset: u64,
    /// The leader epoch that acknowledged it (absent from older brokers).
    #[serde(default)]
    pub epoch: Option<u64>,
}

/// Where an acknowledged binary batch was stored: its records have the
/// offsets `offset .. offset + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ProducedBatch {
    pub partition: u32,
    pub offset: u64,
    pub count: u32,
    /// The leader epoch that acknowledged it (absent from older brokers).
    #[serde(default)]
    pub epoch: Option<u64>,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Consumed {
    pub offset: u64,
    pub key: Option<String>,
    pub payload: Value,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl Consumed {
    /// A stored record as `GET /consume` shows it: a payload that is JSON as
    /// that JSON, anything else as a (lossy UTF-8) string.
    pub(crate) fn from_record(record: &partition_log::Record<'_>) -> Self {
        // Bytes whose first character cannot start JSON skip the parse (a
        // failed one allocates its error), as the node's `/consume` does.
        let payload = match record.value.trim_ascii_start().first() {
            Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                serde_json::from_slice(record.value).ok()
            }
            _ => None,
        };
        Self {
            offset: record.offset,
            key: record.key.map(text),
            payload: payload.unwrap_or_else(|| Value::String(text(record.value))),
            timestamp: record.timestamp,
        }
    }
}

/// Bytes as a string, invalid UTF-8 replaced. `str::from_utf8` checks
/// ASCII a word at a time; `from_utf8_lossy` goes byte by byte and was a
/// tenth of a consumer's CPU for text payloads.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// One read of committed records.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Fetch {
    pub records: Vec<Consumed>,
    pub next_offset: u64,
    pub high_water_mark: u64,
    pub log_start_offset: u64,
}

/// A node as the registry lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub url: String,
    pub role: String,
    pub epoch: u64,
    pub heartbeat_ms: u64,
}

/// `GET /metadata/leader`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LeaderInfo {
    pub leader_id: Option<String>,
    pub leader_url: Option<String>,
    /// host:port of the leader's binary produce port, if it has one.
    #[serde(default)]
    pub leader_tcp: Option<String>,
    pub epoch: u64,
    /// Time left on the leader's lease when the node answered.
    #[serde(default)]
    pub lease_ttl_ms: Option<u64>,
    pub nodes: Vec<NodeInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FollowerDetail {
    pub id: String,
    pub offset: u64,
    pub lag: u64,
    pub in_sync: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionDetail {
    pub partition: u32,
    pub log_start_offset: u64,
    pub log_end_offset: u64,
    pub high_water_mark: u64,
    pub size_bytes: u64,
    #[serde(default)]
    pub isr: Vec<String>,
    /// Live nodes, each a replica of every partition (0 from nodes that do
    /// not say).
    #[serde(default)]
    pub replicas: usize,
    #[serde(default)]
    pub followers: Vec<FollowerDetail>,
}

impl PartitionDetail {
    /// Fewer replicas in sync than there are live nodes: a write is
    /// acknowledged with fewer copies than the cluster could hold.
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas
    }
}

/// `GET /topics/{name}`, as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TopicDetail {
    pub name: String,
    pub node_id: String,
    #[serde(default)]
    pub config: TopicConfig,
    pub partitions: Vec<PartitionDetail>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn payload(value: &[u8]) -> Value {
        let record = partition_log::Record {
            offset: 0,
            timestamp: 0,
            key: Some(b"k\xff"),
            value,
        };
        let consumed = Consumed::from_record(&record);
        assert_eq!(consumed.key.as_deref(), Some("k\u{fffd}"));
        consumed.payload
    }

    #[test]
    fn payloads_are_json_when_they_parse_and_text_otherwise() {
        assert_eq!(
            payload(br#" {"a": [1, true, null]}"#),
            json!({"a": [1, true, null]})
        );
        assert_eq!(payload(b"\"xx\""), json!("xx"));
        assert_eq!(payload(b"-1.5"), json!(-1.5));
        assert_eq!(payload(b"xxx"), json!("xxx"));
        assert_eq!(payload(b"12 monkeys"), json!("12 monkeys"));
        assert_eq!(payload(b"nope"), json!("nope"));
        assert_eq!(payload(b""), json!(""));
        assert_eq!(payload(b"caf\xc3\xa9 \xff"), json!("caf\u{e9} \u{fffd}"));
    }
}
