//! Server-sent events. A page opens one `EventSource`; the handler starts a
//! *pump* (a task on the worker) that writes frames into a small bounded
//! channel, and the response body reads that channel. A browser that reads
//! slowly fills the channel, the pump waits, and whatever the pump reads
//! from (bounded broadcast channels) lags and skips ahead: the server never
//! buffers without bound for a slow client. The pump stops when the browser
//! goes away or the server shuts down.

use std::{convert::Infallible, future::Future, time::Duration};

use actix_web::{
    HttpResponse,
    http::header::{CACHE_CONTROL, CONTENT_TYPE},
    web::Bytes,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames buffered between a pump and its response.
const BUFFER: usize = 16;
/// A comment is sent after this long without events, so dead connections
/// are noticed and proxies keep the stream open.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// One event: `event: <name>` and a single `data:` line of compact JSON
/// (serde_json escapes newlines inside strings, so one line is enough).
pub fn frame(event: &str, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    frame_json(event, &json)
}

/// One event whose data is already compact JSON (one line).
pub fn frame_json(event: &str, json: &str) -> Bytes {
    debug_assert!(!json.contains('\n'), "an event's data is one line");
    Bytes::from(format!("event: {event}\ndata: {json}\n\n"))
}

/// Where a pump writes its events.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::Sender<Bytes>,
}

impl Sink {
    /// Sends one event, waiting while the browser is behind. False once the
    /// browser has gone.
    pub async fn send(&self, event: &str, data: &impl Serialize) -> bool {
        self.tx.send(frame(event, data)).await.is_ok()
    }

    /// [`Sink::send`] for data already serialized as compact JSON.
    pub async fn send_json(&self, event: &str, json: &str) -> bool {
        self.tx.send(frame_json(event, json)).await.is_ok()
    }
}

/// Answers with an event stream fed by `pump`.
pub fn stream<F, Fut>(cancel: CancellationToken, pump: F) -> HttpResponse
where
    F: FnOnce(Sink) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFER);
    // Ask browsers to reconnect after one second rather than three.
    let _ = tx.try_send(Bytes::from_static(b"retry: 1000\n\n"));
    let gone = tx.clone();
    let work = pump(Sink { tx });
    let stop = cancel.clone();
    actix_web::rt::spawn(async move {
        tokio::select! {
            () = work => {}
            () = gone.closed() => {}
            () = stop.cancelled() => {}
        }
    });
    let body = futures_util::stream::unfold((rx, cancel), |(mut rx, cancel)| async move {
        let next = tokio::select! {
            frame = rx.recv() => frame?,
            () = tokio::time::sleep(KEEPALIVE) => Bytes::from_static(b": keep-alive\n\n"),
            () = cancel.cancelled() => return None,
        };
        Some((Ok::<_, Infallible>(next), (rx, cancel)))
    });
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_data_line() {
        let f = frame("message", &serde_json::json!({"text": "a\nb\r\n\ndata: x"}));
        let text = std::str::from_utf8(&f).unwrap();
        assert!(text.starts_with("event: message\ndata: {"));
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.matches('\n').count(), 3, "{text:?}");
    }
}
