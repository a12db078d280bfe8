//! Start-up shared by the `broker` and `follower` binaries: logging,
//! signals, and running the node until SIGINT or SIGTERM.

use crate::{
    NodeError,
    config::{NodeArgs, StartAs},
};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Runs a node with `args` until SIGINT or SIGTERM, then shuts it down
/// gracefully (the lease is released if held).
pub async fn run_node(args: NodeArgs, start_as: StartAs) -> Result<(), NodeError> {
    let log_format = args.log_format;
    let config = args.resolve(start_as)?;
    crate::logging::init(log_format, &config.node_id);
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    let mut interrupt = signal(SignalKind::interrupt()).expect("installing a signal handler");
    let mut terminate = signal(SignalKind::terminate()).expect("installing a signal handler");
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        on_signal.cancel();
    });
    crate::run(config, shutdown).await
}
