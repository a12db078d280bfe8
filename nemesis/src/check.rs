//! The nine checks of a run, over its history and what the nodes hold once
//! the faults are healed. Pure: no I/O, so each check is tested on
//! hand-made histories.
//!
//! 1. Every acknowledged write is read back at its offset with its payload.
//! 2. One payload per (partition, offset) across acknowledgements, consumer
//!    reads and every node's log.
//! 3. No gaps below the HWM.
//! 4. No duplicates (the producers are idempotent; a retried unknown write
//!    is stored at most once).
//! 5. A write whose error said it was not written is never visible.
//! 6. The HWM in Redis never goes down; a consumer's reads continue
//!    exactly where the last one ended.
//! 7. No acknowledgement from a deposed epoch after the next epoch began.
//! 8. After healing, the in-sync nodes are byte-identical up to the HWM.
//! 9. A leader exists within 2 × lease TTL + 5 s after the faults heal.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    time::Duration,
};

use partition_log::BatchHeader;

use crate::history::{Event, Op, Outcome, Transport};

/// Which check a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    AckedReadBack = 1,
    OnePayload = 2,
    NoGaps = 3,
    NoDuplicates = 4,
    FailedInvisible = 5,
    Monotonic = 6,
    NoDeposedAck = 7,
    IdenticalLogs = 8,
    LeaderElected = 9,
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub check: Check,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "check {} ({:?}): {}",
            self.check as u8, self.check, self.message
        )
    }
}

/// What one node holds of one partition after healing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePartition {
    /// Its committed records read through `GET /consume`, in order
    /// (offset, payload); `None` if they could not be read.
    pub records: Option<Vec<(u64, String)>>,
    /// Its log files, concatenated.
    pub log: Vec<u8>,
}

/// What the cluster holds after healing.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// Per partition: the HWM in Redis.
    pub hwm: Vec<u64>,
    /// Per partition: the ids of the in-sync replicas in Redis.
    pub isr: Vec<Vec<String>>,
    /// Per node id, per partition.
    pub nodes: BTreeMap<String, Vec<NodePartition>>,
    /// How long after healing a leader was acknowledging writes (`None`:
    /// never, within the wait).
    pub leader_after_heal: Option<Duration>,
    /// The deadline of check 9.
    pub leader_deadline: Duration,
}

/// The outcome of the checks.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub acked: u64,
    /// Acknowledged writes per transport.
    pub acked_by: BTreeMap<Transport, u64>,
    pub unknown: u64,
    pub failed: u64,
    /// Acknowledged writes not read back at their offset.
    pub lost: u64,
    /// (partition, offset)s holding different payloads somewhere.
    pub inconsistent: u64,
    /// Payloads stored more than once.
    pub duplicates: u64,
    /// The longest time without any acknowledgement, between the first
    /// and the last one.
    pub longest_unavailability: Duration,
}

impl Report {
    fn violation(&mut self, check: Check, message: String) {
        self.violations.push(Violation { check, message });
    }
}

/// The byte length of the batches of `log` below offset `hwm`, or `None`
/// if the log ends (or stops parsing) before it, or `hwm` falls inside a
/// batch.
pub fn prefix_len(log: &[u8], hwm: u64) -> Option<usize> {
    let mut pos = 0;
    let mut next = 0;
    while next < hwm {
        let header = BatchHeader::parse(log.get(pos..)?).ok()?;
        next = header.base_offset + u64::from(header.record_count);
        pos += header.total_len();
        if pos > log.len() {
            return None;
        }
    }
    (next == hwm).then_some(pos)
}

