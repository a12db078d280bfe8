//! `yak-invoices generate`: produces invoices to `invoices.all`, keyed by
//! `invoice_id`, with the ordinary idempotent producer (a retry across a
//! failover stores nothing twice), after creating the pipeline's topics.

use std::{num::NonZeroU32, time::Duration};

use anyhow::bail;
use serde_json::Value;
use yak_client::{ClientConfig, ConnectArgs, Producer, ProducerConfig, Record, YakClient};

use crate::{source::SourceArgs, topics};

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Topic to produce to.
    #[arg(long, env = "YAK_INVOICES_TOPIC", default_value = topics::ALL)]
    pub topic: String,
    /// At most this many invoices per second [default: as fast as the
    /// cluster takes them].
    #[arg(long, env = "YAK_INVOICES_RATE")]
    pub rate: Option<NonZeroU32>,
}

/// Records per produce request when there is no rate.
const BATCH: usize = 500;

pub async fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let client = args.connect.client(ClientConfig::default())?;
    let invoices = args.source.load()?;
    println!(
        "generate: {} to {} ({} invoices)",
        args.source.describe(),
        args.topic,
        invoices.len()
    );
    produce(&client, &args.topic, invoices, args.rate).await?;
    Ok(())
}

/// Creates the pipeline's topics (`topic` instead of `invoices.all`) and
/// produces `invoices`, at most `rate` a second, printing progress.
/// Returns how many were produced; fails if any was not acknowledged.
pub async fn produce(
    client: &YakClient,
    topic: &str,
    invoices: Vec<Value>,
    rate: Option<NonZeroU32>,
) -> anyhow::Result<usize> {
    topics::ensure(client, &[topic, topics::VALID, topics::INVALID]).await?;
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    // With a rate, ten requests a second of rate/10 invoices each.
    let (batch, mut pace) = match rate {
        Some(rate) => {
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ((rate.get() as usize).div_ceil(10), Some(ticks))
        }
        None => (BATCH, None),
    };
    let total = invoices.len();
    let mut sent = 0;
    let mut last_report = 0;
    let records: Vec<Record> = invoices.into_iter().map(|i| record(topic, i)).collect();
    for chunk in records.chunks(batch) {
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }
        let failed: Vec<String> = producer
            .send_batch(chunk)
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        if let Some(first) = failed.first() {
            bail!(
                "{} of {} invoices not acknowledged after {sent} were: {first}",
                failed.len(),
                chunk.len()
            );
        }
        sent += chunk.len();
        if sent - last_report >= total.div_ceil(10).max(1) || sent == total {
            println!("generate: {sent}/{total} invoices acknowledged");
            last_report = sent;
        }
    }
    Ok(sent)
}

/// An invoice as a record of `topic`, keyed by its `invoice_id` (so all
/// versions of one invoice share a partition); unkeyed if it has none.
fn record(topic: &str, invoice: Value) -> Record {
    let key = invoice["invoice_id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let record = Record::new(topic, invoice);
    match key {
        Some(key) => record.key(key),
        None => record,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn invoices_are_keyed_by_their_id() {
        let keyed = record("t", json!({"invoice_id": "INV-1", "amount": 3}));
        assert_eq!(keyed.key.as_deref(), Some("INV-1"));
        assert_eq!(keyed.payload["amount"], 3);
        assert_eq!(record("t", json!({"invoice_id": ""})).key, None);
        assert_eq!(record("t", json!([1])).key, None);
    }
}
