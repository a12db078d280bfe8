//! The Kafka listener's security against real nodes and a real Kafka
//! client nobody here wrote (kcat, librdkafka): with a client token, SASL/
//! PLAIN with the token as password produces and consumes, while a wrong
//! password or no SASL at all is refused and stores nothing; with
//! `--tls-cert`, kcat speaks SSL (and SASL_SSL with a token) to the
//! HTTP listener's certificate, and a plaintext client gets nowhere. The
//! admin clients of confluent-kafka (librdkafka) and kafka-python, over
//! SASL, read DescribeConfigs and DescribeCluster (with the venv
//! `scripts/kafka-clients.sh` installs).

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{
    Cluster, KcatRun, NodeProcess, http_client, kafka_python, kcat_run, send, tls::test_ca,
    wait_for,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Command,
};

const WAIT: Duration = Duration::from_secs(30);
const KCAT_TIMEOUT: Duration = Duration::from_secs(60);
const TOKEN: &str = "kafka-s3cret";

/// kcat's flags for one way of connecting.
fn security(protocol: &str, password: Option<&str>) -> Vec<String> {
    let mut flags = vec!["-X".to_owned(), format!("security.protocol={protocol}")];
    if protocol.starts_with("SASL") {
        flags.extend([
            "-X".to_owned(),
            "sasl.mechanisms=PLAIN".to_owned(),
            "-X".to_owned(),
            "sasl.username=any".to_owned(),
            "-X".to_owned(),
            format!("sasl.password={}", password.unwrap_or_default()),
        ]);
    }
    if protocol.ends_with("SSL") {
        let ca = test_ca().ca_path();
        flags.extend(["-X".to_owned(), format!("ssl.ca.location={}", ca.display())]);
    }
    flags
}

/// Runs kcat against `bootstrap` with `flags`, then `args`.
async fn kcat_with(bootstrap: &str, flags: &[String], args: &[&str], input: &str) -> KcatRun {
    let mut all: Vec<&str> = vec!["-b", bootstrap];
    all.extend(flags.iter().map(String::as_str));
    all.extend_from_slice(args);
    kcat_run(&all, input).await
}

/// Produces `lines` (`key:value`) with acks=all; fails fast (5 s) when the
/// records cannot be delivered.
async fn produce(bootstrap: &str, flags: &[String], topic: &str, lines: &[String]) -> KcatRun {
    let args = [
        "-P",
        "-t",
        topic,
        "-K:",
        "-X",
        "acks=all",
        "-X",
        "message.timeout.ms=5000",
    ];
    kcat_with(bootstrap, flags, &args, &(lines.join("\n") + "\n")).await
}

/// Every record of `topic`, as `key:value`, sorted.
async fn read_all(bootstrap: &str, flags: &[String], topic: &str) -> Vec<String> {
    let args = ["-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k:%s\n"];
    let run = kcat_with(bootstrap, flags, &args, "").await;
    assert!(run.ok, "reading {topic} failed: {}", run.stderr);
    let mut lines: Vec<String> = run.stdout.lines().map(str::to_owned).collect();
    lines.sort_unstable();
    lines
}

fn keyed_lines(n: usize, tag: &str) -> Vec<String> {
    let mut lines: Vec<String> = (0..n).map(|i| format!("key-{i}:{tag} {i}")).collect();
    lines.sort_unstable();
    lines
}

/// Creates `topic` over HTTP(S), with the node's token if it has one.
async fn create_topic(node: &NodeProcess, topic: &str) {
    let request = http_client()
        .post(format!("{}/topics", node.url()))
        .json(&json!({"name": topic, "partitions": 2}));
    let reply = send(node.authorized(request)).await;
    assert_eq!(
        reply.status.as_u16(),
        201,
        "creating {topic}: {}",
        reply.text
    );
}

/// Waits until kcat with `flags` lists the node's metadata.
async fn wait_for_metadata(bootstrap: &str, flags: &[String]) {
    wait_for("kcat lists the metadata", WAIT, || async {
        let run = kcat_with(bootstrap, flags, &["-L", "-m", "5"], "").await;
        (run.ok && run.stdout.contains("1 brokers:")).then_some(())
    })
    .await;
}

/// Whether kcat failed and listed nothing.
fn refused(run: &KcatRun) -> bool {
    !run.ok && !run.stdout.contains("brokers:")
}

