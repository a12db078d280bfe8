//! A small Kafka client on the `kafka-protocol` crate (the one the broker
//! decodes with), for YAK's own tools, not for users (they use any Kafka
//! client: `docs/kafka.md`):
//!
//! - [`producer`]: an idempotent producer ([`KafkaProducer`]), used by the
//!   nemesis Kafka workload, whose producers connect through the nodes'
//!   front proxies, and by `yak bench`, which measures the Kafka listener
//!   with batches shaped like its binary-port ones;
//! - [`consumer`]: a fetch consumer of one partition ([`KafkaConsumer`]),
//!   used by `yak bench` to measure Kafka consume the way its binary
//!   consume is measured, with a client that costs little per record;
//! - `connection` (private): what both share — one TCP connection to a
//!   node's Kafka listener, the request header, size-prefixed frames, the
//!   correlation-id check, requests sent ahead and answered in order — and
//!   finding a partition's leader in Metadata;
//! - `error`: [`KafkaError`], one failed attempt, for both.

mod connection;
pub mod consumer;
mod error;
pub mod producer;

pub use consumer::{ConsumerConfig, KafkaConsumer, KafkaRecord, Start};
pub use error::KafkaError;
pub use producer::{KafkaConfig, KafkaProducer, SendError};
