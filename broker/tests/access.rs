//! Access control and TLS across real processes (`docs/security.md`):
//! the client token guards every client endpoint and the cluster token
//! every `/internal/…` endpoint (401 with `WWW-Authenticate: Bearer`
//! without the right one), replication works with tokens and over TLS, a
//! follower with a wrong cluster token never gets data nor joins the ISR,
//! the binary port takes a leader's rounds only after a `Hello` with the
//! cluster token, and the TLS port refuses plain HTTP.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::{
    Cluster, NodeKind, NodeOptions, NodeProcess, Reply, StatusCode, hold_for, http_client, send,
    try_send, wait_for, wait_for_identical_logs,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use yak_protocol::{ReplicateParams, Request, Response, codec};

const CLIENT_TOKEN: &str = "client-secret";
const CLUSTER_TOKEN: &str = "cluster-secret";
const WAIT: Duration = Duration::from_secs(15);

/// Sends `method url` (JSON `body` if any) with `Authorization: Bearer`
/// `token` (none if `None`).
async fn call(method: Method, url: &str, body: Option<&Value>, token: Option<&str>) -> Reply {
    let mut request = http_client().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    send(request).await
}

fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.text
    );
    assert_eq!(reply.error_code(), Some("unauthorized"), "{what}");
    assert!(reply.json["message"].is_string(), "{what}: {}", reply.text);
    let challenge = reply
        .headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap());
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer")),
        "{what}: WWW-Authenticate is {challenge:?}"
    );
}

