//! A UI process: the real `producer-ui` or `consumer-ui` binary on a free
//! port against a cluster, found like the node binaries ([`bin_dir`]) and
//! built once per test process unless `YAK_BIN_DIR` is set.

use std::{
    fs::OpenOptions,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::{
    LOG_TAIL_LINES, START_TIMEOUT, STOP_TIMEOUT,
    http::{http_client, try_send},
    net::free_port,
    process::{bin_dir, build_bins, signal, tail, temp_dir, wait_exit},
    wait::wait_for,
};

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

/// The path of a UI binary, built once per test process first.
pub fn ui_binary(ui: Ui) -> PathBuf {
    static PRODUCER: OnceLock<()> = OnceLock::new();
    static CONSUMER: OnceLock<()> = OnceLock::new();
    let built = match ui {
        Ui::Producer => &PRODUCER,
        Ui::Consumer => &CONSUMER,
    };
    built.get_or_init(|| build_bins(&[ui.binary_name()]));
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
        let dir = temp_dir("yak-ui-test-");
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
        let name = ui.binary_name();
        wait_for(&format!("{name} to answer {health}"), START_TIMEOUT, || {
            let exited = process
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "{name} exited with {status}; its output:\n{}",
                    tail(&process.log, LOG_TAIL_LINES)
                );
            }
            let health = health.clone();
            async move {
                try_send(http_client().get(&health))
                    .await
                    .is_ok_and(|reply| reply.status.is_success())
                    .then_some(())
            }
        })
        .await;
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

    /// SIGTERM, and waits for a graceful exit (SIGKILL after
    /// [`STOP_TIMEOUT`]). Returns whether it exited by itself with success.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        signal(&child, Signal::SIGTERM);
        match wait_exit(&mut child, STOP_TIMEOUT).await {
            Some(status) => status.success(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                false
            }
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
