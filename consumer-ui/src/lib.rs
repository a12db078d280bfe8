//! # consumer-ui — YAK's consumer web UI
//!
//! A page listing the topics and their partitions, and live subscriptions:
//! a topic-partition (or every partition of a topic) read from the earliest
//! offset, the latest, or a given one. Messages arrive over server-sent
//! events with a counter and a rate per subscription; subscriptions can be
//! paused, resumed and ended. During a failover a subscription shows
//! `reconnecting` and then continues at the next offset. Every broker call
//! goes through `yak-client`.
//!
//! ## Layout
//! - [`http`]: routes, handlers, the page and its event stream.
//! - [`registry`]: the subscriptions of the process, and their changes.
//! - [`subscription`]: one subscription — reader tasks, bounded buffer,
//!   bounded broadcast, state and notes.
//!
//! `docs/ui.md` documents the API.

pub mod http;
pub mod registry;
pub mod subscription;

use std::{net::TcpListener, time::Duration};

use actix_web::{App, HttpServer, web};
use tokio_util::sync::CancellationToken;
use yak_client::{ClientConfig, YakClient};
use yak_ui::{ClusterWatch, server, shell::UiLinks};

use crate::{http::AppState, registry::Registry};

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub bootstrap: Vec<String>,
    pub links: UiLinks,
}

/// Serves the UI on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // A short retry deadline: a subscription reports `reconnecting` well
    // within a lease TTL of losing the leader, and then retries on its own
    // schedule (see `subscription`).
    let client = YakClient::with_config(
        config.bootstrap.iter().cloned(),
        ClientConfig {
            deadline: Duration::from_millis(300),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(150),
            request_timeout: Duration::from_secs(5),
        },
    )?;
    let cluster = ClusterWatch::spawn(&config.bootstrap, shutdown.clone())?;
    let state = web::Data::new(AppState {
        registry: Registry::new(client.clone(), shutdown.clone()),
        client,
        cluster,
        links: config.links.clone(),
        shutdown: shutdown.clone(),
    });
    tracing::info!(
        listen = %listener.local_addr()?,
        bootstrap = %config.bootstrap.join(","),
        "consumer UI starting"
    );
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(yak_ui::error::json_config(64 * 1024))
            .app_data(yak_ui::error::path_config())
            .app_data(yak_ui::error::query_config())
            .wrap(server::security_headers())
            .configure(|cfg| {
                server::health(cfg, "consumer-ui");
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
    tracing::info!("consumer UI stopped");
    Ok(())
}
