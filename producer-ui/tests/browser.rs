//! Browser tests of the producer page's error paths, in real headless
//! Chromium against a real cluster: bad sends (invalid JSON, a bad topic
//! name) and bad uploads (binary, empty, ragged rows) show their messages,
//! and the good rows of a ragged file still go through; the form does not
//! move while the page settles after an upload. The harness is the
//! consumer UI's (`consumer-ui/tests/common`), shared by path.

use std::time::Duration;

use serde_json::json;
use testkit::{Browser, Cluster, StatusCode, Ui, UiProcess, http_client, send, wait_until};
use yak_client::{Consumer, StartAt, YakClient};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sends_and_bad_uploads_show_their_messages() {
    let cluster = Cluster::builder().start().await;
    let nodes: Vec<&str> = cluster.nodes().iter().map(|n| n.url()).collect();
    let producer = UiProcess::start(Ui::Producer, &nodes).await;
    let browser = Browser::start().await;
    browser.open(producer.url()).await;

    // Invalid JSON: the page says so as it is typed, and refuses to send.
    browser.fill("#send-topic", "orders").await;
    browser.fill("#send-payload", r#"{"cpu": }"#).await;
    let hint = browser
        .wait_text("#payload-hint", WAIT, |t| t.contains("not valid JSON"))
        .await;
    assert_eq!(
        browser
            .attr("#send-payload", "aria-invalid")
            .await
            .as_deref(),
        Some("true"),
        "{hint}"
    );
    browser.click("#send-button").await;
    browser
        .wait_text("#send-result", WAIT, |t| {
            t.starts_with("The payload is not valid JSON")
        })
        .await;
    // The server checks too, whatever a page does.
    let reply = send(
        http_client()
            .post(format!("{}/api/send", producer.url()))
            .json(&json!({
                "topic": "orders",
                "payload": "{\"cpu\": }",
            })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), Some("invalid_payload"));
    assert!(
        reply.json["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    // A bad topic name: the server's message is shown, with its code.
    browser.fill("#send-topic", "../x").await;
    browser.fill("#send-payload", r#"{"cpu": 1}"#).await;
    browser.click("#send-button").await;
    let shown = browser
        .wait_text("#send-result", WAIT, |t| t.contains("topic name"))
        .await;
    assert!(shown.starts_with("invalid_topic"), "{shown}");
    assert!(shown.contains("found '/'"), "{shown}");
    assert_eq!(
        browser.attr("#send-result", "data-kind").await.as_deref(),
        Some("error")
    );
    browser.wait_text("#count-failed", WAIT, |t| t == "0").await;

    let files = tempfile::tempdir().unwrap();
    let upload = |name: &str, bytes: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let choose = async |path: std::path::PathBuf| {
        browser
            .find("#upload-file")
            .await
            .unwrap()
            .send_keys(path.to_str().unwrap())
            .await
            .expect("choosing a file");
        browser.click("#upload-button").await;
    };

    // A binary file.
    let png = upload("image.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10");
    choose(png).await;
    let shown = browser
        .wait_text("#upload-result", WAIT, |t| t.contains("not a CSV file"))
        .await;
    browser.screenshot("producer-bad-input").await;
    assert!(shown.starts_with("not_csv"), "{shown}");
    assert!(shown.contains("binary"), "{shown}");
    assert!(
        !browser
            .find("#mapping")
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );

    // An empty file.
    choose(upload("empty.csv", b"")).await;
    browser
        .wait_text("#upload-result", WAIT, |t| t.contains("the file is empty"))
        .await;

    // Ragged rows: reported by line, the good rows go through.
    let ragged =
        "id,name,score\n1,ann,10\n2,bob\n3,cy,30\n4,dee,40,extra\n5,\"eve\nsmith\",50\n6,fay,60\n";
    choose(upload("ragged.csv", ragged.as_bytes())).await;
    browser
        .wait_text("#file-meta", WAIT, |t| t.contains("ragged.csv"))
        .await;
    // The finished upload bar fades out without moving the form below it:
    // a click on its way to "Send all rows" must land there.
    let start_top = "return document.querySelector('#batch-start').getBoundingClientRect().top;";
    let before = browser.eval(start_top, vec![]).await;
    wait_until(WAIT, async || {
        let faded = "return getComputedStyle(document.querySelector('#upload-progress')).visibility === 'hidden' \
                     || document.querySelector('#upload-progress').hidden;";
        (browser.eval(faded, vec![]).await == json!(true)).then_some(())
    })
    .await;
    assert_eq!(
        browser.eval(start_top, vec![]).await,
        before,
        "the form moved"
    );
    let ragged_cells = browser
        .eval(
            "return document.querySelectorAll('#preview td.ragged').length;",
            vec![],
        )
        .await;
    assert_eq!(ragged_cells, 6, "the two ragged preview rows are marked");
    browser.fill("#batch-topic", "ragged").await;
    browser.click("#batch-start").await;
    browser.wait_text("#job-state", WAIT, |t| t == "DONE").await;
    assert_eq!(browser.text("#job-sent").await.as_deref(), Some("4"));
    assert_eq!(browser.text("#job-failed").await.as_deref(), Some("2"));
    let failures = browser
        .eval(
            "return [...document.querySelectorAll('#job-failure-list li')].map(li => li.textContent);",
            vec![],
        )
        .await;
    assert_eq!(
        failures,
        json!([
            "line 3expected 3 fields, found 2",
            "line 5expected 3 fields, found 4",
        ])
    );
    browser
        .eval(
            "document.querySelector('#job-card').scrollIntoView();",
            vec![],
        )
        .await;
    browser.screenshot("producer-errors").await;

    // What was stored: exactly the four good rows, the quoted newline kept.
    let client = YakClient::new(nodes.clone()).unwrap();
    let detail = client.describe_topic("ragged").await.unwrap();
    let mut stored = Vec::new();
    for p in &detail.partitions {
        let mut consumer = Consumer::new(client.clone(), "ragged", p.partition, StartAt::Earliest);
        while consumer.position().is_none_or(|at| at < p.high_water_mark) {
            stored.extend(consumer.poll(Duration::ZERO).await.unwrap());
        }
    }
    let mut ids: Vec<i64> = stored
        .iter()
        .map(|r| r.payload["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 3, 5, 6]);
    assert!(stored.iter().any(|r| r.payload["name"] == "eve\nsmith"));

    // A long job paused and then cancelled stops for good, short of the end.
    let mut big = String::from("n,text\n");
    for n in 0..20_000 {
        big.push_str(&format!("{n},row {n}\n"));
    }
    choose(upload("big.csv", big.as_bytes())).await;
    browser
        .wait_text("#file-meta", WAIT, |t| t.contains("big.csv"))
        .await;
    browser.fill("#batch-topic", "big").await;
    browser.fill("#batch-size", "10").await;
    browser.click("#batch-start").await;
    browser
        .wait_text("#job-file", WAIT, |t| t == "big.csv")
        .await;
    browser.click("#job-pause").await;
    browser
        .wait_text("#job-state", WAIT, |t| t == "PAUSED")
        .await;
    browser.click("#job-cancel").await;
    browser
        .wait_text("#job-state", WAIT, |t| t == "CANCELLED")
        .await;
    let job = browser
        .eval("return fetch('/api/jobs/2').then(r => r.json());", vec![])
        .await;
    assert_eq!(job["state"], "cancelled");
    let sent = job["sent"].as_u64().unwrap();
    assert!(sent < 20_000, "cancelled after {sent} rows");
    browser
        .wait_text("#activity", WAIT, |t| t.contains("job 2: cancelled"))
        .await;
    assert!(
        !browser
            .find("#job-cancel")
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    let resumed = send(http_client().post(format!("{}/api/jobs/2/resume", producer.url()))).await;
    assert_eq!(
        resumed.status,
        StatusCode::CONFLICT,
        "a cancelled job stays cancelled"
    );
    browser.close().await;
}
