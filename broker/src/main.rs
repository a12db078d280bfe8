//! `broker`: a YAK node that tries to take the leader lease at start-up.

use broker::{NodeArgs, StartAs};
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "YAK broker node (starts by trying to lead)")]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    Ok(broker::launch::run_node(cli.node, StartAs::Candidate).await?)
}
