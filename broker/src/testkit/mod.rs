//! # testkit — the YAK integration harness
//!
//! Real processes, no mocks: a [`RedisServer`] (the `redis-server` found on
//! `PATH`), YAK nodes ([`NodeProcess`], the real `broker` and `follower`
//! binaries), a [`Cluster`] builder that starts one of each plus followers,
//! a poll-with-deadline helper ([`wait_until`]) and its opposite
//! ([`hold_for`]: "stays true for a while"), small HTTP helpers
//! ([`produce`], [`consume`], [`get_json`], [`post_json`], ...), and ways
//! to look behind the API: a node's log files on disk
//! ([`NodeProcess::log_bytes`], [`wait_for_identical_logs`]), its activity
//! log ([`NodeProcess::activity`]) and the cluster's Redis state
//! ([`Cluster::store`]). Nodes can serve HTTPS with a test CA ([`tls`],
//! [`ClusterBuilder::tls`]) and require a client token
//! ([`ClusterBuilder::client_token`]); the harness's own requests then
//! trust the CA and send the token ([`NodeProcess::authorized`]).
//!
//! Enabled by the `testkit` cargo feature; other crates use it as
//! `broker = { workspace = true, features = ["testkit"] }` in their
//! `[dev-dependencies]`.
//!
//! ```no_run
//! # async fn demo() {
//! use broker::testkit::{Cluster, consume, produce};
//! use serde_json::json;
//!
//! let cluster = Cluster::builder().followers(1).start().await;
//! let leader = cluster.leader().await.expect("a leader");
//! let (status, body) = produce(leader.url(), &json!({"topic": "t", "payload": 1})).await;
//! assert_eq!(status, 200, "{body}");
//! let (_, read) = consume(leader.url(), "t", body["partition"].as_u64().unwrap() as u32, 0).await;
//! assert_eq!(read["records"][0]["payload"], 1);
//! # }
//! ```
//!
//! ## Rules the harness follows (and tests should too)
//! - Every test gets its own Redis on a free port and its own nodes, with a
//!   cluster name unique to the test, so tests run in parallel.
//! - Nothing waits with a fixed sleep: every wait polls a condition against
//!   a deadline and panics with a clear message when it passes.
//! - Processes are killed when their handle is dropped, also when a test
//!   panics; a node's captured output (last [`LOG_TAIL_LINES`] lines) is
//!   printed then, so a failing test shows what the node said.
//! - Default ports (5001/5002, 6379) are never used.
//!
//! ## Finding the binaries
//! [`bin_dir`] is `$YAK_BIN_DIR` if set; otherwise the cargo profile
//! directory of the running test (`…/target/debug/deps/<test>` →
//! `…/target/debug/`). Unless `YAK_BIN_DIR` is set, the first node start in
//! a test process runs `cargo build -p broker -p follower` once (a no-op
//! when they are up to date), because `cargo test -p <crate>` builds no
//! binary of another package.
//!
//! Environment knobs: `YAK_BIN_DIR` (where `broker` and `follower` are),
//! `YAK_TESTKIT_KEEP=1` (keep temp dirs for inspection), `RUST_LOG` (passed
//! on to the nodes).

pub mod browser;
pub mod tls;

use std::{
    fmt,
    fs::{self, OpenOptions},
    future::Future,
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    panic::Location,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
pub use reqwest::StatusCode;
use reqwest::{Method, header::HeaderMap};
use serde_json::Value;
use tempfile::TempDir;

/// How often [`wait_until`] re-checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How long a process gets to start answering.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a process gets to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a node's output printed when a test fails.
pub const LOG_TAIL_LINES: usize = 50;
/// Per-request timeout of [`http_client`].
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lease TTL the [`Cluster`] builder uses unless told otherwise.
pub const DEFAULT_LEASE_TTL_MS: u64 = 1000;

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// Polls `condition` every [`POLL_INTERVAL`] until it returns `Some`, and
/// returns that value. Panics (naming the caller's line) if `timeout`
/// passes first. One check that hangs cannot overrun the deadline by more
/// than a poll interval.
///
/// ```no_run
/// # async fn demo(url: &str) {
/// use std::time::Duration;
/// use broker::testkit::{get_json, wait_until};
/// let role = wait_until(Duration::from_secs(5), || async {
///     let (_, health) = get_json(&format!("{url}/health")).await;
///     (health["role"] == "leader").then_some(health)
/// })
/// .await;
/// # }
/// ```
#[track_caller]
pub fn wait_until<T, F, Fut>(timeout: Duration, condition: F) -> impl Future<Output = T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let caller = Location::caller();
    poll_until(format!("condition at {caller}"), timeout, condition)
}

/// [`wait_until`] with a description of what is awaited, for the panic
/// message.
#[track_caller]
pub fn wait_for<T, F, Fut>(
    what: impl fmt::Display,
    timeout: Duration,
    condition: F,
) -> impl Future<Output = T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let caller = Location::caller();
    poll_until(format!("{what} (at {caller})"), timeout, condition)
}

