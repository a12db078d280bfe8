//! Bad input on the Kafka listener, against a real node: unsupported
//! versions (ApiVersions answers KIP-511's v0; anything else closes),
//! unknown API keys, malformed frames, a length prefix over the cap (closed
//! before a byte of it is read), a silent client and a half frame (closed
//! at the idle timeout); then a fuzz run of a few thousand random and
//! mutated frames over hundreds of connections, checking that every answer
//! is a well-formed response to the request it answers. After each, the
//! node still serves a fresh raw client and kcat.
//!
//! kafka-protocol 0.18 sizes a decoded array's `Vec` from the count on the
//! wire before reading an element, so a few bytes claiming 2^31 elements
//! ask for hundreds of GiB; the node's allocator (`broker::alloc`) reserves
//! such a block lazily instead of aborting. The fuzz run rewrites any byte
//! of any request, and `a_huge_array_count_does_not_abort_the_node` sends
//! the extreme case on purpose.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use kafka_protocol::{
    messages::{produce_response::PartitionProduceResponse, *},
    protocol::{Decodable, Encodable, StrBytes},
    records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use testkit::{Cluster, create_topic, kcat};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const WAIT: Duration = Duration::from_secs(30);
/// The nodes' idle timeout (`--http-keep-alive-ms`).
const IDLE: Duration = Duration::from_millis(1000);
/// The nodes' `--max-request-bytes`: frames may be this plus 64 KiB.
const MAX_REQUEST: usize = 1 << 20;
const MAX_FRAME: usize = MAX_REQUEST + 64 * 1024;

async fn cluster() -> Cluster {
    let idle = IDLE.as_millis().to_string();
    let max = MAX_REQUEST.to_string();
    let cluster = Cluster::builder()
        .kafka()
        .extra_args([
            "--http-keep-alive-ms",
            idle.as_str(),
            "--max-request-bytes",
            max.as_str(),
        ])
        .start()
        .await;
    create_topic(cluster.broker().url(), "fuzz", 1).await;
    cluster
}

/// A request frame (size prefix included) as the crate's encoder makes it.
fn encode<T: Encodable>(api: ApiKey, version: i16, correlation: i32, body: &T) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("bad-input")))
        .encode(&mut out, api.request_header_version(version))
        .expect("encoding a header");
    body.encode(&mut out, version).expect("encoding a request");
    let size = i32::try_from(out.len() - 4).expect("a small frame");
    out[..4].copy_from_slice(&size.to_be_bytes());
    out.to_vec()
}

/// A frame of `body` bytes under a header v1 (no client id).
fn raw(api: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let size = i32::try_from(10 + body.len()).expect("a small frame");
    [
        &size.to_be_bytes()[..],
        &api.to_be_bytes(),
        &version.to_be_bytes(),
        &correlation.to_be_bytes(),
        &(-1i16).to_be_bytes(),
        body,
    ]
    .concat()
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

fn record_batch() -> Bytes {
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            // Sequences that advance with the offsets keep the encoder
            // from splitting the records into one batch each.
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("fuzz-{i}"))),
            value: Some(Bytes::from_static(b"a fuzzed record")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encoding records");
    buf.freeze()
}

