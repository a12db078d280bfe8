//! The lease driver: the one task that owns the node's [`Role`], feeds the
//! pure state machine ([`crate::role`]) with what it observes in Redis and
//! carries out the actions it returns. And the [`LeaseGate`], which every
//! write checks before it is acknowledged.
//!
//! Timing: a leader renews every TTL/3; a follower looks at the lease
//! every 250 ms at most, and right after it would expire.
//!
//! A follower need not wait for the expiry of a dead leader's lease: the
//! lease names the Redis connection it was last renewed on, and when a
//! follower sees that connection gone for longer than a renewal interval
//! (so a leader that merely reconnected has had time to record its new
//! connection), it takes the lease over ([`ClusterStore::take_over`]). A
//! killed leader's connections close with its process, so failover no
//! longer waits out the lease. A leader that is alive but has lost Redis
//! is deposed the same way, which is safe: it can commit nothing without
//! Redis, and the takeover raises the epoch that fences its commits.
//!
//! A leader stops
//! acknowledging at its local deadline, `time the last successful renew was sent + TTL × 0.9`, even if
//! this task is late, because the gate checks the clock itself. Safety does
//! not rest on clocks, though: every commit is also fenced by the epoch in
//! Redis.

use std::{
    collections::VecDeque,
    fmt::Display,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    checkpoint::SharedCheckpoint,
    config::StartAs,
    metrics::Metrics,
    role::{Action, Event, Role, transition},
    store::{Acquire, ClusterStore, LeaseHolder},
};

/// Longest pause between a follower's looks at the lease.
const FOLLOWER_POLL: Duration = Duration::from_millis(250);

/// How much longer than a renewal interval a holder's connection must be
/// seen gone before its lease is taken over: room for the renewal's own
/// round trip.
const TAKEOVER_MARGIN: Duration = Duration::from_millis(100);

/// Whether this node may acknowledge writes right now, and at which epoch.
#[derive(Debug)]
pub struct LeaseGate {
    base: Instant,
    /// 0 when closed.
    epoch: AtomicU64,
    /// Milliseconds after `base`.
    deadline: AtomicU64,
}

impl Default for LeaseGate {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            epoch: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
        }
    }
}

impl LeaseGate {
    /// The epoch to acknowledge at, if the gate is open and the local lease
    /// deadline has not passed.
    pub fn epoch(&self) -> Option<u64> {
        let epoch = self.epoch.load(Ordering::Acquire);
        (epoch != 0 && self.millis(Instant::now()) < self.deadline.load(Ordering::Acquire))
            .then_some(epoch)
    }

    /// Time left before the local deadline, if open.
    pub fn remaining(&self) -> Option<Duration> {
        if self.epoch.load(Ordering::Acquire) == 0 {
            return None;
        }
        let now = self.millis(Instant::now());
        let left = self.deadline.load(Ordering::Acquire).checked_sub(now)?;
        Some(Duration::from_millis(left))
    }

    fn millis(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    pub(crate) fn open(&self, epoch: u64, deadline: Instant) {
        self.extend(deadline);
        self.epoch.store(epoch, Ordering::Release);
    }

    fn extend(&self, deadline: Instant) {
        self.deadline
            .store(self.millis(deadline), Ordering::Release);
    }

    pub(crate) fn close(&self) {
        self.epoch.store(0, Ordering::Release);
    }
}

/// What the driver asks of the rest of the node: whether it may lead, and
/// the work a role change starts. The node implements it; the driver sees
/// nothing else of the node.
pub trait Duties: Send + Sync + 'static {
    type Error: Display + Send;

