//! `yak produce`: a value, every line of a file, or every row of a CSV file
//! (as a JSON object keyed by the header, in the file's column order, values
//! typed as `yak_client::fields` says), sent in batches by an idempotent
//! producer.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value};
use yak_client::{Producer, ProducerConfig, Record, fields};

use yak_client::{ClientConfig, ConnectArgs};

use super::out;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    bootstrap: ConnectArgs,
    /// Topic to send to (created on first produce if the cluster allows).
    topic: String,
    /// The value: JSON if it parses as JSON, otherwise a string.
    #[arg(conflicts_with_all = ["file", "csv"])]
    value: Option<String>,
    /// Send every line of this file as a record.
    #[arg(long, env = "YAK_PRODUCE_FILE", conflicts_with = "csv")]
    file: Option<PathBuf>,
    /// Send every row of this CSV file as a JSON object keyed by its header.
    #[arg(long, env = "YAK_PRODUCE_CSV")]
    csv: Option<PathBuf>,
    /// Key of every record.
    #[arg(long, env = "YAK_PRODUCE_KEY", conflicts_with = "key_column")]
    key: Option<String>,
    /// With --csv: the column whose value is each record's key.
    #[arg(long, env = "YAK_PRODUCE_KEY_COLUMN", requires = "csv")]
    key_column: Option<String>,
    /// With --csv: `infer` makes numbers and true/false JSON numbers and
    /// booleans (only where that keeps the text: `007` stays a string);
    /// `string` keeps every value a string.
    #[arg(long, env = "YAK_CSV_TYPES", value_enum, default_value_t = CsvTypes::Infer)]
    csv_types: CsvTypes,
    /// Send to this partition instead of choosing by key.
    #[arg(long, env = "YAK_PRODUCE_PARTITION")]
    partition: Option<u32>,
    /// Records per request.
    #[arg(long, env = "YAK_PRODUCE_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let producer = Producer::new(
        args.bootstrap.client(ClientConfig::default())?,
        ProducerConfig::default(),
    );
    let make = |payload: Value, key: Option<String>| Record {
        topic: args.topic.clone(),
        key: key.or_else(|| args.key.clone()),
        payload,
        partition: args.partition,
    };
    if let Some(value) = &args.value {
        let produced = producer.send(make(parse_value(value), None)).await?;
        out(format!(
            "{}/{}@{}",
            args.topic, produced.partition, produced.offset
        ));
        return Ok(());
    }
    let started = Instant::now();
    let mut batch = Vec::with_capacity(args.batch as usize);
    let mut counts = Counts::default();
    if let Some(path) = &args.file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            batch.push(make(parse_value(line), None));
            if batch.len() as u64 == args.batch {
                counts.flush(&producer, &mut batch).await;
            }
        }
    } else if let Some(path) = &args.csv {
        let mut reader =
            csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        let headers = fields::unique_headers(reader.headers()?.iter().map(str::to_owned));
        let typed = args.csv_types == CsvTypes::Infer;
        let key_index = match &args.key_column {
            Some(column) => Some(
                headers
                    .iter()
                    .position(|h| h == column)
                    .with_context(|| format!("no column {column:?} in {}", path.display()))?,
            ),
            None => None,
        };
        for row in reader.records() {
            // csv's own positions: a quoted field may span lines.
            let row = match row {
                Ok(row) => row,
                Err(e) => {
                    counts.failed += 1;
                    match e.position() {
                        Some(at) => eprintln!("yak: line {}: {e}", at.line()),
                        None => eprintln!("yak: {e}"),
                    }
                    continue;
                }
            };
            let object: Map<String, Value> = headers
                .iter()
                .zip(row.iter())
                .map(|(h, v)| (h.clone(), fields::field_value(v, typed)))
                .collect();
            let key = key_index.and_then(|i| row.get(i)).map(str::to_owned);
            batch.push(make(Value::Object(object), key));
            if batch.len() as u64 == args.batch {
                counts.flush(&producer, &mut batch).await;
            }
        }
    } else {
        bail!("give a value, --file or --csv");
    }
    if !batch.is_empty() {
        counts.flush(&producer, &mut batch).await;
    }
    let Counts { sent, failed } = counts;
    let secs = started.elapsed().as_secs_f64();
    out(format!(
        "sent {sent} records to {} in {secs:.2} s ({:.0}/s), {failed} failed",
        args.topic,
        sent as f64 / secs.max(1e-9)
    ));
    if failed > 0 {
        bail!("{failed} records were not sent");
    }
    Ok(())
}

/// How CSV values are typed (see `yak_client::fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CsvTypes {
    Infer,
    String,
}

#[derive(Default)]
struct Counts {
    sent: u64,
    failed: u64,
}

impl Counts {
    async fn flush(&mut self, producer: &Producer, batch: &mut Vec<Record>) {
        for result in producer.send_batch(batch).await {
            match result {
                Ok(_) => self.sent += 1,
                Err(e) => {
                    self.failed += 1;
                    eprintln!("yak: record not sent: {e}");
                }
            }
        }
        batch.clear();
    }
}

fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}
