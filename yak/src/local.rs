//! Processes on this machine: starting `redis-server` and YAK's servers
//! (nodes and UIs), routing their output, waiting for health, stopping
//! them. Shared by `yak up` and `yak bench`: this is the one place of the
//! `yak` command that builds a server's flags ([`Server`]) and spawns a
//! process ([`Proc`]); health goes through the client library's
//! [`Probe`], with the token and CAs of the caller's [`ClientConfig`].

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};
use yak_client::{ClientConfig, Probe};

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

/// A process started here, restartable with the same arguments.
pub struct Proc {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    child: Child,
}

// By hand, without the arguments: they may hold tokens.
impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Proc {
    pub fn spawn(name: &str, program: &Path, args: &[String], logs: &Logs) -> anyhow::Result<Self> {
        let child = start(name, program, args, logs)?;
        Ok(Self {
            name: name.to_owned(),
            program: program.to_owned(),
            args: args.to_vec(),
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

    /// Starts it again with the same arguments (after it exited).
    pub fn restart(&mut self, logs: &Logs) -> anyhow::Result<()> {
        self.child = start(&self.name, &self.program, &self.args, logs)?;
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(&mut self, grace: Duration, logs: &Logs) {
        let Some(id) = self.child.id() else { return };
        let _ = nix::sys::signal::kill(Pid::from_raw(id as i32), Signal::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            logs.say(format!(
                "{} did not stop in {grace:?}; killing it",
                self.name
            ));
            let _ = self.child.kill().await;
        }
    }
}

fn start(name: &str, program: &Path, args: &[String], logs: &Logs) -> anyhow::Result<Child> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
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

/// Starts `redis-server` on a free port with its data in `dir`; returns it
/// and its URL once it answers PING.
pub async fn start_redis(
    dir: &Path,
    durability: Durability,
    logs: &Logs,
) -> anyhow::Result<(Proc, String)> {
    if which("redis-server").is_none() {
        bail!(
            "redis-server is not installed. Install it with `sudo apt-get install redis-server` \
             (scripts/run.sh does this for you), or pass --redis-url to use a running Redis."
        );
    }
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let (appendonly, appendfsync) = match durability {
        Durability::AppendFsyncAlways => ("yes", "always"),
        Durability::AppendFsyncEverySec => ("yes", "everysec"),
        Durability::InMemory => ("no", "always"),
    };
    let args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir.display().to_string(),
        "--appendonly",
        appendonly,
        "--appendfsync",
        appendfsync,
        "--save",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let proc = Proc::spawn("redis", Path::new("redis-server"), &args, logs)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis_pong(port).await {
        if Instant::now() > deadline {
            bail!("redis-server did not answer on port {port} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((proc, format!("redis://127.0.0.1:{port}")))
}

async fn redis_pong(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut buf = [0u8; 7];
    stream.write_all(b"PING\r\n").await.is_ok()
        && stream.read_exact(&mut buf).await.is_ok()
        && &buf == b"+PONG\r\n"
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// A YAK server to start: a node (`broker`, `follower`) or a UI
/// (`producer-ui`, `consumer-ui`). Every flag `yak` gives a server is set
/// here, by [`Server::node`] and [`Server::ui`]; [`start_servers`] starts
/// them and waits until they answer. Its `Debug` leaves out the flags,
/// which may hold tokens.
#[derive(Clone)]
pub struct Server {
    /// The process's name: log prefix or file, demo controls.
    pub name: String,
    binary: PathBuf,
    args: Vec<String>,
    /// Where it answers: `http://<host>:<port>`.
    pub url: String,
}

/// How to run a node.
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
}

/// How to run a UI.
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

/// `--flag value` pairs, without the pairs whose value is `None`.
fn flags<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<String>)>) -> Vec<String> {
    pairs
        .into_iter()
        .filter_map(|(flag, value)| Some([flag.to_owned(), value?]))
        .flatten()
        .collect()
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("binary", &self.binary)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Server {
    pub fn node(spec: &NodeSpec) -> Self {
        let listen = format!("{}:{}", spec.host, spec.port);
        let url = format!("http://{listen}");
        let args = flags([
            ("--node-id", Some(spec.id.clone())),
            ("--listen", Some(listen)),
            ("--advertised-url", Some(url.clone())),
            (
                "--data-dir",
                Some(spec.data_dir.join(&spec.id).display().to_string()),
            ),
            ("--redis-url", Some(spec.redis_url.clone())),
            ("--lease-ttl-ms", Some(spec.lease_ttl_ms.to_string())),
            (
                "--tcp-listen",
                spec.tcp_port.map(|port| format!("{}:{port}", spec.host)),
            ),
            ("--cluster-token", spec.cluster_token.clone()),
            ("--client-token", spec.client_token.clone()),
            ("--demo-control-url", spec.demo_control_url.clone()),
        ]);
        Self {
            name: spec.id.clone(),
            binary: spec.binary.clone(),
            args,
            url,
        }
    }

    pub fn ui(spec: &UiSpec) -> Self {
        let listen = format!("{}:{}", spec.host, spec.port);
        let url = format!("http://{listen}");
        let args = flags([
            ("--listen", Some(listen)),
            ("--bootstrap", Some(spec.bootstrap.join(","))),
            ("--producer-ui-url", Some(spec.producer_ui_url.clone())),
            ("--consumer-ui-url", Some(spec.consumer_ui_url.clone())),
            ("--token", spec.token.clone()),
        ]);
        Self {
            name: spec.name.clone(),
            binary: spec.binary.clone(),
            args,
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
        procs.push(Proc::spawn(
            &server.name,
            &server.binary,
            &server.args,
            logs,
        )?);
    }
    for (server, proc) in servers.iter().zip(&mut procs[first..]) {
        wait_healthy(proc, &server.url, access, START_TIMEOUT).await?;
    }
    Ok(())
}

/// Polls `{url}/health` until it answers 200 with JSON; fails at once if
/// `proc` exits, or when `timeout` passes.
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
    let deadline = Instant::now() + timeout;
    loop {
        let error = match probe.health().await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if let Some(status) = proc.exited() {
            bail!(
                "{} exited ({status}) before it answered {url}/health (see its log)",
                proc.name
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not become healthy at {url}/health within {timeout:?}: {error} (see its log)",
                proc.name
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1).map(String::as_str)
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
        ] {
            assert_eq!(
                flag(&node.args, name),
                Some(value),
                "{name} in {:?}",
                node.args
            );
        }
        assert_eq!(node.args.len(), 20, "{:?}", node.args);
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
            assert_eq!(flag(&node.args, name), None, "{name} in {:?}", node.args);
        }
        assert_eq!(
            flag(&node.args, "--advertised-url"),
            Some("http://0.0.0.0:5001")
        );
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
        assert_eq!(flag(&ui.args, "--listen"), Some("127.0.0.1:5004"));
        assert_eq!(
            flag(&ui.args, "--bootstrap"),
            Some("http://127.0.0.1:5001,http://127.0.0.1:5002")
        );
        assert_eq!(
            flag(&ui.args, "--producer-ui-url"),
            Some("http://127.0.0.1:5003")
        );
        assert_eq!(
            flag(&ui.args, "--consumer-ui-url"),
            Some("http://127.0.0.1:5004")
        );
        assert_eq!(flag(&ui.args, "--token"), None);
    }
}
