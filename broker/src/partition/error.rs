//! The writer's errors: [`WriteError`] for produce and leadership,
//! [`ReplicaError`] for what a follower is sent.

use partition_log::LogError;

use crate::{peer::Refusal, store::StoreError};

/// Why a write was not acknowledged. [`WriteError::is_definite`] tells
/// whether the records are known not to be stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("this node is not the leader")]
    NotLeader,
    #[error("sequence numbers overlap a different earlier request from this producer")]
    SequenceConflict,
    #[error("only {isr} in-sync replicas, fewer than the {min} required")]
    NotEnoughReplicas {
        isr: usize,
        min: u32,
        appended: bool,
    },
    #[error("the leader's epoch {epoch} was superseded; the write was not acknowledged")]
    Fenced { epoch: u64 },
    #[error("cannot commit: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("log ends at {end} but the committed high-water mark is {hwm}; refusing to lead")]
    LogBehindHwm { end: u64, hwm: u64 },
    #[error("the partition is shutting down")]
    Closed,
    /// The partition stopped after it took the write: it may be stored.
    #[error("the partition stopped while handling the write")]
    Interrupted,
    /// `.0` happened before anything of the write was appended.
    #[error("{0}")]
    BeforeAppend(Box<WriteError>),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Fenced { epoch } => WriteError::Fenced { epoch },
            other => WriteError::Unavailable(other.to_string()),
        }
    }
}

impl From<LogError> for WriteError {
    fn from(e: LogError) -> Self {
        WriteError::Storage(e.to_string())
    }
}

impl WriteError {
    /// True if the records of the failed request are certainly not stored
    /// (and will never become visible); false if the outcome is unknown.
    pub fn is_definite(&self) -> bool {
        match self {
            WriteError::NotLeader
            | WriteError::SequenceConflict
            | WriteError::Closed
            | WriteError::BeforeAppend(_) => true,
            WriteError::NotEnoughReplicas { appended, .. } => !appended,
            _ => false,
        }
    }

    /// Marks an error raised before the write was appended as definite.
    pub fn before_append(self) -> Self {
        if self.is_definite() {
            self
        } else {
            WriteError::BeforeAppend(Box::new(self))
        }
    }
}

/// Why a follower-side append was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("the partition is shutting down")]
    Closed,
}
