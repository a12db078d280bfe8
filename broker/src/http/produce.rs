//! `POST /produce`: validate, route records to partitions, build one batch
//! per run of records, hand the batches to the partitions' writers, answer
//! with offsets. Nothing is stored unless the whole request is valid.

use std::{borrow::Cow, collections::BTreeMap};

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::future::join_all;
use partition_log::BatchBuilder;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use yak_protocol::{ErrorCode, validate_topic_name};

use super::error::{ApiError, parse_json};
use crate::{
    clock::now_ms,
    config::MAX_KEY_BYTES,
    node::Node,
    partition::Written,
    partitioner::{Spreader, partition_for_key},
    produce::{count_produced, resolve_topics},
};

/// A record as the request holds it: strings and the payload are borrowed
/// from the body where they can be (no copy per record).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordIn<'a> {
    #[serde(borrow)]
    pub topic: Cow<'a, str>,
    #[serde(default, borrow)]
    pub key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub payload: &'a RawValue,
    #[serde(default)]
    pub partition: Option<u32>,
    #[serde(default)]
    pub producer_id: Option<u64>,
    #[serde(default)]
    pub sequence: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Produced<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    /// The leader epoch the write was acknowledged at.
    pub epoch: u64,
}

/// One entry of a batch answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Outcome<'a> {
    Stored(Produced<'a>),
    Failed(serde_json::Value),
}

/// Parses either body form. The batch form is recognised by its `records`
/// field (the top level is scanned, not parsed, first) so that a malformed
/// record gets a precise message.
///
/// A well-formed batch (`{"records": [...]}` and nothing else) is read in
/// one pass first: scanning the top level before parsing the records read
/// every byte twice, a third of the leader's parsing time. Anything that
/// pass refuses (the single form, a stray or repeated field, a bad record)
/// is parsed the careful way below, which decides the answer as it always
/// did; the fast pass only ever accepts what the careful one accepts, with
/// the same records.
fn parse_body(body: &[u8]) -> Result<(bool, Vec<RecordIn<'_>>), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch<'a> {
        #[serde(borrow)]
        records: Vec<RecordIn<'a>>,
    }
    if let Ok(Batch { records }) = serde_json::from_slice::<Batch<'_>>(body)
        && !records.is_empty()
    {
        return Ok((false, records));
    }
    parse_body_carefully(body)
}

/// [`parse_body`] the careful way: the top level first, then the records.
fn parse_body_carefully(body: &[u8]) -> Result<(bool, Vec<RecordIn<'_>>), ApiError> {
    let top: BTreeMap<Cow<'_, str>, &RawValue> = parse_json(body)?;
    let Some(records) = top.get("records") else {
        return Ok((true, vec![parse_json(body)?]));
    };
    if let Some(other) = top.keys().find(|k| *k != "records") {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            format!("unknown field `{other}`, expected `records`"),
        ));
    }
    let records: Vec<RecordIn<'_>> = parse_json(records.get().as_bytes())?;
    if records.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            "records is empty",
        ));
    }
    Ok((false, records))
}

pub async fn produce(
    node: web::Data<Node>,
    spreader: web::Data<Spreader>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // Nothing is stored before the write path: every error up to there
    // says so.
    let not_written = |e: ApiError| e.written(yak_protocol::Written::No);
    let (single, records) = parse_body(&body).map_err(not_written)?;
    if node.gate().epoch().is_none() {
        return Err(ApiError::not_leader(node.leader(), &path_and_query(&req)));
    }
    validate(&node, &records).map_err(not_written)?;
    let wanted: Vec<(&str, Option<u32>)> =
        records.iter().map(|r| (&*r.topic, r.partition)).collect();
    let topics = resolve_topics(&node, &wanted)
        .await
        .map_err(|e| ApiError::produce(e, &node, &path_and_query(&req)))?;

    // Route every record to its partition, keeping request order.
    let mut groups: BTreeMap<(&str, u32), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let count = topics[&*r.topic].partitions.len() as u32;
        let partition = match (r.partition, &r.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key.as_bytes(), count),
            (None, None) => spreader.partition(r.producer_id.zip(r.sequence), count),
        };
        groups.entry((&*r.topic, partition)).or_default().push(i);
    }

    let timestamp = now_ms() as i64;
    let sends = groups.iter().map(|(&(topic, partition), indices)| {
        let runs = runs(&records, indices);
        let batches = runs
            .iter()
            .map(|run| build_batch(&records, run, timestamp))
            .collect();
        let handle = topics[topic].partitions[partition as usize].clone();
        async move { (runs, handle.produce(batches).await) }
    });
    let outcomes = join_all(sends).await;

    let mut results: Vec<Option<Result<Produced, ApiError>>> =
        (0..records.len()).map(|_| None).collect();
    for (((topic, partition), _), (runs, outcome)) in groups.iter().zip(outcomes) {
        match outcome {
            Ok(written) => {
                for (
                    run,
                    Written {
                        base_offset, epoch, ..
                    },
                ) in runs.iter().zip(written)
                {
                    for (k, &i) in run.iter().enumerate() {
                        results[i] = Some(Ok(Produced {
                            topic,
                            partition: *partition,
                            offset: base_offset + k as u64,
                            epoch,
                        }));
                    }
                    let bytes: usize = run.iter().map(|&i| records[i].payload.get().len()).sum();
                    count_produced(&node, topic, run.len() as u64, bytes as u64);
                }
            }
            Err(e) => {
                let error = ApiError::from(e);
                for &i in runs.iter().flatten() {
                    results[i] = Some(Err(error.clone()));
                }
            }
        }
    }
    let mut results = results.into_iter().map(|r| r.expect("every record routed"));
    if single {
        return Ok(HttpResponse::Ok().json(results.next().unwrap()?));
    }
    #[derive(Serialize)]
    struct Answer<'a> {
        results: Vec<Outcome<'a>>,
    }
    let results = results
        .map(|r| match r {
            Ok(p) => Outcome::Stored(p),
            Err(e) => Outcome::Failed(e.body()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Answer { results }))
}

