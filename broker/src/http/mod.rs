//! The node's HTTP API (actix-web). Handlers are thin: they parse and
//! validate, call the node, and map errors through [`ApiError`] in one
//! place. Every request passes [`access::check`] first (tokens). The
//! endpoints are documented in `docs/api.md`, access and limits in
//! `docs/security.md`.

pub mod access;
mod admin;
pub mod batch;
mod consume;
mod dashboard;
pub mod error;
mod groups;
pub(crate) mod internal;
mod observe;
mod produce;

use std::net::TcpListener;

use actix_web::{
    App, HttpServer,
    dev::Server,
    middleware::{ErrorHandlers, NormalizePath, TrailingSlash},
    web,
};

pub use error::ApiError;

use yak_protocol::ErrorCode;
use yak_web::server::security_headers;

use crate::{node::Node, partitioner::Spreader, stats::StatsFeed};

/// Registers every route of the node on `cfg`. One resource per path, so
/// that a wrong method is a 405, not a 404.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = web::resource;
    cfg.service(resource("/").get(dashboard::page))
        .service(resource("/leader").get(dashboard::page))
        .configure(dashboard::assets)
        .service(resource("/produce").post(produce::produce))
        .service(resource("/produce/batch").post(batch::produce_batch))
        .service(resource("/consume").get(consume::consume))
        .service(resource("/consume/batch").get(consume::consume_batch))
        .service(
            resource("/topics")
                .get(admin::list_topics)
                .post(admin::create),
        )
        .service(resource("/topics/{name}").get(admin::describe))
        .service(resource("/topics/{name}/partitions").post(admin::add_partitions))
        .service(resource("/groups").get(groups::list))
        .service(resource("/groups/{group}").get(groups::describe))
        .service(resource("/groups/{group}/join").post(groups::join))
        .service(resource("/groups/{group}/heartbeat").post(groups::heartbeat))
        .service(resource("/groups/{group}/leave").post(groups::leave))
        .service(resource("/groups/{group}/commit").post(groups::commit))
        .service(resource("/groups/{group}/offsets").get(groups::offsets))
        .service(resource("/groups/{group}/reset").post(groups::reset))
        .service(resource("/metadata/leader").get(admin::leader))
        .service(resource("/health").get(admin::health))
        .service(resource("/ready").get(admin::ready))
        .service(resource("/metrics").get(observe::metrics))
        .service(resource("/stats").get(observe::stats))
        .service(resource("/events").get(observe::events))
        .service(
            resource("/session")
                .post(access::open_session)
                .delete(access::close_session),
        )
        .service(resource("/internal/replicate").post(internal::replicate))
        .service(resource("/internal/fetch").get(internal::fetch))
        .service(resource("/internal/epoch_end").get(internal::epoch_end));
}

/// Builds the server on an already-bound listener (tests bind port 0),
/// with the configured timeouts, connection limits and TLS.
/// Serves HTTPS with `tls`, the node's loaded `--tls-cert` (shared with
/// the Kafka listener), when given.
pub fn server(
    node: Node,
    stats: StatsFeed,
    listener: TcpListener,
    tls: Option<tokio_rustls::rustls::ServerConfig>,
) -> std::io::Result<Server> {
    let max_body = node.config().max_request_bytes;
    let limits = node.config().server.clone();
    // The dashboard's demo buttons call `yak up`'s control endpoint.
    let connect: Vec<String> = node
        .config()
        .demo_control_url
        .iter()
        .map(|url| origin(url).to_owned())
        .collect();
    let node = web::Data::new(node);
    let stats = web::Data::new(stats);
    let spreader = web::Data::new(Spreader::default());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(node.clone())
            .app_data(stats.clone())
            .app_data(spreader.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(web::QueryConfig::default().error_handler(|e, req| {
                let e = ApiError::bad_request(ErrorCode::InvalidQuery, e.to_string());
                e.refused_at(req.path()).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|e, req| {
                let e = ApiError::bad_request(ErrorCode::InvalidPath, e.to_string());
                e.refused_at(req.path()).into()
            }))
            .wrap(actix_web::middleware::from_fn(access::check))
            .wrap(ErrorHandlers::new().default_handler(error::render_framework_error))
            .wrap(actix_web::middleware::from_fn(observe::time_requests))
            .wrap(NormalizePath::new(TrailingSlash::Trim))
            .wrap(security_headers(
                &connect.iter().map(String::as_str).collect::<Vec<_>>(),
            ))
            .configure(routes)
    });
    let server = limits.listen_with_tls(server, listener, tls)?;
    Ok(server)
}

/// `scheme://host:port` of a URL: what a content security policy names.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..]
        .find('/')
        .map_or(url, |i| &url[..after_scheme + i])
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_origin_of_a_url_drops_its_path() {
        assert_eq!(
            super::origin("http://127.0.0.1:5000"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(super::origin("https://h:1/a/b?c"), "https://h:1");
    }
}
