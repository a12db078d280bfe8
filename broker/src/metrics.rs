//! The node's Prometheus metrics (prometheus-client), served at `/metrics`.
//! Every metric is registered once here; other modules only record them.
//! `docs/operations.md` says what each one means.

use std::{sync::Mutex, time::Duration};

use hdrhistogram::Histogram as Hdr;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: u32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FollowerLabels {
    pub topic: String,
    pub partition: u32,
    pub follower: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub lease_renewals: Counter,
    pub lease_renewal_failures: Counter,
    pub role_transitions: Family<TransitionLabels, Counter>,
    pub epoch: Gauge,
    pub is_leader: Gauge,
    pub produced_records: Family<TopicLabels, Counter>,
    pub produced_bytes: Family<TopicLabels, Counter>,
    pub consumed_records: Family<TopicLabels, Counter>,
    pub consumed_bytes: Family<TopicLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram>,
    pub replication_seconds: Histogram,
    /// Storing a commit's HWM in Redis (one script call; with `appendfsync
    /// always`, one fsync of Redis's append-only file).
    pub hwm_commit_seconds: Histogram,
    pub isr_size: Family<PartitionLabels, Gauge>,
    pub follower_lag: Family<FollowerLabels, Gauge>,
    pub log_size_bytes: Family<PartitionLabels, Gauge>,
    pub log_end_offset: Family<PartitionLabels, Gauge>,
    pub high_water_mark: Family<PartitionLabels, Gauge>,
    pub group_lag: Family<GroupLabels, Gauge>,
    pub group_members: Family<GroupLabels, Gauge>,
    /// Replication round trips (µs) since the dashboard last sampled them.
    replication_window: Mutex<Hdr<u64>>,
}

fn latency_buckets() -> Histogram {
    // 50 µs to ~13 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("yak");
        let m = Self {
            lease_renewals: Counter::default(),
            lease_renewal_failures: Counter::default(),
            role_transitions: Family::default(),
            epoch: Gauge::default(),
            is_leader: Gauge::default(),
            produced_records: Family::default(),
            produced_bytes: Family::default(),
            consumed_records: Family::default(),
            consumed_bytes: Family::default(),
            request_seconds: Family::new_with_constructor(latency_buckets),
            replication_seconds: latency_buckets(),
            hwm_commit_seconds: latency_buckets(),
            isr_size: Family::default(),
            follower_lag: Family::default(),
            log_size_bytes: Family::default(),
            log_end_offset: Family::default(),
            high_water_mark: Family::default(),
            group_lag: Family::default(),
            group_members: Family::default(),
            replication_window: Mutex::new(
                Hdr::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            ),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "lease_renewals",
            "Successful lease renewals",
            m.lease_renewals.clone(),
        );
        r.register(
            "lease_renewal_failures",
            "Lease renewals that failed or timed out",
            m.lease_renewal_failures.clone(),
        );
        r.register(
            "role_transitions",
            "Role changes of this node",
            m.role_transitions.clone(),
        );
        r.register(
            "epoch",
            "Epoch this node leads at, or last saw",
            m.epoch.clone(),
        );
        r.register(
            "is_leader",
            "1 while this node acknowledges writes",
            m.is_leader.clone(),
        );
        r.register(
            "produced_records",
            "Records acknowledged",
            m.produced_records.clone(),
        );
        r.register(
            "produced_bytes",
            "Record value bytes acknowledged",
            m.produced_bytes.clone(),
        );
        r.register(
            "consumed_records",
            "Records served to consumers",
            m.consumed_records.clone(),
        );
        r.register(
            "consumed_bytes",
            "Record value bytes served",
            m.consumed_bytes.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and status",
            m.request_seconds.clone(),
        );
        r.register(
            "replication_round_trip_seconds",
            "Time to bring every in-sync follower up to a round's end",
            m.replication_seconds.clone(),
        );
        r.register(
            "hwm_commit_seconds",
            "Time to store a commit's high-water mark in Redis",
            m.hwm_commit_seconds.clone(),
        );
        r.register(
            "isr_size",
            "In-sync replicas (leader included), on the leader",
            m.isr_size.clone(),
        );
        r.register(
            "follower_lag_records",
            "Records a follower lacks, on the leader",
            m.follower_lag.clone(),
        );
        r.register(
            "log_size_bytes",
            "Bytes of a partition's log on this node",
            m.log_size_bytes.clone(),
        );
        r.register(
            "log_end_offset",
            "Next offset of a partition's log on this node",
            m.log_end_offset.clone(),
        );
        r.register(
            "high_water_mark",
            "Committed offset this node knows",
            m.high_water_mark.clone(),
        );
        r.register(
            "group_lag_records",
            "Records a consumer group has not committed, against this node's HWMs",
            m.group_lag.clone(),
        );
        r.register(
            "group_members",
            "Members of a consumer group",
            m.group_members.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub fn topic(topic: &str) -> TopicLabels {
        TopicLabels {
            topic: topic.to_owned(),
        }
    }

    /// Records one replication round trip.
    pub fn observe_replication(&self, took: Duration) {
        self.replication_seconds.observe(took.as_secs_f64());
        self.replication_window
            .lock()
            .unwrap()
            .saturating_record(took.as_micros().max(1) as u64);
    }

    /// p50 and p99 (ms) of the round trips since the last call, then resets.
    pub fn take_replication_percentiles(&self) -> Option<(f64, f64)> {
        let mut window = self.replication_window.lock().unwrap();
        if window.is_empty() {
            return None;
        }
        let ms = |q| window.value_at_quantile(q) as f64 / 1000.0;
        let result = (ms(0.5), ms(0.99));
        window.reset();
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics_and_replication_percentiles() {
        let m = Metrics::default();
        m.produced_records
            .get_or_create(&Metrics::topic("t"))
            .inc_by(3);
        for ms in 1..=100 {
            m.observe_replication(Duration::from_millis(ms));
        }
        let text = m.render();
        assert!(
            text.contains("yak_produced_records_total{topic=\"t\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("yak_replication_round_trip_seconds_count 100"),
            "{text}"
        );
        let (p50, p99) = m.take_replication_percentiles().unwrap();
        assert!(
            (49.0..=51.0).contains(&p50) && (98.0..=100.0).contains(&p99),
            "{p50} {p99}"
        );
        assert_eq!(m.take_replication_percentiles(), None, "window resets");
    }
}
