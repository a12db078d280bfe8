//! The cluster under test: a real `redis-server` (append-only,
//! `appendfsync always`), a `broker` and one or two `follower`s as real
//! processes (from [`testkit`]), each node on its own loopback
//! address with its own temp dir, and a [`Proxy`] on every link that a
//! fault can cut.
//!
//! ## Addresses
//! Every cluster has a loopback /24 of its own, 127.a.b.0
//! ([`testkit::Subnet`]): Redis on .1, node i on .(11+i), clients
//! on .100. Clusters that run at once (the scenarios do) never share an
//! address, so a port that a killed node leaves free until it restarts can
//! be taken only by its own cluster, never by another's node that clients
//! would then reach.
//!
//! ## Links
//! - `→ node i`: node i's advertised URL is its *front proxy* (.(11+i):p),
//!   so clients and peers (which learn URLs from Redis) reach it only
//!   through the proxy. Node j connects from .(11+j) (`--source-address`),
//!   clients from [`Cluster::client_ip`], so the proxy tells
//!   `node j → node i` and `clients → node i` apart.
//! - `→ node i` over the binary port and the Kafka listener: each has a
//!   front proxy of its own (.(11+i):q, :r), which the node advertises
//!   (`--advertised-tcp`, `--kafka-advertised`; Kafka Metadata answers
//!   name it), so a client link fault reaches all three transports. Leaders
//!   stream their rounds to node i through its binary port, so a
//!   `node j → node i` fault is set on its HTTP and binary fronts.
//! - `node i ↔ redis`: node i's `--redis-url` is its own proxy to Redis.
//!
//! The harness itself (observer, final reads, leader lookups) talks to the
//! nodes' and Redis's real ports, never through a proxy.
//!
//! Invariant: a node's front proxies and Redis proxy outlive the node's
//! restarts (the node keeps its ports), so links keep their modes across
//! kills.

use std::{
    fs,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use broker::store::ClusterStore;
use rand::Rng;
use testkit::{NodeKind, NodeOptions, NodeProcess, RedisServer, Subnet, unique_cluster_name};

use crate::proxy::{LinkMode, Proxy, ProxyError};

/// The last byte of the address clients connect from.
const CLIENTS: u8 = 100;

/// How to build the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Followers besides the broker: 1 or 2.
    pub followers: usize,
    pub lease_ttl_ms: u64,
    pub min_insync_replicas: u32,
    pub topic: String,
    pub partitions: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            followers: 2,
            lease_ttl_ms: 2000,
            min_insync_replicas: 2,
            topic: "nemesis".to_owned(),
            partitions: 3,
        }
    }
}

/// One end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Clients,
    Node(usize),
    Redis,
}

/// What can go wrong building or damaging the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("redis: {0}")]
    Store(#[from] broker::store::StoreError),
    #[error("no link between {0:?} and {1:?}")]
    NoLink(Endpoint, Endpoint),
    #[error("node {0} must be stopped before its log is damaged")]
    Running(usize),
    #[error("damaging {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How to damage the tail of a killed node's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailDamage {
    /// Cut off the last bytes (a write that never reached the disk).
    Torn,
    /// Flip one bit near the end (a bad sector).
    BitFlip,
}

/// Where a batch's CRC-covered bytes start (docs/storage.md).
const CRC_START: usize = 20;

/// The position of the last whole batch of a segment, if the segment is a
/// sequence of whole batches.
fn last_batch(segment: &[u8]) -> Option<usize> {
    let (mut pos, mut last) = (0, None);
    while pos < segment.len() {
        let header = partition_log::BatchHeader::parse(&segment[pos..]).ok()?;
        last = Some(pos);
        pos += header.total_len();
    }
    (pos == segment.len()).then_some(last).flatten()
}

/// A node's real `host:port` as testkit names it.
fn real_addr(addr: &str) -> SocketAddr {
    addr.parse().expect("testkit names ports as ip:port")
}

