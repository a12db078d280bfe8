//! The cluster's shared state in Redis: the leader lease and its fencing
//! epoch, each partition's high-water mark, topic metadata and the node
//! registry, and consumer groups (`groups`). Every key starts with the
//! cluster name.
//!
//! Invariants:
//! - Every leader-only change is a Lua script that checks the caller's epoch
//!   (or lease ownership) and changes nothing otherwise: there is no blind
//!   `SET` of the lease, the epoch or an HWM.
//! - The epoch only grows: acquiring takes `max(stored, caller's floor) + 1`,
//!   so a Redis that lost its data never hands out an epoch a node has seen.
//! - The lease names the Redis connection its holder last acquired or
//!   renewed it on (`lease-client`, a `CLIENT ID`). A lease whose
//!   connection is gone may be taken over before it expires
//!   ([`ClusterStore::take_over`]): its holder died or lost Redis, and
//!   either way it can commit nothing more, since every commit is fenced
//!   by the epoch the takeover raises.
//! - An HWM only grows.

mod groups;
mod scripts;

pub use groups::{GroupWrite, StoredGroup};

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use yak_protocol::TopicConfig;

/// Errors talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis is unreachable or failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("epoch {epoch} is no longer current in redis")]
    Fenced { epoch: u64 },
    #[error("malformed value in redis at {key}: {reason}")]
    Malformed { key: String, reason: String },
}

/// One registered node, as the registry shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub url: String,
    /// host:port of its binary produce port, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// host:port of its Kafka listener, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<String>,
    pub role: String,
    pub epoch: u64,
    /// Milliseconds since the Unix epoch of its last heartbeat.
    pub heartbeat_ms: u64,
}

/// Who holds the lease right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseHolder {
    pub node_id: String,
    pub epoch: u64,
    /// Milliseconds left on the lease.
    pub ttl_ms: u64,
    /// The Redis connection (`CLIENT ID`) the holder last renewed on, if
    /// recorded.
    #[serde(skip)]
    pub client: Option<i64>,
}

/// What `acquire` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// The lease is ours, with this new epoch.
    Won { epoch: u64 },
    /// Another node holds it.
    Held,
    /// This node is not in the in-sync replica set of a partition with
    /// committed data, so it may not lead.
    NotInSync,
}

