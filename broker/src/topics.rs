//! The topics this node holds: for each, its partitions' logs under
//! `<data dir>/topics/<topic>/<partition>/`.
//!
//! Invariants: a topic's partition count only grows (a grown topic is a new
//! [`Topic`] holding the same partitions and more); a topic exists locally
//! only if it exists in the cluster metadata (or was found on disk, from a
//! time it did); topic names are validated before they touch the file
//! system.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use futures_util::future::join_all;
use partition_log::{LogConfig, LogError};
use tokio::sync::watch;
use yak_protocol::{TopicConfig, validate_topic_name};

use crate::{
    checkpoint::SharedCheckpoint,
    partition::{Partition, WriteError, WriterContext},
    store::{ClusterStore, StoreError},
};

/// Why the partitions could not all start leading.
#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot lead {topic}/{partition}: {source}")]
    Partition {
        topic: String,
        partition: u32,
        source: WriteError,
    },
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub partitions: Vec<Partition>,
    /// The rule as stored in Redis; unlimited until it is known. Shared
    /// with the topic this one grew from.
    config: Arc<watch::Sender<TopicConfig>>,
}

impl Topic {
    pub fn config(&self) -> TopicConfig {
        *self.config.borrow()
    }

    /// Takes the stored rule (from the metadata sync or the creation).
    pub fn set_config(&self, config: TopicConfig) {
        self.config.send_if_modified(|current| {
            let changed = *current != config;
            *current = config;
            changed
        });
    }
}

#[derive(Debug)]
pub struct TopicRegistry {
    dir: PathBuf,
    log_config: LogConfig,
    ctx: WriterContext,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Bumped by every opening and growth, so that a follower starts
    /// replicating a new partition at once, not at its next scan.
    opened: watch::Sender<usize>,
}

impl TopicRegistry {
    pub fn new(data_dir: &Path, log_config: LogConfig, ctx: WriterContext) -> Self {
        Self {
            dir: data_dir.join("topics"),
            log_config,
            ctx,
            topics: RwLock::default(),
            opened: watch::Sender::new(0),
        }
    }

    /// Topics found on disk, with their partition counts.
    pub fn on_disk(&self) -> std::io::Result<BTreeMap<String, u32>> {
        let mut found = BTreeMap::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_topic_name(&name).is_err() || !entry.file_type()?.is_dir() {
                continue;
            }
            let partitions = std::fs::read_dir(entry.path())?
                .filter_map(Result::ok)
                .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
                .map(|p| p + 1)
                .max()
                .unwrap_or(0);
            if partitions > 0 {
                found.insert(name, partitions);
            }
        }
        Ok(found)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().unwrap().get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.topics.read().unwrap().values().cloned().collect()
    }

    /// True if this node's logs hold every committed record, as far as
    /// Redis says: for every partition of every topic, the local log end is
    /// at least the HWM Redis holds. A node that is behind must not take
    /// the lease: it would refuse to lead, but followers that saw it as
    /// leader would first cut their tails to its end (found by the nemesis
    /// soak). Unknown (Redis unreachable) counts as no.
    pub async fn hold_everything_committed(&self, store: &ClusterStore) -> bool {
        let Ok(topics) = store.topics().await else {
            return false;
        };
        for (name, partitions) in topics {
            let local = self.get(&name);
            let Ok(hwms) = store.hwms(&name, partitions).await else {
                return false;
            };
            for (id, committed) in hwms.into_iter().enumerate() {
                let end = local
                    .as_ref()
                    .and_then(|t| t.partitions.get(id))
                    .map_or(0, |p| p.reader().end_offset());
                if end < committed {
                    tracing::debug!(topic = %name, partition = id, end, committed, "behind the committed HWM: may not lead");
                    return false;
                }
            }
        }
        true
    }

    /// Makes every partition lead at `epoch`, from the higher of the HWM
    /// Redis holds and the one this node remembers.
    pub async fn lead_all(
        &self,
        epoch: u64,
        store: &ClusterStore,
        checkpoint: &SharedCheckpoint,
    ) -> Result<(), LeadError> {
        let partitions = self.all().into_iter().flat_map(|t| t.partitions.clone());
        let jobs = partitions.map(|partition| async move {
            let redis = store.hwm(&partition.topic, partition.id).await?;
            let local = checkpoint.lock().hwm(&partition.topic, partition.id);
            partition
                .lead(epoch, redis.max(local))
                .await
                .map_err(|source| LeadError::Partition {
                    topic: partition.topic.to_string(),
                    partition: partition.id,
                    source,
                })?;
            Ok::<_, LeadError>(())
        });
        join_all(jobs).await.into_iter().collect()
    }

    /// Asks every partition to commit what it holds beyond its HWM.
    pub async fn commit_tails(&self) {
        for topic in self.all() {
            for partition in &topic.partitions {
                partition.commit_tail().await;
            }
        }
    }

    /// Stops every partition from leading.
    pub async fn stop_leading(&self) {
        for topic in self.all() {
            for partition in &topic.partitions {
                partition.stop_leading().await;
            }
        }
    }

    /// Changes whenever a topic is opened or grows.
    pub fn watch_opened(&self) -> watch::Receiver<usize> {
        self.opened.subscribe()
    }

    /// Opens (creating if needed) the local logs of a topic's first
    /// `partitions` partitions, growing an open topic that has fewer.
    /// `known_hwm` gives each partition's last known HWM.
    pub fn open(
        &self,
        name: &str,
        partitions: u32,
        known_hwm: impl Fn(u32) -> u64,
    ) -> Result<Arc<Topic>, LogError> {
        let enough = |t: &Arc<Topic>| t.partitions.len() as u32 >= partitions;
        if let Some(topic) = self.get(name).filter(enough) {
            return Ok(topic);
        }
        validate_topic_name(name).expect("callers validate topic names");
        let mut topics = self.topics.write().unwrap();
        let (mut held, config) = match topics.get(name) {
            Some(topic) if enough(topic) => return Ok(Arc::clone(topic)),
            Some(topic) => (topic.partitions.clone(), Arc::clone(&topic.config)),
            None => (
                Vec::new(),
                Arc::new(watch::Sender::new(TopicConfig::default())),
            ),
        };
        for p in held.len() as u32..partitions {
            let dir = self.dir.join(name).join(p.to_string());
            held.push(Partition::open(
                name,
                p,
                &dir,
                self.log_config,
                known_hwm(p),
                config.subscribe(),
                self.ctx.clone(),
            )?);
        }
        let topic = Arc::new(Topic {
            name: name.to_owned(),
            partitions: held,
            config,
        });
        topics.insert(name.to_owned(), Arc::clone(&topic));
        self.opened.send_modify(|n| *n += 1);
        tracing::info!(
            topic = name,
            partitions = topic.partitions.len(),
            "opened topic"
        );
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in [
            "a",
            "orders",
            "server_metrics",
            "a.b-c_D9",
            &"x".repeat(249),
        ] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a b",
            "é",
            "a\0",
            &"x".repeat(250),
        ] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }
}
