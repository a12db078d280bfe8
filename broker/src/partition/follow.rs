//! The writer while following: KIP-101/279 truncation for a new leader's
//! epoch, and appending what the leader sends, byte for byte.

use partition_log::{BatchHeader, batch};

use crate::peer::{EpochEnd, Refusal};

use super::{ReplicaError, writer::Mode, writer::Writer};

impl Writer {
    /// KIP-101/279 truncation: cut what this log has beyond the point where
    /// it agrees with the leader of `epoch`, never below the HWM.
    pub(super) fn follow(&mut self, epoch: u64, leader: EpochEnd) -> Result<u64, ReplicaError> {
        let end = self.log.end_offset();
        let hwm = *self.hwm.borrow();
        let target = match (self.log.latest_epoch(), leader.epoch, leader.end_offset) {
            (None, ..) => end,
            (Some(_), Some(leader_epoch), Some(leader_end)) => {
                // Our own end for the leader's epoch: we may have written
                // more of it, or moved on to a later epoch earlier.
                let ours = self
                    .log
                    .end_offset_for_epoch(leader_epoch)
                    .map_or(self.log.start_offset(), |(_, e)| e);
                leader_end.min(ours).min(end)
            }
            (Some(_), ..) => self.log.start_offset(),
        };
        let target = if target < hwm {
            tracing::error!(
                partition = %self.name(),
                target,
                hwm,
                "the leader's log diverges below our HWM; keeping committed data"
            );
            hwm
        } else {
            target
        };
        let target = self.batch_boundary_at_or_below(target)?.max(hwm);
        if target < end {
            self.rewrite(|log| log.truncate_to(target))
                .map_err(|e| ReplicaError::Storage(e.to_string()))?;
            self.ctx.activity.push(
                "truncation",
                format!(
                    "{}: truncated divergent tail {target}..{end} for the leader of epoch {epoch}",
                    self.name()
                ),
            );
        }
        self.mode = Mode::Following { epoch };
        self.publish_status();
        Ok(self.log.end_offset())
    }

    pub(super) fn batch_boundary_at_or_below(&self, offset: u64) -> Result<u64, ReplicaError> {
        if offset >= self.log.end_offset() || offset <= self.log.start_offset() {
            return Ok(offset);
        }
        let bytes = self
            .log
            .read(offset, u64::MAX, 1)
            .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        Ok(batch::batches(&bytes)
            .next()
            .and_then(Result::ok)
            .map_or(offset, |b| b.header.base_offset.min(offset)))
    }

    pub(super) fn replicate(
        &mut self,
        epoch: u64,
        prev: u64,
        bytes: &[u8],
        leader_hwm: u64,
    ) -> Result<u64, ReplicaError> {
        let end = self.log.end_offset();
        match self.mode {
            Mode::Following { epoch: synced } if synced == epoch => {}
            Mode::Following { epoch: synced } if synced > epoch => {
                return Err(Refusal::StaleEpoch { current: synced }.into());
            }
            Mode::Leading { epoch: leading, .. } if leading > epoch => {
                return Err(Refusal::StaleEpoch { current: leading }.into());
            }
            _ => return Err(Refusal::NeedsTruncation { end }.into()),
        }
        if prev > end {
            return Err(Refusal::NonContiguous { end }.into());
        }
        // Skip what we already hold (a push and a fetch may overlap); the
        // rest must start exactly at our end.
        let mut rest = bytes;
        while let Ok((b, tail)) = batch::Batch::split_first(rest) {
            if b.header.next_offset() > end {
                break;
            }
            rest = tail;
        }
        if !rest.is_empty() {
            let first =
                BatchHeader::parse(rest).map_err(|e| ReplicaError::Storage(e.to_string()))?;
            if first.base_offset != end {
                return Err(Refusal::NonContiguous { end }.into());
            }
            self.write(|log| log.append(rest))
                .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        }
        self.set_hwm(leader_hwm);
        Ok(self.log.end_offset())
    }
}
