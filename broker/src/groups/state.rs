//! [`Group`]: one consumer group as stored in Redis, and its transitions.
//!
//! Pure: time and Redis are the coordinator's. A group is `Empty` (no
//! members), `Rebalancing` (waiting for every member to join again) or
//! `Stable` (every member holds its partitions at `generation`).
//!
//! Invariants:
//! - The generation grows by one each time a rebalance completes, and
//!   never otherwise; assignments change only then.
//! - While rebalancing, members keep the assignment of the generation they
//!   hold, so they can commit what they processed before they join again.
//! - In a stable group every member has `joined`, and the assignments are
//!   disjoint and cover every partition of the subscribed topics that had
//!   a subscriber (the assignor's invariant).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use yak_protocol::group::{Assignor, GroupState, TopicPartition};

use super::{
    GroupError,
    assign::{Candidate, assign},
};

/// A group as stored: everything but the members' session deadlines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub generation: u64,
    pub state: GroupState,
    pub assignor: Assignor,
    pub members: BTreeMap<String, Member>,
    /// The subscribed topics' partition counts the assignment was made for:
    /// a topic that gains partitions calls for a rebalance.
    pub partitions: BTreeMap<String, u32>,
}

impl Default for Group {
    fn default() -> Self {
        Self {
            generation: 0,
            state: GroupState::Empty,
            assignor: Assignor::default(),
            members: BTreeMap::new(),
            partitions: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    /// Its partitions in the current generation.
    pub assignment: Vec<TopicPartition>,
    /// It has joined the rebalance under way (always, when stable).
    pub joined: bool,
}

/// A join as the coordinator checked it.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    pub assignor: Assignor,
    pub client_id: Option<String>,
}

impl Group {
    /// Every topic a member subscribes to.
    pub fn topics(&self) -> BTreeSet<&str> {
        self.members
            .values()
            .flat_map(|m| m.topics.iter().map(String::as_str))
            .collect()
    }

    pub fn member(&self, group: &str, id: &str) -> Result<&Member, GroupError> {
        self.members
            .get(id)
            .ok_or_else(|| GroupError::UnknownMember {
                group: group.to_owned(),
                member: id.to_owned(),
            })
    }

    /// Adds a member (`id` new) or takes a member's join (`id` known).
    /// Returns whether the stored group changed.
    pub fn join(
        &mut self,
        group: &str,
        id: &str,
        new: bool,
        spec: JoinSpec,
    ) -> Result<bool, GroupError> {
        if !self.members.is_empty() && spec.assignor != self.assignor {
            return Err(GroupError::AssignorMismatch {
                group: group.to_owned(),
                asked: spec.assignor,
                used: self.assignor,
            });
        }
        if !new {
            let member = self.member(group, id)?;
            let same = member.topics == spec.topics
                && member.session_timeout_ms == spec.session_timeout_ms
                && member.client_id == spec.client_id;
            match self.state {
                // A repeated join (its answer was lost): nothing to do.
                GroupState::Stable if same => return Ok(false),
                GroupState::Rebalancing if same && member.joined => return Ok(false),
                _ => {}
            }
        }
        let assignment = self
            .members
            .get(id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default();
        self.assignor = spec.assignor;
        let changed_subscription = !new && self.members[id].topics != spec.topics;
        self.members.insert(
            id.to_owned(),
            Member {
                client_id: spec.client_id,
                topics: spec.topics,
                session_timeout_ms: spec.session_timeout_ms,
                assignment,
                joined: true,
            },
        );
        if new || changed_subscription || self.state != GroupState::Rebalancing {
            self.start_rebalance(Some(id));
        }
        Ok(true)
    }

    /// Asks every member but `except` to join again. A rebalance already
    /// under way goes on: members that joined it are waiting for its end
    /// and will not join again.
    pub fn start_rebalance(&mut self, except: Option<&str>) {
        if self.state == GroupState::Rebalancing {
            if let Some(member) = except.and_then(|id| self.members.get_mut(id)) {
                member.joined = true;
            }
            return;
        }
        self.state = GroupState::Rebalancing;
        for (id, member) in &mut self.members {
            member.joined = Some(id.as_str()) == except;
        }
    }

    /// Removes members (left, or their session expired). The others must
    /// join again for the partitions to move.
    pub fn remove(&mut self, ids: &[String]) -> bool {
        let before = self.members.len();
        self.members.retain(|id, _| !ids.contains(id));
        if self.members.len() == before {
            return false;
        }
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.generation += 1;
            self.partitions.clear();
        } else {
            self.start_rebalance(None);
        }
        true
    }

