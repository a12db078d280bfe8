//! The cluster a bench run starts when it is not given `--bootstrap`:
//! redis-server, a broker and one follower with the shipped defaults (and
//! a Kafka listener each), plus
//! the separate, non-persistent redis-server of the Redis Streams baseline,
//! all in one temporary directory; and stopping them all at the end.
//!
//! The directory (every process's log, the nodes' data) is removed only by
//! [`OwnCluster::stop`], the end of a run that went through. A run that
//! fails, while starting the cluster or after, keeps it and says where it
//! is: a failed run's logs are what explains it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use yak_client::ClientConfig;

use crate::local::{self, Durability, Logs, NodeSpec, Proc, Server};

/// The shipped default (`--lease-ttl-ms`).
pub const LEASE_TTL: Duration = Duration::from_millis(2000);

/// The cluster this run started.
pub struct OwnCluster {
    /// Kept on disk unless [`OwnCluster::stop`] removes it (then `None`).
    dir: Option<PathBuf>,
    pub logs: Logs,
    pub procs: Vec<Proc>,
    /// Node id → index in `procs`.
    nodes: Vec<(String, usize)>,
    /// The broker's Kafka listener.
    kafka: Option<String>,
    /// The baseline's redis-server (not one of `procs`) and its URL.
    baseline: Proc,
    baseline_url: String,
}

impl OwnCluster {
    /// Starts the cluster's Redis (fsyncing as `durability` says), the
    /// broker and the follower (each with a binary produce port, and
    /// `node_args` after the bench's own flags), waits
    /// until both are healthy, then starts the baseline's Redis; returns
    /// the cluster and its nodes' URLs.
    pub async fn start(
        bin_dir: Option<&Path>,
        durability: Durability,
        node_args: &[&str],
    ) -> anyhow::Result<(Self, Vec<String>)> {
        let bins = local::bin_dir(bin_dir)?;
        let broker = local::binary(&bins, "broker")?;
        let follower = local::binary(&bins, "follower")?;
        let dir = tempfile::Builder::new()
            .prefix("yak-bench-")
            .tempdir()?
            .keep();
        let cluster = Self::start_in(&dir, broker, follower, durability, node_args).await;
        let kept = || format!("the cluster's logs and data are kept in {}", dir.display());
        cluster.with_context(kept)
    }

    async fn start_in(
        dir: &Path,
        broker: PathBuf,
        follower: PathBuf,
        durability: Durability,
        node_args: &[&str],
    ) -> anyhow::Result<(Self, Vec<String>)> {
        let logs = Logs::Files(dir.to_owned());
        let (redis, redis_url) = local::start_redis(&dir.join("redis"), durability, &logs).await?;
        let mut servers = Vec::new();
        let mut kafka = Vec::new();
        for (id, binary) in [("broker", broker), ("follower", follower)] {
            let listen = format!("127.0.0.1:{}", local::free_port()?);
            let extra_args = node_args
                .iter()
                .map(|a| a.to_string())
                .chain(["--kafka-listen".to_owned(), listen.clone()])
                .collect();
            kafka.push(listen);
            servers.push(Server::node(&NodeSpec {
                id: id.to_owned(),
                binary,
                host: "127.0.0.1".to_owned(),
                port: local::free_port()?,
                data_dir: dir.to_owned(),
                redis_url: redis_url.clone(),
                lease_ttl_ms: LEASE_TTL.as_millis() as u64,
                tcp_port: Some(local::free_port()?),
                extra_args,
                ..NodeSpec::default()
            }));
        }
        let mut procs = vec![redis];
        let first = procs.len();
        // One at a time, so that the broker leads before the follower
        // starts. On an error, dropping `procs` kills what started.
        for server in &servers {
            let one = std::slice::from_ref(server);
            local::start_servers(one, &ClientConfig::default(), &logs, &mut procs).await?;
        }
        let nodes = servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), first + i))
            .collect();
        let urls = servers.into_iter().map(|s| s.url).collect();
        let (baseline, baseline_url) =
            local::start_redis(&dir.join("baseline"), Durability::InMemory, &logs).await?;
        let cluster = Self {
            dir: Some(dir.to_owned()),
            logs,
            procs,
            nodes,
            kafka: kafka.into_iter().next(),
            baseline,
            baseline_url,
        };
        Ok((cluster, urls))
    }

    /// The broker's Kafka listener (`host:port`).
    pub fn kafka_addr(&self) -> Option<&str> {
        self.kafka.as_deref()
    }

    /// The URL of the baseline's Redis.
    pub fn baseline_url(&self) -> &str {
        &self.baseline_url
    }

    /// The index in `procs` of the node started as `id`.
    pub fn node(&self, id: &str) -> Option<usize> {
        self.nodes.iter().find(|(n, _)| n == id).map(|(_, i)| *i)
    }

    /// Stops the baseline's Redis, then the cluster's processes in reverse
    /// start order, and removes the directory.
    pub async fn stop(mut self) {
        self.baseline.stop(Duration::from_secs(5), &self.logs).await;
        local::stop_all(&mut self.procs, &self.logs).await;
        if let Some(dir) = self.dir.take()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            eprintln!("yak bench: removing {}: {e}", dir.display());
        }
    }
}

/// A cluster dropped without [`OwnCluster::stop`] belongs to a failed run:
/// its processes are killed (`kill_on_drop`) and its directory stays.
impl Drop for OwnCluster {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            eprintln!(
                "yak bench: the cluster's logs and data are kept in {}",
                dir.display()
            );
        }
    }
}
