//! The UI half of the browser-test harness (the cluster half is
//! `broker::testkit`): [`UiProcess`] starts the real `producer-ui` or
//! `consumer-ui` binary on a free port against a cluster, and [`Browser`]
//! drives a real headless Chromium through `chromedriver` (WebDriver, via
//! `fantoccini`). Shared by the browser tests of both UI crates
//! (`producer-ui/tests/browser.rs` includes this file by path).
//!
//! ## Rules (the same as `broker::testkit`'s)
//! - Every process is killed when its handle drops, also when a test
//!   panics; a UI's output is printed then. `chromedriver` runs in its own
//!   process group and the whole group (Chromium included) is killed.
//! - Nothing waits with a fixed sleep: waits poll a condition against a
//!   deadline ([`broker::testkit::wait_for`]).
//! - Ports are free ports, never 5001–5004.
//!
//! ## Finding the programs
//! The crate's own UI binary is the one cargo built for the test
//! (`CARGO_BIN_EXE_…`). The other UI is looked up like the node binaries
//! ([`broker::testkit::bin_dir`]: `$YAK_BIN_DIR`, else the test's cargo
//! profile directory); unless `YAK_BIN_DIR` is set, it is built once per
//! test process first (`cargo build -p <ui> --bins`, a no-op when it is up
//! to date), because `cargo test -p <crate>` builds only that crate's
//! binary. Chromium is `$YAK_CHROMIUM` or `/usr/bin/chromium`, the driver
//! `$YAK_CHROMEDRIVER` or `chromedriver` on `PATH` (`scripts/test.sh`
//! installs both). Screenshots go to `target/screenshots/`.

#![allow(dead_code)]

use std::{
    fs::OpenOptions,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use broker::testkit::{LOG_TAIL_LINES, bin_dir, free_port, http_client, tail, try_send, wait_for};
pub use fantoccini::{self, Client, Locator, elements::Element, wd::WindowHandle};
use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a UI process or the browser gets to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often page conditions are checked.
pub const POLL: Duration = Duration::from_millis(25);

/// Which UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ui {
    Producer,
    Consumer,
}

impl Ui {
    pub fn binary_name(self) -> &'static str {
        match self {
            Ui::Producer => "producer-ui",
            Ui::Consumer => "consumer-ui",
        }
    }
}

/// The path of a UI binary: the one built for this test crate, or the
/// other UI's, built once per test process.
pub fn ui_binary(ui: Ui) -> PathBuf {
    let own = match ui {
        Ui::Producer => option_env!("CARGO_BIN_EXE_producer-ui"),
        Ui::Consumer => option_env!("CARGO_BIN_EXE_consumer-ui"),
    };
    if let Some(path) = own {
        return PathBuf::from(path);
    }
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build(ui));
    let path = bin_dir().join(ui.binary_name());
    assert!(
        path.is_file(),
        "{} not found. Build it with `cargo build -p {}` (or run `cargo test --workspace`), \
         or point YAK_BIN_DIR at the directory holding it.",
        path.display(),
        ui.binary_name()
    );
    path
}

fn build(ui: Ui) {
    if std::env::var_os("YAK_BIN_DIR").is_some() {
        return;
    }
    let dir = bin_dir();
    let Some(target_dir) = dir.parent() else {
        return;
    };
    let profile = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the UI crates live in the workspace")
        .join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(&workspace)
        .args(["-p", ui.binary_name(), "--bins"])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    match command.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "ui harness: building {} failed ({}); using the binary in {} as it is:\n{}",
            ui.binary_name(),
            out.status,
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("ui harness: cannot run cargo ({e})"),
    }
}

/// Where screenshots go: `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = bin_dir();
    let target = dir.parent().unwrap_or(&dir);
    target.join("screenshots")
}

/// A running UI process on its own port. Killed on drop; its output is
/// printed if the test is panicking.
pub struct UiProcess {
    ui: Ui,
    child: Option<Child>,
    url: String,
    log: PathBuf,
    _dir: TempDir,
}

impl std::fmt::Debug for UiProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiProcess")
            .field("ui", &self.ui)
            .field("url", &self.url)
            .finish()
    }
}

impl UiProcess {
    /// Starts `ui` against the nodes at `bootstrap` and waits until its
    /// `/health` answers.
    pub async fn start(ui: Ui, bootstrap: &[&str]) -> Self {
        Self::start_with(ui, bootstrap, &[]).await
    }

    /// [`UiProcess::start`] with extra flags.
    pub async fn start_with(ui: Ui, bootstrap: &[&str], args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("yak-ui-test-")
            .tempdir()
            .expect("a temp dir");
        let log = dir.path().join("ui.log");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("opening the UI log");
        let mut command = Command::new(ui_binary(ui));
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--bootstrap")
            .arg(bootstrap.join(","))
            .args(args)
            .env_remove("YAK_BOOTSTRAP")
            .env_remove("YAK_PRODUCER_UI_LISTEN")
            .env_remove("YAK_CONSUMER_UI_LISTEN")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out);
        if ui == Ui::Producer {
            command.arg("--upload-dir").arg(dir.path());
        }
        let child = command.spawn().expect("spawning the UI");
        let mut process = Self {
            ui,
            child: Some(child),
            url,
            log,
            _dir: dir,
        };
        let health = format!("{}/health", process.url);
        let started = Instant::now();
        loop {
            if let Ok(reply) = try_send(http_client().get(&health)).await
                && reply.status.is_success()
            {
                break;
            }
            if let Some(child) = process.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited with {status}; its output:\n{}",
                    ui.binary_name(),
                    tail(&process.log, LOG_TAIL_LINES)
                );
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "{} did not answer {health} within {START_TIMEOUT:?}",
                ui.binary_name()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        process
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Prints the UI's last output lines to stderr.
    pub fn dump_logs(&self) {
        eprintln!(
            "----- {} ({}) last output -----\n{}",
            self.ui.binary_name(),
            self.url,
            tail(&self.log, LOG_TAIL_LINES)
        );
    }

