//! The Kafka listener (`--kafka-listen`): existing Kafka clients (kcat,
//! librdkafka, …) produce to and fetch from YAK. `docs/kafka.md` lists the
//! APIs and versions and what YAK does differently.
//!
//! One module per API group (`metadata`, `produce`, `fetch`, `offsets`,
//! `producer_id`, `topics`, `configs`, `cluster`, `groups`), each a thin adapter over
//! the node: produce goes through the produce service
//! (`produce::store_batch`), reads through the partitions' committed log,
//! exactly like the HTTP API. `codec` frames requests, `records` converts
//! record batches, `sasl` authenticates connections (SASL/PLAIN with the
//! client token); with `--tls-cert` the listener speaks TLS with the HTTP
//! listener's certificate.
//!
//! Invariants:
//! - Requests on one connection are answered in the order they came, as
//!   the protocol requires (a Produce with acks=0 gets no answer); up to
//!   [`IN_FLIGHT`] of them are served at once, so clients that send
//!   produce requests without waiting (librdkafka) overlap their
//!   replication rounds. Everything read before a connection ends is still
//!   answered.
//! - Only the versions in [`SUPPORTED`] are served, and ApiVersions
//!   advertises exactly those; any other version, an unknown API key, a
//!   malformed frame or one over the size cap closes the connection (what
//!   Kafka brokers do), touching nothing else.
//! - Like every YAK server, the listener has a connection limit and an idle
//!   timeout (`ServerArgs`); a TLS handshake has the HTTP request timeout.
//! - With a client token, nothing but ApiVersions and SASL reaches the
//!   dispatcher before the connection authenticated (`sasl`).

mod cluster;
mod codec;
mod configs;
mod fetch;
mod groups;
mod metadata;
mod offsets;
mod produce;
mod producer_id;
pub(crate) mod records;
mod sasl;
mod topics;

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream::FuturesOrdered};
use kafka_protocol::{
    ResponseError,
    messages::{
        ApiKey, ApiVersionsRequest, ApiVersionsResponse, api_versions_response::ApiVersion,
    },
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig};
use tokio_util::{
    codec::{FramedRead, FramedWrite},
    sync::CancellationToken,
};

use crate::node::Node;
use codec::{Frame, FrameError};
use sasl::{Gate, Sasl, SaslError};

/// Requests one connection may have in flight. Each holds its frame, so
/// the bound is also one on a connection's memory.
pub const IN_FLIGHT: usize = 8;

/// The answer to one request, being computed.
type Pending = Pin<Box<dyn Future<Output = Result<Option<Bytes>, ConnectionError>> + Send>>;

/// The APIs served and their version ranges. The maxima stop before
/// versions that need what YAK does not have yet: topic ids (Fetch 13+,
/// Produce 10+), the max-timestamp offset spec (ListOffsets 7+), the
/// new consumer protocol's member epochs (OffsetCommit 9+, OffsetFetch
/// 9+), FindCoordinator's share groups (5+).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
];

fn supports(api: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|&(key, min, max)| key == api && (min..=max).contains(&version))
}

/// The Kafka error code of `e`.
fn code(e: ResponseError) -> i16 {
    e.code()
}

/// The Kafka broker id of a YAK node: Kafka wants an `i32`, YAK names
/// nodes. A stable hash of the name (non-negative), the same on every node.
pub fn broker_id(node_id: &str) -> i32 {
    (crc32c::crc32c(node_id.as_bytes()) & 0x7fff_ffff) as i32
}

/// Accepts connections until `shutdown`; each is served on its own task,
/// over TLS with `tls` (the HTTP listener's configuration, loaded once).
pub async fn serve(
    node: Node,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shutdown: CancellationToken,
) {
    let tls = tls.map(TlsAcceptor::from);
    let serve =
        move |node, stream, idle, shutdown| connection(node, stream, tls.clone(), idle, shutdown);
    crate::listener::accept("kafka listener", node, listener, shutdown, serve).await;
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("unsupported version {version} of {api:?}")]
    Version { api: ApiKey, version: i16 },
    #[error(transparent)]
    Sasl(#[from] SaslError),
    #[error("no TLS handshake within {0:?}")]
    Handshake(Duration),
}

