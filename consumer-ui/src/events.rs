//! What a subscription tells the pages: the shapes it serializes into its
//! events ([`SubEvent`]) and into the snapshot a page gets when it opens
//! ([`Snapshot`]) — messages, partition and subscription states, notes.
//!
//! Plain data: nothing here holds a lock or a task. A subscription's
//! [`ReadState`] is the worst of its partitions', so the variants are
//! ordered from best to worst.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use yak_client::Consumed;

/// A record as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub partition: u32,
    pub offset: u64,
    pub key: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub payload: Value,
}

impl Message {
    pub(crate) fn new(partition: u32, c: Consumed) -> Self {
        Self {
            partition,
            offset: c.offset,
            key: c.key,
            timestamp: c.timestamp,
            payload: c.payload,
        }
    }
}

/// A partition's reader, or a subscription's overall state (the worst of
/// its partitions, or `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadState {
    Running,
    Starting,
    Paused,
    Reconnecting,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    pub partition: u32,
    pub state: ReadState,
    /// The next offset to read, once known.
    pub next_offset: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubStatus {
    pub id: u64,
    /// Grows with every status and batch of messages, so a page keeps the
    /// newest of what it hears (events and answers may cross).
    pub seq: u64,
    pub topic: String,
    /// Subscribed to every partition of the topic.
    pub all_partitions: bool,
    /// `earliest`, `latest` or an offset.
    pub start: String,
    pub state: ReadState,
    pub paused: bool,
    /// Messages received.
    pub count: u64,
    /// Messages per second, over the last seconds.
    pub rate: f64,
    pub partitions: Vec<PartitionStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteLevel {
    Info,
    Warn,
    Error,
}

/// A line in the subscription's own log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub ts: i64,
    pub level: NoteLevel,
    pub text: String,
}

/// What a subscription tells the pages.
#[derive(Debug, Clone)]
pub enum SubEvent {
    Messages {
        records: Vec<Arc<Message>>,
        count: u64,
        seq: u64,
    },
    Status(SubStatus),
    Note(Note),
}

/// What a page gets when it opens or a subscription is added.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub status: SubStatus,
    /// The last [`SHOWN_MESSAGES`](crate::subscription::SHOWN_MESSAGES),
    /// oldest first.
    pub recent: Vec<Arc<Message>>,
    pub notes: Vec<Note>,
}
