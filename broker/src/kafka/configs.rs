//! DescribeConfigs (what `kafka-configs --describe`, `Admin.describeConfigs`
//! and kafka-python's `describe_configs` ask): a topic's and a broker's
//! configuration, translated from YAK's own into Kafka's names.
//!
//! Invariants:
//! - Every value is what this node really does (a topic's retention as
//!   stored with the topic, the node's limits as started); nothing is
//!   made up to look like Kafka, and a setting YAK does not have is left
//!   out rather than guessed.
//! - Every entry is read-only: YAK serves no AlterConfigs; topic configs
//!   are set when the topic is created (`docs/operations.md`).
//! - One resource's error (unknown topic, another broker, an unsupported
//!   resource type) is that resource's answer; the others are answered.

use std::collections::BTreeMap;

use kafka_protocol::{
    ResponseError,
    messages::{
        DescribeConfigsRequest, DescribeConfigsResponse,
        describe_configs_request::DescribeConfigsResource,
        describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult},
    },
    protocol::StrBytes,
};
use yak_protocol::{TopicConfig, validate_topic_name};

use super::{broker_id, code};
use crate::node::Node;

/// Kafka's resource types (`ConfigResource.Type`).
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Kafka's config sources (`DescribeConfigsResponse.ConfigSource`).
const TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// Kafka's config types (`ConfigDef.Type`, from DescribeConfigs v3).
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const LONG: i8 = 5;
const LIST: i8 = 7;

/// One configuration entry.
struct Entry {
    name: &'static str,
    value: String,
    source: i8,
    kind: i8,
    doc: &'static str,
}

impl Entry {
    fn new(name: &'static str, value: impl ToString, source: i8, kind: i8) -> Self {
        Self {
            name,
            value: value.to_string(),
            source,
            kind,
            doc: "",
        }
    }

    fn doc(self, doc: &'static str) -> Self {
        Self { doc, ..self }
    }
}

/// What a resource's lookup failed with.
type Refusal = (ResponseError, String);

