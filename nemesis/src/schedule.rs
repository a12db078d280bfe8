//! The seeded fault scheduler: which fault comes next, with which
//! parameters, after how long a gap. Every choice comes from one
//! ChaCha8 generator seeded with the run's seed, so the same seed gives the
//! same sequence of decisions (the timing of the cluster's reactions is of
//! course not reproducible).

use std::{ops::Range, time::Duration};

use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;

use crate::{
    cluster::TailDamage,
    faults::{End, Fault, FaultKind, Role},
    proxy::{DEFAULT_DELAY, LinkMode},
};

/// Decides faults from a seed.
#[derive(Debug, Clone)]
pub struct Schedule {
    rng: ChaCha8Rng,
    kinds: Vec<FaultKind>,
    gap: Range<Duration>,
    lease_ttl: Duration,
}

impl Schedule {
    /// A schedule drawing from `kinds` (all if empty), with gaps in `gap`
    /// between faults; pause and outage lengths are relative to
    /// `lease_ttl`.
    pub fn new(seed: u64, kinds: &[FaultKind], gap: Range<Duration>, lease_ttl: Duration) -> Self {
        let kinds = if kinds.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            kinds.to_vec()
        };
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            kinds,
            gap,
            lease_ttl,
        }
    }

    /// The generator, also used while faults run (choosing a follower,
    /// where to damage a log).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// How long to wait before the next fault.
    pub fn gap(&mut self) -> Duration {
        if self.gap.is_empty() {
            return self.gap.start;
        }
        self.rng.random_range(self.gap.clone())
    }

    /// The next fault.
    pub fn next_fault(&mut self) -> Fault {
        let kind = *self.kinds.choose(&mut self.rng).expect("at least one kind");
        self.fault(kind)
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        self.rng.random_range(low..high)
    }

    /// A fault of `kind` with random parameters.
    pub fn fault(&mut self, kind: FaultKind) -> Fault {
        let ttl = self.lease_ttl;
        let down = self.between(Duration::from_millis(500), ttl * 3);
        let hold = self.between(ttl, ttl * 3);
        let kill = |role, damage| Fault::Kill { role, down, damage };
        let leader = End::Role(Role::Leader);
        let follower = End::Role(Role::Follower);
        match kind {
            FaultKind::KillLeader => kill(Role::Leader, None),
            FaultKind::KillFollower => kill(Role::Follower, None),
            FaultKind::KillRedis => Fault::KillRedis { down },
            FaultKind::PauseLeaderShort => Fault::Pause {
                role: Role::Leader,
                hold: self.between(ttl / 10, ttl / 2),
            },
            FaultKind::PauseLeaderLong => Fault::Pause {
                role: Role::Leader,
                hold: self.between(ttl * 3 / 2, ttl * 4),
            },
            FaultKind::PauseFollower => Fault::Pause {
                role: Role::Follower,
                hold,
            },
            FaultKind::PauseRedis => Fault::PauseRedis { hold },
            FaultKind::PartitionLeader => Fault::Links {
                // With two followers, the one not chosen stays reachable
                // from the leader: a partial partition.
                links: vec![(leader, follower), (follower, leader)],
                mode: LinkMode::Drop,
                hold,
            },
            FaultKind::CutLeaderRedis => Fault::Links {
                links: vec![(leader, End::Redis)],
                mode: *[LinkMode::Drop, LinkMode::Reset]
                    .choose(&mut self.rng)
                    .expect("non-empty"),
                hold,
            },
            FaultKind::CutClientsLeader => Fault::Links {
                links: vec![(End::Clients, leader)],
                mode: LinkMode::Drop,
                hold,
            },
            FaultKind::CutOneWay => {
                let link = if self.rng.random_bool(0.5) {
                    (leader, follower)
                } else {
                    (follower, leader)
                };
                Fault::Links {
                    links: vec![link],
                    mode: LinkMode::Drop,
                    hold,
                }
            }
            FaultKind::DelayLinks => Fault::Links {
                links: vec![
                    (leader, follower),
                    (follower, leader),
                    (leader, End::Redis),
                    (End::Clients, leader),
                ],
                mode: LinkMode::Delay(self.between(DEFAULT_DELAY / 3, DEFAULT_DELAY * 2)),
                hold,
            },
            FaultKind::ResetLinks => {
                let ends = [End::Clients, leader, follower, End::Redis];
                let (a, b) = loop {
                    let a = *ends.choose(&mut self.rng).expect("non-empty");
                    let b = *ends.choose(&mut self.rng).expect("non-empty");
                    // Clients never talk to Redis; a link needs two ends.
                    let pair = [a, b];
                    if a != b && !(pair.contains(&End::Clients) && pair.contains(&End::Redis)) {
                        break (a, b);
                    }
                };
                Fault::Links {
                    links: vec![(a, b), (b, a)],
                    mode: LinkMode::Reset,
                    hold,
                }
            }
            FaultKind::TornTail | FaultKind::BitFlipTail => {
                let role = if self.rng.random_bool(0.5) {
                    Role::Leader
                } else {
                    Role::Follower
                };
                let damage = if kind == FaultKind::TornTail {
                    TailDamage::Torn
                } else {
                    TailDamage::BitFlip
                };
                kill(role, Some(damage))
            }
            FaultKind::DoubleFailover => Fault::DoubleFailover { down },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(seed: u64) -> Vec<String> {
        let mut s = Schedule::new(
            seed,
            &[],
            Duration::from_secs(5)..Duration::from_secs(15),
            Duration::from_secs(2),
        );
        (0..50)
            .map(|_| format!("{:?} {}", s.gap(), s.next_fault()))
            .collect()
    }

    #[test]
    fn same_seed_same_faults_other_seed_others() {
        assert_eq!(decisions(7), decisions(7));
        assert_ne!(decisions(7), decisions(8));
    }

    #[test]
    fn gaps_stay_in_range_and_every_kind_is_drawn() {
        let mut s = Schedule::new(
            1,
            &[],
            Duration::from_secs(5)..Duration::from_secs(15),
            Duration::from_secs(2),
        );
        let mut tallies = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let gap = s.gap();
            assert!((Duration::from_secs(5)..Duration::from_secs(15)).contains(&gap));
            tallies.insert(s.next_fault().tally());
        }
        assert_eq!(tallies.len(), 7, "{tallies:?}");
    }

    #[test]
    fn short_pauses_are_shorter_than_the_lease_long_ones_longer() {
        let ttl = Duration::from_secs(2);
        let mut s = Schedule::new(3, &[], Duration::ZERO..Duration::ZERO, ttl);
        for _ in 0..100 {
            match s.fault(FaultKind::PauseLeaderShort) {
                Fault::Pause { hold, .. } => assert!(hold < ttl),
                other => panic!("{other:?}"),
            }
            match s.fault(FaultKind::PauseLeaderLong) {
                Fault::Pause { hold, .. } => assert!(hold > ttl),
                other => panic!("{other:?}"),
            }
        }
    }
}
