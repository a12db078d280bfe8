//! Start-up pieces the UIs share: the `--bootstrap`, access and link
//! flags, logging, the JSON API every UI has (`/api/leader`,
//! `/api/topics`), and one [`serve`] that builds and runs a UI's server
//! with what every YAK server has (`yak_web::server`).

use std::{net::TcpListener, sync::Arc};

use actix_web::{App, HttpResponse, HttpServer, Responder, web};
use askama::Template;
use tokio_util::sync::CancellationToken;
use yak_client::{ClientConfig, ConnectArgs, YakClient};
use yak_web::{
    ServerArgs, UiLinks,
    assets::{self, Asset},
    server::{cancel_on_signals, health, run, security_headers},
};

use crate::{ClusterWatch, UiError};

/// Flags both UIs take (each adds its own `--listen`).
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
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
        let config = args.connect.config(config)?;
        let client =
            YakClient::with_config(args.connect.bootstrap.iter().cloned(), config.clone())?;
        let cluster = ClusterWatch::spawn(&args.connect.bootstrap, &config, shutdown.clone())?;
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
        bootstrap = %args.connect.bootstrap.join(","),
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
            .wrap(security_headers(&[]))
            .configure(|cfg| {
                health(cfg, service);
                assets::configure(cfg, assets);
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

/// The answer to a path no route matches: a JSON `404 not_found`, like
/// every other error of the API.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, crate::UiError> {
    Err(crate::UiError::not_found(
        "not_found",
        format!("there is nothing at {} {}", req.method(), req.path()),
    ))
}
