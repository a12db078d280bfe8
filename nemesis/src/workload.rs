//! The load on the cluster while faults run, and the observer:
//! - producers, three kinds side by side, each write with a payload no
//!   other write has (`<c|b|k><client>-<n>`), spread over the partitions;
//!   each record goes to the history as one operation with its outcome:
//!   - HTTP: idempotent [`yak_client::Producer`]s, one JSON record per
//!     `POST /produce`;
//!   - binary: idempotent [`yak_client::Producer`]s sending batches of 1
//!     to [`BINARY_MAX_BATCH`] records over the leader's binary produce
//!     port (`send_records`; the nodes advertise the port's proxy);
//!   - Kafka: idempotent [`KafkaProducer`]s (producer id, per-partition
//!     sequences) sending batches of 1 to [`KAFKA_MAX_BATCH`] records as
//!     Produce v9, acks=-1, through the nodes' Kafka listeners;
//! - consumers: one [`yak_client::Consumer`] per partition from offset 0,
//!   recording every record read and any read that does not continue
//!   exactly where the last one ended;
//! - the observer: polls Redis (directly, not through a proxy) for the
//!   latest epoch and every partition's HWM, and records each change.
//!
//! Invariant: clients connect from the cluster's client address, only
//! through the nodes' front proxies (HTTP, binary port and Kafka each have
//! theirs), so client link faults reach every transport; every task stops
//! when [`Workload::stop`] is called and finishes its operation in flight
//! first (an operation is never abandoned half-recorded).

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use broker::store::ClusterStore;
use bytes::Bytes;
use serde_json::Value;
use tokio::task::JoinSet;
use yak_client::{
    ClientConfig, ClientError, Consumer, Producer, ProducerConfig, Record, StartAt, YakClient,
};

use kafka_client::{KafkaConfig, KafkaProducer};

use crate::history::{Event, History, Op, Outcome, Read, Transport};

/// Most records in one binary-port request.
pub const BINARY_MAX_BATCH: u64 = 4;
/// Most records in one Kafka produce request.
pub const KAFKA_MAX_BATCH: u64 = 3;

/// How much load.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// HTTP producers.
    pub producers: u32,
    /// Producers over the binary produce port.
    pub binary_producers: u32,
    /// Kafka producers.
    pub kafka_producers: u32,
    pub topic: String,
    pub partitions: u32,
}

/// Where the clients connect: the nodes' front proxies, from one address.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// HTTP URLs (the binary port is found through them).
    pub urls: Vec<String>,
    /// Kafka bootstrap addresses.
    pub kafka: Vec<SocketAddr>,
    /// The address every client connects from.
    pub from: IpAddr,
}

/// The client settings of the workload: short timeouts, so a write stuck
/// behind a fault ends as `unknown` instead of blocking the producer.
pub fn client_config() -> ClientConfig {
    ClientConfig {
        deadline: Duration::from_secs(10),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        request_timeout: Duration::from_secs(3),
        // Binary batches go over the leader's binary port.
        tcp: true,
        ..ClientConfig::default()
    }
}

/// The Kafka producers' settings: [`client_config`]'s timeouts.
pub fn kafka_config(from: IpAddr) -> KafkaConfig {
    let http = client_config();
    KafkaConfig {
        deadline: http.deadline,
        request_timeout: http.request_timeout,
        min_backoff: http.min_backoff,
        max_backoff: http.max_backoff,
        local_address: Some(from),
    }
}

/// A client through the front proxies `urls`, connecting from `from`.
pub fn client(urls: &[String], from: IpAddr) -> Result<YakClient, ClientError> {
    YakClient::with_config(urls.iter().cloned(), client_config())?.with_local_address(from)
}

/// The running workload.
#[derive(Debug)]
pub struct Workload {
    stop_producers: Arc<AtomicBool>,
    stop_readers: Arc<AtomicBool>,
    producers: JoinSet<()>,
    readers: JoinSet<()>,
}

