//! Processes on this machine: starting `redis-server` and YAK's servers
//! (nodes and UIs), routing their output, waiting for health, stopping
//! them. Shared by `yak up` and `yak bench`: this is the one place of the
//! `yak` command that says how it lays out a local cluster ([`Server`]:
//! `<data_dir>/<id>`, the advertised URL, tokens, demo controls) and
//! spawns a process ([`Proc`]).
//!
//! The command lines themselves come from `yak-launch` (its specs, which
//! the test harness uses too), and so do stopping (SIGTERM, then SIGKILL)
//! and the health wait (through the client library's [`Probe`], with the
//! token and CAs of the caller's [`ClientConfig`], failing at once when
//! the process exits). What stays here is `yak`'s own policy: output
//! prefixed or in files, restarts with the first command line, errors
//! reported, not panicked. The servers inherit `yak`'s environment
//! unchanged (a `YAK_*` variable set for `yak` reaches them).

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};
use yak_client::{ClientConfig, Probe};
use yak_launch::{
    CommandLine, Environment, Fsync, RedisPersistence, RedisSpec, Stopped, TcpListen, health, spec,
};

/// Where a process's output goes.
#[derive(Debug, Clone)]
pub enum Logs {
    /// Every line, prefixed with the process's name, to this printer.
    Prefixed(mpsc::UnboundedSender<String>),
    /// One file per process in this directory.
    Files(PathBuf),
}

impl Logs {
    pub fn say(&self, line: impl Into<String>) {
        match self {
            Logs::Prefixed(out) => {
                let _ = out.send(format!("yak: {}\n", line.into()));
            }
            Logs::Files(_) => eprintln!("yak: {}", line.into()),
        }
    }
}

/// A process started here, restartable with the same command line.
pub struct Proc {
    pub name: String,
    line: CommandLine,
    child: Child,
}

