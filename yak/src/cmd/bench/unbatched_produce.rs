//! Phase 2, unbatched produce: throughput and latency percentiles of one
//! record per request from many clients, and where the leader spends an
//! unbatched write's time (from its `/metrics` before and after). The
//! latency summary is shared with the Redis baseline's same scenario.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::future::join_all;
use hdrhistogram::Histogram;
use yak_client::{Producer, ProducerConfig, YakClient, probe};

use super::{Sizes, rate};

/// Throughput and latency percentiles of one-record requests.
pub struct Latency {
    pub msgs_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// The summary of `count` requests that took `took` in all, their
/// latencies (µs) in `histogram`.
pub fn latency(histogram: &Histogram<u64>, count: u64, took: Duration) -> Latency {
    let ms = |q| histogram.value_at_quantile(q) as f64 / 1000.0;
    Latency {
        msgs_per_s: rate(count, took),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
    }
}

/// A histogram of request latencies in microseconds, up to a minute.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// One record per request from `sizes.clients` clients, each with its own
/// connection and one request in flight (as the Redis baseline's), each
/// request to the next of the three partitions in turn. Requests go over
/// the leader's binary port when it has one, like any `send_records`.
pub async fn measure(
    client: &YakClient,
    topic: &str,
    value: &str,
    sizes: &Sizes,
) -> anyhow::Result<Latency> {
    let until = Instant::now() + sizes.unbatched_for;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(sizes.clients);
    for c in 0..sizes.clients {
        let own = YakClient::with_config(client.bootstrap().to_vec(), client.config().clone())?;
        let producer = Producer::new(own, ProducerConfig::default());
        let (topic, value) = (topic.to_owned(), value.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let mut failed = 0u64;
            let mut partition = c as u32 % 3;
            while Instant::now() < until {
                let sent = Instant::now();
                let record = [(None, value.as_bytes())];
                match producer.send_records(&topic, partition, record).await {
                    Ok(_) => histogram.saturating_record(sent.elapsed().as_micros().max(1) as u64),
                    Err(_) => failed += 1,
                }
                partition = (partition + 1) % 3;
            }
            (histogram, failed)
        }));
    }
    let mut total = new_histogram();
    for task in join_all(tasks).await {
        let (histogram, failed) = task?;
        if failed > 0 {
            bail!("{failed} records failed in the unbatched produce");
        }
        total.add(&histogram)?;
    }
    Ok(latency(&total, total.len(), started.elapsed()))
}

/// Cumulative sums and counts of the leader's replication round trips and
/// HWM commits, from its `/metrics`: where an unbatched write's time goes.
pub struct LeaderTimings {
    replication: (f64, f64),
    hwm_commit: (f64, f64),
}

/// The leader's mean times between two [`LeaderTimings`].
pub struct Breakdown {
    pub replication_ms: f64,
    pub hwm_commit_ms: f64,
    pub commits: f64,
}

impl LeaderTimings {
    pub fn since(&self, before: &Self) -> Breakdown {
        let mean = |(sum, count): (f64, f64), (sum0, count0): (f64, f64)| {
            if count > count0 {
                (sum - sum0) / (count - count0) * 1000.0
            } else {
                0.0
            }
        };
        Breakdown {
            replication_ms: mean(self.replication, before.replication),
            hwm_commit_ms: mean(self.hwm_commit, before.hwm_commit),
            commits: self.hwm_commit.1 - before.hwm_commit.1,
        }
    }
}

/// The leader's timings now; `None` if its `/metrics` cannot be read.
/// Asked with the client's token and CAs (the endpoint needs the client
/// token on a cluster that has one).
pub async fn leader_timings(client: &YakClient) -> Option<LeaderTimings> {
    let url = client.leader_url().await.ok()?;
    let text = probe::metrics_text(&url, client.config()).await.ok()?;
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    let pair = |metric: &str| {
        Some((
            value(&format!("{metric}_sum"))?,
            value(&format!("{metric}_count"))?,
        ))
    };
    Some(LeaderTimings {
        replication: pair("yak_replication_round_trip_seconds")?,
        hwm_commit: pair("yak_hwm_commit_seconds")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakdown_is_the_mean_of_what_happened_between() {
        let before = LeaderTimings {
            replication: (1.0, 100.0),
            hwm_commit: (2.0, 50.0),
        };
        let after = LeaderTimings {
            replication: (1.5, 200.0),
            hwm_commit: (2.0, 50.0),
        };
        let b = after.since(&before);
        assert!((b.replication_ms - 5.0).abs() < 1e-9);
        assert_eq!(b.hwm_commit_ms, 0.0, "no commits in between: no mean");
        assert_eq!(b.commits, 0.0);
    }

    #[test]
    fn latency_reads_microseconds_as_milliseconds() {
        let mut histogram = new_histogram();
        for us in 1..=1000 {
            histogram.record(us * 10).unwrap();
        }
        let l = latency(&histogram, 1000, Duration::from_secs(2));
        assert_eq!(l.msgs_per_s, 500.0);
        assert!((l.p50_ms - 5.0).abs() < 0.01, "{}", l.p50_ms);
        assert!((l.p99_ms - 9.9).abs() < 0.01, "{}", l.p99_ms);
    }
}
