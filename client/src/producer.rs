//! [`Producer`]: sends records to the leader, batched and idempotent.
//!
//! Idempotence: a producer has a random id and numbers its records with
//! consecutive sequences; a request that is retried (after a timeout, a
//! failover, a 503) carries the same ids, so the broker stores each record
//! once and answers the original offsets. A non-idempotent producer only
//! retries errors after which nothing was stored.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use partition_log::BatchBuilder;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};
use tokio::sync::{mpsc, oneshot};

use crate::{
    cluster::{Body, YakClient},
    error::{ClientError, Result},
    model::{Produced, ProducedBatch, RawRecord, Record, WireRecord},
    wire::Decode,
};

/// Largest sequence the broker accepts.
const MAX_SEQUENCE: u64 = i32::MAX as u64;

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Number records so that retries are never stored twice.
    pub idempotent: bool,
    /// With a linger, `send` waits up to this long to batch records
    /// together; zero sends each at once.
    pub linger: Duration,
    /// Most records in one request.
    pub max_batch: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            idempotent: true,
            linger: Duration::ZERO,
            max_batch: 1000,
        }
    }
}

struct Queued {
    record: Record,
    reply: oneshot::Sender<Result<Produced>>,
}

/// Sends records; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Producer {
    client: YakClient,
    config: ProducerConfig,
    producer_id: u64,
    next_sequence: AtomicU64,
    lingering: Option<mpsc::Sender<Queued>>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("record", &self.record)
            .finish()
    }
}

impl Producer {
    /// A producer with a fresh random id. With a linger it starts a
    /// batching task on the current runtime.
    pub fn new(client: YakClient, config: ProducerConfig) -> std::sync::Arc<Self> {
        let producer_id = rand::random_range(1..=i64::MAX as u64);
        let (lingering, rx) = if config.linger.is_zero() {
            (None, None)
        } else {
            let (tx, rx) = mpsc::channel(config.max_batch.max(1) * 4);
            (Some(tx), Some(rx))
        };
        let producer = std::sync::Arc::new(Self {
            client,
            config,
            producer_id,
            next_sequence: AtomicU64::new(0),
            lingering,
        });
        if let Some(rx) = rx {
            tokio::spawn(linger(std::sync::Arc::downgrade(&producer), rx));
        }
        producer
    }

    pub fn producer_id(&self) -> u64 {
        self.producer_id
    }

    pub fn client(&self) -> &YakClient {
        &self.client
    }

    /// Sends one record and waits for its acknowledgement.
    pub async fn send(&self, record: Record) -> Result<Produced> {
        if let Some(queue) = &self.lingering {
            let (reply, rx) = oneshot::channel();
            queue
                .send(Queued { record, reply })
                .await
                .map_err(|_| ClientError::Config("the producer is closed".to_owned()))?;
            return rx
                .await
                .map_err(|_| ClientError::Config("the producer is closed".to_owned()))?;
        }
        self.send_batch(std::slice::from_ref(&record))
            .await
            .pop()
            .expect("one result per record")
    }

    /// Stores one record as its own idempotent batch under the caller's
    /// producer id and sequence (retried with the same pair, so a retry or
    /// a second process replaying the same input never stores it twice).
    /// For read-process-write pipelines: producer id derived from (group,
    /// input topic, input partition), sequence = input offset.
    ///
    /// The pair must be unique per output record: the cluster answers a
    /// pair it has stored with the original offset, whatever the record.
    /// It remembers the last 256 batches of each producer id per
    /// partition, so a replay is recognised while its original is among
    /// them. Ignores this producer's own id, sequences and linger.
    pub async fn send_sequenced(
        &self,
        record: Record,
        producer_id: u64,
        sequence: u64,
    ) -> Result<Produced> {
        if producer_id > i64::MAX as u64 || sequence > MAX_SEQUENCE {
            return Err(ClientError::Config(format!(
                "a producer id is at most {} and a sequence at most {MAX_SEQUENCE}, \
                 got {producer_id} and {sequence}",
                i64::MAX
            )));
        }
        let wire = WireRecord {
            topic: &record.topic,
            key: record.key.as_deref(),
            payload: &record.payload,
            partition: record.partition,
            producer_id: Some(producer_id),
            sequence: Some(sequence),
        };
        let body = Body::json(&wire);
        self.client
            .call(Method::POST, "/produce", Some(&body), None, |_| true)
            .await
    }

