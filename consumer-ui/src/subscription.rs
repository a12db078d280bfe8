//! A [`Subscription`]: one topic-partition, or every partition of a topic,
//! read live from a starting point — its state, its bounded buffer and its
//! bounded broadcast to the open pages.
//!
//! What the reader tasks read goes into a bounded buffer (the last
//! [`KEPT_MESSAGES`]) and a bounded broadcast to the open pages. A page that
//! reads too slowly lags behind the broadcast: it skips ahead and is told
//! how much it missed, and the server's memory stays bounded. A page that
//! attaches gets a snapshot and the events after it, taken under one lock:
//! it misses nothing and sees nothing twice.
//!
//! The reader tasks that fill a subscription, and
//! [`Subscription::spawn`] that starts them, are the child module
//! `reader`; what is sent to pages is in [`events`](crate::events)
//! (re-exported here).

mod reader;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use yak_client::{Consumed, StartAt};
use yak_ui::RateMeter;

pub use crate::events::{
    Message, Note, NoteLevel, PartitionStatus, ReadState, Snapshot, SubEvent, SubStatus,
};

/// Messages kept per subscription.
pub const KEPT_MESSAGES: usize = 1000;
/// Messages sent to a page when it opens (the page shows that many).
pub const SHOWN_MESSAGES: usize = 200;
/// Notes (reconnecting, resumed, …) kept per subscription.
const KEPT_NOTES: usize = 20;
/// Events a page may fall behind by before it skips ahead.
const BROADCAST: usize = 64;

#[derive(Debug)]
struct Inner {
    recent: VecDeque<Arc<Message>>,
    notes: VecDeque<Note>,
    count: u64,
    rate: RateMeter,
    parts: Vec<PartitionStatus>,
    /// The last `seq` handed out.
    seq: u64,
    /// When each partition started reconnecting.
    trouble_since: Vec<Option<Instant>>,
}

#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub topic: String,
    pub all_partitions: bool,
    pub start: StartAt,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<SubEvent>>,
    paused: watch::Sender<bool>,
    cancel: CancellationToken,
}

fn start_name(start: StartAt) -> String {
    match start {
        StartAt::Earliest => "earliest".to_owned(),
        StartAt::Latest => "latest".to_owned(),
        StartAt::Offset(n) => n.to_string(),
    }
}

impl Subscription {
    /// A subscription of `partitions` (not started; see [`Self::spawn`]).
    pub fn new(
        id: u64,
        topic: String,
        partitions: &[u32],
        all_partitions: bool,
        start: StartAt,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let parts = partitions
            .iter()
            .map(|&partition| PartitionStatus {
                partition,
                state: ReadState::Starting,
                next_offset: match start {
                    StartAt::Offset(n) => Some(n),
                    _ => None,
                },
                error: None,
            })
            .collect();
        Arc::new(Self {
            id,
            topic,
            all_partitions,
            start,
            inner: Mutex::new(Inner {
                recent: VecDeque::with_capacity(KEPT_MESSAGES),
                notes: VecDeque::new(),
                count: 0,
                rate: RateMeter::default(),
                parts,
                seq: 0,
                trouble_since: vec![None; partitions.len()],
            }),
            events: broadcast::channel(BROADCAST).0,
            paused: watch::channel(false).0,
            cancel,
        })
    }

    fn status_of(&self, inner: &mut Inner) -> SubStatus {
        let paused = *self.paused.borrow();
        let worst = inner
            .parts
            .iter()
            .map(|p| p.state)
            .max()
            .unwrap_or(ReadState::Starting);
        inner.seq += 1;
        SubStatus {
            id: self.id,
            seq: inner.seq,
            topic: self.topic.clone(),
            all_partitions: self.all_partitions,
            start: start_name(self.start),
            state: if paused && worst <= ReadState::Paused {
                ReadState::Paused
            } else {
                worst
            },
            paused,
            count: inner.count,
            rate: (inner.rate.per_second(Instant::now()) * 10.0).round() / 10.0,
            partitions: inner.parts.clone(),
        }
    }

    pub fn status(&self) -> SubStatus {
        self.status_of(&mut self.inner.lock().unwrap())
    }

    /// The last `limit` messages, oldest first.
    pub fn recent(&self, limit: usize) -> (u64, Vec<Arc<Message>>) {
        let inner = self.inner.lock().unwrap();
        let skip = inner.recent.len().saturating_sub(limit);
        (
            inner.count,
            inner.recent.iter().skip(skip).cloned().collect(),
        )
    }

    /// A snapshot and the events after it, taken together: a page misses
    /// nothing and sees nothing twice.
    pub fn attach(&self) -> (Snapshot, broadcast::Receiver<Arc<SubEvent>>) {
        let mut inner = self.inner.lock().unwrap();
        let rx = self.events.subscribe();
        let skip = inner.recent.len().saturating_sub(SHOWN_MESSAGES);
        let snapshot = Snapshot {
            status: self.status_of(&mut inner),
            recent: inner.recent.iter().skip(skip).cloned().collect(),
            notes: inner.notes.iter().cloned().collect(),
        };
        (snapshot, rx)
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn pause(&self) {
        if !self.paused.send_replace(true) {
            self.note(NoteLevel::Info, "paused".to_owned());
            self.emit_status();
        }
    }

    pub fn resume(&self) {
        if self.paused.send_replace(false) {
            self.note(NoteLevel::Info, "resumed".to_owned());
            self.emit_status();
        }
    }

    /// Ends the reader tasks.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    fn emit(&self, event: SubEvent) {
        let _ = self.events.send(Arc::new(event));
    }

    fn emit_status(&self) {
        let mut inner = self.inner.lock().unwrap();
        let status = self.status_of(&mut inner);
        self.emit(SubEvent::Status(status));
    }

