//! Binary batches through the client, against a real node and a real
//! `redis-server`: [`Producer::send_records`] stores a batch built here
//! (`POST /produce/batch`), a retry-safe producer numbers consecutive
//! batches, and a [`Consumer`] (which reads stored batches with
//! `GET /consume/batch`) gets every record back with its key and payload —
//! JSON payloads as JSON, other bytes as strings — in a mixed log.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::Cluster;
use yak_client::{ClientConfig, Consumer, Producer, ProducerConfig, Record, StartAt, YakClient};

#[tokio::test]
async fn binary_batches_are_stored_and_read_back_with_json_records() {
    let cluster = Cluster::builder().start().await;
    let client = YakClient::new(vec![cluster.broker().url().to_owned()]).expect("a client");
    client.create_topic("b", Some(2)).await.expect("topic");
    let producer = Producer::new(client.clone(), ProducerConfig::default());

    let at = producer
        .send(Record::new("b", json!({"json": true})).partition(1))
        .await
        .expect("acknowledged");
    assert_eq!(at.offset, 0);
    let first: [(Option<&[u8]>, &[u8]); 3] = [
        (Some(b"k1"), br#"{"n": 1}"#),
        (None, b"not json"),
        (Some(b"k3"), b"42"),
    ];
    let stored = producer
        .send_records("b", 1, first)
        .await
        .expect("acknowledged");
    assert_eq!((stored.partition, stored.offset, stored.count), (1, 1, 3));
    let stored = producer
        .send_records("b", 1, [(None, b"\"tail\"".as_slice())])
        .await
        .expect("acknowledged");
    assert_eq!((stored.offset, stored.count), (4, 1));
    assert!(
        producer
            .send_records("b", 1, std::iter::empty())
            .await
            .is_err(),
        "an empty batch is refused before sending"
    );

    // Start in the middle of the three-record batch.
    let mut consumer = Consumer::new(client, "b", 1, StartAt::Offset(2));
    let records = consumer.poll(Duration::ZERO).await.expect("a read");
    let got: Vec<(u64, Option<String>, Value)> = records
        .into_iter()
        .map(|r| (r.offset, r.key, r.payload))
        .collect();
    assert_eq!(
        got,
        [
            (2, None, json!("not json")),
            (3, Some("k3".to_owned()), json!(42)),
            (4, None, json!("tail")),
        ]
    );
    assert_eq!(consumer.position(), Some(5));
}

/// `send_records` goes over the leader's binary port unless the client
/// says not to; either way the batch lands at the same offsets. Which
/// transport carried it shows in the node's HTTP request metrics.
#[tokio::test]
async fn binary_batches_go_over_the_binary_port_unless_turned_off() {
    let cluster = Cluster::builder().start().await;
    let url = cluster.broker().url().to_owned();
    let http_batches = || async {
        let text = reqwest::get(format!("{url}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with("yak_http_request_duration_seconds_count"))
            .filter(|l| l.contains(r#"route="/produce/batch""#))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    for (tcp, offset, over_http) in [(true, 0, 0), (false, 2, 1)] {
        let config = ClientConfig {
            tcp,
            ..ClientConfig::default()
        };
        let client = YakClient::with_config([url.clone()], config).expect("a client");
        let producer = Producer::new(client, ProducerConfig::default());
        let stored = producer
            .send_records("t", 0, [(None, b"1".as_slice()), (None, b"2".as_slice())])
            .await
            .expect("acknowledged");
        assert_eq!((stored.offset, stored.count), (offset, 2));
        assert_eq!(
            http_batches().await,
            over_http,
            "HTTP batches with tcp = {tcp}"
        );
    }
}
