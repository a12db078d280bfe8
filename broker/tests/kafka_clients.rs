//! The Kafka listener against three Kafka clients nobody here wrote:
//! kafka-python and confluent-kafka (librdkafka), run as the small scripts
//! in `tests/kafka_clients/` with the interpreter of the venv that
//! `scripts/kafka-clients.sh` installs (`target/kafka-clients-venv`, or
//! `$YAK_KAFKA_PYTHON`), and KafkaJS (pure JavaScript, its own protocol
//! implementation and API version choices), run as the scripts in
//! `tests/kafka_clients/kafkajs/` with the node and `node_modules` that
//! `scripts/kafka-clients-node.sh` installs (`target/kafka-clients-node`,
//! `testkit::kafka::kafkajs`). Each script prints JSON lines (the
//! KafkaJS ones the same as the Python ones); the tests check them against
//! each other and against the cluster:
//!
//! - idempotent producers (acks=all) of every client, every compression
//!   codec of confluent-kafka, none and gzip of KafkaJS, read back (KafkaJS
//!   by a consumer in a group of its own, the others without a group):
//!   every record once, in order per partition, at the offset its producer
//!   was told, intact;
//! - ListOffsets by timestamp (`offsets_for_times`,
//!   `fetchTopicOffsetsByTimestamp`) through every client;
//! - KafkaJS's admin client: createTopics, describeCluster,
//!   fetchTopicMetadata, fetchTopicOffsets;
//! - consumer groups of a kafka-python and a confluent-kafka member, and of
//!   a KafkaJS, a kafka-python and a confluent-kafka member, splitting a
//!   topic and committing, then a later member resuming from the commits;
//! - a leader killed (SIGKILL) under a producer and a group (Python
//!   clients; KafkaJS alone): every acknowledged record read by the group
//!   exactly once.
//!
//! Set `YAK_KAFKA_DEBUG=1` for the clients' protocol debug logs.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use testkit::{Cluster, create_topic, kafka_python, wait_for};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, ChildStdin, Command},
    task::JoinHandle,
};

const WAIT: Duration = Duration::from_secs(30);
/// How long one client script may run before it gives up itself.
const CLIENT_TIMEOUT_S: u64 = 180;
/// How long the test waits for a client's output (a little longer).
const CLIENT_WAIT: Duration = Duration::from_secs(CLIENT_TIMEOUT_S + 10);
const KAFKA_PYTHON: &str = "kafka-python";
const CONFLUENT: &str = "confluent";
const KAFKAJS: &str = "kafkajs";

/// A running client script: its JSON lines as they come, its stderr (the
/// client's logs), and its stdin (closing it tells a streaming script to
/// stop). Prints its logs if the test fails while it exists.
struct Client {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Client {
    fn spawn(script: &str, client: &str, args: &[String]) -> Client {
        let what = format!("{script} --client {client} {}", args.join(" "));
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka_clients");
        let mut command = if client == KAFKAJS {
            let kafkajs = testkit::kafka::kafkajs();
            let mut command = Command::new(&kafkajs.node);
            command
                .env("NODE_PATH", &kafkajs.node_modules)
                .arg(scripts.join(format!("kafkajs/{script}.mjs")));
            command
        } else {
            let mut command = Command::new(kafka_python());
            command
                .arg("-u") // unbuffered
                .arg("-B") // no __pycache__ beside the scripts
                .arg(scripts.join(format!("{script}.py")));
            command
        };
        let mut child = command
            .args([
                "--client",
                client,
                "--timeout",
                &CLIENT_TIMEOUT_S.to_string(),
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {what}: {e} (run scripts/kafka-clients.sh and scripts/kafka-clients-node.sh)"
                )
            });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("piped");
        let out = Arc::clone(&lines);
        let read_stdout = tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "unparsed": line }));
                out.lock().unwrap().push(value);
            }
        });
        let mut err_pipe = child.stderr.take().expect("piped");
        let err = Arc::clone(&stderr);
        let read_stderr = tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf).await {
                err.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Client {
            what,
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            readers: vec![read_stdout, read_stderr],
        }
    }

    fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// The last `n` lines of the client's log.
    fn log_tail(&self, n: usize) -> String {
        let log = self.stderr.lock().unwrap();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Polls the client's output until `check` finds what it waits for
    /// ([`wait_all`] with one client).
    async fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> Option<T>,
    ) -> T {
        wait_all(&mut [self], what, timeout, |lines| check(&lines[0])).await
    }

    /// Whether the client exited; if so, its output is all read.
    async fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.try_wait().ok()??;
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        Some(status)
    }

    /// Closes stdin (a streaming script stops), waits for the exit and
    /// returns every line; panics with the log unless it exited 0. (Its
    /// log is still printed if the test fails later.)
    async fn finish(&mut self) -> Vec<Value> {
        self.stdin.take();
        let status = tokio::time::timeout(CLIENT_WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit in time", self.what))
            .expect("waiting for the client");
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        assert!(
            status.success(),
            "{} failed ({status}); its log:\n{}",
            self.what,
            self.log_tail(200)
        );
        self.lines()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} (last 200 lines of its log) ----\n{}",
                self.what,
                self.log_tail(200)
            );
        }
    }
}

