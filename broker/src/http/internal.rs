//! `/internal/…`: the replication endpoints nodes call on each other. Only
//! requests carrying the cluster token reach them when one is set (checked
//! for every request in [`super::access`]). [`queue_round`] also takes the
//! rounds that arrive on the binary port.

use std::time::Duration;

use actix_web::{HttpResponse, http::StatusCode, web};
use bytes::Bytes;
use tokio::time::Instant;

use super::error::ApiError;
use crate::{
    node::Node,
    partition::{FetchVerdict, Partition, ReplicaError},
    peer::{
        EpochEndParams, FetchParams, HWM_HEADER, IN_SYNC_HEADER, LOG_END_HEADER, LOG_START_HEADER,
        LeaderPosition, Refusal, ReplicateParams,
    },
};

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let e = ApiError::new(StatusCode::CONFLICT, r.code(), r.to_string());
        match r {
            Refusal::StaleEpoch { current } => e.with("epoch", current),
            Refusal::NeedsTruncation { end } | Refusal::NonContiguous { end } => e.with("end", end),
            Refusal::BelowLogStart { start } => e.with("start", start),
            Refusal::NotLeader => e,
        }
    }
}

/// How often, at most, an in-sync follower's fetch is answered.
const HWM_POLL_EVERY: Duration = Duration::from_millis(50);

async fn partition(node: &Node, topic: &str, id: u32) -> Result<Partition, ApiError> {
    let mut found = node
        .topic(topic)
        .await?
        .ok_or_else(|| ApiError::unknown_topic(topic))?;
    if id as usize >= found.partitions.len() {
        // The topic may have grown since this node opened it.
        found = node
            .refresh_topic(topic)
            .await?
            .ok_or_else(|| ApiError::unknown_topic(topic))?;
    }
    found
        .partitions
        .get(id as usize)
        .cloned()
        .ok_or_else(|| ApiError::invalid_partition(topic, id, found.partitions.len() as u32))
}

/// `POST /internal/replicate`: a leader's round, byte for byte.
pub async fn replicate(
    node: web::Data<Node>,
    query: web::Query<ReplicateParams>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let end = queue_round(&node, query.into_inner(), body).await?.await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "end": end })))
}

/// Checks a leader's round and queues it on its partition, behind the
/// rounds queued before it; the returned future answers it. Both
/// transports of a round (this endpoint and the binary port's
/// `Replicate`) take it here.
pub(crate) async fn queue_round(
    node: &Node,
    q: ReplicateParams,
    batches: Bytes,
) -> Result<impl Future<Output = Result<u64, ApiError>> + use<>, ApiError> {
    let current = node.highest_epoch();
    if q.epoch < current {
        return Err(Refusal::StaleEpoch { current }.into());
    }
    node.observe_leader(&q.leader, q.epoch);
    let partition = partition(node, &q.topic, q.partition).await?;
    let leader = LeaderPosition {
        hwm: q.hwm,
        log_start: q.log_start,
    };
    let answer = partition
        .queue_replicate(q.epoch, q.prev, batches, leader)
        .await;
    Ok(async move {
        answer.await.map_err(|e| match e {
            ReplicaError::Refused(r) => r.into(),
            e => ApiError::storage(e),
        })
    })
}

/// `GET /internal/fetch`: a follower catching up (or, in sync, waiting).
pub async fn fetch(
    node: web::Data<Node>,
    query: web::Query<FetchParams>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let partition = partition(&node, &q.topic, q.partition).await?;
    match partition.fetch_check(q.epoch, q.replica, q.offset).await {
        FetchVerdict::InSync => {
            // Long poll: answer when the HWM moves, so the follower's HWM
            // stays fresh without a busy loop. Not sooner than
            // HWM_POLL_EVERY after the ask: under load the HWM moves with
            // every commit, and each push carries it to the follower
            // anyway, so answering every move would cost the leader an
            // HTTP request (and a writer command) per commit.
            let asked = Instant::now();
            let mut hwm = partition.watch_hwm();
            let seen = *hwm.borrow_and_update();
            let wait = Duration::from_millis(q.wait_ms.min(5_000));
            let _ = tokio::time::timeout(wait, hwm.wait_for(|&h| h > seen)).await;
            tokio::time::sleep_until(asked + wait.min(HWM_POLL_EVERY)).await;
            Ok(HttpResponse::Ok()
                .insert_header((IN_SYNC_HEADER, "1"))
                .insert_header((HWM_HEADER, partition.hwm().to_string()))
                .insert_header((
                    LOG_START_HEADER,
                    partition.reader().start_offset().to_string(),
                ))
                .finish())
        }
        FetchVerdict::Behind { end } => {
            let start = partition.reader().start_offset();
            if q.offset < start {
                return Err(Refusal::BelowLogStart { start }.into());
            }
            let bytes = partition
                .reader()
                .read(q.offset, end, q.max_bytes.clamp(1, 16 * 1024 * 1024))
                .map_err(ApiError::storage)?;
            Ok(HttpResponse::Ok()
                .insert_header((HWM_HEADER, partition.hwm().to_string()))
                .insert_header((LOG_END_HEADER, end.to_string()))
                .insert_header((LOG_START_HEADER, start.to_string()))
                .content_type("application/octet-stream")
                .body(bytes))
        }
        FetchVerdict::Refused(r) => Err(r.into()),
    }
}

/// `GET /internal/epoch_end`: KIP-101's end offset for an epoch, answered
/// only while this node leads at the asker's leader epoch.
pub async fn epoch_end(
    node: web::Data<Node>,
    query: web::Query<EpochEndParams>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if node.gate().epoch() != Some(q.leader_epoch) {
        return Err(Refusal::NotLeader.into());
    }
    let partition = partition(&node, &q.topic, q.partition).await?;
    Ok(HttpResponse::Ok().json(partition.epoch_end(q.epoch)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The follower reads a refusal back from its body by the code
    /// `Refusal::code` names: the code written must be that one.
    #[test]
    fn a_refusal_is_answered_with_its_own_code() {
        for r in [
            Refusal::StaleEpoch { current: 4 },
            Refusal::NeedsTruncation { end: 7 },
            Refusal::NonContiguous { end: 8 },
            Refusal::BelowLogStart { start: 9 },
            Refusal::NotLeader,
        ] {
            let body = ApiError::from(r).body();
            assert_eq!(body["error"], r.code().as_str(), "{r:?}");
            // What the follower answers, the leader's client reads back.
            assert_eq!(Refusal::from_body(&body), Some(r), "{body}");
        }
    }
}
