//! `yak bench`: measures YAK against the same machine's Redis Streams, in
//! one run, and writes every figure to `bench-results.json` and a chart.
//!
//! It starts its own cluster (redis-server, a broker, one follower, the
//! shipped defaults) in a temporary directory, or targets a running one
//! with `--bootstrap` (then failover and memory are skipped: it does not own
//! those processes). Scenarios, 100-byte values unless told otherwise:
//! 1. batched produce: batches of 1,000 records from several producers, as
//!    binary batches (`POST /produce/batch`) and, for comparison, as JSON,
//!    each acknowledged only after the follower has it;
//! 2. unbatched produce: one record per request from 64 clients; latency
//!    percentiles from an HDR histogram;
//! 3. consume: everything in one partition read back;
//! 4. failover: `kill -9` of the leader while a producer runs, from the
//!    kill to the first acknowledged write on the new leader. The kill
//!    lands at a random moment of the leader's renewal cycle, as a crash
//!    would, and each sample records the lease time the dead leader had
//!    left: that wait is the lease's part, the rest is the takeover's;
//! 5. the baseline: Redis Streams on a separate, non-persistent
//!    redis-server — pipelined XADD, one XADD per request from as many
//!    connections, and XRANGE read-back.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::future::join_all;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use yak_client::{ClientConfig, Consumer, Producer, ProducerConfig, Record, StartAt, YakClient};

use super::out;
use crate::local::{self, Durability, Logs, Proc};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Benchmark a running cluster instead of starting one (comma-separated
    /// node URLs). Failover and memory are then skipped.
    #[arg(long, env = "YAK_BENCH_BOOTSTRAP", value_delimiter = ',')]
    bootstrap: Option<Vec<String>>,
    /// Redis for the Streams baseline when --bootstrap is given.
    #[arg(long, env = "YAK_BENCH_REDIS_URL")]
    redis_url: Option<String>,
    /// Small sizes: finishes in under a minute.
    #[arg(long)]
    quick: bool,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Where to write the figures.
    #[arg(long, default_value = "bench-results.json")]
    out: PathBuf,
    /// Where to draw the chart (SVG).
    #[arg(long, default_value = "bench-results.svg")]
    chart: PathBuf,
    /// How the Redis of the cluster the bench starts fsyncs its append-only
    /// file: `always` (as shipped, what the no-loss guarantee needs) or
    /// `everysec` (to measure what the per-write fsync costs).
    #[arg(long, value_enum, default_value_t = RedisFsync::Always)]
    redis_fsync: RedisFsync,
    /// How many times to kill the leader [default: 10, quick: 3].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    failovers: Option<u64>,
    /// Where the broker and follower binaries are [default: next to yak].
    #[arg(long, env = "YAK_BIN_DIR")]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RedisFsync {
    Always,
    Everysec,
}

struct Sizes {
    batched_records: u64,
    batch: usize,
    producers: usize,
    unbatched_for: Duration,
    clients: usize,
    failovers: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        Self {
            batched_records: if quick { 200_000 } else { 10_000_000 },
            batch: 1000,
            producers: 8,
            unbatched_for: Duration::from_secs(if quick { 3 } else { 10 }),
            clients: 64,
            failovers: if quick { 3 } else { 10 },
        }
    }
}

/// The cluster this run started, if any.
struct OwnCluster {
    _dir: tempfile::TempDir,
    logs: Logs,
    procs: Vec<Proc>,
    /// Node id → index in `procs`.
    nodes: Vec<(String, usize)>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut sizes = Sizes::new(args.quick);
    if let Some(n) = args.failovers {
        sizes.failovers = n as usize;
    }
    let value = "x".repeat(args.value_bytes);
    let (bootstrap, mut own, baseline_url, mut baseline) = match &args.bootstrap {
        Some(urls) => {
            let redis = args
                .redis_url
                .clone()
                .context("--bootstrap needs --redis-url for the Redis Streams baseline")?;
            (urls.clone(), None, redis, None)
        }
        None => {
            let durability = match args.redis_fsync {
                RedisFsync::Always => Durability::AppendFsyncAlways,
                RedisFsync::Everysec => Durability::AppendFsyncEverySec,
            };
            let (cluster, urls) = start_cluster(args.bin_dir.as_deref(), durability).await?;
            let dir = cluster._dir.path().join("baseline");
            let (redis, url) =
                local::start_redis(&dir, Durability::InMemory, &cluster.logs).await?;
            (urls, Some(cluster), url, Some(redis))
        }
    };
    let client = YakClient::with_config(bootstrap.clone(), ClientConfig::default())?;
    client
        .leader_url()
        .await
        .context("no leader in the cluster")?;
    let redis = redis::Client::open(baseline_url.as_str())?;

