//! # yak-ui — what YAK's web UIs share
//!
//! The producer UI and the consumer UI are separate actix-web processes
//! with one look and one set of conventions. What every YAK server shares
//! (the node's too: limits, TLS, page shell, assets, server-sent events) is
//! in `yak-web`; this crate holds what only the UIs need, the clients of
//! the cluster, so each UI only writes its own pages.
//!
//! ## Modules
//! - [`cluster`]: [`ClusterWatch`], a task that follows the cluster's leader,
//!   the connection state and the topic list, published through `watch`
//!   channels (the pages get them over server-sent events).
//! - [`error`]: [`UiError`], every error of a UI's JSON API as a status and
//!   `{"error": code, "message": text}`.
//! - [`rate`]: [`RateMeter`], events per second over a sliding window.
//! - [`server`]: common flags (bootstrap, token, CA), logging, the routes
//!   every UI has, one `serve` for both UIs.
//!
//! Every broker call goes through `yak-client`.

pub mod cluster;
pub mod error;
pub mod rate;
pub mod server;

pub use cluster::{ClusterWatch, Connection, LeaderView, Topic};
pub use error::UiError;
pub use rate::RateMeter;

/// Milliseconds since the Unix epoch, as the pages show times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
