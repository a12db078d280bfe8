//! `consumer-ui`: the consumer web UI (`--listen`, `--bootstrap`, access
//! and server flags: see `docs/ui.md` and `docs/security.md`).

use clap::Parser;
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
    let (listener, shutdown) = server::prepare(&cli.listen)?;
    consumer_ui::serve(listener, cli.common, shutdown).await
}