/// Polls the output of `clients` (their lines, in order) until `check`
/// finds what it waits for; panics with a client's log if it exits first,
/// or with `what` when `timeout` passes.
async fn wait_all<T>(
    clients: &mut [&mut Client],
    what: &str,
    timeout: Duration,
    check: impl Fn(&[Vec<Value>]) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let lines: Vec<Vec<Value>> = clients.iter().map(|c| c.lines()).collect();
        if let Some(found) = check(&lines) {
            return found;
        }
        for client in clients.iter_mut() {
            if let Some(status) = client.exited().await {
                panic!(
                    "{} exited ({status}) before {what}; its log:\n{}",
                    client.what,
                    client.log_tail(200)
                );
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; the clients' lines other than records: {:#?}",
            lines
                .iter()
                .map(|l| l
                    .iter()
                    .filter(|l| l.get("offset").is_none())
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(testkit::POLL_INTERVAL).await;
    }
}

/// Runs a script to its end and returns its lines.
async fn run(script: &str, client: &str, args: &[String]) -> Vec<Value> {
    Client::spawn(script, client, args).finish().await
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|&a| a.to_owned()).collect()
}

/// A broker and a follower with Kafka listeners, both in the registry with
/// their Kafka address (so Metadata lists both).
async fn kafka_cluster() -> Cluster {
    let cluster = Cluster::builder().followers(1).kafka().start().await;
    cluster.wait_for_peers(WAIT).await;
    let store = cluster.store();
    wait_for(
        "every node's Kafka address in the registry",
        WAIT,
        || async {
            let nodes = store.nodes().await.ok()?;
            (nodes.len() == 2 && nodes.iter().all(|n| n.kafka.is_some())).then_some(())
        },
    )
    .await;
    cluster
}

/// Every node's Kafka address: clients bootstrap from the whole cluster,
/// so they still find it when one node dies.
fn bootstrap(cluster: &Cluster) -> String {
    cluster
        .nodes()
        .iter()
        .map(testkit::NodeProcess::kafka_addr)
        .collect::<Vec<_>>()
        .join(",")
}

fn key_of(id: u64) -> String {
    format!("key-{id}")
}

/// What `common.value_of` in the scripts produces.
fn value_of(id: u64) -> String {
    format!("value {id} ") + &"grüße vom yak, ünïcödé ✓ ".repeat(4)
}

fn id_of(key: &str) -> u64 {
    key.strip_prefix("key-")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a key the test produced, not {key:?}"))
}

/// A record as a consumer printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Read {
    partition: u64,
    offset: u64,
    key: String,
    value: String,
}

fn record_lines(lines: &[Value]) -> Vec<Read> {
    lines
        .iter()
        .filter(|l| l.get("offset").is_some() && l.get("key").is_some())
        .map(|l| Read {
            partition: l["partition"].as_u64().expect("a partition"),
            offset: l["offset"].as_u64().expect("an offset"),
            key: l["key"].as_str().expect("a key").to_owned(),
            value: l["value"].as_str().expect("a value").to_owned(),
        })
        .collect()
}

