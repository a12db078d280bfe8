//! Phase 3, consume: how fast one partition is read back from its start
//! to its high-water mark.
//!
//! Each pass is what a consumer does: a new `Consumer` from the earliest
//! offset (its first poll finds where the log starts), polling until the
//! high-water mark the read started at, every record decoded and counted;
//! a pass that reads more or fewer records than the partition holds fails
//! the bench. A quick run's partition holds ~150 k records, read in a few
//! tens of milliseconds, a window in which one preemption by anything else
//! on the machine moved the figure by half (quick runs gave 1.55–2.8 M
//! msg/s where a full run's 6.8 M records gave 4.31 M). So the partition is
//! read again, whole, until the passes add up to at least [`MIN_WINDOW`],
//! and the figure is all records read over all the time spent reading
//! them (not the best pass). A full run's single pass already takes longer.

use std::time::{Duration, Instant};

use anyhow::ensure;
use yak_client::{Consumer, StartAt, YakClient};

use super::rate;

/// The least reading time the figure is taken over (the Kafka consume
/// figure's too).
pub const MIN_WINDOW: Duration = Duration::from_millis(500);

/// Records per second, and how many were read.
pub struct ReadBack {
    pub msgs_per_s: f64,
    /// Records in the partition (read by each pass).
    pub records: u64,
}

/// Reads partition 0 of `topic` from the earliest offset to the
/// high-water mark it had when the read started.
pub async fn measure(client: &YakClient, topic: &str) -> anyhow::Result<ReadBack> {
    let detail = client.describe_topic(topic).await?;
    let partition = &detail.partitions[0];
    let (start, hwm) = (partition.log_start_offset, partition.high_water_mark);
    let (mut spent, mut total) = (Duration::ZERO, 0u64);
    loop {
        let mut consumer =
            Consumer::new(client.clone(), topic, 0, StartAt::Earliest).max_records(10_000);
        let started = Instant::now();
        let mut read = 0u64;
        while consumer.position().is_none_or(|p| p < hwm) {
            read += consumer.poll(Duration::ZERO).await?.len() as u64;
        }
        spent += started.elapsed();
        ensure!(
            read == hwm - start,
            "read {read} records of {topic}/0 where {} are stored (offsets {start} to {hwm})",
            hwm - start
        );
        total += read;
        if spent >= MIN_WINDOW || read == 0 {
            break;
        }
    }
    Ok(ReadBack {
        msgs_per_s: rate(total, spent),
        records: hwm - start,
    })
}
