//! [`GroupError`]: why the coordinator refused or failed a group request.
//! Each says what the member should do; [`GroupError::code`] is the
//! `"error"` field clients branch on.

use yak_protocol::{
    ErrorCode,
    group::{Assignor, TopicPartition},
};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("{0}")]
    InvalidGroup(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    Invalid(String),
    #[error("topic {0:?} does not exist; create it first")]
    UnknownTopic(String),
    #[error("group {0:?} does not exist; join it first")]
    UnknownGroup(String),
    #[error(
        "member {member:?} is not in group {group:?} (its session expired or it left); \
         drop its partitions without committing and join again without a member id"
    )]
    UnknownMember { group: String, member: String },
    #[error(
        "generation {generation} of group {group:?} is over (the group is at {current}); \
         join again with the same member id"
    )]
    StaleGeneration {
        group: String,
        generation: u64,
        current: u64,
    },
    #[error(
        "member {member:?} does not hold {partition} in generation {generation} of group \
         {group:?}; join again"
    )]
    NotAssigned {
        group: String,
        member: String,
        partition: TopicPartition,
        generation: u64,
    },
    #[error("group {group:?} uses the {used} assignor; this member asked for {asked}")]
    AssignorMismatch {
        group: String,
        asked: Assignor,
        used: Assignor,
    },
    #[error("group {group:?} cannot take this member: {reason}")]
    ProtocolMismatch { group: String, reason: String },
    #[error("group {0:?} is rebalancing; join again")]
    Rebalancing(String),
    #[error("group {group:?} has {members} members; stop them before resetting its offsets")]
    NotEmpty { group: String, members: usize },
    #[error(
        "offset {offset} of {partition} is beyond its committed records (high-water mark \
         {hwm}); commit only offsets of records read"
    )]
    OffsetOutOfRange {
        partition: TopicPartition,
        offset: u64,
        hwm: u64,
    },
    #[error("this node does not lead")]
    NotLeader,
    #[error(transparent)]
    Store(StoreError),
    #[error("reading {partition}: {message}")]
    Storage {
        partition: TopicPartition,
        message: String,
    },
}

impl From<StoreError> for GroupError {
    fn from(e: StoreError) -> Self {
        match e {
            // Another node leads now: its coordinator serves the group.
            StoreError::Fenced { .. } => GroupError::NotLeader,
            e => GroupError::Store(e),
        }
    }
}

impl GroupError {
    pub fn code(&self) -> ErrorCode {
        match self {
            GroupError::InvalidGroup(_) => ErrorCode::InvalidGroup,
            GroupError::InvalidTopic(_) => ErrorCode::InvalidTopic,
            GroupError::Invalid(_) => ErrorCode::InvalidRequest,
            GroupError::UnknownTopic(_) => ErrorCode::UnknownTopic,
            GroupError::UnknownGroup(_) => ErrorCode::UnknownGroup,
            GroupError::UnknownMember { .. } => ErrorCode::UnknownMember,
            GroupError::StaleGeneration { .. } => ErrorCode::StaleGeneration,
            GroupError::NotAssigned { .. } => ErrorCode::NotAssigned,
            GroupError::AssignorMismatch { .. } | GroupError::ProtocolMismatch { .. } => {
                ErrorCode::AssignorMismatch
            }
            GroupError::Rebalancing(_) => ErrorCode::StaleGeneration,
            GroupError::NotEmpty { .. } => ErrorCode::GroupNotEmpty,
            GroupError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            GroupError::NotLeader => ErrorCode::NotLeader,
            GroupError::Store(_) => ErrorCode::Unavailable,
            GroupError::Storage { .. } => ErrorCode::StorageError,
        }
    }
}
