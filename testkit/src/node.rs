//! A YAK node process (the real `broker` or `follower` binary) and what can
//! be read from outside it: its API, its log files, its activity.
//!
//! Its command line is a [`yak_launch::NodeSpec`] (as `yak up`'s nodes'
//! are): every flag of [`NodeOptions`], an exact `--data-dir` in the
//! node's temp dir, `--tcp-listen off` with TLS or without the binary
//! port, every inherited `YAK_*` variable removed and `NO_COLOR=1` set.

use std::{
    fmt,
    fs::{self, OpenOptions},
    future::Future,
    io::Write,
    net::{IpAddr, SocketAddr},
    panic::Location,
    path::PathBuf,
    process::{Child, ExitStatus},
    sync::OnceLock,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use yak_launch::{Environment, NodeSpec, Stopped, TcpListen};

use crate::{
    DEFAULT_LEASE_TTL_MS, LOG_TAIL_LINES, POLL_INTERVAL, START_TIMEOUT, STOP_TIMEOUT,
    http::http_client, http::try_send, net::free_port_on, process::bin_dir, process::build_bins,
    process::keep_temp, process::signal, process::stop_process, process::tail, process::temp_dir,
    process::terminate, process::wait_healthy, tls, wait::poll_until,
};

/// Which binary a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `broker`: tries to lead at start.
    Broker,
    /// `follower`: waits one lease TTL before it tries to lead.
    Follower,
}

impl NodeKind {
    pub fn binary_name(self) -> &'static str {
        match self {
            NodeKind::Broker => "broker",
            NodeKind::Follower => "follower",
        }
    }
}

/// The path of a node binary, building both binaries once per process
/// first (see the module docs). Panics with advice if it cannot be found.
pub fn node_binary(kind: NodeKind) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(build_binaries);
    let path = bin_dir().join(kind.binary_name());
    assert!(
        path.is_file(),
        "{} not found. Build it with `cargo build -p broker -p follower` (or run \
         `cargo test --workspace`), or point YAK_BIN_DIR at the directory holding it.",
        path.display()
    );
    path
}

fn build_binaries() {
    build_bins(&["broker", "follower"]);
}

/// How to start a [`NodeProcess`].
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub kind: NodeKind,
    /// `--node-id`.
    pub id: String,
    /// `--redis-url`.
    pub redis_url: String,
    /// `--cluster`: the Redis key prefix.
    pub cluster: String,
    /// `--lease-ttl-ms`.
    pub lease_ttl_ms: u64,
    /// The loopback address it listens on (default 127.0.0.1; a
    /// [`Cluster`](crate::Cluster)'s nodes live on its [`Subnet`](crate::Subnet)).
    pub host: IpAddr,
    /// Further flags, passed as they are after the ones above and the
    /// TLS and token flags.
    pub args: Vec<String>,
    /// Environment variables for the process (every inherited `YAK_*`
    /// variable is removed first).
    pub env: Vec<(String, String)>,
    /// Serves HTTPS with the [`tls::test_ca`] certificate (`--tls-cert`,
    /// `--tls-key`, `--tls-ca`).
    pub tls: bool,
    /// `--client-token`, which the harness's own requests then send.
    pub client_token: Option<String>,
    /// Opens the binary produce port (on a free port; never with TLS).
    pub tcp: bool,
    /// Opens the Kafka listener (`--kafka-listen`, on a free port).
    pub kafka: bool,
}

impl NodeOptions {
    /// Options for a node of `kind` using `redis_url` and `cluster`, with id
    /// `kind`'s binary name and [`DEFAULT_LEASE_TTL_MS`].
    pub fn new(kind: NodeKind, redis_url: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self {
            kind,
            id: kind.binary_name().to_owned(),
            redis_url: redis_url.into(),
            cluster: cluster.into(),
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            host: IpAddr::from([127, 0, 0, 1]),
            args: Vec::new(),
            env: Vec::new(),
            tls: false,
            client_token: None,
            tcp: true,
            kafka: false,
        }
    }

    /// No binary produce port: one port fewer to find free and to keep
    /// free across restarts.
    pub fn without_tcp(mut self) -> Self {
        self.tcp = false;
        self
    }

    /// Opens the Kafka listener on a free port ([`NodeProcess::kafka_addr`]).
    pub fn kafka(mut self) -> Self {
        self.kafka = true;
        self
    }

