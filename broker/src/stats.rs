//! The dashboard's view of the node: once a second the sampler reads the
//! metrics and partitions, appends to the rate series (last five minutes)
//! and publishes one JSON snapshot that `/stats` and every `/events`
//! subscriber share. Serving many dashboards costs one snapshot a second.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use yak_protocol::{
    TopicConfig,
    group::{GroupState, GroupSummary},
};

use crate::{
    activity::Activity,
    clock::now_ms,
    groups,
    metrics::{FollowerLabels, GroupLabels, Metrics, PartitionLabels},
    node::Node,
    partition::FollowerStatus,
    role::Role,
    store::NodeInfo,
};

/// Seconds of history kept for the charts.
const HISTORY: usize = 300;
const ACTIVITY_SHOWN: usize = 60;

#[derive(Debug, Clone, Serialize)]
pub struct NodeStats {
    pub id: String,
    pub url: String,
    pub role: &'static str,
    pub epoch: u64,
    pub leader_id: Option<String>,
    pub leader_url: Option<String>,
    pub lease_holder: Option<String>,
    pub lease_ttl_ms: Option<u64>,
    pub redis_ok: bool,
    pub uptime_s: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStats {
    pub partition: u32,
    pub log_start_offset: u64,
    pub log_end_offset: u64,
    pub high_water_mark: u64,
    pub size_bytes: u64,
    pub isr: Vec<String>,
    /// Live nodes, each a replica of every partition.
    pub replicas: usize,
    pub followers: Vec<FollowerStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicStats {
    pub name: String,
    /// Its retention rule.
    pub config: TopicConfig,
    pub partitions: Vec<PartitionStats>,
}

/// Per-second series, oldest first; all the same length as `t`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// Unix seconds.
    pub t: VecDeque<u64>,
    pub produce_total: VecDeque<f64>,
    pub consume_total: VecDeque<f64>,
    pub produce_by_topic: BTreeMap<String, VecDeque<f64>>,
    pub consume_by_topic: BTreeMap<String, VecDeque<f64>>,
    pub replication_p50_ms: VecDeque<Option<f64>>,
    pub replication_p99_ms: VecDeque<Option<f64>>,
    pub max_follower_lag: VecDeque<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub at_ms: u64,
    pub node: NodeStats,
    pub nodes: Vec<NodeInfo>,
    pub topics: Vec<TopicStats>,
    pub produced_total: u64,
    pub consumed_total: u64,
    pub series: Series,
    pub activity: Vec<Activity>,
    /// Consumer groups as stored in Redis, lag against this node's HWMs.
    pub groups: Vec<GroupSummary>,
}

/// Counter totals at the previous sample, to turn counts into rates, and
/// each group's state, generation and member count.
#[derive(Debug, Default)]
struct Previous {
    produced: BTreeMap<String, u64>,
    consumed: BTreeMap<String, u64>,
    groups: BTreeMap<String, (GroupState, u64, usize)>,
}

impl Previous {
    /// What changed in the groups since the previous sample, in words.
    fn group_changes(&self, now: &[GroupSummary]) -> Vec<String> {
        now.iter()
            .filter(|g| self.groups.get(&g.group) != Some(&(g.state, g.generation, g.members)))
            .map(|g| {
                format!(
                    "group {}: {} at generation {} with {} members",
                    g.group,
                    g.state.as_str(),
                    g.generation,
                    g.members
                )
            })
            .collect()
    }
}

/// The published snapshots (JSON), for `/stats` and `/events`, and the
/// node's shutdown, which ends the event streams.
#[derive(Debug, Clone)]
pub struct StatsFeed {
    pub snapshots: watch::Receiver<Arc<str>>,
    pub shutdown: CancellationToken,
}

/// Starts sampling `node` every second until `shutdown`.
pub fn spawn_sampler(node: Node, shutdown: CancellationToken) -> StatsFeed {
    let (out, snapshots) = watch::channel(Arc::from("{}"));
    tokio::spawn(run_sampler(node, out, shutdown.clone()));
    StatsFeed {
        snapshots,
        shutdown,
    }
}

/// Samples every second until `shutdown`, publishing JSON snapshots.
async fn run_sampler(node: Node, out: watch::Sender<Arc<str>>, shutdown: CancellationToken) {
    let mut series = Series::default();
    let mut previous = Previous::default();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Redis unreachable: the groups panel goes empty, the rest stays.
        let groups = groups::summaries(node.store(), node.topics())
            .await
            .unwrap_or_default();
        // The leader's coordinator logs group changes as it makes them;
        // the other nodes' activity logs learn them from Redis.
        if !matches!(node.role(), Role::Leader { .. }) {
            for change in previous.group_changes(&groups) {
                node.activity("group", change);
            }
        }
        for g in &groups {
            let labels = GroupLabels {
                group: g.group.clone(),
            };
            let metrics = node.metrics();
            metrics.group_lag.get_or_create(&labels).set(g.lag as i64);
            metrics
                .group_members
                .get_or_create(&labels)
                .set(g.members as i64);
        }
        previous.groups = groups
            .iter()
            .map(|g| (g.group.clone(), (g.state, g.generation, g.members)))
            .collect();
        let stats = sample(&node, &mut series, &mut previous, groups);
        let json = serde_json::to_string(&stats).expect("stats serialize");
        out.send_replace(Arc::from(json));
    }
}

