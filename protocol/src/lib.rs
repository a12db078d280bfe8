//! # yak-protocol — what nodes and clients agree on
//!
//! The types both sides of YAK's APIs use, so that a rule is written once:
//! the node checks it, and clients and UIs check it early.
//!
//! ## Modules
//! - [`error`]: [`ErrorCode`], the `"error"` field of every error body a
//!   node answers with, and what a client makes of it (retry, find the
//!   leader again, refused).
//! - [`group`]: consumer groups — the bodies of the `/groups` API and
//!   the group-name rule.
//! - [`frame`]: the binary protocol of the node's TCP port
//!   (`--tcp-listen`): length-prefixed frames, requests and responses;
//!   clients produce over it, leaders replicate over it.
//! - [`outcome`]: [`Written`], what an error says about a produce's
//!   records.
//! - [`topic`]: the topic-name rule and [`TopicConfig`], a topic's stored
//!   retention rule.

pub mod error;
pub mod frame;
pub mod group;
pub mod outcome;
pub mod topic;

/// The media type of a record batch in the storage format sent over HTTP
/// (`POST /produce/batch`, `GET /consume/batch`).
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.yak.batch";

pub use error::{ErrorCode, UnknownCode};
pub use frame::{FrameError, ReplicateParams, Request, Response, codec, request_overhead};
pub use outcome::Written;
pub use topic::{MAX_TOPIC_NAME, TopicConfig, validate_topic_name};