    /// Serve HTTPS with the process's [`tls::test_ca`] certificate and
    /// trust that CA when calling other nodes.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// `--client-token` (which needs a `--cluster-token` too).
    pub fn client_token(mut self, token: impl Into<String>) -> Self {
        self.client_token = Some(token.into());
        self
    }

    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    pub fn lease_ttl_ms(mut self, ms: u64) -> Self {
        self.lease_ttl_ms = ms;
        self
    }

    /// Listen on `host` instead of 127.0.0.1.
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = host;
        self
    }

    /// Adds one flag or value.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds flags and values.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A running `broker` or `follower` process with its own port and data
/// directory. Killed (SIGKILL) on drop; prints its output's last lines if
/// the test is panicking.
pub struct NodeProcess {
    options: NodeOptions,
    port: u16,
    /// Port of the binary produce port (none with TLS).
    tcp_port: u16,
    /// Port of the Kafka listener (unused unless `options.kafka`).
    kafka_port: u16,
    url: String,
    child: Option<Child>,
    paused: bool,
    dir: Option<TempDir>,
    path: PathBuf,
}

impl fmt::Debug for NodeProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeProcess")
            .field("id", &self.options.id)
            .field("kind", &self.options.kind)
            .field("url", &self.url())
            .field("dir", &self.path)
            .finish()
    }
}

impl NodeProcess {
    /// Spawns the node on a free port and waits until `GET /health`
    /// answers 200. Panics (with the node's output) if it exits or does not
    /// answer within [`START_TIMEOUT`].
    pub async fn start(options: NodeOptions) -> Self {
        let dir = temp_dir(&format!("yak-{}-", options.id));
        let path = dir.path().to_owned();
        let mut node = Self {
            options,
            port: 0,
            tcp_port: 0,
            kafka_port: 0,
            url: String::new(),
            child: None,
            paused: false,
            dir: Some(dir),
            path,
        };
        for attempt in 1..=5 {
            node.port = free_port_on(node.options.host);
            node.tcp_port = free_port_on(node.options.host);
            node.kafka_port = free_port_on(node.options.host);
            let scheme = if node.options.tls { "https" } else { "http" };
            node.url = format!("{scheme}://{}:{}", node.options.host, node.port);
            match node.launch().await {
                Ok(()) => return node,
                Err(e) if attempt < 5 && e.contains("cannot listen") => {
                    eprintln!(
                        "testkit: {} could not bind; retrying on another port",
                        node.id()
                    );
                }
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    async fn launch(&mut self) -> Result<(), String> {
        let binary = node_binary(self.options.kind);
        let data_dir = self.data_dir();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("opening the node log: {e}"))?;
        let _ = writeln!(
            log,
            "==== testkit: starting {} as {} on port {} ====",
            self.options.id,
            self.options.kind.binary_name(),
            self.port
        );
        let mut command = self.spec(binary, data_dir).command_line().command();
        let child = command
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", command.get_program().display()))?;
        self.child = Some(child);
        self.paused = false;

        let ca = self.options.tls.then(|| tls::test_ca().ca_pem());
        let child = self.child.as_mut().expect("just spawned");
        match wait_healthy(&self.url, ca, child).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if matches!(e, yak_launch::HealthError::Exited { .. }) {
                    self.child = None;
                }
                Err(format!(
                    "node {}: {e}; its output:\n{}",
                    self.options.id,
                    tail(&self.log_path(), LOG_TAIL_LINES)
                ))
            }
        }
    }

    /// The node's command line: its options, port and data directory.
    fn spec(&self, program: PathBuf, data_dir: PathBuf) -> NodeSpec {
        let options = &self.options;
        let ca = options.tls.then(tls::test_ca);
        let mut env = Environment::without_yak().var("NO_COLOR", "1");
        env.set.extend(options.env.iter().cloned());
        NodeSpec {
            program,
            id: options.id.clone(),
            listen: format!("{}:{}", options.host, self.port),
            advertised_url: None,
            data_dir,
            redis_url: options.redis_url.clone(),
            cluster: Some(options.cluster.clone()),
            lease_ttl_ms: Some(options.lease_ttl_ms),
            tcp_listen: match options.tls || !options.tcp {
                true => TcpListen::Off,
                false => TcpListen::At(self.tcp_addr()),
            },
            tls: ca.map(tls::TestCa::node_tls),
            cluster_token: None,
            client_token: options.client_token.clone(),
            demo_control_url: None,
            extra_args: match options.kafka {
                true => [
                    &["--kafka-listen".to_owned(), self.kafka_addr()],
                    &options.args[..],
                ]
                .concat(),
                false => options.args.clone(),
            },
            env,
        }
    }

