//! Start-up pieces both UIs share: the `--bootstrap` and link flags,
//! logging, the security headers, `GET /health`, and a run loop that stops
//! gracefully on SIGINT/SIGTERM.

use actix_web::{HttpResponse, dev::Server, middleware::DefaultHeaders, web};
use tokio_util::sync::CancellationToken;

use crate::shell::UiLinks;

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
}

impl CommonArgs {
    pub fn links(&self) -> UiLinks {
        UiLinks {
            producer: self.producer_ui_url.clone(),
            consumer: self.consumer_ui_url.clone(),
        }
    }
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
