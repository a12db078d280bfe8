//! # nemesis — YAK's fault-injection suite
//!
//! Starts a real cluster (redis-server with `appendfsync always`, a
//! `broker` and followers as processes, on a loopback /24 of its own), puts
//! a TCP proxy on every link, runs producers and consumers against it while a seeded
//! scheduler kills, pauses, cuts and corrupts, heals everything, reads
//! every partition back from every node, and checks that nothing
//! acknowledged was lost (the nine checks of [`check`]).
//!
//! ## Layout
//! - [`history`]: the record of a run (operations, reads, HWMs, epochs,
//!   faults), in memory and as JSON lines.
//! - [`proxy`]: the in-harness TCP proxy, one mode per directed link
//!   (pass, drop, reset, delay).
//! - [`cluster`]: the processes and proxies, and the primitive faults on
//!   them (kill, pause, set a link, damage a log tail).
//! - [`faults`]: the fault kinds and how each runs and heals.
//! - [`schedule`]: the seeded scheduler choosing faults and their timing.
//! - [`workload`]: producers (HTTP, binary port, Kafka through the
//!   `kafka-client` crate), consumers and the Redis observer.
//! - [`check`]: the checks, pure functions of the history and the final
//!   state.
//! - [`harness`]: one run from start to [`harness::Summary`].
//!
//! The scenario tests (`tests/scenarios.rs`) run each fault kind on its
//! own with a fixed seed; the `nemesis` binary runs a random mix for as
//! long as asked. `docs/reliability.md` explains both.

pub mod check;
pub mod cluster;
pub mod faults;
pub mod harness;
pub mod history;
pub mod proxy;
pub mod schedule;
pub mod workload;

pub use harness::{RunConfig, RunError, Summary, run};
