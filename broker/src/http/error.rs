//! [`ApiError`]: every error the HTTP API returns, and the one place where
//! errors become responses — a status and a JSON body
//! `{"error": "<code>", "message": "<text>", ...}`.
//!
//! The code is a [`yak_protocol::ErrorCode`], the list clients read too.
//! Produce errors also say `"written"` ([`Written`]): `"no"` when the
//! records are certainly not stored (safe to retry anywhere), `"unknown"`
//! when they may be (retry with the same producer id and sequence to get
//! the original offsets).

use actix_web::{
    HttpResponse, ResponseError,
    body::{BoxBody, EitherBody},
    dev::ServiceResponse,
    http::{StatusCode, header},
    middleware::ErrorHandlerResponse,
};
use serde_json::{Map, Value, json};
use yak_protocol::{ErrorCode, Written};

use crate::{
    groups::GroupError,
    node::{Node, NodeError},
    partition::WriteError,
    produce::ProduceError,
    store::StoreError,
};

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// Fields after `error` and `message`, in the order added (a `Vec`:
    /// an error travels in every `Result`, and few have any).
    extra: Vec<(String, Value)>,
    location: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
            location: None,
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn too_large(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    pub fn unavailable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// A missing or wrong token; answered with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    pub fn unknown_topic(topic: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownTopic,
            format!("topic {topic:?} does not exist"),
        )
    }

    /// Adds a field to the JSON body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.retain(|(k, _)| k != key);
        self.extra.push((key.to_owned(), value.into()));
        self
    }

    /// Says whether a produce's records may have been stored (the
    /// `"written"` field).
    pub fn written(self, written: Written) -> Self {
        self.with("written", written.as_str())
    }

    /// A partition number past the topic's partitions.
    pub fn invalid_partition(topic: &str, partition: u32, count: u32) -> Self {
        Self::bad_request(
            ErrorCode::InvalidPartition,
            ProduceError::InvalidPartition {
                topic: topic.to_owned(),
                partition,
                count,
            }
            .to_string(),
        )
    }

    /// A write sent to a node that does not lead. With a known leader URL it
    /// is a 307 whose `Location` repeats the request there (so `curl -L`
    /// follows it); without one, a 503.
    pub fn not_leader(leader: Option<(String, Option<String>)>, path_and_query: &str) -> Self {
        match leader {
            Some((id, Some(url))) => {
                let mut e = Self::new(
                    StatusCode::TEMPORARY_REDIRECT,
                    ErrorCode::NotLeader,
                    format!("this node does not lead; the leader is {id} at {url}"),
                )
                .with("leader_id", id)
                .with("leader_url", url.clone())
                .written(Written::No);
                e.location = Some(format!("{url}{path_and_query}"));
                e
            }
            other => Self::unavailable(
                ErrorCode::NoLeader,
                "this node does not lead and no leader is known; retry shortly",
            )
            .with("leader_id", other.map(|(id, _)| id))
            .written(Written::No),
        }
    }

    /// Says `"written": "no"` if `path` is a produce path: for errors
    /// raised before the request reaches the write path (access, query,
    /// body parsing).
    pub fn refused_at(self, path: &str) -> Self {
        if is_produce_path(path) {
            self.written(Written::No)
        } else {
            self
        }
    }

    /// The JSON body: `{"error", "message", ...extra fields}`.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), self.code.as_str().into());
        body.insert("message".into(), self.message.clone().into());
        body.extend(self.extra.clone());
        Value::Object(body)
    }

    /// An internal storage failure.
    pub fn storage(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::StorageError,
            e.to_string(),
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(location) = &self.location {
            response.insert_header((header::LOCATION, location.as_str()));
        }
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            StatusCode::UNAUTHORIZED => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"yak\""));
            }
            _ => {}
        }
        response.json(self.body())
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        let written = if e.is_definite() {
            Written::No
        } else {
            Written::Unknown
        };
        let message = e.to_string();
        let e = match e {
            WriteError::BeforeAppend(inner) => *inner,
            e => e,
        };
        let error = match e {
            WriteError::NotLeader => Self::unavailable(ErrorCode::NotLeader, message),
            WriteError::SequenceConflict => {
                Self::new(StatusCode::CONFLICT, ErrorCode::SequenceConflict, message)
            }
            WriteError::NotEnoughReplicas { .. } => {
                Self::unavailable(ErrorCode::NotEnoughReplicas, message)
            }
            WriteError::Fenced { .. } => Self::unavailable(ErrorCode::Fenced, message),
            WriteError::Unavailable(_) => Self::unavailable(ErrorCode::Unavailable, message),
            WriteError::LogBehindHwm { .. } => Self::unavailable(ErrorCode::NotReady, message),
            WriteError::Closed | WriteError::Interrupted => {
                Self::unavailable(ErrorCode::ShuttingDown, message)
            }
            WriteError::Storage(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::StorageError,
                message,
            ),
            WriteError::BeforeAppend(_) => unreachable!("unwrapped above"),
        };
        error.written(written)
    }
}

