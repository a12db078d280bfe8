//! The consumer UI's routes: the consumer page, its JSON API and its event
//! stream; the group view is the child module `groups`. `docs/ui.md` lists
//! every route.

mod groups;

use std::{collections::HashSet, pin::Pin, sync::Arc, time::Duration};

use actix_web::{HttpResponse, web};
use askama::Template;
use futures_util::{Stream, StreamExt, stream::SelectAll};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use yak_ui::{UiError, server::UiBase};
use yak_web::{Page, Shell, assets::Asset, sse};

use crate::{
    groups::GroupWatch,
    registry::{Change, Registry},
    request::SubscribeRequest,
    subscription::{KEPT_MESSAGES, SHOWN_MESSAGES, SubEvent, Subscription},
    tabs::TabId,
};

/// The page scripts.
pub const ASSETS: &[Asset] = &[
    Asset::js(
        "consumer.js",
        include_str!("../../templates/static/consumer.js"),
    ),
    Asset::js(
        "groups.js",
        include_str!("../../templates/static/groups.js"),
    ),
];

/// How often a page that named its tab is pinged: the server notices a
/// closed page only when a write to it fails, and the page's group
/// memberships should end soon after it closes.
const PING: Duration = Duration::from_secs(1);

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub groups: GroupWatch,
    /// Client, cluster watch, links, shutdown: what every UI has.
    pub base: Arc<UiBase>,
}

type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/api/subscribe", web::post().to(subscribe))
        .route("/api/subscriptions", web::get().to(subscriptions))
        .route("/api/subscriptions/{id}/pause", web::post().to(pause))
        .route("/api/subscriptions/{id}/resume", web::post().to(resume))
        .route("/api/messages/{id}", web::get().to(messages))
        .route("/api/unsubscribe/{id}", web::delete().to(unsubscribe))
        .route("/api/events", web::get().to(events));
    groups::routes(cfg);
}

#[derive(Template)]
#[template(path = "consumer.html")]
struct ConsumerPage {
    shell: Shell,
    shown: usize,
}

async fn index(state: State) -> Result<HttpResponse, UiError> {
    let page = ConsumerPage {
        shell: Shell::new(Page::Consumer, &state.base.links, vec!["consumer.js"]),
        shown: SHOWN_MESSAGES,
    };
    yak_ui::server::render(&page)
}

async fn subscribe(
    state: State,
    body: web::Json<SubscribeRequest>,
) -> Result<HttpResponse, UiError> {
    let sub = state.registry.subscribe(body.into_inner()).await?;
    Ok(HttpResponse::Created().json(sub.status()))
}

async fn subscriptions(state: State) -> HttpResponse {
    let list: Vec<_> = state.registry.list().iter().map(|s| s.status()).collect();
    HttpResponse::Ok().json(json!({ "subscriptions": list }))
}

async fn pause(state: State, id: web::Path<u64>) -> Result<HttpResponse, UiError> {
    let sub = state.registry.get(*id)?;
    sub.pause()?;
    Ok(HttpResponse::Ok().json(sub.status()))
}

async fn resume(state: State, id: web::Path<u64>) -> Result<HttpResponse, UiError> {
    let sub = state.registry.get(*id)?;
    sub.resume()?;
    Ok(HttpResponse::Ok().json(sub.status()))
}

#[derive(Debug, Deserialize)]
struct MessagesQuery {
    #[serde(default)]
    limit: Option<usize>,
}

/// The subscription's buffered messages (the last 1,000 at most), oldest
/// first.
async fn messages(
    state: State,
    id: web::Path<u64>,
    query: web::Query<MessagesQuery>,
) -> Result<HttpResponse, UiError> {
    let sub = state.registry.get(*id)?;
    let (count, messages) = sub.recent(query.limit.unwrap_or(KEPT_MESSAGES));
    Ok(HttpResponse::Ok().json(json!({
        "subscription": sub.id,
        "count": count,
        "messages": messages,
    })))
}

async fn unsubscribe(state: State, id: web::Path<u64>) -> Result<HttpResponse, UiError> {
    state.registry.unsubscribe(*id)?;
    Ok(HttpResponse::Ok().json(json!({ "unsubscribed": *id })))
}

