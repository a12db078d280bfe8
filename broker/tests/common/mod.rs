//! Helpers shared by the replication, failover, Redis-outage and
//! observability tests: a load of concurrent idempotent producers that
//! records every acknowledged record, the checks run on what they wrote,
//! small ISR/partition lookups, and reading a node's `/metrics`. Each test
//! file uses a different subset.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};
use testkit::{
    StatusCode, consume_all, describe_topic, http_client_with_timeout, try_send, wait_for,
};
use tokio::task::JoinHandle;

/// One acknowledged record: where the leader said it is, and what it is;
/// which node acknowledged it, and when its request was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Acked {
    pub partition: u32,
    pub offset: u64,
    pub payload: Value,
    pub by: String,
    pub sent: Instant,
}

/// `GET {url}/topics/{topic}` → the entry of `partition` (panics unless 200).
pub async fn partition_info(url: &str, topic: &str, partition: u32) -> Value {
    let (status, body) = describe_topic(url, topic).await;
    assert_eq!(status, StatusCode::OK, "GET {url}/topics/{topic}: {body}");
    body["partitions"][partition as usize].clone()
}

/// The `isr` list of a `GET /topics/{name}` partition entry.
pub fn isr_of(partition: &Value) -> Vec<String> {
    let mut isr: Vec<String> = partition["isr"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    isr.sort();
    isr
}

/// Waits until the leader at `leader` reports exactly `members` (any order)
/// as the ISR of every partition in `0..partitions`.
#[track_caller]
pub fn wait_for_isr<'a>(
    leader: &'a str,
    topic: &'a str,
    partitions: u32,
    members: &'a [&'a str],
    timeout: Duration,
) -> impl std::future::Future<Output = ()> + 'a {
    let caller = std::panic::Location::caller();
    let mut want: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    want.sort();
    async move {
        wait_for(
            format!("ISR {want:?} on every partition of {topic} (from {caller})"),
            timeout,
            || async {
                let (status, body) = describe_topic(leader, topic).await;
                if status != StatusCode::OK {
                    return None;
                }
                (0..partitions as usize)
                    .all(|p| isr_of(&body["partitions"][p]) == want)
                    .then_some(())
            },
        )
        .await;
    }
}

/// Produces one record on `url`, which must acknowledge it (200): what was
/// acknowledged, and how long it took.
pub async fn produce_one(
    url: &str,
    topic: &str,
    partition: u32,
    payload: Value,
) -> (Acked, Duration) {
    let sent = Instant::now();
    let (status, body) = testkit::produce(
        url,
        &json!({"topic": topic, "partition": partition, "payload": payload}),
    )
    .await;
    let took = sent.elapsed();
    assert_eq!(
        status,
        StatusCode::OK,
        "produce to {url} after {took:?}: {body}"
    );
    let acked = Acked {
        partition,
        offset: body["offset"].as_u64().expect("offset"),
        payload,
        by: url.to_owned(),
        sent,
    };
    (acked, took)
}

/// Produces `count` records `{"i": first..}` to `topic`/`partition` on
/// `url`, one request each, and returns what was acknowledged. Panics on
/// anything but 200.
pub async fn produce_n(
    url: &str,
    topic: &str,
    partition: u32,
    first: u64,
    count: u64,
) -> Vec<Acked> {
    let mut acked = Vec::new();
    for i in first..first + count {
        let payload = json!({"i": i, "text": format!("record {i} of {topic}/{partition}")});
        acked.push(produce_one(url, topic, partition, payload).await.0);
    }
    acked
}

/// Writes one record to every partition, then waits until every node in
/// `members` is in the ISR of every partition (a new partition starts with
/// every live node in it; this also covers nodes that joined since).
pub async fn open_partitions(
    leader: &str,
    topic: &str,
    partitions: u32,
    members: &[&str],
    wait: Duration,
) -> Vec<Acked> {
    let mut acked = Vec::new();
    for p in 0..partitions {
        acked.extend(produce_n(leader, topic, p, 0, 1).await);
    }
    wait_for_isr(leader, topic, partitions, members, wait).await;
    acked
}

/// Every committed record of `topic` on the node at `url`, per partition,
/// as offset → payload.
pub async fn read_all(url: &str, topic: &str, partitions: u32) -> Vec<BTreeMap<u64, Value>> {
    let mut all = Vec::new();
    for p in 0..partitions {
        let records = consume_all(url, topic, p).await;
        let mut by_offset = BTreeMap::new();
        let mut expected = records.first().and_then(|r| r["offset"].as_u64());
        for r in records {
            let offset = r["offset"].as_u64().expect("offset");
            assert_eq!(
                Some(offset),
                expected,
                "{topic}/{p} on {url}: offsets have a gap"
            );
            expected = Some(offset + 1);
            by_offset.insert(offset, r["payload"].clone());
        }
        all.push(by_offset);
    }
    all
}

