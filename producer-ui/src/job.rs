//! Upload jobs: sending an uploaded CSV file as records.
//!
//! A job is a tokio task that sends batches with a `yak-client`
//! [`Producer`] of its own (idempotent: a batch retried across a failover is
//! stored once). A blocking reader parses the file incrementally with the
//! `csv` crate and hands over one batch at a time through a channel of two,
//! so neither the file nor the records are ever all in memory. Rows that
//! cannot be parsed or sent are reported by line number and the rest go
//! through. Pause, resume and cancel take effect between batches (a batch in
//! flight is finished, so the counts stay exact).

use std::{
    collections::VecDeque,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use num_format::{Locale, ToFormattedString};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use yak_client::{Producer, ProducerConfig, Record, YakClient};
use yak_ui::{RateMeter, UiError};

use crate::{
    activity::{Hub, Level},
    rows::{FailureLog, RowFailure, RowMapping},
    upload::Upload,
};

/// Jobs remembered (finished ones included) for `GET /api/jobs`.
const KEPT_JOBS: usize = 16;
/// Progress is pushed to pages at most this often (and on every change of
/// state).
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Paused,
    Cancelled,
    Done,
    Failed,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, Self::Cancelled | Self::Done | Self::Failed)
    }
}

/// A job's progress, as pages see it.
#[derive(Debug, Clone, Serialize)]
pub struct JobProgress {
    pub id: u64,
    /// Grows with every update, so a page keeps the newest of what it
    /// hears (events and answers may cross).
    pub seq: u64,
    pub upload_id: u64,
    pub filename: String,
    pub topic: String,
    pub state: JobState,
    /// Rows read so far (sent + failed).
    pub rows: u64,
    pub sent: u64,
    pub failed: u64,
    pub batches: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Rows per second over the last seconds.
    pub rate: f64,
    /// Estimated seconds left, from the bytes still to read.
    pub eta_secs: Option<f64>,
    /// Time spent sending (pauses excluded).
    pub elapsed_secs: f64,
    pub failures: FailureLog,
    /// Why the job stopped, if it failed.
    pub error: Option<String>,
}

/// What the user asks a job to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    Pause,
    Cancel,
}

#[derive(Debug)]
pub struct Job {
    pub id: u64,
    control: watch::Sender<Control>,
    progress: Mutex<Arc<JobProgress>>,
}

impl Job {
    pub fn progress(&self) -> Arc<JobProgress> {
        self.progress.lock().unwrap().clone()
    }

    pub fn pause(&self) -> Result<(), UiError> {
        self.steer(Control::Pause)
    }

    pub fn resume(&self) -> Result<(), UiError> {
        self.steer(Control::Run)
    }

    pub fn cancel(&self) -> Result<(), UiError> {
        self.steer(Control::Cancel)
    }

    /// Asks the job's task for `to`; it acts between batches. Pausing a
    /// paused job (or resuming a running one) changes nothing.
    fn steer(&self, to: Control) -> Result<(), UiError> {
        let state = self.progress().state;
        if state.finished() {
            return Err(UiError::conflict(
                "job_finished",
                format!("job {} has already finished ({})", self.id, state.name()),
            ));
        }
        if *self.control.borrow() == Control::Cancel && to != Control::Cancel {
            return Err(UiError::conflict(
                "job_cancelled",
                format!("job {} is being cancelled", self.id),
            ));
        }
        self.control.send_replace(to);
        Ok(())
    }
}

/// The jobs of this process.
#[derive(Debug, Default)]
pub struct Jobs {
    next_id: AtomicU64,
    kept: Mutex<VecDeque<Arc<Job>>>,
}

/// A job's settings.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub upload: Arc<Upload>,
    pub topic: String,
    pub mapping: RowMapping,
    pub batch_size: usize,
}

