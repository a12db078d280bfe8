//! The node's activity log: elections, step-downs, ISR changes,
//! truncations, catch-ups and errors, newest last, bounded. Shared by the
//! lease driver, the partition writers and the dashboard.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use serde::Serialize;

use crate::clock::now_ms;

const CAPACITY: usize = 200;

/// One line of the activity log.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub at_ms: u64,
    pub kind: &'static str,
    pub message: String,
}

/// A cheap-to-clone handle on the log.
#[derive(Debug, Clone, Default)]
pub struct ActivityLog(Arc<Mutex<VecDeque<Activity>>>);

impl ActivityLog {
    pub fn push(&self, kind: &'static str, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!(kind, "{message}");
        let mut log = self.0.lock().unwrap();
        if log.len() == CAPACITY {
            log.pop_front();
        }
        log.push_back(Activity {
            at_ms: now_ms(),
            kind,
            message,
        });
    }

    /// Newest first.
    pub fn recent(&self) -> Vec<Activity> {
        self.0.lock().unwrap().iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_entries_first() {
        let log = ActivityLog::default();
        for i in 0..CAPACITY + 5 {
            log.push("test", format!("entry {i}"));
        }
        let recent = log.recent();
        assert_eq!(recent.len(), CAPACITY);
        assert_eq!(recent[0].message, format!("entry {}", CAPACITY + 4));
        assert_eq!(recent.last().unwrap().message, "entry 5");
    }
}
