//! [`Consumer`]: reads one topic-partition in order from a starting point,
//! long-polling for new records. Its position only moves past records it
//! has returned, so across a failover it resumes at the next offset with
//! nothing skipped or repeated. The one exception is retention: records
//! the cluster deleted cannot be read, and a consumer told to (the default
//! when it starts from the earliest record) moves on to the log start and
//! says so ([`Consumer::take_skipped`]).
//!
//! While a poll decodes records and committed records remain beyond them,
//! the consumer already asks for those ([`Prefetch`]): the node reads and
//! sends the next batches while this side decodes, instead of the two
//! taking turns. A prefetched answer is used only by the poll at the
//! offset it was asked for; on any error it is dropped and the poll reads
//! as it would have without it.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{
    cluster::YakClient,
    error::{ClientError, Result},
    fetch::Batches,
    model::Consumed,
};

/// Where a consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first offset still stored.
    Earliest,
    /// The high-water mark when the consumer starts: only new records.
    Latest,
    Offset(u64),
}

impl std::str::FromStr for StartAt {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" => Ok(StartAt::Earliest),
            "latest" => Ok(StartAt::Latest),
            n => n
                .parse()
                .map(StartAt::Offset)
                .map_err(|_| format!("expected earliest, latest or an offset, got {n:?}")),
        }
    }
}

#[derive(Debug)]
pub struct Consumer {
    client: YakClient,
    topic: String,
    partition: u32,
    start: StartAt,
    next: Option<u64>,
    max_records: usize,
    skip_deleted: bool,
    skipped: Option<Skipped>,
    prefetch: Option<Prefetch>,
}

/// A read of the records after those a poll returned, started before that
/// poll decoded its own (one at a time: at most one answer held ahead).
#[derive(Debug)]
struct Prefetch {
    offset: u64,
    task: JoinHandle<Result<Batches>>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(prefetch) = self.prefetch.take() {
            prefetch.task.abort();
        }
    }
}

/// Records deleted by retention before the consumer read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Where the consumer was.
    pub from: u64,
    /// The log start it moved to.
    pub to: u64,
}

impl Consumer {
    pub fn new(
        client: YakClient,
        topic: impl Into<String>,
        partition: u32,
        start: StartAt,
    ) -> Self {
        Self {
            client,
            topic: topic.into(),
            partition,
            start,
            next: None,
            max_records: 1000,
            skip_deleted: start == StartAt::Earliest,
            skipped: None,
            prefetch: None,
        }
    }

    /// Whether to move on to the log start when the records at the
    /// position were deleted by retention (default: only when starting
    /// from the earliest record; otherwise `poll` returns the error, whose
    /// [`ClientError::log_start`] says where the log starts now).
    pub fn skip_deleted(mut self, skip: bool) -> Self {
        self.skip_deleted = skip;
        self
    }

    /// The records deleted under the consumer since the last call, if any.
    pub fn take_skipped(&mut self) -> Option<Skipped> {
        self.skipped.take()
    }

    /// At most this many records per poll (1 to 10,000).
    pub fn max_records(mut self, max: usize) -> Self {
        self.max_records = max.clamp(1, 10_000);
        self
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The offset the next poll reads from, once known.
    pub fn position(&self) -> Option<u64> {
        self.next
    }

    async fn resolve_start(&self) -> Result<u64> {
        if let StartAt::Offset(n) = self.start {
            return Ok(n);
        }
        let detail = self.client.describe_topic(&self.topic).await?;
        let p = detail
            .partitions
            .iter()
            .find(|p| p.partition == self.partition)
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "{} has no partition {}",
                    self.topic, self.partition
                ))
            })?;
        Ok(match self.start {
            StartAt::Earliest => p.log_start_offset,
            _ => p.high_water_mark,
        })
    }

    /// The next records, waiting up to `wait` for some to arrive. Retries
    /// through failovers (within the client's deadline).
    pub async fn poll(&mut self, wait: Duration) -> Result<Vec<Consumed>> {
        let offset = match self.next {
            Some(offset) => offset,
            None => {
                let offset = self.resolve_start().await?;
                self.next = Some(offset);
                offset
            }
        };
        let prefetched = match self.prefetch.take() {
            Some(p) if p.offset == offset => p.task.await.ok().and_then(Result::ok),
            Some(p) => {
                p.task.abort();
                None
            }
            None => None,
        };
        let fetched = match prefetched {
            Some(batches) => Ok(batches),
            None => {
                self.client
                    .fetch_batches(&self.topic, self.partition, offset, self.max_records, wait)
                    .await
            }
        };
        let (offset, batches) = match fetched {
            Ok(batches) => (offset, batches),
            Err(e) => match e.log_start().filter(|&start| start > offset) {
                Some(start) if self.skip_deleted => {
                    self.skipped = Some(Skipped {
                        from: offset,
                        to: start,
                    });
                    self.next = Some(start);
                    let batches = self
                        .client
                        .fetch_batches(&self.topic, self.partition, start, self.max_records, wait)
                        .await?;
                    (start, batches)
                }
                _ => return Err(e),
            },
        };
        let ahead = batches.next_offset();
        if ahead > offset && ahead < batches.high_water_mark() {
            // Committed records remain: ask for them now. No wait: they are
            // there, so the node answers at once.
            let (client, topic) = (self.client.clone(), self.topic.clone());
            let (partition, max_records) = (self.partition, self.max_records);
            self.prefetch = Some(Prefetch {
                offset: ahead,
                task: tokio::spawn(async move {
                    client
                        .fetch_batches(&topic, partition, ahead, max_records, Duration::ZERO)
                        .await
                }),
            });
        }
        let fetch = batches.decode()?;
        let contiguous = fetch
            .records
            .iter()
            .enumerate()
            .all(|(i, r)| r.offset == offset + i as u64);
        if !contiguous {
            return Err(ClientError::Decode {
                url: "/consume".to_owned(),
                message: format!("records do not start at {offset} or have gaps"),
            });
        }
        self.next = Some(fetch.next_offset.max(offset));
        Ok(fetch.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_at_parses() {
        assert_eq!("earliest".parse(), Ok(StartAt::Earliest));
        assert_eq!("latest".parse(), Ok(StartAt::Latest));
        assert_eq!("42".parse(), Ok(StartAt::Offset(42)));
        assert!("-1".parse::<StartAt>().is_err());
        assert!("soon".parse::<StartAt>().is_err());
    }
}
