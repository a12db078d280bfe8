//! [`YakClient::fetch`]: one raw read of committed records from a
//! partition, long-polling, as stored batches decoded here.
//!
//! Invariants: the records returned start at the offset asked for (a
//! stored batch may begin earlier; its records below the offset are
//! skipped) and number at most `max_records`; `next_offset` is one past the
//! last record returned, or the offset asked for when none was. Retries and
//! failover are [`YakClient::call`]'s; positions across polls are the
//! [`Consumer`](crate::Consumer)'s.

use std::time::Duration;

use reqwest::Method;

use crate::{
    cluster::YakClient,
    error::{ClientError, Result},
    model::{Consumed, Fetch},
    wire::{BatchFetch, encode},
};

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
        let path = format!(
            "/consume/batch?topic={}&partition={partition}&offset={offset}&max_records={max_records}&wait_ms={}",
            encode(topic),
            wait.as_millis()
        );
        let timeout = self.config().request_timeout + wait;
        let read: BatchFetch = self
            .call(Method::GET, &path, None, Some(timeout), |_| true)
            .await?;
        let mut records = Vec::new();
        'batches: for batch in partition_log::batch::batches(&read.batches) {
            let batch = batch.map_err(|e| ClientError::Decode {
                url: path.clone(),
                message: e.to_string(),
            })?;
            for record in batch.records() {
                let record = record.map_err(|e| ClientError::Decode {
                    url: path.clone(),
                    message: e.to_string(),
                })?;
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
