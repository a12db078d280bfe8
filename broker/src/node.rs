//! [`Node`]: the shared handle on everything one YAK node runs — its
//! configuration, the Redis store, the topics, the group coordinator, the
//! lease gate, the role (as
//! published by the lease driver), metrics and the activity log — and its
//! start-up and background upkeep (registry heartbeat, metadata sync,
//! checkpoint).
//!
//! Invariants: the role is owned by the lease driver task and only read
//! here (through a `watch`); every other piece of shared state is either
//! immutable after start-up or behind a short-held lock.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use partition_log::{LogConfig, LogError};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    activity::{Activity, ActivityLog},
    checkpoint::{Checkpoint, SharedCheckpoint},
    clock::{SystemClock, now_ms},
    config::NodeConfig,
    follower::{FollowerContext, FollowerSession},
    groups::Coordinator,
    lease::{DriverParts, Duties, LeaseDriver, LeaseGate, LeaseSettings},
    metrics::{Metrics, TransitionLabels},
    partition::{MAX_ROUND_BYTES, WriterContext},
    peer::{NodeLink, PeerAddr, PeerClient, Peers, StreamClient},
    role::{Event, Role},
    store::{ClusterStore, LeaseHolder, NodeInfo, StoreError},
    topics::{LeadError, Topic, TopicRegistry},
};

const UPKEEP_EVERY: Duration = Duration::from_millis(500);
/// Longest answer a follower's binary port sends a leader (a refusal's
/// JSON body at most).
const ANSWER_FRAME_BYTES: usize = 1 << 20;

/// Errors starting or running a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("the TLS certificate: {0}")]
    Tls(std::io::Error),
    #[error("the client for other nodes: {0}")]
    PeerClient(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Lead(#[from] LeadError),
}

/// What this node last learned about the cluster.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterView {
    pub lease: Option<LeaseHolder>,
    pub epoch: u64,
    pub nodes: Vec<NodeInfo>,
    /// `"topic:partition"` → ISR, as stored by the leader.
    pub isr: std::collections::BTreeMap<String, Vec<String>>,
    pub redis_ok: bool,
}

#[derive(Debug)]
struct Inner {
    config: NodeConfig,
    store: ClusterStore,
    topics: Arc<TopicRegistry>,
    groups: Arc<Coordinator>,
    gate: Arc<LeaseGate>,
    role: watch::Receiver<Role>,
    checkpoint: SharedCheckpoint,
    events: mpsc::Sender<Event>,
    peers: Peers,
    client: PeerClient,
    following: Mutex<Option<FollowerSession>>,
    metrics: Arc<Metrics>,
    activity: ActivityLog,
    cluster: RwLock<ClusterView>,
    started: Instant,
}

/// Cheap-to-clone handle on the running node.
#[derive(Debug, Clone)]
pub struct Node(Arc<Inner>);

