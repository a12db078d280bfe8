//! # consumer-ui — YAK's consumer web UI
//!
//! A page listing the topics and their partitions, and live subscriptions:
//! a topic-partition (or every partition of a topic) read from the earliest
//! offset, the latest, or a given one; or a membership of a consumer group,
//! which reads the partitions the group assigns it and shows them change
//! as other members come and go. Messages arrive over server-sent events
//! with a counter and a rate per subscription; subscriptions can be paused
//! (not a group member), resumed and ended. During a failover a
//! subscription shows `reconnecting` and then continues at the next offset.
//! A second page, the group view, shows every group of the cluster live.
//! Every broker call goes through `yak-client`.
//!
//! ## Layout
//! - [`http`]: routes, handlers, the pages and their event streams (its
//!   child `http::groups` is the group view's).
//! - [`request`]: what a page asks to read, checked before the cluster is
//!   asked anything.
//! - [`registry`]: the subscriptions of the process, their changes, and
//!   which page owns which group membership.
//! - [`tabs`]: the open pages, and when a closed one's memberships end.
//! - [`subscription`]: one subscription — its source, state and notes,
//!   bounded buffer and bounded broadcast, and the tasks that fill it: its
//!   children `subscription::reader` (one task per partition) and
//!   `subscription::member` (a group member).
//! - [`groups`]: the cluster's groups, described once a second for the
//!   group view.
//! - [`events`]: what a subscription sends to the pages — messages,
//!   statuses, notes, the snapshot.
//!
//! Dependencies run one way: `http` uses `registry`, `request`,
//! `subscription`, `groups` and `tabs`; `registry` uses `request`,
//! `subscription` and `tabs`; `request` and `subscription` use `tabs` (a
//! group membership names its page), `subscription` also `events`;
//! `events`, `tabs` and `groups` use none of them.
//!
//! `docs/ui.md` documents the API.

pub mod events;
pub mod groups;
pub mod http;
pub mod registry;
pub mod request;
pub mod subscription;
pub mod tabs;

use std::{net::TcpListener, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use yak_client::ClientConfig;
use yak_ui::server::{self, CommonArgs, UiApp, UiBase};

use crate::{groups::GroupWatch, http::AppState, registry::Registry};

/// Serves the UI on `listener` until `shutdown` is cancelled; then waits
/// (briefly) for group members to leave their groups.
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
    let registry = Registry::new(base.client.clone(), shutdown.clone());
    let state = AppState {
        registry: registry.clone(),
        groups: GroupWatch::spawn(base.client.clone(), shutdown),
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
    registry.closed().await;
    Ok(())
}
