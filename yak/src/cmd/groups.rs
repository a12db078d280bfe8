//! `yak groups list|describe|reset`: consumer groups as the leader sees
//! them — members, assignment, committed offsets and lag — and moving a
//! stopped group's offsets.

use clap::{Args, Subcommand};
use yak_client::{ClientConfig, ConnectArgs, GroupDetail, Reset, ResetTo, TopicPartition};

use super::out;

#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    bootstrap: ConnectArgs,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, Subcommand)]
enum GroupsCommand {
    /// Every group: state, generation, members, lag and topics.
    List,
    /// One group: its members and what they hold, and per partition the
    /// owner, committed offset, high-water mark and lag.
    Describe { group: String },
    /// Move a group's committed offsets; only while it has no members.
    Reset {
        group: String,
        /// earliest, latest, an offset (clamped to what each partition
        /// stores), or time:MILLIS (the first record written at or after
        /// that time, in ms since the Unix epoch).
        #[arg(long, env = "YAK_GROUPS_RESET_TO")]
        to: ResetTo,
        /// Only these topics (repeat, or comma-separated) [default: the
        /// group's topics and every topic it committed for].
        #[arg(long = "topic", env = "YAK_GROUPS_RESET_TOPICS", value_delimiter = ',')]
        topics: Vec<String>,
    },
}

pub async fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let client = args.bootstrap.client(ClientConfig::default())?;
    match args.command {
        GroupsCommand::List => {
            let list = client.list_groups().await?;
            if list.groups.is_empty() {
                out("no groups");
                return Ok(());
            }
            out(format!(
                "{:<32} {:<12} {:>10} {:>7} {:>10}  topics",
                "group", "state", "generation", "members", "lag"
            ));
            for g in list.groups {
                out(format!(
                    "{:<32} {:<12} {:>10} {:>7} {:>10}  {}",
                    g.group,
                    g.state.as_str(),
                    g.generation,
                    g.members,
                    g.lag,
                    or_dash(g.topics.join(", "))
                ));
            }
        }
        GroupsCommand::Describe { group } => describe(&client.describe_group(&group).await?),
        GroupsCommand::Reset { group, to, topics } => {
            let topics = (!topics.is_empty()).then_some(topics);
            let offsets = client.reset_group(&group, &Reset::new(to, topics)).await?;
            out(format!(
                "group {}: {} offsets reset",
                offsets.group,
                offsets.offsets.len()
            ));
            for o in offsets.offsets {
                let partition = TopicPartition::new(o.topic, o.partition);
                out(format!("  {:<40} {:>12}", partition.to_string(), o.offset));
            }
        }
    }
    Ok(())
}

fn describe(d: &GroupDetail) {
    out(format!(
        "group {}: {}, generation {}, assignor {}, topics {}",
        d.group,
        d.state.as_str(),
        d.generation,
        d.assignor,
        or_dash(d.topics.join(", "))
    ));
    out(format!("members ({}):", d.members.len()));
    for m in &d.members {
        let held: Vec<String> = m.assignment.iter().map(ToString::to_string).collect();
        out(format!(
            "  {:<20} {:<32} session {:>6} ms{}  holds [{}]",
            m.member_id,
            or_dash(m.client_id.clone().unwrap_or_default()),
            m.session_timeout_ms,
            if m.joined { "" } else { " (rejoining)" },
            held.join(", ")
        ));
    }
    out(format!(
        "{:<40} {:<20} {:>12} {:>12} {:>10}",
        "partition", "member", "committed", "hwm", "lag"
    ));
    for p in &d.partitions {
        let partition = TopicPartition::new(p.topic.clone(), p.partition);
        out(format!(
            "{:<40} {:<20} {:>12} {:>12} {:>10}",
            partition.to_string(),
            or_dash(p.member_id.clone().unwrap_or_default()),
            p.committed
                .map_or_else(|| "-".to_owned(), |c| c.to_string()),
            p.high_water_mark,
            p.lag
        ));
    }
}

/// `-` for an empty cell, so that every row has every column.
fn or_dash(cell: String) -> String {
    if cell.is_empty() {
        "-".to_owned()
    } else {
        cell
    }
}
