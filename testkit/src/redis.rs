//! A real `redis-server` on a free port, with or without persistence,
//! started from a [`yak_launch::RedisSpec`] (the flags `yak up` gives
//! its Redis too).

use std::{
    fmt,
    fs::OpenOptions,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Child,
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use tempfile::TempDir;
use yak_launch::{Environment, Fsync, RedisPersistence, RedisSpec, find_on_path, health};

use crate::{
    START_TIMEOUT, net::free_port_on, process::keep_temp, process::signal, process::stop_process,
    process::tail, process::temp_dir, process::terminate,
};

/// How a [`RedisServer`] persists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisOptions {
    /// `--appendonly yes`: data survives [`RedisServer::restart`].
    pub appendonly: bool,
    /// `--appendfsync always` (only meaningful with `appendonly`; without
    /// it, `everysec`).
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
        find_on_path("redis-server").unwrap_or_else(|| {
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
        let spec = RedisSpec {
            program: Self::binary(),
            host: self.host().to_string(),
            port: self.port,
            dir: self.path.clone(),
            persistence: match (self.options.appendonly, self.options.appendfsync_always) {
                (false, _) => RedisPersistence::InMemory,
                (true, true) => RedisPersistence::AppendOnly(Fsync::Always),
                (true, false) => RedisPersistence::AppendOnly(Fsync::EverySec),
            },
            replica_of: None,
            env: Environment::default(),
        };
        let child = spec
            .command_line()
            .command()
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning redis-server: {e}"))?;
        self.child = Some(child);
        self.paused = false;
        let addr = self.addr();
        let child = self.child.as_mut().expect("just spawned");
        let what = format!("redis-server on {addr} to answer PING");
        let ready = health::wait_ready(
            &what,
            START_TIMEOUT,
            || child.try_wait().ok().flatten(),
            || async { health::redis_answers(addr) },
        )
        .await;
        match ready {
            Ok(()) => Ok(()),
            Err(e) => {
                if matches!(e, health::HealthError::Exited { .. }) {
                    self.child = None;
                }
                Err(format!("{e}; its log:\n{}", tail(&self.log_path(), 20)))
            }
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
        health::redis_answers(self.addr()).is_ok()
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
    /// SIGKILL if it takes longer than [`crate::STOP_TIMEOUT`].
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child).await;
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
