//! In-process tests of the partition core: a leading partition and its
//! followers in one process, against a real `redis-server` (fencing is the
//! real Lua scripts), with rounds carried by [`DirectLink`] — the
//! follower's own `Partition::replicate`, without HTTP — and time that
//! the lag rule reads moved by hand ([`ManualClock`]). Each table states
//! the situation and what must come out of it; the multi-process tests and
//! nemesis cover the same paths through real nodes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::future::{BoxFuture, join_all, ready};
use partition_log::{BatchBuilder, LogConfig, LogError, PartitionLog, batch};
use tempfile::TempDir;
use testkit::RedisServer;
use tokio::sync::{mpsc, oneshot, watch};

use super::{FetchVerdict, Partition, ReplicaError, WriteError, WriterContext};
use crate::{
    activity::ActivityLog,
    clock::Clock,
    lease::LeaseGate,
    metrics::Metrics,
    peer::{
        CallError, EpochEnd, LeaderPosition, PeerAddr, Peers, Refusal, ReplicaLink,
        ReplicateParams, Replicated,
    },
    role::Event,
    store::{Acquire, ClusterStore},
};

const TOPIC: &str = "t";
const LEADER: &str = "a";

/// Monotonic time that moves only when told to.
#[derive(Debug)]
struct ManualClock(Mutex<Instant>);

impl ManualClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Instant::now())))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

/// How the link to one follower behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Up,
    /// Nothing listens: dropped from the ISR at once.
    Down,
    /// Answers, but refuses every round (never re-synced for the epoch):
    /// dropped once its lag time has passed.
    Refusing,
}

/// Rounds go straight to the follower partitions, as the binary port
/// hands them over: queued on the follower partition in the order they
/// were sent, so the leader keeps several in flight.
#[derive(Debug, Default)]
struct DirectLink {
    followers: Mutex<HashMap<String, (Partition, LinkState)>>,
    /// Per follower, the task that queues its rounds in order.
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Queued>>>,
}

type Queued = (
    Partition,
    ReplicateParams,
    Bytes,
    oneshot::Sender<Result<u64, ReplicaError>>,
);

impl DirectLink {
    fn set(&self, url: &str, state: LinkState) {
        self.followers.lock().unwrap().get_mut(url).unwrap().1 = state;
    }

    fn queue(&self, url: &str) -> mpsc::UnboundedSender<Queued> {
        let mut queues = self.queues.lock().unwrap();
        let queue = queues.entry(url.to_owned()).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
            tokio::spawn(async move {
                while let Some((partition, params, body, answer)) = rx.recv().await {
                    let leader = LeaderPosition {
                        hwm: params.hwm,
                        log_start: params.log_start,
                    };
                    let done = partition
                        .queue_replicate(params.epoch, params.prev, body, leader)
                        .await;
                    tokio::spawn(async move { answer.send(done.await) });
                }
            });
            tx
        });
        queue.clone()
    }
}

