//! The writer while leading: taking the lead at an epoch, group-commit
//! rounds (stamp, append, replicate, hand to the commit stage), and the
//! fetch checks that grow the ISR.

use std::{collections::VecDeque, sync::Arc};

use bytes::Bytes;
use futures_util::{
    FutureExt, StreamExt,
    future::{BoxFuture, ready},
    stream::FuturesOrdered,
};
use partition_log::{BatchHeader, batch};

use crate::{peer::Refusal, producers::Dedup};

use super::{
    DEDUP_REBUILD_RECORDS, FetchVerdict, ROUNDS_IN_FLIGHT, WriteError, Written, commit, replicas,
    replicas::{ReplicaSet, RoundOutcome},
    writer::Mode,
    writer::Pending,
    writer::Writer,
    writer::idempotence,
    writer::reply_all,
};

/// Rounds sent to the ISR and not yet settled, oldest first.
#[derive(Default)]
pub(super) struct InFlight {
    rounds: VecDeque<commit::Round>,
    outcomes: FuturesOrdered<BoxFuture<'static, RoundOutcome>>,
}

impl InFlight {
    /// Queues a round behind those in flight; `pushed` is its push to the
    /// ISR, if it has anything new for the followers.
    fn push(
        &mut self,
        round: commit::Round,
        pushed: Option<impl Future<Output = RoundOutcome> + Send + 'static>,
    ) {
        self.rounds.push_back(round);
        self.outcomes.push_back(match pushed {
            Some(pushed) => pushed.boxed(),
            None => ready(RoundOutcome::default()).boxed(),
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rounds.is_empty()
    }

    fn len(&self) -> usize {
        self.rounds.len()
    }

    /// The oldest round, once its push is over. Cancel-safe.
    pub(super) async fn next(&mut self) -> Option<(commit::Round, RoundOutcome)> {
        let outcome = self.outcomes.next().await?;
        let round = self.rounds.pop_front().expect("one round per outcome");
        Some((round, outcome))
    }

    /// Drops the pushes and fails every round in flight with `error`.
    fn fail_all(&mut self, error: &WriteError) {
        self.outcomes = FuturesOrdered::new();
        for round in self.rounds.drain(..) {
            commit::answer_all(round.answers, error);
        }
    }
}

impl Writer {
    pub(super) async fn lead(&mut self, epoch: u64, known_hwm: u64) -> Result<u64, WriteError> {
        self.stop_leading();
        self.committer.drain().await;
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
            replicas: ReplicaSet::new(
                me.clone(),
                isr,
                end,
                self.ctx.replica_lag_time,
                Arc::clone(&self.ctx.clock),
            ),
        };
        self.publish_status();
        Ok(hwm)
    }

    pub(super) fn rebuild_producers(&mut self) -> Result<(), WriteError> {
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

    pub(super) fn leading_epoch(&self) -> Option<u64> {
        match self.mode {
            Mode::Leading { epoch, .. } => Some(epoch),
            _ => None,
        }
    }

    /// Leads at `epoch` unless it already does: a partition opened after
    /// the election (a new topic) prepares when it is created, or at the
    /// latest on its first write.
    pub(super) async fn ensure_leading(&mut self, epoch: u64) -> Result<(), WriteError> {
        if self.leading_epoch() != Some(epoch) {
            let hwm = self.ctx.store.hwm(&self.topic, self.id).await?;
            self.lead(epoch, hwm).await?;
        }
        Ok(())
    }

    pub(super) async fn commit_round(&mut self, round: Vec<Pending>) {
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
        if !buf.is_empty() {
            let appended = self.write(|log| log.append(&buf));
            if let Err(e) = appended {
                // The table may name batches that did not make it to disk.
                let _ = self.rebuild_producers();
                return commit::answer_all(answers, &e.into());
            }
        }
        self.replicate_round(Bytes::from(buf), start, epoch, answers)
            .await;
    }

    /// Stamps the new batches of one request into `buf` and records them in
    /// the producer table; duplicates get their original offsets.
    pub(super) fn place(
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

    /// Sends an appended round to the ISR and queues it behind the rounds
    /// in flight. Over ordered links up to [`ROUNDS_IN_FLIGHT`] rounds are
    /// in flight, so the next round is sent while the followers append
    /// this one; otherwise the round is settled before the writer goes on.
    async fn replicate_round(
        &mut self,
        bytes: Bytes,
        start: u64,
        epoch: u64,
        answers: Vec<commit::Answer>,
    ) {
        let end = self.log.end_offset();
        let hwm = *self.hwm.borrow();
        let Mode::Leading { replicas, .. } = &self.mode else {
            // Appended already: the outcome is unknown.
            return commit::answer_all(answers, &WriteError::Fenced { epoch });
        };
        // A round with nothing new for the followers (all duplicates, or a
        // tail the HWM covers) has no round in flight before it (those are
        // all committed when the HWM covers the log end): settle it at once.
        let (ordered, pushed) = if hwm < end {
            let round = replicas::Round {
                topic: Arc::clone(&self.topic),
                partition: self.id,
                epoch,
                start,
                end,
                hwm,
                bytes,
            };
            let (ordered, pushed) =
                replicas::push_round(&self.ctx, replicas, &self.log.reader(), round);
            (ordered, Some(pushed))
        } else {
            (false, None)
        };
        let limit = if ordered { ROUNDS_IN_FLIGHT } else { 1 };
        let round = commit::Round {
            epoch,
            end,
            answers,
        };
        self.in_flight.push(round, pushed);
        while self.in_flight.len() >= limit {
            self.settle_next().await;
        }
    }

    /// Waits for the oldest round in flight and settles it.
    pub(super) async fn settle_next(&mut self) {
        if let Some((round, outcome)) = self.in_flight.next().await {
            self.settle(round, outcome).await;
        }
    }

    /// Acts on the followers' answers to a round (in Redis, before anything
    /// is acknowledged: the ISR shrinks, or this leader steps down), then
    /// hands the round to the commit stage.
    pub(super) async fn settle(&mut self, round: commit::Round, outcome: RoundOutcome) {
        match self.apply(round.epoch, outcome).await {
            Ok(()) => self.committer.submit(round).await,
            Err(e) => {
                commit::answer_all(round.answers, &e);
            }
        }
    }

    async fn apply(&mut self, epoch: u64, outcome: RoundOutcome) -> Result<(), WriteError> {
        let Mode::Leading {
            epoch: leading,
            replicas,
        } = &mut self.mode
        else {
            // Appended already: the outcome is unknown.
            return Err(WriteError::Fenced { epoch });
        };
        if *leading != epoch {
            return Err(WriteError::Fenced { epoch });
        }
        for (id, end) in outcome.caught_up {
            replicas.caught_up(&id, end);
        }
        if outcome.deposed {
            return Err(self.step_down(epoch, WriteError::Fenced { epoch }));
        }
        let dropped: Vec<String> = outcome
            .dropped
            .into_iter()
            .filter(|id| replicas.isr().contains(id))
            .collect();
        if !dropped.is_empty() {
            let shrunk = replicas.without(&dropped);
            if let Err(e) = self
                .ctx
                .store
                .set_isr(&self.topic, self.id, epoch, &shrunk)
                .await
            {
                return Err(self.step_down(epoch, e.into()));
            }
            let Mode::Leading { replicas, .. } = &mut self.mode else {
                return Err(WriteError::Fenced { epoch });
            };
            replicas.set_isr(shrunk.clone());
            self.ctx.activity.push(
                "isr_shrink",
                format!(
                    "{}: dropped {} from the ISR (now {})",
                    self.name(),
                    dropped.join(", "),
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
    pub(super) fn step_down(&mut self, epoch: u64, error: WriteError) -> WriteError {
        self.ctx.reject_epoch(&self.name(), epoch, &error);
        self.stop_leading();
        error
    }

    /// Leaves the leading mode: the rounds still in flight fail (appended,
    /// so their outcome is unknown to their clients).
    pub(super) fn stop_leading(&mut self) {
        if let Mode::Leading { epoch, .. } = self.mode {
            self.in_flight.fail_all(&WriteError::Fenced { epoch });
        }
        self.mode = Mode::Idle;
    }

    pub(super) async fn fetch_check(
        &mut self,
        epoch: u64,
        replica: String,
        offset: u64,
    ) -> FetchVerdict {
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
        // Rounds start on this task, so every round started from here on
        // reaches it by push; those in flight it holds (it fetched to the
        // log end, past them).
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
}