async fn produce_with_token(url: &str, topic: &str, n: usize) {
    for i in 0..n {
        let body = json!({"topic": topic, "partition": 0, "payload": {"i": i}});
        let reply = call(
            Method::POST,
            &format!("{url}/produce"),
            Some(&body),
            Some(CLIENT_TOKEN),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

fn tokened() -> testkit::ClusterBuilder {
    Cluster::builder()
        .client_token(CLIENT_TOKEN)
        .extra_args(["--cluster-token", CLUSTER_TOKEN])
}

#[tokio::test]
async fn tokens_guard_every_endpoint_and_replication_still_works() {
    let cluster = tokened().followers(1).start().await;
    let leader = cluster.broker().url().to_owned();
    let follower = &cluster.followers()[0];

    // Data to read, replicated with the cluster token set.
    produce_with_token(&leader, "t", 20).await;
    let log = wait_for_identical_logs(&[cluster.broker(), follower], "t", 0, WAIT).await;
    assert!(!log.is_empty(), "nothing was replicated");

    // Bodies for other topics: the authorized calls store something.
    let produce = json!({"topic": "v", "payload": 1});
    let create = json!({"name": "u"});
    let client_endpoints: [(Method, &str, Option<&Value>); 11] = [
        (Method::POST, "/produce", Some(&produce)),
        (Method::POST, "/produce/batch?topic=v&partition=0", None),
        (Method::GET, "/consume?topic=t", None),
        (Method::GET, "/topics", None),
        (Method::POST, "/topics", Some(&create)),
        (Method::GET, "/topics/t", None),
        (Method::GET, "/metadata/leader", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/stats", None),
        (Method::POST, "/session", None),
        (Method::GET, "/no-such-route", None),
    ];
    for (method, path, body) in client_endpoints.iter().cloned() {
        let url = format!("{leader}{path}");
        for token in [None, Some("wrong"), Some(CLUSTER_TOKEN)] {
            let reply = call(method.clone(), &url, body, token).await;
            assert_unauthorized(&reply, &format!("{method} {path} with {token:?}"));
            if path.starts_with("/produce") {
                assert_eq!(reply.json["written"], "no", "{}", reply.text);
            }
        }
        let reply = call(method.clone(), &url, body, Some(CLIENT_TOKEN)).await;
        assert_ne!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            reply.text
        );
    }
    // The event stream: refused without a token, open with it.
    let events = format!("{leader}/events");
    let response = http_client().get(&events).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = http_client()
        .get(&events)
        .bearer_auth(CLIENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);

    // Probes and the dashboard shell need no token.
    for path in ["/health", "/ready", "/", "/leader", "/static/yak.js"] {
        let reply = call(Method::GET, &format!("{leader}{path}"), None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }

    // The dashboard's session cookie opens the client endpoints.
    let reply = call(
        Method::POST,
        &format!("{leader}/session"),
        None,
        Some(CLIENT_TOKEN),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    let cookie = reply.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |c: String| {
        http_client()
            .get(format!("{leader}/stats"))
            .header("cookie", c)
    };
    assert_eq!(send(with_cookie(pair)).await.status, StatusCode::OK);
    let forged = with_cookie("yak_session=wrong".to_owned());
    assert_unauthorized(&send(forged).await, "a forged session cookie");

    // Internal endpoints: the cluster token in its header, nothing else.
    let internal: [(Method, String); 3] = [
        (
            Method::POST,
            "/internal/replicate?topic=t&partition=0&epoch=0&prev=0&hwm=0&leader=x".to_owned(),
        ),
        (
            Method::GET,
            "/internal/fetch?topic=t&partition=0&epoch=1&offset=0&replica=x&max_bytes=10&wait_ms=0"
                .to_owned(),
        ),
        (
            Method::GET,
            "/internal/epoch_end?topic=t&partition=0&epoch=1&leader_epoch=1".to_owned(),
        ),
    ];
    for (method, path) in &internal {
        let url = format!("{}{path}", follower.url());
        let request = |token: Option<&str>| {
            let mut r = http_client().request(method.clone(), &url).body(Vec::new());
            if let Some(token) = token {
                r = r.header("x-yak-cluster-token", token);
            }
            r
        };
        assert_unauthorized(
            &send(request(None)).await,
            &format!("{path} without a token"),
        );
        assert_unauthorized(
            &send(request(Some("wrong"))).await,
            &format!("{path}, wrong token"),
        );
        assert_unauthorized(
            &send(request(Some(CLIENT_TOKEN))).await,
            &format!("{path} with the client token"),
        );
        let bearer = request(None).bearer_auth(CLUSTER_TOKEN);
        assert_unauthorized(&send(bearer).await, &format!("{path}, token as bearer"));
        let reply = send(request(Some(CLUSTER_TOKEN))).await;
        assert_ne!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{path}: {}",
            reply.text
        );
    }
    // A real question with the right token gets a real answer from the
    // leader at that epoch, and only from it.
    let epoch = cluster
        .wait_for_leader(WAIT, |l| l.id == "broker")
        .await
        .epoch;
    let ask = |node: &str| {
        let url =
            format!("{node}/internal/epoch_end?topic=t&partition=0&epoch=1&leader_epoch={epoch}");
        send(
            http_client()
                .get(url)
                .header("x-yak-cluster-token", CLUSTER_TOKEN),
        )
    };
    let reply = ask(&leader).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        reply.json["end_offset"].as_u64().is_some(),
        "{}",
        reply.text
    );
    let reply = ask(follower.url()).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert_eq!(reply.json["error"], "not_leader", "{}", reply.text);

    // Nothing above changed the data: the logs are as they were.
    let after = wait_for_identical_logs(&[cluster.broker(), follower], "t", 0, WAIT).await;
    assert!(after == log, "a refused request changed the log");
}

/// Sends `requests` on a new connection to `addr` and returns the error
/// codes (or `"replicated"`) of the answers, until the node closes it.
async fn exchange(addr: &str, requests: &[Request]) -> Vec<String> {
    let stream = TcpStream::connect(addr).await.expect("connecting");
    let mut framed = Framed::new(stream, codec(1 << 20));
    for (id, request) in requests.iter().enumerate() {
        framed
            .send(request.encode(id as u64))
            .await
            .expect("sending");
    }
    let mut codes = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(WAIT, framed.next()).await {
        let (_, response) = Response::decode(frame.expect("a frame").freeze()).expect("an answer");
        codes.push(match response {
            Response::Error { body } => {
                let body: Value = serde_json::from_slice(&body).expect("a JSON error body");
                body["error"].as_str().expect("a code").to_owned()
            }
            other => format!("{other:?}"),
        });
        if codes.len() == requests.len() {
            break;
        }
    }
    codes
}

#[tokio::test]
async fn the_binary_port_takes_rounds_only_with_the_cluster_token() {
    let cluster = tokened().followers(1).start().await;
    produce_with_token(cluster.broker().url(), "t", 10).await;
    let follower = &cluster.followers()[0];
    let before = wait_for_identical_logs(&[cluster.broker(), follower], "t", 0, WAIT).await;
    let epoch = cluster
        .wait_for_leader(WAIT, |l| l.id == "broker")
        .await
        .epoch;
    // A round that would continue the follower's log, if it were taken.
    let round = Request::Replicate {
        params: ReplicateParams {
            topic: "t".into(),
            partition: 0,
            epoch,
            prev: 10,
            hwm: 10,
            log_start: 0,
            leader: "broker".into(),
        },
        batches: Bytes::from_static(b"not a batch"),
    };
    let hello = |token: &str| Request::Hello {
        token: token.to_owned(),
    };
    let addr = follower.tcp_addr();
    // Without a Hello, or with the client token, the round is refused and
    // the connection closed.
    assert_eq!(
        exchange(&addr, std::slice::from_ref(&round)).await,
        ["unauthorized"]
    );
    assert_eq!(
        exchange(&addr, &[hello(CLIENT_TOKEN), round.clone()]).await,
        ["Ready", "unauthorized"]
    );
    // With the cluster token it reaches the partition, which checks it (here
    // it refuses bytes that are no batch) like `/internal/replicate`.
    let answers = exchange(&addr, &[hello(CLUSTER_TOKEN), round]).await;
    assert_eq!(answers[0], "Ready");
    assert_ne!(answers[1], "unauthorized", "{answers:?}");
    assert_eq!(
        follower.log_bytes("t", 0),
        before,
        "the follower's log is intact"
    );
}

#[tokio::test]
async fn follower_with_a_wrong_cluster_token_gets_no_data() {
    let cluster = tokened().start().await;
    let leader = cluster.broker();
    let intruder = NodeProcess::start(
        NodeOptions::new(NodeKind::Follower, cluster.redis().url(), cluster.name())
            .id("intruder")
            .args(["--cluster-token", "not-the-token"]),
    )
    .await;
    produce_with_token(leader.url(), "t", 10).await;
    // It keeps trying (and failing) to fetch: the leader's log grows, the
    // intruder's stays empty and the ISR stays the leader alone.
    let isr = || async {
        let url = format!("{}/topics/t", leader.url());
        let reply = send(leader.authorized(http_client().get(url))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json["partitions"][0]["isr"].clone()
    };
    hold_for(
        "the intruder getting nothing",
        Duration::from_secs(3),
        || async { intruder.log_bytes("t", 0).is_empty() && isr().await == json!(["broker"]) },
    )
    .await;
    assert!(!leader.log_bytes("t", 0).is_empty());
    assert!(
        intruder.health().await.is_some(),
        "the intruder ran all along"
    );
}

#[tokio::test]
async fn a_tls_cluster_replicates_and_refuses_plain_http() {
    let cluster = Cluster::builder().followers(1).tls().start().await;
    let leader = cluster.broker();
    assert!(leader.url().starts_with("https://"), "{}", leader.url());
    let info = cluster.leader_info().await.expect("a leader");
    assert!(
        info.url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
        "{info:?}"
    );

    for i in 0..20 {
        let body = json!({"topic": "t", "partition": 0, "payload": {"i": i}});
        let reply = call(
            Method::POST,
            &format!("{}/produce", leader.url()),
            Some(&body),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let follower = &cluster.followers()[0];
    let log = wait_for_identical_logs(&[leader, follower], "t", 0, WAIT).await;
    assert!(!log.is_empty());
    // The follower serves what it replicated, over TLS too.
    let read = wait_for("the follower to serve 20 records", WAIT, || async {
        let url = format!("{}/consume?topic=t&max_records=100", follower.url());
        let reply = send(http_client().get(url)).await;
        (reply.json["records"].as_array().map(Vec::len) == Some(20)).then_some(reply.json)
    })
    .await;
    assert_eq!(read["records"][19]["payload"]["i"], 19);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = format!("http://{}/health", leader.addr());
    match try_send(http_client().get(&plain)).await {
        Err(_) => {}
        Ok(reply) => panic!("plain HTTP got an answer: {} {}", reply.status, reply.text),
    }
    assert!(
        leader.health().await.is_some(),
        "the node still serves HTTPS"
    );
}

/// The dashboard and the API carry the same security headers as the UIs;
/// a node with demo controls may also connect to `yak up`'s control origin.
#[tokio::test]
async fn every_answer_carries_the_content_security_policy() {
    let cluster = Cluster::builder()
        .extra_args(["--demo-control-url", "http://127.0.0.1:5999/"])
        .start()
        .await;
    let leader = cluster.leader().await.expect("a leader");
    for path in ["/", "/health", "/no-such-path"] {
        let reply = send(http_client().get(format!("{}{path}", leader.url()))).await;
        let header = |name: &str| {
            reply
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let policy = header("content-security-policy");
        assert!(policy.contains("script-src 'self';"), "{path}: {policy:?}");
        assert!(
            policy.contains("connect-src 'self' http://127.0.0.1:5999;"),
            "{path}: {policy:?}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
}
