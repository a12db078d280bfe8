//! The supervisor of `yak up`: the one owner of every process it started.
//! It notices a process that exits and says how (signal or status),
//! restarts it after `--restart-after` when that is set, and carries out
//! the kill and restart requests of the demo controls ([`super::control`]),
//! which reach it over a channel.
//!
//! Invariants: only the supervisor task touches a [`Proc`]; a process is
//! restarted only after it exited, with the arguments it first had; each
//! exit is reported once.

use std::{
    os::unix::process::ExitStatusExt,
    process::ExitStatus,
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::local::{Logs, Proc};

/// A request from the demo controls.
#[derive(Debug)]
pub enum Request {
    /// `kill -9` the named process.
    Kill(String, oneshot::Sender<Result<ProcView, ControlError>>),
    /// Start the named (exited) process again.
    Restart(String, oneshot::Sender<Result<ProcView, ControlError>>),
    /// Every process and its state.
    List(oneshot::Sender<Vec<ProcView>>),
}

/// Why a control request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no process named {0:?}; GET /procs lists them")]
    Unknown(String),
    #[error("{0} is not running; restart it instead")]
    NotRunning(String),
    #[error("{0} is running; kill it first")]
    Running(String),
    #[error("cannot start {0}: {1}")]
    Start(String, String),
}

/// A process as the controls see it.
#[derive(Debug, Clone, Serialize)]
pub struct ProcView {
    pub name: String,
    pub pid: Option<u32>,
    pub running: bool,
    /// How it last ended (`killed by SIGKILL`, `exited with status 1`).
    pub last_exit: Option<String>,
    pub restarts: u32,
}

struct Supervised {
    proc: Proc,
    /// How it ended, while it is not running.
    exit: Option<String>,
    restart_at: Option<Instant>,
    restarts: u32,
}

impl Supervised {
    fn view(&self) -> ProcView {
        ProcView {
            name: self.proc.name.clone(),
            pid: self.exit.is_none().then(|| self.proc.pid()).flatten(),
            running: self.exit.is_none(),
            last_exit: self.exit.clone(),
            restarts: self.restarts,
        }
    }
}

/// Says how a process ended: the signal's name, or the exit status.
pub fn describe(status: ExitStatus) -> String {
    match (status.signal(), status.code()) {
        (Some(signal), _) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("killed by {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, Some(code)) => format!("exited with status {code}"),
        (None, None) => format!("ended ({status})"),
    }
}

pub struct Supervisor {
    procs: Vec<Supervised>,
    restart_after: Option<Duration>,
    logs: Logs,
}

impl Supervisor {
    pub fn new(procs: Vec<Proc>, restart_after: Option<Duration>, logs: Logs) -> Self {
        let procs = procs
            .into_iter()
            .map(|proc| Supervised {
                proc,
                exit: None,
                restart_at: None,
                restarts: 0,
            })
            .collect();
        Self {
            procs,
            restart_after,
            logs,
        }
    }

    /// Watches and serves requests until `stop` resolves; then hands the
    /// processes back for an orderly stop.
    pub async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Vec<Proc> {
        let mut check = tokio::time::interval(Duration::from_millis(200));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = check.tick() => self.check(),
                Some(request) = requests.recv() => self.serve(request).await,
            }
        }
        self.procs.into_iter().map(|s| s.proc).collect()
    }

    /// Reports exits, and restarts what is due.
    fn check(&mut self) {
        let now = Instant::now();
        for s in &mut self.procs {
            if s.exit.is_none()
                && let Some(status) = s.proc.exited()
            {
                let how = describe(status);
                let next = match self.restart_after {
                    Some(after) => {
                        s.restart_at = Some(now + after);
                        format!("restarting it in {}", humantime::format_duration(after))
                    }
                    None => "restart it from its dashboard's demo controls, or run `yak up --restart-after 3s` to have it restarted".to_owned(),
                };
                self.logs.say(format!("!!! {} {how}; {next}", s.proc.name));
                s.exit = Some(how);
            }
            if s.restart_at.is_some_and(|at| at <= now) {
                s.restart_at = None;
                if let Err(e) = restart(s, &self.logs) {
                    self.logs.say(format!("!!! {e}"));
                }
            }
        }
    }

    async fn serve(&mut self, request: Request) {
        match request {
            Request::List(reply) => {
                let _ = reply.send(self.procs.iter().map(Supervised::view).collect());
            }
            Request::Kill(name, reply) => {
                let _ = reply.send(self.kill(&name).await);
            }
            Request::Restart(name, reply) => {
                let logs = self.logs.clone();
                let result = match self.find(&name) {
                    Ok(s) if s.exit.is_none() => Err(ControlError::Running(name)),
                    Ok(s) => restart(s, &logs).map(|()| s.view()),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
        }
    }

    async fn kill(&mut self, name: &str) -> Result<ProcView, ControlError> {
        let logs = self.logs.clone();
        let s = self.find(name)?;
        if s.exit.is_some() {
            return Err(ControlError::NotRunning(name.to_owned()));
        }
        let view = s.view();
        s.proc.kill9().await;
        logs.say(format!(
            "demo controls: kill -9 {name} (pid {})",
            view.pid.unwrap_or_default()
        ));
        // Reported by the next check, like any other exit.
        Ok(view)
    }

    fn find(&mut self, name: &str) -> Result<&mut Supervised, ControlError> {
        self.procs
            .iter_mut()
            .find(|s| s.proc.name == name)
            .ok_or_else(|| ControlError::Unknown(name.to_owned()))
    }
}

fn restart(s: &mut Supervised, logs: &Logs) -> Result<(), ControlError> {
    s.proc
        .restart(logs)
        .map_err(|e| ControlError::Start(s.proc.name.clone(), format!("{e:#}")))?;
    s.exit = None;
    s.restart_at = None;
    s.restarts += 1;
    logs.say(format!(
        "restarted {} (pid {}) with its first arguments",
        s.proc.name,
        s.proc.pid().unwrap_or_default()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_by_signal_or_status() {
        assert_eq!(describe(ExitStatus::from_raw(9)), "killed by SIGKILL");
        assert_eq!(describe(ExitStatus::from_raw(15)), "killed by SIGTERM");
        assert_eq!(
            describe(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
        assert_eq!(describe(ExitStatus::from_raw(0)), "exited with status 0");
    }
}