fn push<T>(queue: &mut VecDeque<T>, value: T) {
    if queue.len() == HISTORY {
        queue.pop_front();
    }
    queue.push_back(value);
}

fn sample(
    node: &Node,
    series: &mut Series,
    previous: &mut Previous,
    groups: Vec<GroupSummary>,
) -> Stats {
    let metrics = node.metrics();
    let topics = node.topics().all();
    let mut topic_stats = Vec::with_capacity(topics.len());
    let mut max_lag = 0;
    let (mut produced_total, mut consumed_total) = (0, 0);
    let (mut produce_rate, mut consume_rate) = (0.0, 0.0);
    let is_leader = matches!(node.role(), Role::Leader { .. });
    let cluster = node.cluster();
    for topic in &topics {
        let labels = Metrics::topic(&topic.name);
        let produced = metrics.produced_records.get_or_create(&labels).get();
        let consumed = metrics.consumed_records.get_or_create(&labels).get();
        // Counters start at zero with the process: a topic not sampled
        // before had zero.
        let rate =
            |now: u64, before: Option<&u64>| now.saturating_sub(*before.unwrap_or(&0)) as f64;
        let p = rate(produced, previous.produced.get(&topic.name));
        let c = rate(consumed, previous.consumed.get(&topic.name));
        previous.produced.insert(topic.name.clone(), produced);
        previous.consumed.insert(topic.name.clone(), consumed);
        (produced_total, consumed_total) = (produced_total + produced, consumed_total + consumed);
        (produce_rate, consume_rate) = (produce_rate + p, consume_rate + c);
        let pad = series.t.len();
        for (by_topic, value) in [
            (&mut series.produce_by_topic, p),
            (&mut series.consume_by_topic, c),
        ] {
            let queue = by_topic
                .entry(topic.name.clone())
                .or_insert_with(|| std::iter::repeat_n(0.0, pad.min(HISTORY - 1)).collect());
            push(queue, value);
        }

        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let status = p.replica_status();
            let reader = p.reader();
            let part = PartitionLabels {
                topic: topic.name.clone(),
                partition: p.id,
            };
            let (end, size, hwm) = (reader.end_offset(), reader.size_bytes(), p.hwm());
            metrics.log_end_offset.get_or_create(&part).set(end as i64);
            metrics.log_size_bytes.get_or_create(&part).set(size as i64);
            metrics.high_water_mark.get_or_create(&part).set(hwm as i64);
            if is_leader {
                metrics
                    .isr_size
                    .get_or_create(&part)
                    .set(status.isr.len() as i64);
                for f in &status.followers {
                    let labels = FollowerLabels {
                        topic: topic.name.clone(),
                        partition: p.id,
                        follower: f.id.clone(),
                    };
                    metrics
                        .follower_lag
                        .get_or_create(&labels)
                        .set(f.lag as i64);
                    max_lag = max_lag.max(f.lag);
                }
            }
            // Followers show the ISR the leader stored.
            let isr = match status.isr.is_empty() {
                false => status.isr,
                true => cluster
                    .isr
                    .get(&format!("{}:{}", topic.name, p.id))
                    .cloned()
                    .unwrap_or_default(),
            };
            partitions.push(PartitionStats {
                partition: p.id,
                log_start_offset: reader.start_offset(),
                log_end_offset: end,
                high_water_mark: hwm,
                size_bytes: size,
                isr,
                replicas: cluster.nodes.len(),
                followers: status.followers,
            });
        }
        topic_stats.push(TopicStats {
            name: topic.name.clone(),
            config: topic.config(),
            partitions,
        });
    }
    let now = now_ms();
    push(&mut series.t, now / 1000);
    push(&mut series.produce_total, produce_rate);
    push(&mut series.consume_total, consume_rate);
    let percentiles = metrics.take_replication_percentiles();
    push(&mut series.replication_p50_ms, percentiles.map(|p| p.0));
    push(&mut series.replication_p99_ms, percentiles.map(|p| p.1));
    push(&mut series.max_follower_lag, max_lag);

    let role = node.role();
    let leader = node.leader();
    let mut activity = node.activity_log();
    activity.truncate(ACTIVITY_SHOWN);
    Stats {
        at_ms: now,
        node: NodeStats {
            id: node.config().node_id.clone(),
            url: node.config().advertised_url.clone(),
            role: match role {
                Role::Leader { .. } => "leader",
                Role::Fenced { .. } => "fenced",
                Role::Follower { .. } => "follower",
                Role::Stopped => "stopped",
            },
            epoch: role.leader_epoch().unwrap_or(cluster.epoch),
            leader_id: leader.as_ref().map(|(id, _)| id.clone()),
            leader_url: leader.and_then(|(_, url)| url),
            lease_holder: cluster.lease.as_ref().map(|l| l.node_id.clone()),
            lease_ttl_ms: cluster.lease.as_ref().map(|l| l.ttl_ms),
            redis_ok: cluster.redis_ok,
            uptime_s: node.uptime().as_secs(),
        },
        nodes: cluster.nodes,
        topics: topic_stats,
        produced_total,
        consumed_total,
        series: series.clone(),
        activity,
        groups,
    }
}