/// Acknowledged records by id, as the producer printed them: (partition,
/// offset). Checks the producer was told each id once, with its key and
/// value.
fn acked_records(lines: &[Value]) -> BTreeMap<u64, (u64, u64)> {
    let mut acked = BTreeMap::new();
    for line in lines.iter().filter(|l| l.get("acked").is_some()) {
        let id = line["acked"].as_u64().expect("an id");
        assert_eq!(line["key"], key_of(id), "{line}");
        assert_eq!(line["value"], value_of(id).as_str(), "{line}");
        let at = (
            line["partition"].as_u64().expect("a partition"),
            line["offset"].as_u64().expect("an offset"),
        );
        assert!(
            acked.insert(id, at).is_none(),
            "record {id} acknowledged twice"
        );
    }
    acked
}

/// The reader read exactly the `n` records the producer had acknowledged:
/// each once, at the partition and offset its producer was told, key and
/// value intact, offsets in order per partition, and per partition in the
/// order they were produced.
fn check_read_back(producer: &[Value], reader: &[Value], n: u64) {
    let acked = acked_records(producer);
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "the producer was not told about every record once"
    );
    let read = record_lines(reader);
    let mut seen = BTreeSet::new();
    let mut last_offset: BTreeMap<u64, u64> = BTreeMap::new();
    for r in &read {
        assert!(
            seen.insert((r.partition, r.offset)),
            "partition {} offset {} read twice",
            r.partition,
            r.offset
        );
        if let Some(&last) = last_offset.get(&r.partition) {
            assert!(
                r.offset > last,
                "partition {} read out of order: {} after {last}",
                r.partition,
                r.offset
            );
        }
        last_offset.insert(r.partition, r.offset);
        let id = id_of(&r.key);
        assert_eq!(r.value, value_of(id), "value of record {id}");
        assert_eq!(
            acked.get(&id),
            Some(&(r.partition, r.offset)),
            "record {id} read at partition {} offset {}, not where it was acknowledged",
            r.partition,
            r.offset
        );
    }
    assert_eq!(read.len() as u64, n, "records read");
    // Produce order per partition: a later id has a later offset.
    let mut by_partition: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    for (&id, &(partition, offset)) in &acked {
        by_partition
            .entry(partition)
            .or_default()
            .push((id, offset));
    }
    for (partition, ids) in &by_partition {
        assert!(
            ids.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {partition} stores records out of produce order"
        );
    }
    assert!(
        by_partition.len() > 1,
        "keyed records all went to one partition: {:?}",
        by_partition.keys()
    );
    let done = reader.last().expect("the reader printed something");
    assert_eq!(done["done"], true, "{done}");
    let end: u64 = done["end_offsets"]
        .as_object()
        .expect("end offsets")
        .values()
        .map(|o| o.as_u64().expect("an offset"))
        .sum();
    assert_eq!(end, n, "the end offsets (ListOffsets latest) {done}");
}

/// Produces 2,000 keyed records to `topic` with `producer`'s idempotent
/// producer (and `extra` flags), reads them back with `reader`'s consumer,
/// and checks them.
async fn round_trip(bootstrap: &str, topic: &str, producer: &str, reader: &str, extra: &[&str]) {
    let n = 2000;
    let mut produce = args(&["--bootstrap", bootstrap, "--topic", topic]);
    produce.extend(args(&["--count", &n.to_string()]));
    produce.extend(args(extra));
    let produced = run("producer", producer, &produce).await;
    let read = run(
        "reader",
        reader,
        &args(&["--bootstrap", bootstrap, "--topic", topic]),
    )
    .await;
    check_read_back(&produced, &read, n);
}

#[tokio::test]
async fn kafka_python_idempotent_producer_and_reader_see_every_record_once() {
    let cluster = kafka_cluster().await;
    let bootstrap = bootstrap(&cluster);
    create_topic(cluster.broker().url(), "kp-orders", 3).await;
    round_trip(&bootstrap, "kp-orders", KAFKA_PYTHON, KAFKA_PYTHON, &[]).await;
}

#[tokio::test]
async fn confluent_kafka_idempotent_producer_every_codec_read_back() {
    let cluster = kafka_cluster().await;
    let bootstrap = bootstrap(&cluster);
    for codec in ["none", "gzip", "lz4", "snappy", "zstd"] {
        let topic = format!("ck-{codec}");
        create_topic(cluster.broker().url(), &topic, 3).await;
        round_trip(
            &bootstrap,
            &topic,
            CONFLUENT,
            CONFLUENT,
            &["--compression", codec],
        )
        .await;
    }
}

