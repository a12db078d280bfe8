//! Observability endpoints: `/metrics` (Prometheus), `/stats` (the
//! dashboard's JSON snapshot), `/events` (the same snapshot pushed over
//! server-sent events every second), and the middleware that times every
//! request by route.

use std::{sync::Arc, time::Instant};

use actix_web::{
    Error, HttpResponse,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web,
};
use bytes::Bytes;
use futures_util::stream;

use crate::{metrics::RouteLabels, node::Node};

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(node.metrics().render())
}

/// `GET /stats`: the latest dashboard snapshot.
pub async fn stats(node: web::Data<Node>) -> HttpResponse {
    let snapshot: Arc<str> = node.watch_stats().borrow().clone();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(snapshot.to_string())
}

/// `GET /events`: one `data:` event per snapshot, as it is published.
pub async fn events(node: web::Data<Node>) -> HttpResponse {
    let mut updates = node.watch_stats();
    updates.mark_changed();
    let events = stream::unfold(updates, |mut updates| async move {
        updates.changed().await.ok()?;
        let snapshot = updates.borrow_and_update().clone();
        let event = Bytes::from(format!("event: stats\ndata: {snapshot}\n\n"));
        Some((Ok::<_, Error>(event), updates))
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(events)
}

/// Records `yak_http_request_duration_seconds` by route pattern (not raw
/// path, so topic names do not multiply the series) and status.
pub async fn time_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let node = req.app_data::<web::Data<Node>>().cloned();
    let method = req.method().to_string();
    let response = next.call(req).await?;
    if let Some(node) = node {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        if route != "/events" {
            let labels = RouteLabels {
                method,
                route,
                status: response.status().as_u16(),
            };
            node.metrics()
                .request_seconds
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
        }
    }
    Ok(response)
}
