//! Waiting: poll a condition against a deadline, or check it stays true.

use std::{
    fmt,
    future::Future,
    panic::Location,
    time::{Duration, Instant},
};

use crate::POLL_INTERVAL;

/// Polls `condition` every [`POLL_INTERVAL`] until it returns `Some`, and
/// returns that value. Panics (naming the caller's line) if `timeout`
/// passes first. One check that hangs cannot overrun the deadline by more
/// than a poll interval.
///
/// ```no_run
/// # async fn demo(url: &str) {
/// use std::time::Duration;
/// use testkit::{get_json, wait_until};
/// let role = wait_until(Duration::from_secs(5), || async {
///     let (_, health) = get_json(&format!("{url}/health")).await;
///     (health["role"] == "leader").then_some(health)
/// })
/// .await;
/// # }
/// ```
#[track_caller]
pub fn wait_until<T, F, Fut>(timeout: Duration, condition: F) -> impl Future<Output = T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let caller = Location::caller();
    poll_until(format!("condition at {caller}"), timeout, condition)
}

/// [`wait_until`] with a description of what is awaited, for the panic
/// message.
#[track_caller]
pub fn wait_for<T, F, Fut>(
    what: impl fmt::Display,
    timeout: Duration,
    condition: F,
) -> impl Future<Output = T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let caller = Location::caller();
    poll_until(format!("{what} (at {caller})"), timeout, condition)
}

/// The opposite of [`wait_for`]: checks `condition` every
/// [`POLL_INTERVAL`] for `duration` and panics (naming `what` and the
/// caller's line) the first time it is false. For "stays so for a while"
/// assertions, e.g. "no node leads for two lease TTLs". One check that
/// hangs past the end counts as holding.
#[track_caller]
pub fn hold_for<F, Fut>(
    what: impl fmt::Display,
    duration: Duration,
    condition: F,
) -> impl Future<Output = ()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let caller = Location::caller();
    let what = format!("{what} (at {caller})");
    hold(what, duration, condition)
}

async fn hold<F, Fut>(what: String, duration: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let end = started + duration;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match tokio::time::timeout(left, condition()).await {
            Ok(true) | Err(_) => {}
            Ok(false) => panic!(
                "{what} stopped holding after {:?} of {duration:?}",
                started.elapsed()
            ),
        }
        tokio::time::sleep(POLL_INTERVAL.min(end.saturating_duration_since(Instant::now()))).await;
    }
}

pub(crate) async fn poll_until<T, F, Fut>(what: String, timeout: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Some(value)) = tokio::time::timeout(left.max(POLL_INTERVAL), condition()).await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