    /// True if this node's logs hold everything Redis says is committed:
    /// a node that is behind must not take the lease.
    fn holds_everything_committed(&self) -> impl Future<Output = bool> + Send;
    /// Prepares every partition to lead at `epoch`.
    fn prepare_leadership(
        &self,
        epoch: u64,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Commits what the partitions hold beyond their HWMs.
    fn commit_tails(&self) -> impl Future<Output = ()> + Send;
    /// Stops every partition writer from leading.
    fn stop_leading(&self) -> impl Future<Output = ()> + Send;
    /// Follows `leader` (replacing any other follow), or stops following.
    fn follow(&self, leader: Option<String>);
    /// Records a role change (metrics, logs, activity).
    fn transitioned(&self, from: &Role, to: &Role, event: &Event);
    /// Adds a line to the activity log.
    fn activity(&self, kind: &'static str, message: String);
}

/// The settings the driver runs by.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub node_id: String,
    pub ttl: Duration,
    pub start_as: StartAs,
}

pub(crate) struct LeaseDriver<D> {
    duties: D,
    parts: DriverParts,
    /// Local deadline of the lease as last acquired or renewed.
    deadline: Instant,
    may_acquire_at: Instant,
    /// A follower's suspicion: the holder, epoch and connection of a lease
    /// whose connection was gone, and when that was first seen.
    gone: Option<(String, u64, i64, Instant)>,
}

/// What a driver is made of besides its duties.
pub(crate) struct DriverParts {
    pub settings: LeaseSettings,
    pub store: ClusterStore,
    pub gate: Arc<LeaseGate>,
    pub checkpoint: SharedCheckpoint,
    pub metrics: Arc<Metrics>,
    pub role: watch::Sender<Role>,
    pub events: mpsc::Receiver<Event>,
}

impl<D: Duties> LeaseDriver<D> {
    pub fn new(duties: D, parts: DriverParts) -> Self {
        let now = Instant::now();
        let may_acquire_at = match parts.settings.start_as {
            StartAs::Candidate => now,
            StartAs::Follower => now + parts.settings.ttl,
        };
        Self {
            duties,
            parts,
            deadline: now,
            may_acquire_at,
            gone: None,
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut next_poll = tokio::time::Instant::now();
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => Some(Event::Shutdown),
                Some(event) = self.parts.events.recv() => Some(event),
                _ = tokio::time::sleep_until(next_poll) => {
                    let (event, wait) = self.poll().await;
                    next_poll = tokio::time::Instant::now() + wait;
                    event
                }
            };
            if let Some(event) = event {
                self.apply(event).await;
            }
            if *self.parts.role.borrow() == Role::Stopped {
                break;
            }
        }
    }

    fn current(&self) -> Role {
        self.parts.role.borrow().clone()
    }

    /// One look at Redis: renew if leading, else look for a leader and try
    /// for the lease if there is none. Returns what it saw and when to look
    /// again: every TTL/3, or just after the leader's lease would expire.
    async fn poll(&mut self) -> (Option<Event>, Duration) {
        let mut wait = self.parts.settings.ttl / 3;
        let event = self.observe(&mut wait).await;
        (event, wait)
    }

