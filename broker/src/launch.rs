//! Start-up shared by the `broker` and `follower` binaries: logging,
//! signals, and running the node until SIGINT or SIGTERM.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, fmt};

use crate::{
    NodeError,
    config::{LogFormat, NodeArgs, StartAs},
};

/// Installs the global `tracing` subscriber (`RUST_LOG` filters; default
/// `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Runs a node with `args` until SIGINT or SIGTERM, then shuts it down
/// gracefully (the lease is released if held).
pub async fn run_node(args: NodeArgs, start_as: StartAs) -> Result<(), NodeError> {
    init_logging(args.log_format);
    let config = args.resolve(start_as);
    let span = tracing::info_span!("node", id = %config.node_id);
    let _enter = span.enter();
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
