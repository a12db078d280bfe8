//! Consumer groups over real processes (see `docs/groups.md`): rebalances
//! when members join, leave or go silent; sticky assignment; commits fenced
//! by generation and ownership, with a zombie refused; committed offsets
//! that survive a leader failover, a node restart and a Redis restart;
//! a topic that gains partitions; resets; and bad input answered with a
//! 4xx JSON error that changes nothing.

use std::{collections::BTreeSet, time::Duration};

use serde_json::{Value, json};
use testkit::{
    Cluster, StatusCode, create_topic, get_json, http_client_with_timeout, post_json, produce,
    try_send, wait_for,
};

const WAIT: Duration = Duration::from_secs(20);
/// Short sessions keep the expiry tests quick.
const SESSION_MS: u64 = 3000;

/// One member as a test drives it by hand.
#[derive(Debug, Clone)]
struct Member {
    id: String,
    generation: u64,
    assignment: BTreeSet<(String, u64)>,
}

/// `POST {url}/groups/{group}/join` (a long poll).
async fn join_raw(url: &str, group: &str, body: Value) -> (StatusCode, Value) {
    let request = http_client_with_timeout(WAIT)
        .post(format!("{url}/groups/{group}/join"))
        .json(&body);
    let reply = try_send(request).await.expect("join answered");
    (reply.status, reply.json)
}

async fn join(url: &str, group: &str, topics: &[&str], member: Option<&str>) -> Member {
    let mut body = json!({"topics": topics, "session_timeout_ms": SESSION_MS});
    if let Some(id) = member {
        body["member_id"] = json!(id);
    }
    let (status, joined) = join_raw(url, group, body).await;
    assert_eq!(status, StatusCode::OK, "join: {joined}");
    member_of(&joined)
}

fn member_of(joined: &Value) -> Member {
    Member {
        id: joined["member_id"]
            .as_str()
            .expect("a member id")
            .to_owned(),
        generation: joined["generation"].as_u64().expect("a generation"),
        assignment: joined["assignment"]
            .as_array()
            .expect("an assignment")
            .iter()
            .map(|tp| {
                (
                    tp["topic"].as_str().unwrap().to_owned(),
                    tp["partition"].as_u64().unwrap(),
                )
            })
            .collect(),
    }
}

async fn heartbeat(url: &str, group: &str, m: &Member) -> (StatusCode, Value) {
    post_json(
        &format!("{url}/groups/{group}/heartbeat"),
        &json!({"member_id": m.id, "generation": m.generation}),
    )
    .await
}

async fn commit(url: &str, group: &str, m: &Member, offsets: Value) -> (StatusCode, Value) {
    post_json(
        &format!("{url}/groups/{group}/commit"),
        &json!({"member_id": m.id, "generation": m.generation, "offsets": offsets}),
    )
    .await
}

async fn offsets(url: &str, group: &str) -> Value {
    let (status, body) = get_json(&format!("{url}/groups/{group}/offsets")).await;
    assert_eq!(status, StatusCode::OK, "offsets: {body}");
    body["offsets"].clone()
}

async fn describe(url: &str, group: &str) -> Value {
    let (status, body) = get_json(&format!("{url}/groups/{group}")).await;
    assert_eq!(status, StatusCode::OK, "describe: {body}");
    body
}

