//! `consumer-ui`: the consumer web UI (`--listen`, `--bootstrap`).

use std::net::TcpListener;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use yak_ui::server::{self, CommonArgs};

#[derive(Debug, Parser)]
#[command(version, about = "YAK consumer web UI")]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "YAK_CONSUMER_UI_LISTEN", default_value = "127.0.0.1:5004")]
    listen: String,
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    server::init_tracing();
    let listener = TcpListener::bind(&cli.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.listen))?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signals(shutdown.clone())?;
    consumer_ui::serve(
        listener,
        consumer_ui::Config {
            bootstrap: cli.common.bootstrap.clone(),
            links: cli.common.links(),
        },
        shutdown,
    )
    .await
}
