//! Why a webhook (Confluence's, Slack's) was refused, and the answer each
//! refusal gets: one place for the status codes the hook handlers used to
//! set by hand, and for the reason counted in
//! `pagehook_webhooks_rejected_total`.
//!
//! Messages are written for the sender's admin and never carry a secret, a
//! token or a database error's text (those are logged where they happen).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error;

/// A refused webhook.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No connection of the kind by that name (404), or a Confluence
    /// connection that cannot take webhooks (no secret).
    #[error("{0}")]
    UnknownConnection(String),
    /// The connection has no secret to verify requests with (401).
    #[error("{0}")]
    NoSecret(String),
    /// The body is over `server.body-limit-bytes` (413).
    #[error("body larger than the limit of {0} bytes (server.body-limit-bytes)")]
    TooLarge(usize),
    /// The body could not be read (the status axum gave).
    #[error("{message}")]
    Unreadable { status: StatusCode, message: String },
    /// The signature (or its timestamp) does not verify (401).
    #[error("{0}")]
    Signature(String),
    /// The body is not one Pagehook understands (400).
    #[error("{0}")]
    Malformed(String),
    /// Pagehook cannot take it now (503): the database or a secret cannot be
    /// read; the sender retries.
    #[error("{0}")]
    Unavailable(String),
    /// The event could not be stored (503); the sender retries.
    #[error(transparent)]
    NotStored(#[from] crate::store::ingest::IngestError),
}

impl HookError {
    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            HookError::UnknownConnection(_) => StatusCode::NOT_FOUND,
            HookError::NoSecret(_) | HookError::Signature(_) => StatusCode::UNAUTHORIZED,
            HookError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HookError::Unreadable { status, .. } => *status,
            HookError::Malformed(_) => StatusCode::BAD_REQUEST,
            HookError::Unavailable(_) | HookError::NotStored(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `reason` label it counts under in the rejected-webhooks metric;
    /// `None` for what is not the sender's doing (503).
    pub fn metric_reason(&self) -> Option<&'static str> {
        match self {
            HookError::UnknownConnection(_) => Some("unknown-source"),
            HookError::NoSecret(_) | HookError::Signature(_) => Some("signature"),
            HookError::TooLarge(_) => Some("too-large"),
            HookError::Unreadable { .. } | HookError::Malformed(_) => Some("malformed"),
            HookError::Unavailable(_) | HookError::NotStored(_) => None,
        }
    }
}

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        error(self.status(), self.to_string())
    }
}
