//! The faults: what each kind does to the [`Cluster`], for how long, and
//! how it heals. A [`Fault`] is fully decided (targets by role, durations,
//! link modes) by the [`schedule`](crate::schedule) before it runs; roles
//! are resolved to nodes when it starts.
//!
//! Invariant: [`Fault::run`] leaves the cluster as it found it — every
//! process it stopped is running again, every link it cut passes — except
//! for the data a node lost to tail damage.

use std::{fmt, time::Duration};

use rand::Rng;

use crate::{
    cluster::{Cluster, ClusterError, Endpoint, TailDamage},
    history::History,
    proxy::LinkMode,
};

/// Every kind of fault, one scenario each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    KillLeader,
    KillFollower,
    KillRedis,
    PauseLeaderShort,
    PauseLeaderLong,
    PauseFollower,
    PauseRedis,
    /// Leader and followers cannot reach each other (both directions).
    PartitionLeader,
    /// The leader cannot reach Redis.
    CutLeaderRedis,
    /// Clients cannot reach the leader.
    CutClientsLeader,
    /// One direction only between the leader and a follower.
    CutOneWay,
    /// Slow links around the leader.
    DelayLinks,
    /// Connections reset on a random link.
    ResetLinks,
    TornTail,
    BitFlipTail,
    DoubleFailover,
}

impl FaultKind {
    pub const ALL: [FaultKind; 16] = [
        FaultKind::KillLeader,
        FaultKind::KillFollower,
        FaultKind::KillRedis,
        FaultKind::PauseLeaderShort,
        FaultKind::PauseLeaderLong,
        FaultKind::PauseFollower,
        FaultKind::PauseRedis,
        FaultKind::PartitionLeader,
        FaultKind::CutLeaderRedis,
        FaultKind::CutClientsLeader,
        FaultKind::CutOneWay,
        FaultKind::DelayLinks,
        FaultKind::ResetLinks,
        FaultKind::TornTail,
        FaultKind::BitFlipTail,
        FaultKind::DoubleFailover,
    ];
}

/// A node chosen by its role when the fault starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// One of the nodes that do not lead, chosen at random.
    Follower,
}

/// One end of a link, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Clients,
    Role(Role),
    Redis,
}

/// A fully decided fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `kill -9`, restart after `down`; with `damage`, the log's tail is
    /// damaged while it is down (only if another running node is in every
    /// ISR, so the cluster still holds every acknowledged write).
    Kill {
        role: Role,
        down: Duration,
        damage: Option<TailDamage>,
    },
    KillRedis {
        down: Duration,
    },
    Pause {
        role: Role,
        hold: Duration,
    },
    PauseRedis {
        hold: Duration,
    },
    /// Sets every listed directed link to `mode` for `hold`.
    Links {
        links: Vec<(End, End)>,
        mode: LinkMode,
        hold: Duration,
    },
    /// Kill the leader A; once another node B leads, kill B (A is down, so
    /// it has not caught up); restart both after `down`.
    DoubleFailover {
        down: Duration,
    },
}

/// What a fault counts as in the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tally {
    LeaderKills,
    FollowerKills,
    RedisRestarts,
    Pauses,
    LinkCuts,
    TailDamages,
    DoubleFailovers,
}

impl Tally {
    pub fn label(self) -> &'static str {
        match self {
            Tally::LeaderKills => "leader kills",
            Tally::FollowerKills => "follower kills",
            Tally::RedisRestarts => "redis restarts",
            Tally::Pauses => "pauses",
            Tally::LinkCuts => "link cuts",
            Tally::TailDamages => "damaged tails",
            Tally::DoubleFailovers => "double failovers",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill { role, down, damage } => {
                write!(f, "kill -9 {role:?} for {down:?}")?;
                if let Some(d) = damage {
                    write!(f, " with {d:?} tail")?;
                }
                Ok(())
            }
            Fault::KillRedis { down } => write!(f, "kill -9 redis for {down:?}"),
            Fault::Pause { role, hold } => write!(f, "SIGSTOP {role:?} for {hold:?}"),
            Fault::PauseRedis { hold } => write!(f, "SIGSTOP redis for {hold:?}"),
            Fault::Links { links, mode, hold } => {
                write!(f, "links {links:?} {mode:?} for {hold:?}")
            }
            Fault::DoubleFailover { down } => write!(f, "double failover, down {down:?}"),
        }
    }
}

impl Fault {
    pub fn tally(&self) -> Tally {
        match self {
            Fault::Kill {
                damage: Some(_), ..
            } => Tally::TailDamages,
            Fault::Kill {
                role: Role::Leader, ..
            } => Tally::LeaderKills,
            Fault::Kill { .. } => Tally::FollowerKills,
            Fault::KillRedis { .. } => Tally::RedisRestarts,
            Fault::Pause { .. } | Fault::PauseRedis { .. } => Tally::Pauses,
            Fault::Links { .. } => Tally::LinkCuts,
            Fault::DoubleFailover { .. } => Tally::DoubleFailovers,
        }
    }

