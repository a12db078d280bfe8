//! The client against a cluster that serves HTTPS and needs a client token
//! (`docs/security.md`): with the token and the CA it produces and
//! consumes; without the token it gets `401 unauthorized` at once (not
//! retried); without the CA it cannot connect.

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{Cluster, tls::test_ca};
use yak_client::{
    ClientConfig, ClientError, Consumer, ErrorCode, Producer, ProducerConfig, Record, StartAt,
    YakClient,
};

const TOKEN: &str = "client-secret";

#[tokio::test]
async fn token_and_ca_open_a_tls_cluster() {
    let cluster = Cluster::builder()
        .tls()
        .client_token(TOKEN)
        .extra_args(["--cluster-token", "cluster-secret"])
        .start()
        .await;
    let url = cluster.broker().url().to_owned();
    assert!(url.starts_with("https://"), "{url}");
    let config = |token: Option<&str>, ca: bool| ClientConfig {
        deadline: Duration::from_secs(2),
        token: token.map(str::to_owned),
        tls_ca_pem: ca.then(|| test_ca().ca_pem().as_bytes().to_vec()),
        ..ClientConfig::default()
    };

    let client = YakClient::with_config([url.clone()], config(Some(TOKEN), true)).unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut acked = Vec::new();
    for i in 0..10 {
        let at = producer
            .send(Record::new("secure", json!({"i": i})).partition(0))
            .await
            .expect("a send with the token");
        acked.push(at.offset);
    }
    assert_eq!(acked, (0..10).collect::<Vec<u64>>());
    let mut consumer = Consumer::new(client, "secure", 0, StartAt::Offset(0));
    let read = consumer.poll(Duration::from_secs(1)).await.unwrap();
    let payloads: Vec<_> = read.iter().map(|r| r.payload["i"].clone()).collect();
    assert_eq!(payloads, (0..10).map(|i| json!(i)).collect::<Vec<_>>());

    // No token: refused at once, not retried until the deadline.
    for token in [None, Some("wrong")] {
        let client = YakClient::with_config([url.clone()], config(token, true)).unwrap();
        let started = Instant::now();
        match client.topics().await {
            Err(
                e @ ClientError::Api {
                    status: Some(401), ..
                },
            ) => assert_eq!(e.error_code(), Some(ErrorCode::Unauthorized)),
            other => panic!("{token:?}: expected a 401, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a 401 was retried"
        );
    }

    // No CA: the node's certificate is not trusted.
    let client = YakClient::with_config([url], config(Some(TOKEN), false)).unwrap();
    match client.topics().await {
        Err(ClientError::Transport { .. } | ClientError::NoLeader(_)) => {}
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}
