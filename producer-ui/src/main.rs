//! `producer-ui`: the producer web UI (`--listen`, `--bootstrap`, access
//! and server flags: see `docs/ui.md` and `docs/security.md`).

use std::path::PathBuf;

use clap::Parser;
use yak_ui::server::{self, CommonArgs};

#[derive(Debug, Parser)]
#[command(version, about = "YAK producer web UI")]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "YAK_PRODUCER_UI_LISTEN", default_value = "127.0.0.1:5003")]
    listen: String,
    #[command(flatten)]
    common: CommonArgs,
    /// Directory for uploaded files [default: the system's temp directory].
    #[arg(long, env = "YAK_UPLOAD_DIR")]
    upload_dir: Option<PathBuf>,
    /// Largest accepted upload, in bytes.
    #[arg(long, env = "YAK_MAX_UPLOAD_BYTES", default_value_t = 4 << 30)]
    max_upload_bytes: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (listener, shutdown) = server::prepare(&cli.listen)?;
    let config = producer_ui::Config {
        common: cli.common,
        upload_dir: cli.upload_dir,
        max_upload_bytes: cli.max_upload_bytes,
    };
    producer_ui::serve(listener, config, shutdown).await
}
