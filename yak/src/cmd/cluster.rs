//! `yak cluster status`: leader, epoch, nodes, and per partition the ISR
//! and each follower's lag.

use clap::{Args, Subcommand};

use yak_client::{ClientConfig, ConnectArgs};

use super::out;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    bootstrap: ConnectArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Leader, epoch, nodes, ISR and lag per partition.
    Status,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let client = args.bootstrap.client(ClientConfig::default())?;
    let ClusterCommand::Status = args.command;
    let info = client.leader_info().await?;
    out(format!(
        "leader: {} at {} (epoch {})",
        info.leader_id.as_deref().unwrap_or("none"),
        info.leader_url.as_deref().unwrap_or("-"),
        info.epoch
    ));
    out("nodes:");
    for n in &info.nodes {
        out(format!(
            "  {:<16} {:<28} {:<9} epoch {}",
            n.id, n.url, n.role, n.epoch
        ));
    }
    for topic in client.topics().await? {
        let detail = client.describe_topic(&topic.name).await?;
        out(format!("topic {}:", detail.name));
        for p in detail.partitions {
            let lag: Vec<String> = p
                .followers
                .iter()
                .map(|f| format!("{} lag {}", f.id, f.lag))
                .collect();
            let warning = if p.under_replicated() {
                format!(
                    " UNDER-REPLICATED ({} of {} replicas in sync)",
                    p.isr.len(),
                    p.replicas
                )
            } else {
                String::new()
            };
            out(format!(
                "  p{:<3} hwm {:<10} end {:<10} isr [{}]{warning} {}",
                p.partition,
                p.high_water_mark,
                p.log_end_offset,
                p.isr.join(", "),
                lag.join(", ")
            ));
        }
    }
    Ok(())
}
