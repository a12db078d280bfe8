//! `nemesis`: a soak run of the fault-injection suite — a random mix of
//! faults every 5–15 s for `--duration`, then the checks. Prints every
//! violation and a summary line; exits non-zero on any violation.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Parser;
use nemesis::{RunConfig, cluster::ClusterConfig};

#[derive(Debug, Parser)]
#[command(about = "Fault-injection soak run against a real YAK cluster")]
struct Args {
    /// Seed of the fault scheduler (same seed, same fault decisions).
    #[arg(long, env = "NEMESIS_SEED", default_value_t = 1)]
    seed: u64,
    /// How long to inject faults, e.g. `20m`, `1h`.
    #[arg(long, env = "NEMESIS_DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Shortest gap between two faults.
    #[arg(long, env = "NEMESIS_MIN_GAP", default_value = "5s", value_parser = humantime::parse_duration)]
    min_gap: Duration,
    /// Longest gap between two faults.
    #[arg(long, env = "NEMESIS_MAX_GAP", default_value = "15s", value_parser = humantime::parse_duration)]
    max_gap: Duration,
    /// Followers besides the broker (1 or 2).
    #[arg(long, env = "NEMESIS_FOLLOWERS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=2))]
    followers: u64,
    /// `--min-insync-replicas` of the nodes.
    #[arg(long, env = "NEMESIS_MIN_INSYNC", default_value_t = 2)]
    min_insync: u32,
    /// Lease TTL of the nodes, in milliseconds.
    #[arg(long, env = "NEMESIS_LEASE_TTL_MS", default_value_t = 2000)]
    lease_ttl_ms: u64,
    /// Concurrent HTTP producers (one JSON record per request).
    #[arg(long, env = "NEMESIS_PRODUCERS", default_value_t = 2)]
    producers: u32,
    /// Concurrent producers over the binary produce port (batches).
    #[arg(long, env = "NEMESIS_BINARY_PRODUCERS", default_value_t = 1)]
    binary_producers: u32,
    /// Concurrent idempotent Kafka producers (batches).
    #[arg(long, env = "NEMESIS_KAFKA_PRODUCERS", default_value_t = 1)]
    kafka_producers: u32,
    /// Partitions of the test topic.
    #[arg(long, env = "NEMESIS_PARTITIONS", default_value_t = 3)]
    partitions: u32,
    /// Write the history as JSON lines to this file.
    #[arg(long, env = "NEMESIS_HISTORY")]
    history: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    anyhow::ensure!(args.min_gap <= args.max_gap, "--min-gap is above --max-gap");
    let config = RunConfig {
        seed: args.seed,
        duration: args.duration,
        gap: args.min_gap..args.max_gap,
        kinds: Vec::new(),
        cluster: ClusterConfig {
            followers: args.followers as usize,
            lease_ttl_ms: args.lease_ttl_ms,
            min_insync_replicas: args.min_insync,
            partitions: args.partitions,
            ..ClusterConfig::default()
        },
        producers: args.producers,
        binary_producers: args.binary_producers,
        kafka_producers: args.kafka_producers,
        history: args.history,
    };
    let summary = nemesis::run(config)
        .await
        .context("the run could not be carried out")?;
    for violation in &summary.report.violations {
        eprintln!("VIOLATION {violation}");
    }
    println!("{summary}");
    Ok(if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
