//! `yak up`: the whole local cluster starts, serves every URL, and stops
//! cleanly on SIGINT, leaving no process behind.

use std::{process::Stdio, time::Duration};

use broker::testkit::{build_bins, free_port, wait_until};
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn up_serves_every_url_and_stops_on_sigint() {
    // `yak up` runs the binaries next to its own; `cargo test -p yak`
    // builds none but yak's.
    build_bins(&["broker", "follower", "producer-ui", "consumer-ui"]);
    let data = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut yak = tokio::process::Command::new(env!("CARGO_BIN_EXE_yak"))
        .arg("up")
        .args(["--data-dir", data.path().to_str().unwrap()])
        .args(["--broker-port", &ports[0].to_string()])
        .args(["--follower-port", &ports[1].to_string()])
        .args(["--producer-ui-port", &ports[2].to_string()])
        .args(["--consumer-ui-port", &ports[3].to_string()])
        .env_remove("YAK_REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("yak up starts");

    // The banner lists every URL once everything is healthy.
    let mut lines = BufReader::new(yak.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    let ready = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("Ctrl-C stops everything") {
                return;
            }
        }
        panic!("yak up ended before it was ready:\n{banner}");
    })
    .await;
    assert!(ready.is_ok(), "yak up was not ready within 90 s:\n{banner}");
    // Keep draining its output so that it never blocks on a full pipe.
    let drained = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });

    let http = reqwest::Client::new();
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    for url in &urls {
        assert!(
            banner.contains(url.as_str()),
            "{url} missing from the banner:\n{banner}"
        );
        let page = http.get(format!("{url}/")).send().await.unwrap();
        assert!(
            page.status().is_success(),
            "{url}/ answered {}",
            page.status()
        );
        let html = page.text().await.unwrap();
        assert!(html.contains("YAK"), "{url}/ is not a YAK page");
    }
    // The cluster works: a leader is elected and accepts a write.
    let written = wait_until(Duration::from_secs(20), || async {
        let answer = http
            .post(format!("{}/produce", urls[0]))
            .json(&serde_json::json!({"topic": "up", "payload": "hello"}))
            .send()
            .await
            .ok()?;
        answer.status().is_success().then_some(())
    })
    .await;
    let () = written;

    let pid = yak.id().expect("running") as i32;
    nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), yak.wait())
        .await
        .expect("yak up stops within 30 s")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let output = drained.await.unwrap();
    assert!(output.contains("yak: stopped"), "{output}");
    for url in &urls {
        let gone = http.get(format!("{url}/health")).send().await;
        assert!(gone.is_err(), "{url} still answers after yak up stopped");
    }
    // Redis kept its append-only file in the data dir.
    assert!(
        data.path()
            .join("redis")
            .read_dir()
            .unwrap()
            .next()
            .is_some()
    );
}
