//! # yak-protocol — what nodes and clients agree on
//!
//! The types both sides of YAK's APIs use, so that a rule is written once:
//! the node checks it, and clients and UIs check it early.
//!
//! ## Modules
//! - [`frame`]: the binary produce protocol of the node's TCP port
//!   (`--tcp-listen`): length-prefixed frames, requests and responses.
//! - [`outcome`]: [`Written`], what an error says about a produce's
//!   records.
//! - [`topic`]: the topic-name rule and [`TopicConfig`], a topic's stored
//!   retention rule.

pub mod frame;
pub mod outcome;
pub mod topic;

pub use frame::{FrameError, Request, Response, codec, request_overhead};
pub use outcome::Written;
pub use topic::{MAX_TOPIC_NAME, TopicConfig, validate_topic_name};
