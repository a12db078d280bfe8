//! # testkit — the YAK integration harness
//!
//! Real processes, no mocks: a [`RedisServer`] (the `redis-server` found on
//! `PATH`), YAK nodes ([`NodeProcess`], the real `broker` and `follower`
//! binaries), a [`Cluster`] builder that starts one of each plus followers,
//! a poll-with-deadline helper ([`wait_until`]) and its opposite
//! ([`hold_for`]: "stays true for a while"), small HTTP helpers
//! ([`produce`], [`consume`], [`get_json`], [`post_json`], ...), and ways
//! to look behind the API: a node's log files on disk
//! ([`NodeProcess::log_bytes`], [`wait_for_identical_logs`]), its activity
//! log ([`NodeProcess::activity`]) and the cluster's Redis state
//! ([`Cluster::store`]). Nodes can serve HTTPS with a test CA ([`tls`],
//! [`ClusterBuilder::tls`]) and require a client token
//! ([`ClusterBuilder::client_token`]); the harness's own requests then
//! trust the CA and send the token ([`NodeProcess::authorized`]).
//!
//! A crate of its own, never linked into a product binary: crates use it
//! as `testkit.workspace = true` in their `[dev-dependencies]` (nemesis,
//! a test tool, as a dependency).
//!
//! ## Modules
//! - [`wait`]: poll-with-deadline ([`wait_until`], [`wait_for`]) and
//!   [`hold_for`].
//! - [`redis`]: [`RedisServer`], a real `redis-server` on a free port.
//! - [`node`]: [`NodeProcess`], a real `broker` or `follower` process, and
//!   reading its logs from outside.
//! - [`cluster`]: [`Cluster`], one Redis plus nodes, each test its own.
//! - [`ui`]: [`UiProcess`], a real `producer-ui` or `consumer-ui` process.
//! - [`browser`]: [`Browser`], headless Chromium over WebDriver.
//! - [`tls`]: a test CA and certificates for HTTPS nodes.
//! - [`cli`]: checks of a binary's flags ([`cli::flags_without_env`]).
//! - [`http`]: the harness's HTTP client and node-API helpers.
//! - [`net`]: free ports, per-cluster loopback subnets, raw-socket clients.
//! - [`process`]: signals, exits, output tails, finding and building the
//!   workspace's binaries.
//!
//! ```no_run
//! # async fn demo() {
//! use testkit::{Cluster, consume, produce};
//! use serde_json::json;
//!
//! let cluster = Cluster::builder().followers(1).start().await;
//! let leader = cluster.leader().await.expect("a leader");
//! let (status, body) = produce(leader.url(), &json!({"topic": "t",
//! "payload": 1})).await;
//! assert_eq!(status, 200, "{body}");
//! let (_, read) = consume(leader.url(), "t",
//! body["partition"].as_u64().unwrap() as u32, 0).await;
//! assert_eq!(read["records"][0]["payload"], 1);
//! # }
//! ```
//!
//! ## Rules the harness follows (and tests should too)
//! - Every test gets its own Redis on a free port and its own nodes, with a
//!   cluster name unique to the test, so tests run in parallel.
//! - Nothing waits with a fixed sleep: every wait polls a condition against
//!   a deadline and panics with a clear message when it passes.
//! - Processes are killed when their handle is dropped, also when a test
//!   panics; a node's captured output (last [`LOG_TAIL_LINES`] lines) is
//!   printed then, so a failing test shows what the node said.
//! - Default ports (5001/5002, 6379) are never used.
//!
//! ## Finding the binaries
//! [`bin_dir`] is `$YAK_BIN_DIR` if set; otherwise the cargo profile
//! directory of the running test (`…/target/debug/deps/<test>` →
//! `…/target/debug/`). Unless `YAK_BIN_DIR` is set, the first start of a
//! binary in a
//! test process runs `cargo build -p <its package>` once (a no-op
//! when they are up to date), because `cargo test -p <crate>` builds no
//! binary of another package.
//!
//! Environment knobs: `YAK_BIN_DIR` (where `broker` and `follower` are),
//! `YAK_TESTKIT_KEEP=1` (keep temp dirs for inspection), `RUST_LOG` (passed
//! on to the nodes).

pub mod browser;
pub mod cli;
pub mod cluster;
pub mod http;
pub mod kafka;
pub mod net;
pub mod node;
pub mod process;
pub mod redis;
pub mod tls;
pub mod ui;
pub mod wait;

use std::time::Duration;

pub use browser::Browser;
pub use cluster::{Cluster, ClusterBuilder, LeaderInfo, unique_cluster_name};
pub use http::{
    Reply, StatusCode, consume, consume_all, consume_with, create_topic, describe_topic, get_json,
    http_client, http_client_with_timeout, node_snapshot, post_json, post_raw, produce,
    produce_batch, request, send, try_send,
};
pub use kafka::{KcatRun, kafka_python, kcat, kcat_run};
pub use net::{SlowClient, Subnet, free_port, free_port_on, free_port_run, slow_client};
pub use node::{NodeKind, NodeOptions, NodeProcess, node_binary, wait_for_identical_logs};
pub use process::{bin_dir, build_bins, tail};
pub use redis::{RedisBuilder, RedisOptions, RedisServer};
pub use ui::{Ui, UiProcess};
pub use wait::{hold_for, wait_for, wait_until};

/// How often [`wait_until`] re-checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How long a process gets to start answering.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process gets to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a node's output printed when a test fails.
pub const LOG_TAIL_LINES: usize = 50;
/// Per-request timeout of [`http_client`].
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lease TTL the [`Cluster`] builder uses unless told otherwise.
pub const DEFAULT_LEASE_TTL_MS: u64 = 1000;

// ---------------------------------------------------------------------------
