//! The invoice pipeline with real processes: a cluster (`broker`, one
//! `follower`, `redis-server`), the `yak-invoices generate` process
//! producing the shipped CSV's 5,000 invoices, and `yak-invoices filter`
//! processes in one consumer group. Mid-run one filter is killed with
//! SIGKILL and a new one started, then the leader node is killed (and
//! restarted: it comes back as a follower).
//!
//! At the end every invoice of the CSV is in exactly one output topic,
//! the one its `valid` column names, unchanged (the invalid ones with the
//! reasons), and `yak-invoices count` agrees. Zero duplicates is asserted,
//! not tolerated: SIGKILL and a leader failover leave no late produce
//! requests behind, which is when docs/groups.md promises exactly-once
//! output.
//!
//! Every wait polls a condition against a deadline; "mid-run" is observed
//! from the output topics' high-water marks.

use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use serde_json::Value;
use tempfile::TempDir;
use testkit::{Cluster, wait_for};
use yak_client::{ClientConfig, Consumer, Reset, ResetTo, StartAt, YakClient};

const GROUP: &str = "invoice-filters";
const ALL: &str = "invoices.all";
const VALID: &str = "invoices.valid";
const INVALID: &str = "invoices.invalid";
/// Rows of the shipped CSV.
const INVOICES: u64 = 5000;
/// The filters' session timeout: a killed filter's partitions move after
/// this long.
const SESSION_TIMEOUT_MS: &str = "5000";
/// Generous bounds on each phase of a debug-build run on a busy machine.
const PHASE: Duration = Duration::from_secs(60);

fn shipped_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/invoices.csv")
}

