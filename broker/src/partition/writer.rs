//! The writer task: the one owner of a partition's log, producer table and
//! replica set, and its command loop. The leading and following halves are
//! in `lead` and `follow`, retention in `retention`.

use std::{sync::Arc, time::Duration};

use partition_log::{BatchHeader, FsyncPolicy, PartitionLog};
use tokio::sync::{mpsc, watch};
use yak_protocol::TopicConfig;

use crate::producers::ProducerTable;

use super::{
    MAX_ROUND_BYTES, RETENTION_EVERY, ReplicaStatus, WriteError, WriterContext, Written,
    commit::Committer, handle::Command, handle::Reply, raise_hwm, replicas::ReplicaSet,
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
                        if let Err(e) = self.log.sync_if_due() {
                            tracing::error!(topic = %self.topic, partition = self.id, "fsync failed: {e}");
                        }
                        continue;
                    }
                    _ = retention_timer.tick() => {
                        self.enforce_retention();
                        continue;
                    }
                },
            };
            match command {
                Command::Produce { batches, reply } => {
                    let mut round = vec![Pending { batches, reply }];
                    let mut bytes: usize = round[0].batches.iter().map(Vec::len).sum();
                    while bytes < MAX_ROUND_BYTES {
                        match self.rx.try_recv() {
                            Ok(Command::Produce { batches, reply }) => {
                                bytes += batches.iter().map(Vec::len).sum::<usize>();
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
                        self.committer.drain().await;
                        self.mode = Mode::Idle;
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
        self.committer.drain().await;
        if let Err(e) = self.log.sync() {
            tracing::error!(topic = %self.topic, partition = self.id, "final fsync failed: {e}");
        }
    }

    pub(super) fn name(&self) -> String {
        format!("{}/{}", self.topic, self.id)
    }

    /// Runs a write on the log. Only with `--fsync always` does a write
    /// wait for the disk; then the runtime is told (`block_in_place`).
    /// Otherwise it is a copy into the page cache, far cheaper than the
    /// thread hand-over `block_in_place` costs on every round.
    pub(super) fn write<T>(&mut self, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        if self.log.config().fsync == FsyncPolicy::Always {
            tokio::task::block_in_place(|| f(&mut self.log))
        } else {
            f(&mut self.log)
        }
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
