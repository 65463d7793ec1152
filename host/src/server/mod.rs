//! `pagehook serve`: the HTTP side of the sidecar.
//!
//! Routes: `POST /hooks/confluence/{source}` and `POST /hooks/slack/{connection}`
//! (webhooks, see [`hooks`] and [`slack_hooks`]; the host's own
//! `/confluence link` and `unlink` in [`slack_link`]),
//! `/api/...` (the admin API, see [`api`]), `GET /healthz` (alive),
//! `GET /readyz` (ready for traffic, see [`lifecycle`]) and `GET /metrics`.
//! The dispatcher runs in the same process and is woken by every newly
//! stored event.

mod api;
mod conn;
mod console;
pub(crate) mod form_errors;
mod hook_error;
mod hooks;
pub mod lifecycle;
pub mod public_url;
pub mod session;
mod slack_hooks;
pub(crate) mod slack_link;
mod slack_socket;
pub(crate) mod teams_hooks;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::config::{Config, Database};
use crate::deliver::Deliverer;
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;
use crate::runtime::Runtime;
use crate::secret::Secret;
use crate::store::Store;
use crate::store::ingest::Ingest;
use lifecycle::Lifecycle;

/// What every request handler shares.
pub struct AppState {
    /// The database.
    pub store: Arc<Store>,
    /// The durable webhook write path.
    pub ingest: Ingest,
    /// Metrics for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The sandbox (for installs through the API).
    pub runtime: Arc<Runtime>,
    /// The configuration it was started with.
    pub config: Config,
    /// The admin API's bearer token; `None` refuses every admin request.
    pub admin_token: Option<Secret>,
    /// Cached webhook secrets by source.
    pub sources: hooks::SourceCache,
    /// The host's "now" for signature windows (Slack's); fixed only by tests.
    pub clock: crate::clock::Clock,
    /// The last `doctor` report, for the console's overview.
    pub doctor: crate::doctor::Latest,
    /// Whether the server is stopping (`/readyz`), and its supervisor.
    pub lifecycle: Arc<Lifecycle>,
    /// What the console's pickers offer (Slack channels, Confluence spaces and pages).
    pub pickers: Arc<crate::pickers::Pickers>,
    /// The Bot Framework's signing keys and the bots' tokens, for
    /// `/hooks/teams/{connection}`.
    pub teams: Arc<teams_hooks::TeamsState>,
}

impl AppState {
    /// A state over the SQLite store the config names, with its own ingest,
    /// metrics and sandbox, for using the router in process (tests, tools);
    /// `serve` builds its own, sharing them with dispatch and delivery.
    pub fn standalone(config: Config) -> anyhow::Result<Arc<AppState>> {
        let store = Arc::new(Store::open_sqlite(&config.store.database)?);
        let ingest = Ingest::start(&store, Arc::new(Notify::new()))?;
        let pickers = Arc::new(crate::pickers::Pickers::for_config(&config));
        let teams = Arc::new(teams_hooks::TeamsState::new(&config, Arc::default()));
        Ok(Arc::new(AppState {
            ingest,
            metrics: Arc::new(Metrics::new()),
            runtime: Arc::new(Runtime::new(config.runtime_config()?)),
            admin_token: config.admin_token()?,
            config,
            store,
            sources: hooks::SourceCache::default(),
            clock: crate::clock::Clock::System,
            doctor: crate::doctor::Latest::default(),
            lifecycle: Arc::new(Lifecycle::new()),
            teams,
            pickers,
        }))
    }
}

/// A JSON error answer: `{"error": "..."}` with a status.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The router over a state; what tests and `serve` use.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.server.body_limit_bytes;
    let body_timeout = state.config.body_timeout();
    Router::new()
        .merge(hooks::routes(body_limit))
        .nest("/api", api::routes())
        .nest("/console", console::routes())
        // The address alone leads to the console (its sign-in page when signed out).
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/console") }),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            body_timeout,
            conn::body_deadline,
        ))
}