/// The opposite of [`wait_for`]: checks `condition` every
/// [`POLL_INTERVAL`] for `duration` and panics (naming `what` and the
/// caller's line) the first time it is false. For "stays so for a while"
/// assertions, e.g. "no node leads for two lease TTLs". One check that
/// hangs past the end counts as holding.
#[track_caller]
pub fn hold_for<F, Fut>(
    what: impl fmt::Display,
    duration: Duration,
    condition: F,
) -> impl Future<Output = ()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let caller = Location::caller();
    let what = format!("{what} (at {caller})");
    hold(what, duration, condition)
}

async fn hold<F, Fut>(what: String, duration: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let end = started + duration;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match tokio::time::timeout(left, condition()).await {
            Ok(true) | Err(_) => {}
            Ok(false) => panic!(
                "{what} stopped holding after {:?} of {duration:?}",
                started.elapsed()
            ),
        }
        tokio::time::sleep(POLL_INTERVAL.min(end.saturating_duration_since(Instant::now()))).await;
    }
}

async fn poll_until<T, F, Fut>(what: String, timeout: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Some(value)) = tokio::time::timeout(left.max(POLL_INTERVAL), condition()).await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

// ---------------------------------------------------------------------------
// Ports, names, temp dirs
// ---------------------------------------------------------------------------

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0 and
/// read it back). Never 5001, 5002 or 6379.
pub fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST.into())
}

/// A TCP port on `ip` that was free a moment ago; never 5001, 5002 or 6379.
pub fn free_port_on(ip: IpAddr) -> u16 {
    loop {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("binding {ip}:0: {e}"));
        let port = listener.local_addr().expect("local address").port();
        if ![5001, 5002, 6379].contains(&port) {
            return port;
        }
    }
}

/// A loopback /24 of its own, 127.a.b.0: `a` from the process id, `b`
/// from a counter, so that clusters running at once (the tests of one
/// binary run in parallel) never share an address. A port that a stopped
/// node leaves free until its restart can then be taken only within its own
/// cluster: never by another test's node, which its clients would reach
/// instead, and never as the source port of another test's connections
/// (those leave from 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet(u8, u8);

impl Subnet {
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self(1 + (std::process::id() % 254) as u8, n as u8)
    }

    /// 127.a.b.`host`.
    pub fn ip(self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, self.1, host))
    }

    /// Where a cluster's Redis listens.
    pub fn redis(self) -> IpAddr {
        self.ip(1)
    }

    /// Where node `index` (0 is the broker) listens.
    pub fn node(self, index: usize) -> IpAddr {
        self.ip(u8::try_from(11 + index).expect("at most 245 nodes"))
    }
}

/// A cluster name (Redis key prefix) unique to this process and call.
pub fn unique_cluster_name(hint: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let hint: String = hint
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("yaktest-{hint}-{}-{n}-{nanos:x}", std::process::id())
}

fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("creating a temp dir")
}

fn keep_temp() -> bool {
    std::env::var_os("YAK_TESTKIT_KEEP").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Sends `signal` to a child process. Errors (it already exited) are
/// ignored.
fn signal(child: &Child, signal: Signal) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// SIGSTOP, then waits until every thread of the process has stopped.
///
/// A process-directed SIGSTOP stops the threads one by one: the thread that
/// takes the signal starts the group stop when it next runs, and on a busy
/// machine the other threads can go on running user code (accepting a
/// request, answering one) for milliseconds after `kill` returned. Tests
/// rely on "nothing happens in there after `pause()`", so this reads
/// `/proc/<pid>/task/*/stat` until every thread is stopped (or gone).
/// Without `/proc` it returns at once.
fn stop_process(child: &Child) {
    signal(child, Signal::SIGSTOP);
    let pid = child.id();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while !all_threads_stopped(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} did not stop within {STOP_TIMEOUT:?} of SIGSTOP"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// True if no thread of `pid` can run: each is stopped (`T`), traced
/// (`t`), a zombie or gone. True if `/proc` cannot be read.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.filter_map(Result::ok).all(|task| {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            return true; // the thread exited
        };
        // "<tid> (<comm>) <state> ..."; comm may hold spaces and parens.
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next());
        matches!(state, Some('T' | 't' | 'Z' | 'X') | None)
    })
}

/// Waits for `child` to exit, up to `timeout`, without blocking the async
/// runtime.
async fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The last `n` lines of a file (lossy UTF-8), or a note why there are none.
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// How a [`RedisServer`] persists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisOptions {
    /// `--appendonly yes`: data survives [`RedisServer::restart`].
    pub appendonly: bool,
    /// `--appendfsync always` (only meaningful with `appendonly`).
    pub appendfsync_always: bool,
    /// The loopback address it listens on [default: 127.0.0.1].
    pub host: Option<IpAddr>,
}

