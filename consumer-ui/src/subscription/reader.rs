//! The reader tasks of a partition [`Subscription`]: one per partition,
//! started by [`spawn`], and the per-partition states they report.
//!
//! Each partition is followed by a task owning a `yak-client` [`Consumer`],
//! whose position only moves past records it has returned. On an error the
//! task reports `reconnecting`, backs off ([`RETRY`], reset by every poll
//! that succeeds), and polls again from the same position, so after a
//! failover it continues at the next offset with nothing missing or
//! repeated. Every task ends when the subscription is cancelled.

use std::sync::Arc;

use backon::BackoffBuilder;
use yak_client::{Consumer, YakClient};

use super::{
    MAX_RECORDS, POLL_WAIT, RETRY, Source, Subscription, Tasks, after_failure, trouble_note,
};
use crate::events::{Message, NoteLevel, PartitionStatus, ReadState, SubEvent};

/// Starts one reader task per partition of `sub` (a partition
/// subscription).
pub(super) fn spawn(sub: &Arc<Subscription>, client: &YakClient, tasks: &Tasks) {
    let Source::Partitions { topic, start, .. } = &sub.source else {
        unreachable!("partition readers for a group subscription")
    };
    let partitions: Vec<u32> = sub
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
        let consumer = Consumer::new(client.clone(), topic.to_string(), partition, *start)
            .max_records(MAX_RECORDS)
            .skip_deleted(true);
        tasks.spawn(follow(sub.clone(), topic.clone(), consumer));
    }
}

/// Follows one partition until the subscription ends.
async fn follow(sub: Arc<Subscription>, topic: Arc<str>, mut consumer: Consumer) {
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
                    let messages = records
                        .into_iter()
                        .map(|c| Message::new(topic.clone(), partition, c))
                        .collect();
                    sub.publish(messages);
                    sub.set_state(partition, ReadState::Running, consumer.position(), None);
                }
            }
            Err(e) => {
                let (state, delay) = after_failure(&e, &mut backoff);
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

impl Subscription {
    /// Records a partition's state; on a change, tells the pages (and
    /// writes a note when a partition starts or stops reconnecting).
    fn set_state(
        &self,
        partition: u32,
        state: ReadState,
        next_offset: Option<u64>,
        error: Option<String>,
    ) {
        let note = {
            let mut inner = self.inner.lock().unwrap();
            let Some(i) = inner.parts.iter().position(|p| p.partition == partition) else {
                return;
            };
            let before = inner.parts[i].clone();
            let after = PartitionStatus {
                state,
                next_offset,
                error,
                ..before.clone()
            };
            if before == after {
                return;
            }
            let who = format!("partition {partition}");
            let note = trouble_note(
                &who,
                before.state,
                state,
                after.error.as_deref(),
                &mut inner.trouble_since[i],
            )
            .map(|(level, text)| match (level, next_offset) {
                (NoteLevel::Info, at) => {
                    let at = at.map_or_else(|| "?".to_owned(), |o| o.to_string());
                    (level, format!("{text}; continuing at offset {at}"))
                }
                _ => (level, text),
            });
            inner.parts[i] = after;
            let status = self.status_of(&mut inner);
            self.emit(SubEvent::Status(status));
            note
        };
        if let Some((level, text)) = note {
            self.note(level, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;
    use yak_client::StartAt;

    use super::{super::MAX_BACKOFF, super::MIN_BACKOFF, *};

    fn sub() -> Arc<Subscription> {
        let source = Source::Partitions {
            topic: "t".into(),
            all: true,
            start: StartAt::Earliest,
        };
        Subscription::new(1, source, &[0, 1], CancellationToken::new())
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let mut b = RETRY.build();
        let delays: Vec<Duration> = (0..8).map(|_| b.next().unwrap()).collect();
        assert_eq!(delays[0], MIN_BACKOFF);
        // backon doubles in `f32` seconds: the double is a few nanoseconds off.
        assert!(delays[1].abs_diff(MIN_BACKOFF * 2) < Duration::from_micros(1));
        assert_eq!(*delays.last().unwrap(), MAX_BACKOFF);
    }

    #[test]
    fn state_is_the_worst_partition_and_reconnects_are_noted() {
        let s = sub();
        s.set_state(0, ReadState::Running, Some(5), None);
        s.set_state(1, ReadState::Running, Some(9), None);
        assert_eq!(s.status().state, ReadState::Running);
        s.set_state(
            1,
            ReadState::Reconnecting,
            Some(9),
            Some("transport error".to_owned()),
        );
        assert_eq!(s.status().state, ReadState::Reconnecting);
        s.set_state(
            1,
            ReadState::Reconnecting,
            Some(9),
            Some("transport error".to_owned()),
        );
        s.set_state(1, ReadState::Running, Some(9), None);
        assert_eq!(s.status().state, ReadState::Running);
        let (snapshot, _) = s.attach();
        let notes: Vec<&str> = snapshot.notes.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("partition 1: reconnecting: transport error"));
        assert!(notes[1].starts_with("partition 1: reconnected after"));
        assert!(notes[1].ends_with("continuing at offset 9"));
    }

    #[test]
    fn pause_shows_unless_something_is_worse() {
        let s = sub();
        s.set_state(0, ReadState::Running, Some(0), None);
        s.set_state(1, ReadState::Running, Some(0), None);
        s.pause().unwrap();
        assert_eq!(s.status().state, ReadState::Paused);
        assert!(s.status().paused);
        s.set_state(0, ReadState::Error, Some(0), Some("gone".to_owned()));
        assert_eq!(s.status().state, ReadState::Error);
        s.resume().unwrap();
        assert!(!s.status().paused);
    }
}
