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
//! - [`job`]: the sending job (a tokio task) and its progress.
//! - [`activity`]: counters, the activity log and their broadcast.
//!
//! `docs/ui.md` documents the API.

pub mod activity;
pub mod http;
pub mod job;
pub mod payload;
pub mod rows;
pub mod upload;

use std::{net::TcpListener, path::PathBuf, sync::Arc, time::Duration};

use actix_web::{App, HttpServer, web};
use tokio_util::sync::CancellationToken;
use yak_client::{ClientConfig, Producer, ProducerConfig, YakClient};
use yak_ui::{ClusterWatch, server, shell::UiLinks};

use crate::{activity::Hub, http::AppState, job::Jobs, upload::Uploads};

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub bootstrap: Vec<String>,
    pub links: UiLinks,
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
    let client = YakClient::with_config(
        config.bootstrap.iter().cloned(),
        ClientConfig {
            // A send waits out a failover, but not forever.
            deadline: Duration::from_secs(15),
            ..ClientConfig::default()
        },
    )?;
    let cluster = ClusterWatch::spawn(&config.bootstrap, shutdown.clone())?;
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let state = web::Data::new(AppState {
        client,
        producer,
        cluster,
        hub: Arc::new(Hub::default()),
        uploads: Uploads::new(config.upload_dir.clone(), config.max_upload_bytes)?,
        jobs: Jobs::default(),
        links: config.links.clone(),
        shutdown: shutdown.clone(),
    });
    tracing::info!(
        listen = %listener.local_addr()?,
        bootstrap = %config.bootstrap.join(","),
        "producer UI starting"
    );
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(yak_ui::error::json_config(1024 * 1024))
            .app_data(yak_ui::error::path_config())
            .wrap(server::security_headers())
            .configure(|cfg| {
                server::health(cfg, "producer-ui");
                yak_ui::assets::configure(cfg, http::ASSETS);
                http::routes(cfg);
            })
            .default_service(web::to(server::not_found))
    })
    .listen(listener)?
    .workers(2)
    .shutdown_timeout(5)
    .disable_signals()
    .run();
    server::run(server, shutdown).await?;
    tracing::info!("producer UI stopped");
    Ok(())
}
