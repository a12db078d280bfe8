//! `yak up`: the whole local cluster in one command. A `redis-server` child
//! (append-only file, `appendfsync always`, a private port, data under the
//! data directory) unless `--redis-url` is given, one broker, `--followers`
//! followers, the producer UI and the consumer UI, each its own process.
//! It prints every URL and streams every log line with the process's name;
//! its [`supervise`] task reports a process that exits (and how), restarts
//! it after `--restart-after` if asked to, and serves the node dashboards'
//! demo controls (Kill -9, Restart) through [`control`] on `127.0.0.1`.
//! Ctrl-C or SIGTERM stops everything.

mod control;
mod supervise;

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;
use tokio::{
    io::AsyncWriteExt,
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use yak_client::ClientConfig;

use crate::local::{self, Durability, Logs, NodeSpec, Proc, Server, UiSpec};
use supervise::Supervisor;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory for every process's data (created if missing).
    #[arg(long, env = "YAK_DATA_DIR", default_value = "./yak-data")]
    data_dir: PathBuf,
    /// Number of followers.
    #[arg(long, env = "YAK_FOLLOWERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=8))]
    followers: u16,
    /// Use this Redis instead of starting one.
    #[arg(long, env = "YAK_REDIS_URL")]
    redis_url: Option<String>,
    /// Address every process listens on.
    #[arg(long, env = "YAK_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "YAK_BROKER_PORT", default_value_t = 5001)]
    broker_port: u16,
    /// Port of the first follower; more followers take the ports after
    /// the consumer UI's (5005, 5006, …).
    #[arg(long, env = "YAK_FOLLOWER_PORT", default_value_t = 5002)]
    follower_port: u16,
    /// Port of the broker's Kafka listener; followers take the ports after
    /// it (9093, 9094, …). `0`: no Kafka listeners. With a client token,
    /// Kafka clients authenticate with SASL/PLAIN, the token as password.
    #[arg(long, env = "YAK_KAFKA_PORT", default_value_t = 9092)]
    kafka_port: u16,
    #[arg(long, env = "YAK_PRODUCER_UI_PORT", default_value_t = 5003)]
    producer_ui_port: u16,
    #[arg(long, env = "YAK_CONSUMER_UI_PORT", default_value_t = 5004)]
    consumer_ui_port: u16,
    /// Leader lease TTL for the nodes, in milliseconds.
    #[arg(long, env = "YAK_LEASE_TTL_MS", default_value_t = 2000)]
    lease_ttl_ms: u64,
    /// Where the broker, follower and UI binaries are [default: next to yak].
    #[arg(long, env = "YAK_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Guard the nodes' client endpoints with this bearer token (the UIs
    /// get it too; see docs/security.md).
    #[arg(long, env = "YAK_CLIENT_TOKEN", hide_env_values = true)]
    client_token: Option<String>,
    /// The nodes' cluster token [default: random, with --client-token].
    #[arg(long, env = "YAK_CLUSTER_TOKEN", hide_env_values = true)]
    cluster_token: Option<String>,
    /// Restart a process this long after it exits (e.g. `3s`) [default:
    /// never; the dashboards' Restart button does it on request].
    #[arg(long, env = "YAK_RESTART_AFTER", value_parser = humantime::parse_duration)]
    restart_after: Option<Duration>,
    /// Port of the demo controls (Kill -9 and Restart on the node
    /// dashboards), served on 127.0.0.1 only.
    #[arg(long, env = "YAK_CONTROL_PORT", default_value_t = 5000)]
    control_port: u16,
    /// Offer the demo controls on the node dashboards.
    #[arg(long, env = "YAK_DEMO_CONTROLS", default_value_t = true, action = clap::ArgAction::Set)]
    demo_controls: bool,
}

impl UpArgs {
    /// The client token, and the cluster token (random when there is a
    /// client token but no cluster token: the nodes need one with the other).
    fn tokens(&self) -> (Option<String>, Option<String>) {
        let client = self.client_token.clone().filter(|t| !t.is_empty());
        let cluster = self
            .cluster_token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                client
                    .as_ref()
                    .map(|_| format!("{:032x}", rand::random::<u128>()))
            });
        (client, cluster)
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let bin_dir = local::bin_dir(args.bin_dir.as_deref())?;
    let binaries = ["broker", "follower", "producer-ui", "consumer-ui"]
        .map(|name| local::binary(&bin_dir, name));
    let [broker, follower, producer_ui, consumer_ui] = binaries;
    let binaries = [broker?, follower?, producer_ui?, consumer_ui?];
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;

    let (printer, mut printed) = mpsc::unbounded_channel::<String>();
    let printing = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(line) = printed.recv().await {
            let _ = out.write_all(line.as_bytes()).await;
            let _ = out.flush().await;
        }
    });
    let logs = Logs::Prefixed(printer);
    let (requests, served) = mpsc::channel(16);
    let control = match args.demo_controls {
        true => Some(format!("http://127.0.0.1:{}", args.control_port)),
        false => None,
    };
    let mut procs: Vec<Proc> = Vec::new();
    let started = start_all(
        &args,
        &data_dir,
        &binaries,
        control.as_deref(),
        &logs,
        &mut procs,
    )
    .await;
    let server = match (&started, &control) {
        (Err(_), _) | (Ok(_), None) => Ok(None),
        (Ok((node_urls, _)), Some(url)) => {
            let access = control::Access::for_urls(node_urls, args.client_token.clone());
            let addr = ([127, 0, 0, 1], args.control_port).into();
            control::serve(addr, access, requests)
                .map(|handle| {
                    logs.say(format!("demo controls on {url} (Kill -9 and Restart on every node dashboard)"));
                    Some(handle)
                })
                .with_context(|| format!("serving the demo controls on {addr} (choose another --control-port, or --demo-controls false)"))
        }
    };
    let server = match (started, server) {
        (Ok((_, banner)), Ok(server)) => {
            logs.say(banner);
            server
        }
        (Err(e), _) | (_, Err(e)) => {
            local::stop_all(&mut procs, &logs).await;
            return Err(e);
        }
    };

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    let supervisor = Supervisor::new(procs, args.restart_after, logs.clone());
    let mut procs = supervisor.run(served, stop).await;
    logs.say("stopping everything…");
    if let Some(server) = server {
        server.stop(false).await;
    }
    local::stop_all(&mut procs, &logs).await;
    logs.say("stopped");
    drop(logs);
    let _ = printing.await;
    Ok(())
}

