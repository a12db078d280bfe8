//! `POST /produce/batch?topic=..&partition=..`: the binary produce path.
//!
//! The body is one record batch in the storage format (`docs/storage.md`),
//! built by the client (yak-client's `Producer::send_records`). The leader
//! checks it completely ([`crate::produce::store_batch`]), stamps its
//! offsets and epoch in place and stores and replicates the bytes it
//! received: no JSON and no re-encoding per record. Nothing is stored
//! unless the whole batch is valid.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde::Deserialize;

use super::{error::ApiError, produce::path_and_query};
use crate::{node::Node, produce::store_batch};

/// The media type of a binary batch body.
pub const CONTENT_TYPE: &str = "application/vnd.yak.batch";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    topic: String,
    partition: u32,
}

pub async fn produce_batch(
    node: web::Data<Node>,
    req: HttpRequest,
    query: web::Query<BatchQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let BatchQuery { topic, partition } = query.into_inner();
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(CONTENT_TYPE) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("a binary batch is sent as {CONTENT_TYPE}, not {content_type:?}"),
        )
        .with("written", "no"));
    }
    let stored = store_batch(&node, &topic, partition, &body)
        .await
        .map_err(|e| ApiError::produce(e, &node, &path_and_query(&req)))?;
    Ok(HttpResponse::Ok().json(stored))
}
