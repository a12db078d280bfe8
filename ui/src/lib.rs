//! # yak-ui — what YAK's web UIs share
//!
//! The producer UI and the consumer UI (and, later, the node dashboards) are
//! separate actix-web processes with one look and one set of conventions.
//! This crate holds those conventions so each UI only writes its own pages.
//!
//! ## Layout
//! - [`shell`]: [`Shell`], the data the shared layout `templates/base.html`
//!   renders: product name, navigation, the leader/connection slot.
//! - [`assets`]: static files embedded in the binaries (`templates/static/`),
//!   served under `/static/` with ETags.
//! - [`cluster`]: [`ClusterWatch`], a task that follows the cluster's leader,
//!   the connection state and the topic list, published through `watch`
//!   channels (the pages get them over server-sent events).
//! - [`sse`]: server-sent events: framing, and a response fed by a pump
//!   task through a small bounded channel, with keep-alives.
//! - [`error`]: [`UiError`], every error of a UI's JSON API as a status and
//!   `{"error": code, "message": text}`.
//! - [`rate`]: [`RateMeter`], events per second over a sliding window.
//! - [`server`]: common flags (bootstrap, token, CA), logging, security
//!   headers, the routes every UI has, one `serve` for both UIs, signals;
//!   and [`server::ServerArgs`], the timeouts, connection limits and TLS of
//!   every YAK server (the node's too).
//! - [`topic`]: the broker's topic-name rule, checked before long jobs start.
//!
//! Every broker call goes through `yak-client`.

pub mod assets;
pub mod cluster;
pub mod error;
pub mod rate;
pub mod server;
pub mod shell;
pub mod sse;
pub mod topic;

pub use cluster::{ClusterWatch, Connection, LeaderView, Topic};
pub use error::UiError;
pub use rate::RateMeter;
pub use shell::{NavLink, Shell};

/// Milliseconds since the Unix epoch, as the pages show times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
