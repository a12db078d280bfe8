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
//! - [`subscription`]: one subscription — its state and notes, bounded
//!   buffer and bounded broadcast. Its child `subscription::reader` holds
//!   the reader tasks (one per partition, with their backon retry) and
//!   `Subscription::spawn` that starts them.
//! - [`events`]: what a subscription sends to the pages — messages,
//!   statuses, notes, the snapshot.
//!
//! Dependencies run one way: `http` uses `registry` and `subscription`;
//! `registry` uses `subscription` (whose `reader` uses it); `subscription`
//! uses `events`, which uses none of them.
//!
//! `docs/ui.md` documents the API.

pub mod events;
pub mod http;
pub mod registry;
pub mod subscription;

use std::{net::TcpListener, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use yak_client::ClientConfig;
use yak_ui::server::{self, CommonArgs, UiApp, UiBase};

use crate::{http::AppState, registry::Registry};

/// Serves the UI on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    common: CommonArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // A short retry deadline: a subscription reports `reconnecting` well
    // within a lease TTL of losing the leader, and then retries on its own
    // schedule (see `subscription`).
    let retry = ClientConfig {
        deadline: Duration::from_millis(300),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(150),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let base = Arc::new(UiBase::start(&common, retry, shutdown.clone())?);
    let state = AppState {
        registry: Registry::new(base.client.clone(), shutdown),
        base: base.clone(),
    };
    let app = UiApp {
        service: "consumer-ui",
        base,
        state,
        json_limit: 64 * 1024,
        assets: http::ASSETS,
        routes: http::routes,
    };
    server::serve(listener, &common, app).await?;
    Ok(())
}
