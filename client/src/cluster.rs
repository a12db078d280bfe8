//! Finding the leader and talking to it: every call goes through
//! [`YakClient::call`], which resolves the leader, follows `not_leader`
//! answers (a bounded number of redirects) and retries retryable failures
//! with exponential backoff and jitter, bounded by a deadline.

use std::{
    net::IpAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use bytes::Bytes;
use yak_protocol::{Request, Response};

use crate::{
    error::{ClientError, Result},
    model::{Consumed, Fetch, LeaderInfo, ProducedBatch, TopicConfig, TopicDetail, TopicSummary},
    tcp::Connection,
};

/// Redirects followed within one attempt.
const MAX_REDIRECTS: usize = 4;

/// How the client retries, and how it proves who it is.
#[derive(Clone)]
pub struct ClientConfig {
    /// Give up retrying a call after this long.
    pub deadline: Duration,
    pub min_backoff: Duration,
    /// Longest wait between retries. Short, because during a failover the
    /// new leader is usually known a fraction of a second after a retry
    /// starts waiting: a long wait adds directly to the unavailability.
    pub max_backoff: Duration,
    /// Timeout of one HTTP request (long polls add their wait).
    pub request_timeout: Duration,
    /// Sent as `Authorization: Bearer <token>` on every request, for nodes
    /// started with `--client-token`.
    pub token: Option<String>,
    /// PEM certificates of extra CAs to trust for `https://` nodes (see
    /// [`read_ca`]); the usual public roots are trusted as well.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Send binary batches ([`Producer::send_records`](crate::Producer::send_records))
    /// over the leader's binary produce port when it has one, else (and
    /// when false) over HTTP.
    pub tcp: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            request_timeout: Duration::from_secs(10),
            token: None,
            tls_ca_pem: None,
            tcp: true,
        }
    }
}

// By hand, so that the token never reaches a log line.
impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("deadline", &self.deadline)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("request_timeout", &self.request_timeout)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls_ca_pem", &self.tls_ca_pem.as_ref().map(Vec::len))
            .field("tcp", &self.tcp)
            .finish()
    }
}

impl ClientConfig {
    /// The same retry policy with `other`'s token and CA: for a second
    /// client of the same cluster with other deadlines.
    pub fn with_access_of(self, other: &ClientConfig) -> Self {
        Self {
            token: other.token.clone(),
            tls_ca_pem: other.tls_ca_pem.clone(),
            ..self
        }
    }
}

/// Reads a PEM file of CA certificates for [`ClientConfig::tls_ca_pem`].
pub fn read_ca(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| ClientError::Config(format!("reading the CA file {}: {e}", path.display())))
}

/// The HTTP client every call goes through: no automatic redirects (the
/// client follows `not_leader` itself), the token as a default header,
/// the extra CAs trusted.
fn http_client(config: &ClientConfig, local_address: Option<IpAddr>) -> Result<reqwest::Client> {
    let invalid = |e: &dyn std::fmt::Display| ClientError::Config(e.to_string());
    let mut builder = reqwest::Client::builder()
        .local_address(local_address)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(1))
        // Below the servers' keep-alive (75 s by default), so an idle
        // connection is dropped here before the server closes it.
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    if let Some(token) = &config.token {
        let mut value = reqwest::header::HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|e| invalid(&format!("the token is not a valid header value: {e}")))?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        builder = builder.default_headers(headers);
    }
    if let Some(pem) = &config.tls_ca_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid(&format!("the CA file holds no usable certificate: {e}")))?;
        if certificates.is_empty() {
            return Err(invalid(&"the CA file holds no certificate"));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| invalid(&e))
}

/// What a `/metadata/leader` answer says to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// The leader is at this URL.
    Leader(String),
    /// The cluster has no leader right now; ask again later.
    NoLeader,
}

/// Reads a metadata answer (pure, so it is tested without a cluster).
pub fn discover(info: &LeaderInfo) -> Discovery {
    match &info.leader_url {
        Some(url) => Discovery::Leader(url.trim_end_matches('/').to_owned()),
        None => Discovery::NoLeader,
    }
}