/// One valid request of each kind the fuzz run starts from.
fn corpus() -> Vec<Vec<u8>> {
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic("fuzz"))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(record_batch())),
                ]),
        ]);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic("fuzz"))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let list_offsets = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic("fuzz"))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2),
            ]),
    ]);
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic("fuzz"))),
    ]));
    let configs = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("fuzz")),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("")),
    ]);
    let create = CreateTopicsRequest::default()
        .with_validate_only(true)
        .with_timeout_ms(1_000)
        .with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(topic("fuzz-created"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("fuzz"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    let coordinator = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    vec![
        encode(ApiKey::ApiVersions, 0, 0, &ApiVersionsRequest::default()),
        encode(ApiKey::ApiVersions, 3, 0, &versions),
        encode(
            ApiKey::Metadata,
            0,
            0,
            &MetadataRequest::default().with_topics(Some(vec![])),
        ),
        encode(ApiKey::Metadata, 4, 0, &metadata),
        encode(ApiKey::Metadata, 12, 0, &MetadataRequest::default()),
        encode(ApiKey::Produce, 9, 0, &produce),
        encode(ApiKey::Produce, 3, 0, &produce),
        encode(ApiKey::Fetch, 12, 0, &fetch),
        encode(ApiKey::Fetch, 4, 0, &fetch),
        encode(ApiKey::ListOffsets, 6, 0, &list_offsets),
        encode(ApiKey::CreateTopics, 7, 0, &create),
        encode(
            ApiKey::InitProducerId,
            4,
            0,
            &InitProducerIdRequest::default(),
        ),
        encode(ApiKey::DescribeConfigs, 4, 0, &configs),
        encode(ApiKey::DescribeConfigs, 1, 0, &configs),
        encode(
            ApiKey::DescribeCluster,
            1,
            0,
            &DescribeClusterRequest::default(),
        ),
        encode(ApiKey::SaslHandshake, 1, 0, &handshake),
        encode(ApiKey::FindCoordinator, 3, 0, &coordinator),
    ]
}

/// The version ranges the node advertises, from its ApiVersions answer.
type Served = BTreeMap<i16, (i16, i16)>;

/// `(api, version)` of a frame (size prefix included), if it has them.
fn key_of(frame: &[u8]) -> Option<(i16, i16)> {
    let head = frame.get(4..8)?;
    Some((
        i16::from_be_bytes([head[0], head[1]]),
        i16::from_be_bytes([head[2], head[3]]),
    ))
}

/// A random change to a valid frame (or a random frame); the size prefix
/// is then made to match, except now and then.
fn mutate(rng: &mut StdRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    loop {
        let original = &corpus[rng.random_range(0..corpus.len())];
        let mut frame = original.clone();
        match rng.random_range(0..8) {
            // A random frame: any key, any version, random bytes.
            0 => {
                let len = rng.random_range(0..64);
                let body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                frame = raw(rng.random_range(-3..80), rng.random_range(-2..20), 0, &body);
            }
            // Flip bits or overwrite bytes anywhere.
            1 | 2 => {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(4..frame.len());
                    match rng.random() {
                        true => frame[at] ^= 1 << rng.random_range(0..8),
                        false => frame[at] = rng.random(),
                    }
                }
            }
            // An extreme 16- or 32-bit value somewhere.
            3 => {
                let extremes: [&[u8]; 6] = [
                    &[0x7f, 0xff],
                    &[0x80, 0x00],
                    &[0xff, 0xff],
                    &[0x7f, 0xff, 0xff, 0xff],
                    &[0x80, 0, 0, 0],
                    &[0, 0, 0, 0],
                ];
                let value = extremes[rng.random_range(0..extremes.len())];
                let at = rng.random_range(4..frame.len().saturating_sub(value.len()).max(5));
                let end = (at + value.len()).min(frame.len());
                frame[at..end].copy_from_slice(&value[..end - at]);
            }
            // Truncate.
            4 => frame.truncate(rng.random_range(4..frame.len())),
            // Append garbage.
            5 => frame.extend((0..rng.random_range(1..16)).map(|_| rng.random::<u8>())),
            // Another version of the same API.
            6 => {
                let version = rng.random_range(-1i16..16).to_be_bytes();
                frame[6..8].copy_from_slice(&version);
            }
            // Another API key on the same body.
            _ => {
                let api = rng.random_range(0i16..70).to_be_bytes();
                frame[4..6].copy_from_slice(&api);
            }
        }
        if frame.len() < 4 {
            continue;
        }
        if rng.random_range(0..10) > 0 {
            let size = i32::try_from(frame.len() - 4).expect("a small frame");
            frame[..4].copy_from_slice(&size.to_be_bytes());
        }
        return frame;
    }
}

/// Decodes a response body of `(api, version)`; `Err` says what is wrong.
fn check_response(api: i16, version: i16, mut body: Bytes) -> Result<(), String> {
    let api = ApiKey::try_from(api).map_err(|()| format!("an answer to unknown API {api}"))?;
    ResponseHeader::decode(&mut body, api.response_header_version(version))
        .map_err(|e| format!("{api:?} v{version} header: {e}"))?;
    macro_rules! decode {
        ($($key:ident => $ty:ty),* $(,)?) => {
            match api {
                $(ApiKey::$key => <$ty>::decode(&mut body, version).map(drop),)*
                // Answers of APIs this test does not build are framed and
                // correlated but not decoded.
                _ => return Ok(()),
            }
        };
    }
    decode!(
        ApiVersions => ApiVersionsResponse,
        Metadata => MetadataResponse,
        Produce => ProduceResponse,
        Fetch => FetchResponse,
        ListOffsets => ListOffsetsResponse,
        CreateTopics => CreateTopicsResponse,
        InitProducerId => InitProducerIdResponse,
        DescribeConfigs => DescribeConfigsResponse,
        DescribeCluster => DescribeClusterResponse,
        SaslHandshake => SaslHandshakeResponse,
        SaslAuthenticate => SaslAuthenticateResponse,
        FindCoordinator => FindCoordinatorResponse,
        Heartbeat => HeartbeatResponse,
    )
    .map_err(|e| format!("{api:?} v{version}: {e}"))?;
    match body.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{api:?} v{version}: {} bytes left over",
            body.len()
        )),
    }
}

