//! The producer UI's routes: the page, its JSON API and its event stream.
//! Handlers are thin: they check the request, call the hub, the uploads,
//! the jobs or `yak-client`, and fail with [`UiError`]. `docs/ui.md` lists
//! every route.

use std::sync::Arc;

use actix_multipart::Multipart;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use yak_client::{Producer, Record, validate_topic_name};
use yak_ui::{UiError, server::UiBase};
use yak_web::{Page, Shell, assets::Asset, sse};

use crate::{
    activity::{Hub, HubEvent, Level},
    job::{JobSpec, Jobs},
    payload::{PayloadFormat, parse_payload},
    rows::{MappingChoice, RowMapping},
    upload::Uploads,
};

/// The page script.
pub const ASSETS: &[Asset] = &[Asset::js(
    "producer.js",
    include_str!("../../templates/static/producer.js"),
)];

/// Largest batch a job may send in one request.
pub const MAX_BATCH: usize = 1000;
/// Batch size when the page does not say.
pub const DEFAULT_BATCH: usize = 500;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub producer: Arc<Producer>,
    pub hub: Arc<Hub>,
    pub uploads: Uploads,
    pub jobs: Jobs,
    /// Client, cluster watch, links, shutdown: what every UI has.
    pub base: Arc<UiBase>,
}

type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/api/send", web::post().to(send))
        .route("/api/upload", web::post().to(upload))
        .route("/api/send_batch", web::post().to(send_batch))
        .route("/api/jobs", web::get().to(list_jobs))
        .route("/api/jobs/{id}", web::get().to(get_job))
        .route("/api/jobs/{id}/pause", web::post().to(pause_job))
        .route("/api/jobs/{id}/resume", web::post().to(resume_job))
        .route("/api/jobs/{id}/cancel", web::post().to(cancel_job))
        .route("/api/events", web::get().to(events));
}

#[derive(Template)]
#[template(path = "producer.html")]
struct ProducerPage {
    shell: Shell,
    max_batch: usize,
    default_batch: usize,
}

async fn index(state: State) -> Result<HttpResponse, UiError> {
    let page = ProducerPage {
        shell: Shell::new(Page::Producer, &state.base.links, vec!["producer.js"]),
        max_batch: MAX_BATCH,
        default_batch: DEFAULT_BATCH,
    };
    yak_ui::server::render(&page)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    topic: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    partition: Option<u32>,
    /// The payload as typed: JSON text, or any text with `format: "text"`.
    payload: String,
    #[serde(default)]
    format: PayloadFormat,
}

async fn send(state: State, body: web::Json<SendRequest>) -> Result<HttpResponse, UiError> {
    let SendRequest {
        topic,
        key,
        partition,
        payload,
        format,
    } = body.into_inner();
    let topic = topic.trim().to_owned();
    let checked = validate_topic_name(&topic)
        .map_err(|m| UiError::bad_request("invalid_topic", m))
        .and_then(|()| {
            parse_payload(&payload, format).map_err(|m| UiError::bad_request("invalid_payload", m))
        });
    let payload = match checked {
        Ok(payload) => payload,
        Err(e) => {
            // Nothing was sent: logged, not counted as a failed record.
            state
                .hub
                .log(Level::Error, format!("send refused: {}", e.message()));
            return Err(e);
        }
    };
    let mut record = Record::new(topic.clone(), payload);
    record.key = key.filter(|k| !k.is_empty());
    record.partition = partition;
    match state.producer.send(record).await {
        Ok(at) => {
            state.hub.count(1, 0, 1);
            state.hub.log(
                Level::Ok,
                format!(
                    "sent to {topic} partition {} at offset {}",
                    at.partition, at.offset
                ),
            );
            state.base.cluster.refresh();
            Ok(HttpResponse::Ok().json(json!({
                "topic": topic,
                "partition": at.partition,
                "offset": at.offset,
            })))
        }
        Err(e) => {
            let e = UiError::from(e);
            state.hub.count(0, 1, 1);
            state.hub.log(
                Level::Error,
                format!("send to {topic} failed: {}", e.message()),
            );
            Err(e)
        }
    }
}

async fn upload(state: State, form: Multipart) -> Result<HttpResponse, UiError> {
    match state.uploads.receive(form).await {
        Ok(upload) => {
            state.hub.log(
                Level::Info,
                format!(
                    "uploaded {} ({} bytes, {} columns)",
                    upload.filename,
                    crate::job::thousands(upload.size),
                    upload.inspection.headers.len()
                ),
            );
            Ok(HttpResponse::Ok().json(upload.info()))
        }
        Err(e) => {
            state
                .hub
                .log(Level::Error, format!("upload refused: {}", e.message()));
            Err(e)
        }
    }
}

#[derive(Debug, Deserialize)]
struct BatchRequest {
    upload_id: u64,
    topic: String,
    #[serde(flatten)]
    mapping: MappingChoice,
    #[serde(default)]
    batch_size: Option<usize>,
    /// Only show what the first row would be sent as.
    #[serde(default)]
    dry_run: bool,
}

