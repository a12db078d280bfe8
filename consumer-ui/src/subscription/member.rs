//! The group member of a group [`Subscription`]: one task, started by
//! [`spawn`], that joins the group with a `yak-client` [`GroupConsumer`],
//! polls, hands what it reads to the pages, commits it, and leaves the
//! group when the subscription ends.
//!
//! - **Which partitions.** Rebalances happen inside `poll`; the client tells
//!   a listener ([`Subscription::rebalanced`]), which replaces the held
//!   partitions and notes what moved, so the page shows a split the moment
//!   the member has its new partitions.
//! - **Delivered means committed.** Once a batch is in the buffer and
//!   broadcast, the task commits it, so a member that takes a partition over
//!   (another tab, a CLI consumer) starts right after what this page showed.
//!   A batch whose commit is refused (the partition moved on meanwhile) is
//!   read again by its new owner: at least once, as the group promises.
//! - **Errors.** A retryable one (the leader is gone) shows `reconnecting`,
//!   backs off and polls again (the client rejoins if its session lapsed);
//!   one that retrying soon will not fix shows `error`, retried every 5 s.
//! - **Ending.** Cancelled, the task commits and leaves (within
//!   [`LEAVE_TIMEOUT`]), so the others get its partitions at once rather
//!   than after its session timeout.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use backon::BackoffBuilder;
use yak_client::{GroupConfig, GroupConsumer, GroupEvent, GroupRecord, TopicPartition, YakClient};

use super::{
    MAX_RECORDS, POLL_WAIT, RETRY, Source, Subscription, Tasks, after_failure, trouble_note,
};
use crate::events::{Message, NoteLevel, PartitionStatus, ReadState, SubEvent};

/// A UI member's session timeout: if the UI process dies, its partitions
/// go to the other members within this.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// How long an ending member gets to commit and leave.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The member's side of a group subscription's state.
#[derive(Debug)]
pub(super) struct Member {
    /// Once joined.
    pub id: Option<String>,
    /// The generation of the partitions it holds.
    pub generation: Option<u64>,
    /// The member's state, which its partitions share.
    pub state: ReadState,
    /// When it started reconnecting.
    trouble_since: Option<Instant>,
    /// What it was last assigned, to note what a rebalance moved.
    assigned: Vec<TopicPartition>,
}

impl Default for Member {
    fn default() -> Self {
        Self {
            id: None,
            generation: None,
            state: ReadState::Starting,
            trouble_since: None,
            assigned: Vec::new(),
        }
    }
}

impl Member {
    /// Every change of the member's state goes through here, so that
    /// trouble and recovery are noted once each, whichever way it recovers
    /// (a poll that succeeds, or a rebalance it takes part in).
    fn enter(&mut self, state: ReadState, error: Option<&str>) -> Option<(NoteLevel, String)> {
        let before = std::mem::replace(&mut self.state, state);
        trouble_note(
            "group member",
            before,
            state,
            error,
            &mut self.trouble_since,
        )
    }
}

/// Starts the member task of `sub` (a group subscription).
pub(super) fn spawn(sub: &Arc<Subscription>, client: &YakClient, tasks: &Tasks) {
    let Source::Group {
        group,
        topics,
        start,
        ..
    } = &sub.source
    else {
        unreachable!("a group member for a partition subscription")
    };
    let mut config = GroupConfig::new(group.clone(), topics.clone());
    config.session_timeout = SESSION_TIMEOUT;
    config.client_id = Some(format!("consumer-ui subscription {}", sub.id));
    config.start = *start;
    config.max_records = MAX_RECORDS;
    let listener = sub.clone();
    config.listener = Some(Arc::new(move |event: &GroupEvent| {
        listener.rebalanced(event)
    }));
    tasks.spawn(run(sub.clone(), client.clone(), config));
}

