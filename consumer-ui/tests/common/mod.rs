//! The UI half of the browser-test harness (the cluster half is
//! `broker::testkit`): [`UiProcess`] starts the real `producer-ui` or
//! `consumer-ui` binary on a free port against a cluster; the browser is
//! `broker::testkit::browser::Browser` (headless Chromium over WebDriver). Shared by the browser tests of both UI crates
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
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

pub use broker::testkit::browser::Browser;
use broker::testkit::{
    LOG_TAIL_LINES, bin_dir, build_bins, free_port, http_client, tail, try_send,
};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tempfile::TempDir;

/// How long a UI process or the browser gets to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

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
    BUILT.get_or_init(|| build_bins(&[ui.binary_name()]));
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
