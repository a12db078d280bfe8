//! The consumer-group coordinator: membership, rebalances and committed
//! offsets, served by the leader, stored in Redis.
//!
//! - [`state`]: a group as stored and its transitions (pure).
//! - [`assign`]: the sticky, range and round-robin assignors (pure).
//! - `error`: [`GroupError`].
//!
//! The [`Coordinator`] is the one owner of the groups' live state on this
//! node. Each group is behind its own async lock, so requests to one group
//! run one at a time; each change is computed on a copy, stored in Redis
//! (a script that checks the leader's epoch), and only then applied, so
//! memory never runs ahead of Redis. What is not stored is time: member
//! session deadlines live here, and a node that starts leading loads every
//! group from Redis with a fresh session for each member. Join answers
//! wait on a per-group change signal.
//!
//! Invariants: nothing is served unless the lease gate is open; state
//! loaded at another epoch is reloaded before use; a commit's checks run
//! again in Redis, in the script that stores the offsets.

pub mod assign;
mod error;
pub mod state;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use partition_log::batch;
use tokio::{sync::watch, time::Instant};
use yak_protocol::{
    group::{
        Commit, GroupDetail, GroupState, GroupSummary, Join, Joined, MemberDetail, Offsets,
        PartitionDetail, PartitionOffset, ResetTo, SESSION_TIMEOUT_MS, TopicPartition,
        validate_group_name,
    },
    validate_topic_name,
};

pub use error::GroupError;
use state::{Group, JoinSpec};

use crate::{
    activity::ActivityLog,
    lease::LeaseGate,
    store::{ClusterStore, GroupWrite},
    topics::TopicRegistry,
};

/// How often sessions and rebalance deadlines are checked.
pub const TICK: Duration = Duration::from_millis(100);
/// Longest `client_id` kept.
const MAX_CLIENT_ID: usize = 255;
/// Most member ids reserved for Kafka clients per group at once.
const MAX_PENDING: usize = 1024;

type Result<T, E = GroupError> = std::result::Result<T, E>;

/// One group on the leader: what Redis holds, and the deadlines.
#[derive(Debug)]
struct Live {
    /// The leader epoch it was loaded at.
    epoch: u64,
    group: Group,
    offsets: BTreeMap<TopicPartition, u64>,
    sessions: HashMap<String, Instant>,
    /// When members that have not joined the rebalance are dropped.
    rebalance_deadline: Option<Instant>,
}

#[derive(Debug, Default)]
struct Slot {
    live: tokio::sync::Mutex<Option<Live>>,
    /// Member ids handed to Kafka clients that have not joined with them
    /// yet (memory only: after a failover such a client starts over).
    pending: Mutex<HashSet<String>>,
    /// Bumped after every change, for joins waiting on a rebalance.
    changed: watch::Sender<u64>,
}

/// The coordinator; cheap to share (`Arc`).
#[derive(Debug)]
pub struct Coordinator {
    store: ClusterStore,
    gate: Arc<LeaseGate>,
    topics: Arc<TopicRegistry>,
    activity: ActivityLog,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// The epoch at which every stored group was loaded (0: not yet).
    loaded_at: Mutex<u64>,
}

impl Coordinator {
    pub fn new(
        store: ClusterStore,
        gate: Arc<LeaseGate>,
        topics: Arc<TopicRegistry>,
        activity: ActivityLog,
    ) -> Self {
        Self {
            store,
            gate,
            topics,
            activity,
            slots: Mutex::default(),
            loaded_at: Mutex::new(0),
        }
    }

    fn epoch(&self) -> Result<u64> {
        self.gate.epoch().ok_or(GroupError::NotLeader)
    }

    fn slot(&self, group: &str) -> Arc<Slot> {
        Arc::clone(
            self.slots
                .lock()
                .unwrap()
                .entry(group.to_owned())
                .or_default(),
        )
    }

