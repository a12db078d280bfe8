//! The Kafka figures: batched produce and consume through the nodes' Kafka
//! listener, next to the binary port's figures of the same run.
//!
//! Batched produce is measured twice:
//! - with batches shaped like the binary phase's (the same producers, 1,000
//!   records per request, each acknowledged before the next, acks=-1 and
//!   idempotent), sent by the `kafka-client` crate: the listener's
//!   figure, what the Kafka protocol costs the nodes next to the binary
//!   port;
//! - with kcat (librdkafka), one process per CPU (librdkafka is
//!   multi-threaded; more processes only compete for the cores the nodes
//!   need), together as many records as the binary phase, linger 5 ms and
//!   acks=all, each reading its records from a file, so the bench process
//!   adds no load of its own; the whole kcat runs are timed, start-up
//!   included. This is what a real client gets on this machine, where the
//!   client shares the cores with the nodes.
//!
//! Consume is measured twice too, both reading partition 0 of the bench
//! topic, the records the binary consume read:
//! - by the `kafka-client` consumer, right after the binary consume and
//!   shaped like it ([`measure_consume`]): Fetch v12 answers of about 1 MiB
//!   (the binary consumer's 10,000 records per poll), one Fetch sent ahead,
//!   every batch decoded and CRC-checked by `kafka-protocol`, every value
//!   made a `String`; whole passes from the earliest offset to the
//!   high-water mark until they add up to the binary phase's window. The
//!   client spends about what the node does per record, so this is the
//!   listener's figure;
//! - with kcat, from the start to the end, printing nothing but the
//!   offset, timed from the first record to the last (kcat's start-up,
//!   tens of milliseconds, would otherwise dominate a quick run). kcat
//!   spends about twice the node's CPU per record, so on two shared cores
//!   this figure is kcat's more than the listener's: it stays as what a
//!   real client gets here.

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::future::try_join_all;
use kafka_client::{ConsumerConfig, KafkaConfig, KafkaConsumer, KafkaProducer, Start};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Command,
};
use yak_client::YakClient;

use super::{Sizes, consume::MIN_WINDOW, rate};

/// What the Kafka phase measured.
pub struct KafkaFigures {
    /// Batched produce with binary-phase-shaped batches (`kafka-client`).
    pub batched: f64,
    /// Consume of the binary consume's partition (`kafka-client`).
    pub consume: f64,
    /// The kcat figures, when kcat is installed.
    pub kcat: Option<KcatFigures>,
}

