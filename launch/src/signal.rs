//! Stopping, pausing and resuming a started process.
//!
//! - [`terminate`]: SIGTERM (a node then releases its lease and syncs its
//!   logs, Redis flushes its append-only file), then SIGKILL if it has not
//!   exited within a grace period. A paused process is continued right
//!   after the SIGTERM, so that it can act on it.
//! - [`pause`]: SIGSTOP, returning only once every thread of the process
//!   has stopped (read from `/proc/<pid>/task/*/stat`); [`resume`]:
//!   SIGCONT.
//! - [`send`]: one signal, for the rest (`kill -9`).
//!
//! [`terminate`] and [`wait_exit`] work on any child handle that says its
//! pid and whether it has exited ([`ChildProcess`]: std's and tokio's
//! `Child`); they poll, so they never block the async runtime.

use std::{
    fs, io,
    process::ExitStatus,
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    sys::signal::{self, Signal},
    unistd::Pid,
};

/// How often [`wait_exit`] checks whether the process has exited.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// How long [`terminate`] waits for the exit after its SIGKILL.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a signal could not be sent, or did not have its effect in time.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("pid {0} is out of range")]
    Pid(u32),
    #[error("sending {signal} to process {pid}: {source}")]
    Send {
        pid: u32,
        signal: Signal,
        source: Errno,
    },
    #[error("process {pid} did not stop within {timeout:?} of SIGSTOP")]
    NotStopped { pid: u32, timeout: Duration },
    #[error("process {pid} did not exit within {timeout:?} of SIGKILL")]
    NotReaped { pid: u32, timeout: Duration },
    #[error("waiting for process {pid}: {source}")]
    Wait { pid: u32, source: io::Error },
}

/// A child process handle: std's and tokio's `Child`.
pub trait ChildProcess {
    /// Its pid, while it may still be running (tokio's handle forgets it
    /// once it has reaped the process).
    fn pid(&self) -> Option<u32>;
    /// Its exit status if it has exited (reaping it), without blocking.
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>>;
}

impl ChildProcess for std::process::Child {
    fn pid(&self) -> Option<u32> {
        Some(self.id())
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        std::process::Child::try_wait(self)
    }
}

impl ChildProcess for tokio::process::Child {
    fn pid(&self) -> Option<u32> {
        self.id()
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        tokio::process::Child::try_wait(self)
    }
}

/// Sends `signal` to process `pid`.
pub fn send(pid: u32, signal: Signal) -> Result<(), SignalError> {
    let raw = i32::try_from(pid).map_err(|_| SignalError::Pid(pid))?;
    signal::kill(Pid::from_raw(raw), signal).map_err(|source| SignalError::Send {
        pid,
        signal,
        source,
    })
}

/// [`send`], where a process that is gone already (`ESRCH`) is no error.
fn send_if_there(pid: u32, signal: Signal) -> Result<(), SignalError> {
    match send(pid, signal) {
        Err(SignalError::Send {
            source: Errno::ESRCH,
            ..
        }) => Ok(()),
        other => other,
    }
}

/// How [`terminate`] ended a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It exited within the grace period (by itself or by the SIGTERM).
    Exited(ExitStatus),
    /// It was still running after the grace period and was killed
    /// (SIGKILL).
    Killed(ExitStatus),
}

impl Stopped {
    pub fn status(self) -> ExitStatus {
        match self {
            Stopped::Exited(status) | Stopped::Killed(status) => status,
        }
    }
}

/// SIGTERM (and SIGCONT, in case it is paused), then waits up to `grace`
/// for the exit; SIGKILL if it has not exited by then, and waits for that
/// exit. A process that has exited already is just reaped.
pub async fn terminate(
    child: &mut impl ChildProcess,
    grace: Duration,
) -> Result<Stopped, SignalError> {
    let Some(pid) = child.pid() else {
        return Ok(Stopped::Exited(reaped(child, 0).await?));
    };
    if let Some(status) = try_wait(child, pid)? {
        return Ok(Stopped::Exited(status));
    }
    send_if_there(pid, Signal::SIGTERM)?;
    send_if_there(pid, Signal::SIGCONT)?;
    if let Some(status) = wait_exit(child, grace).await? {
        return Ok(Stopped::Exited(status));
    }
    send_if_there(pid, Signal::SIGKILL)?;
    match wait_exit(child, REAP_TIMEOUT).await? {
        Some(status) => Ok(Stopped::Killed(status)),
        None => Err(SignalError::NotReaped {
            pid,
            timeout: REAP_TIMEOUT,
        }),
    }
}

/// The status of a child whose handle no longer has a pid: it was reaped.
async fn reaped(child: &mut impl ChildProcess, pid: u32) -> Result<ExitStatus, SignalError> {
    wait_exit(child, REAP_TIMEOUT)
        .await?
        .ok_or(SignalError::NotReaped {
            pid,
            timeout: REAP_TIMEOUT,
        })
}

fn try_wait(child: &mut impl ChildProcess, pid: u32) -> Result<Option<ExitStatus>, SignalError> {
    child
        .try_wait()
        .map_err(|source| SignalError::Wait { pid, source })
}

