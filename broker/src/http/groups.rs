//! `/groups/…`: the consumer-group API, a thin adapter over the leader's
//! [`Coordinator`](crate::groups::Coordinator). Every call is the
//! leader's: another node redirects like any leader-only call.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use yak_protocol::group::{Commit, GroupList, Heartbeat, HeartbeatAnswer, Join, Reset};

use super::{
    error::{ApiError, parse_json},
    produce::path_and_query,
};
use crate::{groups::GroupError, node::Node};

/// Maps a coordinator error, redirecting to the leader where it is one.
fn refused(node: &Node, req: &HttpRequest) -> impl FnOnce(GroupError) -> ApiError {
    move |e| ApiError::group(e, node, &path_and_query(req))
}

pub async fn join(
    node: web::Data<Node>,
    req: HttpRequest,
    group: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: Join = parse_json(&body)?;
    let joined = node
        .groups()
        .join(&group, body)
        .await
        .map_err(refused(&node, &req))?;
    Ok(HttpResponse::Ok().json(joined))
}

pub async fn heartbeat(
    node: web::Data<Node>,
    req: HttpRequest,
    group: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: Heartbeat = parse_json(&body)?;
    let (generation, rebalance) = node
        .groups()
        .heartbeat(&group, &body.member_id, body.generation)
        .await
        .map_err(refused(&node, &req))?;
    Ok(HttpResponse::Ok().json(HeartbeatAnswer {
        generation,
        rebalance,
    }))
}

pub async fn leave(
    node: web::Data<Node>,
    req: HttpRequest,
    group: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: Heartbeat = parse_json(&body)?;
    node.groups()
        .leave(&group, &body.member_id)
        .await
        .map_err(refused(&node, &req))?;
    Ok(HttpResponse::Ok().json(json!({ "left": true })))
}

pub async fn commit(
    node: web::Data<Node>,
    req: HttpRequest,
    group: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: Commit = parse_json(&body)?;
    let offsets = node
        .groups()
        .commit(&group, body)
        .await
        .map_err(refused(&node, &req))?;
    Ok(HttpResponse::Ok().json(offsets))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetsQuery {
    topic: Option<String>,
}

pub async fn offsets(
    node: web::Data<Node>,
    req: HttpRequest,
    group: web::Path<String>,
    query: web::Query<OffsetsQuery>,
) -> Result<HttpResponse, ApiError> {
    let offsets = node
        .groups()
        .offsets(&group, query.topic.as_deref())
        .await
        .map_err(refused(&node, &req))?;
    Ok(HttpResponse::Ok().json(offsets))
}

pub async fn reset(
    node: web::Data<Node>,
    req: HttpRequest,
    group: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: Reset = parse_json(&body)?;
    let to = body
        .target()
        .map_err(|m| ApiError::group(GroupError::Invalid(m), &node, ""))?;
    let offsets = node
        .groups()
        .reset(&group, to, body.topics)
        .await
        .map_err(refused(&node, &req))?;
    Ok(HttpResponse::Ok().json(offsets))
}

pub async fn describe(
    node: web::Data<Node>,
    req: HttpRequest,
    group: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let detail = node
        .groups()
        .describe(&group)
        .await
        .map_err(refused(&node, &req))?;
    Ok(HttpResponse::Ok().json(detail))
}

pub async fn list(node: web::Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let groups = node.groups().list().await.map_err(refused(&node, &req))?;
    Ok(HttpResponse::Ok().json(GroupList { groups }))
}
