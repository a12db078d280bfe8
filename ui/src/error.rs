//! [`UiError`]: the one way a UI's JSON API fails — a 4xx/5xx status and
//! `{"error": "<code>", "message": "<text>"}`, which the pages show.

use std::borrow::Cow;

use actix_web::{HttpResponse, ResponseError, http::StatusCode, web};
use yak_client::{ClientError, ErrorCode};

#[derive(Debug, Clone)]
pub struct UiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for UiError {}

impl UiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({
            "error": self.code,
            "message": self.message,
        }))
    }
}

/// Broker answers keep their code and message (a 4xx stays the caller's
/// fault); an unreachable or leaderless cluster is a 503.
impl From<ClientError> for UiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api {
                status,
                code,
                message,
                ..
            } => {
                let known = ErrorCode::parse(&code);
                let status = match status {
                    Some(s @ 400..=499) => {
                        StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST)
                    }
                    Some(503 | 307) => StatusCode::SERVICE_UNAVAILABLE,
                    Some(_) => StatusCode::BAD_GATEWAY,
                    // No HTTP status (the binary port's answers): the code
                    // says which kind of failure it is.
                    None if known.is_some_and(ErrorCode::is_refusal) => StatusCode::BAD_REQUEST,
                    None if known.is_some_and(ErrorCode::is_retryable) => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    None => StatusCode::BAD_GATEWAY,
                };
                let code = if code.is_empty() {
                    "broker_error".to_owned()
                } else {
                    code
                };
                UiError::new(status, code, message)
            }
            ClientError::NoLeader(m) => UiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_leader",
                format!("the cluster has no leader right now ({m}); try again shortly"),
            ),
            ClientError::Transport { url, message } => UiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unreachable",
                format!("cannot reach the cluster ({url}: {message})"),
            ),
            e @ ClientError::Decode { .. } => {
                UiError::new(StatusCode::BAD_GATEWAY, "bad_answer", e.to_string())
            }
            ClientError::Config(m) => UiError::bad_request("invalid_request", m),
        }
    }
}

/// A client error in a few words for a page: which node does not answer,
/// or the broker's own message.
pub fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Transport { url, .. } => format!("the node at {url} does not answer"),
        ClientError::NoLeader(m) => format!("no leader ({m})"),
        ClientError::Api { code, message, .. } if !message.is_empty() => {
            format!("{code}: {message}")
        }
        e => e.to_string(),
    }
}

/// JSON bodies: malformed ones are `400 invalid_request` with serde's
/// message, too large ones `413`.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|e, _| {
            let status = match &e {
                actix_web::error::JsonPayloadError::Overflow { .. }
                | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            UiError::new(status, "invalid_request", e.to_string()).into()
        })
}

/// Path segments that do not parse (`/api/messages/abc`) are `400`.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|e, _| UiError::bad_request("invalid_path", e.to_string()).into())
}

/// Query strings that do not parse (`?limit=x`) are `400`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e, _| UiError::bad_request("invalid_query", e.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_keep_code_and_message() {
        let e = ClientError::Api {
            status: Some(400),
            code: "invalid_topic".to_owned(),
            message: "topic name may only contain ...".to_owned(),
            not_written: true,
            body: Box::new(serde_json::Value::Null),
        };
        let ui = UiError::from(e);
        assert_eq!(ui.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ui.code(), "invalid_topic");
        assert!(ui.message().starts_with("topic name"));
    }

    #[test]
    fn an_answer_without_a_status_is_placed_by_its_code() {
        let answer = |code: &str| {
            UiError::from(ClientError::Api {
                status: None,
                code: code.to_owned(),
                message: "m".to_owned(),
                not_written: true,
                body: Box::new(serde_json::Value::Null),
            })
        };
        assert_eq!(answer("invalid_batch").status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            answer("no_leader").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(answer("storage_error").status(), StatusCode::BAD_GATEWAY);
        let newer = answer("a_code_from_the_future");
        assert_eq!(newer.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(newer.code(), "a_code_from_the_future");
    }

    #[test]
    fn cluster_trouble_is_503() {
        let ui = UiError::from(ClientError::NoLeader("x".to_owned()));
        assert_eq!(ui.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ui.code(), "no_leader");
        let ui = UiError::from(ClientError::Transport {
            url: "http://h".to_owned(),
            message: "refused".to_owned(),
        });
        assert_eq!(ui.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn short_descriptions() {
        let e = ClientError::Transport {
            url: "http://127.0.0.1:7".to_owned(),
            message: "error sending request for url (http://127.0.0.1:7/consume?...)".to_owned(),
        };
        assert_eq!(
            describe(&e),
            "the node at http://127.0.0.1:7 does not answer"
        );
    }

    #[test]
    fn response_body_shape() {
        let body = UiError::bad_request("invalid_payload", "no").error_response();
        assert_eq!(body.status(), StatusCode::BAD_REQUEST);
    }
}