/// A Kafka request frame (header v1, no client id) with `body`.
fn request(api: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&i32::try_from(10 + body.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&api.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// The next answer frame on `stream` (after its size), or `None` once
/// the node closed it.
async fn answer(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let size = tokio::time::timeout(WAIT, stream.read_i32())
        .await
        .expect("an answer or a close in time")
        .ok()?;
    let mut body = vec![0; usize::try_from(size).ok()?];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}

#[tokio::test]
async fn sasl_plain_with_the_token_is_the_only_way_in() {
    let cluster = Cluster::builder()
        .kafka()
        .client_token(TOKEN)
        .extra_args(["--cluster-token", "cluster-s3cret"])
        .start()
        .await;
    let broker = cluster.broker();
    let bootstrap = broker.kafka_addr();
    let sasl = security("SASL_PLAINTEXT", Some(TOKEN));
    wait_for_metadata(&bootstrap, &sasl).await;
    create_topic(broker, "guarded").await;

    // The token as password: produce, read back.
    let lines = keyed_lines(100, "guarded");
    let run = produce(&bootstrap, &sasl, "guarded", &lines).await;
    assert!(run.ok, "producing with the token failed: {}", run.stderr);
    assert_eq!(read_all(&bootstrap, &sasl, "guarded").await, lines);

    // A wrong password: refused, with the node's reason.
    let wrong = security("SASL_PLAINTEXT", Some("not-the-token"));
    let run = produce(&bootstrap, &wrong, "guarded", &keyed_lines(5, "wrong")).await;
    assert!(!run.ok, "a wrong password produced: {}", run.stderr);
    let run = kcat_with(&bootstrap, &wrong, &["-L", "-m", "5"], "").await;
    assert!(refused(&run), "a wrong password listed metadata");
    assert!(
        run.stderr.contains("Authentication failed"),
        "no authentication failure reported: {}",
        run.stderr
    );

    // No SASL at all: refused too.
    let none = security("PLAINTEXT", None);
    let run = produce(&bootstrap, &none, "guarded", &keyed_lines(5, "none")).await;
    assert!(!run.ok, "a client without SASL produced: {}", run.stderr);
    let run = kcat_with(&bootstrap, &none, &["-L", "-m", "5"], "").await;
    assert!(refused(&run), "a client without SASL listed metadata");

    // Nothing of theirs was stored.
    assert_eq!(read_all(&bootstrap, &sasl, "guarded").await, lines);

    // On the wire: ApiVersions is answered before authenticating, any
    // other request (Metadata v0, empty topic list) closes unanswered.
    let mut stream = TcpStream::connect(&bootstrap).await.expect("connecting");
    stream
        .write_all(&request(18, 0, 1, &[]))
        .await
        .expect("sending");
    let versions = answer(&mut stream).await.expect("ApiVersions answered");
    assert_eq!(
        &versions[..6],
        &[0, 0, 0, 1, 0, 0],
        "correlation 1, no error"
    );
    stream
        .write_all(&request(3, 0, 2, &0i32.to_be_bytes()))
        .await
        .expect("sending");
    assert_eq!(answer(&mut stream).await, None, "Metadata was answered");
}

#[tokio::test]
async fn tls_serves_kcat_over_ssl_and_refuses_plaintext() {
    let cluster = Cluster::builder().tls().kafka().start().await;
    let broker = cluster.broker();
    let bootstrap = broker.kafka_addr();
    let ssl = security("SSL", None);
    wait_for_metadata(&bootstrap, &ssl).await;
    create_topic(broker, "private").await;
    let lines = keyed_lines(100, "private");
    let run = produce(&bootstrap, &ssl, "private", &lines).await;
    assert!(run.ok, "producing over SSL failed: {}", run.stderr);
    assert_eq!(read_all(&bootstrap, &ssl, "private").await, lines);

    // A plaintext Kafka request is not a TLS handshake: closed, unanswered.
    let mut stream = TcpStream::connect(&bootstrap).await.expect("connecting");
    stream
        .write_all(&request(18, 0, 1, &[]))
        .await
        .expect("sending");
    let mut reply = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the plaintext connection stayed open");
    assert!(
        reply.first() != Some(&0),
        "a plaintext answer came back: {reply:?}"
    );
    let run = kcat_with(
        &bootstrap,
        &security("PLAINTEXT", None),
        &["-L", "-m", "5"],
        "",
    )
    .await;
    assert!(refused(&run), "plaintext kcat listed metadata over TLS");
}

#[tokio::test]
async fn sasl_ssl_needs_both_the_certificate_and_the_token() {
    let cluster = Cluster::builder()
        .tls()
        .kafka()
        .client_token(TOKEN)
        .extra_args(["--cluster-token", "cluster-s3cret"])
        .start()
        .await;
    let broker = cluster.broker();
    let bootstrap = broker.kafka_addr();
    let sasl_ssl = security("SASL_SSL", Some(TOKEN));
    wait_for_metadata(&bootstrap, &sasl_ssl).await;
    create_topic(broker, "both").await;
    let lines = keyed_lines(50, "both");
    let run = produce(&bootstrap, &sasl_ssl, "both", &lines).await;
    assert!(run.ok, "producing over SASL_SSL failed: {}", run.stderr);
    assert_eq!(read_all(&bootstrap, &sasl_ssl, "both").await, lines);

    let wrong = security("SASL_SSL", Some("nope"));
    let run = produce(&bootstrap, &wrong, "both", &keyed_lines(5, "wrong")).await;
    assert!(!run.ok, "a wrong password produced over SASL_SSL");
    let run = produce(
        &bootstrap,
        &security("SSL", None),
        "both",
        &keyed_lines(5, "ssl"),
    )
    .await;
    assert!(!run.ok, "SSL without SASL produced");
    assert_eq!(read_all(&bootstrap, &sasl_ssl, "both").await, lines);
}

/// Both admin clients over SASL/PLAIN: a topic's and the controller's
/// configs, the cluster, and an unknown topic; one JSON object on stdout.
const ADMIN: &str = r#"
import json, sys
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from kafka.admin import KafkaAdminClient, ConfigResource as KResource, ConfigResourceType

bootstrap, token, topic = sys.argv[1:4]
admin = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                     "sasl.mechanisms": "PLAIN", "sasl.username": "admin", "sasl.password": token})
out = {}
cluster = admin.describe_cluster(request_timeout=20).result(timeout=30)
out["cluster_id"] = cluster.cluster_id
out["controller"] = cluster.controller.id if cluster.controller else None
out["nodes"] = [n.id for n in cluster.nodes]
for name, resource in [("topic", ConfigResource(ResourceType.TOPIC, topic)),
                       ("broker", ConfigResource(ResourceType.BROKER, str(out["controller"])))]:
    entries = admin.describe_configs([resource], request_timeout=20)[resource].result(timeout=30)
    out[name] = {k: v.value for k, v in entries.items()}