/// Sends `frames` on one connection, closes its sending side and reads
/// every answer until the node closes; checks each is a well-formed answer
/// to a request sent, in order.
async fn fuzz_connection(
    addr: String,
    frames: Vec<Vec<u8>>,
    served: Served,
) -> Result<usize, String> {
    let mut stream = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
    let sent: Vec<u8> = frames.concat();
    // The node may close before reading it all: not an error.
    let _ = stream.write_all(&sent).await;
    let _ = stream.shutdown().await;
    let mut answers = Vec::new();
    // A reset after unread input is how a close can arrive: what came
    // before it counts all the same.
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answers)).await;
    if read.is_err() {
        return Err("the node neither answered nor closed in time".into());
    }
    let mut answers = Bytes::from(answers);
    let mut pending = frames.iter();
    let mut checked = 0;
    while !answers.is_empty() {
        if answers.len() < 4 {
            return Err(format!("{} stray bytes after the answers", answers.len()));
        }
        let size = i32::from_be_bytes([answers[0], answers[1], answers[2], answers[3]]);
        let size = usize::try_from(size).map_err(|_| format!("answer size {size}"))?;
        if size < 4 || answers.len() < 4 + size {
            return Err(format!(
                "an answer of {size} bytes with {} left",
                answers.len() - 4
            ));
        }
        let body = answers.slice(4..4 + size);
        answers = answers.slice(4 + size..);
        let correlation = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let request = pending
            .by_ref()
            .find(|f| f.get(8..12) == Some(&correlation.to_be_bytes()[..]))
            .ok_or_else(|| format!("an answer to no request sent (correlation {correlation})"))?;
        let (api, version) = key_of(request).ok_or("an answer to a frame without header")?;
        let supported = served
            .get(&api)
            .is_some_and(|&(min, max)| (min..=max).contains(&version));
        // KIP-511: an unsupported ApiVersions is answered at v0.
        let version = if supported { version } else { 0 };
        if !supported && api != ApiKey::ApiVersions as i16 {
            return Err(format!("answered unsupported API {api} v{version}"));
        }
        check_response(api, version, body)?;
        checked += 1;
    }
    Ok(checked)
}