    /// `http://<host>:<port>` (`https://` with TLS; also its advertised
    /// URL unless the flags say otherwise).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// host:port of the node's Kafka listener (with [`NodeOptions::kafka`]).
    pub fn kafka_addr(&self) -> String {
        format!("{}:{}", self.options.host, self.kafka_port)
    }

    /// host:port of the node's binary produce port.
    pub fn tcp_addr(&self) -> String {
        format!("{}:{}", self.options.host, self.tcp_port)
    }

    /// `request` with the node's client token, if it has one.
    pub fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.options.client_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `--node-id`.
    pub fn id(&self) -> &str {
        &self.options.id
    }

    pub fn kind(&self) -> NodeKind {
        self.options.kind
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where its HTTP port listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.options.host, self.port)
    }

    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    /// The node's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }

    /// Where the node's stdout and stderr go (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.path.join("node.log")
    }

    /// Where the node keeps one partition's log:
    /// `<data dir>/topics/<topic>/<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: u32) -> PathBuf {
        self.data_dir()
            .join("topics")
            .join(topic)
            .join(partition.to_string())
    }

    /// One partition's `*.log` segment files in offset order (none if the
    /// partition has no directory yet).
    pub fn segments(&self, topic: &str, partition: u32) -> Vec<PathBuf> {
        let dir = self.partition_dir(topic, partition);
        let mut segments: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("reading {}: {e}", dir.display()),
        };
        // Zero-padded base offsets: name order is offset order.
        segments.sort();
        segments
    }

    /// One partition's log as stored on disk: every `*.log` segment file,
    /// in offset order, concatenated (empty if there is none). Segment
    /// boundaries may differ between replicas; the concatenation may not.
    pub fn log_bytes(&self, topic: &str, partition: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        for segment in self.segments(topic, partition) {
            match fs::read(&segment) {
                Ok(b) => bytes.extend_from_slice(&b),
                // A segment removed by a truncation between listing and
                // reading: the caller compares again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("reading {}: {e}", segment.display()),
            }
        }
        bytes
    }

    /// `GET /stats`, if it answers 200 with a sampled snapshot (not `{}`).
    pub async fn stats(&self) -> Option<Value> {
        let reply = try_send(
            self.authorized(
                http_client()
                    .get(format!("{}/stats", self.url()))
                    .timeout(Duration::from_secs(2)),
            ),
        )
        .await
        .ok()?;
        (reply.status == StatusCode::OK && reply.json.get("node").is_some()).then_some(reply.json)
    }

    /// The entries of the node's activity log (`GET /stats` → `activity`,
    /// newest first) whose `kind` is `kind`; empty if it does not answer.
    pub async fn activity(&self, kind: &str) -> Vec<Value> {
        let Some(stats) = self.stats().await else {
            return Vec::new();
        };
        stats["activity"]
            .as_array()
            .map(|a| a.iter().filter(|e| e["kind"] == kind).cloned().collect())
            .unwrap_or_default()
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True if the process has not exited (a paused one is running).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// True if [`NodeProcess::pause`]d and not resumed.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// True if started (not stopped or killed by the harness) and not
    /// paused: it may answer requests.
    pub fn is_live(&self) -> bool {
        self.child.is_some() && !self.paused
    }

    /// Prints the last [`LOG_TAIL_LINES`] lines of the node's output to
    /// stderr (which the test harness shows for failed tests).
    pub fn dump_logs(&self) {
        eprintln!(
            "---- testkit: node {} ({}, {}), last {LOG_TAIL_LINES} lines of {} ----\n{}\n---- end of {} ----",
            self.options.id,
            self.options.kind.binary_name(),
            self.url(),
            self.log_path().display(),
            tail(&self.log_path(), LOG_TAIL_LINES),
            self.options.id,
        );
    }

    /// SIGKILL, and reap it. No lease release, no final fsync.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, Signal::SIGKILL);
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERM (graceful: the node releases its lease and syncs its logs)
    /// and waits for the exit. Panics if it takes longer than
    /// [`STOP_TIMEOUT`] (after killing it).
    pub async fn terminate(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("node {} is not running", self.options.id);
        };
        self.paused = false;
        match terminate(&mut child).await {
            Stopped::Exited(status) => status,
            Stopped::Killed(_) => {
                self.dump_logs();
                panic!(
                    "node {} did not exit within {STOP_TIMEOUT:?} of SIGTERM",
                    self.options.id
                );
            }
        }
    }

    /// SIGSTOP: the process freezes (its lease, timers and sockets with it).
    /// Returns once every thread has stopped, so nothing the test sends
    /// afterwards is handled before [`NodeProcess::resume`].
    pub fn pause(&mut self) {
        let child = self
            .child
            .as_ref()
            .expect("pausing a node that is not running");
        stop_process(child);
        self.paused = true;
    }

    /// SIGCONT after [`NodeProcess::pause`].
    pub fn resume(&mut self) {
        let child = self
            .child
            .as_ref()
            .expect("resuming a node that is not running");
        signal(child, Signal::SIGCONT);
        self.paused = false;
    }

    /// Starts the node again with the same id, port, data directory and
    /// flags (killing it first if it still runs), and waits for `/health`.
    pub async fn restart(&mut self) {
        if self.is_running() {
            self.kill9();
        }
        self.child = None;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch().await {
                Ok(()) => return,
                // The old socket may linger for a moment.
                Err(e) if e.contains("cannot listen") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// `GET /health`, if it answers.
    pub async fn health(&self) -> Option<Value> {
        let reply = try_send(
            http_client()
                .get(format!("{}/health", self.url()))
                .timeout(Duration::from_secs(2)),
        )
        .await
        .ok()?;
        (reply.status == StatusCode::OK).then_some(reply.json)
    }

    /// The role `/health` reports (`leader`, `follower`, `fenced`, ...).
    pub async fn role(&self) -> Option<String> {
        self.health()
            .await
            .and_then(|h| h["role"].as_str().map(str::to_owned))
    }

    /// Waits until `/health` reports `role`.
    #[track_caller]
    pub fn wait_for_role<'a>(
        &'a self,
        role: &'a str,
        timeout: Duration,
    ) -> impl Future<Output = ()> + 'a {
        let caller = Location::caller();
        async move {
            poll_until(
                format!("node {} to report role {role} (at {caller})", self.id()),
                timeout,
                || async { (self.role().await.as_deref() == Some(role)).then_some(()) },
            )
            .await
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        self.kill9();
        if keep_temp()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("testkit: kept node dir {}", kept.display());
        }
    }
}

