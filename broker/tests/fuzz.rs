//! Property test of the node's HTTP API with bad input, against a real
//! node process (`docs/security.md`): generated malformed and oversize
//! JSON, wrong types, bad topic names (`../x` and friends), bad partitions
//! and offsets, garbage on the wire and clients that send their headers a
//! byte at a time. Every answer must be a 4xx JSON error
//! `{"error", "message"}` (a produce error also says `"written": "no"`) —
//! or, for bytes that are not HTTP at all and for slow clients, a closed
//! connection — the node must keep serving, and what it stores must not
//! change: its log files and everything `/consume` shows are compared
//! before and after.
//!
//! `/produce/batch` (binary batches) gets random bytes and bad queries.
//!
//! The cases come from proptest strategies drawn by a deterministic
//! runner, so a failure is reproducible; the failing input is printed.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use proptest::{
    prelude::*,
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use serde_json::{Value, json};
use testkit::{
    Cluster, NodeProcess, Reply, StatusCode, http_client, node_snapshot, post_json, produce,
    slow_client, try_send,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const PARTITIONS: u32 = 3;
const MAX_PAYLOAD: usize = 1024;
const MAX_REQUEST: usize = 64 * 1024;
/// `--http-request-timeout-ms` of the node: slow clients get this long.
const HEAD_TIMEOUT_MS: u64 = 1000;
const CASES: usize = 400;

/// Topic names the API must refuse wherever they appear.
fn bad_topic() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("../x".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("a/b".to_owned()),
        Just("..\\x".to_owned()),
        Just("x\u{0}y".to_owned()),
        Just("ü".to_owned()),
        Just("a b".to_owned()),
        Just("x".repeat(250)),
        "[a-z]{1,8}[/ %?#*:\\\\][a-z]{0,8}",
    ]
}

/// A JSON value of any shape (small).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A produce record that is invalid in at least one way.
fn bad_record() -> impl Strategy<Value = Value> {
    let valid_topic = Just(json!("keep"));
    prop_oneof![
        // A bad topic name, anything else fine.
        (bad_topic(), any_json()).prop_map(|(t, p)| json!({"topic": t, "payload": p})),
        // A partition out of range or of the wrong type.
        (
            valid_topic.clone(),
            prop_oneof![
                (PARTITIONS..=u32::MAX).prop_map(Value::from),
                (i64::MIN..0).prop_map(Value::from),
                Just(json!(u64::MAX)),
                Just(json!(1.5)),
                Just(json!("0")),
                Just(json!([0])),
            ]
        )
            .prop_map(|(t, p)| json!({"topic": t, "payload": 1, "partition": p})),
        // Wrong types where strings and numbers belong.
        (
            prop_oneof![
                Just(json!(1)),
                Just(json!(null)),
                Just(json!(["keep"])),
                Just(json!({}))
            ],
            any_json()
        )
            .prop_map(|(t, p)| json!({"topic": t, "payload": p})),
        (
            valid_topic.clone(),
            any_json().prop_filter("not a string or null", |k| !k.is_string() && !k.is_null())
        )
            .prop_map(|(t, k)| json!({"topic": t, "payload": 1, "key": k})),
        // Missing payload, unknown fields.
        valid_topic.clone().prop_map(|t| json!({"topic": t})),
        ("[a-z]{1,8}", any_json())
            .prop_filter("not a known field", |(k, _)| {
                ![
                    "topic",
                    "payload",
                    "key",
                    "partition",
                    "producer_id",
                    "sequence",
                ]
                .contains(&k.as_str())
            })
            .prop_map(|(k, v)| json!({"topic": "keep", "payload": 1, k: v})),
        // Idempotence fields half set or out of range.
        any::<u64>().prop_map(|id| json!({"topic": "keep", "payload": 1, "producer_id": id})),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(
            |id| json!({"topic": "keep", "payload": 1, "producer_id": id, "sequence": 0})
        ),
        // Oversize payload and key.
        (MAX_PAYLOAD..MAX_PAYLOAD * 4)
            .prop_map(|n| json!({"topic": "keep", "payload": "x".repeat(n)})),
        (4097usize..6000)
            .prop_map(|n| json!({"topic": "keep", "payload": 1, "key": "k".repeat(n)})),
    ]
}

