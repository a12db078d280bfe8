//! The replication protocol between nodes: the three `/internal/…`
//! requests, their parameters and answers, and the client side of each.
//!
//! - `POST /internal/replicate?…` (leader → in-sync follower): the exact
//!   batch bytes of a round, with the leader's epoch, the offset they start
//!   at (`prev`) and the leader's HWM. The same request travels as a
//!   `Replicate` frame on the follower's binary port when it has one
//!   ([`stream`]): one connection per follower, several rounds in flight.
//! - `GET /internal/fetch?…` (follower → leader): catch-up reads from the
//!   follower's log end; an in-sync follower gets an empty answer.
//! - `GET /internal/epoch_end?…` (follower → leader): KIP-101's "end offset
//!   for epoch", asked before a follower accepts data from a new leader.
//!
//! Refusals are `409` with the usual JSON error body (on the binary port,
//! that body alone), whose `error` is one of the [`Refusal`] codes.
//!
//! A leading partition pushes rounds through [`ReplicaLink`], which
//! [`NodeLink`] implements over both transports; the partition tests link
//! partitions in one process through it.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use yak_protocol::ErrorCode;
pub use yak_protocol::ReplicateParams;

mod stream;
pub use stream::StreamClient;

/// Header carrying the cluster token on internal requests.
pub const TOKEN_HEADER: &str = "x-yak-cluster-token";
/// Fetch answer headers.
pub const HWM_HEADER: &str = "x-yak-hwm";
pub const LOG_END_HEADER: &str = "x-yak-log-end";
pub const IN_SYNC_HEADER: &str = "x-yak-in-sync";
pub const LOG_START_HEADER: &str = "x-yak-log-start";

/// Where a node is reached: its advertised URL and, unless it has none,
/// its binary port (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    pub url: String,
    pub tcp: Option<String>,
}

/// Node id → addresses of every live node, refreshed by the node.
#[derive(Debug, Clone, Default)]
pub struct Peers(Arc<RwLock<HashMap<String, PeerAddr>>>);

impl Peers {
    pub fn url(&self, id: &str) -> Option<String> {
        self.0.read().unwrap().get(id).map(|a| a.url.clone())
    }

    pub fn addr(&self, id: &str) -> Option<PeerAddr> {
        self.0.read().unwrap().get(id).cloned()
    }

    /// Every live node's id, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.0.read().unwrap().keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn replace(&self, peers: HashMap<String, PeerAddr>) {
        *self.0.write().unwrap() = peers;
    }
}

/// What a follower learns of its leader's log with each round or fetch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderPosition {
    pub hwm: u64,
    /// The leader's first stored offset: the follower deletes below it.
    pub log_start: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchParams {
    pub topic: String,
    pub partition: u32,
    pub epoch: u64,
    pub offset: u64,
    /// The fetching follower's node id.
    pub replica: String,
    pub max_bytes: usize,
    pub wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochEndParams {
    pub topic: String,
    pub partition: u32,
    /// The asker's latest log epoch: the epoch whose end it wants.
    pub epoch: u32,
    /// The epoch of the leadership the asker follows. Only the node that
    /// leads at it answers: a node named by a lease it can no longer use
    /// (restarted with a short log) would have followers cut their logs to
    /// its end, below the committed HWM.
    pub leader_epoch: u64,
}

/// KIP-101 answer: the largest epoch `<=` the one asked about that the
/// leader's log has, and where it ends. Both `None` if it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEnd {
    pub epoch: Option<u32>,
    pub end_offset: Option<u64>,
}

/// A follower's answer to a replicate request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicated {
    /// The follower's log end after the append.
    pub end: u64,
}

/// Why a node refused a replication request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request's epoch is older than one the node has seen.
    #[error("stale epoch; the current epoch is {current}")]
    StaleEpoch { current: u64 },
    /// The follower has not yet truncated its log for this leader's epoch.
    #[error("not yet in sync with this epoch (log ends at {end})")]
    NeedsTruncation { end: u64 },
    /// The data does not continue the follower's log, which ends at `end`.
    #[error("non-contiguous append; the log ends at {end}")]
    NonContiguous { end: u64 },
    /// The node asked is not the leader at that epoch.
    #[error("not the leader at this epoch")]
    NotLeader,
    /// The fetch starts below the leader's log start (retention deleted
    /// those records): the follower starts its log again at `start`.
    #[error("below the leader's log start {start}")]
    BelowLogStart { start: u64 },
}

impl Refusal {
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::StaleEpoch { .. } => ErrorCode::StaleEpoch,
            Refusal::NeedsTruncation { .. } => ErrorCode::NeedsTruncation,
            Refusal::NonContiguous { .. } => ErrorCode::NonContiguous,
            Refusal::NotLeader => ErrorCode::NotLeader,
            Refusal::BelowLogStart { .. } => ErrorCode::BelowLogStart,
        }
    }

    /// Rebuilds a refusal from a 409 JSON body.
    pub(crate) fn from_body(body: &serde_json::Value) -> Option<Self> {
        let field = |k: &str| body.get(k).and_then(serde_json::Value::as_u64);
        Some(match ErrorCode::parse(body.get("error")?.as_str()?)? {
            ErrorCode::StaleEpoch => Refusal::StaleEpoch {
                current: field("epoch")?,
            },
            ErrorCode::NeedsTruncation => Refusal::NeedsTruncation { end: field("end")? },
            ErrorCode::NonContiguous => Refusal::NonContiguous { end: field("end")? },
            ErrorCode::NotLeader => Refusal::NotLeader,
            ErrorCode::BelowLogStart => Refusal::BelowLogStart {
                start: field("start")?,
            },
            _ => return None,
        })
    }
}

