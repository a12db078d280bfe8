//! DescribeCluster (what `Admin.describeCluster` asks): the cluster id is
//! the YAK cluster name, the controller is the leader, and the brokers are
//! Metadata's (`metadata::brokers`: every live node with a Kafka listener).
//!
//! Any node answers, leader or not, from what it last learned of the
//! registry. YAK has no separate controllers, so asking for controller
//! endpoints (v1+) gets UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker
//! answers it; no broker is ever fenced.

use kafka_protocol::{
    ResponseError,
    messages::{
        BrokerId, DescribeClusterRequest, DescribeClusterResponse,
        describe_cluster_response::DescribeClusterBroker,
    },
    protocol::StrBytes,
};

use super::{broker_id, code, metadata};
use crate::node::Node;

/// `endpoint_type` asking for brokers (the only value before v1).
const BROKERS: i8 = 1;

pub fn handle(node: &Node, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(StrBytes::from_string(node.config().cluster.clone()));
    if request.endpoint_type != BROKERS {
        return response
            .with_error_code(code(ResponseError::UnsupportedEndpointType))
            .with_error_message(Some(StrBytes::from_static_str(
                "YAK has no separate controllers: ask for brokers",
            )));
    }
    let leader = node.leader().map_or(-1, |(id, _)| broker_id(&id));
    let brokers = metadata::brokers(node, &node.cluster())
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(b.id)
                .with_host(b.host)
                .with_port(b.port)
        })
        .collect();
    // Authorized operations stay "not provided" (the default): YAK has no
    // ACLs to report.
    response
        .with_controller_id(BrokerId(leader))
        .with_brokers(brokers)
}