impl ReplicaLink for DirectLink {
    fn replicate(
        &self,
        peer: &PeerAddr,
        params: ReplicateParams,
        body: Bytes,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<Replicated, CallError>> {
        let url = peer.url.clone();
        let target = self.followers.lock().unwrap().get(&url).cloned();
        let Some((partition, state)) = target else {
            return Box::pin(ready(Err(CallError::Unreachable(url))));
        };
        let refused = match state {
            LinkState::Up => None,
            LinkState::Down => Some(CallError::Unreachable(url.clone())),
            LinkState::Refusing => {
                let end = partition.reader().end_offset();
                Some(CallError::Refused(Refusal::NeedsTruncation { end }))
            }
        };
        if let Some(refused) = refused {
            return Box::pin(ready(Err(refused)));
        }
        let (answer, answered) = oneshot::channel();
        let _ = self.queue(&url).send((partition, params, body, answer));
        Box::pin(async move {
            match answered.await {
                Ok(Ok(end)) => Ok(Replicated { end }),
                Ok(Err(ReplicaError::Refused(r))) => Err(CallError::Refused(r)),
                Ok(Err(e)) => Err(CallError::Failed(e.to_string())),
                Err(_) => Err(CallError::Failed("the queue stopped".to_owned())),
            }
        })
    }

    fn ordered(&self, _: &PeerAddr) -> bool {
        true
    }
}

/// One node's side of a partition: its handle, gate and what it reports.
struct Replica {
    partition: Partition,
    gate: Arc<LeaseGate>,
    events: mpsc::Receiver<Event>,
    activity: ActivityLog,
    _dir: TempDir,
}

/// A leader and its followers over one Redis.
struct Bench {
    _redis: RedisServer,
    env: Env,
    leader: Replica,
    followers: Vec<Replica>,
    epoch: u64,
}

impl Bench {
    /// The leader leads at a fresh epoch with `followers` in its ISR, each
    /// following it; `min_insync` and `lag_time` as a node's flags.
    async fn start(followers: usize, min_insync: u32, lag_time: Duration) -> Self {
        let redis = RedisServer::start().await;
        let store = redis_store(&redis, "partition-test").await;
        let epoch = match store.acquire(LEADER, Duration::from_secs(60), 0).await {
            Ok(Acquire::Won { epoch }) => epoch,
            other => panic!("acquiring the lease: {other:?}"),
        };
        let ids: Vec<String> = (0..followers).map(|i| format!("f{i}")).collect();
        let env = Env {
            store,
            link: Arc::new(DirectLink::default()),
            clock: ManualClock::new(),
            peers: Peers::default(),
            min_insync,
            lag_time,
        };
        let addr = |id| PeerAddr {
            url: url(id),
            tcp: None,
        };
        env.peers
            .replace(ids.iter().map(|id| (id.clone(), addr(id))).collect());
        let mut replicas = Vec::new();
        for id in &ids {
            let follower = env.open(id, temp_dir(), 0);
            let end = follower
                .partition
                .follow(
                    epoch,
                    EpochEnd {
                        epoch: None,
                        end_offset: None,
                    },
                )
                .await
                .expect("following");
            assert_eq!(end, 0);
            env.link
                .followers
                .lock()
                .unwrap()
                .insert(url(id), (follower.partition.clone(), LinkState::Up));
            replicas.push(follower);
        }
        let isr: Vec<String> = std::iter::once(LEADER.to_owned()).chain(ids).collect();
        env.store
            .set_isr(TOPIC, 0, epoch, &isr)
            .await
            .expect("storing the ISR");
        let leader = env.open(LEADER, temp_dir(), 0);
        leader
            .gate
            .open(epoch, Instant::now() + Duration::from_secs(60));
        leader.partition.lead(epoch, 0).await.expect("leading");
        Self {
            _redis: redis,
            env,
            leader,
            followers: replicas,
            epoch,
        }
    }

    async fn isr(&self) -> Vec<String> {
        self.env
            .store
            .isr(TOPIC, 0)
            .await
            .unwrap()
            .unwrap_or_default()
    }