impl ApiError {
    /// A produce error; a node that does not lead answers with a redirect
    /// that repeats `path_and_query` on the leader.
    pub fn produce(e: ProduceError, node: &Node, path_and_query: &str) -> Self {
        let written = e.written();
        let message = e.to_string();
        let error = match e {
            ProduceError::InvalidTopic(_) => Self::bad_request(ErrorCode::InvalidTopic, message),
            ProduceError::UnknownTopic(topic) => Self::unknown_topic(&topic),
            ProduceError::InvalidPartition { .. } => {
                Self::bad_request(ErrorCode::InvalidPartition, message)
            }
            ProduceError::InvalidBatch(_) => Self::bad_request(ErrorCode::InvalidBatch, message),
            ProduceError::KeyTooLarge(_) => Self::too_large(ErrorCode::KeyTooLarge, message),
            ProduceError::PayloadTooLarge(_) => {
                Self::too_large(ErrorCode::PayloadTooLarge, message)
            }
            ProduceError::NotLeader => Self::not_leader(node.leader(), path_and_query),
            ProduceError::Metadata(e) => e.into(),
            ProduceError::Node(e) => e.into(),
            ProduceError::Storage(e) => Self::storage(e),
            ProduceError::Write(e) => return e.into(),
            ProduceError::NoResult => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                message,
            ),
        };
        error.written(written)
    }
}

impl ApiError {
    /// A consumer-group error; a node that does not lead answers with a
    /// redirect that repeats `path_and_query` on the leader.
    pub fn group(e: GroupError, node: &Node, path_and_query: &str) -> Self {
        let status = match &e {
            GroupError::UnknownGroup(_) | GroupError::UnknownTopic(_) => StatusCode::NOT_FOUND,
            GroupError::UnknownMember { .. }
            | GroupError::StaleGeneration { .. }
            | GroupError::NotAssigned { .. }
            | GroupError::AssignorMismatch { .. }
            | GroupError::ProtocolMismatch { .. }
            | GroupError::Rebalancing(_)
            | GroupError::NotEmpty { .. } => StatusCode::CONFLICT,
            GroupError::InvalidGroup(_)
            | GroupError::InvalidTopic(_)
            | GroupError::Invalid(_)
            | GroupError::OffsetOutOfRange { .. } => StatusCode::BAD_REQUEST,
            GroupError::Storage { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            GroupError::NotLeader | GroupError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let error = Self::new(status, e.code(), e.to_string());
        match e {
            GroupError::NotLeader => Self::not_leader(node.leader(), path_and_query),
            GroupError::Store(e) => e.into(),
            GroupError::StaleGeneration { current, .. } => error.with("generation", current),
            GroupError::OffsetOutOfRange { hwm, .. } => error.with("high_water_mark", hwm),
            _ => error,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::unavailable(
            ErrorCode::Unavailable,
            format!("cluster metadata unavailable: {e}"),
        )
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(e) => e.into(),
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                other.to_string(),
            ),
        }
    }
}

/// `/produce` and `/produce/…`: the paths whose errors say `written`.
pub fn is_produce_path(path: &str) -> bool {
    path.strip_prefix("/produce")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Parses a JSON body into `T`, telling malformed JSON from a well-formed
/// body of the wrong shape.
pub fn parse_json<'de, T: serde::Deserialize<'de>>(body: &'de [u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidJson,
            "the request body is empty",
        ));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::bad_request(ErrorCode::InvalidRequest, e.to_string())
        }
        _ => ApiError::bad_request(ErrorCode::InvalidJson, format!("malformed JSON: {e}")),
    })
}

