//! [`Registry`]: the consumer UI's subscriptions, a broadcast of their
//! coming and going for the open pages, and the pages ([`Tabs`]) that own
//! group memberships, which end when their page closes.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use yak_client::{ErrorCode, YakClient};
use yak_ui::UiError;

use crate::{
    request::{Plan, SubscribeRequest},
    subscription::{LEAVE_TIMEOUT, Source, Subscription, Tasks},
    tabs::{Closing, GRACE, TabId, Tabs},
};

/// Subscriptions one UI process runs at most.
pub const MAX_SUBSCRIPTIONS: usize = 32;

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
    tabs: Tabs,
    tasks: Tasks,
    shutdown: CancellationToken,
}

/// An open event stream of a page. When the last one of a page is dropped,
/// the page's group subscriptions end after [`GRACE`], unless it opens
/// another first.
#[derive(Debug)]
pub struct TabStream {
    registry: Arc<Registry>,
    tab: TabId,
}

impl Drop for TabStream {
    fn drop(&mut self) {
        if let Some(ticket) = self.registry.tabs.close(&self.tab) {
            self.registry.end_later(ticket);
        }
    }
}

impl Registry {
    /// A registry whose tasks run on the current runtime.
    pub fn new(client: YakClient, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            client,
            subs: Mutex::default(),
            next_id: AtomicU64::new(1),
            changes: broadcast::channel(64).0,
            tabs: Tabs::default(),
            tasks: Tasks::current(),
            shutdown,
        })
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

    /// Marks a stream of `tab`'s page open until the answer is dropped.
    pub fn open_tab(self: &Arc<Self>, tab: TabId) -> TabStream {
        self.tabs.open(&tab);
        TabStream {
            registry: self.clone(),
            tab,
        }
    }

    /// Checks the request against the cluster (the topics exist and have
    /// the partition) and starts reading.
    pub async fn subscribe(
        self: &Arc<Self>,
        req: SubscribeRequest,
    ) -> Result<Arc<Subscription>, UiError> {
        let (source, partitions) = match req.plan()? {
            Plan::Partitions {
                topic,
                partition,
                start,
            } => {
                let partitions = self.partitions(&topic, partition).await?;
                let source = Source::Partitions {
                    topic: topic.into(),
                    all: partition.is_none(),
                    start,
                };
                (source, partitions)
            }
            Plan::Group {
                group,
                topics,
                start,
                owner,
            } => {
                for topic in &topics {
                    self.partitions(topic, None).await?;
                }
                let source = Source::Group {
                    group,
                    topics,
                    start,
                    owner,
                };
                (source, Vec::new())
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
            let sub = Subscription::new(id, source, &partitions, self.shutdown.child_token());
            subs.insert(id, sub.clone());
            let _ = self.changes.send(Change::Added(sub.clone()));
            sub
        };
        sub.spawn(&self.client, &self.tasks);
        // A page whose stream is not open now may never open one.
        if let Some(ticket) = sub.owner().and_then(|tab| self.tabs.unless_open(tab)) {
            self.end_later(ticket);
        }
        tracing::info!(sub = sub.id, source = ?sub.source, ?partitions, "subscribed");
        Ok(sub)
    }

    /// The partitions of `topic` (sorted), or just `partition` if it has
    /// it; asks the leader.
    async fn partitions(&self, topic: &str, partition: Option<u32>) -> Result<Vec<u32>, UiError> {
        let detail = self
            .client
            .describe_topic(topic)
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
        match partition {
            None => Ok(all),
            Some(p) if all.contains(&p) => Ok(vec![p]),
            Some(p) => Err(UiError::bad_request(
                "unknown_partition",
                format!(
                    "{topic} has no partition {p}; it has {} partition{} (0 to {})",
                    all.len(),
                    if all.len() == 1 { "" } else { "s" },
                    all.len().saturating_sub(1)
                ),
            )),
        }
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

    /// Ends the subscriptions of the ticket's page after [`GRACE`] if it
    /// has opened no stream since.
    fn end_later(self: &Arc<Self>, ticket: Closing) {
        let registry = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(GRACE) => {}
                // Shutting down ends every subscription anyway.
                () = registry.shutdown.cancelled() => return,
            }
            if !registry.tabs.still_closed(&ticket) {
                return;
            }
            let owned: Vec<u64> = registry
                .list()
                .iter()
                .filter(|sub| sub.owner() == Some(&ticket.tab))
                .map(|sub| sub.id)
                .collect();
            for id in owned {
                tracing::info!(sub = id, tab = %ticket.tab, "its page closed");
                // Gone already if the page unsubscribed meanwhile.
                let _ = registry.unsubscribe(id);
            }
            registry.tabs.forget(&ticket);
        });
    }

    /// After the shutdown signal: waits (a little) for the subscriptions'
    /// tasks to end, so that group members have left their groups.
    pub async fn closed(&self) {
        if !self.tasks.close(LEAVE_TIMEOUT * 2).await {
            tracing::warn!("some subscriptions did not end in time");
        }
    }
}
