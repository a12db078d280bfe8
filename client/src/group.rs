//! [`GroupConsumer`]: a member of a consumer group. The members of a group
//! share the partitions of its topics, each partition read by one member at
//! a time, and the group's progress — the committed offset of each
//! partition, the next offset to read — is kept by the cluster, so a
//! restarted or replacement member continues where the group left off.
//! `docs/groups.md` has the protocol; `docs/api.md` the calls.
//!
//! What a consumer does, and in which order:
//! - [`GroupConsumer::join`] joins, gets its partitions
//!   ([`GroupEvent::Assigned`]) and starts each at its committed offset, or
//!   by [`GroupConfig::start`] where nothing is committed.
//! - A background task heartbeats the session (module `heartbeat`) and
//!   stops when `poll` has not run for longer than the session timeout, so
//!   a member that stops polling loses its partitions.
//! - [`GroupConsumer::poll`] first acts on what the heartbeats learnt, then
//!   (with [`GroupConfig::auto_commit`]) commits the positions after every
//!   record earlier polls returned, then reads. A rebalance: revoke
//!   ([`GroupEvent::Revoked`]), commit, join again with the member id,
//!   [`GroupEvent::Assigned`], committed offsets. A lost session
//!   (`unknown_member`: the member was a zombie): revoke, commit nothing,
//!   forget the positions, join again as a new member.
//!
//! Invariants:
//! - After every join each assigned partition is read from its committed
//!   offset: nothing committed is skipped, and what was read but not
//!   committed is read again (at-least-once).
//! - A position moves only past records `poll` returned (module
//!   `positions`), and only positions that moved are committed.
//! - Commits carry the member's current id and generation; the cluster
//!   refuses a zombie's, and a refusal always ends in a join.
//! - Hooks run on the caller's task, inside `join`/`poll`/`commit`/`leave`,
//!   in the order the events happen: `Revoked` of a set of partitions
//!   always comes before the next `Assigned`.
//! - Across a leader failover nothing changes for the member: every call
//!   follows the leader ([`YakClient::call`]), and the new leader serves
//!   the group from Redis with the same ids and generation.
//!
//! ```no_run
//! # async fn demo() -> yak_client::Result<()> {
//! use std::time::Duration;
//! use yak_client::{GroupConfig, GroupConsumer, YakClient};
//!
//! let client = YakClient::new(["http://127.0.0.1:5001", "http://127.0.0.1:5002"])?;
//! let config = GroupConfig::new("billing", ["invoices.all"])
//!     .on_event(|event| println!("{event:?}"));
//! let mut member = GroupConsumer::join(client, config).await?;
//! for _ in 0..100 {
//!     // Each poll first commits what the previous ones returned.
//!     for r in member.poll(Duration::from_secs(1)).await? {
//!         println!("{}/{}@{}: {}", r.topic, r.partition, r.record.offset, r.record.payload);
//!     }
//! }
//! member.leave().await // commits the last poll's records
//! # }
//! ```

mod heartbeat;
mod membership;
mod positions;

use std::{sync::Arc, time::Duration};

pub use yak_protocol::group::{
    Assignor, DEFAULT_SESSION_TIMEOUT_MS, GroupDetail, GroupList, GroupState, GroupSummary,
    MemberDetail, Offsets, PartitionDetail, PartitionOffset, Reset, ResetTo, SESSION_TIMEOUT_MS,
    TopicPartition, validate_group_name,
};
use yak_protocol::{
    group::{Commit, Join},
    validate_topic_name,
};

use crate::{
    cluster::YakClient,
    consumer::StartAt,
    error::{ClientError, Result},
    model::Consumed,
};
use heartbeat::{Heartbeat, Session};
use membership::Verdict;
use positions::Positions;

/// A hook on assignments and revocations.
pub type Listener = Arc<dyn Fn(&GroupEvent) + Send + Sync>;

/// Most records per partition per poll (the node's limit).
const MAX_RECORDS: usize = 10_000;

/// How a member joins and reads.
#[derive(Clone)]
pub struct GroupConfig {
    pub group: String,
    pub topics: Vec<String>,
    /// The member is dropped when no heartbeat arrives for this long, and
    /// stops heartbeating when `poll` has not run for this long. 500 ms to
    /// 300 s; default 10 s.
    pub session_timeout: Duration,
    /// Every member of a group must use the same; default sticky.
    pub assignor: Assignor,
    /// Free text shown beside the member (a host name, a process id).
    pub client_id: Option<String>,
    /// Commit, at each poll (and before a rebalance, and at leave), the
    /// positions after every record earlier polls returned. Default true.
    pub auto_commit: bool,
    /// Where to start in a partition with no committed offset: `Earliest`
    /// (default) or `Latest`. `Offset` is refused.
    pub start: StartAt,
    /// Most records per partition per poll, 1 to 10,000; default 500.
    pub max_records: usize,
    /// Called with every [`GroupEvent`], in order, during `join`, `poll`,
    /// `commit` and `leave`.
    pub listener: Option<Listener>,
}