impl Workload {
    /// Starts producers, consumers and the observer. Client ids: HTTP
    /// producers first, then binary, then Kafka.
    pub fn start(
        endpoints: &Endpoints,
        store: ClusterStore,
        config: &WorkloadConfig,
        history: &History,
    ) -> Result<Self, ClientError> {
        let Endpoints { urls, kafka, from } = endpoints;
        let from = *from;
        let stop_producers = Arc::new(AtomicBool::new(false));
        let stop_readers = Arc::new(AtomicBool::new(false));
        let mut producers = JoinSet::new();
        let mut readers = JoinSet::new();
        let idempotent = |max_batch| ProducerConfig {
            idempotent: true,
            linger: Duration::ZERO,
            max_batch,
        };
        let binary = config.producers..config.producers + config.binary_producers;
        let kafka_ids = binary.end..binary.end + config.kafka_producers;
        for c in 0..config.producers {
            let producer = Producer::new(client(urls, from)?, idempotent(1));
            producers.spawn(produce(
                c,
                producer,
                config.clone(),
                history.clone(),
                Arc::clone(&stop_producers),
            ));
        }
        for c in binary {
            let producer =
                Producer::new(client(urls, from)?, idempotent(BINARY_MAX_BATCH as usize));
            producers.spawn(produce_binary(
                c,
                producer,
                config.clone(),
                history.clone(),
                Arc::clone(&stop_producers),
            ));
        }
        for c in kafka_ids {
            producers.spawn(produce_kafka(
                c,
                kafka_config(from),
                kafka.clone(),
                config.clone(),
                history.clone(),
                Arc::clone(&stop_producers),
            ));
        }
        for partition in 0..config.partitions {
            let consumer = Consumer::new(
                client(urls, from)?,
                &config.topic,
                partition,
                StartAt::Offset(0),
            );
            readers.spawn(consume(
                consumer,
                history.clone(),
                Arc::clone(&stop_readers),
            ));
        }
        readers.spawn(observe(
            store,
            config.clone(),
            history.clone(),
            Arc::clone(&stop_readers),
        ));
        Ok(Self {
            stop_producers,
            stop_readers,
            producers,
            readers,
        })
    }

    /// Stops the producers and waits for their last operations.
    pub async fn stop_producers(&mut self) {
        self.stop_producers.store(true, Ordering::Relaxed);
        while self.producers.join_next().await.is_some() {}
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        self.stop_producers().await;
        self.stop_readers.store(true, Ordering::Relaxed);
        while self.readers.join_next().await.is_some() {}
    }
}

/// What became of one request's records.
enum Sent {
    /// Acknowledged: the offset of the first record, the partition and
    /// record count the answer names (`None`: it names none), the epoch.
    Acked {
        offset: u64,
        partition: Option<u32>,
        count: Option<u32>,
        epoch: Option<u64>,
    },
    /// Certainly not stored.
    NotWritten(String),
    /// May or may not be stored.
    Unknown(String),
}

/// Records one operation per record of a request sent to `partition`:
/// the request's times and outcome, and, if acknowledged, the record's
/// offset (the first's plus its place in the batch).
fn record_request(
    history: &History,
    (client, transport): (u32, Transport),
    partition: u32,
    payloads: Vec<String>,
    invoke_ms: u64,
    sent: Sent,
) {
    let complete_ms = history.now_ms();
    let (outcome, first, epoch, error) = match sent {
        Sent::Acked {
            offset,
            partition: at,
            count,
            epoch,
        } => {
            let mismatch = match (at, count) {
                (Some(at), _) if at != partition => Some(format!("acknowledged on {at}")),
                (_, Some(count)) if count as usize != payloads.len() => {
                    Some(format!("acknowledged as {count} records"))
                }
                _ => None,
            };
            if let Some(mismatch) = mismatch {
                // Recorded as acknowledged anyway: the checks will not find
                // the records where they were sent, and say so.
                history.record(Event::Discontinuity {
                    at_ms: complete_ms,
                    partition,
                    message: format!(
                        "{} records from {} sent to partition {partition}, {mismatch}",
                        payloads.len(),
                        payloads[0]
                    ),
                });
            }
            (Outcome::Ok, Some(offset), epoch, None)
        }
        Sent::NotWritten(e) => (Outcome::Fail, None, None, Some(e)),
        Sent::Unknown(e) => (Outcome::Unknown, None, None, Some(e)),
    };
    for (i, payload) in payloads.into_iter().enumerate() {
        history.record(Event::Op(Op {
            invoke_ms,
            complete_ms,
            client,
            transport,
            partition,
            payload,
            outcome,
            offset: first.map(|o| o + i as u64),
            epoch,
            error: error.clone(),
        }));
    }
}

/// The partition and size of a client's `n`th request: clients start on
/// different partitions and every one visits them all; batch sizes cycle
/// through 1 ..= `max_batch`.
fn next_request(client: u32, n: u64, partitions: u32, max_batch: u64) -> (u32, u64) {
    let partition = ((u64::from(client) + n) % u64::from(partitions)) as u32;
    (partition, n % max_batch + 1)
}