async fn send_batch(state: State, body: web::Json<BatchRequest>) -> Result<HttpResponse, UiError> {
    let req = body.into_inner();
    let upload = state.uploads.get(req.upload_id).ok_or_else(|| {
        UiError::not_found(
            "unknown_upload",
            format!(
                "upload {} is not (or no longer) here; upload the file again",
                req.upload_id
            ),
        )
    })?;
    let mapping = RowMapping::new(&upload.inspection.headers, &req.mapping)
        .map_err(|m| UiError::bad_request("invalid_mapping", m))?;
    if req.dry_run {
        let first = csv::ByteRecord::from(upload.inspection.preview[0].clone());
        let example = match mapping.map_row(&first) {
            Ok((key, payload)) => json!({ "key": key, "payload": payload }),
            Err(reason) => json!({ "error": reason }),
        };
        return Ok(HttpResponse::Ok().json(example));
    }
    let topic = req.topic.trim().to_owned();
    validate_topic_name(&topic).map_err(|m| UiError::bad_request("invalid_topic", m))?;
    let batch_size = req.batch_size.unwrap_or(DEFAULT_BATCH);
    if !(1..=MAX_BATCH).contains(&batch_size) {
        return Err(UiError::bad_request(
            "invalid_batch_size",
            format!("the batch size must be 1 to {MAX_BATCH}"),
        ));
    }
    let job = state.jobs.start(
        JobSpec {
            upload,
            topic,
            mapping,
            batch_size,
        },
        state.base.client.clone(),
        state.hub.clone(),
        state.base.shutdown.clone(),
    );
    state.base.cluster.refresh();
    Ok(HttpResponse::Accepted().json(&*job.progress()))
}

async fn list_jobs(state: State) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "jobs": state.jobs.list() }))
}

fn job(state: &AppState, id: u64) -> Result<Arc<crate::job::Job>, UiError> {
    state
        .jobs
        .get(id)
        .ok_or_else(|| UiError::not_found("unknown_job", format!("there is no job {id}")))
}

async fn get_job(state: State, id: web::Path<u64>) -> Result<HttpResponse, UiError> {
    Ok(HttpResponse::Ok().json(&*job(&state, *id)?.progress()))
}

async fn pause_job(state: State, id: web::Path<u64>) -> Result<HttpResponse, UiError> {
    let job = job(&state, *id)?;
    job.pause()?;
    Ok(HttpResponse::Ok().json(&*job.progress()))
}

async fn resume_job(state: State, id: web::Path<u64>) -> Result<HttpResponse, UiError> {
    let job = job(&state, *id)?;
    job.resume()?;
    Ok(HttpResponse::Ok().json(&*job.progress()))
}

async fn cancel_job(state: State, id: web::Path<u64>) -> Result<HttpResponse, UiError> {
    let job = job(&state, *id)?;
    job.cancel()?;
    state
        .hub
        .log(Level::Info, format!("job {}: cancel requested", job.id));
    Ok(HttpResponse::Ok().json(&*job.progress()))
}

/// The page's one event stream: `hello` (a full snapshot, again after the
/// page fell behind), then `leader`, `topics`, `counters`, `activity` and
/// `job` as they change.
async fn events(state: State) -> HttpResponse {
    let shutdown = state.base.shutdown.clone();
    sse::stream(shutdown, move |sink| async move {
        let mut leader = state.base.cluster.watch_leader();
        let mut topics = state.base.cluster.watch_topics();
        let hello = |state: &AppState| {
            let (counters, activity, rx) = state.hub.attach();
            let snapshot = json!({
                "leader": state.base.cluster.leader(),
                "topics": state.base.cluster.topics(),
                "counters": counters,
                "activity": activity,
                "jobs": state.jobs.list(),
            });
            (snapshot, rx)
        };
        let (snapshot, mut rx) = hello(&state);
        if !sink.send("hello", &snapshot).await {
            return;
        }
        loop {
            let sent = tokio::select! {
                event = rx.recv() => match event {
                    Ok(HubEvent::Counters(c)) => sink.send("counters", &c).await,
                    Ok(HubEvent::Activity(e)) => sink.send("activity", &e).await,
                    Ok(HubEvent::Job(p)) => sink.send("job", &*p).await,
                    Err(RecvError::Lagged(_)) => {
                        let (snapshot, fresh) = hello(&state);
                        rx = fresh;
                        sink.send("hello", &snapshot).await
                    }
                    Err(RecvError::Closed) => return,
                },
                Ok(()) = leader.changed() => {
                    let view = leader.borrow_and_update().clone();
                    sink.send("leader", &view).await
                }
                Ok(()) = topics.changed() => {
                    let list = topics.borrow_and_update().clone();
                    sink.send("topics", &list).await
                }
            };
            if !sent {
                return;
            }
        }
    })
}