/// The leader as last found: its URL and, if it has one, its binary
/// produce port.
#[derive(Debug, Clone)]
struct Leader {
    url: String,
    tcp: Option<String>,
}

/// A handle on a YAK cluster. Cheap to clone; clones share the leader
/// found and the connection to its binary port.
#[derive(Debug, Clone)]
pub struct YakClient {
    http: reqwest::Client,
    bootstrap: Arc<Vec<String>>,
    leader: Arc<RwLock<Option<Leader>>>,
    tcp: Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>,
    local_address: Option<IpAddr>,
    config: ClientConfig,
}

impl YakClient {
    /// A client that finds the leader through any of `bootstrap` (node URLs).
    pub fn new(bootstrap: impl IntoIterator<Item = impl Into<String>>) -> Result<Self> {
        Self::with_config(bootstrap, ClientConfig::default())
    }

    pub fn with_config(
        bootstrap: impl IntoIterator<Item = impl Into<String>>,
        config: ClientConfig,
    ) -> Result<Self> {
        let bootstrap: Vec<String> = bootstrap
            .into_iter()
            .map(|u| u.into().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if bootstrap.is_empty() {
            return Err(ClientError::Config("no bootstrap URLs".to_owned()));
        }
        Ok(Self {
            http: http_client(&config, None)?,
            bootstrap: Arc::new(bootstrap),
            leader: Arc::default(),
            tcp: Arc::default(),
            local_address: None,
            config,
        })
    }

    /// The same client, with its connections bound to the local address
    /// `ip` (e.g. one 127.0.0.x per client, so that a proxy in front of the
    /// nodes can tell clients apart).
    pub fn with_local_address(mut self, ip: IpAddr) -> Result<Self> {
        self.http = http_client(&self.config, Some(ip))?;
        self.local_address = Some(ip);
        Ok(self)
    }

    pub fn bootstrap(&self) -> &[String] {
        &self.bootstrap
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The leader URL last found, if any.
    pub fn cached_leader(&self) -> Option<String> {
        self.leader.read().unwrap().as_ref().map(|l| l.url.clone())
    }

    fn set_leader(&self, url: String, tcp: Option<String>) {
        *self.leader.write().unwrap() = Some(Leader { url, tcp });
    }

    fn forget_leader(&self) {
        *self.leader.write().unwrap() = None;
    }

    /// Asks the bootstrap nodes (and the nodes they list) who leads.
    pub async fn leader_info(&self) -> Result<LeaderInfo> {
        let mut last = ClientError::NoLeader("no node answered".to_owned());
        let mut urls: Vec<String> = self.cached_leader().into_iter().collect();
        urls.extend(self.bootstrap.iter().cloned());
        let mut i = 0;
        while i < urls.len() {
            let url = urls[i].clone();
            i += 1;
            match self
                .request::<LeaderInfo>(&url, Method::GET, "/metadata/leader", None)
                .await
            {
                Ok(info) => {
                    for node in &info.nodes {
                        if !urls.contains(&node.url) {
                            urls.push(node.url.clone());
                        }
                    }
                    if info.leader_url.is_some() {
                        return Ok(info);
                    }
                    last = ClientError::NoLeader(format!("{url} knows no leader"));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The leader's URL, discovering it if needed.
    pub async fn leader_url(&self) -> Result<String> {
        Ok(self.leader().await?.url)
    }

    async fn leader(&self) -> Result<Leader> {
        if let Some(leader) = self.leader.read().unwrap().clone() {
            return Ok(leader);
        }
        let info = self.leader_info().await?;
        match discover(&info) {
            Discovery::Leader(url) => {
                self.set_leader(url.clone(), info.leader_tcp.clone());
                Ok(Leader {
                    url,
                    tcp: info.leader_tcp,
                })
            }
            Discovery::NoLeader => Err(ClientError::NoLeader(
                "the cluster has no leader".to_owned(),
            )),
        }
    }

    /// Sends one request to the leader, following redirects and retrying
    /// retryable failures until the deadline. `retry` decides whether a
    /// retryable error may be retried (producers that are not idempotent
    /// must not retry writes of unknown outcome).
    pub async fn call<T: Decode>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Body>,
        timeout: Option<Duration>,
        retry: impl Fn(&ClientError) -> bool,
    ) -> Result<T> {
        self.retrying(
            || self.attempt(&method, path_and_query, body, timeout),
            retry,
        )
        .await
    }

    /// Stores one record batch (storage format) in `topic`/`partition`:
    /// over the leader's binary port when it has one and
    /// [`ClientConfig::tcp`] allows, else `POST /produce/batch`. Retried
    /// like [`call`](Self::call).
    pub(crate) async fn produce_batch(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
        retry: impl Fn(&ClientError) -> bool,
    ) -> Result<ProducedBatch> {
        let body = Body::batch(batch);
        let path = format!(
            "/produce/batch?topic={}&partition={partition}",
            encode(topic)
        );
        let attempt = || async {
            match self.leader().await?.tcp {
                Some(addr) if self.config.tcp => {
                    self.produce_over_tcp(&addr, topic, partition, body.bytes.clone())
                        .await
                }
                _ => self.attempt(&Method::POST, &path, Some(&body), None).await,
            }
        };
        self.retrying(attempt, retry).await
    }

    async fn produce_over_tcp(
        &self,
        addr: &str,
        topic: &str,
        partition: u32,
        batch: Bytes,
    ) -> Result<ProducedBatch> {
        let transport = |message: String| ClientError::Transport {
            url: format!("tcp://{addr}"),
            message,
        };
        let connection = self.tcp_connection(addr).await.map_err(transport)?;
        let request = Request::Produce {
            topic: topic.to_owned(),
            partition,
            batch,
        };
        let answer = connection.call(request, self.config.request_timeout).await;
        let error = match answer {
            Ok(Response::Stored {
                offset,
                count,
                epoch,
            }) => {
                return Ok(ProducedBatch {
                    partition,
                    offset,
                    count,
                    epoch: Some(epoch),
                });
            }
            Ok(Response::Error { status, body }) => match reqwest::StatusCode::from_u16(status) {
                Ok(status) => ClientError::from_answer(status, &body),
                Err(_) => transport(format!("an answer with status {status}")),
            },
            Ok(Response::Ready) => transport("a Ready answer to a produce".to_owned()),
            Err(message) => transport(message),
        };
        if error.leader_may_have_moved() {
            self.forget_leader();
        }
        Err(error)
    }

    /// The shared connection to `addr`, opened if there is none (or the
    /// one there is went away or leads elsewhere).
    async fn tcp_connection(&self, addr: &str) -> std::result::Result<Arc<Connection>, String> {
        let mut cached = self.tcp.lock().await;
        if let Some(connection) = cached.as_ref()
            && connection.addr() == addr
            && connection.is_open()
        {
            return Ok(Arc::clone(connection));
        }
        let connection = Arc::new(
            Connection::open(
                addr,
                self.local_address,
                self.config.token.as_deref(),
                self.config.request_timeout,
            )
            .await?,
        );
        *cached = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the deadline
    /// passes, with exponential backoff between attempts.
    async fn retrying<T, F, Fut>(
        &self,
        attempt: F,
        retry: impl Fn(&ClientError) -> bool,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_total_delay(Some(self.config.deadline))
            .without_max_times()
            .build();
        let mut unknown = None;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) => e.after_unknown(&mut unknown),
            };
            if !(error.is_retryable() && retry(&error)) {
                return Err(error);
            }
            match backoff.next() {
                Some(delay) => {
                    tracing::debug!(?delay, "retrying after: {error}");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            }
        }
    }

    /// One attempt: find the leader, follow up to [`MAX_REDIRECTS`] redirects.
    async fn attempt<T: Decode>(
        &self,
        method: &Method,
        path_and_query: &str,
        body: Option<&Body>,
        timeout: Option<Duration>,
    ) -> Result<T> {
        let mut url = self.leader().await?.url;
        for _ in 0..MAX_REDIRECTS {
            let result = self
                .request_with_timeout(&url, method.clone(), path_and_query, body, timeout)
                .await;
            match result {
                Err(ClientError::Api {
                    status: 307, body, ..
                }) => match body.get("leader_url").and_then(Value::as_str) {
                    Some(next) => {
                        url = next.trim_end_matches('/').to_owned();
                        self.set_leader(url.clone(), None);
                    }
                    None => {
                        self.forget_leader();
                        return Err(ClientError::NoLeader(
                            "redirect without a leader".to_owned(),
                        ));
                    }
                },
                Err(e) => {
                    if e.leader_may_have_moved() {
                        self.forget_leader();
                    }
                    return Err(e);
                }
                ok => return ok,
            }
        }
        self.forget_leader();
        Err(ClientError::NoLeader("too many redirects".to_owned()))
    }

    async fn request<T: Decode>(
        &self,
        url: &str,
        method: Method,
        path_and_query: &str,
        body: Option<&Body>,
    ) -> Result<T> {
        self.request_with_timeout(url, method, path_and_query, body, None)
            .await
    }

    async fn request_with_timeout<T: Decode>(
        &self,
        url: &str,
        method: Method,
        path_and_query: &str,
        body: Option<&Body>,
        timeout: Option<Duration>,
    ) -> Result<T> {
        let full = format!("{url}{path_and_query}");
        let mut request = self
            .http
            .request(method, &full)
            .timeout(timeout.unwrap_or(self.config.request_timeout));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, body.content_type)
                .body(body.bytes.clone());
        }
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: url.to_owned(),
            message: e.to_string(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(transport)?;
        let decode = |message: String| ClientError::Decode {
            url: url.to_owned(),
            message,
        };
        if status.is_success() {
            return T::decode(&headers, bytes).map_err(decode);
        }
        Err(ClientError::from_answer(status, &bytes))
    }

    /// Every topic with its partition count.
    pub async fn topics(&self) -> Result<Vec<TopicSummary>> {
        #[derive(serde::Deserialize)]
        struct Topics {
            topics: Vec<TopicSummary>,
        }
        let topics: Topics = self
            .call(Method::GET, "/topics", None, None, |_| true)
            .await?;
        Ok(topics.topics)
    }

    /// Creates a topic; `Err` with code `topic_exists` if it exists.
    pub async fn create_topic(&self, name: &str, partitions: Option<u32>) -> Result<TopicSummary> {
        self.create_topic_with(name, partitions, &TopicConfig::default())
            .await
    }

    /// Creates a topic with its own retention rule (what `config` leaves
    /// out is the leader's default).
    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: Option<u32>,
        config: &TopicConfig,
    ) -> Result<TopicSummary> {
        let mut request = serde_json::json!({ "name": name, "partitions": partitions });
        if let (Some(object), Ok(serde_json::Value::Object(config))) =
            (request.as_object_mut(), serde_json::to_value(config))
        {
            object.extend(config);
        }
        let body = Body::json(&request);
        self.call(Method::POST, "/topics", Some(&body), None, |e| {
            e.is_not_written()
        })
        .await
    }

    /// A topic's partitions as the leader sees them (ISR, follower lag).
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDetail> {
        let path = format!("/topics/{}", encode(name));
        self.call(Method::GET, &path, None, None, |_| true).await
    }

    /// One read of committed records, long-polling up to `wait`. Reads
    /// the stored batches (`GET /consume/batch`) and decodes them here.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        wait: Duration,
    ) -> Result<Fetch> {
        let path = format!(
            "/consume/batch?topic={}&partition={partition}&offset={offset}&max_records={max_records}&wait_ms={}",
            encode(topic),
            wait.as_millis()
        );
        let timeout = self.config.request_timeout + wait;
        let read: BatchFetch = self
            .call(Method::GET, &path, None, Some(timeout), |_| true)
            .await?;
        let mut records = Vec::new();
        'batches: for batch in partition_log::batch::batches(&read.batches) {
            let batch = batch.map_err(|e| ClientError::Decode {
                url: path.clone(),
                message: e.to_string(),
            })?;
            for record in batch.records() {
                let record = record.map_err(|e| ClientError::Decode {
                    url: path.clone(),
                    message: e.to_string(),
                })?;
                if record.offset < offset {
                    continue;
                }
                if records.len() == max_records {
                    break 'batches;
                }
                records.push(Consumed::from_record(&record));
            }
        }
        let next_offset = records.last().map_or(offset, |r: &Consumed| r.offset + 1);
        Ok(Fetch {
            records,
            next_offset,
            high_water_mark: read.high_water_mark,
            log_start_offset: read.log_start_offset,
        })
    }
}

