//! The history of a run: every produce operation (invoke and completion
//! time, client, transport, partition, payload, outcome, offset, epoch),
//! every record a
//! consumer read, every HWM and epoch the observer saw in Redis, and every
//! fault. Kept in memory for the checks and, optionally, written as JSON
//! lines (one [`Event`] per line) to a file as it happens.
//!
//! Invariants: times are milliseconds since the start of the run on one
//! monotonic clock ([`History::now_ms`]), so they order events across
//! tasks; an operation is recorded once, when it completes, with both its
//! times.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::{Arc, Mutex},
    time::Instant,
};

use serde::Serialize;

/// How a produce operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged, at `offset` by the leader of `epoch`.
    Ok,
    /// Certainly not stored (the error said `written: "no"`, or a 4xx).
    Fail,
    /// May or may not be stored: a timeout, a lost connection, an error
    /// after the append.
    Unknown,
}

/// How a producer reached the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `POST /produce`, one JSON record per request.
    Http,
    /// The binary produce port: one record batch per request.
    Binary,
    /// The Kafka listener: Produce v9, one RecordBatch v2 per request.
    Kafka,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Http, Transport::Binary, Transport::Kafka];

    pub fn label(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Binary => "binary",
            Transport::Kafka => "kafka",
        }
    }
}

/// One produce operation: one record (a batch's records are one operation
/// each, with the batch's times and outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Op {
    pub invoke_ms: u64,
    pub complete_ms: u64,
    pub client: u32,
    pub transport: Transport,
    pub partition: u32,
    pub payload: String,
    pub outcome: Outcome,
    pub offset: Option<u64>,
    pub epoch: Option<u64>,
    /// The error, for `fail` and `unknown`.
    pub error: Option<String>,
}

/// A record a consumer read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Read {
    pub at_ms: u64,
    pub partition: u32,
    pub offset: u64,
    pub payload: String,
}

/// One line of the history file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Op(Op),
    Read(Read),
    /// A partition's HWM as stored in Redis.
    Hwm {
        at_ms: u64,
        partition: u32,
        hwm: u64,
    },
    /// The latest epoch handed out, as stored in Redis.
    Epoch {
        at_ms: u64,
        epoch: u64,
    },
    /// A fault began (`heal: false`) or was healed.
    Fault {
        at_ms: u64,
        fault: String,
        heal: bool,
    },
    /// A consumer saw records that do not continue its last read.
    Discontinuity {
        at_ms: u64,
        partition: u32,
        message: String,
    },
}

/// Failed to write the history file.
#[derive(Debug, thiserror::Error)]
#[error("writing the history file: {0}")]
pub struct HistoryError(#[from] std::io::Error);

#[derive(Debug, Default)]
struct Inner {
    events: Vec<Event>,
    file: Option<BufWriter<File>>,
    write_error: Option<String>,
    /// Completion time of the latest acknowledged write.
    last_ack_ms: Option<u64>,
}

/// The shared history of one run. Cheap to clone.
#[derive(Debug, Clone)]
pub struct History {
    started: Instant,
    inner: Arc<Mutex<Inner>>,
}

impl History {
    /// A history kept in memory only.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            inner: Arc::default(),
        }
    }

    /// A history also written to `path` (created or truncated).
    pub fn to_file(path: &Path) -> Result<Self, HistoryError> {
        let history = Self::new();
        history.inner.lock().unwrap().file = Some(BufWriter::new(File::create(path)?));
        Ok(history)
    }

    /// Milliseconds since the history began.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn record(&self, event: Event) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(file) = &mut inner.file {
            let line = serde_json::to_string(&event).expect("events serialize");
            if let Err(e) = writeln!(file, "{line}") {
                inner.write_error = Some(e.to_string());
                inner.file = None;
            }
        }
        if let Event::Op(op) = &event
            && op.outcome == Outcome::Ok
        {
            inner.last_ack_ms = inner.last_ack_ms.max(Some(op.complete_ms));
        }
        inner.events.push(event);
    }

    /// Completion time of the latest acknowledged write so far.
    pub fn last_ack_ms(&self) -> Option<u64> {
        self.inner.lock().unwrap().last_ack_ms
    }

    pub fn fault(&self, fault: impl Into<String>, heal: bool) {
        self.record(Event::Fault {
            at_ms: self.now_ms(),
            fault: fault.into(),
            heal,
        });
    }

    /// Flushes the file; reports a write error met on the way.
    pub fn flush(&self) -> Result<(), HistoryError> {
        let mut inner = self.inner.lock().unwrap();
        if let Some(e) = inner.write_error.take() {
            return Err(HistoryError(std::io::Error::other(e)));
        }
        if let Some(file) = &mut inner.file {
            file.flush()?;
        }
        Ok(())
    }

    /// A copy of every event so far, in the order recorded.
    pub fn events(&self) -> Vec<Event> {
        self.inner.lock().unwrap().events.clone()
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_has_one_json_line_per_event() {
        let dir = std::env::temp_dir().join(format!("nemesis-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.jsonl");
        let history = History::to_file(&path).unwrap();
        history.record(Event::Op(Op {
            invoke_ms: 1,
            complete_ms: 2,
            client: 0,
            transport: Transport::Http,
            partition: 1,
            payload: "c0-1".into(),
            outcome: Outcome::Unknown,
            offset: None,
            epoch: None,
            error: Some("timeout".into()),
        }));
        history.fault("kill leader", false);
        history.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["type"], "op");
        assert_eq!(lines[0]["outcome"], "unknown");
        assert_eq!(lines[0]["transport"], "http");
        assert_eq!(lines[1]["type"], "fault");
        assert_eq!(history.events().len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
