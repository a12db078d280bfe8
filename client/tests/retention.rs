//! Retention across real processes: a topic with a small size limit keeps
//! within it while data flows, its rule is stored with the topic, the
//! follower's log start follows the leader's, a read below the log start
//! is a clear 4xx naming the earliest offset, and a consumer that may skip
//! deleted records moves on to it (one that may not gets the error).

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{
    Cluster, StatusCode, consume, describe_topic, get_json, post_json, produce, wait_for,
};
use yak_client::{Consumer, StartAt, YakClient};

const WAIT: Duration = Duration::from_secs(20);
const SEGMENT: u64 = 4096;
const LIMIT: u64 = 3 * SEGMENT;

async fn partition(url: &str, topic: &str) -> Value {
    let (status, body) = describe_topic(url, topic).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["partitions"][0].clone()
}

/// Writes `count` records of about 330 bytes to partition 0, one request
/// each, every one acknowledged.
async fn fill(leader: &str, topic: &str, count: u64) {
    let filler = "x".repeat(300);
    for i in 0..count {
        let record = json!({"topic": topic, "partition": 0, "payload": {"i": i, "filler": filler}});
        let (status, body) = produce(leader, &record).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn a_small_topic_keeps_within_its_limit_on_every_replica() {
    let cluster = Cluster::builder()
        .followers(1)
        .extra_args(["--segment-bytes", &SEGMENT.to_string()])
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url().to_owned();
    let follower = cluster.followers()[0].url().to_owned();

    // Bad rules are refused and create nothing.
    for bad in [
        json!({"name": "bad", "retention_bytes": 0}),
        json!({"name": "bad", "retention_ms": 0}),
        json!({"name": "bad", "retention_ms": -5}),
        json!({"name": "bad", "retention_bytes": "a lot"}),
    ] {
        let (status, body) = post_json(&format!("{leader}/topics"), &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }
    let (status, _) = describe_topic(&leader, "bad").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a refused topic was created");

    let (status, body) = post_json(
        &format!("{leader}/topics"),
        &json!({"name": "short", "partitions": 1, "retention_bytes": LIMIT}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["config"], json!({"retention_bytes": LIMIT}));
    // Every replica applies the rule stored with the topic.
    let store = cluster.store();
    let configs = store.topic_configs().await.expect("redis answers");
    assert_eq!(configs["short"].retention_bytes, Some(LIMIT));

    // Data flows: about 40 segments' worth.
    fill(&leader, "short", 400).await;
    // Retention runs every second: the leader deletes down to the limit
    // (closed segments only, so at most the limit plus the active one).
    let start = wait_for("the leader to apply retention", WAIT, || async {
        let p = partition(&leader, "short").await;
        let size = p["size_bytes"].as_u64()?;
        (size <= LIMIT + SEGMENT).then(|| p["log_start_offset"].as_u64().unwrap())
    })
    .await;
    assert!(start > 0, "nothing was deleted");
    let p = partition(&leader, "short").await;
    assert_eq!(p["log_end_offset"], 400, "{p}");
    assert_eq!(p["high_water_mark"], 400, "{p}");

    // The follower deletes what its leader deleted.
    wait_for("the follower's log start to follow", WAIT, || async {
        let p = partition(&follower, "short").await;
        let (start, size) = (p["log_start_offset"].as_u64()?, p["size_bytes"].as_u64()?);
        (start > 0 && size <= LIMIT + 2 * SEGMENT).then_some(())
    })
    .await;
    let (_, stats) = get_json(&format!("{leader}/stats")).await;
    let topic = stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "short")
        .unwrap();
    assert_eq!(topic["config"]["retention_bytes"], LIMIT, "{topic}");

    // A read below the log start names the earliest offset.
    let (status, body) = consume(&leader, "short", 0, 0).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "offset_out_of_range", "{body}");
    let earliest = body["log_start_offset"]
        .as_u64()
        .expect("the earliest offset");
    assert!(earliest >= start, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("deleted by retention"),
        "{body}"
    );

    // A consumer at offset 0 that may skip is moved on, and says so...
    let client = YakClient::new(vec![leader.clone(), follower.clone()]).unwrap();
    let mut skipping =
        Consumer::new(client.clone(), "short", 0, StartAt::Offset(0)).skip_deleted(true);
    let records = skipping
        .poll(Duration::ZERO)
        .await
        .expect("read from the log start");
    let skipped = skipping.take_skipped().expect("the skip is reported");
    assert_eq!(skipped.from, 0);
    assert!(skipped.to >= earliest, "{skipped:?}");
    assert_eq!(records.first().map(|r| r.offset), Some(skipped.to));
    // ...one that may not gets the error, with the log start...
    let mut strict = Consumer::new(client.clone(), "short", 0, StartAt::Offset(0));
    let error = strict
        .poll(Duration::ZERO)
        .await
        .expect_err("below the log start");
    assert!(error.log_start().is_some_and(|s| s >= earliest), "{error}");
    // ...and one from the earliest record starts at the log start.
    let mut earliest_reader = Consumer::new(client, "short", 0, StartAt::Earliest);
    let records = earliest_reader.poll(Duration::ZERO).await.expect("read");
    assert!(records.first().is_some_and(|r| r.offset >= earliest));
    assert_eq!(records.last().map(|r| r.offset), Some(399));
}

#[tokio::test]
async fn a_follower_behind_the_leaders_log_start_starts_again_there() {
    let mut cluster = Cluster::builder()
        .followers(1)
        .extra_args(["--segment-bytes", &SEGMENT.to_string()])
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url().to_owned();
    let (status, body) = post_json(
        &format!("{leader}/topics"),
        &json!({"name": "gone", "partitions": 1, "retention_bytes": LIMIT}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The follower is down while the leader writes and deletes: when it
    // returns, everything it would fetch from is gone.
    cluster.node_mut(1).kill9();
    fill(&leader, "gone", 300).await;
    let start = wait_for("the leader to apply retention", WAIT, || async {
        let p = partition(&leader, "gone").await;
        p["log_start_offset"].as_u64().filter(|&s| s > 0)
    })
    .await;
    cluster.node_mut(1).restart().await;
    let follower = cluster.followers()[0].url().to_owned();
    // It starts its log again at (or after) the leader's start, catches up
    // and rejoins the ISR.
    wait_for(
        "the follower to catch up from the log start",
        WAIT,
        || async {
            let p = partition(&follower, "gone").await;
            let caught_up = p["log_end_offset"] == 300 && p["log_start_offset"].as_u64()? >= start;
            caught_up.then_some(())
        },
    )
    .await;
    wait_for("the follower back in the ISR", WAIT, || async {
        let p = partition(&leader, "gone").await;
        let isr: Vec<&str> = p["isr"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        (isr.len() == 2).then_some(())
    })
    .await;
    let (_, body) = consume(&follower, "gone", 0, 299).await;
    assert_eq!(body["records"][0]["payload"]["i"], 299, "{body}");
}