/// What kcat measured, and which kcat.
pub struct KcatFigures {
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

/// The binary phase's shape through the Kafka listener: `sizes.producers`
/// idempotent producers, each its own connection, each sending batches of
/// `sizes.batch` records one after the other, taking turns over the three
/// partitions, to a topic of their own. Producer ids, the leader and the
/// connections to it are fetched before the clock starts, as the binary
/// producers have theirs before they send.
/// It runs right after the binary phase, so that both meet the same
/// machine (page cache, pending flushes).
pub async fn produce_batches(
    client: &YakClient,
    bootstrap: &str,
    read_topic: &str,
    value: &str,
    sizes: &Sizes,
) -> anyhow::Result<f64> {
    let topic = &format!("{read_topic}-kafka");
    client.create_topic(topic, Some(3)).await?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(bootstrap)
        .await
        .with_context(|| format!("resolving the Kafka listener {bootstrap}"))?
        .collect();
    let config = KafkaConfig {
        deadline: Duration::from_secs(30),
        request_timeout: Duration::from_secs(10),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(1),
        local_address: None,
    };
    let producers = try_join_all((0..sizes.producers).map(|_| async {
        let mut producer = KafkaProducer::start(addrs.clone(), topic, config.clone()).await?;
        producer.connect(0..3).await?;
        Ok::<_, kafka_client::KafkaError>(producer)
    }))
    .await
    .context("starting the Kafka producers")?;
    let per_producer = sizes.batched_records / sizes.producers as u64;
    let batches = per_producer.div_ceil(sizes.batch as u64);
    let values: Arc<[Bytes]> = vec![Bytes::copy_from_slice(value.as_bytes()); sizes.batch].into();
    let started = Instant::now();
    let tasks = producers.into_iter().enumerate().map(|(p, mut producer)| {
        let values = Arc::clone(&values);
        tokio::spawn(async move {
            for b in 0..batches {
                let partition = ((p as u64 + b) % 3) as i32;
                producer.send(partition, &values).await?;
            }
            anyhow::Ok(())
        })
    });
    for task in try_join_all(tasks).await? {
        task.context("a Kafka producer failed")?;
    }
    let took = started.elapsed();
    let sent = batches * sizes.batch as u64 * sizes.producers as u64;
    let stored = stored(client, topic).await?;
    if stored != sent {
        bail!("the Kafka producers sent {sent} records but {topic} holds {stored}");
    }
    Ok(rate(sent, took))
}

/// Reads partition 0 of `topic` through the Kafka listener at `bootstrap`
/// the way [`super::consume::measure`] reads it through the binary port:
/// each pass a new consumer from the earliest offset (its first poll asks
/// ListOffsets) to the high-water mark the read started at, every record
/// decoded, a pass that reads another count fails the bench, passes
/// repeated until they add up to [`MIN_WINDOW`]; all records read over all
/// the time spent reading them. Connecting (Metadata, then the leader) is
/// outside the clock, as the binary client's pooled connection is.
pub async fn measure_consume(
    client: &YakClient,
    bootstrap: &str,
    topic: &str,
) -> anyhow::Result<f64> {
    let detail = client.describe_topic(topic).await?;
    let partition = &detail.partitions[0];
    let (start, hwm) = (partition.log_start_offset, partition.high_water_mark);
    let addr = tokio::net::lookup_host(bootstrap)
        .await
        .with_context(|| format!("resolving the Kafka listener {bootstrap}"))?
        .next()
        .with_context(|| format!("{bootstrap} resolves to no address"))?;
    let end = i64::try_from(hwm)?;
    let (mut spent, mut total) = (Duration::ZERO, 0u64);
    loop {
        let config = ConsumerConfig::default();
        let mut consumer = KafkaConsumer::connect(addr, topic, 0, Start::Earliest, config)
            .await
            .context("connecting the Kafka consumer")?;
        let started = Instant::now();
        let mut read = 0u64;
        while consumer.position().is_none_or(|p| p < end) {
            read += consumer.poll(end).await?.len() as u64;
        }
        spent += started.elapsed();
        if read != hwm - start {
            bail!(
                "the Kafka consumer read {read} records of {topic}/0 where {} are stored (offsets {start} to {hwm})",
                hwm - start
            );
        }
        total += read;
        if spent >= MIN_WINDOW || read == 0 {
            break;
        }
    }
    Ok(rate(total, spent))
}

/// The records a topic holds: the sum of its partitions' HWMs.
async fn stored(client: &YakClient, topic: &str) -> anyhow::Result<u64> {
    Ok(client
        .describe_topic(topic)
        .await?
        .partitions
        .iter()
        .map(|p| p.high_water_mark)
        .sum())
}

/// Produces `sizes.batched_records` records with kcat (`client`, through
/// `bootstrap`) to a topic of their own, then reads partition 0 of the
/// bench topic `read_topic` (`records` of them) back.
pub async fn measure_kcat(
    client: &YakClient,
    (bootstrap, kcat): (&str, String),
    read_topic: &str,
    records: u64,
    value: &str,
    sizes: &Sizes,
) -> anyhow::Result<KcatFigures> {
    let topic = &format!("{read_topic}-kcat");
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
    let stored = stored(client, topic).await?;
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
    Ok(KcatFigures {
        batched,
        consume: rate(read.saturating_sub(1), took),
        client: kcat,
    })
}