    async fn stored_hwm(&self) -> u64 {
        self.env.store.hwm(TOPIC, 0).await.unwrap()
    }
}

fn url(id: &str) -> String {
    format!("direct://{id}")
}

/// What every replica of a test shares: Redis, the links, the clock, the
/// registry, and the flags.
struct Env {
    store: ClusterStore,
    link: Arc<DirectLink>,
    clock: Arc<ManualClock>,
    peers: Peers,
    min_insync: u32,
    lag_time: Duration,
}

impl Env {
    /// Node `id`'s partition over the log in `dir`, its HWM known as `hwm`.
    fn open(&self, id: &str, dir: TempDir, hwm: u64) -> Replica {
        let (events_tx, events) = mpsc::channel(16);
        let gate = Arc::new(LeaseGate::default());
        let activity = ActivityLog::default();
        let ctx = WriterContext {
            runtime: tokio::runtime::Handle::current(),
            node_id: id.to_owned(),
            store: self.store.clone(),
            gate: Arc::clone(&gate),
            events: events_tx,
            activity: activity.clone(),
            peers: self.peers.clone(),
            link: Arc::clone(&self.link) as Arc<dyn ReplicaLink>,
            clock: Arc::clone(&self.clock) as Arc<dyn Clock>,
            min_insync_replicas: self.min_insync,
            replica_lag_time: self.lag_time,
            max_round_bytes: super::MAX_ROUND_BYTES,
            metrics: Arc::new(Metrics::default()),
        };
        let (_, topic_config) = watch::channel(Default::default());
        // A log this test wrote and closed a moment ago can still be
        // locked: a process another test spawns inherits the lock file's
        // descriptor between its fork and exec.
        let deadline = Instant::now() + Duration::from_secs(5);
        let partition = loop {
            let opened = Partition::open(
                TOPIC,
                0,
                dir.path(),
                LogConfig::default(),
                hwm,
                topic_config.clone(),
                ctx.clone(),
            );
            match opened {
                Err(LogError::Locked(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                opened => break opened.expect("opening the partition"),
            }
        };
        Replica {
            partition,
            gate,
            events,
            activity,
            _dir: dir,
        }
    }
}

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("a temp dir")
}

async fn redis_store(redis: &RedisServer, cluster: &str) -> ClusterStore {
    ClusterStore::new(&redis.url(), cluster, Duration::from_secs(2)).expect("a store")
}

/// A client batch of `n` one-byte records.
fn records(n: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::with_capacity(0, n * 16);
    for i in 0..n {
        builder.push(0, None, &[i as u8]);
    }
    builder.finish()
}

async fn produce(partition: &Partition, n: usize) -> Result<u64, WriteError> {
    let written = partition.produce(vec![records(n)]).await?;
    Ok(written[0].base_offset)
}

fn kinds(activity: &ActivityLog) -> Vec<&'static str> {
    activity.recent().iter().map(|a| a.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_round_is_on_every_isr_follower_and_its_hwm_in_redis() {
    let bench = Bench::start(2, 3, Duration::from_secs(10)).await;
    let offset = produce(&bench.leader.partition, 3)
        .await
        .expect("acknowledged");
    assert_eq!(offset, 0);
    for follower in &bench.followers {
        assert_eq!(follower.partition.reader().end_offset(), 3);
    }
    assert_eq!(bench.stored_hwm().await, 3);
    assert_eq!(bench.leader.partition.hwm(), 3);
    assert_eq!(bench.isr().await, ["a", "f0", "f1"]);
}

/// Requests are committed, and answered, in the order they were sent:
/// offsets follow submission order without gaps, whatever rounds they
/// were grouped into.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_consecutive_offsets_in_submission_order() {
    let bench = Bench::start(1, 2, Duration::from_secs(10)).await;
    let sizes: Vec<usize> = (0..40).map(|i| 1 + i % 4).collect();
    let sends = sizes.iter().map(|&n| produce(&bench.leader.partition, n));
    let offsets: Vec<u64> = join_all(sends)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("all acknowledged");
    let mut expected = 0;
    for (offset, n) in offsets.iter().zip(&sizes) {
        assert_eq!(*offset, expected, "offsets {offsets:?}");
        expected += *n as u64;
    }
    assert_eq!(bench.stored_hwm().await, expected);
    assert_eq!(bench.followers[0].partition.reader().end_offset(), expected);
}

/// What happens to a round when the one follower's link fails, by the
/// ISR minimum: the follower leaves the ISR in Redis before the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_cannot_take_a_round_leaves_the_isr_before_the_answer() {
    struct Case {
        link: LinkState,
        min_insync: u32,
        acknowledged: bool,
        isr: &'static [&'static str],
    }
    let cases = [
        Case {
            link: LinkState::Up,
            min_insync: 2,
            acknowledged: true,
            isr: &["a", "f0"],
        },
        Case {
            link: LinkState::Down,
            min_insync: 1,
            acknowledged: true,
            isr: &["a"],
        },
        Case {
            link: LinkState::Down,
            min_insync: 2,
            acknowledged: false,
            isr: &["a"],
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let bench = Bench::start(1, case.min_insync, Duration::from_secs(10)).await;
        bench.env.link.set(&url("f0"), case.link);
        let result = produce(&bench.leader.partition, 1).await;
        assert_eq!(result.is_ok(), case.acknowledged, "case {i}: {result:?}");
        if let Err(e) = &result {
            // Appended on the leader already: the outcome is unknown.
            assert!(
                matches!(e, WriteError::NotEnoughReplicas { appended: true, .. }),
                "case {i}: {e:?}"
            );
            assert!(!e.is_definite(), "case {i}");
        }
        assert_eq!(bench.isr().await, case.isr, "case {i}");
        let shrunk = kinds(&bench.leader.activity).contains(&"isr_shrink");
        assert_eq!(shrunk, case.link != LinkState::Up, "case {i}");
    }
}

/// A follower that answers but never takes the round is kept until its
/// lag time has passed on the (injected) clock, then dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_is_dropped_when_its_lag_time_passes() {
    let lag_time = Duration::from_secs(3600);
    let bench = Bench::start(1, 1, lag_time).await;
    bench.env.link.set(&url("f0"), LinkState::Refusing);
    let leader = bench.leader.partition.clone();
    let round = tokio::spawn(async move { produce(&leader, 1).await });
    // Within its lag time the follower is retried, not dropped.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !round.is_finished(),
        "answered within the follower's lag time"
    );
    assert_eq!(bench.isr().await, ["a", "f0"]);
    bench.env.clock.advance(lag_time);
    let result = tokio::time::timeout(Duration::from_secs(10), round)
        .await
        .expect("answered once the lag time passed")
        .unwrap();
    assert_eq!(result.expect("acknowledged by the leader alone"), 0);
    assert_eq!(bench.isr().await, ["a"]);
}

