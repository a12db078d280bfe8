//! `yak-invoices filter`: one member of the consumer group that routes
//! `invoices.all` to `invoices.valid` and `invoices.invalid`.
//!
//! One round: poll (at most 200 records per input partition) → for every
//! record, send its output ([`crate::route`]) with the producer id of its
//! input partition ([`crate::producer_id`]) and its input offset as the
//! sequence, the poll's sends concurrently (64 in flight) → when every
//! send is acknowledged, commit → poll again.
//!
//! Invariants, which make the output exactly-once (docs/groups.md):
//! - **A commit covers only acknowledged output.** The commit of a poll
//!   waits for all its sends; the next poll starts after the commit.
//! - **Nothing is skipped.** A poll with a failed send is abandoned: the
//!   member leaves and joins again, so the group rereads it from the last
//!   commit. Its sends that did succeed are sent again and dropped by the
//!   leader as duplicates.
//! - **At most one poll is uncommitted.** A commit that fails (rather than
//!   being refused because the group moved on, after which the client
//!   joins again by itself) is handled like a failed send.
//! - **Replays stay inside the broker's memory of sequences.** At most 200
//!   records of an input partition — of one producer id — a poll, one
//!   batch each, so a replay repeats at most 200 batches of a producer,
//!   under the 256 the leader remembers.
//! - **A member that may have lost its partitions sends nothing new**:
//!   sends give up after one session timeout (its successor is chosen only
//!   after that long), and a poll older than the session timeout is not
//!   sent at all.

use std::{
    fmt,
    pin::pin,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use yak_client::{
    ClientConfig, ClientError, ConnectArgs, ErrorCode, GroupConfig, GroupConsumer, GroupEvent,
    GroupRecord, Producer, ProducerConfig, StartAt, TopicPartition, YakClient,
};

use crate::{producer_id, route, rule, topics};

/// How long a poll waits for records.
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Most records per input partition per poll: a replay must stay under
/// the 256 batches per producer and partition that the leader remembers.
const MAX_RECORDS: usize = 200;
/// Sends of one poll in flight at once: enough to fill the leader's group
/// commit rounds, few enough not to open a connection per record.
const MAX_IN_FLIGHT: usize = 64;
/// Between attempts to join when the cluster cannot be reached.
const JOIN_BACKOFF: Duration = Duration::from_secs(1);
/// Least time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = rule::SUMMARY)]
pub struct FilterArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The consumer group the filters share.
    #[arg(long, env = "YAK_INVOICES_GROUP", default_value = "invoice-filters")]
    pub group: String,
    /// This member's name in progress lines and in the group's description
    /// [default: filter-<pid>].
    #[arg(long, env = "YAK_INVOICES_INSTANCE")]
    pub instance: Option<String>,
    /// The topic of invoices to route.
    #[arg(long, env = "YAK_INVOICES_INPUT", default_value = topics::ALL)]
    pub input: String,
    /// The group session timeout in milliseconds: a member not heard from
    /// for this long loses its partitions.
    #[arg(long, env = "YAK_INVOICES_SESSION_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(500..=300_000))]
    pub session_timeout_ms: u64,
    /// Records per partition per poll (each poll is committed once all of
    /// its output is acknowledged); at most 200, see docs/groups.md.
    #[arg(long, env = "YAK_INVOICES_MAX_RECORDS", default_value_t = MAX_RECORDS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_RECORDS as u64))]
    pub max_records: usize,
}

impl FilterArgs {
    fn name(&self) -> String {
        self.instance
            .clone()
            .unwrap_or_else(|| format!("filter-{}", std::process::id()))
    }

    fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    fn group_config(&self, name: &str) -> GroupConfig {
        let member = name.to_owned();
        let mut config = GroupConfig::new(&self.group, [&self.input]).on_event(move |event| {
            println!("{member}: {}", describe(event));
        });
        config.session_timeout = self.session_timeout();
        config.client_id = Some(name.to_owned());
        config.auto_commit = false;
        config.start = StartAt::Earliest;
        config.max_records = self.max_records;
        config
    }
}

/// A group event as a progress line.
fn describe(event: &GroupEvent) -> String {
    let list = |partitions: &[TopicPartition]| match partitions {
        [] => "nothing".to_owned(),
        _ => partitions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    match event {
        GroupEvent::Assigned {
            generation,
            partitions,
        } => format!("generation {generation}: reading {}", list(partitions)),
        GroupEvent::Revoked { partitions } => format!("giving up {}", list(partitions)),
    }
}

/// What this member has routed since it started (replays included).
#[derive(Debug, Default)]
struct Routed {
    valid: u64,
    invalid: u64,
}

impl fmt::Display for Routed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records ({} valid, {} invalid)",
            self.valid + self.invalid,
            self.valid,
            self.invalid
        )
    }
}

