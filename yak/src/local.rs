//! Processes on this machine: starting `redis-server` and YAK's binaries,
//! routing their output, waiting for health, stopping them. Shared by
//! `yak up` and `yak bench`.

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
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
    child: Child,
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

/// Flags for a node process.
pub fn node_args(
    id: &str,
    host: &str,
    port: u16,
    data_dir: &Path,
    redis_url: &str,
    lease_ttl_ms: u64,
) -> Vec<String> {
    vec![
        "--node-id".to_owned(),
        id.to_owned(),
        "--listen".to_owned(),
        format!("{host}:{port}"),
        "--advertised-url".to_owned(),
        format!("http://{host}:{port}"),
        "--data-dir".to_owned(),
        data_dir.join(id).display().to_string(),
        "--redis-url".to_owned(),
        redis_url.to_owned(),
        "--lease-ttl-ms".to_owned(),
        lease_ttl_ms.to_string(),
    ]
}

/// Polls `{url}/health` until it answers 200 or `timeout` passes.
pub async fn wait_healthy(name: &str, url: &str, timeout: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = Instant::now() + timeout;
    loop {
        let health = http.get(format!("{url}/health")).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} did not become healthy at {url}/health within {timeout:?} (see its log)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
