//! Start-up pieces the UIs share — the `--bootstrap`, access and link
//! flags, logging, the security headers, `GET /health`, the JSON API every
//! UI has (`/api/leader`, `/api/topics`), one [`serve`] that builds and
//! runs a UI's server, stopping gracefully on SIGINT/SIGTERM — and what
//! every YAK server shares, the node's included: [`ServerArgs`], the
//! timeouts, connection limits and TLS of an HTTP server.
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
    App, HttpResponse, HttpServer, Responder,
    body::MessageBody,
    dev::{AppConfig, Server, Service, ServiceFactory},
    middleware::DefaultHeaders,
    web,
};
use askama::Template;
use tokio_util::sync::CancellationToken;
use yak_client::{ClientConfig, YakClient};

use crate::{ClusterWatch, UiError, assets::Asset, shell::UiLinks};

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
        let server = match self.tls_config()? {
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

/// Flags both UIs take (each adds its own `--listen`).
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Node URLs to find the leader through, comma-separated.
    #[arg(
        long,
        env = "YAK_BOOTSTRAP",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:5001,http://127.0.0.1:5002"
    )]
    pub bootstrap: Vec<String>,
    /// Where the producer UI is, for the navigation.
    #[arg(
        long,
        env = "YAK_PRODUCER_UI_URL",
        default_value = "http://127.0.0.1:5003"
    )]
    pub producer_ui_url: String,
    /// Where the consumer UI is, for the navigation.
    #[arg(
        long,
        env = "YAK_CONSUMER_UI_URL",
        default_value = "http://127.0.0.1:5004"
    )]
    pub consumer_ui_url: String,
    /// Bearer token for nodes started with `--client-token`.
    #[arg(long, env = "YAK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of an extra CA to trust for `https://` nodes.
    #[arg(long, env = "YAK_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl CommonArgs {
    pub fn links(&self) -> UiLinks {
        UiLinks {
            producer: self.producer_ui_url.clone(),
            consumer: self.consumer_ui_url.clone(),
        }
    }

    /// `base` (a UI's retry policy) with the token and CA of the flags.
    pub fn client_config(&self, base: ClientConfig) -> Result<ClientConfig, UiError> {
        let tls_ca_pem = match &self.tls_ca {
            Some(path) => Some(yak_client::read_ca(path)?),
            None => None,
        };
        Ok(ClientConfig {
            token: self.token.clone().filter(|t| !t.is_empty()),
            tls_ca_pem,
            ..base
        })
    }
}

/// What every UI's handlers share: the cluster client, the leader and
/// topic watch, the links of the navigation, the shutdown signal. App data
/// of every UI, so the shared routes find it.
#[derive(Debug)]
pub struct UiBase {
    pub client: YakClient,
    pub cluster: ClusterWatch,
    pub links: UiLinks,
    pub shutdown: CancellationToken,
}

impl UiBase {
    /// A client with `config` (a UI's retry policy, with access from the
    /// flags) and a cluster watch, both ending with `shutdown`.
    pub fn start(
        args: &CommonArgs,
        config: ClientConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, UiError> {
        let config = args.client_config(config)?;
        let client = YakClient::with_config(args.bootstrap.iter().cloned(), config.clone())?;
        let cluster = ClusterWatch::spawn(&args.bootstrap, &config, shutdown.clone())?;
        Ok(Self {
            client,
            cluster,
            links: args.links(),
            shutdown,
        })
    }
}

/// A UI: its name, JSON body limit, page script and routes. [`serve`] adds
/// what every UI has.
pub struct UiApp<D> {
    pub service: &'static str,
    pub base: Arc<UiBase>,
    pub state: D,
    pub json_limit: usize,
    pub assets: &'static [Asset],
    pub routes: fn(&mut web::ServiceConfig),
}

/// Serves `app` on `listener` with the limits and TLS of `args` until
/// `app.base.shutdown` is cancelled (or the server fails).
pub async fn serve<D: Send + Sync + 'static>(
    listener: TcpListener,
    args: &CommonArgs,
    app: UiApp<D>,
) -> std::io::Result<()> {
    let UiApp {
        service,
        base,
        state,
        json_limit,
        assets,
        routes,
    } = app;
    tracing::info!(
        listen = %listener.local_addr()?,
        scheme = args.server.scheme(),
        bootstrap = %args.bootstrap.join(","),
        "{service} starting"
    );
    let shutdown = base.shutdown.clone();
    let base = web::Data::from(base);
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(base.clone())
            .app_data(state.clone())
            .app_data(crate::error::json_config(json_limit))
            .app_data(crate::error::path_config())
            .app_data(crate::error::query_config())
            .wrap(security_headers())
            .configure(|cfg| {
                health(cfg, service);
                crate::assets::configure(cfg, assets);
                cfg.route("/api/leader", web::get().to(leader))
                    .route("/api/topics", web::get().to(topics));
                routes(cfg);
            })
            .default_service(web::to(not_found))
    })
    .workers(2);
    let server = args.server.listen(server, listener)?;
    run(server, shutdown).await?;
    tracing::info!("{service} stopped");
    Ok(())
}

/// What a UI's `main` does first: logging, the listener, and a shutdown
/// token cancelled by SIGINT/SIGTERM.
pub fn prepare(listen: &str) -> std::io::Result<(TcpListener, CancellationToken)> {
    init_tracing();
    let listener = TcpListener::bind(listen)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone())?;
    Ok((listener, shutdown))
}

/// Renders a page template as an HTML answer.
pub fn render(page: &impl Template) -> Result<HttpResponse, UiError> {
    let html = page
        .render()
        .map_err(|e| UiError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// `GET /api/leader`: the cluster watch's view.
async fn leader(base: web::Data<UiBase>) -> impl Responder {
    HttpResponse::Ok().json(base.cluster.leader())
}

/// `GET /api/topics`: the topics with their partition counts.
async fn topics(base: web::Data<UiBase>) -> Result<HttpResponse, UiError> {
    let topics: Vec<crate::Topic> = base
        .client
        .topics()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "topics": topics })))
}

/// Log lines to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Headers on every answer. The content security policy allows only the
/// UI's own scripts, styles and connections: even a bug that put data into
/// markup could not run a script.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
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

/// The answer to a path no route matches: a JSON `404 not_found`, like
/// every other error of the API.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, crate::UiError> {
    Err(crate::UiError::not_found(
        "not_found",
        format!("there is nothing at {} {}", req.method(), req.path()),
    ))
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