/// A `yak-invoices` process with its output in a file.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `yak-invoices args…` against `bootstrap`, with no inherited
    /// `YAK_*` variable.
    fn start(dir: &Path, name: &str, bootstrap: &str, args: &[&str]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("creating a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_yak-invoices"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("YAK_") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(args)
            .env("YAK_BOOTSTRAP", bootstrap)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("cloning a file handle"))
            .stderr(out)
            .spawn()
            .expect("starting yak-invoices");
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn filter(dir: &Path, name: &str, bootstrap: &str) -> Self {
        let args = [
            "filter",
            "--group",
            GROUP,
            "--instance",
            name,
            "--session-timeout-ms",
            SESSION_TIMEOUT_MS,
        ];
        Self::start(dir, name, bootstrap, &args)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and reap it.
    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping");
    }

    /// Waits for the process to exit by itself.
    async fn exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        wait_for(format!("{} to exit", self.name), timeout, || {
            let exited = child.try_wait().ok().flatten();
            async move { exited }
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} output (last 40 lines) ----\n{}",
                self.name,
                testkit::tail(&self.log, 40)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that gives up quickly, for polling: a call that fails during
/// the failover is simply polled again.
fn client(bootstrap: &str) -> YakClient {
    let config = ClientConfig {
        deadline: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    };
    YakClient::with_config(bootstrap.split(','), config).expect("a client")
}

/// Records in the two output topics (their high-water marks).
async fn routed(client: &YakClient) -> Option<u64> {
    let mut total = 0;
    for topic in [VALID, INVALID] {
        let detail = client.describe_topic(topic).await.ok()?;
        total += detail
            .partitions
            .iter()
            .map(|p| p.high_water_mark)
            .sum::<u64>();
    }
    Some(total)
}

/// The members of the group (by client id) and how many partitions each
/// holds, once the group is stable.
async fn stable_members(client: &YakClient) -> Option<BTreeMap<String, usize>> {
    let detail = client.describe_group(GROUP).await.ok()?;
    (detail.state == yak_client::GroupState::Stable).then(|| {
        detail
            .members
            .iter()
            .map(|m| (m.client_id.clone().unwrap_or_default(), m.assignment.len()))
            .collect()
    })
}

/// Every payload of `topic` below its high-water mark.
async fn read_all(client: &YakClient, topic: &str) -> Vec<Value> {
    let detail = client.describe_topic(topic).await.expect("describing");
    let mut payloads = Vec::new();
    for p in &detail.partitions {
        let mut consumer = Consumer::new(client.clone(), topic, p.partition, StartAt::Earliest);
        while consumer.position().is_none_or(|at| at < p.high_water_mark) {
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("reading");
            payloads.extend(records.into_iter().map(|r| r.payload));
        }
    }
    payloads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invoice_is_routed_exactly_once_through_kills_and_a_failover() {
    let mut cluster = Cluster::builder().followers(1).start().await;
    let bootstrap = cluster
        .nodes()
        .iter()
        .map(|n| n.url().to_owned())
        .collect::<Vec<_>>()
        .join(",");
    let client = client(&bootstrap);
    let dir = TempDir::new().expect("a temp dir");
    let csv = shipped_csv();
    let csv = csv.to_str().expect("a UTF-8 path");

    // 1. Three filters share the three partitions before any invoice
    //    exists, so that all of them are busy once the invoices come.
    let mut filters: Vec<Process> = (1..=3)
        .map(|i| Process::filter(dir.path(), &format!("filter-{i}"), &bootstrap))
        .collect();
    wait_for("3 members holding a partition each", PHASE, || async {
        let members = stable_members(&client).await?;
        (members.len() == 3 && members.values().all(|held| *held == 1)).then_some(())
    })
    .await;
    let mut generator = Process::start(
        dir.path(),
        "generate",
        &bootstrap,
        &["generate", "--csv", csv],
    );

    // 2. Routing under way: kill one filter with SIGKILL and start another.
    let killed_at = wait_for("1000 invoices routed", PHASE, || async {
        routed(&client).await.filter(|n| *n >= 1000)
    })
    .await;
    filters[0].kill9();
    assert!(
        killed_at < INVOICES,
        "the kill came after the run ({killed_at} routed)"
    );
    filters.push(Process::filter(dir.path(), "filter-4", &bootstrap));

    // 3. Kill the leader node while the killed filter's partition waits for
    //    a new owner (its session has not expired yet, so that partition
    //    cannot be done); the follower takes over, the old leader comes
    //    back as a follower.
    let before = routed(&client).await.expect("the cluster answers");
    assert!(
        before < INVOICES,
        "the failover came after the run ({before} routed)"
    );
    let old = cluster.leader_info().await.expect("a leader");
    let index = cluster
        .index_of(&old.id)
        .expect("the leader is one of the nodes");
    cluster.node_mut(index).kill9();
    let new = cluster
        .wait_for_leader(PHASE, |info| info.id != old.id)
        .await;
    assert!(new.epoch > old.epoch);
    cluster.node_mut(index).restart().await;

    // 4. Every invoice produced and committed by the group; the
    //    replacement holds a partition, the killed filter none.
    let status = generator.exit(PHASE).await;
    assert!(status.success(), "generate failed:\n{}", generator.output());
    assert!(
        generator
            .output()
            .contains("5000/5000 invoices acknowledged"),
        "{}",
        generator.output()
    );
    wait_for("the group to commit every invoice", PHASE, || async {
        committed(&client)
            .await
            .filter(|(end, done)| *end == INVOICES && done == end)
    })
    .await;
    let members = wait_for("filter-4 to hold a partition", PHASE, || async {
        let members = stable_members(&client).await?;
        (members.get("filter-4").is_some_and(|held| *held > 0)).then_some(members)
    })
    .await;
    assert!(
        !members.contains_key("filter-1"),
        "the killed member is gone: {members:?}"
    );
    for filter in &mut filters[1..] {
        assert!(
            filter.running(),
            "{} exited:\n{}",
            filter.name,
            filter.output()
        );
    }

    // 5. `yak-invoices count` finds everything in place.
    let counts = count(dir.path(), &bootstrap).await;
    assert_eq!(counts["all"], INVOICES, "{counts}");
    assert_eq!(counts["valid"], 3972, "{counts}");
    assert_eq!(counts["invalid"], 1028, "{counts}");
    assert_eq!(counts["routed"], INVOICES, "{counts}");
    for zero in ["duplicates", "missing", "misrouted", "strays", "without_id"] {
        assert_eq!(counts[zero], 0, "{zero}: {counts}");
    }

    // 6. Checked here too, against the CSV itself.
    check_against_csv(&client).await;

    // 7. The filters leave the group when told to stop.
    for filter in &mut filters[1..] {
        stop(filter).await;
    }
    let detail = client.describe_group(GROUP).await.expect("the group");
    assert!(
        detail.members.is_empty(),
        "members left behind: {:?}",
        detail.members
    );

    // 8. A deterministic replay: move the group's offsets back 100 records
    //    below the shortest partition's end — what a member that produced
    //    up to the end but crashed before committing leaves behind — and
    //    let a new filter route those records again. Every one is sent
    //    and acknowledged, and the leader drops every one as a duplicate:
    //    the output topics do not grow.
    let outputs = routed(&client).await.expect("the cluster answers");
    let input = client.describe_topic(ALL).await.expect("invoices.all");
    let shortest = input.partitions.iter().map(|p| p.high_water_mark).min();
    let back_to = shortest.expect("partitions") - 100;
    let longest = input.partitions.iter().map(|p| p.high_water_mark).max();
    assert!(
        longest.expect("partitions") - back_to <= 200,
        "a replay of more than 200 records of a partition would leave the broker's \
         memory of 256 batches per producer: {input:?}"
    );
    client
        .reset_group(GROUP, &Reset::new(ResetTo::Offset(back_to), None))
        .await
        .expect("resetting the group");
    let (_, rewound) = committed(&client).await.expect("the group");
    let replayed = INVOICES - rewound;
    assert!(replayed >= 300, "{replayed} records to replay");
    let mut replay = Process::filter(dir.path(), "filter-5", &bootstrap);
    wait_for("the group to commit every invoice again", PHASE, || async {
        committed(&client)
            .await
            .filter(|(_, done)| *done == INVOICES)
    })
    .await;
    stop(&mut replay).await;
    let sent = replay.output();
    assert!(
        sent.contains(&format!("stopped; routed {replayed} records")),
        "filter-5 should have sent {replayed} records again:\n{sent}"
    );
    eprintln!(
        "pipeline: filter-1 killed at {killed_at} routed, the leader at {before}; \
         {replayed} records replayed"
    );
    for filter in filters.iter().chain([&replay]) {
        eprintln!("---- {} ----\n{}", filter.name, filter.output());
    }
    assert_eq!(
        routed(&client).await,
        Some(outputs),
        "the replay stored nothing"
    );
    let counts = count(dir.path(), &bootstrap).await;
    assert_eq!(counts["duplicates"], 0, "{counts}");
    assert_eq!(counts["routed"], INVOICES, "{counts}");
}

/// The group's (end, committed) over the partitions of `invoices.all`.
async fn committed(client: &YakClient) -> Option<(u64, u64)> {
    let detail = client.describe_group(GROUP).await.ok()?;
    let input: Vec<_> = detail
        .partitions
        .iter()
        .filter(|p| p.topic == ALL)
        .collect();
    let end = input.iter().map(|p| p.high_water_mark).sum();
    let committed = input.iter().filter_map(|p| p.committed).sum();
    Some((end, committed))
}

/// Runs `yak-invoices count --json`, which must succeed, and returns its
/// counts.
async fn count(dir: &Path, bootstrap: &str) -> Value {
    let mut count = Process::start(dir, "count", bootstrap, &["count", "--json"]);
    let status = count.exit(PHASE).await;
    let output = count.output();
    assert!(status.success(), "count failed:\n{output}");
    output
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON in:\n{output}"))
}

/// Each invoice of the CSV exactly once in the outputs, in the topic its
/// `valid` column names, its fields intact.
async fn check_against_csv(client: &YakClient) {
    let mut outputs: BTreeMap<String, Vec<(&str, Value)>> = BTreeMap::new();
    for topic in [VALID, INVALID] {
        for payload in read_all(client, topic).await {
            let id = payload["invoice_id"].as_str().expect("an id").to_owned();
            outputs.entry(id).or_default().push((topic, payload));
        }
    }
    let mut reader = csv::Reader::from_path(shipped_csv()).expect("the CSV");
    let mut rows = 0;
    for row in reader.records() {
        let row = row.expect("a CSV row");
        rows += 1;
        let copies = outputs.remove(&row[0]).unwrap_or_default();
        assert_eq!(copies.len(), 1, "{} in the outputs: {copies:?}", &row[0]);
        let (topic, payload) = &copies[0];
        let expected = if &row[5] == "true" { VALID } else { INVALID };
        assert_eq!(*topic, expected, "{}: {payload}", &row[0]);
        assert_eq!(payload["customer"], row[1], "{payload}");
        assert_eq!(payload["amount"].as_f64(), row[2].parse().ok(), "{payload}");
        assert_eq!(payload["currency"], row[3], "{payload}");
        assert_eq!(payload["issued_at"], row[4], "{payload}");
        assert_eq!(
            payload.get("errors").is_some(),
            expected == INVALID,
            "{payload}"
        );
    }
    assert_eq!(rows, INVOICES);
    assert!(
        outputs.is_empty(),
        "invoices not in the CSV: {:?}",
        outputs.keys()
    );
}

/// SIGTERM: the filter finishes its round, leaves the group and exits 0.
async fn stop(filter: &mut Process) {
    let stopped = yak_launch::terminate(&mut filter.child, Duration::from_secs(15))
        .await
        .expect("stopping a filter");
    assert!(
        matches!(stopped, yak_launch::Stopped::Exited(s) if s.success()),
        "{} did not stop cleanly ({stopped:?}):\n{}",
        filter.name,
        filter.output()
    );
    assert!(
        filter.output().contains("stopped; routed"),
        "{}",
        filter.output()
    );
}

/// `yak-invoices run`, the one-command demo: it starts its filters, produces
/// generated invoices, follows the group until every invoice is committed,
/// stops the filters (they leave the group) and prints the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_command_routes_every_invoice_and_prints_the_counts() {
    let cluster = Cluster::builder().start().await;
    let bootstrap = cluster.broker().url().to_owned();
    let dir = TempDir::new().expect("a temp dir");
    let args = [
        "run",
        "--filters",
        "2",
        "--count",
        "1500",
        "--rate",
        "0",
        "--group",
        "demo",
    ];
    let mut run = Process::start(dir.path(), "run", &bootstrap, &args);
    let status = run.exit(PHASE).await;
    let output = run.output();
    assert!(status.success(), "run failed:\n{output}");
    eprintln!("---- yak-invoices run ----\n{output}");
    for line in [
        "filter-1: generation",
        "filter-2: generation",
        "run: all 1500 invoices produced",
        "filter-1: stopped; routed",
        "filter-2: stopped; routed",
    ] {
        assert!(output.contains(line), "no {line:?} in:\n{output}");
    }
    let figure = |name: &str| {
        output
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} count in:\n{output}"))
    };
    assert_eq!(figure("invoices.all"), 1500);
    assert_eq!(figure("invoices.valid") + figure("invoices.invalid"), 1500);
    assert!(
        figure("invoices.invalid") > 0,
        "generated invoices include invalid ones"
    );
    assert_eq!(figure("routed"), 1500);
    assert_eq!(figure("duplicates"), 0);
    assert_eq!(figure("missing"), 0);
    let client = client(&bootstrap);
    let group = client.describe_group("demo").await.expect("the group");
    assert!(
        group.members.is_empty(),
        "the filters left: {:?}",
        group.members
    );
}
