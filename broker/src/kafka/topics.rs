//! CreateTopics, through the produce service's `create_topic` (the path
//! of `POST /topics`). Replication factor and replica assignments are
//! ignored: every YAK node holds every partition.
//!
//! Invariant: only the leader creates (others answer NOT_CONTROLLER, so
//! clients find the leader through Metadata's controller id).

use kafka_protocol::{
    ResponseError,
    messages::{
        CreateTopicsRequest, CreateTopicsResponse, create_topics_response::CreatableTopicResult,
    },
    protocol::StrBytes,
};
use yak_protocol::{TopicConfig, validate_topic_name};

use super::code;
use crate::{node::Node, produce::create_topic};

pub async fn handle(node: &Node, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        let refuse = |e: ResponseError, message: String| {
            result
                .clone()
                .with_error_code(code(e))
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        let partitions = match topic.num_partitions {
            -1 => node.config().default_partitions,
            n => match u32::try_from(n) {
                Ok(n) if n > 0 => n,
                _ => {
                    results.push(refuse(
                        ResponseError::InvalidPartitions,
                        format!("{n} partitions: at least 1"),
                    ));
                    continue;
                }
            },
        };
        if let Err(message) = validate_topic_name(&name) {
            results.push(refuse(ResponseError::InvalidTopicException, message));
            continue;
        }
        if node.gate().epoch().is_none() {
            results.push(refuse(
                ResponseError::NotController,
                "this node does not lead".into(),
            ));
            continue;
        }
        match node.store().topics().await {
            Ok(known) if known.contains_key(&name) => {
                results.push(refuse(
                    ResponseError::TopicAlreadyExists,
                    format!("topic {name:?} exists"),
                ));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                results.push(refuse(ResponseError::RequestTimedOut, e.to_string()));
                continue;
            }
        }
        if request.validate_only {
            results.push(result.with_num_partitions(partitions as i32));
            continue;
        }
        results.push(
            match create_topic(node, &name, partitions, TopicConfig::default()).await {
                Ok((created, true)) => result
                    .with_num_partitions(created.partitions.len() as i32)
                    .with_replication_factor(-1),
                Ok((_, false)) => refuse(
                    ResponseError::TopicAlreadyExists,
                    format!("topic {name:?} exists"),
                ),
                Err(e) => refuse(ResponseError::RequestTimedOut, e.to_string()),
            },
        );
    }
    CreateTopicsResponse::default().with_topics(results)
}
