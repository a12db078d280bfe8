//! `yak up`: the whole local cluster starts, serves every URL, and stops
//! cleanly on SIGINT, leaving no process behind; it reports and restarts a
//! process that dies; and its demo controls run the failover story from
//! the node dashboards in real headless Chromium.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::{Value, json};
use testkit::{browser::Browser, build_bins, free_port_run, wait_for, wait_until};
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(30);

/// A running `yak up` on free ports, its output collected as it comes.
struct YakUp {
    child: tokio::process::Child,
    output: Arc<Mutex<String>>,
    /// Broker, follower, producer UI, consumer UI.
    urls: Vec<String>,
    control: String,
    data: tempfile::TempDir,
}

impl YakUp {
    /// Starts it with `extra` flags and waits for its banner.
    async fn start(extra: &[&str]) -> YakUp {
        // `yak up` runs the binaries next to its own; `cargo test -p yak`
        // builds none but yak's.
        build_bins(&["broker", "follower", "producer-ui", "consumer-ui"]);
        let data = tempfile::tempdir().unwrap();
        // Held while the Kafka run is picked, so no port is picked twice;
        // the follower's Kafka listener takes the port after the broker's.
        let held: Vec<std::net::TcpListener> = (0..5)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
            .collect();
        let mut ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        ports.push(free_port_run(2));
        drop(held);
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_yak"))
            .arg("up")
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--broker-port", &ports[0].to_string()])
            .args(["--follower-port", &ports[1].to_string()])
            .args(["--producer-ui-port", &ports[2].to_string()])
            .args(["--consumer-ui-port", &ports[3].to_string()])
            .args(["--control-port", &ports[4].to_string()])
            .args(["--kafka-port", &ports[5].to_string()])
            .args(extra)
            .env_remove("YAK_REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("yak up starts");
        let output = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let collected = Arc::clone(&output);
        // Keep draining its output so that it never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut all = collected.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let up = YakUp {
            child,
            output,
            urls: ports[..4]
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect(),
            control: format!("http://127.0.0.1:{}", ports[4]),
            data,
        };
        up.wait_output("the banner", Duration::from_secs(90), |o| {
            o.contains("Ctrl-C stops everything")
        })
        .await;
        up
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    async fn wait_output(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) {
        let waited = tokio::time::timeout(timeout, async {
            while !done(&self.output()) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "yak up printed no {what} within {timeout:?}:\n{}",
            self.output()
        );
    }

    /// SIGINT; it must exit 0 within 30 s. Returns everything it printed.
    async fn stop(&mut self) -> String {
        let pid = self.child.id().expect("running") as i32;
        nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGINT).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("yak up stops within 30 s")
            .unwrap();
        assert!(status.success(), "exit status {status}");
        self.wait_output("stop message", WAIT, |o| o.contains("yak: stopped"))
            .await;
        self.output()
    }

    /// A call to the demo controls: status and JSON body.
    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.control));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let answer = request.send().await.expect("the demo controls answer");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// The pid of a process as the supervisor reports it.
    async fn pid(&self, name: &str, headers: &[(&str, &str)]) -> Option<u64> {
        let (status, body) = self.control(reqwest::Method::GET, "/procs", headers).await;
        assert_eq!(status, 200, "{body}");
        body["procs"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)?["pid"]
            .as_u64()
    }
}