/// KafkaJS's idempotent producer (acks=-1, one request in flight), with
/// KafkaJS's two built-in codecs, read back by a KafkaJS consumer.
#[tokio::test]
async fn kafkajs_idempotent_producer_every_codec_read_back() {
    let cluster = kafka_cluster().await;
    let bootstrap = bootstrap(&cluster);
    for codec in ["none", "gzip"] {
        let topic = format!("kjs-{codec}");
        create_topic(cluster.broker().url(), &topic, 3).await;
        round_trip(
            &bootstrap,
            &topic,
            KAFKAJS,
            KAFKAJS,
            &["--compression", codec],
        )
        .await;
    }
}

/// KafkaJS's admin client: createTopics (CreateTopics at the controller,
/// then Metadata until every partition has a leader), the same topic again
/// (TOPIC_ALREADY_EXISTS: `false`), describeCluster and
/// fetchTopicMetadata (Metadata), fetchTopicOffsets (ListOffsets).
#[tokio::test]
async fn kafkajs_admin_creates_a_topic_and_describes_the_cluster() {
    let cluster = kafka_cluster().await;
    let bootstrap = bootstrap(&cluster);
    let lines = run(
        "admin",
        KAFKAJS,
        &args(&[
            "--bootstrap",
            &bootstrap,
            "--topic",
            "kjs-admin",
            "--partitions",
            "4",
        ]),
    )
    .await;
    let line = |key: &str| -> &Value {
        lines
            .iter()
            .find(|l| l.get(key).is_some())
            .unwrap_or_else(|| panic!("no {key} line in {lines:?}"))
    };
    assert_eq!(line("created")["created"], true, "{lines:?}");
    assert_eq!(line("created_again")["created_again"], false, "{lines:?}");
    // The topic exists for YAK too, with the partitions asked for.
    let topics = cluster.store().topics().await.expect("redis answers");
    assert_eq!(topics.get("kjs-admin"), Some(&4), "{topics:?}");

    let described = &line("cluster")["cluster"];
    let brokers = described["brokers"].as_array().expect("brokers");
    let mut advertised: Vec<String> = brokers
        .iter()
        .map(|b| format!("{}:{}", b["host"].as_str().unwrap(), b["port"]))
        .collect();
    advertised.sort();
    let mut expected: Vec<String> = cluster
        .nodes()
        .iter()
        .map(testkit::NodeProcess::kafka_addr)
        .collect();
    expected.sort();
    assert_eq!(advertised, expected, "describeCluster: {described}");
    // The controller is the leader, and it is one of the brokers.
    let controller = &described["controller"];
    assert!(
        brokers.iter().any(|b| &b["nodeId"] == controller),
        "controller {controller} among {brokers:?}"
    );
    assert!(
        described["clusterId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{described}"
    );

    let topic = line("topic");
    assert_eq!(topic["topic"], "kjs-admin");
    let partitions = topic["partitions"].as_array().expect("partitions");
    assert_eq!(
        partitions
            .iter()
            .map(|p| p["partitionId"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3],
        "{topic}"
    );
    for p in partitions {
        assert_eq!(
            &p["leader"], controller,
            "every partition led by the leader: {p}"
        );
    }
    let offsets = line("offsets")["offsets"]
        .as_array()
        .expect("offsets")
        .clone();
    assert_eq!(offsets.len(), 4, "{offsets:?}");
    for o in &offsets {
        assert_eq!(
            (o["high"].as_u64(), o["low"].as_u64()),
            (Some(0), Some(0)),
            "{o}"
        );
    }
}

#[tokio::test]
async fn offsets_for_times_finds_the_first_record_at_or_after_a_timestamp() {
    let cluster = kafka_cluster().await;
    let bootstrap = bootstrap(&cluster);
    // Ten records an hour ago, a second apart: timestamps base + 1000 * i.
    let base = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        - 3_600_000;
    // (lookup, the id of the record it finds, or none past the last one)
    let lookups = [
        (base - 5_000, Some(0)),
        (base, Some(0)),
        (base + 1, Some(1)),
        (base + 3_500, Some(4)),
        (base + 9_000, Some(9)),
        (base + 9_001, None),
        (base + 60_000, None),
    ];
    for client in [KAFKA_PYTHON, CONFLUENT, KAFKAJS] {
        let topic = format!("times-{client}");
        create_topic(cluster.broker().url(), &topic, 3).await;
        let mut list = args(&["--bootstrap", &bootstrap, "--topic", &topic]);
        list.extend(args(&["--count", "10", "--base-ms", &base.to_string()]));
        list.push("--lookup".to_owned());
        list.extend(lookups.iter().map(|(ms, _)| ms.to_string()));
        let lines = run("timestamps", client, &list).await;
        let offsets: BTreeMap<u64, u64> = lines
            .iter()
            .filter(|l| l.get("acked").is_some())
            .map(|l| (l["acked"].as_u64().unwrap(), l["offset"].as_u64().unwrap()))
            .collect();
        assert_eq!(offsets.len(), 10, "{client}: {lines:?}");
        let answers: Vec<&Value> = lines.iter().filter(|l| l.get("lookup").is_some()).collect();
        assert_eq!(answers.len(), lookups.len(), "{client}: {lines:?}");
        for ((ms, id), answer) in lookups.iter().zip(answers) {
            assert_eq!(answer["lookup"].as_u64(), Some(*ms), "{client}: {answer}");
            let expected = id.map(|id| offsets[&id]);
            assert_eq!(
                answer["offset"].as_u64(),
                expected,
                "{client}: offsets_for_times({ms}) (base {base}) should find record {id:?}: {answer}"
            );
            // kafka-python also returns the found record's timestamp.
            if let (Some(id), Some(ts)) = (id, answer["timestamp"].as_u64()) {
                assert_eq!(ts, base + 1000 * id, "{client}: {answer}");
            }
        }
    }
}

/// A member's current partitions, from its assigned/revoked lines (`None`
/// while it holds none, or mid-rebalance).
fn current_assignment(lines: &[Value]) -> Option<BTreeSet<u64>> {
    let last = lines
        .iter()
        .rev()
        .find(|l| l.get("assigned").is_some() || l.get("revoked").is_some())?;
    let assigned = last.get("assigned")?.as_array()?;
    let partitions: BTreeSet<u64> = assigned.iter().filter_map(Value::as_u64).collect();
    (!partitions.is_empty()).then_some(partitions)
}

/// Waits until every member holds partitions, none shared, together all
/// of `0..partitions`; returns each member's.
async fn wait_for_split(members: &mut [&mut Client], partitions: u64) -> Vec<BTreeSet<u64>> {
    let all: BTreeSet<u64> = (0..partitions).collect();
    let what = format!("the members to split partitions {all:?}");
    wait_all(members, &what, WAIT * 2, |lines| {
        let sets: Vec<BTreeSet<u64>> = lines
            .iter()
            .map(|l| current_assignment(l))
            .collect::<Option<_>>()?;
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<u64> = sets.iter().flatten().copied().collect();
        (total == all.len() && union == all).then_some(sets)
    })
    .await
}

/// Who read a record: (member, partition, offset).
type ReadBy = (String, u64, u64);

/// Every record the members read, with who read it.
fn group_reads(members: &[(&str, &[Value])]) -> Vec<(String, Read)> {
    members
        .iter()
        .flat_map(|(name, lines)| {
            record_lines(lines)
                .into_iter()
                .map(move |r| ((*name).to_owned(), r))
        })
        .collect()
}

/// The lines of a member that say something went wrong with its commits
/// (a KafkaJS member's `commit_refused`: a batch it gave back unread).
fn commit_trouble(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| {
            ["commit_failed", "commit_refused", "consume_error"]
                .iter()
                .any(|k| l.get(k).is_some())
        })
        .collect()
}

/// A member of `group` of `client`'s kind, named `name` in its lines, with
/// `extra` flags for its script.
fn member(
    bootstrap: &str,
    topic: &str,
    group: &str,
    client: &str,
    name: &str,
    extra: &[&str],
) -> Client {
    let mut list = args(&[
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--name",
        name,
    ]);
    list.extend(args(extra));
    Client::spawn("member", client, &list)
}

/// A member's kind and its script's extra flags.
type MemberKind<'a> = (&'a str, &'a [&'a str]);