/// Starts every process and waits until each is healthy; returns the
/// nodes' URLs and the banner to print once everything serves.
async fn start_all(
    args: &UpArgs,
    data_dir: &std::path::Path,
    [broker, follower, producer_ui, consumer_ui]: &[PathBuf; 4],
    control: Option<&str>,
    logs: &Logs,
    procs: &mut Vec<Proc>,
) -> anyhow::Result<(Vec<String>, String)> {
    let host = &args.host;
    let redis_url = match &args.redis_url {
        Some(url) => url.clone(),
        None => {
            let dir = data_dir.join("redis");
            let (proc, url) = local::start_redis(&dir, Durability::AppendFsyncAlways, logs).await?;
            procs.push(proc);
            url
        }
    };
    let (client_token, cluster_token) = args.tokens();
    let mut servers = Vec::new();
    let mut kafka = Vec::new();
    for i in 0..=args.followers {
        let (id, binary, port) = match i {
            0 => ("broker".to_owned(), broker, args.broker_port),
            1 => ("follower-1".to_owned(), follower, args.follower_port),
            n => (
                format!("follower-{n}"),
                follower,
                args.consumer_ui_port + n - 1,
            ),
        };
        let extra_args = match args.kafka_port {
            0 => Vec::new(),
            port => {
                let listen = format!("{host}:{}", port.saturating_add(i));
                // The token is the user's own: the line names it without
                // printing it.
                let sasl = match client_token {
                    Some(_) => {
                        " -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN \
                         -X sasl.username=yak -X sasl.password=<client token>"
                    }
                    None => "",
                };
                kafka.push(format!(
                    "  {id:<12} {listen:<24} Kafka listener (kcat -b {listen}{sasl})\n"
                ));
                vec!["--kafka-listen".to_owned(), listen]
            }
        };
        servers.push(Server::node(&NodeSpec {
            id,
            binary: binary.clone(),
            host: host.clone(),
            port,
            data_dir: data_dir.to_owned(),
            redis_url: redis_url.clone(),
            lease_ttl_ms: args.lease_ttl_ms,
            tcp_port: None,
            cluster_token: cluster_token.clone(),
            client_token: client_token.clone(),
            demo_control_url: control.map(str::to_owned),
            extra_args,
        }));
    }
    let node_urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    for (name, binary, port) in [
        ("producer-ui", producer_ui, args.producer_ui_port),
        ("consumer-ui", consumer_ui, args.consumer_ui_port),
    ] {
        servers.push(Server::ui(&UiSpec {
            name: name.to_owned(),
            binary: binary.clone(),
            host: host.clone(),
            port,
            bootstrap: node_urls.clone(),
            producer_ui_url: format!("http://{host}:{}", args.producer_ui_port),
            consumer_ui_url: format!("http://{host}:{}", args.consumer_ui_port),
            token: client_token.clone(),
        }));
    }
    let access = ClientConfig {
        token: client_token,
        ..ClientConfig::default()
    };
    local::start_servers(&servers, &access, logs, procs).await?;
    let mut banner = String::from("the local cluster is up\n");
    for Server { name, url, .. } in &servers {
        let what = match name.as_str() {
            "producer-ui" => "producer UI",
            "consumer-ui" => "consumer UI",
            _ => "node dashboard",
        };
        banner.push_str(&format!("  {name:<12} {url:<24} {what}\n"));
    }
    kafka.iter().for_each(|line| banner.push_str(line));
    banner.push_str(&format!("  {:<12} {redis_url}\n", "redis"));
    banner.push_str(&format!("  data in {}\n", data_dir.display()));
    match control {
        Some(_) => banner.push_str(
            "Kill the leader from its dashboard (or kill -9 its pid), watch a follower take over, then Restart it\n",
        ),
        None => banner.push_str("restart a killed node with `yak up --restart-after 3s`\n"),
    }
    banner.push_str("Ctrl-C stops everything");
    Ok((node_urls, banner))
}
