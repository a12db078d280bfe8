//! `/metrics` (scraped and parsed as Prometheus text) and `/stats` on a
//! running cluster: counters move with produce and consume, gauges show
//! roles, ISR and replication.

mod common;

use std::time::Duration;

use common::{metric as value, scrape};
use serde_json::json;
use testkit::{Cluster, consume_all, get_json, produce, wait_for, wait_until};

#[tokio::test]
async fn counters_move_after_produce_and_consume() {
    let cluster = Cluster::builder().followers(1).start().await;
    let leader = cluster.leader_info().await.expect("a leader");
    let leader_url = leader.url.clone().expect("registered");
    let follower_url = cluster
        .nodes()
        .iter()
        .find(|n| n.id() != leader.id)
        .expect("a follower")
        .url()
        .to_owned();

    let before = scrape(&leader_url).await;
    assert_eq!(
        value(&before, "yak_produced_records_total", &[("topic", "m")]),
        0.0
    );
    assert_eq!(value(&before, "yak_is_leader", &[]), 1.0);
    assert_eq!(
        value(&scrape(&follower_url).await, "yak_is_leader", &[]),
        0.0
    );
    assert!(value(&before, "yak_epoch", &[]) >= 1.0);

    // The follower must be in the ISR for rounds to replicate.
    let (status, _) = produce(
        &leader_url,
        &json!({"topic": "m", "partition": 0, "payload": 0}),
    )
    .await;
    assert!(status.is_success());
    wait_until(Duration::from_secs(10), || async {
        let (_, topic) = get_json(&format!("{leader_url}/topics/m")).await;
        (topic["partitions"][0]["isr"].as_array()?.len() == 2).then_some(())
    })
    .await;

    for i in 1..10 {
        let (status, _) = produce(
            &leader_url,
            &json!({"topic": "m", "partition": 0, "payload": i}),
        )
        .await;
        assert!(status.is_success());
    }
    assert_eq!(consume_all(&leader_url, "m", 0).await.len(), 10);

    let after = scrape(&leader_url).await;
    assert_eq!(
        value(&after, "yak_produced_records_total", &[("topic", "m")]),
        10.0
    );
    assert_eq!(
        value(&after, "yak_consumed_records_total", &[("topic", "m")]),
        10.0
    );
    // Value bytes: the payloads 0 to 9 are one byte of JSON each.
    assert_eq!(
        value(&after, "yak_produced_bytes_total", &[("topic", "m")]),
        10.0
    );
    let produce_requests = value(
        &after,
        "yak_http_request_duration_seconds_count",
        &[("route", "/produce"), ("method", "POST"), ("status", "200")],
    );
    assert!(produce_requests >= 10.0, "{produce_requests}");
    assert!(value(&after, "yak_replication_round_trip_seconds_count", &[]) >= 9.0);
    // The leader renews every third of the lease TTL: the count grows.
    let renewals = value(&before, "yak_lease_renewals_total", &[]);
    wait_for(
        "a lease renewal after the first scrape",
        Duration::from_secs(5),
        || async {
            (value(&scrape(&leader_url).await, "yak_lease_renewals_total", &[]) > renewals)
                .then_some(())
        },
    )
    .await;

    // Gauges are refreshed by the once-a-second sampler.
    wait_until(Duration::from_secs(5), || async {
        let now = scrape(&leader_url).await;
        let part = [("topic", "m"), ("partition", "0")];
        let ok = value(&now, "yak_isr_size", &part) == 2.0
            && value(&now, "yak_high_water_mark", &part) == 10.0
            && value(&now, "yak_log_end_offset", &part) == 10.0
            && value(&now, "yak_log_size_bytes", &part) > 0.0;
        ok.then_some(())
    })
    .await;
}

#[tokio::test]
async fn stats_snapshot_describes_the_node() {
    let cluster = Cluster::builder().followers(1).start().await;
    let leader = cluster.leader_info().await.expect("a leader");
    let leader_url = leader.url.clone().expect("registered");
    let (status, _) = produce(&leader_url, &json!({"topic": "s", "payload": "x"})).await;
    assert!(status.is_success());

    let stats = wait_until(Duration::from_secs(5), || async {
        let (_, stats) = get_json(&format!("{leader_url}/stats")).await;
        let has_topic = stats["topics"].as_array()?.iter().any(|t| t["name"] == "s");
        has_topic.then_some(stats)
    })
    .await;
    assert_eq!(stats["node"]["id"], leader.id.as_str());
    assert_eq!(stats["node"]["role"], "leader");
    assert_eq!(stats["node"]["redis_ok"], true);
    assert_eq!(stats["nodes"].as_array().unwrap().len(), 2);
    let series = &stats["series"];
    let len = series["t"].as_array().unwrap().len();
    assert!(len >= 1);
    for key in [
        "produce_total",
        "consume_total",
        "replication_p50_ms",
        "replication_p99_ms",
        "max_follower_lag",
    ] {
        assert_eq!(series[key].as_array().unwrap().len(), len, "{key}");
    }
    let kinds: Vec<&str> = stats["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"election"), "{kinds:?}");
    assert!(kinds.contains(&"topic"), "{kinds:?}");
}
