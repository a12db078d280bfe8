//! Start-up shared by the `broker` and `follower` binaries (their `main`
//! is one call): flags, logging, signals, and running the node until
//! SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::{Args, Command, FromArgMatches};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::{
    NodeError,
    config::{NodeArgs, StartAs},
};

/// The whole program of a node binary: parses the flags (printing help or
/// a usage error), runs the node on a multi-threaded runtime and turns an
/// error into a message and exit code 1.
pub fn main(start_as: StartAs) -> ExitCode {
    let (name, about) = match start_as {
        StartAs::Candidate => ("broker", "YAK broker node (starts by trying to lead)"),
        StartAs::Follower => ("follower", "YAK follower node (starts by following)"),
    };
    let command = NodeArgs::augment_args(
        Command::new(name)
            .version(env!("CARGO_PKG_VERSION"))
            .about(about),
    );
    let args = match NodeArgs::from_arg_matches(&command.get_matches()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_node(args, start_as)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

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