    /// Members that have not joined the rebalance under way.
    pub fn waiting_for(&self) -> Vec<String> {
        if self.state != GroupState::Rebalancing {
            return Vec::new();
        }
        self.members
            .iter()
            .filter(|(_, m)| !m.joined)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Ends the rebalance once every member joined: the next generation,
    /// with partitions spread by the group's assignor over `partitions`
    /// (the subscribed topics' counts). `false` if members are missing.
    pub fn complete(&mut self, partitions: BTreeMap<String, u32>) -> bool {
        if self.state != GroupState::Rebalancing || !self.waiting_for().is_empty() {
            return false;
        }
        let candidates: BTreeMap<String, Candidate<'_>> = self
            .members
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    Candidate {
                        topics: &m.topics,
                        held: &m.assignment,
                    },
                )
            })
            .collect();
        let mut assignment = assign(self.assignor, &candidates, &partitions);
        for (id, member) in &mut self.members {
            member.assignment = assignment.remove(id).unwrap_or_default();
        }
        self.partitions = partitions;
        self.generation += 1;
        self.state = GroupState::Stable;
        true
    }

    /// A stable group whose topics' partition counts moved on.
    pub fn outgrown(&self, counts: &BTreeMap<String, u32>) -> bool {
        self.state == GroupState::Stable
            && self
                .topics()
                .into_iter()
                .any(|t| counts.get(t) != self.partitions.get(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(topics: &[&str]) -> JoinSpec {
        JoinSpec {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout_ms: 1000,
            assignor: Assignor::Sticky,
            client_id: None,
        }
    }

    fn counts(n: u32) -> BTreeMap<String, u32> {
        BTreeMap::from([("t".to_owned(), n)])
    }

    #[test]
    fn a_first_member_makes_the_group_stable_at_generation_one() {
        let mut g = Group::default();
        assert!(g.join("g", "a", true, spec(&["t"])).unwrap());
        assert_eq!(g.state, GroupState::Rebalancing);
        assert!(g.complete(counts(3)));
        assert_eq!((g.state, g.generation), (GroupState::Stable, 1));
        assert_eq!(g.members["a"].assignment.len(), 3);
    }

    #[test]
    fn a_second_member_waits_for_the_first_to_join_again() {
        let mut g = Group::default();
        g.join("g", "a", true, spec(&["t"])).unwrap();
        g.complete(counts(4));
        g.join("g", "b", true, spec(&["t"])).unwrap();
        assert_eq!(g.waiting_for(), vec!["a".to_owned()]);
        assert!(!g.complete(counts(4)), "a has not joined");
        // a keeps its partitions (it may commit them) until the rebalance ends.
        assert_eq!(g.members["a"].assignment.len(), 4);
        g.join("g", "a", false, spec(&["t"])).unwrap();
        assert!(g.complete(counts(4)));
        assert_eq!(g.generation, 2);
        assert_eq!(g.members["a"].assignment.len(), 2);
        assert_eq!(g.members["b"].assignment.len(), 2);
    }

    #[test]
    fn members_that_joined_a_rebalance_are_not_asked_again() {
        let mut g = Group::default();
        g.join("g", "a", true, spec(&["t"])).unwrap();
        g.complete(counts(3));
        g.join("g", "b", true, spec(&["t"])).unwrap();
        // c arrives and a leaves while the group waits for a: b, waiting
        // for its answer, stays joined.
        g.join("g", "c", true, spec(&["t"])).unwrap();
        assert_eq!(g.waiting_for(), vec!["a".to_owned()]);
        assert!(g.remove(&["a".to_owned()]));
        assert!(g.waiting_for().is_empty());
        assert!(g.complete(counts(3)));
        assert_eq!(
            g.members["b"].assignment.len() + g.members["c"].assignment.len(),
            3
        );
    }

    #[test]
    fn a_repeated_join_of_a_stable_member_changes_nothing() {
        let mut g = Group::default();
        g.join("g", "a", true, spec(&["t"])).unwrap();
        g.complete(counts(2));
        let before = g.clone();
        assert!(!g.join("g", "a", false, spec(&["t"])).unwrap());
        assert_eq!(g, before);
    }

    #[test]
    fn the_last_member_leaving_empties_the_group() {
        let mut g = Group::default();
        g.join("g", "a", true, spec(&["t"])).unwrap();
        g.complete(counts(2));
        assert!(g.remove(&["a".to_owned()]));
        assert_eq!((g.state, g.generation), (GroupState::Empty, 2));
        assert!(!g.remove(&["a".to_owned()]));
    }

    #[test]
    fn joins_are_refused_for_unknown_members_and_other_assignors() {
        let mut g = Group::default();
        g.join("g", "a", true, spec(&["t"])).unwrap();
        assert!(matches!(
            g.join("g", "zz", false, spec(&["t"])),
            Err(GroupError::UnknownMember { .. })
        ));
        let mut range = spec(&["t"]);
        range.assignor = Assignor::Range;
        assert!(matches!(
            g.join("g", "b", true, range),
            Err(GroupError::AssignorMismatch { .. })
        ));
    }

    #[test]
    fn a_topic_that_gains_partitions_outgrows_the_assignment() {
        let mut g = Group::default();
        g.join("g", "a", true, spec(&["t"])).unwrap();
        g.complete(counts(2));
        assert!(!g.outgrown(&counts(2)));
        assert!(g.outgrown(&counts(3)));
    }
}
