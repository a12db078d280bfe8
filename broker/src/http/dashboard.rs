//! The node's dashboard page, at `/` and at `/leader` (the original's
//! path): the shared layout of every YAK page with this node's live view,
//! which `dashboard.js` renders from `/events`. Its scripts and styles are
//! embedded in the binary.

use actix_web::{HttpResponse, http::StatusCode, web};
use askama::Template;
use yak_protocol::ErrorCode;
use yak_web::{
    NavLink, Shell,
    assets::{self, Asset},
};

use super::error::ApiError;
use crate::node::Node;

const PAGE_ASSETS: &[Asset] = &[Asset::js(
    "dashboard.js",
    include_str!("../../../templates/static/dashboard.js"),
)];

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    shell: Shell,
    node_id: &'a str,
    /// `yak up`'s control URL: the page shows Kill -9 and Restart.
    demo_control_url: Option<&'a str>,
}

/// `GET /` and `GET /leader`.
pub async fn page(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let page = DashboardPage {
        shell: Shell {
            title: "Dashboard",
            nav: vec![NavLink {
                label: "Dashboard",
                href: "/".to_owned(),
                active: true,
            }],
            scripts: vec!["dashboard.js"],
        },
        node_id: &node.config().node_id,
        demo_control_url: node.config().demo_control_url.as_deref(),
    };
    let html = page.render().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// Serves the shared and the dashboard's static files under `/static/`.
pub fn assets(cfg: &mut web::ServiceConfig) {
    assets::configure(cfg, PAGE_ASSETS);
}
