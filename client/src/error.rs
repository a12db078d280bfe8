//! The client's error type.

use serde_json::Value;
use yak_protocol::Written;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with an error body `{"error", "message", ...}`.
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// `Some(false)` when the records are certainly not stored,
        /// `Some(true)`/unknown otherwise (see `docs/api.md`).
        not_written: bool,
        /// The whole answer (boxed: errors travel in every `Result`).
        body: Box<Value>,
    },
    /// No node answered, or the connection failed.
    #[error("transport error talking to {url}: {message}")]
    Transport { url: String, message: String },
    /// No node knows a leader.
    #[error("no leader: {0}")]
    NoLeader(String),
    /// An answer that does not parse.
    #[error("unexpected answer from {url}: {message}")]
    Decode { url: String, message: String },
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// Worth retrying (after finding the leader again): the cluster is
    /// between leaders, a node is down, or the leader could not commit.
    pub fn is_retryable(&self) -> bool {
        match self {
            // 408: the node did not read the request in time (it was busy
            // or paused); it handled nothing, and a new attempt may pass.
            ClientError::Api { status, .. } => matches!(status, 307 | 408 | 503),
            ClientError::Transport { .. } | ClientError::NoLeader(_) => true,
            ClientError::Decode { .. } | ClientError::Config(_) => false,
        }
    }

    /// True if the request certainly stored nothing.
    pub fn is_not_written(&self) -> bool {
        match self {
            ClientError::Api { not_written, .. } => *not_written,
            ClientError::NoLeader(_) | ClientError::Config(_) => true,
            _ => false,
        }
    }

    /// The node asked may no longer be (or never was) the leader: find it
    /// again before the next attempt.
    pub(crate) fn leader_may_have_moved(&self) -> bool {
        matches!(self, ClientError::Transport { .. })
            || self
                .code()
                .is_some_and(|c| matches!(c, "no_leader" | "not_leader" | "fenced"))
    }

    /// The partition's first stored offset, when the broker refused a read
    /// below it (`offset_out_of_range`: retention deleted those records).
    pub fn log_start(&self) -> Option<u64> {
        match self {
            ClientError::Api { code, body, .. } if code == "offset_out_of_range" => {
                body.get("log_start_offset").and_then(Value::as_u64)
            }
            _ => None,
        }
    }

    /// The API error code, if the broker sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The error to report for the latest attempt at a write, `self`, given
    /// `unknown`, the last earlier error after which the write may have
    /// taken effect (updated here): a later "not written" answer does not
    /// undo an unknown outcome, since a write reported as not written must
    /// not exist.
    pub(crate) fn after_unknown(self, unknown: &mut Option<ClientError>) -> ClientError {
        if self.is_not_written() {
            unknown.clone().unwrap_or(self)
        } else {
            *unknown = Some(self.clone());
            self
        }
    }

    /// The error of a non-2xx answer. The HTTP layer answers some errors
    /// itself, without a JSON body (408 when the request head did not
    /// arrive in time, 431, a bare 400): the status still says what
    /// happened.
    pub(crate) fn from_answer(status: reqwest::StatusCode, bytes: &[u8]) -> Self {
        let body = serde_json::from_slice(bytes).unwrap_or_else(|_| {
            let code = status
                .canonical_reason()
                .map_or("http_error".to_owned(), |r| {
                    r.to_lowercase().replace(' ', "_")
                });
            serde_json::json!({"error": code, "message": String::from_utf8_lossy(bytes)})
        });
        ClientError::from_body(status.as_u16(), body)
    }

    pub(crate) fn from_body(status: u16, body: Value) -> Self {
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let not_written =
            status < 500 && status != 307 || Written::parse(&text("written")) == Some(Written::No);
        ClientError::Api {
            status,
            code: text("error"),
            message: text("message"),
            not_written,
            body: Box::new(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use serde_json::json;

    use super::ClientError;

    #[test]
    fn a_bare_408_was_not_written_and_is_worth_retrying() {
        let e = ClientError::from_answer(StatusCode::REQUEST_TIMEOUT, b"");
        assert_eq!(e.code(), Some("request_timeout"));
        assert!(e.is_not_written() && e.is_retryable(), "{e:?}");
    }

    #[test]
    fn a_bare_5xx_may_have_been_written() {
        let e = ClientError::from_answer(StatusCode::BAD_GATEWAY, b"<html>proxy</html>");
        assert_eq!(e.code(), Some("bad_gateway"));
        assert!(!e.is_not_written() && !e.is_retryable(), "{e:?}");
    }

    #[test]
    fn a_json_error_keeps_its_code_and_written_field() {
        let body = json!({"error": "fenced", "message": "deposed", "written": "no"});
        let e =
            ClientError::from_answer(StatusCode::SERVICE_UNAVAILABLE, body.to_string().as_bytes());
        assert_eq!(e.code(), Some("fenced"));
        assert!(e.is_not_written() && e.is_retryable(), "{e:?}");
        let body = json!({"error": "fenced", "message": "deposed", "written": "unknown"});
        let e =
            ClientError::from_answer(StatusCode::SERVICE_UNAVAILABLE, body.to_string().as_bytes());
        assert!(!e.is_not_written(), "{e:?}");
    }
}
