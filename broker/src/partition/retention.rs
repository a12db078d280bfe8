//! Retention: the leader deletes closed segments below the HWM by its
//! topic's rule; followers delete below their leader's log start.

use std::time::Duration;

use partition_log::Retention;
use yak_protocol::TopicConfig;

use crate::peer::Refusal;

use super::{ReplicaError, writer::Mode, writer::Writer};

/// A topic's retention rule as the log applies it.
pub fn retention(config: &TopicConfig) -> Retention {
    Retention {
        max_bytes: config.retention_bytes,
        max_age: config.retention_ms.map(Duration::from_millis),
    }
}

impl Writer {
    /// On the leader: deletes closed segments below the HWM that the topic's
    /// rule lets go. Followers delete what their leader deleted instead
    /// ([`Writer::follow_log_start`]), so that every replica's log start
    /// follows one rule applied in one place.
    pub(super) fn enforce_retention(&mut self) {
        if self.leading_epoch().is_none() {
            return;
        }
        let rule = retention(&self.topic_config.borrow());
        if rule == partition_log::Retention::default() {
            return;
        }
        self.log.set_retention(rule);
        let hwm = *self.hwm.borrow();
        match self.write(|log| log.apply_retention(hwm, std::time::SystemTime::now())) {
            Ok(deleted) if !deleted.is_empty() => self.report_deleted(&deleted),
            Ok(_) => {}
            Err(e) => tracing::error!(partition = %self.name(), "retention failed: {e}"),
        }
    }

    /// On a follower: deletes the closed segments wholly below the leader's
    /// log start, never at or above this node's own HWM.
    pub(super) fn follow_log_start(&mut self, leader_start: u64) {
        let below = leader_start.min(*self.hwm.borrow());
        if below <= self.log.start_offset() {
            return;
        }
        match self.write(|log| log.delete_below(below)) {
            Ok(deleted) if !deleted.is_empty() => self.report_deleted(&deleted),
            Ok(_) => {}
            Err(e) => tracing::error!(partition = %self.name(), "cannot delete below {below}: {e}"),
        }
    }

    pub(super) fn report_deleted(&self, bases: &[u64]) {
        self.ctx.activity.push(
            "retention",
            format!(
                "{}: deleted {} segment(s); the log now starts at {}",
                self.name(),
                bases.len(),
                self.log.start_offset()
            ),
        );
    }

    pub(super) fn reset_to(&mut self, offset: u64) -> Result<(), ReplicaError> {
        if !matches!(self.mode, Mode::Following { .. }) {
            return Err(ReplicaError::Refused(Refusal::NotLeader));
        }
        let end = self.log.end_offset();
        self.rewrite(|log| log.reset_to(offset))
            .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        self.ctx.activity.push(
            "truncation",
            format!(
                "{}: the leader deleted everything up to {offset} (retention); dropped {}..{end} and continue at {offset}",
                self.name(),
                self.log.start_offset().min(end)
            ),
        );
        Ok(())
    }
}
