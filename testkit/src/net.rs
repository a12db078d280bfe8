//! Ports and addresses of their own for each test, and raw-socket clients.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

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

/// The first of `len` consecutive TCP ports on loopback that were all free
/// a moment ago (for a process that takes the ports after the one it is
/// given, like `yak up --kafka-port`). Ports the caller still holds bound
/// are never part of the run.
pub fn free_port_run(len: u16) -> u16 {
    loop {
        let first = free_port();
        let Some(last) = first.checked_add(len.saturating_sub(1)) else {
            continue;
        };
        let held: Result<Vec<TcpListener>, _> = (first..=last)
            .map(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)))
            .collect();
        if held.is_ok() {
            return first;
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