    fn note(&self, level: NoteLevel, text: String) {
        let note = Note {
            ts: yak_ui::now_ms(),
            level,
            text,
        };
        let mut inner = self.inner.lock().unwrap();
        if inner.notes.len() == KEPT_NOTES {
            inner.notes.pop_front();
        }
        inner.notes.push_back(note.clone());
        self.emit(SubEvent::Note(note));
    }

    /// Adds what a poll read.
    fn publish(&self, partition: u32, records: Vec<Consumed>) {
        let records: Vec<Arc<Message>> = records
            .into_iter()
            .map(|c| Arc::new(Message::new(partition, c)))
            .collect();
        let mut inner = self.inner.lock().unwrap();
        for m in &records {
            if inner.recent.len() == KEPT_MESSAGES {
                inner.recent.pop_front();
            }
            inner.recent.push_back(m.clone());
        }
        inner.count += records.len() as u64;
        inner.rate.record(Instant::now(), records.len() as u64);
        let count = inner.count;
        inner.seq += 1;
        let seq = inner.seq;
        // Sent under the lock, so that `attach` sees each batch either in
        // its snapshot or as an event, never both.
        self.emit(SubEvent::Messages {
            records,
            count,
            seq,
        });
    }

    /// Records a partition's state; on a change, tells the pages (and
    /// writes a note when a partition starts or stops reconnecting).
    fn set_state(
        &self,
        partition: u32,
        state: ReadState,
        next_offset: Option<u64>,
        error: Option<String>,
    ) {
        let mut note = None;
        {
            let mut inner = self.inner.lock().unwrap();
            let Some(i) = inner.parts.iter().position(|p| p.partition == partition) else {
                return;
            };
            let before = inner.parts[i].clone();
            let after = PartitionStatus {
                partition,
                state,
                next_offset,
                error,
            };
            if before == after {
                return;
            }
            let troubled = matches!(state, ReadState::Reconnecting | ReadState::Error);
            let was_troubled = matches!(before.state, ReadState::Reconnecting | ReadState::Error);
            if troubled && before.state != state {
                inner.trouble_since[i].get_or_insert_with(Instant::now);
                let (level, what) = match state {
                    ReadState::Error => (NoteLevel::Error, "error"),
                    _ => (NoteLevel::Warn, "reconnecting"),
                };
                let why = after.error.clone().unwrap_or_default();
                note = Some((level, format!("partition {partition}: {what}: {why}")));
            } else if was_troubled && state == ReadState::Running {
                let took = inner.trouble_since[i]
                    .take()
                    .map_or(0.0, |t| t.elapsed().as_secs_f64());
                let at = next_offset.map_or_else(|| "?".to_owned(), |o| o.to_string());
                note = Some((
                    NoteLevel::Info,
                    format!(
                        "partition {partition}: reconnected after {took:.1} s; continuing at offset {at}"
                    ),
                ));
            }
            inner.parts[i] = after;
            let status = self.status_of(&mut inner);
            self.emit(SubEvent::Status(status));
        }
        if let Some((level, text)) = note {
            self.note(level, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sub() -> Arc<Subscription> {
        Subscription::new(
            1,
            "t".to_owned(),
            &[0, 1],
            true,
            StartAt::Earliest,
            CancellationToken::new(),
        )
    }

    fn consumed(offset: u64) -> Consumed {
        Consumed {
            offset,
            key: None,
            payload: json!({ "n": offset }),
            timestamp: 0,
        }
    }

    #[test]
    fn the_buffer_keeps_the_last_messages() {
        let s = sub();
        s.publish(0, (0..(KEPT_MESSAGES as u64 + 250)).map(consumed).collect());
        let (count, recent) = s.recent(usize::MAX);
        assert_eq!(count, KEPT_MESSAGES as u64 + 250);
        assert_eq!(recent.len(), KEPT_MESSAGES);
        assert_eq!(recent[0].offset, 250);
        let (snapshot, _) = s.attach();
        assert_eq!(snapshot.recent.len(), SHOWN_MESSAGES);
        assert_eq!(
            snapshot.recent.last().unwrap().offset,
            KEPT_MESSAGES as u64 + 249
        );
    }

    #[test]
    fn a_slow_page_lags_instead_of_growing_the_server() {
        let s = sub();
        let (_, mut rx) = s.attach();
        for i in 0..(BROADCAST as u64 * 3) {
            s.publish(0, vec![consumed(i)]);
        }
        match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                assert_eq!(n, BROADCAST as u64 * 2);
            }
            other => panic!("expected a lag, got {other:?}"),
        }
        // After the lag the page continues with the newest events.
        let Ok(event) = rx.try_recv() else {
            panic!("no event after the lag")
        };
        let SubEvent::Messages { records, .. } = &*event else {
            panic!("not messages")
        };
        assert_eq!(records[0].offset, BROADCAST as u64 * 2);
    }

    #[test]
    fn attach_splits_snapshot_and_events_exactly() {
        let s = sub();
        s.publish(0, vec![consumed(0), consumed(1)]);
        let (snapshot, mut rx) = s.attach();
        s.publish(0, vec![consumed(2)]);
        assert_eq!(snapshot.recent.len(), 2);
        let event = rx.try_recv().unwrap();
        assert!(
            matches!(&*event, SubEvent::Messages { records, count: 3, .. } if records[0].offset == 2)
        );
        assert!(rx.try_recv().is_err());
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
        s.pause();
        assert_eq!(s.status().state, ReadState::Paused);
        assert!(s.status().paused);
        s.set_state(0, ReadState::Error, Some(0), Some("gone".to_owned()));
        assert_eq!(s.status().state, ReadState::Error);
        s.resume();
        assert!(!s.status().paused);
    }
}
