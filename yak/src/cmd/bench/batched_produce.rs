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
use serde_json::value::to_raw_value;
use yak_client::{Producer, ProducerConfig, YakClient, model::RawRecord};

use super::{Sizes, rate};

/// Batches of `sizes.batch` records from `sizes.producers` producers, each
/// batch to one partition (the producers take turns over the three). With
/// `json`, through `POST /produce` (one JSON object per record, its payload
/// the value as a JSON string, `Producer::send_raw_batch`); otherwise
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
        // The JSON payload, a string of the value's bytes, serialized once
        // and sent by every record as it is, as a client holding JSON text
        // would (`RawRecord`); the request is still one JSON object per
        // record that the leader parses and checks.
        let payload = to_raw_value(&value).expect("a string serializes to JSON");
        let failed = Arc::clone(&failed);
        tokio::spawn(async move {
            for b in 0..batches {
                let partition = ((p as u64 + b) % 3) as u32;
                let bad = if json {
                    let records: Vec<RawRecord<'_>> = (0..batch)
                        .map(|_| RawRecord::new(&topic, &payload).partition(partition))
                        .collect();
                    let results = producer.send_raw_batch(&records).await;
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