unknown = ConfigResource(ResourceType.TOPIC, "no-such-topic")
try:
    admin.describe_configs([unknown], request_timeout=20)[unknown].result(timeout=30)
    out["unknown"] = "described"
except Exception as e:
    out["unknown"] = str(e)

python_admin = KafkaAdminClient(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                                sasl_mechanism="PLAIN", sasl_plain_username="admin",
                                sasl_plain_password=token, request_timeout_ms=20000)
response = python_admin.describe_configs([KResource(ConfigResourceType.TOPIC, topic)])[0]
resource = response.resources[0]
out["kafka_python"] = {"error": resource[0], "configs": {e[0]: e[1] for e in resource[4]}}
python_admin.close()
print(json.dumps(out))
"#;

#[tokio::test]
async fn admin_clients_describe_configs_and_the_cluster_over_sasl() {
    let cluster = Cluster::builder()
        .kafka()
        .client_token(TOKEN)
        .extra_args([
            "--cluster-token",
            "cluster-s3cret",
            "--min-insync-replicas",
            "1",
        ])
        .start()
        .await;
    let broker = cluster.broker();
    let bootstrap = broker.kafka_addr();
    wait_for_metadata(&bootstrap, &security("SASL_PLAINTEXT", Some(TOKEN))).await;
    let request = http_client()
        .post(format!("{}/topics", broker.url()))
        .json(&json!({"name": "configured", "partitions": 1, "retention_ms": 3_600_000}));
    let reply = send(broker.authorized(request)).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);

    let output = tokio::time::timeout(
        KCAT_TIMEOUT,
        Command::new(kafka_python())
            .args(["-c", ADMIN, &bootstrap, TOKEN, "configured"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the admin clients finish in time")
    .expect("running python");
    assert!(
        output.status.success(),
        "the admin clients failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).expect("JSON from the script");

    assert_eq!(out["cluster_id"], json!(cluster.name()), "{out}");
    assert_eq!(out["nodes"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(
        out["controller"], out["nodes"][0],
        "the leader is the controller: {out}"
    );
    let topic = &out["topic"];
    assert_eq!(topic["cleanup.policy"], "delete", "{out}");
    assert_eq!(topic["retention.ms"], "3600000", "{out}");
    assert_eq!(topic["retention.bytes"], "-1", "{out}");
    assert_eq!(topic["min.insync.replicas"], "1", "{out}");
    assert_eq!(topic["max.message.bytes"], (32 << 20).to_string(), "{out}");
    let broker_configs = &out["broker"];
    assert_eq!(broker_configs["sasl.enabled.mechanisms"], "PLAIN", "{out}");
    assert_eq!(
        broker_configs["broker.id"],
        out["controller"].to_string(),
        "{out}"
    );
    assert!(
        out["unknown"]
            .as_str()
            .is_some_and(|e| e.contains("UNKNOWN_TOPIC_OR_PART")),
        "{out}"
    );
    assert_eq!(out["kafka_python"]["error"], 0, "{out}");
    assert_eq!(
        out["kafka_python"]["configs"]["retention.ms"], "3600000",
        "{out}"
    );
}
