//! `POST /hooks/slack/{connection}`: where Slack sends Events API requests
//! and slash commands for one Slack connection (workspace).
//!
//! In order: the connection must be a Slack connection (404) with a signing
//! secret (401), the body within the limit (413), Slack's `v0` signature
//! valid and its timestamp within five minutes of the host's clock (401),
//! the body one Pagehook understands (400). Only then is anything stored;
//! refusals store nothing.
//!
//! Answers: `url_verification` gets its challenge back; a `link_shared`
//! event is answered 200 once it is committed (Slack retries what is not
//! answered within 3 s, and the retry is recognised by its `event_id`); a
//! slash command is answered 200 with an empty body once committed, so
//! Slack shows nothing yet and the plugin's answer follows through the
//! command's `response_url`. `/confluence link` and `/confluence unlink`
//! are the host's own commands: answered at once, only to the person, and
//! not stored (see [`super::slack_link`]). Event types Pagehook does not
//! use are answered 200 and dropped.
//!
//! Socket Mode's envelopes ([`super::slack_socket`]) are stored by the same
//! [`store`], so a request that arrives both ways is one event.
//!
//! Never answers or logs the signing secret, the bot token, Slack's
//! verification token or a response URL.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use super::AppState;
use super::hook_error::HookError;
use super::hooks::{HookSecret, answer, body_refused, hook_secret};
use super::slack_link;
use crate::secret::Secret;
use crate::source::slack_events::{self, Inbound, StoredSlack};
use crate::store::ingest::{IngestError, Inserted};
use crate::store::{ConnectionKind, NewEvent};

/// The connection's signing secret; `Err` when it cannot take Slack's
/// requests.
async fn signing_secret(state: &Arc<AppState>, name: &str) -> Result<Secret, HookError> {
    match hook_secret(state, ConnectionKind::Slack, name).await? {
        HookSecret::Known(secret) => Ok(secret),
        HookSecret::Unknown => Err(HookError::UnknownConnection(format!(
            "no Slack connection named `{name}`; create it with `pagehook connect slack {name} --token-env VAR --signing-secret-env VAR`"
        ))),
        HookSecret::Missing => Err(HookError::NoSecret(format!(
            "Slack connection `{name}` has no signing secret, so no request can be verified; set it with `pagehook connect slack {name} ... --signing-secret-env VAR` (the Slack app's Basic Information, Signing Secret)"
        ))),
    }
}

/// The header's value as text; a header that is not text reads as one
/// that cannot match.
fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

pub(super) async fn receive(
    State(state): State<Arc<AppState>>,
    Path(connection): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = take(&state, &connection, &headers, body).await;
    answer(&state, result)
}

/// Verifies, parses and stores (or answers) one Slack request.
async fn take(
    state: &Arc<AppState>,
    connection: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HookError> {
    let secret = signing_secret(state, connection).await?;
    let body = body.map_err(|rejection| body_refused(state, rejection))?;
    let timestamp = text(headers, "x-slack-request-timestamp");
    slack_events::verify_signature(
        secret.expose().as_bytes(),
        timestamp,
        text(headers, "x-slack-signature"),
        &body,
        state.clock.now_secs(),
    )
    .map_err(|e| {
        tracing::warn!(%connection, "Slack request refused: {e}");
        HookError::Signature(e.to_string())
    })?;
    let inbound = slack_events::parse(
        connection,
        text(headers, header::CONTENT_TYPE.as_str()),
        timestamp.unwrap_or_default(),
        &body,
    )
    .map_err(|e| HookError::Malformed(e.to_string()))?;
    let stored = match inbound {
        Inbound::UrlVerification { challenge } => {
            return Ok(Json(json!({ "challenge": challenge })).into_response());
        }
        Inbound::Ignored { what } => {
            tracing::debug!(%connection, "Slack {what} acknowledged and dropped");
            return Ok(StatusCode::OK.into_response());
        }
        Inbound::Store(stored) => stored,
    };
    if stored.name == slack_events::SLASH_COMMAND
        && let Some(command) = slack_link::host_command(&stored.payload)
    {
        return Ok(slack_link::answer(state, connection, headers, &stored.payload, command).await);
    }
    let name = stored.name;
    let retry = text(headers, "x-slack-retry-num").unwrap_or("0");
    let inserted = store(state, connection, *stored, retry).await?;
    Ok(if name == slack_events::SLASH_COMMAND {
        // Anything in the body would be shown to the user as the answer.
        StatusCode::OK.into_response()
    } else {
        Json(json!({ "ok": true, "id": inserted.id, "duplicate": inserted.duplicate }))
            .into_response()
    })
}

/// Stores a Slack event or command, however it arrived (signed at
/// `/hooks/slack/{connection}` or over Socket Mode), deduplicated on
/// Slack's own id; returns once it is committed. `retry` is Slack's count
/// of earlier attempts, for the log.
pub(super) async fn store(
    state: &AppState,
    connection: &str,
    stored: StoredSlack,
    retry: &str,
) -> Result<Inserted, IngestError> {
    let name = stored.name;
    let event = NewEvent {
        key: stored.key,
        source: connection.to_owned(),
        name: name.to_owned(),
        payload: stored.payload.to_string(),
        dispatchable: true,
    };
    let inserted = state.ingest.insert(event).await?;
    state.metrics.received(connection, inserted.duplicate);
    tracing::debug!(
        event = inserted.id,
        %connection,
        duplicate = inserted.duplicate,
        retry,
        "Slack {name} stored"
    );
    Ok(inserted)
}
