//! `yak bench` end to end: it starts its own cluster and baseline Redis,
//! runs every scenario, and writes the figures and the chart. Only the
//! presence and sanity of the figures are checked, never their size: tests
//! do not assert on timings.

use std::path::Path;

use serde_json::Value;
use testkit::{NodeKind, node_binary};

fn figure<'a>(results: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(results, |v, key| &v[key])
}

#[tokio::test]
async fn quick_bench_writes_every_figure_and_the_chart() {
    let bins = node_binary(NodeKind::Broker);
    let bins = bins.parent().unwrap();
    node_binary(NodeKind::Follower);
    let dir = tempfile::tempdir().unwrap();
    let (out, chart) = (dir.path().join("r.json"), dir.path().join("r.svg"));
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_yak"))
        .args(["bench", "--quick", "--failovers", "2"])
        .arg("--bin-dir")
        .arg(bins)
        .arg("--out")
        .arg(&out)
        .arg("--chart")
        .arg(&chart)
        .current_dir(dir.path())
        .output()
        .await
        .expect("yak bench runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "yak bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let results: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for key in [
        "batched_produce.msgs_per_s",
        "batched_produce.redis_msgs_per_s",
        "unbatched_produce.msgs_per_s",
        "unbatched_produce.p99_ms",
        "unbatched_produce.redis_msgs_per_s",
        "consume.msgs_per_s",
        "group_consume.msgs_per_s",
        "group_rebalance.after_kill_ms",
        "group_rebalance.session_timeout_ms",
        "failover.p50_ms",
        "failover.max_ms",
        "memory.broker_rss_mb",
        "unbatched_produce.redis_replicated_msgs_per_s",
        "unbatched_produce.redis_replicated_p99_ms",
        "unbatched_produce.ratio_to_redis_replicated",
        "batched_produce.json_msgs_per_s",
        "fsync_always.batched_msgs_per_s",
        "fsync_always.msgs_per_s",
        "fsync_always.p99_ms",
        "fsync_always.redis_replicated_msgs_per_s",
        "fsync_always.ratio_to_redis_replicated",
        // The bench's own cluster always has a Kafka listener.
        "kafka.batched_msgs_per_s",
        "kafka.consume_msgs_per_s",
        "kafka.ratio_to_binary_consume",
    ] {
        let value = figure(&results, key).as_f64();
        assert!(value.is_some_and(|v| v > 0.0), "{key} = {value:?}");
    }
    // Every failover is a measured kill, with the lease time left recorded.
    let samples = figure(&results, "failover.samples_ms").as_array().unwrap();
    let left = figure(&results, "failover.lease_left_ms")
        .as_array()
        .unwrap();
    assert_eq!((samples.len(), left.len()), (2, 2), "{results:#}");
    assert!(
        left.iter().all(|l| l.as_f64().is_some_and(|l| l <= 2000.0)),
        "{left:?}"
    );
    assert!(figure(&results, "git_commit").is_string());
    assert!(stdout.contains("failover p50 / max"), "{stdout}");
    assert!(stdout.contains("fsync always: unbatched"), "{stdout}");
    assert!(stdout.contains("Kafka consume / binary"), "{stdout}");
    // The group member read the whole topic: at least the partition the
    // plain consumer read.
    assert!(
        figure(&results, "group_consume.records").as_u64()
            >= figure(&results, "consume.records").as_u64(),
        "{results:#}"
    );
    assert_chart(&chart);
}

fn assert_chart(path: &Path) {
    let svg = std::fs::read_to_string(path).expect("the chart is written");
    assert!(
        svg.contains("<svg"),
        "not an SVG: {}",
        &svg[..svg.len().min(200)]
    );
    for caption in [
        "Throughput (messages/s)",
        "Unbatched, with a replica (msg/s)",
        "Redis everysec",
        "YAK always",
    ] {
        assert!(svg.contains(caption), "the chart lacks {caption:?}");
    }
}

#[tokio::test]
async fn bootstrap_without_a_baseline_redis_is_refused() {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_yak"))
        .args(["bench", "--bootstrap", "http://127.0.0.1:1"])
        .env_remove("YAK_BENCH_REDIS_URL")
        .output()
        .await
        .expect("yak bench runs");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("--redis-url"), "{stderr}");
}

/// A run that fails keeps its cluster's directory, every process's log in
/// it, and says where: here the follower binary exits at once.
#[tokio::test]
async fn a_failed_run_keeps_the_clusters_logs() {
    use std::os::unix::fs::PermissionsExt;

    let bins = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(node_binary(NodeKind::Broker), bins.path().join("broker")).unwrap();
    let follower = bins.path().join("follower");
    std::fs::write(
        &follower,
        "#!/bin/sh\necho 'this follower is broken' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&follower, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_yak"))
        .args(["bench", "--quick", "--bin-dir"])
        .arg(bins.path())
        .current_dir(bins.path())
        .output()
        .await
        .expect("yak bench runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    let kept = stderr
        .lines()
        .find_map(|l| {
            l.split_once("logs and data are kept in ")
                .map(|(_, p)| p.trim())
        })
        .unwrap_or_else(|| panic!("no kept directory named: {stderr}"));
    let kept = Path::new(kept);
    let log = |name: &str| std::fs::read_to_string(kept.join(format!("{name}.log")));
    let follower_log = log("follower");
    let broker_log = log("broker");
    std::fs::remove_dir_all(kept).unwrap();
    assert!(
        follower_log
            .as_deref()
            .is_ok_and(|l| l.contains("this follower is broken")),
        "{follower_log:?}"
    );
    assert!(broker_log.is_ok_and(|l| !l.is_empty()));
}