/// Why a replication call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("refused: {0}")]
    Refused(Refusal),
    /// Nothing listens there (the peer is down): no point retrying soon.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    #[error("call failed: {0}")]
    Failed(String),
}

impl From<reqwest::Error> for CallError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_connect() {
            CallError::Unreachable(e.to_string())
        } else {
            CallError::Failed(e.to_string())
        }
    }
}

/// The client side of the protocol. Cheap to clone; connections are pooled
/// and reused across partitions and rounds.
#[derive(Debug, Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    token: Option<String>,
}

/// How a leading partition sends a round to a follower.
pub trait ReplicaLink: Send + Sync + std::fmt::Debug {
    /// Sends a round to `peer`. The request leaves in call order: it is
    /// queued when this is called, not when the future is first polled.
    fn replicate(
        &self,
        peer: &PeerAddr,
        params: ReplicateParams,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Replicated, CallError>>;

    /// Whether `peer` takes rounds in the order they were sent, so that a
    /// leader may send the next before the last is answered.
    fn ordered(&self, peer: &PeerAddr) -> bool;
}

/// A node's link to its followers: the streamed binary link to those with
/// a binary port, `POST /internal/replicate` (one round at a time) to
/// those without (a node with `--tls-cert` has none).
#[derive(Debug, Clone)]
pub struct NodeLink {
    pub http: PeerClient,
    pub stream: StreamClient,
}

impl ReplicaLink for NodeLink {
    fn replicate(
        &self,
        peer: &PeerAddr,
        params: ReplicateParams,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Replicated, CallError>> {
        match &peer.tcp {
            Some(addr) => Box::pin(self.stream.replicate(addr, params, body, timeout)),
            None => {
                let (http, url) = (self.http.clone(), peer.url.clone());
                Box::pin(async move { http.replicate(&url, &params, body, timeout).await })
            }
        }
    }

    fn ordered(&self, peer: &PeerAddr) -> bool {
        peer.tcp.is_some()
    }
}

/// What a fetch returned.
#[derive(Debug)]
pub enum Fetched {
    /// The follower is in the ISR: data comes by push.
    InSync { leader: LeaderPosition },
    /// Batches starting at the requested offset (maybe none yet).
    Data {
        bytes: Bytes,
        leader: LeaderPosition,
    },
}

impl PeerClient {
    /// A client that presents `token`, connects from `source_address` if
    /// given, and trusts the extra CAs `ca_pem` for `https://` peers
    /// (`--tls-ca`).
    pub fn new(
        token: Option<String>,
        source_address: Option<IpAddr>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .local_address(source_address)
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64);
        for certificate in ca_pem
            .map(reqwest::Certificate::from_pem_bundle)
            .transpose()?
            .unwrap_or_default()
        {
            builder = builder.add_root_certificate(certificate);
        }
        Ok(Self {
            http: builder.build()?,
            token,
        })
    }

    fn with_token(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.header(TOKEN_HEADER, token),
            None => request,
        }
    }

    pub async fn replicate(
        &self,
        url: &str,
        params: &ReplicateParams,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Replicated, CallError> {
        let request = self
            .http
            .post(format!("{url}/internal/replicate"))
            .query(params)
            .header("content-type", "application/octet-stream")
            .body(body)
            .timeout(timeout);
        let response = self.with_token(request).send().await?;
        Ok(decode(response).await?.json().await?)
    }

    pub async fn fetch(&self, url: &str, params: &FetchParams) -> Result<Fetched, CallError> {
        let request = self
            .http
            .get(format!("{url}/internal/fetch"))
            .query(params)
            .timeout(Duration::from_millis(params.wait_ms) + Duration::from_secs(5));
        let response = decode(self.with_token(request).send().await?).await?;
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let hwm = header(HWM_HEADER)
            .ok_or_else(|| CallError::Failed("fetch answer without an HWM".to_owned()))?;
        let leader = LeaderPosition {
            hwm,
            log_start: header(LOG_START_HEADER).unwrap_or(0),
        };
        if header(IN_SYNC_HEADER) == Some(1) {
            return Ok(Fetched::InSync { leader });
        }
        Ok(Fetched::Data {
            bytes: response.bytes().await?,
            leader,
        })
    }

    pub async fn epoch_end(
        &self,
        url: &str,
        params: &EpochEndParams,
    ) -> Result<EpochEnd, CallError> {
        let request = self
            .http
            .get(format!("{url}/internal/epoch_end"))
            .query(params)
            .timeout(Duration::from_secs(2));
        let response = self.with_token(request).send().await?;
        Ok(decode(response).await?.json().await?)
    }
}

/// Passes 2xx answers through; turns 409s into [`Refusal`]s and anything
/// else into a failure.
async fn decode(response: reqwest::Response) -> Result<reqwest::Response, CallError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status == reqwest::StatusCode::CONFLICT
        && let Some(refusal) = Refusal::from_body(&body)
    {
        return Err(CallError::Refused(refusal));
    }
    Err(CallError::Failed(format!("{status}: {body}")))
}

/// Compares a presented cluster token with the configured one in constant
/// time. No configured token accepts everything.
pub fn token_matches(configured: Option<&str>, presented: Option<&[u8]>) -> bool {
    match configured {
        None => true,
        Some(expected) => {
            presented.is_some_and(|p| constant_time_eq::constant_time_eq(p, expected.as_bytes()))
        }
    }
}