/// Handle on the cluster's Redis state. Cheap to clone.
#[derive(Clone)]
pub struct ClusterStore {
    client: redis::Client,
    /// Where the connection's driver task runs: the node's main runtime,
    /// whichever task happens to connect first.
    runtime: tokio::runtime::Handle,
    conn: std::sync::Arc<OnceCell<ConnectionManager>>,
    /// The `CLIENT ID` of the connection as the last lease script saw it
    /// (0: not yet known). The connection manager reconnects on its own,
    /// so it is read again with every acquire and renew.
    lease_client: std::sync::Arc<AtomicI64>,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl ClusterStore {
    /// A store for `cluster` at `redis_url`; call it inside the node's
    /// runtime. Connects lazily, so a node can
    /// start (and report itself not ready) while Redis is down.
    /// `timeout` bounds every command: a leader must learn quickly that it
    /// cannot renew.
    pub fn new(redis_url: &str, cluster: &str, timeout: Duration) -> Result<Self, StoreError> {
        Ok(Self {
            client: redis::Client::open(redis_url)?,
            runtime: tokio::runtime::Handle::current(),
            conn: Default::default(),
            lease_client: Default::default(),
            prefix: cluster.to_owned(),
            timeout,
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let connect = ConnectionManager::new_with_config(self.client.clone(), config);
                self.runtime
                    .spawn(connect)
                    .await
                    .expect("connecting to redis does not panic")
            })
            .await?;
        Ok(conn.clone())
    }

    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    fn hwm_key(&self, topic: &str, partition: u32) -> String {
        self.key(&format!("hwm:{topic}:{partition}"))
    }

    fn isr_key(&self, topic: &str, partition: u32) -> String {
        self.key(&format!("isr:{topic}:{partition}"))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Tries to take the lease. `epoch_floor` is the highest epoch this node
    /// has seen, so that a Redis that lost its data never re-issues an epoch.
    pub async fn acquire(
        &self,
        node_id: &str,
        ttl: Duration,
        epoch_floor: u64,
    ) -> Result<Acquire, StoreError> {
        self.acquire_lease(node_id, ttl, epoch_floor, None).await
    }

    /// Takes the lease from `holder` before it expires, if it is still
    /// `holder`'s on the same connection: the caller has seen that
    /// connection gone ([`ClusterStore::client_connected`]). Otherwise as
    /// [`ClusterStore::acquire`].
    pub async fn take_over(
        &self,
        node_id: &str,
        ttl: Duration,
        epoch_floor: u64,
        holder: &LeaseHolder,
    ) -> Result<Acquire, StoreError> {
        let Some(client) = holder.client else {
            return Ok(Acquire::Held);
        };
        self.acquire_lease(node_id, ttl, epoch_floor, Some((&holder.node_id, client)))
            .await
    }

    async fn acquire_lease(
        &self,
        node_id: &str,
        ttl: Duration,
        epoch_floor: u64,
        abandoned: Option<(&str, i64)>,
    ) -> Result<Acquire, StoreError> {
        let mut script = redis::cmd("EVAL");
        script
            .arg(scripts::ACQUIRE)
            .arg(4)
            .arg(self.key("lease"))
            .arg(self.key("epoch"))
            .arg(self.key("isr-index"))
            .arg(self.key("lease-client"))
            .arg(node_id)
            .arg(ttl.as_millis() as u64)
            .arg(epoch_floor)
            .arg(&self.prefix)
            .arg(self.lease_client.load(Ordering::Relaxed));
        if let Some((holder, client)) = abandoned {
            script.arg(holder).arg(client);
        }
        let (stale, result) = self.lease_script(script).await?;
        Ok(match result {
            0 => Acquire::Held,
            -1 => Acquire::NotInSync,
            epoch => {
                if stale {
                    self.renew(node_id, epoch as u64, ttl).await?;
                }
                Acquire::Won {
                    epoch: epoch as u64,
                }
            }
        })
    }

    /// Extends our lease. `false` if the lease is no longer ours at `epoch`.
    pub async fn renew(
        &self,
        node_id: &str,
        epoch: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let script = |client: i64| {
            let mut script = redis::cmd("EVAL");
            script
                .arg(scripts::RENEW)
                .arg(3)
                .arg(self.key("lease"))
                .arg(self.key("epoch"))
                .arg(self.key("lease-client"))
                .arg(node_id)
                .arg(epoch)
                .arg(ttl.as_millis() as u64)
                .arg(client);
            script
        };
        let renew = || self.lease_script(script(self.lease_client.load(Ordering::Relaxed)));
        let (stale, mut renewed) = renew().await?;
        if stale && renewed == 1 {
            // Recorded a connection that is gone: record this one.
            (_, renewed) = renew().await?;
        }
        Ok(renewed == 1)
    }

    /// Runs a lease script right after `CLIENT ID` on the same connection:
    /// its result, and whether the client id it recorded was stale (the
    /// connection changed since the last script).
    async fn lease_script(&self, script: redis::Cmd) -> Result<(bool, i64), StoreError> {
        let mut conn = self.conn().await?;
        let (client, result): (i64, i64) = redis::pipe()
            .cmd("CLIENT")
            .arg("ID")
            .add_command(script)
            .query_async(&mut conn)
            .await?;
        let recorded = self.lease_client.swap(client, Ordering::Relaxed);
        Ok((recorded != client, result))
    }

    /// Whether the Redis connection `client` (a `CLIENT ID`) is still open.
    /// A Redis that refuses `CLIENT LIST` (an ACL without it) counts it
    /// open: the lease then just expires.
    pub async fn client_connected(&self, client: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let listed: redis::RedisResult<String> = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("ID")
            .arg(client)
            .query_async(&mut conn)
            .await;
        match listed {
            Ok(listed) => Ok(!listed.trim().is_empty()),
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) => {
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the lease up if it is still ours at `epoch`.
    pub async fn release(&self, node_id: &str, epoch: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let released: i64 = scripts::RELEASE
            .key(self.key("lease"))
            .key(self.key("epoch"))
            .key(self.key("lease-client"))
            .arg(node_id)
            .arg(epoch)
            .invoke_async(&mut conn)
            .await?;
        Ok(released == 1)
    }

    /// The current lease holder, if any, and the current epoch.
    pub async fn lease(&self) -> Result<(Option<LeaseHolder>, u64), StoreError> {
        let mut conn = self.conn().await?;
        let (holder, epoch, ttl, client): (Option<String>, Option<u64>, i64, Option<i64>) =
            redis::pipe()
                .get(self.key("lease"))
                .get(self.key("epoch"))
                .pttl(self.key("lease"))
                .get(self.key("lease-client"))
                .query_async(&mut conn)
                .await?;
        let epoch = epoch.unwrap_or(0);
        Ok((
            holder.map(|node_id| LeaseHolder {
                node_id,
                epoch,
                ttl_ms: ttl.max(0) as u64,
                client,
            }),
            epoch,
        ))
    }

    /// Raises the HWM of a partition to `hwm` if `epoch` is current.
    /// Returns the HWM now stored (never lower than before).
    pub async fn advance_hwm(
        &self,
        topic: &str,
        partition: u32,
        epoch: u64,
        hwm: u64,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let stored: i64 = scripts::ADVANCE_HWM
            .key(self.key("epoch"))
            .key(self.hwm_key(topic, partition))
            .arg(epoch)
            .arg(hwm)
            .invoke_async(&mut conn)
            .await?;
        if stored < 0 {
            return Err(StoreError::Fenced { epoch });
        }
        Ok(stored as u64)
    }

    /// The stored HWM of a partition (0 if none).
    pub async fn hwm(&self, topic: &str, partition: u32) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let hwm: Option<u64> = conn.get(self.hwm_key(topic, partition)).await?;
        Ok(hwm.unwrap_or(0))
    }

    /// The HWMs of partitions `0..partitions` of a topic, in one round trip.
    pub async fn hwms(&self, topic: &str, partitions: u32) -> Result<Vec<u64>, StoreError> {
        if partitions == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let keys: Vec<String> = (0..partitions).map(|p| self.hwm_key(topic, p)).collect();
        let hwms: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        Ok(hwms.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// The in-sync replica set of a partition, and whether it was ever set.
    pub async fn isr(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut conn = self.conn().await?;
        let key = self.isr_key(topic, partition);
        let raw: Option<String> = conn.get(&key).await?;
        raw.map(|raw| {
            serde_json::from_str(&raw).map_err(|e| StoreError::Malformed {
                key,
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Replaces the ISR of a partition if `epoch` is current. The ISR index
    /// (every partition's ISR in one hash) lets the acquire script check
    /// eligibility in one place.
    pub async fn set_isr(
        &self,
        topic: &str,
        partition: u32,
        epoch: u64,
        isr: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let json = serde_json::to_string(isr).expect("strings serialize");
        let ok: i64 = scripts::SET_ISR
            .key(self.key("epoch"))
            .key(self.isr_key(topic, partition))
            .key(self.key("isr-index"))
            .arg(epoch)
            .arg(&json)
            .arg(format!("{topic}:{partition}"))
            .invoke_async(&mut conn)
            .await?;
        if ok < 0 {
            return Err(StoreError::Fenced { epoch });
        }
        Ok(())
    }

    /// Every partition's ISR (`"topic:partition"` → node ids), in one read.
    pub async fn isr_index(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        self.json_hash("isr-index").await
    }

    /// A hash whose values are JSON, decoded.
    async fn json_hash<T: serde::de::DeserializeOwned>(
        &self,
        suffix: &str,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let mut conn = self.conn().await?;
        let key = self.key(suffix);
        let raw: BTreeMap<String, String> = conn.hgetall(&key).await?;
        raw.into_iter()
            .map(|(field, json)| {
                let value = serde_json::from_str(&json).map_err(|e| StoreError::Malformed {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
                Ok((field, value))
            })
            .collect()
    }

    /// All topics with their partition counts.
    pub async fn topics(&self) -> Result<BTreeMap<String, u32>, StoreError> {
        let mut conn = self.conn().await?;
        Ok(conn.hgetall(self.key("topics")).await?)
    }

    /// Records a topic with its config, in one step; `false` if it already
    /// exists (nothing changed).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: &TopicConfig,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let json = serde_json::to_string(config).expect("a config serializes");
        let created: i64 = scripts::CREATE_TOPIC
            .key(self.key("topics"))
            .key(self.key("topic-configs"))
            .arg(name)
            .arg(partitions)
            .arg(json)
            .invoke_async(&mut conn)
            .await?;
        Ok(created == 1)
    }

    /// Raises a topic's partition count to `partitions` if `epoch` is
    /// current: the count now stored (the old one if it was not lower),
    /// `None` if the topic does not exist.
    pub async fn grow_topic(
        &self,
        epoch: u64,
        name: &str,
        partitions: u32,
    ) -> Result<Option<u32>, StoreError> {
        let mut conn = self.conn().await?;
        let stored: i64 = scripts::GROW_TOPIC
            .key(self.key("epoch"))
            .key(self.key("topics"))
            .arg(epoch)
            .arg(name)
            .arg(partitions)
            .invoke_async(&mut conn)
            .await?;
        match stored {
            -1 => Err(StoreError::Fenced { epoch }),
            0 => Ok(None),
            n => Ok(Some(n as u32)),
        }
    }

    /// Every topic's config (topics created before configs existed have
    /// none: no retention).
    pub async fn topic_configs(&self) -> Result<BTreeMap<String, TopicConfig>, StoreError> {
        self.json_hash("topic-configs").await
    }

    /// Publishes this node in the registry for `ttl`.
    pub async fn heartbeat(&self, node: &NodeInfo, ttl: Duration) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let json = serde_json::to_string(node).expect("node info serializes");
        let _: () = redis::pipe()
            .sadd(self.key("nodes"), &node.id)
            .ignore()
            .pset_ex(
                self.key(&format!("node:{}", node.id)),
                json,
                ttl.as_millis() as u64,
            )
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Every node whose heartbeat has not expired, sorted by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = conn.smembers(self.key("nodes")).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.key(&format!("node:{id}")))
            .collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut nodes: Vec<NodeInfo> = values
            .into_iter()
            .flatten()
            .filter_map(|json| serde_json::from_str(&json).ok())
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }
}
