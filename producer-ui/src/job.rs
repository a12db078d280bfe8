//! Upload jobs: sending an uploaded CSV file as records.
//!
//! A job is a tokio task that sends batches with a `yak-client`
//! [`Producer`] of its own (idempotent: a batch retried across a failover is
//! stored once). A blocking reader (`chunks`) parses the file incrementally
//! and hands over one batch at a time through a channel of two, so neither
//! the file nor the records are ever all in memory. Rows that cannot be
//! parsed or sent are reported by line number and the rest go through.
//! Pause, resume and cancel take effect between batches (a batch in flight
//! is finished, so the counts stay exact).
//!
//! This module holds the jobs of the process ([`Jobs`]), a job's handle and
//! its controls ([`Job`]), and the task that runs it. What a page sees of
//! a job is in [`progress`](crate::progress) (re-exported here); the task
//! reports it through the [`Hub`].

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use yak_client::{Producer, ProducerConfig, YakClient};
use yak_ui::{RateMeter, UiError};

use crate::{
    activity::{Hub, Level},
    chunks::{Chunk, read_chunks},
    progress::ActiveClock,
    rows::{FailureLog, RowFailure, RowMapping},
    upload::Upload,
};

pub use crate::progress::{JobProgress, JobState, eta_secs, thousands};

/// Jobs remembered (finished ones included) for `GET /api/jobs`.
const KEPT_JOBS: usize = 16;
/// Progress is pushed to pages at most this often (and on every change of
/// state).
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

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
