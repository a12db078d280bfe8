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
//! 3. consume: everything in one partition read back; then the whole
//!    topic by the one member of a consumer group, committing as it goes;
//! 4. group rebalance: two members share the topic, one is dropped without
//!    leaving (as if killed), and the survivor waits until it holds every
//!    partition — the session timeout plus the rebalance;
//! 5. failover: `kill -9` of the leader while a producer runs, from the
//!    kill to the first acknowledged write on the new leader. The kill
//!    lands at a random moment of the leader's renewal cycle, as a crash
//!    would, and each sample records the lease time the dead leader had
//!    left, which the successor no longer waits out;
//! 6. the baseline: Redis Streams on a separate, non-persistent
//!    redis-server — pipelined XADD, one XADD per request from as many
//!    connections, and XRANGE read-back;
//! 7. `--fsync always`: a second cluster whose nodes fsync every round
//!    before acknowledging it, batched and unbatched produce;
//! 8. the baseline with YAK's guarantee: one XADD then `WAIT 1 0` per
//!    request on a Redis primary and its replica, append-only files on both,
//!    with `appendfsync everysec` and then `always`.
//!
//! Phases 1 and 3 also run through the broker's Kafka listener ([`kafka`]):
//! batched produce shaped like phase 1's, right after it, consume shaped
//! like phase 3's, right after it (both by the `kafka-client` crate), and
//! produce and consume with kcat (librdkafka), when it is installed, after
//! phase 3.
//!
//! This module holds the flags and runs the phases in order; each phase is
//! its own module ([`batched_produce`], [`unbatched_produce`], [`consume`], [`kafka`],
//! [`group`], [`failover`], and [`memory`] just before failover), the Redis
//! side is [`redis_baseline`] and [`replicated_redis`], the processes the
//! bench starts are
//! [`cluster`], and [`report`] turns the figures into the JSON file, the
//! chart and the table.

mod batched_produce;
mod cluster;
mod consume;
mod failover;
mod group;
mod kafka;
mod memory;
mod redis_baseline;
mod replicated_redis;
mod report;
mod unbatched_produce;

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;
use yak_client::{ClientConfig, YakClient};