    /// Sends records to one partition as one binary batch (over the
    /// leader's binary port, or `POST /produce/batch`; see
    /// [`ClientConfig::tcp`](crate::ClientConfig::tcp)): the records are encoded here in the storage format
    /// and the leader stores these very bytes, with no JSON per record.
    /// Payloads are bytes (the consumer shows a payload that is valid JSON
    /// as JSON, other UTF-8 as a string). All records succeed or fail
    /// together; a retryable failure is retried with the same sequences
    /// until the deadline.
    pub async fn send_records<'a>(
        &self,
        topic: &str,
        partition: u32,
        records: impl IntoIterator<Item = (Option<&'a [u8]>, &'a [u8])>,
    ) -> Result<ProducedBatch> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut builder = BatchBuilder::new(now);
        for (key, value) in records {
            builder.push(now, key, value);
        }
        let n = u64::from(builder.record_count());
        if n == 0 {
            return Err(ClientError::Config(
                "a batch needs at least one record".to_owned(),
            ));
        }
        let idempotent = self.config.idempotent;
        if idempotent {
            let first = self.next_sequence.fetch_add(n, Ordering::Relaxed);
            if first + n > MAX_SEQUENCE {
                return Err(ClientError::Config(
                    "this producer used up its sequence numbers; create a new one".to_owned(),
                ));
            }
            builder = builder.producer(self.producer_id as i64, first as i32);
        }
        self.client
            .produce_batch(topic, partition, builder.finish().into(), |e| {
                idempotent || e.is_not_written()
            })
            .await
    }

    /// Sends records in one request; one result per record, in order.
    /// Records that failed with a retryable error are sent again (with the
    /// same sequences, so nothing is stored twice) until the deadline.
    pub async fn send_batch(&self, records: &[Record]) -> Vec<Result<Produced>> {
        let records: Vec<Outgoing<'_, Value>> = records
            .iter()
            .map(|r| Outgoing {
                topic: &r.topic,
                key: r.key.as_deref(),
                payload: &r.payload,
                partition: r.partition,
            })
            .collect();
        self.send_json(&records).await
    }

    /// [`send_batch`](Self::send_batch) for records whose payloads are
    /// JSON text already ([`RawRecord`]): the same request, the same
    /// results and retries, without a `Value` per record or escaping the
    /// payloads again.
    pub async fn send_raw_batch(&self, records: &[RawRecord<'_>]) -> Vec<Result<Produced>> {
        let records: Vec<Outgoing<'_, RawValue>> = records
            .iter()
            .map(|r| Outgoing {
                topic: r.topic,
                key: r.key,
                payload: r.payload,
                partition: r.partition,
            })
            .collect();
        self.send_json(&records).await
    }

    /// One `POST /produce` of `records` (the batch form), retried as
    /// [`send_batch`](Self::send_batch) says.
    async fn send_json<P: Serialize + ?Sized>(
        &self,
        records: &[Outgoing<'_, P>],
    ) -> Vec<Result<Produced>> {
        if records.is_empty() {
            return Vec::new();
        }
        let n = records.len() as u64;
        let first = self.next_sequence.fetch_add(n, Ordering::Relaxed);
        if first + n > MAX_SEQUENCE {
            let e = ClientError::Config(
                "this producer used up its sequence numbers; create a new one".to_owned(),
            );
            return records.iter().map(|_| Err(e.clone())).collect();
        }
        let idempotent = self.config.idempotent;
        // The broker stores a partition's records in runs of consecutive
        // sequences, one batch per run: send records bound for the same
        // place next to each other, numbered in that order.
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by_key(|&i| {
            let r = &records[i];
            (r.topic, r.partition, r.key)
        });
        let wire: Vec<WireRecord<'_, P>> = order
            .iter()
            .enumerate()
            .map(|(rank, &i)| WireRecord {
                topic: records[i].topic,
                key: records[i].key,
                payload: records[i].payload,
                partition: records[i].partition,
                producer_id: idempotent.then_some(self.producer_id),
                sequence: idempotent.then_some(first + rank as u64),
            })
            .collect();
        #[derive(Serialize)]
        #[serde(bound = "P: Serialize")]
        struct Batch<'a, P: ?Sized> {
            records: &'a [WireRecord<'a, P>],
        }
        let body = Body::json(&Batch { records: &wire });
        drop(wire);
        let deadline = Instant::now() + self.client.config().deadline;
        let mut backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.client.config().min_backoff)
            .with_max_delay(self.client.config().max_backoff)
            .without_max_times()
            .build();
        // An attempt whose outcome is unknown may have stored a record; a
        // later attempt that answers "not written" (say `no_leader` while
        // the cluster fails over) says nothing about the earlier one. Such
        // a record's final error stays the unknown one.
        let mut uncertain: Vec<Option<ClientError>> = vec![None; records.len()];
        loop {
            let answer: Result<Results> = self
                .client
                .call(Method::POST, "/produce", Some(&body), None, |e| {
                    idempotent || e.is_not_written()
                })
                .await;
            let results: Vec<Result<Produced>> = match answer {
                Ok(Results(answer)) if answer.len() == records.len() => {
                    let mut results: Vec<Option<Result<Produced>>> =
                        records.iter().map(|_| None).collect();
                    for (&i, result) in order.iter().zip(answer) {
                        results[i] = Some(result);
                    }
                    results
                        .into_iter()
                        .map(|r| r.expect("one result per record"))
                        .collect()
                }
                Ok(_) => {
                    let e = ClientError::Decode {
                        url: "/produce".to_owned(),
                        message: "wrong number of results".to_owned(),
                    };
                    records.iter().map(|_| Err(e.clone())).collect()
                }
                Err(e) => records.iter().map(|_| Err(e.clone())).collect(),
            };
            let results = keep_uncertain(results, &mut uncertain);
            let retry = results.iter().any(|r| {
                r.as_ref()
                    .err()
                    .is_some_and(|e| e.is_retryable() && (idempotent || e.is_not_written()))
            });
            match backoff.next() {
                Some(delay) if retry && Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                }
                _ => return results,
            }
        }
    }
}

