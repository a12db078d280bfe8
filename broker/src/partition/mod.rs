//! One topic-partition on this node: a [`Partition`] handle that many tasks
//! share, and the single writer task that owns the [`PartitionLog`].
//!
//! The writer is in one of three modes:
//! - `Leading { epoch }`: it groups concurrent produce requests into one
//!   round (group commit), stamps offsets and the epoch on their batches,
//!   appends them with one write, replicates the same bytes to every
//!   in-sync follower, and hands the round to the [`commit`] stage, which
//!   raises the HWM in Redis (fenced by epoch) and only then answers every
//!   request of the round. Rounds are pipelined: the next round replicates
//!   while the previous one's HWM is being stored.
//! - `Following { epoch }`: it has truncated its log for the leader of
//!   `epoch` (KIP-101) and appends what that leader sends, byte for byte.
//! - `Idle`: neither; it accepts nothing but mode changes.
//!
//! Invariants:
//! - Only the writer task touches the log's write side, the producer table
//!   and the replica set; readers use the shared [`LogReader`] and the HWM
//!   channel.
//! - A write is acknowledged only after every ISR member has it, the ISR has
//!   at least `min_insync_replicas` members, the HWM covering it is stored
//!   in Redis under this node's epoch, and the lease gate is still open.
//! - The published HWM never exceeds the log end and never goes down; a log
//!   is never truncated below it.
//! - Retention deletes only closed segments below the HWM: the leader by its
//!   topic's rule, a follower below its leader's log start. A follower's log
//!   is emptied (and restarted at the leader's start) only when all of it is
//!   below that start.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use partition_log::{
    BatchHeader, FsyncPolicy, LogConfig, LogError, LogReader, PartitionLog, Retention, batch,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

mod commit;
mod replicas;

use commit::Committer;
use replicas::ReplicaSet;

use yak_protocol::TopicConfig;

use crate::{
    activity::ActivityLog,
    lease::LeaseGate,
    peer::{EpochEnd, LeaderPosition, PeerClient, Peers, Refusal},
    producers::{Dedup, ProducerTable},
    role::Event,
    store::{ClusterStore, StoreError},
};

/// A topic's retention rule as the log applies it.
pub fn retention(config: &TopicConfig) -> Retention {
    Retention {
        max_bytes: config.retention_bytes,
        max_age: config.retention_ms.map(Duration::from_millis),
    }
}

/// How often a leader applies its topics' retention rules.
const RETENTION_EVERY: Duration = Duration::from_secs(1);
/// Largest group-commit round, in bytes of batches.
const MAX_ROUND_BYTES: usize = 8 * 1024 * 1024;
/// How far back (in records) the producer table is rebuilt from the log.
const DEDUP_REBUILD_RECORDS: u64 = 256 * 1024;
const COMMAND_QUEUE: usize = 4096;

/// Why a write was not acknowledged. [`WriteError::is_definite`] tells
/// whether the records are known not to be stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("this node is not the leader")]
    NotLeader,
    #[error("sequence numbers overlap a different earlier request from this producer")]
    SequenceConflict,
    #[error("only {isr} in-sync replicas, fewer than the {min} required")]
    NotEnoughReplicas {
        isr: usize,
        min: u32,
        appended: bool,
    },
    #[error("the leader's epoch {epoch} was superseded; the write was not acknowledged")]
    Fenced { epoch: u64 },
    #[error("cannot commit: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("log ends at {end} but the committed high-water mark is {hwm}; refusing to lead")]
    LogBehindHwm { end: u64, hwm: u64 },
    #[error("the partition is shutting down")]
    Closed,
    /// The partition stopped after it took the write: it may be stored.
    #[error("the partition stopped while handling the write")]
    Interrupted,
    /// `.0` happened before anything of the write was appended.
    #[error("{0}")]
    BeforeAppend(Box<WriteError>),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Fenced { epoch } => WriteError::Fenced { epoch },
            other => WriteError::Unavailable(other.to_string()),
        }
    }
}

impl From<LogError> for WriteError {
    fn from(e: LogError) -> Self {
        WriteError::Storage(e.to_string())
    }
}

