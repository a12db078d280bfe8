//! Administration on a [`YakClient`]: topics (list, create with an
//! optional retention rule, describe, add partitions) and consumer groups
//! (list, describe, committed offsets, reset).
//!
//! Every method here is one [`YakClient::call`] and nothing more: leader
//! discovery, redirects and retries are the cluster module's. A create and
//! a partition increase are retried only when the answer says nothing was
//! written, so a retry never creates a topic twice nor mistakes its own
//! earlier success for a refusal; a reset, which sets the same offsets
//! however often it runs, is retried like a read.

use reqwest::Method;
use yak_protocol::{
    TopicConfig,
    group::{GroupDetail, GroupList, Offsets, Reset},
};

use crate::{
    cluster::YakClient,
    error::Result,
    model::{TopicDetail, TopicSummary},
    wire::{Body, encode},
};

impl YakClient {
    /// Every topic with its partition count.
    pub async fn topics(&self) -> Result<Vec<TopicSummary>> {
        #[derive(serde::Deserialize)]
        struct Topics {
            topics: Vec<TopicSummary>,
        }
        let topics: Topics = self
            .call(Method::GET, "/topics", None, None, |_| true)
            .await?;
        Ok(topics.topics)
    }

    /// Creates a topic; `Err` with code `topic_exists` if it exists.
    pub async fn create_topic(&self, name: &str, partitions: Option<u32>) -> Result<TopicSummary> {
        self.create_topic_with(name, partitions, &TopicConfig::default())
            .await
    }

    /// Creates a topic with its own retention rule (what `config` leaves
    /// out is the leader's default).
    pub async fn create_topic_with(
        &self,
        name: &str,
        partitions: Option<u32>,
        config: &TopicConfig,
    ) -> Result<TopicSummary> {
        let mut request = serde_json::json!({ "name": name, "partitions": partitions });
        if let (Some(object), Ok(serde_json::Value::Object(config))) =
            (request.as_object_mut(), serde_json::to_value(config))
        {
            object.extend(config);
        }
        let body = Body::json(&request);
        self.call(Method::POST, "/topics", Some(&body), None, |e| {
            e.is_not_written()
        })
        .await
    }

    /// A topic's partitions as the leader sees them (ISR, follower lag).
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDetail> {
        let path = format!("/topics/{}", encode(name));
        self.call(Method::GET, &path, None, None, |_| true).await
    }

    /// Raises `topic`'s partition count to `partitions` (the new total);
    /// returns the count. Groups reading the topic rebalance so that the
    /// new partitions get an owner.
    pub async fn add_partitions(&self, topic: &str, partitions: u32) -> Result<u32> {
        let path = format!("/topics/{}/partitions", encode(topic));
        let body = Body::json(&serde_json::json!({ "partitions": partitions }));
        let topic: TopicSummary = self
            .call(Method::POST, &path, Some(&body), None, |e| {
                e.is_not_written()
            })
            .await?;
        Ok(topic.partitions)
    }

    /// Every consumer group: state, generation, members, topics, lag.
    pub async fn list_groups(&self) -> Result<GroupList> {
        self.call(Method::GET, "/groups", None, None, |_| true)
            .await
    }

    /// One group: its members and their assignment, and per partition the
    /// committed offset and lag.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDetail> {
        let path = format!("/groups/{}", encode(group));
        self.call(Method::GET, &path, None, None, |_| true).await
    }

    /// A group's committed offsets (none for a group that never
    /// committed).
    pub async fn group_offsets(&self, group: &str) -> Result<Offsets> {
        let path = format!("/groups/{}/offsets", encode(group));
        self.call(Method::GET, &path, None, None, |_| true).await
    }

    /// Moves a group's committed offsets, only while it has no members
    /// (`group_not_empty` otherwise); returns them.
    pub async fn reset_group(&self, group: &str, reset: &Reset) -> Result<Offsets> {
        let path = format!("/groups/{}/reset", encode(group));
        let body = Body::json(reset);
        self.call(Method::POST, &path, Some(&body), None, |_| true)
            .await
    }
}
