//! Consumer groups: the request and response bodies of the group API
//! (`/groups/…` on the leader), shared by the node that serves them and the
//! clients that call them, and the group-name rule.
//!
//! The protocol in short (docs/groups.md has it in full): a member
//! [`Join`]s and gets a member id, the group's generation and its
//! partitions; it [`Heartbeat`]s within its session timeout; when a
//! heartbeat says `rebalance`, it commits what it has processed and joins
//! again. A [`Commit`] is accepted only from a member of the current
//! generation for partitions it holds. Committed offsets are the *next*
//! offset to read, as in Kafka.

use serde::{Deserialize, Serialize};

/// Longest group name.
pub const MAX_GROUP_NAME: usize = 249;

/// Shortest and longest session timeout a member may ask for.
pub const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 500..=300_000;

/// Session timeout when a join names none.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 10_000;

/// Checks a group name: 1–249 of `[a-zA-Z0-9._-]` (the topic rule, so that
/// a name can go in a path or a Redis key unescaped).
pub fn validate_group_name(name: &str) -> Result<(), String> {
    crate::topic::validate_topic_name(name).map_err(|e| e.replacen("topic", "group", 1))
}

/// How a group's partitions are spread over its members. Every member of a
/// group must ask for the same one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignor {
    /// Members keep the partitions they held where the spread stays even;
    /// only the surplus moves.
    #[default]
    Sticky,
    /// Each topic's partitions in consecutive ranges, one per member.
    Range,
    /// All subscribed partitions dealt to members in turn.
    RoundRobin,
}

impl Assignor {
    pub fn as_str(self) -> &'static str {
        match self {
            Assignor::Sticky => "sticky",
            Assignor::Range => "range",
            Assignor::RoundRobin => "round_robin",
        }
    }
}

impl std::str::FromStr for Assignor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sticky" => Ok(Assignor::Sticky),
            "range" => Ok(Assignor::Range),
            "round_robin" | "roundrobin" => Ok(Assignor::RoundRobin),
            other => Err(format!(
                "expected sticky, range or round_robin, got {other:?}"
            )),
        }
    }
}

impl std::fmt::Display for Assignor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// `POST /groups/{group}/join`: join (no `member_id`) or rejoin after a
/// rebalance (the id the first join gave). Answered when the group is
/// stable with this member in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    pub topics: Vec<String>,
    #[serde(default = "default_session_timeout")]
    pub session_timeout_ms: u64,
    #[serde(default)]
    pub assignor: Assignor,
    /// Free text shown beside the member (a host name, a process id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

fn default_session_timeout() -> u64 {
    DEFAULT_SESSION_TIMEOUT_MS
}

/// The answer to a join: who the member is and what it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub group: String,
    pub member_id: String,
    pub generation: u64,
    pub assignment: Vec<TopicPartition>,
    pub session_timeout_ms: u64,
    /// How often to heartbeat: a tenth of the session timeout, at most
    /// 500 ms (a rebalance is noticed within half a second).
    pub heartbeat_interval_ms: u64,
}

/// `POST /groups/{group}/heartbeat` and `POST /groups/{group}/leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub member_id: String,
    /// Leave ignores it.
    #[serde(default)]
    pub generation: u64,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    pub generation: u64,
    /// The group is rebalancing: commit what was processed, then join again
    /// with the same member id.
    pub rebalance: bool,
}

/// `POST /groups/{group}/commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    pub member_id: String,
    pub generation: u64,
    pub offsets: Vec<PartitionOffset>,
}

/// A partition's committed offset: the next offset the group reads there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// The answer to a commit, an offset fetch (`GET
/// /groups/{group}/offsets`) and a reset: the group's committed offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offsets {
    pub group: String,
    pub offsets: Vec<PartitionOffset>,
}

/// Where `POST /groups/{group}/reset` moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// Each partition's log start.
    Earliest,
    /// Each partition's high-water mark: only new records.
    Latest,
    /// The same offset in every partition (clamped to what is stored).
    Offset(u64),
    /// The first record written at or after this time (ms since the Unix
    /// epoch); the high-water mark where there is none.
    Time(i64),
}

impl std::str::FromStr for ResetTo {
    type Err = String;

    /// `earliest`, `latest`, an offset, or `time:MILLIS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" => Ok(ResetTo::Earliest),
            "latest" => Ok(ResetTo::Latest),
            _ => match s.strip_prefix("time:") {
                Some(ms) => ms
                    .parse()
                    .map(ResetTo::Time)
                    .map_err(|_| format!("expected time:MILLISECONDS_SINCE_EPOCH, got {s:?}")),
                None => s.parse().map(ResetTo::Offset).map_err(|_| {
                    format!("expected earliest, latest, an offset or time:MILLIS, got {s:?}")
                }),
            },
        }
    }
}

/// `POST /groups/{group}/reset`, only while the group has no members:
/// `{"to": "earliest" | "latest" | "offset" | "time"}`, with `offset` or
/// `timestamp_ms` for the last two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// The topics to reset; by default the group's subscribed topics and
    /// every topic it has committed offsets for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
}

