//! Leadership across real processes: who leads and how every node says so,
//! redirects from a follower, failover after SIGKILL, hand-over on SIGTERM,
//! and a paused (SIGSTOP) leader that wakes up after losing its lease.

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{
    Cluster, LeaderInfo, NodeKind, StatusCode, consume_all, describe_topic, get_json, http_client,
    http_client_with_timeout, post_json, produce, send, try_send, wait_for,
};

const TTL_MS: u64 = 1000;

async fn pair() -> Cluster {
    Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .start()
        .await
}

#[tokio::test]
async fn both_nodes_name_the_same_leader() {
    let cluster = pair().await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(leader.id, "broker", "the broker starts first and leads");
    assert_eq!(leader.url.as_deref(), Some(cluster.broker().url()));
    assert!(leader.epoch >= 1);

    for node in cluster.nodes() {
        let url = format!("{}/metadata/leader", node.url());
        // Both nodes register themselves shortly after start.
        let body = wait_for(
            format!("{} to list both nodes", node.id()),
            Duration::from_secs(5),
            || async {
                let (status, body) = get_json(&url).await;
                (status == StatusCode::OK && body["nodes"].as_array()?.len() == 2).then_some(body)
            },
        )
        .await;
        assert_eq!(body["leader_id"], "broker", "{} says {body}", node.id());
        assert_eq!(body["leader_url"], cluster.broker().url());
        assert_eq!(body["epoch"], leader.epoch);
        let ttl = body["lease_ttl_ms"].as_u64().expect("lease_ttl_ms");
        assert!(ttl <= TTL_MS, "{body}");
        let nodes = body["nodes"].as_array().unwrap();
        let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["broker", "follower-1"]);
        for n in nodes {
            let expected = cluster.node_by_id(n["id"].as_str().unwrap()).unwrap();
            assert_eq!(n["url"], expected.url());
            assert!(n["heartbeat_ms"].as_u64().unwrap() > 0);
        }
    }
    assert_eq!(
        cluster.followers()[0].role().await.as_deref(),
        Some("follower")
    );
    assert_eq!(cluster.broker().role().await.as_deref(), Some("leader"));
}

