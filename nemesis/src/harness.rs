//! One run from start to verdict: start the [`Cluster`], start the
//! [`Workload`], inject the [`Schedule`]'s faults until the run's duration
//! is over, heal everything, wait for a leader (check 9's clock starts
//! here), let writes flow again, stop the load, wait for the nodes to
//! converge, read every partition back from every node, and run the
//! [`checks`](crate::check).
//!
//! Invariant: the final reads and the log files are taken only after the
//! producers have stopped, so nothing acknowledged later is missing from
//! them.

use std::{
    collections::BTreeMap,
    fmt,
    path::PathBuf,
    time::{Duration, Instant},
};

use num_format::{Locale, ToFormattedString};
use testkit::{StatusCode, http_client, try_send};
use yak_client::ErrorCode;

use crate::{
    check::{self, FinalState, NodePartition, Report},
    cluster::{Cluster, ClusterConfig, ClusterError},
    faults::{FaultKind, Tally},
    history::{History, HistoryError},
    schedule::Schedule,
    workload::{self, Endpoints, Workload, WorkloadConfig, payload_text},
};

/// How long the cluster gets to elect its first leader.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long, after healing, the nodes get to serve writes again and to
/// converge (liveness, checked only so that the final reads are complete).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// Gap between two faults.
    pub gap: std::ops::Range<Duration>,
    /// Fault kinds to draw from (all if empty).
    pub kinds: Vec<FaultKind>,
    pub cluster: ClusterConfig,
    /// HTTP producers (one JSON record per request).
    pub producers: u32,
    /// Producers over the binary produce port (batches).
    pub binary_producers: u32,
    /// Idempotent Kafka producers (batches).
    pub kafka_producers: u32,
    /// Where to write the history (JSON lines), if anywhere.
    pub history: Option<PathBuf>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            duration: Duration::from_secs(40),
            gap: Duration::from_secs(5)..Duration::from_secs(15),
            kinds: Vec::new(),
            cluster: ClusterConfig::default(),
            // Four requests in flight at once, every transport among them.
            producers: 2,
            binary_producers: 1,
            kafka_producers: 1,
            history: None,
        }
    }
}

/// A run that could not be carried out (as opposed to one whose checks
/// failed, which is a [`Summary`] with violations).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("client: {0}")]
    Client(#[from] yak_client::ClientError),
    #[error("{0}")]
    NotReady(String),
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct Summary {
    pub seed: u64,
    pub faults: BTreeMap<Tally, u64>,
    pub report: Report,
    pub elapsed: Duration,
}

impl Summary {
    pub fn passed(&self) -> bool {
        self.report.violations.is_empty()
    }
}

impl fmt::Display for Summary {
    /// `seed 7: 3 leader kills, 2 pauses; 1.2 M acked writes (http
    /// 0.6 M, binary 0.4 M, kafka 0.2 M), 3,104 unknown; 0 lost, 0
    /// inconsistent, 0 duplicates; longest unavailability 4.1 s`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(t, n)| format!("{} {}", count(*n), t.label()))
            .collect();
        let faults = if faults.is_empty() {
            "no faults".to_owned()
        } else {
            faults.join(", ")
        };
        let r = &self.report;
        let by: Vec<String> = r
            .acked_by
            .iter()
            .map(|(t, n)| format!("{} {}", t.label(), count(*n)))
            .collect();
        write!(
            f,
            "seed {}: {faults}; {} acked writes ({}), {} unknown, {} failed; {} lost, {} inconsistent, {} duplicates; {} violations; longest unavailability {:.1} s",
            self.seed,
            count(r.acked),
            by.join(", "),
            count(r.unknown),
            count(r.failed),
            count(r.lost),
            count(r.inconsistent),
            count(r.duplicates),
            r.violations.len(),
            r.longest_unavailability.as_secs_f64()
        )
    }
}