/// `count` fresh payloads `<prefix><client>-<n>`, `n` counting on from
/// `last`.
fn payloads(prefix: char, client: u32, last: &mut u64, count: u64) -> Vec<String> {
    (0..count)
        .map(|_| {
            *last += 1;
            format!("{prefix}{client}-{last}")
        })
        .collect()
}

/// Not a synchronisation: keeps a client from spinning while the cluster
/// has no leader.
async fn pause_after_failure() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// An HTTP producer: one JSON record per `POST /produce`.
async fn produce(
    client_id: u32,
    producer: Arc<Producer>,
    config: WorkloadConfig,
    history: History,
    stop: Arc<AtomicBool>,
) {
    let mut last = 0u64;
    for n in 1.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (partition, _) = next_request(client_id, n, config.partitions, 1);
        let payload = payloads('c', client_id, &mut last, 1);
        let record =
            Record::new(&config.topic, Value::String(payload[0].clone())).partition(partition);
        let invoke_ms = history.now_ms();
        let sent = match producer.send(record).await {
            Ok(at) => Sent::Acked {
                offset: at.offset,
                partition: Some(at.partition),
                count: None,
                epoch: at.epoch,
            },
            Err(e) if e.is_not_written() => Sent::NotWritten(e.to_string()),
            Err(e) => Sent::Unknown(e.to_string()),
        };
        let failed = !matches!(sent, Sent::Acked { .. });
        let who = (client_id, Transport::Http);
        record_request(&history, who, partition, payload, invoke_ms, sent);
        if failed {
            pause_after_failure().await;
        }
    }
}

/// A binary-port producer: batches of 1 to [`BINARY_MAX_BATCH`] records
/// over the leader's binary produce port (`Producer::send_records`).
async fn produce_binary(
    client_id: u32,
    producer: Arc<Producer>,
    config: WorkloadConfig,
    history: History,
    stop: Arc<AtomicBool>,
) {
    let mut last = 0u64;
    for n in 1.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (partition, size) = next_request(client_id, n, config.partitions, BINARY_MAX_BATCH);
        let payload = payloads('b', client_id, &mut last, size);
        let records = payload.iter().map(|p| (None, p.as_bytes()));
        let invoke_ms = history.now_ms();
        let sent = match producer
            .send_records(&config.topic, partition, records)
            .await
        {
            Ok(at) => Sent::Acked {
                offset: at.offset,
                partition: Some(at.partition),
                count: Some(at.count),
                epoch: at.epoch,
            },
            Err(e) if e.is_not_written() => Sent::NotWritten(e.to_string()),
            Err(e) => Sent::Unknown(e.to_string()),
        };
        let failed = !matches!(sent, Sent::Acked { .. });
        let who = (client_id, Transport::Binary);
        record_request(&history, who, partition, payload, invoke_ms, sent);
        if failed {
            pause_after_failure().await;
        }
    }
}

/// A Kafka producer: idempotent batches of 1 to [`KAFKA_MAX_BATCH`]
/// records through the nodes' Kafka listeners ([`KafkaProducer`]).
async fn produce_kafka(
    client_id: u32,
    kafka: KafkaConfig,
    bootstrap: Vec<SocketAddr>,
    config: WorkloadConfig,
    history: History,
    stop: Arc<AtomicBool>,
) {
    let mut producer = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match KafkaProducer::start(bootstrap.clone(), &config.topic, kafka.clone()).await {
            Ok(producer) => break producer,
            Err(_) => pause_after_failure().await,
        }
    };
    let mut last = 0u64;
    for n in 1.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (partition, size) = next_request(client_id, n, config.partitions, KAFKA_MAX_BATCH);
        let payload = payloads('k', client_id, &mut last, size);
        let values: Vec<Bytes> = payload.iter().map(|p| Bytes::from(p.clone())).collect();
        let invoke_ms = history.now_ms();
        let sent = match producer.send(partition as i32, &values).await {
            Ok(offset) => Sent::Acked {
                offset: offset as u64,
                partition: None,
                count: None,
                // A Kafka answer carries no YAK epoch: check 7 skips it.
                epoch: None,
            },
            Err(e) if !e.maybe_written => Sent::NotWritten(e.to_string()),
            Err(e) => Sent::Unknown(e.to_string()),
        };
        let failed = !matches!(sent, Sent::Acked { .. });
        let who = (client_id, Transport::Kafka);
        record_request(&history, who, partition, payload, invoke_ms, sent);
        if failed {
            pause_after_failure().await;
        }
    }
}

