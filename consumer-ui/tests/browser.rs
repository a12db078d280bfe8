//! Browser tests of the two UIs together, in real headless Chromium against
//! a real cluster (Redis, broker, follower): a message sent in the producer
//! page arrives in the consumer page; a 10,000-row CSV upload reaches the
//! consumer page; a subscription rides out a `kill -9` of the leader with
//! consecutive offsets. Screenshots go to `target/screenshots/`.

mod common;

use common::{WAIT, bootstrap, shown_messages, wait_for_topic};
use serde_json::{Value, json};
use testkit::{Browser, Cluster, Ui, UiProcess, wait_for};
use yak_client::{Producer, ProducerConfig, Record, YakClient};

/// Subscribes in the consumer page (already open) and waits for the card.
async fn subscribe(browser: &Browser, topic: &str, partition: Option<u32>, start: &str) -> String {
    wait_for_topic(browser, topic).await;
    browser.select("#sub-topic", topic).await;
    if let Some(p) = partition {
        browser.select("#sub-partition", &p.to_string()).await;
    }
    browser
        .click(&format!("label:has(#start-{start}) span"))
        .await;
    let before = browser
        .eval("return document.querySelectorAll('.sub').length;", vec![])
        .await;
    browser.click("#sub-button").await;
    browser
        .wait_text("#sub-result", WAIT, |t| t.starts_with("Subscribed to"))
        .await;
    let id = wait_for("the subscription card", WAIT, || async {
        let ids = browser
            .eval(
                "return [...document.querySelectorAll('.sub[data-sub]')].map(c => c.dataset.sub);",
                vec![],
            )
            .await;
        let ids = ids.as_array()?.clone();
        (ids.len() as u64 > before.as_u64().unwrap_or(0))
            .then(|| ids[0].as_str().map(str::to_owned))
            .flatten()
    })
    .await;
    let card = format!("#sub-{id}");
    browser
        .wait_text(&format!("{card} .sub-state"), WAIT, |s| s == "RUNNING")
        .await;
    card
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_in_the_producer_page_arrives_in_the_consumer_page() {
    let cluster = Cluster::builder().start().await;
    let nodes = bootstrap(&cluster);
    let producer = UiProcess::start(Ui::Producer, &nodes).await;
    let consumer = UiProcess::start(Ui::Consumer, &nodes).await;
    YakClient::new(nodes.clone())
        .unwrap()
        .create_topic("greetings", Some(2))
        .await
        .expect("creating the topic");

    let browser = Browser::start().await;
    browser.open(consumer.url()).await;
    assert_eq!(
        browser.attr("#cluster", "data-state").await.as_deref(),
        Some("connected")
    );
    let leader = browser.text("#cluster-leader").await.unwrap_or_default();
    assert!(
        leader.contains("broker"),
        "header shows the leader: {leader:?}"
    );
    // Subscribed before anything is sent: from the latest offset.
    let card = subscribe(&browser, "greetings", None, "latest").await;
    // Paused: every partition's reader has stopped polling.
    browser.click(&format!("{card} .sub-pause")).await;
    browser
        .wait_text(&format!("{card} .sub-state"), WAIT, |s| s == "PAUSED")
        .await;
    wait_for("both readers paused", WAIT, || async {
        let states = browser
            .eval(
                "return fetch('/api/subscriptions').then(r => r.json()).then(b => \
                 b.subscriptions[0].partitions.map(p => p.state));",
                vec![],
            )
            .await;
        (states == json!(["paused", "paused"])).then_some(())
    })
    .await;

    let consumer_tab = browser.new_tab().await;
    browser.open(producer.url()).await;
    let key = r#"<b>k&"1</b>"#;
    let payload = r#"{"city": "<img src=x onerror=alert(1)>", "n": 1}"#;
    browser.fill("#send-topic", "greetings").await;
    browser.fill("#send-key", key).await;
    browser.fill("#send-payload", payload).await;
    browser
        .wait_text("#payload-hint", WAIT, |t| t == "Valid JSON.")
        .await;
    browser.click("#send-button").await;
    let result = browser
        .wait_text("#send-result", WAIT, |t| t.contains("offset"))
        .await;
    assert!(result.starts_with("Sent to greetings"), "{result}");
    browser.wait_text("#count-sent", WAIT, |t| t == "1").await;
    browser
        .wait_text("#activity", WAIT, |t| t.contains("sent to greetings"))
        .await;
    browser.screenshot("producer").await;

    browser.switch_to(consumer_tab).await;
    // Nothing arrives while paused; on resume the message does.
    assert_eq!(
        browser.text(&format!("{card} .sub-count")).await.as_deref(),
        Some("0")
    );
    browser.click(&format!("{card} .sub-resume")).await;
    let shown = wait_for("the message in the consumer page", WAIT, || async {
        let rows = shown_messages(&browser, &card).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    let row = &shown[0];
    assert_eq!(row["offset"], 0);
    // Shown as text, exactly as sent: no markup from data.
    assert_eq!(row["key"], key);
    let pretty: Value = serde_json::from_str(row["payload"].as_str().unwrap()).unwrap();
    assert_eq!(pretty, serde_json::from_str::<Value>(payload).unwrap());
    let injected = browser
        .eval(
            "return document.querySelectorAll('#subscriptions img, #subscriptions b').length;",
            vec![],
        )
        .await;
    assert_eq!(injected, 0, "data was rendered as markup");
    assert_eq!(
        browser.text(&format!("{card} .sub-count")).await.as_deref(),
        Some("1")
    );
    browser
        .wait_text(&format!("{card} .sub-state"), WAIT, |s| s == "RUNNING")
        .await;
    browser.screenshot("consumer-messages").await;

    // SIGTERM stops a UI gracefully, even with a page's event stream open.
    let mut consumer = consumer;
    assert!(
        consumer.terminate().await,
        "the consumer UI exits cleanly on SIGTERM"
    );
    browser
        .wait_text("#cluster-state", WAIT, |t| t == "reconnecting")
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_upload_is_sent_with_live_progress_and_reaches_the_consumer_page() {
    let path = std::fs::canonicalize(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/data/server_metrics.csv"
    ))
    .expect("examples/data/server_metrics.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 10_001, "a header and 10,000 rows");
    let last: Vec<&str> = text.lines().last().unwrap().split(',').collect();

    let cluster = Cluster::builder().start().await;
    let nodes = bootstrap(&cluster);
    let producer = UiProcess::start(Ui::Producer, &nodes).await;
    let consumer = UiProcess::start(Ui::Consumer, &nodes).await;
    YakClient::new(nodes.clone())
        .unwrap()
        .create_topic("server_metrics", Some(3))
        .await
        .expect("creating the topic");

    let browser = Browser::start().await;
    browser.open(consumer.url()).await;
    let card = subscribe(&browser, "server_metrics", None, "earliest").await;

    let consumer_tab = browser.new_tab().await;
    browser.open(producer.url()).await;
    browser
        .find("#upload-file")
        .await
        .unwrap()
        .send_keys(path.to_str().unwrap())
        .await
        .expect("choosing the file");
    browser.click("#upload-button").await;
    browser
        .wait_text("#file-meta", WAIT, |t| t.contains("server_metrics.csv"))
        .await;
    let headers = browser
        .eval(
            "return [...document.querySelectorAll('#preview thead th')].map(th => th.textContent);",
            vec![],
        )
        .await;
    assert_eq!(
        headers,
        json!([
            "line",
            "ts",
            "server_id",
            "cpu_pct",
            "mem_pct",
            "net_in",
            "net_out",
            "disk_io"
        ])
    );
    let preview_rows = browser
        .eval(
            "return document.querySelectorAll('#preview tbody tr').length;",
            vec![],
        )
        .await;
    assert_eq!(preview_rows, 10);
    assert_eq!(
        browser
            .find("#batch-topic")
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("server_metrics"),
        "the topic is suggested from the file name"
    );
    browser.select("#batch-key", "server_id").await;
    browser
        .wait_text("#batch-example", WAIT, |t| {
            t.contains(r#""key": "server_1""#)
        })
        .await;
    browser.fill("#batch-size", "50").await;
    browser.click("#batch-start").await;

    // Pause while it runs: it stops short of the end, and says so.
    wait_for("the job's Pause button", WAIT, || async {
        browser
            .find("#job-pause")
            .await?
            .is_displayed()
            .await
            .ok()?
            .then_some(())
    })
    .await;
    browser.click("#job-pause").await;
    browser
        .wait_text("#job-state", WAIT, |t| t == "PAUSED")
        .await;
    let sent_at_pause: u64 = browser
        .text("#job-sent")
        .await
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(sent_at_pause < 10_000, "paused after {sent_at_pause} rows");
    let job = browser
        .eval("return fetch('/api/jobs/1').then(r => r.json());", vec![])
        .await;
    assert_eq!(job["state"], "paused");
    assert_eq!(
        job["sent"], sent_at_pause,
        "the page shows what the server counted"
    );
    browser
        .eval(
            "document.querySelector('#job-card').scrollIntoView();",
            vec![],
        )
        .await;
    browser.screenshot("upload-progress").await;

    browser.click("#job-resume").await;
    browser.wait_text("#job-state", WAIT, |t| t == "DONE").await;
    assert_eq!(browser.text("#job-sent").await.as_deref(), Some("10,000"));
    assert_eq!(browser.text("#job-failed").await.as_deref(), Some("0"));
    assert_eq!(browser.text("#count-batches").await.as_deref(), Some("200"));
    let caption = browser.text("#job-caption").await.unwrap_or_default();
    assert!(caption.contains("10,000 rows read"), "{caption}");
    assert_eq!(
        browser
            .attr("#job-progress", "aria-valuenow")
            .await
            .as_deref(),
        Some("100")
    );
    browser.screenshot("upload-done").await;

    browser.switch_to(consumer_tab).await;
    browser
        .wait_text(&format!("{card} .sub-count"), WAIT, |t| t == "10,000")
        .await;
    let shown = shown_messages(&browser, &card).await;
    assert_eq!(shown.len(), 200, "the page keeps the latest 200");
    let last_row = shown
        .iter()
        .find(|m| {
            m["key"] == last[1]
                && serde_json::from_str::<Value>(m["payload"].as_str().unwrap()).unwrap()["ts"]
                    == last[0]
        })
        .unwrap_or_else(|| panic!("the file's last row is not shown: {shown:?}"));
    // As the page shows it: numbers unquoted, columns in the file's order.
    let raw = last_row["payload"].as_str().unwrap();
    let at: Vec<usize> = [
        "ts",
        "server_id",
        "cpu_pct",
        "mem_pct",
        "net_in",
        "net_out",
        "disk_io",
    ]
    .iter()
    .map(|k| raw.find(&format!("\"{k}\"")).expect(k))
    .collect();
    assert!(at.is_sorted(), "columns out of the file's order: {raw}");
    assert!(
        !raw.contains(&format!("\"{}\"", last[2])),
        "cpu_pct is not a number on the page: {raw}"
    );
    let payload: Value = serde_json::from_str(raw).unwrap();
    assert_eq!(
        payload,
        json!({
            "ts": last[0],
            "server_id": last[1],
            "cpu_pct": last[2].parse::<f64>().unwrap(),
            "mem_pct": last[3].parse::<f64>().unwrap(),
            "net_in": last[4].parse::<i64>().unwrap(),
            "net_out": last[5].parse::<i64>().unwrap(),
            "disk_io": last[6].parse::<i64>().unwrap(),
        })
    );
    let next: u64 = browser
        .eval(
            "return fetch('/api/subscriptions').then(r => r.json()).then(b => \
             b.subscriptions[0].partitions.reduce((n, p) => n + p.next_offset, 0));",
            vec![],
        )
        .await
        .as_u64()
        .unwrap();
    assert_eq!(next, 10_000, "every partition read to its end");
    browser.screenshot("consumer-upload").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_rides_out_a_leader_failover_with_consecutive_offsets() {
    let mut cluster = Cluster::builder().followers(1).start().await;
    let nodes: Vec<String> = cluster.nodes().iter().map(|n| n.url().to_owned()).collect();
    let node_refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let consumer = UiProcess::start(Ui::Consumer, &node_refs).await;
    let client = YakClient::new(nodes.clone()).unwrap();
    client
        .create_topic("orders", Some(1))
        .await
        .expect("creating the topic");
    let producer = Producer::new(client.clone(), ProducerConfig::default());

    let browser = Browser::start().await;
    browser.open(consumer.url()).await;
    let card = subscribe(&browser, "orders", Some(0), "earliest").await;
    let count = format!("{card} .sub-count");

    let mut acked = Vec::new();
    for n in 0..20u64 {
        let at = producer
            .send(Record::new("orders", json!({ "n": n })))
            .await
            .expect("sending before the failover");
        acked.push(at.offset);
    }
    browser.wait_text(&count, WAIT, |t| t == "20").await;
    // The follower must be in sync to take over.
    wait_for("the follower in the ISR", WAIT, || async {
        let detail = client.describe_topic("orders").await.ok()?;
        (detail.partitions[0].isr.len() == 2).then_some(())
    })
    .await;

    let old = cluster.leader_info().await.expect("a leader");
    let index = cluster.index_of(&old.id).unwrap();
    cluster.node_mut(index).kill9();

    // Keep producing through the failover (the producer retries, and its
    // idempotence keeps every record once).
    let sending = tokio::spawn({
        let producer = producer.clone();
        async move {
            let mut offsets = Vec::new();
            for n in 20..60u64 {
                let at = producer
                    .send(Record::new("orders", json!({ "n": n })))
                    .await
                    .expect("sending through the failover");
                offsets.push(at.offset);
            }
            offsets
        }
    });
    // The subscription says it is reconnecting, then that it continues.
    let saw_badge = std::cell::Cell::new(false);
    wait_for("the subscription to report reconnecting", WAIT, || async {
        let badge = browser.text(&format!("{card} .sub-state")).await;
        saw_badge.set(saw_badge.get() || badge.as_deref() == Some("RECONNECTING"));
        let notes = browser.text(&format!("{card} .sub-notes")).await?;
        notes.contains("partition 0: reconnecting").then_some(())
    })
    .await;
    acked.extend(sending.await.unwrap());
    assert_eq!(acked, (0..60).collect::<Vec<u64>>(), "acknowledged offsets");
    browser.wait_text(&count, WAIT, |t| t == "60").await;
    let notes = browser
        .wait_text(&format!("{card} .sub-notes"), WAIT, |t| {
            t.contains("reconnected after")
        })
        .await;
    assert!(notes.contains("continuing at offset"), "{notes}");
    assert_eq!(
        browser.text(&format!("{card} .sub-state")).await.as_deref(),
        Some("RUNNING")
    );

    // Every offset once, in order, each with the record sent at it.
    let mut shown = shown_messages(&browser, &card).await;
    shown.sort_by_key(|m| m["offset"].as_u64());
    let offsets: Vec<u64> = shown
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(
        offsets,
        (0..60).collect::<Vec<u64>>(),
        "nothing missing or repeated"
    );
    for m in &shown {
        let payload: Value = serde_json::from_str(m["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["n"], m["offset"], "{m}");
    }
    // The header follows the new leader.
    let new = cluster.wait_for_leader(WAIT, |l| l.id != old.id).await;
    assert!(new.epoch > old.epoch);
    let header = browser
        .wait_text("#cluster-leader", WAIT, |t| t.contains(&new.id))
        .await;
    assert!(header.contains(&format!("epoch {}", new.epoch)), "{header}");
    eprintln!("the state badge showed RECONNECTING: {}", saw_badge.get());
    browser.screenshot("failover").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_below_the_log_start_says_older_records_were_deleted() {
    let cluster = Cluster::builder()
        .extra_args(["--segment-bytes", "4096"])
        .start()
        .await;
    let nodes = bootstrap(&cluster);
    let client = YakClient::new(nodes.clone()).unwrap();
    let rule = yak_client::TopicConfig {
        retention_bytes: Some(8192),
        retention_ms: None,
    };
    client
        .create_topic_with("trimmed", Some(1), &rule)
        .await
        .expect("creating the topic");
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let filler = "z".repeat(300);
    for i in 0..200 {
        let record = Record::new("trimmed", json!({"i": i, "filler": filler})).partition(0);
        producer.send(record).await.expect("acknowledged");
    }
    let start = wait_for("retention to delete the oldest records", WAIT, || async {
        let detail = client.describe_topic("trimmed").await.ok()?;
        let start = detail.partitions[0].log_start_offset;
        (start > 0).then_some(start)
    })
    .await;

    let consumer = UiProcess::start(Ui::Consumer, &nodes).await;
    let browser = Browser::start().await;
    browser.open(consumer.url()).await;
    wait_for_topic(&browser, "trimmed").await;
    browser.select("#sub-topic", "trimmed").await;
    browser.click("label:has(#start-offset) span").await;
    browser.fill("#sub-offset", "0").await;
    browser.click("#sub-button").await;
    let note = browser
        .wait_text(".sub-notes", WAIT, |t| {
            t.contains("older records were deleted")
        })
        .await;
    let at: u64 = note
        .split("continuing at offset ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no offset in the note: {note}"));
    assert!(
        at >= start,
        "continued at {at}, below the log start {start}: {note}"
    );
    // It reads on from there to the last record.
    let want = (200 - at).to_string();
    browser
        .wait_text(".sub .sub-count", WAIT, |t| t == want)
        .await;
    browser.screenshot("consumer-retention-note").await;
    browser.close().await;
}
