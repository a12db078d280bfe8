//! Consumer groups for Kafka clients: FindCoordinator, JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! ListGroups and DescribeGroups, each an adapter over YAK's coordinator
//! (`crate::groups`), so Kafka groups are stored, fenced and failed over
//! like YAK's own.
//!
//! Kafka clients assign partitions themselves: the coordinator elects a
//! leader member, hands it every member's subscription, and takes its
//! assignment in SyncGroup. Assignments are decoded here (the consumer
//! protocol's `ConsumerProtocolAssignment`) so that commits are checked
//! against the partitions each member holds, exactly as for YAK members.
//!
//! Invariants:
//! - Only the leader coordinates: every node names the leader in
//!   FindCoordinator, and a node that does not lead answers the other
//!   group APIs with NOT_COORDINATOR, so clients look it up again.
//! - Only the `consumer` protocol type is served (its subscriptions and
//!   assignments are what YAK decodes); others get
//!   INCONSISTENT_GROUP_PROTOCOL.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::{
    ResponseError,
    messages::{
        BrokerId, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DescribeGroupsRequest,
        DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
        HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
        LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
        OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
        SyncGroupRequest, SyncGroupResponse, TopicName, consumer_protocol_assignment,
        describe_groups_response::{DescribedGroup, DescribedGroupMember},
        find_coordinator_response::Coordinator,
        join_group_response::JoinGroupResponseMember,
        leave_group_response::MemberResponse,
        list_groups_response::ListedGroup,
        offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
        offset_fetch_response::{
            OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
            OffsetFetchResponseTopic, OffsetFetchResponseTopics,
        },
    },
    protocol::{Decodable, Encodable, StrBytes},
};
use yak_protocol::group::{Commit, GroupState, PartitionOffset, TopicPartition};

use super::{broker_id, code, metadata::split_host_port};
use crate::{
    groups::{
        GroupError,
        state::{Group, JoinSpec, KafkaAssignments, KafkaJoin, KafkaProtocol},
    },
    node::Node,
};

/// The only protocol type served.
const CONSUMER: &str = "consumer";
/// FindCoordinator's key type for groups (1 is transactions).
const GROUP_KEY: i8 = 0;
/// What ListGroups and DescribeGroups call a group of YAK's own clients.
const YAK_PROTOCOL: &str = "yak";

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// The Kafka error code for a coordinator error.
fn error_code(e: &GroupError) -> i16 {
    code(match e {
        GroupError::NotLeader => ResponseError::NotCoordinator,
        GroupError::InvalidGroup(_) => ResponseError::InvalidGroupId,
        GroupError::UnknownMember { .. } | GroupError::UnknownGroup(_) => {
            ResponseError::UnknownMemberId
        }
        GroupError::StaleGeneration { .. } | GroupError::NotAssigned { .. } => {
            ResponseError::IllegalGeneration
        }
        GroupError::Rebalancing(_) => ResponseError::RebalanceInProgress,
        GroupError::ProtocolMismatch { .. } | GroupError::AssignorMismatch { .. } => {
            ResponseError::InconsistentGroupProtocol
        }
        GroupError::Invalid(_) => ResponseError::InvalidSessionTimeout,
        GroupError::InvalidTopic(_) | GroupError::UnknownTopic(_) => {
            ResponseError::UnknownTopicOrPartition
        }
        GroupError::NotEmpty { .. } => ResponseError::UnknownMemberId,
        GroupError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        GroupError::Store(_) | GroupError::Storage { .. } => ResponseError::CoordinatorNotAvailable,
    })
}

/// Kafka's name for a group's state.
fn state_name(state: GroupState) -> &'static str {
    match state {
        GroupState::Empty => "Empty",
        GroupState::Rebalancing => "PreparingRebalance",
        GroupState::Syncing => "CompletingRebalance",
        GroupState::Stable => "Stable",
    }
}

/// The generation a client sent; Kafka's are `i32`, YAK's `u64`.
fn generation(id: i32) -> Option<u64> {
    u64::try_from(id).ok()
}

fn kafka_generation(generation: u64) -> i32 {
    i32::try_from(generation).unwrap_or(i32::MAX)
}

/// The leader's Kafka address (`broker id`, host, port), if it has one.
fn coordinator(node: &Node) -> Option<(i32, String, i32)> {
    let (leader, _) = node.leader()?;
    let address = if leader == node.config().node_id {
        node.config().kafka.as_ref().map(|(_, a)| a.clone())
    } else {
        node.cluster()
            .nodes
            .iter()
            .find(|n| n.id == leader)
            .and_then(|n| n.kafka.clone())
    }?;
    let (host, port) = split_host_port(&address)?;
    Some((broker_id(&leader), host.to_owned(), port))
}

