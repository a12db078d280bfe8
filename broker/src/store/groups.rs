//! Consumer groups in Redis: each group's stored state, the owner of each
//! of its partitions, and its committed offsets.
//!
//! Keys, under the cluster prefix: `groups` (the set of group names),
//! `group:{name}` (a hash: `state` JSON, `generation`, `members` count),
//! `group:{name}:owners` (`topic:partition` → member id) and
//! `group:{name}:offsets` (`topic:partition` → next offset to read).
//!
//! Invariants: every write checks the leader's epoch in the same script;
//! offsets move only through a commit that the script checked against the
//! stored generation and owners, or a reset of a group with no members.

use std::collections::BTreeMap;

use redis::AsyncCommands;
use yak_protocol::group::TopicPartition;

use super::{ClusterStore, StoreError, scripts};

/// What a fenced group write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupWrite {
    Done,
    /// The generation in Redis is not the member's.
    StaleGeneration,
    /// The member does not own one of the partitions in Redis.
    NotOwner,
    /// The group has members (a reset).
    HasMembers,
}

/// A group's stored state: its JSON, as [`ClusterStore::save_group`] wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub state: Option<String>,
    pub offsets: BTreeMap<TopicPartition, u64>,
}

fn field(tp: &TopicPartition) -> String {
    format!("{}:{}", tp.topic, tp.partition)
}

/// Reads a `topic:partition` field; topic names cannot contain `:`.
fn parse_field(field: &str) -> Option<TopicPartition> {
    let (topic, partition) = field.rsplit_once(':')?;
    Some(TopicPartition::new(topic, partition.parse().ok()?))
}

impl ClusterStore {
    fn group_key(&self, group: &str) -> String {
        self.key(&format!("group:{group}"))
    }

    /// Every group's name, sorted.
    pub async fn group_names(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn().await?;
        let mut names: Vec<String> = conn.smembers(self.key("groups")).await?;
        names.sort();
        Ok(names)
    }

    /// A group's state and offsets; `None` if it was never created.
    pub async fn load_group(&self, group: &str) -> Result<Option<StoredGroup>, StoreError> {
        let mut conn = self.conn().await?;
        let key = self.group_key(group);
        let (exists, state, offsets): (bool, Option<String>, BTreeMap<String, u64>) = redis::pipe()
            .sismember(self.key("groups"), group)
            .hget(&key, "state")
            .hgetall(format!("{key}:offsets"))
            .query_async(&mut conn)
            .await?;
        if !exists {
            return Ok(None);
        }
        let offsets = offsets
            .into_iter()
            .map(|(f, offset)| {
                parse_field(&f)
                    .map(|tp| (tp, offset))
                    .ok_or_else(|| StoreError::Malformed {
                        key: format!("{key}:offsets"),
                        reason: format!("field {f:?} is not topic:partition"),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(StoredGroup { state, offsets }))
    }

    /// Stores a group's state (JSON), generation, member count and the
    /// owner of each partition, if `epoch` is current.
    pub async fn save_group(
        &self,
        epoch: u64,
        group: &str,
        state_json: &str,
        generation: u64,
        members: usize,
        owners: &[(&TopicPartition, &str)],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let key = self.group_key(group);
        let mut invocation = scripts::SAVE_GROUP.prepare_invoke();
        invocation
            .key(self.key("epoch"))
            .key(&key)
            .key(format!("{key}:owners"))
            .key(self.key("groups"))
            .arg(epoch)
            .arg(group)
            .arg(state_json)
            .arg(generation)
            .arg(members);
        for (tp, member) in owners {
            invocation.arg(field(tp)).arg(*member);
        }
        let saved: i64 = invocation.invoke_async(&mut conn).await?;
        if saved < 0 {
            return Err(StoreError::Fenced { epoch });
        }
        Ok(())
    }

    /// Stores a member's offsets if, in Redis, `epoch` is current, the
    /// group is at `generation` and the member owns every partition.
    pub async fn commit_offsets(
        &self,
        epoch: u64,
        group: &str,
        generation: u64,
        member: &str,
        offsets: &[(TopicPartition, u64)],
    ) -> Result<GroupWrite, StoreError> {
        let mut conn = self.conn().await?;
        let key = self.group_key(group);
        let mut invocation = scripts::COMMIT_OFFSETS.prepare_invoke();
        invocation
            .key(self.key("epoch"))
            .key(&key)
            .key(format!("{key}:owners"))
            .key(format!("{key}:offsets"))
            .arg(epoch)
            .arg(generation)
            .arg(member);
        for (tp, offset) in offsets {
            invocation.arg(field(tp)).arg(*offset);
        }
        match invocation.invoke_async::<i64>(&mut conn).await? {
            1 => Ok(GroupWrite::Done),
            -2 => Ok(GroupWrite::StaleGeneration),
            -3 => Ok(GroupWrite::NotOwner),
            _ => Err(StoreError::Fenced { epoch }),
        }
    }

    /// Sets offsets of a group with no members (creating the group if
    /// needed), if `epoch` is current.
    pub async fn reset_offsets(
        &self,
        epoch: u64,
        group: &str,
        offsets: &[(TopicPartition, u64)],
    ) -> Result<GroupWrite, StoreError> {
        let mut conn = self.conn().await?;
        let key = self.group_key(group);
        let mut invocation = scripts::RESET_OFFSETS.prepare_invoke();
        invocation
            .key(self.key("epoch"))
            .key(&key)
            .key(format!("{key}:offsets"))
            .key(self.key("groups"))
            .arg(epoch)
            .arg(group);
        for (tp, offset) in offsets {
            invocation.arg(field(tp)).arg(*offset);
        }
        match invocation.invoke_async::<i64>(&mut conn).await? {
            1 => Ok(GroupWrite::Done),
            -2 => Ok(GroupWrite::HasMembers),
            _ => Err(StoreError::Fenced { epoch }),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn partition_fields_round_trip() {
        let tp = yak_protocol::group::TopicPartition::new("a.b-c", 12);
        assert_eq!(super::parse_field(&super::field(&tp)), Some(tp));
        assert_eq!(super::parse_field("nocolon"), None);
        assert_eq!(super::parse_field("t:x"), None);
    }
}
