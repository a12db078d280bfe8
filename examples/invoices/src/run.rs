//! `yak-invoices run`: the whole demo in one command, against a running
//! cluster (`scripts/run.sh` / `yak up`): start N `filter` processes (this
//! binary), produce the invoices, print the group's progress until every
//! invoice is routed, stop the filters, print the counts.
//!
//! "Routed" is read from the group, not from the output topics: an
//! invoice is routed once the group's committed offset of its input
//! partition is past it, and a filter commits only after its output is
//! acknowledged. Invoices of earlier runs in the same topics count too:
//! the run ends when the group has no lag left on `invoices.all`.

use std::{
    num::NonZeroU32,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use yak_client::{ClientConfig, ConnectArgs, ErrorCode, YakClient};

use crate::{count, generate, source::SourceArgs, topics};

/// Between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long a filter gets to leave the group after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Filter processes to start.
    #[arg(long, env = "YAK_INVOICES_FILTERS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub filters: u32,
    /// The consumer group of the filters.
    #[arg(long, env = "YAK_INVOICES_GROUP", default_value = "invoice-filters")]
    pub group: String,
    /// Invoices produced per second, slow enough to watch in the UIs; 0 for
    /// as fast as the cluster takes them.
    #[arg(long, env = "YAK_INVOICES_RATE", default_value_t = 1000)]
    pub rate: u32,
    /// Give up when the group has not caught up this many seconds after
    /// the last invoice was produced.
    #[arg(long, env = "YAK_INVOICES_TIMEOUT_SECS", default_value_t = 120)]
    pub timeout_secs: u64,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = args.connect.client(ClientConfig::default())?;
    let invoices = args.source.load()?;
    topics::ensure(&client, &[topics::ALL, topics::VALID, topics::INVALID]).await?;
    let mut filters = Vec::new();
    for i in 1..=args.filters {
        filters.push(spawn_filter(&args, &format!("filter-{i}"))?);
    }
    println!(
        "run: {} filter processes in group {}; producing {} at {}",
        args.filters,
        args.group,
        args.source.describe(),
        match args.rate {
            0 => "full speed".to_owned(),
            n => format!("{n} a second"),
        }
    );
    let produced = tokio::spawn({
        let client = client.clone();
        let rate = NonZeroU32::new(args.rate);
        async move { generate::produce(&client, topics::ALL, invoices, rate).await }
    });
    let outcome = follow(&client, &args, produced, &mut filters).await;
    println!("run: stopping the filters");
    for filter in &mut filters {
        if let Err(e) = yak_launch::terminate(filter, STOP_GRACE).await {
            println!("run: stopping a filter: {e}");
        }
    }
    outcome?;
    let counts = count::measure(&client).await?;
    print!("{}", count::table(&counts));
    count::check(&counts)
}

/// Starts `yak-invoices filter` as `name`, with this run's cluster flags
/// passed through the environment (a token never shows in `ps`).
fn spawn_filter(args: &RunArgs, name: &str) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut command = Command::new(exe);
    command
        .args(["filter", "--group", &args.group, "--instance", name])
        .env("YAK_BOOTSTRAP", args.connect.bootstrap.join(","))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(token) = &args.connect.token {
        command.env("YAK_TOKEN", token);
    }
    if let Some(ca) = &args.connect.tls_ca {
        command.env("YAK_TLS_CA", ca);
    }
    command
        .spawn()
        .with_context(|| format!("starting filter {name}"))
}

/// Prints progress until the generator is done and the group has caught
/// up; fails if the generator fails, every filter exits, or the group does
/// not catch up within the timeout.
async fn follow(
    client: &YakClient,
    args: &RunArgs,
    mut produced: tokio::task::JoinHandle<anyhow::Result<usize>>,
    filters: &mut [Child],
) -> anyhow::Result<()> {
    let mut generated: Option<Instant> = None;
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            finished = &mut produced, if generated.is_none() => {
                let count = finished.context("the generator panicked")??;
                println!("run: all {count} invoices produced");
                generated = Some(Instant::now());
            }
            _ = ticks.tick() => {}
        }
        let running = filters
            .iter_mut()
            .map(|f| matches!(f.try_wait(), Ok(None)))
            .filter(|running| *running)
            .count();
        if running == 0 {
            bail!("every filter process exited");
        }
        let progress = progress(client, &args.group).await?;
        println!(
            "run: {} filters; routed {} of {} in invoices.all, lag {}",
            running, progress.committed, progress.end, progress.lag
        );
        if let Some(since) = generated {
            if progress.lag == 0 && progress.end > 0 {
                return Ok(());
            }
            if since.elapsed() > Duration::from_secs(args.timeout_secs) {
                bail!(
                    "the group still lags {} invoices {}s after the last was produced",
                    progress.lag,
                    args.timeout_secs
                );
            }
        }
    }
}

/// The group's progress on `invoices.all`.
#[derive(Debug, Default)]
struct Progress {
    /// Committed offsets, summed over the partitions.
    committed: u64,
    /// High-water marks, summed.
    end: u64,
    lag: u64,
}

async fn progress(client: &YakClient, group: &str) -> anyhow::Result<Progress> {
    let detail = match client.describe_group(group).await {
        Ok(detail) => detail,
        // No member has joined yet.
        Err(e) if e.error_code() == Some(ErrorCode::UnknownGroup) => {
            return Ok(Progress::default());
        }
        Err(e) => return Err(e.into()),
    };
    let mut progress = Progress::default();
    for p in detail.partitions.iter().filter(|p| p.topic == topics::ALL) {
        progress.committed += p.committed.unwrap_or(0);
        progress.end += p.high_water_mark;
        progress.lag += p.lag;
    }
    Ok(progress)
}
