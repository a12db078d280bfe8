//! The binary port (`--tcp-listen`): `POST /produce/batch` without HTTP,
//! for clients that send many small batches (`yak-protocol` has the
//! frames, `docs/api.md` the protocol), and the streamed replication link
//! a leader sends its rounds on (`Replicate`, `peer::stream`).
//!
//! Each connection reads request frames and runs their produces
//! concurrently, answering each when it is acknowledged (so answers may
//! come out of order; the request id matches them). Answers that are ready
//! together go out in one write. An error answer is the HTTP API's JSON
//! error body (its code an [`ErrorCode`]) and no HTTP status.
//!
//! Invariants:
//! - A produce runs [`store_batch`], the HTTP path's own checks and write:
//!   the two transports cannot differ in what they store or refuse. A
//!   `Replicate` likewise runs [`queue_round`], as `/internal/replicate`.
//! - A connection's `Replicate`s are queued on their partitions in the
//!   order they arrive (the reading loop waits for each to be queued), so
//!   a round sent behind another is appended behind it.
//! - With a client token configured, nothing but a `Hello` carrying it is
//!   answered before the `Hello`; a wrong token closes the connection.
//!   With a cluster token configured, only a connection whose `Hello`
//!   carried it may send `Replicate`.
//! - Like every YAK server, the port has a connection limit and an idle
//!   timeout (`ServerArgs`); a connection stops reading at
//!   [`MAX_IN_FLIGHT`] unanswered requests, so one client cannot queue
//!   unbounded work.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, future::Either, stream::FuturesUnordered};
use tokio::{
    net::{TcpListener, TcpStream},
    time::Instant,
};
use tokio_util::{
    codec::{FramedRead, FramedWrite},
    sync::CancellationToken,
};
use yak_protocol::{ErrorCode, FrameError, ReplicateParams, Request, Response, Written, codec};

use crate::{
    http::{error::ApiError, internal::queue_round},
    node::Node,
    peer::token_matches,
    produce::store_batch,
};

/// Unanswered requests per connection before it stops reading.
const MAX_IN_FLIGHT: usize = 1024;

/// Accepts connections until `shutdown`; each is served on its own task.
pub async fn serve(node: Node, listener: TcpListener, shutdown: CancellationToken) {
    crate::listener::accept(
        "binary port",
        node,
        listener,
        shutdown,
        |node, stream, idle, shutdown| Connection::new(node, idle).run(stream, shutdown),
    )
    .await;
}

struct Connection {
    node: Node,
    idle: Duration,
    /// Whether this connection may produce (no token configured, or its
    /// Hello carried the right one).
    admitted: bool,
    /// Whether it may replicate (no cluster token configured, or its
    /// Hello carried it).
    peer: bool,
}

/// What one request frame leads to.
enum Step {
    Answer(u64, Response),
    /// Answer, then close: the peer cannot be trusted with more.
    Close(u64, Response),
    Produce(u64, String, u32, Bytes),
    Replicate(u64, ReplicateParams, Bytes),
}

impl Connection {
    fn new(node: Node, idle: Duration) -> Self {
        let admitted = node.config().client_token.is_none();
        let peer = node.config().cluster_token.is_none();
        Self {
            node,
            idle,
            admitted,
            peer,
        }
    }

