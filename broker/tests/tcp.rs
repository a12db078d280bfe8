//! The binary produce port against real nodes and a real `redis-server`,
//! spoken frame by frame here: produces are stored and replicated like
//! `POST /produce/batch`, many in flight on one connection; bad frames get
//! the HTTP API's error bodies and store nothing; a follower sends clients
//! to the leader; a node with a client token wants it first; an idle
//! connection is closed.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use partition_log::BatchBuilder;
use serde_json::{Value, json};
use testkit::{Cluster, StatusCode, consume_all, get_json, wait_for};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use yak_protocol::{Request, Response, codec};

const WAIT: Duration = Duration::from_secs(20);

struct Peer(Framed<TcpStream, LengthDelimitedCodec>);

impl Peer {
    async fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connecting");
        Self(Framed::new(stream, codec(64 * 1024 * 1024)))
    }

    async fn send_raw(&mut self, frame: Bytes) {
        self.0.send(frame).await.expect("sending");
    }

    async fn send(&mut self, id: u64, request: &Request) {
        self.send_raw(request.encode(id)).await;
    }

    /// The next answer; `None` once the node closed the connection.
    async fn answer(&mut self) -> Option<(u64, Response)> {
        let frame = tokio::time::timeout(WAIT, self.0.next())
            .await
            .expect("an answer in time")?
            .ok()?;
        Some(Response::decode(frame.freeze()).expect("a valid answer"))
    }
}

fn produce(topic: &str, partition: u32, payloads: &[Value]) -> Request {
    let mut builder = BatchBuilder::new(0);
    for p in payloads {
        builder.push(0, None, p.to_string().as_bytes());
    }
    Request::Produce {
        topic: topic.to_owned(),
        partition,
        batch: builder.finish().into(),
    }
}

/// An error answer's JSON body (the port sends no HTTP status).
fn error(response: Response) -> Value {
    match response {
        Response::Error { body } => serde_json::from_slice(&body).unwrap(),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn log_end(url: &str, topic: &str) -> u64 {
    let (_, body) = get_json(&format!("{url}/topics/{topic}")).await;
    body["partitions"][0]["log_end_offset"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn pipelined_produces_are_stored_and_replicated_at_their_offsets() {
    let cluster = Cluster::builder().followers(1).start().await;
    cluster.wait_for_peers(WAIT).await;
    let leader = cluster.broker();
    let mut peer = Peer::connect(&leader.tcp_addr()).await;

    // 50 requests of 2 records before reading any answer.
    for i in 0..50u64 {
        let payloads = [json!({"i": i, "j": 0}), json!({"i": i, "j": 1})];
        peer.send(1000 + i, &produce("t", 0, &payloads)).await;
    }
    let leading = cluster.leader_info().await.expect("a leader").epoch;
    let mut at = std::collections::BTreeMap::new();
    for _ in 0..50 {
        match peer.answer().await.expect("an answer") {
            (
                id,
                Response::Stored {
                    offset,
                    count,
                    epoch,
                },
            ) => {
                assert_eq!((count, epoch), (2, leading), "answer to {id}");
                assert!(
                    at.insert(id - 1000, offset).is_none(),
                    "{id} answered twice"
                );
            }
            (id, other) => panic!("request {id}: {other:?}"),
        }
    }
    // Each batch in its own two offsets; the records readable there.
    let mut offsets: Vec<u64> = at.values().copied().collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..50).map(|k| 2 * k).collect::<Vec<_>>());
    let records = consume_all(leader.url(), "t", 0).await;
    for (i, offset) in &at {
        for j in 0..2 {
            let record = &records[(*offset + j) as usize];
            assert_eq!(record["offset"], json!(offset + j));
            assert_eq!(record["payload"], json!({"i": i, "j": j}));
        }
    }
    // Acknowledged means the follower has it too.
    let follower = cluster.followers()[0].url().to_owned();
    wait_for("the follower's HWM at 100", WAIT, || async {
        (consume_all(&follower, "t", 0).await.len() == 100).then_some(())
    })
    .await;
}

#[tokio::test]
async fn bad_frames_get_error_answers_and_store_nothing() {
    let cluster = Cluster::builder().start().await;
    let url = cluster.broker().url().to_owned();
    let addr = cluster.broker().tcp_addr();
    let mut peer = Peer::connect(&addr).await;
    peer.send(1, &produce("t", 0, &[json!("kept")])).await;
    assert!(matches!(
        peer.answer().await,
        Some((1, Response::Stored { offset: 0, .. }))
    ));

    // A batch that is not one, an unknown topic name, a partition out of
    // range, an unknown request kind: each answered, the connection kept.
    let not_a_batch = Request::Produce {
        topic: "t".into(),
        partition: 0,
        batch: Bytes::from_static(b"definitely not a record batch"),
    };
    peer.send(2, &not_a_batch).await;
    peer.send(3, &produce("bad name!", 0, &[json!(1)])).await;
    peer.send(4, &produce("t", 99, &[json!(1)])).await;
    let mut unknown_kind = vec![77];
    unknown_kind.extend_from_slice(&5u64.to_be_bytes());
    peer.send_raw(Bytes::from(unknown_kind)).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (id, response) = peer.answer().await.expect("an answer");
        let body = error(response);
        answers.push((id, body["error"].clone(), body["written"].clone()));
    }
    answers.sort_by_key(|a| a.0);
    assert_eq!(
        answers,
        [
            (2, json!("invalid_batch"), json!("no")),
            (3, json!("invalid_topic"), json!("no")),
            (4, json!("invalid_partition"), json!("no")),
            (5, json!("frame_invalid"), json!("no")),
        ]
    );
    peer.send(6, &produce("t", 0, &[json!("still served")]))
        .await;
    assert!(matches!(
        peer.answer().await,
        Some((6, Response::Stored { offset: 1, .. }))
    ));

    // A frame too short to carry an id: answered with id 0, then closed.
    peer.send_raw(Bytes::from_static(&[2, 0, 0])).await;
    let (id, response) = peer.answer().await.expect("an answer");
    assert_eq!(
        (id, error(response)["error"].clone()),
        (0, json!("frame_invalid"))
    );
    assert!(peer.answer().await.is_none(), "the connection is closed");

    // A length prefix past the limit: refused and closed, nothing read.
    let mut peer = Peer::connect(&addr).await;
    let mut stream = peer.0.into_inner();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &u32::MAX.to_be_bytes())
        .await
        .unwrap();
    peer = Peer(Framed::new(stream, codec(1024)));
    let (_, response) = peer.answer().await.expect("an answer");
    let body = error(response);
    assert_eq!(body["error"], "frame_invalid");
    assert_eq!(body["written"], "no");
    assert!(peer.answer().await.is_none(), "the connection is closed");

    assert_eq!(log_end(&url, "t").await, 2, "only the two good batches");
}