/// `GET /healthz`: 503 when the database cannot be read within
/// [`HEALTH_TIMEOUT`] (a replica that lost PostgreSQL says so until it has
/// reconnected). Confluence
/// personal access tokens are reported in the body, from what the token
/// watch last read: `status` is `warning` while one expires within
/// 14 days and `degraded` once one has expired (still 200: restarting the
/// sidecar would not renew a token, and webhooks are still accepted).
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let store = &state.store;
    let read = async { anyhow::Ok((store.event_counts().await?, store.connections().await?)) };
    match tokio::time::timeout(HEALTH_TIMEOUT, read).await {
        Ok(Ok((counts, connections))) => {
            let counts: serde_json::Map<String, serde_json::Value> = counts
                .into_iter()
                .map(|c| (c.status.as_str().to_owned(), c.count.into()))
                .collect();
            let now = crate::store::now_ms();
            let tokens: Vec<crate::ops::tokens::TokenStatus> = connections
                .iter()
                .filter_map(|c| crate::ops::tokens::token_status(c, now))
                .collect();
            let status = if tokens.iter().any(|t| t.state == "expired") {
                "degraded"
            } else if tokens.iter().any(|t| t.state == "expiring") {
                "warning"
            } else {
                "ok"
            };
            let warnings: Vec<&str> = tokens.iter().filter_map(|t| t.message.as_deref()).collect();
            Json(json!({
                "status": status,
                "events": counts,
                "confluence_tokens": tokens,
                "warnings": warnings,
            }))
            .into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: the database cannot be read");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database cannot be reached (the log has the details)",
            )
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the database did not answer within {} s",
                HEALTH_TIMEOUT.as_secs()
            ),
        ),
    }
}

/// `GET /readyz`: whether this replica should be sent traffic. 200
/// `{"status":"ready"}` while the database answers within
/// [`READY_TIMEOUT`]; 503 `{"status":"stopping"}` from the moment SIGTERM
/// arrived, and 503 `{"status":"database-unreachable"}` while the database
/// does not answer. `/healthz` says whether the process is alive and what
/// it holds; this says only whether to route to it, so it is cheap enough
/// for a probe every second.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let not_ready = |status: &str, message: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": status, "error": message })),
        )
            .into_response()
    };
    if state.lifecycle.is_stopping() {
        return not_ready(
            "stopping",
            "this replica is stopping: it finishes what it holds and takes no new work".into(),
        );
    }
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Json(json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database cannot be reached");
            not_ready(
                "database-unreachable",
                "the database cannot be reached (the log has the details)".into(),
            )
        }
        Err(_) => not_ready(
            "database-unreachable",
            format!(
                "the database did not answer within {} ms",
                READY_TIMEOUT.as_millis()
            ),
        ),
    }
}

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1000);

