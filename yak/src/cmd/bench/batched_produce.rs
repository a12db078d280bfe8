//! Phase 1, batched produce: the throughput of batches of records from
//! several producers at once, as binary batches and as JSON.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use anyhow::bail;
use futures_util::future::join_all;
use serde_json::Value;
use yak_client::{Producer, ProducerConfig, Record, YakClient};

use super::{Sizes, rate};

/// Batches of `sizes.batch` records from `sizes.producers` producers, each
/// batch to one partition (the producers take turns over the three). With
/// `json`, through `POST /produce` (one JSON object per record); otherwise
/// as binary batches through `POST /produce/batch`. Returns records per
/// second.
pub async fn measure(
    client: &YakClient,
    topic: &str,
    value: &str,
    sizes: &Sizes,
    json: bool,
) -> anyhow::Result<f64> {
    let per_producer = sizes.batched_records / sizes.producers as u64;
    let batches = per_producer.div_ceil(sizes.batch as u64);
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks = (0..sizes.producers).map(|p| {
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        let (topic, value, batch) = (topic.to_owned(), value.to_owned(), sizes.batch);
        let failed = Arc::clone(&failed);
        tokio::spawn(async move {
            for b in 0..batches {
                let partition = ((p as u64 + b) % 3) as u32;
                let bad = if json {
                    let records: Vec<Record> = (0..batch)
                        .map(|_| {
                            Record::new(&topic, Value::String(value.clone())).partition(partition)
                        })
                        .collect();
                    let results = producer.send_batch(&records).await;
                    results.iter().filter(|r| r.is_err()).count()
                } else {
                    let records = (0..batch).map(|_| (None, value.as_bytes()));
                    match producer.send_records(&topic, partition, records).await {
                        Ok(_) => 0,
                        Err(_) => batch,
                    }
                };
                failed.fetch_add(bad as u64, Ordering::Relaxed);
            }
        })
    });
    for task in join_all(tasks).await {
        task?;
    }
    let took = started.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} records failed in the batched produce");
    }
    Ok(rate(
        batches * sizes.batch as u64 * sizes.producers as u64,
        took,
    ))
}
