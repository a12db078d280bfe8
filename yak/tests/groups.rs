//! `yak consume --group`, `yak groups …` and `yak topics add-partitions`
//! against a real cluster (redis-server, broker): a group member prints
//! what the group has not read yet and commits what it printed; `groups
//! describe` and `list` show it; `groups reset` moves the offsets of a
//! stopped group and is refused while a member runs; a member stopped by
//! SIGINT leaves at once.

use std::{collections::BTreeSet, process::Output, time::Duration};

use nix::{sys::signal::Signal, unistd::Pid};
use testkit::{Cluster, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// `yak` with `args`, bootstrapped to `cluster`, not yet started.
fn command(cluster: &Cluster, args: &[&str]) -> tokio::process::Command {
    let bootstrap: Vec<&str> = cluster.nodes().iter().map(|n| n.url()).collect();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_yak"));
    command
        .args(args)
        .env("YAK_BOOTSTRAP", bootstrap.join(","))
        .env("RUST_BACKTRACE", "0");
    command
}

/// Runs `yak` with `args` to the end.
async fn yak(cluster: &Cluster, args: &[&str]) -> Output {
    command(cluster, args).output().await.expect("yak runs")
}

/// Runs `yak` with `args`, which must succeed; its stdout.
async fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let output = yak(cluster, args).await;
    assert!(
        output.status.success(),
        "yak {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `yak` with `args`, which must fail; its stderr.
async fn refused(cluster: &Cluster, args: &[&str]) -> String {
    let output = yak(cluster, args).await;
    assert!(!output.status.success(), "yak {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The (partition, offset) of every line `yak consume` printed.
fn printed(stdout: &str) -> Vec<(u64, u64)> {
    stdout
        .lines()
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (
                line["partition"].as_u64().expect("a partition"),
                line["offset"].as_u64().expect("an offset"),
            )
        })
        .collect()
}

/// The committed offsets in a `yak groups describe` table, per partition
/// (`-` where nothing is committed).
fn committed(describe: &str) -> Vec<(String, String)> {
    describe
        .lines()
        .filter(|l| l.starts_with("orders/"))
        .map(|l| {
            let columns: Vec<&str> = l.split_whitespace().collect();
            (columns[0].to_owned(), columns[2].to_owned())
        })
        .collect()
}

/// Per partition of `orders` (two), `offset(records stored there)`, as
/// `committed` reads them.
fn each(all: &BTreeSet<(u64, u64)>, offset: impl Fn(u64) -> u64) -> Vec<(String, String)> {
    (0..2)
        .map(|p| {
            let stored = all.iter().filter(|(q, _)| *q == p).count() as u64;
            (format!("orders/{p}"), offset(stored).to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_group_member_commits_what_it_printed_and_groups_are_listed_described_and_reset() {
    let cluster = Cluster::builder().start().await;
    ok(
        &cluster,
        &["topics", "create", "orders", "--partitions", "2"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("lines");
    let ten: Vec<String> = (0..10).map(|i| format!("{{\"n\":{i}}}")).collect();
    std::fs::write(&lines, ten.join("\n")).unwrap();
    let sent = ok(
        &cluster,
        &["produce", "orders", "--file", lines.to_str().unwrap()],
    )
    .await;
    assert!(sent.contains("sent 10 records"), "{sent}");
    let all: BTreeSet<(u64, u64)> = printed(&ok(&cluster, &["consume", "orders"]).await)
        .into_iter()
        .collect();
    assert_eq!(all.len(), 10);

    // A member that stops after four records commits those four only.
    let first = printed(
        &ok(
            &cluster,
            &["consume", "orders", "--group", "g", "--max", "4"],
        )
        .await,
    );
    assert_eq!(first.len(), 4);
    let described = ok(&cluster, &["groups", "describe", "g"]).await;
    assert!(
        described.starts_with("group g: empty, generation"),
        "{described}"
    );
    let offsets: u64 = committed(&described)
        .iter()
        .map(|(_, o)| o.parse::<u64>().expect("an offset"))
        .sum();
    assert_eq!(offsets, 4, "{described}");

    // The next member prints the other six, then stops at the end.
    let rest = printed(&ok(&cluster, &["consume", "orders", "--group", "g"]).await);
    let mut both: Vec<(u64, u64)> = first.iter().chain(&rest).copied().collect();
    both.sort();
    assert_eq!(both, all.iter().copied().collect::<Vec<_>>(), "each once");
    let listed = ok(&cluster, &["groups", "list"]).await;
    let g = listed
        .lines()
        .find(|l| l.starts_with("g "))
        .unwrap_or_else(|| panic!("g is listed: {listed}"));
    let columns: Vec<&str> = g.split_whitespace().collect();
    assert_eq!(
        (columns[1], columns[3], columns[4]),
        ("empty", "0", "0"),
        "state, members, lag: {listed}"
    );

    // Back to the start: everything again.
    let reset = ok(&cluster, &["groups", "reset", "g", "--to", "earliest"]).await;
    assert!(reset.starts_with("group g: 2 offsets reset"), "{reset}");
    let again = printed(&ok(&cluster, &["consume", "orders", "--group", "g"]).await);
    assert_eq!(again.into_iter().collect::<BTreeSet<_>>(), all);
    ok(
        &cluster,
        &["groups", "reset", "g", "--to", "1", "--topic", "orders"],
    )
    .await;
    let described = ok(&cluster, &["groups", "describe", "g"]).await;
    assert_eq!(
        committed(&described),
        each(&all, |stored| stored.min(1)),
        "clamped to what is stored"
    );

    // A member that runs holds the group: no reset. SIGINT makes it leave
    // at once (its session would last a minute). It commits as it reads.
    let mut member = command(
        &cluster,
        &[
            "consume",
            "orders",
            "--group",
            "g",
            "--follow",
            "--session-timeout-ms",
            "60000",
        ],
    )
    .stdout(std::process::Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .expect("yak consume starts");
    wait_for("the member in the group, done reading", WAIT, || async {
        let described = ok(&cluster, &["groups", "describe", "g"]).await;
        (described.contains("members (1):") && committed(&described) == each(&all, |n| n))
            .then_some(())
    })
    .await;
    let busy = refused(&cluster, &["groups", "reset", "g", "--to", "latest"]).await;
    assert!(busy.contains("group_not_empty"), "{busy}");
    let pid = member.id().expect("running") as i32;
    nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(WAIT, member.wait())
        .await
        .expect("it stops")
        .expect("its status");
    assert!(status.success(), "{status}");
    let described = ok(&cluster, &["groups", "describe", "g"]).await;
    assert!(described.contains("members (0):"), "{described}");

    let unknown = refused(&cluster, &["groups", "describe", "nobody"]).await;
    assert!(unknown.contains("unknown_group"), "{unknown}");
    let usage = yak(
        &cluster,
        &["consume", "orders", "--group", "g", "--partition", "0"],
    )
    .await;
    assert_eq!(usage.status.code(), Some(2), "a group picks the partitions");
}

#[tokio::test]
async fn topics_gain_partitions_and_never_lose_any() {
    let cluster = Cluster::builder().start().await;
    ok(&cluster, &["topics", "create", "grow", "--partitions", "2"]).await;
    let grown = ok(
        &cluster,
        &["topics", "add-partitions", "grow", "--partitions", "4"],
    )
    .await;
    assert_eq!(grown.trim(), "grow now has 4 partitions");
    let listed = ok(&cluster, &["topics", "list"]).await;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("grow ") && l.ends_with("4 partitions")),
        "{listed}"
    );
    let fewer = refused(
        &cluster,
        &["topics", "add-partitions", "grow", "--partitions", "3"],
    )
    .await;
    assert!(fewer.contains("invalid_partition"), "{fewer}");
    let missing = refused(
        &cluster,
        &["topics", "add-partitions", "nothing", "--partitions", "3"],
    )
    .await;
    assert!(missing.contains("unknown_topic"), "{missing}");
}
