//! The Kafka listener against real nodes, a real `redis-server` and a real
//! Kafka client nobody here wrote: kcat (librdkafka). Metadata, keyed
//! produce with acks=all and a full read back, every compression codec, a
//! follower as bootstrap; and bad input on a raw socket, after which the
//! node still serves kcat.

use std::time::Duration;

use testkit::{Cluster, create_topic, kcat, wait_for};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const WAIT: Duration = Duration::from_secs(30);

/// Produces `lines` (`key:value` each) with acks=all and extra `-X` flags.
async fn produce(bootstrap: &str, topic: &str, lines: &[String], extra: &[&str]) {
    let mut args = vec!["-P", "-b", bootstrap, "-t", topic, "-K:", "-X", "acks=all"];
    args.extend_from_slice(extra);
    kcat(&args, &(lines.join("\n") + "\n")).await;
}

/// Every record of `topic` from the beginning, as `key:value`, sorted
/// (partitions interleave in any order).
async fn read_all(bootstrap: &str, topic: &str) -> Vec<String> {
    let out = kcat(
        &[
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k:%s\n",
        ],
        "",
    )
    .await;
    let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
    lines.sort_unstable();
    lines
}

fn keyed_lines(n: usize, tag: &str) -> Vec<String> {
    let mut lines: Vec<String> = (0..n).map(|i| format!("key-{i}:{tag} value {i}")).collect();
    lines.sort_unstable();
    lines
}

async fn kafka_cluster(followers: usize, extra: &[&str]) -> Cluster {
    let cluster = Cluster::builder()
        .followers(followers)
        .kafka()
        .extra_args(extra.iter().copied())
        .start()
        .await;
    cluster.wait_for_peers(WAIT).await;
    // Metadata lists the nodes the registry knows: wait until every
    // node published its Kafka address.
    let bootstrap = cluster.broker().kafka_addr();
    let expected = format!("{} brokers:", followers + 1);
    wait_for("every node's Kafka address in Metadata", WAIT, || async {
        kcat(&["-L", "-b", &bootstrap], "")
            .await
            .contains(&expected)
            .then_some(())
    })
    .await;
    cluster
}

#[tokio::test]
async fn kcat_lists_metadata_and_reads_back_10000_keyed_lines() {
    let cluster = kafka_cluster(1, &[]).await;
    let broker = cluster.broker();
    let bootstrap = broker.kafka_addr();
    create_topic(broker.url(), "orders", 3).await;

    let metadata = kcat(&["-L", "-b", &bootstrap, "-t", "orders"], "").await;
    assert!(metadata.contains("2 brokers:"), "{metadata}");
    assert!(metadata.contains(&bootstrap), "{metadata}");
    assert!(
        metadata.contains("topic \"orders\" with 3 partitions"),
        "{metadata}"
    );

    let lines = keyed_lines(10_000, "orders");
    produce(&bootstrap, "orders", &lines, &[]).await;
    assert_eq!(read_all(&bootstrap, "orders").await, lines);
}

#[tokio::test]
async fn every_compression_codec_round_trips() {
    let cluster = kafka_cluster(0, &[]).await;
    let broker = cluster.broker();
    let bootstrap = broker.kafka_addr();
    for codec in ["gzip", "lz4", "snappy", "zstd"] {
        let topic = format!("z-{codec}");
        create_topic(broker.url(), &topic, 1).await;
        let lines = keyed_lines(1_000, codec);
        let setting = format!("compression.codec={codec}");
        produce(&bootstrap, &topic, &lines, &["-X", &setting]).await;
        assert_eq!(read_all(&bootstrap, &topic).await, lines, "{codec}");
    }
}

#[tokio::test]
async fn a_follower_bootstrap_reaches_the_leader() {
    let cluster = kafka_cluster(1, &[]).await;
    create_topic(cluster.broker().url(), "via-follower", 1).await;
    let follower = cluster.followers()[0].kafka_addr();
    let lines = keyed_lines(100, "follower");
    produce(&follower, "via-follower", &lines, &[]).await;
    assert_eq!(read_all(&follower, "via-follower").await, lines);
}

/// An ApiVersions request: header v1 (key 18, `version`, correlation id,
/// null client id) and, at v0, an empty body; from v3 on, header v2 (no
/// tagged fields), which is all a node reads of a version it does not know.
fn api_versions_frame(version: i16, correlation: i32) -> Vec<u8> {
    let flexible = version >= 3;
    let mut frame = Vec::new();
    frame.extend_from_slice(&(10 + i32::from(flexible)).to_be_bytes());
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    if flexible {
        frame.push(0);
    }
    frame
}

/// Sends a v0-bodied ApiVersions and returns (correlation id, error code).
async fn api_versions(stream: &mut TcpStream, version: i16, correlation: i32) -> (i32, i16) {
    stream
        .write_all(&api_versions_frame(version, correlation))
        .await
        .expect("sending");
    let size = tokio::time::timeout(WAIT, stream.read_i32())
        .await
        .expect("an answer in time")
        .expect("an answer");
    let mut body = vec![0; usize::try_from(size).expect("a size")];
    stream.read_exact(&mut body).await.expect("the answer");
    let correlation = i32::from_be_bytes(body[0..4].try_into().unwrap());
    let error = i16::from_be_bytes(body[4..6].try_into().unwrap());
    (correlation, error)
}

/// Whether the node closed `stream` (within [`WAIT`]).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn bad_input_closes_only_its_own_connection() {
    // Idle connections close after 1 s.
    let cluster = kafka_cluster(0, &["--http-keep-alive-ms", "1000"]).await;
    let broker = cluster.broker();
    let addr = broker.kafka_addr();
    let mut good = TcpStream::connect(&addr).await.expect("connecting");
    assert_eq!(api_versions(&mut good, 0, 1).await, (1, 0));

    // An unsupported ApiVersions version: error 35, and our versions.
    let mut newer = TcpStream::connect(&addr).await.expect("connecting");
    assert_eq!(api_versions(&mut newer, 99, 2).await, (2, 35));

    // Garbage, an unknown API key, an oversized length: closed.
    let mut unknown_api = api_versions_frame(0, 3);
    unknown_api[4..6].copy_from_slice(&999i16.to_be_bytes());
    let oversized = [&i32::MAX.to_be_bytes()[..], &[0; 16]].concat();
    let garbage = [&8i32.to_be_bytes()[..], b"\x00\x12\x00\x00garb"].concat();
    for (what, bytes) in [
        ("an unknown API key", unknown_api),
        ("an oversized frame", oversized),
        ("a garbage request", garbage),
        (
            "a truncated header",
            [&2i32.to_be_bytes()[..], &[0, 18]].concat(),
        ),
    ] {
        let mut stream = TcpStream::connect(&addr).await.expect("connecting");
        stream.write_all(&bytes).await.expect("sending");
        assert!(closed(&mut stream).await, "{what} left the connection open");
    }

    // A client that sends nothing is closed at the idle timeout.
    let mut silent = TcpStream::connect(&addr).await.expect("connecting");
    assert!(
        closed(&mut silent).await,
        "the silent client stayed connected"
    );

    // The node still serves kcat, and a fresh request on a new connection.
    create_topic(broker.url(), "after", 1).await;
    let lines = keyed_lines(10, "after");
    produce(&addr, "after", &lines, &[]).await;
    assert_eq!(read_all(&addr, "after").await, lines);
    let mut again = TcpStream::connect(&addr).await.expect("connecting");
    assert_eq!(api_versions(&mut again, 0, 4).await, (4, 0));
}
