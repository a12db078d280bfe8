//! Phase 3 and 4, the consumer-group figures: how fast a group member reads
//! the topic the consume phase read (every partition, from its start to the
//! high-water mark it had when the read started, committing as it goes),
//! and how long a group takes to give a killed member's partitions to the
//! survivor.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use yak_client::{GroupConfig, GroupConsumer, StartAt, YakClient};

use super::{consume::ReadBack, rate};

/// The session timeout of the rebalance figure's members: the group drops
/// a killed member this long after its last heartbeat.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(3);

/// Reads every partition of `topic` as the only member of a new group,
/// from the earliest offset to the high-water marks the partitions had
/// when the read started, and leaves.
pub async fn consume(client: &YakClient, topic: &str) -> anyhow::Result<ReadBack> {
    let detail = client.describe_topic(topic).await?;
    let mut left: BTreeMap<u32, u64> = detail
        .partitions
        .iter()
        .filter(|p| p.high_water_mark > p.log_start_offset)
        .map(|p| (p.partition, p.high_water_mark))
        .collect();
    let config = GroupConfig {
        max_records: 10_000,
        ..GroupConfig::new(group_name("consume"), [topic])
    };
    let mut member = GroupConsumer::join(client.clone(), config).await?;
    let started = Instant::now();
    let mut read = 0u64;
    while !left.is_empty() {
        let records = member.poll(Duration::from_millis(100)).await?;
        read += records.len() as u64;
        for record in records {
            if left
                .get(&record.partition)
                .is_some_and(|&hwm| record.record.offset + 1 >= hwm)
            {
                left.remove(&record.partition);
            }
        }
    }
    let took = started.elapsed();
    member.leave().await?;
    Ok(ReadBack {
        msgs_per_s: rate(read, took),
        records: read,
    })
}

/// One rebalance after a kill.
pub struct Rebalance {
    /// From the moment a member stopped (no heartbeat, no leave) to the
    /// moment the survivor held every partition.
    pub after_kill_ms: f64,
    pub session_timeout_ms: u64,
}

/// Two members of a new group share `topic`; one is dropped without
/// leaving (its heartbeat task dies with it, as in a killed process) and
/// the survivor polls until it holds every partition.
pub async fn rebalance(client: &YakClient, topic: &str) -> anyhow::Result<Rebalance> {
    let partitions = client.describe_topic(topic).await?.partitions.len();
    let config = GroupConfig {
        session_timeout: SESSION_TIMEOUT,
        // Only the assignment matters here, not the records.
        start: StartAt::Latest,
        ..GroupConfig::new(group_name("rebalance"), [topic])
    };
    let poll = Duration::from_millis(50);
    let mut survivor = GroupConsumer::join(client.clone(), config.clone()).await?;
    // The second join completes once the first member has joined the
    // rebalance it starts, which it does from a poll.
    let joining = tokio::spawn(GroupConsumer::join(client.clone(), config));
    while !joining.is_finished() {
        survivor.poll(poll).await?;
    }
    let killed = joining.await??;
    drop(killed);
    let killed_at = Instant::now();
    while survivor.assignment().len() < partitions {
        survivor.poll(poll).await?;
    }
    let after_kill = killed_at.elapsed();
    survivor.leave().await?;
    Ok(Rebalance {
        after_kill_ms: after_kill.as_secs_f64() * 1000.0,
        session_timeout_ms: SESSION_TIMEOUT.as_millis() as u64,
    })
}

/// A group of this run alone.
fn group_name(figure: &str) -> String {
    format!("bench-{figure}-{}", std::process::id())
}
