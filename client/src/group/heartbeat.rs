//! The member's heartbeat: a background task that keeps the session alive
//! and tells the consumer, through a watch channel its `poll` waits on,
//! when the group rebalances or the session is gone.
//!
//! Invariants:
//! - The task heartbeats the session the consumer last handed it
//!   ([`Heartbeat::follow`]), every heartbeat interval of that session, and
//!   nothing while it has none ([`Heartbeat::stop`]).
//! - It sends nothing while the consumer has been idle — no `poll` running
//!   — for longer than the session timeout ([`Liveness`]): a member that
//!   stops polling is dropped by the group and its partitions go to others.
//!   When it polls again, [`Heartbeat::revalidate`] asks the group first.
//! - Every [`Signal`] names the session it concerns; the consumer acts only
//!   on signals about its current session, and on each at most once (a
//!   heartbeat answered after a rejoin concerns the session before it).
//! - After a refusal that ends the session (`unknown_member`,
//!   `stale_generation`) it waits for the next session.
//! - The task ends when the [`Heartbeat`] is dropped (it is aborted, as a
//!   killed process would stop heartbeating).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::watch, task::JoinHandle, time::Instant};
use yak_protocol::group;

use super::membership::Verdict;
use crate::cluster::YakClient;

/// The session a member holds: what the task heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub member_id: String,
    pub generation: u64,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Session {
    /// The session a join answer opens.
    pub(crate) fn of(joined: &group::Joined) -> Self {
        Self {
            member_id: joined.member_id.clone(),
            generation: joined.generation,
            // A zero interval from a node would make the task spin.
            interval: Duration::from_millis(joined.heartbeat_interval_ms.max(10)),
            timeout: Duration::from_millis(joined.session_timeout_ms),
        }
    }
}

/// What a heartbeat learnt about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signal {
    member_id: String,
    generation: u64,
    verdict: Verdict,
}

/// When the consumer last polled. Shared by the consumer (which marks its
/// polls with [`Heartbeat::polling`]) and the task (which reads it).
#[derive(Debug)]
pub(crate) struct Liveness {
    origin: Instant,
    /// Milliseconds after `origin` since which no poll runs, or [`POLLING`].
    idle_since_ms: AtomicU64,
}

/// `idle_since_ms` while a poll runs.
const POLLING: u64 = u64::MAX;

impl Liveness {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// How long no poll has run (zero while one does).
    fn idle_for(&self) -> Duration {
        match self.idle_since_ms.load(Ordering::Relaxed) {
            POLLING => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since)),
        }
    }
}

/// A poll under way; idle again from when it is dropped (also when the
/// poll's future is cancelled).
#[derive(Debug)]
pub(crate) struct Polling(Arc<Liveness>);

impl Drop for Polling {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(self.0.now_ms(), Ordering::Relaxed);
    }
}

/// The consumer's handle on its heartbeat task.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    client: YakClient,
    group: String,
    sessions: watch::Sender<Option<Session>>,
    signals: watch::Receiver<Option<Signal>>,
    liveness: Arc<Liveness>,
    task: JoinHandle<()>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Heartbeat {
    /// Starts the task for `group` on the current runtime, with no session.
    pub(crate) fn start(client: YakClient, group: String) -> Self {
        let (sessions, session_rx) = watch::channel(None);
        let (signal_tx, signals) = watch::channel(None);
        let liveness = Liveness::new();
        let task = tokio::spawn(beat(
            client.clone(),
            group.clone(),
            session_rx,
            signal_tx,
            Arc::clone(&liveness),
        ));
        Self {
            client,
            group,
            sessions,
            signals,
            liveness,
            task,
        }
    }

    /// Heartbeat `session` from now on.
    pub(crate) fn follow(&self, session: Session) {
        self.sessions.send_replace(Some(session));
    }

    /// Stop heartbeating: the member has no session.
    pub(crate) fn stop(&self) {
        self.sessions.send_replace(None);
    }

    /// When the consumer has been idle for longer than the session timeout
    /// (so the task stopped heartbeating and the group may have dropped the
    /// member), heartbeats at once: the verdict, if the session is over or
    /// the group rebalances. A member that may be a zombie learns it before
    /// it reads. Call before [`Heartbeat::polling`].
    pub(crate) async fn revalidate(&self) -> Option<Verdict> {
        let session = self.sessions.borrow().clone()?;
        if self.liveness.idle_for() <= session.timeout {
            return None;
        }
        heartbeat(&self.client, &self.group, &session)
            .await
            .map(|(verdict, _)| verdict)
    }

    /// Marks a poll as running until the guard is dropped.
    pub(crate) fn polling(&self) -> Polling {
        self.liveness
            .idle_since_ms
            .store(POLLING, Ordering::Relaxed);
        Polling(Arc::clone(&self.liveness))
    }

    /// A verdict about the session `(member_id, generation)` that arrived
    /// since the last look, if any.
    pub(crate) fn take(&mut self, member_id: &str, generation: u64) -> Option<Verdict> {
        if !self.signals.has_changed().unwrap_or(false) {
            return None;
        }
        concerning(&self.signals.borrow_and_update(), member_id, generation)
    }

    /// Waits for a verdict about the session `(member_id, generation)`;
    /// never completes if none comes.
    pub(crate) async fn signalled(&mut self, member_id: &str, generation: u64) -> Verdict {
        loop {
            if self.signals.changed().await.is_err() {
                // The task is gone: no signal will ever come.
                return std::future::pending().await;
            }
            if let Some(verdict) =
                concerning(&self.signals.borrow_and_update(), member_id, generation)
            {
                return verdict;
            }
        }
    }
}

