//! The node's HTTP API (actix-web). Handlers are thin: they parse and
//! validate, call the node, and map errors through [`ApiError`] in one
//! place. The endpoints are documented in `docs/api.md`.

mod admin;
mod consume;
pub mod error;
mod internal;
mod observe;
mod produce;

use std::{net::TcpListener, time::Duration};

use actix_web::{
    App, HttpServer,
    dev::Server,
    middleware::{ErrorHandlers, NormalizePath, TrailingSlash},
    web,
};

pub use error::ApiError;

use crate::{node::Node, partitioner::Spreader};

/// Registers every route of the node on `cfg`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/produce", web::post().to(produce::produce))
        .route("/consume", web::get().to(consume::consume))
        .route("/topics", web::get().to(admin::list_topics))
        .route("/topics", web::post().to(admin::create))
        .route("/topics/{name}", web::get().to(admin::describe))
        .route("/metadata/leader", web::get().to(admin::leader))
        .route("/health", web::get().to(admin::health))
        .route("/ready", web::get().to(admin::ready))
        .route("/metrics", web::get().to(observe::metrics))
        .route("/stats", web::get().to(observe::stats))
        .route("/events", web::get().to(observe::events))
        .route("/internal/replicate", web::post().to(internal::replicate))
        .route("/internal/fetch", web::get().to(internal::fetch))
        .route("/internal/epoch_end", web::get().to(internal::epoch_end));
}

/// Builds the server on an already-bound listener (tests bind port 0).
pub fn server(node: Node, listener: TcpListener) -> std::io::Result<Server> {
    let max_body = node.config().max_request_bytes;
    let node = web::Data::new(node);
    let spreader = web::Data::new(Spreader::default());
    let server =
        HttpServer::new(move || {
            App::new()
                .app_data(node.clone())
                .app_data(spreader.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::bad_request("invalid_query", e.to_string()).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError::bad_request("invalid_path", e.to_string()).into()
                }))
                .wrap(ErrorHandlers::new().default_handler(error::render_framework_error))
                .wrap(actix_web::middleware::from_fn(observe::time_requests))
                .wrap(NormalizePath::new(TrailingSlash::Trim))
                .configure(routes)
        })
        .listen(listener)?
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(2))
        .max_connections(10_000)
        .shutdown_timeout(5)
        .disable_signals()
        .run();
    Ok(server)
}