impl GroupConfig {
    pub fn new(
        group: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            session_timeout: Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS),
            assignor: Assignor::default(),
            client_id: None,
            auto_commit: true,
            start: StartAt::Earliest,
            max_records: 500,
            listener: None,
        }
    }

    /// The same configuration with `listener` as its hook.
    pub fn on_event(mut self, listener: impl Fn(&GroupEvent) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// What is wrong with the configuration, before anything is sent.
    fn check(&self) -> Result<()> {
        let invalid = |message: String| Err(ClientError::Config(message));
        validate_group_name(&self.group).or_else(invalid)?;
        if self.topics.is_empty() {
            return invalid("a group member needs at least one topic".to_owned());
        }
        for topic in &self.topics {
            validate_topic_name(topic).or_else(invalid)?;
        }
        let timeout = self.session_timeout.as_millis();
        if !(*SESSION_TIMEOUT_MS.start() as u128..=*SESSION_TIMEOUT_MS.end() as u128)
            .contains(&timeout)
        {
            return invalid(format!(
                "the session timeout must be {} to {} ms, not {timeout}",
                SESSION_TIMEOUT_MS.start(),
                SESSION_TIMEOUT_MS.end()
            ));
        }
        if let StartAt::Offset(_) = self.start {
            return invalid(
                "a group member starts at the earliest or the latest offset where nothing \
                 is committed; move a group's offsets with a reset"
                    .to_owned(),
            );
        }
        if !(1..=MAX_RECORDS).contains(&self.max_records) {
            return invalid(format!(
                "max_records must be 1 to {MAX_RECORDS}, not {}",
                self.max_records
            ));
        }
        Ok(())
    }
}

// By hand: a listener is a closure.
impl std::fmt::Debug for GroupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConfig")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("session_timeout", &self.session_timeout)
            .field("assignor", &self.assignor)
            .field("client_id", &self.client_id)
            .field("auto_commit", &self.auto_commit)
            .field("start", &self.start)
            .field("max_records", &self.max_records)
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

/// A record read by a group member, and where it is from.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub topic: String,
    pub partition: u32,
    pub record: Consumed,
}

/// What happened to a member's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// After every join: the whole new assignment.
    Assigned {
        generation: u64,
        partitions: Vec<TopicPartition>,
    },
    /// The member no longer reads these: before it joins again (and before
    /// the final commit of them, with auto-commit), when it lost its
    /// session (then nothing could be committed), and when it leaves.
    Revoked { partitions: Vec<TopicPartition> },
}

/// Where a member is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Holding its partitions, positions loaded: reading.
    Reading,
    /// Joined; the committed offsets of its partitions are not loaded yet.
    Joined,
    /// The group is rebalancing: commit (with auto-commit), then join again
    /// with the member id.
    Rejoin,
    /// No session (never joined, expired, or left): join without an id.
    Unjoined,
}

/// A member of a consumer group. See the [module](self) documentation.
#[derive(Debug)]
pub struct GroupConsumer {
    client: YakClient,
    config: GroupConfig,
    /// The id the last join gave ("" before the first).
    member_id: String,
    generation: u64,
    /// What the member holds, as the hooks were told.
    assignment: Vec<TopicPartition>,
    phase: Phase,
    /// Positions of the partitions held; kept through a revocation until
    /// the final commit.
    positions: Positions,
    heartbeat: Heartbeat,
}

impl GroupConsumer {
    /// Joins `config.group`: returns once the group is stable with this
    /// member in it (up to the longest session timeout of its members) and
    /// the committed offsets of its partitions are loaded.
    pub async fn join(client: YakClient, config: GroupConfig) -> Result<Self> {
        config.check()?;
        let heartbeat = Heartbeat::start(client.clone(), config.group.clone());
        let mut consumer = Self {
            positions: Positions::new(&[], &[], config.start),
            client,
            config,
            member_id: String::new(),
            generation: 0,
            assignment: Vec::new(),
            phase: Phase::Unjoined,
            heartbeat,
        };
        let _polling = consumer.heartbeat.polling();
        consumer.catch_up().await?;
        Ok(consumer)
    }