/// Rewrites the errors actix-web produces itself (unknown route, wrong
/// method, body too large, bad query string) into the JSON error shape.
pub fn render_framework_error<B>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = res
        .response()
        .error()
        .map(|e| e.to_string())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        s if s.is_client_error() => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    let (req, _) = res.into_parts();
    let mut body = json!({"error": code.as_str(), "message": message});
    if is_produce_path(req.path()) && status.is_client_error() {
        body["written"] = Written::No.as_str().into();
    }
    let response = HttpResponse::build(status).json(body);
    let res = ServiceResponse::new(req, response).map_into_boxed_body();
    Ok(ErrorHandlerResponse::Response(
        res.map_body(|_, b| EitherBody::<B, BoxBody>::right(b)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_written(e: WriteError) -> (Value, Value) {
        let body = ApiError::from(e).body();
        (body["error"].clone(), body["written"].clone())
    }

    /// Check 5 of issue 8: `written` is `no` only when nothing can have
    /// been appended; an error raised before the append keeps its code.
    #[test]
    fn write_errors_say_whether_anything_was_written() {
        let after_append = [
            WriteError::Fenced { epoch: 3 },
            WriteError::Unavailable("redis".into()),
            WriteError::Storage("disk".into()),
            WriteError::LogBehindHwm { end: 1, hwm: 2 },
            WriteError::Interrupted,
            WriteError::NotEnoughReplicas {
                isr: 1,
                min: 2,
                appended: true,
            },
        ];
        for e in after_append {
            let (code, written) = code_and_written(e.clone());
            assert_eq!(written, "unknown", "{e:?}");
            let before = code_and_written(e.clone().before_append());
            assert_eq!(before, (code, "no".into()), "{e:?} before the append");
        }
        for e in [
            WriteError::NotLeader,
            WriteError::SequenceConflict,
            WriteError::Closed,
            WriteError::NotEnoughReplicas {
                isr: 1,
                min: 2,
                appended: false,
            },
        ] {
            assert_eq!(code_and_written(e.clone()).1, "no", "{e:?}");
        }
    }

    /// A client over the binary port, or reading a batch's per-record
    /// results, sees the code but no status: the code's class must say
    /// what the HTTP status says (4xx: refused; 307/503: retry; 500:
    /// failed).
    #[test]
    fn each_status_agrees_with_the_class_of_its_code() {
        let errors = [
            WriteError::NotLeader,
            WriteError::SequenceConflict,
            WriteError::NotEnoughReplicas {
                isr: 1,
                min: 2,
                appended: false,
            },
            WriteError::Fenced { epoch: 3 },
            WriteError::Unavailable("redis".into()),
            WriteError::LogBehindHwm { end: 1, hwm: 2 },
            WriteError::Closed,
            WriteError::Interrupted,
            WriteError::Storage("disk".into()),
        ]
        .map(ApiError::from);
        let others = [
            ApiError::unknown_topic("t"),
            ApiError::unauthorized("no token"),
            ApiError::invalid_partition("t", 3, 1),
            ApiError::storage("disk"),
            ApiError::not_leader(None, "/produce"),
            ApiError::not_leader(Some(("b".into(), Some("http://b".into()))), "/produce"),
            parse_json::<Value>(b"").unwrap_err(),
            parse_json::<Vec<u8>>(b"{}").unwrap_err(),
        ];
        for e in errors.iter().chain(&others) {
            let (status, code) = (e.status, e.code);
            assert_eq!(code.is_refusal(), status.is_client_error(), "{e}");
            assert_eq!(
                code.is_retryable(),
                matches!(status.as_u16(), 307 | 503),
                "{e}"
            );
        }
    }
}
