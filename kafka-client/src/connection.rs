//! One TCP connection to a node's Kafka listener, shared by the producer
//! and the consumer: the request header, the size-prefixed frames, the
//! correlation-id check, and requests sent ahead of their answers (Kafka
//! answers one connection's requests in the order they came). Also asking
//! a node for Metadata and reading the partitions' leaders from it.
//!
//! Invariants: a connection's answers are read in the order its requests
//! were sent, each checked against the correlation id it was sent with;
//! any error leaves the connection in an unknown state, and callers drop
//! it, never reuse it.

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    messages::{
        ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
        metadata_request::MetadataRequestTopic,
    },
    protocol::{Decodable, Encodable, StrBytes},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::KafkaError;

/// The Metadata version spoken (the broker serves it: `docs/kafka.md`).
const METADATA_VERSION: i16 = 12;

/// How to open a connection and what it accepts.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    /// Sent in every request header.
    pub client_id: &'static str,
    /// Timeout of connecting.
    pub connect_timeout: Duration,
    /// Connections are made from this address when set (the nemesis front
    /// proxies tell clients from nodes by it).
    pub local_address: Option<IpAddr>,
    /// Largest answer accepted: a size prefix above it is a broken stream,
    /// not a reason to allocate.
    pub max_answer: usize,
}

/// A request sent and not yet answered.
#[derive(Debug)]
struct Pending {
    correlation: i32,
    api: ApiKey,
    version: i16,
}

/// One connection to a node's Kafka listener.
pub(crate) struct Connection {
    addr: SocketAddr,
    stream: TcpStream,
    client_id: &'static str,
    max_answer: usize,
    correlation: i32,
    /// Oldest first: the order the answers come in.
    pending: VecDeque<Pending>,
    /// Where answers are read. Each answer is split off it; once every
    /// piece of an answer is dropped, the next read reuses the memory
    /// (`BytesMut::reserve` reclaims a unique allocation) instead of
    /// mapping fresh pages for every large Fetch answer.
    buffer: BytesMut,
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr, dial: &Dial) -> Result<Self, KafkaError> {
        let connect = |message: String| KafkaError::Connect { addr, message };
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| connect(e.to_string()))?;
        if let Some(local) = dial.local_address {
            socket
                .bind(SocketAddr::new(local, 0))
                .map_err(|e| connect(e.to_string()))?;
        }
        let stream = tokio::time::timeout(dial.connect_timeout, socket.connect(addr))
            .await
            .map_err(|_| connect("timed out".to_owned()))?
            .map_err(|e| connect(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| connect(e.to_string()))?;
        Ok(Self {
            addr,
            stream,
            client_id: dial.client_id,
            max_answer: dial.max_answer,
            correlation: 0,
            pending: VecDeque::new(),
            buffer: BytesMut::new(),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests sent whose answers have not been read.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Sends one request and reads its answer, within `timeout` for both.
    /// Only for a connection with nothing pending (the answer read must be
    /// this request's).
    pub(crate) async fn call<Q: Encodable, A: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Q,
        timeout: Duration,
    ) -> Result<A, KafkaError> {
        debug_assert!(self.pending.is_empty(), "call with answers pending");
        let frame = self.frame(api, version, request)?;
        let addr = self.addr;
        let exchange = async {
            self.write(&frame).await?;
            self.read_frame().await
        };
        let answer = within(addr, timeout, exchange).await?;
        self.decode(api, answer)
    }

    /// Sends one request without waiting for its answer; [`Self::receive`]
    /// reads it after the answers to the requests sent before it.
    pub(crate) async fn send<Q: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Q,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let frame = self.frame(api, version, request)?;
        within(self.addr, timeout, self.write(&frame)).await
    }

    /// Reads the answer to the oldest request sent and not yet answered,
    /// which must be an `api` request.
    pub(crate) async fn receive<A: Decodable>(
        &mut self,
        api: ApiKey,
        timeout: Duration,
    ) -> Result<A, KafkaError> {
        let answer = within(self.addr, timeout, self.read_frame()).await?;
        self.decode(api, answer)
    }

    /// The request as a frame: size, header, body. Numbers it and records
    /// it as pending.
    fn frame<Q: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Q,
    ) -> Result<BytesMut, KafkaError> {
        let correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut frame, api.request_header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|e| KafkaError::Encode {
                api,
                message: e.to_string(),
            })?;
        let size = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.correlation = correlation;
        self.pending.push_back(Pending {
            correlation,
            api,
            version,
        });
        Ok(frame)
    }

    async fn write(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(frame).await
    }

    /// One size-prefixed answer, read straight into the connection's
    /// buffer (no zeroing, no growing: the size is known) and split off it.
    async fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let size = self.stream.read_u32().await? as usize;
        if size > self.max_answer {
            return Err(std::io::Error::other(format!("an answer of {size} bytes")));
        }
        debug_assert!(self.buffer.is_empty());
        self.buffer.reserve(size);
        while self.buffer.len() < size {
            let left = (size - self.buffer.len()) as u64;
            if (&mut self.stream)
                .take(left)
                .read_buf(&mut self.buffer)
                .await?
                == 0
            {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buffer.split_to(size).freeze())
    }

    /// Decodes an answer to the oldest pending request, which must be an
    /// `api` request with the answer's correlation id.
    fn decode<A: Decodable>(&mut self, api: ApiKey, mut answer: Bytes) -> Result<A, KafkaError> {
        let addr = self.addr;
        let bad = |message: String| KafkaError::BadAnswer { addr, message };
        let Some(pending) = self.pending.pop_front() else {
            return Err(bad("an answer to no request".to_owned()));
        };
        if pending.api != api {
            return Err(bad(format!(
                "read as {api:?} the answer to a {:?} request",
                pending.api
            )));
        }
        let header = ResponseHeader::decode(
            &mut answer,
            pending.api.response_header_version(pending.version),
        )
        .map_err(|e| bad(e.to_string()))?;
        if header.correlation_id != pending.correlation {
            return Err(bad(format!(
                "correlation id {} answers request {}",
                header.correlation_id, pending.correlation
            )));
        }
        A::decode(&mut answer, pending.version).map_err(|e| bad(e.to_string()))
    }
}

