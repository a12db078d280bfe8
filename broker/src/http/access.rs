//! Who may call what: every request passes [`check`] before it reaches a
//! handler.
//!
//! - **Open**: `/health` and `/ready` (probes), the dashboard page (`/`,
//!   `/leader`) and `/static/…`: a page shell and scripts, no data.
//! - **Cluster**: `/internal/…` needs the cluster token in the
//!   `x-yak-cluster-token` header (what nodes send each other).
//! - **Client**: everything else needs the client token, as
//!   `Authorization: Bearer <token>`, or the [`SESSION_COOKIE`] that
//!   `POST /session` sets — the dashboard's way in, since a browser's
//!   `EventSource` cannot send headers.
//!
//! With no token configured for a class, its requests pass. Tokens are
//! compared in constant time. A refusal is `401 unauthorized` with
//! `WWW-Authenticate: Bearer`, rendered by [`ApiError`] like every error.
//!
//! Invariant: [`check`] sees the normalised path (it is wrapped inside
//! `NormalizePath`), so `//internal/x` cannot pass as a client path, and
//! anything not listed as open needs a token (deny by default).

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web,
};

use super::error::ApiError;
use crate::{
    node::Node,
    peer::{TOKEN_HEADER, token_matches},
};

/// The cookie `POST /session` sets: the client token, `HttpOnly`,
/// `SameSite=Strict` (other sites' pages cannot use it), `Secure` over TLS.
pub const SESSION_COOKIE: &str = "yak_session";

/// Which token a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Client,
    Cluster,
}

/// The access class of a (normalised) request path.
pub fn access_for(path: &str) -> Access {
    match path {
        "/" | "/leader" | "/health" | "/ready" => Access::Open,
        p if p.starts_with("/static/") => Access::Open,
        "/internal" => Access::Cluster,
        p if p.starts_with("/internal/") => Access::Cluster,
        _ => Access::Client,
    }
}

/// The middleware: refuses a request without the token its path needs.
pub async fn check(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let node = req
        .app_data::<web::Data<Node>>()
        .expect("the node is app data")
        .clone();
    let config = node.config();
    let refusal = match access_for(req.path()) {
        Access::Open => None,
        Access::Cluster => {
            let presented = req.headers().get(TOKEN_HEADER).map(|v| v.as_bytes());
            (!token_matches(config.cluster_token.as_deref(), presented))
                .then_some("internal endpoints need the cluster token (x-yak-cluster-token)")
        }
        Access::Client => (!client_token_matches(config.client_token.as_deref(), req.request()))
            .then_some("this node needs the client token: Authorization: Bearer <token>"),
    };
    match refusal {
        Some(message) => {
            let error = ApiError::unauthorized(message).refused_at(req.path());
            let response = error.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
        None => Ok(next.call(req).await?.map_into_left_body()),
    }
}

/// The client token from the `Authorization: Bearer` header, else from
/// the session cookie, compared with the configured one.
fn client_token_matches(configured: Option<&str>, req: &HttpRequest) -> bool {
    if configured.is_none() {
        return true;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let presented = bearer.or_else(|| session_cookie(req));
    token_matches(configured, presented)
}

/// The value of [`SESSION_COOKIE`] in the `Cookie` headers, if present.
fn session_cookie(req: &HttpRequest) -> Option<&[u8]> {
    req.headers()
        .get_all(header::COOKIE)
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            pair.trim_ascii()
                .strip_prefix(SESSION_COOKIE.as_bytes())?
                .strip_prefix(b"=")
        })
}

/// `POST /session`: reached only with the right bearer token (or with no
/// client token configured); sets the session cookie for the dashboard.
/// `DELETE /session` clears it.
pub async fn open_session(node: web::Data<Node>) -> HttpResponse {
    let config = node.config();
    let mut response = HttpResponse::NoContent();
    if let Some(token) = &config.client_token {
        let secure = if config.server.tls_cert.is_some() {
            "; Secure"
        } else {
            ""
        };
        response.insert_header((
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        ));
    }
    response.finish()
}

pub async fn close_session() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        ))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        for open in ["/", "/leader", "/health", "/ready", "/static/yak.js"] {
            assert_eq!(access_for(open), Access::Open, "{open}");
        }
        for cluster in ["/internal", "/internal/fetch", "/internal/replicate"] {
            assert_eq!(access_for(cluster), Access::Cluster, "{cluster}");
        }
        for client in [
            "/produce",
            "/consume",
            "/topics",
            "/topics/x",
            "/metrics",
            "/stats",
            "/events",
            "/session",
            "/metadata/leader",
            "/healthz",
            "/internalx",
            "/nope",
        ] {
            assert_eq!(access_for(client), Access::Client, "{client}");
        }
    }
}
