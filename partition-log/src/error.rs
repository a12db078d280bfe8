//! The storage layer's error type. Every failure of the log is one of these;
//! none of them leaves the files changed, except `Io`, after which the caller
//! should reopen the log (recovery cuts whatever was half-written).

use std::{io, path::PathBuf};

use crate::batch::BatchError;

pub type Result<T, E = LogError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error("log directory {0} is already open (another process or handle holds its lock)")]
    Locked(PathBuf),

    #[error("batch of {size} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge { size: usize, max: usize },

    #[error("nothing to append")]
    EmptyAppend,

    #[error("batch starts at offset {got}, but the log ends at {expected}")]
    NonContiguous { expected: u64, got: u64 },

    #[error("batch has leader epoch {got}, older than the log's latest epoch {latest}")]
    StaleEpoch { got: u32, latest: u32 },

    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),

    #[error("offset {offset} is outside the log [{start}, {end}]")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },

    #[error("cannot truncate to {offset}: below the log start offset {start}")]
    TruncateBelowStart { offset: u64, start: u64 },

    #[error("cannot restart the log at {offset}: it holds records up to {end}")]
    ResetBelowEnd { offset: u64, end: u64 },

    #[error("offset {0} is inside a batch; the log can only be cut between batches")]
    NotBatchBoundary(u64),

    #[error("corrupt segment {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
