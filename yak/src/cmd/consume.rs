//! `yak consume`: prints records as JSON lines, from one partition or all
//! of them; with `--follow` it keeps waiting for new ones. With `--group`
//! it reads as a member of a consumer group instead: only the partitions
//! the group gives it, from the group's committed offsets, committing what
//! it printed as it goes and when it stops (at the end, after `--max`, on
//! Ctrl-C or SIGTERM), and leaving the group then.

use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use yak_client::{
    Assignor, ClientConfig, ConnectArgs, Consumed, Consumer, GroupConfig, GroupConsumer,
    GroupRecord, StartAt, TopicPartition,
};

use super::out;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    bootstrap: ConnectArgs,
    topic: String,
    /// Partition to read [default: all partitions].
    #[arg(long, env = "YAK_CONSUME_PARTITION", conflicts_with = "group")]
    partition: Option<u32>,
    /// Where to start: earliest, latest or an offset. With --group, where
    /// to start in a partition the group has committed nothing for
    /// (earliest or latest).
    #[arg(long, env = "YAK_CONSUME_FROM", default_value = "earliest")]
    from: StartAt,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long, env = "YAK_CONSUME_FOLLOW", value_parser = clap::builder::BoolishValueParser::new())]
    follow: bool,
    /// Stop after this many records.
    #[arg(long, env = "YAK_CONSUME_MAX")]
    max: Option<u64>,
    /// Read as a member of this consumer group.
    #[arg(long, env = "YAK_CONSUME_GROUP")]
    group: Option<String>,
    /// With --group: the member is dropped from the group when it has not
    /// been heard from for this long.
    #[arg(
        long,
        env = "YAK_CONSUME_SESSION_TIMEOUT_MS",
        requires = "group",
        default_value_t = yak_client::group::DEFAULT_SESSION_TIMEOUT_MS
    )]
    session_timeout_ms: u64,
    /// With --group: how the group spreads partitions over its members
    /// (sticky, range or round_robin; every member must agree).
    #[arg(long, env = "YAK_CONSUME_ASSIGNOR", requires = "group", default_value_t = Assignor::Sticky)]
    assignor: Assignor,
}

/// A record as printed: one JSON line.
fn line(partition: u32, record: Consumed) -> String {
    json!({
        "partition": partition,
        "offset": record.offset,
        "key": record.key,
        "timestamp": record.timestamp,
        "payload": record.payload,
    })
    .to_string()
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    if args.group.is_some() {
        return run_in_group(args).await;
    }
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
                out(line(consumer.partition(), record));
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

/// `--group`: polls as a member until the end (or `--max`, or a signal),
/// then leaves, committing what was printed.
async fn run_in_group(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.bootstrap.client(ClientConfig::default())?;
    let config = GroupConfig {
        session_timeout: Duration::from_millis(args.session_timeout_ms),
        assignor: args.assignor,
        client_id: Some(format!("yak consume (pid {})", std::process::id())),
        start: args.from,
        ..GroupConfig::new(args.group.clone().unwrap_or_default(), [&args.topic])
    };
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut consumer = tokio::select! {
        joined = GroupConsumer::join(client, config) => joined?,
        // Nothing to leave yet: a join cut short is dropped by the group
        // when its session times out.
        _ = interrupt.recv() => return Ok(()),
        _ = terminate.recv() => return Ok(()),
    };
    let wait = if args.follow {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    let mut remaining = args.max;
    let read = async {
        loop {
            let (generation, held) = (consumer.generation(), consumer.assignment().to_vec());
            let records = consumer.poll(wait).await?;
            // Without --follow, the end: a poll that found nothing while
            // the member kept its partitions (not one cut short by a
            // rebalance).
            let settled = generation == consumer.generation() && held == consumer.assignment();
            if records.is_empty() && settled && !args.follow {
                return anyhow::Ok(());
            }
            if print(&mut consumer, records, &mut remaining)? {
                return Ok(());
            }
        }
    };
    let read = tokio::select! {
        read = read => read,
        _ = interrupt.recv() => Ok(()),
        _ = terminate.recv() => Ok(()),
    };
    // Leave even after an error, so the partitions move on at once.
    let leave = consumer.leave().await;
    read?;
    Ok(leave?)
}

/// Prints `records`, as many as `remaining` allows; moves the member back
/// to the first record not printed in each partition, so that the commit
/// does not count those as read. Returns whether `remaining` ran out.
fn print(
    consumer: &mut GroupConsumer,
    records: Vec<GroupRecord>,
    remaining: &mut Option<u64>,
) -> anyhow::Result<bool> {
    let n = remaining.map_or(records.len(), |r| records.len().min(r as usize));
    let mut records = records.into_iter();
    for record in records.by_ref().take(n) {
        out(line(record.partition, record.record));
    }
    if let Some(r) = remaining {
        *r -= n as u64;
    }
    // A partition's records come in order: its first one left is where
    // it goes back to.
    let mut rewound: Vec<TopicPartition> = Vec::new();
    for record in records {
        let partition = TopicPartition::new(record.topic, record.partition);
        if !rewound.contains(&partition) {
            consumer.seek(&partition, record.record.offset)?;
            rewound.push(partition);
        }
    }
    Ok(*remaining == Some(0))
}
