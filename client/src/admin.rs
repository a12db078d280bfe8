//! Topic administration on a [`YakClient`]: list, create (with an optional
//! retention rule) and describe topics.
//!
//! Every method here is one [`YakClient::call`] and nothing more: leader
//! discovery, redirects and retries are the cluster module's. A create is
//! retried only when the answer says nothing was written, so a topic is
//! never created twice by a retry.

use reqwest::Method;
use yak_protocol::TopicConfig;

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
}
