//! JSON batches of pre-serialized payloads through the client, against a
//! real node and a real `redis-server`: [`Producer::send_raw_batch`] sends
//! the same `POST /produce` as [`Producer::send_batch`], with each
//! payload's JSON text copied into the request as it is, and the node
//! stores that text byte for byte; results come back one per record in
//! the order given, whatever partitions the records go to.

use serde_json::{json, value::RawValue};
use testkit::Cluster;
use yak_client::{Producer, ProducerConfig, Record, YakClient, model::RawRecord};

/// The stored `(offset, key, value)` of partition `partition` of `topic`,
/// read as the stored batches (`GET /consume/batch`), so the bytes are
/// the stored ones, not a re-serialization.
async fn stored(url: &str, topic: &str, partition: u32) -> Vec<(u64, Option<Vec<u8>>, Vec<u8>)> {
    let body = reqwest::get(format!(
        "{url}/consume/batch?topic={topic}&partition={partition}&max_records=1000"
    ))
    .await
    .expect("a read")
    .error_for_status()
    .expect("a 200")
    .bytes()
    .await
    .expect("the batches");
    partition_log::batch::batches(&body)
        .flat_map(|batch| {
            let batch = batch.expect("a whole batch");
            batch
                .records()
                .map(|r| {
                    let r = r.expect("a record");
                    (r.offset, r.key.map(<[u8]>::to_vec), r.value.to_vec())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn raw_payloads_are_stored_as_sent_with_results_in_order() {
    let cluster = Cluster::builder().start().await;
    let url = cluster.broker().url().to_owned();
    let client = YakClient::new(vec![url.clone()]).expect("a client");
    client.create_topic("raw", Some(2)).await.expect("topic");
    let producer = Producer::new(client, ProducerConfig::default());

    // Spacing and escapes a `Value` would not keep: the text is stored.
    let texts = [
        r#"{ "n": 1,  "s": "\u00e9" }"#,
        "42",
        r#""a \"quoted\" string""#,
    ];
    let payloads: Vec<Box<RawValue>> = texts
        .iter()
        .map(|t| RawValue::from_string((*t).to_owned()).expect("JSON"))
        .collect();
    // Interleaved partitions: the producer groups them, the answer is
    // still in the order given.
    let records = [
        RawRecord::new("raw", &payloads[0]).partition(1),
        RawRecord::new("raw", &payloads[1]).partition(0),
        RawRecord::new("raw", &payloads[2]).partition(1).key("k"),
    ];
    let results = producer.send_raw_batch(&records).await;
    let at: Vec<(u32, u64)> = results
        .iter()
        .map(|r| {
            let p = r.as_ref().expect("acknowledged");
            (p.partition, p.offset)
        })
        .collect();
    assert_eq!(at, [(1, 0), (0, 0), (1, 1)]);
    assert!(producer.send_raw_batch(&[]).await.is_empty());

    assert_eq!(
        stored(&url, "raw", 1).await,
        [
            (0, None, texts[0].as_bytes().to_vec()),
            (1, Some(b"k".to_vec()), texts[2].as_bytes().to_vec()),
        ]
    );
    assert_eq!(stored(&url, "raw", 0).await, [(0, None, b"42".to_vec())]);

    // The same payload through `send_batch` (a `Value`) and through
    // `send_raw_batch` (its serialization) stores the same bytes.
    let value = json!({"id": 7, "tags": ["a", "b"]});
    let text = serde_json::value::to_raw_value(&value).expect("JSON");
    let by_value = producer
        .send_batch(&[Record::new("raw", value).partition(0)])
        .await;
    let by_text = producer
        .send_raw_batch(&[RawRecord::new("raw", &text).partition(0)])
        .await;
    assert_eq!(by_value[0].as_ref().expect("stored").offset, 1);
    assert_eq!(by_text[0].as_ref().expect("stored").offset, 2);
    let partition0 = stored(&url, "raw", 0).await;
    assert_eq!(partition0[1].2, partition0[2].2);
}