/// Runs every check.
pub fn check(events: &[Event], state: &FinalState) -> Report {
    let mut report = Report::default();
    let ops: Vec<&Op> = events
        .iter()
        .filter_map(|e| match e {
            Event::Op(op) => Some(op),
            _ => None,
        })
        .collect();
    for op in &ops {
        match op.outcome {
            Outcome::Ok => {
                report.acked += 1;
                *report.acked_by.entry(op.transport).or_insert(0) += 1;
            }
            Outcome::Unknown => report.unknown += 1,
            Outcome::Fail => report.failed += 1,
        }
    }

    // What the nodes hold: (partition, offset) → payload, from every node,
    // with conflicts between nodes (check 2) and gaps (check 3).
    let mut stored: HashMap<(u32, u64), &str> = HashMap::new();
    let mut inconsistent = std::collections::HashSet::new();
    for (node, partitions) in &state.nodes {
        for (p, held) in partitions.iter().enumerate() {
            let p = p as u32;
            let Some(records) = &held.records else {
                continue;
            };
            for (i, (offset, payload)) in records.iter().enumerate() {
                if *offset != i as u64 {
                    report.violation(
                        Check::NoGaps,
                        format!("{node} partition {p}: record {i} has offset {offset}"),
                    );
                    break;
                }
                let first = *stored.entry((p, *offset)).or_insert(payload);
                if first != payload && inconsistent.insert((p, *offset)) {
                    report.violation(
                        Check::OnePayload,
                        format!("partition {p} offset {offset}: {first} on one node, {payload} on {node}"),
                    );
                }
            }
        }
    }
    for (p, &hwm) in state.hwm.iter().enumerate() {
        if let Some(missing) = (0..hwm).find(|o| !stored.contains_key(&(p as u32, *o))) {
            report.violation(
                Check::NoGaps,
                format!(
                    "partition {p}: offset {missing} is below the HWM {hwm} but no node serves it"
                ),
            );
        }
    }

    // Check 1 and 2 for acknowledgements.
    let mut acked_at: HashMap<(u32, u64), &str> = HashMap::new();
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let Some(offset) = op.offset else {
            report.violation(
                Check::AckedReadBack,
                format!("{} acknowledged without an offset", op.payload),
            );
            continue;
        };
        let key = (op.partition, offset);
        match stored.get(&key) {
            Some(&payload) if payload == op.payload => {}
            Some(&payload) => {
                report.lost += 1;
                report.violation(
                    Check::AckedReadBack,
                    format!(
                        "{} acknowledged at {}/{offset}, which holds {payload}",
                        op.payload, op.partition
                    ),
                );
            }
            None => {
                report.lost += 1;
                report.violation(
                    Check::AckedReadBack,
                    format!(
                        "{} acknowledged at {}/{offset} (epoch {:?}) is not stored",
                        op.payload, op.partition, op.epoch
                    ),
                );
            }
        }
        if let Some(other) = acked_at.insert(key, &op.payload)
            && other != op.payload
            && inconsistent.insert(key)
        {
            report.violation(
                Check::OnePayload,
                format!(
                    "{} and {other} both acknowledged at {}/{offset}",
                    op.payload, op.partition
                ),
            );
        }
    }

    // Consumer reads (2, 4, 6).
    let mut read_offsets: HashMap<&str, (u32, u64)> = HashMap::new();
    let mut reported_dups = std::collections::HashSet::new();
    for event in events {
        match event {
            Event::Read(read) => {
                let key = (read.partition, read.offset);
                if let Some(&payload) = stored.get(&key)
                    && payload != read.payload
                    && inconsistent.insert(key)
                {
                    report.violation(
                        Check::OnePayload,
                        format!(
                            "a consumer read {} at {}/{}, the nodes hold {payload}",
                            read.payload, read.partition, read.offset
                        ),
                    );
                }
                if let Some(&other) = read_offsets.get(read.payload.as_str())
                    && other != key
                    && reported_dups.insert(read.payload.as_str())
                {
                    report.violation(
                        Check::NoDuplicates,
                        format!(
                            "a consumer read {} at {other:?} and at {key:?}",
                            read.payload
                        ),
                    );
                }
                read_offsets.insert(&read.payload, key);
            }
            Event::Discontinuity {
                partition, message, ..
            } => report.violation(
                Check::Monotonic,
                format!("consumer of partition {partition}: {message}"),
            ),
            _ => {}
        }
    }

    // Check 4 on what is stored.
    let mut where_stored: HashMap<&str, (u32, u64)> = HashMap::new();
    for (&key, &payload) in &stored {
        if let Some(other) = where_stored.insert(payload, key) {
            report.duplicates += 1;
            report.violation(
                Check::NoDuplicates,
                format!("{payload} is stored at {other:?} and at {key:?}"),
            );
        }
    }

    // Check 5.
    for op in ops.iter().filter(|o| o.outcome == Outcome::Fail) {
        if let Some(at) = where_stored
            .get(op.payload.as_str())
            .or_else(|| read_offsets.get(op.payload.as_str()))
        {
            report.violation(
                Check::FailedInvisible,
                format!(
                    "{} failed with {:?} but is stored at {at:?}",
                    op.payload, op.error
                ),
            );
        }
    }

    // Check 6: the HWM in Redis.
    let mut hwms: HashMap<u32, u64> = HashMap::new();
    for event in events {
        if let Event::Hwm {
            at_ms,
            partition,
            hwm,
        } = event
        {
            let last = hwms.insert(*partition, *hwm).unwrap_or(0);
            if *hwm < last {
                report.violation(
                    Check::Monotonic,
                    format!("the HWM of partition {partition} went from {last} down to {hwm} at {at_ms} ms"),
                );
            }
        }
    }

    check_epochs(&ops, events, &mut report);
    check_logs(state, &mut report);

    match state.leader_after_heal {
        Some(took) if took <= state.leader_deadline => {}
        took => report.violation(
            Check::LeaderElected,
            format!(
                "no leader within {:?} of healing (took {took:?})",
                state.leader_deadline
            ),
        ),
    }

    report.inconsistent = inconsistent.len() as u64;
    let mut acks: Vec<u64> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.complete_ms)
        .collect();
    acks.sort_unstable();
    report.longest_unavailability =
        Duration::from_millis(acks.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0));
    report
}