#[tokio::test]
async fn up_serves_every_url_and_stops_on_sigint() {
    let mut up = YakUp::start(&[]).await;
    let banner = up.output();
    let http = reqwest::Client::new();
    for url in &up.urls {
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
    assert!(
        banner.contains("Kafka listener"),
        "no Kafka listener in the banner:\n{banner}"
    );
    // The cluster works: a leader is elected and accepts a write.
    let written = wait_until(Duration::from_secs(20), || async {
        let answer = http
            .post(format!("{}/produce", up.urls[0]))
            .json(&json!({"topic": "up", "payload": "hello"}))
            .send()
            .await
            .ok()?;
        answer.status().is_success().then_some(())
    })
    .await;
    let () = written;

    let output = up.stop().await;
    assert!(output.contains("yak: stopped"), "{output}");
    for url in &up.urls {
        let gone = http.get(format!("{url}/health")).send().await;
        assert!(gone.is_err(), "{url} still answers after yak up stopped");
    }
    // Redis kept its append-only file in the data dir.
    let redis = up.data.path().join("redis");
    assert!(redis.read_dir().unwrap().next().is_some());
}

#[tokio::test]
async fn a_dead_process_is_reported_and_restarted_and_the_controls_are_guarded() {
    let mut up = YakUp::start(&["--client-token", "demo-secret", "--restart-after", "1s"]).await;
    let token = [("authorization", "Bearer demo-secret")];
    use reqwest::Method;

    // The Kafka listeners are open too, behind SASL/PLAIN: the banner
    // says how to reach them, without printing the token.
    let banner = up.output();
    assert!(
        banner.contains("Kafka listener") && banner.contains("security.protocol=SASL_PLAINTEXT"),
        "no SASL kcat line in the banner:\n{banner}"
    );
    assert!(!banner.contains("demo-secret"), "the token was printed");

    // Without the token, from a foreign page, or for a process that does
    // not exist: refused with a JSON error, nothing done.
    let (status, body) = up.control(Method::GET, "/procs", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, body) = up
        .control(
            Method::POST,
            "/procs/broker/kill",
            &[("authorization", "Bearer wrong")],
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let foreign = [token[0], ("origin", "http://elsewhere.example")];
    let (status, body) = up
        .control(Method::POST, "/procs/broker/kill", &foreign)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden_origin")),
        "{body}"
    );
    let (status, body) = up.control(Method::POST, "/procs/nope/kill", &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_process")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("GET /procs"),
        "{body}"
    );
    let (status, body) = up
        .control(Method::POST, "/procs/broker/restart", &token)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("running")),
        "{body}"
    );
    assert!(
        !up.output().contains("demo controls: kill"),
        "{}",
        up.output()
    );

    // A dashboard's origin gets the CORS answer it needs.
    let dashboard = [token[0], ("origin", up.urls[0].as_str())];
    let answer = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}/procs/broker/kill", up.control))
        .header("origin", &up.urls[0])
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(
        answer.headers()["access-control-allow-origin"]
            .to_str()
            .unwrap(),
        up.urls[0]
    );
    let (status, _) = up.control(Method::GET, "/procs", &dashboard).await;
    assert_eq!(status, 200);

    // A follower killed from outside is reported with its signal and
    // restarted after the delay, with a new pid.
    let before = up.pid("follower-1", &token).await.expect("running");
    nix::sys::signal::kill(Pid::from_raw(before as i32), Signal::SIGKILL).unwrap();
    up.wait_output("report of the kill", WAIT, |o| {
        o.contains("follower-1 killed by SIGKILL; restarting it in 1s")
    })
    .await;
    up.wait_output("restart", WAIT, |o| o.contains("restarted follower-1"))
        .await;
    let after = wait_for("follower-1 running again", WAIT, || async {
        up.pid("follower-1", &token).await.filter(|&p| p != before)
    })
    .await;
    assert_ne!(after, before);
    let follower = up.urls[1].clone();
    wait_until(WAIT, || async {
        let answer = reqwest::get(format!("{follower}/health")).await.ok()?;
        answer.status().is_success().then_some(())
    })
    .await;
    up.stop().await;
}

#[tokio::test]
async fn the_failover_story_runs_from_the_dashboards() {
    let mut up = YakUp::start(&[]).await;
    let (broker, follower) = (up.urls[0].clone(), up.urls[1].clone());
    // Some committed records, on three partitions, before the kill.
    wait_until(WAIT, || async {
        let records: Vec<Value> = (0..30)
            .map(|i| json!({"topic": "story", "partition": i % 3, "payload": {"i": i}}))
            .collect();
        let answer = reqwest::Client::new()
            .post(format!("{broker}/produce"))
            .json(&json!({ "records": records }))
            .send()
            .await
            .ok()?;
        answer.status().is_success().then_some(())
    })
    .await;

    let browser = Browser::start().await;
    browser.open(&format!("{broker}/")).await;
    browser.wait_text("#role", WAIT, |t| t == "LEADER").await;
    let broker_tab = browser.new_tab().await;
    let follower_tab = browser.client().window().await.expect("a window");
    browser.open(&format!("{follower}/")).await;
    browser.wait_text("#role", WAIT, |t| t == "FOLLOWER").await;

    // Kill -9 the leader from its own page.
    browser.switch_to(broker_tab.clone()).await;
    browser.click("#demo-kill").await;
    browser
        .wait_text("#demo-status", WAIT, |t| t.starts_with("killed"))
        .await;
    up.wait_output("report of the kill", WAIT, |o| {
        o.contains("broker killed by SIGKILL")
    })
    .await;
    // The follower's page turns LEADER.
    browser.switch_to(follower_tab).await;
    browser.wait_text("#role", WAIT, |t| t == "LEADER").await;
    browser.screenshot("demo-follower-leads").await;

    // Restart the old leader from its page, which shows it DOWN meanwhile:
    // it comes back as a follower and its partitions' ISR has it again.
    browser.switch_to(broker_tab).await;
    browser.wait_text("#role", WAIT, |t| t == "DOWN").await;
    browser.click("#demo-restart").await;
    browser
        .wait_text("#demo-status", WAIT, |t| t.starts_with("restarted"))
        .await;
    browser.wait_text("#role", WAIT, |t| t == "FOLLOWER").await;
    for p in 0..3 {
        browser
            .wait_text(
                &format!("#partitions tr[data-topic='story'][data-partition='{p}'] .isr"),
                WAIT,
                |t| t.contains("broker") && t.contains("follower-1"),
            )
            .await;
    }
    browser.screenshot("demo-old-leader-rejoined").await;
    browser.close().await;
    let output = up.stop().await;
    assert!(output.contains("demo controls: kill -9 broker"), "{output}");
    assert!(output.contains("restarted broker"), "{output}");
}