/// Once Redis holds a newer epoch, a commit at the old one fails: nothing
/// is acknowledged, the HWM stays, the lease driver is told, and later
/// writes at that epoch fail too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_at_a_superseded_epoch_fails_and_the_partition_steps_down() {
    let mut bench = Bench::start(1, 1, Duration::from_secs(10)).await;
    produce(&bench.leader.partition, 1)
        .await
        .expect("acknowledged at the first epoch");
    assert!(bench.env.store.release(LEADER, bench.epoch).await.unwrap());
    let newer = match bench
        .env
        .store
        .acquire("f0", Duration::from_secs(60), 0)
        .await
    {
        Ok(Acquire::Won { epoch }) => epoch,
        other => panic!("the follower takes the lease: {other:?}"),
    };
    assert!(newer > bench.epoch);
    for attempt in 0..2 {
        let result = produce(&bench.leader.partition, 1).await;
        assert!(
            result.is_err(),
            "attempt {attempt} acknowledged: {result:?}"
        );
    }
    assert_eq!(bench.stored_hwm().await, 1);
    assert_eq!(bench.leader.partition.hwm(), 1);
    let event = tokio::time::timeout(Duration::from_secs(5), bench.leader.events.recv())
        .await
        .expect("the lease driver is told");
    assert_eq!(event, Some(Event::EpochRejected { epoch: bench.epoch }));
    assert!(kinds(&bench.leader.activity).contains(&"error"));
}