/// One subscription's events as a stream that ends with the subscription;
/// `Err(n)` when the page fell `n` events behind and skipped them.
type SubStream = Pin<Box<dyn Stream<Item = (u64, Result<Arc<SubEvent>, u64>)>>>;

fn sub_stream(sub: &Subscription, rx: broadcast::Receiver<Arc<SubEvent>>) -> SubStream {
    let id = sub.id;
    let ended = sub.cancel_token().clone();
    Box::pin(futures_util::stream::unfold(
        (rx, ended),
        move |(mut rx, ended)| async move {
            let item = tokio::select! {
                event = rx.recv() => match event {
                    Ok(event) => Ok(event),
                    Err(RecvError::Lagged(n)) => Err(n),
                    Err(RecvError::Closed) => return None,
                },
                () = ended.cancelled() => return None,
            };
            Some(((id, item), (rx, ended)))
        },
    ))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    /// The page's tab: it sees its own group subscriptions, which end when
    /// it closes.
    #[serde(default)]
    tab: Option<String>,
}

/// The page's one event stream: `hello` (leader, topics, every
/// subscription the page sees with its recent messages), then `leader`,
/// `topics`, `subscribed`, `unsubscribed`, and per subscription `messages`,
/// `status`, `note` and `lagged` (the page was too slow and skipped
/// events); `ping` every second to a page that named its tab.
async fn events(state: State, query: web::Query<EventsQuery>) -> Result<HttpResponse, UiError> {
    let tab = query.into_inner().tab.map(TabId::try_from).transpose()?;
    let shutdown = state.base.shutdown.clone();
    Ok(sse::stream(shutdown, move |sink| async move {
        let _open = tab.clone().map(|tab| state.registry.open_tab(tab));
        let mut leader = state.base.cluster.watch_leader();
        let mut topics = state.base.cluster.watch_topics();
        let (subs, mut changes) = state.registry.watch();
        let mut streams: SelectAll<SubStream> = SelectAll::new();
        let mut snapshots = Vec::new();
        let mut attached = HashSet::new();
        for sub in subs.iter().filter(|sub| sub.visible_to(tab.as_ref())) {
            let (snapshot, rx) = sub.attach();
            snapshots.push(snapshot);
            streams.push(sub_stream(sub, rx));
            attached.insert(sub.id);
        }
        let hello = json!({
            "leader": state.base.cluster.leader(),
            "topics": state.base.cluster.topics(),
            "subscriptions": snapshots,
        });
        if !sink.send("hello", &hello).await {
            return;
        }
        let mut ping = tokio::time::interval(PING);
        loop {
            let sent = tokio::select! {
                change = changes.recv() => match change {
                    Ok(Change::Added(sub)) if sub.visible_to(tab.as_ref()) && attached.insert(sub.id) => {
                        let (snapshot, rx) = sub.attach();
                        streams.push(sub_stream(&sub, rx));
                        sink.send("subscribed", &snapshot).await
                    }
                    Ok(Change::Added(_)) => true,
                    Ok(Change::Removed(id)) if attached.remove(&id) => {
                        sink.send("unsubscribed", &json!({ "id": id })).await
                    }
                    Ok(Change::Removed(_)) => true,
                    // Dozens of subscriptions changed while the page was
                    // stalled: let it reconnect and start from a snapshot.
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => return,
                },
                Some((id, item)) = streams.next() => match item {
                    Ok(event) => match &*event {
                        SubEvent::Messages { records, count, seq } => {
                            let batch = json!({ "id": id, "records": records, "count": count, "seq": seq });
                            sink.send("messages", &batch).await
                        }
                        SubEvent::Status(status) => sink.send("status", status).await,
                        SubEvent::Note(note) => {
                            sink.send("note", &json!({ "id": id, "note": note })).await
                        }
                    },
                    Err(skipped) => {
                        sink.send("lagged", &json!({ "id": id, "skipped": skipped })).await
                    }
                },
                Ok(()) = leader.changed() => {
                    let view = leader.borrow_and_update().clone();
                    sink.send("leader", &view).await
                }
                Ok(()) = topics.changed() => {
                    let list = topics.borrow_and_update().clone();
                    sink.send("topics", &list).await
                }
                _ = ping.tick(), if tab.is_some() => sink.send("ping", &json!({})).await,
            };
            if !sent {
                return;
            }
        }
    }))
}