/// A record of either kind as [`Producer::send_json`] sends it.
struct Outgoing<'a, P: ?Sized> {
    topic: &'a str,
    key: Option<&'a str>,
    payload: &'a P,
    partition: Option<u32>,
}

/// The results of a batch answer (`{"results": [...]}`), one per record in
/// the order sent.
struct Results(Vec<Result<Produced>>);

impl Decode for Results {
    /// Typed first: an answer whose every entry is a stored record (the
    /// usual case) is read without building a `Value` per entry, which
    /// cost the client more than building and sending the request. An
    /// answer with a failed entry, or one that does not read that way, is
    /// read again entry by entry as `Value`s, as it always was, so failed
    /// entries keep their whole body and odd answers their exact error.
    fn decode(
        _: &reqwest::header::HeaderMap,
        body: bytes::Bytes,
    ) -> std::result::Result<Self, String> {
        #[derive(Deserialize)]
        struct Stored {
            results: Vec<StoredEntry>,
        }
        #[derive(Deserialize)]
        struct StoredEntry {
            /// Present at all, even as `null`: a failed entry.
            #[serde(default, deserialize_with = "present")]
            error: bool,
            partition: Option<u32>,
            offset: Option<u64>,
            epoch: Option<u64>,
        }
        fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
            serde::de::IgnoredAny::deserialize(d).map(|_| true)
        }
        if let Ok(Stored { results }) = serde_json::from_slice::<Stored>(&body) {
            let stored: Option<Vec<Result<Produced>>> = results
                .into_iter()
                .map(|e| match (e.error, e.partition, e.offset) {
                    (false, Some(partition), Some(offset)) => Some(Ok(Produced {
                        partition,
                        offset,
                        epoch: e.epoch,
                    })),
                    _ => None,
                })
                .collect();
            if let Some(stored) = stored {
                return Ok(Self(stored));
            }
        }
        #[derive(Deserialize)]
        struct Values {
            results: Vec<Value>,
        }
        let Values { results } = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok(Self(results.into_iter().map(parse_result).collect()))
    }
}

/// Remembers, per record, the last error of unknown outcome, and puts it
/// in place of a later "not written" error of the same record.
fn keep_uncertain(
    results: Vec<Result<Produced>>,
    uncertain: &mut [Option<ClientError>],
) -> Vec<Result<Produced>> {
    results
        .into_iter()
        .zip(uncertain.iter_mut())
        .map(|(result, unknown)| result.map_err(|e| e.after_unknown(unknown)))
        .collect()
}

fn parse_result(value: Value) -> Result<Produced> {
    if value.get("error").is_some() {
        // One result of a 200 answer: no status of its own; its code and
        // `written` say what happened.
        return Err(ClientError::from_body(None, value));
    }
    serde_json::from_value(value).map_err(|e| ClientError::Decode {
        url: "/produce".to_owned(),
        message: e.to_string(),
    })
}

