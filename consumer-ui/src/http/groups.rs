//! The group view: its page (`/groups`), the groups as JSON, and the
//! page's event stream (the [`GroupWatch`](crate::groups::GroupWatch)'s
//! view once a second, and the leader).

use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::json;
use yak_ui::UiError;
use yak_web::{Page, Shell, sse};

use super::State;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups", web::get().to(page))
        .route("/api/groups", web::get().to(list))
        .route("/api/groups/{group}", web::get().to(describe))
        .route("/api/events/groups", web::get().to(events));
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    shell: Shell,
}

async fn page(state: State) -> Result<HttpResponse, UiError> {
    let mut shell = Shell::new(Page::Consumer, &state.base.links, vec!["groups.js"]);
    shell.title = "Consumer groups";
    yak_ui::server::render(&GroupsPage { shell })
}

/// Every group, described, asked of the cluster now.
async fn list(state: State) -> Result<HttpResponse, UiError> {
    let groups = crate::groups::fetch(&state.base.client).await?;
    Ok(HttpResponse::Ok().json(json!({ "groups": groups })))
}

/// One group (the broker's `404 unknown_group` if there is none).
async fn describe(state: State, group: web::Path<String>) -> Result<HttpResponse, UiError> {
    let detail = state.base.client.describe_group(&group).await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// `hello` (leader, groups), then `leader` and `groups` (the whole view,
/// once a second).
async fn events(state: State) -> HttpResponse {
    let shutdown = state.base.shutdown.clone();
    sse::stream(shutdown, move |sink| async move {
        let mut leader = state.base.cluster.watch_leader();
        let mut groups = state.groups.watch();
        let hello = json!({
            "leader": state.base.cluster.leader(),
            "groups": *groups.borrow_and_update(),
        });
        if !sink.send("hello", &hello).await {
            return;
        }
        loop {
            let sent = tokio::select! {
                Ok(()) = leader.changed() => {
                    let view = leader.borrow_and_update().clone();
                    sink.send("leader", &view).await
                }
                Ok(()) = groups.changed() => {
                    let view = groups.borrow_and_update().clone();
                    sink.send("groups", &*view).await
                }
                else => return,
            };
            if !sent {
                return;
            }
        }
    })
}
