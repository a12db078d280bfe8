//! Topic administration, cluster metadata, health and metrics endpoints.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use yak_protocol::{ErrorCode, TopicConfig, validate_topic_name};

use super::{
    error::{ApiError, parse_json},
    produce::path_and_query,
};
use crate::{
    node::Node,
    produce::{self, create_topic},
};

const MAX_PARTITIONS: u32 = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTopic {
    name: String,
    #[serde(default)]
    partitions: Option<u32>,
    /// Overrides of the leader's `--retention-bytes` / `--retention-ms`.
    #[serde(default)]
    retention_bytes: Option<u64>,
    #[serde(default)]
    retention_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
struct TopicSummary {
    name: String,
    partitions: u32,
}

/// `GET /topics`: every topic in the cluster metadata.
pub async fn list_topics(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let topics: Vec<TopicSummary> = node
        .store()
        .topics()
        .await?
        .into_iter()
        .map(|(name, partitions)| TopicSummary { name, partitions })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "topics": topics })))
}

/// `POST /topics`: creates a topic (on the leader); 409 if it exists.
pub async fn create(
    node: web::Data<Node>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateTopic = parse_json(&body)?;
    validate_topic_name(&body.name)
        .map_err(|m| ApiError::bad_request(ErrorCode::InvalidTopic, m))?;
    let partitions = body.partitions.unwrap_or(node.config().default_partitions);
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidPartition,
            format!("partitions must be 1 to {MAX_PARTITIONS}, got {partitions}"),
        ));
    }
    for (field, value) in [
        ("retention_bytes", body.retention_bytes),
        ("retention_ms", body.retention_ms),
    ] {
        if value == Some(0) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRetention,
                format!(
                    "{field} must be a positive integer (leave it out for the cluster default)"
                ),
            ));
        }
    }
    if node.gate().epoch().is_none() {
        return Err(ApiError::not_leader(node.leader(), &path_and_query(&req)));
    }
    let config = TopicConfig {
        retention_bytes: body.retention_bytes,
        retention_ms: body.retention_ms,
    };
    let (topic, created) = create_topic(&node, &body.name, partitions, config)
        .await
        .map_err(|e| ApiError::produce(e, &node, &path_and_query(&req)))?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::TopicExists,
            format!("topic {:?} already exists", body.name),
        ));
    }
    Ok(HttpResponse::Created().json(json!({
        "name": topic.name,
        "partitions": topic.partitions.len(),
        "config": topic.config(),
    })))
}

/// `GET /topics/{name}`: per partition, the log range and HWM on this node.
pub async fn describe(
    node: web::Data<Node>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    validate_topic_name(&name).map_err(|m| ApiError::bad_request(ErrorCode::InvalidTopic, m))?;
    let topic = node
        .topic(&name)
        .await?
        .ok_or_else(|| ApiError::unknown_topic(&name))?;
    let replicas = node.cluster().nodes.len();
    let mut partitions = Vec::with_capacity(topic.partitions.len());
    for p in &topic.partitions {
        // The leader knows each follower's progress; any node can read the
        // ISR from the cluster metadata.
        let status = p.replica_status();
        let isr = match status.isr.is_empty() {
            false => status.isr,
            true => node
                .store()
                .isr(&topic.name, p.id)
                .await?
                .unwrap_or_default(),
        };
        partitions.push(json!({
            "partition": p.id,
            "log_start_offset": p.reader().start_offset(),
            "log_end_offset": p.reader().end_offset(),
            "high_water_mark": p.hwm(),
            "size_bytes": p.reader().size_bytes(),
            "under_replicated": isr.len() < replicas,
            "isr": isr,
            "replicas": replicas,
            "followers": status.followers,
        }));
    }
    Ok(HttpResponse::Ok().json(json!({
        "name": topic.name,
        "node_id": node.config().node_id,
        "config": topic.config(),
        "partitions": partitions,
    })))
}

/// `GET /metadata/leader`: who leads, at which epoch, and every live node.
pub async fn leader(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let (lease, epoch) = node.store().lease().await?;
    let nodes = node.store().nodes().await?;
    let leader_id = lease.as_ref().map(|l| l.node_id.clone());
    let leader = leader_id
        .as_ref()
        .and_then(|id| nodes.iter().find(|n| &n.id == id));
    Ok(HttpResponse::Ok().json(json!({
        "leader_id": leader_id,
        "leader_url": leader.map(|n| &n.url),
        "leader_tcp": leader.and_then(|n| n.tcp.as_ref()),
        "epoch": epoch,
        "lease_ttl_ms": lease.map(|l| l.ttl_ms),
        "nodes": nodes,
    })))
}

/// `GET /health`: the process is up.
pub async fn health(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "node_id": node.config().node_id,
        "role": node.role().name(),
    }))
}

/// `GET /ready`: Redis answers and the role is known.
pub async fn ready(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    node.store().ping().await.map_err(|e| {
        ApiError::unavailable(ErrorCode::NotReady, format!("redis is not reachable: {e}"))
    })?;
    let role = node.role();
    if role == crate::role::Role::Stopped {
        return Err(ApiError::unavailable(
            ErrorCode::NotReady,
            "the node is shutting down",
        ));
    }
    Ok(HttpResponse::Ok().json(json!({
        "ready": true,
        "node_id": node.config().node_id,
        "role": role.name(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPartitions {
    partitions: u32,
}

/// `POST /topics/{name}/partitions`: raises a topic's partition count (on
/// the leader). Consumer groups reading it rebalance on their own.
pub async fn add_partitions(
    node: web::Data<Node>,
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: AddPartitions = parse_json(&body)?;
    validate_topic_name(&name).map_err(|m| ApiError::bad_request(ErrorCode::InvalidTopic, m))?;
    if body.partitions > MAX_PARTITIONS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidPartition,
            format!(
                "partitions must be at most {MAX_PARTITIONS}, got {}",
                body.partitions
            ),
        ));
    }
    if node.gate().epoch().is_none() {
        return Err(ApiError::not_leader(node.leader(), &path_and_query(&req)));
    }
    let refused = |e| ApiError::produce(e, &node, &path_and_query(&req));
    let current = node
        .topic(&name)
        .await?
        .ok_or_else(|| ApiError::unknown_topic(&name))?
        .partitions
        .len() as u32;
    if body.partitions <= current {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidPartition,
            format!(
                "topic {name:?} has {current} partitions; ask for more (a partition count only grows)"
            ),
        ));
    }
    let stored = produce::add_partitions(&node, &name, body.partitions)
        .await
        .map_err(refused)?;
    Ok(HttpResponse::Ok().json(json!({ "name": name.as_str(), "partitions": stored })))
}