/// Waits until every node in `nodes` holds the same number of log bytes of
/// `topic`/`partition` on disk ([`NodeProcess::log_bytes`]), as when the
/// followers have caught up, then asserts the bytes are identical and
/// returns them. Panics after `timeout` if the sizes never agree (showing
/// the sizes seen last).
#[track_caller]
pub fn wait_for_identical_logs<'a>(
    nodes: &'a [&'a NodeProcess],
    topic: &'a str,
    partition: u32,
    timeout: Duration,
) -> impl Future<Output = Vec<u8>> + 'a {
    let caller = Location::caller();
    async move {
        assert!(!nodes.is_empty(), "no nodes to compare");
        let deadline = Instant::now() + timeout;
        let logs = loop {
            let logs: Vec<Vec<u8>> = nodes
                .iter()
                .map(|n| n.log_bytes(topic, partition))
                .collect();
            if logs.iter().all(|l| l.len() == logs[0].len()) {
                break logs;
            }
            if Instant::now() >= deadline {
                let sizes: Vec<String> = nodes
                    .iter()
                    .zip(&logs)
                    .map(|(n, l)| format!("{}: {} bytes", n.id(), l.len()))
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {topic}/{partition} to have the \
                     same size on every node (at {caller}); last seen {}",
                    sizes.join(", ")
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        };
        for (node, log) in nodes.iter().zip(&logs).skip(1) {
            if *log != logs[0] {
                let at = log.iter().zip(&logs[0]).position(|(a, b)| a != b);
                panic!(
                    "{topic}/{partition}: {} and {} hold {} bytes each but differ, first at \
                     byte {at:?}",
                    nodes[0].id(),
                    node.id(),
                    log.len()
                );
            }
        }
        logs.into_iter().next().expect("at least one node")
    }
}
