//! The harness's HTTP client and helpers for the node API.

use std::time::Duration;

pub use reqwest::StatusCode;
use reqwest::{Method, header::HeaderMap};
use serde_json::Value;

use crate::{HTTP_TIMEOUT, tls};

/// An HTTP reply: status, headers, the body as text and as JSON
/// ([`Value::Null`] if empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// The `Location` header, if any.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The `error` field of a JSON error body.
    pub fn error_code(&self) -> Option<&str> {
        self.json["error"].as_str()
    }

    /// Asserts a 4xx answer with a JSON error body `{"error", "message"}`.
    #[track_caller]
    pub fn assert_json_error(&self, what: &str) {
        assert!(
            self.status.is_client_error(),
            "{what}: expected a 4xx, got {} {}",
            self.status,
            self.text
        );
        assert!(
            self.json["error"].is_string() && self.json["message"].is_string(),
            "{what}: not a JSON error: {} {:?}",
            self.status,
            self.text
        );
    }

    /// The `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }
}

/// A client that never follows redirects (tests check 307 + `Location`),
/// keeps no idle connections (nodes get paused and killed), and times out
/// after [`HTTP_TIMEOUT`]. Cheap; make one per use (a client's pool must
/// not outlive the runtime of one `#[tokio::test]`).
pub fn http_client() -> reqwest::Client {
    http_client_with_timeout(HTTP_TIMEOUT)
}

/// [`http_client`] with another request timeout.
pub fn http_client_with_timeout(timeout: Duration) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0);
    if let Some(ca) = tls::trusted() {
        let certificate =
            reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).expect("the test CA parses");
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().expect("building an HTTP client")
}

/// Sends a request and reads the whole reply.
pub async fn try_send(request: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        headers,
        text,
        json,
    })
}

/// Sends a request; panics on a transport error (connection refused,
/// timeout).
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let description = format!("{request:?}");
    match try_send(request).await {
        Ok(reply) => reply,
        Err(e) => panic!("HTTP request failed: {e} ({description})"),
    }
}

/// A request with `method` to `url` (a full URL), optionally with a raw
/// body and its content type.
pub async fn request(method: Method, url: &str, body: Option<(&str, Vec<u8>)>) -> Reply {
    let mut builder = http_client().request(method, url);
    if let Some((content_type, bytes)) = body {
        builder = builder
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
    }
    send(builder).await
}

/// `GET url` → status and JSON body.
pub async fn get_json(url: &str) -> (StatusCode, Value) {
    let reply = send(http_client().get(url)).await;
    (reply.status, reply.json)
}

/// `POST url` with a JSON body → status and JSON body.
pub async fn post_json(url: &str, body: &Value) -> (StatusCode, Value) {
    let reply = send(http_client().post(url).json(body)).await;
    (reply.status, reply.json)
}

/// `POST url` with raw bytes as `application/json` (for malformed bodies).
pub async fn post_raw(url: &str, body: impl Into<Vec<u8>>) -> Reply {
    request(Method::POST, url, Some(("application/json", body.into()))).await
}

/// `POST {node_url}/topics`; panics unless the topic was created (201).
pub async fn create_topic(node_url: &str, name: &str, partitions: u32) {
    let (status, body) = post_json(
        &format!("{node_url}/topics"),
        &serde_json::json!({"name": name, "partitions": partitions}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "creating {name}: {body}");
}

/// `POST {node}/produce` with `body` (one record or `{"records": [...]}`).
pub async fn produce(node_url: &str, body: &Value) -> (StatusCode, Value) {
    post_json(&format!("{node_url}/produce"), body).await
}

/// `POST {node}/produce/batch?topic=..&partition=..` with `batch` (built
/// with [`partition_log::BatchBuilder`], or deliberately broken) as the
/// binary body.
pub async fn produce_batch(node_url: &str, topic: &str, partition: u32, batch: Vec<u8>) -> Reply {
    let url = format!("{node_url}/produce/batch?topic={topic}&partition={partition}");
    request(
        Method::POST,
        &url,
        Some((yak_protocol::BATCH_CONTENT_TYPE, batch)),
    )
    .await
}

/// `GET {node}/consume?topic=..&partition=..&offset=..`.
pub async fn consume(
    node_url: &str,
    topic: &str,
    partition: u32,
    offset: u64,
) -> (StatusCode, Value) {
    consume_with(
        node_url,
        &[
            ("topic", topic.to_owned()),
            ("partition", partition.to_string()),
            ("offset", offset.to_string()),
        ],
    )
    .await
}

/// `GET {node}/consume` with arbitrary query parameters (URL-encoded).
pub async fn consume_with(node_url: &str, query: &[(&str, String)]) -> (StatusCode, Value) {
    let reply = send(
        http_client()
            .get(format!("{node_url}/consume"))
            .query(query),
    )
    .await;
    (reply.status, reply.json)
}

/// Every committed record of one partition, from its log start to its HWM,
/// reading page by page. Panics on any non-200 reply.
pub async fn consume_all(node_url: &str, topic: &str, partition: u32) -> Vec<Value> {
    let mut records = Vec::new();
    let mut offset = 0u64;
    loop {
        let query = [
            ("topic", topic.to_owned()),
            ("partition", partition.to_string()),
            ("offset", offset.to_string()),
            ("max_records", "10000".to_owned()),
        ];
        let (status, body) = consume_with(node_url, &query).await;
        let start = body["log_start_offset"].as_u64().unwrap_or(0);
        if status == StatusCode::BAD_REQUEST
            && body["error"] == "offset_out_of_range"
            && records.is_empty()
            && offset < start
        {
            offset = start;
            continue;
        }
        assert_eq!(
            status,
            StatusCode::OK,
            "consume {topic}/{partition}@{offset}: {body}"
        );
        let page = body["records"].as_array().cloned().unwrap_or_default();
        let next = body["next_offset"].as_u64().expect("next_offset");
        let hwm = body["high_water_mark"].as_u64().expect("high_water_mark");
        let empty = page.is_empty();
        records.extend(page);
        if next >= hwm || empty {
            return records;
        }
        offset = next;
    }
}

/// `GET {node}/topics/{topic}` → status and JSON body.
pub async fn describe_topic(node_url: &str, topic: &str) -> (StatusCode, Value) {
    get_json(&format!("{node_url}/topics/{topic}")).await
}

/// Everything one node shows of its data: `GET /topics`, and for every
/// topic `GET /topics/{name}` and every committed record of every
/// partition. Two equal snapshots mean nothing was stored in between.
pub async fn node_snapshot(node_url: &str) -> Value {
    let (status, list) = get_json(&format!("{node_url}/topics")).await;
    assert_eq!(status, StatusCode::OK, "GET /topics: {list}");
    let mut topics: Vec<(String, u64)> = list["topics"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| Some((t["name"].as_str()?.to_owned(), t["partitions"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    topics.sort();
    let mut snapshot = serde_json::Map::new();
    for (name, partitions) in &topics {
        let (status, described) = describe_topic(node_url, name).await;
        assert_eq!(status, StatusCode::OK, "GET /topics/{name}: {described}");
        let mut records = Vec::new();
        for p in 0..*partitions as u32 {
            records.push(Value::Array(consume_all(node_url, name, p).await));
        }
        snapshot.insert(
            name.clone(),
            serde_json::json!({"described": described, "records": records}),
        );
    }
    serde_json::json!({"topics": topics, "data": snapshot})
}
