//! The follower's side of replication. While this node follows a leader,
//! one task per partition:
//! 1. asks the leader for the end offset of this log's latest epoch and
//!    truncates the divergent tail (KIP-101/279), never below the HWM;
//! 2. fetches from its log end until the leader reports it in the ISR;
//!    from then on data arrives by push and the fetch is a long-polled
//!    heartbeat that also carries the leader's HWM.
//!
//! A change of leader cancels the session; the next one starts at step 1.

use std::{collections::HashSet, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    checkpoint::SharedCheckpoint,
    partition::{Partition, ReplicaError},
    peer::{CallError, EpochEnd, EpochEndParams, FetchParams, Fetched, PeerClient, Peers, Refusal},
    topics::TopicRegistry,
};

/// What a follower session uses of the node: its id, its topics, where
/// the other nodes are and how to call them, and the highest epoch seen.
#[derive(Debug, Clone)]
pub struct FollowerContext {
    pub node_id: String,
    pub topics: Arc<TopicRegistry>,
    pub peers: Peers,
    pub client: PeerClient,
    pub checkpoint: SharedCheckpoint,
}

const FETCH_BYTES: usize = 4 * 1024 * 1024;
const FETCH_WAIT: Duration = Duration::from_millis(500);
const NEW_TOPICS_EVERY: Duration = Duration::from_millis(250);

/// A running follow of one leader; dropping it stops it.
#[derive(Debug)]
pub struct FollowerSession {
    pub leader: String,
    cancel: CancellationToken,
}

impl Drop for FollowerSession {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl FollowerSession {
    pub fn start(ctx: FollowerContext, leader: String) -> Self {
        let cancel = CancellationToken::new();
        tokio::spawn(supervise(ctx, leader.clone(), cancel.clone()));
        Self { leader, cancel }
    }
}

/// Starts a follow task for every partition, including topics created later.
async fn supervise(ctx: FollowerContext, leader: String, cancel: CancellationToken) {
    let mut started = HashSet::new();
    let mut opened = ctx.topics.watch_opened();
    loop {
        opened.mark_unchanged();
        for topic in ctx.topics.all() {
            for partition in &topic.partitions {
                if started.insert((topic.name.clone(), partition.id)) {
                    let task = follow_partition(
                        ctx.clone(),
                        leader.clone(),
                        partition.clone(),
                        cancel.clone(),
                    );
                    tokio::spawn(task);
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = opened.changed() => {}
            _ = tokio::time::sleep(NEW_TOPICS_EVERY) => {}
        }
    }
}

async fn follow_partition(
    ctx: FollowerContext,
    leader: String,
    partition: Partition,
    cancel: CancellationToken,
) {
    let mut synced = None;
    while !cancel.is_cancelled() {
        let backoff = tokio::select! {
            _ = cancel.cancelled() => return,
            backoff = step(&ctx, &leader, &partition, &mut synced) => backoff,
        };
        if let Some(backoff) = backoff {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
        }
    }
}

/// One truncate-or-fetch step; `Some(backoff)` after a failure.
async fn step(
    ctx: &FollowerContext,
    leader: &str,
    partition: &Partition,
    synced: &mut Option<u64>,
) -> Option<Duration> {
    let Some(url) = ctx.peers.url(leader) else {
        return Some(Duration::from_millis(100));
    };
    let client = &ctx.client;
    let epoch = ctx.checkpoint.highest_epoch();
    let topic = partition.topic.to_string();
    if *synced != Some(epoch) {
        let answer = match partition.latest_epoch() {
            None => EpochEnd {
                epoch: None,
                end_offset: None,
            },
            Some(ours) => {
                let params = EpochEndParams {
                    topic: topic.clone(),
                    partition: partition.id,
                    epoch: ours,
                    leader_epoch: epoch,
                };
                match client.epoch_end(&url, &params).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        tracing::debug!(%topic, partition = partition.id, "epoch_end: {e}");
                        return Some(Duration::from_millis(100));
                    }
                }
            }
        };
        match partition.follow(epoch, answer).await {
            Ok(_) => *synced = Some(epoch),
            Err(e) => {
                tracing::warn!(%topic, partition = partition.id, "cannot follow: {e}");
                return Some(Duration::from_millis(200));
            }
        }
    }
    let offset = partition.reader().end_offset();
    let topic_name = partition.topic.clone();
    let params = FetchParams {
        topic,
        partition: partition.id,
        epoch,
        offset,
        replica: ctx.node_id.clone(),
        max_bytes: FETCH_BYTES,
        wait_ms: FETCH_WAIT.as_millis() as u64,
    };
    let (bytes, leader) = match client.fetch(&url, &params).await {
        Ok(Fetched::InSync { leader }) => (bytes::Bytes::new(), leader),
        Ok(Fetched::Data { bytes, leader }) => (bytes, leader),
        Err(CallError::Refused(Refusal::NotLeader | Refusal::StaleEpoch { .. })) => {
            *synced = None;
            return Some(Duration::from_millis(100));
        }
        // The leader deleted (retention) everything this log lacks: start
        // again at its log start.
        Err(CallError::Refused(Refusal::BelowLogStart { start })) => {
            return match partition.reset_to(start).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(%topic_name, partition = partition.id, "cannot reset to {start}: {e}");
                    Some(Duration::from_millis(200))
                }
            };
        }
        Err(CallError::Refused(_)) => {
            *synced = None;
            return None;
        }
        Err(e) => {
            tracing::debug!(partition = partition.id, "fetch failed: {e}");
            return Some(Duration::from_millis(200));
        }
    };
    let caught_up = !bytes.is_empty();
    match partition.replicate(epoch, offset, bytes, leader).await {
        Ok(end) if caught_up && end > offset => {
            tracing::debug!(
                partition = partition.id,
                from = offset,
                to = end,
                "caught up a chunk"
            );
            None
        }
        Ok(_) => None,
        Err(ReplicaError::Refused(_)) => {
            *synced = None;
            None
        }
        Err(e) => {
            tracing::warn!(partition = partition.id, "cannot append fetched data: {e}");
            Some(Duration::from_millis(200))
        }
    }
}
