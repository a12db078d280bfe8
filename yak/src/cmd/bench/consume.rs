//! Phase 3, consume: how fast one partition is read back from its start
//! to its high-water mark.

use std::time::{Duration, Instant};

use yak_client::{Consumer, StartAt, YakClient};

use super::rate;

/// Records per second, and how many were read.
pub struct ReadBack {
    pub msgs_per_s: f64,
    pub records: u64,
}

/// Reads partition 0 of `topic` from the earliest offset to the
/// high-water mark it had when the read started.
pub async fn measure(client: &YakClient, topic: &str) -> anyhow::Result<ReadBack> {
    let detail = client.describe_topic(topic).await?;
    let hwm = detail.partitions[0].high_water_mark;
    let mut consumer =
        Consumer::new(client.clone(), topic, 0, StartAt::Earliest).max_records(10_000);
    let started = Instant::now();
    let mut read = 0u64;
    while consumer.position().is_none_or(|p| p < hwm) {
        read += consumer.poll(Duration::ZERO).await?.len() as u64;
    }
    Ok(ReadBack {
        msgs_per_s: rate(read, started.elapsed()),
        records: read,
    })
}
