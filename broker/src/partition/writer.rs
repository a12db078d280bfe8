//! The writer task: the one owner of a partition's log, producer table and
//! replica set, and its command loop. The leading and following halves are
//! in `lead` and `follow`, retention in `retention`.
//!
//! No fsync runs on an async worker: under `--fsync interval` the timer
//! hands the log's due sync job to a blocking thread (one at a time), and
//! under `always` the appends that sync run under `block_in_place`.

use std::{sync::Arc, time::Duration};

use futures_util::FutureExt;
use partition_log::{BatchHeader, FsyncPolicy, LogError, PartitionLog};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use yak_protocol::TopicConfig;

use crate::producers::ProducerTable;

use super::{
    RETENTION_EVERY, ReplicaStatus, WriteError, WriterContext, Written, commit::Committer,
    handle::Command, handle::Reply, lead::InFlight, raise_hwm, replicas::ReplicaSet,
};

pub(super) enum Mode {
    Idle,
    Leading { epoch: u64, replicas: ReplicaSet },
    Following { epoch: u64 },
}

pub(super) struct Writer {
    pub(super) topic: Arc<str>,
    pub(super) id: u32,
    pub(super) log: PartitionLog,
    pub(super) committer: Committer,
    pub(super) producers: ProducerTable,
    pub(super) mode: Mode,
    pub(super) hwm: watch::Sender<u64>,
    pub(super) status: watch::Sender<ReplicaStatus>,
    /// The topic's stored config: its retention rule.
    pub(super) topic_config: watch::Receiver<TopicConfig>,
    pub(super) ctx: WriterContext,
    pub(super) rx: mpsc::Receiver<Command>,
    /// The fsync running on a blocking thread (`interval` policy).
    pub(super) syncing: Option<JoinHandle<Result<(), LogError>>>,
    /// Rounds appended and sent to the ISR, waiting for its answers.
    pub(super) in_flight: InFlight,
}

pub(super) struct Pending {
    pub(super) batches: Vec<Vec<u8>>,
    pub(super) reply: Reply<Result<Vec<Written>, WriteError>>,
}

