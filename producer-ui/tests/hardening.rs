//! Bad input to the producer UI's server, against a real UI process and a
//! real cluster: huge, broken and random multipart/CSV uploads, malformed
//! JSON to every JSON route, a client that sends its headers a byte at a
//! time. Every answer is a 4xx JSON error, the UI keeps serving, and the
//! cluster stores nothing. Also: the UI reaches a cluster that needs a
//! client token only when given it (`--token`). See `docs/security.md`.

// The shared harness also exports the browser, which these tests skip.
#[allow(unused_imports)]
use std::time::{Duration, Instant};

use proptest::{
    prelude::*,
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use serde_json::json;
use testkit::{
    Cluster, StatusCode, Ui, UiProcess, http_client, node_snapshot, slow_client, try_send,
};

const MAX_UPLOAD: usize = 64 * 1024;
const HEAD_TIMEOUT_MS: u64 = 1000;

/// A multipart body with one part named `name` holding `content`.
fn multipart(boundary: &str, name: &str, content: &[u8], close: bool) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
         filename=\"f.csv\"\r\nContent-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    if close {
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    }
    body
}

/// Upload bodies that must be refused, with their content type.
fn bad_uploads() -> impl Strategy<Value = (String, Vec<u8>)> {
    let form = |b: &str| format!("multipart/form-data; boundary={b}");
    prop_oneof![
        // Over --max-upload-bytes.
        (MAX_UPLOAD + 1..MAX_UPLOAD * 3)
            .prop_map(move |n| (form("b"), multipart("b", "file", &vec![b'a'; n], true))),
        // Random bytes as the whole body.
        prop::collection::vec(any::<u8>(), 0..2048).prop_map(move |bytes| (form("b"), bytes)),
        // A file of random binary bytes (not CSV).
        prop::collection::vec(any::<u8>(), 1..2048)
            .prop_filter("not text", |b| b.contains(&0))
            .prop_map(move |bytes| (form("b"), multipart("b", "file", &bytes, true))),
        // Cut off before the closing boundary.
        "[a-z,\n]{0,200}"
            .prop_map(move |csv| (form("b"), multipart("b", "file", csv.as_bytes(), false))),
        // The wrong boundary, no boundary, not multipart at all.
        "[a-z,\n]{1,200}"
            .prop_map(move |csv| (form("other"), multipart("b", "file", csv.as_bytes(), true))),
        "[a-z,\n]{1,200}".prop_map(|csv| (
            "multipart/form-data".to_owned(),
            multipart("b", "file", csv.as_bytes(), true)
        )),
        "[a-z,\n]{1,200}".prop_map(|csv| ("text/csv".to_owned(), csv.into_bytes())),
        // No `file` field; an empty file.
        "[a-z,\n]{1,200}"
            .prop_map(move |csv| (form("b"), multipart("b", "other", csv.as_bytes(), true))),
        Just((form("b"), multipart("b", "file", b"", true))),
        Just((form("b"), b"--b--\r\n".to_vec())),
    ]
}