/// Joins, reads until the subscription ends, then leaves.
async fn run(sub: Arc<Subscription>, client: YakClient, config: GroupConfig) {
    let Some(mut consumer) = join(&sub, client, config).await else {
        return;
    };
    let mut backoff = RETRY.build();
    loop {
        // A poll dropped half-way delivers nothing and commits nothing:
        // the next owner of its partitions reads those records.
        let polled = tokio::select! {
            polled = consumer.poll(POLL_WAIT) => polled,
            () = sub.cancel.cancelled() => break,
        };
        sub.identify(&consumer);
        match polled {
            Ok(records) => {
                backoff = RETRY.build();
                sub.set_member_state(ReadState::Running, None);
                if !records.is_empty() {
                    sub.deliver(records);
                    match consumer.commit().await {
                        // The next poll commits them (auto-commit).
                        Err(e) if e.is_retryable() => {
                            tracing::debug!(sub = sub.id, "commit failed: {e}");
                        }
                        Err(e) => sub.note(
                            NoteLevel::Warn,
                            format!(
                                "commit refused ({}): the member that holds those partitions now reads them again",
                                yak_ui::error::describe(&e)
                            ),
                        ),
                        Ok(()) => {}
                    }
                }
            }
            Err(e) => {
                let (state, delay) = after_failure(&e, &mut backoff);
                tracing::debug!(sub = sub.id, "group poll failed: {e}");
                sub.set_member_state(state, Some(yak_ui::error::describe(&e)));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = sub.cancel.cancelled() => break,
                }
            }
        }
    }
    // Leaving commits what was delivered (auto-commit) first.
    let left = tokio::time::timeout(LEAVE_TIMEOUT, consumer.leave()).await;
    match left {
        Ok(Ok(())) => tracing::info!(sub = sub.id, "left the group"),
        Ok(Err(e)) => tracing::warn!(sub = sub.id, "leaving the group: {e}"),
        Err(_) => tracing::warn!(sub = sub.id, "leaving the group timed out"),
    }
}

/// Joins the group, retrying until it succeeds; `None` if the subscription
/// ends first.
async fn join(
    sub: &Arc<Subscription>,
    client: YakClient,
    config: GroupConfig,
) -> Option<GroupConsumer> {
    let mut backoff = RETRY.build();
    loop {
        let joined = tokio::select! {
            joined = GroupConsumer::join(client.clone(), config.clone()) => joined,
            () = sub.cancel.cancelled() => return None,
        };
        match joined {
            Ok(consumer) => {
                sub.identify(&consumer);
                sub.assigned(consumer.generation(), consumer.assignment());
                return Some(consumer);
            }
            Err(e) => {
                let (state, delay) = after_failure(&e, &mut backoff);
                tracing::debug!(sub = sub.id, "joining the group failed: {e}");
                sub.set_member_state(state, Some(yak_ui::error::describe(&e)));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = sub.cancel.cancelled() => return None,
                }
            }
        }
    }
}

