//! The fetch consumer against a real node's Kafka listener: records
//! produced through the listener by this crate's producer are read back
//! with their offsets and values, from the earliest offset, from the middle
//! of a stored batch, up to an end in the middle of one, one batch per
//! answer (so every poll has a Fetch ahead), and after a seek back while a
//! Fetch is ahead.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use kafka_client::{ConsumerConfig, KafkaConfig, KafkaConsumer, KafkaProducer, KafkaRecord, Start};
use testkit::{Cluster, create_topic};

const TOPIC: &str = "kafka-read";
/// Records per produced batch; each is stored as one batch.
const BATCH: i64 = 100;
const BATCHES: i64 = 5;

fn value(offset: i64) -> String {
    format!("value {offset:05}")
}

fn expected(from: i64, to: i64) -> Vec<(i64, Option<String>)> {
    (from..to).map(|o| (o, Some(value(o)))).collect()
}

fn seen(records: &[KafkaRecord]) -> Vec<(i64, Option<String>)> {
    records
        .iter()
        .map(|r| (r.offset, r.value.clone()))
        .collect()
}

/// Polls until the position reaches `end`.
async fn read_to(consumer: &mut KafkaConsumer, end: i64) -> Vec<KafkaRecord> {
    let mut read = Vec::new();
    while consumer.position().is_none_or(|p| p < end) {
        read.extend(consumer.poll(end).await.expect("a poll"));
    }
    read
}

#[tokio::test]
async fn reads_back_exactly_what_was_produced() {
    let cluster = Cluster::builder().kafka().start().await;
    cluster.wait_for_peers(Duration::from_secs(30)).await;
    let broker = cluster.broker();
    create_topic(broker.url(), TOPIC, 2).await;
    let bootstrap: SocketAddr = broker.kafka_addr().parse().unwrap();

    let config = KafkaConfig {
        deadline: Duration::from_secs(30),
        request_timeout: Duration::from_secs(10),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(500),
        local_address: None,
    };
    let mut producer = KafkaProducer::start(vec![bootstrap], TOPIC, config)
        .await
        .expect("a producer id");
    for b in 0..BATCHES {
        let values: Vec<Bytes> = (b * BATCH..(b + 1) * BATCH)
            .map(|o| Bytes::from(value(o)))
            .collect();
        let base = producer.send(0, &values).await.expect("acknowledged");
        assert_eq!(base, b * BATCH);
    }
    // Another partition's records are never returned.
    producer
        .send(1, &[Bytes::from_static(b"elsewhere")])
        .await
        .expect("acknowledged");
    let end = BATCH * BATCHES;

    // From the earliest offset to the end, the default sizes.
    let mut consumer = KafkaConsumer::connect(
        bootstrap,
        TOPIC,
        0,
        Start::Earliest,
        ConsumerConfig::default(),
    )
    .await
    .expect("connected to the leader");
    let read = read_to(&mut consumer, end).await;
    assert_eq!(seen(&read), expected(0, end));
    assert!(read.iter().all(|r| r.key.is_none() && r.timestamp > 0));
    assert!(consumer.poll(end).await.unwrap().is_empty(), "at the end");

    // From the middle of the second stored batch: the answer starts with
    // the whole batch, the records below the start are skipped.
    let mut consumer = KafkaConsumer::connect(
        bootstrap,
        TOPIC,
        0,
        Start::Offset(BATCH + 37),
        ConsumerConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        seen(&read_to(&mut consumer, end).await),
        expected(BATCH + 37, end)
    );

    // One batch per answer, so every poll but the last sends the next
    // Fetch ahead; an end in the middle of a batch, then on to the end.
    let small = ConsumerConfig {
        max_bytes: 1,
        partition_max_bytes: 1,
        ..ConsumerConfig::default()
    };
    let mut consumer = KafkaConsumer::connect(bootstrap, TOPIC, 0, Start::Offset(3), small)
        .await
        .unwrap();
    let first = consumer.poll(end).await.unwrap();
    assert_eq!(seen(&first), expected(3, BATCH), "one batch, from 3");
    let middle = 2 * BATCH + 50;
    let mut read = first;
    read.extend(read_to(&mut consumer, middle).await);
    assert_eq!(seen(&read), expected(3, middle));
    assert_eq!(consumer.position(), Some(middle));
    assert_eq!(
        seen(&read_to(&mut consumer, end).await),
        expected(middle, end)
    );

    // Back to the start; the poll sends the Fetch for 100 ahead, and the
    // seek after it makes that answer one to drop.
    consumer.seek(0);
    let read = consumer.poll(end).await.unwrap();
    assert_eq!(seen(&read), expected(0, BATCH));
    consumer.seek(BATCH * 4 + 1);
    assert_eq!(
        seen(&read_to(&mut consumer, end).await),
        expected(BATCH * 4 + 1, end)
    );
}
