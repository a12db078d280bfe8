//! Phase 4, failover: the time from a `kill -9` of the leader to the first
//! write acknowledged by its successor, repeated, each sample next to the
//! lease time the dead leader had left (only on the cluster the bench
//! started). The successor does not wait for that lease to expire: it
//! takes it over once the dead leader's Redis connection has been gone for
//! a renewal interval (`broker/src/lease.rs`).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;
use yak_client::{Producer, ProducerConfig, Record, YakClient};

use super::{
    cluster::{LEASE_TTL, OwnCluster},
    out,
};

pub struct Failover {
    pub p50_ms: f64,
    pub max_ms: f64,
    pub samples_ms: Vec<f64>,
    /// Lease time the killed leader had left, per sample.
    pub lease_left_ms: Vec<f64>,
    /// Median of `lease left - sample`: how long before the dead leader's
    /// lease would have expired its successor acknowledged (negative: after).
    pub ahead_of_expiry_p50_ms: f64,
}

/// Kills the leader while a producer runs, `n` times; each time measures
/// from the kill to the first write acknowledged at a newer epoch, then
/// restarts the killed node and waits until it is back in every ISR.
pub async fn measure(
    cluster: &mut OwnCluster,
    client: &YakClient,
    topic: &str,
    value: &str,
    n: usize,
) -> anyhow::Result<Failover> {
    // When the first write at each leader epoch was acknowledged.
    let first_acks: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(true));
    let producing = {
        let (first_acks, running) = (Arc::clone(&first_acks), Arc::clone(&running));
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        let record = Record::new(topic, Value::String(value.to_owned()));
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                if let Ok(produced) = producer.send(record.clone()).await {
                    let epoch = produced.epoch.unwrap_or(0);
                    first_acks
                        .lock()
                        .unwrap()
                        .entry(epoch)
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    let (mut samples, mut lease_left) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for round in 0..n {
        // Only a node in every ISR may take over: start from a healthy cluster.
        wait_full_isr(client, topic).await?;
        // The previous takeover has just renewed the lease: killing now would
        // always leave close to a full TTL to wait out.
        tokio::time::sleep(LEASE_TTL.mul_f64(rand::random::<f64>())).await;
        let info = client.leader_info().await?;
        let leader = info.leader_id.context("no leader")?;
        let index = cluster
            .node(&leader)
            .context("the leader is not a node this bench started")?;
        let killed = Instant::now();
        cluster.procs[index].kill9().await;
        let deadline = killed + Duration::from_secs(30);
        let took = loop {
            // The epoch, not the time: an answer the old leader sent just
            // before the kill may be read just after it.
            let first = first_acks
                .lock()
                .unwrap()
                .range(info.epoch + 1..)
                .next()
                .map(|(_, t)| *t);
            if let Some(first) = first {
                break first.duration_since(killed);
            }
            if Instant::now() > deadline {
                bail!("no write acknowledged within 30 s of killing {leader}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let left = info.lease_ttl_ms.unwrap_or(0) as f64;
        samples.push(took.as_secs_f64() * 1000.0);
        lease_left.push(left);
        out(format!(
            "  failover {}: {:.0} ms ({left:.0} ms of lease left)",
            round + 1,
            took.as_secs_f64() * 1000.0
        ));
        cluster.procs[index].restart(&cluster.logs)?;
    }
    running.store(false, Ordering::Relaxed);
    producing.await?;
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let totals = sorted(samples.clone());
    let ahead = sorted(
        samples
            .iter()
            .zip(&lease_left)
            .map(|(s, l)| l - s)
            .collect(),
    );
    Ok(Failover {
        p50_ms: totals[n / 2],
        max_ms: totals[n - 1],
        samples_ms: samples,
        lease_left_ms: lease_left,
        ahead_of_expiry_p50_ms: ahead[n / 2],
    })
}

/// Waits until every partition of `topic` has both nodes in its ISR.
async fn wait_full_isr(client: &YakClient, topic: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(detail) = client.describe_topic(topic).await
            && detail.partitions.iter().all(|p| p.isr.len() == 2)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the restarted node did not rejoin the ISR within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