impl Jobs {
    pub fn get(&self, id: u64) -> Option<Arc<Job>> {
        self.kept
            .lock()
            .unwrap()
            .iter()
            .find(|j| j.id == id)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<JobProgress>> {
        self.kept
            .lock()
            .unwrap()
            .iter()
            .map(|j| j.progress())
            .collect()
    }

    /// Starts a job sending `spec.upload`.
    pub fn start(
        &self,
        spec: JobSpec,
        client: YakClient,
        hub: Arc<Hub>,
        shutdown: CancellationToken,
    ) -> Arc<Job> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let progress = JobProgress {
            id,
            seq: 0,
            upload_id: spec.upload.id,
            filename: spec.upload.filename.clone(),
            topic: spec.topic.clone(),
            state: JobState::Running,
            rows: 0,
            sent: 0,
            failed: 0,
            batches: 0,
            bytes_done: 0,
            bytes_total: spec.upload.size,
            rate: 0.0,
            eta_secs: None,
            elapsed_secs: 0.0,
            failures: FailureLog::default(),
            error: None,
        };
        let job = Arc::new(Job {
            id,
            control: watch::channel(Control::Run).0,
            progress: Mutex::new(Arc::new(progress)),
        });
        {
            let mut kept = self.kept.lock().unwrap();
            kept.push_back(job.clone());
            while kept.len() > KEPT_JOBS {
                kept.pop_front();
            }
        }
        hub.log(
            Level::Info,
            format!(
                "job {id}: sending {} to topic {} in batches of {}",
                spec.upload.filename, spec.topic, spec.batch_size
            ),
        );
        hub.job(job.progress());
        let producer = Producer::new(
            client,
            ProducerConfig {
                max_batch: spec.batch_size,
                ..ProducerConfig::default()
            },
        );
        tokio::spawn(run(job.clone(), spec, producer, hub, shutdown));
        job
    }
}

/// One batch handed from the reader to the job.
#[derive(Debug, Default)]
struct Chunk {
    records: Vec<Record>,
    /// The line of each record.
    lines: Vec<u64>,
    /// Rows that could not be read.
    failures: Vec<RowFailure>,
    /// Bytes of the file read so far.
    bytes_done: u64,
}

/// Reads `path` (blocking) and sends it on in chunks of `batch` rows.
fn read_chunks(
    path: &Path,
    delimiter: u8,
    mapping: &RowMapping,
    topic: &str,
    batch: usize,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the upload: {e}"))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(std::io::BufReader::with_capacity(256 * 1024, file));
    reader
        .byte_headers()
        .map_err(|e| format!("cannot read the header: {e}"))?;
    let mut row = csv::ByteRecord::new();
    let mut chunk = Chunk::default();
    loop {
        let more = reader
            .read_byte_record(&mut row)
            .map_err(|e| format!("reading the file failed: {e}"))?;
        if more {
            let line = row.position().map_or(0, |p| p.line());
            match mapping.map_row(&row) {
                Ok((key, payload)) => {
                    let mut record = Record::new(topic, payload);
                    record.key = key;
                    chunk.records.push(record);
                    chunk.lines.push(line);
                }
                Err(reason) => chunk.failures.push(RowFailure { line, reason }),
            }
        }
        if !more || chunk.records.len() + chunk.failures.len() >= batch {
            chunk.bytes_done = reader.position().byte();
            if tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                return Ok(()); // the job stopped
            }
        }
        if !more {
            return Ok(());
        }
    }
}

/// Running time that does not count pauses.
#[derive(Debug, Default)]
struct ActiveClock {
    total: Duration,
    since: Option<Instant>,
}

