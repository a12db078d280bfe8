//! The client through a failover, against real nodes and a real
//! `redis-server` (the broker's testkit): the idempotent [`Producer`]
//! retries every send (JSON over HTTP, binary batches over the leader's
//! binary port) through a `kill -9` of the leader, and afterwards each
//! acknowledged record is stored exactly once at its acknowledged offset; a
//! [`Consumer`] reading while the leader dies resumes at the next offset,
//! skipping and repeating nothing.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use testkit::{Cluster, describe_topic, wait_for};
use tokio::sync::Semaphore;
use yak_client::{Consumer, Producer, ProducerConfig, Record, StartAt, YakClient};

const TTL_MS: u64 = 1000;
const WAIT: Duration = Duration::from_secs(20);

/// A broker and a follower, a client bootstrapped with both, and `topic`
/// with `partitions` partitions whose ISR holds both nodes (one record was
/// sent to each partition for that; they are returned).
async fn setup(
    topic: &str,
    partitions: u32,
) -> (Cluster, YakClient, Arc<Producer>, Vec<(Value, u32, u64)>) {
    let cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(TTL_MS)
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    let urls: Vec<String> = cluster.nodes().iter().map(|n| n.url().to_owned()).collect();
    let client = YakClient::new(urls).expect("a client");
    client
        .create_topic(topic, Some(partitions))
        .await
        .expect("topic created");
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut sent = Vec::new();
    for p in 0..partitions {
        let payload = json!({"opens": p});
        let at = producer
            .send(Record::new(topic, payload.clone()).partition(p))
            .await
            .expect("acknowledged");
        assert_eq!(at.partition, p);
        sent.push((payload, at.partition, at.offset));
    }
    // The follower may only lead once it is in the ISR of every partition.
    let leader = cluster.broker().url().to_owned();
    wait_for("the follower in every ISR", WAIT, || async {
        let (_, body) = describe_topic(&leader, topic).await;
        let partitions = body["partitions"].as_array()?;
        partitions
            .iter()
            .all(|p| p["isr"].as_array().is_some_and(|isr| isr.len() == 2))
            .then_some(())
    })
    .await;
    (cluster, client, producer, sent)
}

/// Reads every partition of `topic` in full through the client (from the
/// earliest offset until a poll returns nothing) → per partition, offset →
/// payload. Panics if a record is returned twice.
async fn read_everything(
    client: &YakClient,
    topic: &str,
    partitions: u32,
) -> Vec<BTreeMap<u64, Value>> {
    let mut all = Vec::new();
    for p in 0..partitions {
        let mut consumer = Consumer::new(client.clone(), topic, p, StartAt::Earliest);
        let mut records = BTreeMap::new();
        loop {
            let page = consumer.poll(Duration::ZERO).await.expect("consume");
            if page.is_empty() {
                break;
            }
            for r in page {
                let offset = r.offset;
                assert!(
                    records.insert(offset, r.payload).is_none(),
                    "{topic}/{p} offset {offset} returned twice"
                );
            }
        }
        all.push(records);
    }
    all
}