/// `1,234`, or `1.2 M` from a million on.
pub fn count(n: u64) -> String {
    if n >= 1_000_000 {
        return format!("{:.1} M", n as f64 / 1e6);
    }
    n.to_formatted_string(&Locale::en)
}

/// Runs one nemesis run.
pub async fn run(config: RunConfig) -> Result<Summary, RunError> {
    let started = Instant::now();
    let history = match &config.history {
        Some(path) => History::to_file(path)?,
        None => History::new(),
    };
    let mut cluster = Cluster::start(config.cluster.clone()).await?;
    let outcome = drive(&config, &mut cluster, &history).await;
    history.flush()?;
    let (faults, state) = outcome?;
    let report = check::check(&history.events(), &state);
    if !report.violations.is_empty() {
        cluster.dump_logs();
    }
    Ok(Summary {
        seed: config.seed,
        faults,
        report,
        elapsed: started.elapsed(),
    })
}

async fn drive(
    config: &RunConfig,
    cluster: &mut Cluster,
    history: &History,
) -> Result<(BTreeMap<Tally, u64>, FinalState), RunError> {
    let lease_ttl = Duration::from_millis(config.cluster.lease_ttl_ms);
    let topic = config.cluster.topic.clone();
    let partitions = config.cluster.partitions;
    if leader_within(cluster, START_TIMEOUT).await.is_none() {
        return Err(RunError::NotReady("no leader after start".to_owned()));
    }
    let client = workload::client(&cluster.client_urls(), cluster.client_ip())?;
    match client.create_topic(&topic, Some(partitions)).await {
        Ok(_) => {}
        Err(e) if e.error_code() == Some(ErrorCode::TopicExists) => {}
        Err(e) => return Err(e.into()),
    }
    let endpoints = Endpoints {
        urls: cluster.client_urls(),
        kafka: cluster.kafka_addrs(),
        from: cluster.client_ip(),
    };
    let mut load = Workload::start(
        &endpoints,
        cluster.store()?,
        &WorkloadConfig {
            producers: config.producers,
            binary_producers: config.binary_producers,
            kafka_producers: config.kafka_producers,
            topic: topic.clone(),
            partitions,
        },
        history,
    )?;
    // Faults start once the cluster acknowledges writes (the followers
    // have joined the ISR).
    if !acked_since(history, 0, START_TIMEOUT).await {
        return Err(RunError::NotReady(
            "no write acknowledged after start".to_owned(),
        ));
    }

    let mut schedule = Schedule::new(config.seed, &config.kinds, config.gap.clone(), lease_ttl);
    let mut faults = BTreeMap::new();
    let end = Instant::now() + config.duration;
    while Instant::now() < end {
        tokio::time::sleep(schedule.gap().min(end - Instant::now())).await;
        if Instant::now() >= end {
            break;
        }
        let fault = schedule.next_fault();
        fault.run(cluster, schedule.rng(), history).await?;
        *faults.entry(fault.tally()).or_insert(0) += 1;
    }

    // Heal, then check 9's clock runs.
    cluster.heal_all().await;
    let healed = Instant::now();
    history.fault("healed", true);
    let leader_deadline = lease_ttl * 2 + Duration::from_secs(5);
    let leader_after_heal = leader_within(cluster, SETTLE_TIMEOUT).await;
    // Writes flow again: the new leader commits its log's tail with them.
    let since = history.now_ms();
    acked_since(history, since, SETTLE_TIMEOUT).await;
    load.stop_producers().await;
    converge(cluster, &topic, partitions).await;
    load.stop().await;
    let state = final_state(
        cluster,
        &topic,
        partitions,
        leader_deadline,
        leader_after_heal.map(|t| t - healed),
    )
    .await?;
    Ok((faults, state))
}