use super::out;
use crate::local::Durability;
use cluster::OwnCluster;
use report::Figures;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Benchmark a running cluster instead of starting one (comma-separated
    /// node URLs). Failover and memory are then skipped.
    #[arg(long, env = "YAK_BENCH_BOOTSTRAP", value_delimiter = ',')]
    bootstrap: Option<Vec<String>>,
    /// A node's Kafka listener (`host:port`) for the Kafka figures when
    /// --bootstrap is given.
    #[arg(long, env = "YAK_BENCH_KAFKA_BOOTSTRAP")]
    kafka_bootstrap: Option<String>,
    /// Redis for the Streams baseline when --bootstrap is given.
    #[arg(long, env = "YAK_BENCH_REDIS_URL")]
    redis_url: Option<String>,
    /// Small sizes: finishes in under a minute.
    #[arg(long, env = "YAK_BENCH_QUICK", value_parser = clap::builder::BoolishValueParser::new())]
    quick: bool,
    /// Bytes per record value.
    #[arg(long, env = "YAK_BENCH_VALUE_BYTES", default_value_t = 100)]
    value_bytes: usize,
    /// Where to write the figures.
    #[arg(long, env = "YAK_BENCH_OUT", default_value = "bench-results.json")]
    out: PathBuf,
    /// Where to draw the chart (SVG).
    #[arg(long, env = "YAK_BENCH_CHART", default_value = "bench-results.svg")]
    chart: PathBuf,
    /// How the Redis of the cluster the bench starts fsyncs its append-only
    /// file: `always` (as shipped, what the no-loss guarantee needs) or
    /// `everysec` (to measure what the per-write fsync costs).
    #[arg(long, env = "YAK_BENCH_REDIS_FSYNC", value_enum, default_value_t = RedisFsync::Always)]
    redis_fsync: RedisFsync,
    /// How many times to kill the leader [default: 10, quick: 3].
    #[arg(long, env = "YAK_BENCH_FAILOVERS", value_parser = clap::value_parser!(u64).range(1..=1000))]
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

impl RedisFsync {
    fn durability(self) -> Durability {
        match self {
            RedisFsync::Always => Durability::AppendFsyncAlways,
            RedisFsync::Everysec => Durability::AppendFsyncEverySec,
        }
    }
}

/// How much each phase does.
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

/// Records per second.
fn rate(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut sizes = Sizes::new(args.quick);
    if let Some(n) = args.failovers {
        sizes.failovers = n as usize;
    }
    let value = "x".repeat(args.value_bytes);
    let (bootstrap, mut own, baseline_url, kafka_bootstrap) = match &args.bootstrap {
        Some(urls) => {
            let redis = args
                .redis_url
                .clone()
                .context("--bootstrap needs --redis-url for the Redis Streams baseline")?;
            (urls.clone(), None, redis, args.kafka_bootstrap.clone())
        }
        None => {
            let (cluster, urls) =
                OwnCluster::start(args.bin_dir.as_deref(), args.redis_fsync.durability(), &[])
                    .await?;
            let url = cluster.baseline_url().to_owned();
            let kafka = cluster.kafka_addr().map(str::to_owned);
            (urls, Some(cluster), url, kafka)
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

    out("1/8 batched produce…");
    let batched = batched_produce::measure(&client, &topic, &value, &sizes, false).await?;
    let kafka_batched = match &kafka_bootstrap {
        Some(addr) => {
            out("   … and through the Kafka listener");
            Some(kafka::produce_batches(&client, addr, &topic, &value, &sizes).await?)
        }
        None => {
            out("   no Kafka listener (--kafka-bootstrap): Kafka figures skipped");
            None
        }
    };
    let batched_json = batched_produce::measure(&client, &topic, &value, &sizes, true).await?;
    let redis_batched = redis_baseline::batched(&redis, &value, &sizes).await?;
    out("2/8 unbatched produce…");
    let before = unbatched_produce::leader_timings(&client).await;
    let unbatched = unbatched_produce::measure(&client, &topic, &value, &sizes).await?;
    let breakdown = match (before, unbatched_produce::leader_timings(&client).await) {
        (Some(before), Some(after)) => Some(after.since(&before)),
        _ => None,
    };
    let redis_unbatched =
        redis_baseline::unbatched(&redis, &value, &sizes, redis_baseline::Ack::Primary).await?;
    out("3/8 consume…");
    let consume = consume::measure(&client, &topic).await?;
    // Right after the binary read, so that both meet the same machine.
    let kafka_consume = match &kafka_bootstrap {
        Some(addr) => {
            out("   … and through the Kafka listener");
            Some(kafka::measure_consume(&client, addr, &topic).await?)
        }
        None => None,
    };
    let group_consume = group::consume(&client, &topic).await?;
    let redis_consume = redis_baseline::read_back(&redis).await?;
    let kafka = match (kafka_batched, kafka_consume, &kafka_bootstrap) {
        (Some(batched), Some(kafka_consume), Some(addr)) => {
            let kcat = match kafka::client().await {
                Some(kcat) => {
                    out(format!("   … and through the Kafka listener with {kcat}"));
                    let target = (addr.as_str(), kcat);
                    let (records, topic) = (consume.records, &topic);
                    Some(
                        kafka::measure_kcat(&client, target, topic, records, &value, &sizes)
                            .await?,
                    )
                }
                None => {
                    out(
                        "   kcat not found (scripts/system-deps.sh kcat installs it): kcat figures skipped",
                    );
                    None
                }
            };
            Some(kafka::KafkaFigures {
                batched,
                consume: kafka_consume,
                kcat,
            })
        }
        _ => None,
    };
    out("4/8 group rebalance…");
    let group_rebalance = group::rebalance(&client, &topic).await?;
    let memory = match &own {
        Some(cluster) => Some(memory::broker_rss_mb(cluster)?),
        None => None,
    };
    out("5/8 failover…");
    let failover = match &mut own {
        Some(cluster) => {
            Some(failover::measure(cluster, &client, &topic, &value, sizes.failovers).await?)
        }
        None => None,
    };
    let fsync_always = match own.take() {
        Some(cluster) => {
            cluster.stop().await;
            out("6/8 --fsync always…");
            Some(fsync_always(&args, &value, &sizes).await?)
        }
        None => None,
    };
    out("7/8 replicated Redis Streams…");
    let scratch = tempfile::Builder::new()
        .prefix("yak-bench-redis-")
        .tempdir()?;
    let logs = crate::local::Logs::Files(scratch.path().to_owned());
    let replicated = replicated_redis::measure(scratch.path(), &logs, &value, &sizes).await?;
    out("8/8 writing results…");

    let figures = Figures {
        batched,
        batched_json,
        redis_batched,
        unbatched,
        breakdown,
        redis_unbatched,
        consume,
        group_consume,
        group_rebalance,
        redis_consume,
        kafka,
        memory,
        failover,
        fsync_always,
        replicated,
    };
    report::write(&args, &sizes, args.bootstrap.is_none(), &figures)?;
    Ok(())
}

/// Batched and unbatched produce on a cluster of its own whose nodes run
/// with `--fsync always`.
async fn fsync_always(
    args: &BenchArgs,
    value: &str,
    sizes: &Sizes,
) -> anyhow::Result<report::FsyncAlways> {
    let (cluster, urls) = OwnCluster::start(
        args.bin_dir.as_deref(),
        args.redis_fsync.durability(),
        &["--fsync", "always"],
    )
    .await?;
    let measured = async {
        let client = YakClient::with_config(urls, ClientConfig::default())?;
        client
            .leader_url()
            .await
            .context("no leader in the --fsync always cluster")?;
        let topic = format!("bench-always-{}", std::process::id());
        client.create_topic(&topic, Some(3)).await?;
        let batched = batched_produce::measure(&client, &topic, value, sizes, false).await?;
        let unbatched = unbatched_produce::measure(&client, &topic, value, sizes).await?;
        Ok(report::FsyncAlways { batched, unbatched })
    }
    .await;
    match measured {
        Ok(_) => cluster.stop().await,
        // Killed, its directory kept and named, as for the main cluster.
        Err(_) => drop(cluster),
    }
    measured
}