    async fn run(mut self, stream: TcpStream, shutdown: CancellationToken) -> std::io::Result<()> {
        // A frame holds a whole request body plus the request's own fields.
        let max_frame = self.node.config().max_request_bytes + 64 * 1024;
        let (read, write) = stream.into_split();
        let mut frames = FramedRead::new(read, codec(max_frame));
        let mut out = FramedWrite::new(write, codec(max_frame));
        let mut in_flight = FuturesUnordered::new();
        let mut reading = true;
        // Idle means neither a frame nor an answer for `idle`. One timer
        // per idle period, moved on only when it fires: arming a timeout
        // for every frame cost a timer-wheel insert and removal each.
        let mut active = Instant::now();
        let idle = tokio::time::sleep(self.idle);
        tokio::pin!(idle);
        while reading || !in_flight.is_empty() {
            tokio::select! {
                () = &mut idle, if reading => {
                    if active.elapsed() < self.idle {
                        idle.as_mut().reset(active + self.idle);
                    } else if in_flight.is_empty() {
                        break;
                    } else {
                        // Close once what is in flight is answered.
                        reading = false;
                    }
                }
                frame = frames.next(), if reading && in_flight.len() < MAX_IN_FLIGHT => {
                    active = Instant::now();
                    let step = match frame {
                        None => {
                            reading = false;
                            continue;
                        }
                        Some(Err(e)) => {
                            // Too long, or the stream broke: the framing
                            // cannot be trusted any further.
                            reading = false;
                            let e = ApiError::too_large(ErrorCode::FrameInvalid, e.to_string())
                                .written(Written::No);
                            Step::Close(0, error(&e))
                        }
                        Some(Ok(frame)) => self.step(frame.freeze()),
                    };
                    match step {
                        Step::Answer(id, response) => out.send(response.encode(id)).await?,
                        Step::Close(id, response) => {
                            out.send(response.encode(id)).await?;
                            reading = false;
                        }
                        Step::Produce(id, topic, partition, batch) => {
                            let node = self.node.clone();
                            in_flight.push(Either::Left(async move {
                                (id, produce(&node, &topic, partition, &batch).await)
                            }));
                        }
                        // Queued before the next frame is read: the order
                        // the leader sent its rounds in.
                        Step::Replicate(id, params, batches) => {
                            match queue_round(&self.node, params, batches).await {
                                Ok(answer) => in_flight.push(Either::Right(async move {
                                    let response = match answer.await {
                                        Ok(end) => Response::Replicated { end },
                                        Err(e) => error(&e),
                                    };
                                    (id, response)
                                })),
                                Err(e) => out.send(error(&e).encode(id)).await?,
                            }
                        }
                    }
                }
                Some((id, response)) = in_flight.next(), if !in_flight.is_empty() => {
                    active = Instant::now();
                    out.feed(response.encode(id)).await?;
                    // Whatever else is ready goes out in the same write.
                    while let Some(Some((id, response))) =
                        futures_util::FutureExt::now_or_never(in_flight.next())
                    {
                        out.feed(response.encode(id)).await?;
                    }
                    SinkExt::<Bytes>::flush(&mut out).await?;
                }
                () = shutdown.cancelled(), if reading => reading = false,
            }
        }
        Ok(())
    }

    fn step(&mut self, frame: Bytes) -> Step {
        match Request::decode(frame) {
            Err((id, e)) => {
                let e = invalid_frame(&e);
                // Without an id the peer speaks something else: stop.
                match id {
                    Some(id) => Step::Answer(id, error(&e)),
                    None => Step::Close(0, error(&e)),
                }
            }
            Ok((id, Request::Hello { token })) => {
                let config = self.node.config();
                if config
                    .cluster_token
                    .as_deref()
                    .is_some_and(|cluster| token_matches(Some(cluster), Some(token.as_bytes())))
                {
                    self.peer = true;
                    Step::Answer(id, Response::Ready)
                } else if token_matches(config.client_token.as_deref(), Some(token.as_bytes())) {
                    self.admitted = true;
                    Step::Answer(id, Response::Ready)
                } else {
                    let e = ApiError::unauthorized("the Hello carried a wrong client token");
                    Step::Close(id, error(&e.written(Written::No)))
                }
            }
            Ok((id, Request::Produce { .. })) if !self.admitted => {
                let e = ApiError::unauthorized(
                    "this node needs a client token: send a Hello with it first",
                );
                Step::Close(id, error(&e.written(Written::No)))
            }
            Ok((
                id,
                Request::Produce {
                    topic,
                    partition,
                    batch,
                },
            )) => Step::Produce(id, topic, partition, batch),
            Ok((id, Request::Replicate { .. })) if !self.peer => {
                let e = ApiError::unauthorized(
                    "replication needs the cluster token: send a Hello with it first",
                );
                Step::Close(id, error(&e.written(Written::No)))
            }
            Ok((id, Request::Replicate { params, batches })) => {
                Step::Replicate(id, params, batches)
            }
        }
    }
}

async fn produce(node: &Node, topic: &str, partition: u32, batch: &[u8]) -> Response {
    match store_batch(node, topic, partition, batch).await {
        Ok(stored) => Response::Stored {
            offset: stored.offset,
            count: stored.count,
            epoch: stored.epoch,
        },
        Err(e) => error(&ApiError::produce(e, node, "")),
    }
}

fn invalid_frame(e: &FrameError) -> ApiError {
    ApiError::bad_request(ErrorCode::FrameInvalid, e.to_string()).written(Written::No)
}

/// An error answer: the JSON body alone (this port is not HTTP; the
/// client reads the code and `written`).
fn error(e: &ApiError) -> Response {
    Response::Error {
        body: Bytes::from(e.body().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_carry_the_json_body_alone() {
        let e = ApiError::unknown_topic("t").written(Written::No);
        let Response::Error { body } = error(&e) else {
            panic!("an error answer");
        };
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"error": "unknown_topic", "message": "topic \"t\" does not exist", "written": "no"})
        );
    }
}