/// A produce body that must be refused whole.
fn bad_produce_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Not JSON, or truncated JSON.
        prop::collection::vec(any::<u8>(), 0..256),
        bad_record().prop_map(|r| {
            let text = r.to_string();
            let cut = text.len() / 2;
            text.as_bytes()[..cut].to_vec()
        }),
        // Well-formed but wrong.
        bad_record().prop_map(|r| r.to_string().into_bytes()),
        any_json()
            .prop_filter("not an object", |v| !v.is_object())
            .prop_map(|v| v.to_string().into_bytes()),
        // A batch with one bad record among good ones: nothing is stored.
        (bad_record(), 0usize..4).prop_map(|(bad, at)| {
            let mut records: Vec<Value> = (0..4)
                .map(|i| json!({"topic": "keep", "payload": i}))
                .collect();
            records.insert(at, bad);
            json!({"records": records}).to_string().into_bytes()
        }),
        Just(br#"{"records": []}"#.to_vec()),
        Just(br#"{"records": {}}"#.to_vec()),
        // Deeply nested.
        (100usize..2000).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
        // Over --max-request-bytes.
        Just(
            format!(
                r#"{{"topic": "keep", "payload": "{}"}}"#,
                "y".repeat(MAX_REQUEST)
            )
            .into_bytes()
        ),
    ]
}

/// A `/consume` query string that is wrong somewhere — or, rarely, one
/// that happens to be valid (an unknown parameter that is empty, a large
/// `max_bytes` within range), which must then read normally.
fn bad_consume_query() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        Just("-1".to_owned()),
        Just("abc".to_owned()),
        Just("1e9".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just(String::new()),
        Just("%00".to_owned()),
        (1_000_000u64..u64::MAX).prop_map(|n| n.to_string()),
    ];
    prop_oneof![
        bad_topic().prop_map(|t| format!("topic={}", encode(&t))),
        number
            .clone()
            .prop_map(|n| format!("topic=keep&partition={n}")),
        number
            .clone()
            .prop_map(|n| format!("topic=keep&offset={n}")),
        number
            .clone()
            .prop_map(|n| format!("topic=keep&max_records={n}")),
        number
            .clone()
            .prop_map(|n| format!("topic=keep&max_bytes={n}")),
        number.prop_map(|n| format!("topic=keep&wait_ms={n}")),
        (PARTITIONS..1000).prop_map(|p| format!("topic=keep&partition={p}")),
        Just("topic=keep&max_records=0".to_owned()),
        Just("topic=keep&max_records=10001".to_owned()),
        Just("topic=keep&wait_ms=60001".to_owned()),
        Just("partition=0".to_owned()),
        Just("topic=absent".to_owned()),
        "[a-z]{1,8}=[a-z0-9]{0,8}".prop_map(|q| format!("topic=keep&{q}")),
        ".{0,40}".prop_map(|q| format!("topic=keep&{}", encode(&q))),
    ]
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Draws `n` values of `strategy`, reproducibly.
fn draw<S: Strategy>(runner: &mut TestRunner, strategy: S, n: usize) -> Vec<S::Value> {
    (0..n)
        .map(|_| strategy.new_tree(runner).expect("a value").current())
        .collect()
}

/// What the node stores: every partition's log bytes and the snapshot
/// `/topics` + `/consume` give.
async fn stored(node: &NodeProcess) -> (Vec<Vec<u8>>, Value) {
    let logs = (0..PARTITIONS).map(|p| node.log_bytes("keep", p)).collect();
    (logs, node_snapshot(node.url()).await)
}

/// Sends `bytes` on a fresh connection and reads until the server closes
/// it (or `limit` passes): the raw answer.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    answer
}

