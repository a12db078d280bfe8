//! The node's role as an explicit state machine: a pure transition function
//! `(Role, Event) -> (Role, Vec<Action>)`, with no I/O and no clock, so that
//! every transition is tested as a table. The lease driver (`crate::lease`)
//! owns the role, feeds it events and carries out the actions.
//!
//! Invariants:
//! - Only `Leader` acknowledges writes. `Fenced` is a leader whose local
//!   lease deadline passed without a renewal: it may still hold the lease,
//!   but it acknowledges nothing until a renewal succeeds.
//! - An epoch only ever goes up: a node never leads at an epoch lower than
//!   or equal to one it led at before.

use std::fmt;

use serde::Serialize;

/// The role of this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Follows `leader` (if one is known).
    Follower { leader: Option<String> },
    /// Holds the lease at `epoch` and acknowledges writes.
    Leader { epoch: u64 },
    /// Held the lease at `epoch` but could not renew it in time.
    Fenced { epoch: u64 },
    /// Shut down; does nothing more.
    Stopped,
}

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Follower { .. } => "follower",
            Role::Leader { .. } => "leader",
            Role::Fenced { .. } => "fenced",
            Role::Stopped => "stopped",
        }
    }

    /// The epoch this node leads at, if it may acknowledge writes.
    pub fn leader_epoch(&self) -> Option<u64> {
        match self {
            Role::Leader { epoch } => Some(*epoch),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Follower { leader: Some(l) } => write!(f, "follower of {l}"),
            Role::Follower { leader: None } => f.write_str("follower (no leader)"),
            Role::Leader { epoch } => write!(f, "leader at epoch {epoch}"),
            Role::Fenced { epoch } => write!(f, "fenced at epoch {epoch}"),
            Role::Stopped => f.write_str("stopped"),
        }
    }
}

/// What the driver observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// We took the lease with this new epoch.
    Acquired {
        epoch: u64,
    },
    /// Our renewal at `epoch` succeeded.
    Renewed {
        epoch: u64,
    },
    /// Our local lease deadline passed without a successful renewal.
    DeadlinePassed,
    /// Redis says the lease is no longer ours (expired, or another node's).
    LeaseLost,
    /// Redis refused our epoch on a fenced write (a newer leader exists).
    EpochRejected {
        epoch: u64,
    },
    /// Another node holds the lease (or nobody does: `None`).
    LeaderSeen {
        leader: Option<String>,
    },
    /// The leader cannot lead safely (e.g. its log is shorter than a
    /// committed HWM): give up the lease.
    Abdicate,
    Shutdown,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start acknowledging writes at `epoch` (after preparing partitions).
    StartLeading { epoch: u64 },
    /// Stop acknowledging writes immediately.
    StopAcknowledging,
    /// Follow `leader` (replication fetches, truncation).
    Follow { leader: Option<String> },
    /// Give the lease back (compare-then-delete).
    Release { epoch: u64 },
}

/// The transition function. Events that do not apply to a role leave it
/// unchanged and do nothing.
pub fn transition(role: &Role, event: &Event) -> (Role, Vec<Action>) {
    use Action::*;
    use Event::*;
    let unchanged = || (role.clone(), Vec::new());
    match (role, event) {
        (Role::Stopped, _) => unchanged(),
        (Role::Leader { epoch } | Role::Fenced { epoch }, Shutdown) => (
            Role::Stopped,
            vec![StopAcknowledging, Release { epoch: *epoch }],
        ),
        (_, Shutdown) => (Role::Stopped, Vec::new()),

        (Role::Follower { .. }, Acquired { epoch }) => (
            Role::Leader { epoch: *epoch },
            vec![StartLeading { epoch: *epoch }],
        ),
        (Role::Follower { leader }, LeaderSeen { leader: seen }) if leader != seen => (
            Role::Follower {
                leader: seen.clone(),
            },
            vec![Follow {
                leader: seen.clone(),
            }],
        ),

        (Role::Leader { epoch }, DeadlinePassed) => {
            (Role::Fenced { epoch: *epoch }, vec![StopAcknowledging])
        }
        (Role::Fenced { epoch }, Renewed { epoch: renewed }) if epoch == renewed => (
            Role::Leader { epoch: *epoch },
            vec![StartLeading { epoch: *epoch }],
        ),
        (Role::Leader { epoch } | Role::Fenced { epoch }, EpochRejected { epoch: rejected })
            if epoch == rejected =>
        {
            step_down(None)
        }
        (Role::Leader { .. } | Role::Fenced { .. }, LeaseLost) => step_down(None),
        (Role::Leader { epoch } | Role::Fenced { epoch }, Abdicate) => {
            let (role, mut actions) = step_down(None);
            actions.insert(1, Release { epoch: *epoch });
            (role, actions)
        }
        (
            Role::Leader { .. } | Role::Fenced { .. },
            LeaderSeen {
                leader: Some(other),
            },
        ) => step_down(Some(other.clone())),
        _ => unchanged(),
    }
}