#[tokio::test]
async fn a_follower_sends_producers_to_the_leader() {
    let cluster = Cluster::builder().followers(1).start().await;
    cluster.wait_for_peers(WAIT).await;
    let follower = &cluster.followers()[0];
    let mut peer = Peer::connect(&follower.tcp_addr()).await;
    peer.send(9, &produce("t", 0, &[json!(1)])).await;
    let (id, response) = peer.answer().await.expect("an answer");
    let body = error(response);
    assert_eq!(id, 9);
    assert_eq!(body["error"], "not_leader");
    assert_eq!(body["leader_url"], cluster.broker().url());
    assert_eq!(body["written"], "no");

    // The leader's binary port is in the metadata clients read.
    let (status, info) = get_json(&format!("{}/metadata/leader", follower.url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["leader_tcp"], cluster.broker().tcp_addr());
}

#[tokio::test]
async fn a_node_with_a_client_token_wants_it_in_a_hello_first() {
    let cluster = Cluster::builder()
        .client_token("s3cret")
        .extra_args(["--cluster-token", "between-nodes"])
        .start()
        .await;
    let addr = cluster.broker().tcp_addr();

    let mut peer = Peer::connect(&addr).await;
    peer.send(1, &produce("t", 0, &[json!(1)])).await;
    let (id, response) = peer.answer().await.expect("an answer");
    assert_eq!(
        (id, error(response)["error"].clone()),
        (1, json!("unauthorized"))
    );
    assert!(peer.answer().await.is_none(), "closed without a Hello");

    let mut peer = Peer::connect(&addr).await;
    let wrong = Request::Hello {
        token: "guess".into(),
    };
    peer.send(2, &wrong).await;
    let (id, response) = peer.answer().await.expect("an answer");
    assert_eq!(
        (id, error(response)["error"].clone()),
        (2, json!("unauthorized"))
    );
    assert!(peer.answer().await.is_none(), "closed after a wrong token");

    let mut peer = Peer::connect(&addr).await;
    let right = Request::Hello {
        token: "s3cret".into(),
    };
    peer.send(3, &right).await;
    assert_eq!(peer.answer().await, Some((3, Response::Ready)));
    peer.send(4, &produce("t", 0, &[json!(1)])).await;
    assert!(matches!(
        peer.answer().await,
        Some((4, Response::Stored { offset: 0, .. }))
    ));
}

#[tokio::test]
async fn a_connection_is_closed_after_an_idle_timeout_not_before() {
    const IDLE_MS: u64 = 1000;
    let cluster = Cluster::builder()
        .extra_args(["--http-keep-alive-ms", &IDLE_MS.to_string()])
        .start()
        .await;
    let mut peer = Peer::connect(&cluster.broker().tcp_addr()).await;

    // Requests spaced under the idle timeout keep the connection open for
    // longer than the timeout in all.
    for i in 0..4u64 {
        peer.send(i, &produce("idle", 0, &[json!(i)])).await;
        assert!(
            matches!(peer.answer().await, Some((id, Response::Stored { .. })) if id == i),
            "request {i} answered"
        );
        tokio::time::sleep(Duration::from_millis(IDLE_MS * 2 / 5)).await;
    }

    // Then a quiet connection is closed.
    assert!(peer.answer().await.is_none(), "closed once idle");
}
