//! The demo controls' HTTP endpoint, served by `yak up` itself (so that it
//! answers while the node it restarts is dead) on `127.0.0.1` only:
//!
//! - `GET /procs`: every process, its pid and how it last ended;
//! - `POST /procs/{name}/kill`: `kill -9` it;
//! - `POST /procs/{name}/restart`: start it again (after it exited).
//!
//! The node dashboards call it from the browser, so it answers CORS
//! requests from their origins only; a request with any other `Origin` is
//! refused (a page elsewhere must not kill the demo's nodes). With a client
//! token, every call needs `Authorization: Bearer <token>`. Errors are JSON
//! `{"error", "message"}` like every YAK endpoint.

use std::net::SocketAddr;

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    dev::ServerHandle,
    http::{StatusCode, header},
    web,
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::supervise::{ControlError, Request};

/// Who may call: the dashboards' origins, and the token if there is one.
#[derive(Debug, Clone)]
pub struct Access {
    pub origins: Vec<String>,
    pub token: Option<String>,
}

impl Access {
    /// The dashboards' origins for node URLs: each as given, and its port
    /// on `127.0.0.1` and `localhost` (a person may type either, and a
    /// node bound to `--host 0.0.0.0` is opened through one of them).
    pub fn for_urls(urls: &[String], token: Option<String>) -> Self {
        let mut origins = Vec::new();
        for url in urls {
            origins.push(url.clone());
            if let Some((scheme, rest)) = url.split_once("://")
                && let Some((_, port)) = rest.rsplit_once(':')
            {
                for host in ["127.0.0.1", "localhost"] {
                    origins.push(format!("{scheme}://{host}:{port}"));
                }
            }
        }
        origins.sort();
        origins.dedup();
        Self { origins, token }
    }
}

struct State {
    access: Access,
    requests: mpsc::Sender<Request>,
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": code, "message": message.to_string()}))
}

/// A call from a page that is not a dashboard of this cluster.
struct ForeignOrigin(String);

impl ForeignOrigin {
    fn response(&self) -> HttpResponse {
        error(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            format!(
                "pages from {} may not use the demo controls; open a node's dashboard",
                self.0
            ),
        )
    }
}

/// The allowed `Origin` to answer CORS for; `Ok(None)` for a caller
/// without one (not a browser).
fn origin(req: &HttpRequest, access: &Access) -> Result<Option<String>, ForeignOrigin> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(None);
    };
    let origin = origin.to_str().unwrap_or_default();
    if access.origins.iter().any(|o| o == origin) {
        Ok(Some(origin.to_owned()))
    } else {
        Err(ForeignOrigin(origin.to_owned()))
    }
}

fn authorized(req: &HttpRequest, access: &Access) -> bool {
    let Some(token) = &access.token else {
        return true;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|g| constant_time_eq::constant_time_eq(g.as_bytes(), token.as_bytes()))
}

/// Checks origin and token, runs `call` on the supervisor, and answers
/// with the CORS headers the page needs to read the answer.
async fn handle(
    req: HttpRequest,
    state: web::Data<State>,
    call: impl FnOnce(mpsc::Sender<Request>) -> futures_util::future::BoxFuture<'static, HttpResponse>,
) -> HttpResponse {
    let allowed = match origin(&req, &state.access) {
        Ok(allowed) => allowed,
        Err(foreign) => return foreign.response(),
    };
    let mut answer = if authorized(&req, &state.access) {
        call(state.requests.clone()).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this cluster has a client token: send Authorization: Bearer <token>",
        )
    };
    if let Some(origin) = allowed {
        let headers = answer.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::HeaderValue::from_str(&origin).expect("checked above"),
        );
        headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    answer
}

async fn ask<T>(
    requests: mpsc::Sender<Request>,
    make: impl FnOnce(oneshot::Sender<T>) -> Request,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    requests.send(make(reply)).await.ok()?;
    answer.await.ok()
}

fn outcome(result: Option<Result<super::supervise::ProcView, ControlError>>) -> HttpResponse {
    match result {
        Some(Ok(view)) => HttpResponse::Ok().json(view),
        Some(Err(e @ ControlError::Unknown(_))) => {
            error(StatusCode::NOT_FOUND, "unknown_process", e)
        }
        Some(Err(e @ ControlError::NotRunning(_))) => error(StatusCode::CONFLICT, "not_running", e),
        Some(Err(e @ ControlError::Running(_))) => error(StatusCode::CONFLICT, "running", e),
        Some(Err(e @ ControlError::Start(..))) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "start_failed", e)
        }
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "yak up is stopping",
        ),
    }
}

async fn list(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    handle(req, state, |requests| {
        Box::pin(async move {
            match ask(requests, Request::List).await {
                Some(procs) => HttpResponse::Ok().json(json!({ "procs": procs })),
                None => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "stopping",
                    "yak up is stopping",
                ),
            }
        })
    })
    .await
}

async fn act(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (name, action) = path.into_inner();
    handle(req, state, move |requests| {
        Box::pin(async move {
            match action.as_str() {
                "kill" => outcome(ask(requests, |reply| Request::Kill(name, reply)).await),
                "restart" => outcome(ask(requests, |reply| Request::Restart(name, reply)).await),
                other => error(
                    StatusCode::NOT_FOUND,
                    "unknown_action",
                    format!("no action {other:?}: use kill or restart"),
                ),
            }
        })
    })
    .await
}

/// The CORS preflight of a dashboard's call (it sends `Authorization`).
async fn preflight(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    match origin(&req, &state.access) {
        Ok(Some(origin)) => HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "authorization"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((header::VARY, "Origin"))
            .finish(),
        Ok(None) => HttpResponse::NoContent().finish(),
        Err(foreign) => foreign.response(),
    }
}

async fn not_found() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "the demo controls serve GET /procs and POST /procs/{name}/kill|restart",
    )
}

/// Starts serving on `addr`; stop it with the returned handle.
pub fn serve(
    addr: SocketAddr,
    access: Access,
    requests: mpsc::Sender<Request>,
) -> std::io::Result<ServerHandle> {
    let state = web::Data::new(State { access, requests });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/procs", web::get().to(list))
            .route("/procs/{name}/{action}", web::post().to(act))
            .default_service(web::route().to(
                |req: HttpRequest, state: web::Data<State>| async move {
                    if req.method() == actix_web::http::Method::OPTIONS {
                        preflight(req, state).await
                    } else {
                        not_found().await
                    }
                },
            ))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboards_are_reached_by_loopback_name_or_address() {
        let urls = [
            "http://0.0.0.0:5001".to_owned(),
            "http://127.0.0.1:5002".to_owned(),
        ];
        let access = Access::for_urls(&urls, None);
        for origin in [
            "http://0.0.0.0:5001",
            "http://127.0.0.1:5001",
            "http://localhost:5001",
            "http://127.0.0.1:5002",
            "http://localhost:5002",
        ] {
            assert!(access.origins.iter().any(|o| o == origin), "{origin}");
        }
        assert!(!access.origins.iter().any(|o| o.ends_with(":5003")));
        assert_eq!(access.origins.len(), 5, "{:?}", access.origins);
    }
}
