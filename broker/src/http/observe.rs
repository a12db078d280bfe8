//! Observability endpoints: `/metrics` (Prometheus), `/stats` (the
//! dashboard's JSON snapshot), `/events` (the same snapshot pushed over
//! server-sent events every second), and the middleware that times every
//! request by route.

use std::{sync::Arc, time::Instant};

use actix_web::{
    Error, HttpResponse,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use yak_web::sse;

use crate::{metrics::RouteLabels, node::Node, stats::StatsFeed};

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(node.metrics().render())
}

/// `GET /stats`: the latest dashboard snapshot.
pub async fn stats(feed: web::Data<StatsFeed>) -> HttpResponse {
    let snapshot: Arc<str> = feed.snapshots.borrow().clone();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(snapshot.to_string())
}

/// `GET /events`: a `leader` and a `stats` event per snapshot, as it is
/// published.
pub async fn events(node: web::Data<Node>, feed: web::Data<StatsFeed>) -> HttpResponse {
    let mut updates = feed.snapshots.clone();
    updates.mark_changed();
    let node = node.into_inner();
    sse::stream(feed.shutdown.clone(), move |sink| async move {
        while updates.changed().await.is_ok() {
            let snapshot = updates.borrow_and_update().clone();
            if !sink.send("leader", &leader_view(&node)).await
                || !sink.send_json("stats", &snapshot).await
            {
                return;
            }
        }
    })
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
