//! The assignors: which member of a group reads which partition.
//!
//! Pure functions of the members (their subscriptions and what they held
//! in the last generation) and the subscribed topics' partition counts.
//!
//! Invariants (checked by the property tests below): every partition of a
//! subscribed topic goes to exactly one member, and only to a member
//! subscribed to its topic; members with the same subscriptions get counts
//! that differ by at most one. The sticky assignor moves a partition only
//! when the spread would otherwise be uneven.

use std::collections::{BTreeMap, BTreeSet};

use yak_protocol::group::{Assignor, TopicPartition};

/// What the assignor knows of one member.
#[derive(Debug, Clone, Default)]
pub struct Candidate<'a> {
    pub topics: &'a [String],
    /// What it held in the last generation.
    pub held: &'a [TopicPartition],
}

/// Member id → its partitions, each list sorted.
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Spreads the partitions of `partitions` (topic → count) over `members`.
pub fn assign(
    assignor: Assignor,
    members: &BTreeMap<String, Candidate<'_>>,
    partitions: &BTreeMap<String, u32>,
) -> Assignment {
    let mut out: Assignment = members.keys().map(|m| (m.clone(), Vec::new())).collect();
    match assignor {
        Assignor::Range => range(members, partitions, &mut out),
        Assignor::RoundRobin => round_robin(members, partitions, &mut out),
        Assignor::Sticky => sticky(members, partitions, &mut out),
    }
    for held in out.values_mut() {
        held.sort();
    }
    out
}

fn subscribers<'m>(members: &'m BTreeMap<String, Candidate<'_>>, topic: &str) -> Vec<&'m String> {
    members
        .iter()
        .filter(|(_, c)| c.topics.iter().any(|t| t == topic))
        .map(|(id, _)| id)
        .collect()
}

/// Each topic's partitions in consecutive ranges over its subscribers in
/// id order; the first `count % subscribers` get one more.
fn range(
    members: &BTreeMap<String, Candidate<'_>>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    for (topic, &count) in partitions {
        let subs = subscribers(members, topic);
        if subs.is_empty() {
            continue;
        }
        let (each, extra) = (count as usize / subs.len(), count as usize % subs.len());
        let mut next = 0u32;
        for (i, member) in subs.into_iter().enumerate() {
            let take = each + usize::from(i < extra);
            for p in next..next + take as u32 {
                out.get_mut(member)
                    .expect("every member has an entry")
                    .push(TopicPartition::new(topic, p));
            }
            next += take as u32;
        }
    }
}

/// Every partition, in topic then partition order, dealt in turn to the
/// next member (in id order) subscribed to its topic.
fn round_robin(
    members: &BTreeMap<String, Candidate<'_>>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    let ids: Vec<&String> = members.keys().collect();
    let mut turn = 0usize;
    for (topic, &count) in partitions {
        for p in 0..count {
            for step in 0..ids.len() {
                let id = ids[(turn + step) % ids.len()];
                if members[id].topics.iter().any(|t| t == topic) {
                    out.get_mut(id)
                        .expect("every member has an entry")
                        .push(TopicPartition::new(topic, p));
                    turn = (turn + step + 1) % ids.len();
                    break;
                }
            }
        }
    }
}

