//! # broker — the YAK node
//!
//! One implementation behind both the `broker` and `follower` binaries: a
//! node holds topics split into partitions (each a `partition-log`), and
//! obeys a leader lease in Redis. The leader assigns offsets, commits each
//! write by raising the partition's high-water mark in Redis (fenced by its
//! epoch) and only then acknowledges it.
//!
//! ## Modules, from the bottom up
//! Each imports only modules above it in this list (a test checks that the
//! module graph has no cycle); `node` wires them together.
//! - [`clock`], `config`, `logging`, `metrics`, `activity`: time,
//!   flags and environment variables, log lines with node and role,
//!   Prometheus metrics, the bounded activity log the dashboard shows.
//! - `role`: the role state machine, a pure transition function.
//! - [`store`]: Redis — lease, epochs, HWMs, ISR, topics, node registry;
//!   every leader-only change is an epoch-checked Lua script.
//! - `checkpoint`: the node's persisted highest epoch and HWMs.
//! - `lease`: the driver task that owns the role, and the lease gate;
//!   it reaches the rest of the node only through `lease::Duties`.
//! - `peer`: the node-to-node `/internal` protocol and its client.
//! - `producers`: idempotent-produce (duplicate) tracking;
//!   `partitioner`: Kafka-compatible key → partition.
//! - `partition`: one writer task per partition with group commit, and
//!   the leader's side of replication (ISR, push, catch-up, truncation).
//! - `topics`: the local topics and their partitions.
//! - `follower`: the follower's side of replication, one session per
//!   leader.
//! - `groups`: the consumer-group coordinator (membership, rebalances,
//!   assignors, committed offsets in Redis), served by the leader.
//! - `node`: the shared node handle, start-up and upkeep.
//! - `produce`: the produce service every transport shares (topic
//!   resolution and creation, batch checks, metrics) and its typed error.
//! - `stats`: the once-a-second dashboard snapshot and rate series.
//! - `http`: the HTTP API and its single error mapping; `tcp`: the
//!   binary produce port; `kafka`: the Kafka protocol listener. All are
//!   thin adapters over `produce` and the partitions; the two TCP ones
//!   share `listener`'s accept loop.
//! - [`launch`]: what the `broker` and `follower` binaries run.
//!
//! Other crates see only what they use: [`run`] and the start-up types,
//! [`launch`] for the binaries, [`store`] (tests and nemesis read the
//! cluster's Redis state) and [`clock`].
//!
//! The whole produce path and its invariants are in `docs/architecture.md`.

mod activity;
mod checkpoint;
pub mod clock;
mod config;
mod follower;
mod groups;
mod http;
mod kafka;
pub mod launch;
mod lease;
mod listener;
mod logging;
mod metrics;
mod node;
mod partition;
mod partitioner;
mod peer;
mod produce;
mod producers;
mod role;
mod stats;
pub mod store;
mod tcp;
mod topics;

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
    // Loaded once: the HTTP server and the Kafka listener share it.
    let tls = config.server.tls_config().map_err(NodeError::Tls)?;
    let tcp = listener::bind(config.tcp.as_ref().map(|(addr, _)| *addr)).await?;
    let kafka = listener::bind(config.kafka.as_ref().map(|(addr, _)| *addr)).await?;
    tracing::info!(
        node_id = %config.node_id,
        listen = %config.listen,
        url = %config.advertised_url,
        tcp = config.tcp.as_ref().map_or("off", |(_, advertised)| advertised.as_str()),
        kafka = config.kafka.as_ref().map_or("off", |(_, advertised)| advertised.as_str()),
        data_dir = %config.data_dir.display(),
        redis = %config.redis_url,
        "starting {} node",
        config.start_as.name()
    );
    let (node, lease_task) = Node::start(config, shutdown.clone())?;
    let stats = stats::spawn_sampler(node.clone(), shutdown.clone());
    let server = http::server(node.clone(), stats, listener, tls.clone()).map_err(|source| {
        NodeError::Bind {
            addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        }
    })?;
    let handle = server.handle();
    let serving = tokio::spawn(server);
    let serving_tcp =
        tcp.map(|listener| tokio::spawn(tcp::serve(node.clone(), listener, shutdown.clone())));
    let serving_kafka = kafka.map(|listener| {
        let tls = tls.map(std::sync::Arc::new);
        tokio::spawn(kafka::serve(node.clone(), listener, tls, shutdown.clone()))
    });
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    let _ = lease_task.await;
    handle.stop(true).await;
    let _ = serving.await;
    if let Some(serving_tcp) = serving_tcp {
        let _ = serving_tcp.await;
    }
    if let Some(serving_kafka) = serving_kafka {
        let _ = serving_kafka.await;
    }
    Ok(())
}
