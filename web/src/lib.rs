//! # yak-web — what every YAK HTTP server shares
//!
//! The node (its API and dashboard) and the two UIs are separate actix-web
//! servers with one set of limits and one look. This crate holds that and
//! nothing else: it depends on neither the client library nor the UIs, so
//! the node links no client code.
//!
//! ## Modules
//! - [`server`]: [`ServerArgs`] (timeouts, connection limits, TLS; the
//!   same flags on every server), the security headers, `GET /health`,
//!   graceful stop on SIGINT/SIGTERM.
//! - [`shell`]: [`Shell`], the data the shared layout `templates/base.html`
//!   renders: page name, navigation, scripts.
//! - [`assets`]: static files embedded in the binaries
//!   (`templates/static/`), served under `/static/` with ETags.
//! - [`sse`]: server-sent events: framing, and a response fed by a pump
//!   task through a small bounded channel, with keep-alives.

pub mod assets;
pub mod server;
pub mod shell;
pub mod sse;

pub use server::ServerArgs;
pub use shell::{NavLink, Page, Shell, UiLinks};
