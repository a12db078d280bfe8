//! [`Hub`]: the producer UI's counters (sent, failed, batches), its activity
//! log (the last entries), and the broadcast that carries their changes and
//! job progress to every open page.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::progress::JobProgress;

/// Activity entries kept (and sent to a page that opens).
pub const KEPT_ENTRIES: usize = 200;
/// Events a page may fall behind by before it is re-sent a snapshot.
const BROADCAST: usize = 256;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Records acknowledged by the cluster.
    pub sent: u64,
    /// Records (or rows) that could not be sent.
    pub failed: u64,
    /// Requests to the cluster: single sends and batches.
    pub batches: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub ts: i64,
    pub level: Level,
    pub text: String,
}

/// What pages are told.
#[derive(Debug, Clone)]
pub enum HubEvent {
    Counters(Counters),
    Activity(Entry),
    Job(Arc<JobProgress>),
}

#[derive(Debug, Default)]
struct State {
    counters: Counters,
    activity: VecDeque<Entry>,
}

#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    events: broadcast::Sender<HubEvent>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            events: broadcast::channel(BROADCAST).0,
        }
    }
}

impl Hub {
    /// Adds to the counters and tells the pages.
    pub fn count(&self, sent: u64, failed: u64, batches: u64) {
        let mut state = self.state.lock().unwrap();
        state.counters.sent += sent;
        state.counters.failed += failed;
        state.counters.batches += batches;
        let _ = self.events.send(HubEvent::Counters(state.counters));
    }

    pub fn log(&self, level: Level, text: impl Into<String>) {
        let entry = Entry {
            ts: yak_ui::now_ms(),
            level,
            text: text.into(),
        };
        let mut state = self.state.lock().unwrap();
        if state.activity.len() == KEPT_ENTRIES {
            state.activity.pop_front();
        }
        state.activity.push_back(entry.clone());
        let _ = self.events.send(HubEvent::Activity(entry));
    }

    pub fn job(&self, progress: Arc<JobProgress>) {
        let _ = self.events.send(HubEvent::Job(progress));
    }

    /// The counters and activity now, and the events after them (taken
    /// together, so a page misses nothing and sees nothing twice).
    pub fn attach(&self) -> (Counters, Vec<Entry>, broadcast::Receiver<HubEvent>) {
        let state = self.state.lock().unwrap();
        let rx = self.events.subscribe();
        (state.counters, state.activity.iter().cloned().collect(), rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_is_bounded_and_counters_add_up() {
        let hub = Hub::default();
        let (_, _, mut rx) = hub.attach();
        for i in 0..(KEPT_ENTRIES + 10) {
            hub.log(Level::Info, format!("entry {i}"));
        }
        hub.count(3, 1, 1);
        hub.count(2, 0, 1);
        let (counters, activity, _) = hub.attach();
        assert_eq!(activity.len(), KEPT_ENTRIES);
        assert_eq!(activity[0].text, "entry 10");
        assert_eq!(
            counters,
            Counters {
                sent: 5,
                failed: 1,
                batches: 2
            }
        );
        assert!(matches!(rx.try_recv(), Ok(HubEvent::Activity(e)) if e.text == "entry 0"));
    }
}
