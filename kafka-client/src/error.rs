//! [`KafkaError`]: what one failed attempt of the producer or the consumer
//! says, and, for the producer, whether it may have stored anything.

use std::net::SocketAddr;

use kafka_protocol::{ResponseError, messages::ApiKey};

/// One failed attempt.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KafkaError {
    /// No connection: nothing was sent.
    #[error("connecting to {addr}: {message}")]
    Connect { addr: SocketAddr, message: String },
    /// The request may have been sent and handled; its answer is lost.
    #[error("{addr}: {message}")]
    Lost { addr: SocketAddr, message: String },
    /// An answer that does not decode, or does not answer the request.
    #[error("{addr}: bad answer: {message}")]
    BadAnswer { addr: SocketAddr, message: String },
    /// The request could not be encoded: nothing was sent.
    #[error("encoding {api:?}: {message}")]
    Encode { api: ApiKey, message: String },
    /// The broker answered with an error code.
    #[error("{error:?} ({}){}", error.code(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        error: ResponseError,
        message: Option<String>,
    },
    /// No node named a leader for the partition (or none answered).
    #[error("no leader known for {topic}/{partition}: {message}")]
    NoLeader {
        topic: String,
        partition: i32,
        message: String,
    },
}

impl KafkaError {
    /// Whether a retry may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            KafkaError::Broker { error, .. } => error.is_retriable(),
            KafkaError::BadAnswer { .. } | KafkaError::Encode { .. } => false,
            _ => true,
        }
    }

    /// Whether the attempt may have stored the batch. Only what says
    /// nothing was stored is `false`: YAK answers NOT_LEADER_OR_FOLLOWER
    /// also for a leader fenced after its append, so that code proves
    /// nothing (`broker/src/kafka/produce.rs`).
    pub fn maybe_written(&self) -> bool {
        match self {
            KafkaError::Connect { .. }
            | KafkaError::Encode { .. }
            | KafkaError::NoLeader { .. } => false,
            KafkaError::Lost { .. } | KafkaError::BadAnswer { .. } => true,
            KafkaError::Broker { error, .. } => !matches!(
                error,
                ResponseError::NotEnoughReplicas
                    | ResponseError::UnknownTopicOrPartition
                    | ResponseError::InvalidTopicException
                    | ResponseError::CorruptMessage
                    | ResponseError::InvalidRecord
                    | ResponseError::MessageTooLarge
                    | ResponseError::OutOfOrderSequenceNumber
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(error: ResponseError) -> KafkaError {
        KafkaError::Broker {
            error,
            message: None,
        }
    }

    /// Only answers that prove nothing was stored count as not written:
    /// nemesis check 5 trusts them.
    #[test]
    fn write_outcomes() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let lost = KafkaError::Lost {
            addr,
            message: "timed out".into(),
        };
        assert!(lost.maybe_written() && lost.is_retriable());
        let refused = KafkaError::Connect {
            addr,
            message: "refused".into(),
        };
        assert!(!refused.maybe_written() && refused.is_retriable());
        let moved = broker(ResponseError::NotLeaderOrFollower);
        assert!(moved.maybe_written() && moved.is_retriable());
        let timed_out = broker(ResponseError::RequestTimedOut);
        assert!(timed_out.maybe_written() && timed_out.is_retriable());
        let not_enough = broker(ResponseError::NotEnoughReplicas);
        assert!(!not_enough.maybe_written() && not_enough.is_retriable());
        let after_append = broker(ResponseError::NotEnoughReplicasAfterAppend);
        assert!(after_append.maybe_written());
        let conflict = broker(ResponseError::OutOfOrderSequenceNumber);
        assert!(!conflict.maybe_written() && !conflict.is_retriable());
    }
}