/// Builder of a [`RedisServer`].
#[derive(Debug, Clone, Default)]
pub struct RedisBuilder {
    options: RedisOptions,
}

impl RedisBuilder {
    /// Persist with an append-only file (default: no persistence at all).
    pub fn appendonly(mut self, on: bool) -> Self {
        self.options.appendonly = on;
        self
    }

    /// fsync the append-only file on every write.
    pub fn appendfsync_always(mut self, on: bool) -> Self {
        self.options.appendfsync_always = on;
        self
    }

    /// Listen on `host` instead of 127.0.0.1.
    pub fn host(mut self, host: IpAddr) -> Self {
        self.options.host = Some(host);
        self
    }

    /// Starts the server and waits until it answers `PING`.
    pub async fn start(self) -> RedisServer {
        RedisServer::start_with(self.options).await
    }
}

/// A real `redis-server` on a free port with its own temp directory. Killed
/// on drop.
pub struct RedisServer {
    port: u16,
    options: RedisOptions,
    child: Option<Child>,
    paused: bool,
    dir: Option<TempDir>,
    path: PathBuf,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("dir", &self.path)
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl RedisServer {
    /// A builder, to choose persistence.
    pub fn builder() -> RedisBuilder {
        RedisBuilder::default()
    }

    /// Starts a Redis without persistence and waits until it answers.
    pub async fn start() -> Self {
        Self::start_with(RedisOptions::default()).await
    }

    /// Starts a Redis with `options` and waits until it answers.
    pub async fn start_with(options: RedisOptions) -> Self {
        let dir = temp_dir("yak-redis-");
        let path = dir.path().to_owned();
        let mut server = Self {
            port: 0,
            options,
            child: None,
            paused: false,
            dir: Some(dir),
            path,
        };
        // Another process may take the port between our probe and Redis's
        // bind: try a few ports before giving up.
        for attempt in 1..=5 {
            server.port = free_port_on(server.host());
            match server.launch().await {
                Ok(()) => return server,
                Err(e) if attempt < 5 => eprintln!("testkit: redis start failed ({e}); retrying"),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    fn binary() -> PathBuf {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("redis-server"))
                .find(|p| p.is_file())
        });
        found.unwrap_or_else(|| {
            panic!(
                "redis-server is not on PATH. Run scripts/test.sh once (it installs \
                 redis-server), or install it yourself (apt-get install redis-server)."
            )
        })
    }

    async fn launch(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("opening the redis log: {e}"))?;
        let mut command = Command::new(Self::binary());
        command
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg(self.host().to_string())
            .arg("--dir")
            .arg(&self.path)
            .args(["--save", ""])
            .args(["--daemonize", "no"])
            .args(["--logfile", ""])
            .arg("--appendonly")
            .arg(if self.options.appendonly { "yes" } else { "no" });
        if self.options.appendfsync_always {
            command.args(["--appendfsync", "always"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning redis-server: {e}"))?;
        self.child = Some(child);
        self.paused = false;
        let addr = self.addr();
        let child = self.child.as_mut().expect("just spawned");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ping(addr) {
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "redis-server on {addr} exited with {status}; its log:\n{}",
                    tail(&self.log_path(), 20)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server on {addr} did not answer PING within {START_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `redis://<host>:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host(), self.port)
    }

    pub fn host(&self) -> IpAddr {
        self.options.host.unwrap_or(Ipv4Addr::LOCALHOST.into())
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host(), self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its working directory (AOF files live here).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// Where its output goes.
    pub fn log_path(&self) -> PathBuf {
        self.path.join("redis.log")
    }

    /// True if the process is running (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// True if it answers `PING` right now.
    pub fn answers(&self) -> bool {
        ping(self.addr())
    }

    /// SIGKILL: dies at once; without AOF fsync, recent writes may be lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, Signal::SIGKILL);
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERM (Redis flushes its AOF and exits), waiting for the exit;
    /// SIGKILL if it takes longer than [`STOP_TIMEOUT`].
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                signal(&child, Signal::SIGCONT);
            }
            signal(&child, Signal::SIGTERM);
            if wait_exit(&mut child, STOP_TIMEOUT).await.is_none() {
                signal(&child, Signal::SIGKILL);
                let _ = child.wait();
            }
        }
        self.paused = false;
    }

    /// Stops it (gracefully) if running, then starts it again on the same
    /// port and directory, and waits until it answers. With `appendonly`,
    /// its data survives.
    pub async fn restart(&mut self) {
        self.stop().await;
        // The port was ours a moment ago; Redis binds with SO_REUSEADDR.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch().await {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("testkit: redis restart failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// SIGSTOP: the process freezes; connections hang. Returns once every
    /// thread has stopped.
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            stop_process(child);
            self.paused = true;
        }
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&mut self) {
        if let Some(child) = &self.child {
            signal(child, Signal::SIGCONT);
            self.paused = false;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- testkit: redis on port {} ({}), last lines ----\n{}",
                self.port,
                self.path.display(),
                tail(&self.log_path(), 20)
            );
        }
        self.kill();
        if keep_temp()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("testkit: kept redis dir {}", kept.display());
        }
    }
}

/// One `PING` over a raw connection: true if it answers `+PONG` (not
/// `-LOADING` while it reads its AOF).
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"+PONG")
}

// ---------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------

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

/// Where the `broker` and `follower` binaries are: `$YAK_BIN_DIR`, else the
/// cargo profile directory of the running executable.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("YAK_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the path of the running test");
    let parent = exe.parent().expect("the test binary has a directory");
    if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().expect("deps has a parent").to_owned()
    } else {
        parent.to_owned()
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

/// Builds the binaries of the workspace `packages` into the running test's
/// target directory (a no-op when they are up to date), unless
/// `YAK_BIN_DIR` is set: `cargo test -p <crate>` builds no binary of
/// another package. Failures are reported and the binaries used as they
/// are; finding them is [`bin_dir`]'s job.
pub fn build_bins(packages: &[&str]) {
    if std::env::var_os("YAK_BIN_DIR").is_some() {
        return;
    }
    let dir = bin_dir();
    let Some(target_dir) = dir.parent() else {
        return;
    };
    let profile = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("broker lives in the workspace")
        .join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(&workspace)
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .arg("--bins")
        // The same features as the test build, so the library is reused.
        .args(["--features", "broker/testkit"])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let started = Instant::now();
    let what = packages.join(", ");
    match command.output() {
        Ok(out) if out.status.success() => {
            if started.elapsed() > Duration::from_secs(2) {
                eprintln!("testkit: built {what} in {:?}", started.elapsed());
            }
        }
        Ok(out) => eprintln!(
            "testkit: building {what} failed ({}); using the binaries in {} as they are:\n{}",
            out.status,
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!(
            "testkit: cannot run cargo ({e}); using the binaries in {} as they are",
            dir.display()
        ),
    }
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

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
    /// [`Cluster`]'s nodes live on its [`Subnet`]).
    pub host: IpAddr,
    /// Further flags, passed as they are after the ones above.
    pub args: Vec<String>,
    /// Environment variables for the process (every inherited `YAK_*`
    /// variable is removed first).
    pub env: Vec<(String, String)>,
    /// Serves HTTPS with the [`tls::test_ca`] certificate.
    pub tls: bool,
    /// `--client-token`, which the harness's own requests then send.
    pub client_token: Option<String>,
    /// Opens the binary produce port (on a free port; never with TLS).
    pub tcp: bool,
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
        }
    }

    /// No binary produce port: one port fewer to find free and to keep
    /// free across restarts.
    pub fn without_tcp(mut self) -> Self {
        self.tcp = false;
        self
    }

    /// Serve HTTPS with the process's [`tls::test_ca`] certificate and
    /// trust that CA when calling other nodes.
    pub fn tls(mut self) -> Self {
        self.args.extend(tls::test_ca().node_args());
        self.tls = true;
        self
    }

    /// `--client-token` (which needs a `--cluster-token` too).
    pub fn client_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.args
            .extend(["--client-token".to_owned(), token.clone()]);
        self.client_token = Some(token);
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
            url: String::new(),
            child: None,
            paused: false,
            dir: Some(dir),
            path,
        };
        for attempt in 1..=5 {
            node.port = free_port_on(node.options.host);
            node.tcp_port = free_port_on(node.options.host);
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
        let mut command = Command::new(&binary);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("YAK_") {
                command.env_remove(&key);
            }
        }
        command
            .arg("--node-id")
            .arg(&self.options.id)
            .arg("--listen")
            .arg(format!("{}:{}", self.options.host, self.port))
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--redis-url")
            .arg(&self.options.redis_url)
            .arg("--cluster")
            .arg(&self.options.cluster)
            .arg("--lease-ttl-ms")
            .arg(self.options.lease_ttl_ms.to_string())
            .arg("--tcp-listen")
            .arg(if self.options.tls || !self.options.tcp {
                "off".to_owned()
            } else {
                format!("{}:{}", self.options.host, self.tcp_port)
            })
            .args(&self.options.args)
            .env("NO_COLOR", "1")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let child = command
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", binary.display()))?;
        self.child = Some(child);
        self.paused = false;

        let health = format!("{}/health", self.url());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(reply) = try_send(http_client().get(&health)).await
                && reply.status == StatusCode::OK
            {
                return Ok(());
            }
            let child = self.child.as_mut().expect("just spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "node {} exited with {status} while starting; its output:\n{}",
                    self.options.id,
                    tail(&self.log_path(), LOG_TAIL_LINES)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {} did not answer {health} within {START_TIMEOUT:?}; its output:\n{}",
                    self.options.id,
                    tail(&self.log_path(), LOG_TAIL_LINES)
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `http://<host>:<port>` (`https://` with TLS; also its advertised
    /// URL unless the flags say otherwise).
    pub fn url(&self) -> &str {
        &self.url
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
        if self.paused {
            signal(&child, Signal::SIGCONT);
            self.paused = false;
        }
        signal(&child, Signal::SIGTERM);
        match wait_exit(&mut child, STOP_TIMEOUT).await {
            Some(status) => status,
            None => {
                signal(&child, Signal::SIGKILL);
                let _ = child.wait();
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

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

/// Builder of a [`Cluster`]: one Redis, one `broker`, `n` `follower`s.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    name: Option<String>,
    followers: usize,
    lease_ttl_ms: u64,
    min_insync: Option<u32>,
    redis: RedisOptions,
    args: Vec<String>,
    env: Vec<(String, String)>,
    leader_timeout: Duration,
    tls: bool,
    client_token: Option<String>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self {
            name: None,
            followers: 0,
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            min_insync: None,
            redis: RedisOptions::default(),
            args: Vec::new(),
            env: Vec::new(),
            leader_timeout: Duration::from_secs(15),
            tls: false,
            client_token: None,
        }
    }
}

impl ClusterBuilder {
    /// The cluster name (Redis key prefix); unique by default.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How many `follower` nodes besides the `broker` (default 0).
    pub fn followers(mut self, n: usize) -> Self {
        self.followers = n;
        self
    }

    /// Lease TTL of every node (default [`DEFAULT_LEASE_TTL_MS`]).
    pub fn lease_ttl_ms(mut self, ms: u64) -> Self {
        self.lease_ttl_ms = ms;
        self
    }

    /// `--min-insync-replicas` of every node.
    pub fn min_insync(mut self, n: u32) -> Self {
        self.min_insync = Some(n);
        self
    }

    /// Redis with an append-only file.
    pub fn redis_appendonly(mut self, on: bool) -> Self {
        self.redis.appendonly = on;
        self
    }

    /// Redis with `--appendfsync always`.
    pub fn redis_appendfsync_always(mut self, on: bool) -> Self {
        self.redis.appendfsync_always = on;
        self
    }

    /// Extra flags for every node.
    pub fn extra_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable for every node.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Every node serves HTTPS ([`NodeOptions::tls`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Every node takes `--client-token` (add a `--cluster-token` with
    /// [`ClusterBuilder::extra_args`]); the harness's requests send it.
    pub fn client_token(mut self, token: impl Into<String>) -> Self {
        self.client_token = Some(token.into());
        self
    }

    /// How long [`ClusterBuilder::start`] waits for a leader (default 15 s).
    pub fn leader_timeout(mut self, timeout: Duration) -> Self {
        self.leader_timeout = timeout;
        self
    }

    /// Options for node `index` (0 is the broker).
    fn node_options(
        &self,
        redis_url: &str,
        name: &str,
        subnet: Option<Subnet>,
        index: usize,
    ) -> NodeOptions {
        let (kind, id) = match index {
            0 => (NodeKind::Broker, "broker".to_owned()),
            i => (NodeKind::Follower, format!("follower-{i}")),
        };
        let mut options = NodeOptions::new(kind, redis_url, name)
            .id(id)
            .lease_ttl_ms(self.lease_ttl_ms)
            .args(self.args.iter().cloned());
        if let Some(subnet) = subnet {
            options = options.host(subnet.node(index));
        }
        if let Some(n) = self.min_insync {
            options = options.args(["--min-insync-replicas".to_owned(), n.to_string()]);
        }
        if self.tls {
            options = options.tls();
        }
        if let Some(token) = &self.client_token {
            options = options.client_token(token.clone());
        }
        options.env = self.env.clone();
        options
    }

    /// Starts Redis, the broker, then the followers, and returns once a
    /// leader is elected and acknowledging (its `/health` says `leader`).
    /// Everything listens on a [`Subnet`] of its own, except with TLS: the
    /// test certificate names 127.0.0.1.
    pub async fn start(self) -> Cluster {
        let subnet = (!self.tls).then(Subnet::next);
        let redis = RedisServer::start_with(RedisOptions {
            host: subnet.map(Subnet::redis),
            ..self.redis
        })
        .await;
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| unique_cluster_name("cluster"));
        let mut nodes = Vec::with_capacity(self.followers + 1);
        for index in 0..=self.followers {
            let options = self.node_options(&redis.url(), &name, subnet, index);
            nodes.push(NodeProcess::start(options).await);
        }
        let cluster = Cluster {
            nodes,
            redis,
            name,
            subnet,
            template: self.clone(),
        };
        cluster.wait_for_leader(self.leader_timeout, |_| true).await;
        cluster
    }
}

/// Who leads, as `/metadata/leader` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub id: String,
    /// The leader's advertised URL, if registered.
    pub url: Option<String>,
    pub epoch: u64,
    /// The whole `/metadata/leader` body.
    pub body: Value,
}

/// One Redis and the nodes that use it. Dropping it kills everything.
pub struct Cluster {
    // Nodes drop (and die) before their Redis.
    nodes: Vec<NodeProcess>,
    redis: RedisServer,
    name: String,
    subnet: Option<Subnet>,
    /// How the nodes were configured, for [`Cluster::add_node`].
    template: ClusterBuilder,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("redis", &self.redis)
            .field("nodes", &self.nodes)
            .finish()
    }
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// The cluster name (Redis key prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    pub fn redis_mut(&mut self) -> &mut RedisServer {
        &mut self.redis
    }

    /// A fresh [`ClusterStore`] on this cluster's Redis and key prefix, to
    /// read what the nodes stored there (HWMs, ISRs, the lease). Call it
    /// inside the test's runtime.
    pub fn store(&self) -> crate::store::ClusterStore {
        crate::store::ClusterStore::new(&self.redis.url(), &self.name, Duration::from_secs(2))
            .expect("a redis URL the nodes use parses")
    }

    /// Registers a node `id` that never answers (its URL is a free port) in
    /// the cluster's registry for five minutes: a replica that exists but
    /// cannot keep up, as one that crashed just after its last heartbeat.
    pub async fn register_ghost(&self, id: &str) {
        let ghost = crate::store::NodeInfo {
            id: id.to_owned(),
            url: format!("http://127.0.0.1:{}", free_port()),
            tcp: None,
            role: "follower".to_owned(),
            epoch: 0,
            heartbeat_ms: crate::node::now_ms(),
        };
        self.store()
            .heartbeat(&ghost, Duration::from_secs(300))
            .await
            .expect("redis answers");
    }

    /// Every node; index 0 is the broker, then the followers.
    pub fn nodes(&self) -> &[NodeProcess] {
        &self.nodes
    }

    pub fn node(&self, index: usize) -> &NodeProcess {
        &self.nodes[index]
    }

    pub fn node_mut(&mut self, index: usize) -> &mut NodeProcess {
        &mut self.nodes[index]
    }

    /// The `broker` node (index 0).
    pub fn broker(&self) -> &NodeProcess {
        &self.nodes[0]
    }

    pub fn broker_mut(&mut self) -> &mut NodeProcess {
        &mut self.nodes[0]
    }

    /// The `follower` nodes.
    pub fn followers(&self) -> &[NodeProcess] {
        &self.nodes[1..]
    }

    /// The node with id `id`.
    pub fn node_by_id(&self, id: &str) -> Option<&NodeProcess> {
        self.nodes.iter().find(|n| n.id() == id)
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == id)
    }

    /// `/metadata/leader` as the first reachable, unpaused node answers it
    /// (`None` if no node answers or nobody holds the lease).
    pub async fn leader_info(&self) -> Option<LeaderInfo> {
        for node in self.nodes.iter().filter(|n| n.child.is_some() && !n.paused) {
            let request = node.authorized(
                http_client()
                    .get(format!("{}/metadata/leader", node.url()))
                    .timeout(Duration::from_secs(2)),
            );
            let Ok(reply) = try_send(request).await else {
                continue;
            };
            if reply.status != StatusCode::OK {
                continue;
            }
            let body = reply.json;
            let id = body["leader_id"].as_str()?.to_owned();
            return Some(LeaderInfo {
                id,
                url: body["leader_url"].as_str().map(str::to_owned),
                epoch: body["epoch"].as_u64().unwrap_or(0),
                body,
            });
        }
        None
    }

    /// The node that holds the lease right now, by `/metadata/leader`.
    pub async fn leader(&self) -> Option<&NodeProcess> {
        let info = self.leader_info().await?;
        self.node_by_id(&info.id)
    }

    /// Waits until a leader that satisfies `accept` holds the lease and is
    /// acknowledging writes (its own `/health` says `leader`), and returns
    /// it. Panics after `timeout`.
    #[track_caller]
    pub fn wait_for_leader<'a, P>(
        &'a self,
        timeout: Duration,
        accept: P,
    ) -> impl Future<Output = LeaderInfo> + 'a
    where
        P: Fn(&LeaderInfo) -> bool + 'a,
    {
        let caller = Location::caller();
        async move {
            poll_until(
                format!("a leader in cluster {} (at {caller})", self.name),
                timeout,
                || async {
                    let info = self.leader_info().await?;
                    if !accept(&info) {
                        return None;
                    }
                    let node = self.node_by_id(&info.id)?;
                    if node.paused {
                        return None;
                    }
                    (node.role().await.as_deref() == Some("leader")).then_some(info)
                },
            )
            .await
        }
    }

    /// Waits until every running node knows every other running node's
    /// URL: its cluster view (`GET /stats` → `nodes`, refreshed from the
    /// Redis registry together with the table of peer URLs) lists them all.
    /// A leader drops from the ISR, at the next write, a follower whose URL
    /// it does not know yet ("not registered"), so tests that need a stable
    /// ISR call this after starting or restarting nodes. Panics after
    /// `timeout`.
    #[track_caller]
    pub fn wait_for_peers(&self, timeout: Duration) -> impl Future<Output = ()> + '_ {
        let caller = Location::caller();
        async move {
            let running: Vec<&NodeProcess> = self
                .nodes
                .iter()
                .filter(|n| n.child.is_some() && !n.paused)
                .collect();
            let ids: Vec<&str> = running.iter().map(|n| n.id()).collect();
            poll_until(
                format!("nodes {ids:?} to know each other (at {caller})"),
                timeout,
                || async {
                    for node in &running {
                        let stats = node.stats().await?;
                        let known: Vec<&str> = stats["nodes"]
                            .as_array()?
                            .iter()
                            .filter_map(|n| n["id"].as_str())
                            .collect();
                        if !ids.iter().all(|id| known.contains(id)) {
                            return None;
                        }
                    }
                    Some(())
                },
            )
            .await
        }
    }

    /// Starts one more node of `kind` with id `id`, configured like the
    /// others (same Redis, cluster name, lease TTL, flags and environment),
    /// and returns its index once `/health` answers.
    pub async fn add_node(&mut self, kind: NodeKind, id: impl Into<String>) -> usize {
        let id = id.into();
        assert!(
            self.node_by_id(&id).is_none(),
            "node id {id} is already in use"
        );
        let mut options = self
            .template
            .node_options(&self.redis.url(), &self.name, self.subnet, self.nodes.len())
            .id(id);
        options.kind = kind;
        self.nodes.push(NodeProcess::start(options).await);
        self.nodes.len() - 1
    }

    /// Prints every node's last output lines.
    pub fn dump_logs(&self) {
        for node in &self.nodes {
            node.dump_logs();
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// An HTTP reply: status, headers, the body as text and as JSON
/// ([`Value::Null`] if empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// The `Location` header, if any.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The `error` field of a JSON error body.
    pub fn error_code(&self) -> Option<&str> {
        self.json["error"].as_str()
    }

    /// Asserts a 4xx answer with a JSON error body `{"error", "message"}`.
    #[track_caller]
    pub fn assert_json_error(&self, what: &str) {
        assert!(
            self.status.is_client_error(),
            "{what}: expected a 4xx, got {} {}",
            self.status,
            self.text
        );
        assert!(
            self.json["error"].is_string() && self.json["message"].is_string(),
            "{what}: not a JSON error: {} {:?}",
            self.status,
            self.text
        );
    }

    /// The `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }
}

/// A client that never follows redirects (tests check 307 + `Location`),
/// keeps no idle connections (nodes get paused and killed), and times out
/// after [`HTTP_TIMEOUT`]. Cheap; make one per use (a client's pool must
/// not outlive the runtime of one `#[tokio::test]`).
pub fn http_client() -> reqwest::Client {
    http_client_with_timeout(HTTP_TIMEOUT)
}

/// [`http_client`] with another request timeout.
pub fn http_client_with_timeout(timeout: Duration) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0);
    if let Some(ca) = tls::trusted() {
        let certificate =
            reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).expect("the test CA parses");
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().expect("building an HTTP client")
}

/// Sends a request and reads the whole reply.
pub async fn try_send(request: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        headers,
        text,
        json,
    })
}

/// Sends a request; panics on a transport error (connection refused,
/// timeout).
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let description = format!("{request:?}");
    match try_send(request).await {
        Ok(reply) => reply,
        Err(e) => panic!("HTTP request failed: {e} ({description})"),
    }
}

/// A request with `method` to `url` (a full URL), optionally with a raw
/// body and its content type.
pub async fn request(method: Method, url: &str, body: Option<(&str, Vec<u8>)>) -> Reply {
    let mut builder = http_client().request(method, url);
    if let Some((content_type, bytes)) = body {
        builder = builder
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
    }
    send(builder).await
}

/// `GET url` → status and JSON body.
pub async fn get_json(url: &str) -> (StatusCode, Value) {
    let reply = send(http_client().get(url)).await;
    (reply.status, reply.json)
}

/// `POST url` with a JSON body → status and JSON body.
pub async fn post_json(url: &str, body: &Value) -> (StatusCode, Value) {
    let reply = send(http_client().post(url).json(body)).await;
    (reply.status, reply.json)
}

/// `POST url` with raw bytes as `application/json` (for malformed bodies).
pub async fn post_raw(url: &str, body: impl Into<Vec<u8>>) -> Reply {
    request(Method::POST, url, Some(("application/json", body.into()))).await
}

/// `POST {node_url}/topics`; panics unless the topic was created (201).
pub async fn create_topic(node_url: &str, name: &str, partitions: u32) {
    let (status, body) = post_json(
        &format!("{node_url}/topics"),
        &serde_json::json!({"name": name, "partitions": partitions}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "creating {name}: {body}");
}

/// `POST {node}/produce` with `body` (one record or `{"records": [...]}`).
pub async fn produce(node_url: &str, body: &Value) -> (StatusCode, Value) {
    post_json(&format!("{node_url}/produce"), body).await
}

/// `POST {node}/produce/batch?topic=..&partition=..` with `batch` (built
/// with [`partition_log::BatchBuilder`], or deliberately broken) as the
/// binary body.
pub async fn produce_batch(node_url: &str, topic: &str, partition: u32, batch: Vec<u8>) -> Reply {
    let url = format!("{node_url}/produce/batch?topic={topic}&partition={partition}");
    request(
        Method::POST,
        &url,
        Some((crate::http::batch::CONTENT_TYPE, batch)),
    )
    .await
}

/// `GET {node}/consume?topic=..&partition=..&offset=..`.
pub async fn consume(
    node_url: &str,
    topic: &str,
    partition: u32,
    offset: u64,
) -> (StatusCode, Value) {
    consume_with(
        node_url,
        &[
            ("topic", topic.to_owned()),
            ("partition", partition.to_string()),
            ("offset", offset.to_string()),
        ],
    )
    .await
}

/// `GET {node}/consume` with arbitrary query parameters (URL-encoded).
pub async fn consume_with(node_url: &str, query: &[(&str, String)]) -> (StatusCode, Value) {
    let reply = send(
        http_client()
            .get(format!("{node_url}/consume"))
            .query(query),
    )
    .await;
    (reply.status, reply.json)
}

/// Every committed record of one partition, from its log start to its HWM,
/// reading page by page. Panics on any non-200 reply.
pub async fn consume_all(node_url: &str, topic: &str, partition: u32) -> Vec<Value> {
    let mut records = Vec::new();
    let mut offset = 0u64;
    loop {
        let query = [
            ("topic", topic.to_owned()),
            ("partition", partition.to_string()),
            ("offset", offset.to_string()),
            ("max_records", "10000".to_owned()),
        ];
        let (status, body) = consume_with(node_url, &query).await;
        let start = body["log_start_offset"].as_u64().unwrap_or(0);
        if status == StatusCode::BAD_REQUEST
            && body["error"] == "offset_out_of_range"
            && records.is_empty()
            && offset < start
        {
            offset = start;
            continue;
        }
        assert_eq!(
            status,
            StatusCode::OK,
            "consume {topic}/{partition}@{offset}: {body}"
        );
        let page = body["records"].as_array().cloned().unwrap_or_default();
        let next = body["next_offset"].as_u64().expect("next_offset");
        let hwm = body["high_water_mark"].as_u64().expect("high_water_mark");
        let empty = page.is_empty();
        records.extend(page);
        if next >= hwm || empty {
            return records;
        }
        offset = next;
    }
}

/// `GET {node}/topics/{topic}` → status and JSON body.
pub async fn describe_topic(node_url: &str, topic: &str) -> (StatusCode, Value) {
    get_json(&format!("{node_url}/topics/{topic}")).await
}

/// Everything one node shows of its data: `GET /topics`, and for every
/// topic `GET /topics/{name}` and every committed record of every
/// partition. Two equal snapshots mean nothing was stored in between.
pub async fn node_snapshot(node_url: &str) -> Value {
    let (status, list) = get_json(&format!("{node_url}/topics")).await;
    assert_eq!(status, StatusCode::OK, "GET /topics: {list}");
    let mut topics: Vec<(String, u64)> = list["topics"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| Some((t["name"].as_str()?.to_owned(), t["partitions"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    topics.sort();
    let mut snapshot = serde_json::Map::new();
    for (name, partitions) in &topics {
        let (status, described) = describe_topic(node_url, name).await;
        assert_eq!(status, StatusCode::OK, "GET /topics/{name}: {described}");
        let mut records = Vec::new();
        for p in 0..*partitions as u32 {
            records.push(Value::Array(consume_all(node_url, name, p).await));
        }
        snapshot.insert(
            name.clone(),
            serde_json::json!({"described": described, "records": records}),
        );
    }
    serde_json::json!({"topics": topics, "data": snapshot})
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

/// How a server treated a client that sends its request head a byte at a
/// time and never finishes it (slowloris).
#[derive(Debug, Clone)]
pub struct SlowClient {
    /// From connecting until the server closed the connection.
    pub cut_off_after: Duration,
    /// What the server sent before closing (an `HTTP/1.1 408` or nothing).
    pub answer: String,
}

/// Connects to `addr` and sends a request head one byte every 100 ms,
/// never ending it, until the server closes the connection. Panics if it
/// is still open after `limit`.
pub async fn slow_client(addr: SocketAddr, limit: Duration) -> SlowClient {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting");
    let start = Instant::now();
    let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut answer = Vec::new();
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if stream.write_all(&[*byte]).await.is_err() {
            break; // closed by the server
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {} // nothing yet: send the next byte
        }
        assert!(
            start.elapsed() < limit,
            "a slow client was not cut off within {limit:?}"
        );
    }
    SlowClient {
        cut_off_after: start.elapsed(),
        answer: String::from_utf8_lossy(&answer).into_owned(),
    }
}
