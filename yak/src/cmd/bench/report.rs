//! The results of a run: the `bench-results.json` document (with the
//! machine and the commit it ran on), the SVG chart drawn from it, and the
//! table printed at the end.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use super::{
    BenchArgs, Sizes,
    consume::ReadBack,
    failover::Failover,
    group::Rebalance,
    kafka::KafkaFigures,
    out,
    replicated_redis::Replicated,
    unbatched_produce::{Breakdown, Latency},
};

/// Every figure one run measured.
pub struct Figures {
    pub batched: f64,
    pub batched_json: f64,
    pub redis_batched: f64,
    pub unbatched: Latency,
    pub breakdown: Option<Breakdown>,
    pub redis_unbatched: Latency,
    pub consume: ReadBack,
    pub group_consume: ReadBack,
    pub group_rebalance: Rebalance,
    pub redis_consume: f64,
    /// Through the Kafka listener, when there is one (kcat's figures
    /// when kcat is installed too).
    pub kafka: Option<KafkaFigures>,
    pub memory: Option<f64>,
    pub failover: Option<Failover>,
    /// Produce on nodes run with `--fsync always` (own cluster only).
    pub fsync_always: Option<FsyncAlways>,
    pub replicated: Replicated,
}

/// Produce figures of a cluster whose nodes fsync every round.
pub struct FsyncAlways {
    pub batched: f64,
    pub unbatched: Latency,
}

/// Writes the JSON file and the chart, prints the table and where both
/// went. `own_cluster`: the bench started the cluster it measured.
pub fn write(
    args: &BenchArgs,
    sizes: &Sizes,
    own_cluster: bool,
    figures: &Figures,
) -> anyhow::Result<()> {
    let results = results(args, sizes, own_cluster, figures);
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    draw_chart(&args.chart, &results)?;
    print_table(&results);
    out(format!(
        "wrote {} and {}",
        args.out.display(),
        args.chart.display()
    ));
    Ok(())
}

