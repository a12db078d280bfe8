//! The streamed leader → follower link: one long-lived connection to each
//! follower's binary port, carrying `Replicate` frames (`yak-protocol`).
//!
//! Several rounds may be in flight on a connection. The follower queues
//! the requests of one connection to its partitions in arrival order, so
//! a round sent after another is appended after it; answers may come back
//! in any order and are matched by request id.
//!
//! Invariants:
//! - A call is queued on the connection when [`StreamClient::replicate`]
//!   is called, so calls to one follower leave in call order.
//! - A connection that fails, or whose answer does not come within a
//!   call's timeout, is given up: every call waiting on it fails (the
//!   leader's retry resends from the follower's log end), and the next
//!   call opens a new one. A late answer is never taken for a newer call.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::{mpsc, oneshot},
};
use tokio_util::codec::{FramedRead, FramedWrite};
use yak_protocol::{ReplicateParams, Request, Response, codec};

use super::{CallError, Refusal, Replicated};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

type Answer = oneshot::Sender<Result<Response, CallError>>;

/// A request on its way to a connection's task.
struct Call {
    request: Request,
    answer: Answer,
}

/// One open (or opening) connection: its task ends when the last sender
/// is dropped.
#[derive(Debug, Clone)]
struct Connection {
    id: u64,
    calls: mpsc::UnboundedSender<Call>,
}

/// Connections to followers' binary ports, by `host:port`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The cluster token, presented in a `Hello` on each connection.
    token: Option<String>,
    source_address: Option<IpAddr>,
    max_frame: usize,
    connections: Mutex<(u64, HashMap<String, Connection>)>,
}

impl StreamClient {
    /// A client that presents `token`, connects from `source_address` if
    /// given, and reads answers of up to `max_frame` bytes.
    pub fn new(token: Option<String>, source_address: Option<IpAddr>, max_frame: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                token,
                source_address,
                max_frame,
                connections: Mutex::default(),
            }),
        }
    }

    /// Sends a round to the follower at `addr` and waits up to `timeout`
    /// for its answer.
    pub fn replicate(
        &self,
        addr: &str,
        params: ReplicateParams,
        batches: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<Replicated, CallError>> + Send + 'static {
        let (answer, answered) = oneshot::channel();
        let call = Call {
            request: Request::Replicate { params, batches },
            answer,
        };
        let connection = self.send(addr, call);
        let (client, addr) = (self.clone(), addr.to_owned());
        async move {
            let response = match tokio::time::timeout(timeout, answered).await {
                Ok(Ok(response)) => response?,
                Ok(Err(_)) => return Err(CallError::Failed("the connection closed".to_owned())),
                Err(_) => {
                    client.give_up(&addr, connection);
                    return Err(CallError::Failed(format!("no answer within {timeout:?}")));
                }
            };
            match response {
                Response::Replicated { end } => Ok(Replicated { end }),
                Response::Error { body } => {
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    Err(Refusal::from_body(&body).map_or_else(
                        || CallError::Failed(format!("refused: {body}")),
                        CallError::Refused,
                    ))
                }
                other => Err(CallError::Failed(format!("unexpected answer {other:?}"))),
            }
        }
    }

    /// Queues `call` on the connection to `addr`, opening one if there is
    /// none or the last has ended. Returns the connection's id.
    fn send(&self, addr: &str, call: Call) -> u64 {
        let mut guard = self.inner.connections.lock().unwrap();
        let (next_id, connections) = &mut *guard;
        let call = match connections.get(addr) {
            Some(open) => match open.calls.send(call) {
                Ok(()) => return open.id,
                Err(mpsc::error::SendError(call)) => call,
            },
            None => call,
        };
        *next_id += 1;
        let (calls, queued) = mpsc::unbounded_channel();
        let open = Connection {
            id: *next_id,
            calls,
        };
        let _ = open.calls.send(call);
        connections.insert(addr.to_owned(), open.clone());
        tokio::spawn(run(Arc::clone(&self.inner), addr.to_owned(), queued));
        open.id
    }

    /// Forgets the connection `id` to `addr` (if it is still the current
    /// one): its task ends, failing what still waits on it.
    fn give_up(&self, addr: &str, id: u64) {
        let mut guard = self.inner.connections.lock().unwrap();
        if guard.1.get(addr).is_some_and(|c| c.id == id) {
            guard.1.remove(addr);
        }
    }
}

/// A connection's task: writes queued calls, matches answers to them.
async fn run(inner: Arc<Inner>, addr: String, mut queued: mpsc::UnboundedReceiver<Call>) {
    let stream = match connect(&addr, inner.source_address).await {
        Ok(stream) => stream,
        Err(e) => {
            let why = format!("{addr}: {e}");
            queued.close();
            while let Some(call) = queued.recv().await {
                let _ = call.answer.send(Err(CallError::Unreachable(why.clone())));
            }
            return;
        }
    };
    let (read, write) = stream.into_split();
    let mut answers = FramedRead::new(read, codec(inner.max_frame));
    // A round is as large as the writer made it (`max_round_bytes`).
    let mut out = FramedWrite::new(write, codec(u32::MAX as usize));
    let mut waiting: HashMap<u64, Answer> = HashMap::new();
    let mut next_id = 0u64;
    if let Some(token) = &inner.token {
        // Id 0 is the Hello's; a wrong token closes the connection.
        let hello = Request::Hello {
            token: token.clone(),
        };
        if out.send(hello.encode(0)).await.is_err() {
            return;
        }
    }
    let failure = loop {
        tokio::select! {
            call = queued.recv() => {
                let Some(mut call) = call else { break None };
                // Whatever else is queued goes out in the same write.
                let written: std::io::Result<()> = async {
                    loop {
                        next_id += 1;
                        out.feed(call.request.encode(next_id)).await?;
                        waiting.insert(next_id, call.answer);
                        match queued.try_recv() {
                            Ok(next) => call = next,
                            Err(_) => break,
                        }
                    }
                    SinkExt::<Bytes>::flush(&mut out).await
                }
                .await;
                if let Err(e) = written {
                    break Some(e.to_string());
                }
            }
            frame = answers.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame.freeze(),
                    Some(Err(e)) => break Some(e.to_string()),
                    None => break Some("closed by the follower".to_owned()),
                };
                match Response::decode(frame) {
                    Ok((id, response)) => {
                        if let Some(answer) = waiting.remove(&id) {
                            let _ = answer.send(Ok(response));
                        } else if id == 0 && matches!(response, Response::Error { .. }) {
                            break Some(format!("the Hello was refused: {response:?}"));
                        }
                    }
                    Err(e) => break Some(e.to_string()),
                }
            }
        }
    };
    if let Some(why) = failure {
        tracing::debug!(addr, "replication connection failed: {why}");
        for (_, answer) in waiting {
            let _ = answer.send(Err(CallError::Failed(why.clone())));
        }
    }
}

async fn connect(addr: &str, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let to = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let socket = match to {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(to))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