/// Keeps what each member held (where it still subscribes and the
/// partition still exists), gives the rest to the least loaded subscriber,
/// then moves partitions from the most to the least loaded member that can
/// take them until no move evens the spread further.
fn sticky(
    members: &BTreeMap<String, Candidate<'_>>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    let exists = |tp: &TopicPartition| partitions.get(&tp.topic).is_some_and(|&n| tp.partition < n);
    let subscribed = |id: &str, topic: &str| members[id].topics.iter().any(|t| t == topic);
    let mut taken = BTreeSet::new();
    for (id, candidate) in members {
        for tp in candidate.held {
            if exists(tp) && subscribed(id, &tp.topic) && taken.insert(tp.clone()) {
                out.get_mut(id)
                    .expect("every member has an entry")
                    .push(tp.clone());
            }
        }
    }
    for (topic, &count) in partitions {
        for p in 0..count {
            let tp = TopicPartition::new(topic, p);
            if taken.contains(&tp) {
                continue;
            }
            let least = out
                .iter()
                .filter(|(id, _)| subscribed(id, topic))
                .min_by_key(|(id, held)| (held.len(), (*id).clone()))
                .map(|(id, _)| id.clone());
            if let Some(id) = least {
                taken.insert(tp.clone());
                out.get_mut(&id)
                    .expect("every member has an entry")
                    .push(tp);
            }
        }
    }
    // Each move lowers the sum of squared counts, so this ends.
    loop {
        let mut best: Option<(String, String, usize)> = None;
        for (from, held) in out.iter() {
            for (i, tp) in held.iter().enumerate() {
                let to = out
                    .iter()
                    .filter(|(id, h)| subscribed(id, &tp.topic) && h.len() + 1 < held.len())
                    .min_by_key(|(id, h)| (h.len(), (*id).clone()))
                    .map(|(id, _)| id.clone());
                let Some(to) = to else { continue };
                let gain = held.len() - out[&to].len();
                // The move from the fullest member, its last partition.
                if best.as_ref().is_none_or(|(_, _, g)| gain >= *g) {
                    best = Some((from.clone(), to, i));
                }
            }
        }
        let Some((from, to, i)) = best else { break };
        let tp = out.get_mut(&from).expect("a member").remove(i);
        out.get_mut(&to).expect("a member").push(tp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topics(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn run(
        assignor: Assignor,
        subs: &[(&str, Vec<String>, Vec<TopicPartition>)],
        partitions: &[(&str, u32)],
    ) -> Assignment {
        let members = subs
            .iter()
            .map(|(id, topics, held)| (id.to_string(), Candidate { topics, held }))
            .collect();
        let partitions = partitions
            .iter()
            .map(|(t, n)| (t.to_string(), *n))
            .collect();
        assign(assignor, &members, &partitions)
    }

    fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
        list.iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect()
    }

    #[test]
    fn range_gives_consecutive_ranges_and_the_first_members_the_extra() {
        let t = topics(&["a"]);
        let out = run(
            Assignor::Range,
            &[("m1", t.clone(), vec![]), ("m2", t.clone(), vec![])],
            &[("a", 5)],
        );
        assert_eq!(out["m1"], tps(&[("a", 0), ("a", 1), ("a", 2)]));
        assert_eq!(out["m2"], tps(&[("a", 3), ("a", 4)]));
    }

    #[test]
    fn round_robin_deals_partitions_in_turn() {
        let t = topics(&["a", "b"]);
        let out = run(
            Assignor::RoundRobin,
            &[("m1", t.clone(), vec![]), ("m2", t.clone(), vec![])],
            &[("a", 3), ("b", 1)],
        );
        assert_eq!(out["m1"], tps(&[("a", 0), ("a", 2)]));
        assert_eq!(out["m2"], tps(&[("a", 1), ("b", 0)]));
    }

    #[test]
    fn sticky_keeps_what_members_held_when_one_leaves() {
        let t = topics(&["a"]);
        let held = |l: &[u32]| {
            l.iter()
                .map(|p| TopicPartition::new("a", *p))
                .collect::<Vec<_>>()
        };
        // m3 (which held 4 and 5) is gone: only its partitions move.
        let out = run(
            Assignor::Sticky,
            &[
                ("m1", t.clone(), held(&[0, 1])),
                ("m2", t.clone(), held(&[2, 3])),
            ],
            &[("a", 6)],
        );
        assert!(held(&[0, 1]).iter().all(|tp| out["m1"].contains(tp)));
        assert!(held(&[2, 3]).iter().all(|tp| out["m2"].contains(tp)));
        assert_eq!((out["m1"].len(), out["m2"].len()), (3, 3));
    }

    #[test]
    fn sticky_moves_only_the_surplus_to_a_new_member() {
        let t = topics(&["a"]);
        let all: Vec<_> = (0..4).map(|p| TopicPartition::new("a", p)).collect();
        let out = run(
            Assignor::Sticky,
            &[("m1", t.clone(), all.clone()), ("m2", t.clone(), vec![])],
            &[("a", 4)],
        );
        assert_eq!(out["m1"].len(), 2);
        assert_eq!(out["m2"].len(), 2);
        assert!(out["m1"].iter().all(|tp| all.contains(tp)));
    }

    #[test]
    fn a_partition_goes_only_to_a_member_subscribed_to_its_topic() {
        for assignor in [Assignor::Sticky, Assignor::Range, Assignor::RoundRobin] {
            let out = run(
                assignor,
                &[
                    ("m1", topics(&["a"]), vec![]),
                    ("m2", topics(&["b"]), vec![]),
                ],
                &[("a", 2), ("b", 2)],
            );
            assert_eq!(out["m1"], tps(&[("a", 0), ("a", 1)]), "{assignor}");
            assert_eq!(out["m2"], tps(&[("b", 0), ("b", 1)]), "{assignor}");
        }
    }

    proptest! {
        #[test]
        fn every_partition_has_exactly_one_subscribed_owner_and_the_spread_is_even(
            members in 1usize..6,
            counts in proptest::collection::vec(1u32..9, 1..4),
            held_seed in proptest::collection::vec(0usize..6, 0..30),
            assignor in prop_oneof![Just(Assignor::Sticky), Just(Assignor::Range), Just(Assignor::RoundRobin)],
        ) {
            let names: Vec<String> = (0..counts.len()).map(|i| format!("t{i}")).collect();
            let partitions: BTreeMap<String, u32> =
                names.iter().cloned().zip(counts.iter().copied()).collect();
            // What members held before: arbitrary, possibly overlapping or stale.
            let mut held: Vec<Vec<TopicPartition>> = vec![Vec::new(); members];
            for (i, m) in held_seed.iter().enumerate() {
                let topic = &names[i % names.len()];
                held[m % members].push(TopicPartition::new(topic.clone(), (i as u32) % 10));
            }
            let ids: Vec<String> = (0..members).map(|i| format!("m{i}")).collect();
            let candidates: BTreeMap<String, Candidate<'_>> = ids
                .iter()
                .zip(&held)
                .map(|(id, held)| (id.clone(), Candidate { topics: &names, held }))
                .collect();
            let out = assign(assignor, &candidates, &partitions);
            let mut owners = BTreeMap::new();
            for (id, list) in &out {
                for tp in list {
                    prop_assert!(owners.insert(tp.clone(), id.clone()).is_none(), "{tp} twice");
                }
            }
            let total: u32 = counts.iter().sum();
            prop_assert_eq!(owners.len(), total as usize);
            // Same subscriptions everywhere: counts within one of each other
            // (range balances per topic, so over topics it may differ more).
            if assignor != Assignor::Range {
                let sizes: Vec<usize> = out.values().map(Vec::len).collect();
                prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
            }
        }
    }
}
