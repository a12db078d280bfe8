//! Idempotent-produce state of one partition: for each producer id, the
//! recent batches it wrote (first sequence, record count, base offset), so a
//! retried request gets its original offsets back instead of being stored
//! twice.
//!
//! Invariants: owned by the partition's writer task (no locking); rebuilt
//! from the log's batch headers when the node becomes leader; bounded in
//! batches per producer and in producers (least recently written evicted).

use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer.
const BATCHES_PER_PRODUCER: usize = 256;
/// Producers remembered per partition.
const MAX_PRODUCERS: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    first_sequence: u64,
    count: u32,
    base_offset: u64,
}

#[derive(Debug, Default)]
struct Producer {
    batches: VecDeque<Written>,
    last_offset: u64,
    /// The highest sequence end ever recorded: no batch starting there or
    /// later can be a retry, so the common case (a new batch) skips the
    /// scan of `batches`.
    sequence_end: u64,
}

/// What a batch from an idempotent producer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dedup {
    /// Never seen: append it.
    New,
    /// Already stored: these are the offsets of its records.
    Duplicate { base_offset: u64 },
    /// Its first sequence was seen but not all of it: a retry that does not
    /// match the original request. Nothing is stored.
    Conflict,
}

#[derive(Debug, Default)]
pub struct ProducerTable {
    producers: HashMap<u64, Producer>,
}

impl ProducerTable {
    pub fn check(&self, producer_id: u64, first_sequence: u64, count: u32) -> Dedup {
        let Some(producer) = self.producers.get(&producer_id) else {
            return Dedup::New;
        };
        if first_sequence >= producer.sequence_end {
            return Dedup::New;
        }
        let covering = producer.batches.iter().find(|w| {
            w.first_sequence <= first_sequence
                && first_sequence < w.first_sequence + u64::from(w.count)
        });
        match covering {
            None => Dedup::New,
            Some(w)
                if first_sequence + u64::from(count) <= w.first_sequence + u64::from(w.count) =>
            {
                Dedup::Duplicate {
                    base_offset: w.base_offset + (first_sequence - w.first_sequence),
                }
            }
            Some(_) => Dedup::Conflict,
        }
    }

    pub fn record(&mut self, producer_id: u64, first_sequence: u64, count: u32, base_offset: u64) {
        if !self.producers.contains_key(&producer_id) && self.producers.len() >= MAX_PRODUCERS {
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(_, p)| p.last_offset)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.producers.remove(&id);
            }
        }
        let producer = self.producers.entry(producer_id).or_default();
        if producer.batches.len() == BATCHES_PER_PRODUCER {
            producer.batches.pop_front();
        }
        producer.batches.push_back(Written {
            first_sequence,
            count,
            base_offset,
        });
        producer.last_offset = base_offset;
        producer.sequence_end = producer.sequence_end.max(first_sequence + u64::from(count));
    }

    pub fn clear(&mut self) {
        self.producers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_get_their_original_offsets() {
        let mut t = ProducerTable::default();
        assert_eq!(t.check(1, 0, 3), Dedup::New);
        t.record(1, 0, 3, 100);
        t.record(1, 3, 2, 200);
        assert_eq!(t.check(1, 0, 3), Dedup::Duplicate { base_offset: 100 });
        assert_eq!(t.check(1, 1, 2), Dedup::Duplicate { base_offset: 101 });
        assert_eq!(t.check(1, 3, 2), Dedup::Duplicate { base_offset: 200 });
        assert_eq!(t.check(1, 2, 2), Dedup::Conflict);
        assert_eq!(t.check(1, 5, 1), Dedup::New);
        assert_eq!(t.check(2, 0, 3), Dedup::New, "other producers are separate");
    }

    /// A producer whose sequences went back (its batches are not in
    /// sequence order) still has every remembered batch found.
    #[test]
    fn batches_out_of_sequence_order_are_found() {
        let mut t = ProducerTable::default();
        t.record(1, 10, 5, 100);
        t.record(1, 0, 5, 200);
        assert_eq!(t.check(1, 12, 1), Dedup::Duplicate { base_offset: 102 });
        assert_eq!(t.check(1, 0, 5), Dedup::Duplicate { base_offset: 200 });
        assert_eq!(t.check(1, 5, 5), Dedup::New);
        assert_eq!(t.check(1, 15, 1), Dedup::New);
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = ProducerTable::default();
        for i in 0..(BATCHES_PER_PRODUCER as u64 + 10) {
            t.record(1, i, 1, i);
        }
        assert_eq!(t.check(1, 0, 1), Dedup::New, "oldest batch forgotten");
        assert!(
            matches!(t.check(1, 265, 1), Dedup::Duplicate { .. }),
            "newest kept"
        );
        for id in 0..(MAX_PRODUCERS as u64 + 5) {
            t.record(id + 10, 0, 1, 1000 + id);
        }
        assert_eq!(t.producers.len(), MAX_PRODUCERS);
    }
}
