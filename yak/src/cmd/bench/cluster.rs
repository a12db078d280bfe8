//! The cluster a bench run starts when it is not given `--bootstrap`:
//! redis-server, a broker and one follower with the shipped defaults, plus
//! the separate, non-persistent redis-server of the Redis Streams baseline,
//! all in one temporary directory; and stopping them all at the end.

use std::{path::Path, time::Duration};

use crate::local::{self, Durability, Logs, Proc};

/// The shipped default (`--lease-ttl-ms`).
pub const LEASE_TTL: Duration = Duration::from_millis(2000);

/// The cluster this run started.
pub struct OwnCluster {
    _dir: tempfile::TempDir,
    pub logs: Logs,
    pub procs: Vec<Proc>,
    /// Node id → index in `procs`.
    nodes: Vec<(String, usize)>,
    /// The baseline's redis-server (not one of `procs`) and its URL.
    baseline: Proc,
    baseline_url: String,
}

impl OwnCluster {
    /// Starts the cluster's Redis (fsyncing as `durability` says), the
    /// broker and the follower, each waited for until healthy, then the
    /// baseline's Redis; returns the cluster and its nodes' URLs.
    pub async fn start(
        bin_dir: Option<&Path>,
        durability: Durability,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        let bins = local::bin_dir(bin_dir)?;
        let broker = local::binary(&bins, "broker")?;
        let follower = local::binary(&bins, "follower")?;
        let dir = tempfile::Builder::new().prefix("yak-bench-").tempdir()?;
        let logs = Logs::Files(dir.path().to_owned());
        let (redis, redis_url) =
            local::start_redis(&dir.path().join("redis"), durability, &logs).await?;
        let mut procs = vec![redis];
        let mut nodes = Vec::new();
        let mut urls = Vec::new();
        for (id, bin) in [("broker", &broker), ("follower", &follower)] {
            let port = local::free_port()?;
            let mut args = local::node_args(
                id,
                "127.0.0.1",
                port,
                dir.path(),
                &redis_url,
                LEASE_TTL.as_millis() as u64,
            );
            args.extend([
                "--tcp-listen".to_owned(),
                format!("127.0.0.1:{}", local::free_port()?),
            ]);
            procs.push(Proc::spawn(id, bin, &args, &logs)?);
            nodes.push((id.to_owned(), procs.len() - 1));
            let url = format!("http://127.0.0.1:{port}");
            local::wait_healthy(id, &url, Duration::from_secs(30)).await?;
            urls.push(url);
        }
        let (baseline, baseline_url) =
            local::start_redis(&dir.path().join("baseline"), Durability::InMemory, &logs).await?;
        let cluster = Self {
            _dir: dir,
            logs,
            procs,
            nodes,
            baseline,
            baseline_url,
        };
        Ok((cluster, urls))
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
    }
}
