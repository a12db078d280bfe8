//! The produce/consume/topics API against a real node and a real Redis:
//! single and batch produce, key routing, consume contents, long poll,
//! topic administration, auto-creation, idempotent retries, health and
//! readiness, and durability across a restart.

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};
use testkit::{
    Cluster, StatusCode, consume, consume_all, consume_with, create_topic, describe_topic,
    get_json, http_client, post_json, produce, produce_batch, send, wait_for, wait_until,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn single_node() -> Cluster {
    Cluster::builder().start().await
}

/// Kafka's `toPositive(murmur2(key)) % partitions`, from the known murmur2
/// value (Kafka's `UtilsTest.testMurmur2` vectors).
fn kafka_partition(murmur2: i32, partitions: u32) -> u32 {
    (murmur2 as u32 & 0x7fff_ffff) % partitions
}

#[tokio::test]
async fn produce_and_consume_single_records() {
    let cluster = single_node().await;
    let url = cluster.broker().url();
    create_topic(url, "events", 2).await;

    let before = now_ms();
    let (status, body) = produce(
        url,
        &json!({"topic": "events", "partition": 1, "key": "k1", "payload": {"n": 1, "tags": ["a", "b"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"topic": "events", "partition": 1, "offset": 0, "epoch": 1})
    );
    let (status, body) = produce(
        url,
        &json!({"topic": "events", "partition": 1, "payload": "text"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"topic": "events", "partition": 1, "offset": 1, "epoch": 1})
    );
    let (status, body) = produce(
        url,
        &json!({"topic": "events", "partition": 0, "payload": 42.5}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"topic": "events", "partition": 0, "offset": 0, "epoch": 1})
    );
    let after = now_ms();

    let (status, read) = consume(url, "events", 1, 0).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["topic"], "events");
    assert_eq!(read["partition"], 1);
    assert_eq!(read["next_offset"], 2);
    assert_eq!(read["high_water_mark"], 2);
    assert_eq!(read["log_start_offset"], 0);
    let records = read["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{read}");
    assert_eq!(records[0]["offset"], 0);
    assert_eq!(records[0]["key"], "k1");
    assert_eq!(records[0]["payload"], json!({"n": 1, "tags": ["a", "b"]}));
    assert_eq!(records[1]["offset"], 1);
    assert_eq!(records[1]["key"], Value::Null);
    assert_eq!(records[1]["payload"], "text");
    for r in records {
        let ts = r["timestamp"].as_i64().expect("timestamp is an integer");
        assert!(
            (before - 1000..=after + 1000).contains(&ts),
            "timestamp {ts} not within [{before}, {after}]"
        );
    }

    // From the middle, and one at a time.
    let (_, read) = consume(url, "events", 1, 1).await;
    assert_eq!(read["records"].as_array().unwrap().len(), 1);
    assert_eq!(read["records"][0]["payload"], "text");
    let (_, read) = consume_with(
        url,
        &[
            ("topic", "events".into()),
            ("partition", "1".into()),
            ("max_records", "1".into()),
        ],
    )
    .await;
    assert_eq!(read["records"].as_array().unwrap().len(), 1);
    assert_eq!(read["next_offset"], 1);

    // A max_bytes smaller than one batch still returns a batch (progress).
    let (status, read) = consume_with(
        url,
        &[
            ("topic", "events".into()),
            ("partition", "1".into()),
            ("max_bytes", "1".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["records"][0]["offset"], 0, "{read}");

    let (_, read) = consume(url, "events", 0, 0).await;
    assert_eq!(read["records"].as_array().unwrap().len(), 1);
    assert_eq!(read["records"][0]["payload"], 42.5);
    assert_eq!(read["high_water_mark"], 1);
}

#[tokio::test]
async fn batch_produce_answers_one_result_per_record_in_order() {
    let cluster = single_node().await;
    let url = cluster.broker().url();
    create_topic(url, "spread", 3).await;

    let mut records: Vec<Value> = (0..9)
        .map(|i| json!({"topic": "spread", "partition": i % 3, "payload": {"i": i}}))
        .collect();
    records.insert(
        4,
        json!({"topic": "elsewhere", "partition": 0, "payload": "other"}),
    );
    let (status, body) = produce(url, &json!({ "records": records })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), 10, "{body}");
    let mut expected: Vec<Value> = (0..9)
        .map(|i| json!({"topic": "spread", "partition": i % 3, "offset": i / 3, "epoch": 1}))
        .collect();
    expected.insert(
        4,
        json!({"topic": "elsewhere", "partition": 0, "offset": 0, "epoch": 1}),
    );
    assert_eq!(results, expected);

    for p in 0..3u32 {
        let got = consume_all(url, "spread", p).await;
        let payloads: Vec<Value> = got.iter().map(|r| r["payload"].clone()).collect();
        let want: Vec<Value> = (0..9)
            .filter(|i| i % 3 == p)
            .map(|i| json!({"i": i}))
            .collect();
        assert_eq!(payloads, want, "partition {p}");
        let offsets: Vec<u64> = got.iter().map(|r| r["offset"].as_u64().unwrap()).collect();
        assert_eq!(offsets, vec![0, 1, 2]);
    }
    let other = consume_all(url, "elsewhere", 0).await;
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["payload"], "other");
}

#[tokio::test]
async fn keyed_records_land_on_kafkas_murmur2_partition() {
    let cluster = single_node().await;
    let url = cluster.broker().url();
    create_topic(url, "k3", 3).await;
    create_topic(url, "k7", 7).await;

    // Kafka: murmur2("21") = -973932308, toPositive = 1173551340.
    let (status, body) = produce(url, &json!({"topic": "k3", "key": "21", "payload": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["partition"], 1_173_551_340u32 % 3);
    let (_, body) = produce(url, &json!({"topic": "k7", "key": "21", "payload": 1})).await;
    assert_eq!(body["partition"], 1_173_551_340u32 % 7);

    let vectors: [(&str, i32); 5] = [
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        (
            "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        ("abc", 479_470_107),
    ];
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for (key, hash) in vectors {
        for (topic, n) in [("k3", 3), ("k7", 7)] {
            batch.push(json!({"topic": topic, "key": key, "payload": {"key": key}}));
            expected.push((topic, kafka_partition(hash, n), key));
        }
    }
    let (status, body) = produce(url, &json!({ "records": batch })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (result, (topic, partition, key)) in
        body["results"].as_array().unwrap().iter().zip(&expected)
    {
        assert_eq!(result["topic"], *topic, "{key}");
        assert_eq!(result["partition"], *partition, "{key} in {topic}");
        // The record is where the answer says, with its key.
        let offset = result["offset"].as_u64().unwrap();
        let (_, read) = consume(url, topic, *partition, offset).await;
        assert_eq!(read["records"][0]["key"], *key);
        assert_eq!(read["records"][0]["payload"], json!({"key": key}));
    }

    // The same key always goes to the same partition, at the next offset.
    let (_, first) = produce(url, &json!({"topic": "k7", "key": "user-17", "payload": 1})).await;
    let (_, second) = produce(url, &json!({"topic": "k7", "key": "user-17", "payload": 2})).await;
    assert_eq!(first["partition"], second["partition"]);
    assert_eq!(
        second["offset"].as_u64().unwrap(),
        first["offset"].as_u64().unwrap() + 1
    );
}

/// Sends a GET by hand and returns once the request bytes are written, with
/// a task that reads the whole reply (`Connection: close`).
async fn start_raw_get(addr: SocketAddr, path: &str) -> tokio::task::JoinHandle<(u16, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    stream.flush().await.expect("flush");
    tokio::spawn(async move {
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let (_, body) = text.split_once("\r\n\r\n").expect("headers end");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    })
}

#[tokio::test]
async fn long_poll_returns_the_record_that_arrives() {
    let cluster = single_node().await;
    let url = cluster.broker().url();
    create_topic(url, "lp", 1).await;
    let (status, _) = produce(url, &json!({"topic": "lp", "payload": "first"})).await;
    assert_eq!(status, StatusCode::OK);

    // At the HWM without waiting: no records, nothing moves.
    let (status, read) = consume_with(
        url,
        &[
            ("topic", "lp".into()),
            ("offset", "1".into()),
            ("wait_ms", "0".into()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["records"], json!([]));
    assert_eq!(read["next_offset"], 1);
    assert_eq!(read["high_water_mark"], 1);

    // A long poll at the HWM, in flight before the produce is sent.
    let pending = start_raw_get(
        cluster.broker().addr(),
        "/consume?topic=lp&partition=0&offset=1&wait_ms=5000",
    )
    .await;
    let (status, body) = produce(url, &json!({"topic": "lp", "payload": {"second": true}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["offset"], 1);
    let (status, read) = pending.await.unwrap();
    assert_eq!(status, 200, "{read}");
    let records = read["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "the long poll returned {read}");
    assert_eq!(records[0]["offset"], 1);
    assert_eq!(records[0]["payload"], json!({"second": true}));
    assert_eq!(read["next_offset"], 2);
    assert_eq!(read["high_water_mark"], 2);
}

#[tokio::test]
async fn topics_are_created_listed_and_described() {
    let cluster = single_node().await;
    let url = cluster.broker().url();

    let (status, body) = post_json(
        &format!("{url}/topics"),
        &json!({"name": "orders", "partitions": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"name": "orders", "partitions": 4, "config": {}})
    );
    for again in [
        json!({"name": "orders", "partitions": 4}),
        json!({"name": "orders"}),
    ] {
        let (status, body) = post_json(&format!("{url}/topics"), &again).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"], "topic_exists");
        assert!(body["message"].is_string());
    }
    let (status, body) = post_json(&format!("{url}/topics"), &json!({"name": "plain"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"name": "plain", "partitions": 3, "config": {}}),
        "default count, and no retention limit"
    );

    let (status, list) = get_json(&format!("{url}/topics")).await;
    assert_eq!(status, StatusCode::OK);
    let mut topics = list["topics"].as_array().unwrap().clone();
    topics.sort_by_key(|t| t["name"].as_str().unwrap().to_owned());
    assert_eq!(
        topics,
        vec![
            json!({"name": "orders", "partitions": 4}),
            json!({"name": "plain", "partitions": 3}),
        ]
    );

    let batch: Vec<Value> = (0..3)
        .map(|i| json!({"topic": "orders", "partition": 2, "payload": i}))
        .collect();
    let (status, _) = produce(url, &json!({ "records": batch })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, described) = describe_topic(url, "orders").await;
    assert_eq!(status, StatusCode::OK, "{described}");
    assert_eq!(described["name"], "orders");
    assert_eq!(described["node_id"], "broker");
    assert_eq!(described["config"], json!({}), "keeps everything");
    let partitions = described["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 4);
    for (i, p) in partitions.iter().enumerate() {
        let n = if i == 2 { 3 } else { 0 };
        assert_eq!(p["partition"], i, "{p}");
        assert_eq!(p["log_start_offset"], 0, "{p}");
        assert_eq!(p["log_end_offset"], n, "{p}");
        assert_eq!(p["high_water_mark"], n, "{p}");
        assert!(p["size_bytes"].is_u64(), "{p}");
    }
}

#[tokio::test]
async fn first_produce_creates_the_topic_with_the_default_partition_count() {
    let cluster = Cluster::builder()
        .extra_args(["--default-partitions", "5"])
        .start()
        .await;
    let url = cluster.broker().url();
    let (status, body) = describe_topic(url, "auto").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_topic");

    let (status, body) = produce(url, &json!({"topic": "auto", "payload": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = get_json(&format!("{url}/topics")).await;
    assert_eq!(list["topics"], json!([{"name": "auto", "partitions": 5}]));
    let (status, described) = describe_topic(url, "auto").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(described["partitions"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn consuming_an_unknown_topic_is_404_and_creates_nothing() {
    let cluster = single_node().await;
    let url = cluster.broker().url();
    let (status, body) = consume(url, "ghost", 0, 0).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_topic");
    assert!(body["message"].as_str().unwrap().contains("ghost"));
    let (_, list) = get_json(&format!("{url}/topics")).await;
    assert_eq!(list["topics"], json!([]));
    let (status, _) = describe_topic(url, "ghost").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_auto_create_an_unknown_topic_is_refused() {
    let cluster = Cluster::builder()
        .extra_args(["--auto-create-topics", "false"])
        .start()
        .await;
    let url = cluster.broker().url();
    let (status, body) = produce(url, &json!({"topic": "nope", "payload": 1})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_topic");
    let (_, list) = get_json(&format!("{url}/topics")).await;
    assert_eq!(list["topics"], json!([]));
}

async fn count_records(url: &str, topic: &str, partitions: u32) -> usize {
    let mut n = 0;
    for p in 0..partitions {
        n += consume_all(url, topic, p).await.len();
    }
    n
}

#[tokio::test]
async fn idempotent_single_retry_returns_the_original_offset() {
    let cluster = single_node().await;
    let url = cluster.broker().url();
    create_topic(url, "idem", 3).await;
    // Something before it, so the offset is not trivially 0.
    for p in 0..3 {
        produce(
            url,
            &json!({"topic": "idem", "partition": p, "payload": "filler"}),
        )
        .await;
    }

    let record = json!({"topic": "idem", "payload": {"n": 1}, "producer_id": 7, "sequence": 0});
    let (status, first) = produce(url, &record).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    for _ in 0..3 {
        let (status, again) = produce(url, &record).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again, first, "a retry gets the original offset");
    }
    let (status, next) = produce(
        url,
        &json!({"topic": "idem", "payload": {"n": 2}, "producer_id": 7, "sequence": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(
        next["partition"], first["partition"],
        "same producer run, same partition"
    );
    assert_eq!(
        next["offset"].as_u64(),
        first["offset"].as_u64().map(|o| o + 1)
    );

    assert_eq!(
        count_records(url, "idem", 3).await,
        5,
        "3 fillers + 2 records"
    );
    let partition = first["partition"].as_u64().unwrap() as u32;
    let stored: Vec<Value> = consume_all(url, "idem", partition)
        .await
        .into_iter()
        .filter(|r| r["payload"] == json!({"n": 1}))
        .collect();
    assert_eq!(stored.len(), 1, "stored once: {stored:?}");
    assert_eq!(stored[0]["offset"], first["offset"]);
}

#[tokio::test]
async fn idempotent_batch_retry_returns_the_original_offsets() {
    let cluster = single_node().await;
    let url = cluster.broker().url();
    create_topic(url, "idemb", 3).await;
    let batch = json!({"records": [
        {"topic": "idemb", "payload": 0, "producer_id": 9, "sequence": 0},
        {"topic": "idemb", "payload": 1, "producer_id": 9, "sequence": 1},
        {"topic": "idemb", "payload": 2, "producer_id": 9, "sequence": 2},
        {"topic": "idemb", "key": "a", "payload": 3, "producer_id": 9, "sequence": 3},
        {"topic": "idemb", "key": "b", "payload": 4, "producer_id": 9, "sequence": 4},
    ]});
    let (status, first) = produce(url, &batch).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let results = first["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|r| r["offset"].is_u64()), "{first}");
    // Unkeyed records of one producer run share a partition.
    assert_eq!(results[0]["partition"], results[1]["partition"]);
    assert_eq!(results[1]["partition"], results[2]["partition"]);

    for _ in 0..2 {
        let (status, again) = produce(url, &batch).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again, first, "a retried batch gets the original offsets");
    }
    assert_eq!(count_records(url, "idemb", 3).await, 5);

    // Part of the original request, retried alone: the original offsets.
    let part = json!({"records": [
        {"topic": "idemb", "payload": 1, "producer_id": 9, "sequence": 1},
        {"topic": "idemb", "payload": 2, "producer_id": 9, "sequence": 2},
    ]});
    let (status, again) = produce(url, &part).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["results"][0], first["results"][1]);
    assert_eq!(again["results"][1], first["results"][2]);
    assert_eq!(count_records(url, "idemb", 3).await, 5);

    // A run that starts inside the original but runs past it is not a retry
    // of it: refused, nothing stored.
    let overlapping: Vec<Value> = (1..7)
        .map(|seq| json!({"topic": "idemb", "payload": seq, "producer_id": 9, "sequence": seq}))
        .collect();
    let (status, conflict) = produce(url, &json!({ "records": overlapping })).await;
    assert_eq!(status, StatusCode::OK, "{conflict}");
    let results = conflict["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for r in results {
        assert_eq!(r["error"], "sequence_conflict", "{conflict}");
        assert_eq!(r["written"], "no", "{conflict}");
        assert!(r["message"].is_string(), "{conflict}");
    }
    assert_eq!(
        count_records(url, "idemb", 3).await,
        5,
        "nothing more stored"
    );
}

#[tokio::test]
async fn health_and_ready_follow_redis() {
    let mut cluster = single_node().await;
    let url = cluster.broker().url().to_owned();

    let (status, health) = get_json(&format!("{url}/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["node_id"], "broker");
    assert_eq!(health["role"], "leader");
    let (status, ready) = get_json(&format!("{url}/ready")).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["node_id"], "broker");

    cluster.redis_mut().stop().await;
    let reply = wait_for(
        "/ready to fail without redis",
        Duration::from_secs(10),
        || async {
            let reply = send(http_client().get(format!("{url}/ready"))).await;
            (reply.status == StatusCode::SERVICE_UNAVAILABLE).then_some(reply)
        },
    )
    .await;
    assert_eq!(reply.error_code(), Some("not_ready"), "{}", reply.text);
    assert!(reply.json["message"].is_string());
    assert!(reply.headers.contains_key("retry-after"));
    let (status, health) = get_json(&format!("{url}/health")).await;
    assert_eq!(status, StatusCode::OK, "the process is still up: {health}");

    cluster.redis_mut().restart().await;
    wait_until(Duration::from_secs(10), || async {
        let (status, _) = get_json(&format!("{url}/ready")).await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
}

/// Produces 30 keyed records to a 3-partition topic; returns each record's
/// (partition, offset, payload).
async fn produce_thirty(url: &str) -> Vec<(u32, u64, Value)> {
    create_topic(url, "durable", 3).await;
    let records: Vec<Value> = (0..30)
        .map(|i| json!({"topic": "durable", "key": format!("k{i}"), "payload": {"i": i}}))
        .collect();
    let (status, body) = produce(url, &json!({ "records": records })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&records)
        .map(|(r, sent)| {
            (
                r["partition"].as_u64().expect("acknowledged") as u32,
                r["offset"].as_u64().expect("acknowledged"),
                sent["payload"].clone(),
            )
        })
        .collect()
}

async fn assert_all_present(url: &str, acked: &[(u32, u64, Value)]) {
    for p in 0..3 {
        let stored = consume_all(url, "durable", p).await;
        let mut want: Vec<&(u32, u64, Value)> = acked.iter().filter(|a| a.0 == p).collect();
        want.sort_by_key(|a| a.1);
        assert_eq!(stored.len(), want.len(), "partition {p}");
        for (got, (_, offset, payload)) in stored.iter().zip(want) {
            assert_eq!(got["offset"], *offset);
            assert_eq!(got["payload"], *payload);
        }
    }
}

#[tokio::test]
async fn records_survive_a_graceful_restart() {
    // One node: until replication lands a follower has none of the data.
    let mut cluster = single_node().await;
    let url = cluster.broker().url().to_owned();
    let acked = produce_thirty(&url).await;

    let status = cluster.broker_mut().terminate().await;
    assert!(status.success(), "graceful exit: {status}");
    cluster.broker_mut().restart().await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10), |l| l.id == "broker")
        .await;
    assert!(leader.epoch >= 2, "a new term: {leader:?}");
    assert_all_present(&url, &acked).await;

    // New records go after the old ones.
    let (status, body) = produce(
        &url,
        &json!({"topic": "durable", "partition": 0, "payload": "new"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = acked.iter().filter(|a| a.0 == 0).count() as u64;
    assert_eq!(body["offset"], before);
}

#[tokio::test]
async fn records_survive_kill9_and_restart() {
    let mut cluster = single_node().await;
    let url = cluster.broker().url().to_owned();
    let acked = produce_thirty(&url).await;

    cluster.broker_mut().kill9();
    cluster.broker_mut().restart().await;
    cluster
        .wait_for_leader(Duration::from_secs(10), |l| l.id == "broker")
        .await;
    assert_all_present(&url, &acked).await;
}

#[tokio::test]
async fn stats_and_events_describe_the_node() {
    let cluster = single_node().await;
    let url = cluster.broker().url();
    let (status, _) = produce(url, &json!({"topic": "seen", "partition": 1, "payload": 1})).await;
    assert_eq!(status, StatusCode::OK);

    // The snapshot is refreshed once a second.
    let stats = wait_for(
        "a snapshot with the topic",
        Duration::from_secs(5),
        || async {
            let (status, stats) = get_json(&format!("{url}/stats")).await;
            assert_eq!(status, StatusCode::OK);
            (stats["topics"][0]["name"] == "seen").then_some(stats)
        },
    )
    .await;
    assert_eq!(stats["node"]["id"], "broker");
    assert_eq!(stats["node"]["role"], "leader");
    assert_eq!(stats["node"]["url"], url);
    assert_eq!(stats["node"]["redis_ok"], true);
    assert_eq!(stats["topics"][0]["partitions"][1]["high_water_mark"], 1);
    assert_eq!(stats["produced_total"], 1);
    let t = stats["series"]["t"].as_array().unwrap().len();
    assert!(t >= 1);
    assert_eq!(
        stats["series"]["produce_total"].as_array().unwrap().len(),
        t
    );

    // /events pushes the same snapshot as server-sent events; read the first.
    let mut response = http_client()
        .get(format!("{url}/events"))
        .send()
        .await
        .expect("GET /events");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Each snapshot is a `leader` event (the page header) then a `stats` event.
    let mut raw = String::new();
    let complete = |raw: &str| {
        raw.split("\n\n")
            .filter(|e| e.starts_with("event: stats\n"))
            .count()
            > 0
            && raw.ends_with("\n\n")
    };
    while !complete(&raw) {
        let chunk = response
            .chunk()
            .await
            .expect("reading /events")
            .expect("the stream stays open");
        raw.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<&str> = raw.split("\n\n").filter(|e| !e.is_empty()).collect();
    let leader = events
        .iter()
        .find(|e| e.starts_with("event: leader\n"))
        .expect("a leader event");
    assert!(leader.contains("\"state\":\"connected\""), "{leader:?}");
    let event = events
        .iter()
        .find(|e| e.starts_with("event: stats\n"))
        .expect("a stats event");
    let data = event
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line");
    let snapshot: Value = serde_json::from_str(data).expect("JSON data");
    assert_eq!(snapshot["node"]["id"], "broker");
}

#[tokio::test]
async fn a_binary_batch_is_stored_as_sent_and_its_retry_is_not_stored_twice() {
    let cluster = single_node().await;
    let url = cluster.broker().url();
    create_topic(url, "bin", 2).await;
    let (status, body) = produce(url, &json!({"topic": "bin", "partition": 1, "payload": 0})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut builder = partition_log::BatchBuilder::new(now_ms()).producer(77, 0);
    builder.push(now_ms(), Some(b"k"), br#"{"n":1}"#);
    builder.push(now_ms(), None, b"plain text");
    builder.push(now_ms(), None, b"3");
    let bytes = builder.finish();
    let reply = produce_batch(url, "bin", 1, bytes.clone()).await;
    let (status, body) = (reply.status, reply.json);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"topic": "bin", "partition": 1, "offset": 1, "count": 3, "epoch": 1})
    );

    // The same batch again (a retry after a lost answer): same offsets.
    let reply = produce_batch(url, "bin", 1, bytes).await;
    let (status, again) = (reply.status, reply.json);
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, body);

    let records = consume_all(url, "bin", 1).await;
    let got: Vec<(u64, Value, Value)> = records
        .iter()
        .map(|r| {
            (
                r["offset"].as_u64().unwrap(),
                r["key"].clone(),
                r["payload"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, Value::Null, json!(0)),
            (1, json!("k"), json!({"n": 1})),
            (2, Value::Null, json!("plain text")),
            (3, Value::Null, json!(3)),
        ]
    );

    // A batch to a topic that does not exist yet creates it.
    let mut builder = partition_log::BatchBuilder::new(now_ms());
    builder.push(now_ms(), None, b"first");
    let reply = produce_batch(url, "bin-new", 0, builder.finish()).await;
    let (status, body) = (reply.status, reply.json);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["offset"], 0);
}