/// KafkaJS's round-robin assigner under the protocol name the other
/// clients give theirs (`kafkajs/member.mjs`), so it shares their groups.
const KAFKAJS_SHARED: MemberKind<'static> = (KAFKAJS, &["--assignor", "roundrobin"]);

#[tokio::test]
async fn a_mixed_consumer_group_splits_partitions_and_resumes_from_its_commits() {
    group_splits_and_resumes(
        &[(KAFKA_PYTHON, &[]), (CONFLUENT, &[])],
        [CONFLUENT, KAFKA_PYTHON],
        (KAFKA_PYTHON, &[]),
    )
    .await;
}

/// KafkaJS's own assigner protocol ("RoundRobinAssigner") is one no other
/// client offers, so a group mixing KafkaJS with them needs the KafkaJS
/// member to offer the standard name ("roundrobin"; the same assignor,
/// a custom assigner in KafkaJS's API). The later member uses KafkaJS's
/// own protocol: the group is empty by then, and an empty group takes any.
#[tokio::test]
async fn a_consumer_group_of_kafkajs_kafka_python_and_confluent_splits_and_resumes() {
    group_splits_and_resumes(
        &[KAFKAJS_SHARED, (KAFKA_PYTHON, &[]), (CONFLUENT, &[])],
        [KAFKAJS, KAFKAJS],
        (KAFKAJS, &[]),
    )
    .await;
}

