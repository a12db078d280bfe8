//! A TCP proxy in front of one destination (a node's HTTP port, binary
//! produce port or Kafka listener, or Redis for one node), whose behaviour is set per source IP: the kernel here has
//! no netem, so link faults are made in the harness.
//!
//! Every process of the cluster connects from its own loopback address (nodes via
//! `--source-address`, clients via `YakClient::with_local_address`), so one
//! proxy per destination and a mode per source IP give a *directed* link
//! `source → destination`.
//!
//! Modes ([`LinkMode`]):
//! - `Pass`: bytes flow.
//! - `Drop`: a blackhole. New connections are accepted but nothing is
//!   forwarded; established ones stop forwarding. Bytes are not thrown
//!   away: they wait in the kernel's buffers and flow again when the link
//!   heals, as TCP's retransmissions would make them do after a real
//!   partition (unless a side times out first).
//! - `Reset`: new connections are reset at once, established ones are
//!   reset (RST) when the mode is set.
//! - `Delay(d)`: every chunk is forwarded `d` late, in order.
//!
//! Invariant: a connection never skips or reorders bytes; the only ways it
//! ends are a side closing, a reset, or the proxy being dropped (which
//! aborts every connection task).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    sync::watch,
    task::JoinSet,
};

/// How a directed link behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    Pass,
    Drop,
    Reset,
    Delay(Duration),
}

/// How long [`LinkMode::Delay`] holds each chunk in the link-delay faults.
pub const DEFAULT_DELAY: Duration = Duration::from_millis(300);

/// A proxy could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for a proxy: {source}")]
pub struct ProxyError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// The modes of one proxy: one for every source not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Modes {
    default: LinkMode,
    by_source: HashMap<IpAddr, LinkMode>,
}

impl Modes {
    fn of(&self, source: IpAddr) -> LinkMode {
        self.by_source.get(&source).copied().unwrap_or(self.default)
    }
}

/// Where a proxy forwards to; unset until [`Proxy::set_target`] (a node's
/// proxy must exist, for its advertised URL, before the node picks its
/// port). Connections arriving while it is unset are reset.
type Target = Arc<std::sync::RwLock<Option<SocketAddr>>>;

/// One listening proxy. Dropping it stops it and ends its connections.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    target: Target,
    modes: Arc<watch::Sender<Modes>>,
    // Aborted on drop, with every connection task it spawned.
    _tasks: JoinSet<()>,
}

