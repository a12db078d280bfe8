//! Storing one record batch: [`YakClient::produce_batch`] sends it over the
//! leader's binary produce port (`yak-protocol`) when the leader has one and
//! [`ClientConfig::tcp`](crate::ClientConfig::tcp) allows, else as
//! `POST /produce/batch`.
//!
//! Invariants: every task of a client (and its clones) shares one
//! connection, reopened only when it went away or the leader moved; an
//! answer that says the leader may have moved forgets the cached leader,
//! exactly as an HTTP attempt does; retries are the cluster's
//! ([`YakClient::retrying`]), so both transports fail over alike. An error
//! answer is judged by its code and `written` field, as an HTTP one is
//! (the port sends no HTTP status).

use std::sync::Arc;

use bytes::Bytes;
use reqwest::Method;
use yak_protocol::{Request, Response};

use super::YakClient;
use crate::{
    error::{ClientError, Result},
    model::ProducedBatch,
    tcp::Connection,
    wire::{Body, encode},
};

impl YakClient {
    /// Stores one record batch (storage format) in `topic`/`partition`:
    /// over the leader's binary port when it has one and
    /// [`ClientConfig::tcp`](crate::ClientConfig::tcp) allows, else
    /// `POST /produce/batch`. Retried like [`call`](Self::call).
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
                    self.produce_over_tcp(&addr, topic, partition, body.bytes())
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
            // The code and `written` decide (the port sends no HTTP status).
            Ok(Response::Error { body }) => {
                ClientError::from_frame(&body).unwrap_or_else(|| ClientError::Decode {
                    url: format!("tcp://{addr}"),
                    message: format!(
                        "an error answer that is not a JSON error body: {}",
                        String::from_utf8_lossy(&body)
                    ),
                })
            }
            Ok(other @ (Response::Ready | Response::Replicated { .. })) => {
                transport(format!("a {other:?} answer to a produce"))
            }
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
}
