//! The group consumer against real nodes and a real `redis-server` (the
//! testkit): members split a topic's partitions and together read every
//! record once; a member joining or leaving moves partitions, and only
//! records read but not committed are read again; a new member resumes at
//! the committed offsets; a leader failover mid-read loses, skips and
//! repeats nothing; a member that stops polling loses its partitions, its
//! late commit is refused, and it comes back as a new member.
//!
//! Members poll concurrently, each in a loop of its own, while the test
//! watches what they read and hold; every wait for the group to settle is
//! a check with a deadline.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::{join, join_all};
use serde_json::json;
use testkit::{Cluster, describe_topic, wait_for};
use yak_client::{
    ErrorCode, GroupConfig, GroupConsumer, GroupEvent, Producer, ProducerConfig, YakClient,
};

const WAIT: Duration = Duration::from_secs(30);
/// What one poll of a member waits for records.
const POLL: Duration = Duration::from_millis(50);
const TOPIC: &str = "orders";
const PARTITIONS: u32 = 3;

/// A record by where it is stored.
type At = (u32, u64);

/// What the test sees of a member, kept up to date by its polls and its
/// hook (shared, so it can be watched while the member polls).
#[derive(Debug, Clone, Default)]
struct Seen {
    member_id: String,
    generation: u64,
    held: BTreeSet<u32>,
    read: Vec<At>,
    /// The generation each record of `read` was read in.
    read_in: Vec<u64>,
    events: Vec<GroupEvent>,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at generation {} holds {:?}, read {} records, events {:?}",
            self.member_id,
            self.generation,
            self.held,
            self.read.len(),
            self.events
        )
    }
}

/// A member and what the test sees of it.
struct Member {
    consumer: GroupConsumer,
    seen: Arc<Mutex<Seen>>,
}

impl Member {
    /// A member of `group` reading [`TOPIC`], configured by `tweak`, whose
    /// hook records its events in `seen`.
    fn config(
        group: &str,
        tweak: impl FnOnce(GroupConfig) -> GroupConfig,
        seen: &Arc<Mutex<Seen>>,
    ) -> GroupConfig {
        let seen = Arc::clone(seen);
        let config = GroupConfig::new(group, [TOPIC])
            .on_event(move |event| seen.lock().unwrap().events.push(event.clone()));
        tweak(config)
    }

    fn new(consumer: GroupConsumer, seen: Arc<Mutex<Seen>>) -> Self {
        let member = Self { consumer, seen };
        member.publish();
        member
    }

    /// Joins; returns once the group is stable with it in it.
    async fn join(
        client: &YakClient,
        group: &str,
        tweak: impl FnOnce(GroupConfig) -> GroupConfig,
    ) -> Self {
        let seen = Arc::default();
        let config = Self::config(group, tweak, &seen);
        let consumer = GroupConsumer::join(client.clone(), config)
            .await
            .expect("joined");
        Self::new(consumer, seen)
    }

    /// Joins in a task of its own while `others` poll (the group is stable
    /// again only once they have joined the rebalance too).
    async fn join_while_polling(
        client: &YakClient,
        group: &str,
        tweak: impl FnOnce(GroupConfig) -> GroupConfig,
        others: &mut [&mut Member],
    ) -> Self {
        let seen = Arc::default();
        let config = Self::config(group, tweak, &seen);
        let joining = tokio::spawn(GroupConsumer::join(client.clone(), config));
        poll_until("the new member to join", others, |_| joining.is_finished()).await;
        let consumer = joining.await.expect("no panic").expect("joined");
        Self::new(consumer, seen)
    }

    /// One poll; returns how many records it got.
    async fn poll(&mut self) -> usize {
        let records = self.consumer.poll(POLL).await.expect("a poll");
        let generation = self.consumer.generation();
        {
            let mut seen = self.seen.lock().unwrap();
            for r in &records {
                assert_eq!(r.topic, TOPIC);
                seen.read.push((r.partition, r.record.offset));
                seen.read_in.push(generation);
            }
        }
        self.publish();
        records.len()
    }