/// Check 7: an epoch `E` has begun by the time it was first seen in Redis
/// or first acknowledged a write. A write invoked after a later epoch
/// began and acknowledged at `E` was committed by a deposed leader.
fn check_epochs(ops: &[&Op], events: &[Event], report: &mut Report) {
    let mut began: BTreeMap<u64, u64> = BTreeMap::new();
    let mut note = |epoch: u64, at: u64| {
        let t = began.entry(epoch).or_insert(at);
        *t = (*t).min(at);
    };
    for event in events {
        if let Event::Epoch { at_ms, epoch } = event {
            note(*epoch, *at_ms);
        }
    }
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        if let Some(epoch) = op.epoch {
            note(epoch, op.complete_ms);
        }
    }
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let Some(epoch) = op.epoch else { continue };
        let next = began.range(epoch + 1..).map(|(&e, &t)| (t, e)).min();
        if let Some((at, newer)) = next
            && op.invoke_ms > at
        {
            report.violation(
                Check::NoDeposedAck,
                format!(
                    "{} invoked at {} ms was acknowledged at epoch {epoch}, but epoch {newer} began by {at} ms",
                    op.payload, op.invoke_ms
                ),
            );
        }
    }
}

/// Check 8 over the in-sync replicas in Redis.
fn check_logs(state: &FinalState, report: &mut Report) {
    for (p, (&hwm, isr)) in state.hwm.iter().zip(&state.isr).enumerate() {
        let mut reference: Option<(&str, &[u8])> = None;
        for id in isr {
            let Some(held) = state.nodes.get(id).and_then(|n| n.get(p)) else {
                continue;
            };
            let Some(len) = prefix_len(&held.log, hwm) else {
                report.violation(
                    Check::IdenticalLogs,
                    format!("{id} is in the ISR of partition {p} but its log does not reach the HWM {hwm}"),
                );
                continue;
            };
            let prefix = &held.log[..len];
            match reference {
                None => reference = Some((id, prefix)),
                Some((other, bytes)) if bytes != prefix => report.violation(
                    Check::IdenticalLogs,
                    format!(
                        "partition {p}: {other} and {id} differ below the HWM {hwm} (first at byte {:?})",
                        bytes.iter().zip(prefix).position(|(a, b)| a != b)
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use partition_log::BatchBuilder;

    use super::*;

    fn op(
        payload: &str,
        partition: u32,
        outcome: Outcome,
        offset: Option<u64>,
        epoch: Option<u64>,
        invoke: u64,
    ) -> Event {
        Event::Op(Op {
            invoke_ms: invoke,
            complete_ms: invoke + 5,
            client: 0,
            transport: Transport::Http,
            partition,
            payload: payload.into(),
            outcome,
            offset,
            epoch,
            error: None,
        })
    }

    fn state(records: &[&str]) -> FinalState {
        let held = NodePartition {
            records: Some(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i as u64, p.to_string()))
                    .collect(),
            ),
            log: Vec::new(),
        };
        FinalState {
            hwm: vec![records.len() as u64],
            isr: vec![vec![]],
            nodes: BTreeMap::from([
                ("a".to_owned(), vec![held.clone()]),
                ("b".to_owned(), vec![held]),
            ]),
            leader_after_heal: Some(Duration::from_secs(1)),
            leader_deadline: Duration::from_secs(9),
        }
    }

    fn checks(report: &Report) -> Vec<Check> {
        report.violations.iter().map(|v| v.check).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let events = vec![
            op("x", 0, Outcome::Ok, Some(0), Some(1), 0),
            op("y", 0, Outcome::Unknown, None, None, 10),
            op("z", 0, Outcome::Fail, None, None, 20),
            Event::Hwm {
                at_ms: 1,
                partition: 0,
                hwm: 1,
            },
            Event::Hwm {
                at_ms: 2,
                partition: 0,
                hwm: 2,
            },
        ];
        let report = check(&events, &state(&["x", "y"]));
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!((report.acked, report.unknown, report.failed), (1, 1, 1));
    }

    #[test]
    fn each_broken_invariant_is_reported() {
        // 1: lost ack; 4: duplicate; 5: failed write visible.
        let events = vec![
            op("x", 0, Outcome::Ok, Some(5), Some(1), 0),
            op("z", 0, Outcome::Fail, None, None, 20),
        ];
        let report = check(&events, &state(&["y", "y", "z"]));
        let found = checks(&report);
        for c in [
            Check::AckedReadBack,
            Check::NoDuplicates,
            Check::FailedInvisible,
        ] {
            assert!(found.contains(&c), "{c:?} missing from {found:?}");
        }
        assert_eq!(report.lost, 1);

        // 2 and 3: nodes disagree, one has a gap.
        let mut s = state(&["x", "y"]);
        s.nodes.get_mut("b").unwrap()[0].records = Some(vec![(0, "w".into()), (2, "y".into())]);
        let found = checks(&check(&[], &s));
        assert!(
            found.contains(&Check::OnePayload) && found.contains(&Check::NoGaps),
            "{found:?}"
        );

        // 6: the HWM goes down; 9: no leader in time.
        let mut s = state(&["x", "y"]);
        s.leader_after_heal = None;
        let events = vec![
            Event::Hwm {
                at_ms: 1,
                partition: 0,
                hwm: 2,
            },
            Event::Hwm {
                at_ms: 2,
                partition: 0,
                hwm: 1,
            },
        ];
        let found = checks(&check(&events, &s));
        assert!(
            found.contains(&Check::Monotonic) && found.contains(&Check::LeaderElected),
            "{found:?}"
        );
    }

    #[test]
    fn an_ack_from_a_deposed_epoch_is_reported() {
        let events = vec![
            Event::Epoch { at_ms: 0, epoch: 1 },
            op("x", 0, Outcome::Ok, Some(0), Some(1), 0),
            Event::Epoch {
                at_ms: 100,
                epoch: 2,
            },
            // Invoked after epoch 2 began, acknowledged at epoch 1.
            op("y", 0, Outcome::Ok, Some(1), Some(1), 150),
        ];
        let report = check(&events, &state(&["x", "y"]));
        assert_eq!(checks(&report), vec![Check::NoDeposedAck]);
        // Invoked before: fine (the answer was only slow).
        let events = vec![
            Event::Epoch {
                at_ms: 100,
                epoch: 2,
            },
            op("y", 0, Outcome::Ok, Some(1), Some(1), 90),
        ];
        assert!(check(&events, &state(&["x", "y"])).violations.is_empty());
    }

    fn batch(base: u64, payloads: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::new(0);
        for p in payloads {
            b.push(0, None, p.as_bytes());
        }
        let mut bytes = b.finish();
        partition_log::batch::stamp(&mut bytes, base, 1);
        bytes
    }

    #[test]
    fn logs_are_compared_up_to_the_hwm() {
        let mut log = batch(0, &["a", "b"]);
        log.extend(batch(2, &["c"]));
        assert_eq!(prefix_len(&log, 0), Some(0));
        assert_eq!(prefix_len(&log, 2), Some(batch(0, &["a", "b"]).len()));
        assert_eq!(prefix_len(&log, 3), Some(log.len()));
        assert_eq!(prefix_len(&log, 1), None, "inside a batch");
        assert_eq!(prefix_len(&log, 4), None, "beyond the log");

        let mut s = state(&["a", "b"]);
        s.hwm = vec![2];
        s.isr = vec![vec!["a".into(), "b".into()]];
        s.nodes.get_mut("a").unwrap()[0].log = log.clone();
        let mut other = batch(0, &["a", "b"]);
        s.nodes.get_mut("b").unwrap()[0].log = other.clone();
        assert!(
            check(&[], &s).violations.is_empty(),
            "the tail past the HWM may differ"
        );
        other[20] ^= 1;
        s.nodes.get_mut("b").unwrap()[0].log = other;
        assert_eq!(checks(&check(&[], &s)), vec![Check::IdenticalLogs]);
    }
}
