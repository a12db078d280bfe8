//! [`Group`]: one consumer group as stored in Redis, and its transitions.
//!
//! Pure: time and Redis are the coordinator's. A group is `Empty` (no
//! members), `Rebalancing` (waiting for every member to join again),
//! `Syncing` (Kafka groups only: waiting for the leader member's
//! assignment) or `Stable` (every member holds its partitions at
//! `generation`).
//!
//! Two kinds of groups share the machine. YAK's own members let the
//! coordinator assign partitions when a rebalance completes. Kafka
//! clients assign partitions themselves (JoinGroup, then SyncGroup): a
//! completed rebalance elects a leader member and waits for its
//! assignment, which is decoded so that commits are fenced the same way.
//! The kinds never mix in one group.
//!
//! Invariants:
//! - The generation grows by one each time a rebalance completes, and
//!   never otherwise; assignments change only then.
//! - While rebalancing, members keep the assignment of the generation they
//!   hold, so they can commit what they processed before they join again.
//! - In a stable group every member has `joined`. In a YAK group the
//!   assignments are disjoint and cover every partition of the subscribed
//!   topics that had a subscriber (the assignor's invariant); in a Kafka
//!   group they are what the leader member sent.
//! - A Kafka group's members all share at least one protocol (assignor)
//!   of the group's protocol type; the chosen one is the leader's first.

use std::collections::{BTreeMap, BTreeSet};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use yak_protocol::group::{Assignor, GroupState, TopicPartition};

use super::{
    GroupError,
    assign::{Candidate, assign},
};

/// The first of the leader's protocols that every member supports (the
/// joins checked there is one).
fn chosen_protocol(members: &BTreeMap<String, Member>, leader: &str) -> String {
    let protocols = |m: &Member| -> Vec<String> {
        m.kafka
            .as_ref()
            .map(|k| k.protocols.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default()
    };
    let Some(first) = members.get(leader).map(protocols) else {
        return String::new();
    };
    first
        .iter()
        .find(|p| members.values().all(|m| protocols(m).contains(p)))
        .or(first.first())
        .cloned()
        .unwrap_or_default()
}

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
    /// Set for a group of Kafka clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaGroup>,
}

/// What a Kafka group adds: its clients choose the assignor and assign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaGroup {
    /// `consumer` for consumer clients.
    pub protocol_type: String,
    /// The protocol (assignor) of the current generation; empty before
    /// the first.
    pub protocol: String,
    /// The member that assigns the current generation's partitions.
    pub leader: String,
}

/// What a Kafka member adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaMember {
    /// The protocols it supports, in its order of preference, each with
    /// its subscription metadata (opaque to YAK but for the topics).
    pub protocols: Vec<KafkaProtocol>,
    /// Its assignment as the leader encoded it, handed back verbatim.
    #[serde(with = "base64_bytes")]
    pub assignment: Vec<u8>,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaProtocol {
    pub name: String,
    #[serde(with = "base64_bytes")]
    pub metadata: Vec<u8>,
}

