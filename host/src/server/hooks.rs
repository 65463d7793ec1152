//! `POST /hooks/confluence/{source}`: where Confluence sends its webhooks.
//!
//! In order: the source must be a Confluence connection (404), the body
//! within the limit (413), the `X-Hub-Signature` valid for the source's
//! secret (401), the JSON well-formed with an `event` name (400). Only then
//! is the event stored, durably, and answered 202 with its id. Refusals
//! store nothing. A repeated delivery answers 202 with the first one's id
//! and `"duplicate": true`. Confluence's "Test connection" body gets 200.
//!
//! Slack's requests arrive beside these, at `POST /hooks/slack/{connection}`
//! ([`super::slack_hooks`]), under the same body limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde_json::json;

use super::AppState;
use super::hook_error::HookError;
use crate::model::EventKind;
use crate::secret::Secret;
use crate::source::webhook::{self, Payload};
use crate::store::{ConnectionKind, NewEvent};

/// How long a connection's hook secret is reused before the store is asked again.
const SECRET_TTL: Duration = Duration::from_secs(2);

/// What the store says about a connection's hook secret (a Confluence
/// webhook secret, a Slack signing secret), as cached.
#[derive(Clone)]
pub(super) enum HookSecret {
    /// No connection of that kind by that name.
    Unknown,
    /// The connection has no secret.
    Missing,
    /// Its secret.
    Known(Secret),
}

/// Hook secrets by connection, so a burst of webhooks does not queue on the
/// database for a value that rarely changes.
#[derive(Default)]
pub struct SourceCache {
    entries: Mutex<HashMap<(ConnectionKind, String), (Instant, HookSecret)>>,
}

pub(super) fn routes(body_limit: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/hooks/confluence/{source}", post(receive))
        .route(
            "/hooks/slack/{connection}",
            post(super::slack_hooks::receive),
        )
        .route(
            "/hooks/teams/{connection}",
            post(super::teams_hooks::receive),
        )
        .layer(DefaultBodyLimit::max(body_limit))
}

/// The hook secret of connection `name` of `kind`; `Err` (503) when it
/// cannot be read now.
pub(super) async fn hook_secret(
    state: &Arc<AppState>,
    kind: ConnectionKind,
    name: &str,
) -> Result<HookSecret, HookError> {
    let key = (kind, name.to_owned());
    if let Some((at, known)) = state
        .sources
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        && at.elapsed() < SECRET_TTL
    {
        return Ok(known.clone());
    }
    let conn = state.store.connection(name).await.map_err(|e| {
        tracing::error!(error = %e, connection = name, "cannot read the connection");
        HookError::Unavailable(
            "the database cannot be reached; send the request again later".into(),
        )
    })?;
    let known = match conn.filter(|c| c.kind == kind) {
        None => HookSecret::Unknown,
        Some(c) => match c.hook_secret.map(|s| s.resolve()) {
            None => HookSecret::Missing,
            Some(Ok(secret)) => HookSecret::Known(secret),
            Some(Err(m)) => {
                tracing::error!(connection = name, "hook secret unavailable: {m}");
                return Err(HookError::Unavailable(format!(
                    "the secret of connection `{name}` is unavailable on this server"
                )));
            }
        },
    };
    state
        .sources
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, (Instant::now(), known.clone()));
    Ok(known)
}

/// Why a body could not be taken: over the limit (413) or unreadable.
pub(super) fn body_refused(state: &AppState, rejection: BytesRejection) -> HookError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        HookError::TooLarge(state.config.server.body_limit_bytes)
    } else {
        HookError::Unreadable {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

/// The answer to a hook: what the handler made of it, or its refusal,
/// counted in the rejected-webhooks metric.
pub(super) fn answer(state: &AppState, result: Result<Response, HookError>) -> Response {
    result.unwrap_or_else(|refused| {
        if let Some(reason) = refused.metric_reason() {
            state.metrics.rejected(reason);
        }
        refused.into_response()
    })
}

/// The Confluence source's webhook secret; `Err` when the source cannot
/// take webhooks.
async fn source_secret(state: &Arc<AppState>, source: &str) -> Result<Secret, HookError> {
    match hook_secret(state, ConnectionKind::Confluence, source).await? {
        HookSecret::Known(secret) => Ok(secret),
        HookSecret::Unknown | HookSecret::Missing => Err(HookError::UnknownConnection(format!(
            "no Confluence connection named `{source}`; create it with `pagehook connect confluence {source} ...`"
        ))),
    }
}

async fn receive(
    State(state): State<Arc<AppState>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = take(&state, &source, &headers, body).await;
    answer(&state, result)
}

/// Verifies, parses and stores one Confluence webhook.
async fn take(
    state: &Arc<AppState>,
    source: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HookError> {
    let secret = source_secret(state, source).await?;
    let body = body.map_err(|rejection| body_refused(state, rejection))?;
    let signature = headers
        .get("x-hub-signature")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    webhook::verify_signature(secret.expose().as_bytes(), &body, signature)
        .map_err(|e| HookError::Signature(e.to_string()))?;
    let hook = match webhook::parse(&body).map_err(|e| HookError::Malformed(e.to_string()))? {
        Payload::Test => {
            return Ok((StatusCode::OK, Json(json!({ "ok": true, "test": true }))).into_response());
        }
        Payload::Event(hook) => hook,
    };
    let event = NewEvent {
        key: hook.dedupe_key(source),
        source: source.to_owned(),
        name: hook.name.clone(),
        payload: String::from_utf8_lossy(&body).into_owned(),
        dispatchable: hook.kind != EventKind::Other,
    };
    let inserted = state.ingest.insert(event).await?;
    state.metrics.received(source, inserted.duplicate);
    tracing::debug!(
        event = inserted.id,
        %source,
        duplicate = inserted.duplicate,
        "webhook stored"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": inserted.id, "duplicate": inserted.duplicate })),
    )
        .into_response())
}
