//! The Kafka figures: batched produce and consume through the nodes' Kafka
//! listener with a real Kafka client, kcat (librdkafka), next to the binary
//! port's figures of the same run.
//!
//! Produce runs one kcat per CPU (librdkafka is multi-threaded; more
//! processes only compete for the cores the nodes need), together as many
//! records as the binary phase, linger 5 ms and acks=all, each reading its
//! records from a file, so the bench process adds no load of its own; the
//! whole kcat runs are timed, start-up included. Consume reads partition 0
//! of the bench topic, the records the binary consume read, from the start
//! to the end, printing nothing but the offset; it is timed from the first
//! record to the last, like the binary consume's steady read (kcat's
//! start-up, tens of milliseconds, would otherwise dominate a quick run).

use std::{process::Stdio, time::Instant};

use anyhow::{Context, bail};
use futures_util::future::try_join_all;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Command,
};
use yak_client::YakClient;

use super::{Sizes, rate};

/// What kcat measured, and which kcat.
pub struct KafkaFigures {
    pub batched: f64,
    pub consume: f64,
    pub client: String,
}

/// The kcat on `PATH` and its librdkafka (from `kcat -V`: "Version
/// 1.7.1 (…, librdkafka 2.0.2 builtin.features=…)"), `None` if there is
/// none.
pub async fn client() -> Option<String> {
    let output = Command::new("kcat").arg("-V").output().await.ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("Version "))?;
    let kcat = line.split_whitespace().nth(1)?;
    Some(
        match line
            .split("librdkafka ")
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
        {
            Some(librdkafka) => format!("kcat {kcat} (librdkafka {librdkafka})"),
            None => format!("kcat {kcat}"),
        },
    )
}

/// Produces `sizes.batched_records` records with kcat (`client`, through
/// `bootstrap`) to a topic of their own, then reads partition 0 of the
/// bench topic `read_topic` (`records` of them) back.
pub async fn measure(
    client: &YakClient,
    (bootstrap, kcat): (&str, String),
    read_topic: &str,
    records: u64,
    value: &str,
    sizes: &Sizes,
) -> anyhow::Result<KafkaFigures> {
    let topic = &format!("{read_topic}-kafka");
    client.create_topic(topic, Some(3)).await?;
    let producers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_producer = sizes.batched_records / producers as u64;
    let scratch = tempfile::Builder::new()
        .prefix("yak-bench-kafka-")
        .tempdir()?;
    let input = scratch.path().join("records");
    let line = format!("{value}\n");
    std::fs::write(&input, line.repeat(per_producer as usize))
        .with_context(|| format!("writing {}", input.display()))?;
    let started = Instant::now();
    try_join_all((0..producers).map(|p| {
        let partition = (p % 3).to_string();
        let file = std::fs::File::open(&input);
        async move {
            let output = Command::new("kcat")
                .args(["-P", "-b", bootstrap, "-t", topic, "-p", &partition])
                .args(["-X", "acks=all", "-X", "linger.ms=5"])
                .stdin(Stdio::from(file?))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output()
                .await?;
            if !output.status.success() {
                bail!("kcat -P: {}", String::from_utf8_lossy(&output.stderr));
            }
            anyhow::Ok(())
        }
    }))
    .await?;
    let took = started.elapsed();
    let stored: u64 = client
        .describe_topic(topic)
        .await?
        .partitions
        .iter()
        .map(|p| p.high_water_mark)
        .sum();
    let sent = per_producer * producers as u64;
    if stored != sent {
        bail!("kcat sent {sent} records but {topic} holds {stored}");
    }
    let batched = rate(sent, took);

    let count = records.to_string();
    let mut child = Command::new("kcat")
        .args(["-C", "-b", bootstrap, "-t", read_topic, "-p", "0"])
        .args(["-o", "beginning", "-c", &count, "-e", "-q", "-f", "%o\n"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running kcat -C")?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut read = 0u64;
    let mut first = None;
    while lines.next_line().await?.is_some() {
        first.get_or_insert_with(Instant::now);
        read += 1;
    }
    let took = first.map(|f| f.elapsed()).unwrap_or_default();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).await?;
    }
    let status = child.wait().await?;
    if !status.success() || read != records {
        bail!("kcat -C read {read} of {records} records: {stderr}");
    }
    // From the first record to the last: `read - 1` records in `took`.
    Ok(KafkaFigures {
        batched,
        consume: rate(read.saturating_sub(1), took),
        client: kcat,
    })
}
