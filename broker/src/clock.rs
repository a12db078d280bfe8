//! Time in one place: the wall-clock milliseconds that record timestamps,
//! the activity log and the node registry carry, and [`Clock`], the
//! monotonic time the replica set's lag rule reads, injected so that tests
//! can move it without waiting.

use std::{
    fmt::Debug,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A monotonic clock.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> Instant;
}

/// The operating system's monotonic clock: what a node runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