// By hand, without the arguments: they may hold tokens.
impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name)
            .field("program", &self.line.program())
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Proc {
    pub fn spawn(name: &str, line: &CommandLine, logs: &Logs) -> anyhow::Result<Self> {
        let child = start(name, line, logs)?;
        Ok(Self {
            name: name.to_owned(),
            line: line.clone(),
            child,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `kill -9` and reap.
    pub async fn kill9(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts it again with the same command line (after it exited).
    pub fn restart(&mut self, logs: &Logs) -> anyhow::Result<()> {
        self.child = start(&self.name, &self.line, logs)?;
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`
    /// ([`yak_launch::terminate`]); says so when it had to kill.
    pub async fn stop(&mut self, grace: Duration, logs: &Logs) {
        match yak_launch::terminate(&mut self.child, grace).await {
            Ok(Stopped::Exited(_)) => {}
            Ok(Stopped::Killed(_)) => logs.say(format!(
                "{} did not stop in {grace:?}; killed it",
                self.name
            )),
            Err(e) => logs.say(format!("stopping {}: {e}", self.name)),
        }
    }
}

fn start(name: &str, line: &CommandLine, logs: &Logs) -> anyhow::Result<Child> {
    let program = line.program();
    let mut command = Command::from(line.command());
    command.kill_on_drop(true);
    match logs {
        Logs::Files(dir) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{name}.log")))?;
            command.stdout(file.try_clone()?).stderr(file);
        }
        Logs::Prefixed(_) => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    if let Logs::Prefixed(out) = logs {
        let prefix = format!("[{name:<11}] ");
        let streams: [Box<dyn tokio::io::AsyncRead + Unpin + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped")),
            Box::new(child.stderr.take().expect("piped")),
        ];
        for stream in streams {
            let (out, prefix) = (out.clone(), prefix.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = out.send(format!("{prefix}{line}\n"));
                }
            });
        }
    }
    Ok(child)
}

/// Stops processes in reverse start order.
pub async fn stop_all(procs: &mut [Proc], logs: &Logs) {
    for p in procs.iter_mut().rev() {
        p.stop(Duration::from_secs(10), logs).await;
    }
}

/// The directory holding YAK's binaries: `--bin-dir`, or next to `yak`.
pub fn bin_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(dir) => Ok(dir.to_owned()),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("yak has no parent directory")?
            .to_owned()),
    }
}

pub fn binary(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found; build the workspace first (cargo build --release) or pass --bin-dir",
            path.display()
        );
    }
    Ok(path)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How to run `redis-server`.
#[derive(Debug, Clone, Copy)]
pub enum Durability {
    /// Append-only file with `appendfsync always`: what the cluster's
    /// correctness wants.
    AppendFsyncAlways,
    /// Append-only file fsynced once a second: a Redis crash may lose the
    /// last second of lease, ISR and HWM changes. Only for measuring what
    /// the per-write fsync costs (`yak bench --redis-fsync everysec`).
    AppendFsyncEverySec,
    /// No persistence at all: the Redis Streams baseline of the benchmark.
    InMemory,
}

impl Durability {
    fn persistence(self) -> RedisPersistence {
        match self {
            Durability::AppendFsyncAlways => RedisPersistence::AppendOnly(Fsync::Always),
            Durability::AppendFsyncEverySec => RedisPersistence::AppendOnly(Fsync::EverySec),
            Durability::InMemory => RedisPersistence::InMemory,
        }
    }
}

/// How long `redis-server` gets to answer `PING` after it was started.
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `redis-server` on a free port of 127.0.0.1 with its data in
/// `dir`; returns it and its URL once it answers PING (an error at once if
/// it exits first).
pub async fn start_redis(
    dir: &Path,
    durability: Durability,
    logs: &Logs,
) -> anyhow::Result<(Proc, String)> {
    start_redis_replica(dir, durability, None, logs).await
}

/// [`start_redis`], replicating the Redis on 127.0.0.1 at `primary_port`
/// if one is given.
pub async fn start_redis_replica(
    dir: &Path,
    durability: Durability,
    primary_port: Option<u16>,
    logs: &Logs,
) -> anyhow::Result<(Proc, String)> {
    let Some(program) = yak_launch::find_on_path("redis-server") else {
        bail!(
            "redis-server is not installed. Install it with `sudo apt-get install redis-server` \
             (scripts/run.sh does this for you), or pass --redis-url to use a running Redis."
        );
    };
    std::fs::create_dir_all(dir)?;
    let spec = RedisSpec {
        program,
        host: "127.0.0.1".to_owned(),
        port: free_port()?,
        dir: dir.to_owned(),
        persistence: durability.persistence(),
        replica_of: primary_port.map(|port| ("127.0.0.1".to_owned(), port)),
        env: Environment::default(),
    };
    let name = if primary_port.is_some() {
        "redis-replica"
    } else {
        "redis"
    };
    let mut proc = Proc::spawn(name, &spec.command_line(), logs)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], spec.port));
    health::wait_ready(
        &format!("redis-server on {addr} to answer PING"),
        REDIS_START_TIMEOUT,
        || proc.exited(),
        || async { health::redis_answers(addr) },
    )
    .await
    .map_err(|e| anyhow!("redis: {e} (see its log)"))?;
    Ok((proc, spec.url()))
}

/// A YAK server to start: a node (`broker`, `follower`) or a UI
/// (`producer-ui`, `consumer-ui`). [`Server::node`] and [`Server::ui`]
/// turn `yak`'s [`NodeSpec`] and [`UiSpec`] into `yak-launch` specs, which
/// set the flags; [`start_servers`] starts them and waits until they
/// answer. Its `Debug` leaves out the flags, which may hold tokens.
#[derive(Clone)]
pub struct Server {
    /// The process's name: log prefix or file, demo controls.
    pub name: String,
    line: CommandLine,
    /// Where it answers: `http://<host>:<port>`.
    pub url: String,
}

/// How `yak` runs a node: one of a local cluster's, all under one data
/// directory.
#[derive(Clone, Default)]
pub struct NodeSpec {
    /// `--node-id`, also the process's name.
    pub id: String,
    /// The `broker` or `follower` binary.
    pub binary: PathBuf,
    /// The address it listens on and advertises.
    pub host: String,
    pub port: u16,
    /// The directory of every node's data; this node's is `<data_dir>/<id>`.
    pub data_dir: PathBuf,
    pub redis_url: String,
    pub lease_ttl_ms: u64,
    /// The binary produce port on `host` [default: the node's own, its
    /// HTTP port + 100].
    pub tcp_port: Option<u16>,
    /// `--cluster-token`.
    pub cluster_token: Option<String>,
    /// `--client-token` (which needs a cluster token).
    pub client_token: Option<String>,
    /// `--demo-control-url`: where the dashboard's Kill -9 and Restart go.
    pub demo_control_url: Option<String>,
    /// Flags after those above (`yak bench` runs nodes with `--fsync always`).
    pub extra_args: Vec<String>,
}

/// How `yak` runs a UI.
#[derive(Clone, Default)]
pub struct UiSpec {
    /// The process's name (`producer-ui`, `consumer-ui`).
    pub name: String,
    /// The `producer-ui` or `consumer-ui` binary.
    pub binary: PathBuf,
    pub host: String,
    pub port: u16,
    /// The nodes' URLs.
    pub bootstrap: Vec<String>,
    /// Where the two UIs are, for the links between them.
    pub producer_ui_url: String,
    pub consumer_ui_url: String,
    /// `--token`: the nodes' client token.
    pub token: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("binary", &self.line.program())
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A node that listens on and advertises `http://<host>:<port>`, keeps
    /// its data in `<data_dir>/<id>` and inherits `yak`'s environment.
    pub fn node(spec: &NodeSpec) -> Self {
        let listen = format!("{}:{}", spec.host, spec.port);
        let url = format!("http://{listen}");
        let node = spec::NodeSpec {
            program: spec.binary.clone(),
            id: spec.id.clone(),
            listen,
            advertised_url: Some(url.clone()),
            data_dir: spec.data_dir.join(&spec.id),
            redis_url: spec.redis_url.clone(),
            cluster: None,
            lease_ttl_ms: Some(spec.lease_ttl_ms),
            tcp_listen: match spec.tcp_port {
                Some(port) => TcpListen::At(format!("{}:{port}", spec.host)),
                None => TcpListen::Default,
            },
            tls: None,
            cluster_token: spec.cluster_token.clone(),
            client_token: spec.client_token.clone(),
            demo_control_url: spec.demo_control_url.clone(),
            extra_args: spec.extra_args.clone(),
            env: Environment::default(),
        };
        Self {
            name: spec.id.clone(),
            line: node.command_line(),
            url,
        }
    }

    /// A UI on `http://<host>:<port>`, inheriting `yak`'s environment.
    pub fn ui(spec: &UiSpec) -> Self {
        let listen = format!("{}:{}", spec.host, spec.port);
        let url = format!("http://{listen}");
        let ui = spec::UiSpec {
            program: spec.binary.clone(),
            listen,
            bootstrap: spec.bootstrap.clone(),
            producer_ui_url: Some(spec.producer_ui_url.clone()),
            consumer_ui_url: Some(spec.consumer_ui_url.clone()),
            token: spec.token.clone(),
            upload_dir: None,
            extra_args: Vec::new(),
            env: Environment::default(),
        };
        Self {
            name: spec.name.clone(),
            line: ui.command_line(),
            url,
        }
    }
}

/// How long a server gets to answer `/health` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts every server, each added to `procs` as it starts (so that after
/// a failure [`stop_all`] stops what did start), then waits until each
/// answers `GET /health`. The health probes go through the client library
/// with `access`'s token and CAs, like every other call of `yak`.
pub async fn start_servers(
    servers: &[Server],
    access: &ClientConfig,
    logs: &Logs,
    procs: &mut Vec<Proc>,
) -> anyhow::Result<()> {
    let first = procs.len();
    for server in servers {
        procs.push(Proc::spawn(&server.name, &server.line, logs)?);
    }
    for (server, proc) in servers.iter().zip(&mut procs[first..]) {
        wait_healthy(proc, &server.url, access, START_TIMEOUT).await?;
    }
    Ok(())
}

/// Polls `{url}/health` until it answers 2xx with JSON
/// ([`yak_launch::wait_healthy`]); fails at once if `proc` exits, or when
/// `timeout` passes.
async fn wait_healthy(
    proc: &mut Proc,
    url: &str,
    access: &ClientConfig,
    timeout: Duration,
) -> anyhow::Result<()> {
    let config = ClientConfig {
        request_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    }
    .with_access_of(access);
    let probe = Probe::new(url, &config)?;
    let name = proc.name.clone();
    yak_launch::wait_healthy(&probe, timeout, || proc.exited())
        .await
        .map_err(|e| anyhow!("{name}: {e} (see its log)"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(server: &Server, name: &str) -> Option<String> {
        server.line.flag(name)
    }

    #[test]
    fn a_node_gets_every_flag_of_its_spec() {
        let spec = NodeSpec {
            id: "follower-1".to_owned(),
            binary: PathBuf::from("/bin/follower"),
            host: "127.0.0.1".to_owned(),
            port: 5002,
            data_dir: PathBuf::from("/data"),
            redis_url: "redis://127.0.0.1:7000".to_owned(),
            lease_ttl_ms: 2000,
            tcp_port: Some(6002),
            cluster_token: Some("cluster-secret".to_owned()),
            client_token: Some("client-secret".to_owned()),
            demo_control_url: Some("http://127.0.0.1:5000".to_owned()),
            extra_args: vec!["--fsync".to_owned(), "always".to_owned()],
        };
        let node = Server::node(&spec);
        assert_eq!(
            (node.name.as_str(), node.url.as_str()),
            ("follower-1", "http://127.0.0.1:5002")
        );
        for (name, value) in [
            ("--node-id", "follower-1"),
            ("--listen", "127.0.0.1:5002"),
            ("--advertised-url", "http://127.0.0.1:5002"),
            ("--data-dir", "/data/follower-1"),
            ("--redis-url", "redis://127.0.0.1:7000"),
            ("--lease-ttl-ms", "2000"),
            ("--tcp-listen", "127.0.0.1:6002"),
            ("--cluster-token", "cluster-secret"),
            ("--client-token", "client-secret"),
            ("--demo-control-url", "http://127.0.0.1:5000"),
            ("--fsync", "always"),
        ] {
            assert_eq!(flag(&node, name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(node.line.args().len(), 22, "{:?}", node.line.args());
        assert_eq!(node.line.program(), Path::new("/bin/follower"));
        assert_eq!(node.line.env(), &Environment::default(), "yak's own");
        let shown = format!("{node:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn optional_node_flags_are_left_to_the_node() {
        let node = Server::node(&NodeSpec {
            id: "broker".to_owned(),
            host: "0.0.0.0".to_owned(),
            port: 5001,
            ..NodeSpec::default()
        });
        for name in [
            "--tcp-listen",
            "--cluster-token",
            "--client-token",
            "--demo-control-url",
        ] {
            assert_eq!(flag(&node, name), None, "{name}");
        }
        assert_eq!(
            flag(&node, "--advertised-url").as_deref(),
            Some("http://0.0.0.0:5001")
        );
        assert_eq!(flag(&node, "--cluster"), None);
    }

    #[test]
    fn a_ui_gets_the_nodes_and_the_other_ui() {
        let ui = Server::ui(&UiSpec {
            name: "consumer-ui".to_owned(),
            binary: PathBuf::from("/bin/consumer-ui"),
            host: "127.0.0.1".to_owned(),
            port: 5004,
            bootstrap: vec![
                "http://127.0.0.1:5001".to_owned(),
                "http://127.0.0.1:5002".to_owned(),
            ],
            producer_ui_url: "http://127.0.0.1:5003".to_owned(),
            consumer_ui_url: "http://127.0.0.1:5004".to_owned(),
            token: None,
        });
        assert_eq!(ui.url, "http://127.0.0.1:5004");
        let flag = |name| flag(&ui, name);
        assert_eq!(flag("--listen").as_deref(), Some("127.0.0.1:5004"));
        assert_eq!(
            flag("--bootstrap").as_deref(),
            Some("http://127.0.0.1:5001,http://127.0.0.1:5002")
        );
        assert_eq!(
            flag("--producer-ui-url").as_deref(),
            Some("http://127.0.0.1:5003")
        );
        assert_eq!(
            flag("--consumer-ui-url").as_deref(),
            Some("http://127.0.0.1:5004")
        );
        assert_eq!(flag("--token"), None);
        assert_eq!(flag("--upload-dir"), None);
    }
}