#[tokio::test]
async fn a_write_to_the_follower_is_redirected_and_not_stored() {
    let cluster = pair().await;
    let leader = cluster.broker().url().to_owned();
    let follower = cluster.followers()[0].url().to_owned();
    let (status, body) = post_json(
        &format!("{leader}/topics"),
        &json!({"name": "t", "partitions": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = produce(
        &leader,
        &json!({"topic": "t", "partition": 0, "payload": "kept"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, before) = describe_topic(&leader, "t").await;

    // Until the follower has seen the leader's registration it answers 503
    // no_leader (also "not stored"); then 307.
    let record = json!({"topic": "t", "partition": 0, "payload": "refused"});
    let reply = wait_for(
        "the follower to redirect",
        Duration::from_secs(5),
        || async {
            let reply = send(
                http_client()
                    .post(format!("{follower}/produce?trace=1"))
                    .json(&record),
            )
            .await;
            if reply.status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(reply.error_code(), Some("no_leader"), "{}", reply.text);
                assert_eq!(reply.json["written"], "no");
                return None;
            }
            Some(reply)
        },
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::TEMPORARY_REDIRECT,
        "{}",
        reply.text
    );
    assert_eq!(
        reply.location(),
        Some(format!("{leader}/produce?trace=1").as_str())
    );
    assert_eq!(reply.error_code(), Some("not_leader"));
    assert_eq!(reply.json["leader_id"], "broker");
    assert_eq!(reply.json["leader_url"], leader.as_str());
    assert_eq!(reply.json["written"], "no");

    // A batch and a topic creation are redirected too.
    let reply = send(
        http_client()
            .post(format!("{follower}/produce"))
            .json(&json!({"records": [record.clone(), record.clone()]})),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::TEMPORARY_REDIRECT,
        "{}",
        reply.text
    );
    assert_eq!(reply.location(), Some(format!("{leader}/produce").as_str()));
    let reply = send(
        http_client()
            .post(format!("{follower}/topics"))
            .json(&json!({"name": "other"})),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::TEMPORARY_REDIRECT,
        "{}",
        reply.text
    );
    assert_eq!(reply.location(), Some(format!("{leader}/topics").as_str()));

    // Nothing was stored anywhere.
    let (_, after) = describe_topic(&leader, "t").await;
    assert_eq!(before, after);
    let stored = consume_all(&leader, "t", 0).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["payload"], "kept");
    let (_, topics) = get_json(&format!("{leader}/topics")).await;
    assert_eq!(topics["topics"].as_array().unwrap().len(), 1, "{topics}");
}

#[tokio::test]
async fn the_follower_takes_over_within_ttl_plus_one_second_after_kill9() {
    let mut cluster = pair().await;
    let first = cluster
        .wait_for_leader(Duration::from_secs(5), |l| l.id == "broker")
        .await;

    cluster.broker_mut().kill9();
    let killed = Instant::now();
    let deadline = Duration::from_millis(TTL_MS + 1000);
    let next = cluster
        .wait_for_leader(deadline, |l| l.id == "follower-1")
        .await;
    let took = killed.elapsed();
    assert!(took <= deadline, "took {took:?}");
    assert!(
        next.epoch > first.epoch,
        "epoch {} after {}",
        next.epoch,
        first.epoch
    );
    assert_eq!(next.url.as_deref(), Some(cluster.followers()[0].url()));
    // And it acknowledges writes.
    let (status, body) = produce(
        cluster.followers()[0].url(),
        &json!({"topic": "t", "payload": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A broker and a follower on a lease of `ttl_ms`, once the broker leads
/// and the follower has run for one TTL (it tries for the lease only then).
async fn pair_ready_to_take_over(ttl_ms: u64) -> (Cluster, LeaderInfo) {
    let cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(ttl_ms)
        .start()
        .await;
    let first = cluster
        .wait_for_leader(Duration::from_secs(10), |l| l.id == "broker")
        .await;
    wait_for(
        "the follower to have run for one lease TTL",
        Duration::from_millis(3 * ttl_ms),
        || async {
            let stats = cluster.followers()[0].stats().await?;
            (stats["node"]["uptime_s"].as_u64()? * 1000 > ttl_ms).then_some(())
        },
    )
    .await;
    (cluster, first)
}

#[tokio::test]
async fn a_graceful_stop_hands_the_lease_over_without_waiting_for_it_to_expire() {
    // A lease long enough that a takeover by expiry is told apart from a
    // hand-over without measuring tightly: after a renewal (every TTL/3) at
    // least 4 s of it are left, while a released lease is taken at once.
    let (mut cluster, first) = pair_ready_to_take_over(6000).await;

    let status = cluster.broker_mut().terminate().await;
    assert!(status.success(), "graceful exit: {status}");
    let next = cluster
        .wait_for_leader(Duration::from_millis(3500), |l| l.id == "follower-1")
        .await;
    assert!(next.epoch > first.epoch);
}

/// Pauses the leader (broker), sends it a write, waits until the follower
/// leads, resumes the old leader and returns what the write got (an error
/// if the connection failed).
async fn write_to_a_paused_leader(cluster: &mut Cluster) -> Result<testkit::Reply, reqwest::Error> {
    let leader = cluster.broker().url().to_owned();
    let first = cluster
        .wait_for_leader(Duration::from_secs(5), |l| l.id == "broker")
        .await;
    cluster.broker_mut().pause();
    // The kernel accepts the connection; the frozen process does not answer.
    let pending = tokio::spawn(async move {
        try_send(
            http_client_with_timeout(Duration::from_secs(30))
                .post(format!("{leader}/produce"))
                .json(&json!({"topic": "fenced", "payload": "must not be acknowledged"})),
        )
        .await
    });
    let next = cluster
        .wait_for_leader(Duration::from_secs(10), |l| l.id == "follower-1")
        .await;
    assert!(next.epoch > first.epoch);
    cluster.broker_mut().resume();
    pending.await.unwrap()
}

#[tokio::test]
async fn a_paused_leader_that_lost_its_lease_acknowledges_nothing() {
    let mut cluster = pair().await;
    let leader = cluster.broker().url().to_owned();
    let follower = cluster.followers()[0].url().to_owned();
    let outcome = write_to_a_paused_leader(&mut cluster).await;
    if let Ok(reply) = &outcome {
        assert_ne!(
            reply.status,
            StatusCode::OK,
            "the deposed leader acknowledged a write: {}",
            reply.text
        );
        assert_eq!(reply.json["written"], "no", "{}", reply.text);
    }
    cluster
        .broker()
        .wait_for_role("follower", Duration::from_secs(5))
        .await;

    // The write is nowhere: not on the new leader, not on the old one.
    for url in [&follower, &leader] {
        let (status, body) = describe_topic(url, "fenced").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {body}");
    }
    let (status, body) = get_json(&format!("{leader}/metadata/leader")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["leader_id"], "follower-1");
}

#[tokio::test]
async fn a_deposed_leader_does_not_redirect_to_itself() {
    let mut cluster = pair().await;
    let old = cluster.broker().url().to_owned();
    let reply = write_to_a_paused_leader(&mut cluster)
        .await
        .expect("the resumed node answers");
    // 503 no_leader, or a redirect to the new leader; never to itself (a
    // client following redirects would loop).
    if reply.status == StatusCode::TEMPORARY_REDIRECT {
        let location = reply.location().unwrap_or_default();
        assert!(
            !location.starts_with(&old),
            "redirected to itself: {}",
            reply.text
        );
    } else {
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text
        );
    }
}

#[tokio::test]
async fn a_node_that_joins_later_follows_the_leader() {
    let mut cluster = pair().await;
    let first = cluster
        .wait_for_leader(Duration::from_secs(5), |l| l.id == "broker")
        .await;
    let late = cluster.add_node(NodeKind::Broker, "late").await;
    // Even a `broker` (which tries to lead at once) follows a held lease.
    let url = format!("{}/metadata/leader", cluster.node(late).url());
    let body = wait_for("three nodes listed", Duration::from_secs(5), || async {
        let (_, body) = get_json(&url).await;
        (body["nodes"].as_array()?.len() == 3).then_some(body)
    })
    .await;
    assert_eq!(body["leader_id"], "broker");
    assert_eq!(body["epoch"], first.epoch);
    assert_eq!(cluster.node(late).role().await.as_deref(), Some("follower"));
}

#[tokio::test]
async fn acknowledged_records_survive_a_leader_hand_over() {
    // Two replicas must have every write before it is acknowledged, so the
    // follower holds everything the broker acknowledged.
    let mut cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .min_insync(2)
        .start()
        .await;
    let leader = cluster.broker().url().to_owned();
    let (status, body) = post_json(
        &format!("{leader}/topics"),
        &json!({"name": "kept", "partitions": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Both nodes are in a new partition's ISR; should a write still be
    // refused (503 not_enough_replicas, e.g. the follower was slow to open
    // the topic and dropped), retrying with the same producer id and
    // sequences never stores a record twice.
    let records: Vec<_> = (0..20)
        .map(|i| {
            json!({"topic": "kept", "partition": i % 2, "payload": {"i": i},
                   "producer_id": 5, "sequence": i})
        })
        .collect();
    let batch = json!({ "records": records });
    let results = wait_for(
        "every record acknowledged by two replicas",
        Duration::from_secs(10),
        || async {
            let (status, body) = produce(&leader, &batch).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let results = body["results"].as_array()?.clone();
            results
                .iter()
                .all(|r| r["offset"].is_u64())
                .then_some(results)
        },
    )
    .await;

    let status = cluster.broker_mut().terminate().await;
    assert!(status.success());
    cluster
        .wait_for_leader(Duration::from_millis(TTL_MS + 2000), |l| {
            l.id == "follower-1"
        })
        .await;
    let follower = cluster.followers()[0].url().to_owned();
    for p in 0..2u32 {
        let stored = consume_all(&follower, "kept", p).await;
        let want: Vec<_> = results
            .iter()
            .zip(batch["records"].as_array().unwrap())
            .filter(|(r, _)| r["partition"] == p)
            .collect();
        assert_eq!(stored.len(), want.len(), "partition {p}: {stored:?}");
        for (got, (result, sent)) in stored.iter().zip(want) {
            assert_eq!(got["offset"], result["offset"]);
            assert_eq!(got["payload"], sent["payload"]);
        }
    }
}

#[tokio::test]
async fn a_killed_leader_is_replaced_before_its_lease_expires() {
    // After a renewal (every TTL/3) at least 6 s of this lease are left,
    // while the leader's Redis connection closes with its process: the
    // follower takes over once it has seen that for a renewal interval
    // (3 s) and a little, well before the lease would expire.
    let (mut cluster, first) = pair_ready_to_take_over(9000).await;

    cluster.broker_mut().kill9();
    let next = cluster
        .wait_for_leader(Duration::from_millis(5500), |l| l.id == "follower-1")
        .await;
    assert!(next.epoch > first.epoch);
    let follower = &cluster.followers()[0];
    wait_for(
        "the follower to say it took the lease over",
        Duration::from_secs(5),
        || async {
            let elections = follower.activity("election").await;
            elections
                .iter()
                .any(|e| {
                    e["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("took the lease from broker"))
                })
                .then_some(())
        },
    )
    .await;
    let (status, body) = produce(
        cluster.followers()[0].url(),
        &json!({"topic": "t", "payload": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