/// Members of the `members` kinds (named a, b, …) join a group and split
/// the three partitions of a topic (each at least one, together all
/// three); 300 records produced by `producers[0]` are read once between
/// them, each only from its own partitions, committing after every batch.
/// After they all left, 150 more by `producers[1]`: a later member of the
/// `later` kind reads exactly those, nothing the first ones committed.
async fn group_splits_and_resumes(
    members: &[MemberKind<'_>],
    producers: [&str; 2],
    later: MemberKind<'_>,
) {
    const NAMES: [&str; 4] = ["a", "b", "c", "d"];
    let cluster = kafka_cluster().await;
    let bootstrap = bootstrap(&cluster);
    let topic = "shared";
    create_topic(cluster.broker().url(), topic, 3).await;

    let mut clients: Vec<Client> = members
        .iter()
        .zip(NAMES)
        .map(|(&(client, extra), name)| member(&bootstrap, topic, "split", client, name, extra))
        .collect();
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    let split = wait_for_split(&mut refs, 3).await;

    // 300 records: together the members read each once, each only from
    // its own partitions, committing after every batch.
    let produced = run(
        "producer",
        producers[0],
        &args(&[
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--count",
            "300",
        ]),
    )
    .await;
    let acked = acked_records(&produced);
    assert_eq!(acked.len(), 300);
    let names = &NAMES[..members.len()];
    wait_all(
        &mut refs,
        "the group to read the 300 records",
        WAIT * 2,
        |lines| {
            let named: Vec<(&str, &[Value])> = names
                .iter()
                .zip(lines)
                .map(|(n, l)| (*n, l.as_slice()))
                .collect();
            let ids: BTreeSet<u64> = group_reads(&named)
                .iter()
                .map(|(_, r)| id_of(&r.key))
                .collect();
            (ids.len() == 300).then_some(())
        },
    )
    .await;
    let mut all_lines = Vec::new();
    for client in refs {
        all_lines.push(client.finish().await);
    }
    for (((name, lines), partitions), (_, extra)) in
        names.iter().zip(&all_lines).zip(&split).zip(members)
    {
        assert!(
            commit_trouble(lines).is_empty(),
            "member {name}: {:?}",
            commit_trouble(lines)
        );
        for r in record_lines(lines) {
            assert!(
                partitions.contains(&r.partition),
                "member {name} (partitions {partitions:?}) read {r:?}"
            );
        }
        assert!(lines.iter().any(|l| l["closed"] == true), "{name} closed");
        // A KafkaJS member says which protocol the group chose: the only
        // one it offers.
        let offered = if extra.contains(&"roundrobin") {
            "roundrobin"
        } else {
            "RoundRobinAssigner"
        };
        for protocol in lines.iter().filter_map(|l| l.get("protocol")) {
            assert_eq!(protocol, offered, "member {name}");
        }
    }
    let named: Vec<(&str, &[Value])> = names
        .iter()
        .zip(&all_lines)
        .map(|(n, l)| (*n, l.as_slice()))
        .collect();
    let read = group_reads(&named);
    assert_eq!(read.len(), 300, "records read (each once)");
    for (_, r) in &read {
        let id = id_of(&r.key);
        assert_eq!(acked[&id], (r.partition, r.offset), "{r:?}");
        assert_eq!(r.value, value_of(id));
    }

    // 150 more; a later member of the group reads those and nothing that
    // the first ones committed.
    let produced = run(
        "producer",
        producers[1],
        &args(&[
            "--bootstrap",
            &bootstrap,
            "--topic",
            topic,
            "--count",
            "150",
            "--first-id",
            "300",
        ]),
    )
    .await;
    assert_eq!(acked_records(&produced).len(), 150);
    let mut c = member(
        &bootstrap,
        topic,
        "split",
        later.0,
        NAMES[members.len()],
        later.1,
    );
    c.wait_until("150 records read by the later member", WAIT * 2, |lines| {
        (record_lines(lines).len() >= 150).then_some(())
    })
    .await;
    // And committed the batch that held the last of them.
    c.wait_until("the later member's commit", WAIT, |lines| {
        lines
            .last()
            .is_some_and(|l| l.get("committed").is_some())
            .then_some(())
    })
    .await;
    let c_lines = c.finish().await;
    assert!(commit_trouble(&c_lines).is_empty(), "{c_lines:?}");
    let ids: Vec<u64> = record_lines(&c_lines)
        .iter()
        .map(|r| id_of(&r.key))
        .collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(
        unique,
        (300..450).collect(),
        "the later member should read exactly the 150 uncommitted records"
    );
    assert_eq!(ids.len(), 150, "the later member read a record twice");
}

#[tokio::test]
async fn leader_killed_under_a_confluent_producer_and_a_group_every_acked_record_read_once() {
    failover_exactly_once(CONFLUENT, [KAFKA_PYTHON, CONFLUENT]).await;
}

#[tokio::test]
async fn leader_killed_under_a_kafka_python_producer_and_a_group_every_acked_record_read_once() {
    failover_exactly_once(KAFKA_PYTHON, [KAFKA_PYTHON, CONFLUENT]).await;
}

/// KafkaJS alone: its idempotent producer (one request in flight) and a
/// group of two KafkaJS members (its own assigner). KafkaJS follows the
/// leader differently from the others: its members do not keep their
/// membership when the coordinator dies but restart and join as new
/// members, so the group rebalances once the old members' sessions
/// expire; and it does not retry a commit that failed then, so its member
/// commits before it prints a batch and settles a commit whose answer was
/// lost by asking the coordinator (`kafkajs/member.mjs`).
#[tokio::test]
async fn leader_killed_under_a_kafkajs_producer_and_a_kafkajs_group_every_acked_record_read_once() {
    failover_exactly_once(KAFKAJS, [KAFKAJS, KAFKAJS]).await;
}

/// A `producer_client` idempotent producer streams numbered records while
/// a group of two members of the `member_clients` kinds reads them; the
/// leader is killed (SIGKILL) mid-stream, nobody tells the clients; every
/// acknowledged record must be read by the group exactly once.
async fn failover_exactly_once(producer_client: &str, member_clients: [&str; 2]) {
    let mut cluster = kafka_cluster().await;
    let bootstrap = bootstrap(&cluster);
    let topic = "stream";
    create_topic(cluster.broker().url(), topic, 3).await;

    let mut a = member(&bootstrap, topic, "failover", member_clients[0], "a", &[]);
    let mut b = member(&bootstrap, topic, "failover", member_clients[1], "b", &[]);
    wait_for_split(&mut [&mut a, &mut b], 3).await;

    // A numbered stream, until the test closes the producer's stdin.
    let mut producer = Client::spawn(
        "producer",
        producer_client,
        &args(&["--bootstrap", &bootstrap, "--topic", topic, "--count", "0"]),
    );
    let acked_count = |lines: &[Value]| lines.iter().filter(|l| l.get("acked").is_some()).count();
    producer
        .wait_until("300 acknowledged records", WAIT, |lines| {
            (acked_count(lines) >= 300).then_some(())
        })
        .await;
    wait_all(
        &mut [&mut a, &mut b],
        "the group to read 200 records",
        WAIT,
        |lines| {
            let read: usize = lines.iter().map(|l| record_lines(l).len()).sum();
            (read >= 200).then_some(())
        },
    )
    .await;

    // Kill the leader mid-stream; nobody tells the clients.
    let acked_at_kill = acked_count(&producer.lines());
    let lines_at_kill = [a.lines().len(), b.lines().len()];
    cluster.broker_mut().kill9();
    let new_leader = cluster
        .wait_for_leader(WAIT, |info| info.id != "broker")
        .await;

    // The stream goes on through the new leader; then stop it.
    producer
        .wait_until(
            "300 more acknowledged records after the kill",
            WAIT * 2,
            |lines| (acked_count(lines) >= acked_at_kill + 300).then_some(()),
        )
        .await;
    let produced = producer.finish().await;
    let acked = acked_records(&produced);
    let failed: Vec<&Value> = produced
        .iter()
        .filter(|l| l.get("failed").is_some())
        .collect();

    // The group reads up to the end: its commits reach every partition's
    // high-water mark (read after the producer stopped).
    let hwms = cluster.store().hwms(topic, 3).await.expect("redis answers");
    let what = format!("the group's commits to reach the high-water marks {hwms:?}");
    wait_all(&mut [&mut a, &mut b], &what, WAIT * 2, |lines| {
        let mut committed = vec![0u64; hwms.len()];
        for l in lines.iter().flatten() {
            if let Some(offsets) = l.get("committed").and_then(Value::as_object) {
                for (p, o) in offsets {
                    let p: usize = p.parse().expect("a partition");
                    committed[p] = committed[p].max(o.as_u64().expect("an offset"));
                }
            }
        }
        // At least: a record written but not yet committed when the
        // leader died may still be committed after the marks were read.
        committed
            .iter()
            .zip(&hwms)
            .all(|(c, h)| c >= h)
            .then_some(())
    })
    .await;
    let lines_at_end = [a.lines().len(), b.lines().len()];
    let (a_lines, b_lines) = (a.finish().await, b.finish().await);

    // Every acknowledged record read exactly once by the group.
    let read = group_reads(&[("a", &a_lines), ("b", &b_lines)]);
    let mut readers: BTreeMap<u64, Vec<ReadBy>> = BTreeMap::new();
    for (name, r) in &read {
        let id = id_of(&r.key);
        assert_eq!(r.value, value_of(id), "{r:?}");
        readers
            .entry(id)
            .or_default()
            .push((name.clone(), r.partition, r.offset));
    }
    let missing: Vec<(u64, (u64, u64))> = acked
        .iter()
        .filter(|(id, _)| !readers.contains_key(id))
        .map(|(&id, &at)| (id, at))
        .collect();
    let duplicates: Vec<(&u64, &Vec<ReadBy>)> =
        readers.iter().filter(|(_, r)| r.len() > 1).collect();
    // What the members said between the kill and reading to the end,
    // besides records and commits: rebalances, failed commits.
    let events = |lines: &[Value], member: usize| -> Vec<String> {
        lines[lines_at_kill[member]..lines_at_end[member]]
            .iter()
            .filter(|l| l.get("offset").is_none() && l.get("committed").is_none())
            .map(Value::to_string)
            .collect()
    };
    assert!(
        missing.is_empty() && duplicates.is_empty(),
        "leader {} took over from the killed broker; {} records acknowledged ({} before the kill, \
         {} failed deliveries: {failed:?}); {} read.\n\
         missing (id, (partition, offset)): {:?}\n\
         read more than once (id: [(member, partition, offset)]): {:?}\n\
         a after the kill: {:?}\nb after the kill: {:?}\n(the members' logs follow)",
        new_leader.id,
        acked.len(),
        acked_at_kill,
        failed.len(),
        read.len(),
        &missing[..missing.len().min(20)],
        &duplicates[..duplicates.len().min(20)],
        events(&a_lines, 0),
        events(&b_lines, 1),
    );
    assert!(
        acked.len() >= acked_at_kill + 300,
        "the producer went on after the kill"
    );
    eprintln!(
        "{producer_client} producer: {} records acknowledged ({acked_at_kill} before the kill, {} failed deliveries), \
         each read once; a after the kill: {:?}; b after the kill: {:?}",
        acked.len(),
        failed.len(),
        events(&a_lines, 0),
        events(&b_lines, 1),
    );
}
