//! `follower`: a YAK node that starts by following. It is the same node as
//! `broker`; it only waits one lease TTL before it tries to lead, and then
//! obeys the lease like any node.

use broker::{NodeArgs, StartAs};
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "YAK follower node (starts by following)")]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    Ok(broker::launch::run_node(cli.node, StartAs::Follower).await?)
}
