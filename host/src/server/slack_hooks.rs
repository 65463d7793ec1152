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
//! command's `response_url`. Event types Pagehook does not use are answered
//! 200 and dropped.
//!
//! Never answers or logs the signing secret, the bot token, Slack's
//! verification token or a response URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

use super::{AppState, error};
use crate::secret::Secret;
use crate::source::slack_events::{self, Inbound};
use crate::store::{ConnectionKind, NewEvent};

/// How long a connection's signing secret is reused before the store is asked again.
const SECRET_TTL: Duration = Duration::from_secs(2);

/// What the store said about a connection name, as cached.
#[derive(Clone)]
enum Known {
    /// No Slack connection by that name.
    Unknown,
    /// A Slack connection without a signing secret.
    NoSecret,
    /// Its signing secret.
    Secret(Secret),
}

/// Signing secrets by Slack connection, so a burst of events does not
/// queue on the database for a value that rarely changes.
#[derive(Default)]
pub struct SigningSecrets {
    entries: Mutex<HashMap<String, (Instant, Known)>>,
}

/// The connection's signing secret; `Err` with the answer to give when it
/// cannot take Slack's requests.
async fn signing_secret(state: &Arc<AppState>, name: &str) -> Result<Secret, Response> {
    let cached = state
        .sources
        .slack
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(name)
        .filter(|(at, _)| at.elapsed() < SECRET_TTL)
        .map(|(_, known)| known.clone());
    let known = match cached {
        Some(known) => known,
        None => {
            let conn = state.store.connection(name).await.map_err(|e| {
                tracing::error!(error = %e, connection = name, "cannot read the Slack connection");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database cannot be reached; Slack will send the request again",
                )
            })?;
            let known = match conn.filter(|c| c.kind == ConnectionKind::Slack) {
                None => Known::Unknown,
                Some(c) => match c.hook_secret.map(|s| s.resolve()) {
                    None => Known::NoSecret,
                    Some(Ok(secret)) => Known::Secret(secret),
                    Some(Err(m)) => {
                        tracing::error!(connection = name, "signing secret unavailable: {m}");
                        return Err(error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!(
                                "the signing secret of Slack connection `{name}` is unavailable on this server"
                            ),
                        ));
                    }
                },
            };
            state
                .sources
                .slack
                .entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_owned(), (Instant::now(), known.clone()));
            known
        }
    };
    match known {
        Known::Secret(secret) => Ok(secret),
        Known::Unknown => {
            state.metrics.rejected("unknown-source");
            Err(error(
                StatusCode::NOT_FOUND,
                format!(
                    "no Slack connection named `{name}`; create it with `pagehook connect slack {name} --token-env VAR --signing-secret-env VAR`"
                ),
            ))
        }
        Known::NoSecret => {
            state.metrics.rejected("signature");
            Err(error(
                StatusCode::UNAUTHORIZED,
                format!(
                    "Slack connection `{name}` has no signing secret, so no request can be verified; set it with `pagehook connect slack {name} ... --signing-secret-env VAR` (the Slack app's Basic Information, Signing Secret)"
                ),
            ))
        }
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
    let secret = match signing_secret(&state, &connection).await {
        Ok(s) => s,
        Err(answer) => return answer,
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
    let timestamp = text(&headers, "x-slack-request-timestamp");
    if let Err(e) = slack_events::verify_signature(
        secret.expose().as_bytes(),
        timestamp,
        text(&headers, "x-slack-signature"),
        &body,
        state.clock.now_secs(),
    ) {
        state.metrics.rejected("signature");
        tracing::warn!(%connection, "Slack request refused: {e}");
        return error(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let inbound = match slack_events::parse(
        &connection,
        text(&headers, header::CONTENT_TYPE.as_str()),
        timestamp.unwrap_or_default(),
        &body,
    ) {
        Ok(inbound) => inbound,
        Err(e) => {
            state.metrics.rejected("malformed");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let stored = match inbound {
        Inbound::UrlVerification { challenge } => {
            return Json(json!({ "challenge": challenge })).into_response();
        }
        Inbound::Ignored { what } => {
            tracing::debug!(%connection, "Slack {what} acknowledged and dropped");
            return StatusCode::OK.into_response();
        }
        Inbound::Store(stored) => stored,
    };
    let name = stored.name;
    let event = NewEvent {
        key: stored.key,
        source: connection.clone(),
        name: name.to_owned(),
        payload: stored.payload.to_string(),
        dispatchable: true,
    };
    match state.ingest.insert(event).await {
        Ok(inserted) => {
            state.metrics.received(&connection, inserted.duplicate);
            tracing::debug!(
                event = inserted.id,
                %connection,
                duplicate = inserted.duplicate,
                retry = text(&headers, "x-slack-retry-num").unwrap_or("0"),
                "Slack {name} stored"
            );
            if name == slack_events::SLASH_COMMAND {
                // Anything in the body would be shown to the user as the answer.
                StatusCode::OK.into_response()
            } else {
                Json(json!({ "ok": true, "id": inserted.id, "duplicate": inserted.duplicate }))
                    .into_response()
            }
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}
