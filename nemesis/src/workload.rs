//! The load on the cluster while faults run, and the observer:
//! - producers: idempotent [`yak_client::Producer`]s, one record per
//!   request, each with a payload no other write has (`c<client>-<n>`),
//!   spread over the partitions; each operation goes to the history with
//!   its outcome;
//! - consumers: one [`yak_client::Consumer`] per partition from offset 0,
//!   recording every record read and any read that does not continue
//!   exactly where the last one ended;
//! - the observer: polls Redis (directly, not through a proxy) for the
//!   latest epoch and every partition's HWM, and records each change.
//!
//! Invariant: clients connect from the cluster's client address, only
//! through the nodes' front proxies, so client link faults reach them; every task stops when
//! [`Workload::stop`] is called and finishes its operation in flight first
//! (an operation is never abandoned half-recorded).

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use broker::store::ClusterStore;
use serde_json::Value;
use tokio::task::JoinSet;
use yak_client::{
    ClientConfig, ClientError, Consumer, Producer, ProducerConfig, Record, StartAt, YakClient,
};

use crate::history::{Event, History, Op, Outcome, Read};

/// How much load.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub producers: u32,
    pub topic: String,
    pub partitions: u32,
}

/// The client settings of the workload: short timeouts, so a write stuck
/// behind a fault ends as `unknown` instead of blocking the producer.
pub fn client_config() -> ClientConfig {
    ClientConfig {
        deadline: Duration::from_secs(10),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        request_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
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
    /// Starts producers, consumers and the observer; their clients reach
    /// the front proxies `urls` from `from`.
    pub fn start(
        urls: &[String],
        from: IpAddr,
        store: ClusterStore,
        config: &WorkloadConfig,
        history: &History,
    ) -> Result<Self, ClientError> {
        let stop_producers = Arc::new(AtomicBool::new(false));
        let stop_readers = Arc::new(AtomicBool::new(false));
        let mut producers = JoinSet::new();
        let mut readers = JoinSet::new();
        for c in 0..config.producers {
            let producer = Producer::new(
                client(urls, from)?,
                ProducerConfig {
                    idempotent: true,
                    linger: Duration::ZERO,
                    max_batch: 1,
                },
            );
            producers.spawn(produce(
                c,
                producer,
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

async fn produce(
    client_id: u32,
    producer: Arc<Producer>,
    config: WorkloadConfig,
    history: History,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let partition = ((client_id as u64 + n) % config.partitions as u64) as u32;
        let payload = format!("c{client_id}-{n}");
        let record =
            Record::new(&config.topic, Value::String(payload.clone())).partition(partition);
        let invoke_ms = history.now_ms();
        let result = producer.send(record).await;
        let complete_ms = history.now_ms();
        let (outcome, offset, epoch, error) = match result {
            Ok(at) => {
                if at.partition != partition {
                    // Recorded as an ack at another partition: the checks
                    // will not find it where it was sent, and say so.
                    history.record(Event::Discontinuity {
                        at_ms: complete_ms,
                        partition,
                        message: format!(
                            "{payload} sent to partition {partition}, acknowledged on {}",
                            at.partition
                        ),
                    });
                }
                (Outcome::Ok, Some(at.offset), at.epoch, None)
            }
            Err(e) if e.is_not_written() => (Outcome::Fail, None, None, Some(e.to_string())),
            Err(e) => (Outcome::Unknown, None, None, Some(e.to_string())),
        };
        history.record(Event::Op(Op {
            invoke_ms,
            complete_ms,
            client: client_id,
            partition,
            payload,
            outcome,
            offset,
            epoch,
            error,
        }));
        if outcome != Outcome::Ok {
            // Not a synchronisation: keeps a client from spinning while
            // the cluster has no leader.
            tokio::time::sleep(Duration::from_millis(50)).await;
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
