//! The pipeline's three topics, and creating the missing ones.
//!
//! They are created explicitly, with [`PARTITIONS`] partitions, before
//! anything is produced: a topic auto-created by a first produce would get
//! the cluster's default partition count instead. The output topics'
//! partition counts must not change while filters run (a key then maps to
//! another partition, where the broker does not know the replayed
//! sequence: docs/groups.md).

use yak_client::{ErrorCode, YakClient};

/// Where the generator writes and the filters read.
pub const ALL: &str = "invoices.all";
/// Invoices that pass the rule ([`crate::rule`]).
pub const VALID: &str = "invoices.valid";
/// Invoices that break it, with the reasons.
pub const INVALID: &str = "invoices.invalid";
/// Partitions of each topic the pipeline creates.
pub const PARTITIONS: u32 = 3;

/// Creates each of `topics` that does not exist yet, with [`PARTITIONS`]
/// partitions. A topic that exists already (also one created concurrently
/// by another process of the pipeline) is left as it is.
pub async fn ensure(client: &YakClient, topics: &[&str]) -> anyhow::Result<()> {
    let existing = client.topics().await?;
    for &topic in topics {
        if existing.iter().any(|t| t.name == topic) {
            continue;
        }
        match client.create_topic(topic, Some(PARTITIONS)).await {
            Ok(created) => println!(
                "created topic {} with {} partitions",
                created.name, created.partitions
            ),
            Err(e) if e.error_code() == Some(ErrorCode::TopicExists) => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("creating {topic}"))),
        }
    }
    Ok(())
}