/// How the body of a successful answer becomes a value: JSON for every
/// `Deserialize` type; record batches for [`BatchFetch`].
pub trait Decode: Sized {
    fn decode(
        headers: &reqwest::header::HeaderMap,
        body: bytes::Bytes,
    ) -> std::result::Result<Self, String>;
}

impl<T: DeserializeOwned> Decode for T {
    fn decode(
        _: &reqwest::header::HeaderMap,
        body: bytes::Bytes,
    ) -> std::result::Result<Self, String> {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }
}

/// A `GET /consume/batch` answer: the stored batches and the partition's
/// state from the headers.
#[derive(Debug)]
pub struct BatchFetch {
    pub batches: bytes::Bytes,
    pub high_water_mark: u64,
    pub log_start_offset: u64,
}

impl Decode for BatchFetch {
    fn decode(
        headers: &reqwest::header::HeaderMap,
        body: bytes::Bytes,
    ) -> std::result::Result<Self, String> {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("missing or bad header {name}"))
        };
        Ok(Self {
            batches: body,
            high_water_mark: number("yak-high-water-mark")?,
            log_start_offset: number("yak-log-start-offset")?,
        })
    }
}

/// A request body, encoded once: retries and redirects resend the same
/// bytes.
#[derive(Debug, Clone)]
pub struct Body {
    bytes: bytes::Bytes,
    content_type: &'static str,
}

