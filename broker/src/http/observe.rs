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
    let node = node.into_inner();
    let events = stream::unfold(updates, move |mut updates| {
        let node = std::sync::Arc::clone(&node);
        async move {
            updates.changed().await.ok()?;
            let snapshot = updates.borrow_and_update().clone();
            let event = format!(
                "event: leader\ndata: {}\n\nevent: stats\ndata: {snapshot}\n\n",
                leader_view(&node)
            );
            Some((Ok::<_, Error>(Bytes::from(event)), updates))
        }
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(events)
}

/// The page header's leader slot (the shape the shared `yak.js` reads).
fn leader_view(node: &Node) -> serde_json::Value {
    let cluster = node.cluster();
    let epoch = node.role().leader_epoch().unwrap_or(cluster.epoch);
    match node.leader() {
        Some((id, url)) => serde_json::json!({
            "state": "connected",
            "leader_id": id,
            "leader_url": url,
            "epoch": epoch,
        }),
        None => serde_json::json!({
            "state": "no_leader",
            "epoch": epoch,
            "message": "no node leads right now",
        }),
    }
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