/// The `bench-results.json` document. Keys keep this order in the file.
fn results(args: &BenchArgs, sizes: &Sizes, own_cluster: bool, figures: &Figures) -> Value {
    let Figures {
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
    } = figures;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    json!({
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
            "cluster": if own_cluster { "started by the bench: redis-server (AOF), broker + 1 follower, shipped defaults (fsync interval:100ms, lease TTL 2 s, min ISR 1)" } else { "existing cluster (--bootstrap)" },
            "cluster_redis_appendfsync": if own_cluster { format!("{:?}", args.redis_fsync).to_lowercase() } else { "unknown".to_owned() },
            "replication": "synchronous, every write on the follower before it is acknowledged",
            "redis_baseline": "separate redis-server, no persistence (--appendonly no --save ''), one stream",
            "redis_replicated_baseline": "a redis-server primary and one replica (--replicaof), append-only files on both; each request XADD then WAIT 1 0 on the same connection (pipelined), one request in flight per client; appendfsync everysec on both, then always on both",
            "fsync_always_cluster": "a second cluster like the first, its nodes run with --fsync always",
            "topic_partitions": 3,
            "group_consume": "the whole topic (every partition, from its start to the high-water mark it had when the read started) by the one member of a consumer group, committing at every poll; consume reads partition 0 alone",
            "kafka": "against the broker's Kafka listener. batched: the batched phase's shape (as many producers, records and records per request, one request in flight per producer, idempotent, acks=-1) sent as Produce v9 by the kafka-client crate (kafka-protocol), to a topic of its own. consume: consume's shape (partition 0 of the bench topic, whole passes from the earliest offset to the high-water mark until they add up to 0.5 s) read by the kafka-client crate: Fetch v12 of up to 1 MiB, one fetch ahead, every batch decoded and CRC-checked by kafka-protocol, every value made a string. kcat (librdkafka): produce from one kcat process per CPU, each to one partition, linger.ms=5 and acks=all, as many records in all as the batched phase, to a topic of its own, whole runs timed (start-up included); consume partition 0 of the bench topic from its start (what consume reads), printing offsets only, timed from the first record to the last",
            "group_rebalance": "two members of a group share the topic; one is dropped without leaving (its heartbeats stop, as in a killed process); from then until the survivor holds every partition",
        },
        "git_commit": git_commit(),
        "batched_produce": {
            "msgs_per_s": batched,
            "json_msgs_per_s": batched_json,
            "redis_msgs_per_s": redis_batched,
            "ratio": ratio(*batched, *redis_batched),
        },
        "unbatched_produce": {
            "msgs_per_s": unbatched.msgs_per_s,
            "p50_ms": unbatched.p50_ms,
            "p99_ms": unbatched.p99_ms,
            "p999_ms": unbatched.p999_ms,
            "redis_msgs_per_s": redis_unbatched.msgs_per_s,
            "redis_p99_ms": redis_unbatched.p99_ms,
            "redis_replicated_msgs_per_s": replicated.everysec.msgs_per_s,
            "redis_replicated_p50_ms": replicated.everysec.p50_ms,
            "redis_replicated_p99_ms": replicated.everysec.p99_ms,
            "ratio_to_redis_replicated": ratio(unbatched.msgs_per_s, replicated.everysec.msgs_per_s),
            "leader_mean_replication_ms": breakdown.as_ref().map(|b| b.replication_ms),
            "leader_mean_hwm_commit_ms": breakdown.as_ref().map(|b| b.hwm_commit_ms),
            "leader_commits": breakdown.as_ref().map(|b| b.commits),
            "ratio": ratio(unbatched.msgs_per_s, redis_unbatched.msgs_per_s),
        },
        "consume": {
            "msgs_per_s": consume.msgs_per_s,
            "records": consume.records,
            "redis_msgs_per_s": redis_consume,
            "ratio": ratio(consume.msgs_per_s, *redis_consume),
        },
        "group_consume": {
            "msgs_per_s": group_consume.msgs_per_s,
            "records": group_consume.records,
            "ratio_to_consume": ratio(group_consume.msgs_per_s, consume.msgs_per_s),
        },
        "group_rebalance": {
            "after_kill_ms": group_rebalance.after_kill_ms,
            "session_timeout_ms": group_rebalance.session_timeout_ms,
        },
        "failover": failover.as_ref().map(|f| json!({
            "p50_ms": f.p50_ms,
            "max_ms": f.max_ms,
            "samples_ms": f.samples_ms,
            "lease_left_ms": f.lease_left_ms,
            "ahead_of_lease_expiry_p50_ms": f.ahead_of_expiry_p50_ms,
        })),
        "kafka": kafka.as_ref().map(|k| json!({
            "batched_msgs_per_s": k.batched,
            "ratio_to_binary_batched": ratio(k.batched, *batched),
            "consume_msgs_per_s": k.consume,
            "ratio_to_binary_consume": ratio(k.consume, consume.msgs_per_s),
            "kcat": k.kcat.as_ref().map(|c| c.client.clone()),
            "kcat_batched_msgs_per_s": k.kcat.as_ref().map(|c| c.batched),
            "kcat_ratio_to_binary_batched": k.kcat.as_ref().map(|c| ratio(c.batched, *batched)),
            "kcat_consume_msgs_per_s": k.kcat.as_ref().map(|c| c.consume),
            "kcat_ratio_to_binary_consume": k.kcat.as_ref().map(|c| ratio(c.consume, consume.msgs_per_s)),
        })),
        "memory": memory.map(|m| json!({ "broker_rss_mb": m })),
        "fsync_always": {
            "batched_msgs_per_s": fsync_always.as_ref().map(|f| f.batched),
            "msgs_per_s": fsync_always.as_ref().map(|f| f.unbatched.msgs_per_s),
            "p50_ms": fsync_always.as_ref().map(|f| f.unbatched.p50_ms),
            "p99_ms": fsync_always.as_ref().map(|f| f.unbatched.p99_ms),
            "redis_replicated_msgs_per_s": replicated.always.msgs_per_s,
            "redis_replicated_p50_ms": replicated.always.p50_ms,
            "redis_replicated_p99_ms": replicated.always.p99_ms,
            "ratio_to_redis_replicated": fsync_always.as_ref().map(|f| ratio(f.unbatched.msgs_per_s, replicated.always.msgs_per_s)),
        },
    })
}

