//! Where a member stands in each partition it holds: the next offset to
//! read, the offset last committed, and the reads that move the first.
//!
//! Invariants:
//! - A position moves only when [`Positions::read`] returns the records
//!   before it (or the consumer seeks): every fetch of a read completes before any position is
//!   updated, in one step with no await after it, so a read that fails or
//!   is cancelled (a rebalance signalled mid-wait) moves nothing, and the
//!   records it fetched are fetched again. The one exception is a position
//!   below the partition's log start: those records were deleted by
//!   retention, nobody can read them, and the position moves to the log
//!   start (logged).
//! - A partition starts at its committed offset; one with none starts by
//!   the start rule, resolved on the first read and committed like any
//!   position, so the member that reads it next starts where this one did.
//! - What [`Positions::uncommitted`] lists is every known position that
//!   differs from the offset last committed for it.

use std::{collections::BTreeMap, time::Duration};

use futures_util::{FutureExt, StreamExt, future::try_join_all, stream::FuturesUnordered};
use yak_protocol::group::{PartitionOffset, TopicPartition};

use super::GroupRecord;
use crate::{
    cluster::YakClient,
    consumer::StartAt,
    error::{ClientError, Result},
    model::Fetch,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    /// The next offset to read; `None` until the start rule is resolved.
    next: Option<u64>,
    /// The offset last committed (or found committed at the join).
    committed: Option<u64>,
}

/// The positions of the partitions a member holds.
#[derive(Debug)]
pub(crate) struct Positions {
    partitions: BTreeMap<TopicPartition, Position>,
    /// Where a partition with no committed offset starts.
    start: StartAt,
}

impl Positions {
    /// `assignment`, each partition at its offset in `committed`, the
    /// others where `start` says.
    pub(crate) fn new(
        assignment: &[TopicPartition],
        committed: &[PartitionOffset],
        start: StartAt,
    ) -> Self {
        let partitions = assignment
            .iter()
            .map(|tp| {
                let committed = committed
                    .iter()
                    .find(|c| c.topic == tp.topic && c.partition == tp.partition)
                    .map(|c| c.offset);
                let position = Position {
                    next: committed,
                    committed,
                };
                (tp.clone(), position)
            })
            .collect();
        Self { partitions, start }
    }

    /// Forgets every partition (they were revoked).
    pub(crate) fn clear(&mut self) {
        self.partitions.clear();
    }

    /// Sets the position of `tp`, if held; says whether it is.
    pub(crate) fn seek(&mut self, tp: &TopicPartition, offset: u64) -> bool {
        self.partitions
            .get_mut(tp)
            .map(|position| position.next = Some(offset))
            .is_some()
    }

    /// The positions to commit: those that moved since the last commit.
    pub(crate) fn uncommitted(&self) -> Vec<PartitionOffset> {
        self.partitions
            .iter()
            .filter_map(|(tp, position)| {
                let next = position.next?;
                (position.committed != Some(next)).then(|| PartitionOffset {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: next,
                })
            })
            .collect()
    }

    /// Records that `offsets` are committed.
    pub(crate) fn mark_committed(&mut self, offsets: &[PartitionOffset]) {
        for offset in offsets {
            let tp = TopicPartition::new(offset.topic.clone(), offset.partition);
            if let Some(position) = self.partitions.get_mut(&tp) {
                position.committed = Some(offset.offset);
            }
        }
    }

    /// The next records of every partition, at most `max_records` each:
    /// whatever is there now; if nothing is, the first partition to get
    /// records within `wait` (with any others that answered by then).
    /// With no partitions, waits `wait` and returns nothing.
    pub(crate) async fn read(
        &mut self,
        client: &YakClient,
        max_records: usize,
        wait: Duration,
    ) -> Result<Vec<GroupRecord>> {
        if self.partitions.is_empty() {
            tokio::time::sleep(wait).await;
            return Ok(Vec::new());
        }
        self.resolve_starts(client).await?;
        let now = self.fetch_all(client, max_records, Duration::ZERO).await?;
        if wait.is_zero() || now.iter().any(|(_, f)| !f.records.is_empty()) {
            return Ok(self.advance(now));
        }
        let first = self.fetch_first(client, max_records, wait).await?;
        Ok(self.advance(first))
    }

