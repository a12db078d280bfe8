//! The producer id of one input partition: what makes the filter's output
//! exactly-once.
//!
//! Every process that ever reads input partition `p` of topic `t` for group
//! `g` writes its output with the same producer id, [`derive`]`(g, t, p)`,
//! and numbers each output record with its input record's offset. A replay
//! of an input record (by the next owner after a crash, by a zombie, by a
//! client retry) therefore sends the same (producer id, sequence) pair, and
//! the leader drops it as a duplicate (docs/groups.md, "Exactly-once
//! output").
//!
//! Invariants:
//! - **Stable**: the same inputs give the same id in every process, build
//!   and release, so it is FNV-1a (64-bit) written out here — std's
//!   `DefaultHasher` may change between Rust releases, which would make
//!   replays after an upgrade look new. [`tests::the_derivation_is_pinned`]
//!   fails if it ever changes.
//! - **In range**: 1 ..= 2⁶³−1; the broker keeps producer ids as
//!   non-negative 64-bit integers, and 0 is left out so an id is never
//!   mistaken for "none".
//! - **Injective input**: the bytes hashed are `group/topic/partition`;
//!   group and topic names cannot contain `/`, so two different triples
//!   never hash the same bytes.

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The producer id for output derived from `partition` of `topic`, read by
/// `group`.
pub fn derive(group: &str, topic: &str, partition: u32) -> u64 {
    let identity = format!("{group}/{topic}/{partition}");
    let hash = identity.bytes().fold(FNV_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    });
    match hash & i64::MAX as u64 {
        0 => 1,
        id => id,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Changing these values changes every pipeline's producer ids: output
    /// replayed across the change would be stored twice.
    #[test]
    fn the_derivation_is_pinned() {
        assert_eq!(
            derive("invoice-filters", "invoices.all", 0),
            0x0e29_9ac1_4755_fd65
        );
        assert_eq!(
            derive("invoice-filters", "invoices.all", 2),
            0x0e29_98c1_4755_f9ff
        );
    }

    #[test]
    fn fnv_matches_its_reference_vectors() {
        // FNV-1a 64 of "" and "a" (the published test vectors), masked to
        // 63 bits as `derive` does.
        let fnv = |s: &str| {
            s.bytes().fold(FNV_OFFSET_BASIS, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
            })
        };
        assert_eq!(fnv(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn ids_are_in_range_and_distinct_per_partition() {
        let mut seen = BTreeSet::new();
        for group in ["invoice-filters", "g", "invoice-filters-2"] {
            for topic in ["invoices.all", "orders", "a"] {
                for partition in 0..64 {
                    let id = derive(group, topic, partition);
                    assert!((1..=i64::MAX as u64).contains(&id), "{id}");
                    assert!(seen.insert(id), "{group}/{topic}/{partition} collides");
                    assert_eq!(id, derive(group, topic, partition), "deterministic");
                }
            }
        }
    }
}
