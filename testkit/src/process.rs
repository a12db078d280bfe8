//! Child processes: temp dirs, signals, exits, output tails, and finding
//! (building) the workspace's binaries.

use std::{
    fs::{self},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
    time::{Duration, Instant},
};

use crate::STOP_TIMEOUT;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tempfile::TempDir;

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
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// SIGSTOP, then waits until every thread of the process has stopped.
///
/// A process-directed SIGSTOP stops the threads one by one: the thread that
/// takes the signal starts the group stop when it next runs, and on a busy
/// machine the other threads can go on running user code (accepting a
/// request, answering one) for milliseconds after `kill` returned. Tests
/// rely on "nothing happens in there after `pause()`", so this reads
/// `/proc/<pid>/task/*/stat` until every thread is stopped (or gone).
/// Without `/proc` it returns at once.
pub(crate) fn stop_process(child: &Child) {
    signal(child, Signal::SIGSTOP);
    let pid = child.id();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while !all_threads_stopped(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} did not stop within {STOP_TIMEOUT:?} of SIGSTOP"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// True if no thread of `pid` can run: each is stopped (`T`), traced
/// (`t`), a zombie or gone. True if `/proc` cannot be read.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.filter_map(Result::ok).all(|task| {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            return true; // the thread exited
        };
        // "<tid> (<comm>) <state> ..."; comm may hold spaces and parens.
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next());
        matches!(state, Some('T' | 't' | 'Z' | 'X') | None)
    })
}

/// Waits for `child` to exit, up to `timeout`, without blocking the async
/// runtime.
pub(crate) async fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
