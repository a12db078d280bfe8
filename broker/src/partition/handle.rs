//! [`Partition`]: the handle many tasks share, which talks to the
//! partition's writer task over a command channel.

use std::sync::Arc;

use bytes::Bytes;
use partition_log::{LogConfig, LogError, LogReader, PartitionLog};
use tokio::sync::{mpsc, oneshot, watch};
use yak_protocol::TopicConfig;

use crate::{
    peer::{EpochEnd, LeaderPosition, Refusal},
    producers::ProducerTable,
};

use super::{
    COMMAND_QUEUE, FetchVerdict, ReplicaError, ReplicaStatus, WriteError, WriterContext, Written,
    commit::Committer, writer::Mode, writer::Writer,
};

pub(super) type Reply<T> = oneshot::Sender<T>;

pub(super) enum Command {
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
            syncing: None,
            in_flight: Default::default(),
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
        self.queue_replicate(epoch, prev, bytes, leader).await.await
    }

    /// Queues a leader's round behind the commands already queued and
    /// returns its answer to come: rounds queued in order are appended in
    /// that order.
    pub async fn queue_replicate(
        &self,
        epoch: u64,
        prev: u64,
        bytes: Bytes,
        leader: LeaderPosition,
    ) -> impl Future<Output = Result<u64, ReplicaError>> + use<> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Replicate {
            epoch,
            prev,
            bytes,
            leader,
            reply,
        };
        let queued = self.commands.send(command).await.is_ok();
        async move {
            match queued {
                true => answer.await.unwrap_or(Err(ReplicaError::Closed)),
                false => Err(ReplicaError::Closed),
            }
        }
    }

    /// Restarts this follower's log at `offset`, the leader's log start,
    /// when everything it holds is below it (deleted by retention there).
    pub async fn reset_to(&self, offset: u64) -> Result<(), ReplicaError> {
        self.ask(|reply| Command::ResetTo { offset, reply })
            .await
            .unwrap_or(Err(ReplicaError::Closed))
    }
}