    /// Gives every partition without a position the one its start rule
    /// says, from one topic description per topic.
    async fn resolve_starts(&mut self, client: &YakClient) -> Result<()> {
        let start = self.start;
        let mut topics: Vec<String> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.next.is_none())
            .map(|(tp, _)| tp.topic.clone())
            .collect();
        topics.dedup();
        for topic in topics {
            let detail = client.describe_topic(&topic).await?;
            for (tp, position) in self.partitions.iter_mut() {
                if tp.topic != topic || position.next.is_some() {
                    continue;
                }
                let partition = detail
                    .partitions
                    .iter()
                    .find(|p| p.partition == tp.partition)
                    .ok_or_else(|| ClientError::Decode {
                        url: format!("/topics/{topic}"),
                        message: format!(
                            "no partition {} in the topic's description",
                            tp.partition
                        ),
                    })?;
                position.next = Some(match start {
                    StartAt::Earliest => partition.log_start_offset,
                    StartAt::Latest => partition.high_water_mark,
                    StartAt::Offset(offset) => offset,
                });
            }
        }
        Ok(())
    }

    /// One fetch per partition from its position (known: see
    /// `resolve_starts`), each as `fetch` describes.
    fn fetches(
        &self,
        client: &YakClient,
        max_records: usize,
        wait: Duration,
    ) -> impl Iterator<Item = impl Future<Output = Result<(TopicPartition, Fetch)>>> {
        self.partitions.iter().map(move |(tp, position)| {
            let (client, tp) = (client.clone(), tp.clone());
            let from = position.next.unwrap_or_default();
            async move {
                let fetched = fetch(&client, &tp, from, max_records, wait).await?;
                Ok((tp, fetched))
            }
        })
    }

    /// Every partition's records, all fetched concurrently.
    async fn fetch_all(
        &self,
        client: &YakClient,
        max_records: usize,
        wait: Duration,
    ) -> Result<Vec<(TopicPartition, Fetch)>> {
        try_join_all(self.fetches(client, max_records, wait)).await
    }

    /// Long-polls every partition concurrently until the first answers
    /// with records (taking the others that answered by then) or all
    /// answered empty.
    async fn fetch_first(
        &self,
        client: &YakClient,
        max_records: usize,
        wait: Duration,
    ) -> Result<Vec<(TopicPartition, Fetch)>> {
        let mut pending: FuturesUnordered<_> = self.fetches(client, max_records, wait).collect();
        let mut answered = Vec::new();
        while let Some(fetched) = pending.next().await {
            let (tp, fetched) = fetched?;
            let got_records = !fetched.records.is_empty();
            answered.push((tp, fetched));
            if got_records {
                while let Some(Some(fetched)) = pending.next().now_or_never() {
                    answered.push(fetched?);
                }
                break;
            }
        }
        Ok(answered)
    }

    /// Moves each fetched partition past the records fetched, and returns
    /// them in partition order.
    fn advance(&mut self, mut fetched: Vec<(TopicPartition, Fetch)>) -> Vec<GroupRecord> {
        fetched.sort_by(|a, b| a.0.cmp(&b.0));
        let mut records = Vec::new();
        for (tp, fetch) in fetched {
            if let Some(position) = self.partitions.get_mut(&tp) {
                position.next = Some(fetch.next_offset);
            }
            records.extend(fetch.records.into_iter().map(|record| GroupRecord {
                topic: tp.topic.clone(),
                partition: tp.partition,
                record,
            }));
        }
        records
    }
}

/// One read of `tp` from `from`. Records below the log start were deleted
/// by retention: the read starts at the log start instead, and the fetch's
/// `next_offset` carries the position past them.
async fn fetch(
    client: &YakClient,
    tp: &TopicPartition,
    from: u64,
    max_records: usize,
    wait: Duration,
) -> Result<Fetch> {
    let read = |offset| client.fetch(&tp.topic, tp.partition, offset, max_records, wait);
    match read(from).await {
        Err(e) => match e.log_start().filter(|&start| start > from) {
            Some(start) => {
                tracing::warn!(
                    "{tp}: offsets {from}..{start} were deleted by retention before the group read them; reading on from {start}"
                );
                read(start).await
            }
            None => Err(e),
        },
        fetched => fetched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Consumed;

    fn tp(p: u32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn offset(p: u32, offset: u64) -> PartitionOffset {
        PartitionOffset {
            topic: "t".to_owned(),
            partition: p,
            offset,
        }
    }

    fn fetched(p: u32, offsets: std::ops::Range<u64>) -> (TopicPartition, Fetch) {
        let records: Vec<Consumed> = offsets
            .clone()
            .map(|offset| Consumed {
                offset,
                key: None,
                payload: serde_json::json!(offset),
                timestamp: 0,
            })
            .collect();
        let fetch = Fetch {
            records,
            next_offset: offsets.end,
            high_water_mark: offsets.end,
            log_start_offset: 0,
        };
        (tp(p), fetch)
    }

    #[test]
    fn partitions_start_at_their_committed_offset_and_commit_only_what_moved() {
        let mut positions = Positions::new(
            &[tp(0), tp(1)],
            &[offset(0, 5), offset(9, 1)],
            StartAt::Earliest,
        );
        assert!(positions.uncommitted().is_empty(), "nothing moved yet");
        let records = positions.advance(vec![fetched(1, 0..2), fetched(0, 5..8)]);
        let read: Vec<(u32, u64)> = records
            .iter()
            .map(|r| (r.partition, r.record.offset))
            .collect();
        assert_eq!(read, [(0, 5), (0, 6), (0, 7), (1, 0), (1, 1)]);
        assert_eq!(positions.uncommitted(), [offset(0, 8), offset(1, 2)]);
        positions.mark_committed(&[offset(0, 8)]);
        assert_eq!(positions.uncommitted(), [offset(1, 2)]);
        positions.mark_committed(&[offset(1, 2), offset(7, 3)]);
        assert!(positions.uncommitted().is_empty());
    }

    #[test]
    fn an_empty_fetch_moves_a_position_only_where_the_fetch_says() {
        let mut positions = Positions::new(&[tp(0)], &[offset(0, 3)], StartAt::Latest);
        // Retention moved the read from 3 to the log start 10.
        let (_, mut fetch) = fetched(0, 10..10);
        fetch.log_start_offset = 10;
        assert!(positions.advance(vec![(tp(0), fetch)]).is_empty());
        assert_eq!(positions.uncommitted(), [offset(0, 10)]);
    }

    #[test]
    fn a_partition_without_a_committed_offset_commits_nothing_until_it_has_a_position() {
        let mut positions = Positions::new(&[tp(0)], &[], StartAt::Earliest);
        assert!(positions.uncommitted().is_empty());
        positions.advance(vec![fetched(0, 0..0)]);
        assert_eq!(positions.uncommitted(), [offset(0, 0)]);
        assert!(positions.seek(&tp(0), 4));
        assert!(!positions.seek(&tp(1), 4), "not held");
        assert_eq!(positions.uncommitted(), [offset(0, 4)]);
        positions.clear();
        assert!(positions.uncommitted().is_empty());
    }
}
