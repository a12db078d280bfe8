//! The node's Prometheus metrics (prometheus-client), served at `/metrics`.
//! Every metric is registered once here; other modules only increment them.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("yak");
        let lease_renewals = Counter::default();
        let lease_renewal_failures = Counter::default();
        let role_transitions = Family::<TransitionLabels, Counter>::default();
        let epoch = Gauge::default();
        let is_leader = Gauge::default();
        let produced_records = Family::<TopicLabels, Counter>::default();
        let produced_bytes = Family::<TopicLabels, Counter>::default();
        let consumed_records = Family::<TopicLabels, Counter>::default();
        let consumed_bytes = Family::<TopicLabels, Counter>::default();
        registry.register(
            "lease_renewals",
            "Successful lease renewals",
            lease_renewals.clone(),
        );
        registry.register(
            "lease_renewal_failures",
            "Lease renewals that failed or timed out",
            lease_renewal_failures.clone(),
        );
        registry.register(
            "role_transitions",
            "Role changes of this node",
            role_transitions.clone(),
        );
        registry.register(
            "epoch",
            "Epoch this node leads at, or last saw",
            epoch.clone(),
        );
        registry.register(
            "is_leader",
            "1 while this node acknowledges writes",
            is_leader.clone(),
        );
        registry.register(
            "produced_records",
            "Records acknowledged",
            produced_records.clone(),
        );
        registry.register(
            "produced_bytes",
            "Record value bytes acknowledged",
            produced_bytes.clone(),
        );
        registry.register(
            "consumed_records",
            "Records served to consumers",
            consumed_records.clone(),
        );
        registry.register(
            "consumed_bytes",
            "Record value bytes served",
            consumed_bytes.clone(),
        );
        Self {
            registry,
            lease_renewals,
            lease_renewal_failures,
            role_transitions,
            epoch,
            is_leader,
            produced_records,
            produced_bytes,
            consumed_records,
            consumed_bytes,
        }
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
}
