//! The admin HTTP API under `/api/`: the CLI's powers over HTTP, for
//! automation and UIs. Every request needs `Authorization: Bearer <token>`
//! matching `server.admin-token` (compared in constant time); answers are
//! JSON, errors `{"error": "..."}` with 400/401/404/409/500. Secrets are
//! accepted (as `{"env": ...}`, `{"file": ...}` or `{"value": ...}`) but
//! never returned.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{AppState, error};
use crate::admin::{self, AdminError, BindRequest, ConnectRequest};
use crate::secret::SecretSource;
use crate::store::{ConnectionKind, EventStatus, Store};

pub(super) fn routes(state: Arc<AppState>) -> axum::Router<Arc<AppState>> {
    Router::new()
        .route("/plugins", get(plugins).post(install))
        .route("/plugins/{name}", delete(remove_plugin))
        .route("/plugins/{name}/enable", post(enable))
        .route("/plugins/{name}/disable", post(disable))
        .route("/plugins/{name}/reset", post(reset))
        .route("/connections", get(connections).post(connect))
        .route("/connections/{name}", delete(disconnect))
        .route("/connections/{name}/test", post(test_connection))
        .route("/bindings", get(bindings).post(bind))
        .route("/bindings/{id}", delete(unbind))
        .route("/events", get(events))
        .route("/events/{id}", get(event))
        .route("/deliveries", get(deliveries))
        .route("/deliveries/{id}/retry", post(retry))
        .route("/deliveries/{id}/attempts", get(attempts))
        .route("/audit", get(audit))
        .route("/failures", get(failures))
        .layer(middleware::from_fn_with_state(state, require_token))
}

async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(token) = &state.admin_token else {
        return error(
            StatusCode::UNAUTHORIZED,
            "the admin API is disabled: set server.admin-token in the config",
        );
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        next.run(req).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token (Authorization: Bearer <server.admin-token>)",
        )
    }
}

fn answer(e: AdminError) -> Response {
    let status = match &e {
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// Runs a store operation off the async threads and answers with its JSON.
async fn blocking<T, F>(state: &Arc<AppState>, f: F) -> Response
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&Store) -> Result<T, AdminError> + Send + 'static,
{
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => answer(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Listing {
    status: Option<String>,
    limit: Option<usize>,
    plugin: Option<String>,
    event: Option<i64>,
}

impl Listing {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).min(10_000)
    }
}

async fn plugins(State(state): State<Arc<AppState>>) -> Response {
    blocking(&state, |s| Ok(s.plugins()?)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallBody {
    dir: PathBuf,
    #[serde(default)]
    grants: Vec<String>,
}

async fn install(State(state): State<Arc<AppState>>, Json(body): Json<InstallBody>) -> Response {
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        admin::install_plugin(&st.store, &st.runtime, &st.config, &body.dir, &body.grants)
    })
    .await;
    match result {
        Ok(Ok(p)) => (StatusCode::CREATED, Json(p)).into_response(),
        Ok(Err(e)) => answer(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn remove_plugin(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    blocking(&state, move |s| {
        let bindings = s.remove_plugin(&name)?;
        Ok(json!({ "removed": name, "bindings_removed": bindings }))
    })
    .await
}

async fn enable(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    blocking(&state, move |s| {
        s.set_plugin_enabled(&name, true)?;
        Ok(s.require_plugin(&name)?)
    })
    .await
}

async fn disable(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    blocking(&state, move |s| {
        s.set_plugin_enabled(&name, false)?;
        Ok(s.require_plugin(&name)?)
    })
    .await
}

async fn reset(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    blocking(&state, move |s| {
        s.reset_breaker(&name)?;
        Ok(s.require_plugin(&name)?)
    })
    .await
}

async fn connections(State(state): State<Arc<AppState>>) -> Response {
    blocking(&state, |s| Ok(s.connections()?)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectBody {
    name: String,
    kind: String,
    url: Option<String>,
    username: Option<String>,
    token: Option<SecretSource>,
    webhook_secret: Option<SecretSource>,
    #[serde(default)]
    dry_run: bool,
    /// Slack: greet this email by DM once the connection works.
    notify: Option<String>,
}

async fn connect(State(state): State<Arc<AppState>>, Json(body): Json<ConnectBody>) -> Response {
    let kind = match body.kind.as_str() {
        "slack" => ConnectionKind::Slack,
        "teams" => ConnectionKind::Teams,
        "confluence" => ConnectionKind::Confluence,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown connection kind `{other}` (slack, teams, confluence)"),
            );
        }
    };
    let req = ConnectRequest {
        name: body.name,
        kind,
        url: body.url,
        username: body.username,
        secret: body.token,
        hook_secret: body.webhook_secret,
        dry_run: body.dry_run,
        notify: body.notify,
    };
    blocking(&state, move |s| admin::connect(s, req)).await
}

async fn disconnect(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    blocking(&state, move |s| {
        if s.remove_connection(&name)? {
            Ok(json!({ "removed": name }))
        } else {
            Err(AdminError::NotFound(format!(
                "no connection named `{name}`"
            )))
        }
    })
    .await
}

async fn test_connection(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match admin::test_connection(&state.store, &name, &state.config).await {
        Ok(t) => Json(t).into_response(),
        Err(e) => answer(e),
    }
}

async fn bindings(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    blocking(&state, move |s| Ok(s.bindings(q.plugin.as_deref())?)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindBody {
    plugin: String,
    #[serde(default = "global")]
    scope: String,
    source: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    dry_run: bool,
    /// Do not announce the binding in its Slack channels.
    #[serde(default)]
    quiet: bool,
}

fn global() -> String {
    "global".into()
}

async fn bind(State(state): State<Arc<AppState>>, Json(body): Json<BindBody>) -> Response {
    let req = BindRequest {
        plugin: body.plugin,
        scope: body.scope,
        source: body.source,
        events: body.events,
        to: body.to,
        settings: body.settings.into_iter().collect(),
        dry_run: body.dry_run,
        quiet: body.quiet,
    };
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || admin::bind(&store, req)).await {
        Ok(Ok(b)) => (StatusCode::CREATED, Json(b)).into_response(),
        Ok(Err(e)) => answer(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn unbind(State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    blocking(&state, move |s| {
        s.remove_binding(id)?;
        Ok(json!({ "removed": id }))
    })
    .await
}

async fn events(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    let status = match q.status.as_deref().map(EventStatus::parse).transpose() {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    blocking(&state, move |s| Ok(s.events(status, q.limit())?)).await
}

async fn event(State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    blocking(&state, move |s| {
        let event = s
            .event(id)?
            .ok_or_else(|| AdminError::NotFound(format!("no event with id {id}")))?;
        Ok(json!({
            "event": event,
            "deliveries": s.event_deliveries(id)?,
            "audit": s.audit(Some(id), 10_000)?,
            "failures": s.event_failures(id)?,
        }))
    })
    .await
}

async fn deliveries(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    blocking(&state, move |s| {
        Ok(s.deliveries(q.status.as_deref(), q.limit())?)
    })
    .await
}

async fn retry(State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    blocking(&state, move |s| {
        s.retry_delivery(id)?;
        Ok(json!({ "queued": id }))
    })
    .await
}

async fn attempts(State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    blocking(&state, move |s| Ok(s.attempts(id)?)).await
}

async fn audit(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    blocking(&state, move |s| Ok(s.audit(q.event, q.limit())?)).await
}

async fn failures(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    blocking(&state, move |s| {
        Ok(s.failures(q.plugin.as_deref(), q.limit())?)
    })
    .await
}