impl WriteError {
    /// True if the records of the failed request are certainly not stored
    /// (and will never become visible); false if the outcome is unknown.
    pub fn is_definite(&self) -> bool {
        match self {
            WriteError::NotLeader
            | WriteError::SequenceConflict
            | WriteError::Closed
            | WriteError::BeforeAppend(_) => true,
            WriteError::NotEnoughReplicas { appended, .. } => !appended,
            _ => false,
        }
    }

    /// Marks an error raised before the write was appended as definite.
    pub fn before_append(self) -> Self {
        if self.is_definite() {
            self
        } else {
            WriteError::BeforeAppend(Box::new(self))
        }
    }
}

/// Why a follower-side append was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("the partition is shutting down")]
    Closed,
}

/// Offsets of one batch of a produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub base_offset: u64,
    pub count: u32,
    /// The epoch of the leader that acknowledges it (for a duplicate: the
    /// current one, not the one that first stored it).
    pub epoch: u64,
}

/// The leader's answer to a follower's fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchVerdict {
    /// The follower is in the ISR; data reaches it by push.
    InSync,
    /// Read from the offset up to `end` (the leader's log end).
    Behind {
        end: u64,
    },
    Refused(Refusal),
}

/// Replication state of a partition, as its leader sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaStatus {
    pub isr: Vec<String>,
    pub followers: Vec<FollowerStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FollowerStatus {
    pub id: String,
    pub offset: u64,
    pub lag: u64,
    pub in_sync: bool,
}

type Reply<T> = oneshot::Sender<T>;

enum Command {
    Produce {
        batches: Vec<Vec<u8>>,
        reply: Reply<Result<Vec<Written>, WriteError>>,
    },
    Lead {
        epoch: u64,
        hwm: u64,
        reply: Reply<Result<u64, WriteError>>,
    },
    /// Lead at the gate's epoch now if not yet (a partition just created).
    Prepare {
        reply: Reply<Result<(), WriteError>>,
    },
    StopLeading,
    FetchCheck {
        epoch: u64,
        replica: String,
        offset: u64,
        reply: Reply<FetchVerdict>,
    },
    /// Commit what the log holds beyond the HWM, now that the gate is open.
    CommitTail,
    Follow {
        epoch: u64,
        leader_end: EpochEnd,
        reply: Reply<Result<u64, ReplicaError>>,
    },
    Replicate {
        epoch: u64,
        prev: u64,
        bytes: Bytes,
        leader: LeaderPosition,
        reply: Reply<Result<u64, ReplicaError>>,
    },
    /// Start the (following) log again at the leader's log start.
    ResetTo {
        offset: u64,
        reply: Reply<Result<(), ReplicaError>>,
    },
}

/// What a partition's writer needs from its node.
#[derive(Debug, Clone)]
pub struct WriterContext {
    /// The node's multi-threaded runtime. Writers run there even when a
    /// partition is opened from an HTTP worker's single-threaded runtime,
    /// because they block on file I/O with `block_in_place`.
    pub runtime: tokio::runtime::Handle,
    pub node_id: String,
    pub store: ClusterStore,
    pub gate: Arc<LeaseGate>,
    pub events: mpsc::Sender<Event>,
    pub activity: ActivityLog,
    pub peers: Peers,
    pub client: PeerClient,
    pub min_insync_replicas: u32,
    pub replica_lag_time: Duration,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A shared handle on one partition.
#[derive(Debug, Clone)]
pub struct Partition {
    pub topic: Arc<str>,
    pub id: u32,
    reader: LogReader,
    hwm: watch::Sender<u64>,
    status: watch::Receiver<ReplicaStatus>,
    commands: mpsc::Sender<Command>,
}

impl Partition {
    /// Opens the partition's log in `dir` and starts its writer task.
    pub fn open(
        topic: &str,
        id: u32,
        dir: &std::path::Path,
        config: LogConfig,
        known_hwm: u64,
        topic_config: watch::Receiver<TopicConfig>,
        ctx: WriterContext,
    ) -> Result<Self, LogError> {
        let (log, report) = PartitionLog::open(dir, config)?;
        if report.truncated_bytes > 0 || report.indexes_rebuilt > 0 {
            ctx.activity.push(
                "recovery",
                format!(
                    "{topic}/{id}: cut {} torn bytes, rebuilt {} indexes",
                    report.truncated_bytes, report.indexes_rebuilt
                ),
            );
        }
        let reader = log.reader();
        let hwm = watch::Sender::new(known_hwm.min(log.end_offset()));
        let (status_tx, status) = watch::channel(ReplicaStatus::default());
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let topic: Arc<str> = Arc::from(topic);
        let committer = Committer::spawn(ctx.clone(), Arc::clone(&topic), id, hwm.clone());
        let writer = Writer {
            topic: Arc::clone(&topic),
            id,
            log,
            committer,
            producers: ProducerTable::default(),
            mode: Mode::Idle,
            hwm: hwm.clone(),
            status: status_tx,
            topic_config,
            ctx,
            rx,
        };
        writer.ctx.runtime.clone().spawn(writer.run());
        Ok(Self {
            topic,
            id,
            reader,
            hwm,
            status,
            commands,
        })
    }

    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    /// The highest committed offset (exclusive) this node knows.
    pub fn hwm(&self) -> u64 {
        *self.hwm.borrow()
    }

