//! [`Registry`]: the consumer UI's subscriptions, and a broadcast of their
//! coming and going for the open pages.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use yak_client::validate_topic_name;
use yak_client::{ErrorCode, StartAt, YakClient};
use yak_ui::UiError;

use crate::subscription::Subscription;

/// Subscriptions one UI process runs at most.
pub const MAX_SUBSCRIPTIONS: usize = 32;

/// Where a subscription starts: `"earliest"`, `"latest"` or an offset
/// (a number or a string of digits).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StartSpec {
    Offset(u64),
    Word(String),
}

impl StartSpec {
    pub fn parse(&self) -> Result<StartAt, String> {
        match self {
            StartSpec::Offset(n) => Ok(StartAt::Offset(*n)),
            StartSpec::Word(w) => w.trim().parse(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    pub topic: String,
    /// One partition, or every partition when absent.
    #[serde(default)]
    pub partition: Option<u32>,
    /// Default: `latest`.
    #[serde(default)]
    pub start: Option<StartSpec>,
}

/// Subscriptions added or removed.
#[derive(Debug, Clone)]
pub enum Change {
    Added(Arc<Subscription>),
    Removed(u64),
}

#[derive(Debug)]
pub struct Registry {
    client: YakClient,
    subs: Mutex<BTreeMap<u64, Arc<Subscription>>>,
    next_id: AtomicU64,
    changes: broadcast::Sender<Change>,
    shutdown: CancellationToken,
}

impl Registry {
    pub fn new(client: YakClient, shutdown: CancellationToken) -> Self {
        Self {
            client,
            subs: Mutex::default(),
            next_id: AtomicU64::new(1),
            changes: broadcast::channel(64).0,
            shutdown,
        }
    }

    pub fn get(&self, id: u64) -> Result<Arc<Subscription>, UiError> {
        self.subs.lock().unwrap().get(&id).cloned().ok_or_else(|| {
            UiError::not_found(
                "unknown_subscription",
                format!("there is no subscription {id}"),
            )
        })
    }

    pub fn list(&self) -> Vec<Arc<Subscription>> {
        self.subs.lock().unwrap().values().cloned().collect()
    }

    /// The subscriptions now and the changes after (taken together).
    pub fn watch(&self) -> (Vec<Arc<Subscription>>, broadcast::Receiver<Change>) {
        let subs = self.subs.lock().unwrap();
        (subs.values().cloned().collect(), self.changes.subscribe())
    }

    /// Checks the request against the topic's partitions (from the leader)
    /// and starts reading.
    pub async fn subscribe(&self, req: SubscribeRequest) -> Result<Arc<Subscription>, UiError> {
        let topic = req.topic.trim().to_owned();
        validate_topic_name(&topic).map_err(|m| UiError::bad_request("invalid_topic", m))?;
        let start = match &req.start {
            None => StartAt::Latest,
            Some(spec) => spec
                .parse()
                .map_err(|m| UiError::bad_request("invalid_start", m))?,
        };
        let detail = self
            .client
            .describe_topic(&topic)
            .await
            .map_err(|e| match e {
                e if e.error_code() == Some(ErrorCode::UnknownTopic) => UiError::not_found(
                    "unknown_topic",
                    format!("there is no topic {topic:?}; send to it first, or create it"),
                ),
                e => UiError::from(e),
            })?;
        let mut all: Vec<u32> = detail.partitions.iter().map(|p| p.partition).collect();
        all.sort_unstable();
        let partitions = match req.partition {
            None => all,
            Some(p) if all.contains(&p) => vec![p],
            Some(p) => {
                return Err(UiError::bad_request(
                    "unknown_partition",
                    format!(
                        "{topic} has no partition {p}; it has {} partition{} (0 to {})",
                        all.len(),
                        if all.len() == 1 { "" } else { "s" },
                        all.len().saturating_sub(1)
                    ),
                ));
            }
        };
        let sub = {
            let mut subs = self.subs.lock().unwrap();
            if subs.len() >= MAX_SUBSCRIPTIONS {
                return Err(UiError::conflict(
                    "too_many_subscriptions",
                    format!(
                        "at most {MAX_SUBSCRIPTIONS} subscriptions; unsubscribe from one first"
                    ),
                ));
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let sub = Subscription::new(
                id,
                topic,
                &partitions,
                req.partition.is_none(),
                start,
                self.shutdown.child_token(),
            );
            subs.insert(id, sub.clone());
            let _ = self.changes.send(Change::Added(sub.clone()));
            sub
        };
        sub.spawn(&self.client);
        tracing::info!(sub = sub.id, topic = %sub.topic, ?partitions, ?start, "subscribed");
        Ok(sub)
    }

    pub fn unsubscribe(&self, id: u64) -> Result<(), UiError> {
        let sub = {
            let mut subs = self.subs.lock().unwrap();
            let sub = subs.remove(&id).ok_or_else(|| {
                UiError::not_found(
                    "unknown_subscription",
                    format!("there is no subscription {id}"),
                )
            })?;
            let _ = self.changes.send(Change::Removed(id));
            sub
        };
        sub.stop();
        tracing::info!(sub = id, "unsubscribed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_specs() {
        let parse = |v: serde_json::Value| serde_json::from_value::<StartSpec>(v).unwrap().parse();
        assert_eq!(parse("earliest".into()), Ok(StartAt::Earliest));
        assert_eq!(parse("latest".into()), Ok(StartAt::Latest));
        assert_eq!(parse(42.into()), Ok(StartAt::Offset(42)));
        assert_eq!(parse(" 7 ".into()), Ok(StartAt::Offset(7)));
        assert!(parse("soon".into()).is_err());
        assert!(serde_json::from_value::<StartSpec>((-1).into()).is_err());
    }
}