/// The leader's answer to a follower's fetch, by where the follower is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_checks_answer_by_epoch_offset_and_isr() {
    let bench = Bench::start(1, 1, Duration::from_secs(10)).await;
    // f0 leaves the ISR; f1 (never a member, unknown to the registry)
    // fetches too.
    bench.env.link.set(&url("f0"), LinkState::Down);
    produce(&bench.leader.partition, 4)
        .await
        .expect("acknowledged");
    assert_eq!(bench.isr().await, ["a"]);
    let e = bench.epoch;
    let cases: [(&str, u64, u64, FetchVerdict); 6] = [
        ("f0", e + 1, 4, FetchVerdict::Refused(Refusal::NotLeader)),
        (
            "f0",
            e,
            5,
            FetchVerdict::Refused(Refusal::NonContiguous { end: 4 }),
        ),
        ("f0", e, 2, FetchVerdict::Behind { end: 4 }),
        // Caught up, but not registered: not admitted yet.
        ("f1", e, 4, FetchVerdict::Behind { end: 4 }),
        // Caught up and reachable: joins the ISR, in Redis first.
        ("f0", e, 4, FetchVerdict::InSync),
        // In the ISR and at the HWM: its data comes by push.
        ("f0", e, 4, FetchVerdict::InSync),
    ];
    for (i, (replica, epoch, offset, expected)) in cases.into_iter().enumerate() {
        let verdict = bench
            .leader
            .partition
            .fetch_check(epoch, replica.to_owned(), offset)
            .await;
        assert_eq!(
            verdict, expected,
            "case {i}: {replica} at {offset}, epoch {epoch}"
        );
    }
    assert_eq!(bench.isr().await, ["a", "f0"]);
    assert!(kinds(&bench.leader.activity).contains(&"isr_expand"));
}

/// KIP-101/279 truncation on a follower whose log holds epoch 1 at
/// offsets 0..4 and epoch 2 at 4..8 (batches of two records), by what the
/// new leader says and the follower's HWM: it cuts to where the logs
/// agree, at a batch boundary, never below the HWM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_truncates_to_where_it_agrees_with_the_leader() {
    struct Case {
        leader_end: EpochEnd,
        hwm: u64,
        end_after: u64,
    }
    let at = |epoch: u32, end: u64| EpochEnd {
        epoch: Some(epoch),
        end_offset: Some(end),
    };
    let cases = [
        // The leader has all of epoch 2 and more: nothing to cut.
        Case {
            leader_end: at(2, 10),
            hwm: 0,
            end_after: 8,
        },
        // Epoch 2 ended earlier on the leader: cut there.
        Case {
            leader_end: at(2, 6),
            hwm: 0,
            end_after: 6,
        },
        // Mid-batch: down to the batch boundary below.
        Case {
            leader_end: at(2, 5),
            hwm: 0,
            end_after: 4,
        },
        // The leader never had epoch 2: its last common epoch is 1.
        Case {
            leader_end: at(1, 4),
            hwm: 0,
            end_after: 4,
        },
        Case {
            leader_end: at(1, 2),
            hwm: 0,
            end_after: 2,
        },
        // Never below the HWM, whatever the leader says.
        Case {
            leader_end: at(1, 2),
            hwm: 6,
            end_after: 6,
        },
        // A leader with no epoch at all: everything uncommitted goes.
        Case {
            leader_end: EpochEnd {
                epoch: None,
                end_offset: None,
            },
            hwm: 2,
            end_after: 2,
        },
    ];
    let redis = RedisServer::start().await;
    let env = Env {
        store: redis_store(&redis, "truncation-test").await,
        link: Arc::new(DirectLink::default()),
        clock: ManualClock::new(),
        peers: Peers::default(),
        min_insync: 1,
        lag_time: Duration::from_secs(10),
    };
    for (i, case) in cases.iter().enumerate() {
        let dir = temp_dir();
        {
            let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
            for (base, epoch) in [(0, 1), (2, 1), (4, 2), (6, 2)] {
                let mut bytes = records(2);
                batch::stamp(&mut bytes, base, epoch);
                log.append(&bytes).unwrap();
            }
        }
        let follower = env.open("f", dir, case.hwm);
        let end = follower
            .partition
            .follow(3, case.leader_end)
            .await
            .expect("following");
        assert_eq!(end, case.end_after, "case {i}");
        assert_eq!(
            follower.partition.reader().end_offset(),
            case.end_after,
            "case {i}"
        );
        let truncated = kinds(&follower.activity).contains(&"truncation");
        assert_eq!(truncated, case.end_after < 8, "case {i}");
    }
}