    out(format!(
        "yak bench{}: values of {} bytes",
        if args.quick { " --quick" } else { "" },
        args.value_bytes
    ));
    let topic = format!("bench-{}", std::process::id());
    client.create_topic(&topic, Some(3)).await?;

    out("1/5 batched produce…");
    let batched = batched_produce(&client, &topic, &value, &sizes, false).await?;
    let batched_json = batched_produce(&client, &topic, &value, &sizes, true).await?;
    let redis_batched = redis_batched(&redis, &value, &sizes).await?;
    out("2/5 unbatched produce…");
    let before = leader_timings(&client).await;
    let unbatched = unbatched_produce(&client, &topic, &value, &sizes).await?;
    let breakdown = match (before, leader_timings(&client).await) {
        (Some(before), Some(after)) => Some(after.since(&before)),
        _ => None,
    };
    let redis_unbatched = redis_unbatched(&redis, &value, &sizes).await?;
    out("3/5 consume…");
    let consume = consume_partition(&client, &topic).await?;
    let redis_consume = redis_read_back(&redis).await?;
    let memory = match &own {
        Some(cluster) => Some(broker_rss_mb(cluster)?),
        None => None,
    };
    out("4/5 failover…");
    let failover = match &mut own {
        Some(cluster) => Some(failovers(cluster, &client, &topic, &value, sizes.failovers).await?),
        None => None,
    };
    out("5/5 writing results…");

    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let results = json!({
        "machine": machine(),
        "settings": {
            "quick": args.quick,
            "value_bytes": args.value_bytes,
            "batch_records": sizes.batch,
            "batched_producers": sizes.producers,
            "batched_records": sizes.batched_records,
            "unbatched_clients": sizes.clients,
            "unbatched_seconds": sizes.unbatched_for.as_secs(),
            "failovers": failover.as_ref().map(|f| f.samples_ms.len()),
            "failover_kill": "at a random moment of the lease renewal cycle: a random wait of 0 to one lease TTL once every ISR is full again",
            "produce_transport": "binary batches over the leader's binary port (yak-protocol) when it has one, else POST /produce/batch; one connection per unbatched client",
            "cluster": if own.is_some() { "started by the bench: redis-server (AOF), broker + 1 follower, shipped defaults (fsync interval:100ms, lease TTL 2 s, min ISR 1)" } else { "existing cluster (--bootstrap)" },
            "cluster_redis_appendfsync": if own.is_some() { format!("{:?}", args.redis_fsync).to_lowercase() } else { "unknown".to_owned() },
            "replication": "synchronous, every write on the follower before it is acknowledged",
            "redis_baseline": "separate redis-server, no persistence (--appendonly no --save ''), one stream",
            "topic_partitions": 3,
        },
        "git_commit": git_commit(),
        "batched_produce": {
            "msgs_per_s": batched,
            "json_msgs_per_s": batched_json,
            "redis_msgs_per_s": redis_batched,
            "ratio": ratio(batched, redis_batched),
        },
        "unbatched_produce": {
            "msgs_per_s": unbatched.msgs_per_s,
            "p50_ms": unbatched.p50_ms,
            "p99_ms": unbatched.p99_ms,
            "p999_ms": unbatched.p999_ms,
            "redis_msgs_per_s": redis_unbatched.msgs_per_s,
            "redis_p99_ms": redis_unbatched.p99_ms,
            "leader_mean_replication_ms": breakdown.as_ref().map(|b| b.replication_ms),
            "leader_mean_hwm_commit_ms": breakdown.as_ref().map(|b| b.hwm_commit_ms),
            "leader_commits": breakdown.as_ref().map(|b| b.commits),
            "ratio": ratio(unbatched.msgs_per_s, redis_unbatched.msgs_per_s),
        },
        "consume": {
            "msgs_per_s": consume.0,
            "records": consume.1,
            "redis_msgs_per_s": redis_consume,
            "ratio": ratio(consume.0, redis_consume),
        },
        "failover": failover.as_ref().map(|f| json!({
            "p50_ms": f.p50_ms,
            "max_ms": f.max_ms,
            "samples_ms": f.samples_ms,
            "lease_left_ms": f.lease_left_ms,
            "takeover_p50_ms": f.takeover_p50_ms,
        })),
        "memory": memory.map(|m| json!({ "broker_rss_mb": m })),
    });
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    draw_chart(&args.chart, &results)?;
    print_table(&results);
    out(format!(
        "wrote {} and {}",
        args.out.display(),
        args.chart.display()
    ));