/// Polls until a node holds the lease and its own `/health` says it
/// leads; returns when.
async fn leader_within(cluster: &Cluster, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(i) = cluster.leader_index().await
            && cluster.nodes()[i].role().await.as_deref() == Some("leader")
        {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Polls the history until a write completed after `since_ms` was
/// acknowledged.
async fn acked_since(history: &History, since_ms: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if history.last_ack_ms().is_some_and(|t| t > since_ms) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// One node's view of one partition: (HWM, log end), from
/// `GET /topics/{topic}` on its real port.
async fn partition_view(url: &str, topic: &str) -> Option<Vec<(u64, u64)>> {
    let reply = try_send(
        http_client()
            .get(format!("{url}/topics/{topic}"))
            .timeout(Duration::from_secs(2)),
    )
    .await
    .ok()?;
    if reply.status != StatusCode::OK {
        return None;
    }
    reply.json["partitions"]
        .as_array()?
        .iter()
        .map(|p| {
            Some((
                p["high_water_mark"].as_u64()?,
                p["log_end_offset"].as_u64()?,
            ))
        })
        .collect()
}

/// Waits (up to [`SETTLE_TIMEOUT`]) until every node knows the HWM that
/// Redis holds and has the same log end, for every partition. Nodes that
/// never get there are caught by the checks (a node in the ISR whose log
/// does not reach the HWM breaks check 8).
async fn converge(cluster: &Cluster, topic: &str, partitions: u32) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while Instant::now() < deadline {
        let Ok(store) = cluster.store() else { return };
        let mut hwms = Vec::new();
        for p in 0..partitions {
            hwms.push(store.hwm(topic, p).await.ok());
        }
        let mut views = Vec::new();
        for node in cluster.nodes() {
            views.push(partition_view(node.url(), topic).await);
        }
        let agreed = views.iter().all(|v| {
            v.as_ref().is_some_and(|v| {
                v.len() == partitions as usize
                    && v.iter()
                        .zip(&hwms)
                        .all(|(&(hwm, _), redis)| Some(hwm) == *redis)
                    && Some(v) == views[0].as_ref()
            })
        });
        if agreed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every committed record of a partition as a node serves it.
async fn read_all(url: &str, topic: &str, partition: u32) -> Option<Vec<(u64, String)>> {
    let mut records = Vec::new();
    loop {
        let offset = records.len().to_string();
        let query = [
            ("topic", topic.to_owned()),
            ("partition", partition.to_string()),
            ("offset", offset),
            ("max_records", "10000".to_owned()),
        ];
        let reply = try_send(http_client().get(format!("{url}/consume")).query(&query))
            .await
            .ok()?;
        if reply.status != StatusCode::OK {
            return None;
        }
        let page = reply.json["records"].as_array()?;
        for r in page {
            records.push((r["offset"].as_u64()?, payload_text(&r["payload"])));
        }
        if page.is_empty()
            || reply.json["next_offset"].as_u64()? >= reply.json["high_water_mark"].as_u64()?
        {
            return Some(records);
        }
    }
}

async fn final_state(
    cluster: &Cluster,
    topic: &str,
    partitions: u32,
    leader_deadline: Duration,
    leader_after_heal: Option<Duration>,
) -> Result<FinalState, RunError> {
    let store = cluster.store()?;
    let mut state = FinalState {
        leader_deadline,
        leader_after_heal,
        ..FinalState::default()
    };
    for p in 0..partitions {
        state
            .hwm
            .push(store.hwm(topic, p).await.map_err(ClusterError::from)?);
        state.isr.push(
            store
                .isr(topic, p)
                .await
                .map_err(ClusterError::from)?
                .unwrap_or_default(),
        );
    }
    for node in cluster.nodes() {
        let mut held = Vec::new();
        for p in 0..partitions {
            held.push(NodePartition {
                records: read_all(node.url(), topic, p).await,
                log: node.log_bytes(topic, p),
            });
        }
        state.nodes.insert(node.id().to_owned(), held);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_read_like_the_issue() {
        assert_eq!(count(0), "0");
        assert_eq!(count(3104), "3,104");
        assert_eq!(count(212), "212");
        assert_eq!(count(999_999), "999,999");
        assert_eq!(count(1_200_000), "1.2 M");
    }
}