/// `signal`'s verdict if it is about the session `(member_id, generation)`.
fn concerning(signal: &Option<Signal>, member_id: &str, generation: u64) -> Option<Verdict> {
    signal
        .as_ref()
        .filter(|s| s.member_id == member_id && s.generation == generation)
        .map(|s| s.verdict)
}

/// What one heartbeat answer means: a verdict, and whether the session is
/// over (nothing more to heartbeat for it).
fn judge(
    answer: crate::Result<group::HeartbeatAnswer>,
    generation: u64,
) -> Option<(Verdict, bool)> {
    match answer {
        // Rebalancing: keep the session alive while the member finishes
        // its records and commits.
        Ok(answer) if answer.rebalance => Some((Verdict::Rejoin, false)),
        // The group moved on without saying so: this session is over.
        Ok(answer) if answer.generation != generation => Some((Verdict::Rejoin, true)),
        Ok(_) => None,
        Err(e) => {
            let verdict = Verdict::of(&e);
            if verdict.is_none() {
                // The leader is unreachable beyond the client's deadline,
                // or refused for a reason a heartbeat cannot fix: try
                // again next interval; the session may survive it.
                tracing::warn!("heartbeat failed: {e}");
            }
            verdict.map(|v| (v, true))
        }
    }
}

/// One heartbeat of `session`, judged.
async fn heartbeat(client: &YakClient, group: &str, session: &Session) -> Option<(Verdict, bool)> {
    let request = group::Heartbeat {
        member_id: session.member_id.clone(),
        generation: session.generation,
    };
    // One attempt may take at most half the session, so that a retry on a
    // new leader still comes in time.
    let timeout = (session.timeout / 2).min(client.config().request_timeout);
    let answer = client.heartbeat_group(group, &request, timeout).await;
    judge(answer, session.generation)
}

/// The task: one heartbeat per interval of the current session.
async fn beat(
    client: YakClient,
    group: String,
    mut sessions: watch::Receiver<Option<Session>>,
    signals: watch::Sender<Option<Signal>>,
    liveness: Arc<Liveness>,
) {
    loop {
        let current = sessions.borrow_and_update().clone();
        let Some(session) = current else {
            if sessions.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            () = tokio::time::sleep(session.interval) => {}
            changed = sessions.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        if liveness.idle_for() > session.timeout {
            continue;
        }
        let Some((verdict, over)) = heartbeat(&client, &group, &session).await else {
            continue;
        };
        signals.send_replace(Some(Signal {
            member_id: session.member_id,
            generation: session.generation,
            verdict,
        }));
        if over && sessions.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::ClientError;

    fn answer(generation: u64, rebalance: bool) -> crate::Result<group::HeartbeatAnswer> {
        Ok(group::HeartbeatAnswer {
            generation,
            rebalance,
        })
    }

    fn refused(code: &str) -> crate::Result<group::HeartbeatAnswer> {
        let body = json!({"error": code, "message": "m"});
        Err(ClientError::from_answer(
            StatusCode::CONFLICT,
            body.to_string().as_bytes(),
        ))
    }

    #[test]
    fn a_heartbeat_answer_says_whether_to_rejoin_and_whether_the_session_is_over() {
        assert_eq!(judge(answer(7, false), 7), None);
        assert_eq!(judge(answer(7, true), 7), Some((Verdict::Rejoin, false)));
        assert_eq!(judge(answer(8, false), 7), Some((Verdict::Rejoin, true)));
        assert_eq!(
            judge(refused("stale_generation"), 7),
            Some((Verdict::Rejoin, true))
        );
        assert_eq!(
            judge(refused("unknown_member"), 7),
            Some((Verdict::Expired, true))
        );
        assert_eq!(
            judge(Err(ClientError::NoLeader("down".to_owned())), 7),
            None
        );
    }

    #[test]
    fn a_signal_counts_only_for_its_own_session() {
        let signal = Some(Signal {
            member_id: "m-1".to_owned(),
            generation: 3,
            verdict: Verdict::Rejoin,
        });
        assert_eq!(concerning(&signal, "m-1", 3), Some(Verdict::Rejoin));
        assert_eq!(concerning(&signal, "m-1", 4), None);
        assert_eq!(concerning(&signal, "m-2", 3), None);
        assert_eq!(concerning(&None, "m-1", 3), None);
    }

    #[tokio::test(start_paused = true)]
    async fn idleness_counts_from_the_end_of_the_last_poll() {
        let client = YakClient::new(["http://127.0.0.1:9"]).unwrap();
        let heartbeat = Heartbeat::start(client, "g".to_owned());
        let second = Duration::from_secs(1);
        tokio::time::advance(second).await;
        assert_eq!(heartbeat.liveness.idle_for(), second, "idle since start");
        let polling = heartbeat.polling();
        tokio::time::advance(5 * second).await;
        assert_eq!(heartbeat.liveness.idle_for(), Duration::ZERO, "polling");
        drop(polling);
        tokio::time::advance(2 * second).await;
        assert_eq!(heartbeat.liveness.idle_for(), 2 * second);
    }
}
