//! The client's error type.
//!
//! An answer's error code is kept as sent (`code`) and read as a
//! [`ErrorCode`] where a decision depends on it, so a code this client does
//! not know (a newer node's) is shown as it is and never makes an answer
//! unreadable. Decisions come from the code and the `written` field
//! wherever an answer has them — the binary port's have no HTTP status —
//! and from the HTTP status only for answers without a code this client
//! knows (the HTTP layer's own, a proxy's).

use serde_json::Value;
use yak_protocol::{ErrorCode, Written};

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with an error body `{"error", "message", ...}`.
    #[error("{}{code}: {message}", status_prefix(.status))]
    Api {
        /// The HTTP status; `None` for an answer that had none (the binary
        /// port's, or one result of a batch).
        status: Option<u16>,
        /// The code as sent (see [`ClientError::error_code`] for it typed).
        code: String,
        message: String,
        /// `true` when the records are certainly not stored (`written:
        /// "no"`, or a refusal), `false` when they may be (see
        /// `docs/api.md`).
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

/// `"503 "` before the code of an answer with an HTTP status.
fn status_prefix(status: &Option<u16>) -> String {
    status.map_or_else(String::new, |s| format!("{s} "))
}

impl ClientError {
    /// Worth retrying (after finding the leader again): the cluster is
    /// between leaders, a node is down, or the leader could not commit.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Api { status, .. } => {
                self.error_code().is_some_and(ErrorCode::is_retryable)
                    // Answers without a code this client knows: 408 (the
                    // node did not read the request in time, it handled
                    // nothing, and a new attempt may pass) and a 503 or 307
                    // from the HTTP layer or a newer node.
                    || status.is_some_and(|s| matches!(s, 307 | 408 | 503))
            }
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
            || self.error_code().is_some_and(ErrorCode::is_leader_change)
    }

    /// The partition's first stored offset, when the broker refused a read
    /// below it (`offset_out_of_range`: retention deleted those records).
    pub fn log_start(&self) -> Option<u64> {
        match self {
            ClientError::Api { body, .. }
                if self.error_code() == Some(ErrorCode::OffsetOutOfRange) =>
            {
                body.get("log_start_offset").and_then(Value::as_u64)
            }
            _ => None,
        }
    }

    /// The API error code as the broker sent it (also one this client does
    /// not know), if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The API error code, if the broker sent one this client knows: what
    /// to branch on.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code().and_then(ErrorCode::parse)
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
        ClientError::from_body(Some(status.as_u16()), body)
    }

    /// The error of a binary-port `Error` answer: its JSON body alone, no
    /// HTTP status. `None` if the body is not a JSON object.
    pub(crate) fn from_frame(body: &[u8]) -> Option<Self> {
        let body: Value = serde_json::from_slice(body).ok().filter(Value::is_object)?;
        Some(ClientError::from_body(None, body))
    }

    /// The error of a JSON error body, with the HTTP status it came with
    /// (`None`: it had none). The records are certainly not stored if the
    /// body says `written: "no"`, the code is a refusal, or the status is
    /// a 4xx other than a 307 redirect.
    pub(crate) fn from_body(status: Option<u16>, body: Value) -> Self {
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let code = text("error");
        let not_written = Written::parse(&text("written")) == Some(Written::No)
            || ErrorCode::parse(&code).is_some_and(ErrorCode::is_refusal)
            || status.is_some_and(|s| s < 500 && s != 307);
        ClientError::Api {
            status,
            code,
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
    use yak_protocol::ErrorCode;

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
        assert_eq!(e.error_code(), Some(ErrorCode::Fenced));
        assert_eq!(e.to_string(), "503 fenced: deposed");
        assert!(e.is_not_written() && e.is_retryable(), "{e:?}");
        let body = json!({"error": "fenced", "message": "deposed", "written": "unknown"});
        let e =
            ClientError::from_answer(StatusCode::SERVICE_UNAVAILABLE, body.to_string().as_bytes());
        assert!(!e.is_not_written(), "{e:?}");
    }

    fn frame(body: serde_json::Value) -> ClientError {
        ClientError::from_frame(body.to_string().as_bytes()).expect("a JSON error body")
    }

    /// A binary-port answer has no HTTP status: the code and `written`
    /// decide, as the status did when the frame carried one.
    #[test]
    fn an_answer_without_a_status_is_read_by_its_code_and_written_field() {
        let moved = frame(json!({"error": "not_leader", "message": "m", "written": "no"}));
        assert!(moved.is_retryable() && moved.is_not_written(), "{moved:?}");
        assert!(moved.leader_may_have_moved());
        assert_eq!(moved.to_string(), "not_leader: m");

        let fenced = frame(json!({"error": "fenced", "message": "m", "written": "unknown"}));
        assert!(
            fenced.is_retryable() && !fenced.is_not_written(),
            "{fenced:?}"
        );
        assert!(fenced.leader_may_have_moved());

        let refused = frame(json!({"error": "invalid_batch", "message": "m"}));
        assert!(
            !refused.is_retryable() && refused.is_not_written(),
            "{refused:?}"
        );
        assert!(!refused.leader_may_have_moved());

        let failed = frame(json!({"error": "storage_error", "message": "m", "written": "unknown"}));
        assert!(
            !failed.is_retryable() && !failed.is_not_written(),
            "{failed:?}"
        );

        let newer = frame(json!({"error": "a_code_from_the_future", "message": "m"}));
        assert_eq!(newer.code(), Some("a_code_from_the_future"));
        assert_eq!(newer.error_code(), None);
        assert!(
            !newer.is_retryable() && !newer.is_not_written(),
            "{newer:?}"
        );

        assert!(ClientError::from_frame(b"not json").is_none());
        assert!(ClientError::from_frame(b"[1]").is_none());
    }

    #[test]
    fn a_read_below_the_log_start_says_where_it_starts() {
        let body = json!({"error": "offset_out_of_range", "message": "m",
            "log_start_offset": 40, "high_water_mark": 90});
        let e = ClientError::from_answer(StatusCode::BAD_REQUEST, body.to_string().as_bytes());
        assert_eq!(e.log_start(), Some(40));
        let other = json!({"error": "invalid_request", "message": "m", "log_start_offset": 40});
        let e = ClientError::from_answer(StatusCode::BAD_REQUEST, other.to_string().as_bytes());
        assert_eq!(e.log_start(), None);
    }
}