pub fn path_and_query(req: &HttpRequest) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |pq| pq.as_str().to_owned())
}

fn validate(node: &Node, records: &[RecordIn<'_>]) -> Result<(), ApiError> {
    let max_payload = node.config().max_payload_bytes;
    let mut sequences = Sequences::default();
    for (i, r) in records.iter().enumerate() {
        let at = |msg: String| {
            if records.len() == 1 {
                msg
            } else {
                format!("record {i}: {msg}")
            }
        };
        validate_topic_name(&r.topic)
            .map_err(|m| ApiError::bad_request(ErrorCode::InvalidTopic, at(m)))?;
        if let Some(key) = &r.key
            && key.len() > MAX_KEY_BYTES
        {
            return Err(ApiError::too_large(
                ErrorCode::KeyTooLarge,
                at(format!(
                    "key is {} bytes; the limit is {MAX_KEY_BYTES}",
                    key.len()
                )),
            ));
        }
        let payload = r.payload.get().len();
        if payload > max_payload {
            return Err(ApiError::too_large(
                ErrorCode::PayloadTooLarge,
                at(format!(
                    "payload is {payload} bytes; the limit is {max_payload}"
                )),
            ));
        }
        match (r.producer_id, r.sequence) {
            (None, None) => {}
            (Some(id), Some(seq)) => {
                if id > i64::MAX as u64 || seq > i32::MAX as u64 {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidRequest,
                        at(format!(
                            "producer_id must be at most {} and sequence at most {}",
                            i64::MAX,
                            i32::MAX
                        )),
                    ));
                }
                if !sequences.insert(id, seq) {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidRequest,
                        at(format!("sequence {seq} of producer {id} appears twice")),
                    ));
                }
            }
            _ => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidRequest,
                    at("producer_id and sequence go together".to_owned()),
                ));
            }
        }
    }
    Ok(())
}

/// The (producer id, sequence) pairs of a request seen so far, to refuse
/// one that appears twice. A producer numbers its records consecutively,
/// so pairs usually arrive from one producer in increasing order: while
/// they do, none can repeat and they are only listed; the first pair out
/// of that order moves the list into a set. Hashing every pair cost more
/// than the rest of the checks together.
#[derive(Default)]
struct Sequences {
    /// Every pair so far, in the increasing run they arrived in.
    run: Vec<(u64, u64)>,
    /// Every pair so far, once one arrived out of order.
    set: Option<std::collections::HashSet<(u64, u64)>>,
}

impl Sequences {
    /// Adds a pair; false if it was there already.
    fn insert(&mut self, id: u64, seq: u64) -> bool {
        if let Some(set) = &mut self.set {
            return set.insert((id, seq));
        }
        match self.run.last() {
            Some(&(last_id, last_seq)) if last_id != id || seq <= last_seq => {
                let mut set: std::collections::HashSet<(u64, u64)> = self.run.drain(..).collect();
                let new = set.insert((id, seq));
                self.set = Some(set);
                new
            }
            _ => {
                self.run.push((id, seq));
                true
            }
        }
    }
}

