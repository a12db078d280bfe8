//! Synchronous replication: the leader pushes every round to its in-sync
//! followers before it commits; followers truncate divergent tails and
//! catch up by fetching. `docs/replication.md` explains the protocol and why
//! it is safe.
//!
//! - [`wire`]: the `/internal/…` protocol and its client.
//! - [`leader`]: the ISR and the per-round push.
//! - [`follower`]: the truncate-then-fetch session of a follower.

pub mod follower;
pub mod leader;
pub mod wire;
