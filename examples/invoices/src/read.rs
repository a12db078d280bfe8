//! Reading a whole topic, from each partition's first stored record up to
//! the high-water mark it had when the read started.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use yak_client::{Consumer, StartAt, YakClient};

/// Records per read request.
const MAX_RECORDS: usize = 1000;
/// How long one partition may go without progress below its high-water
/// mark before the read gives up (covers a failover).
const STALL: Duration = Duration::from_secs(30);

/// One topic's partitions and their high-water marks at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub topic: String,
    /// (partition, high-water mark).
    pub ends: Vec<(u32, u64)>,
}

/// The high-water marks of `topic` now.
pub async fn snapshot(client: &YakClient, topic: &str) -> anyhow::Result<Snapshot> {
    let detail = client
        .describe_topic(topic)
        .await
        .with_context(|| format!("describing {topic}"))?;
    Ok(Snapshot {
        topic: topic.to_owned(),
        ends: detail
            .partitions
            .iter()
            .map(|p| (p.partition, p.high_water_mark))
            .collect(),
    })
}

/// Every payload of `snapshot`'s topic below its high-water marks, in
/// partition then offset order. Records deleted by retention are skipped
/// (the consumer moves on to the log start).
pub async fn payloads(client: &YakClient, snapshot: &Snapshot) -> anyhow::Result<Vec<Value>> {
    let mut payloads = Vec::new();
    for &(partition, end) in snapshot.ends.iter().filter(|(_, end)| *end > 0) {
        let mut consumer = Consumer::new(
            client.clone(),
            &snapshot.topic,
            partition,
            StartAt::Earliest,
        )
        .max_records(MAX_RECORDS);
        let mut progress = Instant::now();
        while consumer.position().is_none_or(|at| at < end) {
            let records = consumer
                .poll(Duration::from_millis(500))
                .await
                .with_context(|| format!("reading {}/{partition}", snapshot.topic))?;
            if records.is_empty() {
                if progress.elapsed() > STALL {
                    bail!(
                        "{}/{partition}: no records below its high-water mark {end} for {STALL:?}",
                        snapshot.topic
                    );
                }
                continue;
            }
            progress = Instant::now();
            payloads.extend(
                records
                    .into_iter()
                    .take_while(|r| r.offset < end)
                    .map(|r| r.payload),
            );
        }
    }
    Ok(payloads)
}
