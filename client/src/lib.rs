//! # yak-client
//!
//! The client library of YAK. The UIs and the `yak` command use it; nothing
//! else speaks the broker's HTTP API by hand.
//!
//! ## Layout
//! - [`cluster`]: [`YakClient`] — leader discovery from a list of node URLs,
//!   redirects, retries with exponential backoff and jitter under a
//!   deadline. Its child `cluster::produce_batch` stores a record batch
//!   over the leader's binary port (or HTTP).
//! - `config`: [`ClientConfig`] — the retry policy and access (token, CAs),
//!   and the HTTP client built from them.
//! - `connect` (feature `cli`): `ConnectArgs`, the `--bootstrap`,
//!   `--token` and `--tls-ca` flags of the `yak` command and the UIs.
//! - `wire`: request bodies, decoding answers, percent-encoding.
//! - `admin`: topic administration (list, create, describe, add
//!   partitions) and group administration (list, describe, offsets,
//!   reset).
//! - `fetch`: raw reads of a partition's stored batches.
//! - [`producer`]: [`Producer`] — single and batched sends, optional linger,
//!   idempotent by default so a retry across a failover never stores a
//!   record twice.
//! - [`consumer`]: [`Consumer`] — reads a partition from earliest, latest or
//!   an offset, long-polling; resumes exactly at the next offset after a
//!   failover.
//! - [`group`]: [`GroupConsumer`] — a member of a consumer group: shares
//!   a group's partitions with the other members, heartbeats, commits its
//!   positions, takes part in rebalances, and resumes at the committed
//!   offsets after a rebalance or a restart. Its children hold the member
//!   calls of the group API (`membership`), the heartbeat task
//!   (`heartbeat`) and the read positions (`positions`).
//! - `tcp`: the shared connection to the leader's binary produce port
//!   (`yak-protocol`), which [`Producer::send_records`] uses when it can.
//! - [`model`]: the API's request and response shapes.
//! - [`fields`]: how a row's text fields (a CSV line) become a JSON payload,
//!   shared by `yak produce --csv` and the producer UI.
//! - [`probe`]: [`Probe`] — one server (a node or a UI) asked directly at
//!   its URL, `/health` and `/metrics`, without leader discovery; built
//!   from a [`ClientConfig`] like every client, so it sends the token and
//!   trusts the CAs. For tools that start and watch the processes.
//! - `error`: [`ClientError`].
//!
//! Dependencies between them run one way: `group` uses `admin`, `fetch`,
//! `consumer` (its start rule) and `cluster`; `admin`, `fetch` and
//! `cluster::produce_batch` use `cluster`, which uses `config` and `wire`;
//! `probe` uses `config` alone.
//!
//! ```no_run
//! # async fn demo() -> yak_client::Result<()> {
//! use std::time::Duration;
//! use yak_client::{Consumer, Producer, ProducerConfig, Record, StartAt, YakClient};
//!
//! let client = YakClient::new(["http://127.0.0.1:5001", "http://127.0.0.1:5002"])?;
//! let producer = Producer::new(client.clone(), ProducerConfig::default());
//! let at = producer.send(Record::new("orders", serde_json::json!({"id": 1})).key("c-7")).await?;
//! let mut consumer = Consumer::new(client, "orders", at.partition, StartAt::Offset(at.offset));
//! let records = consumer.poll(Duration::from_secs(1)).await?;
//! assert_eq!(records[0].offset, at.offset);
//! # Ok(()) }
//! ```

mod admin;
pub mod cluster;
mod config;
#[cfg(feature = "cli")]
pub mod connect;
pub mod consumer;
mod error;
mod fetch;
pub mod fields;
pub mod group;
pub mod model;
pub mod probe;
pub mod producer;
mod tcp;
mod wire;

pub use cluster::{ClientConfig, Discovery, YakClient, discover, read_ca};
#[cfg(feature = "cli")]
pub use connect::ConnectArgs;
pub use consumer::{Consumer, Skipped, StartAt};
pub use error::{ClientError, Result};
pub use group::{
    Assignor, GroupConfig, GroupConsumer, GroupDetail, GroupEvent, GroupList, GroupRecord,
    GroupState, GroupSummary, MemberDetail, Offsets, PartitionOffset, Reset, ResetTo,
    TopicPartition,
};
pub use model::{
    Consumed, Fetch, LeaderInfo, Produced, ProducedBatch, Record, TopicDetail, TopicSummary,
};
pub use probe::Probe;
pub use producer::{Producer, ProducerConfig};
pub use yak_protocol::{ErrorCode, MAX_TOPIC_NAME, TopicConfig, validate_topic_name};
