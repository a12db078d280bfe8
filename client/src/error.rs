//! The client's error type.

use serde_json::Value;

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
        body: Value,
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
            ClientError::Api { status, .. } => *status == 503 || *status == 307,
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

    /// The API error code, if the broker sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn from_body(status: u16, body: Value) -> Self {
        let text = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let not_written = status < 500 && status != 307 || text("written") == "no";
        ClientError::Api {
            status,
            code: text("error"),
            message: text("message"),
            not_written,
            body,
        }
    }
}
