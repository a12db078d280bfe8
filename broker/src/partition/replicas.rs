//! The leader's side of replication for one partition: the in-sync replica
//! set with each follower's progress, and the push of a round to every ISR
//! follower.
//!
//! A follower stays in the ISR while it acknowledges rounds; one that has
//! not been caught up for `replica_lag_time`, or whose node is unreachable
//! or unregistered, is dropped (by the caller, in Redis) before the round is
//! acknowledged. A follower that answers with an older log end is sent what
//! it lacks from the leader's log, in the same round.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::future::join_all;
use partition_log::LogReader;

use super::{FollowerStatus, ReplicaStatus, WriterContext};
use crate::{
    clock::Clock,
    peer::{CallError, PeerAddr, Refusal, ReplicaLink, ReplicateParams},
};

/// The least time a follower's first try in a round gets.
const FIRST_TRY: Duration = Duration::from_millis(500);
/// Longest single replicate request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
struct Progress {
    offset: u64,
    caught_up_at: Instant,
}

/// The ISR of a partition (leader included) and its followers' progress.
#[derive(Debug)]
pub struct ReplicaSet {
    me: String,
    isr: Vec<String>,
    followers: HashMap<String, Progress>,
    lag_time: Duration,
    clock: Arc<dyn Clock>,
}

impl ReplicaSet {
    /// The ISR as stored; every follower in it gets a full lag time of grace.
    pub fn new(
        me: String,
        isr: Vec<String>,
        end: u64,
        lag_time: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let now = clock.now();
        let followers = isr
            .iter()
            .filter(|id| **id != me)
            .map(|id| {
                let progress = Progress {
                    offset: end,
                    caught_up_at: now,
                };
                (id.clone(), progress)
            })
            .collect();
        Self {
            me,
            isr,
            followers,
            lag_time,
            clock,
        }
    }

    pub fn isr(&self) -> &[String] {
        &self.isr
    }

    pub fn set_isr(&mut self, isr: Vec<String>) {
        self.isr = isr;
    }

    /// The ISR without `dropped`.
    pub fn without(&self, dropped: &[String]) -> Vec<String> {
        self.isr
            .iter()
            .filter(|id| !dropped.contains(id))
            .cloned()
            .collect()
    }

    /// The ISR with `id` added.
    pub fn with(&self, id: &str) -> Vec<String> {
        let mut isr = self.isr.clone();
        if !isr.iter().any(|m| m == id) {
            isr.push(id.to_owned());
        }
        isr
    }

    /// Records a follower's log end as reported by its fetch.
    pub fn progress(&mut self, id: &str, offset: u64) {
        let now = self.clock.now();
        let entry = self.followers.entry(id.to_owned()).or_insert(Progress {
            offset,
            caught_up_at: now,
        });
        entry.offset = offset;
    }

    /// Records that a follower holds everything up to `offset`, the
    /// leader's log end, now.
    pub fn caught_up(&mut self, id: &str, offset: u64) {
        self.followers.insert(
            id.to_owned(),
            Progress {
                offset,
                caught_up_at: self.clock.now(),
            },
        );
    }

    fn deadline(&self, id: &str) -> Instant {
        self.followers
            .get(id)
            .map_or_else(|| self.clock.now(), |p| p.caught_up_at + self.lag_time)
    }

    pub fn status(&self, end: u64) -> ReplicaStatus {
        let mut followers: Vec<FollowerStatus> = self
            .followers
            .iter()
            .map(|(id, p)| FollowerStatus {
                id: id.clone(),
                offset: p.offset,
                lag: end.saturating_sub(p.offset),
                in_sync: self.isr.contains(id),
            })
            .collect();
        followers.sort_by(|a, b| a.id.cmp(&b.id));
        ReplicaStatus {
            isr: self.isr.clone(),
            followers,
        }
    }
}