/// Sends one ApiVersions v3 on `stream`; the version ranges answered.
async fn api_versions(stream: &mut TcpStream) -> Served {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("bad-input"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    stream
        .write_all(&encode(ApiKey::ApiVersions, 3, 11, &request))
        .await
        .expect("sending ApiVersions");
    let mut body = answer(stream).await.expect("an ApiVersions answer");
    let header = ResponseHeader::decode(&mut body, 0).expect("a header");
    assert_eq!(header.correlation_id, 11);
    let response = ApiVersionsResponse::decode(&mut body, 3).expect("an ApiVersions body");
    assert_eq!(response.error_code, 0);
    response
        .api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect()
}

/// The next answer's bytes (after the size), or `None` once closed.
async fn answer(stream: &mut TcpStream) -> Option<Bytes> {
    let size = tokio::time::timeout(WAIT, stream.read_i32())
        .await
        .expect("an answer or a close in time")
        .ok()?;
    let mut body = vec![0; usize::try_from(size).ok()?];
    stream.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

/// Whether the node closed `stream` without answering (within [`WAIT`]).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Sends `bytes` on a fresh connection; whether the node closed it unanswered.
async fn closes(addr: &str, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(addr).await.expect("connecting");
    stream.write_all(bytes).await.expect("sending");
    closed(&mut stream).await
}

/// The node is up and serves a fresh raw client (ApiVersions, Metadata)
/// and kcat (produce `tag`'s records to a topic of their own, read back).
async fn still_serves(cluster: &mut Cluster, tag: &str) {
    assert!(cluster.broker_mut().is_running(), "the node died ({tag})");
    let addr = cluster.broker().kafka_addr();
    let mut stream = TcpStream::connect(&addr).await.expect("connecting");
    let served = api_versions(&mut stream).await;
    assert!(
        served.contains_key(&(ApiKey::Metadata as i16)),
        "{served:?}"
    );
    stream
        .write_all(&encode(
            ApiKey::Metadata,
            12,
            12,
            &MetadataRequest::default(),
        ))
        .await
        .expect("sending Metadata");
    let body = answer(&mut stream).await.expect("a Metadata answer");
    check_response(ApiKey::Metadata as i16, 12, body).expect("a valid Metadata answer");

    let topic = format!("after-{tag}");
    create_topic(cluster.broker().url(), &topic, 1).await;
    let lines: Vec<String> = (0..10).map(|i| format!("k{i}:{tag} {i}")).collect();
    let input = lines.join("\n") + "\n";
    kcat(
        &["-P", "-b", &addr, "-t", &topic, "-K:", "-X", "acks=all"],
        &input,
    )
    .await;
    let out = kcat(
        &[
            "-C",
            "-b",
            &addr,
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k:%s\n",
        ],
        "",
    )
    .await;
    let mut read: Vec<&str> = out.lines().collect();
    read.sort_unstable();
    let mut expected: Vec<&str> = lines.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(read, expected, "kcat after {tag}");
}

#[tokio::test]
async fn unsupported_versions_and_unknown_keys() {
    let mut cluster = cluster().await;
    let addr = cluster.broker().kafka_addr();

    // KIP-511: ApiVersions at a version the node lacks is answered at v0
    // with UNSUPPORTED_VERSION and the ranges, and the connection stays.
    let mut stream = TcpStream::connect(&addr).await.expect("connecting");
    stream
        .write_all(&raw(18, 99, 5, &[0]))
        .await
        .expect("sending");
    let mut body = answer(&mut stream).await.expect("a v0 answer");
    assert_eq!(
        ResponseHeader::decode(&mut body, 0).unwrap().correlation_id,
        5
    );
    let response = ApiVersionsResponse::decode(&mut body, 0).expect("a v0 ApiVersions body");
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    let metadata = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Metadata as i16)
        .expect("Metadata among the ranges");
    assert_eq!((metadata.min_version, metadata.max_version), (0, 12));
    let served = api_versions(&mut stream).await;
    assert!(served.contains_key(&(ApiKey::DescribeConfigs as i16)));

    // Other APIs at versions outside the ranges, keys nobody serves here
    // or anywhere: closed without an answer.
    let metadata_v0 = |version| raw(3, version, 1, &0i32.to_be_bytes());
    for (what, frame) in [
        ("Metadata above its range", metadata_v0(13)),
        ("Produce below its range", raw(0, 2, 1, &[])),
        ("a negative version", metadata_v0(-1)),
        (
            "AlterConfigs (not served)",
            raw(ApiKey::AlterConfigs as i16, 0, 1, &[]),
        ),
        ("API key 999", raw(999, 0, 1, &[])),
        ("API key -1", raw(-1, 0, 1, &[])),
    ] {
        assert!(
            closes(&addr, &frame).await,
            "{what} left the connection open"
        );
    }
    still_serves(&mut cluster, "versions").await;
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_only_their_connection() {
    let mut cluster = cluster().await;
    let addr = cluster.broker().kafka_addr();

    let api_versions_v0 = encode(ApiKey::ApiVersions, 0, 1, &ApiVersionsRequest::default());
    let metadata = encode(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
    let mut trailing = api_versions_v0.clone();
    trailing.push(0);
    let size = i32::try_from(trailing.len() - 4).unwrap().to_be_bytes();
    trailing[..4].copy_from_slice(&size);
    let mut cut = metadata.clone();
    cut.truncate(cut.len() - 1);
    let size = i32::try_from(cut.len() - 4).unwrap().to_be_bytes();
    cut[..4].copy_from_slice(&size);
    // The client id claims 1,000 bytes; the frame has 2.
    let long_id = [
        &12i32.to_be_bytes()[..],
        &[0, 18, 0, 0, 0, 0, 0, 1, 0x03, 0xe8, 0, 0],
    ]
    .concat();
    for (what, frame) in [
        ("an empty frame", 0i32.to_be_bytes().to_vec()),
        (
            "a 3-byte header",
            [&3i32.to_be_bytes()[..], &[0, 18, 0]].concat(),
        ),
        ("a negative size", (-1i32).to_be_bytes().to_vec()),
        ("a body with a byte too many", trailing),
        ("a body a byte short", cut),
        ("a client id longer than the frame", long_id),
        (
            "a header without its client id",
            [&8i32.to_be_bytes()[..], &[0, 18, 0, 0, 0, 0, 0, 1]].concat(),
        ),
    ] {
        // A client in the middle of a good exchange meanwhile is served
        // before and after, on the same connection.
        let mut good = TcpStream::connect(&addr).await.expect("connecting");
        api_versions(&mut good).await;
        assert!(
            closes(&addr, &frame).await,
            "{what} left the connection open"
        );
        api_versions(&mut good).await;
    }

    // A size over the cap is refused from its prefix alone: closed at
    // once, though none of the body ever comes (it is never waited for,
    // let alone allocated). Just under the cap, the node waits for the
    // body until the idle timeout instead.
    for size in [MAX_FRAME + 1, i32::MAX as usize] {
        let prefix = u32::try_from(size).unwrap().to_be_bytes();
        let mut stream = TcpStream::connect(&addr).await.expect("connecting");
        stream.write_all(&prefix).await.expect("sending");
        let started = Instant::now();
        assert!(
            closed(&mut stream).await,
            "a {size}-byte frame was waited for"
        );
        assert!(
            started.elapsed() < IDLE / 2,
            "a {size}-byte frame was closed only at the idle timeout"
        );
    }
    let prefix = u32::try_from(MAX_FRAME).unwrap().to_be_bytes();
    let mut stream = TcpStream::connect(&addr).await.expect("connecting");
    stream.write_all(&prefix).await.expect("sending");
    let started = Instant::now();
    assert!(closed(&mut stream).await, "a half frame stayed open");
    assert!(
        started.elapsed() >= IDLE / 2,
        "a frame under the cap was refused"
    );

    still_serves(&mut cluster, "malformed").await;
}

#[tokio::test]
async fn silent_clients_and_half_frames_are_closed_at_the_idle_timeout() {
    let mut cluster = cluster().await;
    let addr = cluster.broker().kafka_addr();
    let frame = encode(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
    let half = &frame[..frame.len() / 2];
    for (what, sent) in [
        ("a silent client", &[][..]),
        ("half a frame", half),
        ("a size prefix only", &frame[..4]),
        ("two bytes of a prefix", &frame[..2]),
    ] {
        let mut stream = TcpStream::connect(&addr).await.expect("connecting");
        stream.write_all(sent).await.expect("sending");
        let started = Instant::now();
        assert!(closed(&mut stream).await, "{what} stayed connected");
        let waited = started.elapsed();
        assert!(
            waited >= IDLE / 2 && waited < WAIT,
            "{what} was closed after {waited:?}, not at the {IDLE:?} idle timeout"
        );
    }
    still_serves(&mut cluster, "idle").await;
}

/// A few thousand random and mutated frames over 800 connections, 16 at
/// a time: every answer is a well-formed response to a request sent, in
/// order, and the node stays up and serving. Seeded: a failure replays
/// with the seed it prints (`YAK_FUZZ_SEED`).
#[tokio::test]
async fn fuzzed_frames_never_get_a_malformed_answer_or_take_the_node_down() {
    let mut cluster = cluster().await;
    let addr = cluster.broker().kafka_addr();
    let served = {
        let mut stream = TcpStream::connect(&addr).await.expect("connecting");
        api_versions(&mut stream).await
    };
    let seed = std::env::var("YAK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("fuzz seed {seed} (YAK_FUZZ_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let corpus = corpus();
    let mut connections = Vec::new();
    let mut correlation = 0i32;
    for _ in 0..800 {
        let mut frames = Vec::new();
        for _ in 0..rng.random_range(1..10) {
            // Half of them valid, so that connections get answers to check
            // before the bad frame that closes them.
            let mut frame = match rng.random() {
                true => corpus[rng.random_range(0..corpus.len())].clone(),
                false => mutate(&mut rng, &corpus),
            };
            // Unique correlation ids, so each answer names its request.
            correlation += 1;
            if frame.len() >= 12 {
                frame[8..12].copy_from_slice(&correlation.to_be_bytes());
            }
            let honest = frame.get(..4) == Some(&(frame.len() as u32 - 4).to_be_bytes()[..]);
            frames.push(frame);
            // Past a size that lies, the node's frames are not ours: the
            // connection ends there.
            if !honest {
                break;
            }
        }
        connections.push(frames);
    }
    let total: usize = connections.iter().map(Vec::len).sum();
    let outcomes: Vec<Result<usize, String>> = stream::iter(connections)
        .map(|frames| {
            let (addr, served) = (addr.clone(), served.clone());
            async move {
                let shown: Vec<String> = frames.iter().map(|f| format!("{f:02x?}")).collect();
                fuzz_connection(addr, frames, served)
                    .await
                    .map_err(|e| format!("{e}\n  frames: {shown:?}"))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let answered: usize = outcomes.iter().filter_map(|o| o.as_ref().ok()).sum();
    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of the connections got bad answers:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The run means something only if many frames were sent and many
    // answers decoded.
    assert!(total >= 2_000, "only {total} frames");
    assert!(answered >= 300, "only {answered} answers of {total} frames");
    eprintln!("{total} frames, {answered} answers checked");
    still_serves(&mut cluster, "fuzz").await;
}

/// kafka-protocol 0.18 allocates a decoded array from its count on the
/// wire: a Metadata v0 request claiming 2^31 - 1 topics, 4 bytes of body,
/// asks the node for hundreds of GiB. With glibc's malloc instead of
/// jemalloc (`broker/src/main.rs`) the node aborts here.
#[tokio::test]
async fn a_huge_array_count_does_not_abort_the_node() {
    let mut cluster = cluster().await;
    let addr = cluster.broker().kafka_addr();
    assert!(closes(&addr, &raw(3, 0, 1, &i32::MAX.to_be_bytes())).await);
    still_serves(&mut cluster, "huge-array").await;
}

/// Sends `records` to partition 0 of `name` in one Produce v9 (acks=-1)
/// and returns that partition's answer.
async fn produce(
    cluster: &Cluster,
    name: &'static str,
    records: Bytes,
) -> PartitionProduceResponse {
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let mut stream = TcpStream::connect(cluster.broker().kafka_addr())
        .await
        .expect("connecting");
    stream
        .write_all(&encode(ApiKey::Produce, 9, 7, &produce))
        .await
        .expect("sending");
    let mut body = answer(&mut stream).await.expect("an answer");
    ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(9))
        .expect("a response header");
    let mut response = ProduceResponse::decode(&mut body, 9).expect("a produce response");
    response.responses.remove(0).partition_responses.remove(0)
}

async fn high_water_mark(cluster: &Cluster, name: &str) -> serde_json::Value {
    let (_, described) = testkit::describe_topic(cluster.broker().url(), name).await;
    described["partitions"][0]["high_water_mark"].clone()
}

/// Produce v3+ carries one record batch per partition (Kafka's rule):
/// two batches for one partition are refused with INVALID_RECORD, and
/// nothing of them is stored.
#[tokio::test]
async fn two_record_batches_for_one_partition_are_refused_whole() {
    let cluster = cluster().await;
    create_topic(cluster.broker().url(), "two-batches", 1).await;
    let two = [record_batch(), record_batch()].concat();
    let answer = produce(&cluster, "two-batches", Bytes::from(two)).await;
    assert_eq!(answer.error_code, 87, "INVALID_RECORD: {answer:?}");
    assert_eq!(high_water_mark(&cluster, "two-batches").await, 0);
}

/// A record over the node's `--max-payload-bytes` refuses its whole batch
/// with MESSAGE_TOO_LARGE and a message naming the record; nothing of it
/// is stored, and a batch within the limit is.
#[tokio::test]
async fn a_value_over_the_payload_limit_is_refused_whole() {
    // record_batch()'s values are 15 bytes.
    let limited = |max: &'static str| async move {
        let cluster = Cluster::builder()
            .kafka()
            .extra_args(["--max-payload-bytes", max])
            .start()
            .await;
        create_topic(cluster.broker().url(), "limits", 1).await;
        cluster
    };
    let cluster = limited("14").await;
    let answer = produce(&cluster, "limits", record_batch()).await;
    assert_eq!(answer.error_code, 10, "MESSAGE_TOO_LARGE: {answer:?}");
    let message = answer.error_message.expect("a message").to_string();
    assert!(
        message.contains("record 0: payload is 15 bytes; the limit is 14"),
        "{message}"
    );
    assert_eq!(high_water_mark(&cluster, "limits").await, 0);
    drop(cluster);

    let cluster = limited("15").await;
    let answer = produce(&cluster, "limits", record_batch()).await;
    assert_eq!(answer.error_code, 0, "{answer:?}");
    assert_eq!(high_water_mark(&cluster, "limits").await, 3);
}

/// Requests sent without waiting are served together and answered in the
/// order they came: a long-polling fetch first holds back the answers
/// behind it, a Produce with acks=0 gets none, and every produce is
/// stored.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let cluster = cluster().await;
    create_topic(cluster.broker().url(), "pipelined", 1).await;
    let produce = |acks: i16| {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic("pipelined"))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(record_batch())),
                    ]),
            ])
    };
    // Waits up to 300 ms for bytes at an offset nothing reaches.
    let fetch = FetchRequest::default()
        .with_max_wait_ms(300)
        .with_min_bytes(1 << 20)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic("pipelined"))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let frames = [
        encode(ApiKey::Fetch, 12, 1, &fetch),
        encode(ApiKey::Produce, 9, 2, &produce(-1)),
        encode(ApiKey::Produce, 9, 3, &produce(0)),
        encode(ApiKey::Produce, 9, 4, &produce(1)),
        encode(ApiKey::ApiVersions, 3, 5, &ApiVersionsRequest::default()),
    ]
    .concat();
    let mut stream = TcpStream::connect(cluster.broker().kafka_addr())
        .await
        .expect("connecting");
    stream.write_all(&frames).await.expect("sending");
    let mut correlations = Vec::new();
    for _ in 0..4 {
        let mut body = answer(&mut stream).await.expect("an answer");
        let header = ResponseHeader::decode(&mut body.clone(), 0).expect("a header");
        correlations.push(header.correlation_id);
        if matches!(header.correlation_id, 2 | 4) {
            ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(9))
                .expect("a header");
            let produced = ProduceResponse::decode(&mut body, 9).expect("a produce answer");
            let partition = &produced.responses[0].partition_responses[0];
            assert_eq!(partition.error_code, 0, "{partition:?}");
        }
    }
    assert_eq!(correlations, [1, 2, 4, 5], "in order, none for acks=0");
    let (_, described) = testkit::describe_topic(cluster.broker().url(), "pipelined").await;
    assert_eq!(
        described["partitions"][0]["high_water_mark"], 9,
        "{described}"
    );
}