pub async fn run(args: FilterArgs) -> anyhow::Result<()> {
    let name = args.name();
    let client = args.connect.client(ClientConfig::default())?;
    topics::ensure(&client, &[&args.input, topics::VALID, topics::INVALID]).await?;
    // Sends give up after one session timeout: by then the partitions may
    // belong to another member, and a send that arrives much later could
    // fall outside the leader's memory of sequences.
    let sends = ClientConfig {
        deadline: args.session_timeout(),
        ..ClientConfig::default()
    };
    let producer = Producer::new(args.connect.client(sends)?, ProducerConfig::default());
    let mut shutdown = pin!(shutdown_signal());
    let mut routed = Routed::default();
    let mut last_progress = Instant::now();
    println!(
        "{name}: joining group {} for {} ({} records a poll)",
        args.group, args.input, args.max_records
    );
    loop {
        let mut consumer = tokio::select! {
            () = &mut shutdown => return Ok(()),
            joined = join(&client, &args, &name) => joined?,
        };
        // One membership: rounds until shutdown, or until a round must be
        // abandoned (then the member joins again).
        loop {
            // `None`: shut down. The poll is dropped first, so the member
            // can leave (an unfinished poll commits nothing).
            let polled = tokio::select! {
                () = &mut shutdown => None,
                polled = consumer.poll(POLL_WAIT) => Some(polled),
            };
            let Some(polled) = polled else {
                leave(consumer, &name).await;
                println!("{name}: stopped; routed {routed}");
                return Ok(());
            };
            let records = match polled {
                Ok(records) => records,
                Err(e) => {
                    println!("{name}: poll failed ({e}); joining again");
                    leave(consumer, &name).await;
                    break;
                }
            };
            if records.is_empty() {
                continue;
            }
            let polled_at = Instant::now();
            match send_round(&producer, &args, &records, polled_at).await {
                Ok(round) => {
                    routed.valid += round.valid;
                    routed.invalid += round.invalid;
                }
                Err(e) => {
                    println!(
                        "{name}: abandoning {} records ({e:#}); joining again to reread them \
                         from the last commit",
                        records.len()
                    );
                    leave(consumer, &name).await;
                    break;
                }
            }
            match consumer.commit().await {
                Ok(()) => {}
                // The group moved on: the output is acknowledged, and
                // whoever holds these partitions next rereads them from
                // the last commit; the leader drops the repeated sends.
                // The consumer joins again at its next poll.
                Err(e) if joining_again_mends(&e) => {
                    println!(
                        "{name}: commit refused ({e}); the next owner rereads from the last commit"
                    );
                }
                // Not stored, or not known to be: polling on would let a
                // second poll go uncommitted, twice the replay bound.
                Err(e) => {
                    println!(
                        "{name}: commit failed ({e}); joining again to reread from the last commit"
                    );
                    leave(consumer, &name).await;
                    break;
                }
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                let holding: Vec<String> = consumer
                    .assignment()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                println!("{name}: routed {routed}; holding {}", holding.join(", "));
            }
        }
    }
}

/// Joins the group, retrying while the cluster cannot be reached (a
/// failover) and when the group turned the join down in a way a new join
/// mends (the member was dropped or the group moved on while it waited);
/// fails on any other refusal (a bad name, an assignor mismatch).
async fn join(client: &YakClient, args: &FilterArgs, name: &str) -> anyhow::Result<GroupConsumer> {
    loop {
        match GroupConsumer::join(client.clone(), args.group_config(name)).await {
            Ok(consumer) => return Ok(consumer),
            Err(e) if e.is_retryable() || joining_again_mends(&e) => {
                println!("{name}: cannot join yet ({e}); trying again");
                tokio::time::sleep(JOIN_BACKOFF).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("joining group {}", args.group)));
            }
        }
    }
}

/// The refusals whose answer is another join.
fn joining_again_mends(error: &ClientError) -> bool {
    matches!(
        error.error_code(),
        Some(ErrorCode::UnknownMember | ErrorCode::StaleGeneration | ErrorCode::NotAssigned)
    )
}

/// Leaves the group so the partitions move at once; a member the group
/// dropped already has nothing to leave.
async fn leave(consumer: GroupConsumer, name: &str) {
    if let Err(e) = consumer.leave().await {
        println!("{name}: leaving: {e}");
    }
}

/// Sends the output of every record of one poll, [`MAX_IN_FLIGHT`] at a
/// time, and waits for every acknowledgement; an error if any send
/// failed (the others are not waited for: the poll is abandoned).
async fn send_round(
    producer: &Producer,
    args: &FilterArgs,
    records: &[GroupRecord],
    polled_at: Instant,
) -> anyhow::Result<Routed> {
    if polled_at.elapsed() >= args.session_timeout() {
        bail!("the poll is older than the session timeout; its partitions may have moved");
    }
    let sends = records.iter().map(|input| {
        let output = route::output(&input.record);
        let valid = output.topic == topics::VALID;
        let id = producer_id::derive(&args.group, &input.topic, input.partition);
        async move {
            producer
                .send_sequenced(output, id, input.record.offset)
                .await
                .with_context(|| {
                    format!(
                        "sending the output of {}/{}@{}",
                        input.topic, input.partition, input.record.offset
                    )
                })
                .map(|_| valid)
        }
    });
    let mut round = Routed::default();
    let mut sent = stream::iter(sends).buffer_unordered(MAX_IN_FLIGHT);
    while let Some(sent) = sent.next().await {
        match sent? {
            true => round.valid += 1,
            false => round.invalid += 1,
        }
    }
    Ok(round)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without the handler SIGTERM still ends the process, only
            // without leaving the group.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
