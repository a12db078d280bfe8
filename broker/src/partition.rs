//! One topic-partition on this node: a [`Partition`] handle that many tasks
//! share, and the single writer task that owns the [`PartitionLog`].
//!
//! The writer groups concurrent produce requests into one round (group
//! commit): it stamps offsets and the epoch on their batches, appends them
//! with one write, commits the round (advances the HWM in Redis, fenced by
//! epoch) and only then answers every request of the round.
//!
//! Invariants:
//! - Only the writer task touches the log's write side and the producer
//!   table; readers use the shared [`LogReader`] and the HWM channel.
//! - A write is acknowledged only after the HWM covering it is stored in
//!   Redis under this node's current epoch, and while the lease gate is open.
//! - The published HWM never exceeds the log end and never goes down.

use std::{sync::Arc, time::Duration};

use partition_log::{
    BatchHeader, FsyncPolicy, LogConfig, LogError, LogReader, PartitionLog, batch,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    lease::LeaseGate,
    producers::{Dedup, ProducerTable},
    role::Event,
    store::{ClusterStore, StoreError},
};

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
        matches!(
            self,
            WriteError::NotLeader | WriteError::SequenceConflict | WriteError::Closed
        )
    }
}

/// Offsets of one batch of a produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub base_offset: u64,
    pub count: u32,
}

enum Command {
    Produce {
        batches: Vec<Vec<u8>>,
        reply: oneshot::Sender<Result<Vec<Written>, WriteError>>,
    },
    Lead {
        epoch: u64,
        hwm: u64,
        reply: oneshot::Sender<Result<u64, WriteError>>,
    },
    StopLeading,
}

/// What a partition's writer needs from its node.
#[derive(Debug, Clone)]
pub struct WriterContext {
    /// The node's multi-threaded runtime. Writers run there even when a
    /// partition is opened from an HTTP worker's single-threaded runtime,
    /// because they block on file I/O with `block_in_place`.
    pub runtime: tokio::runtime::Handle,
    pub store: ClusterStore,
    pub gate: Arc<LeaseGate>,
    pub events: mpsc::Sender<Event>,
}

/// A shared handle on one partition.
#[derive(Debug, Clone)]
pub struct Partition {
    pub topic: Arc<str>,
    pub id: u32,
    reader: LogReader,
    hwm: watch::Sender<u64>,
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
        ctx: WriterContext,
    ) -> Result<Self, LogError> {
        let (log, report) = PartitionLog::open(dir, config)?;
        if report.truncated_bytes > 0 || report.indexes_rebuilt > 0 {
            tracing::warn!(
                topic,
                partition = id,
                truncated_bytes = report.truncated_bytes,
                indexes_rebuilt = report.indexes_rebuilt,
                "recovered partition log"
            );
        }
        let reader = log.reader();
        let hwm = watch::Sender::new(known_hwm.min(log.end_offset()));
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let topic: Arc<str> = Arc::from(topic);
        let writer = Writer {
            topic: Arc::clone(&topic),
            id,
            log,
            producers: ProducerTable::default(),
            leading: None,
            hwm: hwm.clone(),
            ctx,
            rx,
        };
        writer.ctx.runtime.clone().spawn(writer.run());
        Ok(Self {
            topic,
            id,
            reader,
            hwm,
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

    /// Appends `batches` (built with [`partition_log::BatchBuilder`], not yet
    /// stamped) and returns their offsets once committed.
    pub async fn produce(&self, batches: Vec<Vec<u8>>) -> Result<Vec<Written>, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Produce { batches, reply })
            .await
            .map_err(|_| WriteError::Closed)?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    /// Prepares the partition to lead at `epoch`, given the HWM stored in
    /// Redis. Returns the HWM it leads with.
    pub async fn lead(&self, epoch: u64, hwm: u64) -> Result<u64, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Lead { epoch, hwm, reply })
            .await
            .map_err(|_| WriteError::Closed)?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    pub async fn stop_leading(&self) {
        let _ = self.commands.send(Command::StopLeading).await;
    }
}

struct Writer {
    topic: Arc<str>,
    id: u32,
    log: PartitionLog,
    producers: ProducerTable,
    /// The epoch this writer was prepared to lead at.
    leading: Option<u64>,
    hwm: watch::Sender<u64>,
    ctx: WriterContext,
    rx: mpsc::Receiver<Command>,
}