/// Bytes in the stored JSON, as base64.
mod base64_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl Default for Group {
    fn default() -> Self {
        Self {
            generation: 0,
            state: GroupState::Empty,
            assignor: Assignor::default(),
            members: BTreeMap::new(),
            partitions: BTreeMap::new(),
            kafka: None,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaMember>,
}

/// A join as the coordinator checked it.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    pub assignor: Assignor,
    pub client_id: Option<String>,
    /// A Kafka client's join: its protocol type and protocols.
    pub kafka: Option<KafkaJoin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaJoin {
    pub protocol_type: String,
    pub protocols: Vec<KafkaProtocol>,
    pub client_host: String,
}

/// A leader's SyncGroup: each member's partitions and encoded assignment.
pub type KafkaAssignments = BTreeMap<String, (Vec<TopicPartition>, Vec<u8>)>;

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
        if !self.members.is_empty() {
            self.check_compatible(group, id, &spec)?;
        }
        if !new {
            let member = self.member(group, id)?;
            let same = member.topics == spec.topics
                && member.session_timeout_ms == spec.session_timeout_ms
                && member.client_id == spec.client_id
                && member.kafka.as_ref().map(|k| &k.protocols)
                    == spec.kafka.as_ref().map(|k| &k.protocols);
            // A Kafka leader joins again to have the group rebalanced.
            let leads = self.kafka.as_ref().is_some_and(|k| k.leader == id);
            match self.state {
                // A repeated join (its answer was lost): nothing to do.
                GroupState::Stable | GroupState::Syncing if same && !leads => return Ok(false),
                GroupState::Rebalancing if same && member.joined => return Ok(false),
                _ => {}
            }
        }
        let assignment = self
            .members
            .get(id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default();
        let kafka_assignment = self
            .members
            .get(id)
            .and_then(|m| m.kafka.as_ref())
            .map(|k| k.assignment.clone())
            .unwrap_or_default();
        self.assignor = spec.assignor;
        match &spec.kafka {
            Some(k) if self.kafka.is_none() => {
                self.kafka = Some(KafkaGroup {
                    protocol_type: k.protocol_type.clone(),
                    protocol: String::new(),
                    leader: id.to_owned(),
                });
            }
            None => self.kafka = None,
            Some(_) => {}
        }
        let changed_subscription = !new && self.members[id].topics != spec.topics;
        self.members.insert(
            id.to_owned(),
            Member {
                client_id: spec.client_id,
                topics: spec.topics,
                session_timeout_ms: spec.session_timeout_ms,
                assignment,
                joined: true,
                kafka: spec.kafka.map(|k| KafkaMember {
                    protocols: k.protocols,
                    assignment: kafka_assignment,
                    client_host: k.client_host,
                }),
            },
        );
        if new || changed_subscription || self.state != GroupState::Rebalancing {
            self.start_rebalance(Some(id));
        }
        Ok(true)
    }

    /// Refuses a join that cannot share the group with its members: YAK
    /// members asking for another assignor, Kafka clients of another
    /// protocol type or with no protocol in common, or the two kinds
    /// mixed.
    fn check_compatible(&self, group: &str, id: &str, spec: &JoinSpec) -> Result<(), GroupError> {
        let mismatch = |reason: String| {
            Err(GroupError::ProtocolMismatch {
                group: group.to_owned(),
                reason,
            })
        };
        match (&self.kafka, &spec.kafka) {
            (None, None) if spec.assignor != self.assignor => Err(GroupError::AssignorMismatch {
                group: group.to_owned(),
                asked: spec.assignor,
                used: self.assignor,
            }),
            (None, None) => Ok(()),
            (Some(_), None) => mismatch("its members are Kafka clients".into()),
            (None, Some(_)) => mismatch("its members are YAK clients".into()),
            (Some(g), Some(k)) if g.protocol_type != k.protocol_type => mismatch(format!(
                "its protocol type is {:?}, not {:?}",
                g.protocol_type, k.protocol_type
            )),
            (Some(_), Some(k)) => {
                let others = self.members.iter().filter(|(m, _)| *m != id);
                let shared = k.protocols.iter().any(|p| {
                    others.clone().all(|(_, m)| {
                        m.kafka
                            .as_ref()
                            .is_some_and(|mk| mk.protocols.iter().any(|q| q.name == p.name))
                    })
                });
                if shared {
                    Ok(())
                } else {
                    mismatch("no protocol (assignor) in common with its members".into())
                }
            }
        }
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
            self.kafka = None;
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

    /// Ends the rebalance once every member joined: the next generation.
    /// A YAK group's partitions are spread by its assignor over
    /// `partitions` (the subscribed topics' counts) and it is stable; a
    /// Kafka group elects a leader and its protocol and waits for the
    /// leader's assignment. `false` if members are missing.
    pub fn complete(&mut self, partitions: BTreeMap<String, u32>) -> bool {
        if self.state != GroupState::Rebalancing || !self.waiting_for().is_empty() {
            return false;
        }
        if let Some(kafka) = &mut self.kafka {
            if !self.members.contains_key(&kafka.leader) {
                kafka.leader = self.members.keys().next().cloned().unwrap_or_default();
            }
            kafka.protocol = chosen_protocol(&self.members, &kafka.leader);
            for member in self.members.values_mut() {
                member.assignment.clear();
                if let Some(k) = &mut member.kafka {
                    k.assignment.clear();
                }
            }
            self.state = GroupState::Syncing;
        } else {
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
            self.state = GroupState::Stable;
        }
        self.partitions = partitions;
        self.generation += 1;
        true
    }

    /// Takes a Kafka member's SyncGroup at `generation`: the leader's
    /// brings every member's assignment and makes the group stable.
    /// Returns whether the stored group changed; a member other than the
    /// leader waits until the group is stable.
    pub fn sync(
        &mut self,
        group: &str,
        id: &str,
        generation: u64,
        assignments: Option<KafkaAssignments>,
    ) -> Result<bool, GroupError> {
        self.member(group, id)?;
        if self.state == GroupState::Rebalancing {
            return Err(GroupError::Rebalancing(group.to_owned()));
        }
        if generation != self.generation {
            return Err(GroupError::StaleGeneration {
                group: group.to_owned(),
                generation,
                current: self.generation,
            });
        }
        let leads = self.kafka.as_ref().is_some_and(|k| k.leader == id);
        let (true, GroupState::Syncing, Some(mut assignments)) = (leads, self.state, assignments)
        else {
            return Ok(false);
        };
        for (member_id, member) in &mut self.members {
            let (partitions, encoded) = assignments.remove(member_id).unwrap_or_default();
            member.assignment = partitions;
            if let Some(k) = &mut member.kafka {
                k.assignment = encoded;
            }
        }
        self.state = GroupState::Stable;
        Ok(true)
    }

    /// The member whose assignment a syncing group waits for.
    pub fn awaited_leader(&self) -> Option<&str> {
        match (&self.kafka, self.state) {
            (Some(k), GroupState::Syncing) => Some(&k.leader),
            _ => None,
        }
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
            kafka: None,
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

    fn kafka_spec(protocols: &[&str]) -> JoinSpec {
        JoinSpec {
            kafka: Some(KafkaJoin {
                protocol_type: "consumer".into(),
                protocols: protocols
                    .iter()
                    .map(|p| KafkaProtocol {
                        name: p.to_string(),
                        metadata: p.as_bytes().to_vec(),
                    })
                    .collect(),
                client_host: "127.0.0.1".into(),
            }),
            ..spec(&["t"])
        }
    }

    fn assignment(pairs: &[(&str, &[u32])]) -> KafkaAssignments {
        pairs
            .iter()
            .map(|(id, ps)| {
                let tps = ps.iter().map(|&p| TopicPartition::new("t", p)).collect();
                (id.to_string(), (tps, id.as_bytes().to_vec()))
            })
            .collect()
    }

    #[test]
    fn a_kafka_group_waits_for_its_leaders_assignment() {
        let mut g = Group::default();
        g.join("g", "a", true, kafka_spec(&["range", "roundrobin"]))
            .unwrap();
        assert!(g.complete(counts(3)));
        assert_eq!((g.state, g.generation), (GroupState::Syncing, 1));
        g.join("g", "b", true, kafka_spec(&["roundrobin", "range"]))
            .unwrap();
        assert!(!g.complete(counts(3)), "a has not joined again");
        g.join("g", "a", false, kafka_spec(&["range", "roundrobin"]))
            .unwrap();
        assert!(g.complete(counts(3)));
        assert_eq!((g.state, g.generation), (GroupState::Syncing, 2));
        assert_eq!(g.awaited_leader(), Some("a"));
        assert_eq!(
            g.kafka.as_ref().unwrap().protocol,
            "range",
            "the leader's first"
        );
        // A follower's sync changes nothing; a stale one is refused.
        assert!(!g.sync("g", "b", 2, None).unwrap());
        assert!(matches!(
            g.sync("g", "b", 1, None),
            Err(GroupError::StaleGeneration { .. })
        ));
        assert!(
            g.sync(
                "g",
                "a",
                2,
                Some(assignment(&[("a", &[0, 1]), ("b", &[2])]))
            )
            .unwrap()
        );
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.members["b"].assignment, vec![TopicPartition::new("t", 2)]);
        assert_eq!(g.members["b"].kafka.as_ref().unwrap().assignment, b"b");
    }

    #[test]
    fn a_kafka_leader_joining_again_rebalances_a_follower_does_not() {
        let mut g = Group::default();
        g.join("g", "a", true, kafka_spec(&["range"])).unwrap();
        g.complete(counts(2));
        g.join("g", "b", true, kafka_spec(&["range"])).unwrap();
        g.join("g", "a", false, kafka_spec(&["range"])).unwrap();
        g.complete(counts(2));
        g.sync("g", "a", 2, Some(assignment(&[("a", &[0]), ("b", &[1])])))
            .unwrap();
        assert!(!g.join("g", "b", false, kafka_spec(&["range"])).unwrap());
        assert_eq!(g.state, GroupState::Stable);
        assert!(g.join("g", "a", false, kafka_spec(&["range"])).unwrap());
        assert_eq!(g.state, GroupState::Rebalancing);
        // A sync during the rebalance says so.
        assert!(matches!(
            g.sync("g", "b", 2, None),
            Err(GroupError::Rebalancing(_))
        ));
    }

    #[test]
    fn kinds_and_protocols_do_not_mix() {
        let mut g = Group::default();
        g.join("g", "a", true, kafka_spec(&["range"])).unwrap();
        assert!(matches!(
            g.join("g", "b", true, spec(&["t"])),
            Err(GroupError::ProtocolMismatch { .. })
        ));
        assert!(matches!(
            g.join("g", "b", true, kafka_spec(&["roundrobin"])),
            Err(GroupError::ProtocolMismatch { .. })
        ));
        let mut yak = Group::default();
        yak.join("g", "a", true, spec(&["t"])).unwrap();
        assert!(matches!(
            yak.join("g", "b", true, kafka_spec(&["range"])),
            Err(GroupError::ProtocolMismatch { .. })
        ));
        // Once empty, a group takes either kind again.
        assert!(g.remove(&["a".to_owned()]));
        g.join("g", "c", true, spec(&["t"])).unwrap();
        assert!(g.kafka.is_none());
    }

    #[test]
    fn a_kafka_group_round_trips_through_json() {
        let mut g = Group::default();
        g.join("g", "a", true, kafka_spec(&["range"])).unwrap();
        g.complete(counts(1));
        g.sync("g", "a", 1, Some(assignment(&[("a", &[0])])))
            .unwrap();
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<Group>(&json).unwrap(), g);
        // YAK groups stored before Kafka groups existed still load.
        let old =
            r#"{"generation":1,"state":"stable","assignor":"sticky","members":{},"partitions":{}}"#;
        assert!(serde_json::from_str::<Group>(old).unwrap().kafka.is_none());
    }
}
