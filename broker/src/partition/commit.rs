//! The commit stage of a leading partition: it stores the HWM in Redis for
//! rounds the writer has appended and replicated, then answers their
//! requests.
//!
//! It runs as its own task so that rounds are pipelined: while the HWM of
//! round n is on its way to Redis (one fsync of Redis's append-only file
//! with `appendfsync always`), the writer already appends and replicates
//! round n+1. Rounds that wait together are committed by one HWM update,
//! and several updates may be in flight at once (the HWM script only ever
//! raises the HWM, so their order in Redis does not matter; their answers
//! are handled in submission order).
//!
//! Invariants:
//! - Rounds are committed, and their requests answered, in the order the
//!   writer submitted them.
//! - A request is answered `Ok` only after an HWM covering its round is
//!   stored under the round's epoch and the lease gate is still open for
//!   that epoch.
//! - Once a commit at an epoch failed, every later round of that epoch
//!   fails too, and the lease driver is told to step down.
//! - The writer drains the stage ([`Committer::drain`]) before it changes
//!   mode, so no commit of an old mode lands after a truncation.

use std::sync::Arc;

use futures_util::{StreamExt, stream::FuturesOrdered};
use tokio::sync::{mpsc, oneshot, watch};

use super::{WriteError, WriterContext, Written, handle::Reply, raise_hwm};

/// Rounds replicated but not yet committed before the writer waits: bounds
/// the uncommitted tail when Redis is slow.
const PIPELINE_DEPTH: usize = 64;

pub(super) type Answer = (Reply<Result<Vec<Written>, WriteError>>, Vec<Written>);

/// A round the writer has appended and every ISR follower holds.
pub(super) struct Round {
    pub epoch: u64,
    /// The log end after the round: the HWM that commits it.
    pub end: u64,
    pub answers: Vec<Answer>,
}

enum Job {
    Commit(Round),
    Barrier(oneshot::Sender<()>),
}