pub fn find_coordinator(
    node: &Node,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let found = match (request.key_type, coordinator(node)) {
        (GROUP_KEY, Some(c)) => Ok(c),
        (GROUP_KEY, None) => Err((
            ResponseError::CoordinatorNotAvailable,
            "no node leads right now (or the leader has no Kafka listener)",
        )),
        _ => Err((
            ResponseError::CoordinatorNotAvailable,
            "YAK has no transactions, so no transaction coordinator",
        )),
    };
    if version < 4 {
        return match found {
            Ok((id, host, port)) => FindCoordinatorResponse::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port),
            Err((error, message)) => FindCoordinatorResponse::default()
                .with_error_code(code(error))
                .with_error_message(Some(str_bytes(message)))
                .with_node_id(BrokerId(-1))
                .with_port(-1),
        };
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            let answer = Coordinator::default().with_key(key);
            match &found {
                Ok((id, host, port)) => answer
                    .with_node_id(BrokerId(*id))
                    .with_host(str_bytes(host.clone()))
                    .with_port(*port),
                Err((error, message)) => answer
                    .with_error_code(code(*error))
                    .with_error_message(Some(str_bytes(*message)))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

/// A consumer-protocol message: a version, then the message at it. Newer
/// versions than the crate knows only add fields at the end, so they
/// decode at the newest it knows.
fn decode_consumer<T: Decodable>(bytes: &[u8], newest: i16) -> Option<T> {
    let mut buf = Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    T::decode(&mut buf, version.min(newest)).ok()
}

fn encode_consumer<T: Encodable>(message: &T, version: i16) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(version);
    message
        .encode(&mut out, version)
        .expect("a consumer-protocol message encodes at version 0");
    out.freeze()
}

/// The topics a member subscribes to, from any of its protocols.
fn subscribed_topics(protocols: &[KafkaProtocol]) -> Vec<String> {
    let mut topics: Vec<String> = protocols
        .iter()
        .filter_map(|p| decode_consumer::<ConsumerProtocolSubscription>(&p.metadata, 3))
        .flat_map(|s| s.topics.into_iter().map(|t| t.to_string()))
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

fn assigned_partitions(encoded: &[u8]) -> Option<Vec<TopicPartition>> {
    let assignment = decode_consumer::<ConsumerProtocolAssignment>(encoded, 3)?;
    let mut partitions = Vec::new();
    for tp in assignment.assigned_partitions {
        for p in tp.partitions {
            partitions.push(TopicPartition::new(
                tp.topic.0.to_string(),
                u32::try_from(p).ok()?,
            ));
        }
    }
    Some(partitions)
}

fn join_failed(error_code: i16, member: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error_code)
        .with_generation_id(-1)
        .with_protocol_name(Some(StrBytes::default()))
        .with_member_id(str_bytes(member))
}

pub async fn join(
    node: &Node,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinGroupResponse {
    let name = request.group_id.0.to_string();
    let member = request.member_id.to_string();
    if request.protocol_type.as_str() != CONSUMER || request.protocols.is_empty() {
        return join_failed(code(ResponseError::InconsistentGroupProtocol), &member);
    }
    let Ok(session_timeout_ms) = u64::try_from(request.session_timeout_ms) else {
        return join_failed(code(ResponseError::InvalidSessionTimeout), &member);
    };
    if member.is_empty() && version >= 4 {
        // KIP-394: a member id first, so that a join retried after a lost
        // answer is the same member, not a ghost.
        let id = node.groups().reserve_member(&name);
        return join_failed(code(ResponseError::MemberIdRequired), &id);
    }
    let protocols: Vec<KafkaProtocol> = request
        .protocols
        .iter()
        .map(|p| KafkaProtocol {
            name: p.name.to_string(),
            metadata: p.metadata.to_vec(),
        })
        .collect();
    let spec = JoinSpec {
        topics: subscribed_topics(&protocols),
        session_timeout_ms,
        assignor: Default::default(),
        client_id: Some(client_id.to_owned()).filter(|c| !c.is_empty()),
        kafka: Some(KafkaJoin {
            protocol_type: CONSUMER.to_owned(),
            protocols,
            client_host: client_host.to_owned(),
        }),
    };
    let requested = Some(member.clone()).filter(|m| !m.is_empty());
    let (member, group) = match node.groups().join_kafka(&name, requested, spec).await {
        Ok(joined) => joined,
        Err(e) => {
            tracing::debug!("kafka join: {e}");
            return join_failed(error_code(&e), &member);
        }
    };
    // The coordinator does not mix kinds: a group that took a Kafka join
    // is a Kafka group.
    let Some(kafka) = group.kafka.clone() else {
        return join_failed(code(ResponseError::InconsistentGroupProtocol), &member);
    };
    let members = if kafka.leader == member {
        group
            .members
            .iter()
            .map(|(id, m)| {
                let metadata = m
                    .kafka
                    .as_ref()
                    .and_then(|k| k.protocols.iter().find(|p| p.name == kafka.protocol))
                    .map(|p| Bytes::from(p.metadata.clone()))
                    .unwrap_or_default();
                JoinGroupResponseMember::default()
                    .with_member_id(str_bytes(id.clone()))
                    .with_metadata(metadata)
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinGroupResponse::default()
        .with_generation_id(kafka_generation(group.generation))
        .with_protocol_type(Some(str_bytes(CONSUMER)))
        .with_protocol_name(Some(str_bytes(kafka.protocol)))
        .with_leader(str_bytes(kafka.leader))
        .with_member_id(str_bytes(member))
        .with_members(members)
}

pub async fn sync(node: &Node, request: SyncGroupRequest) -> SyncGroupResponse {
    let failed = |error: i16| {
        SyncGroupResponse::default()
            .with_error_code(error)
            .with_protocol_type(Some(str_bytes(CONSUMER)))
    };
    let Some(gen_id) = generation(request.generation_id) else {
        return failed(code(ResponseError::IllegalGeneration));
    };
    let name = request.group_id.0.to_string();
    let member = request.member_id.to_string();
    let assignments = if request.assignments.is_empty() {
        None
    } else {
        let mut map = KafkaAssignments::new();
        for a in &request.assignments {
            // A partition list YAK cannot read would leave commits
            // unfenced; refuse it rather than guess.
            let Some(partitions) = assigned_partitions(&a.assignment) else {
                return failed(code(ResponseError::InconsistentGroupProtocol));
            };
            map.insert(a.member_id.to_string(), (partitions, a.assignment.to_vec()));
        }
        Some(map)
    };
    match node
        .groups()
        .sync(&name, &member, gen_id, assignments)
        .await
    {
        Ok(group) => {
            let assignment = group
                .members
                .get(&member)
                .and_then(|m| m.kafka.as_ref())
                .map(|k| Bytes::from(k.assignment.clone()))
                .unwrap_or_default();
            SyncGroupResponse::default()
                .with_protocol_type(Some(str_bytes(CONSUMER)))
                .with_protocol_name(group.kafka.map(|k| str_bytes(k.protocol)))
                .with_assignment(assignment)
        }
        Err(e) => {
            tracing::debug!("kafka sync: {e}");
            failed(error_code(&e))
        }
    }
}

pub async fn heartbeat(node: &Node, request: HeartbeatRequest) -> HeartbeatResponse {
    let Some(gen_id) = generation(request.generation_id) else {
        return HeartbeatResponse::default()
            .with_error_code(code(ResponseError::IllegalGeneration));
    };
    let answer = node
        .groups()
        .heartbeat(&request.group_id.0, &request.member_id, gen_id)
        .await;
    let error = match answer {
        Ok((_, false)) => 0,
        Ok((_, true)) => code(ResponseError::RebalanceInProgress),
        Err(e) => error_code(&e),
    };
    HeartbeatResponse::default().with_error_code(error)
}

pub async fn leave(node: &Node, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let name = request.group_id.0.to_string();
    let leave_one = async |member: &str| match node.groups().leave(&name, member).await {
        Ok(()) => 0,
        Err(e) => error_code(&e),
    };
    if version < 3 {
        let error = leave_one(&request.member_id).await;
        return LeaveGroupResponse::default().with_error_code(error);
    }
    let mut members = Vec::with_capacity(request.members.len());
    for identity in request.members {
        // Static membership (a group instance id alone) is not served.
        let error = if identity.member_id.is_empty() {
            code(ResponseError::UnknownMemberId)
        } else {
            leave_one(&identity.member_id).await
        };
        members.push(
            MemberResponse::default()
                .with_member_id(identity.member_id)
                .with_group_instance_id(identity.group_instance_id)
                .with_error_code(error),
        );
    }
    // The top-level code only for what concerns the whole request.
    let error = match members.first() {
        Some(m) if m.error_code == code(ResponseError::NotCoordinator) => m.error_code,
        _ => 0,
    };
    LeaveGroupResponse::default()
        .with_error_code(error)
        .with_members(members)
}

pub async fn commit(node: &Node, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let name = request.group_id.0.to_string();
    // Each partition's answer: an error of its own, or the commit's.
    let mut own: BTreeMap<(String, i32), i16> = BTreeMap::new();
    let mut offsets = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let key = (topic.name.0.to_string(), p.partition_index);
            match (
                u32::try_from(p.partition_index),
                u64::try_from(p.committed_offset),
            ) {
                (Ok(partition), Ok(offset)) => offsets.push(PartitionOffset {
                    topic: key.0.clone(),
                    partition,
                    offset,
                }),
                (Err(_), _) => {
                    own.insert(key, code(ResponseError::UnknownTopicOrPartition));
                }
                (_, Err(_)) => {
                    own.insert(key, code(ResponseError::OffsetOutOfRange));
                }
            }
        }
    }
    let outcome = if offsets.is_empty() {
        Ok(())
    } else if request.generation_id_or_member_epoch < 0 && request.member_id.is_empty() {
        // A client that assigns itself partitions commits outside any
        // generation: only while the group has no members.
        node.groups().commit_unmanaged(&name, &offsets).await
    } else {
        match generation(request.generation_id_or_member_epoch) {
            None => Err(GroupError::StaleGeneration {
                group: name.clone(),
                generation: 0,
                current: 0,
            }),
            Some(generation) => {
                let commit = Commit {
                    member_id: request.member_id.to_string(),
                    generation,
                    offsets,
                };
                node.groups().commit(&name, commit).await.map(|_| ())
            }
        }
    };
    let error = match &outcome {
        Ok(()) => 0,
        Err(e) => {
            tracing::debug!("kafka commit: {e}");
            error_code(e)
        }
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            OffsetCommitResponseTopic::default()
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let own = own.get(&(name.clone(), p.partition_index));
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(own.copied().unwrap_or(error))
                        })
                        .collect(),
                )
                .with_name(topic.name)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's committed offsets for `wanted` (topic → partitions; every
/// committed partition when `None`), -1 where none is committed.
async fn committed(
    node: &Node,
    group: &str,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Result<Vec<(TopicName, Vec<(i32, i64)>)>, GroupError> {
    let stored = node.groups().offsets(group, None).await?;
    let mut by_topic: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for o in stored.offsets {
        let (Ok(p), Ok(offset)) = (i32::try_from(o.partition), i64::try_from(o.offset)) else {
            continue;
        };
        by_topic.entry(o.topic).or_default().insert(p, offset);
    }
    Ok(match wanted {
        None => by_topic
            .into_iter()
            .map(|(t, ps)| (TopicName(str_bytes(t)), ps.into_iter().collect()))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|(topic, partitions)| {
                let known = by_topic.get(topic.0.as_str());
                let offsets = partitions
                    .into_iter()
                    .map(|p| (p, known.and_then(|k| k.get(&p)).copied().unwrap_or(-1)))
                    .collect();
                (topic, offsets)
            })
            .collect(),
    })
}

pub async fn fetch_offsets(
    node: &Node,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            let wanted = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let answer = OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
            groups.push(match committed(node, &group.group_id, wanted).await {
                Ok(topics) => answer.with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(p, offset)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(-1)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
                Err(e) => answer.with_error_code(error_code(&e)),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect::<Vec<_>>()
    });
    match committed(node, &request.group_id, wanted.clone()).await {
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, offset)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(-1)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(e) => {
            let error = error_code(&e);
            // v1 has no top-level code: every partition carries it.
            let topics = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_error_code(error)
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetFetchResponse::default()
                .with_error_code(error)
                .with_topics(topics)
        }
    }
}

/// The protocol type a group shows: `consumer` for Kafka clients, `yak`
/// for YAK's, none for a group that only holds offsets.
fn protocol_type(group: &Group) -> &str {
    match (&group.kafka, group.members.is_empty()) {
        (Some(k), _) => &k.protocol_type,
        (None, true) => "",
        (None, false) => YAK_PROTOCOL,
    }
}

pub async fn list(node: &Node, request: ListGroupsRequest) -> ListGroupsResponse {
    let failed = |e: GroupError| ListGroupsResponse::default().with_error_code(error_code(&e));
    if node.gate().epoch().is_none() {
        return failed(GroupError::NotLeader);
    }
    let names = match node.store().group_names().await {
        Ok(names) => names,
        Err(e) => return failed(e.into()),
    };
    let classic = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let mut groups = Vec::new();
    for name in names {
        let group = match node.groups().group(&name).await {
            Ok(Some(group)) => group,
            Ok(None) | Err(GroupError::InvalidGroup(_)) => continue,
            Err(e) => return failed(e),
        };
        let state = state_name(group.state);
        let wanted = request.states_filter.is_empty()
            || request
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state));
        if wanted && classic {
            groups.push(
                ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(name)))
                    .with_protocol_type(str_bytes(protocol_type(&group)))
                    .with_group_state(str_bytes(state))
                    .with_group_type(str_bytes("classic")),
            );
        }
    }
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe(
    node: &Node,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for name in request.groups {
        let answer = DescribedGroup::default()
            .with_group_id(name.clone())
            .with_authorized_operations(i32::MIN);
        let group = match node.groups().group(&name).await {
            Ok(Some(group)) => group,
            Ok(None) if version >= 6 => {
                groups.push(
                    answer
                        .with_error_code(code(ResponseError::GroupIdNotFound))
                        .with_group_state(str_bytes("Dead")),
                );
                continue;
            }
            Ok(None) => {
                groups.push(answer.with_group_state(str_bytes("Dead")));
                continue;
            }
            Err(e) => {
                groups.push(answer.with_error_code(error_code(&e)));
                continue;
            }
        };
        let protocol = match &group.kafka {
            Some(k) => k.protocol.clone(),
            None => group.assignor.as_str().to_owned(),
        };
        let members = group
            .members
            .iter()
            .map(|(id, m)| {
                let (metadata, assignment, host) = match &m.kafka {
                    Some(k) => (
                        k.protocols
                            .iter()
                            .find(|p| p.name == protocol)
                            .map(|p| Bytes::from(p.metadata.clone()))
                            .unwrap_or_default(),
                        Bytes::from(k.assignment.clone()),
                        k.client_host.clone(),
                    ),
                    // YAK members' partitions, in the consumer protocol's
                    // terms, so Kafka tools show them.
                    None => (
                        Bytes::new(),
                        encode_assignment(&m.assignment),
                        String::new(),
                    ),
                };
                DescribedGroupMember::default()
                    .with_member_id(str_bytes(id.clone()))
                    .with_client_id(str_bytes(m.client_id.clone().unwrap_or_default()))
                    .with_client_host(str_bytes(host))
                    .with_member_metadata(metadata)
                    .with_member_assignment(assignment)
            })
            .collect();
        groups.push(
            answer
                .with_group_state(str_bytes(state_name(group.state)))
                .with_protocol_type(str_bytes(protocol_type(&group)))
                .with_protocol_data(str_bytes(protocol))
                .with_members(members),
        );
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

fn encode_assignment(partitions: &[TopicPartition]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic
            .entry(&tp.topic)
            .or_default()
            .push(i32::try_from(tp.partition).unwrap_or(i32::MAX));
    }
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    encode_consumer(&assignment, 0)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::consumer_protocol_subscription;

    use super::*;

    #[test]
    fn subscriptions_and_assignments_decode_at_every_version() {
        for version in 0..=3 {
            let subscription = ConsumerProtocolSubscription::default()
                .with_topics(vec![str_bytes("b"), str_bytes("a")])
                .with_owned_partitions(if version >= 1 {
                    vec![
                        consumer_protocol_subscription::TopicPartition::default()
                            .with_topic(TopicName(str_bytes("a")))
                            .with_partitions(vec![0]),
                    ]
                } else {
                    Vec::new()
                });
            let protocol = KafkaProtocol {
                name: "range".into(),
                metadata: encode_consumer(&subscription, version).to_vec(),
            };
            assert_eq!(subscribed_topics(&[protocol]), vec!["a", "b"], "v{version}");
        }
        let partitions = vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2)];
        let encoded = encode_assignment(&partitions);
        assert_eq!(assigned_partitions(&encoded), Some(partitions));
    }

    #[test]
    fn garbage_decodes_to_nothing_rather_than_a_guess() {
        assert_eq!(assigned_partitions(&[]), None);
        assert_eq!(assigned_partitions(&[0, 0, 0xff]), None);
        assert_eq!(assigned_partitions(&[0xff, 0xff, 0, 0, 0, 0]), None);
        let protocol = KafkaProtocol {
            name: "range".into(),
            metadata: vec![0, 0, 0, 0, 0, 9],
        };
        assert!(subscribed_topics(&[protocol]).is_empty());
    }
}