    async fn observe(&mut self, wait: &mut Duration) -> Option<Event> {
        let (id, ttl) = (
            self.parts.settings.node_id.as_str(),
            self.parts.settings.ttl,
        );
        let store = &self.parts.store;
        let bounded = ttl / 3;
        match self.current() {
            Role::Leader { epoch } | Role::Fenced { epoch } => {
                let sent = Instant::now();
                match tokio::time::timeout(bounded, store.renew(id, epoch, ttl)).await {
                    Ok(Ok(true)) => {
                        self.deadline = sent + ttl.mul_f64(0.9);
                        self.parts.gate.extend(self.deadline);
                        self.parts.metrics.lease_renewals.inc();
                        Some(Event::Renewed { epoch })
                    }
                    Ok(Ok(false)) => Some(Event::LeaseLost),
                    failed => {
                        self.parts.metrics.lease_renewal_failures.inc();
                        let reason = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "timed out".to_owned(),
                        };
                        tracing::warn!("lease renewal failed: {reason}");
                        (Instant::now() >= self.deadline).then_some(Event::DeadlinePassed)
                    }
                }
            }
            Role::Follower { .. } => {
                // A follower looks often (a GET and a PTTL): a released
                // lease is taken over within a fraction of a second.
                *wait = (*wait).min(FOLLOWER_POLL);
                let (holder, epoch) = match tokio::time::timeout(bounded, store.lease()).await {
                    Ok(Ok(lease)) => lease,
                    Ok(Err(e)) => {
                        tracing::debug!("cannot read the lease: {e}");
                        return None;
                    }
                    Err(_) => return None,
                };
                self.parts.checkpoint.see_epoch(epoch);
                match holder {
                    Some(h) if h.node_id != id => {
                        // Look again right after it would expire.
                        *wait = (*wait).min(Duration::from_millis(h.ttl_ms + 5));
                        if let Some(event) = self.take_over_if_gone(&h, wait).await {
                            return Some(event);
                        }
                        Some(Event::LeaderSeen {
                            leader: Some(h.node_id),
                        })
                    }
                    _ if Instant::now() < self.may_acquire_at => None,
                    _ => self.try_acquire(None).await,
                }
            }
            Role::Stopped => None,
        }
    }

    /// Takes the lease over from `holder` once its connection has been
    /// seen gone for longer than a renewal interval, with the same holder,
    /// epoch and connection throughout. Shortens `wait` to look again when
    /// that interval is up.
    async fn take_over_if_gone(
        &mut self,
        holder: &LeaseHolder,
        wait: &mut Duration,
    ) -> Option<Event> {
        let Some(client) = holder.client else {
            self.gone = None;
            return None;
        };
        let store = &self.parts.store;
        let bounded = self.parts.settings.ttl / 3;
        match tokio::time::timeout(bounded, store.client_connected(client)).await {
            Ok(Ok(false)) => {}
            Ok(Ok(true)) => {
                self.gone = None;
                return None;
            }
            Ok(Err(e)) => {
                tracing::debug!("cannot list the leader's connection: {e}");
                return None;
            }
            Err(_) => return None,
        }
        let now = Instant::now();
        let same = |(node, epoch, seen, _): &(String, u64, i64, Instant)| {
            *node == holder.node_id && *epoch == holder.epoch && *seen == client
        };
        let since = match &self.gone {
            Some(gone) if same(gone) => gone.3,
            _ => {
                self.gone = Some((holder.node_id.clone(), holder.epoch, client, now));
                now
            }
        };
        // A node that has just started waits its first TTL out, as for a
        // free lease.
        let due = (since + self.parts.settings.ttl / 3 + TAKEOVER_MARGIN).max(self.may_acquire_at);
        if now < due {
            *wait = (*wait).min(due - now + Duration::from_millis(1));
            return None;
        }
        match self.try_acquire(Some(holder)).await {
            Some(event @ Event::Acquired { .. }) => {
                self.gone = None;
                let message = format!(
                    "took the lease from {} (epoch {}): its Redis connection has been gone for {} ms",
                    holder.node_id,
                    holder.epoch,
                    now.duration_since(since).as_millis()
                );
                tracing::info!("{message}");
                self.duties.activity("election", message);
                Some(event)
            }
            // Not in sync, or the holder is back: it is still the leader
            // this node knows.
            _ => None,
        }
    }

    /// Tries for the lease: a free one, or `abandoned`'s.
    async fn try_acquire(&mut self, abandoned: Option<&LeaseHolder>) -> Option<Event> {
        if !self.duties.holds_everything_committed().await {
            return Some(Event::LeaderSeen { leader: None });
        }
        let LeaseSettings { node_id, ttl, .. } = &self.parts.settings;
        let sent = Instant::now();
        let floor = self.parts.checkpoint.highest_epoch();
        let store = &self.parts.store;
        let attempt = async {
            match abandoned {
                Some(holder) => store.take_over(node_id, *ttl, floor, holder).await,
                None => store.acquire(node_id, *ttl, floor).await,
            }
        };
        match tokio::time::timeout(*ttl / 3, attempt).await {
            Ok(Ok(Acquire::Won { epoch })) => {
                self.deadline = sent + ttl.mul_f64(0.9);
                self.parts.checkpoint.see_epoch(epoch);
                Some(Event::Acquired { epoch })
            }
            Ok(Ok(Acquire::Held)) => None,
            Ok(Ok(Acquire::NotInSync)) => {
                tracing::debug!("not in the ISR of every committed partition: may not lead");
                Some(Event::LeaderSeen { leader: None })
            }
            Ok(Err(e)) => {
                tracing::debug!("acquire failed: {e}");
                None
            }
            Err(_) => None,
        }
    }

    /// Runs the state machine on `event` and carries out its actions. An
    /// action that fails may queue a follow-up event (a leader that cannot
    /// prepare its partitions abdicates).
    async fn apply(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let from = self.current();
            let (to, actions) = transition(&from, &event);
            if to != from {
                tracing::info!(from = %from, to = %to, ?event, "role transition");
                self.duties.transitioned(&from, &to, &event);
            }
            // Publish a stepped-down role before the slow actions run.
            if to.leader_epoch().is_none() {
                self.parts.role.send_replace(to.clone());
            }
            for action in actions {
                if let Some(follow_up) = self.act(action).await {
                    queue.push_back(follow_up);
                }
            }
            self.parts.role.send_replace(to);
        }
    }

    async fn act(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::StartLeading { epoch } => match self.duties.prepare_leadership(epoch).await {
                Ok(()) => {
                    self.parts.gate.open(epoch, self.deadline);
                    self.duties.commit_tails().await;
                    None
                }
                Err(e) => {
                    tracing::error!(epoch, "cannot lead: {e}");
                    self.duties
                        .activity("error", format!("cannot lead at epoch {epoch}: {e}"));
                    // Let another node try first.
                    self.may_acquire_at = Instant::now() + self.parts.settings.ttl * 2;
                    Some(Event::Abdicate)
                }
            },
            Action::StopAcknowledging => {
                self.parts.gate.close();
                self.duties.stop_leading().await;
                None
            }
            Action::Follow { leader } => {
                self.duties.follow(leader);
                None
            }
            Action::Release { epoch } => {
                let release = self
                    .parts
                    .store
                    .release(&self.parts.settings.node_id, epoch);
                match tokio::time::timeout(self.parts.settings.ttl / 3, release).await {
                    Ok(Ok(true)) => tracing::info!(epoch, "released the lease"),
                    Ok(Ok(false)) => tracing::info!(epoch, "lease was no longer ours"),
                    Ok(Err(e)) => tracing::warn!(epoch, "could not release the lease: {e}"),
                    Err(_) => tracing::warn!(epoch, "releasing the lease timed out"),
                }
                None
            }
        }
    }
}
