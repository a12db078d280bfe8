//! A UI process: the real `producer-ui` or `consumer-ui` binary on a free
//! port against a cluster, found like the node binaries ([`bin_dir`]) and
//! built once per test process unless `YAK_BIN_DIR` is set. Its command
//! line is a [`yak_launch::UiSpec`] (as `yak up`'s UIs' are), with every
//! inherited `YAK_*` variable removed and `RUST_LOG` defaulting to `info`.

use std::{fs::OpenOptions, path::PathBuf, process::Child, sync::OnceLock};

use tempfile::TempDir;
use yak_launch::{Environment, Stopped, UiSpec};

use crate::{
    LOG_TAIL_LINES,
    net::free_port,
    process::{bin_dir, build_bins, tail, temp_dir, terminate, wait_healthy},
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
        let spec = UiSpec {
            program: ui_binary(ui),
            listen: format!("127.0.0.1:{port}"),
            bootstrap: bootstrap.iter().map(|url| url.to_string()).collect(),
            upload_dir: (ui == Ui::Producer).then(|| dir.path().to_owned()),
            extra_args: args.iter().map(|arg| arg.to_string()).collect(),
            env: Environment::without_yak().var(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            ),
            ..UiSpec::default()
        };
        let child = spec
            .command_line()
            .command()
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("spawning the UI");
        let mut process = Self {
            ui,
            child: Some(child),
            url,
            log,
            _dir: dir,
        };
        let child = process.child.as_mut().expect("just spawned");
        if let Err(e) = wait_healthy(&process.url, None, child).await {
            panic!(
                "{}: {e}; its output:\n{}",
                ui.binary_name(),
                tail(&process.log, LOG_TAIL_LINES)
            );
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

    /// SIGTERM, and waits for a graceful exit (SIGKILL after
    /// [`crate::STOP_TIMEOUT`]). Returns whether it exited by itself with success.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        match terminate(&mut child).await {
            Stopped::Exited(status) => status.success(),
            Stopped::Killed(_) => false,
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
