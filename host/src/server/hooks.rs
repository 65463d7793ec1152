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

use super::{AppState, error};
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
        .layer(DefaultBodyLimit::max(body_limit))
}

/// The hook secret of connection `name` of `kind`; `Err` (503) with the
/// answer to give when it cannot be read now.
pub(super) async fn hook_secret(
    state: &Arc<AppState>,
    kind: ConnectionKind,
    name: &str,
) -> Result<HookSecret, Response> {
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
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database cannot be reached; send the request again later",
        )
    })?;
    let known = match conn.filter(|c| c.kind == kind) {
        None => HookSecret::Unknown,
        Some(c) => match c.hook_secret.map(|s| s.resolve()) {
            None => HookSecret::Missing,
            Some(Ok(secret)) => HookSecret::Known(secret),
            Some(Err(m)) => {
                tracing::error!(connection = name, "hook secret unavailable: {m}");
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the secret of connection `{name}` is unavailable on this server"),
                ));
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

/// The answer to a body that could not be taken: over the limit (413) or
/// unreadable.
pub(super) fn body_refused(state: &AppState, rejection: BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        state.metrics.rejected("too-large");
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body larger than the limit of {} bytes (server.body-limit-bytes)",
                state.config.server.body_limit_bytes
            ),
        )
    } else {
        state.metrics.rejected("malformed");
        error(rejection.status(), rejection.body_text())
    }
}

/// The Confluence source's webhook secret; `Err` with the answer to give
/// when the source cannot take webhooks.
async fn source_secret(state: &Arc<AppState>, source: &str) -> Result<Secret, Response> {
    match hook_secret(state, ConnectionKind::Confluence, source).await? {
        HookSecret::Known(secret) => Ok(secret),
        HookSecret::Unknown | HookSecret::Missing => Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "no Confluence connection named `{source}`; create it with `pagehook connect confluence {source} ...`"
            ),
        )),
    }
}

async fn receive(
    State(state): State<Arc<AppState>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let secret = match source_secret(&state, &source).await {
        Ok(s) => s,
        Err(answer) => {
            state.metrics.rejected("unknown-source");
            return answer;
        }
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return body_refused(&state, rejection),
    };
    let signature = headers
        .get("x-hub-signature")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if let Err(e) = webhook::verify_signature(secret.expose().as_bytes(), &body, signature) {
        state.metrics.rejected("signature");
        return error(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let hook = match webhook::parse(&body) {
        Ok(Payload::Test) => {
            return (StatusCode::OK, Json(json!({ "ok": true, "test": true }))).into_response();
        }
        Ok(Payload::Event(hook)) => hook,
        Err(e) => {
            state.metrics.rejected("malformed");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let event = NewEvent {
        key: hook.dedupe_key(&source),
        source: source.clone(),
        name: hook.name.clone(),
        payload: String::from_utf8_lossy(&body).into_owned(),
        dispatchable: hook.kind != EventKind::Other,
    };
    match state.ingest.insert(event).await {
        Ok(inserted) => {
            state.metrics.received(&source, inserted.duplicate);
            tracing::debug!(
                event = inserted.id,
                %source,
                duplicate = inserted.duplicate,
                "webhook stored"
            );
            (
                StatusCode::ACCEPTED,
                Json(json!({ "id": inserted.id, "duplicate": inserted.duplicate })),
            )
                .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
