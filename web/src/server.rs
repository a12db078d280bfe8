//! What every YAK HTTP server shares, the node's and the UIs': the
//! timeouts, connection limits and TLS of [`ServerArgs`], the security
//! headers, `GET /health`, and stopping gracefully on SIGINT/SIGTERM.
//!
//! Invariant: every server YAK runs goes through [`ServerArgs::listen`],
//! so none runs without a request-head timeout and a connection limit.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use actix_web::{
    HttpResponse, HttpServer,
    body::MessageBody,
    dev::{AppConfig, Server, Service, ServiceFactory},
    middleware::DefaultHeaders,
    web,
};
use tokio_util::sync::CancellationToken;

/// Timeouts, connection limits and TLS of an HTTP server: the same flags
/// (and `YAK_*` variables) on the node and on both UIs.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Time a client has to send a request's head (line and headers), in
    /// ms; a slower client gets 408 and is disconnected.
    #[arg(long, env = "YAK_HTTP_REQUEST_TIMEOUT_MS", default_value_t = 5_000)]
    pub http_request_timeout_ms: u64,
    /// Time a client has to close its side after the server closed, in ms.
    #[arg(long, env = "YAK_HTTP_DISCONNECT_TIMEOUT_MS", default_value_t = 2_000)]
    pub http_disconnect_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept open, in ms (0: no
    /// keep-alive). Longer than YAK's clients keep idle connections (30 s),
    /// so that a client never reuses one the server is closing.
    #[arg(long, env = "YAK_HTTP_KEEP_ALIVE_MS", default_value_t = 75_000)]
    pub http_keep_alive_ms: u64,
    /// Most open connections per worker thread; more wait in the backlog.
    #[arg(long, env = "YAK_HTTP_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub http_max_connections: usize,
    /// Most TLS handshakes in progress at once per worker thread.
    #[arg(long, env = "YAK_HTTP_MAX_CONNECTION_RATE", default_value_t = 256)]
    pub http_max_connection_rate: usize,
    /// PEM certificate chain: serve HTTPS (with `--tls-key`).
    #[arg(long, env = "YAK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "YAK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServerArgs {
    /// `https` when a certificate is configured, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The rustls configuration of `--tls-cert`/`--tls-key`, if set.
    pub fn tls_config(&self) -> std::io::Result<Option<rustls::ServerConfig>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        load_tls(cert, key).map(Some)
    }

    /// Applies the limits to `server`, listens on `listener` (TLS when a
    /// certificate is configured) and starts it. Signals are left to the
    /// caller, which stops the server through its handle.
    pub fn listen<F, I, S, B>(
        &self,
        server: HttpServer<F, I, S, B>,
        listener: TcpListener,
    ) -> std::io::Result<Server>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: actix_service::IntoServiceFactory<S, actix_http::Request>,
        S: ServiceFactory<actix_http::Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: std::fmt::Debug,
        S::Response: Into<actix_http::Response<B>> + 'static,
        <S::Service as Service<actix_http::Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        self.listen_with_tls(server, listener, self.tls_config()?)
    }

    /// [`ServerArgs::listen`] with a TLS configuration already loaded
    /// from [`ServerArgs::tls_config`], for a process that serves more
    /// than HTTP with the same certificate (the node's Kafka listener).
    pub fn listen_with_tls<F, I, S, B>(
        &self,
        server: HttpServer<F, I, S, B>,
        listener: TcpListener,
        tls: Option<rustls::ServerConfig>,
    ) -> std::io::Result<Server>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: actix_service::IntoServiceFactory<S, actix_http::Request>,
        S: ServiceFactory<actix_http::Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: std::fmt::Debug,
        S::Response: Into<actix_http::Response<B>> + 'static,
        <S::Service as Service<actix_http::Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let keep_alive = match self.http_keep_alive_ms {
            0 => actix_http::KeepAlive::Disabled,
            ms => actix_http::KeepAlive::Timeout(Duration::from_millis(ms)),
        };
        let server = server
            .client_request_timeout(Duration::from_millis(self.http_request_timeout_ms))
            .client_disconnect_timeout(Duration::from_millis(self.http_disconnect_timeout_ms))
            .keep_alive(keep_alive)
            .max_connections(self.http_max_connections)
            .max_connection_rate(self.http_max_connection_rate)
            .shutdown_timeout(5)
            .disable_signals();
        let server = match tls {
            Some(tls) => server
                .tls_handshake_timeout(Duration::from_millis(self.http_request_timeout_ms))
                .listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        };
        Ok(server.run())
    }
}

/// Reads a PEM certificate chain and private key into a rustls server
/// configuration (ring provider, TLS 1.2 and 1.3, no client certificates).
fn load_tls(cert: &Path, key: &Path) -> std::io::Result<rustls::ServerConfig> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let invalid = |what: &Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: {e}", what.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(cert, &e))?;
    if chain.is_empty() {
        return Err(invalid(cert, &"no certificate in the file"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|e| invalid(cert, &e))
}

/// Headers on every answer. The content security policy allows only the
/// server's own scripts, styles and connections (plus the origins in
/// `connect`, which a page's scripts may call): even a bug that put data
/// into markup could not run a script.
pub fn security_headers(connect: &[&str]) -> DefaultHeaders {
    let connect_src = std::iter::once("'self'")
        .chain(connect.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            format!(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src {connect_src}; object-src 'none'; base-uri 'none'; \
                 frame-ancestors 'none'"
            ),
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
}

/// `GET /health` answering `{"status": "ok", "service": <name>}`.
pub fn health(cfg: &mut web::ServiceConfig, service: &'static str) {
    cfg.route(
        "/health",
        web::get().to(move || async move {
            HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "service": service }))
        }),
    );
}

/// Cancels `cancel` on the first SIGINT or SIGTERM.
pub fn cancel_on_signals(cancel: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            () = cancel.cancelled() => return,
        }
        cancel.cancel();
    });
    Ok(())
}

/// Runs `server` until it fails or `cancel` fires; then stops it
/// gracefully (event streams end with the same token).
pub async fn run(server: Server, cancel: CancellationToken) -> std::io::Result<()> {
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => {
            cancel.cancel();
            result
        }
        () = cancel.cancelled() => {
            // The server only acts on the stop while it is polled.
            let ((), result) = tokio::join!(handle.stop(true), server);
            result
        }
    }
}
