//! The commit stage of a leading partition: it stores the HWM in Redis for
//! rounds the writer has appended and replicated, then answers their
//! requests.
//!
//! It runs as its own task so that rounds are pipelined: while the HWM of
//! round n is on its way to Redis (one fsync of Redis's append-only file
//! with `appendfsync always`), the writer already appends and replicates
//! round n+1. Rounds that wait together are committed by one HWM update.
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

use tokio::sync::{mpsc, oneshot, watch};

use super::{Reply, WriteError, WriterContext, Written};
use crate::role::Event;

/// Rounds replicated but not yet committed before the writer waits: bounds
/// the uncommitted tail when Redis is slow.
const PIPELINE_DEPTH: usize = 64;

type Answer = (Reply<Result<Vec<Written>, WriteError>>, Vec<Written>);

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
            // Appended and replicated, but never committed here: a later
            // leader may still commit it.
            answer_all(round.answers, &WriteError::Interrupted);
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

struct Task {
    ctx: WriterContext,
    topic: Arc<str>,
    partition: u32,
    hwm: watch::Sender<u64>,
    failed_epoch: Option<u64>,
}

impl Task {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut waiting: Vec<Round> = Vec::new();
        let mut barriers = Vec::new();
        while let Some(job) = jobs.recv().await {
            // Everything queued meanwhile joins this commit.
            let mut next = Some(job);
            while let Some(job) = next.take().or_else(|| jobs.try_recv().ok()) {
                match job {
                    Job::Commit(round) => waiting.push(round),
                    Job::Barrier(done) => barriers.push(done),
                }
            }
            self.commit(std::mem::take(&mut waiting)).await;
            for done in barriers.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Commits `rounds` (in submission order), one HWM update per run of
    /// rounds with the same epoch.
    async fn commit(&mut self, mut rounds: Vec<Round>) {
        while !rounds.is_empty() {
            let epoch = rounds[0].epoch;
            let same = rounds.iter().take_while(|r| r.epoch == epoch).count();
            let rest = rounds.split_off(same);
            let end = rounds.iter().map(|r| r.end).max().unwrap_or(0);
            let outcome = self.store_hwm(epoch, end).await;
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
            rounds = rest;
        }
    }

    async fn store_hwm(&mut self, epoch: u64, end: u64) -> Result<(), WriteError> {
        if self.failed_epoch.is_some_and(|failed| epoch <= failed) {
            return Err(WriteError::Fenced { epoch });
        }
        if *self.hwm.borrow() >= end {
            return self.gate_open(epoch);
        }
        let stored = self
            .ctx
            .store
            .advance_hwm(&self.topic, self.partition, epoch, end)
            .await;
        match stored {
            Ok(stored) => {
                self.hwm.send_if_modified(|current| {
                    let raised = stored.min(end) > *current;
                    if raised {
                        *current = stored.min(end);
                    }
                    raised
                });
                self.gate_open(epoch)
            }
            Err(e) => Err(self.step_down(epoch, e.into())),
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
        tracing::error!(partition = %name, epoch, "commit failed, stepping down: {error}");
        self.ctx.activity.push(
            "error",
            format!("{name}: commit failed at epoch {epoch}: {error}"),
        );
        self.failed_epoch = Some(epoch);
        let _ = self.ctx.events.try_send(Event::EpochRejected { epoch });
        error
    }
}

fn answer_all(answers: Vec<Answer>, error: &WriteError) {
    for (reply, _) in answers {
        let _ = reply.send(Err(error.clone()));
    }
}