fn step_down(leader: Option<String>) -> (Role, Vec<Action>) {
    (
        Role::Follower {
            leader: leader.clone(),
        },
        vec![Action::StopAcknowledging, Action::Follow { leader }],
    )
}

#[cfg(test)]
mod tests {
    use super::{Action::*, Event::*, *};

    fn follower(leader: Option<&str>) -> Role {
        Role::Follower {
            leader: leader.map(str::to_owned),
        }
    }

    fn seen(leader: Option<&str>) -> Event {
        LeaderSeen {
            leader: leader.map(str::to_owned),
        }
    }

    fn follow(leader: Option<&str>) -> Action {
        Follow {
            leader: leader.map(str::to_owned),
        }
    }

    #[test]
    fn transition_table() {
        let leader = Role::Leader { epoch: 4 };
        let fenced = Role::Fenced { epoch: 4 };
        #[rustfmt::skip]
        let table: Vec<(Role, Event, Role, Vec<Action>)> = vec![
            // Followers take the lease or track whoever holds it.
            (follower(None), Acquired { epoch: 5 }, Role::Leader { epoch: 5 }, vec![StartLeading { epoch: 5 }]),
            (follower(None), seen(Some("b")), follower(Some("b")), vec![follow(Some("b"))]),
            (follower(Some("b")), seen(Some("b")), follower(Some("b")), vec![]),
            (follower(Some("b")), seen(None), follower(None), vec![follow(None)]),
            (follower(Some("b")), LeaseLost, follower(Some("b")), vec![]),
            (follower(None), Renewed { epoch: 4 }, follower(None), vec![]),
            (follower(None), DeadlinePassed, follower(None), vec![]),
            // A leader renews, gets fenced by its own deadline, or steps down.
            (leader.clone(), Renewed { epoch: 4 }, leader.clone(), vec![]),
            (leader.clone(), DeadlinePassed, fenced.clone(), vec![StopAcknowledging]),
            (leader.clone(), LeaseLost, follower(None), vec![StopAcknowledging, follow(None)]),
            (leader.clone(), EpochRejected { epoch: 4 }, follower(None), vec![StopAcknowledging, follow(None)]),
            (leader.clone(), EpochRejected { epoch: 3 }, leader.clone(), vec![]),
            (leader.clone(), seen(Some("b")), follower(Some("b")), vec![StopAcknowledging, follow(Some("b"))]),
            (leader.clone(), Abdicate, follower(None), vec![StopAcknowledging, Release { epoch: 4 }, follow(None)]),
            (leader.clone(), Acquired { epoch: 9 }, leader.clone(), vec![]),
            // A fenced leader resumes only by renewing the same epoch.
            (fenced.clone(), Renewed { epoch: 4 }, leader.clone(), vec![StartLeading { epoch: 4 }]),
            (fenced.clone(), Renewed { epoch: 3 }, fenced.clone(), vec![]),
            (fenced.clone(), DeadlinePassed, fenced.clone(), vec![]),
            (fenced.clone(), LeaseLost, follower(None), vec![StopAcknowledging, follow(None)]),
            (fenced.clone(), EpochRejected { epoch: 4 }, follower(None), vec![StopAcknowledging, follow(None)]),
            // Shutdown releases a held lease; nothing happens after it.
            (leader.clone(), Shutdown, Role::Stopped, vec![StopAcknowledging, Release { epoch: 4 }]),
            (fenced.clone(), Shutdown, Role::Stopped, vec![StopAcknowledging, Release { epoch: 4 }]),
            (follower(Some("b")), Shutdown, Role::Stopped, vec![]),
            (Role::Stopped, Acquired { epoch: 9 }, Role::Stopped, vec![]),
        ];
        for (i, (from, event, to, actions)) in table.into_iter().enumerate() {
            assert_eq!(
                transition(&from, &event),
                (to, actions),
                "row {i}: {from:?} + {event:?}"
            );
        }
    }

    #[test]
    fn only_a_leader_acknowledges() {
        assert_eq!(Role::Leader { epoch: 2 }.leader_epoch(), Some(2));
        for role in [
            Role::Fenced { epoch: 2 },
            follower(Some("a")),
            Role::Stopped,
        ] {
            assert_eq!(role.leader_epoch(), None);
        }
    }
}
