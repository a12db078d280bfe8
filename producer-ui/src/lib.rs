//! # producer-ui — YAK's producer web UI
//!
//! A page to send one message (JSON or text, with an optional key and
//! partition) or a whole CSV file: the file is streamed to disk, previewed,
//! mapped to records (key column, payload columns) and sent by a server-side
//! job with a live progress bar, pause, resume and cancel. Counters and an
//! activity log are live too. Every broker call goes through `yak-client`;
//! the page gets its updates over server-sent events.
//!
//! ## Layout
//! - [`http`]: routes, handlers, the page and its event stream.
//! - [`payload`]: a single message's payload, JSON or text.
//! - [`upload`]: receiving a file into a temporary file; is it CSV, its
//!   headers and preview.
//! - [`rows`]: rows to records — key and payload columns, typed values,
//!   line-numbered failures.
//! - [`job`]: the jobs of the process, a job's controls (pause, resume,
//!   cancel) and the tokio task that sends it.
//! - `chunks`: the job's blocking reader — an uploaded CSV file as
//!   batches of records, with line-numbered failures.
//! - [`progress`]: a job's progress as pages see it — state, counts, the
//!   clock without pauses, time left, numbers with separators.
//! - [`activity`]: counters, the activity log and their broadcast (job
//!   progress included).
//!
//! Dependencies run one way: `http` uses the others; `job` uses
//! `activity`, `chunks`, `progress`, `rows` and `upload`; `activity` uses
//! `progress`; `chunks` and `progress` use `rows`.
//!
//! `docs/ui.md` documents the API.

pub mod activity;
mod chunks;
pub mod http;
pub mod job;
pub mod payload;
pub mod progress;
pub mod rows;
pub mod upload;

use std::{net::TcpListener, path::PathBuf, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use yak_client::{ClientConfig, Producer, ProducerConfig};
use yak_ui::server::{self, CommonArgs, UiApp, UiBase};

use crate::{activity::Hub, http::AppState, job::Jobs, upload::Uploads};

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonArgs,
    /// Where uploads are stored [default: the system's temp directory].
    pub upload_dir: Option<PathBuf>,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
}

/// Serves the UI on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // A send waits out a failover, but not forever.
    let retry = ClientConfig {
        deadline: Duration::from_secs(15),
        ..ClientConfig::default()
    };
    let base = Arc::new(UiBase::start(&config.common, retry, shutdown)?);
    let state = AppState {
        producer: Producer::new(base.client.clone(), ProducerConfig::default()),
        hub: Arc::new(Hub::default()),
        uploads: Uploads::new(config.upload_dir.clone(), config.max_upload_bytes)?,
        jobs: Jobs::default(),
        base: base.clone(),
    };
    let app = UiApp {
        service: "producer-ui",
        base,
        state,
        json_limit: 1024 * 1024,
        assets: http::ASSETS,
        routes: http::routes,
    };
    server::serve(listener, &config.common, app).await?;
    Ok(())
}