    if let Some(mut cluster) = own {
        let logs = cluster.logs.clone();
        if let Some(redis) = baseline.as_mut() {
            redis.stop(Duration::from_secs(5), &logs).await;
        }
        local::stop_all(&mut cluster.procs, &logs).await;
    }
    Ok(())
}

async fn start_cluster(
    bin_dir: Option<&Path>,
    durability: Durability,
) -> anyhow::Result<(OwnCluster, Vec<String>)> {
    let bins = local::bin_dir(bin_dir)?;
    let broker = local::binary(&bins, "broker")?;
    let follower = local::binary(&bins, "follower")?;
    let dir = tempfile::Builder::new().prefix("yak-bench-").tempdir()?;
    let logs = Logs::Files(dir.path().to_owned());
    let (redis, redis_url) =
        local::start_redis(&dir.path().join("redis"), durability, &logs).await?;
    let mut procs = vec![redis];
    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    for (id, bin) in [("broker", &broker), ("follower", &follower)] {
        let port = local::free_port()?;
        let mut args = local::node_args(
            id,
            "127.0.0.1",
            port,
            dir.path(),
            &redis_url,
            LEASE_TTL.as_millis() as u64,
        );
        args.extend([
            "--tcp-listen".to_owned(),
            format!("127.0.0.1:{}", local::free_port()?),
        ]);
        procs.push(Proc::spawn(id, bin, &args, &logs)?);
        nodes.push((id.to_owned(), procs.len() - 1));
        let url = format!("http://127.0.0.1:{port}");
        local::wait_healthy(id, &url, Duration::from_secs(30)).await?;
        urls.push(url);
    }
    Ok((
        OwnCluster {
            _dir: dir,
            logs,
            procs,
            nodes,
        },
        urls,
    ))
}

fn rate(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
}

/// Batches of `sizes.batch` records from `sizes.producers` producers, each
/// batch to one partition (the producers take turns over the three). With
/// `json`, through `POST /produce` (one JSON object per record); otherwise
/// as binary batches through `POST /produce/batch`.
async fn batched_produce(
    client: &YakClient,
    topic: &str,
    value: &str,
    sizes: &Sizes,
    json: bool,
) -> anyhow::Result<f64> {
    let per_producer = sizes.batched_records / sizes.producers as u64;
    let batches = per_producer.div_ceil(sizes.batch as u64);
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks = (0..sizes.producers).map(|p| {
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        let (topic, value, batch) = (topic.to_owned(), value.to_owned(), sizes.batch);
        let failed = Arc::clone(&failed);
        tokio::spawn(async move {
            for b in 0..batches {
                let partition = ((p as u64 + b) % 3) as u32;
                let bad = if json {
                    let records: Vec<Record> = (0..batch)
                        .map(|_| {
                            Record::new(&topic, Value::String(value.clone())).partition(partition)
                        })
                        .collect();
                    let results = producer.send_batch(&records).await;
                    results.iter().filter(|r| r.is_err()).count()
                } else {
                    let records = (0..batch).map(|_| (None, value.as_bytes()));
                    match producer.send_records(&topic, partition, records).await {
                        Ok(_) => 0,
                        Err(_) => batch,
                    }
                };
                failed.fetch_add(bad as u64, Ordering::Relaxed);
            }
        })
    });
    for task in join_all(tasks).await {
        task?;
    }
    let took = started.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} records failed in the batched produce");
    }
    Ok(rate(
        batches * sizes.batch as u64 * sizes.producers as u64,
        took,
    ))
}

