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
use yak_protocol::{BATCH_CONTENT_TYPE, ErrorCode, Written};

use super::{error::ApiError, produce::path_and_query};
use crate::{node::Node, produce::store_batch};

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
    if !content_type.starts_with(BATCH_CONTENT_TYPE) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            format!("a binary batch is sent as {BATCH_CONTENT_TYPE}, not {content_type:?}"),
        )
        .written(Written::No));
    }
    let stored = store_batch(&node, &topic, partition, &body)
        .await
        .map_err(|e| ApiError::produce(e, &node, &path_and_query(&req)))?;
    Ok(HttpResponse::Ok().json(stored))
}
