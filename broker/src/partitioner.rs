//! Which partition a record goes to.
//!
//! An explicit partition wins. A keyed record goes where Kafka's default
//! partitioner would put it: `toPositive(murmur2(key)) % partitions`, with
//! Kafka's seed, so keys land on the same partition numbers as in Kafka.
//! An unkeyed record from an idempotent producer goes to a partition derived
//! from its producer id and sequence (runs of `STICKY_RUN` sequences share a
//! partition), so a retried record always lands where the original did and
//! is caught by that partition's duplicate check. Other unkeyed records are
//! spread round-robin.

use std::sync::atomic::{AtomicU32, Ordering};

const KAFKA_SEED: u32 = 0x9747_b28c;
/// Consecutive sequences of one producer that go to the same partition.
pub const STICKY_RUN: u64 = 1024;

/// Kafka's `Utils.murmur2`, as a Java `int`.
pub fn murmur2(key: &[u8]) -> i32 {
    murmur2::murmur2(key, KAFKA_SEED) as i32
}

/// Kafka's partition for `key` among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

/// Chooses partitions for unkeyed records.
#[derive(Debug, Default)]
pub struct Spreader {
    next: AtomicU32,
}

impl Spreader {
    pub fn partition(&self, producer: Option<(u64, u64)>, partitions: u32) -> u32 {
        match producer {
            Some((id, sequence)) => {
                let run = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (sequence / STICKY_RUN);
                (run.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32 % partitions
            }
            None => self.next.fetch_add(1, Ordering::Relaxed) % partitions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keyed_partition_is_kafkas() {
        // toPositive(-973932308) = 1173551340; % 3 = 0, % 7 = 3.
        assert_eq!(partition_for_key(b"21", 3), 1_173_551_340 % 3);
        assert_eq!(partition_for_key(b"21", 7), 1_173_551_340 % 7);
    }

    #[test]
    fn idempotent_records_stick_and_others_rotate() {
        let s = Spreader::default();
        let a = s.partition(Some((42, 5)), 8);
        assert_eq!(a, s.partition(Some((42, 5)), 8));
        assert_eq!(a, s.partition(Some((42, 6)), 8), "same run");
        let spread: std::collections::BTreeSet<_> = (0..64)
            .map(|run| s.partition(Some((42, run * STICKY_RUN)), 8))
            .collect();
        assert!(spread.len() > 4, "runs spread over partitions: {spread:?}");
        let rr: Vec<_> = (0..6).map(|_| s.partition(None, 3)).collect();
        assert_eq!(rr, vec![0, 1, 2, 0, 1, 2]);
    }
}