/// One connection: the TLS handshake if the listener has TLS, then its
/// requests.
async fn connection(
    node: Node,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    idle: Duration,
    shutdown: CancellationToken,
) -> Result<(), ConnectionError> {
    let peer = stream.peer_addr().ok();
    let Some(tls) = tls else {
        return requests(node, stream, peer, idle, shutdown).await;
    };
    // As on the HTTP listener, a handshake gets the request timeout.
    let limit = Duration::from_millis(node.config().server.http_request_timeout_ms);
    let stream = tokio::select! {
        stream = tokio::time::timeout(limit, tls.accept(stream)) => {
            stream.map_err(|_| ConnectionError::Handshake(limit))??
        }
        () = shutdown.cancelled() => return Ok(()),
    };
    requests(node, stream, peer, idle, shutdown).await
}

async fn requests<S: AsyncRead + AsyncWrite>(
    node: Node,
    stream: S,
    peer: Option<std::net::SocketAddr>,
    idle: Duration,
    shutdown: CancellationToken,
) -> Result<(), ConnectionError> {
    // A frame holds a whole produce request plus its headers.
    let max_frame = node.config().max_request_bytes + 64 * 1024;
    let mut sasl = Sasl::new(node.config().client_token.clone(), peer);
    let client_host: Arc<str> = peer.map(|p| p.ip().to_string()).unwrap_or_default().into();
    let (read, write) = tokio::io::split(stream);
    let mut frames = FramedRead::new(read, codec::frames(max_frame));
    let mut out = FramedWrite::new(write, tokio_util::codec::BytesCodec::new());
    // Answers in request order, each computed from the moment its frame
    // is read.
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let ended = loop {
        frames
            .decoder_mut()
            .set_max_frame_length(sasl.max_frame(max_frame));
        tokio::select! {
            // Answers first: a full pipeline drains before more is read.
            biased;
            Some(answer) = pending.next() => match answer {
                Ok(Some(response)) => out.send(response).await?,
                Ok(None) => {}
                Err(e) => break Err(e),
            },
            frame = tokio::time::timeout(idle, frames.next()), if pending.len() < IN_FLIGHT => {
                let frame = match frame {
                    // Idle only while nothing is being answered (a long
                    // poll may outlast the idle timeout).
                    Err(_) if !pending.is_empty() => continue,
                    Err(_) | Ok(None) => break Ok(()),
                    Ok(Some(Err(e))) => break Err(e.into()),
                    Ok(Some(Ok(frame))) => frame,
                };
                match sasl.gate(frame.freeze()) {
                    Ok(Gate::Serve(frame)) => {
                        let (node, host) = (node.clone(), Arc::clone(&client_host));
                        pending.push_back(Box::pin(async move { answer(&node, &frame, &host).await }));
                    }
                    Ok(Gate::Answer(response)) => {
                        pending.push_back(Box::pin(std::future::ready(Ok(Some(response)))));
                    }
                    Ok(Gate::Refuse(response, why)) => {
                        pending.push_back(Box::pin(std::future::ready(Ok(Some(response)))));
                        break Err(why.into());
                    }
                    Err(e) => break Err(e.into()),
                }
            }
            () = shutdown.cancelled() => return Ok(()),
        }
    };
    // What was read before the end is still answered, in order.
    while let Some(answer) = pending.next().await {
        if let Some(response) = answer? {
            out.send(response).await?;
        }
    }
    ended
}

