//! Finding the leader and talking to it. [`YakClient`] is the handle on a
//! cluster; every call goes through [`YakClient::call`], which resolves the
//! leader, follows `not_leader` answers (a bounded number of redirects) and
//! retries retryable failures with exponential backoff and jitter, bounded
//! by a deadline.
//!
//! Invariants: the leader cache (shared by every clone of a client) is
//! only written by this module and its child — set from a metadata answer
//! or a redirect, and forgotten whenever an answer says the leader may have
//! moved, so the next attempt discovers it again; an error whose write
//! outcome is unknown stays unknown across later attempts
//! (`after_unknown`); the waits between the attempts of one call add up to
//! at most [`ClientConfig::deadline`].
//!
//! The rest of the client is built on [`YakClient::call`]: topic
//! administration (`admin`), raw reads (`fetch`); batches over the binary
//! port are the child module `produce_batch`. What goes over the wire
//! ([`Body`], [`Decode`]) is in `wire`, the retry policy and access
//! ([`ClientConfig`]) in `config`; both are re-exported here.

mod produce_batch;

use std::{
    net::IpAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::Method;
use serde_json::Value;

use crate::{
    config::http_client,
    error::{ClientError, Result},
    model::LeaderInfo,
    tcp::Connection,
};

pub use crate::{
    config::{ClientConfig, read_ca},
    wire::{BatchFetch, Body, Decode},
};

/// Redirects followed within one attempt.
const MAX_REDIRECTS: usize = 4;

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
    /// The connection to the leader's binary port (see `produce_batch`).
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
                    status: Some(307),
                    body,
                    ..
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
                .header(reqwest::header::CONTENT_TYPE, body.content_type())
                .body(body.bytes());
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
                Some(status),
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
    fn needs_a_bootstrap_url() {
        assert!(YakClient::new(Vec::<String>::new()).is_err());
        assert!(YakClient::new(["/"]).is_err(), "an empty URL is no URL");
        let client = YakClient::new(["http://localhost:5001/"]).unwrap();
        assert_eq!(client.bootstrap(), ["http://localhost:5001"]);
    }
}