/// CPUs, CPU model, memory and kernel of this machine.
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
            "  vs replicated (everysec)",
            show(f(&["unbatched_produce", "msgs_per_s"]), "msg/s"),
            show(
                f(&["unbatched_produce", "redis_replicated_msgs_per_s"]),
                "msg/s",
            ),
            f(&["unbatched_produce", "ratio_to_redis_replicated"]),
        ),
        (
            "  p99 vs replicated",
            show(f(&["unbatched_produce", "p99_ms"]), "ms"),
            show(f(&["unbatched_produce", "redis_replicated_p99_ms"]), "ms"),
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
            "group consume (topic)",
            show(f(&["group_consume", "msgs_per_s"]), "msg/s"),
            "-".to_owned(),
            None,
        ),
        (
            "Kafka batched / binary",
            show(f(&["kafka", "batched_msgs_per_s"]), "msg/s"),
            "-".to_owned(),
            f(&["kafka", "ratio_to_binary_batched"]),
        ),
        (
            "Kafka (kcat) batched / binary",
            show(f(&["kafka", "kcat_batched_msgs_per_s"]), "msg/s"),
            "-".to_owned(),
            f(&["kafka", "kcat_ratio_to_binary_batched"]),
        ),
        (
            "Kafka consume / binary",
            show(f(&["kafka", "consume_msgs_per_s"]), "msg/s"),
            "-".to_owned(),
            f(&["kafka", "ratio_to_binary_consume"]),
        ),
        (
            "Kafka (kcat) consume / binary",
            show(f(&["kafka", "kcat_consume_msgs_per_s"]), "msg/s"),
            "-".to_owned(),
            f(&["kafka", "kcat_ratio_to_binary_consume"]),
        ),
        (
            "rebalance / session",
            format!(
                "{} / {}",
                show(f(&["group_rebalance", "after_kill_ms"]), "ms"),
                show(f(&["group_rebalance", "session_timeout_ms"]), "ms")
            ),
            "-".to_owned(),
            None,
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
            "  ahead of the dead lease's expiry p50",
            show(f(&["failover", "ahead_of_lease_expiry_p50_ms"]), "ms"),
            "-".to_owned(),
            None,
        ),
        (
            "fsync always: batched",
            show(f(&["fsync_always", "batched_msgs_per_s"]), "msg/s"),
            "-".to_owned(),
            None,
        ),
        (
            "fsync always: unbatched",
            show(f(&["fsync_always", "msgs_per_s"]), "msg/s"),
            show(f(&["fsync_always", "redis_replicated_msgs_per_s"]), "msg/s"),
            f(&["fsync_always", "ratio_to_redis_replicated"]),
        ),
        (
            "  p99 vs replicated",
            show(f(&["fsync_always", "p99_ms"]), "ms"),
            show(f(&["fsync_always", "redis_replicated_p99_ms"]), "ms"),
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
        // No Redis bars: the baseline has no consumer-group or Kafka figure.
        ("group consume", get("group_consume", "msgs_per_s"), 0.0),
        ("Kafka produce", get("kafka", "batched_msgs_per_s"), 0.0),
        (
            "Kafka produce (kcat)",
            get("kafka", "kcat_batched_msgs_per_s"),
            0.0,
        ),
        ("Kafka consume", get("kafka", "consume_msgs_per_s"), 0.0),
        (
            "Kafka consume (kcat)",
            get("kafka", "kcat_consume_msgs_per_s"),
            0.0,
        ),
    ];
    // One request in flight per client, acknowledged once a replica has
    // it: YAK next to the Redis pair at both fsync settings.
    let replicated = [
        ("YAK", get("unbatched_produce", "msgs_per_s"), true),
        (
            "Redis everysec",
            get("unbatched_produce", "redis_replicated_msgs_per_s"),
            false,
        ),
        ("YAK always", get("fsync_always", "msgs_per_s"), true),
        (
            "Redis always",
            get("fsync_always", "redis_replicated_msgs_per_s"),
            false,
        ),
    ];
    // Wide enough for eight bar groups on the left.
    let root = SVGBackend::new(path, (1100, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(760);
    let max = throughput.iter().map(|t| t.1.max(t.2)).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&left)
        .caption(
            "Throughput (messages/s): YAK vs Redis Streams",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..(throughput.len() as f64 - 0.5), 0.0..max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * throughput.len() + 1)
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
    let max = replicated.iter().map(|r| r.1).fold(1.0, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(&right)
        .caption("Unbatched, with a replica (msg/s)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..3.5, 0.0..max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(9)
        .x_label_formatter(&|x: &f64| category(*x, &replicated.map(|r| r.0)))
        .y_label_formatter(&|y: &f64| format!("{:.0}k", y / 1000.0))
        .draw()?;
    chart.draw_series(replicated.iter().enumerate().map(|(i, r)| {
        let colour = if r.2 { yak } else { redis_colour };
        Rectangle::new(
            [(i as f64 - 0.3, 0.0), (i as f64 + 0.3, r.1)],
            colour.filled(),
        )
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

#[cfg(test)]
mod tests {
    use super::{
        super::{RedisFsync, kafka::KcatFigures},
        *,
    };

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn the_document_keeps_its_shape() {
        let args = BenchArgs {
            bootstrap: None,
            kafka_bootstrap: None,
            redis_url: None,
            quick: true,
            value_bytes: 100,
            out: "bench-results.json".into(),
            chart: "bench-results.svg".into(),
            redis_fsync: RedisFsync::Everysec,
            failovers: None,
            bin_dir: None,
        };
        let latency = |msgs_per_s| Latency {
            msgs_per_s,
            p50_ms: 1.0,
            p99_ms: 2.0,
            p999_ms: 3.0,
        };
        let figures = Figures {
            batched: 100.0,
            batched_json: 50.0,
            redis_batched: 200.0,
            unbatched: latency(10.0),
            breakdown: None,
            redis_unbatched: latency(0.0),
            consume: ReadBack {
                msgs_per_s: 30.0,
                records: 7,
            },
            group_consume: ReadBack {
                msgs_per_s: 15.0,
                records: 21,
            },
            group_rebalance: Rebalance {
                after_kill_ms: 3400.0,
                session_timeout_ms: 3000,
            },
            redis_consume: 60.0,
            kafka: Some(KafkaFigures {
                batched: 90.0,
                consume: 27.0,
                kcat: Some(KcatFigures {
                    batched: 80.0,
                    consume: 24.0,
                    client: "kcat 1.7.1 (librdkafka 2.0.2)".into(),
                }),
            }),
            memory: Some(12.5),
            failover: None,
            fsync_always: None,
            replicated: Replicated {
                everysec: latency(20.0),
                always: latency(5.0),
            },
        };
        let doc = results(&args, &Sizes::new(true), true, &figures);
        assert_eq!(
            keys(&doc),
            [
                "machine",
                "settings",
                "git_commit",
                "batched_produce",
                "unbatched_produce",
                "consume",
                "group_consume",
                "group_rebalance",
                "failover",
                "kafka",
                "memory",
                "fsync_always"
            ]
        );
        assert_eq!(
            keys(&doc["settings"]),
            [
                "quick",
                "value_bytes",
                "batch_records",
                "batched_producers",
                "batched_records",
                "unbatched_clients",
                "unbatched_seconds",
                "failovers",
                "failover_kill",
                "produce_transport",
                "cluster",
                "cluster_redis_appendfsync",
                "replication",
                "redis_baseline",
                "redis_replicated_baseline",
                "fsync_always_cluster",
                "topic_partitions",
                "group_consume",
                "kafka",
                "group_rebalance"
            ]
        );
        assert_eq!(
            keys(&doc["batched_produce"]),
            ["msgs_per_s", "json_msgs_per_s", "redis_msgs_per_s", "ratio"]
        );
        assert_eq!(
            keys(&doc["unbatched_produce"]),
            [
                "msgs_per_s",
                "p50_ms",
                "p99_ms",
                "p999_ms",
                "redis_msgs_per_s",
                "redis_p99_ms",
                "redis_replicated_msgs_per_s",
                "redis_replicated_p50_ms",
                "redis_replicated_p99_ms",
                "ratio_to_redis_replicated",
                "leader_mean_replication_ms",
                "leader_mean_hwm_commit_ms",
                "leader_commits",
                "ratio"
            ]
        );
        assert_eq!(
            keys(&doc["consume"]),
            ["msgs_per_s", "records", "redis_msgs_per_s", "ratio"]
        );
        assert_eq!(doc["settings"]["cluster_redis_appendfsync"], "everysec");
        assert_eq!(doc["batched_produce"]["ratio"], 0.5);
        assert_eq!(doc["unbatched_produce"]["ratio"], 0.0, "no Redis figure");
        assert_eq!(doc["unbatched_produce"]["leader_commits"], Value::Null);
        assert_eq!(doc["settings"]["unbatched_seconds"], 3);
        assert_eq!(doc["consume"]["records"], 7);
        assert_eq!(doc["consume"]["ratio"], 0.5);
        assert_eq!(
            keys(&doc["group_consume"]),
            ["msgs_per_s", "records", "ratio_to_consume"]
        );
        assert_eq!(doc["group_consume"]["ratio_to_consume"], 0.5);
        assert_eq!(doc["kafka"]["ratio_to_binary_batched"], 0.9);
        assert_eq!(doc["kafka"]["kcat_ratio_to_binary_batched"], 0.8);
        assert_eq!(
            keys(&doc["kafka"]),
            [
                "batched_msgs_per_s",
                "ratio_to_binary_batched",
                "consume_msgs_per_s",
                "ratio_to_binary_consume",
                "kcat",
                "kcat_batched_msgs_per_s",
                "kcat_ratio_to_binary_batched",
                "kcat_consume_msgs_per_s",
                "kcat_ratio_to_binary_consume"
            ]
        );
        assert_eq!(doc["kafka"]["consume_msgs_per_s"], 27.0);
        assert_eq!(doc["kafka"]["ratio_to_binary_consume"], 0.9);
        assert_eq!(doc["kafka"]["kcat_consume_msgs_per_s"], 24.0);
        assert_eq!(doc["kafka"]["kcat_ratio_to_binary_consume"], 0.8);
        assert_eq!(doc["kafka"]["kcat"], "kcat 1.7.1 (librdkafka 2.0.2)");
        assert_eq!(
            keys(&doc["group_rebalance"]),
            ["after_kill_ms", "session_timeout_ms"]
        );
        assert_eq!(doc["group_rebalance"]["session_timeout_ms"], 3000);
        assert_eq!(doc["failover"], Value::Null);
        assert_eq!(doc["memory"]["broker_rss_mb"], 12.5);
        assert_eq!(doc["unbatched_produce"]["ratio_to_redis_replicated"], 0.5);
        assert_eq!(doc["fsync_always"]["redis_replicated_msgs_per_s"], 5.0);
        assert_eq!(
            doc["fsync_always"]["msgs_per_s"],
            Value::Null,
            "not measured"
        );
    }

    #[test]
    fn categories_label_whole_positions_only() {
        let names = ["a", "b"];
        assert_eq!(category(0.0, &names), "a");
        assert_eq!(category(1.004, &names), "b");
        assert_eq!(category(0.5, &names), "");
        assert_eq!(category(-1.0, &names), "");
        assert_eq!(category(2.0, &names), "");
    }
}