/// The writer's handle on its partition's commit task.
#[derive(Debug)]
pub(super) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    pub fn spawn(
        ctx: WriterContext,
        topic: Arc<str>,
        partition: u32,
        hwm: watch::Sender<u64>,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(PIPELINE_DEPTH);
        let task = Task {
            ctx,
            topic,
            partition,
            hwm,
            failed_epoch: None,
        };
        task.ctx.runtime.clone().spawn(task.run(rx));
        Self { jobs }
    }

    /// Queues a replicated round; waits only when [`PIPELINE_DEPTH`] rounds
    /// are already waiting.
    pub async fn submit(&self, round: Round) {
        if let Err(mpsc::error::SendError(Job::Commit(round))) =
            self.jobs.send(Job::Commit(round)).await
        {
            // The round is appended and replicated: its outcome is unknown,
            // not "not written".
            let stopped = WriteError::Unavailable("the commit stage stopped".to_owned());
            answer_all(round.answers, &stopped);
        }
    }

    /// Returns once every round submitted so far is committed or failed.
    pub async fn drain(&self) {
        let (done, wait) = oneshot::channel();
        if self.jobs.send(Job::Barrier(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Commits sent to Redis and not yet answered. More than one is in flight
/// so that a commit does not wait for the previous one's fsync: with
/// `appendfsync always` Redis fsyncs once per event-loop turn for all the
/// commands of that turn.
const MAX_IN_FLIGHT: usize = 8;

/// Rounds of one epoch committed by one HWM update.
struct Commit {
    epoch: u64,
    end: u64,
    rounds: Vec<Round>,
    barriers: Vec<oneshot::Sender<()>>,
}

/// The HWM Redis holds after a commit's update, or `None` when no update
/// was sent (see [`Committer::store_hwm`]).
type Stored = Result<Option<u64>, WriteError>;

struct Task {
    ctx: WriterContext,
    topic: Arc<str>,
    partition: u32,
    hwm: watch::Sender<u64>,
    failed_epoch: Option<u64>,
}

impl Task {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut in_flight = FuturesOrdered::new();
        let mut open = true;
        while open || !in_flight.is_empty() {
            tokio::select! {
                job = jobs.recv(), if open && in_flight.len() < MAX_IN_FLIGHT => {
                    let Some(job) = job else {
                        open = false;
                        continue;
                    };
                    // Everything queued meanwhile joins this commit.
                    let mut next = Some(job);
                    let mut commits: Vec<Commit> = Vec::new();
                    while let Some(job) = next.take().or_else(|| jobs.try_recv().ok()) {
                        match job {
                            Job::Commit(round) => match commits.last_mut() {
                                Some(c) if c.epoch == round.epoch => {
                                    c.end = c.end.max(round.end);
                                    c.rounds.push(round);
                                }
                                _ => commits.push(Commit {
                                    epoch: round.epoch,
                                    end: round.end,
                                    rounds: vec![round],
                                    barriers: Vec::new(),
                                }),
                            },
                            Job::Barrier(done) => match commits.last_mut() {
                                Some(c) => c.barriers.push(done),
                                None => commits.push(Commit {
                                    epoch: 0,
                                    end: 0,
                                    rounds: Vec::new(),
                                    barriers: vec![done],
                                }),
                            },
                        }
                    }
                    for commit in commits {
                        let stored = self.store_hwm(commit.epoch, commit.end);
                        in_flight.push_back(async move { (commit, stored.await) });
                    }
                }
                Some((commit, stored)) = in_flight.next() => self.finish(commit, stored),
            }
        }
    }

    /// Sends the HWM update of a commit (nothing to send when the HWM
    /// already covers it, or when its epoch already failed).
    fn store_hwm(&self, epoch: u64, end: u64) -> impl Future<Output = Stored> + use<> {
        let skip = *self.hwm.borrow() >= end || self.failed_epoch.is_some_and(|f| epoch <= f);
        let (store, topic, partition) = (
            self.ctx.store.clone(),
            Arc::clone(&self.topic),
            self.partition,
        );
        let metrics = Arc::clone(&self.ctx.metrics);
        async move {
            if skip {
                return Ok(None);
            }
            let started = std::time::Instant::now();
            let stored = store.advance_hwm(&topic, partition, epoch, end).await;
            metrics
                .hwm_commit_seconds
                .observe(started.elapsed().as_secs_f64());
            Ok(Some(stored?))
        }
    }

    /// Publishes a stored HWM and answers the commit's requests, in
    /// submission order (the in-flight queue is ordered).
    fn finish(&mut self, commit: Commit, stored: Stored) {
        let Commit {
            epoch,
            end,
            rounds,
            barriers,
        } = commit;
        let outcome = match stored {
            _ if self.failed_epoch.is_some_and(|f| epoch <= f) => Err(WriteError::Fenced { epoch }),
            Ok(stored) => {
                if let Some(stored) = stored {
                    raise_hwm(&self.hwm, stored.min(end));
                }
                self.gate_open(epoch)
            }
            Err(e) => Err(self.step_down(epoch, e)),
        };
        for round in rounds {
            match &outcome {
                Ok(()) => {
                    for (reply, written) in round.answers {
                        let _ = reply.send(Ok(written));
                    }
                }
                Err(e) => answer_all(round.answers, e),
            }
        }
        for done in barriers {
            let _ = done.send(());
        }
    }

    fn gate_open(&self, epoch: u64) -> Result<(), WriteError> {
        if self.ctx.gate.epoch() == Some(epoch) {
            Ok(())
        } else {
            Err(WriteError::Fenced { epoch })
        }
    }

    /// After a failed commit the lease driver steps down; the writer then
    /// sees a closed gate (or a new epoch) on its next round.
    fn step_down(&mut self, epoch: u64, error: WriteError) -> WriteError {
        let name = format!("{}/{}", self.topic, self.partition);
        self.ctx.reject_epoch(&name, epoch, &error);
        self.failed_epoch = Some(epoch);
        error
    }
}

pub(super) fn answer_all(answers: Vec<Answer>, error: &WriteError) {
    for (reply, _) in answers {
        let _ = reply.send(Err(error.clone()));
    }
}