    /// The next records of the partitions the member holds, at most
    /// [`GroupConfig::max_records`] per partition, waiting up to `wait`
    /// (at most a minute) for some. Returns early, maybe with nothing, when
    /// the group starts rebalancing; the next poll then takes part in it.
    pub async fn poll(&mut self, wait: Duration) -> Result<Vec<GroupRecord>> {
        let revalidated = self.heartbeat.revalidate().await;
        let _polling = self.heartbeat.polling();
        let signalled = self.heartbeat.take(&self.member_id, self.generation);
        for verdict in [revalidated, signalled].into_iter().flatten() {
            self.lose(verdict);
        }
        if self.phase == Phase::Reading && self.config.auto_commit {
            self.commit_or_rejoin().await?;
        }
        self.catch_up().await?;
        let Self {
            client,
            config,
            positions,
            heartbeat,
            member_id,
            generation,
            ..
        } = self;
        let wait = wait.min(Duration::from_secs(60));
        let verdict = tokio::select! {
            read = positions.read(client, config.max_records, wait) => return read,
            verdict = heartbeat.signalled(member_id, *generation) => verdict,
        };
        self.lose(verdict);
        Ok(Vec::new())
    }

    /// Commits the positions after every record returned so far (nothing is
    /// sent if none moved since the last commit). A refusal because the
    /// group moved on revokes the partitions (the next poll joins again)
    /// and is returned: those records are not committed.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets = self.positions.uncommitted();
        if offsets.is_empty() {
            return Ok(());
        }
        let commit = Commit {
            member_id: self.member_id.clone(),
            generation: self.generation,
            offsets,
        };
        match self.client.commit_group(&self.config.group, &commit).await {
            Ok(_) => {
                self.positions.mark_committed(&commit.offsets);
                Ok(())
            }
            Err(e) => {
                if let Some(verdict) = Verdict::of(&e) {
                    tracing::info!(group = %self.config.group, "commit refused: {e}");
                    // Whatever it is, these positions cannot be committed.
                    self.positions.clear();
                    self.lose(verdict);
                }
                Err(e)
            }
        }
    }

    /// Moves the member's position in `partition`, which it must hold: the
    /// next poll reads it from `offset`, and the next commit commits that.
    /// For a reader that stops part-way through what a poll returned (the
    /// rest would otherwise count as read), or goes back to retry.
    pub fn seek(&mut self, partition: &TopicPartition, offset: u64) -> Result<()> {
        if self.assignment.contains(partition) && self.positions.seek(partition, offset) {
            Ok(())
        } else {
            Err(ClientError::Config(format!(
                "{partition} is not assigned to this member (it holds {:?})",
                self.assignment
            )))
        }
    }

    /// The partitions the member holds now.
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assignment
    }

    /// The id the group knows the member by (a new one after its session
    /// was lost).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The generation of the group the member last joined.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Leaves the group: revokes the partitions, commits (with
    /// auto-commit), and tells the group, which gives them to the others at
    /// once. A failed commit is returned after the member has left.
    pub async fn leave(mut self) -> Result<()> {
        self.revoke();
        let committed = if self.config.auto_commit {
            self.commit().await
        } else {
            Ok(())
        };
        self.heartbeat.stop();
        let left = match self.phase {
            Phase::Unjoined => Ok(()),
            _ => {
                self.client
                    .leave_group(&self.config.group, &self.member_id)
                    .await
            }
        };
        committed.and(left)
    }

    /// Acts on the heartbeat's or a refusal's verdict: revokes the
    /// partitions; a lost session also loses the positions.
    fn lose(&mut self, verdict: Verdict) {
        self.revoke();
        match verdict {
            Verdict::Rejoin if self.phase != Phase::Unjoined => self.phase = Phase::Rejoin,
            Verdict::Rejoin => {}
            Verdict::Expired => {
                tracing::info!(
                    group = %self.config.group,
                    member = %self.member_id,
                    "session lost: joining again as a new member"
                );
                self.positions.clear();
                self.heartbeat.stop();
                self.phase = Phase::Unjoined;
            }
        }
    }

    /// Tells the hook the member no longer holds its partitions (once).
    fn revoke(&mut self) {
        if !self.assignment.is_empty() {
            let partitions = std::mem::take(&mut self.assignment);
            self.emit(GroupEvent::Revoked { partitions });
        }
    }

    /// Auto-commit: a refusal that calls for a join is not the caller's
    /// error, it is the rebalance `catch_up` goes through next (the
    /// records are read again, by this member or another).
    async fn commit_or_rejoin(&mut self) -> Result<()> {
        match self.commit().await {
            Err(e) if Verdict::of(&e).is_none() => Err(e),
            _ => Ok(()),
        }
    }

    /// Goes through the phases until the member reads. Each step leaves a
    /// phase the next call resumes from, should it fail.
    async fn catch_up(&mut self) -> Result<()> {
        loop {
            match self.phase {
                Phase::Reading => return Ok(()),
                Phase::Joined => self.load_offsets().await?,
                Phase::Rejoin => {
                    if self.config.auto_commit {
                        self.commit_or_rejoin().await?;
                    }
                    if self.phase == Phase::Rejoin {
                        self.positions.clear();
                        self.join_group(true).await?;
                    }
                }
                Phase::Unjoined => self.join_group(false).await?,
            }
        }
    }

    /// One join, with the member id or as a new member.
    async fn join_group(&mut self, with_id: bool) -> Result<()> {
        let join = Join {
            member_id: with_id.then(|| self.member_id.clone()),
            topics: self.config.topics.clone(),
            session_timeout_ms: self.config.session_timeout.as_millis() as u64,
            assignor: self.config.assignor,
            client_id: self.config.client_id.clone(),
        };
        let joined = match self.client.join_group(&self.config.group, &join).await {
            Ok(joined) => joined,
            Err(e) if with_id && Verdict::of(&e) == Some(Verdict::Expired) => {
                self.lose(Verdict::Expired);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        tracing::info!(
            group = %joined.group,
            member = %joined.member_id,
            generation = joined.generation,
            partitions = joined.assignment.len(),
            "joined"
        );
        self.heartbeat.follow(Session::of(&joined));
        self.member_id = joined.member_id;
        self.generation = joined.generation;
        self.assignment = joined.assignment;
        self.phase = Phase::Joined;
        self.emit(GroupEvent::Assigned {
            generation: self.generation,
            partitions: self.assignment.clone(),
        });
        Ok(())
    }

    /// Starts each assigned partition at its committed offset.
    async fn load_offsets(&mut self) -> Result<()> {
        let committed = self.client.group_offsets(&self.config.group).await?;
        self.positions = Positions::new(&self.assignment, &committed.offsets, self.config.start);
        self.phase = Phase::Reading;
        Ok(())
    }

    fn emit(&self, event: GroupEvent) {
        if let Some(listener) = &self.config.listener {
            listener(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_checked_before_anything_is_sent() {
        let ok = GroupConfig::new("billing", ["invoices.all"]);
        assert!(ok.check().is_ok());
        assert_eq!(ok.session_timeout, Duration::from_secs(10));
        assert_eq!(ok.assignor, Assignor::Sticky);
        assert!(ok.auto_commit);
        assert_eq!(ok.start, StartAt::Earliest);
        assert_eq!(ok.max_records, 500);
        let refused = |config: GroupConfig| match config.check() {
            Err(ClientError::Config(message)) => message,
            other => panic!("{config:?} was not refused: {other:?}"),
        };
        assert!(refused(GroupConfig::new("a b", ["t"])).starts_with("group name"));
        assert!(refused(GroupConfig::new("g", Vec::<String>::new())).contains("topic"));
        assert!(refused(GroupConfig::new("g", ["../t"])).contains("topic"));
        let short = GroupConfig {
            session_timeout: Duration::from_millis(100),
            ..ok.clone()
        };
        assert!(refused(short).contains("session timeout"));
        let offset = GroupConfig {
            start: StartAt::Offset(3),
            ..ok.clone()
        };
        assert!(refused(offset).contains("reset"));
        let none = GroupConfig {
            max_records: 0,
            ..ok
        };
        assert!(refused(none).contains("max_records"));
    }

    /// A member can live in a task of its own: it and its futures are
    /// `Send` (checked when this compiles).
    #[allow(dead_code)]
    fn members_are_send(client: YakClient, config: GroupConfig, mut member: GroupConsumer) {
        fn send<T: Send>(_: T) {}
        send(GroupConsumer::join(client, config));
        send(member.poll(Duration::ZERO));
        send(member.commit());
        send(member.leave());
    }

    #[tokio::test]
    async fn a_bad_configuration_fails_the_join_without_a_cluster() {
        // Nothing listens on port 9: a request would fail differently.
        let client = YakClient::new(["http://127.0.0.1:9"]).unwrap();
        let config = GroupConfig::new("g", ["t"]).on_event(|_| panic!("no event"));
        let config = GroupConfig {
            start: StartAt::Offset(0),
            ..config
        };
        let e = GroupConsumer::join(client, config).await.unwrap_err();
        assert!(matches!(e, ClientError::Config(_)), "{e:?}");
    }
}