/// The answer to one request frame, `None` when the protocol wants none.
async fn answer(
    node: &Node,
    frame: &Frame,
    client_host: &str,
) -> Result<Option<Bytes>, ConnectionError> {
    let (api, version) = (frame.api, frame.version());
    let correlation = frame.header.correlation_id;
    if !supports(api, version) {
        if api == ApiKey::ApiVersions {
            // KIP-511: answer at v0 with the error and our ranges, so the
            // client can retry with a version we have.
            let body = api_versions(code(ResponseError::UnsupportedVersion));
            return Ok(Some(codec::response(api, 0, correlation, &body)?));
        }
        return Err(ConnectionError::Version { api, version });
    }
    let response = match api {
        ApiKey::ApiVersions => {
            frame.body::<ApiVersionsRequest>()?;
            codec::response(api, version, correlation, &api_versions(0))?
        }
        ApiKey::Metadata => {
            let body = metadata::handle(node, frame.body()?, version).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::Produce => {
            let request: kafka_protocol::messages::ProduceRequest = frame.body()?;
            let acks = request.acks;
            let body = produce::handle(node, request).await;
            if acks == 0 {
                return Ok(None);
            }
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::Fetch => {
            let body = fetch::handle(node, frame.body()?).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::ListOffsets => {
            let body = offsets::handle(node, frame.body()?).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::InitProducerId => {
            let body = producer_id::handle(frame.body()?);
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::CreateTopics => {
            let body = topics::handle(node, frame.body()?).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::DescribeConfigs => {
            let body = configs::handle(node, frame.body()?).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::DescribeCluster => {
            let body = cluster::handle(node, frame.body()?);
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::FindCoordinator => {
            let body = groups::find_coordinator(node, frame.body()?, version);
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::JoinGroup => {
            let client = frame.header.client_id.as_deref().unwrap_or_default();
            let body = groups::join(node, frame.body()?, version, client, client_host).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::SyncGroup => {
            let body = groups::sync(node, frame.body()?).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::Heartbeat => {
            let body = groups::heartbeat(node, frame.body()?).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::LeaveGroup => {
            let body = groups::leave(node, frame.body()?, version).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::OffsetCommit => {
            let body = groups::commit(node, frame.body()?).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::OffsetFetch => {
            let body = groups::fetch_offsets(node, frame.body()?, version).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::ListGroups => {
            let body = groups::list(node, frame.body()?).await;
            codec::response(api, version, correlation, &body)?
        }
        ApiKey::DescribeGroups => {
            let body = groups::describe(node, frame.body()?, version).await;
            codec::response(api, version, correlation, &body)?
        }
        _ => return Err(ConnectionError::Version { api, version }),
    };
    Ok(Some(response))
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|&(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::Message;

    use super::*;

    /// Every advertised range is one the protocol crate can encode.
    #[test]
    fn advertised_versions_are_within_the_crates() {
        use kafka_protocol::messages::*;
        let crate_range = |api: ApiKey| match api {
            ApiKey::Produce => ProduceRequest::VERSIONS,
            ApiKey::Fetch => FetchRequest::VERSIONS,
            ApiKey::ListOffsets => ListOffsetsRequest::VERSIONS,
            ApiKey::Metadata => MetadataRequest::VERSIONS,
            ApiKey::ApiVersions => ApiVersionsRequest::VERSIONS,
            ApiKey::CreateTopics => CreateTopicsRequest::VERSIONS,
            ApiKey::InitProducerId => InitProducerIdRequest::VERSIONS,
            ApiKey::SaslHandshake => SaslHandshakeRequest::VERSIONS,
            ApiKey::SaslAuthenticate => SaslAuthenticateRequest::VERSIONS,
            ApiKey::DescribeConfigs => DescribeConfigsRequest::VERSIONS,
            ApiKey::DescribeCluster => DescribeClusterRequest::VERSIONS,
            ApiKey::FindCoordinator => FindCoordinatorRequest::VERSIONS,
            ApiKey::JoinGroup => JoinGroupRequest::VERSIONS,
            ApiKey::SyncGroup => SyncGroupRequest::VERSIONS,
            ApiKey::Heartbeat => HeartbeatRequest::VERSIONS,
            ApiKey::LeaveGroup => LeaveGroupRequest::VERSIONS,
            ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
            ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
            ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
            ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
            other => panic!("{other:?} is not served"),
        };
        for &(api, min, max) in SUPPORTED {
            let range = crate_range(api);
            assert!(range.min <= min && max <= range.max, "{api:?}");
        }
    }

    #[test]
    fn broker_ids_are_stable_and_non_negative() {
        assert_eq!(broker_id("broker-5001"), broker_id("broker-5001"));
        assert_ne!(broker_id("broker-5001"), broker_id("follower-5002"));
        assert!(broker_id("x") >= 0);
    }
}
