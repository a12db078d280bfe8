//! # broker — the YAK node
//!
//! One implementation behind both the `broker` and `follower` binaries: a
//! node holds topics split into partitions (each a `partition-log`), and
//! obeys a leader lease in Redis. The leader assigns offsets, commits each
//! write by raising the partition's high-water mark in Redis (fenced by its
//! epoch) and only then acknowledges it.
//!
//! ## Layout
//! - [`config`]: flags and environment variables.
//! - [`store`]: Redis — lease, epochs, HWMs, ISR, topics, node registry;
//!   every leader-only change is an epoch-checked Lua script.
//! - [`role`]: the role state machine, a pure transition function.
//! - [`lease`]: the driver task that owns the role, and the lease gate.
//! - [`node`]: the shared node handle, start-up and upkeep.
//! - [`topics`], [`partition`]: local topics; one writer task per partition
//!   with group commit.
//! - [`replication`]: synchronous replication — ISR, push, catch-up,
//!   truncation — and its `/internal` protocol.
//! - [`producers`]: idempotent-produce (duplicate) tracking.
//! - [`activity`]: the bounded activity log the dashboard shows.
//! - [`partitioner`]: Kafka-compatible key → partition.
//! - [`checkpoint`]: the node's persisted highest epoch and HWMs.
//! - [`metrics`]: Prometheus metrics; [`logging`]: log lines with node and role.
//! - [`stats`]: the once-a-second dashboard snapshot and rate series.
//! - [`http`]: the HTTP API and its single error mapping; [`tcp`]: the
//!   binary produce port, the same produce path without HTTP.
//!
//! The whole produce path and its invariants are in `docs/architecture.md`.

pub mod activity;
pub mod checkpoint;
pub mod config;
pub mod http;
pub mod launch;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod partition;
pub mod partitioner;
pub mod producers;
pub mod replication;
pub mod role;
pub mod stats;
pub mod store;
pub mod tcp;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod topics;

pub use config::{NodeArgs, NodeConfig, StartAs};
pub use node::{Node, NodeError};

use tokio_util::sync::CancellationToken;

/// Runs a node until `shutdown` is cancelled: starts it, serves HTTP, and
/// on shutdown stops serving, releases the lease (if held) and syncs logs.
pub async fn run(config: NodeConfig, shutdown: CancellationToken) -> Result<(), NodeError> {
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| NodeError::Bind {
            addr: config.listen,
            source,
        })?;
    let tcp =
        match &config.tcp {
            Some((addr, _)) => Some(tokio::net::TcpListener::bind(addr).await.map_err(
                |source| NodeError::Bind {
                    addr: *addr,
                    source,
                },
            )?),
            None => None,
        };
    tracing::info!(
        node_id = %config.node_id,
        listen = %config.listen,
        url = %config.advertised_url,
        tcp = config.tcp.as_ref().map_or("off", |(_, advertised)| advertised.as_str()),
        data_dir = %config.data_dir.display(),
        redis = %config.redis_url,
        "starting {} node",
        config.start_as.name()
    );
    let (node, lease_task) = Node::start(config, shutdown.clone())?;
    let server = http::server(node.clone(), listener).map_err(|source| NodeError::Bind {
        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let handle = server.handle();
    let serving = tokio::spawn(server);
    let serving_tcp =
        tcp.map(|listener| tokio::spawn(tcp::serve(node.clone(), listener, shutdown.clone())));
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    let _ = lease_task.await;
    handle.stop(true).await;
    let _ = serving.await;
    if let Some(serving_tcp) = serving_tcp {
        let _ = serving_tcp.await;
    }
    Ok(())
}