#[tokio::test]
async fn every_send_through_a_leader_kill_is_stored_once_at_its_offset() {
    const TOPIC: &str = "orders";
    const PARTITIONS: u32 = 3;
    let (mut cluster, client, producer, opened) = setup(TOPIC, PARTITIONS).await;
    let sent = Arc::new(Mutex::new(opened));
    let done = Arc::new(AtomicU64::new(0));
    let after_kill = Arc::new(AtomicU64::new(0));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();

    // Three streams of sends: single records and batches, without keys (the
    // broker spreads them) and with keys; the third sends binary batches
    // (over the leader's binary port).
    let mut streams: Vec<_> = (0..2)
        .map(|stream| {
            let producer = Arc::clone(&producer);
            let (sent, done) = (Arc::clone(&sent), Arc::clone(&done));
            let (after_kill, killed_at) = (Arc::clone(&after_kill), Arc::clone(&killed_at));
            tokio::spawn(async move {
                for i in 0..60u64 {
                    let records: Vec<Record> = if i % 3 == 0 {
                        (0..4)
                            .map(|j| {
                                let payload = json!({"stream": stream, "i": i, "j": j});
                                Record::new(TOPIC, payload).key(format!("key-{}", (i + j) % 7))
                            })
                            .collect()
                    } else {
                        vec![Record::new(TOPIC, json!({"stream": stream, "i": i}))]
                    };
                    let results = if records.len() == 1 {
                        vec![producer.send(records[0].clone()).await]
                    } else {
                        producer.send_batch(&records).await
                    };
                    let finished = Instant::now();
                    for (record, result) in records.iter().zip(results) {
                        let at = result.unwrap_or_else(|e| {
                            panic!("send {} failed through the failover: {e}", record.payload)
                        });
                        sent.lock().unwrap().push((
                            record.payload.clone(),
                            at.partition,
                            at.offset,
                        ));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    if killed_at.lock().unwrap().is_some_and(|k| finished > k) {
                        after_kill.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    streams.push({
        let producer = Arc::clone(&producer);
        let (sent, done) = (Arc::clone(&sent), Arc::clone(&done));
        tokio::spawn(async move {
            for i in 0..60u64 {
                let payloads = [json!({"binary": i, "j": 0}), json!({"binary": i, "j": 1})];
                let bytes: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_string().into()).collect();
                let partition = (i % 3) as u32;
                let at = producer
                    .send_records(TOPIC, partition, bytes.iter().map(|b| (None, b.as_slice())))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("binary batch {i} failed through the failover: {e}")
                    });
                assert_eq!((at.partition, at.count), (partition, 2));
                let mut sent = sent.lock().unwrap();
                for (k, payload) in payloads.into_iter().enumerate() {
                    sent.push((payload, partition, at.offset + k as u64));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    });

    wait_for("30 sends acknowledged", WAIT, || async {
        (done.load(Ordering::Relaxed) >= 30).then_some(())
    })
    .await;
    cluster.broker_mut().kill9();
    *killed_at.lock().unwrap() = Some(Instant::now());
    for stream in streams {
        stream.await.expect("every send succeeded");
    }
    assert!(
        after_kill.load(Ordering::Relaxed) >= 20,
        "the leader died in the middle of the stream ({} sends after it)",
        after_kill.load(Ordering::Relaxed)
    );
    let leader = cluster
        .leader_info()
        .await
        .expect("a leader after the stream");
    assert_eq!(leader.id, "follower-1");

    // Every acknowledged payload is stored exactly once, at its offset, and
    // nothing else is stored.
    let sent = sent.lock().unwrap().clone();
    let stored = read_everything(&client, TOPIC, PARTITIONS).await;
    let mut where_stored: HashMap<String, Vec<(u32, u64)>> = HashMap::new();
    for (p, records) in stored.iter().enumerate() {
        for (offset, payload) in records {
            where_stored
                .entry(payload.to_string())
                .or_default()
                .push((p as u32, *offset));
        }
    }
    for (payload, partition, offset) in &sent {
        let found = where_stored.get(&payload.to_string());
        assert_eq!(
            found.map(Vec::as_slice),
            Some(&[(*partition, *offset)][..]),
            "{payload} was acknowledged at {partition}/{offset}"
        );
    }
    let total: usize = stored.iter().map(BTreeMap::len).sum();
    assert_eq!(
        total,
        sent.len(),
        "records stored that were never acknowledged"
    );
}

#[tokio::test]
async fn a_consumer_reading_through_a_leader_kill_skips_and_repeats_nothing() {
    const TOPIC: &str = "feed";
    let (mut cluster, client, producer, mut sent) = setup(TOPIC, 1).await;
    for i in 0..30 {
        let payload = json!({"before": i});
        let at = producer
            .send(Record::new(TOPIC, payload.clone()).partition(0))
            .await
            .expect("acknowledged");
        sent.push((payload, at.partition, at.offset));
    }
    let total = sent.len() + 30;

    // The consumer polls only when given a permit, so the leader dies while
    // it is part-way through the records, for sure.
    let permits = Arc::new(Semaphore::new(0));
    let read: Arc<Mutex<Vec<(u64, Value)>>> = Arc::default();
    let reader = {
        let (client, permits, read) = (client.clone(), Arc::clone(&permits), Arc::clone(&read));
        tokio::spawn(async move {
            let mut consumer = Consumer::new(client, TOPIC, 0, StartAt::Earliest).max_records(4);
            while read.lock().unwrap().len() < total {
                permits.acquire().await.expect("open").forget();
                let page = consumer
                    .poll(Duration::from_millis(200))
                    .await
                    .unwrap_or_else(|e| panic!("poll failed through the failover: {e}"));
                let mut read = read.lock().unwrap();
                read.extend(page.into_iter().map(|r| (r.offset, r.payload)));
                if let Some(&(last, _)) = read.last() {
                    assert_eq!(consumer.position(), Some(last + 1));
                }
            }
        })
    };
    permits.add_permits(3);
    wait_for("12 records read", WAIT, || async {
        (read.lock().unwrap().len() >= 12).then_some(())
    })
    .await;
    cluster.broker_mut().kill9();
    permits.add_permits(Semaphore::MAX_PERMITS / 2);
    for i in 0..30 {
        let payload = json!({"after": i});
        let at = producer
            .send(Record::new(TOPIC, payload.clone()).partition(0))
            .await
            .expect("acknowledged through the failover");
        sent.push((payload, at.partition, at.offset));
    }
    tokio::time::timeout(WAIT, reader)
        .await
        .expect("the consumer read everything in time")
        .expect("the consumer did not panic");

    let read = read.lock().unwrap().clone();
    let offsets: Vec<u64> = read.iter().map(|(o, _)| *o).collect();
    let expected: Vec<u64> = (0..total as u64).collect();
    assert_eq!(offsets, expected, "skipped or repeated offsets");
    sent.sort_by_key(|(_, _, offset)| *offset);
    for ((offset, payload), (want, _, at)) in read.iter().zip(&sent) {
        assert_eq!(offset, at);
        assert_eq!(payload, want, "offset {offset}");
    }
}
