//! The reader tasks of a [`Subscription`]: one per partition, started by
//! [`Subscription::spawn`], and a ticker that keeps the rate current.
//!
//! Each partition is followed by a tokio task owning a `yak-client`
//! [`Consumer`], whose position only moves past records it has returned. On
//! an error the task reports `reconnecting`, backs off ([`RETRY`], reset by
//! every poll that succeeds), and polls again from the same position, so
//! after a failover it continues at the next offset with nothing missing
//! or repeated. Every task ends when the subscription is cancelled.

use std::{sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use yak_client::Consumer;

use super::Subscription;
use crate::events::{NoteLevel, ReadState, SubEvent, SubStatus};

/// Records per poll, and how long a poll waits for new ones.
const MAX_RECORDS: usize = 500;
const POLL_WAIT: Duration = Duration::from_secs(1);
/// Back-off between failed polls: the first wait, and the longest.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Wait after an error that retrying soon will not fix.
const ERROR_BACKOFF: Duration = Duration::from_secs(5);
/// The back-off between failed polls: doubling from [`MIN_BACKOFF`] to
/// [`MAX_BACKOFF`], without jitter, and never giving up (a subscription
/// reconnects for as long as it lives).
const RETRY: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(MIN_BACKOFF)
    .with_max_delay(MAX_BACKOFF)
    .without_max_times();

impl Subscription {
    /// Starts one reader task per partition, and the ticker that keeps the
    /// rate current, on the current runtime.
    pub fn spawn(self: &Arc<Self>, client: &yak_client::YakClient) {
        let partitions: Vec<u32> = self
            .inner
            .lock()
            .unwrap()
            .parts
            .iter()
            .map(|p| p.partition)
            .collect();
        for partition in partitions {
            // A page cannot read deleted records either way: it moves on
            // to the log start and says so.
            let consumer = Consumer::new(client.clone(), self.topic.clone(), partition, self.start)
                .max_records(MAX_RECORDS)
                .skip_deleted(true);
            tokio::spawn(follow(self.clone(), consumer));
        }
        tokio::spawn(tick(self.clone()));
    }
}

/// Follows one partition until the subscription ends.
async fn follow(sub: Arc<Subscription>, mut consumer: Consumer) {
    let partition = consumer.partition();
    let mut paused = sub.paused.subscribe();
    let mut backoff = RETRY.build();
    loop {
        if *paused.borrow_and_update() {
            sub.set_state(partition, ReadState::Paused, consumer.position(), None);
            tokio::select! {
                changed = paused.changed() => if changed.is_err() { return },
                () = sub.cancel.cancelled() => return,
            }
            if !*paused.borrow() {
                // Reading again (a poll that fails will say so).
                sub.set_state(partition, ReadState::Running, consumer.position(), None);
            }
            continue;
        }
        // A poll dropped half-way (pause, unsubscribe) moves nothing: the
        // consumer's position changes only when records are returned.
        let polled = tokio::select! {
            polled = consumer.poll(POLL_WAIT) => polled,
            _ = paused.changed() => continue,
            () = sub.cancel.cancelled() => return,
        };
        if let Some(skipped) = consumer.take_skipped() {
            sub.note(
                NoteLevel::Warn,
                format!(
                    "partition {partition}: older records were deleted (retention): offsets {}..{} are gone; continuing at offset {}",
                    skipped.from, skipped.to, skipped.to
                ),
            );
        }
        match polled {
            Ok(records) => {
                backoff = RETRY.build();
                let from = records.first().map(|r| r.offset).or(consumer.position());
                sub.set_state(partition, ReadState::Running, from, None);
                if !records.is_empty() {
                    sub.publish(partition, records);
                    sub.set_state(partition, ReadState::Running, consumer.position(), None);
                }
            }
            Err(e) => {
                let (state, delay) = if e.is_retryable() {
                    (
                        ReadState::Reconnecting,
                        backoff.next().unwrap_or(MAX_BACKOFF),
                    )
                } else {
                    (ReadState::Error, ERROR_BACKOFF)
                };
                tracing::debug!(sub = sub.id, partition, "poll failed: {e}");
                let why = yak_ui::error::describe(&e);
                sub.set_state(partition, state, consumer.position(), Some(why));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = sub.cancel.cancelled() => return,
                }
            }
        }
    }
}

/// Sends the status once a second while it changes (the rate decays to
/// zero when messages stop).
async fn tick(sub: Arc<Subscription>) {
    let mut last = None;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = sub.cancel.cancelled() => return,
        }
        let status = sub.status();
        // Compared without its `seq`, which every status has anew.
        let seen = SubStatus {
            seq: 0,
            ..status.clone()
        };
        if last.as_ref() != Some(&seen) {
            last = Some(seen);
            sub.emit(SubEvent::Status(status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        let mut b = RETRY.build();
        let delays: Vec<Duration> = (0..8).map(|_| b.next().unwrap()).collect();
        assert_eq!(delays[0], MIN_BACKOFF);
        // backon doubles in `f32` seconds: the double is a few nanoseconds off.
        assert!(delays[1].abs_diff(MIN_BACKOFF * 2) < Duration::from_micros(1));
        assert_eq!(*delays.last().unwrap(), MAX_BACKOFF);
    }
}