/// The running cluster. Dropping it kills every process.
pub struct Cluster {
    config: ClusterConfig,
    name: String,
    subnet: Subnet,
    // Nodes are dropped (killed) before the proxies and Redis.
    nodes: Vec<NodeProcess>,
    /// Per node: its HTTP front proxy, and those of its binary port and
    /// Kafka listener.
    fronts: Vec<Proxy>,
    binary_fronts: Vec<Proxy>,
    kafka_fronts: Vec<Proxy>,
    redis_links: Vec<Proxy>,
    redis: RedisServer,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("nodes", &self.nodes)
            .field("redis", &self.redis)
            .finish()
    }
}

impl Cluster {
    /// Starts Redis, the proxies and the nodes (not waiting for a leader).
    pub async fn start(config: ClusterConfig) -> Result<Self, ClusterError> {
        let subnet = Subnet::next();
        let redis = RedisServer::builder()
            .appendonly(true)
            .appendfsync_always(true)
            .host(subnet.redis())
            .start()
            .await;
        let name = unique_cluster_name("nemesis");
        let redis_addr = SocketAddr::new(subnet.redis(), redis.port());
        let mut cluster = Self {
            name,
            subnet,
            nodes: Vec::new(),
            fronts: Vec::new(),
            binary_fronts: Vec::new(),
            kafka_fronts: Vec::new(),
            redis_links: Vec::new(),
            redis,
            config,
        };
        for index in 0..=cluster.config.followers {
            let ip = subnet.node(index);
            let front = Proxy::start(SocketAddr::new(ip, 0), None).await?;
            let binary_front = Proxy::start(SocketAddr::new(ip, 0), None).await?;
            let kafka_front = Proxy::start(SocketAddr::new(ip, 0), None).await?;
            let redis_link =
                Proxy::start(SocketAddr::new(subnet.redis(), 0), Some(redis_addr)).await?;
            let kind = if index == 0 {
                NodeKind::Broker
            } else {
                NodeKind::Follower
            };
            let options = NodeOptions::new(
                kind,
                format!("redis://{}", redis_link.addr()),
                &cluster.name,
            )
            .id(format!("node-{}", index + 1))
            .host(ip)
            .kafka()
            .lease_ttl_ms(cluster.config.lease_ttl_ms)
            .args([
                "--advertised-url".to_owned(),
                format!("http://{}", front.addr()),
                "--advertised-tcp".to_owned(),
                binary_front.addr().to_string(),
                "--kafka-advertised".to_owned(),
                kafka_front.addr().to_string(),
                "--source-address".to_owned(),
                ip.to_string(),
                "--min-insync-replicas".to_owned(),
                cluster.config.min_insync_replicas.to_string(),
                "--default-partitions".to_owned(),
                cluster.config.partitions.to_string(),
            ]);
            let node = NodeProcess::start(options).await;
            front.set_target(SocketAddr::new(ip, node.port()));
            binary_front.set_target(real_addr(&node.tcp_addr()));
            kafka_front.set_target(real_addr(&node.kafka_addr()));
            cluster.nodes.push(node);
            cluster.fronts.push(front);
            cluster.binary_fronts.push(binary_front);
            cluster.kafka_fronts.push(kafka_front);
            cluster.redis_links.push(redis_link);
        }
        Ok(cluster)
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn nodes(&self) -> &[NodeProcess] {
        &self.nodes
    }

    pub fn node_mut(&mut self, index: usize) -> &mut NodeProcess {
        &mut self.nodes[index]
    }

    pub fn redis_mut(&mut self) -> &mut RedisServer {
        &mut self.redis
    }

    /// The address every client connects from.
    pub fn client_ip(&self) -> IpAddr {
        self.subnet.ip(CLIENTS)
    }

    /// The URLs clients bootstrap from: the nodes' front proxies.
    pub fn client_urls(&self) -> Vec<String> {
        self.fronts
            .iter()
            .map(|p| format!("http://{}", p.addr()))
            .collect()
    }

    /// The Kafka bootstrap addresses: the nodes' Kafka front proxies.
    pub fn kafka_addrs(&self) -> Vec<SocketAddr> {
        self.kafka_fronts.iter().map(Proxy::addr).collect()
    }

    /// A store on the real Redis port (not through a proxy).
    pub fn store(&self) -> Result<ClusterStore, ClusterError> {
        Ok(ClusterStore::new(
            &self.redis.url(),
            &self.name,
            Duration::from_secs(1),
        )?)
    }

    /// The index of the node that holds the lease, by Redis.
    pub async fn leader_index(&self) -> Option<usize> {
        let (holder, _) = self.store().ok()?.lease().await.ok()?;
        let holder = holder?;
        self.nodes.iter().position(|n| n.id() == holder.node_id)
    }

    /// Sets the directed link `from → to`. Redis links are per node and
    /// carry both directions (Redis never connects out); a link between
    /// clients and a node likewise (nodes never connect to clients).
    pub fn set_link(
        &self,
        from: Endpoint,
        to: Endpoint,
        mode: LinkMode,
    ) -> Result<(), ClusterError> {
        match (from, to) {
            (Endpoint::Clients, Endpoint::Node(j)) | (Endpoint::Node(j), Endpoint::Clients) => {
                for front in [
                    &self.fronts[j],
                    &self.binary_fronts[j],
                    &self.kafka_fronts[j],
                ] {
                    front.set(Some(self.client_ip()), mode);
                }
            }
            (Endpoint::Node(i), Endpoint::Node(j)) if i != j => {
                for front in [&self.fronts[j], &self.binary_fronts[j]] {
                    front.set(Some(self.subnet.node(i)), mode);
                }
            }
            (Endpoint::Node(i), Endpoint::Redis) | (Endpoint::Redis, Endpoint::Node(i)) => {
                self.redis_links[i].set(None, mode);
            }
            _ => return Err(ClusterError::NoLink(from, to)),
        }
        Ok(())
    }

    /// Every link passes again.
    pub fn heal_links(&self) {
        for proxy in self
            .fronts
            .iter()
            .chain(&self.binary_fronts)
            .chain(&self.kafka_fronts)
            .chain(&self.redis_links)
        {
            proxy.heal();
        }
    }

    /// Damages the tail of the newest segment of every partition of the
    /// node's log, which must be stopped. Returns how many files changed.
    pub fn damage_tail(
        &mut self,
        index: usize,
        damage: TailDamage,
        rng: &mut impl Rng,
    ) -> Result<usize, ClusterError> {
        if self.nodes[index].is_running() {
            return Err(ClusterError::Running(index));
        }
        let mut changed = 0;
        for partition in 0..self.config.partitions {
            let segments = self.nodes[index].segments(&self.config.topic, partition);
            let Some(segment) = segments.last() else {
                continue;
            };
            let io = |source| ClusterError::Io {
                path: segment.clone(),
                source,
            };
            let mut bytes = fs::read(segment).map_err(io)?;
            if bytes.is_empty() {
                continue;
            }
            match damage {
                TailDamage::Torn => {
                    let span = bytes.len().min(256);
                    bytes.truncate(bytes.len() - rng.random_range(1..=span));
                }
                TailDamage::BitFlip => {
                    // Within the CRC-covered bytes of the last batch: damage
                    // to an earlier batch, followed by valid ones, is media
                    // corruption that recovery refuses to cut by design
                    // (docs/storage.md), not a crash's torn write.
                    let Some(last) = last_batch(&bytes) else {
                        continue;
                    };
                    let at = rng.random_range(last + CRC_START..bytes.len());
                    bytes[at] ^= 1 << rng.random_range(0..8);
                }
            }
            fs::write(segment, &bytes).map_err(io)?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Resumes paused processes, restarts stopped ones and heals every
    /// link: the state every run ends in before the final checks.
    pub async fn heal_all(&mut self) {
        self.heal_links();
        if !self.redis.is_running() {
            self.redis.restart().await;
        }
        self.redis.resume();
        for node in &mut self.nodes {
            if node.is_paused() {
                node.resume();
            }
            if !node.is_running() {
                node.restart().await;
            }
        }
    }

    /// Prints every node's last output lines (for a failed run).
    pub fn dump_logs(&self) {
        for node in &self.nodes {
            node.dump_logs();
        }
    }
}
