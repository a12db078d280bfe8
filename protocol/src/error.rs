//! [`ErrorCode`]: the `"error"` field of every error body a node answers
//! with — on the HTTP API and on the binary port — as one enum, so the node
//! writes and clients read the same list.
//!
//! The wire form of a code is its `snake_case` name (`"not_leader"`),
//! written by [`ErrorCode::as_str`] and serde. A client reads a code with
//! [`ErrorCode::parse`], which gives `None` for a code it does not know (a
//! newer node's): it keeps the string, and an unknown code never makes an
//! answer unreadable.
//!
//! What a client does about an error is decided here, once:
//! [`is_leader_change`](ErrorCode::is_leader_change) (find the leader
//! again), [`is_retryable`](ErrorCode::is_retryable) (the same request may
//! succeed later) and [`is_refusal`](ErrorCode::is_refusal) (the node did
//! nothing with the request). Whether a failed produce's records may be
//! stored is not the code's to say: the same code can carry either
//! [`Written`](crate::Written) value.
//!
//! Invariants: every variant has one wire string, no two variants share
//! one, and [`ErrorCode::ALL`] lists every variant (the `codes!` list below
//! is the only place a code is named); every code is exactly one of a
//! refusal, transient or a failure of the node (an exhaustive match, so a
//! new code cannot be added without deciding which).

use serde::{Deserialize, Serialize};

/// Defines [`ErrorCode`] from one list of `Variant = "wire string"`, so that
/// the enum, [`ErrorCode::ALL`], `as_str` and `parse` cannot disagree.
macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $wire:literal, )*) => {
        /// The code of an error answer: the `"error"` field of its JSON body.
        ///
        /// Each variant's documentation gives the HTTP status the HTTP API
        /// answers it with; the binary port sends the body alone.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order of the list.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The wire form: the `"error"` field of the body.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $wire, )*
                }
            }

            /// Reads the wire form; `None` for a code this build does not
            /// know (keep the string: a newer node may send it).
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $wire => Some(ErrorCode::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    // Requests refused as they stand (4xx): nothing was done.
    /// 400: a body that is empty or not JSON.
    InvalidJson = "invalid_json",
    /// 400: JSON of the wrong shape, or values out of range.
    InvalidRequest = "invalid_request",
    /// 400: a group name that breaks the naming rule.
    InvalidGroup = "invalid_group",
    /// 400: a query string that does not parse.
    InvalidQuery = "invalid_query",
    /// 400: a path parameter that does not parse.
    InvalidPath = "invalid_path",
    /// 400: a topic name that breaks the naming rule.
    InvalidTopic = "invalid_topic",
    /// 400: a partition past the topic's partitions, or a bad partition
    /// count.
    InvalidPartition = "invalid_partition",
    /// 400: a retention override of 0.
    InvalidRetention = "invalid_retention",
    /// 400: a binary body that is not exactly one valid record batch.
    InvalidBatch = "invalid_batch",
    /// 400: a read outside the partition's stored, committed records; the
    /// body says `log_start_offset` and `high_water_mark`.
    OffsetOutOfRange = "offset_out_of_range",
    /// 400 (a frame that does not parse) or 413 (a frame over the limit)
    /// on the binary port.
    FrameInvalid = "frame_invalid",
    /// 400: a request the HTTP framework refused for another reason.
    BadRequest = "bad_request",
    /// 401: a missing or wrong token.
    Unauthorized = "unauthorized",
    /// 404: the topic does not exist.
    UnknownTopic = "unknown_topic",
    /// 404: the consumer group does not exist.
    UnknownGroup = "unknown_group",
    /// 409: the member id is not in the group (its session expired, or it
    /// left): join again without it.
    UnknownMember = "unknown_member",
    /// 409: the group moved on to a newer generation: join again.
    StaleGeneration = "stale_generation",
    /// 409: a commit for a partition the member does not hold.
    NotAssigned = "not_assigned",
    /// 409: a join asking for another assignor than the group's members.
    AssignorMismatch = "assignor_mismatch",
    /// 409: an offset reset while the group has members.
    GroupNotEmpty = "group_not_empty",
    /// 404: no such route.
    NotFound = "not_found",
    /// 405: a known path with the wrong method.
    MethodNotAllowed = "method_not_allowed",
    /// 409: `POST /topics` for a topic that exists.
    TopicExists = "topic_exists",
    /// 409: an idempotent produce whose sequence overlaps or skips.
    SequenceConflict = "sequence_conflict",
    /// 413: a record key over the limit.
    KeyTooLarge = "key_too_large",
    /// 413: a record value over `--max-payload-bytes`.
    PayloadTooLarge = "payload_too_large",
    /// 413: a request body over `--max-request-bytes`.
    BodyTooLarge = "body_too_large",
    /// 415: a binary batch sent with another `Content-Type`.
    UnsupportedMediaType = "unsupported_media_type",
    /// 409 on `/internal/…`: the request's leader epoch is older than one
    /// the node has seen; the body says `epoch`.
    StaleEpoch = "stale_epoch",
    /// 409 on `/internal/…`: the follower's log diverges and must be
    /// truncated first; the body says `end`.
    NeedsTruncation = "needs_truncation",
    /// 409 on `/internal/…`: a replicated round that does not start at the
    /// follower's log end; the body says `end`.
    NonContiguous = "non_contiguous",
    /// 409 on `/internal/…`: a fetch below the leader's log start; the body
    /// says `start`.
    BelowLogStart = "below_log_start",

    // Transient: the same request may succeed later.
    /// 307 with the leader's URL, or 503: this node does not lead (409 on
    /// `/internal/epoch_end`).
    NotLeader = "not_leader",
    /// 503: this node does not lead and knows no leader.
    NoLeader = "no_leader",
    /// 503: a newer leader exists; this node's write was not acknowledged.
    Fenced = "fenced",
    /// 503: fewer in-sync replicas than `--min-insync-replicas`.
    NotEnoughReplicas = "not_enough_replicas",
    /// 503: Redis (the cluster metadata) did not answer or confirm.
    Unavailable = "unavailable",
    /// 503: the node (or this leader's log) is not ready to serve.
    NotReady = "not_ready",
    /// 503: the node is stopping.
    ShuttingDown = "shutting_down",

    // The node failed.
    /// 500: a local disk error.
    StorageError = "storage_error",
    /// 500: anything else that went wrong inside the node.
    Internal = "internal",
}

