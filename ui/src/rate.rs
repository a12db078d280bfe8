//! [`RateMeter`]: how many events per second, over the last few seconds.
//! Time is passed in, so the meter is tested without clocks.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Counts in one-second buckets over a sliding window.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    buckets: VecDeque<(Instant, u64)>,
}

impl Default for RateMeter {
    fn default() -> Self {
        Self::new(Duration::from_secs(5))
    }
}

impl RateMeter {
    pub fn new(window: Duration) -> Self {
        Self {
            window: window.max(Duration::from_secs(1)),
            buckets: VecDeque::new(),
        }
    }

    /// Adds `n` events that happened at `now`.
    pub fn record(&mut self, now: Instant, n: u64) {
        self.expire(now);
        match self.buckets.back_mut() {
            Some((start, count)) if now.duration_since(*start) < Duration::from_secs(1) => {
                *count += n;
            }
            _ => self.buckets.push_back((now, n)),
        }
    }

    /// Events per second over the window ending at `now`. Before a full
    /// window has passed since the first event, over the time since then
    /// (but at least a second, so one burst does not read as a huge rate).
    pub fn per_second(&mut self, now: Instant) -> f64 {
        self.expire(now);
        let Some(&(first, _)) = self.buckets.front() else {
            return 0.0;
        };
        let total: u64 = self.buckets.iter().map(|(_, n)| n).sum();
        let span = now
            .duration_since(first)
            .clamp(Duration::from_secs(1), self.window);
        total as f64 / span.as_secs_f64()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(start, _)) = self.buckets.front() {
            if now.duration_since(start) >= self.window {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate() {
        let t0 = Instant::now();
        let mut meter = RateMeter::new(Duration::from_secs(5));
        for s in 0..10 {
            meter.record(t0 + Duration::from_secs(s), 100);
        }
        let rate = meter.per_second(t0 + Duration::from_millis(9_500));
        assert!((rate - 100.0).abs() < 15.0, "{rate}");
    }

    #[test]
    fn a_burst_is_not_a_huge_rate_and_decays_to_zero() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        meter.record(t0, 500);
        assert_eq!(meter.per_second(t0), 500.0);
        assert_eq!(meter.per_second(t0 + Duration::from_secs(2)), 250.0);
        assert_eq!(meter.per_second(t0 + Duration::from_secs(6)), 0.0);
    }
}
