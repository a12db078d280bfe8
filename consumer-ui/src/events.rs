//! What a subscription tells the pages: the shapes it serializes into its
//! events ([`SubEvent`]) and into the snapshot a page gets when it opens
//! ([`Snapshot`]) — messages, partition and subscription states, notes.
//!
//! Plain data: nothing here holds a lock or a task. A partition
//! subscription's [`ReadState`] is the worst of its partitions', so the
//! variants are ordered from best to worst; a group member's is the
//! member's own (its partitions share it, and it may hold none).

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use yak_client::Consumed;

/// A record as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Shared by every message of a partition (a group member reads
    /// several topics).
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub key: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub payload: Value,
}

impl Message {
    pub(crate) fn new(topic: Arc<str>, partition: u32, c: Consumed) -> Self {
        Self {
            topic,
            partition,
            offset: c.offset,
            key: c.key,
            timestamp: c.timestamp,
            payload: c.payload,
        }
    }
}

/// A partition's reader, a group member, or a subscription's overall state
/// (the worst of its partitions, the member's, or `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadState {
    Running,
    /// Not read yet; a group member: joining.
    Starting,
    /// A group member between giving up its partitions and getting the
    /// new ones.
    Rebalancing,
    Paused,
    Reconnecting,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    pub topic: Arc<str>,
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
    /// What it reads: `"kind": "partitions"` or `"group"`, and its fields.
    #[serde(flatten)]
    pub source: SourceStatus,
    pub state: ReadState,
    pub paused: bool,
    /// Messages received.
    pub count: u64,
    /// Messages per second, over the last seconds.
    pub rate: f64,
    /// The partitions read: chosen ones, or those a group member holds now.
    pub partitions: Vec<PartitionStatus>,
}

/// What a subscription reads, as its status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceStatus {
    /// Chosen partitions of one topic.
    Partitions {
        topic: String,
        /// Subscribed to every partition of the topic.
        all_partitions: bool,
        /// `earliest`, `latest` or an offset.
        start: String,
    },
    /// A member of a consumer group, reading what the group assigns it.
    Group {
        group: String,
        topics: Vec<String>,
        /// Where partitions without a committed offset start: `earliest`
        /// or `latest`.
        start: String,
        /// Once joined.
        member_id: Option<String>,
        /// The group generation of the partitions it holds.
        generation: Option<u64>,
    },
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
