//! `yak consume`: prints records as JSON lines, from one partition or all
//! of them; with `--follow` it keeps waiting for new ones.

use std::time::Duration;

use clap::Args;
use serde_json::json;
use yak_client::{Consumer, StartAt};

use yak_client::{ClientConfig, ConnectArgs};

use super::out;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    bootstrap: ConnectArgs,
    topic: String,
    /// Partition to read [default: all partitions].
    #[arg(long, env = "YAK_CONSUME_PARTITION")]
    partition: Option<u32>,
    /// Where to start: earliest, latest or an offset.
    #[arg(long, env = "YAK_CONSUME_FROM", default_value = "earliest")]
    from: StartAt,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long, env = "YAK_CONSUME_FOLLOW", value_parser = clap::builder::BoolishValueParser::new())]
    follow: bool,
    /// Stop after this many records.
    #[arg(long, env = "YAK_CONSUME_MAX")]
    max: Option<u64>,
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.bootstrap.client(ClientConfig::default())?;
    let partitions = match args.partition {
        Some(p) => vec![p],
        None => {
            let detail = client.describe_topic(&args.topic).await?;
            detail.partitions.iter().map(|p| p.partition).collect()
        }
    };
    let mut consumers: Vec<Consumer> = partitions
        .into_iter()
        .map(|p| Consumer::new(client.clone(), &args.topic, p, args.from))
        .collect();
    let mut printed = 0u64;
    let wait = if args.follow {
        Duration::from_millis(500 / consumers.len().max(1) as u64)
    } else {
        Duration::ZERO
    };
    loop {
        let mut got = 0;
        for consumer in &mut consumers {
            for record in consumer.poll(wait).await? {
                got += 1;
                let line = json!({
                    "partition": consumer.partition(),
                    "offset": record.offset,
                    "key": record.key,
                    "timestamp": record.timestamp,
                    "payload": record.payload,
                });
                out(format!("{line}"));
                printed += 1;
                if args.max.is_some_and(|max| printed >= max) {
                    return Ok(());
                }
            }
        }
        if got == 0 && !args.follow {
            return Ok(());
        }
    }
}
