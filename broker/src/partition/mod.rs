//! One topic-partition on this node: a [`Partition`] handle that many tasks
//! share, and the single writer task that owns the [`PartitionLog`].
//!
//! The writer is in one of three modes:
//! - `Leading { epoch }`: it groups concurrent produce requests into one
//!   round (group commit), stamps offsets and the epoch on their batches,
//!   appends them with one write, replicates the same bytes to every
//!   in-sync follower, and hands the round to the [`commit`] stage, which
//!   raises the HWM in Redis (fenced by epoch) and only then answers every
//!   request of the round. Rounds are pipelined twice: over the streamed
//!   link the next round is sent while the followers append the last one,
//!   and the next round replicates while the previous one's HWM is being
//!   stored. Rounds are settled (followers' answers acted on, ISR shrunk)
//!   and committed in the order they were appended.
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

use serde::Serialize;
use tokio::sync::{mpsc, watch};

mod commit;
mod error;
mod follow;
mod handle;
mod lead;
mod replicas;
mod retention;
#[cfg(test)]
mod tests;
mod writer;

pub use error::{ReplicaError, WriteError};
pub use handle::Partition;

use crate::{
    activity::ActivityLog,
    clock::Clock,
    lease::LeaseGate,
    peer::{Peers, Refusal, ReplicaLink},
    role::Event,
    store::ClusterStore,
};

/// How often a leader applies its topics' retention rules.
const RETENTION_EVERY: Duration = Duration::from_secs(1);
/// Rounds a leader sends ahead before it waits for the oldest one's
/// answers (over ordered links: the binary port).
const ROUNDS_IN_FLIGHT: usize = 4;
/// Largest group-commit round of several requests, in bytes of batches
/// (at most the node's `--max-request-bytes`, see
/// [`WriterContext::max_round_bytes`]).
pub(crate) const MAX_ROUND_BYTES: usize = 8 * 1024 * 1024;
/// How far back (in records) the producer table is rebuilt from the log.
const DEDUP_REBUILD_RECORDS: u64 = 256 * 1024;
const COMMAND_QUEUE: usize = 4096;

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
    /// How rounds reach the followers (HTTP in a node).
    pub link: Arc<dyn ReplicaLink>,
    /// What the lag rule reads.
    pub clock: Arc<dyn Clock>,
    pub min_insync_replicas: u32,
    pub replica_lag_time: Duration,
    /// Largest round of several requests, and largest resend, in bytes: no
    /// more than a follower takes in one request (`--max-request-bytes`,
    /// which every node of a cluster should share). A single request is a
    /// round of its own whatever its size.
    pub max_round_bytes: usize,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl WriterContext {
    /// Gives up leading `partition` at `epoch` after a failed commit: says
    /// so (log and activity) and tells the lease driver, which steps down.
    fn reject_epoch(&self, partition: &str, epoch: u64, error: &WriteError) {
        tracing::error!(partition, epoch, "commit failed, stepping down: {error}");
        self.activity.push(
            "error",
            format!("{partition}: commit failed at epoch {epoch}: {error}"),
        );
        let _ = self.events.try_send(Event::EpochRejected { epoch });
    }
}

/// Raises the published HWM to `to`; never lowers it.
fn raise_hwm(hwm: &watch::Sender<u64>, to: u64) {
    hwm.send_if_modified(|current| {
        let raised = to > *current;
        if raised {
            *current = to;
        }
        raised
    });
}
