//! [`YakClient::fetch`]: one raw read of committed records from a
//! partition, long-polling, as stored batches decoded here.
//!
//! Invariants: the records returned start at the offset asked for (a
//! stored batch may begin earlier; its records below the offset are
//! skipped) and number at most `max_records`; `next_offset` is one past the
//! last record returned, or the offset asked for when none was. Retries and
//! failover are [`YakClient::call`]'s; positions across polls are the
//! [`Consumer`](crate::Consumer)'s, which also uses the two halves apart
//! ([`YakClient::fetch_batches`], then [`Batches::decode`]) to ask for the
//! next records while it decodes these.

use std::time::Duration;

use partition_log::batch;
use reqwest::Method;

use crate::{
    cluster::YakClient,
    error::{ClientError, Result},
    model::{Consumed, Fetch},
    wire::{BatchFetch, encode},
};

/// The stored batches of one read, not yet decoded.
#[derive(Debug)]
pub(crate) struct Batches {
    read: BatchFetch,
    /// The offset asked for, and the most records to return from it.
    offset: u64,
    max_records: usize,
    /// The request, to name in decode errors.
    path: String,
}

impl Batches {
    /// The offset after the last record [`Batches::decode`] will return,
    /// from the batch headers alone (no record is decoded): what to ask
    /// for next. The offset asked for when the read holds none.
    pub(crate) fn next_offset(&self) -> u64 {
        let mut next = self.offset;
        let cap = self.offset.saturating_add(self.max_records as u64);
        for b in batch::batches(&self.read.batches) {
            let Ok(b) = b else { break };
            next = next.max(b.header.next_offset().min(cap));
        }
        next
    }

    /// The partition's high-water mark when the node answered.
    pub(crate) fn high_water_mark(&self) -> u64 {
        self.read.high_water_mark
    }

    /// Decodes the records from the offset asked for, at most
    /// `max_records` of them.
    pub(crate) fn decode(self) -> Result<Fetch> {
        let Self {
            read,
            offset,
            max_records,
            path,
        } = self;
        let error = |e: batch::BatchError| ClientError::Decode {
            url: path.clone(),
            message: e.to_string(),
        };
        let mut records = Vec::with_capacity(max_records.min(read.batches.len() / 8 + 1));
        'batches: for batch in batch::batches(&read.batches) {
            for record in batch.map_err(error)?.records() {
                let record = record.map_err(error)?;
                if record.offset < offset {
                    continue;
                }
                if records.len() == max_records {
                    break 'batches;
                }
                records.push(Consumed::from_record(&record));
            }
        }
        let next_offset = records.last().map_or(offset, |r: &Consumed| r.offset + 1);
        Ok(Fetch {
            records,
            next_offset,
            high_water_mark: read.high_water_mark,
            log_start_offset: read.log_start_offset,
        })
    }
}

impl YakClient {
    /// One read of committed records, long-polling up to `wait`. Reads
    /// the stored batches (`GET /consume/batch`) and decodes them here.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        wait: Duration,
    ) -> Result<Fetch> {
        self.fetch_batches(topic, partition, offset, max_records, wait)
            .await?
            .decode()
    }

    /// [`YakClient::fetch`] without the decoding: the stored batches as
    /// the node answered them.
    pub(crate) async fn fetch_batches(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        wait: Duration,
    ) -> Result<Batches> {
        let path = format!(
            "/consume/batch?topic={}&partition={partition}&offset={offset}&max_records={max_records}&wait_ms={}",
            encode(topic),
            wait.as_millis()
        );
        let timeout = self.config().request_timeout + wait;
        let read: BatchFetch = self
            .call(Method::GET, &path, None, Some(timeout), |_| true)
            .await?;
        Ok(Batches {
            read,
            offset,
            max_records,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use partition_log::batch::{BatchBuilder, stamp};

    use super::*;

    /// Stored batches of `counts` records each, from offset 0.
    fn stored(counts: &[u32]) -> Batches {
        let mut bytes = Vec::new();
        let mut base = 0;
        for &count in counts {
            let mut builder = BatchBuilder::new(0);
            for _ in 0..count {
                builder.push(0, None, b"x");
            }
            let mut batch = builder.finish();
            stamp(&mut batch, base, 1);
            bytes.extend_from_slice(&batch);
            base += u64::from(count);
        }
        Batches {
            read: BatchFetch {
                batches: bytes.into(),
                high_water_mark: base,
                log_start_offset: 0,
            },
            offset: 0,
            max_records: usize::MAX,
            path: String::new(),
        }
    }

    #[test]
    fn next_offset_from_headers_is_where_decoding_ends() {
        for (counts, offset, max_records) in [
            (&[3, 4, 5][..], 0, 100),
            (&[3, 4, 5], 2, 100),
            (&[3, 4, 5], 2, 4),
            (&[3, 4, 5], 11, 1),
            (&[1, 1, 1], 1, 1),
            (&[], 0, 10),
        ] {
            let mut read = stored(counts);
            read.offset = offset;
            read.max_records = max_records;
            let ahead = read.next_offset();
            let fetch = read.decode().unwrap();
            assert_eq!(ahead, fetch.next_offset, "{counts:?} from {offset}");
            assert!(fetch.records.len() <= max_records);
            assert_eq!(fetch.records.first().map(|r| r.offset), {
                (offset < u64::from(counts.iter().sum::<u32>())).then_some(offset)
            });
        }
    }
}
