//! Synchronous replication in steady state, across real processes: the
//! leader's and the followers' logs are byte-identical on disk, the HWM in
//! Redis is the leader's, `GET /topics/{name}` shows the ISR and each
//! follower's progress, and a killed follower leaves the ISR (writes go on
//! with min ISR 1, are refused with min ISR 2) and rejoins once it has
//! caught up. See `docs/replication.md`.

mod common;

use std::time::{Duration, Instant};

use common::{
    Acked, assert_acked_readable, isr_of, metric, open_partitions, partition_info, produce_n,
    read_all, scrape, wait_for_isr,
};
use serde_json::{Value, json};
use testkit::{
    Cluster, NodeKind, StatusCode, create_topic, describe_topic, produce, wait_for,
    wait_for_identical_logs,
};

const TTL_MS: u64 = 1000;
const WAIT: Duration = Duration::from_secs(15);

/// Waits until the node at `url` knows the HWM `hwm` for every partition
/// (a follower learns it from the next push or heartbeat).
async fn wait_for_hwm(url: &str, topic: &str, hwms: &[u64]) {
    wait_for(
        format!("{url} to know the HWMs {hwms:?} of {topic}"),
        WAIT,
        || async {
            let (status, body) = describe_topic(url, topic).await;
            (status == StatusCode::OK
                && hwms
                    .iter()
                    .enumerate()
                    .all(|(p, hwm)| body["partitions"][p]["high_water_mark"] == *hwm))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn leader_and_follower_hold_byte_identical_logs_and_agree_on_the_hwm() {
    let cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let (broker, follower) = (cluster.broker(), &cluster.followers()[0]);
    let (leader, replica) = (broker.url(), follower.url());
    create_topic(leader, "rep", 2).await;
    let mut acked = open_partitions(leader, "rep", 2, &["broker", "follower-1"], WAIT).await;

    // Single records to each partition, and a batch across both.
    acked.extend(produce_n(leader, "rep", 0, 1, 15).await);
    acked.extend(produce_n(leader, "rep", 1, 1, 10).await);
    let batch: Vec<Value> = (0..12)
        .map(|i| json!({"topic": "rep", "partition": i % 2, "payload": {"batch": i}}))
        .collect();
    let (status, body) = produce(leader, &json!({ "records": batch })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (result, record) in body["results"].as_array().unwrap().iter().zip(&batch) {
        assert!(result["offset"].is_u64(), "{body}");
        acked.push(Acked {
            partition: result["partition"].as_u64().unwrap() as u32,
            offset: result["offset"].as_u64().unwrap(),
            payload: record["payload"].clone(),
            by: leader.to_owned(),
            sent: std::time::Instant::now(),
        });
    }
    let per_partition = [1 + 15 + 6, 1 + 10 + 6];

    // The leader's view: every record committed; both nodes in the ISR;
    // the follower at the log end with no lag.
    let store = cluster.store();
    for (p, &count) in per_partition.iter().enumerate() {
        let info = partition_info(leader, "rep", p as u32).await;
        assert_eq!(info["log_end_offset"], count, "{info}");
        assert_eq!(info["high_water_mark"], count, "{info}");
        assert_eq!(isr_of(&info), ["broker", "follower-1"], "{info}");
        let followers = info["followers"].as_array().expect("followers");
        assert_eq!(followers.len(), 1, "{info}");
        assert_eq!(followers[0]["id"], "follower-1", "{info}");
        assert_eq!(followers[0]["offset"], count, "{info}");
        assert_eq!(followers[0]["lag"], 0, "{info}");
        assert_eq!(followers[0]["in_sync"], true, "{info}");
        // Redis holds the same HWM and ISR.
        let hwm = store.hwm("rep", p as u32).await.expect("redis answers");
        assert_eq!(hwm, count, "HWM of rep/{p} in redis");
        let mut isr = store
            .isr("rep", p as u32)
            .await
            .expect("redis answers")
            .expect("an ISR is stored");
        isr.sort();
        assert_eq!(isr, ["broker", "follower-1"], "ISR of rep/{p} in redis");
    }

    // The follower's log on disk is the leader's, byte for byte, and it
    // serves the same committed records.
    for p in 0..2 {
        let log = wait_for_identical_logs(&[broker, follower], "rep", p, WAIT).await;
        assert!(!log.is_empty(), "rep/{p} has data on disk");
    }
    wait_for_hwm(replica, "rep", &per_partition).await;
    let from_leader = assert_acked_readable(leader, "rep", 2, &acked).await;
    let from_follower = assert_acked_readable(replica, "rep", 2, &acked).await;
    assert_eq!(from_leader, from_follower);
    for (p, &count) in per_partition.iter().enumerate() {
        assert_eq!(from_leader[p].len() as u64, count);
        let info = partition_info(replica, "rep", p as u32).await;
        assert_eq!(info["log_end_offset"], count, "follower: {info}");
        assert_eq!(isr_of(&info), ["broker", "follower-1"], "follower: {info}");
    }
}

#[tokio::test]
async fn two_followers_hold_byte_identical_logs() {
    let cluster = Cluster::builder()
        .followers(2)
        .lease_ttl_ms(TTL_MS)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url();
    create_topic(leader, "three", 2).await;
    let members = ["broker", "follower-1", "follower-2"];
    let mut acked = open_partitions(leader, "three", 2, &members, WAIT).await;
    acked.extend(produce_n(leader, "three", 0, 1, 20).await);
    acked.extend(produce_n(leader, "three", 1, 1, 20).await);

    let store = cluster.store();
    for p in 0..2u32 {
        let info = partition_info(leader, "three", p).await;
        assert_eq!(info["high_water_mark"], 21, "{info}");
        assert_eq!(isr_of(&info), members, "{info}");
        let followers = info["followers"].as_array().expect("followers");
        let ids: Vec<&str> = followers.iter().filter_map(|f| f["id"].as_str()).collect();
        assert_eq!(ids, ["follower-1", "follower-2"], "{info}");
        for f in followers {
            assert_eq!(f["offset"], 21, "{info}");
            assert_eq!(f["lag"], 0, "{info}");
            assert_eq!(f["in_sync"], true, "{info}");
        }
        assert_eq!(store.hwm("three", p).await.expect("redis answers"), 21);
        let nodes: Vec<_> = cluster.nodes().iter().collect();
        let log = wait_for_identical_logs(&nodes, "three", p, WAIT).await;
        assert!(!log.is_empty());
    }
    let from_leader = assert_acked_readable(leader, "three", 2, &acked).await;
    for node in cluster.followers() {
        wait_for_hwm(node.url(), "three", &[21, 21]).await;
        assert_eq!(read_all(node.url(), "three", 2).await, from_leader);
    }
}

#[tokio::test]
async fn a_killed_follower_leaves_the_isr_writes_continue_and_it_rejoins() {
    // min ISR 1 (the default): the leader alone may acknowledge.
    let mut cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url().to_owned();
    create_topic(&leader, "shrink", 1).await;
    let mut acked = open_partitions(&leader, "shrink", 1, &["broker", "follower-1"], WAIT).await;
    acked.extend(produce_n(&leader, "shrink", 0, 1, 4).await);

    cluster.node_mut(1).kill9();
    // The next write finds the follower unreachable, drops it from the ISR
    // (in Redis, before acknowledging) and is acknowledged by the leader.
    acked.extend(produce_n(&leader, "shrink", 0, 5, 5).await);
    let info = partition_info(&leader, "shrink", 0).await;
    assert_eq!(isr_of(&info), ["broker"], "{info}");
    assert_eq!(info["high_water_mark"], 10, "{info}");
    let followers = info["followers"].as_array().expect("followers");
    assert_eq!(followers[0]["in_sync"], false, "{info}");
    let stored = cluster.store().isr("shrink", 0).await.expect("redis");
    assert_eq!(stored, Some(vec!["broker".to_owned()]), "ISR in redis");
    let shrinks = wait_for("an isr_shrink activity", WAIT, || async {
        let found = cluster.broker().activity("isr_shrink").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert!(
        shrinks[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("follower-1")),
        "{shrinks:?}"
    );

    // It comes back, fetches what it missed and rejoins.
    cluster.node_mut(1).restart().await;
    cluster.wait_for_peers(WAIT).await;
    wait_for_isr(&leader, "shrink", 1, &["broker", "follower-1"], WAIT).await;
    let stored = cluster.store().isr("shrink", 0).await.expect("redis");
    let mut stored = stored.expect("an ISR is stored");
    stored.sort();
    assert_eq!(stored, ["broker", "follower-1"], "ISR in redis");
    let nodes = [cluster.broker(), &cluster.followers()[0]];
    wait_for_identical_logs(&nodes, "shrink", 0, WAIT).await;
    let follower = cluster.followers()[0].url().to_owned();
    wait_for_hwm(&follower, "shrink", &[10]).await;
    assert_acked_readable(&follower, "shrink", 1, &acked).await;
    assert_acked_readable(&leader, "shrink", 1, &acked).await;
}

#[tokio::test]
async fn with_min_isr_2_a_missing_follower_stops_writes_until_it_rejoins() {
    // A long lag time: the follower is dropped because it is unreachable
    // (at once), never for lagging. See the idle-follower test below for
    // what a short one does today.
    let mut cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .min_insync(2)
        .extra_args(["--replica-lag-time-ms", "30000"])
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url().to_owned();
    create_topic(&leader, "strict", 1).await;
    // A new partition has both nodes in its ISR: writes are acknowledged
    // from the first one.
    wait_for_isr(&leader, "strict", 1, &["broker", "follower-1"], WAIT).await;
    let mut acked = produce_n(&leader, "strict", 0, 0, 5).await;
    assert_eq!(acked[0].offset, 0);

    cluster.node_mut(1).kill9();
    // The first write after the kill is appended, then the follower is
    // found unreachable and dropped: too few replicas, outcome unknown.
    let attempt = json!({"topic": "strict", "partition": 0, "payload": "unknown outcome"});
    let (status, body) = produce(&leader, &attempt).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "not_enough_replicas", "{body}");
    assert_eq!(body["written"], "unknown", "{body}");
    let info = partition_info(&leader, "strict", 0).await;
    assert_eq!(isr_of(&info), ["broker"], "{info}");
    assert_eq!(info["high_water_mark"], 5, "nothing more committed: {info}");
    // From then on writes are refused before anything is appended.
    let mut refused = Vec::new();
    for i in 0..3 {
        let payload = json!({"refused": i});
        let (status, body) = produce(
            &leader,
            &json!({"topic": "strict", "partition": 0, "payload": payload}),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"], "not_enough_replicas", "{body}");
        assert_eq!(body["written"], "no", "{body}");
        refused.push(payload);
    }
    let after = partition_info(&leader, "strict", 0).await;
    assert_eq!(after["log_end_offset"], info["log_end_offset"], "{after}");

    // The follower returns, catches up, rejoins, and writes succeed again.
    cluster.node_mut(1).restart().await;
    cluster.wait_for_peers(WAIT).await;
    wait_for_isr(&leader, "strict", 1, &["broker", "follower-1"], WAIT).await;
    let more = produce_n(&leader, "strict", 0, 5, 5).await;
    acked.extend(more);
    let info = partition_info(&leader, "strict", 0).await;
    assert_eq!(isr_of(&info), ["broker", "follower-1"], "{info}");
    let follower = cluster.followers()[0].url().to_owned();
    let nodes = [cluster.broker(), &cluster.followers()[0]];
    wait_for_identical_logs(&nodes, "strict", 0, WAIT).await;
    let hwm = info["high_water_mark"].as_u64().unwrap();
    wait_for_hwm(&follower, "strict", &[hwm]).await;
    for url in [&leader, &follower] {
        let stored = assert_acked_readable(url, "strict", 1, &acked).await;
        for payload in &refused {
            assert!(
                !stored[0].values().any(|p| p == payload),
                "{payload} was refused with written=no but is stored on {url}"
            );
        }
    }
}

#[tokio::test]
async fn an_idle_in_sync_follower_stays_in_the_isr() {
    const LAG_MS: u64 = 500;
    let cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .min_insync(2)
        .extra_args(["--replica-lag-time-ms", &LAG_MS.to_string()])
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url().to_owned();
    create_topic(&leader, "idle", 1).await;
    wait_for_isr(&leader, "idle", 1, &["broker", "follower-1"], WAIT).await;
    produce_n(&leader, "idle", 0, 0, 3).await;

    // The scenario under test is an idle period longer than the lag time:
    // the follower is up, caught up and heartbeating (its long-polled
    // fetches reach the leader every 500 ms) but no write happens.
    tokio::time::sleep(Duration::from_millis(4 * LAG_MS)).await;
    let info = partition_info(&leader, "idle", 0).await;
    assert_eq!(isr_of(&info), ["broker", "follower-1"], "{info}");

    // A caught-up follower is not lagging: the write is replicated to it
    // and acknowledged (min ISR 2), and it stays in the ISR.
    let payload = json!({"after": "idle"});
    let (status, body) = produce(
        &leader,
        &json!({"topic": "idle", "partition": 0, "payload": payload}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let info = partition_info(&leader, "idle", 0).await;
    assert_eq!(isr_of(&info), ["broker", "follower-1"], "{info}");
    assert!(
        cluster.broker().activity("isr_shrink").await.is_empty(),
        "the follower was dropped from the ISR"
    );
}

#[tokio::test]
async fn a_follower_that_joined_the_isr_is_not_dropped_by_the_next_write() {
    // A long lag time: only the "not registered" drop is looked at.
    let mut cluster = Cluster::builder()
        .lease_ttl_ms(TTL_MS)
        .extra_args(["--replica-lag-time-ms", "30000"])
        .start()
        .await;
    let leader = cluster.broker().url().to_owned();
    create_topic(&leader, "join", 1).await;
    produce_n(&leader, "join", 0, 0, 1).await;
    // Each new node registers itself, opens the topic and fetches up to the
    // leader's log end, which puts it in the ISR; the leader refreshes its
    // table of node URLs every 500 ms. Whether the join comes first is a
    // race, so it is run a few times.
    let mut members = vec!["broker".to_owned()];
    for attempt in 0..6u64 {
        let id = format!("late-{attempt}");
        cluster.add_node(NodeKind::Follower, id.clone()).await;
        members.push(id.clone());
        let want: Vec<&str> = members.iter().map(String::as_str).collect();
        wait_for_isr(&leader, "join", 1, &want, WAIT).await;
        produce_n(&leader, "join", 0, attempt + 1, 1).await;
        let info = partition_info(&leader, "join", 0).await;
        let mut sorted = members.clone();
        sorted.sort();
        assert_eq!(isr_of(&info), sorted, "attempt {attempt}: {info}");
    }
    let shrinks = cluster.broker().activity("isr_shrink").await;
    assert!(shrinks.is_empty(), "{shrinks:?}");
}

/// Records the node holds on disk for `topic`/0 (whether committed or not).
fn records_on_disk(node: &testkit::NodeProcess, topic: &str) -> u64 {
    partition_log::batch::batches(&node.log_bytes(topic, 0))
        .map_while(Result::ok)
        .map(|b| u64::from(b.header.record_count))
        .sum()
}

/// Rounds of one partition are pipelined: while Redis holds up the HWM
/// commit of a round, the next rounds are still appended and replicated,
/// and none is acknowledged before its HWM is stored.
#[tokio::test]
async fn rounds_replicate_while_an_earlier_round_waits_for_its_hwm_commit() {
    // A long lease, so that the leader keeps it while Redis is paused.
    let mut cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(10_000)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url().to_owned();
    create_topic(&leader, "pipe", 1).await;
    open_partitions(&leader, "pipe", 1, &["broker", "follower-1"], WAIT).await;

    cluster.redis_mut().pause();
    let mut pending = Vec::new();
    for i in 1..=3u64 {
        let url = leader.clone();
        pending.push(tokio::spawn(async move {
            produce(
                &url,
                &json!({"topic": "pipe", "partition": 0, "payload": i}),
            )
            .await
        }));
        // Without pipelining the second write would wait in the leader's
        // queue until the first one's HWM is stored.
        wait_for(
            format!("write {i} to reach the follower while Redis is paused"),
            Duration::from_secs(3),
            || async { (records_on_disk(&cluster.followers()[0], "pipe") == i + 1).then_some(()) },
        )
        .await;
    }
    assert!(
        pending.iter().all(|p| !p.is_finished()),
        "a write was acknowledged before its HWM was stored"
    );
    let (_, info) = describe_topic(&leader, "pipe").await;
    assert_eq!(info["partitions"][0]["high_water_mark"], 1, "{info}");
    cluster.redis_mut().resume();

    for (i, p) in pending.into_iter().enumerate() {
        let (status, body) = p.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["offset"], i as u64 + 1, "{body}");
    }
    wait_for_hwm(&leader, "pipe", &[4]).await;
    wait_for_identical_logs(
        &[cluster.broker(), &cluster.followers()[0]],
        "pipe",
        1,
        WAIT,
    )
    .await;
}

#[tokio::test]
async fn a_new_partition_starts_with_every_live_replica_and_drops_one_that_never_answers() {
    let cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url();
    cluster.register_ghost("ghost").await;
    let store = cluster.store();
    // The dashboard's snapshot shows the node's own view of the registry,
    // refreshed with the peers that a new partition's ISR is taken from.
    wait_for("the broker to see the ghost node", WAIT, || async {
        let (_, body) = testkit::get_json(&format!("{leader}/stats")).await;
        let nodes = body["nodes"].as_array()?.len();
        (nodes == 3).then_some(())
    })
    .await;
    create_topic(leader, "wide", 1).await;
    let info = partition_info(leader, "wide", 0).await;
    let mut isr = isr_of(&info);
    isr.sort();
    assert_eq!(isr, ["broker", "follower-1", "ghost"], "{info}");

    // The first write waits for the ghost like any slow follower, drops it
    // from the ISR in Redis, and only then is acknowledged.
    let acked = produce_n(leader, "wide", 0, 0, 1).await;
    let stored = store
        .isr("wide", 0)
        .await
        .expect("redis answers")
        .expect("an ISR is stored");
    assert_eq!(
        stored,
        ["broker", "follower-1"],
        "ISR in redis after the ack"
    );
    let info = partition_info(leader, "wide", 0).await;
    assert_eq!(info["replicas"], 3, "{info}");
    assert_eq!(info["under_replicated"], true, "{info}");
    wait_for("the drop in the broker's activity log", WAIT, || async {
        let found = cluster.broker().activity("isr_shrink").await;
        found
            .iter()
            .any(|a| a["message"].as_str().is_some_and(|m| m.contains("ghost")))
            .then_some(())
    })
    .await;
    assert_acked_readable(cluster.followers()[0].url(), "wide", 1, &acked).await;
}

/// A round of several requests never outgrows what a follower takes in one
/// request (`--max-request-bytes`): concurrent requests that together are
/// larger than the limit all replicate, and the follower stays in the ISR.
#[tokio::test]
async fn rounds_stay_within_the_followers_request_limit() {
    let cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .extra_args(["--max-request-bytes", "65536"])
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let (leader, members) = (cluster.broker().url(), ["broker", "follower-1"]);
    create_topic(leader, "big", 1).await;
    open_partitions(leader, "big", 1, &members, WAIT).await;

    let payload = "x".repeat(40_000);
    let body = json!({"topic": "big", "partition": 0, "payload": payload});
    let answers = futures_util::future::join_all((0..24).map(|_| produce(leader, &body))).await;
    for (status, answer) in answers {
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let info = partition_info(leader, "big", 0).await;
    assert_eq!(info["high_water_mark"], 25, "{info}");
    assert_eq!(isr_of(&info), members, "{info}");
    let nodes: Vec<_> = cluster.nodes().iter().collect();
    wait_for_identical_logs(&nodes, "big", 0, WAIT).await;
}

#[tokio::test]
async fn an_in_sync_followers_heartbeat_is_not_a_request_per_commit() {
    let cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let (leader, replica) = (cluster.broker().url(), cluster.followers()[0].url());
    create_topic(leader, "beat", 1).await;
    open_partitions(leader, "beat", 1, &["broker", "follower-1"], WAIT).await;
    let fetches = |scrape| {
        metric(
            &scrape,
            "yak_http_request_duration_seconds_count",
            &[("route", "/internal/fetch")],
        )
    };

    // Every write is a commit that moves the HWM.
    let before = fetches(scrape(leader).await);
    let started = Instant::now();
    produce_n(leader, "beat", 0, 1, 100).await;
    let took = started.elapsed();
    let answered = fetches(scrape(leader).await) - before;

    // The leader answers the follower's long poll at most every 50 ms,
    // plus the polls under way at either end of the writes; a poll per
    // HWM move would be about 100.
    let bound = (took.as_millis() / 50 + 2) as f64;
    assert!(
        answered <= bound,
        "{answered} fetches answered in {took:?} of writes (at most {bound})"
    );
    // Still, the follower learns the last HWM without another write.
    wait_for_hwm(replica, "beat", &[101]).await;
}