    /// Injects the fault, holds it, heals it. The timers here are the
    /// fault's own pacing, not synchronisation.
    pub async fn run(
        &self,
        cluster: &mut Cluster,
        rng: &mut impl Rng,
        history: &History,
    ) -> Result<(), ClusterError> {
        history.fault(self.to_string(), false);
        match self {
            Fault::Kill { role, down, damage } => {
                let node = resolve(cluster, *role, rng).await;
                let damage = match damage {
                    Some(d) if another_in_sync(cluster, node).await => Some(*d),
                    Some(_) => {
                        history.fault("tail damage skipped: no other in-sync node", false);
                        None
                    }
                    None => None,
                };
                cluster.node_mut(node).kill9();
                if let Some(damage) = damage {
                    cluster.damage_tail(node, damage, rng)?;
                }
                tokio::time::sleep(*down).await;
                cluster.node_mut(node).restart().await;
            }
            Fault::KillRedis { down } => {
                cluster.redis_mut().kill();
                tokio::time::sleep(*down).await;
                cluster.redis_mut().restart().await;
            }
            Fault::Pause { role, hold } => {
                let node = resolve(cluster, *role, rng).await;
                cluster.node_mut(node).pause();
                tokio::time::sleep(*hold).await;
                cluster.node_mut(node).resume();
            }
            Fault::PauseRedis { hold } => {
                cluster.redis_mut().pause();
                tokio::time::sleep(*hold).await;
                cluster.redis_mut().resume();
            }
            Fault::Links { links, mode, hold } => {
                // One look at who leads for both ends: two looks can name
                // the same node when the leader changes in between.
                let leader = resolve(cluster, Role::Leader, rng).await;
                let follower = other_than(cluster, leader, rng);
                let at = |end: End| match end {
                    End::Clients => Endpoint::Clients,
                    End::Redis => Endpoint::Redis,
                    End::Role(Role::Leader) => Endpoint::Node(leader),
                    End::Role(Role::Follower) => Endpoint::Node(follower),
                };
                for &(from, to) in links {
                    cluster.set_link(at(from), at(to), *mode)?;
                }
                tokio::time::sleep(*hold).await;
                cluster.heal_links();
            }
            Fault::DoubleFailover { down } => {
                let first = resolve(cluster, Role::Leader, rng).await;
                cluster.node_mut(first).kill9();
                let deadline = tokio::time::Instant::now()
                    + Duration::from_millis(cluster.config().lease_ttl_ms * 2 + 5000);
                let second = loop {
                    match cluster.leader_index().await {
                        Some(i) if i != first => break Some(i),
                        _ if tokio::time::Instant::now() >= deadline => break None,
                        _ => tokio::time::sleep(Duration::from_millis(25)).await,
                    }
                };
                match second {
                    Some(second) => cluster.node_mut(second).kill9(),
                    None => history.fault("double failover: no second leader to kill", false),
                }
                tokio::time::sleep(*down).await;
                cluster.node_mut(first).restart().await;
                if let Some(second) = second {
                    cluster.node_mut(second).restart().await;
                }
            }
        }
        history.fault(self.to_string(), true);
        Ok(())
    }
}

/// The node that has `role` now. Without a known leader, any node serves
/// as "leader" and the others as followers.
async fn resolve(cluster: &Cluster, role: Role, rng: &mut impl Rng) -> usize {
    let count = cluster.nodes().len();
    let leader = match cluster.leader_index().await {
        Some(i) => i,
        None => rng.random_range(0..count),
    };
    match role {
        Role::Leader => leader,
        Role::Follower => other_than(cluster, leader, rng),
    }
}

/// A node other than `node`, at random.
fn other_than(cluster: &Cluster, node: usize, rng: &mut impl Rng) -> usize {
    let others: Vec<usize> = (0..cluster.nodes().len()).filter(|&i| i != node).collect();
    others[rng.random_range(0..others.len())]
}

/// True if, for every partition, a running node other than `node` is in
/// the ISR Redis holds (so damaging `node`'s log loses no acknowledged
/// write of the cluster).
async fn another_in_sync(cluster: &mut Cluster, node: usize) -> bool {
    let Ok(store) = cluster.store() else {
        return false;
    };
    let topic = cluster.config().topic.clone();
    let mut running = Vec::new();
    for i in 0..cluster.nodes().len() {
        if i != node && cluster.node_mut(i).is_running() && !cluster.nodes()[i].is_paused() {
            running.push(cluster.nodes()[i].id().to_owned());
        }
    }
    for partition in 0..cluster.config().partitions {
        match store.isr(&topic, partition).await {
            // Never set: nothing was acknowledged there.
            Ok(None) => {}
            Ok(Some(isr)) if isr.iter().any(|id| running.contains(id)) => {}
            _ => return false,
        }
    }
    true
}
