//! Child processes: temp dirs, signals, exits, output tails, and finding
//! (building) the workspace's binaries.
//!
//! How a process is stopped, paused and waited for is `yak-launch`'s (the
//! same as `yak up`'s); what is the harness's own is the policy: a process
//! that does not stop, pause or start in time is a panic.

use std::{
    fs::{self},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use crate::{START_TIMEOUT, STOP_TIMEOUT};
use nix::sys::signal::Signal;
use tempfile::TempDir;
use yak_client::{ClientConfig, Probe};
use yak_launch::{HealthError, Stopped};

pub(crate) fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("creating a temp dir")
}

pub(crate) fn keep_temp() -> bool {
    std::env::var_os("YAK_TESTKIT_KEEP").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Sends `signal` to a child process. Errors (it already exited) are
/// ignored.
pub(crate) fn signal(child: &Child, signal: Signal) {
    let _ = yak_launch::signal::send(child.id(), signal);
}

/// SIGSTOP, then waits until every thread of the process has stopped
/// ([`yak_launch::pause`]: tests rely on "nothing happens in there after
/// `pause()`"). Panics if that takes longer than [`STOP_TIMEOUT`].
pub(crate) fn stop_process(child: &Child) {
    if let Err(e) = yak_launch::pause(child.id(), STOP_TIMEOUT) {
        panic!("pausing: {e}");
    }
}

/// SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`]
/// ([`yak_launch::terminate`]; a paused process is continued first).
/// Panics if even SIGKILL does not end it.
pub(crate) async fn terminate(child: &mut Child) -> Stopped {
    match yak_launch::terminate(child, STOP_TIMEOUT).await {
        Ok(stopped) => stopped,
        Err(e) => panic!("stopping process {}: {e}", child.id()),
    }
}

/// Waits until the server at `url` answers `GET /health` (trusting the
/// test CA `ca_pem`, if given), failing at once if `child` exits, and
/// after [`START_TIMEOUT`]. The error says why, for the caller to panic
/// with along with the process's output.
pub(crate) async fn wait_healthy(
    url: &str,
    ca_pem: Option<&str>,
    child: &mut Child,
) -> Result<(), HealthError> {
    let config = ClientConfig {
        request_timeout: Duration::from_secs(2),
        tls_ca_pem: ca_pem.map(|pem| pem.as_bytes().to_vec()),
        ..ClientConfig::default()
    };
    let probe = match Probe::new(url, &config) {
        Ok(probe) => probe,
        Err(e) => panic!("probing {url}: {e}"),
    };
    yak_launch::wait_healthy(&probe, START_TIMEOUT, || child.try_wait().ok().flatten())
        .await
        .map(drop)
}

/// The last `n` lines of a file (lossy UTF-8), or a note why there are none.
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Where the `broker` and `follower` binaries are: `$YAK_BIN_DIR`, else the
/// cargo profile directory of the running executable.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("YAK_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the path of the running test");
    let parent = exe.parent().expect("the test binary has a directory");
    if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().expect("deps has a parent").to_owned()
    } else {
        parent.to_owned()
    }
}

/// Builds the binaries of the workspace `packages` into the running test's
/// target directory (a no-op when they are up to date), unless
/// `YAK_BIN_DIR` is set: `cargo test -p <crate>` builds no binary of
/// another package. Failures are reported and the binaries used as they
/// are; finding them is [`bin_dir`]'s job.
pub fn build_bins(packages: &[&str]) {
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
        .expect("testkit lives in the workspace")
        .join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(&workspace)
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .arg("--bins")
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
    let started = Instant::now();
    let what = packages.join(", ");
    match command.output() {
        Ok(out) if out.status.success() => {
            if started.elapsed() > Duration::from_secs(2) {
                eprintln!("testkit: built {what} in {:?}", started.elapsed());
            }
        }
        Ok(out) => eprintln!(
            "testkit: building {what} failed ({}); using the binaries in {} as they are:\n{}",
            out.status,
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!(
            "testkit: cannot run cargo ({e}); using the binaries in {} as they are",
            dir.display()
        ),
    }
}
