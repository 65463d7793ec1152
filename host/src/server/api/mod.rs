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
use crate::store::{ConnectionKind, DeliveryStatus, EventStatus};

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

/// The answer for a refused or failed operation. Pagehook's own failures
/// (the database, the disk) are logged with their detail and answered
/// without it: no file path, host or driver message reaches a client.
fn answer(e: AdminError) -> Response {
    let status = match &e {
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Internal(detail) => {
            tracing::error!(error = %detail, "admin API request failed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Pagehook could not complete the request (the log has the details)",
            );
        }
    };
    error(status, e.to_string())
}

/// Answers with the JSON of `result`, or with its error.
fn reply<T: serde::Serialize>(result: Result<T, AdminError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => answer(e),
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
    reply(state.store.plugins().await.map_err(AdminError::from))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallBody {
    dir: PathBuf,
    #[serde(default)]
    grants: Vec<String>,
}

async fn install(State(state): State<Arc<AppState>>, Json(body): Json<InstallBody>) -> Response {
    let result = admin::install_plugin(
        &state.store,
        &state.runtime,
        &state.config,
        &body.dir,
        &body.grants,
    )
    .await;
    match result {
        Ok(p) => (StatusCode::CREATED, Json(p)).into_response(),
        Err(e) => answer(e),
    }
}

async fn remove_plugin(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let s = &state.store;
    reply(
        async {
            let bindings = s.remove_plugin(&name).await?;
            Ok(json!({ "removed": name, "bindings_removed": bindings }))
        }
        .await,
    )
}

async fn enable(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let s = &state.store;
    reply(
        async {
            s.set_plugin_enabled(&name, true).await?;
            Ok(s.require_plugin(&name).await?)
        }
        .await,
    )
}

async fn disable(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let s = &state.store;
    reply(
        async {
            s.set_plugin_enabled(&name, false).await?;
            Ok(s.require_plugin(&name).await?)
        }
        .await,
    )
}

async fn reset(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let s = &state.store;
    reply(
        async {
            s.reset_breaker(&name).await?;
            Ok(s.require_plugin(&name).await?)
        }
        .await,
    )
}

async fn connections(State(state): State<Arc<AppState>>) -> Response {
    reply(state.store.connections().await.map_err(AdminError::from))
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
    reply(admin::connect(&state.store, req).await)
}

async fn disconnect(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.store.remove_connection(&name).await {
        Ok(true) => Json(json!({ "removed": name })).into_response(),
        Ok(false) => answer(AdminError::NotFound(format!(
            "no connection named `{name}`"
        ))),
        Err(e) => answer(e.into()),
    }
}

async fn test_connection(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match admin::test_connection(&state.store, &name, &state.config).await {
        Ok(t) => Json(t).into_response(),
        Err(e) => answer(e),
    }
}

async fn bindings(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    reply(
        state
            .store
            .bindings(q.plugin.as_deref())
            .await
            .map_err(AdminError::from),
    )
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
    match admin::bind(&state.store, req).await {
        Ok(b) => (StatusCode::CREATED, Json(b)).into_response(),
        Err(e) => answer(e),
    }
}

async fn unbind(State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    reply(
        state
            .store
            .remove_binding(id)
            .await
            .map(|()| json!({ "removed": id }))
            .map_err(AdminError::from),
    )
}

async fn events(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    let status = match q.status.as_deref().map(EventStatus::parse).transpose() {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    reply(
        state
            .store
            .events(status, q.limit())
            .await
            .map_err(AdminError::from),
    )
}

async fn event(State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    let s = &state.store;
    reply(
        async {
            let event = s
                .event(id)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("no event with id {id}")))?;
            Ok(json!({
                "event": event,
                "deliveries": s.event_deliveries(id).await?,
                "audit": s.audit(Some(id), 10_000).await?,
                "failures": s.event_failures(id).await?,
            }))
        }
        .await,
    )
}

async fn deliveries(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    let status = match q.status.as_deref().map(DeliveryStatus::parse).transpose() {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    reply(
        state
            .store
            .deliveries(status, q.limit())
            .await
            .map_err(AdminError::from),
    )
}

async fn retry(State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    reply(
        state
            .store
            .retry_delivery(id)
            .await
            .map(|()| json!({ "queued": id }))
            .map_err(AdminError::from),
    )
}

async fn attempts(State(state): State<Arc<AppState>>, Path(id): Path<i64>) -> Response {
    reply(state.store.attempts(id).await.map_err(AdminError::from))
}

async fn audit(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    reply(
        state
            .store
            .audit(q.event, q.limit())
            .await
            .map_err(AdminError::from),
    )
}

async fn failures(State(state): State<Arc<AppState>>, Query(q): Query<Listing>) -> Response {
    reply(
        state
            .store
            .failures(q.plugin.as_deref(), q.limit())
            .await
            .map_err(AdminError::from),
    )
}