/// Collects queued records for up to the linger time (or a full batch)
/// and sends them together.
async fn linger(producer: std::sync::Weak<Producer>, mut rx: mpsc::Receiver<Queued>) {
    while let Some(first) = rx.recv().await {
        let Some(producer) = producer.upgrade() else {
            return;
        };
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + producer.config.linger;
        while batch.len() < producer.config.max_batch {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(queued)) => batch.push(queued),
                _ => break,
            }
        }
        let records: Vec<Record> = batch.iter().map(|q| q.record.clone()).collect();
        let results = producer.send_batch(&records).await;
        for (queued, result) in batch.into_iter().zip(results) {
            let _ = queued.reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_once_of_unknown_outcome_never_reports_not_written() {
        let unknown = ClientError::Transport {
            url: "u".into(),
            message: "timed out".into(),
        };
        let not_written = ClientError::NoLeader("failing over".into());
        let at = Produced {
            partition: 0,
            offset: 1,
            epoch: Some(2),
        };
        let mut uncertain = vec![None, None, None];
        // Attempt 1: record 0 unknown, 1 not written, 2 unknown.
        let first = keep_uncertain(
            vec![Err(unknown.clone()), Err(not_written.clone()), Err(unknown)],
            &mut uncertain,
        );
        assert!(!first[0].as_ref().unwrap_err().is_not_written());
        assert!(first[1].as_ref().unwrap_err().is_not_written());
        // Attempt 2: "not written" for 0 and 1, stored for 2.
        let second = keep_uncertain(
            vec![Err(not_written.clone()), Err(not_written), Ok(at)],
            &mut uncertain,
        );
        assert!(
            !second[0].as_ref().unwrap_err().is_not_written(),
            "record 0 may have been stored by attempt 1"
        );
        assert!(second[1].as_ref().unwrap_err().is_not_written());
        assert_eq!(second[2].as_ref().unwrap(), &at);
    }

    fn decode(body: &str) -> std::result::Result<Vec<Result<Produced>>, String> {
        Results::decode(&Default::default(), bytes::Bytes::from(body.to_owned())).map(|r| r.0)
    }

    /// The typed reading of an all-stored answer gives what reading each
    /// entry as a `Value` gives.
    #[test]
    fn a_stored_answer_reads_as_the_value_path_reads_it() {
        let body = r#"{"results":[
            {"topic":"t","partition":1,"offset":7,"epoch":3},
            {"offset":8,"partition":1,"topic":"t"},
            {"topic":"t","partition":2,"offset":9,"epoch":null,"extra":[1,{"a":2}]}]}"#;
        let typed = decode(body).unwrap();
        let values: Vec<Value> = serde_json::from_str::<Value>(body).unwrap()["results"]
            .as_array()
            .unwrap()
            .clone();
        let by_value: Vec<Result<Produced>> = values.into_iter().map(parse_result).collect();
        assert_eq!(typed.len(), 3);
        for (a, b) in typed.iter().zip(&by_value) {
            assert_eq!(a.as_ref().unwrap(), b.as_ref().unwrap());
        }
        assert_eq!(typed[1].as_ref().unwrap().epoch, None);
    }

    /// An answer with a failed entry (even `"error": null`) is read entry
    /// by entry: failed entries keep their code, body and `written`.
    #[test]
    fn a_failed_entry_keeps_its_whole_body() {
        let typed = decode(
            r#"{"results":[
                {"topic":"t","partition":0,"offset":1,"epoch":1},
                {"error":"sequence_conflict","message":"m","written":"no","detail":4}]}"#,
        )
        .unwrap();
        assert_eq!(typed[0].as_ref().unwrap().offset, 1);
        match &typed[1] {
            Err(ClientError::Api { code, body, .. }) => {
                assert_eq!(code, "sequence_conflict");
                assert_eq!(body["detail"], 4);
            }
            other => panic!("{other:?}"),
        }
        assert!(typed[1].as_ref().unwrap_err().is_not_written());
        let null = decode(r#"{"results":[{"error":null,"partition":0,"offset":1}]}"#).unwrap();
        assert!(
            matches!(null[0], Err(ClientError::Api { .. })),
            "an `error` field, even null, marks a failed entry as before"
        );
    }

    /// Odd answers fail exactly as they did when every entry was a `Value`.
    #[test]
    fn odd_answers_fail_as_before() {
        let missing = decode(r#"{"results":[{"topic":"t","offset":1}]}"#).unwrap();
        match &missing[0] {
            Err(ClientError::Decode { message, .. }) => {
                assert!(message.contains("missing field `partition`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let wrong = decode(r#"{"results":[{"partition":"0","offset":1}]}"#).unwrap();
        assert!(matches!(wrong[0], Err(ClientError::Decode { .. })));
        assert!(decode(r#"{"results":{}}"#).is_err());
        assert!(decode("not json").is_err());
    }

    /// A failed result in a batch answer has no status of its own: its
    /// code and `written` decide.
    #[test]
    fn a_failed_result_is_judged_by_its_code_and_written_field() {
        let result = |code: &str, written: &str| {
            parse_result(serde_json::json!({"error": code, "message": "m", "written": written}))
                .unwrap_err()
        };
        let conflict = result("sequence_conflict", "no");
        assert!(!conflict.is_retryable() && conflict.is_not_written());
        let fenced = result("fenced", "unknown");
        assert!(fenced.is_retryable() && !fenced.is_not_written());
        let moved = result("not_leader", "no");
        assert!(moved.is_retryable() && moved.is_not_written());
        let disk = result("storage_error", "unknown");
        assert!(!disk.is_retryable() && !disk.is_not_written());
    }
}