/// Checks what the node at `url` serves of `topic`: every record in
/// `acked` is at its acknowledged offset with its payload, and no payload
/// is stored twice (anywhere in the topic). Returns the records read.
pub async fn assert_acked_readable(
    url: &str,
    topic: &str,
    partitions: u32,
    acked: &[Acked],
) -> Vec<BTreeMap<u64, Value>> {
    let stored = read_all(url, topic, partitions).await;
    let mut seen: HashMap<String, (u32, u64)> = HashMap::new();
    for (p, records) in stored.iter().enumerate() {
        for (offset, payload) in records {
            if let Some(first) = seen.insert(payload.to_string(), (p as u32, *offset)) {
                panic!(
                    "{topic} on {url}: payload {payload} stored twice, at {first:?} and at {:?}",
                    (p, offset)
                );
            }
        }
    }
    let mut offsets = HashMap::new();
    for a in acked {
        if let Some(other) = offsets.insert((a.partition, a.offset), &a.payload) {
            panic!(
                "two records acknowledged at {topic}/{} offset {}: {other} and {}",
                a.partition, a.offset, a.payload
            );
        }
        let got = stored
            .get(a.partition as usize)
            .and_then(|records| records.get(&a.offset));
        assert_eq!(
            got,
            Some(&a.payload),
            "{topic}/{} offset {} on {url}: acknowledged {}, stored {got:?}",
            a.partition,
            a.offset,
            a.payload
        );
    }
    stored
}

/// Concurrent idempotent producers writing to whichever node leads.
///
/// Each producer sends one record per request, `{"producer": k, "n": n}`
/// with its own `producer_id` and `sequence` n, to explicit partitions in
/// turn. It retries a record (same id and sequence, so a retry is never
/// stored twice) until it is acknowledged, following `307`s and moving to
/// another node on errors, and only then goes on to the next one. Every
/// `200` is recorded.
pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    count: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(urls: &[&str], topic: &str, partitions: u32, producers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicU64::new(0));
        let tasks = (0..producers)
            .map(|k| {
                let producer = Producer {
                    k,
                    id: rand::random_range(1..=i64::MAX as u64),
                    urls: urls.iter().map(|u| u.to_string()).collect(),
                    topic: topic.to_owned(),
                    partitions,
                    stop: Arc::clone(&stop),
                    acked: Arc::clone(&acked),
                    count: Arc::clone(&count),
                };
                tokio::spawn(producer.run())
            })
            .collect();
        Load {
            stop,
            acked,
            count,
            tasks,
        }
    }

    /// Records acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` more records than now are acknowledged.
    #[track_caller]
    pub fn wait_for_more(
        &self,
        n: u64,
        timeout: Duration,
    ) -> impl std::future::Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        let target = self.acked() + n;
        async move {
            wait_for(
                format!("{target} acknowledged records (from {caller})"),
                timeout,
                || async { (self.acked() >= target).then_some(()) },
            )
            .await;
        }
    }

    /// Stops the producers (a record in flight is abandoned) and returns
    /// every acknowledged record.
    pub async fn stop(self) -> Vec<Acked> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a producer task panicked");
        }
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

struct Producer {
    k: usize,
    id: u64,
    urls: Vec<String>,
    topic: String,
    partitions: u32,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    count: Arc<AtomicU64>,
}

impl Producer {
    async fn run(self) {
        let client = http_client_with_timeout(Duration::from_secs(5));
        let mut target = self.k % self.urls.len();
        let mut redirect: Option<String> = None;
        let mut sequence = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let partition = ((self.k as u64 + sequence) % u64::from(self.partitions)) as u32;
            let payload = json!({"producer": self.k, "n": sequence});
            let body = json!({
                "topic": self.topic, "partition": partition, "payload": payload,
                "producer_id": self.id, "sequence": sequence,
            });
            let url = redirect.take().unwrap_or_else(|| self.urls[target].clone());
            let sent = Instant::now();
            let reply = try_send(client.post(format!("{url}/produce")).json(&body)).await;
            match reply {
                Ok(reply) if reply.status == StatusCode::OK => {
                    let offset = reply.json["offset"].as_u64().expect("offset");
                    assert_eq!(reply.json["partition"], partition, "{}", reply.text);
                    self.acked.lock().unwrap().push(Acked {
                        partition,
                        offset,
                        payload,
                        by: url.clone(),
                        sent,
                    });
                    self.count.fetch_add(1, Ordering::Relaxed);
                    sequence += 1;
                    redirect = Some(url);
                }
                Ok(reply) if reply.status == StatusCode::TEMPORARY_REDIRECT => {
                    let leader = reply.json["leader_url"].as_str().map(str::to_owned);
                    if leader.as_deref() == Some(url.as_str()) || leader.is_none() {
                        target = (target + 1) % self.urls.len();
                    } else {
                        redirect = leader;
                    }
                }
                Ok(reply) => {
                    // 503 (no leader, fenced, unavailable, not enough
                    // replicas), or 408 from a node that was paused before
                    // it read the request: the same record again, maybe
                    // elsewhere.
                    assert!(
                        [StatusCode::SERVICE_UNAVAILABLE, StatusCode::REQUEST_TIMEOUT]
                            .contains(&reply.status),
                        "producer {}: {} {}",
                        self.k,
                        reply.status,
                        reply.text
                    );
                    target = (target + 1) % self.urls.len();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => {
                    target = (target + 1) % self.urls.len();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// A node's `/metrics`, parsed.
pub async fn scrape(node_url: &str) -> Scrape {
    let text = reqwest::get(format!("{node_url}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics body");
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid Prometheus text")
}

/// The value of `metric` with exactly these label values (0 if absent).
pub fn metric(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}
