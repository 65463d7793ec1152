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

/// How long a source's webhook secret is reused before the store is asked again.
const SOURCE_TTL: Duration = Duration::from_secs(2);

/// Webhook secrets by source, so a burst of webhooks does not queue on the
/// database for a value that rarely changes.
#[derive(Default)]
pub struct SourceCache {
    entries: Mutex<HashMap<String, (Instant, Option<Secret>)>>,
    /// Slack connections' signing secrets.
    pub(super) slack: super::slack_hooks::SigningSecrets,
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

/// The source's webhook secret; `Err` with the answer to give when the
/// source cannot take webhooks.
async fn source_secret(state: &Arc<AppState>, source: &str) -> Result<Secret, Response> {
    if let Some((at, secret)) = state
        .sources
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(source)
        && at.elapsed() < SOURCE_TTL
    {
        return secret.clone().ok_or_else(|| unknown_source(source));
    }
    let conn = state.store.connection(source).await.map_err(|e| {
        tracing::error!(error = %e, source, "cannot read the source's connection");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database cannot be reached; send the webhook again later",
        )
    })?;
    let secret = match conn.filter(|c| c.kind == ConnectionKind::Confluence) {
        None => None,
        Some(c) => match c.hook_secret.map(|s| s.resolve()) {
            Some(Ok(secret)) => Some(secret),
            Some(Err(m)) => {
                tracing::error!(source, "webhook secret unavailable: {m}");
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the webhook secret of source `{source}` is unavailable on this server"
                    ),
                ));
            }
            None => None,
        },
    };
    state
        .sources
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(source.to_owned(), (Instant::now(), secret.clone()));
    secret.ok_or_else(|| unknown_source(source))
}

fn unknown_source(source: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no Confluence connection named `{source}`; create it with `pagehook connect confluence {source} ...`"
        ),
    )
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
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            state.metrics.rejected("too-large");
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "body larger than the limit of {} bytes (server.body-limit-bytes)",
                    state.config.server.body_limit_bytes
                ),
            );
        }
        Err(rejection) => {
            state.metrics.rejected("malformed");
            return error(rejection.status(), rejection.body_text());
        }
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
