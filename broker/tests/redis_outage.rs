//! Redis down: nothing is acknowledged while it is away (every commit is
//! an epoch-fenced `ADVANCE_HWM` in Redis, and a leader that cannot renew
//! its lease stops acknowledging), and when it comes back on the same port
//! with its append-only file, a leader is elected again, writes succeed and
//! everything acknowledged before the outage is still there.

mod common;

use std::time::{Duration, Instant};

use common::{assert_acked_readable, produce_n, produce_one, wait_for_isr};
use serde_json::json;
use testkit::{
    Cluster, StatusCode, describe_topic, hold_for, http_client_with_timeout, post_json, produce,
    try_send, wait_for, wait_for_identical_logs,
};

const TTL_MS: u64 = 1000;
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn with_redis_stopped_nothing_is_acknowledged_and_service_resumes_when_it_returns() {
    redis_outage(Outage::Stop).await;
}

#[tokio::test]
async fn with_redis_killed_nothing_is_acknowledged_and_service_resumes_when_it_returns() {
    redis_outage(Outage::Kill).await;
}

#[derive(Debug, Clone, Copy)]
enum Outage {
    /// SIGTERM: Redis flushes and exits.
    Stop,
    /// SIGKILL: with `appendfsync always` nothing acknowledged is lost.
    Kill,
}