impl Proxy {
    /// Listens on `listen` (port 0 picks one) and forwards to `target`.
    pub async fn start(listen: SocketAddr, target: Option<SocketAddr>) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ProxyError {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ProxyError {
            addr: listen,
            source,
        })?;
        let (modes, _) = watch::channel(Modes {
            default: LinkMode::Pass,
            by_source: HashMap::new(),
        });
        let modes = Arc::new(modes);
        let target = Arc::new(std::sync::RwLock::new(target));
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(
            listener,
            Arc::clone(&target),
            Arc::clone(&modes),
        ));
        Ok(Self {
            addr,
            target,
            modes,
            _tasks: tasks,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to, if set.
    pub fn target(&self) -> Option<SocketAddr> {
        *self.target.read().unwrap()
    }

    pub fn set_target(&self, target: SocketAddr) {
        *self.target.write().unwrap() = Some(target);
    }

    /// Sets the mode of the link from `source` (`None`: from everyone not
    /// set individually).
    pub fn set(&self, source: Option<IpAddr>, mode: LinkMode) {
        self.modes.send_modify(|m| match source {
            Some(ip) => {
                m.by_source.insert(ip, mode);
            }
            None => m.default = mode,
        });
    }

    /// Every link passes again.
    pub fn heal(&self) {
        self.modes.send_modify(|m| {
            m.default = LinkMode::Pass;
            m.by_source.clear();
        });
    }

    /// True if every link passes.
    pub fn is_healed(&self) -> bool {
        let m = self.modes.borrow();
        m.default == LinkMode::Pass && m.by_source.values().all(|&x| x == LinkMode::Pass)
    }
}

async fn accept_loop(listener: TcpListener, target: Target, modes: Arc<watch::Sender<Modes>>) {
    // Connection tasks live in this set, so dropping the proxy (which
    // aborts this task) drops and aborts them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let target = *target.read().unwrap();
                connections.spawn(serve(stream, peer.ip(), target, modes.subscribe()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Resets a stream: SO_LINGER 0 makes the close send RST.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(
    client: TcpStream,
    source: IpAddr,
    target: Option<SocketAddr>,
    mut modes: watch::Receiver<Modes>,
) {
    let _ = client.set_nodelay(true);
    // A blackholed link holds new connections without connecting on; they
    // go through once it heals (like a SYN retransmitted after a partition).
    loop {
        let mode = modes.borrow_and_update().of(source);
        match mode {
            LinkMode::Reset => return reset(client),
            LinkMode::Drop => {
                if modes.changed().await.is_err() {
                    return;
                }
            }
            LinkMode::Pass | LinkMode::Delay(_) => break,
        }
    }
    let Some(target) = target else {
        return reset(client);
    };
    let Ok(upstream) = TcpStream::connect(target).await else {
        // The destination is down: the client sees a reset, as it would
        // from a closed port.
        return reset(client);
    };
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (up_read, up_write) = upstream.into_split();
    let there = std::pin::pin!(pump(client_read, up_write, source, modes.clone()));
    let back = std::pin::pin!(pump(up_read, client_write, source, modes));
    // A reset in either direction ends both (the halves are dropped when
    // this returns); a clean end of one waits for the other.
    let (mut there, mut back) = (there, back);
    let (mut there_done, mut back_done) = (false, false);
    while !(there_done && back_done) {
        let reset = tokio::select! {
            reset = &mut there, if !there_done => { there_done = true; reset }
            reset = &mut back, if !back_done => { back_done = true; reset }
        };
        if reset {
            return;
        }
    }
}

/// Copies `from` → `to` honouring the link's mode. Returns true if the link
/// was reset (both sockets are then set to send RST on close and the caller
/// drops them), false when `from` ended cleanly (`to` is shut down).
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    source: IpAddr,
    mut modes: watch::Receiver<Modes>,
) -> bool {
    let reset = |from: &OwnedReadHalf, to: &OwnedWriteHalf| {
        let _ = AsRef::<TcpStream>::as_ref(from).set_zero_linger();
        let _ = AsRef::<TcpStream>::as_ref(to).set_zero_linger();
        true
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return false;
                }
                Ok(n) => n,
            },
            changed = modes.changed() => {
                if changed.is_err() || modes.borrow().of(source) == LinkMode::Reset {
                    return reset(&from, &to);
                }
                continue;
            }
        };
        // Hold the chunk while the link is blackholed.
        loop {
            let mode = modes.borrow_and_update().of(source);
            match mode {
                LinkMode::Pass => break,
                LinkMode::Delay(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                LinkMode::Reset => return reset(&from, &to),
                LinkMode::Drop => {
                    if modes.changed().await.is_err() {
                        return reset(&from, &to);
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return reset(&from, &to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(stream: &mut TcpStream, msg: &[u8], within: Duration) -> Option<Vec<u8>> {
        stream.write_all(msg).await.ok()?;
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(within, stream.read_exact(&mut got))
            .await
            .ok()?
            .ok()?;
        Some(got)
    }

    #[tokio::test]
    async fn modes_pass_drop_heal_reset_delay() {
        let target = echo_server().await;
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), Some(target))
            .await
            .unwrap();
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        let short = Duration::from_millis(300);
        let long = Duration::from_secs(5);
        assert_eq!(
            roundtrip(&mut s, b"a", long).await.as_deref(),
            Some(&b"a"[..])
        );

        // Blackholed: nothing comes back...
        proxy.set(Some(me), LinkMode::Drop);
        assert_eq!(roundtrip(&mut s, b"b", short).await, None);
        // ...until it heals; then the held byte arrives, in order.
        proxy.heal();
        let mut got = [0u8; 1];
        tokio::time::timeout(long, s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"b");

        // Another source's mode does not touch this link.
        proxy.set(Some("127.0.0.2".parse().unwrap()), LinkMode::Reset);
        assert_eq!(
            roundtrip(&mut s, b"c", long).await.as_deref(),
            Some(&b"c"[..])
        );

        // Reset ends the established connection.
        proxy.set(None, LinkMode::Reset);
        let mut buf = [0u8; 1];
        let ended = tokio::time::timeout(long, s.read(&mut buf)).await.unwrap();
        assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");

        // Delay: answers come, late.
        proxy.heal();
        proxy.set(Some(me), LinkMode::Delay(Duration::from_millis(200)));
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            roundtrip(&mut s, b"d", long).await.as_deref(),
            Some(&b"d"[..])
        );
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert!(!proxy.is_healed());
    }
}