/// JSON bodies for the JSON routes that are wrong somewhere.
fn bad_json() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        Just(b"{}".to_vec()),
        Just(br#"{"topic": "../x", "payload": "1"}"#.to_vec()),
        Just(br#"{"topic": 5, "payload": "1"}"#.to_vec()),
        Just(br#"{"topic": "t", "payload": "{", "format": "json"}"#.to_vec()),
        Just(br#"{"topic": "t", "payload": "1", "partition": -1}"#.to_vec()),
        Just(br#"{"upload_id": 999999, "topic": "t"}"#.to_vec()),
        Just(br#"{"upload_id": "x"}"#.to_vec()),
        Just(
            format!(
                r#"{{"topic": "t", "payload": "{}"}}"#,
                "x".repeat(2 * 1024 * 1024)
            )
            .into_bytes()
        ),
    ]
}

fn draw<S: Strategy>(runner: &mut TestRunner, strategy: S, n: usize) -> Vec<S::Value> {
    (0..n)
        .map(|_| strategy.new_tree(runner).expect("a value").current())
        .collect()
}

#[tokio::test]
async fn bad_uploads_and_bodies_get_json_errors_and_send_nothing() {
    let cluster = Cluster::builder().start().await;
    let node = cluster.broker().url().to_owned();
    let before = node_snapshot(&node).await;
    let max = MAX_UPLOAD.to_string();
    let timeout = HEAD_TIMEOUT_MS.to_string();
    let ui = UiProcess::start_with(
        Ui::Producer,
        &[&node],
        &[
            "--max-upload-bytes",
            &max,
            "--http-request-timeout-ms",
            &timeout,
        ],
    )
    .await;
    let url = ui.url().to_owned();
    let mut runner = TestRunner::deterministic();
    let started = Instant::now();

    for (content_type, body) in draw(&mut runner, bad_uploads(), 120) {
        let request = http_client()
            .post(format!("{url}/api/upload"))
            .header("content-type", &content_type)
            .body(body.clone());
        let what = format!(
            "upload ({content_type}, {} bytes) {:?}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(120)])
        );
        let reply = try_send(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        reply.assert_json_error(&what);
    }
    for route in ["/api/send", "/api/send_batch"] {
        for body in draw(&mut runner, bad_json(), 40) {
            let request = http_client()
                .post(format!("{url}{route}"))
                .header("content-type", "application/json")
                .body(body.clone());
            let what = format!(
                "{route} {:?}",
                String::from_utf8_lossy(&body[..body.len().min(120)])
            );
            let reply = try_send(request)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            reply.assert_json_error(&what);
        }
    }
    for path in [
        "/api/jobs/abc",
        "/api/jobs/99999999999999999999",
        "/api/jobs/1/pause",
        "/nope",
    ] {
        let reply = try_send(http_client().get(format!("{url}{path}")))
            .await
            .unwrap();
        reply.assert_json_error(path);
    }

    // A client sending its headers a byte at a time is cut off.
    let addr = url.trim_start_matches("http://").parse().unwrap();
    let slow = slow_client(addr, Duration::from_millis(HEAD_TIMEOUT_MS * 5)).await;
    assert!(
        slow.cut_off_after >= Duration::from_millis(HEAD_TIMEOUT_MS / 2),
        "cut off too early: {slow:?}"
    );
    assert!(
        slow.answer.is_empty() || slow.answer.starts_with("HTTP/1.1 408"),
        "{slow:?}"
    );

    // Still serving; the cluster got nothing.
    let health = try_send(http_client().get(format!("{url}/health")))
        .await
        .unwrap();
    assert_eq!(health.status, StatusCode::OK);
    let jobs = try_send(http_client().get(format!("{url}/api/jobs")))
        .await
        .unwrap();
    assert_eq!(jobs.json["jobs"], json!([]), "{}", jobs.text);
    assert_eq!(
        node_snapshot(&node).await,
        before,
        "the cluster's data changed"
    );
    eprintln!("producer-ui hardening cases took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_ui_reaches_a_guarded_cluster_only_with_the_token() {
    let cluster = Cluster::builder()
        .client_token("ui-secret")
        .extra_args(["--cluster-token", "c"])
        .start()
        .await;
    let node = cluster.broker().url().to_owned();
    let send = |ui: String| async move {
        let body = json!({"topic": "guarded", "payload": "{\"a\": 1}"});
        try_send(http_client().post(format!("{ui}/api/send")).json(&body))
            .await
            .unwrap()
    };
    let with = UiProcess::start_with(Ui::Producer, &[&node], &["--token", "ui-secret"]).await;
    let reply = send(with.url().to_owned()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["offset"], 0, "{}", reply.text);

    let without = UiProcess::start(Ui::Producer, &[&node]).await;
    let reply = send(without.url().to_owned()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert_eq!(reply.error_code(), Some("unauthorized"));
}
