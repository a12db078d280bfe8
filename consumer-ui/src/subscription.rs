//! A [`Subscription`]: what one reads — chosen partitions of a topic from a
//! starting point, or a consumer group's share as one of its members
//! ([`Source`]) — with its state, its bounded buffer and its bounded
//! broadcast to the open pages.
//!
//! What the tasks read goes into a bounded buffer (the last
//! [`KEPT_MESSAGES`]) and a bounded broadcast to the open pages. A page that
//! reads too slowly lags behind the broadcast: it skips ahead and is told
//! how much it missed, and the server's memory stays bounded. A page that
//! attaches gets a snapshot and the events after it, taken under one lock:
//! it misses nothing and sees nothing twice.
//!
//! The tasks are child modules: `reader` (one per partition of a partition
//! subscription) and `member` (the one group member of a group
//! subscription). [`Subscription::spawn`] starts them on [`Tasks`]. What is
//! sent to pages is in [`events`](crate::events) (re-exported here).

mod member;
mod reader;

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use backon::{ExponentialBackoff, ExponentialBuilder};
use tokio::{
    runtime::Handle,
    sync::{broadcast, watch},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use yak_client::{ClientError, StartAt, YakClient};
use yak_ui::{RateMeter, UiError};

pub use self::member::LEAVE_TIMEOUT;
pub use crate::events::{
    Message, Note, NoteLevel, PartitionStatus, ReadState, Snapshot, SourceStatus, SubEvent,
    SubStatus,
};
use crate::tabs::TabId;

/// Messages kept per subscription.
pub const KEPT_MESSAGES: usize = 1000;
/// Messages sent to a page when it opens (the page shows that many).
pub const SHOWN_MESSAGES: usize = 200;
/// Notes (reconnecting, resumed, …) kept per subscription.
const KEPT_NOTES: usize = 20;
/// Events a page may fall behind by before it skips ahead.
const BROADCAST: usize = 64;

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

/// What a failed call means for a task: the state it reports and how long
/// it waits before trying again.
fn after_failure(e: &ClientError, backoff: &mut ExponentialBackoff) -> (ReadState, Duration) {
    if e.is_retryable() {
        (
            ReadState::Reconnecting,
            backoff.next().unwrap_or(MAX_BACKOFF),
        )
    } else {
        (ReadState::Error, ERROR_BACKOFF)
    }
}

/// What a subscription reads.
#[derive(Debug, Clone)]
pub enum Source {
    /// Chosen partitions of one topic, each read from `start`.
    Partitions {
        topic: Arc<str>,
        /// Every partition of the topic.
        all: bool,
        start: StartAt,
    },
    /// A member of `group` for `topics`, reading the partitions the group
    /// assigns it from the group's committed offsets (`start` where there
    /// is none).
    Group {
        group: String,
        topics: Vec<String>,
        start: StartAt,
        /// The page that made it: it ends when that page closes, and only
        /// that page shows it. `None`: the UI's, like a partition one.
        owner: Option<TabId>,
    },
}

impl Source {
    fn status(&self, member: Option<&member::Member>) -> SourceStatus {
        match self {
            Source::Partitions { topic, all, start } => SourceStatus::Partitions {
                topic: topic.to_string(),
                all_partitions: *all,
                start: start_name(*start),
            },
            Source::Group {
                group,
                topics,
                start,
                ..
            } => SourceStatus::Group {
                group: group.clone(),
                topics: topics.clone(),
                start: start_name(*start),
                member_id: member.and_then(|m| m.id.clone()),
                generation: member.and_then(|m| m.generation),
            },
        }
    }
}

/// Where the subscriptions' tasks run: on the runtime the UI started on,
/// not on an HTTP worker's (which stops with the server, before a group
/// member could leave its group), and tracked so that a shutdown can wait
/// for them.
#[derive(Debug, Clone)]
pub struct Tasks {
    tracker: TaskTracker,
    runtime: Handle,
}

impl Tasks {
    /// Tasks on the current runtime. Panics outside one.
    pub fn current() -> Self {
        Self {
            tracker: TaskTracker::new(),
            runtime: Handle::current(),
        }
    }

    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn_on(task, &self.runtime);
    }

    /// Waits up to `within` for the tasks to end (their subscriptions
    /// cancelled first); true if they all did.
    pub async fn close(&self, within: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[derive(Debug)]
struct Inner {
    recent: VecDeque<Arc<Message>>,
    notes: VecDeque<Note>,
    count: u64,
    rate: RateMeter,
    /// The partitions read: fixed for a partition subscription; those the
    /// member holds now for a group subscription.
    parts: Vec<PartitionStatus>,
    /// The last `seq` handed out.
    seq: u64,
    /// When each partition started reconnecting (partition subscriptions;
    /// by index into `parts`).
    trouble_since: Vec<Option<Instant>>,
    /// The member (`Some` exactly for group subscriptions).
    member: Option<member::Member>,
}

#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub source: Source,
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

/// The note for a reader (`who`: a partition's, or the group member) whose
/// state goes from `before` to `after`: when trouble starts, and when it is
/// out of it — running again, or (a member) taking part in a rebalance, so
/// it reached the group — and how long that took (`since` keeps when it
/// started).
fn trouble_note(
    who: &str,
    before: ReadState,
    after: ReadState,
    error: Option<&str>,
    since: &mut Option<Instant>,
) -> Option<(NoteLevel, String)> {
    let troubled = |s| matches!(s, ReadState::Reconnecting | ReadState::Error);
    if troubled(after) && before != after {
        since.get_or_insert_with(Instant::now);
        let (level, what) = match after {
            ReadState::Error => (NoteLevel::Error, "error"),
            _ => (NoteLevel::Warn, "reconnecting"),
        };
        Some((
            level,
            format!("{who}: {what}: {}", error.unwrap_or_default()),
        ))
    } else if troubled(before) && matches!(after, ReadState::Running | ReadState::Rebalancing) {
        let took = since.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
        Some((
            NoteLevel::Info,
            format!("{who}: reconnected after {took:.1} s"),
        ))
    } else {
        None
    }
}

impl Subscription {
    /// A subscription of `partitions` of the topic of a
    /// [`Source::Partitions`], or a group member of a [`Source::Group`]
    /// (`partitions` unused: the group assigns them). Not started; see
    /// [`Self::spawn`].
    pub fn new(
        id: u64,
        source: Source,
        partitions: &[u32],
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let (parts, member) = match &source {
            Source::Partitions { topic, start, .. } => {
                let parts = partitions
                    .iter()
                    .map(|&partition| PartitionStatus {
                        topic: topic.clone(),
                        partition,
                        state: ReadState::Starting,
                        next_offset: match start {
                            StartAt::Offset(n) => Some(*n),
                            _ => None,
                        },
                        error: None,
                    })
                    .collect();
                (parts, None)
            }
            Source::Group { .. } => (Vec::new(), Some(member::Member::default())),
        };
        Arc::new(Self {
            id,
            source,
            inner: Mutex::new(Inner {
                recent: VecDeque::with_capacity(KEPT_MESSAGES),
                notes: VecDeque::new(),
                count: 0,
                rate: RateMeter::default(),
                trouble_since: vec![None; partitions.len()],
                parts,
                seq: 0,
                member,
            }),
            events: broadcast::channel(BROADCAST).0,
            paused: watch::channel(false).0,
            cancel,
        })
    }

    /// The page that owns it, if any (see [`Source::Group`]).
    pub fn owner(&self) -> Option<&TabId> {
        match &self.source {
            Source::Group { owner, .. } => owner.as_ref(),
            Source::Partitions { .. } => None,
        }
    }

    /// Whether the page of `tab` shows it: every page shows the UI's
    /// subscriptions, only its own page a page's.
    pub fn visible_to(&self, tab: Option<&TabId>) -> bool {
        self.owner().is_none_or(|owner| Some(owner) == tab)
    }

    /// Starts its tasks (the partition readers, or the group member) and
    /// the ticker that keeps the rate current.
    pub fn spawn(self: &Arc<Self>, client: &YakClient, tasks: &Tasks) {
        match &self.source {
            Source::Partitions { .. } => reader::spawn(self, client, tasks),
            Source::Group { .. } => member::spawn(self, client, tasks),
        }
        tasks.spawn(tick(self.clone()));
    }

    fn status_of(&self, inner: &mut Inner) -> SubStatus {
        let paused = *self.paused.borrow();
        let state = match &inner.member {
            Some(member) => member.state,
            None => inner
                .parts
                .iter()
                .map(|p| p.state)
                .max()
                .unwrap_or(ReadState::Starting),
        };
        inner.seq += 1;
        SubStatus {
            id: self.id,
            seq: inner.seq,
            source: self.source.status(inner.member.as_ref()),
            state: if paused && state <= ReadState::Paused {
                ReadState::Paused
            } else {
                state
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

    /// A group member cannot pause: its partitions would go to the others
    /// after its session timeout, and pausing is then leaving.
    fn pausable(&self) -> Result<(), UiError> {
        match self.source {
            Source::Partitions { .. } => Ok(()),
            Source::Group { .. } => Err(UiError::conflict(
                "not_pausable",
                "a group member cannot pause: the group would give its partitions to the \
                 other members; unsubscribe to leave the group",
            )),
        }
    }

    pub fn pause(&self) -> Result<(), UiError> {
        self.pausable()?;
        if !self.paused.send_replace(true) {
            self.note(NoteLevel::Info, "paused".to_owned());
            self.emit_status();
        }
        Ok(())
    }

    pub fn resume(&self) -> Result<(), UiError> {
        self.pausable()?;
        if self.paused.send_replace(false) {
            self.note(NoteLevel::Info, "resumed".to_owned());
            self.emit_status();
        }
        Ok(())
    }

    /// Ends the tasks (a group member leaves its group).
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
    fn publish(&self, records: Vec<Message>) {
        let records: Vec<Arc<Message>> = records.into_iter().map(Arc::new).collect();
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
    use serde_json::json;
    use yak_client::Consumed;

    use super::*;

    fn sub() -> Arc<Subscription> {
        let source = Source::Partitions {
            topic: "t".into(),
            all: true,
            start: StartAt::Earliest,
        };
        Subscription::new(1, source, &[0, 1], CancellationToken::new())
    }

    fn message(offset: u64) -> Message {
        let consumed = Consumed {
            offset,
            key: None,
            payload: json!({ "n": offset }),
            timestamp: 0,
        };
        Message::new("t".into(), 0, consumed)
    }

    #[test]
    fn the_buffer_keeps_the_last_messages() {
        let s = sub();
        s.publish((0..(KEPT_MESSAGES as u64 + 250)).map(message).collect());
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
            s.publish(vec![message(i)]);
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
        s.publish(vec![message(0), message(1)]);
        let (snapshot, mut rx) = s.attach();
        s.publish(vec![message(2)]);
        assert_eq!(snapshot.recent.len(), 2);
        let event = rx.try_recv().unwrap();
        assert!(
            matches!(&*event, SubEvent::Messages { records, count: 3, .. } if records[0].offset == 2)
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_partition_subscription_says_what_it_reads() {
        let status = serde_json::to_value(sub().status()).unwrap();
        assert_eq!(status["kind"], "partitions");
        assert_eq!(status["topic"], "t");
        assert_eq!(status["all_partitions"], true);
        assert_eq!(status["start"], "earliest");
        assert_eq!(status["partitions"][1]["topic"], "t");
        assert_eq!(status["partitions"][1]["partition"], 1);
    }

    #[test]
    fn only_the_owning_page_sees_a_group_subscription() {
        let tab = |id: &str| TabId::try_from(id.to_owned()).unwrap();
        let source = Source::Group {
            group: "g".to_owned(),
            topics: vec!["t".to_owned()],
            start: StartAt::Earliest,
            owner: Some(tab("a")),
        };
        let owned = Subscription::new(2, source, &[], CancellationToken::new());
        assert!(owned.visible_to(Some(&tab("a"))));
        assert!(!owned.visible_to(Some(&tab("b"))));
        assert!(!owned.visible_to(None));
        assert!(sub().visible_to(Some(&tab("b"))));
        assert!(sub().visible_to(None));
        assert_eq!(owned.pause().unwrap_err().code(), "not_pausable");
        assert!(!owned.status().paused);
    }
}
