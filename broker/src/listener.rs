//! The accept loop of the node's own TCP protocols (the binary produce
//! port, the Kafka listener), written once: like every YAK server, at most
//! `--http-max-connections` connections at once (past that, new ones wait
//! in the backlog), an idle timeout for each, and each served on its own
//! task until shutdown.

use std::{fmt::Display, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_util::sync::CancellationToken;

use crate::node::{Node, NodeError};

/// Binds `addr`, if the protocol is on.
pub async fn bind(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, NodeError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| NodeError::Bind { addr, source })
}

/// Accepts connections on `listener` until `shutdown`, serving each with
/// `serve(node, stream, idle timeout, shutdown)`. `name` is for the logs.
pub async fn accept<F, Fut, E>(
    name: &'static str,
    node: Node,
    listener: TcpListener,
    shutdown: CancellationToken,
    serve: F,
) where
    F: Fn(Node, TcpStream, Duration, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display,
{
    let limits = &node.config().server;
    let connections = Arc::new(Semaphore::new(limits.http_max_connections));
    let idle = Duration::from_millis(match limits.http_keep_alive_ms {
        0 => limits.http_request_timeout_ms,
        ms => ms,
    });
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit.expect("never closed"),
            () = shutdown.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("{name}: accept failed: {e}");
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let served = serve(node.clone(), stream, idle, shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::debug!(%peer, "{name} connection closed: {e}");
            }
            drop(permit);
        });
    }
}