async fn redis_outage(outage: Outage) {
    let mut cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .redis_appendonly(true)
        .redis_appendfsync_always(true)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let urls: Vec<String> = cluster.nodes().iter().map(|n| n.url().to_owned()).collect();
    let leader = urls[0].clone();
    let (status, body) = post_json(
        &format!("{leader}/topics"),
        &json!({"name": "out", "partitions": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut acked = produce_n(&leader, "out", 0, 0, 1).await;
    acked.extend(produce_n(&leader, "out", 1, 0, 1).await);
    wait_for_isr(&leader, "out", 2, &["broker", "follower-1"], WAIT).await;
    acked.extend(produce_n(&leader, "out", 0, 1, 9).await);
    acked.extend(produce_n(&leader, "out", 1, 1, 9).await);
    let first = cluster.wait_for_leader(WAIT, |_| true).await;

    match outage {
        Outage::Stop => cluster.redis_mut().stop().await,
        Outage::Kill => cluster.redis_mut().kill(),
    }
    assert!(!cluster.redis_mut().is_running());
    // For three lease TTLs, no write is acknowledged by any node: before
    // the leader's local deadline passes its commit fails in Redis, after
    // it the leader is fenced.
    let attempts = std::sync::atomic::AtomicU64::new(0);
    hold_for(
        "no write acknowledged while redis is down",
        Duration::from_millis(3 * TTL_MS),
        || async {
            let n = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let url = &urls[(n % 2) as usize];
            let body = json!({"topic": "out", "partition": n % 2, "payload": {"outage": n}});
            let reply = try_send(
                http_client_with_timeout(Duration::from_secs(5))
                    .post(format!("{url}/produce"))
                    .json(&body),
            )
            .await;
            match reply {
                Ok(reply) if reply.status == StatusCode::OK => {
                    eprintln!("acknowledged during the outage by {url}: {}", reply.text);
                    false
                }
                _ => true,
            }
        },
    )
    .await;
    assert!(attempts.into_inner() >= 4, "the outage was probed");

    cluster.redis_mut().restart().await;
    let next = cluster.wait_for_leader(WAIT, |_| true).await;
    assert!(
        next.epoch > first.epoch,
        "{} after {}",
        next.epoch,
        first.epoch
    );
    let new_leader = cluster.node_by_id(&next.id).unwrap().url().to_owned();
    // The first writes may still meet a partition that re-syncs; then
    // every write succeeds.
    let resumed = Instant::now();
    // (A new payload each time: a failed attempt may still be stored.)
    let probes = std::sync::atomic::AtomicU64::new(0);
    wait_for("a write acknowledged after the outage", WAIT, || async {
        let n = probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (status, _) = produce(
            &new_leader,
            &json!({"topic": "out", "partition": 0, "payload": {"probe": n}}),
        )
        .await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    eprintln!("service resumed {:?} after redis", resumed.elapsed());
    let (status, body) = describe_topic(&new_leader, "out").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ends: Vec<u64> = (0..2)
        .map(|p| body["partitions"][p]["high_water_mark"].as_u64().unwrap())
        .collect();
    acked.extend(produce_n(&new_leader, "out", 0, 100, 5).await);
    acked.extend(produce_n(&new_leader, "out", 1, 100, 5).await);
    for a in &acked[acked.len() - 10..] {
        assert!(a.offset >= ends[a.partition as usize], "{a:?}");
    }

    // Everything acknowledged before (and after) is at its offset, once —
    // on both nodes once the follower has caught up.
    let other = cluster
        .nodes()
        .iter()
        .find(|n| n.id() != next.id)
        .unwrap()
        .url()
        .to_owned();
    wait_for_isr(&new_leader, "out", 2, &["broker", "follower-1"], WAIT).await;
    let nodes: Vec<_> = cluster.nodes().iter().collect();
    for p in 0..2 {
        wait_for_identical_logs(&nodes, "out", p, WAIT).await;
    }
    let stored = assert_acked_readable(&new_leader, "out", 2, &acked).await;
    for (p, records) in stored.iter().enumerate() {
        assert!(records.len() >= 15, "out/{p}: {records:?}");
    }
    wait_for("the follower to know the HWMs", WAIT, || async {
        let (_, theirs) = describe_topic(&other, "out").await;
        let (_, ours) = describe_topic(&new_leader, "out").await;
        (0..2)
            .all(|p| {
                theirs["partitions"][p]["high_water_mark"]
                    == ours["partitions"][p]["high_water_mark"]
            })
            .then_some(())
    })
    .await;
    assert_acked_readable(&other, "out", 2, &acked).await;
}

#[tokio::test]
async fn after_redis_returns_the_first_write_does_not_wait_out_the_lag_time() {
    const LAG_MS: u64 = 5000;
    let mut cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .min_insync(2)
        .extra_args(["--replica-lag-time-ms", &LAG_MS.to_string()])
        .redis_appendonly(true)
        .redis_appendfsync_always(true)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url().to_owned();
    let (status, body) = post_json(
        &format!("{leader}/topics"),
        &json!({"name": "lag", "partitions": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A new partition has every live node in its ISR: even with min ISR 2
    // the first write is acknowledged.
    wait_for_isr(&leader, "lag", 1, &["broker", "follower-1"], WAIT).await;
    let mut acked = produce_n(&leader, "lag", 0, 0, 3).await;
    let first = cluster.wait_for_leader(WAIT, |_| true).await;

    cluster.redis_mut().stop().await;
    wait_for("the leader to stop acknowledging", WAIT, || async {
        (cluster.broker().role().await.as_deref() != Some("leader")).then_some(())
    })
    .await;
    cluster.redis_mut().restart().await;
    let next = cluster.wait_for_leader(WAIT, |_| true).await;
    assert!(next.epoch > first.epoch);
    let new_leader = cluster.node_by_id(&next.id).unwrap().url().to_owned();

    // Both nodes are up and were in sync: the follower re-syncs with the
    // new epoch (one epoch_end request) and the write needs no lag time.
    let (write, took) = produce_one(&new_leader, "lag", 0, json!({"after": "the outage"})).await;
    assert!(
        took < Duration::from_millis(LAG_MS / 3),
        "the first write took {took:?}"
    );
    acked.push(write);
    wait_for_isr(&new_leader, "lag", 1, &["broker", "follower-1"], WAIT).await;
    assert!(
        cluster
            .node_by_id(&next.id)
            .unwrap()
            .activity("isr_shrink")
            .await
            .is_empty(),
        "the follower was dropped from the ISR"
    );
    assert_acked_readable(&new_leader, "lag", 1, &acked).await;
}