impl Writer {
    pub(super) async fn run(mut self) {
        let sync_every = match self.log.config().fsync {
            FsyncPolicy::Interval(every) => every,
            _ => Duration::from_secs(3600),
        };
        let mut sync_timer = tokio::time::interval(sync_every);
        sync_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retention_timer = tokio::time::interval(RETENTION_EVERY);
        retention_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deferred = None;
        loop {
            let command = match deferred.take() {
                Some(command) => command,
                None => tokio::select! {
                    command = self.rx.recv() => match command {
                        Some(command) => command,
                        None => break,
                    },
                    _ = sync_timer.tick() => {
                        self.sync_in_background();
                        continue;
                    }
                    _ = retention_timer.tick() => {
                        self.enforce_retention();
                        continue;
                    }
                    Some((round, outcome)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                        self.settle(round, outcome).await;
                        continue;
                    }
                },
            };
            match command {
                Command::Produce { batches, reply } => {
                    let mut round = vec![Pending { batches, reply }];
                    let mut bytes: usize = round[0].batches.iter().map(Vec::len).sum();
                    while bytes < self.ctx.max_round_bytes {
                        match self.rx.try_recv() {
                            Ok(Command::Produce { batches, reply }) => {
                                let size = batches.iter().map(Vec::len).sum::<usize>();
                                if bytes + size > self.ctx.max_round_bytes {
                                    deferred = Some(Command::Produce { batches, reply });
                                    break;
                                }
                                bytes += size;
                                round.push(Pending { batches, reply });
                            }
                            Ok(other) => {
                                deferred = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_round(round).await;
                }
                Command::Lead { epoch, hwm, reply } => {
                    let _ = reply.send(self.lead(epoch, hwm).await);
                }
                Command::Prepare { reply } => {
                    let prepared = match self.ctx.gate.epoch() {
                        Some(epoch) => self.ensure_leading(epoch).await,
                        None => Err(WriteError::NotLeader),
                    };
                    let _ = reply.send(prepared);
                }
                Command::CommitTail => {
                    // The tail beyond the HWM may hold writes whose outcome a
                    // client saw as unknown: commit it once the ISR has it.
                    if *self.hwm.borrow() < self.log.end_offset() {
                        self.commit_round(Vec::new()).await;
                    }
                }
                Command::StopLeading => {
                    if matches!(self.mode, Mode::Leading { .. }) {
                        self.stop_leading();
                        self.committer.drain().await;
                    }
                }
                Command::FetchCheck {
                    epoch,
                    replica,
                    offset,
                    reply,
                } => {
                    let _ = reply.send(self.fetch_check(epoch, replica, offset).await);
                }
                Command::Follow {
                    epoch,
                    leader_end,
                    reply,
                } => {
                    self.stop_leading();
                    self.committer.drain().await;
                    let _ = reply.send(self.follow(epoch, leader_end));
                }
                Command::Replicate {
                    epoch,
                    prev,
                    bytes,
                    leader,
                    reply,
                } => {
                    let result = self.replicate(epoch, prev, &bytes, leader.hwm);
                    if result.is_ok() {
                        self.follow_log_start(leader.log_start);
                    }
                    let _ = reply.send(result);
                }
                Command::ResetTo { offset, reply } => {
                    let _ = reply.send(self.reset_to(offset));
                }
            }
        }
        self.stop_leading();
        self.committer.drain().await;
        self.sync_all().await;
    }

    pub(super) fn name(&self) -> String {
        format!("{}/{}", self.topic, self.id)
    }

    /// Runs a write on the log. Only with `--fsync always` does a write
    /// wait for the disk; then the runtime is told (`block_in_place`).
    /// Otherwise it is a copy into the page cache, far cheaper than the
    /// thread hand-over `block_in_place` costs on every round: under
    /// `interval` the fsyncs (rolls included) are owed to the sync job.
    pub(super) fn write<T>(&mut self, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        let syncs = self.log.config().fsync == FsyncPolicy::Always;
        self.on_disk(syncs, f)
    }

    /// Runs a truncation or a reset, which syncs the directory under any
    /// policy but `never`, so that a cut tail cannot come back.
    pub(super) fn rewrite<T>(&mut self, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        let syncs = self.log.config().fsync != FsyncPolicy::Never;
        self.on_disk(syncs, f)
    }

    /// `f`, under `block_in_place` if it `syncs`.
    fn on_disk<T>(&mut self, syncs: bool, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        if syncs {
            tokio::task::block_in_place(|| f(&mut self.log))
        } else {
            f(&mut self.log)
        }
    }

    /// Starts the due fsync on a blocking thread, unless the last one is
    /// still running (then the next tick takes what is owed by then).
    fn sync_in_background(&mut self) {
        if self.syncing.as_ref().is_some_and(|job| !job.is_finished()) {
            return;
        }
        if let Some(finished) = self.syncing.take() {
            let result = finished.now_or_never().expect("a finished task is ready");
            self.sync_done(result);
        }
        if let Some(job) = self.log.sync_due() {
            self.syncing = Some(tokio::task::spawn_blocking(move || job.run()));
        }
    }

    /// Waits for the running fsync, then runs what is still owed.
    async fn sync_all(&mut self) {
        if let Some(running) = self.syncing.take() {
            let result = running.await;
            self.sync_done(result);
        }
        if let Some(job) = self.log.take_sync() {
            let result = tokio::task::spawn_blocking(move || job.run()).await;
            self.sync_done(result);
        }
    }

    fn sync_done(&mut self, result: Result<Result<(), LogError>, tokio::task::JoinError>) {
        let error = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(topic = %self.topic, partition = self.id, "fsync failed: {error}");
        self.log.sync_failed();
    }

    /// Raises the HWM toward `hwm`, never past the log end.
    pub(super) fn set_hwm(&self, hwm: u64) {
        raise_hwm(&self.hwm, hwm.min(self.log.end_offset()));
    }

    pub(super) fn publish_status(&self) {
        let status = match &self.mode {
            Mode::Leading { replicas, .. } => replicas.status(self.log.end_offset()),
            _ => ReplicaStatus::default(),
        };
        self.status.send_replace(status);
    }
}

pub(super) fn reply_all(round: Vec<Pending>, error: WriteError) {
    for p in round {
        let _ = p.reply.send(Err(error.clone()));
    }
}

pub(super) fn idempotence(h: &BatchHeader) -> Option<(u64, u64)> {
    (h.producer_id >= 0 && h.base_sequence >= 0)
        .then_some((h.producer_id as u64, h.base_sequence as u64))
}
