//! One connection to a node's binary produce port (`yak-protocol`), shared
//! by every task of a [`YakClient`](crate::YakClient): requests from many
//! tasks are in flight on it at once, and those queued together go out in
//! one write.
//!
//! Invariant: every request gets exactly one outcome — its answer, or an
//! error once the connection is gone (the reader fails every pending
//! request when it stops, and nothing is registered after that).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::{TcpSocket, tcp::OwnedReadHalf},
    sync::{mpsc, oneshot},
};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use yak_protocol::{Request, Response, codec};

/// Largest answer frame (answers are small; errors carry a JSON body).
const MAX_ANSWER: usize = 1024 * 1024;

type Reply = oneshot::Sender<Response>;

/// Requests registered and sent, waiting for their answers; `None` once the
/// connection is gone.
type Pending = Arc<Mutex<Option<HashMap<u64, Reply>>>>;

#[derive(Debug)]
pub(crate) struct Connection {
    addr: String,
    requests: mpsc::UnboundedSender<(Request, Reply)>,
    pending: Pending,
}

impl Connection {
    /// Connects to `addr` (host:port), from `local` if given, and presents
    /// `token` if given.
    pub(crate) async fn open(
        addr: &str,
        local: Option<IpAddr>,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let connecting = async {
            let remote = tokio::net::lookup_host(addr)
                .await?
                .next()
                .ok_or_else(|| std::io::Error::other("the name resolves to no address"))?;
            let socket = if remote.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(ip) = local {
                socket.bind((ip, 0).into())?;
            }
            let stream = socket.connect(remote).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        };
        let stream = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| format!("connecting took longer than {timeout:?}"))?
            .map_err(|e| e.to_string())?;
        let (read, write) = stream.into_split();
        let mut frames = FramedRead::new(read, codec(MAX_ANSWER));
        let mut out = FramedWrite::new(write, codec(usize::MAX >> 1));
        if let Some(token) = token {
            let hello = Request::Hello {
                token: token.to_owned(),
            };
            out.send(hello.encode(0)).await.map_err(|e| e.to_string())?;
            let answer = tokio::time::timeout(timeout, frames.next())
                .await
                .map_err(|_| "the node did not answer the Hello".to_owned())?;
            match answer.map(|f| f.map(|f| Response::decode(f.freeze()))) {
                Some(Ok(Ok((_, Response::Ready)))) => {}
                Some(Ok(Ok((_, Response::Error { body })))) => {
                    return Err(String::from_utf8_lossy(&body).into_owned());
                }
                other => return Err(format!("unexpected answer to the Hello: {other:?}")),
            }
        }
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (requests, queue) = mpsc::unbounded_channel();
        tokio::spawn(read_answers(frames, Arc::clone(&pending)));
        tokio::spawn(write_requests(out, queue, Arc::clone(&pending)));
        Ok(Self {
            addr: addr.to_owned(),
            requests,
            pending,
        })
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    pub(crate) fn is_open(&self) -> bool {
        self.pending.lock().unwrap().is_some()
    }

    /// Sends `request` and waits for its answer. `Err` when the connection
    /// went away or the answer took longer than `timeout`: the request may
    /// or may not have been handled.
    pub(crate) async fn call(
        &self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, String> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((request, reply))
            .map_err(|_| "the connection is closed".to_owned())?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err("the connection closed before the answer".to_owned()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}

async fn write_requests(
    mut out: FramedWrite<tokio::net::tcp::OwnedWriteHalf, LengthDelimitedCodec>,
    mut queue: mpsc::UnboundedReceiver<(Request, Reply)>,
    pending: Pending,
) {
    let mut next_id = 1u64;
    while let Some(first) = queue.recv().await {
        let mut request = Some(first);
        while let Some((req, reply)) = request.take() {
            let id = next_id;
            next_id += 1;
            match pending.lock().unwrap().as_mut() {
                Some(waiting) => waiting.insert(id, reply),
                // Gone: dropping `reply` fails the request.
                None => return,
            };
            if out.feed(req.encode(id)).await.is_err() {
                return;
            }
            request = queue.try_recv().ok();
        }
        if SinkExt::<Bytes>::flush(&mut out).await.is_err() {
            return;
        }
    }
}

async fn read_answers(
    mut frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    pending: Pending,
) {
    while let Some(Ok(frame)) = frames.next().await {
        let Ok((id, response)) = Response::decode(frame.freeze()) else {
            break;
        };
        let reply = pending.lock().unwrap().as_mut().and_then(|p| p.remove(&id));
        if let Some(reply) = reply {
            let _ = reply.send(response);
        }
    }
    // Dropping every waiting reply fails those requests; the writer stops
    // at its next request.
    pending.lock().unwrap().take();
}
