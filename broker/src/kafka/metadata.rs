//! Metadata: the brokers (every live node with a Kafka listener, from the
//! Redis node registry) and the topics, with YAK's one leader as leader of
//! every partition and the ISR as stored.
//!
//! Any node answers, leader or not: clients bootstrap from any node and
//! are sent to the leader's advertised Kafka address.

use std::collections::BTreeSet;

use kafka_protocol::{
    ResponseError,
    messages::{
        BrokerId, MetadataRequest, MetadataResponse, TopicName,
        metadata_response::{
            MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
        },
    },
    protocol::StrBytes,
};
use yak_protocol::{TopicConfig, validate_topic_name};

use super::{broker_id, code};
use crate::{
    node::{ClusterView, Node},
    produce::create_topic,
};

/// A node with a Kafka listener, as Metadata and DescribeCluster list it.
pub struct Broker {
    pub id: BrokerId,
    pub host: StrBytes,
    pub port: i32,
}

/// Every node with a Kafka listener: this node first (it may not have
/// heartbeated yet), then the others of the registry in `cluster`, each once.
pub fn brokers(node: &Node, cluster: &ClusterView) -> Vec<Broker> {
    let me = &node.config().node_id;
    let mut brokers = Vec::new();
    let mut listed = BTreeSet::new();
    let own = node
        .config()
        .kafka
        .as_ref()
        .map(|(_, advertised)| advertised.clone());
    for (id, address) in std::iter::once((me.clone(), own)).chain(
        cluster
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.kafka.clone())),
    ) {
        let Some((host, port)) = address.as_deref().and_then(split_host_port) else {
            continue;
        };
        if listed.insert(id.clone()) {
            brokers.push(Broker {
                id: BrokerId(broker_id(&id)),
                host: StrBytes::from_string(host.to_owned()),
                port,
            });
        }
    }
    brokers
}

pub async fn handle(node: &Node, request: MetadataRequest, version: i16) -> MetadataResponse {
    let cluster = node.cluster();
    let brokers = brokers(node, &cluster)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(b.id)
                .with_host(b.host)
                .with_port(b.port)
        })
        .collect();
    let leader = node.leader().map(|(id, _)| id);
    let leader_id = leader.as_deref().map_or(-1, broker_id);

    let known = match node.store().topics().await {
        Ok(known) => known,
        Err(e) => {
            tracing::debug!("kafka metadata: topics unavailable: {e}");
            Default::default()
        }
    };
    let wanted: Vec<String> = match &request.topics {
        // v0 sends an empty list for "all"; later versions send null.
        None => known.keys().cloned().collect(),
        Some(topics) if topics.is_empty() && version == 0 => known.keys().cloned().collect(),
        Some(topics) => topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect(),
    };
    let mut topics = Vec::with_capacity(wanted.len());
    for name in wanted {
        let mut partitions = known.get(&name).copied();
        if partitions.is_none()
            && request.allow_auto_topic_creation
            && node.config().auto_create_topics
            && node.gate().epoch().is_some()
            && validate_topic_name(&name).is_ok()
        {
            let count = node.config().default_partitions;
            match create_topic(node, &name, count, TopicConfig::default()).await {
                Ok((topic, _)) => partitions = Some(topic.partitions.len() as u32),
                Err(e) => tracing::debug!(topic = %name, "kafka metadata: cannot create: {e}"),
            }
        }
        let topic = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
        let Some(count) = partitions else {
            let error = match validate_topic_name(&name) {
                Ok(()) => ResponseError::UnknownTopicOrPartition,
                Err(_) => ResponseError::InvalidTopicException,
            };
            topics.push(topic.with_error_code(code(error)));
            continue;
        };
        let partitions = (0..count)
            .map(|p| {
                let isr: Vec<BrokerId> = cluster
                    .isr
                    .get(&format!("{name}:{p}"))
                    .map(|ids| ids.iter().map(|id| BrokerId(broker_id(id))).collect())
                    .unwrap_or_else(|| vec![BrokerId(leader_id)]);
                let error = match leader {
                    Some(_) => 0,
                    None => code(ResponseError::LeaderNotAvailable),
                };
                MetadataResponsePartition::default()
                    .with_error_code(error)
                    .with_partition_index(p as i32)
                    .with_leader_id(BrokerId(leader_id))
                    .with_leader_epoch(-1)
                    .with_replica_nodes(isr.clone())
                    .with_isr_nodes(isr)
            })
            .collect();
        topics.push(topic.with_partitions(partitions));
    }
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(node.config().cluster.clone())))
        .with_controller_id(BrokerId(leader_id))
        .with_topics(topics)
}

/// `host:port` → its parts (the host may be a bracketed IPv6 address).
pub fn split_host_port(address: &str) -> Option<(&str, i32)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}