impl ActiveClock {
    fn start(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    fn stop(&mut self) {
        if let Some(since) = self.since.take() {
            self.total += since.elapsed();
        }
    }

    fn elapsed(&self) -> Duration {
        self.total + self.since.map_or(Duration::ZERO, |s| s.elapsed())
    }
}

/// `12345` as `12,345`, as the page writes numbers.
pub fn thousands(n: u64) -> String {
    n.to_formatted_string(&Locale::en)
}

/// Seconds left at the average speed so far.
pub fn eta_secs(bytes_done: u64, bytes_total: u64, active: Duration) -> Option<f64> {
    if bytes_done == 0 || active.is_zero() {
        return None;
    }
    let left = bytes_total.saturating_sub(bytes_done) as f64;
    Some(left * active.as_secs_f64() / bytes_done as f64)
}

async fn run(
    job: Arc<Job>,
    spec: JobSpec,
    producer: Arc<Producer>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<Chunk>(2);
    let reader = {
        let path = spec.upload.path().to_owned();
        let delimiter = spec.upload.inspection.delimiter as u8;
        let (mapping, topic, batch) = (spec.mapping.clone(), spec.topic.clone(), spec.batch_size);
        tokio::task::spawn_blocking(move || {
            read_chunks(&path, delimiter, &mapping, &topic, batch, &tx)
        })
    };
    let mut control = job.control.subscribe();
    let mut clock = ActiveClock::default();
    let mut rate = RateMeter::default();
    let mut last_emit = Instant::now();
    let mut p = (*job.progress()).clone();
    let publish = |p: &mut JobProgress, hub: &Hub| {
        p.seq += 1;
        let snapshot = Arc::new(p.clone());
        *job.progress.lock().unwrap() = snapshot.clone();
        hub.job(snapshot);
    };
    let end = loop {
        let wanted = *control.borrow_and_update();
        match wanted {
            Control::Cancel => break JobState::Cancelled,
            Control::Pause => {
                clock.stop();
                if p.state != JobState::Paused {
                    p.state = JobState::Paused;
                    p.elapsed_secs = clock.elapsed().as_secs_f64();
                    p.rate = 0.0;
                    p.eta_secs = None;
                    publish(&mut p, &hub);
                    hub.log(
                        Level::Info,
                        format!("job {}: paused at row {}", job.id, p.rows),
                    );
                }
                tokio::select! {
                    _ = control.changed() => continue,
                    () = shutdown.cancelled() => break JobState::Cancelled,
                }
            }
            Control::Run => {
                clock.start();
                if p.state == JobState::Paused {
                    p.state = JobState::Running;
                    publish(&mut p, &hub);
                    hub.log(Level::Info, format!("job {}: resumed", job.id));
                }
            }
        }
        let chunk = tokio::select! {
            chunk = rx.recv() => chunk,
            _ = control.changed() => continue,
            () = shutdown.cancelled() => break JobState::Cancelled,
        };
        let Some(chunk) = chunk else {
            break JobState::Done;
        };
        let mut failed = chunk.failures.len() as u64;
        for failure in chunk.failures {
            p.failures.push(failure);
        }
        let mut sent = 0;
        let mut batches = 0;
        if !chunk.records.is_empty() {
            batches = 1;
            let results = producer.send_batch(&chunk.records).await;
            let mut first_error = None;
            for (result, line) in results.into_iter().zip(chunk.lines) {
                match result {
                    Ok(_) => sent += 1,
                    Err(e) => {
                        failed += 1;
                        let reason = e.to_string();
                        first_error.get_or_insert_with(|| reason.clone());
                        p.failures.push(RowFailure { line, reason });
                    }
                }
            }
            if let Some(e) = first_error {
                hub.log(
                    Level::Error,
                    format!("job {}: a batch was not (fully) sent: {e}", job.id),
                );
            }
        }
        hub.count(sent, failed, batches);
        p.sent += sent;
        p.failed += failed;
        p.rows += sent + failed;
        p.batches += batches;
        p.bytes_done = chunk.bytes_done;
        rate.record(Instant::now(), sent + failed);
        if last_emit.elapsed() >= PROGRESS_EVERY {
            last_emit = Instant::now();
            p.rate = rate.per_second(Instant::now());
            p.elapsed_secs = clock.elapsed().as_secs_f64();
            p.eta_secs = eta_secs(p.bytes_done, p.bytes_total, clock.elapsed());
            publish(&mut p, &hub);
        }
    };
    clock.stop();
    drop(rx);
    let read = reader
        .await
        .unwrap_or_else(|e| Err(format!("the reader stopped: {e}")));
    p.state = match (end, read) {
        (JobState::Done, Err(e)) => {
            p.error = Some(e);
            JobState::Failed
        }
        (end, _) => end,
    };
    p.rate = 0.0;
    p.eta_secs = None;
    p.elapsed_secs = clock.elapsed().as_secs_f64();
    if p.state == JobState::Done {
        p.bytes_done = p.bytes_total;
    }
    publish(&mut p, &hub);
    let summary = format!(
        "job {}: {} — {} rows sent, {} failed, in {:.1} s",
        job.id,
        match p.state {
            JobState::Done => "done",
            JobState::Cancelled => "cancelled",
            _ => "failed",
        },
        thousands(p.sent),
        thousands(p.failed),
        p.elapsed_secs
    );
    let level = match (p.state, p.failed) {
        (JobState::Done, 0) => Level::Ok,
        (JobState::Failed, _) => Level::Error,
        _ => Level::Info,
    };
    match &p.error {
        Some(e) => hub.log(level, format!("{summary}: {e}")),
        None => hub.log(level, summary),
    }
    tracing::info!(job = job.id, state = ?p.state, sent = p.sent, failed = p.failed, "job finished");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::MappingChoice;

    fn chunks_of(csv: &str, batch: usize) -> Vec<Chunk> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, csv).unwrap();
        let headers: Vec<String> = csv
            .lines()
            .next()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        let mapping = RowMapping::new(&headers, &MappingChoice::default()).unwrap();
        let (tx, mut rx) = mpsc::channel(1000);
        read_chunks(&path, b',', &mapping, "t", batch, &tx).unwrap();
        drop(tx);
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            out.push(c);
        }
        out
    }

    #[test]
    fn batches_rows_and_reports_bad_ones_by_line() {
        let csv = "a,b\n1,2\n3\n4,5\n\"multi\nline\",6\n7,8,9\n10,11\n";
        let chunks = chunks_of(csv, 2);
        let records: Vec<&Record> = chunks.iter().flat_map(|c| &c.records).collect();
        let lines: Vec<u64> = chunks.iter().flat_map(|c| c.lines.clone()).collect();
        let failures: Vec<&RowFailure> = chunks.iter().flat_map(|c| &c.failures).collect();
        assert_eq!(records.len(), 4);
        assert_eq!(lines, [2, 4, 5, 8]);
        assert_eq!(records[2].payload["a"], "multi\nline");
        assert_eq!(records[3].payload["b"], 11);
        assert_eq!(
            failures,
            [
                &RowFailure {
                    line: 3,
                    reason: "expected 2 fields, found 1".to_owned()
                },
                &RowFailure {
                    line: 7,
                    reason: "expected 2 fields, found 3".to_owned()
                }
            ]
        );
        assert!(
            chunks
                .iter()
                .all(|c| c.records.len() + c.failures.len() <= 2)
        );
        assert_eq!(chunks.last().unwrap().bytes_done, csv.len() as u64);
    }

    #[test]
    fn numbers_with_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn eta_from_bytes() {
        assert_eq!(eta_secs(0, 100, Duration::from_secs(1)), None);
        assert_eq!(eta_secs(25, 100, Duration::from_secs(1)), Some(3.0));
        assert_eq!(eta_secs(100, 100, Duration::from_secs(4)), Some(0.0));
    }

    #[test]
    fn active_clock_skips_pauses() {
        let mut clock = ActiveClock::default();
        assert_eq!(clock.elapsed(), Duration::ZERO);
        clock.start();
        clock.stop();
        let paused = clock.elapsed();
        assert_eq!(clock.elapsed(), paused, "a stopped clock stands still");
    }
}
