//! A cluster: one Redis, a broker and followers, each test with its own
//! name and loopback subnet.

use std::{
    fmt,
    future::Future,
    panic::Location,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use serde_json::Value;

use reqwest::StatusCode;

use crate::{
    DEFAULT_LEASE_TTL_MS, http::http_client, http::try_send, net::Subnet, net::free_port,
    node::NodeKind, node::NodeOptions, node::NodeProcess, redis::RedisOptions, redis::RedisServer,
    wait::poll_until,
};

/// A cluster name (Redis key prefix) unique to this process and call.
pub fn unique_cluster_name(hint: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let hint: String = hint
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("yaktest-{hint}-{}-{n}-{nanos:x}", std::process::id())
}

/// Builder of a [`Cluster`]: one Redis, one `broker`, `n` `follower`s.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    name: Option<String>,
    followers: usize,
    lease_ttl_ms: u64,
    min_insync: Option<u32>,
    redis: RedisOptions,
    args: Vec<String>,
    env: Vec<(String, String)>,
    leader_timeout: Duration,
    tls: bool,
    kafka: bool,
    client_token: Option<String>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self {
            name: None,
            followers: 0,
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            min_insync: None,
            redis: RedisOptions::default(),
            args: Vec::new(),
            env: Vec::new(),
            leader_timeout: Duration::from_secs(15),
            tls: false,
            kafka: false,
            client_token: None,
        }
    }
}

impl ClusterBuilder {
    /// The cluster name (Redis key prefix); unique by default.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many `follower` nodes besides the `broker` (default 0).
    pub fn followers(mut self, n: usize) -> Self {
        self.followers = n;
        self
    }

    /// Lease TTL of every node (default [`DEFAULT_LEASE_TTL_MS`]).
    pub fn lease_ttl_ms(mut self, ms: u64) -> Self {
        self.lease_ttl_ms = ms;
        self
    }

    /// `--min-insync-replicas` of every node.
    pub fn min_insync(mut self, n: u32) -> Self {
        self.min_insync = Some(n);
        self
    }

    /// Redis with an append-only file.
    pub fn redis_appendonly(mut self, on: bool) -> Self {
        self.redis.appendonly = on;
        self
    }

    /// Redis with `--appendfsync always`.
    pub fn redis_appendfsync_always(mut self, on: bool) -> Self {
        self.redis.appendfsync_always = on;
        self
    }

    /// Extra flags for every node.
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for every node.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Every node opens its Kafka listener ([`NodeOptions::kafka`]).
    pub fn kafka(mut self) -> Self {
        self.kafka = true;
        self
    }

    /// Every node serves HTTPS ([`NodeOptions::tls`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Every node takes `--client-token` (add a `--cluster-token` with
    /// [`ClusterBuilder::extra_args`]); the harness's requests send it.
    pub fn client_token(mut self, token: impl Into<String>) -> Self {
        self.client_token = Some(token.into());
        self
    }

    /// How long [`ClusterBuilder::start`] waits for a leader (default 15 s).
    pub fn leader_timeout(mut self, timeout: Duration) -> Self {
        self.leader_timeout = timeout;
        self
    }

    /// Options for node `index` (0 is the broker).
    fn node_options(
        &self,
        redis_url: &str,
        name: &str,
        subnet: Option<Subnet>,
        index: usize,
    ) -> NodeOptions {
        let (kind, id) = match index {
            0 => (NodeKind::Broker, "broker".to_owned()),
            i => (NodeKind::Follower, format!("follower-{i}")),
        };
        let mut options = NodeOptions::new(kind, redis_url, name)
            .id(id)
            .lease_ttl_ms(self.lease_ttl_ms)
            .args(self.args.iter().cloned());
        if let Some(subnet) = subnet {
            options = options.host(subnet.node(index));
        }
        if let Some(n) = self.min_insync {
            options = options.args(["--min-insync-replicas".to_owned(), n.to_string()]);
        }
        if self.kafka {
            options = options.kafka();
        }
        if self.tls {
            options = options.tls();
        }
        if let Some(token) = &self.client_token {
            options = options.client_token(token.clone());
        }
        options.env = self.env.clone();
        options
    }