/// `t/0, t/2`, or `nothing`.
fn list(partitions: &[TopicPartition]) -> String {
    if partitions.is_empty() {
        return "nothing".to_owned();
    }
    partitions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Subscription {
    /// Runs `f` on the state under the lock (a closure, so that it can
    /// return early and the notes it yields are written after the lock).
    fn locked<R>(&self, f: impl FnOnce(&mut super::Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap())
    }

    /// Takes the member id and generation the consumer has now (they
    /// change when a session lapses and the member joins anew); tells the
    /// pages if they changed.
    fn identify(&self, consumer: &GroupConsumer) {
        let (id, generation) = (consumer.member_id().to_owned(), consumer.generation());
        self.locked(|inner| {
            let member = inner.member.as_mut().expect("a group subscription");
            if member.id.as_deref() == Some(id.as_str()) && member.generation == Some(generation) {
                return;
            }
            member.id = Some(id);
            member.generation = Some(generation);
            let status = self.status_of(inner);
            self.emit(SubEvent::Status(status));
        });
    }

    /// The client's word on a rebalance.
    fn rebalanced(&self, event: &GroupEvent) {
        match event {
            GroupEvent::Assigned {
                generation,
                partitions,
            } => self.assigned(*generation, partitions),
            GroupEvent::Revoked { partitions } => self.revoked(partitions),
        }
    }

    /// The member gave `partitions` up: until its new assignment it is
    /// rebalancing.
    fn revoked(&self, partitions: &[TopicPartition]) {
        let note = self.locked(|inner| {
            inner.parts.retain(|p| {
                !partitions
                    .iter()
                    .any(|tp| *tp.topic == *p.topic && tp.partition == p.partition)
            });
            let member = inner.member.as_mut().expect("a group subscription");
            let note = member.enter(ReadState::Rebalancing, None);
            for part in &mut inner.parts {
                part.state = ReadState::Rebalancing;
            }
            let status = self.status_of(inner);
            self.emit(SubEvent::Status(status));
            note
        });
        if let Some((level, text)) = note {
            self.note(level, text);
        }
    }

    /// The member holds `partitions` at `generation` and runs (the same
    /// assignment again, while running, changes nothing): the pages see
    /// them, and a note says what moved.
    fn assigned(&self, generation: u64, partitions: &[TopicPartition]) {
        let mut sorted = partitions.to_vec();
        sorted.sort();
        let notes = self.locked(|inner| {
            let member = inner.member.as_mut().expect("a group subscription");
            if member.generation == Some(generation)
                && member.assigned == sorted
                && member.state == ReadState::Running
            {
                return Vec::new();
            }
            let gained: Vec<_> = sorted
                .iter()
                .filter(|tp| !member.assigned.contains(tp))
                .cloned()
                .collect();
            let lost: Vec<_> = member
                .assigned
                .iter()
                .filter(|tp| !sorted.contains(tp))
                .cloned()
                .collect();
            member.generation = Some(generation);
            member.assigned = sorted.clone();
            let recovered = member.enter(ReadState::Running, None);
            let old = std::mem::take(&mut inner.parts);
            inner.parts = sorted
                .iter()
                .map(|tp| {
                    // A partition it keeps keeps its position.
                    let kept = old
                        .iter()
                        .find(|p| *p.topic == *tp.topic && p.partition == tp.partition);
                    PartitionStatus {
                        topic: kept.map_or_else(|| tp.topic.as_str().into(), |p| p.topic.clone()),
                        partition: tp.partition,
                        state: ReadState::Running,
                        next_offset: kept.and_then(|p| p.next_offset),
                        error: None,
                    }
                })
                .collect();
            let status = self.status_of(inner);
            self.emit(SubEvent::Status(status));
            let mut text = format!("generation {generation}: holds {}", list(&sorted));
            if !gained.is_empty() {
                text.push_str(&format!("; gained {}", list(&gained)));
            }
            if !lost.is_empty() {
                text.push_str(&format!("; gave up {}", list(&lost)));
            }
            recovered
                .into_iter()
                .chain([(NoteLevel::Info, text)])
                .collect()
        });
        for (level, text) in notes {
            self.note(level, text);
        }
    }

    /// Records the member's state, which its partitions share; on a
    /// change, tells the pages (and notes trouble and recovery).
    fn set_member_state(&self, state: ReadState, error: Option<String>) {
        let note = self.locked(|inner| {
            let member = inner.member.as_mut().expect("a group subscription");
            // A member that is rebalancing is running once assigned, not
            // because a poll returned.
            let state = match (member.state, state) {
                (ReadState::Rebalancing | ReadState::Starting, ReadState::Running) => {
                    return None;
                }
                (_, state) => state,
            };
            if member.state == state {
                return None;
            }
            let note = member.enter(state, error.as_deref());
            for part in &mut inner.parts {
                part.state = state;
                part.error.clone_from(&error);
            }
            let status = self.status_of(inner);
            self.emit(SubEvent::Status(status));
            note
        });
        if let Some((level, text)) = note {
            self.note(level, text);
        }
    }

    /// Hands a poll's records to the pages and moves the positions shown.
    fn deliver(&self, records: Vec<GroupRecord>) {
        let messages: Vec<Message> = self.locked(|inner| {
            records
                .into_iter()
                .map(|r| {
                    let part = inner
                        .parts
                        .iter_mut()
                        .find(|p| *p.topic == *r.topic && p.partition == r.partition);
                    // One shared topic name, from the held partition.
                    let topic = match part {
                        Some(part) => {
                            let next = r.record.offset + 1;
                            part.next_offset = Some(part.next_offset.map_or(next, |n| n.max(next)));
                            part.topic.clone()
                        }
                        None => r.topic.as_str().into(),
                    };
                    Message::new(topic, r.partition, r.record)
                })
                .collect()
        });
        self.publish(messages);
        self.emit_status();
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;
    use yak_client::{Consumed, StartAt};

    use super::*;

    fn member() -> Arc<Subscription> {
        let source = Source::Group {
            group: "g".to_owned(),
            topics: vec!["t".to_owned()],
            start: StartAt::Earliest,
            owner: None,
        };
        Subscription::new(7, source, &[], CancellationToken::new())
    }

    fn tp(partition: u32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    fn held(s: &Subscription) -> Vec<u32> {
        s.status().partitions.iter().map(|p| p.partition).collect()
    }

    fn notes(s: &Subscription) -> Vec<String> {
        s.attach().0.notes.into_iter().map(|n| n.text).collect()
    }

    #[test]
    fn a_member_joins_rebalances_and_says_what_moved() {
        let s = member();
        let status = serde_json::to_value(s.status()).unwrap();
        assert_eq!(status["kind"], "group");
        assert_eq!(status["group"], "g");
        assert_eq!(status["state"], "starting");
        assert_eq!(status["member_id"], serde_json::Value::Null);

        s.assigned(1, &[tp(2), tp(0), tp(1)]);
        assert_eq!(held(&s), [0, 1, 2]);
        assert_eq!(s.status().state, ReadState::Running);
        // The same assignment again (the join answer, then the listener)
        // notes nothing.
        s.assigned(1, &[tp(0), tp(1), tp(2)]);

        s.rebalanced(&GroupEvent::Revoked {
            partitions: vec![tp(0), tp(1), tp(2)],
        });
        assert_eq!(s.status().state, ReadState::Rebalancing);
        assert!(held(&s).is_empty());
        // A poll that returns during the rebalance does not end it.
        s.set_member_state(ReadState::Running, None);
        assert_eq!(s.status().state, ReadState::Rebalancing);

        s.rebalanced(&GroupEvent::Assigned {
            generation: 2,
            partitions: vec![tp(0), tp(2)],
        });
        assert_eq!(held(&s), [0, 2]);
        assert_eq!(s.status().state, ReadState::Running);
        let status = serde_json::to_value(s.status()).unwrap();
        assert_eq!(status["generation"], 2);
        assert_eq!(
            notes(&s),
            [
                "generation 1: holds t/0, t/1, t/2; gained t/0, t/1, t/2",
                "generation 2: holds t/0, t/2; gave up t/1",
            ]
        );
    }

    #[test]
    fn delivered_records_move_the_positions_and_keep_through_a_rebalance() {
        let s = member();
        s.assigned(1, &[tp(0), tp(1)]);
        let record = |partition, offset| GroupRecord {
            topic: "t".to_owned(),
            partition,
            record: Consumed {
                offset,
                key: None,
                payload: serde_json::json!(offset),
                timestamp: 0,
            },
        };
        s.deliver(vec![record(0, 4), record(0, 5), record(1, 9)]);
        let (count, recent) = s.recent(10);
        assert_eq!(count, 3);
        assert_eq!(&*recent[2].topic, "t");
        assert_eq!(recent[2].partition, 1);
        let next: Vec<_> = s
            .status()
            .partitions
            .iter()
            .map(|p| p.next_offset)
            .collect();
        assert_eq!(next, [Some(6), Some(10)]);
        s.assigned(2, &[tp(1)]);
        assert_eq!(s.status().partitions[0].next_offset, Some(10));
    }

    #[test]
    fn trouble_and_recovery_are_noted_once() {
        let s = member();
        s.assigned(1, &[tp(0)]);
        s.set_member_state(ReadState::Reconnecting, Some("no leader".to_owned()));
        s.set_member_state(ReadState::Reconnecting, Some("no leader".to_owned()));
        assert_eq!(s.status().partitions[0].state, ReadState::Reconnecting);
        s.set_member_state(ReadState::Running, None);
        let notes = notes(&s);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert_eq!(notes[1], "group member: reconnecting: no leader");
        assert!(notes[2].starts_with("group member: reconnected after"));
        assert_eq!(s.status().partitions[0].error, None);
    }

    #[test]
    fn a_member_that_recovers_through_a_rebalance_says_so_once() {
        let s = member();
        s.assigned(1, &[tp(0), tp(1)]);
        s.set_member_state(ReadState::Reconnecting, Some("no leader".to_owned()));
        // The client reached the group again, which is rebalancing.
        s.rebalanced(&GroupEvent::Revoked {
            partitions: vec![tp(0), tp(1)],
        });
        s.rebalanced(&GroupEvent::Assigned {
            generation: 2,
            partitions: vec![tp(1)],
        });
        assert_eq!(s.status().state, ReadState::Running);
        let notes = notes(&s);
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(
            notes[2].starts_with("group member: reconnected after"),
            "{notes:?}"
        );
        assert_eq!(notes[3], "generation 2: holds t/1; gave up t/0");
        // Trouble later is timed from then, not from the first time.
        s.set_member_state(ReadState::Reconnecting, Some("no leader".to_owned()));
        s.set_member_state(ReadState::Running, None);
        let last = self::notes(&s).pop().unwrap();
        assert!(
            last.starts_with("group member: reconnected after 0.0 s"),
            "{last}"
        );
    }
}
