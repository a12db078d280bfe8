//! `yak topics list|create|describe|add-partitions`.

use clap::{Args, Subcommand};

use yak_client::TopicConfig;

use yak_client::{ClientConfig, ConnectArgs};

use super::out;

#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    bootstrap: ConnectArgs,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Every topic with its partition count.
    List,
    /// Create a topic.
    Create {
        name: String,
        /// Partitions [default: the cluster's default].
        #[arg(long, env = "YAK_TOPICS_PARTITIONS")]
        partitions: Option<u32>,
        /// Keep at most this many bytes per partition (oldest closed
        /// segments are deleted) [default: the leader's --retention-bytes].
        #[arg(long, env = "YAK_TOPICS_RETENTION_BYTES", value_parser = clap::value_parser!(u64).range(1..))]
        retention_bytes: Option<u64>,
        /// Delete closed segments older than this many milliseconds
        /// [default: the leader's --retention-ms].
        #[arg(long, env = "YAK_TOPICS_RETENTION_MS", value_parser = clap::value_parser!(u64).range(1..))]
        retention_ms: Option<u64>,
    },
    /// The retention rule, and per partition: log range, size, HWM, ISR,
    /// follower lag.
    Describe { name: String },
    /// Raise a topic's partition count (it never shrinks). Groups reading
    /// it rebalance so that the new partitions get an owner.
    AddPartitions {
        name: String,
        /// The new total, more than today's.
        #[arg(long, env = "YAK_TOPICS_ADD_PARTITIONS")]
        partitions: u32,
    },
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let client = args.bootstrap.client(ClientConfig::default())?;
    match args.command {
        TopicsCommand::List => {
            let topics = client.topics().await?;
            if topics.is_empty() {
                out("no topics");
            }
            for t in topics {
                out(format!("{:<40} {} partitions", t.name, t.partitions));
            }
        }
        TopicsCommand::Create {
            name,
            partitions,
            retention_bytes,
            retention_ms,
        } => {
            let config = TopicConfig {
                retention_bytes,
                retention_ms,
            };
            let t = client.create_topic_with(&name, partitions, &config).await?;
            out(format!(
                "created {} with {} partitions",
                t.name, t.partitions
            ));
        }
        TopicsCommand::AddPartitions { name, partitions } => {
            let partitions = client.add_partitions(&name, partitions).await?;
            out(format!("{name} now has {partitions} partitions"));
        }
        TopicsCommand::Describe { name } => {
            let detail = client.describe_topic(&name).await?;
            out(format!(
                "topic {} (as {} sees it): {}",
                detail.name, detail.node_id, detail.config
            ));
            out(format!(
                "{:>9} {:>12} {:>12} {:>12} {:>12}  isr / follower lag",
                "partition", "start", "end", "hwm", "bytes"
            ));
            for p in detail.partitions {
                let lag: Vec<String> = p
                    .followers
                    .iter()
                    .map(|f| format!("{}:{}", f.id, f.lag))
                    .collect();
                out(format!(
                    "{:>9} {:>12} {:>12} {:>12} {:>12}  [{}] {}",
                    p.partition,
                    p.log_start_offset,
                    p.log_end_offset,
                    p.high_water_mark,
                    p.size_bytes,
                    p.isr.join(", "),
                    lag.join(" ")
                ));
            }
        }
    }
    Ok(())
}
