//! Headless Chromium for browser tests: [`Browser`] starts its own
//! `chromedriver` (in its own process group, so Chromium dies with it, also
//! when a test panics) and drives a fresh-profile Chromium over WebDriver
//! (`fantoccini`), with helpers that wait on page conditions against a
//! deadline and save screenshots under `target/screenshots/`.
//!
//! Chromium is `$YAK_CHROMIUM` or `/usr/bin/chromium`, the driver
//! `$YAK_CHROMEDRIVER` or `chromedriver` on `PATH` (`scripts/test.sh`
//! installs both).

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

pub use fantoccini::{self, Client, Locator, elements::Element, wd::WindowHandle};
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    LOG_TAIL_LINES,
    http::{http_client, try_send},
    net::free_port,
    process::{bin_dir, tail},
    wait::wait_for,
};

/// How long the browser gets to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often page conditions are checked.
pub const POLL: Duration = Duration::from_millis(25);

/// Where screenshots go: `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = bin_dir();
    let target = dir.parent().unwrap_or(&dir);
    target.join("screenshots")
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