async fn consume(mut consumer: Consumer, history: History, stop: Arc<AtomicBool>) {
    let partition = consumer.partition();
    while !stop.load(Ordering::Relaxed) {
        let expected = consumer.position();
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => {
                let at_ms = history.now_ms();
                if let (Some(first), Some(expected)) = (records.first(), expected)
                    && first.offset != expected
                {
                    history.record(Event::Discontinuity {
                        at_ms,
                        partition,
                        message: format!(
                            "read starts at {} but the last one ended at {expected}",
                            first.offset
                        ),
                    });
                }
                for r in records {
                    history.record(Event::Read(Read {
                        at_ms,
                        partition,
                        offset: r.offset,
                        payload: payload_text(&r.payload),
                    }));
                }
            }
            Err(ClientError::Decode { message, .. }) => {
                history.record(Event::Discontinuity {
                    at_ms: history.now_ms(),
                    partition,
                    message,
                });
            }
            // Faults: try again in a moment.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A payload as the workload wrote it (a JSON string), or its JSON text.
pub fn payload_text(payload: &Value) -> String {
    match payload {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn observe(
    store: ClusterStore,
    config: WorkloadConfig,
    history: History,
    stop: Arc<AtomicBool>,
) {
    let mut epoch = 0;
    let mut hwms = vec![0u64; config.partitions as usize];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((_, seen)) = store.lease().await
            && seen != epoch
        {
            epoch = seen;
            history.record(Event::Epoch {
                at_ms: history.now_ms(),
                epoch,
            });
        }
        for (partition, last) in hwms.iter_mut().enumerate() {
            if let Ok(hwm) = store.hwm(&config.topic, partition as u32).await
                && hwm != *last
            {
                *last = hwm;
                history.record(Event::Hwm {
                    at_ms: history.now_ms(),
                    partition: partition as u32,
                    hwm,
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(history: &History) -> Vec<Op> {
        history
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Op(op) => Some(op),
                _ => None,
            })
            .collect()
    }

    /// A batch's records are one operation each, at the base offset plus
    /// their place in the batch, with the batch's outcome.
    #[test]
    fn a_batch_is_one_operation_per_record() {
        let history = History::new();
        let sent = Sent::Acked {
            offset: 10,
            partition: Some(1),
            count: Some(3),
            epoch: Some(2),
        };
        let payloads = payloads('b', 4, &mut 0, 3);
        record_request(&history, (4, Transport::Binary), 1, payloads, 0, sent);
        let ops = ops(&history);
        let at: Vec<(&str, Option<u64>)> =
            ops.iter().map(|o| (o.payload.as_str(), o.offset)).collect();
        assert_eq!(
            at,
            [("b4-1", Some(10)), ("b4-2", Some(11)), ("b4-3", Some(12))]
        );
        assert!(ops.iter().all(|o| o.outcome == Outcome::Ok
            && o.epoch == Some(2)
            && o.transport == Transport::Binary));

        let unknown = Sent::Unknown("timed out".to_owned());
        record_request(
            &history,
            (5, Transport::Kafka),
            0,
            vec!["k5-1".into()],
            0,
            unknown,
        );
        let last = ops_last(&history);
        assert_eq!((last.outcome, last.offset), (Outcome::Unknown, None));
    }

    fn ops_last(history: &History) -> Op {
        ops(history).pop().expect("an operation")
    }

    /// An answer for another partition or another record count is
    /// recorded, and flagged for the checks.
    #[test]
    fn a_mismatched_answer_is_a_discontinuity() {
        let history = History::new();
        let sent = Sent::Acked {
            offset: 0,
            partition: Some(1),
            count: Some(2),
            epoch: None,
        };
        record_request(
            &history,
            (0, Transport::Binary),
            1,
            payloads('b', 0, &mut 0, 3),
            0,
            sent,
        );
        let flagged = history
            .events()
            .iter()
            .any(|e| matches!(e, Event::Discontinuity { message, .. } if message.contains("as 2 records")));
        assert!(flagged);
    }

    #[test]
    fn requests_visit_every_partition_with_every_batch_size() {
        let requests: Vec<(u32, u64)> = (1..=12).map(|n| next_request(1, n, 3, 4)).collect();
        for partition in 0..3 {
            for size in 1..=4 {
                assert!(requests.contains(&(partition, size)), "{partition} {size}");
            }
        }
    }
}
