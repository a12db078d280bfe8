//! The baseline: the same scenarios on Redis Streams (one stream on a
//! separate, non-persistent redis-server) — pipelined XADD, one XADD per
//! request from as many connections, and XRANGE read-back. The unbatched
//! requests also run against a replicated pair ([`super::replicated_redis`]).

use std::time::Instant;

use futures_util::future::join_all;

use super::{
    Sizes, rate,
    unbatched_produce::{Latency, latency, new_histogram},
};

const STREAM: &str = "yak-bench";

/// Batched produce's counterpart: pipelines of `sizes.batch` XADDs from
/// `sizes.producers` connections. Returns records per second.
pub async fn batched(redis: &redis::Client, value: &str, sizes: &Sizes) -> anyhow::Result<f64> {
    let per_task = sizes.batched_records / sizes.producers as u64;
    let batches = per_task.div_ceil(sizes.batch as u64);
    let started = Instant::now();
    let tasks = (0..sizes.producers).map(|_| {
        let (redis, value, batch) = (redis.clone(), value.to_owned(), sizes.batch);
        tokio::spawn(async move {
            let mut conn = redis.get_multiplexed_async_connection().await?;
            for _ in 0..batches {
                let mut pipe = redis::pipe();
                for _ in 0..batch {
                    pipe.cmd("XADD")
                        .arg(STREAM)
                        .arg("*")
                        .arg("v")
                        .arg(&value)
                        .ignore();
                }
                let () = pipe.query_async(&mut conn).await?;
            }
            Ok::<_, redis::RedisError>(())
        })
    });
    for task in join_all(tasks).await {
        task??;
    }
    Ok(rate(
        batches * sizes.batch as u64 * sizes.producers as u64,
        started.elapsed(),
    ))
}

/// When a baseline request counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// When the Redis it was sent to has it.
    Primary,
    /// When a replica has it too: `XADD` then `WAIT 1 0`, pipelined on the
    /// same connection.
    Replica,
}

/// Unbatched produce's counterpart: one XADD per request from
/// `sizes.clients` connections for `sizes.unbatched_for`.
pub async fn unbatched(
    redis: &redis::Client,
    value: &str,
    sizes: &Sizes,
    ack: Ack,
) -> anyhow::Result<Latency> {
    let until = Instant::now() + sizes.unbatched_for;
    let started = Instant::now();
    let tasks = (0..sizes.clients).map(|_| {
        let (redis, value) = (redis.clone(), value.to_owned());
        tokio::spawn(async move {
            // One connection per client, one request in flight on it.
            let mut conn = redis.get_multiplexed_async_connection().await?;
            let mut histogram = new_histogram();
            while Instant::now() < until {
                let sent = Instant::now();
                let mut request = redis::pipe();
                request
                    .cmd("XADD")
                    .arg(STREAM)
                    .arg("*")
                    .arg("v")
                    .arg(&value)
                    .ignore();
                if ack == Ack::Replica {
                    request.cmd("WAIT").arg(1).arg(0).ignore();
                }
                let () = request.query_async(&mut conn).await?;
                histogram.saturating_record(sent.elapsed().as_micros().max(1) as u64);
            }
            Ok::<_, redis::RedisError>(histogram)
        })
    });
    let mut total = new_histogram();
    for task in join_all(tasks).await {
        total.add(&task??)?;
    }
    Ok(latency(&total, total.len(), started.elapsed()))
}

/// Consume's counterpart: the whole stream read back with XRANGE, 10,000
/// entries a page. Returns records per second.
pub async fn read_back(redis: &redis::Client) -> anyhow::Result<f64> {
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let started = Instant::now();
    let mut from = "-".to_owned();
    let mut read = 0u64;
    loop {
        let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(STREAM)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        let Some(last) = page.ids.last() else { break };
        read += page.ids.len() as u64;
        from = format!("({}", last.id);
    }
    Ok(rate(read, started.elapsed()))
}