/// Waits up to `timeout` for `child` to exit, polling without blocking
/// the async runtime; `None` if it is still running.
pub async fn wait_exit(
    child: &mut impl ChildProcess,
    timeout: Duration,
) -> Result<Option<ExitStatus>, SignalError> {
    let pid = child.pid().unwrap_or_default();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = try_wait(child, pid)? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(EXIT_POLL).await;
    }
}

/// SIGSTOP, then waits (blocking, up to `timeout`) until every thread of
/// process `pid` has stopped.
///
/// A process-directed SIGSTOP stops the threads one by one: the thread that
/// takes the signal starts the group stop when it next runs, and on a busy
/// machine the other threads can go on running user code (accepting a
/// request, answering one) for milliseconds after `kill` returned. Callers
/// rely on "nothing happens in there after `pause`", so this reads
/// `/proc/<pid>/task/*/stat` until every thread is stopped (or gone).
/// Without `/proc` it returns right after the signal.
pub fn pause(pid: u32, timeout: Duration) -> Result<(), SignalError> {
    send(pid, Signal::SIGSTOP)?;
    let deadline = Instant::now() + timeout;
    while !all_threads_stopped(pid) {
        if Instant::now() >= deadline {
            return Err(SignalError::NotStopped { pid, timeout });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// SIGCONT, after [`pause`].
pub fn resume(pid: u32) -> Result<(), SignalError> {
    send(pid, Signal::SIGCONT)
}

/// True if no thread of `pid` can run: each is stopped, traced, a zombie
/// or gone ([`thread_can_run`]). True if `/proc/<pid>/task` cannot be
/// read (no `/proc`, or the process is gone).
pub fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.filter_map(Result::ok).all(|task| {
        // A thread whose stat cannot be read has exited.
        fs::read_to_string(task.path().join("stat")).map_or(true, |stat| !thread_can_run(&stat))
    })
}

/// Whether the thread of a `/proc/<pid>/task/<tid>/stat` line may still
/// run: false when its state is stopped (`T`), traced (`t`), zombie (`Z`)
/// or dead (`X`), and for a line without a state.
///
/// The line is `<tid> (<comm>) <state> …`, where `comm` may hold spaces
/// and parentheses: the state follows the last `)`.
pub fn thread_can_run(stat: &str) -> bool {
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, Some('T' | 't' | 'Z' | 'X') | None)
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn the_state_follows_the_last_parenthesis() {
        for (stat, runs) in [
            ("1234 (broker) S 1 1234 1234 0 -1", true),
            ("1234 (broker) R 1 1234", true),
            ("1234 (broker) D 1 1234", true),
            ("1234 (broker) T 1 1234", false),
            ("1234 (broker) t 1 1234", false),
            ("1234 (broker) Z 1 1234", false),
            ("1234 (broker) X 1 1234", false),
            ("77 (tokio-runtime-w) S 1", true),
            ("77 (a) T (b)) R 1", true),
            ("77 (weird ) name) T 1", false),
            ("77 (no state)", false),
            ("", false),
        ] {
            assert_eq!(thread_can_run(stat), runs, "{stat:?}");
        }
    }

    fn sleeper() -> std::process::Child {
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning sleep")
    }

    #[tokio::test]
    async fn pause_waits_until_stopped_and_terminate_ends_a_paused_process() {
        let mut child = sleeper();
        let pid = child.id();
        pause(pid, Duration::from_secs(10)).expect("pausing");
        assert!(all_threads_stopped(pid));
        resume(pid).expect("resuming");
        pause(pid, Duration::from_secs(10)).expect("pausing again");
        let stopped = terminate(&mut child, Duration::from_secs(10))
            .await
            .expect("terminating");
        assert!(matches!(stopped, Stopped::Exited(_)), "{stopped:?}");
        assert!(!stopped.status().success());
    }

    #[tokio::test]
    async fn terminate_kills_what_ignores_sigterm() {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; sleep 30"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning sh");
        // Wait until the trap is set.
        let mut out = child.stdout.take().expect("piped");
        let mut ready = [0u8; 6];
        tokio::io::AsyncReadExt::read_exact(&mut out, &mut ready)
            .await
            .expect("reading ready");
        let stopped = terminate(&mut child, Duration::from_millis(200))
            .await
            .expect("terminating");
        assert!(matches!(stopped, Stopped::Killed(_)), "{stopped:?}");
        // Stopping again: it is reaped already.
        let again = terminate(&mut child, Duration::from_millis(200))
            .await
            .expect("terminating again");
        assert!(matches!(again, Stopped::Exited(_)), "{again:?}");
    }

    #[tokio::test]
    async fn wait_exit_gives_up_after_its_timeout() {
        let mut child = sleeper();
        let waited = wait_exit(&mut child, Duration::from_millis(50)).await;
        assert!(matches!(waited, Ok(None)), "{waited:?}");
        send(child.id(), Signal::SIGKILL).expect("killing");
        let status = wait_exit(&mut child, Duration::from_secs(10)).await;
        assert!(matches!(status, Ok(Some(_))), "{status:?}");
        assert!(matches!(
            send(u32::MAX, Signal::SIGCONT),
            Err(SignalError::Pid(_))
        ));
    }
}