/// One group-commit round, already in the leader's log at `[start, end)`.
#[derive(Debug)]
pub struct Round {
    pub topic: Arc<str>,
    pub partition: u32,
    pub epoch: u64,
    pub start: u64,
    pub end: u64,
    pub hwm: u64,
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
pub struct RoundOutcome {
    /// A follower has seen a newer epoch: this leader is deposed.
    pub deposed: bool,
    /// Followers to drop from the ISR.
    pub dropped: Vec<String>,
    /// Followers that hold the round, with their log ends.
    pub caught_up: Vec<(String, u64)>,
}

enum PushError {
    Deposed,
    Unreachable(String),
    Lagging(String),
}

/// Sends the round to every ISR follower, concurrently. The first request
/// to each is on its way when this returns (rounds started in order leave
/// in order); the future ends when each follower holds the round or is
/// given up. Also says whether every follower's link is ordered, so that
/// the next round may be sent before this one is answered.
pub fn push_round(
    ctx: &WriterContext,
    replicas: &ReplicaSet,
    reader: &LogReader,
    round: Round,
) -> (
    bool,
    impl Future<Output = RoundOutcome> + Send + 'static + use<>,
) {
    let followers: Vec<(String, Option<PeerAddr>)> = replicas
        .isr
        .iter()
        .filter(|id| **id != replicas.me)
        .map(|id| (id.clone(), ctx.peers.addr(id)))
        .collect();
    let ordered = followers
        .iter()
        .all(|(_, addr)| addr.as_ref().is_some_and(|a| ctx.link.ordered(a)));
    let has_followers = !followers.is_empty();
    let started = Instant::now();
    let pushes: Vec<_> = followers
        .into_iter()
        .map(|(id, addr)| {
            let params = ReplicateParams {
                topic: round.topic.to_string(),
                partition: round.partition,
                epoch: round.epoch,
                prev: round.start,
                hwm: round.hwm,
                log_start: reader.start_offset(),
                leader: replicas.me.clone(),
            };
            let push = addr.map(|addr| Push {
                link: Arc::clone(&ctx.link),
                clock: Arc::clone(&ctx.clock),
                addr,
                reader: reader.clone(),
                chunk: ctx.max_round_bytes,
                end: round.end,
                deadline: replicas.deadline(&id),
            });
            let pushed = push.map(|push| push.start(params, round.bytes.clone()));
            async move {
                let result = match pushed {
                    None => Err(PushError::Unreachable("not registered".to_owned())),
                    Some(pushed) => pushed.await,
                };
                (id, result)
            }
        })
        .collect();
    let metrics = Arc::clone(&ctx.metrics);
    let outcome = async move {
        let mut outcome = RoundOutcome::default();
        for (id, result) in join_all(pushes).await {
            match result {
                Ok(end) => outcome.caught_up.push((id, end)),
                Err(PushError::Deposed) => outcome.deposed = true,
                Err(PushError::Unreachable(why) | PushError::Lagging(why)) => {
                    tracing::warn!(follower = %id, topic = %round.topic, partition = round.partition, "dropping from the ISR: {why}");
                    outcome.dropped.push(id);
                }
            }
        }
        if has_followers {
            metrics.observe_replication(started.elapsed());
        }
        outcome
    };
    (ordered, outcome)
}

/// What bringing one follower to a round's end needs.
struct Push {
    link: Arc<dyn ReplicaLink>,
    clock: Arc<dyn Clock>,
    addr: PeerAddr,
    reader: LogReader,
    /// Largest resend in one request.
    chunk: usize,
    /// The round's end.
    end: u64,
    /// When the follower is given up (its lag time).
    deadline: Instant,
}

impl Push {
    /// Sends the round now; the future resends what the follower lacks
    /// until it holds `[.., end)`, or gives up at the deadline.
    fn start(
        self,
        mut params: ReplicateParams,
        mut body: Bytes,
    ) -> impl Future<Output = Result<u64, PushError>> + Send + 'static + use<> {
        // However long ago it last caught up, a follower gets one real try.
        let left = self.deadline.saturating_duration_since(self.clock.now());
        let first = left.max(FIRST_TRY).min(REQUEST_TIMEOUT);
        let mut call = self
            .link
            .replicate(&self.addr, params.clone(), body.clone(), first);
        async move {
            loop {
                let backoff = match call.await {
                    Ok(done) if done.end >= self.end => return Ok(done.end),
                    // Accepted a resend chunk: send the next one.
                    Ok(done) => {
                        (params.prev, body) = self.resend_from(done.end)?;
                        Duration::ZERO
                    }
                    Err(CallError::Refused(Refusal::StaleEpoch { .. })) => {
                        return Err(PushError::Deposed);
                    }
                    Err(CallError::Refused(Refusal::NonContiguous { end })) if end < self.end => {
                        (params.prev, body) = self.resend_from(end)?;
                        Duration::ZERO
                    }
                    // Not yet truncated for this epoch, or (briefly) ahead:
                    // it is re-syncing with us.
                    Err(CallError::Refused(_)) => Duration::from_millis(10),
                    Err(CallError::Unreachable(why)) => return Err(PushError::Unreachable(why)),
                    Err(CallError::Failed(why)) => {
                        tracing::debug!(url = self.addr.url, "replicate failed: {why}");
                        Duration::from_millis(20)
                    }
                };
                let left = self.deadline.saturating_duration_since(self.clock.now());
                if left.is_zero() {
                    return Err(PushError::Lagging(format!(
                        "not caught up within the lag time (at {})",
                        params.prev
                    )));
                }
                if !backoff.is_zero() {
                    tokio::time::sleep(backoff.min(left)).await;
                }
                let timeout = left.min(REQUEST_TIMEOUT);
                call = self
                    .link
                    .replicate(&self.addr, params.clone(), body.clone(), timeout);
            }
        }
    }

    /// The leader's batches from `from` (a follower's log end) toward the
    /// round's end.
    fn resend_from(&self, from: u64) -> Result<(u64, Bytes), PushError> {
        let (end, reader) = (self.end, &self.reader);
        let bytes = reader
            .read(from, end, self.chunk)
            .map_err(|e| PushError::Lagging(format!("cannot read {from}..{end} to resend: {e}")))?;
        let starts_at = partition_log::BatchHeader::parse(&bytes).map(|h| h.base_offset);
        if starts_at != Ok(from) {
            return Err(PushError::Lagging(format!(
                "follower's log end {from} is not a batch boundary of the leader's log"
            )));
        }
        Ok((from, Bytes::from(bytes)))
    }
}