/// Splits a partition's records into runs that can share one batch: all
/// non-idempotent, or one producer with consecutive sequences.
fn runs(records: &[RecordIn<'_>], indices: &[usize]) -> Vec<Vec<usize>> {
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for &i in indices {
        let extends = runs.last().is_some_and(|run| {
            let last = &records[*run.last().unwrap()];
            let first = &records[run[0]];
            match (first.producer_id, records[i].producer_id) {
                (None, None) => true,
                (Some(a), Some(b)) => a == b && last.sequence.map(|s| s + 1) == records[i].sequence,
                _ => false,
            }
        });
        match runs.last_mut() {
            Some(run) if extends => run.push(i),
            _ => runs.push(vec![i]),
        }
    }
    runs
}

fn build_batch(records: &[RecordIn<'_>], run: &[usize], timestamp: i64) -> Vec<u8> {
    let size: usize = run
        .iter()
        .map(|&i| {
            records[i].payload.get().len() + records[i].key.as_ref().map_or(0, |k| k.len()) + 8
        })
        .sum();
    let first = &records[run[0]];
    let mut builder = BatchBuilder::with_capacity(timestamp, size);
    if let (Some(id), Some(seq)) = (first.producer_id, first.sequence) {
        builder = builder.producer(id as i64, seq as i32);
    }
    for &i in run {
        let r = &records[i];
        builder.push(
            timestamp,
            r.key.as_deref().map(str::as_bytes),
            r.payload.get().as_bytes(),
        );
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;

    /// What a parse decided, comparable: the records or the error body.
    fn outcome(parsed: Result<(bool, Vec<RecordIn<'_>>), ApiError>) -> String {
        match parsed {
            Ok((single, records)) => format!("{single} {records:?}"),
            Err(e) => format!("{} {}", e.status_code(), e.body()),
        }
    }

    /// The one-pass reading decides every body as the careful reading does.
    #[test]
    fn the_fast_pass_answers_as_the_careful_parse() {
        let bodies = [
            r#"{"records":[{"topic":"t","payload":{"a":[1,2]},"producer_id":1,"sequence":0}]}"#,
            r#" { "records" : [ {"payload":"x","topic":"t\u0041","key":"k\n"} ] } "#,
            r#"{"rec\u006frds":[{"topic":"t","payload":1}]}"#,
            r#"{"records":[{"topic":"t","payload":1}],"records":[{"topic":"u","payload":2}]}"#,
            r#"{"records":[]}"#,
            r#"{"records":[{"topic":"t","payload":1}],"other":1}"#,
            r#"{"other":1,"records":[{"topic":"t","payload":1}]}"#,
            r#"{"records":[{"topic":"t","payload":1,"color":"red"}]}"#,
            r#"{"records":[{"topic":"t"}]}"#,
            r#"{"records":[{"topic":"t","payload":1,"partition":-1}]}"#,
            r#"{"records":{"topic":"t","payload":1}}"#,
            r#"{"records":[{"topic":"t","payload":1}]} trailing"#,
            r#"{"records":[{"topic":"t","payload":tru}]}"#,
            r#"{"topic":"t","payload":1}"#,
            r#"{"topic":"t","payload":1,"records":[]}"#,
            r#"[1]"#,
            "",
        ];
        for body in bodies {
            assert_eq!(
                outcome(parse_body(body.as_bytes())),
                outcome(parse_body_carefully(body.as_bytes())),
                "{body}"
            );
        }
        let (single, records) = parse_body(bodies[0].as_bytes()).unwrap();
        assert!(!single);
        assert_eq!(records[0].payload.get(), r#"{"a":[1,2]}"#);
        assert!(matches!(records[0].topic, Cow::Borrowed(_)), "no copy");
    }

    /// A pair is refused the second time, whether pairs arrive in order
    /// (listed) or not (a set), and across the switch from one to the other.
    #[test]
    fn a_repeated_sequence_is_found_in_and_out_of_order() {
        let mut s = Sequences::default();
        assert!(s.insert(1, 0) && s.insert(1, 1) && s.insert(1, 5));
        assert!(s.set.is_none(), "in order: no set");
        assert!(!s.insert(1, 1), "repeats one listed in order");
        let mut s = Sequences::default();
        assert!(s.insert(1, 3) && s.insert(1, 4));
        assert!(s.insert(2, 0), "another producer");
        assert!(s.set.is_some());
        assert!(!s.insert(1, 3) && !s.insert(2, 0));
        assert!(s.insert(1, 2) && !s.insert(1, 2));
        let mut s = Sequences::default();
        assert!(s.insert(1, 7));
        assert!(!s.insert(1, 7), "the same pair twice in a row");
    }
}