    /// The group's live state, loaded from Redis if it is not loaded at
    /// `epoch`; `None` if Redis has never heard of it.
    async fn load<'a>(
        &self,
        name: &str,
        epoch: u64,
        live: &'a mut Option<Live>,
    ) -> Result<Option<&'a mut Live>> {
        if live.as_ref().is_none_or(|l| l.epoch != epoch) {
            *live = None;
            let Some(stored) = self.store.load_group(name).await? else {
                return Ok(None);
            };
            let group: Group = match &stored.state {
                Some(json) => serde_json::from_str(json).map_err(|e| {
                    GroupError::Store(crate::store::StoreError::Malformed {
                        key: format!("group:{name}"),
                        reason: e.to_string(),
                    })
                })?,
                None => Group::default(),
            };
            // Deadlines are not stored: every member gets a fresh session
            // from the node that now leads.
            let now = Instant::now();
            let sessions = group
                .members
                .iter()
                .map(|(id, m)| {
                    (
                        id.clone(),
                        now + Duration::from_millis(m.session_timeout_ms),
                    )
                })
                .collect();
            let rebalance_deadline =
                (group.state == GroupState::Rebalancing).then(|| now + longest_session(&group));
            *live = Some(Live {
                epoch,
                group,
                offsets: stored.offsets,
                sessions,
                rebalance_deadline,
            });
        }
        Ok(live.as_mut())
    }

    /// Applies `change` to a copy of the group, completes a rebalance that
    /// no longer waits for anyone, stores the result, then makes it live.
    async fn update(
        &self,
        name: &str,
        slot: &Slot,
        live: &mut Live,
        change: impl FnOnce(&mut Group) -> Result<bool>,
    ) -> Result<bool> {
        let mut group = live.group.clone();
        if !change(&mut group)? {
            return Ok(false);
        }
        let started =
            group.state == GroupState::Rebalancing && live.group.state != GroupState::Rebalancing;
        if group.state == GroupState::Rebalancing && group.waiting_for().is_empty() {
            let counts = self.partition_counts(&group).await?;
            group.complete(counts);
        }
        let json = serde_json::to_string(&group).expect("a group serializes");
        let owners: Vec<(&TopicPartition, &str)> = group
            .members
            .iter()
            .flat_map(|(id, m)| m.assignment.iter().map(move |tp| (tp, id.as_str())))
            .collect();
        self.store
            .save_group(
                live.epoch,
                name,
                &json,
                group.generation,
                group.members.len(),
                &owners,
            )
            .await?;
        let now = Instant::now();
        if started {
            live.rebalance_deadline = Some(now + longest_session(&group));
            self.activity.push(
                "group",
                format!(
                    "group {name}: rebalancing ({} members)",
                    group.members.len()
                ),
            );
        }
        if live.group.generation != group.generation && group.state != GroupState::Empty {
            // A fresh session from the moment the rebalance completed: the
            // members waited for it without heartbeating.
            for (id, m) in &group.members {
                live.sessions.insert(
                    id.clone(),
                    now + Duration::from_millis(m.session_timeout_ms),
                );
            }
        }
        if let Some(leader) = group.awaited_leader()
            && live.group.state != GroupState::Syncing
        {
            live.rebalance_deadline = Some(now + longest_session(&group));
            self.activity.push(
                "group",
                format!(
                    "group {name}: generation {} waits for {leader}'s assignment",
                    group.generation
                ),
            );
        }
        if group.state == GroupState::Stable
            && (live.group.state != GroupState::Stable || live.group.generation != group.generation)
        {
            live.rebalance_deadline = None;
            self.activity.push(
                "group",
                format!(
                    "group {name}: generation {} stable; {}",
                    group.generation,
                    describe_assignment(&group)
                ),
            );
        }
        if group.state == GroupState::Empty && live.group.state != GroupState::Empty {
            live.rebalance_deadline = None;
            self.activity.push("group", format!("group {name}: empty"));
        }
        live.sessions.retain(|id, _| group.members.contains_key(id));
        live.group = group;
        slot.changed.send_modify(|n| *n += 1);
        Ok(true)
    }

    /// The current partition counts of the group's topics.
    async fn partition_counts(&self, group: &Group) -> Result<BTreeMap<String, u32>> {
        let all = self.store.topics().await?;
        Ok(group
            .topics()
            .into_iter()
            .filter_map(|t| all.get(t).map(|&n| (t.to_owned(), n)))
            .collect())
    }

    /// Checks a join's fields and that its topics exist.
    async fn check_join(&self, join: Join) -> Result<JoinSpec> {
        if join.topics.is_empty() {
            return Err(GroupError::Invalid(
                "a join names at least one topic".into(),
            ));
        }
        if !SESSION_TIMEOUT_MS.contains(&join.session_timeout_ms) {
            return Err(GroupError::Invalid(format!(
                "session_timeout_ms must be {} to {}, got {}",
                SESSION_TIMEOUT_MS.start(),
                SESSION_TIMEOUT_MS.end(),
                join.session_timeout_ms
            )));
        }
        if join
            .client_id
            .as_ref()
            .is_some_and(|c| c.len() > MAX_CLIENT_ID)
        {
            return Err(GroupError::Invalid(format!(
                "client_id is at most {MAX_CLIENT_ID} bytes"
            )));
        }
        let mut topics = join.topics;
        topics.sort();
        topics.dedup();
        let known = self.store.topics().await?;
        for topic in &topics {
            validate_topic_name(topic).map_err(GroupError::InvalidTopic)?;
            if !known.contains_key(topic) {
                return Err(GroupError::UnknownTopic(topic.clone()));
            }
        }
        Ok(JoinSpec {
            topics,
            session_timeout_ms: join.session_timeout_ms,
            assignor: join.assignor,
            client_id: join.client_id,
            kafka: None,
        })
    }

    /// Joins (or joins again) and waits until the group is stable with
    /// the member in it.
    pub async fn join(&self, name: &str, join: Join) -> Result<Joined> {
        validate_group_name(name).map_err(GroupError::InvalidGroup)?;
        let requested = join.member_id.clone();
        let spec = self.check_join(join).await?;
        let (member, group) = self.enter(name, requested, spec).await?;
        let m = group.member(name, &member)?;
        Ok(Joined {
            group: name.to_owned(),
            generation: group.generation,
            assignment: m.assignment.clone(),
            session_timeout_ms: m.session_timeout_ms,
            heartbeat_interval_ms: heartbeat_interval(m.session_timeout_ms),
            member_id: member,
        })
    }

    /// A Kafka client's JoinGroup: like [`Coordinator::join`], but topics
    /// that do not exist are left out of the subscription (Kafka clients
    /// may subscribe before they exist), and the answer is the group as it
    /// was when a generation including the member completed.
    pub async fn join_kafka(
        &self,
        name: &str,
        member_id: Option<String>,
        mut spec: JoinSpec,
    ) -> Result<(String, Group)> {
        validate_group_name(name).map_err(GroupError::InvalidGroup)?;
        if !SESSION_TIMEOUT_MS.contains(&spec.session_timeout_ms) {
            return Err(GroupError::Invalid(format!(
                "session_timeout_ms must be {} to {}, got {}",
                SESSION_TIMEOUT_MS.start(),
                SESSION_TIMEOUT_MS.end(),
                spec.session_timeout_ms
            )));
        }
        let known = self.store.topics().await?;
        spec.topics.retain(|t| known.contains_key(t));
        spec.topics.sort();
        spec.topics.dedup();
        self.enter(name, member_id, spec).await
    }

    /// A member id for a Kafka client that joined without one (JoinGroup
    /// v4+ answers MEMBER_ID_REQUIRED with it); its next join with this id
    /// is a new member's.
    pub fn reserve_member(&self, name: &str) -> String {
        let id = format!("m-{:016x}", rand::random::<u64>());
        let slot = self.slot(name);
        let mut pending = slot.pending.lock().unwrap();
        // Bounded: a client that never comes back leaves an id here.
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        pending.insert(id.clone());
        id
    }

    /// Adds the member (`requested` none, or an id from
    /// [`Coordinator::reserve_member`]) or takes a member's join, then
    /// waits until a generation that includes it completes. Returns the
    /// member id and the group as it was then.
    async fn enter(
        &self,
        name: &str,
        requested: Option<String>,
        spec: JoinSpec,
    ) -> Result<(String, Group)> {
        let epoch = self.epoch()?;
        let session = Duration::from_millis(spec.session_timeout_ms);
        let slot = self.slot(name);
        let (member, before) = {
            let mut guard = slot.live.lock().await;
            if self.load(name, epoch, &mut guard).await?.is_none() {
                *guard = Some(Live {
                    epoch,
                    group: Group::default(),
                    offsets: BTreeMap::new(),
                    sessions: HashMap::new(),
                    rebalance_deadline: None,
                });
            }
            let live = guard.as_mut().expect("loaded or created");
            let (member, new) = match requested {
                Some(id) if live.group.members.contains_key(&id) => (id, false),
                Some(id) => {
                    let reserved = slot.pending.lock().unwrap().remove(&id);
                    (id, reserved)
                }
                None => (format!("m-{:016x}", rand::random::<u64>()), true),
            };
            let before = live.group.generation;
            let joined = self
                .update(name, &slot, live, |g| g.join(name, &member, new, spec))
                .await?;
            live.sessions
                .insert(member.clone(), Instant::now() + session);
            if joined && new {
                self.activity
                    .push("group", format!("group {name}: member {member} joined"));
            }
            (member, before)
        };
        let mut changes = slot.changed.subscribe();
        loop {
            {
                let mut guard = slot.live.lock().await;
                let live = self
                    .load(name, self.epoch()?, &mut guard)
                    .await?
                    .ok_or_else(|| GroupError::UnknownGroup(name.to_owned()))?;
                live.group.member(name, &member)?;
                // A generation that includes the member completed: answer
                // with it even if another rebalance has started since (the
                // member, not heartbeating while it waits, would otherwise
                // miss it and be dropped); its heartbeat says to join again.
                if live.group.state != GroupState::Rebalancing || live.group.generation > before {
                    return Ok((member, live.group.clone()));
                }
            }
            // Wake on a change, and now and then to notice a lost lease.
            let _ = tokio::time::timeout(Duration::from_millis(250), changes.changed()).await;
        }
    }

    /// A Kafka member's SyncGroup: the leader's carries the assignments.
    /// Waits until the group is stable at `generation`, and returns it.
    pub async fn sync(
        &self,
        name: &str,
        member: &str,
        generation: u64,
        assignments: Option<state::KafkaAssignments>,
    ) -> Result<Group> {
        self.with_group(name, async |slot, live| {
            self.update(name, slot, live, |g| {
                g.sync(name, member, generation, assignments)
            })
            .await
        })
        .await?;
        let slot = self.slot(name);
        let mut changes = slot.changed.subscribe();
        loop {
            let group = self
                .with_group(name, async |_, live| Ok(live.group.clone()))
                .await?;
            group.member(name, member)?;
            if group.state == GroupState::Rebalancing || group.generation != generation {
                return Err(GroupError::Rebalancing(name.to_owned()));
            }
            if group.state == GroupState::Stable {
                return Ok(group);
            }
            let _ = tokio::time::timeout(Duration::from_millis(250), changes.changed()).await;
        }
    }

    /// Runs `f` on a group that exists, loaded at the current epoch.
    async fn with_group<T>(
        &self,
        name: &str,
        f: impl AsyncFnOnce(&Slot, &mut Live) -> Result<T>,
    ) -> Result<T> {
        validate_group_name(name).map_err(GroupError::InvalidGroup)?;
        let epoch = self.epoch()?;
        let slot = self.slot(name);
        let mut guard = slot.live.lock().await;
        let live = self
            .load(name, epoch, &mut guard)
            .await?
            .ok_or_else(|| GroupError::UnknownGroup(name.to_owned()))?;
        f(&slot, live).await
    }

    /// Keeps a member's session alive; says whether to join again.
    pub async fn heartbeat(
        &self,
        name: &str,
        member: &str,
        generation: u64,
    ) -> Result<(u64, bool)> {
        self.with_group(name, async |_, live| {
            let m = live.group.member(name, member)?;
            let session = Duration::from_millis(m.session_timeout_ms);
            live.sessions
                .insert(member.to_owned(), Instant::now() + session);
            let current = live.group.generation;
            match live.group.state {
                GroupState::Rebalancing => Ok((current, true)),
                _ if generation != current => Err(GroupError::StaleGeneration {
                    group: name.to_owned(),
                    generation,
                    current,
                }),
                _ => Ok((current, false)),
            }
        })
        .await
    }

    /// Removes a member at once; the others rebalance.
    pub async fn leave(&self, name: &str, member: &str) -> Result<()> {
        self.with_group(name, async |slot, live| {
            live.group.member(name, member)?;
            self.update(name, slot, live, |g| Ok(g.remove(&[member.to_owned()])))
                .await?;
            self.activity
                .push("group", format!("group {name}: member {member} left"));
            Ok(())
        })
        .await
    }

    /// Stores a member's offsets: checked here for a clear answer, and
    /// again in Redis where it counts.
    pub async fn commit(&self, name: &str, commit: Commit) -> Result<Offsets> {
        if commit.offsets.is_empty() {
            return Err(GroupError::Invalid(
                "a commit names at least one offset".into(),
            ));
        }
        self.with_group(name, async |_, live| {
            let group = &live.group;
            let m = group.member(name, &commit.member_id)?;
            if group.state == GroupState::Syncing {
                // Nobody holds partitions until the leader's assignment.
                return Err(GroupError::Rebalancing(name.to_owned()));
            }
            if commit.generation != group.generation {
                return Err(GroupError::StaleGeneration {
                    group: name.to_owned(),
                    generation: commit.generation,
                    current: group.generation,
                });
            }
            let mut offsets = Vec::with_capacity(commit.offsets.len());
            for o in &commit.offsets {
                let tp = TopicPartition::new(&o.topic, o.partition);
                if !m.assignment.contains(&tp) {
                    return Err(GroupError::NotAssigned {
                        group: name.to_owned(),
                        member: commit.member_id.clone(),
                        partition: tp,
                        generation: group.generation,
                    });
                }
                self.check_committable(&tp, o.offset)?;
                offsets.push((tp, o.offset));
            }
            let written = self
                .store
                .commit_offsets(
                    live.epoch,
                    name,
                    commit.generation,
                    &commit.member_id,
                    &offsets,
                )
                .await?;
            match written {
                GroupWrite::Done => {}
                // Memory and Redis disagree: only another leader could have
                // written, and then this one is fenced.
                _ => return Err(GroupError::NotLeader),
            }
            let session = Duration::from_millis(m.session_timeout_ms);
            live.sessions
                .insert(commit.member_id.clone(), Instant::now() + session);
            live.offsets.extend(offsets);
            Ok(offsets_of(name, &live.offsets, None))
        })
        .await
    }

    /// Stores offsets for a group with no members (a Kafka client that
    /// assigns itself partitions but commits under a group id), creating
    /// the group if needed; refused while the group has members.
    pub async fn commit_unmanaged(&self, name: &str, offsets: &[PartitionOffset]) -> Result<()> {
        validate_group_name(name).map_err(GroupError::InvalidGroup)?;
        let epoch = self.epoch()?;
        let slot = self.slot(name);
        let mut guard = slot.live.lock().await;
        let members = match self.load(name, epoch, &mut guard).await? {
            Some(live) => live.group.members.len(),
            None => 0,
        };
        if members > 0 {
            return Err(GroupError::NotEmpty {
                group: name.to_owned(),
                members,
            });
        }
        let mut checked = Vec::with_capacity(offsets.len());
        for o in offsets {
            let tp = TopicPartition::new(&o.topic, o.partition);
            self.check_committable(&tp, o.offset)?;
            checked.push((tp, o.offset));
        }
        match self.store.reset_offsets(epoch, name, &checked).await? {
            GroupWrite::Done => {}
            _ => {
                return Err(GroupError::NotEmpty {
                    group: name.to_owned(),
                    members,
                });
            }
        }
        if let Some(live) = guard.as_mut() {
            live.offsets.extend(checked);
        }
        Ok(())
    }

    /// A copy of the group as stored, `None` for a group never seen.
    pub async fn group(&self, name: &str) -> Result<Option<Group>> {
        match self
            .with_group(name, async |_, live| Ok(live.group.clone()))
            .await
        {
            Err(GroupError::UnknownGroup(_)) => Ok(None),
            other => other.map(Some),
        }
    }

    /// The group's committed offsets (none for a group never seen).
    pub async fn offsets(&self, name: &str, topic: Option<&str>) -> Result<Offsets> {
        match self
            .with_group(name, async |_, live| {
                Ok(offsets_of(name, &live.offsets, topic))
            })
            .await
        {
            Err(GroupError::UnknownGroup(_)) => Ok(Offsets {
                group: name.to_owned(),
                offsets: Vec::new(),
            }),
            other => other,
        }
    }

    pub async fn describe(&self, name: &str) -> Result<GroupDetail> {
        self.with_group(name, async |_, live| {
            Ok(detail(name, &live.group, &live.offsets, &self.topics))
        })
        .await
    }

    pub async fn list(&self) -> Result<Vec<GroupSummary>> {
        self.epoch()?;
        let mut out = Vec::new();
        for name in self.store.group_names().await? {
            match self.describe(&name).await {
                Ok(d) => out.push(summary(&d)),
                Err(GroupError::UnknownGroup(_) | GroupError::InvalidGroup(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Moves a memberless group's offsets (creating the group if needed).
    pub async fn reset(
        &self,
        name: &str,
        to: ResetTo,
        topics: Option<Vec<String>>,
    ) -> Result<Offsets> {
        validate_group_name(name).map_err(GroupError::InvalidGroup)?;
        let epoch = self.epoch()?;
        let slot = self.slot(name);
        let mut guard = slot.live.lock().await;
        let loaded = self.load(name, epoch, &mut guard).await?;
        let (members, mut known) = match &loaded {
            Some(live) => (
                live.group.members.len(),
                live.group
                    .topics()
                    .into_iter()
                    .map(str::to_owned)
                    .chain(live.offsets.keys().map(|tp| tp.topic.clone()))
                    .collect::<Vec<_>>(),
            ),
            None => (0, Vec::new()),
        };
        if members > 0 {
            return Err(GroupError::NotEmpty {
                group: name.to_owned(),
                members,
            });
        }
        let mut topics = topics.unwrap_or_else(|| std::mem::take(&mut known));
        topics.sort();
        topics.dedup();
        if topics.is_empty() {
            return Err(GroupError::Invalid(format!(
                "group {name:?} has no topics to reset; name them in \"topics\""
            )));
        }
        let all = self.store.topics().await?;
        let mut offsets = Vec::new();
        for topic in &topics {
            validate_topic_name(topic).map_err(GroupError::InvalidTopic)?;
            let count = *all
                .get(topic)
                .ok_or_else(|| GroupError::UnknownTopic(topic.clone()))?;
            for p in 0..count {
                let tp = TopicPartition::new(topic, p);
                let offset = self.reset_target(&tp, to)?;
                offsets.push((tp, offset));
            }
        }
        match self.store.reset_offsets(epoch, name, &offsets).await? {
            GroupWrite::Done => {}
            _ => {
                return Err(GroupError::NotEmpty {
                    group: name.to_owned(),
                    members,
                });
            }
        }
        *guard = None; // reloaded with the new offsets on next use
        self.activity.push(
            "group",
            format!(
                "group {name}: offsets of {} reset to {to:?}",
                topics.join(", ")
            ),
        );
        Ok(Offsets {
            group: name.to_owned(),
            offsets: offsets
                .into_iter()
                .map(|(tp, offset)| PartitionOffset {
                    topic: tp.topic,
                    partition: tp.partition,
                    offset,
                })
                .collect(),
        })
    }

    /// Expires sessions, ends overdue rebalances, and rebalances groups
    /// whose topics gained partitions. Run every [`TICK`] on every node;
    /// does nothing on a node that does not lead.
    pub async fn tick(&self) {
        let Some(epoch) = self.gate.epoch() else {
            let mut loaded_at = self.loaded_at.lock().unwrap();
            if *loaded_at != 0 {
                *loaded_at = 0;
                self.slots.lock().unwrap().clear();
            }
            return;
        };
        if *self.loaded_at.lock().unwrap() != epoch {
            // A new leader takes over every stored group, so that members
            // that never come back expire.
            match self.store.group_names().await {
                Ok(names) => {
                    for name in names {
                        self.slot(&name);
                    }
                    *self.loaded_at.lock().unwrap() = epoch;
                }
                Err(e) => tracing::debug!("cannot list groups: {e}"),
            }
        }
        let slots: Vec<(String, Arc<Slot>)> = self
            .slots
            .lock()
            .unwrap()
            .iter()
            .map(|(n, s)| (n.clone(), Arc::clone(s)))
            .collect();
        for (name, slot) in slots {
            if let Err(e) = self.tick_group(&name, &slot, epoch).await {
                tracing::debug!(group = %name, "group upkeep: {e}");
            }
        }
    }

    async fn tick_group(&self, name: &str, slot: &Slot, epoch: u64) -> Result<()> {
        let mut guard = slot.live.lock().await;
        let Some(live) = self.load(name, epoch, &mut guard).await? else {
            return Ok(());
        };
        let now = Instant::now();
        // A member waiting for its join (or, in a Kafka group, sync) answer
        // is not expected to heartbeat.
        let rebalancing = matches!(
            live.group.state,
            GroupState::Rebalancing | GroupState::Syncing
        );
        let expired: Vec<String> = live
            .sessions
            .iter()
            .filter(|(id, deadline)| {
                **deadline <= now
                    && !(rebalancing && live.group.members.get(*id).is_some_and(|m| m.joined))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let overdue = match live.rebalance_deadline {
            // A leader that never sent its assignment is dropped, so that
            // another one is elected.
            Some(deadline) if deadline <= now => match live.group.awaited_leader() {
                Some(leader) => vec![leader.to_owned()],
                None => live.group.waiting_for(),
            },
            _ => Vec::new(),
        };
        let gone: Vec<String> = expired
            .into_iter()
            .chain(overdue)
            .filter(|id| live.group.members.contains_key(id))
            .collect();
        live.sessions
            .retain(|id, _| live.group.members.contains_key(id));
        if !gone.is_empty() {
            self.update(name, slot, live, |g| Ok(g.remove(&gone)))
                .await?;
            for id in &gone {
                self.activity.push(
                    "group",
                    format!(
                        "group {name}: member {id} dropped (session expired or did not rejoin)"
                    ),
                );
            }
            return Ok(());
        }
        if live.group.outgrown(&self.local_counts(&live.group)) {
            self.activity
                .push("group", format!("group {name}: a topic gained partitions"));
            self.update(name, slot, live, |g| {
                g.start_rebalance(None);
                Ok(true)
            })
            .await?;
        }
        Ok(())
    }

    /// Partition counts as this node holds them (the leader opens every
    /// topic it knows).
    fn local_counts(&self, group: &Group) -> BTreeMap<String, u32> {
        group
            .topics()
            .into_iter()
            .filter_map(|t| {
                self.topics
                    .get(t)
                    .map(|topic| (t.to_owned(), topic.partitions.len() as u32))
            })
            .collect()
    }

    /// A committed offset names the next record to read: at most the HWM.
    fn check_committable(&self, tp: &TopicPartition, offset: u64) -> Result<()> {
        let hwm = self.high_water_mark(tp);
        if offset > hwm {
            return Err(GroupError::OffsetOutOfRange {
                partition: tp.clone(),
                offset,
                hwm,
            });
        }
        Ok(())
    }

    fn high_water_mark(&self, tp: &TopicPartition) -> u64 {
        self.partition(tp).map_or(0, |p| p.hwm())
    }

    fn partition(&self, tp: &TopicPartition) -> Option<crate::partition::Partition> {
        self.topics
            .get(&tp.topic)?
            .partitions
            .get(tp.partition as usize)
            .cloned()
    }

    /// The offset a reset moves `tp` to.
    fn reset_target(&self, tp: &TopicPartition, to: ResetTo) -> Result<u64> {
        let Some(p) = self.partition(tp) else {
            return Ok(0);
        };
        let (start, hwm) = (p.reader().start_offset(), p.hwm());
        Ok(match to {
            ResetTo::Earliest => start,
            ResetTo::Latest => hwm,
            ResetTo::Offset(offset) => offset.clamp(start, hwm),
            ResetTo::Time(ms) => {
                first_at_or_after(&p, start, hwm, ms).map_err(|message| GroupError::Storage {
                    partition: tp.clone(),
                    message,
                })?
            }
        })
    }
}

/// A group's members, partitions, committed offsets and lag, the lag
/// against the high-water marks of `topics` (this node's partitions). Its
/// topics are those subscribed to and those with committed offsets (an
/// empty group still shows what it read); its partitions, all of theirs.
fn detail(
    name: &str,
    group: &Group,
    offsets: &BTreeMap<TopicPartition, u64>,
    topics: &TopicRegistry,
) -> GroupDetail {
    let names: BTreeSet<&str> = group
        .topics()
        .into_iter()
        .chain(offsets.keys().map(|tp| tp.topic.as_str()))
        .collect();
    let mut partitions: BTreeMap<TopicPartition, Option<String>> =
        offsets.keys().map(|tp| (tp.clone(), None)).collect();
    for topic in &names {
        let count = topics.get(topic).map_or(0, |t| t.partitions.len() as u32);
        for p in 0..count {
            partitions
                .entry(TopicPartition::new(*topic, p))
                .or_default();
        }
    }
    for (id, m) in &group.members {
        for tp in &m.assignment {
            partitions.insert(tp.clone(), Some(id.clone()));
        }
    }
    GroupDetail {
        group: name.to_owned(),
        state: group.state,
        generation: group.generation,
        assignor: group.assignor,
        kafka_protocol: group.kafka.as_ref().map(|k| k.protocol.clone()),
        topics: names.into_iter().map(str::to_owned).collect(),
        members: group
            .members
            .iter()
            .map(|(id, m)| MemberDetail {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                topics: m.topics.clone(),
                session_timeout_ms: m.session_timeout_ms,
                assignment: m.assignment.clone(),
                joined: m.joined,
            })
            .collect(),
        partitions: partitions
            .into_iter()
            .map(|(tp, member_id)| {
                let (start, hwm) = topics
                    .get(&tp.topic)
                    .and_then(|t| t.partitions.get(tp.partition as usize).cloned())
                    .map_or((0, 0), |p| (p.reader().start_offset(), p.hwm()));
                let committed = offsets.get(&tp).copied();
                PartitionDetail {
                    lag: hwm.saturating_sub(committed.unwrap_or(start)),
                    topic: tp.topic,
                    partition: tp.partition,
                    member_id,
                    committed,
                    high_water_mark: hwm,
                }
            })
            .collect(),
    }
}

/// Every group's summary as stored in Redis, with lag against this node's
/// high-water marks: what any node's dashboard shows.
pub async fn summaries(
    store: &ClusterStore,
    topics: &TopicRegistry,
) -> Result<Vec<GroupSummary>, crate::store::StoreError> {
    let mut out = Vec::new();
    for name in store.group_names().await? {
        let Some(stored) = store.load_group(&name).await? else {
            continue;
        };
        let group: Group = stored
            .state
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        out.push(summary(&detail(&name, &group, &stored.offsets, topics)));
    }
    Ok(out)
}

fn summary(d: &GroupDetail) -> GroupSummary {
    GroupSummary {
        group: d.group.clone(),
        state: d.state,
        generation: d.generation,
        members: d.members.len(),
        topics: d.topics.clone(),
        lag: d.partitions.iter().map(|p| p.lag).sum(),
    }
}

fn offsets_of(name: &str, offsets: &BTreeMap<TopicPartition, u64>, topic: Option<&str>) -> Offsets {
    Offsets {
        group: name.to_owned(),
        offsets: offsets
            .iter()
            .filter(|(tp, _)| topic.is_none_or(|t| t == tp.topic))
            .map(|(tp, &offset)| PartitionOffset {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
            })
            .collect(),
    }
}

fn longest_session(group: &Group) -> Duration {
    let ms = group
        .members
        .values()
        .map(|m| m.session_timeout_ms)
        .max()
        .unwrap_or(0);
    Duration::from_millis(ms)
}

/// A tenth of the session, at most 500 ms: a member learns of a rebalance
/// soon after it starts, so the group is stable again within about
/// half a second of a session expiring.
pub fn heartbeat_interval(session_timeout_ms: u64) -> u64 {
    (session_timeout_ms / 10).clamp(50, 500)
}

fn describe_assignment(group: &Group) -> String {
    group
        .members
        .iter()
        .map(|(id, m)| {
            let held: Vec<String> = m.assignment.iter().map(ToString::to_string).collect();
            format!("{id} holds [{}]", held.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The first offset in `[start, hwm)` whose record was written at or after
/// `ms`, by binary search over record timestamps (exact when they only
/// grow, as producers' send times do); `hwm` if there is none.
fn first_at_or_after(
    p: &crate::partition::Partition,
    start: u64,
    hwm: u64,
    ms: i64,
) -> Result<u64, String> {
    let timestamp_at = |offset: u64| -> Result<i64, String> {
        let chunk = p.reader().read(offset, hwm, 1).map_err(|e| e.to_string())?;
        for b in batch::batches(&chunk) {
            let b = b.map_err(|e| e.to_string())?;
            for r in b.records() {
                let r = r.map_err(|e| e.to_string())?;
                if r.offset == offset {
                    return Ok(r.timestamp);
                }
            }
        }
        Err(format!("offset {offset} is not readable"))
    };
    let (mut lo, mut hi) = (start, hwm);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if timestamp_at(mid)? < ms {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}