/// `GET path` sent verbatim on a fresh connection.
async fn raw_get(addr: SocketAddr, path: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(addr, request.as_bytes(), Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in {text:?}"));
    Reply {
        status: StatusCode::from_u16(status).expect("a status"),
        headers: Default::default(),
        text: body.to_owned(),
        json: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

#[tokio::test]
async fn bad_input_gets_json_errors_and_changes_nothing() {
    let cluster = Cluster::builder()
        .extra_args([
            "--max-payload-bytes".to_owned(),
            MAX_PAYLOAD.to_string(),
            "--max-request-bytes".to_owned(),
            MAX_REQUEST.to_string(),
            "--http-request-timeout-ms".to_owned(),
            HEAD_TIMEOUT_MS.to_string(),
        ])
        .start()
        .await;
    let node = cluster.broker();
    let url = node.url().to_owned();
    let (status, body) = post_json(
        &format!("{url}/topics"),
        &json!({"name": "keep", "partitions": PARTITIONS}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for i in 0..30u32 {
        let (status, body) = produce(
            &url,
            &json!({"topic": "keep", "partition": i % PARTITIONS, "payload": {"i": i}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let before = stored(node).await;
    let started = Instant::now();
    let lap = |what: &str| eprintln!("fuzz: {what} done at {:?}", started.elapsed());
    let mut runner = TestRunner::deterministic();

    for body in draw(&mut runner, bad_produce_body(), CASES) {
        let request = http_client()
            .post(format!("{url}/produce"))
            .header("content-type", "application/json")
            .body(body.clone());
        let reply = try_send(request).await.unwrap_or_else(|e| {
            panic!(
                "produce {:?}: no answer: {e}",
                String::from_utf8_lossy(&body)
            )
        });
        let what = format!(
            "produce {:?}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        reply.assert_json_error(&what);
        assert_eq!(reply.json["written"], "no", "{what}: {}", reply.text);
    }

    // The binary batch path: bytes that are not a valid batch, and bad
    // queries.
    let batches = draw(
        &mut runner,
        prop::collection::vec(any::<u8>(), 0..512),
        CASES / 4,
    );
    let queries = [
        "topic=keep&partition=0",
        "topic=keep",
        "topic=../x&partition=0",
        "topic=keep&partition=-1",
        "topic=keep&partition=7",
    ];
    for (i, body) in batches.into_iter().enumerate() {
        let query = queries[i % queries.len()];
        let request = http_client()
            .post(format!("{url}/produce/batch?{query}"))
            .header("content-type", "application/vnd.yak.batch")
            .body(body.clone());
        let what = format!("produce/batch?{query} with {} random bytes", body.len());
        let reply = try_send(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        reply.assert_json_error(&what);
        assert_eq!(reply.json["written"], "no", "{what}: {}", reply.text);
    }
    lap("produce");
    for query in draw(&mut runner, bad_consume_query(), CASES) {
        let reply = try_send(http_client().get(format!("{url}/consume?{query}")))
            .await
            .unwrap_or_else(|e| panic!("consume {query}: no answer: {e}"));
        if reply.status == StatusCode::OK {
            assert!(
                reply.json["records"].is_array(),
                "consume ?{query}: {}",
                reply.text
            );
        } else {
            reply.assert_json_error(&format!("consume ?{query}"));
        }
    }

    lap("consume");
    // Paths go on the wire as written (an HTTP client would resolve
    // `%2E%2E` segments itself).
    let addr = node.addr();
    for name in draw(&mut runner, bad_topic(), 40) {
        // `/topics/` is `/topics`, the list (a trailing slash is ignored).
        if !name.is_empty() {
            let path = format!("/topics/{}", encode(&name));
            raw_get(addr, &path)
                .await
                .assert_json_error(&format!("describe {name:?}"));
        }
        let create = http_client()
            .post(format!("{url}/topics"))
            .json(&json!({"name": name}));
        let reply = try_send(create).await.unwrap();
        reply.assert_json_error(&format!("create {name:?}"));
    }
    // Paths that try to climb out: nothing, or a bad topic name.
    for path in [
        "/topics/..%2F..%2Fetc%2Fpasswd",
        "/topics/%2e%2e",
        "/topics/../../etc/passwd",
        "/../../etc/passwd",
        "/static/../Cargo.toml",
        "/static/%2e%2e/%2e%2e/Cargo.toml",
        "/static/..%2f..%2fCargo.toml",
    ] {
        raw_get(addr, path).await.assert_json_error(path);
    }
    for body in draw(&mut runner, any_json(), 40) {
        let request = http_client()
            .post(format!("{url}/topics"))
            .json(&json!({"name": "keep", "partitions": body}));
        let reply = try_send(request).await.unwrap();
        reply.assert_json_error(&format!("create with partitions {body}"));
    }

    lap("paths and topics");
    // Bytes that are not HTTP: a 4xx status line or a closed connection.
    let garbage: Vec<Vec<u8>> = draw(&mut runner, prop::collection::vec(any::<u8>(), 1..512), 20)
        .into_iter()
        .chain([
            b"GET /health HTTP/9.9\r\n\r\n".to_vec(),
            b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
            format!(
                "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                "a".repeat(128 * 1024)
            )
            .into_bytes(),
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 * 1024)).into_bytes(),
        ])
        .collect();
    // Concurrently: a connection the node cannot parse waits out the
    // head timeout.
    let answers = futures_util::future::join_all(
        garbage
            .iter()
            .map(|bytes| raw_exchange(node.addr(), bytes, Duration::from_secs(5))),
    )
    .await;
    for (bytes, answer) in garbage.iter().zip(answers) {
        let text = String::from_utf8_lossy(&answer);
        let status: Option<u16> = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|t| t.get(..3))
            .and_then(|s| s.parse().ok());
        assert!(
            answer.is_empty() || status.is_some_and(|s| (400..500).contains(&s)),
            "garbage {:?} got {text:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        );
    }

    lap("garbage");
    // Slow clients: headers one byte at a time, never finished. The node
    // cuts each off after the head timeout and serves others meanwhile.
    let slow: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(slow_client(
                node.addr(),
                Duration::from_millis(HEAD_TIMEOUT_MS * 5),
            ))
        })
        .collect();
    for _ in 0..5 {
        assert!(
            node.health().await.is_some(),
            "the node stopped answering while slow clients hung on"
        );
    }
    for task in slow {
        let slow = task.await.expect("slow client");
        assert!(
            slow.cut_off_after >= Duration::from_millis(HEAD_TIMEOUT_MS / 2),
            "cut off too early: {slow:?}"
        );
        assert!(
            slow.answer.is_empty() || slow.answer.starts_with("HTTP/1.1 408"),
            "slow client got {slow:?}"
        );
    }

    lap("slow clients");
    // Still serving, and nothing stored changed.
    assert!(node.health().await.is_some(), "the node stopped serving");
    let after = stored(node).await;
    assert!(after.0 == before.0, "the log files changed");
    assert_eq!(after.1, before.1, "what /topics and /consume show changed");
    eprintln!(
        "fuzz: {CASES} produce, {CASES} consume cases and more in {:?}",
        started.elapsed()
    );
}

/// Sends a keep-alive `GET /health` on `stream` and waits up to `limit`
/// for the start of the answer; true if one came.
async fn health_answered(stream: &mut TcpStream, limit: Duration) -> bool {
    let request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    stream.write_all(request).await.expect("send");
    let mut head = [0u8; 12];
    match tokio::time::timeout(limit, stream.read_exact(&mut head)).await {
        Ok(Ok(_)) => {
            assert!(head.starts_with(b"HTTP/1.1 200"), "answered {head:?}");
            true
        }
        Ok(Err(e)) => panic!("connection failed: {e}"),
        Err(_) => false,
    }
}

/// `--http-max-connections` bounds the connections a node serves at once
/// (per worker thread): the next one waits, unanswered, in the backlog
/// until a held one closes — it is not refused and the node does not fall
/// over. Workers vary with the machine, so the test opens connections
/// until one is left waiting.
#[tokio::test]
async fn connections_past_the_limit_wait_until_one_closes() {
    let cluster = Cluster::builder()
        .extra_args(["--http-max-connections", "1"])
        .start()
        .await;
    let addr = cluster.broker().addr();
    let mut held = Vec::new();
    let mut waiting = None;
    for _ in 0..16 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        if health_answered(&mut stream, Duration::from_secs(2)).await {
            held.push(stream);
        } else {
            waiting = Some(stream);
            break;
        }
    }
    let mut waiting = waiting.unwrap_or_else(|| {
        panic!(
            "{} connections served at once with a limit of 1 per worker",
            held.len()
        )
    });
    assert!(!held.is_empty(), "not even one connection was served");

    drop(held);
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), waiting.read_exact(&mut head))
        .await
        .expect("the waiting connection was not served after the others closed")
        .expect("read");
    assert!(head.starts_with(b"HTTP/1.1 200"), "answered {head:?}");
}