    /// Copies the member's id, generation and partitions to `seen`.
    fn publish(&self) {
        let mut seen = self.seen.lock().unwrap();
        seen.member_id = self.consumer.member_id().to_owned();
        seen.generation = self.consumer.generation();
        seen.held = self
            .consumer
            .assignment()
            .iter()
            .map(|tp| tp.partition)
            .collect();
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

/// Lets every member of `members` poll in a loop of its own, concurrently
/// (as members in their own processes would: one blocked in a join does
/// not hold the others up), until `done` holds for what the test sees of
/// them; panics after [`WAIT`].
async fn poll_until(what: &str, members: &mut [&mut Member], done: impl Fn(&[Seen]) -> bool) {
    let views: Vec<Arc<Mutex<Seen>>> = members.iter().map(|m| Arc::clone(&m.seen)).collect();
    let stop = AtomicBool::new(false);
    let polls = join_all(members.iter_mut().map(|member| {
        let stop = &stop;
        async move {
            while !stop.load(Ordering::Relaxed) {
                member.poll().await;
            }
        }
    }));
    let watch = async {
        let started = Instant::now();
        loop {
            let seen: Vec<Seen> = views.iter().map(|v| v.lock().unwrap().clone()).collect();
            if done(&seen) {
                break;
            }
            if started.elapsed() > WAIT {
                let members: Vec<String> = seen.iter().map(ToString::to_string).collect();
                panic!("timed out waiting for {what}:\n{}", members.join("\n"));
            }
            tokio::time::sleep(testkit::POLL_INTERVAL).await;
        }
        stop.store(true, Ordering::Relaxed);
    };
    join(polls, watch).await;
}

/// How often each record was read, over all `members`.
fn tally(members: &[Seen]) -> BTreeMap<At, usize> {
    let mut tally = BTreeMap::new();
    for at in members.iter().flat_map(|m| &m.read) {
        *tally.entry(*at).or_default() += 1;
    }
    tally
}

/// The records read, over all `members`.
fn read(members: &[Seen]) -> BTreeSet<At> {
    members
        .iter()
        .flat_map(|m| m.read.iter().copied())
        .collect()
}

/// Every record of `count` per partition, once.
fn each_once(count: u64) -> BTreeMap<At, usize> {
    (0..PARTITIONS)
        .flat_map(|p| (0..count).map(move |o| ((p, o), 1)))
        .collect()
}

/// A cluster with `followers` followers, a client of every node, and
/// [`TOPIC`] with [`PARTITIONS`] partitions.
async fn setup(followers: usize) -> (Cluster, YakClient) {
    let cluster = Cluster::builder().followers(followers).start().await;
    let urls: Vec<String> = cluster.nodes().iter().map(|n| n.url().to_owned()).collect();
    let client = YakClient::new(urls).expect("a client");
    client
        .create_topic(TOPIC, Some(PARTITIONS))
        .await
        .expect("topic created");
    (cluster, client)
}

/// Appends `count` records to every partition.
async fn produce(client: &YakClient, count: u64) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for p in 0..PARTITIONS {
        let payloads: Vec<Vec<u8>> = (0..count)
            .map(|i| json!({"p": p, "i": i}).to_string().into_bytes())
            .collect();
        producer
            .send_records(TOPIC, p, payloads.iter().map(|v| (None, v.as_slice())))
            .await
            .expect("acknowledged");
    }
}

/// The group's committed offset of each partition.
async fn committed(client: &YakClient, group: &str) -> BTreeMap<u32, u64> {
    let offsets = client.group_offsets(group).await.expect("offsets");
    offsets
        .offsets
        .iter()
        .map(|o| (o.partition, o.offset))
        .collect()
}

fn all_partitions() -> BTreeSet<u32> {
    (0..PARTITIONS).collect()
}

/// Two members hold disjoint sets of partitions that together are all.
fn split(seen: &[Seen]) -> bool {
    let [a, b] = seen else { panic!("two members") };
    !a.held.is_empty()
        && !b.held.is_empty()
        && a.held.is_disjoint(&b.held)
        && &a.held | &b.held == all_partitions()
}

/// Every partition at `offset`.
fn all_at(offset: u64) -> BTreeMap<u32, u64> {
    (0..PARTITIONS).map(|p| (p, offset)).collect()
}

#[tokio::test]
async fn two_members_split_a_topic_and_together_read_every_record_once() {
    let (_cluster, client) = setup(0).await;
    let mut a = Member::join(&client, "split", |c| c).await;
    assert_eq!(
        a.seen().held,
        all_partitions(),
        "alone, it holds everything"
    );
    let first = a.consumer.generation();
    let mut b = Member::join_while_polling(&client, "split", |c| c, &mut [&mut a]).await;
    poll_until("the split", &mut [&mut a, &mut b], split).await;
    let (sa, sb) = (a.seen(), b.seen());
    assert!(sa.generation > first);
    assert_eq!(sa.generation, sb.generation);
    assert_ne!(sa.member_id, sb.member_id);

    produce(&client, 40).await;
    poll_until("every record read", &mut [&mut a, &mut b], |m| {
        read(m).len() >= 120
    })
    .await;
    // One more poll each: commits what the last polls returned, and
    // shows nothing more comes.
    assert_eq!(a.poll().await + b.poll().await, 0);
    let seen = [a.seen(), b.seen()];
    assert_eq!(tally(&seen), each_once(40));
    for (member, other) in [(&seen[0], &seen[1]), (&seen[1], &seen[0])] {
        assert!(
            member
                .read
                .iter()
                .all(|(p, _)| member.held.contains(p) && !other.held.contains(p)),
            "a member reads only its own partitions"
        );
    }
    assert_eq!(committed(&client, "split").await, all_at(40));

    let detail = client.describe_group("split").await.expect("described");
    assert_eq!(detail.members.len(), 2);
    assert_eq!(detail.generation, a.consumer.generation());
    assert!(detail.partitions.iter().all(|p| p.lag == 0), "{detail:?}");
    let listed = client.list_groups().await.expect("listed");
    let summary = listed
        .groups
        .iter()
        .find(|g| g.group == "split")
        .expect("the group is listed");
    assert_eq!((summary.members, summary.lag), (2, 0));
}

#[tokio::test]
async fn a_third_member_reads_again_only_what_was_not_committed() {
    let (_cluster, client) = setup(0).await;
    // `a` commits by hand, `b` automatically; five records per partition
    // and poll.
    let mut a = Member::join(&client, "third", |c| GroupConfig {
        auto_commit: false,
        max_records: 5,
        ..c
    })
    .await;
    let mut b = Member::join_while_polling(
        &client,
        "third",
        |c| GroupConfig {
            max_records: 5,
            ..c
        },
        &mut [&mut a],
    )
    .await;
    poll_until("the split", &mut [&mut a, &mut b], split).await;
    produce(&client, 30).await;

    // `a`: one page committed, then pages it never commits.
    assert!(a.poll().await > 0);
    a.consumer.commit().await.expect("committed");
    let committed_by_a = a.seen().read.len();
    let (held, generation) = (a.consumer.assignment().to_vec(), a.consumer.generation());
    assert!(a.poll().await > 0);
    // `b`: two pages; its next poll or the rebalance commits them.
    assert!(b.poll().await > 0 && b.poll().await > 0);
    let a_events = a.seen().events.len();

    let mut c = Member::join_while_polling(&client, "third", |c| c, &mut [&mut a, &mut b]).await;
    poll_until(
        "three members with a partition each",
        &mut [&mut a, &mut b, &mut c],
        |m| m.iter().all(|m| m.held.len() == 1),
    )
    .await;
    let seen = [a.seen(), b.seen(), c.seen()];
    let everyone: BTreeSet<u32> = seen.iter().flat_map(|m| m.held.iter().copied()).collect();
    assert_eq!(everyone, all_partitions());
    // `a` was told: what it held revoked, then its new partition assigned.
    let events = &seen[0].events[a_events..];
    assert!(
        matches!(
            events,
            [GroupEvent::Revoked { partitions }, GroupEvent::Assigned { .. }, ..]
                if *partitions == held
        ),
        "{events:?}"
    );

    // What `a` read after its commit and before the rebalance is read
    // twice; everything else once.
    let expected = |seen: &[Seen]| {
        let a = &seen[0];
        let mut expected = each_once(30);
        for (at, g) in a.read[committed_by_a..]
            .iter()
            .zip(&a.read_in[committed_by_a..])
        {
            if *g == generation {
                expected.insert(*at, 2);
            }
        }
        expected
    };
    poll_until(
        "every record read, the uncommitted ones twice",
        &mut [&mut a, &mut b, &mut c],
        |m| {
            let (tally, expected) = (tally(m), expected(m));
            expected.iter().all(|(at, n)| tally.get(at) >= Some(n))
        },
    )
    .await;
    a.consumer.commit().await.expect("committed");
    for member in [&mut a, &mut b, &mut c] {
        assert_eq!(member.poll().await, 0, "nothing more");
    }
    let seen = [a.seen(), b.seen(), c.seen()];
    let expected = expected(&seen);
    assert!(
        expected.values().any(|n| *n == 2),
        "a read uncommitted records"
    );
    assert_eq!(tally(&seen), expected);
    assert_eq!(committed(&client, "third").await, all_at(30));
}

#[tokio::test]
async fn a_member_that_leaves_hands_its_partitions_over_at_once() {
    let (_cluster, client) = setup(0).await;
    // A long session: only the leave can move partitions within the test.
    let long = |c| GroupConfig {
        session_timeout: Duration::from_secs(60),
        max_records: 4,
        ..c
    };
    let mut a = Member::join(&client, "leave", long).await;
    let mut b = Member::join_while_polling(&client, "leave", long, &mut [&mut a]).await;
    poll_until("the split", &mut [&mut a, &mut b], split).await;
    produce(&client, 20).await;
    assert!(b.poll().await > 0);
    let b_held = b.consumer.assignment().to_vec();
    let b_seen = Arc::clone(&b.seen);
    b.consumer.leave().await.expect("left");
    let b_seen = b_seen.lock().unwrap().clone();
    assert!(
        matches!(b_seen.events.last(), Some(GroupEvent::Revoked { partitions }) if *partitions == b_held),
        "leaving revokes: {:?}",
        b_seen.events
    );

    let started = Instant::now();
    poll_until("the survivor to hold everything", &mut [&mut a], |m| {
        m[0].held == all_partitions()
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no session had to expire"
    );
    poll_until("every record read", &mut [&mut a], |m| {
        m[0].read.len() + b_seen.read.len() >= 60
    })
    .await;
    assert_eq!(a.poll().await, 0);
    assert_eq!(
        tally(&[a.seen(), b_seen]),
        each_once(20),
        "what b read was committed when it left"
    );
    assert_eq!(committed(&client, "leave").await, all_at(20));
}

#[tokio::test]
async fn a_new_consumer_resumes_at_the_committed_offsets() {
    let (_cluster, client) = setup(0).await;
    produce(&client, 10).await;
    let mut a = Member::join(&client, "resume", |c| GroupConfig {
        max_records: 3,
        auto_commit: false,
        ..c
    })
    .await;
    assert_eq!(a.poll().await, 9, "three of each partition");
    a.consumer.commit().await.expect("committed");
    assert_eq!(a.poll().await, 9, "read, never committed");
    a.consumer.leave().await.expect("left");
    assert_eq!(committed(&client, "resume").await, all_at(3));

    let mut again = Member::join(&client, "resume", |c| c).await;
    poll_until("the rest read", &mut [&mut again], |m| {
        m[0].read.len() >= 21
    })
    .await;
    assert_eq!(again.poll().await, 0);
    let expected: BTreeMap<At, usize> = (0..PARTITIONS)
        .flat_map(|p| (3..10).map(move |o| ((p, o), 1)))
        .collect();
    assert_eq!(tally(&[again.seen()]), expected);
    assert_eq!(committed(&client, "resume").await, all_at(10));
}

#[tokio::test]
async fn members_read_through_a_leader_kill_losing_skipping_and_repeating_nothing() {
    let (mut cluster, client) = setup(1).await;
    cluster.wait_for_peers(WAIT).await;
    // One record per partition, so that the follower joins every ISR.
    produce(&client, 1).await;
    let leader = cluster.broker().url().to_owned();
    wait_for("the follower in every ISR", WAIT, || async {
        let (_, body) = describe_topic(&leader, TOPIC).await;
        let partitions = body["partitions"].as_array()?;
        partitions
            .iter()
            .all(|p| p["isr"].as_array().is_some_and(|isr| isr.len() == 2))
            .then_some(())
    })
    .await;
    let small = |c| GroupConfig {
        max_records: 4,
        ..c
    };
    let mut a = Member::join(&client, "failover", small).await;
    let mut b = Member::join_while_polling(&client, "failover", small, &mut [&mut a]).await;
    poll_until("the split", &mut [&mut a, &mut b], split).await;
    let before = [a.seen(), b.seen()];
    produce(&client, 29).await;
    // A page each, then another, which commits the first.
    assert!(a.poll().await > 0 && b.poll().await > 0);
    assert!(a.poll().await > 0 && b.poll().await > 0);
    assert!(read(&[a.seen(), b.seen()]).len() < 90, "mid-read");

    cluster.broker_mut().kill9();
    produce(&client, 30).await;
    poll_until("every record read", &mut [&mut a, &mut b], |m| {
        read(m).len() >= 180
    })
    .await;
    assert_eq!(a.poll().await + b.poll().await, 0);
    let leader = cluster.leader_info().await.expect("a leader");
    assert_eq!(leader.id, "follower-1", "the leader changed");
    let after = [a.seen(), b.seen()];
    assert_eq!(tally(&after), each_once(60));
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(
            (&after.member_id, after.generation),
            (&before.member_id, before.generation),
            "the member kept its session, and the group did not rebalance"
        );
    }
    assert_eq!(committed(&client, "failover").await, all_at(60));
}

#[tokio::test]
async fn a_member_that_stops_polling_loses_its_partitions_and_comes_back_as_a_new_member() {
    let (_cluster, client) = setup(0).await;
    let short = |c| GroupConfig {
        session_timeout: Duration::from_millis(1000),
        max_records: 5,
        ..c
    };
    let mut a = Member::join(&client, "zombie", short).await;
    let mut b = Member::join_while_polling(&client, "zombie", short, &mut [&mut a]).await;
    poll_until("the split", &mut [&mut a, &mut b], split).await;
    produce(&client, 20).await;
    let zombie = a.consumer.member_id().to_owned();
    let held = a.consumer.assignment().to_vec();
    assert!(
        a.poll().await > 0,
        "reads a page it will not commit in time"
    );
    let not_committed: BTreeSet<At> = a.seen().read.into_iter().collect();
    let a_events = a.seen().events.len();

    // `a` stops polling: its heartbeats stop after its session timeout,
    // and the group drops it.
    poll_until("the other member to hold everything", &mut [&mut b], |m| {
        m[0].held == all_partitions()
    })
    .await;
    let offsets = committed(&client, "zombie").await;
    let e = a
        .consumer
        .commit()
        .await
        .expect_err("a zombie's commit is refused");
    assert_eq!(e.error_code(), Some(ErrorCode::UnknownMember), "{e}");
    assert_eq!(
        committed(&client, "zombie").await,
        offsets,
        "and moves nothing"
    );
    assert_eq!(
        &a.seen().events[a_events..],
        [GroupEvent::Revoked { partitions: held }],
        "the lost partitions are revoked"
    );
    assert!(a.consumer.assignment().is_empty());

    // The next poll joins as a new member; `b` takes part in the
    // rebalance.
    poll_until(
        "the zombie back as a new member",
        &mut [&mut a, &mut b],
        split,
    )
    .await;
    assert_ne!(a.consumer.member_id(), zombie);
    poll_until("every record read", &mut [&mut a, &mut b], |m| {
        read(m).len() >= 60
    })
    .await;
    assert_eq!(a.poll().await + b.poll().await, 0);
    // At least once: what the zombie could not commit is read again, and
    // nothing else is.
    let mut expected = each_once(20);
    for at in &not_committed {
        *expected.get_mut(at).expect("a stored record") += 1;
    }
    assert_eq!(tally(&[a.seen(), b.seen()]), expected);
    assert_eq!(committed(&client, "zombie").await, all_at(20));

    // A zombie with nothing to commit learns what it is before it reads:
    // it reads nothing more of the partitions it lost.
    let generation = a.consumer.generation();
    poll_until(
        "the other member to hold everything again",
        &mut [&mut b],
        |m| m[0].held == all_partitions(),
    )
    .await;
    produce(&client, 5).await;
    let read_before = a.seen().read.len();
    poll_until("the zombie back again", &mut [&mut a, &mut b], |m| {
        split(m) && read(m).len() >= 75
    })
    .await;
    assert_eq!(a.poll().await + b.poll().await, 0);
    let sa = a.seen();
    assert!(
        sa.read_in[read_before..].iter().all(|g| *g > generation),
        "read in the lost session: {:?}",
        sa.read_in
    );
    let mut expected = each_once(25);
    for at in &not_committed {
        *expected.get_mut(at).expect("a stored record") += 1;
    }
    assert_eq!(tally(&[sa, b.seen()]), expected);
    assert_eq!(committed(&client, "zombie").await, all_at(25));
}