struct Pending {
    batches: Vec<Vec<u8>>,
    reply: oneshot::Sender<Result<Vec<Written>, WriteError>>,
}

impl Writer {
    async fn run(mut self) {
        let sync_every = match self.log.config().fsync {
            FsyncPolicy::Interval(every) => every,
            _ => Duration::from_secs(3600),
        };
        let mut sync_timer = tokio::time::interval(sync_every);
        sync_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                Command::StopLeading => self.leading = None,
            }
        }
        if let Err(e) = self.log.sync() {
            tracing::error!(topic = %self.topic, partition = self.id, "final fsync failed: {e}");
        }
    }

    async fn lead(&mut self, epoch: u64, redis_hwm: u64) -> Result<u64, WriteError> {
        self.leading = None;
        let hwm = redis_hwm.max(*self.hwm.borrow());
        let end = self.log.end_offset();
        if end < hwm {
            return Err(WriteError::LogBehindHwm { end, hwm });
        }
        self.rebuild_producers()?;
        // What this log holds beyond the HWM was never acknowledged, but it
        // may be the only copy of writes whose outcome a client saw as
        // unknown: commit it rather than drop it.
        let stored = self
            .ctx
            .store
            .advance_hwm(&self.topic, self.id, epoch, end)
            .await?;
        self.hwm.send_replace(stored.min(end));
        self.leading = Some(epoch);
        Ok(stored)
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
                if header.producer_id >= 0 && header.base_sequence >= 0 {
                    self.producers.record(
                        header.producer_id as u64,
                        header.base_sequence as u64,
                        header.record_count,
                        header.base_offset,
                    );
                }
                offset = header.next_offset();
            }
        }
        Ok(())
    }

    async fn commit_round(&mut self, round: Vec<Pending>) {
        let Some(epoch) = self.ctx.gate.epoch() else {
            return reply_all(round, WriteError::NotLeader);
        };
        // A partition opened after the election (a new topic) prepares on
        // its first write.
        if self.leading != Some(epoch) {
            let prepared = match self.ctx.store.hwm(&self.topic, self.id).await {
                Ok(hwm) => self.lead(epoch, hwm).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = prepared {
                return reply_all(round, e);
            }
        }
        let mut buf = Vec::with_capacity(round.iter().flat_map(|p| &p.batches).map(Vec::len).sum());
        let mut next = self.log.end_offset();
        let mut answers = Vec::with_capacity(round.len());
        for mut pending in round {
            match self.place(&mut pending.batches, epoch, &mut next, &mut buf) {
                Ok(written) => answers.push((pending.reply, Ok(written))),
                Err(e) => {
                    let _ = pending.reply.send(Err(e));
                }
            }
        }
        let result = self.append_and_commit(&buf, epoch).await;
        for (reply, written) in answers {
            let _ = reply.send(match &result {
                Ok(()) => written,
                Err(e) => Err(e.clone()),
            });
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
            });
        }
        Ok(written)
    }

    async fn append_and_commit(&mut self, buf: &[u8], epoch: u64) -> Result<(), WriteError> {
        if !buf.is_empty() {
            let appended = tokio::task::block_in_place(|| self.log.append(buf));
            if let Err(e) = appended {
                // The table may name batches that did not make it to disk.
                self.producers.clear();
                let _ = self.rebuild_producers();
                return Err(e.into());
            }
        }
        let end = self.log.end_offset();
        if *self.hwm.borrow() >= end {
            return Ok(()); // only duplicates of committed records
        }
        match self
            .ctx
            .store
            .advance_hwm(&self.topic, self.id, epoch, end)
            .await
        {
            Ok(stored) => {
                self.hwm.send_replace(stored.min(end));
                if self.ctx.gate.epoch() == Some(epoch) {
                    Ok(())
                } else {
                    Err(WriteError::Fenced { epoch })
                }
            }
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.id, epoch, "commit failed, stepping down: {e}");
                self.leading = None;
                let _ = self.ctx.events.try_send(Event::EpochRejected { epoch });
                Err(e.into())
            }
        }
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
