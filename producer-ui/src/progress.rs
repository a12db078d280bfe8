//! A job's progress as the pages see it ([`JobProgress`], [`JobState`]),
//! and how it is measured and written: running time without pauses, the
//! time left, numbers with thousands separators.
//!
//! Plain data and pure functions, shared by the job that updates the
//! progress ([`job`](crate::job)) and the hub that broadcasts it
//! ([`activity`](crate::activity)); it depends on neither.

use std::time::{Duration, Instant};

use num_format::{Locale, ToFormattedString};
use serde::Serialize;

use crate::rows::FailureLog;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Paused,
    Cancelled,
    Done,
    Failed,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, Self::Cancelled | Self::Done | Self::Failed)
    }
}

/// A job's progress, as pages see it.
#[derive(Debug, Clone, Serialize)]
pub struct JobProgress {
    pub id: u64,
    /// Grows with every update, so a page keeps the newest of what it
    /// hears (events and answers may cross).
    pub seq: u64,
    pub upload_id: u64,
    pub filename: String,
    pub topic: String,
    pub state: JobState,
    /// Rows read so far (sent + failed).
    pub rows: u64,
    pub sent: u64,
    pub failed: u64,
    pub batches: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Rows per second over the last seconds.
    pub rate: f64,
    /// Estimated seconds left, from the bytes still to read.
    pub eta_secs: Option<f64>,
    /// Time spent sending (pauses excluded).
    pub elapsed_secs: f64,
    pub failures: FailureLog,
    /// Why the job stopped, if it failed.
    pub error: Option<String>,
}

/// Running time that does not count pauses.
#[derive(Debug, Default)]
pub(crate) struct ActiveClock {
    total: Duration,
    since: Option<Instant>,
}

impl ActiveClock {
    pub(crate) fn start(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    pub(crate) fn stop(&mut self) {
        if let Some(since) = self.since.take() {
            self.total += since.elapsed();
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.total + self.since.map_or(Duration::ZERO, |s| s.elapsed())
    }
}

/// `12345` as `12,345`, as the page writes numbers.
pub fn thousands(n: u64) -> String {
    n.to_formatted_string(&Locale::en)
}

/// Seconds left at the average speed so far.
pub fn eta_secs(bytes_done: u64, bytes_total: u64, active: Duration) -> Option<f64> {
    if bytes_done == 0 || active.is_zero() {
        return None;
    }
    let left = bytes_total.saturating_sub(bytes_done) as f64;
    Some(left * active.as_secs_f64() / bytes_done as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_with_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn eta_from_bytes() {
        assert_eq!(eta_secs(0, 100, Duration::from_secs(1)), None);
        assert_eq!(eta_secs(25, 100, Duration::from_secs(1)), Some(3.0));
        assert_eq!(eta_secs(100, 100, Duration::from_secs(4)), Some(0.0));
    }

    #[test]
    fn active_clock_skips_pauses() {
        let mut clock = ActiveClock::default();
        assert_eq!(clock.elapsed(), Duration::ZERO);
        clock.start();
        clock.stop();
        let paused = clock.elapsed();
        assert_eq!(clock.elapsed(), paused, "a stopped clock stands still");
    }
}