pub async fn handle(node: &Node, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let wants_topics = request.resources.iter().any(|r| r.resource_type == TOPIC);
    // One read of the topics for the whole request.
    let topics = match wants_topics {
        true => read_topics(node).await,
        false => Ok(BTreeMap::new()),
    };
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let entries = match resource.resource_type {
                TOPIC => topic(node, &resource.resource_name, &topics),
                BROKER => broker(node, &resource.resource_name),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("resource type {other}: YAK describes topics (2) and brokers (4)"),
                )),
            };
            answer(resource, entries, request.include_documentation)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Every topic with its stored config (`None`: created before configs
/// existed, so no retention).
async fn read_topics(node: &Node) -> Result<BTreeMap<String, Option<TopicConfig>>, String> {
    let store = node.store();
    let (names, mut configs) = match tokio::try_join!(store.topics(), store.topic_configs()) {
        Ok(read) => read,
        Err(e) => return Err(e.to_string()),
    };
    Ok(names
        .into_keys()
        .map(|name| {
            let config = configs.remove(&name);
            (name, config)
        })
        .collect())
}

fn topic(
    node: &Node,
    name: &str,
    topics: &Result<BTreeMap<String, Option<TopicConfig>>, String>,
) -> Result<Vec<Entry>, Refusal> {
    let topics = topics.as_ref().map_err(|e| {
        let reason = format!("the cluster metadata is unavailable: {e}");
        (ResponseError::UnknownServerError, reason)
    })?;
    let Some(stored) = topics.get(name) else {
        let error = match validate_topic_name(name) {
            Ok(()) => ResponseError::UnknownTopicOrPartition,
            Err(_) => ResponseError::InvalidTopicException,
        };
        return Err((error, format!("no topic {name:?}")));
    };
    let config = node.config();
    let retention = |value: Option<u64>| match value {
        Some(v) => Entry::new("", v, TOPIC_CONFIG, LONG),
        None => Entry::new("", -1, DEFAULT_CONFIG, LONG),
    };
    let stored = stored.unwrap_or_default();
    Ok(vec![
        Entry::new("cleanup.policy", "delete", DEFAULT_CONFIG, LIST)
            .doc("YAK deletes whole old segments (retention); it never compacts"),
        Entry {
            name: "retention.ms",
            ..retention(stored.retention_ms)
        }
        .doc("closed segments last written longer ago are deleted (-1: kept)"),
        Entry {
            name: "retention.bytes",
            ..retention(stored.retention_bytes)
        }
        .doc("oldest closed segments are deleted while a partition is larger (-1: kept)"),
        Entry::new(
            "max.message.bytes",
            clamp(config.max_request_bytes),
            STATIC_BROKER_CONFIG,
            INT,
        )
        .doc("the node's --max-request-bytes"),
        Entry::new(
            "min.insync.replicas",
            config.min_insync_replicas,
            STATIC_BROKER_CONFIG,
            INT,
        )
        .doc("replicas, leader included, holding a write before it is acknowledged"),
        Entry::new(
            "segment.bytes",
            clamp(config.segment_bytes),
            STATIC_BROKER_CONFIG,
            INT,
        )
        .doc("the node's --segment-bytes"),
        Entry::new("compression.type", "uncompressed", DEFAULT_CONFIG, STRING)
            .doc("YAK decodes compressed batches and stores them uncompressed"),
        Entry::new(
            "unclean.leader.election.enable",
            false,
            DEFAULT_CONFIG,
            BOOLEAN,
        )
        .doc("only an in-sync follower takes over"),
    ])
}

fn broker(node: &Node, name: &str) -> Result<Vec<Entry>, Refusal> {
    let config = node.config();
    let id = broker_id(&config.node_id);
    // "" asks for the cluster-wide defaults, which are this node's.
    if !name.is_empty() && name != id.to_string() {
        return Err((
            ResponseError::InvalidRequest,
            format!("this is broker {id}; ask broker {name} itself"),
        ));
    }
    let protocol = match (
        config.server.tls_cert.is_some(),
        config.client_token.is_some(),
    ) {
        (false, false) => "PLAINTEXT",
        (false, true) => "SASL_PLAINTEXT",
        (true, false) => "SSL",
        (true, true) => "SASL_SSL",
    };
    let advertised = config
        .kafka
        .as_ref()
        .map_or(String::new(), |(_, advertised)| {
            format!("{protocol}://{advertised}")
        });
    let retention = |value: Option<u64>| value.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
    let fixed = |name, value: String, kind| Entry::new(name, value, STATIC_BROKER_CONFIG, kind);
    let mut entries = vec![
        fixed("broker.id", id.to_string(), INT).doc("a hash of the YAK node id"),
        fixed("advertised.listeners", advertised, LIST).doc("the node's --kafka-advertised"),
        fixed("num.partitions", config.default_partitions.to_string(), INT),
        fixed(
            "min.insync.replicas",
            config.min_insync_replicas.to_string(),
            INT,
        ),
        fixed(
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            BOOLEAN,
        ),
        fixed(
            "message.max.bytes",
            clamp(config.max_request_bytes).to_string(),
            INT,
        ),
        fixed(
            "log.segment.bytes",
            clamp(config.segment_bytes).to_string(),
            INT,
        ),
        fixed(
            "log.retention.ms",
            retention(config.retention.retention_ms).to_string(),
            LONG,
        ),
        fixed(
            "log.retention.bytes",
            retention(config.retention.retention_bytes).to_string(),
            LONG,
        ),
        fixed("log.cleanup.policy", "delete".to_owned(), LIST),
    ];
    if config.client_token.is_some() {
        entries.push(fixed("sasl.enabled.mechanisms", "PLAIN".to_owned(), LIST));
    }
    Ok(entries)
}

/// An `INT` config's value: Kafka's ints are 32-bit.
fn clamp(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}

fn answer(
    resource: &DescribeConfigsResource,
    entries: Result<Vec<Entry>, Refusal>,
    documentation: bool,
) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let entries = match entries {
        Ok(entries) => entries,
        Err((error, message)) => {
            return result
                .with_error_code(code(error))
                .with_error_message(Some(StrBytes::from_string(message)));
        }
    };
    let wanted = |name: &str| {
        resource
            .configuration_keys
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
    };
    let configs = entries
        .into_iter()
        .filter(|e| wanted(e.name))
        .map(|e| {
            // Type and documentation exist from v3 on; the encoder leaves
            // them out of older versions.
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(e.name))
                .with_value(Some(StrBytes::from_string(e.value)))
                .with_read_only(true)
                .with_config_source(e.source)
                .with_config_type(e.kind)
                .with_documentation(
                    (documentation && !e.doc.is_empty()).then(|| StrBytes::from_static_str(e.doc)),
                )
        })
        .collect();
    result.with_configs(configs)
}