impl Node {
    /// Opens the data directory and the topics on disk, and starts the lease
    /// driver and the upkeep task. Both stop when `shutdown` is cancelled;
    /// await the returned handle to know the lease was released.
    pub fn start(
        config: NodeConfig,
        shutdown: CancellationToken,
    ) -> Result<(Node, tokio::task::JoinHandle<()>), NodeError> {
        let data_err = |source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.data_dir).map_err(data_err)?;
        let checkpoint = Checkpoint::load(&config.data_dir).map_err(data_err)?;
        let store = ClusterStore::new(&config.redis_url, &config.cluster, config.lease_ttl / 2)?;
        let gate = Arc::new(LeaseGate::default());
        let (events_tx, events_rx) = mpsc::channel(64);
        let (role_tx, role_rx) = watch::channel(Role::Follower { leader: None });
        let log_config = LogConfig {
            segment_bytes: config.segment_bytes,
            fsync: config.fsync,
            max_batch_bytes: config.max_request_bytes.max(1 << 20),
            ..LogConfig::default()
        };
        let activity = ActivityLog::default();
        let metrics = Arc::new(Metrics::default());
        let peers = Peers::default();
        let client = PeerClient::new(
            config.cluster_token.clone(),
            config.source_address,
            config.tls_ca_pem.as_deref(),
        )
        .map_err(|e| NodeError::PeerClient(e.to_string()))?;
        let ctx = WriterContext {
            runtime: tokio::runtime::Handle::current(),
            node_id: config.node_id.clone(),
            store: store.clone(),
            gate: Arc::clone(&gate),
            events: events_tx.clone(),
            activity: activity.clone(),
            peers: peers.clone(),
            link: Arc::new(NodeLink {
                http: client.clone(),
                stream: StreamClient::new(
                    config.cluster_token.clone(),
                    config.source_address,
                    ANSWER_FRAME_BYTES,
                ),
            }),
            clock: Arc::new(SystemClock),
            min_insync_replicas: config.min_insync_replicas,
            replica_lag_time: config.replica_lag_time,
            max_round_bytes: config.max_request_bytes.min(MAX_ROUND_BYTES),
            metrics: Arc::clone(&metrics),
        };
        let topics = Arc::new(TopicRegistry::new(&config.data_dir, log_config, ctx));
        let on_disk = topics.on_disk().map_err(data_err)?;
        for (name, partitions) in on_disk {
            topics.open(&name, partitions, |p| checkpoint.hwm(&name, p))?;
        }
        let groups = Arc::new(Coordinator::new(
            store.clone(),
            Arc::clone(&gate),
            Arc::clone(&topics),
            activity.clone(),
        ));
        let node = Node(Arc::new(Inner {
            config,
            store,
            topics,
            groups,
            gate,
            role: role_rx,
            checkpoint: SharedCheckpoint::new(checkpoint),
            events: events_tx,
            peers,
            client,
            following: Mutex::default(),
            metrics,
            activity,
            cluster: RwLock::default(),
            started: Instant::now(),
        }));
        crate::logging::set_role(node.role().name());
        node.activity("start", format!("node {} started", node.config().node_id));
        let parts = DriverParts {
            settings: LeaseSettings {
                node_id: node.config().node_id.clone(),
                ttl: node.config().lease_ttl,
                start_as: node.config().start_as,
            },
            store: node.store().clone(),
            gate: Arc::clone(&node.0.gate),
            checkpoint: node.0.checkpoint.clone(),
            metrics: Arc::clone(&node.0.metrics),
            role: role_tx,
            events: events_rx,
        };
        let driver = LeaseDriver::new(node.clone(), parts);
        let lease_task = tokio::spawn(driver.run(shutdown.clone()));
        tokio::spawn(run_groups(Arc::clone(&node.0.groups), shutdown.clone()));
        tokio::spawn(node.clone().upkeep(shutdown));
        Ok((node, lease_task))
    }

    pub fn config(&self) -> &NodeConfig {
        &self.0.config
    }

    pub fn store(&self) -> &ClusterStore {
        &self.0.store
    }

    pub fn topics(&self) -> &TopicRegistry {
        &self.0.topics
    }

    pub fn groups(&self) -> &Coordinator {
        &self.0.groups
    }

    pub fn gate(&self) -> &LeaseGate {
        &self.0.gate
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn role(&self) -> Role {
        self.0.role.borrow().clone()
    }

    pub fn watch_role(&self) -> watch::Receiver<Role> {
        self.0.role.clone()
    }

    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }

    pub fn cluster(&self) -> ClusterView {
        self.0.cluster.read().unwrap().clone()
    }

    pub fn activity_log(&self) -> Vec<Activity> {
        self.0.activity.recent()
    }

    pub fn activity(&self, kind: &'static str, message: impl Into<String>) {
        self.0.activity.push(kind, message);
    }

    /// Highest epoch this node has seen (persisted).
    pub fn highest_epoch(&self) -> u64 {
        self.0.checkpoint.highest_epoch()
    }

    /// Remembers an epoch seen in Redis or from a peer, on disk at once
    /// when it is new, so that it is never handed out again.
    pub fn see_epoch(&self, epoch: u64) {
        self.0.checkpoint.see_epoch(epoch);
    }

    /// The leader's id and URL, as far as this node knows.
    pub fn leader(&self) -> Option<(String, Option<String>)> {
        let id = match self.role() {
            // A leader that may not acknowledge (fenced, or deposed and not
            // yet told) must not send clients to itself.
            Role::Leader { .. } | Role::Fenced { .. } if self.gate().epoch().is_none() => {
                return None;
            }
            Role::Leader { .. } | Role::Fenced { .. } => self.config().node_id.clone(),
            Role::Follower { leader } => leader?,
            Role::Stopped => return None,
        };
        if id == self.config().node_id {
            return Some((id, Some(self.config().advertised_url.clone())));
        }
        let url = self
            .0
            .cluster
            .read()
            .unwrap()
            .nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.url.clone());
        Some((id, url))
    }

    /// The local topic, opening it if the cluster metadata knows it.
    pub async fn topic(&self, name: &str) -> Result<Option<Arc<Topic>>, NodeError> {
        if let Some(topic) = self.topics().get(name) {
            return Ok(Some(topic));
        }
        self.refresh_topic(name).await
    }

    /// The topic as the cluster metadata has it now, opened (or grown)
    /// locally; `None` if the metadata does not know it.
    pub async fn refresh_topic(&self, name: &str) -> Result<Option<Arc<Topic>>, NodeError> {
        let known = self.store().topics().await?;
        match known.get(name) {
            Some(&partitions) => Ok(Some(self.open_topic(name, partitions)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn open_topic(&self, name: &str, partitions: u32) -> Result<Arc<Topic>, LogError> {
        let checkpoint = self.0.checkpoint.lock();
        self.topics()
            .open(name, partitions, |p| checkpoint.hwm(name, p))
    }

    /// Opens locally every topic the cluster metadata lists, and gives
    /// each its stored config.
    async fn sync_topics(&self) -> Result<(), NodeError> {
        let mut configs = self.store().topic_configs().await?;
        for (name, partitions) in self.store().topics().await? {
            let topic = match self.topics().get(&name) {
                Some(topic) if topic.partitions.len() as u32 >= partitions => topic,
                Some(_) => self.open_topic(&name, partitions)?,
                None if yak_protocol::validate_topic_name(&name).is_err() => {
                    tracing::warn!(topic = %name, "ignoring invalid topic name in redis");
                    continue;
                }
                None => self.open_topic(&name, partitions)?,
            };
            topic.set_config(configs.remove(&name).unwrap_or_default());
        }
        Ok(())
    }

    /// A peer told us (by replicating to us) that `leader` leads at `epoch`.
    pub fn observe_leader(&self, leader: &str, epoch: u64) {
        self.see_epoch(epoch);
        let stale = match self.role() {
            Role::Leader { epoch: mine } | Role::Fenced { epoch: mine } => mine < epoch,
            Role::Follower { leader: known } => known.as_deref() != Some(leader),
            Role::Stopped => false,
        };
        if stale && leader != self.config().node_id {
            let _ = self.0.events.try_send(Event::LeaderSeen {
                leader: Some(leader.to_owned()),
            });
        }
    }

    /// Heartbeat in the registry, cluster view refresh, topic sync and the
    /// HWM checkpoint, until shutdown.
    async fn upkeep(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(UPKEEP_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.upkeep_once().await {
                tracing::debug!("upkeep: {e}");
                self.0.cluster.write().unwrap().redis_ok = false;
            }
            self.checkpoint_hwms();
        }
        self.checkpoint_hwms();
    }

    async fn upkeep_once(&self) -> Result<(), NodeError> {
        let role = self.role();
        let info = NodeInfo {
            id: self.config().node_id.clone(),
            url: self.config().advertised_url.clone(),
            tcp: self
                .config()
                .tcp
                .as_ref()
                .map(|(_, advertised)| advertised.clone()),
            kafka: self
                .config()
                .kafka
                .as_ref()
                .map(|(_, advertised)| advertised.clone()),
            role: role.name().to_owned(),
            epoch: role.leader_epoch().unwrap_or(self.highest_epoch()),
            heartbeat_ms: now_ms(),
        };
        let store = self.store();
        store.heartbeat(&info, UPKEEP_EVERY * 6).await?;
        let (lease, epoch) = store.lease().await?;
        let nodes = store.nodes().await?;
        let isr = store.isr_index().await?;
        self.see_epoch(epoch);
        self.0.peers.replace(
            nodes
                .iter()
                .map(|n| {
                    let addr = PeerAddr {
                        url: n.url.clone(),
                        tcp: n.tcp.clone(),
                    };
                    (n.id.clone(), addr)
                })
                .collect(),
        );
        *self.0.cluster.write().unwrap() = ClusterView {
            lease,
            epoch,
            nodes,
            isr,
            redis_ok: true,
        };
        self.sync_topics().await
    }

    fn checkpoint_hwms(&self) {
        let mut checkpoint = self.0.checkpoint.lock();
        for topic in self.topics().all() {
            for p in &topic.partitions {
                checkpoint.see_hwm(&topic.name, p.id, p.hwm());
            }
        }
        if let Err(e) = checkpoint.flush() {
            tracing::error!("cannot persist the node state: {e}");
        }
    }
}

/// The coordinator's session and rebalance upkeep, until shutdown.
async fn run_groups(groups: Arc<Coordinator>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(crate::groups::TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => groups.tick().await,
        }
    }
}

/// The lease driver's view of the node.
impl Duties for Node {
    type Error = NodeError;

    async fn holds_everything_committed(&self) -> bool {
        self.topics().hold_everything_committed(self.store()).await
    }

    /// Prepares every partition to lead at `epoch`.
    async fn prepare_leadership(&self, epoch: u64) -> Result<(), NodeError> {
        self.0.following.lock().unwrap().take();
        self.see_epoch(epoch);
        // A Redis that lost its data learns the topics back from the leader.
        for topic in self.topics().all() {
            let partitions = topic.partitions.len() as u32;
            let config = topic.config();
            if self
                .store()
                .create_topic(&topic.name, partitions, &config)
                .await?
            {
                self.activity("topic", format!("restored topic {} in redis", topic.name));
            }
        }
        self.sync_topics().await?;
        self.topics()
            .lead_all(epoch, self.store(), &self.0.checkpoint)
            .await?;
        self.activity("election", format!("leading at epoch {epoch}"));
        Ok(())
    }

    async fn commit_tails(&self) {
        self.topics().commit_tails().await;
    }

    async fn stop_leading(&self) {
        self.topics().stop_leading().await;
    }

    /// Starts following `leader` (replacing any other follow), or stops.
    fn follow(&self, leader: Option<String>) {
        let mut following = self.0.following.lock().unwrap();
        if following.as_ref().map(|s| &s.leader) == leader.as_ref() {
            return;
        }
        *following = leader.map(|leader| {
            self.activity("role", format!("following {leader}"));
            let ctx = FollowerContext {
                node_id: self.config().node_id.clone(),
                topics: Arc::clone(&self.0.topics),
                peers: self.0.peers.clone(),
                client: self.0.client.clone(),
                checkpoint: self.0.checkpoint.clone(),
            };
            FollowerSession::start(ctx, leader)
        });
    }

    fn transitioned(&self, from: &Role, to: &Role, event: &Event) {
        self.metrics()
            .role_transitions
            .get_or_create(&TransitionLabels {
                from: from.name().to_owned(),
                to: to.name().to_owned(),
            })
            .inc();
        self.metrics()
            .is_leader
            .set(i64::from(matches!(to, Role::Leader { .. })));
        crate::logging::set_role(to.name());
        if let Role::Leader { epoch } | Role::Fenced { epoch } = to {
            self.metrics().epoch.set(*epoch as i64);
        }
        let kind = match to {
            Role::Leader { .. } => "election",
            Role::Fenced { .. } => "fenced",
            _ if matches!(from, Role::Leader { .. } | Role::Fenced { .. }) => "step_down",
            _ => "role",
        };
        self.activity(kind, format!("{from} → {to} ({event:?})"));
    }

    fn activity(&self, kind: &'static str, message: String) {
        Node::activity(self, kind, message);
    }
}