/// What kind of failure a code is; every code is exactly one (an
/// exhaustive match, so a new code must be placed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Turned down as it stands; nothing done (4xx).
    Refusal,
    /// Passes by itself (503, and 307 for `not_leader`).
    Transient,
    /// The node failed (500).
    Failure,
}

impl ErrorCode {
    fn class(self) -> Class {
        use ErrorCode::*;
        match self {
            InvalidJson | InvalidRequest | InvalidQuery | InvalidPath | InvalidTopic
            | InvalidPartition | InvalidRetention | InvalidBatch | OffsetOutOfRange
            | FrameInvalid | BadRequest | Unauthorized | UnknownTopic | NotFound
            | MethodNotAllowed | TopicExists | SequenceConflict | KeyTooLarge | PayloadTooLarge
            | BodyTooLarge | UnsupportedMediaType | StaleEpoch | NeedsTruncation
            | NonContiguous | BelowLogStart | InvalidGroup | UnknownGroup | UnknownMember
            | StaleGeneration | NotAssigned | AssignorMismatch | GroupNotEmpty => Class::Refusal,
            NotLeader | NoLeader | Fenced | NotEnoughReplicas | Unavailable | NotReady
            | ShuttingDown => Class::Transient,
            StorageError | Internal => Class::Failure,
        }
    }

    /// The node asked does not lead, or no longer does: find the leader
    /// again before the next attempt (`no_leader`, `not_leader`, `fenced`).
    pub fn is_leader_change(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeader | ErrorCode::NoLeader | ErrorCode::Fenced
        )
    }

    /// The condition passes by itself (a leader change, a replica or Redis
    /// away, a node stopping): the same request may succeed if sent again
    /// later. The HTTP API answers these with 503 (`not_leader` also 307).
    /// Whether a retry risks a duplicate is the `written` field's to say.
    pub fn is_retryable(self) -> bool {
        self.class() == Class::Transient
    }

    /// The node turned the request down without acting on it: nothing was
    /// stored, and sending it unchanged gets the same answer. The HTTP API
    /// answers these with a 4xx status.
    pub fn is_refusal(self) -> bool {
        self.class() == Class::Refusal
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an [`ErrorCode`] this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownCode(pub String);

impl std::str::FromStr for ErrorCode {
    type Err = UnknownCode;

    fn from_str(text: &str) -> Result<Self, UnknownCode> {
        ErrorCode::parse(text).ok_or_else(|| UnknownCode(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for &code in ErrorCode::ALL {
            let wire = code.as_str();
            assert_eq!(ErrorCode::parse(wire), Some(code), "{wire}");
            assert_eq!(wire.parse::<ErrorCode>(), Ok(code), "{wire}");
            assert_eq!(code.to_string(), wire);
            assert_eq!(serde_json::to_value(code).unwrap(), wire, "serde's name");
            let back: ErrorCode = serde_json::from_value(wire.into()).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn no_two_codes_share_a_string() {
        let mut seen = HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
        }
        let variants: HashSet<ErrorCode> = ErrorCode::ALL.iter().copied().collect();
        assert_eq!(variants.len(), ErrorCode::ALL.len(), "a variant twice");
    }

    #[test]
    fn unknown_codes_are_not_errors_of_a_known_kind() {
        assert_eq!(ErrorCode::parse("a_code_from_the_future"), None);
        assert_eq!(
            ErrorCode::parse("Not_Leader"),
            None,
            "the wire form is exact"
        );
        assert_eq!(
            "nope".parse::<ErrorCode>(),
            Err(UnknownCode("nope".to_owned()))
        );
    }

    #[test]
    fn leader_changes_are_retryable_and_the_rest_is_placed() {
        for &code in ErrorCode::ALL {
            assert!(!code.is_leader_change() || code.is_retryable(), "{code}");
            assert!(!(code.is_refusal() && code.is_retryable()), "{code}");
        }
        let named = |keep: fn(&ErrorCode) -> bool| -> Vec<&str> {
            ErrorCode::ALL
                .iter()
                .filter(|c| keep(c))
                .map(|c| c.as_str())
                .collect()
        };
        assert_eq!(
            named(|c| c.is_leader_change()),
            ["not_leader", "no_leader", "fenced"]
        );
        assert_eq!(
            named(|c| !c.is_refusal() && !c.is_retryable()),
            ["storage_error", "internal"]
        );
    }
}