    /// Starts Redis, the broker, then the followers, and returns once a
    /// leader is elected and acknowledging (its `/health` says `leader`).
    /// Everything listens on a [`Subnet`] of its own, except with TLS: the
    /// test certificate names 127.0.0.1.
    pub async fn start(self) -> Cluster {
        let subnet = (!self.tls).then(Subnet::next);
        let redis = RedisServer::start_with(RedisOptions {
            host: subnet.map(Subnet::redis),
            ..self.redis
        })
        .await;
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| unique_cluster_name("cluster"));
        let mut nodes = Vec::with_capacity(self.followers + 1);
        for index in 0..=self.followers {
            let options = self.node_options(&redis.url(), &name, subnet, index);
            nodes.push(NodeProcess::start(options).await);
        }
        let cluster = Cluster {
            nodes,
            redis,
            name,
            subnet,
            template: self.clone(),
        };
        cluster.wait_for_leader(self.leader_timeout, |_| true).await;
        cluster
    }
}

/// Who leads, as `/metadata/leader` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub id: String,
    /// The leader's advertised URL, if registered.
    pub url: Option<String>,
    pub epoch: u64,
    /// The whole `/metadata/leader` body.
    pub body: Value,
}

/// One Redis and the nodes that use it. Dropping it kills everything.
pub struct Cluster {
    // Nodes drop (and die) before their Redis.
    nodes: Vec<NodeProcess>,
    redis: RedisServer,
    name: String,
    subnet: Option<Subnet>,
    /// How the nodes were configured, for [`Cluster::add_node`].
    template: ClusterBuilder,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("redis", &self.redis)
            .field("nodes", &self.nodes)
            .finish()
    }
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// The cluster name (Redis key prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    pub fn redis_mut(&mut self) -> &mut RedisServer {
        &mut self.redis
    }

    /// A fresh [`ClusterStore`] on this cluster's Redis and key prefix, to
    /// read what the nodes stored there (HWMs, ISRs, the lease). Call it
    /// inside the test's runtime.
    pub fn store(&self) -> broker::store::ClusterStore {
        broker::store::ClusterStore::new(&self.redis.url(), &self.name, Duration::from_secs(2))
            .expect("a redis URL the nodes use parses")
    }

    /// Registers a node `id` that never answers (its URL is a free port) in
    /// the cluster's registry for five minutes: a replica that exists but
    /// cannot keep up, as one that crashed just after its last heartbeat.
    pub async fn register_ghost(&self, id: &str) {
        let ghost = broker::store::NodeInfo {
            id: id.to_owned(),
            url: format!("http://127.0.0.1:{}", free_port()),
            tcp: None,
            kafka: None,
            role: "follower".to_owned(),
            epoch: 0,
            heartbeat_ms: broker::clock::now_ms(),
        };
        self.store()
            .heartbeat(&ghost, Duration::from_secs(300))
            .await
            .expect("redis answers");
    }

    /// Every node; index 0 is the broker, then the followers.
    pub fn nodes(&self) -> &[NodeProcess] {
        &self.nodes
    }

    pub fn node(&self, index: usize) -> &NodeProcess {
        &self.nodes[index]
    }

    pub fn node_mut(&mut self, index: usize) -> &mut NodeProcess {
        &mut self.nodes[index]
    }

    /// The `broker` node (index 0).
    pub fn broker(&self) -> &NodeProcess {
        &self.nodes[0]
    }

    pub fn broker_mut(&mut self) -> &mut NodeProcess {
        &mut self.nodes[0]
    }

    /// The `follower` nodes.
    pub fn followers(&self) -> &[NodeProcess] {
        &self.nodes[1..]
    }

    /// The node with id `id`.
    pub fn node_by_id(&self, id: &str) -> Option<&NodeProcess> {
        self.nodes.iter().find(|n| n.id() == id)
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == id)
    }

    /// `/metadata/leader` as the first reachable, unpaused node answers it
    /// (`None` if no node answers or nobody holds the lease).
    pub async fn leader_info(&self) -> Option<LeaderInfo> {
        for node in self.nodes.iter().filter(|n| n.is_live()) {
            let request = node.authorized(
                http_client()
                    .get(format!("{}/metadata/leader", node.url()))
                    .timeout(Duration::from_secs(2)),
            );
            let Ok(reply) = try_send(request).await else {
                continue;
            };
            if reply.status != StatusCode::OK {
                continue;
            }
            let body = reply.json;
            let id = body["leader_id"].as_str()?.to_owned();
            return Some(LeaderInfo {
                id,
                url: body["leader_url"].as_str().map(str::to_owned),
                epoch: body["epoch"].as_u64().unwrap_or(0),
                body,
            });
        }
        None
    }

    /// The node that holds the lease right now, by `/metadata/leader`.
    pub async fn leader(&self) -> Option<&NodeProcess> {
        let info = self.leader_info().await?;
        self.node_by_id(&info.id)
    }

    /// Waits until a leader that satisfies `accept` holds the lease and is
    /// acknowledging writes (its own `/health` says `leader`), and returns
    /// it. Panics after `timeout`.
    #[track_caller]
    pub fn wait_for_leader<'a, P>(
        &'a self,
        timeout: Duration,
        accept: P,
    ) -> impl Future<Output = LeaderInfo> + 'a
    where
        P: Fn(&LeaderInfo) -> bool + 'a,
    {
        let caller = Location::caller();
        async move {
            poll_until(
                format!("a leader in cluster {} (at {caller})", self.name),
                timeout,
                || async {
                    let info = self.leader_info().await?;
                    if !accept(&info) {
                        return None;
                    }
                    let node = self.node_by_id(&info.id)?;
                    if node.is_paused() {
                        return None;
                    }
                    (node.role().await.as_deref() == Some("leader")).then_some(info)
                },
            )
            .await
        }
    }

    /// Waits until every running node knows every other running node's
    /// URL: its cluster view (`GET /stats` → `nodes`, refreshed from the
    /// Redis registry together with the table of peer URLs) lists them all.
    /// A leader drops from the ISR, at the next write, a follower whose URL
    /// it does not know yet ("not registered"), so tests that need a stable
    /// ISR call this after starting or restarting nodes. Panics after
    /// `timeout`.
    #[track_caller]
    pub fn wait_for_peers(&self, timeout: Duration) -> impl Future<Output = ()> + '_ {
        let caller = Location::caller();
        async move {
            let running: Vec<&NodeProcess> = self.nodes.iter().filter(|n| n.is_live()).collect();
            let ids: Vec<&str> = running.iter().map(|n| n.id()).collect();
            poll_until(
                format!("nodes {ids:?} to know each other (at {caller})"),
                timeout,
                || async {
                    for node in &running {
                        let stats = node.stats().await?;
                        let known: Vec<&str> = stats["nodes"]
                            .as_array()?
                            .iter()
                            .filter_map(|n| n["id"].as_str())
                            .collect();
                        if !ids.iter().all(|id| known.contains(id)) {
                            return None;
                        }
                    }
                    Some(())
                },
            )
            .await
        }
    }

    /// Starts one more node of `kind` with id `id`, configured like the
    /// others (same Redis, cluster name, lease TTL, flags and environment),
    /// and returns its index once `/health` answers.
    pub async fn add_node(&mut self, kind: NodeKind, id: impl Into<String>) -> usize {
        let id = id.into();
        assert!(
            self.node_by_id(&id).is_none(),
            "node id {id} is already in use"
        );
        let mut options = self
            .template
            .node_options(&self.redis.url(), &self.name, self.subnet, self.nodes.len())
            .id(id);
        options.kind = kind;
        self.nodes.push(NodeProcess::start(options).await);
        self.nodes.len() - 1
    }

    /// Prints every node's last output lines.
    pub fn dump_logs(&self) {
        for node in &self.nodes {
            node.dump_logs();
        }
    }
}