    /// A receiver that wakes when the HWM moves (for long polls).
    pub fn watch_hwm(&self) -> watch::Receiver<u64> {
        self.hwm.subscribe()
    }

    /// ISR and follower progress (meaningful on the leader).
    pub fn replica_status(&self) -> ReplicaStatus {
        self.status.borrow().clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(make(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Appends `batches` (built with [`partition_log::BatchBuilder`], not yet
    /// stamped) and returns their offsets once committed.
    pub async fn produce(&self, batches: Vec<Vec<u8>>) -> Result<Vec<Written>, WriteError> {
        let (reply, rx) = oneshot::channel();
        let command = Command::Produce { batches, reply };
        if self.commands.send(command).await.is_err() {
            return Err(WriteError::Closed);
        }
        // Taken by the writer, which may have appended it before stopping.
        rx.await.unwrap_or(Err(WriteError::Interrupted))
    }

    /// Prepares the partition to lead at `epoch`, given the highest HWM known
    /// for it. Returns the HWM it leads with.
    pub async fn lead(&self, epoch: u64, hwm: u64) -> Result<u64, WriteError> {
        self.ask(|reply| Command::Lead { epoch, hwm, reply })
            .await
            .unwrap_or(Err(WriteError::Closed))
    }

    /// Leads at the current epoch now, if this node leads and the
    /// partition does not yet: a new partition's ISR is then stored (and
    /// shown) from its creation rather than from its first write.
    pub async fn prepare(&self) -> Result<(), WriteError> {
        self.ask(|reply| Command::Prepare { reply })
            .await
            .unwrap_or(Err(WriteError::Closed))
    }

    pub async fn stop_leading(&self) {
        let _ = self.commands.send(Command::StopLeading).await;
    }

    /// Leader side of a follower's fetch: is `replica` (at `offset`) in sync?
    /// A follower that has caught up is added to the ISR here.
    pub async fn fetch_check(&self, epoch: u64, replica: String, offset: u64) -> FetchVerdict {
        self.ask(|reply| Command::FetchCheck {
            epoch,
            replica,
            offset,
            reply,
        })
        .await
        .unwrap_or(FetchVerdict::Refused(Refusal::NotLeader))
    }

    /// KIP-101 "end offset for epoch" of this log. Answered from the shared
    /// reader, never queued behind a round: a follower re-syncing with us
    /// may be what that round is waiting for.
    pub fn epoch_end(&self, epoch: u32) -> EpochEnd {
        let found = self.reader.end_offset_for_epoch(epoch);
        EpochEnd {
            epoch: found.map(|(e, _)| e),
            end_offset: found.map(|(_, end)| end),
        }
    }

    pub fn latest_epoch(&self) -> Option<u32> {
        self.reader.latest_epoch()
    }

    /// After the gate opened: commit the tail beyond the HWM, if any.
    pub async fn commit_tail(&self) {
        let _ = self.commands.send(Command::CommitTail).await;
    }

    /// Follows the leader of `epoch`: truncates the divergent tail given the
    /// leader's answer for this log's latest epoch. Returns the new log end.
    pub async fn follow(&self, epoch: u64, leader_end: EpochEnd) -> Result<u64, ReplicaError> {
        self.ask(|reply| Command::Follow {
            epoch,
            leader_end,
            reply,
        })
        .await
        .unwrap_or(Err(ReplicaError::Closed))
    }

    /// Appends bytes sent by the leader of `epoch`, starting at `prev`, and
    /// deletes the closed segments below the leader's log start.
    pub async fn replicate(
        &self,
        epoch: u64,
        prev: u64,
        bytes: Bytes,
        leader: LeaderPosition,
    ) -> Result<u64, ReplicaError> {
        self.ask(|reply| Command::Replicate {
            epoch,
            prev,
            bytes,
            leader,
            reply,
        })
        .await
        .unwrap_or(Err(ReplicaError::Closed))
    }

    /// Restarts this follower's log at `offset`, the leader's log start,
    /// when everything it holds is below it (deleted by retention there).
    pub async fn reset_to(&self, offset: u64) -> Result<(), ReplicaError> {
        self.ask(|reply| Command::ResetTo { offset, reply })
            .await
            .unwrap_or(Err(ReplicaError::Closed))
    }
}

enum Mode {
    Idle,
    Leading { epoch: u64, replicas: ReplicaSet },
    Following { epoch: u64 },
}

struct Writer {
    topic: Arc<str>,
    id: u32,
    log: PartitionLog,
    committer: Committer,
    producers: ProducerTable,
    mode: Mode,
    hwm: watch::Sender<u64>,
    status: watch::Sender<ReplicaStatus>,
    /// The topic's stored config: its retention rule.
    topic_config: watch::Receiver<TopicConfig>,
    ctx: WriterContext,
    rx: mpsc::Receiver<Command>,
}

struct Pending {
    batches: Vec<Vec<u8>>,
    reply: Reply<Result<Vec<Written>, WriteError>>,
}

impl Writer {
    async fn run(mut self) {
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

    fn name(&self) -> String {
        format!("{}/{}", self.topic, self.id)
    }

    /// Runs a write on the log. Only with `--fsync always` does a write
    /// wait for the disk; then the runtime is told (`block_in_place`).
    /// Otherwise it is a copy into the page cache, far cheaper than the
    /// thread hand-over `block_in_place` costs on every round.
    fn write<T>(&mut self, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        if self.log.config().fsync == FsyncPolicy::Always {
            tokio::task::block_in_place(|| f(&mut self.log))
        } else {
            f(&mut self.log)
        }
    }

    fn set_hwm(&self, hwm: u64) {
        let hwm = hwm.min(self.log.end_offset());
        self.hwm.send_if_modified(|current| {
            let raised = hwm > *current;
            if raised {
                *current = hwm;
            }
            raised
        });
    }

    fn publish_status(&self) {
        let status = match &self.mode {
            Mode::Leading { replicas, .. } => replicas.status(self.log.end_offset()),
            _ => ReplicaStatus::default(),
        };
        self.status.send_replace(status);
    }

    // ---- leading ----------------------------------------------------------

    async fn lead(&mut self, epoch: u64, known_hwm: u64) -> Result<u64, WriteError> {
        self.committer.drain().await;
        self.mode = Mode::Idle;
        let hwm = known_hwm.max(*self.hwm.borrow());
        let end = self.log.end_offset();
        if end < hwm {
            return Err(WriteError::LogBehindHwm { end, hwm });
        }
        self.rebuild_producers()?;
        let me = &self.ctx.node_id;
        let stored = self.ctx.store.isr(&self.topic, self.id).await?;
        let mut isr = match stored {
            Some(isr) => isr,
            // A partition that never had a write starts with every live
            // replica in sync, as Kafka creates partitions: an empty log is
            // trivially caught up, and synchronous replication must hold
            // from the first write, not from when followers happen to open
            // the topic. One that is slow to open it is dropped by the usual
            // lag rule, in Redis, before anything is acknowledged.
            None if end == 0 => self.ctx.peers.ids(),
            None => Vec::new(),
        };
        isr.retain(|id| id != me);
        isr.insert(0, me.clone());
        self.ctx
            .store
            .set_isr(&self.topic, self.id, epoch, &isr)
            .await?;
        // A Redis that lost its data gets the HWM back before anything else.
        self.ctx
            .store
            .advance_hwm(&self.topic, self.id, epoch, hwm)
            .await?;
        self.set_hwm(hwm);
        self.mode = Mode::Leading {
            epoch,
            replicas: ReplicaSet::new(me.clone(), isr, end, self.ctx.replica_lag_time),
        };
        self.publish_status();
        Ok(hwm)
    }

    fn rebuild_producers(&mut self) -> Result<(), WriteError> {
        self.producers.clear();
        let reader = self.log.reader();
        let end = reader.end_offset();
        let mut offset = reader
            .start_offset()
            .max(end.saturating_sub(DEDUP_REBUILD_RECORDS));
        while offset < end {
            let bytes = reader.read(offset, end, 4 * 1024 * 1024)?;
            if bytes.is_empty() {
                break;
            }
            for batch in batch::batches(&bytes) {
                let header = batch
                    .map_err(|e| WriteError::Storage(e.to_string()))?
                    .header;
                if let Some((producer, sequence)) = idempotence(&header) {
                    self.producers.record(
                        producer,
                        sequence,
                        header.record_count,
                        header.base_offset,
                    );
                }
                offset = header.next_offset();
            }
        }
        Ok(())
    }

    fn leading_epoch(&self) -> Option<u64> {
        match self.mode {
            Mode::Leading { epoch, .. } => Some(epoch),
            _ => None,
        }
    }

    /// Leads at `epoch` unless it already does: a partition opened after
    /// the election (a new topic) prepares when it is created, or at the
    /// latest on its first write.
    async fn ensure_leading(&mut self, epoch: u64) -> Result<(), WriteError> {
        if self.leading_epoch() != Some(epoch) {
            let hwm = self.ctx.store.hwm(&self.topic, self.id).await?;
            self.lead(epoch, hwm).await?;
        }
        Ok(())
    }

    async fn commit_round(&mut self, round: Vec<Pending>) {
        let Some(epoch) = self.ctx.gate.epoch() else {
            return reply_all(round, WriteError::NotLeader);
        };
        if let Err(e) = self.ensure_leading(epoch).await {
            return reply_all(round, e.before_append());
        }
        if let Mode::Leading { replicas, .. } = &self.mode {
            let (isr, min) = (replicas.isr().len(), self.ctx.min_insync_replicas);
            if isr < min as usize {
                let appended = false;
                return reply_all(round, WriteError::NotEnoughReplicas { isr, min, appended });
            }
        }
        let mut buf = Vec::with_capacity(round.iter().flat_map(|p| &p.batches).map(Vec::len).sum());
        let start = self.log.end_offset();
        let mut next = start;
        let mut answers = Vec::with_capacity(round.len());
        for mut pending in round {
            match self.place(&mut pending.batches, epoch, &mut next, &mut buf) {
                Ok(written) => answers.push((pending.reply, written)),
                Err(e) => {
                    let _ = pending.reply.send(Err(e.before_append()));
                }
            }
        }
        match self.append_and_replicate(buf, start, epoch).await {
            Ok(end) => {
                let round = commit::Round {
                    epoch,
                    end,
                    answers,
                };
                self.committer.submit(round).await;
            }
            Err(e) => {
                for (reply, _) in answers {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Stamps the new batches of one request into `buf` and records them in
    /// the producer table; duplicates get their original offsets.
    fn place(
        &mut self,
        batches: &mut [Vec<u8>],
        epoch: u64,
        next: &mut u64,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<Written>, WriteError> {
        let headers: Vec<BatchHeader> = batches
            .iter()
            .map(|b| BatchHeader::parse(b))
            .collect::<Result<_, _>>()
            .map_err(|e| WriteError::Storage(e.to_string()))?;
        let mut verdicts = Vec::with_capacity(headers.len());
        for h in &headers {
            let verdict = match idempotence(h) {
                Some((producer, sequence)) => {
                    self.producers.check(producer, sequence, h.record_count)
                }
                None => Dedup::New,
            };
            if verdict == Dedup::Conflict {
                return Err(WriteError::SequenceConflict);
            }
            verdicts.push(verdict);
        }
        let mut written = Vec::with_capacity(headers.len());
        for ((bytes, h), verdict) in batches.iter_mut().zip(&headers).zip(verdicts) {
            let base_offset = match verdict {
                Dedup::Duplicate { base_offset } => base_offset,
                _ => {
                    let base = *next;
                    batch::stamp(bytes, base, epoch as u32);
                    buf.extend_from_slice(bytes);
                    if let Some((producer, sequence)) = idempotence(h) {
                        self.producers
                            .record(producer, sequence, h.record_count, base);
                    }
                    *next += u64::from(h.record_count);
                    base
                }
            };
            written.push(Written {
                base_offset,
                count: h.record_count,
                epoch,
            });
        }
        Ok(written)
    }

    /// Appends the round locally and replicates it to the ISR. Returns the
    /// log end the commit stage must raise the HWM to.
    async fn append_and_replicate(
        &mut self,
        buf: Vec<u8>,
        start: u64,
        epoch: u64,
    ) -> Result<u64, WriteError> {
        if !buf.is_empty() {
            let appended = self.write(|log| log.append(&buf));
            if let Err(e) = appended {
                // The table may name batches that did not make it to disk.
                let _ = self.rebuild_producers();
                return Err(e.into());
            }
        }
        let end = self.log.end_offset();
        if *self.hwm.borrow() < end {
            self.replicate_round(Bytes::from(buf), start, end, epoch)
                .await?;
        }
        Ok(end)
    }

    /// Makes every ISR follower hold `[.., end)`: sends the round's bytes,
    /// or what a follower lacks, and drops from the ISR (in Redis, before
    /// anything is acknowledged) the followers that cannot keep up.
    async fn replicate_round(
        &mut self,
        round: Bytes,
        start: u64,
        end: u64,
        epoch: u64,
    ) -> Result<(), WriteError> {
        let hwm = *self.hwm.borrow();
        let Mode::Leading { replicas, .. } = &mut self.mode else {
            // Appended already: the outcome is unknown.
            return Err(WriteError::Fenced { epoch });
        };
        let started = std::time::Instant::now();
        let has_followers = replicas.isr().len() > 1;
        let outcome = replicas::push_round(
            &self.ctx,
            replicas,
            &self.log.reader(),
            replicas::Round {
                topic: &self.topic,
                partition: self.id,
                epoch,
                start,
                end,
                hwm,
                bytes: round,
            },
        )
        .await;
        if has_followers {
            self.ctx.metrics.observe_replication(started.elapsed());
        }
        if outcome.deposed {
            return Err(self.step_down(epoch, WriteError::Fenced { epoch }));
        }
        if !outcome.dropped.is_empty() {
            let Mode::Leading { replicas, .. } = &mut self.mode else {
                return Err(WriteError::Fenced { epoch });
            };
            let shrunk = replicas.without(&outcome.dropped);
            if let Err(e) = self
                .ctx
                .store
                .set_isr(&self.topic, self.id, epoch, &shrunk)
                .await
            {
                return Err(self.step_down(epoch, e.into()));
            }
            replicas.set_isr(shrunk.clone());
            self.ctx.activity.push(
                "isr_shrink",
                format!(
                    "{}: dropped {} from the ISR (now {})",
                    self.name(),
                    outcome.dropped.join(", "),
                    shrunk.join(", ")
                ),
            );
        }
        self.publish_status();
        if let Mode::Leading { replicas, .. } = &self.mode {
            let (isr, min) = (replicas.isr().len(), self.ctx.min_insync_replicas);
            if isr < min as usize {
                let appended = true;
                return Err(WriteError::NotEnoughReplicas { isr, min, appended });
            }
        }
        Ok(())
    }

    /// Gives up leading after a failed commit; the lease driver steps down.
    fn step_down(&mut self, epoch: u64, error: WriteError) -> WriteError {
        tracing::error!(partition = %self.name(), epoch, "commit failed, stepping down: {error}");
        self.ctx.activity.push(
            "error",
            format!("{}: commit failed at epoch {epoch}: {error}", self.name()),
        );
        self.mode = Mode::Idle;
        let _ = self.ctx.events.try_send(Event::EpochRejected { epoch });
        error
    }

    async fn fetch_check(&mut self, epoch: u64, replica: String, offset: u64) -> FetchVerdict {
        let end = self.log.end_offset();
        let Mode::Leading {
            epoch: leading,
            replicas,
        } = &mut self.mode
        else {
            return FetchVerdict::Refused(Refusal::NotLeader);
        };
        if *leading != epoch || self.ctx.gate.epoch() != Some(epoch) {
            return FetchVerdict::Refused(Refusal::NotLeader);
        }
        if offset > end {
            return FetchVerdict::Refused(Refusal::NonContiguous { end });
        }
        // An in-sync follower's heartbeat fetch at our log end keeps it
        // caught up on a partition with no writes.
        if offset == end {
            replicas.caught_up(&replica, offset);
        } else {
            replicas.progress(&replica, offset);
        }
        // An in-sync follower gets its data by push. One that is behind the
        // HWM lost its tail in a crash while still listed in the ISR: no
        // round may be coming to repair it, so it fetches like any other.
        if replicas.isr().contains(&replica) && offset >= *self.hwm.borrow() {
            return FetchVerdict::InSync;
        }
        if offset < end {
            self.publish_status();
            return FetchVerdict::Behind { end };
        }
        // Caught up. Admit it only once we can reach it (the registry is
        // refreshed every half second), or the next round would drop it.
        if self.ctx.peers.url(&replica).is_none() {
            return FetchVerdict::Behind { end };
        }
        // Rounds are serialized by this task, so from here on every round
        // reaches it by push.
        let grown = replicas.with(&replica);
        match self
            .ctx
            .store
            .set_isr(&self.topic, self.id, epoch, &grown)
            .await
        {
            Ok(()) => {
                replicas.set_isr(grown.clone());
                let name = format!("{}/{}", self.topic, self.id);
                self.ctx.activity.push(
                    "isr_expand",
                    format!(
                        "{name}: {replica} caught up at {end} and joined the ISR ({})",
                        grown.join(", ")
                    ),
                );
                self.publish_status();
                FetchVerdict::InSync
            }
            Err(e) => {
                tracing::warn!(partition = %self.name(), "cannot grow the ISR: {e}");
                FetchVerdict::Behind { end }
            }
        }
    }

    // ---- following --------------------------------------------------------

    /// KIP-101/279 truncation: cut what this log has beyond the point where
    /// it agrees with the leader of `epoch`, never below the HWM.
    fn follow(&mut self, epoch: u64, leader: EpochEnd) -> Result<u64, ReplicaError> {
        let end = self.log.end_offset();
        let hwm = *self.hwm.borrow();
        let target = match (self.log.latest_epoch(), leader.epoch, leader.end_offset) {
            (None, ..) => end,
            (Some(_), Some(leader_epoch), Some(leader_end)) => {
                // Our own end for the leader's epoch: we may have written
                // more of it, or moved on to a later epoch earlier.
                let ours = self
                    .log
                    .end_offset_for_epoch(leader_epoch)
                    .map_or(self.log.start_offset(), |(_, e)| e);
                leader_end.min(ours).min(end)
            }
            (Some(_), ..) => self.log.start_offset(),
        };
        let target = if target < hwm {
            tracing::error!(
                partition = %self.name(),
                target,
                hwm,
                "the leader's log diverges below our HWM; keeping committed data"
            );
            hwm
        } else {
            target
        };
        let target = self.batch_boundary_at_or_below(target)?.max(hwm);
        if target < end {
            self.write(|log| log.truncate_to(target))
                .map_err(|e| ReplicaError::Storage(e.to_string()))?;
            self.ctx.activity.push(
                "truncation",
                format!(
                    "{}: truncated divergent tail {target}..{end} for the leader of epoch {epoch}",
                    self.name()
                ),
            );
        }
        self.mode = Mode::Following { epoch };
        self.publish_status();
        Ok(self.log.end_offset())
    }

    fn batch_boundary_at_or_below(&self, offset: u64) -> Result<u64, ReplicaError> {
        if offset >= self.log.end_offset() || offset <= self.log.start_offset() {
            return Ok(offset);
        }
        let bytes = self
            .log
            .read(offset, u64::MAX, 1)
            .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        Ok(batch::batches(&bytes)
            .next()
            .and_then(Result::ok)
            .map_or(offset, |b| b.header.base_offset.min(offset)))
    }

    fn replicate(
        &mut self,
        epoch: u64,
        prev: u64,
        bytes: &[u8],
        leader_hwm: u64,
    ) -> Result<u64, ReplicaError> {
        let end = self.log.end_offset();
        match self.mode {
            Mode::Following { epoch: synced } if synced == epoch => {}
            Mode::Following { epoch: synced } if synced > epoch => {
                return Err(Refusal::StaleEpoch { current: synced }.into());
            }
            Mode::Leading { epoch: leading, .. } if leading > epoch => {
                return Err(Refusal::StaleEpoch { current: leading }.into());
            }
            _ => return Err(Refusal::NeedsTruncation { end }.into()),
        }
        if prev > end {
            return Err(Refusal::NonContiguous { end }.into());
        }
        // Skip what we already hold (a push and a fetch may overlap); the
        // rest must start exactly at our end.
        let mut rest = bytes;
        while let Ok((b, tail)) = batch::Batch::split_first(rest) {
            if b.header.next_offset() > end {
                break;
            }
            rest = tail;
        }
        if !rest.is_empty() {
            let first =
                BatchHeader::parse(rest).map_err(|e| ReplicaError::Storage(e.to_string()))?;
            if first.base_offset != end {
                return Err(Refusal::NonContiguous { end }.into());
            }
            self.write(|log| log.append(rest))
                .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        }
        self.set_hwm(leader_hwm);
        Ok(self.log.end_offset())
    }
}

// ---- retention ------------------------------------------------------------

impl Writer {
    /// On the leader: deletes closed segments below the HWM that the topic's
    /// rule lets go. Followers delete what their leader deleted instead
    /// ([`Writer::follow_log_start`]), so that every replica's log start
    /// follows one rule applied in one place.
    fn enforce_retention(&mut self) {
        if self.leading_epoch().is_none() {
            return;
        }
        let rule = retention(&self.topic_config.borrow());
        if rule == partition_log::Retention::default() {
            return;
        }
        self.log.set_retention(rule);
        let hwm = *self.hwm.borrow();
        match self.write(|log| log.apply_retention(hwm, std::time::SystemTime::now())) {
            Ok(deleted) if !deleted.is_empty() => self.report_deleted(&deleted),
            Ok(_) => {}
            Err(e) => tracing::error!(partition = %self.name(), "retention failed: {e}"),
        }
    }

    /// On a follower: deletes the closed segments wholly below the leader's
    /// log start, never at or above this node's own HWM.
    fn follow_log_start(&mut self, leader_start: u64) {
        let below = leader_start.min(*self.hwm.borrow());
        if below <= self.log.start_offset() {
            return;
        }
        match self.write(|log| log.delete_below(below)) {
            Ok(deleted) if !deleted.is_empty() => self.report_deleted(&deleted),
            Ok(_) => {}
            Err(e) => tracing::error!(partition = %self.name(), "cannot delete below {below}: {e}"),
        }
    }

    fn report_deleted(&self, bases: &[u64]) {
        self.ctx.activity.push(
            "retention",
            format!(
                "{}: deleted {} segment(s); the log now starts at {}",
                self.name(),
                bases.len(),
                self.log.start_offset()
            ),
        );
    }

    fn reset_to(&mut self, offset: u64) -> Result<(), ReplicaError> {
        if !matches!(self.mode, Mode::Following { .. }) {
            return Err(ReplicaError::Refused(Refusal::NotLeader));
        }
        let end = self.log.end_offset();
        self.write(|log| log.reset_to(offset))
            .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        self.ctx.activity.push(
            "truncation",
            format!(
                "{}: the leader deleted everything up to {offset} (retention); dropped {}..{end} and continue at {offset}",
                self.name(),
                self.log.start_offset().min(end)
            ),
        );
        Ok(())
    }
}

fn reply_all(round: Vec<Pending>, error: WriteError) {
    for p in round {
        let _ = p.reply.send(Err(error.clone()));
    }
}

fn idempotence(h: &BatchHeader) -> Option<(u64, u64)> {
    (h.producer_id >= 0 && h.base_sequence >= 0)
        .then_some((h.producer_id as u64, h.base_sequence as u64))
}
