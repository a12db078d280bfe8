//! The baseline with YAK's guarantee: Redis Streams on a primary and one
//! replica on this machine, append-only files on both, each request an
//! `XADD` then `WAIT 1 0` on the same connection, so that it is
//! acknowledged only once the replica has it — what a user would run
//! instead of YAK for the same promise. Measured with `appendfsync
//! everysec` on both (like the nodes' default `--fsync interval:100ms`: the
//! replica holds the write, the disk follows shortly), then `always` on
//! both (compare with the nodes' `--fsync always`).

use std::{path::Path, time::Duration};

use anyhow::Context;

use super::{
    Sizes,
    redis_baseline::{self, Ack},
    unbatched_produce::Latency,
};
use crate::local::{self, Durability, Logs};

/// How long the replica may take to sync with the primary.
const LINK_TIMEOUT: Duration = Duration::from_secs(15);

/// The replicated pair's figures at both fsync settings.
pub struct Replicated {
    pub everysec: Latency,
    pub always: Latency,
}

/// Starts the pair in `dir`, measures, and stops it.
pub async fn measure(
    dir: &Path,
    logs: &Logs,
    value: &str,
    sizes: &Sizes,
) -> anyhow::Result<Replicated> {
    let (primary, primary_url) =
        local::start_redis(&dir.join("primary"), Durability::AppendFsyncEverySec, logs).await?;
    let mut procs = vec![primary];
    let port = primary_url
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .context("the primary's URL names its port")?;
    let replica = local::start_redis_replica(
        &dir.join("replica"),
        Durability::AppendFsyncEverySec,
        Some(port),
        logs,
    )
    .await;
    let measured = match replica {
        Ok((replica, replica_url)) => {
            procs.push(replica);
            run(&primary_url, &replica_url, value, sizes).await
        }
        Err(e) => Err(e),
    };
    local::stop_all(&mut procs, logs).await;
    measured
}

async fn run(
    primary_url: &str,
    replica_url: &str,
    value: &str,
    sizes: &Sizes,
) -> anyhow::Result<Replicated> {
    let primary = redis::Client::open(primary_url)?;
    let replica = redis::Client::open(replica_url)?;
    wait_for_link(&replica).await?;
    let everysec = redis_baseline::unbatched(&primary, value, sizes, Ack::Replica).await?;
    for redis in [&primary, &replica] {
        let mut conn = redis.get_multiplexed_async_connection().await?;
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendfsync")
            .arg("always")
            .query_async(&mut conn)
            .await?;
    }
    let always = redis_baseline::unbatched(&primary, value, sizes, Ack::Replica).await?;
    Ok(Replicated { everysec, always })
}

/// Waits until the replica reports its link to the primary up.
async fn wait_for_link(replica: &redis::Client) -> anyhow::Result<()> {
    let mut conn = replica.get_multiplexed_async_connection().await?;
    let deadline = tokio::time::Instant::now() + LINK_TIMEOUT;
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await?;
        if info.contains("master_link_status:up") {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the baseline's Redis replica did not sync within {LINK_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