/// Cumulative sums and counts of the leader's replication round trips and
/// HWM commits, from its `/metrics`: where an unbatched write's time goes.
struct LeaderTimings {
    replication: (f64, f64),
    hwm_commit: (f64, f64),
}

struct Breakdown {
    replication_ms: f64,
    hwm_commit_ms: f64,
    commits: f64,
}

impl LeaderTimings {
    fn since(&self, before: &Self) -> Breakdown {
        let mean = |(sum, count): (f64, f64), (sum0, count0): (f64, f64)| {
            if count > count0 {
                (sum - sum0) / (count - count0) * 1000.0
            } else {
                0.0
            }
        };
        Breakdown {
            replication_ms: mean(self.replication, before.replication),
            hwm_commit_ms: mean(self.hwm_commit, before.hwm_commit),
            commits: self.hwm_commit.1 - before.hwm_commit.1,
        }
    }
}

async fn leader_timings(client: &YakClient) -> Option<LeaderTimings> {
    let url = client.leader_url().await.ok()?;
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    let pair = |metric: &str| {
        Some((
            value(&format!("{metric}_sum"))?,
            value(&format!("{metric}_count"))?,
        ))
    };
    Some(LeaderTimings {
        replication: pair("yak_replication_round_trip_seconds")?,
        hwm_commit: pair("yak_hwm_commit_seconds")?,
    })
}