/// `io` within `timeout`; either failing loses the answer.
async fn within<T>(
    addr: SocketAddr,
    timeout: Duration,
    io: impl Future<Output = std::io::Result<T>>,
) -> Result<T, KafkaError> {
    tokio::time::timeout(timeout, io)
        .await
        .map_err(|_| KafkaError::Lost {
            addr,
            message: format!("no answer within {timeout:?}"),
        })?
        .map_err(|e| KafkaError::Lost {
            addr,
            message: e.to_string(),
        })
}

/// Asks the node at `addr`, on a connection of its own, for `topic`'s
/// Metadata, and returns each partition's leader it names.
pub(crate) async fn leaders(
    addr: SocketAddr,
    dial: &Dial,
    topic: &str,
    timeout: Duration,
) -> Result<HashMap<i32, SocketAddr>, KafkaError> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_owned())),
        ))]));
    let answer: MetadataResponse = Connection::open(addr, dial)
        .await?
        .call(ApiKey::Metadata, METADATA_VERSION, &request, timeout)
        .await?;
    let brokers: HashMap<i32, String> = answer
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let mut leaders = HashMap::new();
    for found in answer
        .topics
        .iter()
        .filter(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
    {
        for p in found.partitions.iter().filter(|p| p.error_code == 0) {
            if let Some(leader) = brokers
                .get(&p.leader_id.0)
                .and_then(|a| a.parse::<SocketAddr>().ok())
            {
                leaders.insert(p.partition_index, leader);
            }
        }
    }
    Ok(leaders)
}
