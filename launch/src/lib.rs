//! # yak-launch — starting and stopping YAK's processes
//!
//! The one place that knows how a YAK process on this machine is started,
//! stopped, paused and waited for. Two users, each with its own process
//! handle and its own policies: the `yak` command (`yak up`, `yak bench`:
//! tokio children, prefixed output, restarts, a supervisor; errors are
//! reported) and the integration harness `testkit` (std children, output
//! in files, temp dirs, panics with the output's tail). Neither builds a
//! command line or sends a signal by itself.
//!
//! ## Modules
//! - [`spec`]: what to start. [`NodeSpec`] (`broker`, `follower`),
//!   [`UiSpec`] (`producer-ui`, `consumer-ui`) and [`RedisSpec`]
//!   (`redis-server` as YAK runs it) each give a [`CommandLine`]: program,
//!   flags and [`Environment`], turned into a `std::process::Command` as
//!   often as needed (a restart uses the same one).
//! - [`signal`]: stopping ([`signal::terminate`]: SIGTERM, then SIGKILL
//!   after a grace period), pausing ([`signal::pause`]: SIGSTOP until every
//!   thread has stopped, read from `/proc`) and resuming, for any child
//!   handle that implements [`signal::ChildProcess`] (std's and tokio's
//!   do).
//! - [`health`]: waiting until a started process serves — a server's
//!   `GET /health` through [`yak_client::Probe`] ([`health::wait_healthy`]),
//!   `redis-server`'s `PING` ([`health::redis_answers`]) — failing at once
//!   when the process exits, and when a deadline passes.
//!
//! No function here panics; errors are typed ([`signal::SignalError`],
//! [`health::HealthError`]) and the caller decides what to do with them.

pub mod health;
pub mod signal;
pub mod spec;

pub use health::{HealthError, wait_healthy, wait_ready};
pub use signal::{ChildProcess, SignalError, Stopped, pause, resume, terminate};
pub use spec::{
    CommandLine, Environment, Fsync, NodeSpec, NodeTls, RedisPersistence, RedisSpec, TcpListen,
    UiSpec, find_on_path,
};
