//! `yak up`: the whole local cluster in one command. A `redis-server` child
//! (append-only file, `appendfsync always`, a private port, data under the
//! data directory) unless `--redis-url` is given, one broker, `--followers`
//! followers, the producer UI and the consumer UI, each its own process.
//! It prints every URL, streams every log line with the process's name,
//! restarts nothing (a process that exits is reported, loudly), and stops
//! everything on Ctrl-C or SIGTERM.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

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
}

/// A child process and the name its log lines carry.
struct Proc {
    name: String,
    child: Child,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("yak has no parent directory")?
            .to_owned(),
    };
    let binary = |name: &str| -> anyhow::Result<PathBuf> {
        let path = bin_dir.join(name);
        if !path.exists() {
            bail!(
                "{} not found; build the workspace first (cargo build --release) or pass --bin-dir",
                path.display()
            );
        }
        Ok(path)
    };
    let broker = binary("broker")?;
    let follower = binary("follower")?;
    let producer_ui = binary("producer-ui")?;
    let consumer_ui = binary("consumer-ui")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;

    let (lines, mut printed) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(line) = printed.recv().await {
            let _ = out.write_all(line.as_bytes()).await;
            let _ = out.flush().await;
        }
    });
    let mut procs: Vec<Proc> = Vec::new();
    let result = start_all(
        &args,
        &data_dir,
        [&broker, &follower, &producer_ui, &consumer_ui],
        &lines,
        &mut procs,
    )
    .await;
    if let Err(e) = result {
        stop_all(&mut procs, &lines).await;
        return Err(e);
    }

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut reported = vec![false; procs.len()];
    let mut check = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = check.tick() => {
                for (i, p) in procs.iter_mut().enumerate() {
                    if !reported[i] && let Ok(Some(status)) = p.child.try_wait() {
                        reported[i] = true;
                        let _ = lines.send(format!(
                            "yak: !!! {} exited ({status}); it is not restarted. Stop with Ctrl-C and run `yak up` again to bring it back.\n",
                            p.name
                        ));
                    }
                }
            }
        }
    }
    let _ = lines.send("yak: stopping everything…\n".to_owned());
    stop_all(&mut procs, &lines).await;
    let _ = lines.send("yak: stopped\n".to_owned());
    // Let the printer drain.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

async fn start_all(
    args: &UpArgs,
    data_dir: &Path,
    [broker, follower, producer_ui, consumer_ui]: [&PathBuf; 4],
    lines: &mpsc::UnboundedSender<String>,
    procs: &mut Vec<Proc>,
) -> anyhow::Result<()> {
    let host = &args.host;
    let redis_url = match &args.redis_url {
        Some(url) => url.clone(),
        None => {
            let (proc, url) = start_redis(data_dir, lines).await?;
            procs.push(proc);
            url
        }
    };
    let ttl = args.lease_ttl_ms.to_string();
    let mut nodes = vec![("broker".to_owned(), broker, args.broker_port)];
    for i in 0..args.followers {
        let port = match i {
            0 => args.follower_port,
            n => args.consumer_ui_port + n,
        };
        nodes.push((format!("follower-{}", i + 1), follower, port));
    }
    let mut urls = Vec::new();
    for (name, bin, port) in &nodes {
        let url = format!("http://{host}:{port}");
        let node_args = [
            "--node-id".to_owned(),
            name.clone(),
            "--listen".to_owned(),
            format!("{host}:{port}"),
            "--advertised-url".to_owned(),
            url.clone(),
            "--data-dir".to_owned(),
            data_dir.join(name).display().to_string(),
            "--redis-url".to_owned(),
            redis_url.clone(),
            "--lease-ttl-ms".to_owned(),
            ttl.clone(),
        ];
        procs.push(spawn(name, bin, &node_args, lines)?);
        urls.push((name.clone(), url));
    }
    let bootstrap: Vec<String> = urls.iter().map(|(_, u)| u.clone()).collect();
    let bootstrap = bootstrap.join(",");
    for (name, bin, port) in [
        ("producer-ui", producer_ui, args.producer_ui_port),
        ("consumer-ui", consumer_ui, args.consumer_ui_port),
    ] {
        let ui_args = [
            "--listen".to_owned(),
            format!("{host}:{port}"),
            "--bootstrap".to_owned(),
            bootstrap.clone(),
        ];
        procs.push(spawn(name, bin, &ui_args, lines)?);
        urls.push((name.to_owned(), format!("http://{host}:{port}")));
    }
    for (name, url) in &urls {
        wait_healthy(name, url).await?;
    }
    let mut banner = String::from("\nyak: the local cluster is up\n");
    for (name, url) in &urls {
        let what = match name.as_str() {
            "producer-ui" => "producer UI",
            "consumer-ui" => "consumer UI",
            _ => "node dashboard",
        };
        banner.push_str(&format!("  {name:<12} {url:<24} {what}\n"));
    }
    banner.push_str(&format!("  {:<12} {redis_url}\n", "redis"));
    banner.push_str(&format!("  data in {}\n", data_dir.display()));
    banner.push_str("yak: Ctrl-C stops everything\n\n");
    let _ = lines.send(banner);
    Ok(())
}

async fn start_redis(
    data_dir: &Path,
    lines: &mpsc::UnboundedSender<String>,
) -> anyhow::Result<(Proc, String)> {
    if which("redis-server").is_none() {
        bail!(
            "redis-server is not installed. Install it with `sudo apt-get install redis-server` \
             (scripts/run.sh does this for you), or pass --redis-url to use a running Redis."
        );
    }
    let dir = data_dir.join("redis");
    std::fs::create_dir_all(&dir)?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let redis_args = [
        "--port".to_owned(),
        port.to_string(),
        "--bind".to_owned(),
        "127.0.0.1".to_owned(),
        "--dir".to_owned(),
        dir.display().to_string(),
        "--appendonly".to_owned(),
        "yes".to_owned(),
        "--appendfsync".to_owned(),
        "always".to_owned(),
        "--save".to_owned(),
        String::new(),
    ];
    let proc = spawn("redis", Path::new("redis-server"), &redis_args, lines)?;
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

fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    lines: &mpsc::UnboundedSender<String>,
) -> anyhow::Result<Proc> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let prefix = format!("[{name:<11}] ");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    for stream in [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(stderr),
    ] {
        let (lines, prefix) = (lines.clone(), prefix.clone());
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = lines.send(format!("{prefix}{line}\n"));
            }
        });
    }
    Ok(Proc {
        name: name.to_owned(),
        child,
    })
}

async fn wait_healthy(name: &str, url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = http.get(format!("{url}/health")).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} did not become healthy at {url}/health within 30 s (see its log above)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the processes in reverse start order: SIGTERM, then SIGKILL after
/// a grace period.
async fn stop_all(procs: &mut [Proc], lines: &mpsc::UnboundedSender<String>) {
    for p in procs.iter_mut().rev() {
        if let Some(id) = p.child.id() {
            let _ = nix::sys::signal::kill(Pid::from_raw(id as i32), Signal::SIGTERM);
            match tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    let _ = lines.send(format!(
                        "yak: {} did not stop in 10 s; killing it\n",
                        p.name
                    ));
                    let _ = p.child.kill().await;
                }
            }
        }
    }
}