/// Heartbeats `m` until the group asks it to rebalance, then joins again
/// with its id: what every member's client does.
async fn follow_rebalance(url: String, group: String, topics: Vec<String>, m: Member) -> Member {
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    loop {
        let (status, body) = heartbeat(&url, &group, &m).await;
        assert_eq!(status, StatusCode::OK, "heartbeat of {}: {body}", m.id);
        if body["rebalance"] == json!(true) {
            return join(&url, &group, &topics, Some(&m.id)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new member joins while `current` follow the rebalance; returns the
/// members after it, the new one last.
async fn add_member(url: &str, group: &str, topic: &str, current: Vec<Member>) -> Vec<Member> {
    let newcomer = tokio::spawn({
        let (url, group, topic) = (url.to_owned(), group.to_owned(), topic.to_owned());
        async move { join(&url, &group, &[&topic], None).await }
    });
    let mut after = rejoin_all(url, group, topic, current).await;
    after.push(newcomer.await.unwrap());
    after
}

async fn rejoin_all(url: &str, group: &str, topic: &str, members: Vec<Member>) -> Vec<Member> {
    let tasks: Vec<_> = members
        .into_iter()
        .map(|m| {
            tokio::spawn(follow_rebalance(
                url.to_owned(),
                group.to_owned(),
                vec![topic.to_owned()],
                m,
            ))
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The members' assignments are disjoint, cover `0..partitions`, all at
/// one generation, and spread evenly.
fn assert_split(members: &[Member], topic: &str, partitions: u64) {
    let generation = members[0].generation;
    let mut all = BTreeSet::new();
    for m in members {
        assert_eq!(m.generation, generation, "{members:?}");
        for tp in &m.assignment {
            assert!(all.insert(tp.clone()), "{tp:?} held twice: {members:?}");
        }
    }
    let want: BTreeSet<_> = (0..partitions).map(|p| (topic.to_owned(), p)).collect();
    assert_eq!(all, want, "{members:?}");
    let sizes: Vec<usize> = members.iter().map(|m| m.assignment.len()).collect();
    assert!(
        sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
        "{sizes:?}"
    );
}

async fn single_node(topic: &str, partitions: u32) -> Cluster {
    let cluster = Cluster::builder().start().await;
    create_topic(cluster.broker().url(), topic, partitions).await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_leaving_and_going_silent_rebalance_the_group() {
    let cluster = single_node("orders", 6).await;
    let url = cluster.broker().url();

    let first = join(url, "billing", &["orders"], None).await;
    assert_eq!(first.generation, 1);
    assert_split(std::slice::from_ref(&first), "orders", 6);

    // A second member: the first joins again and keeps half of what it held.
    let two = add_member(url, "billing", "orders", vec![first.clone()]).await;
    assert_split(&two, "orders", 6);
    assert_eq!(two[0].generation, 2);
    assert!(
        two[0].assignment.is_subset(&first.assignment),
        "sticky: {two:?}"
    );

    // A third: each of the two keeps two of its three.
    let three = add_member(url, "billing", "orders", two.clone()).await;
    assert_split(&three, "orders", 6);
    for (before, after) in two.iter().zip(&three) {
        assert!(
            after.assignment.is_subset(&before.assignment),
            "sticky: {three:?}"
        );
    }
    let detail = describe(url, "billing").await;
    assert_eq!(detail["state"], "stable");
    assert_eq!(detail["members"].as_array().unwrap().len(), 3);

    // The third leaves: its partitions go to the others at once.
    let (status, body) = post_json(
        &format!("{url}/groups/billing/leave"),
        &json!({"member_id": three[2].id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let two = rejoin_all(url, "billing", "orders", three[..2].to_vec()).await;
    assert_split(&two, "orders", 6);

    // The second goes silent: after its session it is dropped, and the
    // first, still heartbeating, is asked to join again and gets everything.
    let alone = rejoin_all(url, "billing", "orders", vec![two[0].clone()]).await;
    assert_split(&alone, "orders", 6);
    let (status, body) = heartbeat(url, "billing", &two[1]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "unknown_member");
    let activity = cluster.broker().activity("group").await;
    assert!(
        activity
            .iter()
            .any(|a| a["message"].as_str().unwrap().contains(&two[1].id)),
        "the expiry is in the activity log: {activity:?}"
    );
}

/// Joins as a new member, then heartbeats and joins again as the group
/// asks, until it is stable with `size` members.
async fn join_until_settled(url: String, group: String, topic: String, size: usize) -> Member {
    let mut m = join(&url, &group, &[&topic], None).await;
    loop {
        let (status, body) = heartbeat(&url, &group, &m).await;
        assert_eq!(status, StatusCode::OK, "heartbeat of {}: {body}", m.id);
        if body["rebalance"] == json!(true) {
            m = join(&url, &group, &[&topic], Some(&m.id)).await;
            continue;
        }
        let detail = describe(&url, &group).await;
        if detail["state"] == "stable"
            && detail["members"].as_array().unwrap().len() == size
            && detail["generation"] == m.generation
        {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_at_once_all_get_in() {
    let cluster = single_node("jobs", 5).await;
    let url = cluster.broker().url();
    let joins: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(join_until_settled(
                url.to_owned(),
                "workers".to_owned(),
                "jobs".to_owned(),
                3,
            ))
        })
        .collect();
    let mut members = Vec::new();
    for j in joins {
        members.push(j.await.unwrap());
    }
    assert_split(&members, "jobs", 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_cannot_commit_after_its_partitions_moved() {
    let cluster = single_node("events", 2).await;
    let url = cluster.broker().url();
    for i in 0..10 {
        let (status, body) = produce(
            url,
            &json!({"topic": "events", "partition": i % 2, "payload": i}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let zombie = join(url, "audit", &["events"], None).await;
    let (status, body) = commit(
        url,
        "audit",
        &zombie,
        json!([{"topic": "events", "partition": 0, "offset": 2}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The zombie stops heartbeating (paused, partitioned); a new member
    // joins, waits out the zombie's session, and gets both partitions.
    let heir = join(url, "audit", &["events"], None).await;
    assert_split(std::slice::from_ref(&heir), "events", 2);
    assert!(heir.generation > zombie.generation);
    let before = offsets(url, "audit").await;
    assert_eq!(
        before,
        json!([{"topic": "events", "partition": 0, "offset": 2}])
    );

    // The zombie wakes up and commits: refused, and nothing moved.
    let (status, body) = commit(
        url,
        "audit",
        &zombie,
        json!([{"topic": "events", "partition": 0, "offset": 5}]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "unknown_member");
    assert_eq!(offsets(url, "audit").await, before);

    // The heir commits where it is.
    let (status, body) = commit(
        url,
        "audit",
        &heir,
        json!([{"topic": "events", "partition": 0, "offset": 5}, {"topic": "events", "partition": 1, "offset": 4}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["offsets"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_failover_node_restart_and_redis_restart() {
    let mut cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(1000)
        .redis_appendonly(true)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker().url().to_owned();
    create_topic(&leader, "ledger", 2).await;
    for i in 0..6 {
        let (status, body) = produce(
            &leader,
            &json!({"topic": "ledger", "partition": i % 2, "payload": i}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let m = join(&leader, "books", &["ledger"], None).await;
    let committed = json!([
        {"topic": "ledger", "partition": 0, "offset": 3},
        {"topic": "ledger", "partition": 1, "offset": 2},
    ]);
    let (status, body) = commit(&leader, "books", &m, committed.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The leader dies: the follower leads, and knows the group.
    cluster.broker_mut().kill9();
    let next = cluster
        .wait_for_leader(WAIT, |info| info.id != "broker")
        .await
        .url
        .expect("the new leader is registered");
    assert_eq!(offsets(&next, "books").await, committed);
    // The member carries on at its generation with the new leader.
    let (status, body) = heartbeat(&next, "books", &m).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["generation"].as_u64(), Some(m.generation));
    let (status, body) = commit(
        &next,
        "books",
        &m,
        json!([{"topic": "ledger", "partition": 0, "offset": 3}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The old leader comes back (as a follower); then Redis restarts from
    // its append-only file.
    cluster.broker_mut().restart().await;
    cluster.redis_mut().restart().await;
    let leader = wait_for("a leader after the Redis restart", WAIT, || async {
        let url = cluster.leader_info().await?.url?;
        let (status, body) = get_json(&format!("{url}/groups/books/offsets")).await;
        (status == StatusCode::OK).then_some((url, body))
    })
    .await;
    assert_eq!(leader.1["offsets"], committed);
    let detail = describe(&leader.0, "books").await;
    assert_eq!(detail["partitions"][0]["committed"], 3, "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_gains_partitions_is_rebalanced() {
    let cluster = Cluster::builder().followers(1).start().await;
    cluster.wait_for_peers(WAIT).await;
    let url = cluster.broker().url();
    create_topic(url, "clicks", 2).await;
    let first = join(url, "stats", &["clicks"], None).await;
    let two = add_member(url, "stats", "clicks", vec![first]).await;
    assert_split(&two, "clicks", 2);

    let (status, body) = post_json(
        &format!("{url}/topics/clicks/partitions"),
        &json!({"partitions": 4}),
    )
    .await;
    assert_eq!(
        (status, &body),
        (StatusCode::OK, &json!({"name": "clicks", "partitions": 4}))
    );
    let grown = rejoin_all(url, "stats", "clicks", two).await;
    assert_split(&grown, "clicks", 4);
    // The new partitions take writes, replicated to the follower.
    let (status, body) = produce(
        url,
        &json!({"topic": "clicks", "partition": 3, "payload": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let follower = cluster.followers()[0].url();
    wait_for(
        "the follower to hold the new partition's record",
        WAIT,
        || async {
            let (status, body) = testkit::describe_topic(follower, "clicks").await;
            (status == StatusCode::OK && body["partitions"][3]["log_end_offset"] == 1).then_some(())
        },
    )
    .await;

    // The follower's dashboard shows the group and its changes too.
    let generation = grown[0].generation;
    wait_for(
        "the follower's dashboard to show the group",
        WAIT,
        || async {
            let stats = cluster.followers()[0].stats().await?;
            let shown = stats["groups"].as_array()?.iter().any(|g| {
                g["group"] == "stats" && g["generation"] == generation && g["members"] == 2
            });
            let logged = cluster.followers()[0]
                .activity("group")
                .await
                .iter()
                .any(|a| {
                    a["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains(&format!("generation {generation}"))
                });
            (shown && logged).then_some(())
        },
    )
    .await;

    // A count only grows.
    for (partitions, code) in [
        (4, "invalid_partition"),
        (2, "invalid_partition"),
        (5000, "invalid_partition"),
    ] {
        let (status, body) = post_json(
            &format!("{url}/topics/clicks/partitions"),
            &json!({"partitions": partitions}),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}"
        );
    }
    let (status, body) = post_json(
        &format!("{url}/topics/nope/partitions"),
        &json!({"partitions": 9}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_topic"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_move_offsets_only_while_the_group_is_empty() {
    let cluster = single_node("metrics", 1).await;
    let url = cluster.broker().url();
    let mut times = Vec::new();
    for i in 0..5 {
        let (status, body) = produce(url, &json!({"topic": "metrics", "payload": i})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        times.push(now_ms());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reset =
        |body: Value| async move { post_json(&format!("{url}/groups/dash/reset"), &body).await };
    let at = |offset: u64| json!([{"topic": "metrics", "partition": 0, "offset": offset}]);
    // A group that does not exist yet is created by a reset naming topics.
    let (status, body) = reset(json!({"to": "latest", "topics": ["metrics"]})).await;
    assert_eq!(
        (status, &body["offsets"]),
        (StatusCode::OK, &at(5)),
        "{body}"
    );
    let (status, body) = reset(json!({"to": "earliest"})).await;
    assert_eq!(
        (status, &body["offsets"]),
        (StatusCode::OK, &at(0)),
        "{body}"
    );
    let (status, body) = reset(json!({"to": "offset", "offset": 99})).await;
    assert_eq!(
        (status, &body["offsets"]),
        (StatusCode::OK, &at(5)),
        "clamped: {body}"
    );
    let (status, body) = reset(json!({"to": "time", "timestamp_ms": times[2] + 1})).await;
    assert_eq!(
        (status, &body["offsets"]),
        (StatusCode::OK, &at(3)),
        "{body}"
    );
    assert_eq!(offsets(url, "dash").await, at(3));

    let m = join(url, "dash", &["metrics"], None).await;
    let (status, body) = reset(json!({"to": "earliest"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("group_not_empty"))
    );
    assert_eq!(offsets(url, "dash").await, at(3));
    let detail = describe(url, "dash").await;
    assert_eq!(detail["partitions"][0]["lag"], 2);
    assert_eq!(detail["partitions"][0]["member_id"], json!(m.id));
    let (status, list) = get_json(&format!("{url}/groups")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["groups"][0]["group"], "dash");
    assert_eq!(list["groups"][0]["lag"], 2);
    wait_for("the group's lag and members in /metrics", WAIT, || async {
        let metrics = testkit::http_client()
            .get(format!("{url}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (metrics.contains(r#"yak_group_lag_records{group="dash"} 2"#)
            && metrics.contains(r#"yak_group_members{group="dash"}"#))
        .then_some(())
    })
    .await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_requests_get_a_json_error_and_change_nothing() {
    let cluster = single_node("bills", 2).await;
    let url = cluster.broker().url();
    for p in 0..2 {
        let (status, body) = produce(
            url,
            &json!({"topic": "bills", "partition": p, "payload": p}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let first = join(url, "pay", &["bills"], None).await;
    let second = add_member(url, "pay", "bills", vec![first]).await;
    let (a, b) = (&second[0], &second[1]);
    let p_a = a.assignment.iter().next().unwrap().1;
    let owned_by_b = b.assignment.iter().next().unwrap().1;
    let (status, body) = commit(
        url,
        "pay",
        a,
        json!([{"topic": "bills", "partition": p_a, "offset": 1}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before_offsets = offsets(url, "pay").await;
    let before_detail = describe(url, "pay").await;

    let stale = Member {
        generation: a.generation - 1,
        ..a.clone()
    };
    let stranger = Member {
        id: "m-nobody".into(),
        ..a.clone()
    };
    let base = format!("{url}/groups/pay");
    let cases: Vec<(&str, String, Value, StatusCode, &str)> = vec![
        (
            "heartbeat, unknown group",
            format!("{url}/groups/nope/heartbeat"),
            json!({"member_id": a.id, "generation": 1}),
            StatusCode::NOT_FOUND,
            "unknown_group",
        ),
        (
            "heartbeat, unknown member",
            format!("{base}/heartbeat"),
            json!({"member_id": stranger.id, "generation": a.generation}),
            StatusCode::CONFLICT,
            "unknown_member",
        ),
        (
            "heartbeat, stale generation",
            format!("{base}/heartbeat"),
            json!({"member_id": stale.id, "generation": stale.generation}),
            StatusCode::CONFLICT,
            "stale_generation",
        ),
        (
            "commit, stale generation",
            format!("{base}/commit"),
            json!({"member_id": a.id, "generation": stale.generation, "offsets": [{"topic": "bills", "partition": p_a, "offset": 1}]}),
            StatusCode::CONFLICT,
            "stale_generation",
        ),
        (
            "commit, partition not owned",
            format!("{base}/commit"),
            json!({"member_id": a.id, "generation": a.generation, "offsets": [{"topic": "bills", "partition": owned_by_b, "offset": 1}]}),
            StatusCode::CONFLICT,
            "not_assigned",
        ),
        (
            "commit, one of two not owned",
            format!("{base}/commit"),
            json!({"member_id": a.id, "generation": a.generation, "offsets": [{"topic": "bills", "partition": p_a, "offset": 0}, {"topic": "bills", "partition": owned_by_b, "offset": 1}]}),
            StatusCode::CONFLICT,
            "not_assigned",
        ),
        (
            "commit, beyond the log end",
            format!("{base}/commit"),
            json!({"member_id": a.id, "generation": a.generation, "offsets": [{"topic": "bills", "partition": p_a, "offset": 2}]}),
            StatusCode::BAD_REQUEST,
            "offset_out_of_range",
        ),
        (
            "commit, unknown member",
            format!("{base}/commit"),
            json!({"member_id": stranger.id, "generation": a.generation, "offsets": [{"topic": "bills", "partition": p_a, "offset": 1}]}),
            StatusCode::CONFLICT,
            "unknown_member",
        ),
        (
            "commit, no offsets",
            format!("{base}/commit"),
            json!({"member_id": a.id, "generation": a.generation, "offsets": []}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "commit, negative offset",
            format!("{base}/commit"),
            json!({"member_id": a.id, "generation": a.generation, "offsets": [{"topic": "bills", "partition": p_a, "offset": -1}]}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "commit, unknown field",
            format!("{base}/commit"),
            json!({"member_id": a.id, "generation": a.generation, "offsets": [], "x": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "join, unknown topic",
            format!("{base}/join"),
            json!({"topics": ["nope"]}),
            StatusCode::NOT_FOUND,
            "unknown_topic",
        ),
        (
            "join, bad topic name",
            format!("{base}/join"),
            json!({"topics": ["a b"]}),
            StatusCode::BAD_REQUEST,
            "invalid_topic",
        ),
        (
            "join, no topics",
            format!("{base}/join"),
            json!({"topics": []}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "join, session too short",
            format!("{base}/join"),
            json!({"topics": ["bills"], "session_timeout_ms": 10}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "join, other assignor",
            format!("{base}/join"),
            json!({"topics": ["bills"], "assignor": "range"}),
            StatusCode::CONFLICT,
            "assignor_mismatch",
        ),
        (
            "join, unknown assignor",
            format!("{base}/join"),
            json!({"topics": ["bills"], "assignor": "dice"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "join, expired member id",
            format!("{base}/join"),
            json!({"topics": ["bills"], "member_id": stranger.id}),
            StatusCode::CONFLICT,
            "unknown_member",
        ),
        (
            "join, bad group name",
            format!("{url}/groups/a%20b/join"),
            json!({"topics": ["bills"]}),
            StatusCode::BAD_REQUEST,
            "invalid_group",
        ),
        (
            "leave, unknown member",
            format!("{base}/leave"),
            json!({"member_id": stranger.id}),
            StatusCode::CONFLICT,
            "unknown_member",
        ),
        (
            "reset, with members",
            format!("{base}/reset"),
            json!({"to": "earliest"}),
            StatusCode::CONFLICT,
            "group_not_empty",
        ),
        (
            "reset, bad target",
            format!("{base}/reset"),
            json!({"to": "soon"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "reset, offset missing",
            format!("{base}/reset"),
            json!({"to": "offset"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (what, target, body, want_status, want_code) in cases {
        let (status, answer) = post_json(&target, &body).await;
        assert_eq!(status, want_status, "{what}: {answer}");
        assert_eq!(answer["error"], want_code, "{what}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {answer}"
        );
    }
    for (what, target, raw) in [
        ("join, not JSON", format!("{base}/join"), "{not json"),
        ("commit, empty", format!("{base}/commit"), ""),
    ] {
        let reply = testkit::post_raw(&target, raw).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text
        );
        assert_eq!(reply.json["error"], "invalid_json", "{what}");
    }
    let (status, answer) = get_json(&format!("{url}/groups/nope")).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_group"))
    );

    assert_eq!(
        offsets(url, "pay").await,
        before_offsets,
        "refusals stored nothing"
    );
    let after = describe(url, "pay").await;
    assert_eq!(after["generation"], before_detail["generation"]);
    assert_eq!(after["members"], before_detail["members"]);
    assert_eq!(after["state"], "stable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sends_group_calls_to_the_leader() {
    let cluster = Cluster::builder().followers(1).start().await;
    cluster.wait_for_peers(WAIT).await;
    create_topic(cluster.broker().url(), "t", 1).await;
    let follower = cluster.followers()[0].url();
    let (status, body) = join_raw(follower, "g", json!({"topics": ["t"]})).await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT, "{body}");
    assert_eq!(body["error"], "not_leader");
    assert_eq!(body["leader_url"], json!(cluster.broker().url()));
}