struct Latency {
    msgs_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

fn latency(histogram: &Histogram<u64>, count: u64, took: Duration) -> Latency {
    let ms = |q| histogram.value_at_quantile(q) as f64 / 1000.0;
    Latency {
        msgs_per_s: rate(count, took),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// One record per request from `sizes.clients` clients, each with its own
/// connection and one request in flight (as the Redis baseline's), each
/// request to the next of the three partitions in turn. Requests go over
/// the leader's binary port when it has one, like any `send_records`.
async fn unbatched_produce(
    client: &YakClient,
    topic: &str,
    value: &str,
    sizes: &Sizes,
) -> anyhow::Result<Latency> {
    let until = Instant::now() + sizes.unbatched_for;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(sizes.clients);
    for c in 0..sizes.clients {
        let own = YakClient::with_config(client.bootstrap().to_vec(), client.config().clone())?;
        let producer = Producer::new(own, ProducerConfig::default());
        let (topic, value) = (topic.to_owned(), value.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let mut failed = 0u64;
            let mut partition = c as u32 % 3;
            while Instant::now() < until {
                let sent = Instant::now();
                let record = [(None, value.as_bytes())];
                match producer.send_records(&topic, partition, record).await {
                    Ok(_) => histogram.saturating_record(sent.elapsed().as_micros().max(1) as u64),
                    Err(_) => failed += 1,
                }
                partition = (partition + 1) % 3;
            }
            (histogram, failed)
        }));
    }
    let mut total = new_histogram();
    for task in join_all(tasks).await {
        let (histogram, failed) = task?;
        if failed > 0 {
            bail!("{failed} records failed in the unbatched produce");
        }
        total.add(&histogram)?;
    }
    Ok(latency(&total, total.len(), started.elapsed()))
}

async fn consume_partition(client: &YakClient, topic: &str) -> anyhow::Result<(f64, u64)> {
    let detail = client.describe_topic(topic).await?;
    let hwm = detail.partitions[0].high_water_mark;
    let mut consumer =
        Consumer::new(client.clone(), topic, 0, StartAt::Earliest).max_records(10_000);
    let started = Instant::now();
    let mut read = 0u64;
    while consumer.position().is_none_or(|p| p < hwm) {
        read += consumer.poll(Duration::ZERO).await?.len() as u64;
    }
    Ok((rate(read, started.elapsed()), read))
}

const STREAM: &str = "yak-bench";

async fn redis_batched(redis: &redis::Client, value: &str, sizes: &Sizes) -> anyhow::Result<f64> {
    let per_task = sizes.batched_records / sizes.producers as u64;
    let batches = per_task.div_ceil(sizes.batch as u64);
    let started = Instant::now();
    let tasks = (0..sizes.producers).map(|_| {
        let (redis, value, batch) = (redis.clone(), value.to_owned(), sizes.batch);
        tokio::spawn(async move {
            let mut conn = redis.get_multiplexed_async_connection().await?;
            for _ in 0..batches {
                let mut pipe = redis::pipe();
                for _ in 0..batch {
                    pipe.cmd("XADD")
                        .arg(STREAM)
                        .arg("*")
                        .arg("v")
                        .arg(&value)
                        .ignore();
                }
                let () = pipe.query_async(&mut conn).await?;
            }
            Ok::<_, redis::RedisError>(())
        })
    });
    for task in join_all(tasks).await {
        task??;
    }
    Ok(rate(
        batches * sizes.batch as u64 * sizes.producers as u64,
        started.elapsed(),
    ))
}

async fn redis_unbatched(
    redis: &redis::Client,
    value: &str,
    sizes: &Sizes,
) -> anyhow::Result<Latency> {
    let until = Instant::now() + sizes.unbatched_for;
    let started = Instant::now();
    let tasks = (0..sizes.clients).map(|_| {
        let (redis, value) = (redis.clone(), value.to_owned());
        tokio::spawn(async move {
            // One connection per client, one request in flight on it.
            let mut conn = redis.get_multiplexed_async_connection().await?;
            let mut histogram = new_histogram();
            while Instant::now() < until {
                let sent = Instant::now();
                let _: String = redis::cmd("XADD")
                    .arg(STREAM)
                    .arg("*")
                    .arg("v")
                    .arg(&value)
                    .query_async(&mut conn)
                    .await?;
                histogram.saturating_record(sent.elapsed().as_micros().max(1) as u64);
            }
            Ok::<_, redis::RedisError>(histogram)
        })
    });
    let mut total = new_histogram();
    for task in join_all(tasks).await {
        total.add(&task??)?;
    }
    Ok(latency(&total, total.len(), started.elapsed()))
}

async fn redis_read_back(redis: &redis::Client) -> anyhow::Result<f64> {
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let started = Instant::now();
    let mut from = "-".to_owned();
    let mut read = 0u64;
    loop {
        let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(STREAM)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        let Some(last) = page.ids.last() else { break };
        read += page.ids.len() as u64;
        from = format!("({}", last.id);
    }
    Ok(rate(read, started.elapsed()))
}

/// The shipped default (`--lease-ttl-ms`).
const LEASE_TTL: Duration = Duration::from_millis(2000);

struct Failover {
    p50_ms: f64,
    max_ms: f64,
    samples_ms: Vec<f64>,
    /// Lease time the killed leader had left, per sample.
    lease_left_ms: Vec<f64>,
    /// Median of `sample - lease left`: election, prepare, first commit
    /// and the producer's retry.
    takeover_p50_ms: f64,
}

/// Kills the leader while a producer runs, `n` times; each time measures
/// from the kill to the first write acknowledged at a newer epoch, then
/// restarts the killed node and waits until it is back in every ISR.
async fn failovers(
    cluster: &mut OwnCluster,
    client: &YakClient,
    topic: &str,
    value: &str,
    n: usize,
) -> anyhow::Result<Failover> {
    // When the first write at each leader epoch was acknowledged.
    let first_acks: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(true));
    let producing = {
        let (first_acks, running) = (Arc::clone(&first_acks), Arc::clone(&running));
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        let record = Record::new(topic, Value::String(value.to_owned()));
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                if let Ok(produced) = producer.send(record.clone()).await {
                    let epoch = produced.epoch.unwrap_or(0);
                    first_acks
                        .lock()
                        .unwrap()
                        .entry(epoch)
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let (mut samples, mut lease_left) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for round in 0..n {
        // Only a node in every ISR may take over: start from a healthy cluster.
        wait_full_isr(client, topic).await?;
        // The previous takeover has just renewed the lease: killing now would
        // always leave close to a full TTL to wait out.
        tokio::time::sleep(LEASE_TTL.mul_f64(rand::random::<f64>())).await;
        let info = client.leader_info().await?;
        let leader = info.leader_id.context("no leader")?;
        let index = cluster
            .nodes
            .iter()
            .find(|(id, _)| *id == leader)
            .map(|(_, i)| *i)
            .context("the leader is not a node this bench started")?;
        let killed = Instant::now();
        cluster.procs[index].kill9().await;
        let deadline = killed + Duration::from_secs(30);
        let took = loop {
            // The epoch, not the time: an answer the old leader sent just
            // before the kill may be read just after it.
            let first = first_acks
                .lock()
                .unwrap()
                .range(info.epoch + 1..)
                .next()
                .map(|(_, t)| *t);
            if let Some(first) = first {
                break first.duration_since(killed);
            }
            if Instant::now() > deadline {
                bail!("no write acknowledged within 30 s of killing {leader}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let left = info.lease_ttl_ms.unwrap_or(0) as f64;
        samples.push(took.as_secs_f64() * 1000.0);
        lease_left.push(left);
        out(format!(
            "  failover {}: {:.0} ms ({left:.0} ms of lease left)",
            round + 1,
            took.as_secs_f64() * 1000.0
        ));
        cluster.procs[index].restart(&cluster.logs)?;
    }
    running.store(false, Ordering::Relaxed);
    producing.await?;
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let totals = sorted(samples.clone());
    let takeovers = sorted(
        samples
            .iter()
            .zip(&lease_left)
            .map(|(s, l)| s - l)
            .collect(),
    );
    Ok(Failover {
        p50_ms: totals[n / 2],
        max_ms: totals[n - 1],
        samples_ms: samples,
        lease_left_ms: lease_left,
        takeover_p50_ms: takeovers[n / 2],
    })
}

async fn wait_full_isr(client: &YakClient, topic: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(detail) = client.describe_topic(topic).await
            && detail.partitions.iter().all(|p| p.isr.len() == 2)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the restarted node did not rejoin the ISR within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resident memory of the process started as `broker`.
fn broker_rss_mb(cluster: &OwnCluster) -> anyhow::Result<f64> {
    let index = cluster
        .nodes
        .iter()
        .find(|(id, _)| id == "broker")
        .map(|(_, i)| *i)
        .context("no broker")?;
    let pid = cluster.procs[index]
        .pid()
        .context("the broker is not running")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status")?;
    Ok(kb / 1024.0)
}

fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let mem_gb = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0 / 1024.0);
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "memory_gb": mem_gb,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
    })
}

/// The commit of the checkout the running `yak` was built in (it lives in
/// its `target/`), so the figure is right wherever the bench is run from.
fn git_commit() -> String {
    let checkout = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    std::process::Command::new("git")
        .arg("-C")
        .arg(checkout)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn print_table(results: &Value) {
    let f = |path: &[&str]| {
        path.iter()
            .try_fold(results, |v, k| v.get(k))
            .and_then(Value::as_f64)
    };
    let show = |v: Option<f64>, unit: &str| v.map_or("-".to_owned(), |v| format!("{v:.1} {unit}"));
    let rows = [
        (
            "batched produce",
            show(f(&["batched_produce", "msgs_per_s"]), "msg/s"),
            show(f(&["batched_produce", "redis_msgs_per_s"]), "msg/s"),
            f(&["batched_produce", "ratio"]),
        ),
        (
            "batched produce (JSON)",
            show(f(&["batched_produce", "json_msgs_per_s"]), "msg/s"),
            "-".to_owned(),
            None,
        ),
        (
            "unbatched produce",
            show(f(&["unbatched_produce", "msgs_per_s"]), "msg/s"),
            show(f(&["unbatched_produce", "redis_msgs_per_s"]), "msg/s"),
            f(&["unbatched_produce", "ratio"]),
        ),
        (
            "unbatched p99",
            show(f(&["unbatched_produce", "p99_ms"]), "ms"),
            show(f(&["unbatched_produce", "redis_p99_ms"]), "ms"),
            None,
        ),
        (
            "  leader replicate / HWM",
            format!(
                "{} / {}",
                show(
                    f(&["unbatched_produce", "leader_mean_replication_ms"]),
                    "ms"
                ),
                show(f(&["unbatched_produce", "leader_mean_hwm_commit_ms"]), "ms")
            ),
            "-".to_owned(),
            None,
        ),
        (
            "consume (1 partition)",
            show(f(&["consume", "msgs_per_s"]), "msg/s"),
            show(f(&["consume", "redis_msgs_per_s"]), "msg/s"),
            f(&["consume", "ratio"]),
        ),
        (
            "failover p50 / max",
            format!(
                "{} / {}",
                show(f(&["failover", "p50_ms"]), "ms"),
                show(f(&["failover", "max_ms"]), "ms")
            ),
            "-".to_owned(),
            None,
        ),
        (
            "  takeover after lease expiry p50",
            show(f(&["failover", "takeover_p50_ms"]), "ms"),
            "-".to_owned(),
            None,
        ),
        (
            "broker RSS",
            show(f(&["memory", "broker_rss_mb"]), "MB"),
            "-".to_owned(),
            None,
        ),
    ];
    out(format!(
        "{:<24} {:>22} {:>22} {:>8}",
        "", "YAK", "Redis Streams", "YAK/Redis"
    ));
    for (name, yak, redis, ratio) in rows {
        let ratio = ratio.map_or("-".to_owned(), |r| format!("{r:.2}"));
        out(format!("{name:<24} {yak:>22} {redis:>22} {ratio:>8}"));
    }
}

fn draw_chart(path: &Path, results: &Value) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let get = |a: &str, b: &str| {
        results
            .get(a)
            .and_then(|v| v.get(b))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    let throughput = [
        (
            "batched produce",
            get("batched_produce", "msgs_per_s"),
            get("batched_produce", "redis_msgs_per_s"),
        ),
        (
            "unbatched produce",
            get("unbatched_produce", "msgs_per_s"),
            get("unbatched_produce", "redis_msgs_per_s"),
        ),
        (
            "consume",
            get("consume", "msgs_per_s"),
            get("consume", "redis_msgs_per_s"),
        ),
    ];
    let latency = [
        ("p50", get("unbatched_produce", "p50_ms")),
        ("p99", get("unbatched_produce", "p99_ms")),
        ("p99.9", get("unbatched_produce", "p999_ms")),
    ];
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(620);
    let max = throughput.iter().map(|t| t.1.max(t.2)).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&left)
        .caption(
            "Throughput (messages/s): YAK vs Redis Streams",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..2.5, 0.0..max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(7)
        .x_label_formatter(&|x: &f64| category(*x, &throughput.map(|t| t.0)))
        .y_label_formatter(&|y: &f64| format!("{:.0}k", y / 1000.0))
        .draw()?;
    let yak = RGBColor(0x4f, 0x46, 0xe5);
    let redis_colour = RGBColor(0xdc, 0x26, 0x26);
    chart
        .draw_series(throughput.iter().enumerate().map(|(i, t)| {
            Rectangle::new(
                [(i as f64 + 0.15, 0.0), (i as f64 + 0.48, t.1)],
                yak.filled(),
            )
        }))?
        .label("YAK (replicated)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], yak.filled()));
    chart
        .draw_series(throughput.iter().enumerate().map(|(i, t)| {
            Rectangle::new(
                [(i as f64 + 0.52, 0.0), (i as f64 + 0.85, t.2)],
                redis_colour.filled(),
            )
        }))?
        .label("Redis Streams")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], redis_colour.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    let max_ms = latency.iter().map(|l| l.1).fold(1.0, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(&right)
        .caption("Unbatched produce latency (ms)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..2.5, 0.0..max_ms)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(7)
        .x_label_formatter(&|x: &f64| category(*x, &latency.map(|l| l.0)))
        .draw()?;
    chart.draw_series(latency.iter().enumerate().map(|(i, l)| {
        Rectangle::new([(i as f64 - 0.3, 0.0), (i as f64 + 0.3, l.1)], yak.filled())
    }))?;
    root.present()?;
    Ok(())
}

/// The name of the bar group at integer position `x`; blank between groups.
fn category(x: f64, names: &[&str]) -> String {
    let i = x.round();
    if (x - i).abs() > 0.01 || i < 0.0 {
        return String::new();
    }
    names
        .get(i as usize)
        .map_or(String::new(), |n| (*n).to_owned())
}