impl Reset {
    pub fn new(to: ResetTo, topics: Option<Vec<String>>) -> Self {
        let (to, offset, timestamp_ms) = match to {
            ResetTo::Earliest => ("earliest", None, None),
            ResetTo::Latest => ("latest", None, None),
            ResetTo::Offset(offset) => ("offset", Some(offset), None),
            ResetTo::Time(ms) => ("time", None, Some(ms)),
        };
        Self {
            to: to.to_owned(),
            offset,
            timestamp_ms,
            topics,
        }
    }

    /// The target, or what is wrong with the body.
    pub fn target(&self) -> Result<ResetTo, String> {
        match (self.to.as_str(), self.offset, self.timestamp_ms) {
            ("earliest", None, None) => Ok(ResetTo::Earliest),
            ("latest", None, None) => Ok(ResetTo::Latest),
            ("offset", Some(offset), None) => Ok(ResetTo::Offset(offset)),
            ("time", None, Some(ms)) => Ok(ResetTo::Time(ms)),
            ("earliest" | "latest" | "offset" | "time", _, _) => Err(format!(
                "\"to\": \"{}\" takes {}",
                self.to,
                match self.to.as_str() {
                    "offset" => "\"offset\" and nothing else",
                    "time" => "\"timestamp_ms\" and nothing else",
                    _ => "neither \"offset\" nor \"timestamp_ms\"",
                }
            )),
            (other, _, _) => Err(format!(
                "\"to\" must be earliest, latest, offset or time, got {other:?}"
            )),
        }
    }
}

/// Where a group is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// No members (it may hold committed offsets).
    Empty,
    /// Waiting for its members to join again after a change.
    Rebalancing,
    /// Kafka groups only: every member joined; waiting for the leader
    /// member's assignment (Kafka's CompletingRebalance).
    Syncing,
    /// Every member has its partitions.
    Stable,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "empty",
            GroupState::Rebalancing => "rebalancing",
            GroupState::Syncing => "syncing",
            GroupState::Stable => "stable",
        }
    }
}

/// One group in `GET /groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub group: String,
    pub state: GroupState,
    pub generation: u64,
    pub members: usize,
    pub topics: Vec<String>,
    /// Records not yet consumed, over every partition with a committed
    /// offset or an owner.
    pub lag: u64,
}

/// `GET /groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
}

/// `GET /groups/{group}`: members, assignment, offsets and lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDetail {
    pub group: String,
    pub state: GroupState,
    pub generation: u64,
    /// The coordinator's assignor (YAK clients' groups).
    pub assignor: Assignor,
    /// Set for a group of Kafka clients, which assign partitions
    /// themselves: the protocol (client-side assignor) of this generation,
    /// e.g. `range`. `assignor` does not apply then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_protocol: Option<String>,
    pub topics: Vec<String>,
    pub members: Vec<MemberDetail>,
    pub partitions: Vec<PartitionDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDetail {
    pub member_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    pub assignment: Vec<TopicPartition>,
    /// Has joined the rebalance under way (always true when stable).
    pub joined: bool,
}

/// One partition a group reads or has read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDetail {
    pub topic: String,
    pub partition: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<u64>,
    pub high_water_mark: u64,
    /// `high_water_mark - committed` (from the log start when nothing is
    /// committed).
    pub lag: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_targets_parse_from_the_command_line_and_json() {
        assert_eq!("earliest".parse(), Ok(ResetTo::Earliest));
        assert_eq!("42".parse(), Ok(ResetTo::Offset(42)));
        assert_eq!(
            "time:1700000000000".parse(),
            Ok(ResetTo::Time(1_700_000_000_000))
        );
        assert!("soon".parse::<ResetTo>().is_err());
        let parse = |json: &str| serde_json::from_str::<Reset>(json).map_err(|e| e.to_string());
        let body = parse(r#"{"to":"offset","offset":7}"#).unwrap();
        assert_eq!(body.target(), Ok(ResetTo::Offset(7)));
        assert_eq!(body.topics, None);
        assert!(parse(r#"{"to":"offset"}"#).unwrap().target().is_err());
        assert!(
            parse(r#"{"to":"latest","offset":3}"#)
                .unwrap()
                .target()
                .is_err()
        );
        assert!(parse(r#"{"to":"soon"}"#).unwrap().target().is_err());
        assert!(parse(r#"{"to":"latest","oops":1}"#).is_err());
        for to in [
            ResetTo::Earliest,
            ResetTo::Latest,
            ResetTo::Offset(3),
            ResetTo::Time(9),
        ] {
            let json = serde_json::to_string(&Reset::new(to, None)).unwrap();
            assert_eq!(parse(&json).unwrap().target(), Ok(to));
        }
    }

    #[test]
    fn a_join_fills_defaults_and_refuses_unknown_fields() {
        let join: Join = serde_json::from_str(r#"{"topics":["a"]}"#).unwrap();
        assert_eq!(join.session_timeout_ms, DEFAULT_SESSION_TIMEOUT_MS);
        assert_eq!(join.assignor, Assignor::Sticky);
        assert!(serde_json::from_str::<Join>(r#"{"topics":["a"],"x":1}"#).is_err());
    }

    #[test]
    fn group_names_follow_the_topic_rule_and_say_group() {
        assert!(validate_group_name("billing.v2").is_ok());
        let e = validate_group_name("a b").unwrap_err();
        assert!(e.starts_with("group name"), "{e}");
        assert!(validate_group_name("").is_err());
    }
}