impl Body {
    pub fn json(value: &impl serde::Serialize) -> Self {
        // Only maps with non-string keys fail to serialize; request bodies
        // are structs and `json!` values.
        let json = serde_json::to_vec(value).expect("a request body serializes to JSON");
        Self {
            bytes: json.into(),
            content_type: "application/json",
        }
    }

    /// A record batch in the storage format, for `POST /produce/batch`.
    pub fn batch(bytes: impl Into<Bytes>) -> Self {
        Self {
            bytes: bytes.into(),
            content_type: BATCH_CONTENT_TYPE,
        }
    }
}

/// The media type of a binary batch body (the node's `/produce/batch`).
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.yak.batch";

/// Percent-encodes a path or query component. Topic names are restricted
/// to `[A-Za-z0-9._-]`, which need none, but callers may pass anything.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(url: Option<&str>) -> LeaderInfo {
        LeaderInfo {
            leader_id: url.map(|_| "b".to_owned()),
            leader_url: url.map(str::to_owned),
            leader_tcp: None,
            epoch: 3,
            lease_ttl_ms: None,
            nodes: Vec::new(),
        }
    }

    #[test]
    fn discovery_reads_metadata() {
        assert_eq!(
            discover(&info(Some("http://h:5001/"))),
            Discovery::Leader("http://h:5001".to_owned())
        );
        assert_eq!(discover(&info(None)), Discovery::NoLeader);
    }

    #[test]
    fn retryable_errors() {
        let api = |status, written: &str| {
            ClientError::from_body(
                status,
                serde_json::json!({"error": "x", "message": "m", "written": written}),
            )
        };
        assert!(api(503, "unknown").is_retryable());
        assert!(!api(503, "unknown").is_not_written());
        assert!(api(503, "no").is_not_written());
        assert!(api(307, "no").is_retryable());
        assert!(!api(400, "").is_retryable());
        assert!(api(400, "").is_not_written(), "a 4xx stores nothing");
        assert!(!api(500, "").is_retryable());
    }

    #[test]
    fn encodes_components() {
        assert_eq!(encode("a.b_c-1"), "a.b_c-1");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn needs_a_bootstrap_url() {
        assert!(YakClient::new(Vec::<String>::new()).is_err());
        assert!(YakClient::new(["/"]).is_err(), "an empty URL is no URL");
        let client = YakClient::new(["http://localhost:5001/"]).unwrap();
        assert_eq!(client.bootstrap(), ["http://localhost:5001"]);
    }
}
