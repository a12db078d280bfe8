//! Waiting until a started process serves.
//!
//! [`wait_ready`] polls a check every [`POLL_INTERVAL`] until it succeeds,
//! failing at once when the `exited` callback says the process has exited
//! (there is no point waiting for a dead server) and when `timeout`
//! passes; one check that hangs cannot overrun the deadline by more than a
//! poll interval. [`wait_healthy`] is that for a node's or a UI's
//! `GET /health`, asked through [`yak_client::Probe`] (so with the
//! caller's token and CAs: build the probe from the same `ClientConfig`
//! as the rest of the calls); [`redis_answers`] is the check for
//! `redis-server`.

use std::{
    fmt,
    future::Future,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::ExitStatus,
    time::{Duration, Instant},
};

use serde_json::Value;
use yak_client::Probe;

/// How often [`wait_ready`] checks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Why a process did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The process exited first.
    #[error("the process exited ({status}) while waiting for {what}")]
    Exited { what: String, status: ExitStatus },
    /// The deadline passed; `last` says why the last check failed.
    #[error("waited {timeout:?} in vain for {what}; the last try: {last}")]
    Timeout {
        what: String,
        timeout: Duration,
        last: String,
    },
}

/// Polls `check` until it returns `Ok`, and returns that value. Fails
/// with [`HealthError::Exited`] as soon as `exited` returns a status (it
/// is asked after each failed check), and with [`HealthError::Timeout`]
/// (saying the last check's error) once `timeout` has passed. `what`
/// names what is awaited, for the errors (`redis on 127.0.0.1:7000 to
/// answer PING`).
pub async fn wait_ready<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    mut exited: impl FnMut() -> Option<ExitStatus>,
    mut check: F,
) -> Result<T, HealthError>
where
    E: fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match tokio::time::timeout(left.max(POLL_INTERVAL), check()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer before the deadline".to_owned(),
        };
        if let Some(status) = exited() {
            return Err(HealthError::Exited {
                what: what.to_owned(),
                status,
            });
        }
        if Instant::now() >= deadline {
            return Err(HealthError::Timeout {
                what: what.to_owned(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until `probe`'s server answers `GET /health` with 2xx and JSON
/// (see [`wait_ready`]), and returns that JSON.
pub async fn wait_healthy(
    probe: &Probe,
    timeout: Duration,
    exited: impl FnMut() -> Option<ExitStatus>,
) -> Result<Value, HealthError> {
    let what = format!("{}/health to answer", probe.url());
    wait_ready(&what, timeout, exited, || probe.health()).await
}

/// One `PING` to the Redis at `addr` over a fresh connection (connect
/// within 200 ms, answer within 500 ms): `Ok` if it answers `+PONG`, an
/// error saying what it did otherwise (`-LOADING` while it reads its
/// append-only file). Blocking, but short: usable as a [`wait_ready`]
/// check.
pub fn redis_answers(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    stream
        .write_all(b"PING\r\n")
        .map_err(|e| format!("sending PING to {addr}: {e}"))?;
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) => return Err(format!("{addr} closed the connection")),
            Err(e) => return Err(format!("reading from {addr}: {e}")),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    if got.starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(format!(
            "{addr} answered {}",
            String::from_utf8_lossy(&got).trim_end()
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::TcpListener,
        os::unix::process::ExitStatusExt,
        sync::atomic::{AtomicU32, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn ready_as_soon_as_the_check_passes() {
        let calls = AtomicU32::new(0);
        let value = wait_ready(
            "the third call",
            Duration::from_secs(10),
            || None,
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err("not yet"),
                    n => Ok(n),
                }
            },
        )
        .await
        .expect("ready");
        assert_eq!(value, 2);
    }

    #[tokio::test]
    async fn an_exit_fails_at_once() {
        let started = Instant::now();
        let error = wait_ready(
            "never",
            Duration::from_secs(30),
            || Some(ExitStatus::from_raw(1 << 8)),
            || async { Err::<(), _>("down") },
        )
        .await
        .expect_err("it exited");
        assert!(matches!(error, HealthError::Exited { .. }), "{error}");
        assert!(error.to_string().contains("exit status: 1"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_timeout_says_the_last_error_and_a_hung_check_cannot_overrun() {
        let error = wait_ready(
            "never",
            Duration::from_millis(100),
            || None,
            || async { Err::<(), _>("refused") },
        )
        .await
        .expect_err("times out");
        assert!(error.to_string().contains("refused"), "{error}");

        let started = Instant::now();
        let error = wait_ready(
            "hangs",
            Duration::from_millis(100),
            || None,
            std::future::pending::<Result<(), String>>,
        )
        .await
        .expect_err("times out");
        assert!(matches!(error, HealthError::Timeout { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn wait_healthy_fails_fast_for_a_server_that_is_gone() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let probe = Probe::new(
            &format!("http://127.0.0.1:{port}"),
            &yak_client::ClientConfig::default(),
        )
        .expect("a probe");
        let error = wait_healthy(&probe, Duration::from_secs(30), || {
            Some(ExitStatus::from_raw(9))
        })
        .await
        .expect_err("it exited");
        assert!(error.to_string().contains("/health"), "{error}");
    }

    #[test]
    fn redis_answers_needs_a_pong() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding");
        let addr = listener.local_addr().expect("an address");
        let server = std::thread::spawn(move || {
            for answer in [&b"+PONG\r\n"[..], b"-LOADING Redis is loading\r\n"] {
                let (mut stream, _) = listener.accept().expect("accepting");
                let mut ping = [0u8; 6];
                stream.read_exact(&mut ping).expect("reading PING");
                stream.write_all(answer).expect("answering");
            }
        });
        assert_eq!(redis_answers(addr), Ok(()));
        let loading = redis_answers(addr).expect_err("loading");
        assert!(loading.contains("LOADING"), "{loading}");
        server.join().expect("the fake server");
        assert!(redis_answers(addr).is_err(), "nothing listens any more");
    }
}
