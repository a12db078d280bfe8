//! Bad input: every malformed or out-of-limit request gets its 4xx with a
//! JSON body `{"error": code, "message": text}`, and leaves the data as it
//! was (same topics, same descriptions, same records).

use partition_log::{LogConfig, PartitionLog, Retention};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{
    Cluster, Reply, StatusCode, consume_with, http_client, node_snapshot, post_json, post_raw,
    produce, produce_batch, request, send,
};

/// Largest request body of the test node: above the 1 MiB payload limit, so
/// that both limits can be hit separately.
const MAX_REQUEST: usize = 2 * 1024 * 1024;

struct Fixture {
    cluster: Cluster,
    before: Value,
}

impl Fixture {
    /// One node with topic `v` (3 partitions) holding a few records.
    async fn new() -> Self {
        let cluster = Cluster::builder()
            .extra_args(["--max-request-bytes".to_owned(), MAX_REQUEST.to_string()])
            .start()
            .await;
        let url = cluster.broker().url();
        let records: Vec<Value> = (0..6)
            .map(|i| json!({"topic": "v", "key": format!("k{i}"), "payload": {"i": i}}))
            .collect();
        let (status, body) = produce(url, &json!({ "records": records })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let before = node_snapshot(url).await;
        Self { cluster, before }
    }

    fn url(&self) -> &str {
        self.cluster.broker().url()
    }

    /// Asserts that `reply` is `status` with error `code` and a message,
    /// and that the data did not change.
    async fn refused(&self, what: &str, reply: Reply, status: StatusCode, code: &str) {
        assert_eq!(reply.status, status, "{what}: {}", reply.text);
        assert!(
            reply
                .content_type()
                .is_some_and(|c| c.starts_with("application/json")),
            "{what}: not JSON: {:?}",
            reply.content_type()
        );
        assert_eq!(reply.error_code(), Some(code), "{what}: {}", reply.text);
        assert!(
            reply.json["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: no message: {}",
            reply.text
        );
        let after = node_snapshot(self.url()).await;
        assert!(
            after == self.before,
            "{what} changed the data.\nbefore: {:#}\nafter: {after:#}",
            self.before
        );
    }

    async fn produce_raw(&self, body: impl Into<Vec<u8>>) -> Reply {
        post_raw(&format!("{}/produce", self.url()), body).await
    }

    async fn produce_json(&self, body: &Value) -> Reply {
        send(
            http_client()
                .post(format!("{}/produce", self.url()))
                .json(body),
        )
        .await
    }
}

#[tokio::test]
async fn malformed_and_misshapen_produce_bodies() {
    let f = Fixture::new().await;
    let bad = StatusCode::BAD_REQUEST;

    for (what, body) in [
        ("truncated JSON", r#"{"topic": "v", "payload":"#),
        ("not JSON", "topic=v&payload=1"),
        ("trailing garbage", r#"{"topic": "v", "payload": 1} x"#),
    ] {
        let reply = f.produce_raw(body).await;
        f.refused(what, reply, bad, "invalid_json").await;
    }
    let reply = f.produce_raw(Vec::new()).await;
    f.refused("empty body", reply, bad, "invalid_json").await;

    for (what, body) in [
        (
            "unknown field",
            json!({"topic": "v", "payload": 1, "colour": "red"}),
        ),
        (
            "unknown field in a batch record",
            json!({"records": [{"topic": "v", "payload": 1, "colour": "red"}]}),
        ),
        (
            "unknown field beside records",
            json!({"records": [{"topic": "v", "payload": 1}], "colour": "red"}),
        ),
        ("missing payload", json!({"topic": "v"})),
        ("missing topic", json!({"payload": 1})),
        (
            "missing payload in a batch",
            json!({"records": [{"topic": "v", "payload": 1}, {"topic": "v"}]}),
        ),
        ("topic is a number", json!({"topic": 5, "payload": 1})),
        (
            "partition is a string",
            json!({"topic": "v", "payload": 1, "partition": "0"}),
        ),
        (
            "partition is negative",
            json!({"topic": "v", "payload": 1, "partition": -1}),
        ),
        (
            "key is a number",
            json!({"topic": "v", "payload": 1, "key": 5}),
        ),
        (
            "producer_id is a string",
            json!({"topic": "v", "payload": 1, "producer_id": "p", "sequence": 0}),
        ),
        (
            "records is not a list",
            json!({"records": {"topic": "v", "payload": 1}}),
        ),
        ("records is empty", json!({"records": []})),
        (
            "a list instead of an object",
            json!([{"topic": "v", "payload": 1}]),
        ),
        (
            "producer_id without sequence",
            json!({"topic": "v", "payload": 1, "producer_id": 1}),
        ),
        (
            "sequence without producer_id",
            json!({"topic": "v", "payload": 1, "sequence": 0}),
        ),
        (
            "producer_id above i64",
            json!({"topic": "v", "payload": 1, "producer_id": u64::MAX, "sequence": 0}),
        ),
        (
            "sequence above i32",
            json!({"topic": "v", "payload": 1, "producer_id": 1, "sequence": 1u64 << 31}),
        ),
        (
            "a sequence twice in one request",
            json!({"records": [
                {"topic": "v", "payload": 1, "producer_id": 1, "sequence": 0},
                {"topic": "v", "payload": 2, "producer_id": 1, "sequence": 0},
            ]}),
        ),
    ] {
        let reply = f.produce_json(&body).await;
        f.refused(what, reply, bad, "invalid_request").await;
    }

    // One bad record refuses the whole batch.
    let reply = f
        .produce_json(&json!({"records": [
            {"topic": "v", "payload": "good"},
            {"topic": "v/x", "payload": "bad"},
        ]}))
        .await;
    assert!(
        reply.json["message"]
            .as_str()
            .unwrap_or_default()
            .contains("record 1"),
        "{}",
        reply.text
    );
    f.refused("a batch with one bad topic", reply, bad, "invalid_topic")
        .await;

    // Explicit partitions out of range, for an existing and a new topic
    // (which must not be created).
    let reply = f
        .produce_json(&json!({"topic": "v", "partition": 3, "payload": 1}))
        .await;
    f.refused("partition 3 of 3", reply, bad, "invalid_partition")
        .await;
    let reply = f
        .produce_json(&json!({"records": [
            {"topic": "v", "partition": 0, "payload": 1},
            {"topic": "v", "partition": 7, "payload": 1},
        ]}))
        .await;
    f.refused(
        "a batch with partition 7 of 3",
        reply,
        bad,
        "invalid_partition",
    )
    .await;
    let reply = f
        .produce_json(&json!({"topic": "fresh", "partition": 99, "payload": 1}))
        .await;
    f.refused(
        "partition 99 of a new topic",
        reply,
        bad,
        "invalid_partition",
    )
    .await;
}

#[tokio::test]
async fn bad_topic_names_are_refused_everywhere() {
    let f = Fixture::new().await;
    let url = f.url().to_owned();
    let long = "x".repeat(250);
    for name in [
        "",
        long.as_str(),
        "a/b",
        "a b",
        ".",
        "..",
        "../x",
        "é",
        "a\u{0}b",
    ] {
        let reply = f.produce_json(&json!({"topic": name, "payload": 1})).await;
        f.refused(
            &format!("produce to {name:?}"),
            reply,
            StatusCode::BAD_REQUEST,
            "invalid_topic",
        )
        .await;
        let reply = send(
            http_client()
                .post(format!("{url}/topics"))
                .json(&json!({"name": name})),
        )
        .await;
        f.refused(
            &format!("create {name:?}"),
            reply,
            StatusCode::BAD_REQUEST,
            "invalid_topic",
        )
        .await;
        let reply = send(
            http_client()
                .get(format!("{url}/consume"))
                .query(&[("topic", name)]),
        )
        .await;
        f.refused(
            &format!("consume {name:?}"),
            reply,
            StatusCode::BAD_REQUEST,
            "invalid_topic",
        )
        .await;
    }
    // The longest valid name is fine.
    let ok = "y".repeat(249);
    let (status, body) = produce(&url, &json!({"topic": ok, "payload": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for (path, code) in [("a%20b", "invalid_topic"), (long.as_str(), "invalid_topic")] {
        let reply = request(Method::GET, &format!("{url}/topics/{path}"), None).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), Some(code), "{path}");
    }

    // Partition counts out of range.
    for partitions in [json!(0), json!(1025), json!(-1), json!("3")] {
        let reply = send(
            http_client()
                .post(format!("{url}/topics"))
                .json(&json!({"name": "n", "partitions": partitions})),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{partitions}: {}",
            reply.text
        );
        assert!(
            matches!(
                reply.error_code(),
                Some("invalid_partition" | "invalid_request")
            ),
            "{partitions}: {}",
            reply.text
        );
    }
    let reply = send(
        http_client()
            .post(format!("{url}/topics"))
            .json(&json!({"name": "n", "partitions": 2, "replicas": 3})),
    )
    .await;
    assert_eq!(
        reply.error_code(),
        Some("invalid_request"),
        "{}",
        reply.text
    );
    let (_, topics) = testkit::get_json(&format!("{url}/topics")).await;
    assert!(
        !topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "n"),
        "{topics}"
    );
}

#[tokio::test]
async fn oversized_keys_payloads_and_bodies() {
    let f = Fixture::new().await;
    let url = f.url().to_owned();
    let too_large = StatusCode::PAYLOAD_TOO_LARGE;

    let key = "k".repeat(4097);
    let reply = f
        .produce_json(&json!({"topic": "v", "key": key, "payload": 1}))
        .await;
    f.refused("a 4097-byte key", reply, too_large, "key_too_large")
        .await;
    let reply = f
        .produce_json(&json!({"records": [
            {"topic": "v", "payload": 1},
            {"topic": "v", "key": key, "payload": 1},
        ]}))
        .await;
    f.refused(
        "a batch with a 4097-byte key",
        reply,
        too_large,
        "key_too_large",
    )
    .await;

    // The payload limit counts the payload's JSON text: a string of 1 MiB
    // characters is 1 MiB + 2 bytes.
    let big = "p".repeat(1024 * 1024);
    let reply = f.produce_json(&json!({"topic": "v", "payload": big})).await;
    f.refused(
        "a payload over 1 MiB",
        reply,
        too_large,
        "payload_too_large",
    )
    .await;

    // A body over --max-request-bytes.
    let huge = json!({"records": [
        {"topic": "v", "payload": "q".repeat(800 * 1024)},
        {"topic": "v", "payload": "q".repeat(800 * 1024)},
        {"topic": "v", "payload": "q".repeat(800 * 1024)},
    ]});
    let reply = f.produce_json(&huge).await;
    f.refused(
        "a body over the request limit",
        reply,
        too_large,
        "body_too_large",
    )
    .await;

    // Just inside the limits is accepted.
    let key = "k".repeat(4096);
    let payload = "p".repeat(1024 * 1024 - 2);
    let (status, body) =
        produce(&url, &json!({"topic": "v", "key": key, "payload": payload})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn bad_consume_queries() {
    let f = Fixture::new().await;
    let url = f.url().to_owned();
    let bad = StatusCode::BAD_REQUEST;
    let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let consume = |query: Vec<(String, String)>| {
        let url = url.clone();
        async move { send(http_client().get(format!("{url}/consume")).query(&query)).await }
    };

    // Partition 0 of v holds some records: find its HWM.
    let (_, read) = consume_with(&url, &[("topic", "v".into())]).await;
    let hwm = read["high_water_mark"].as_u64().unwrap();
    let above = (hwm + 1).to_string();
    let reply = consume(q(&[("topic", "v"), ("offset", &above)])).await;
    assert_eq!(reply.json["high_water_mark"], hwm, "{}", reply.text);
    assert_eq!(reply.json["log_start_offset"], 0, "{}", reply.text);
    f.refused("offset above the HWM", reply, bad, "offset_out_of_range")
        .await;

    for (what, query, code) in [
        (
            "negative offset",
            q(&[("topic", "v"), ("offset", "-1")]),
            "invalid_query",
        ),
        (
            "offset not a number",
            q(&[("topic", "v"), ("offset", "x")]),
            "invalid_query",
        ),
        (
            "partition not a number",
            q(&[("topic", "v"), ("partition", "abc")]),
            "invalid_query",
        ),
        (
            "partition out of range",
            q(&[("topic", "v"), ("partition", "3")]),
            "invalid_partition",
        ),
        (
            "max_records 0",
            q(&[("topic", "v"), ("max_records", "0")]),
            "invalid_request",
        ),
        (
            "max_records too large",
            q(&[("topic", "v"), ("max_records", "10001")]),
            "invalid_request",
        ),
        (
            "max_bytes 0",
            q(&[("topic", "v"), ("max_bytes", "0")]),
            "invalid_request",
        ),
        (
            "wait_ms too long",
            q(&[("topic", "v"), ("wait_ms", "60001")]),
            "invalid_request",
        ),
        (
            "wait_ms not a number",
            q(&[("topic", "v"), ("wait_ms", "soon")]),
            "invalid_query",
        ),
        (
            "unknown parameter",
            q(&[("topic", "v"), ("colour", "red")]),
            "invalid_query",
        ),
        ("missing topic", q(&[("partition", "0")]), "invalid_query"),
    ] {
        let reply = consume(query).await;
        f.refused(what, reply, bad, code).await;
    }
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let f = Fixture::new().await;
    let url = f.url().to_owned();
    for path in [
        "/nope",
        "/internal/whatever",
        "/topics/v/segments",
        "/groups/g/nope",
        "/static/nope.js",
    ] {
        let reply = request(Method::GET, &format!("{url}{path}"), None).await;
        f.refused(
            &format!("GET {path}"),
            reply,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    // Known paths with another method.
    for path in ["/topics/v/partitions", "/groups/g/join"] {
        let reply = request(Method::GET, &format!("{url}{path}"), None).await;
        f.refused(
            &format!("GET {path}"),
            reply,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }

    // Trailing slashes are the same routes.
    let reply = request(Method::GET, &format!("{url}/topics/"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json["topics"],
        json!([{"name": "v", "partitions": 3}])
    );
    // /metrics is Prometheus text.
    let reply = request(Method::GET, &format!("{url}/metrics"), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .content_type()
            .unwrap_or_default()
            .starts_with("application/openmetrics-text")
    );
    assert!(reply.text.contains("# EOF"), "{}", reply.text);
}

#[tokio::test]
async fn wrong_methods_answer_json_405() {
    let f = Fixture::new().await;
    let url = f.url().to_owned();
    for (method, path) in [
        (Method::GET, "/produce"),
        (Method::PUT, "/produce"),
        (Method::POST, "/consume"),
        (Method::DELETE, "/topics"),
        (Method::PUT, "/topics/v"),
        (Method::DELETE, "/topics/v"),
        (Method::POST, "/health"),
        (Method::POST, "/metadata/leader"),
    ] {
        let what = format!("{method} {path}");
        let body = Some(("application/json", b"{}".to_vec()));
        let reply = request(method, &format!("{url}{path}"), body).await;
        f.refused(
            &what,
            reply,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }
}

#[tokio::test]
async fn a_refused_batch_creates_no_topic() {
    let f = Fixture::new().await;
    // Record 0 is valid and names a new topic; record 1 has a partition out
    // of range for `v`. The request is refused; the new topic must not exist.
    let reply = f
        .produce_json(&json!({"records": [
            {"topic": "brand-new", "payload": 1},
            {"topic": "v", "partition": 7, "payload": 1},
        ]}))
        .await;
    f.refused(
        "a batch whose second record has a bad partition",
        reply,
        StatusCode::BAD_REQUEST,
        "invalid_partition",
    )
    .await;
}

#[tokio::test]
async fn offsets_below_the_log_start_are_out_of_range() {
    // Segments of 4 KiB, so that 40 records of ~300 bytes fill several.
    let mut cluster = Cluster::builder()
        .extra_args(["--segment-bytes", "4096"])
        .start()
        .await;
    let url = cluster.broker().url().to_owned();
    let (status, body) = post_json(
        &format!("{url}/topics"),
        &json!({"name": "old", "partitions": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for i in 0..40 {
        let (status, body) = produce(
            &url,
            &json!({"topic": "old", "payload": {"i": i, "pad": "z".repeat(300)}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // Delete the oldest segments as retention would, while the node is down.
    cluster.broker_mut().terminate().await;
    let dir = cluster.broker().data_dir().join("topics/old/0");
    let config = LogConfig {
        segment_bytes: 4096,
        retention: Retention {
            max_bytes: Some(4096),
            max_age: None,
        },
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(&dir, config).expect("open the log");
    let deleted = log
        .apply_retention(40, std::time::SystemTime::now())
        .expect("retention");
    assert!(!deleted.is_empty(), "retention deleted nothing");
    let start = log.start_offset();
    assert!(start > 0);
    drop(log);
    cluster.broker_mut().restart().await;
    cluster
        .wait_for_leader(std::time::Duration::from_secs(10), |l| l.id == "broker")
        .await;

    let (status, described) = testkit::describe_topic(&url, "old").await;
    assert_eq!(status, StatusCode::OK, "{described}");
    assert_eq!(described["partitions"][0]["log_start_offset"], start);
    assert_eq!(described["partitions"][0]["high_water_mark"], 40);
    for offset in [0, start - 1] {
        let (status, body) = consume_with(
            &url,
            &[("topic", "old".into()), ("offset", offset.to_string())],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "offset {offset}: {body}");
        assert_eq!(body["error"], "offset_out_of_range");
        assert_eq!(body["log_start_offset"], start);
        assert_eq!(body["high_water_mark"], 40);
    }
    let (status, body) = consume_with(
        &url,
        &[("topic", "old".into()), ("offset", start.to_string())],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"][0]["offset"], start);
    assert_eq!(body["records"][0]["payload"]["i"], start);
}

#[tokio::test]
async fn every_produce_error_says_whether_anything_was_written() {
    let cluster = Cluster::builder()
        .extra_args(["--auto-create-topics", "false"])
        .start()
        .await;
    let url = format!("{}/produce", cluster.broker().url());
    for (what, body) in [
        ("malformed JSON", b"{".to_vec()),
        ("missing payload", br#"{"topic": "t"}"#.to_vec()),
        (
            "bad topic name",
            br#"{"topic": "a b", "payload": 1}"#.to_vec(),
        ),
        (
            "unknown topic",
            br#"{"topic": "absent", "payload": 1}"#.to_vec(),
        ),
    ] {
        let reply = post_raw(&url, body).await;
        assert!(reply.status.is_client_error(), "{what}: {}", reply.text);
        assert_eq!(reply.json["written"], "no", "{what}: {}", reply.text);
    }
}

fn batch_of(values: &[&[u8]]) -> partition_log::BatchBuilder {
    let mut builder = partition_log::BatchBuilder::new(1_000);
    for value in values {
        builder.push(1_000, None, value);
    }
    builder
}

#[tokio::test]
async fn bad_binary_batches_are_refused_and_store_nothing() {
    let f = Fixture::new().await;
    let url = f.url();
    let good = batch_of(&[b"1", b"2"]).finish();

    let wrong_type = send(
        http_client()
            .post(format!("{url}/produce/batch?topic=v&partition=0"))
            .header("content-type", "application/json")
            .body(good.clone()),
    )
    .await;
    f.refused(
        "a batch sent as JSON",
        wrong_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x40;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("an empty body", Vec::new()),
        ("a truncated batch", good[..good.len() - 1].to_vec()),
        ("a bit flip (CRC mismatch)", flipped),
        ("two batches", [good.clone(), good.clone()].concat()),
        (
            "a producer id without a sequence",
            batch_of(&[b"1"]).producer(5, -1).finish(),
        ),
        (
            "sequences past the largest",
            batch_of(&[b"1", b"2"]).producer(5, i32::MAX).finish(),
        ),
    ];
    for (what, body) in cases {
        let reply = produce_batch(url, "v", 0, body).await;
        assert_eq!(reply.json["written"], "no", "{what}: {}", reply.text);
        f.refused(what, reply, StatusCode::BAD_REQUEST, "invalid_batch")
            .await;
    }

    let big = vec![b'x'; 1024 * 1024 + 1];
    let reply = produce_batch(url, "v", 0, batch_of(&[b"1", &big]).finish()).await;
    f.refused(
        "an oversize payload",
        reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let reply = produce_batch(url, "v", 7, good.clone()).await;
    f.refused(
        "a partition out of range",
        reply,
        StatusCode::BAD_REQUEST,
        "invalid_partition",
    )
    .await;
    let reply = produce_batch(url, "..%2Fx", 0, good.clone()).await;
    f.refused(
        "a bad topic name",
        reply,
        StatusCode::BAD_REQUEST,
        "invalid_topic",
    )
    .await;
    let reply = produce_batch(url, "new", 3, good).await;
    f.refused(
        "a partition out of range of a topic to create",
        reply,
        StatusCode::BAD_REQUEST,
        "invalid_partition",
    )
    .await;
}
