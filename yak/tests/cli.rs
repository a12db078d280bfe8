//! The `yak` command against a real cluster (redis-server, broker, follower).

use std::process::Output;

use testkit::Cluster;

/// Runs `yak` with `args`, bootstrapped to `cluster`.
async fn yak(cluster: &Cluster, args: &[&str]) -> Output {
    let bootstrap: Vec<&str> = cluster.nodes().iter().map(|n| n.url()).collect();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_yak"))
        .args(args)
        .env("YAK_BOOTSTRAP", bootstrap.join(","))
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("yak runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A file of the repository's sample data (`examples/data/`).
fn sample(name: &str) -> String {
    format!("{}/../examples/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn topics_produce_consume_and_status() {
    let cluster = Cluster::builder().followers(1).start().await;

    let created = yak(
        &cluster,
        &["topics", "create", "orders", "--partitions", "2"],
    )
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("created orders with 2 partitions"));
    let again = yak(&cluster, &["topics", "create", "orders"]).await;
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("topic_exists"),
        "{}",
        stderr(&again)
    );

    let one = yak(
        &cluster,
        &["produce", "orders", r#"{"id":1}"#, "--key", "alice"],
    )
    .await;
    assert!(one.status.success(), "{}", stderr(&one));
    let at = stdout(&one);
    let (partition, offset) = at
        .trim()
        .trim_start_matches("orders/")
        .split_once('@')
        .unwrap();
    assert_eq!(offset, "0");

    let first = yak(
        &cluster,
        &["consume", "orders", "--partition", partition, "--max", "1"],
    )
    .await;
    assert!(first.status.success(), "{}", stderr(&first));
    let line: serde_json::Value = serde_json::from_str(stdout(&first).trim()).unwrap();
    assert_eq!(line["payload"], serde_json::json!({"id": 1}));
    assert_eq!(line["key"], "alice");
    assert_eq!(line["offset"], 0);

    let csv = sample("invoices.csv");
    let sent = yak(
        &cluster,
        &[
            "produce",
            "orders",
            "--csv",
            &csv,
            "--key-column",
            "customer",
        ],
    )
    .await;
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert!(
        stdout(&sent).contains("sent 5000 records"),
        "{}",
        stdout(&sent)
    );

    let all = yak(&cluster, &["consume", "orders"]).await;
    assert!(all.status.success(), "{}", stderr(&all));
    let lines: Vec<serde_json::Value> = stdout(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5001);
    let invoices = lines
        .iter()
        .filter(|l| l["payload"]["invoice_id"].is_string())
        .count();
    assert_eq!(invoices, 5000);
    // Values are typed where that keeps their text, and columns keep the
    // file's order.
    let first = lines
        .iter()
        .find(|l| l["payload"]["invoice_id"] == "INV-100000")
        .expect("the first invoice");
    let payload = first["payload"].as_object().unwrap();
    let columns: Vec<&str> = payload.keys().map(String::as_str).collect();
    assert_eq!(
        columns,
        [
            "invoice_id",
            "customer",
            "amount",
            "currency",
            "issued_at",
            "valid"
        ]
    );
    assert_eq!(payload["amount"], serde_json::json!(3181.84));
    assert_eq!(payload["valid"], serde_json::json!(false));
    assert_eq!(payload["currency"], serde_json::json!(""));
    assert_eq!(first["key"], "Soylent");
    // A key always lands in the same partition.
    let wayne: std::collections::BTreeSet<_> = lines
        .iter()
        .filter(|l| l["key"] == "Wayne Enterprises")
        .map(|l| l["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(wayne.len(), 1, "{wayne:?}");

    let listed = yak(&cluster, &["topics", "list"]).await;
    assert!(stdout(&listed).contains("orders"), "{}", stdout(&listed));
    let described = yak(&cluster, &["topics", "describe", "orders"]).await;
    assert!(described.status.success(), "{}", stderr(&described));
    let ends: u64 = stdout(&described)
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(ends, 5001, "{}", stdout(&described));

    let status = yak(&cluster, &["cluster", "status"]).await;
    assert!(status.status.success(), "{}", stderr(&status));
    let leader = cluster.leader_info().await.unwrap();
    let text = stdout(&status);
    assert!(text.contains(&format!("leader: {}", leader.id)), "{text}");
    assert!(text.contains("topic orders:"), "{text}");
}

#[tokio::test]
async fn csv_types_can_be_kept_as_strings_and_bad_rows_are_named_by_line() {
    let cluster = Cluster::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("mixed.csv");
    std::fs::write(&csv, "zone,count,ok\nb,007,true\na,12,false\n").unwrap();
    let csv = csv.to_str().unwrap();
    let sent = yak(
        &cluster,
        &["produce", "kept", "--csv", csv, "--csv-types", "string"],
    )
    .await;
    assert!(sent.status.success(), "{}", stderr(&sent));
    let typed = yak(&cluster, &["produce", "typed", "--csv", csv]).await;
    assert!(typed.status.success(), "{}", stderr(&typed));
    // Unkeyed records may land in any partition: read them all.
    let all = |topic: &'static str| {
        let cluster = &cluster;
        async move {
            let out = yak(cluster, &["consume", topic]).await;
            assert!(out.status.success(), "{}", stderr(&out));
            let mut payloads: Vec<String> = stdout(&out)
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["payload"].to_string()
                })
                .collect();
            payloads.sort();
            payloads
        }
    };
    assert_eq!(
        all("kept").await,
        [
            r#"{"zone":"a","count":"12","ok":"false"}"#,
            r#"{"zone":"b","count":"007","ok":"true"}"#
        ]
    );
    assert_eq!(
        all("typed").await,
        [
            r#"{"zone":"a","count":12,"ok":false}"#,
            r#"{"zone":"b","count":"007","ok":true}"#
        ]
    );

    // A ragged row is named by its line (the header is line 1); the rest
    // is sent and the exit says some were not.
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "a,b\n1,2\n3\n4,5\n").unwrap();
    let out = yak(
        &cluster,
        &["produce", "ragged", "--csv", ragged.to_str().unwrap()],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    assert!(stdout(&out).contains("sent 2 records"), "{}", stdout(&out));
}

#[tokio::test]
async fn cluster_status_flags_an_under_replicated_partition() {
    let cluster = Cluster::builder().start().await;
    // A registered node that never answers: in a new partition's ISR until
    // the first write drops it.
    cluster.register_ghost("ghost").await;
    let text = testkit::wait_for(
        "cluster status to flag the partition",
        std::time::Duration::from_secs(15),
        || async {
            let produced = yak(&cluster, &["produce", "thin", "1", "--partition", "0"]).await;
            assert!(produced.status.success(), "{}", stderr(&produced));
            let status = yak(&cluster, &["cluster", "status"]).await;
            let text = stdout(&status);
            text.contains("UNDER-REPLICATED").then_some(text)
        },
    )
    .await;
    assert!(
        text.contains("isr [broker] UNDER-REPLICATED (1 of 2 replicas in sync)"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_a_failing_exit() {
    let cluster = Cluster::builder().start().await;
    let bad_topic = yak(&cluster, &["produce", "../x", "1"]).await;
    assert!(!bad_topic.status.success());
    assert!(
        stderr(&bad_topic).contains("invalid_topic"),
        "{}",
        stderr(&bad_topic)
    );

    let missing = yak(&cluster, &["produce", "t", "--csv", "/nonexistent.csv"]).await;
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("/nonexistent.csv"),
        "{}",
        stderr(&missing)
    );

    let nothing = yak(&cluster, &["consume", "no-such-topic"]).await;
    assert!(!nothing.status.success());
    assert!(
        stderr(&nothing).contains("unknown_topic"),
        "{}",
        stderr(&nothing)
    );

    let usage = yak(&cluster, &["consume"]).await;
    assert_eq!(usage.status.code(), Some(2), "clap usage error");
}