    /// SIGTERM, and waits for a graceful exit (SIGKILL after 10 s). Returns
    /// whether it exited by itself with success.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for UiProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn find_program(env: &str, candidates: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    for candidate in candidates {
        let path = Path::new(candidate);
        if path.is_absolute() {
            if path.is_file() {
                return path.to_owned();
            }
            continue;
        }
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(candidate))
                .find(|p| p.is_file())
        });
        if let Some(found) = found {
            return found;
        }
    }
    panic!(
        "{} not found (set {env}). Run scripts/test.sh once (it installs chromium and \
         chromium-driver), or: apt-get install chromium chromium-driver",
        candidates.join(" or ")
    );
}

/// A headless Chromium driven through its own `chromedriver`, with a fresh
/// profile. Everything is killed on drop.
pub struct Browser {
    client: Client,
    driver: Child,
    _profile: TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("driver", &self.driver.id())
            .finish()
    }
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a session with
    /// headless Chromium (1400×1000).
    pub async fn start() -> Self {
        let chromium = find_program(
            "YAK_CHROMIUM",
            &["/usr/bin/chromium", "chromium", "chromium-browser"],
        );
        let chromedriver = find_program("YAK_CHROMEDRIVER", &["chromedriver"]);
        let profile = tempfile::Builder::new()
            .prefix("yak-chromium-")
            .tempdir()
            .expect("a temp dir");
        let port = free_port();
        let log = profile.path().join("chromedriver.log");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: dropping the browser kills chromedriver
            // and every Chromium process it started.
            .process_group(0)
            .spawn()
            .expect("spawning chromedriver");
        let mut browser_args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1400,1000".to_owned(),
        ];
        browser_args.push(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ));
        let driver_url = format!("http://127.0.0.1:{port}");
        let mut guard = DriverGuard(Some(driver));
        wait_for("chromedriver to be ready", START_TIMEOUT, || async {
            let reply = try_send(http_client().get(format!("{driver_url}/status")))
                .await
                .ok()?;
            (reply.json["value"]["ready"] == Value::Bool(true)).then_some(())
        })
        .await;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": browser_args,
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(capabilities)
        .connect(&driver_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot open a Chromium session: {e}; chromedriver log:\n{}",
                tail(&log, LOG_TAIL_LINES)
            )
        });
        Self {
            client,
            driver: guard.0.take().expect("the driver"),
            _profile: profile,
        }
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits until the page's event stream has delivered
    /// its first snapshot (the header leaves `connecting`).
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("opening the page");
        wait_for(
            format!("{url} to connect its event stream"),
            START_TIMEOUT,
            || async {
                let state = self.attr("#cluster", "data-state").await?;
                (state != "connecting").then_some(())
            },
        )
        .await;
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<Element> {
        self.client.find(Locator::Css(css)).await.ok()
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Option<String> {
        self.find(css).await?.text().await.ok()
    }

    /// An attribute of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await?.attr(name).await.ok().flatten()
    }

    /// Replaces the value of the input matching `css` by typing `value`.
    pub async fn fill(&self, css: &str, value: &str) {
        let input = self
            .find(css)
            .await
            .unwrap_or_else(|| panic!("no element {css}"));
        input.clear().await.expect("clearing an input");
        if !value.is_empty() {
            input.send_keys(value).await.expect("typing");
        }
    }

    /// Chooses the option with `value` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .unwrap_or_else(|| panic!("no element {css}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choosing {value:?} in {css}: {e}"));
    }

    /// Opens a new tab and switches to it; returns the tab it left.
    pub async fn new_tab(&self) -> WindowHandle {
        let left = self.client.window().await.expect("the current window");
        let tab = self.client.new_window(true).await.expect("a new tab");
        self.client
            .switch_to_window(tab.handle)
            .await
            .expect("switching to the new tab");
        left
    }

    /// Switches to `tab`.
    pub async fn switch_to(&self, tab: WindowHandle) {
        self.client
            .switch_to_window(tab)
            .await
            .expect("switching tabs");
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .unwrap_or_else(|| panic!("no element {css}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Runs `script` in the page (its last `return` is the result).
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("running a script in the page: {e}"))
    }

    /// Waits until the text of `css` satisfies `accept`, and returns it.
    /// Panics after `timeout`, saying what the text was.
    #[track_caller]
    pub fn wait_text<'a>(
        &'a self,
        css: &'a str,
        timeout: Duration,
        accept: impl Fn(&str) -> bool + 'a,
    ) -> impl std::future::Future<Output = String> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let last = std::cell::RefCell::new(None::<String>);
            let (accept, last_seen) = (&accept, &last);
            let waited = tokio::time::timeout(timeout, async {
                loop {
                    if let Some(text) = self.text(css).await {
                        if accept(&text) {
                            return text;
                        }
                        *last_seen.borrow_mut() = Some(text);
                    }
                    tokio::time::sleep(POLL).await;
                }
            })
            .await;
            waited.unwrap_or_else(|_| {
                panic!(
                    "timed out after {timeout:?} waiting for the text of {css} (at {caller}); \
                     it was {:?}",
                    last.borrow()
                )
            })
        }
    }

    /// Saves a screenshot of the window as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("taking a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("creating target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writing a screenshot");
        path
    }

    /// Ends the session (Chromium exits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Kills chromedriver's process group if the start fails half-way.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            kill_group(&mut child);
        }
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}