/// How long `/healthz` waits for the database.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Makes this the only `pagehook serve` on `database`: an exclusive lock on
/// `<database>.serve-lock`, held until the returned file is dropped (the
/// kernel drops it when the process dies, SIGKILL included).
///
/// SQLite's own locks keep the file consistent, but two servers on one
/// file each dispatch and deliver the same rows: tried as a new user would,
/// three of them posted events twice and lost one. The CLI does not take
/// this lock, so admin commands work while the server runs.
fn claim_database(database: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let mut path = database.as_os_str().to_owned();
    path.push(".serve-lock");
    let path = std::path::PathBuf::from(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            anyhow::bail!(
                "another `pagehook serve` (pid {}) is running on {}: SQLite serves one process, so stop it first (admin commands such as `pagehook deliveries` work beside it); for several replicas, use PostgreSQL ([store] database = \"postgres://...\", see docs/admin.md)",
                holder.trim(),
                database.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(file)
}

/// Opens the store, starts ingest and the dispatcher, and serves until
/// SIGTERM or Ctrl-C; prints the bound address on stdout first.
///
/// Stopping: `/readyz` turns 503 and systemd hears `STOPPING=1`; the
/// listener closes and the requests in flight are answered (a webhook
/// answered 202 is stored); dispatch and delivery take no new round, and
/// the rounds running (plugin calls, sends) get `[server]
/// shutdown-grace-ms` to finish and record what they did. Whatever is
/// still running then is dropped, and everything this replica holds is let
/// go ([`Store::release_replica`]): its events go back to the queue, its
/// lanes are free, and a delivery whose send was cut short is marked
/// uncertain so whoever takes it looks before sending again.
pub async fn serve(config: Config, listen: Option<String>) -> anyhow::Result<()> {
    let life = Arc::new(Lifecycle::new());
    let watchdog = life.start_watchdog();
    life.status("opening the store (applying migrations)");
    let database = config.store.location().map_err(|e| anyhow::anyhow!(e))?;
    let _only_server = match &database {
        Database::Sqlite(path) => Some(claim_database(path)?),
        Database::Postgres(_) => None,
    };
    let store = Arc::new(Store::open(&database).await?);
    let connections = store.fill_pool().await;
    tracing::info!(database = %store.describe(), connections, "store open");
    let wake = Arc::new(Notify::new());
    let ingest = Ingest::start(&store, wake.clone())?;
    let metrics = Arc::new(Metrics::new());
    let runtime = Arc::new(Runtime::new(config.runtime_config()?));
    let admin_token = config.admin_token()?;
    if admin_token.is_none() {
        tracing::warn!(
            "no server.admin-token configured: the admin API under /api refuses every request"
        );
    }
    let addr = listen.unwrap_or_else(|| config.server.listen.clone());
    life.status(&format!("binding {addr}"));
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local: SocketAddr = listener.local_addr()?;

    let outbox = Arc::new(Notify::new());
    // One token cache per Teams bot, for the endpoint, dispatch and delivery.
    let teams_bots: Arc<crate::teams::bots::TeamsBots> = Arc::default();
    let dispatcher = Arc::new(
        Dispatcher::new(
            store.clone(),
            runtime.clone(),
            metrics.clone(),
            config.clone(),
            outbox.clone(),
        )
        .with_teams_bots(teams_bots.clone()),
    );
    store.listen(wake.clone(), outbox.clone());
    match store.release_stale_claims().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            n,
            "deliveries were in flight at the last stop; checking before resending"
        ),
        Err(e) => tracing::error!(error = %e, "cannot release the last run's claims"),
    }
    let deliverer = Arc::new(
        Deliverer::new(
            store.clone(),
            config.delivery.clone(),
            config.store.lease_ms,
        )
        .with_teams_bots(teams_bots.clone()),
    );
    // The console's channel picker reads delivery's own Slack directory.
    let slack_directory = deliverer.slack_directory();
    let (stop, stopped) = watch::channel(false);
    let token_task = tokio::spawn(crate::ops::tokens::watch_tokens(
        store.clone(),
        metrics.clone(),
        config.enrichment_timeout(),
        stopped.clone(),
    ));
    let dispatch_task = tokio::spawn(dispatcher.run(wake.clone(), stopped.clone()));
    let sockets_stopped = stopped.clone();
    let delivery_task = tokio::spawn(deliverer.run(outbox, stopped));

    let grace = config.shutdown_grace();
    let pickers = Arc::new(crate::pickers::Pickers::new(
        slack_directory,
        config.enrichment_timeout(),
    ));
    let teams = Arc::new(teams_hooks::TeamsState::new(&config, teams_bots));
    let state = Arc::new(AppState {
        store: store.clone(),
        ingest,
        metrics,
        runtime,
        config,
        admin_token,
        sources: hooks::SourceCache::default(),
        clock: crate::clock::Clock::System,
        doctor: crate::doctor::Latest::default(),
        lifecycle: life.clone(),
        teams,
        pickers,
    });
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        // Nobody reading stdout is no reason not to serve.
        let _ = writeln!(out, "pagehook listening on http://{local}").and_then(|_| out.flush());
    }
    tracing::info!(%local, "listening");
    // Slack connections with an app-level token: events over Socket Mode.
    let socket_task = tokio::spawn(slack_socket::run(state.clone(), sockets_stopped));
    life.ready(&format!(
        "serving on http://{local}, store {}",
        store.describe()
    ));
    let header_timeout = state.config.header_timeout();
    let stopping = life.clone();
    let stop_signal = async move {
        lifecycle::stop_requested().await;
        let deadline = tokio::time::Instant::now() + grace;
        stopping.stopping(&format!(
            "stopping: answering requests in flight and finishing plugin calls and sends (at most {} ms)",
            grace.as_millis()
        ));
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            "shutting down: no new requests; finishing the current dispatch and delivery"
        );
        // Dispatch and delivery take no new round from now on.
        let _ = stop.send(true);
        deadline
    };
    let deadline = conn::serve(listener, router(state), header_timeout, stop_signal).await;
    // Each worker is awaited once: a finished one is taken out of the list.
    let mut workers = [socket_task, dispatch_task, delivery_task, token_task].map(Some);
    let finished = tokio::time::timeout_at(deadline, async {
        for worker in workers.iter_mut() {
            if let Some(handle) = worker {
                let _ = handle.await;
                *worker = None;
            }
        }
    })
    .await;
    if finished.is_err() {
        life.status("stopping: the grace is over; letting go of unfinished work");
        tracing::warn!(
            "plugin calls or sends still running at the end of the shutdown grace are dropped; their claims are released"
        );
        for worker in workers.iter().flatten() {
            worker.abort();
        }
        for worker in workers.into_iter().flatten() {
            let _ = worker.await;
        }
    }
    // Whatever this replica still holds goes back now, not after its lease.
    let replica = crate::store::claims::replica_name();
    match store.release_replica(&replica).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, %replica, "released this replica's claims and lane leases"),
        Err(e) => {
            tracing::error!(error = %e, "cannot release this replica's claims; they end with their lease")
        }
    }
    life.status("stopped");
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    Ok(())
}
