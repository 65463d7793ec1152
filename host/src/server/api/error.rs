//! The admin API's one error type: every refusal and failure an API handler
//! can answer, each variant with its status, all answered as
//! `{"error": "..."}`.
//!
//! Pagehook's own failures ([`ApiError::Internal`], [`ApiError::Unavailable`])
//! are logged with their detail and answered with a fixed sentence: no file
//! path, host or driver message ever reaches a client. Axum's extractor
//! rejections (malformed JSON, a path or query that does not parse) come
//! through [`super::extract`] into this type, so they too answer JSON.

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;

use crate::ops::AdminError;
use crate::server::session::Refusal;
use crate::store::StoreError;

/// What a client is told when Pagehook itself failed.
pub const INTERNAL_MESSAGE: &str =
    "Pagehook could not complete the request (the log has the details)";
/// What a client is told when the database cannot be reached.
pub const UNAVAILABLE_MESSAGE: &str =
    "the database cannot be reached; try again shortly (the log has the details)";

/// Why an API request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or wrong ones.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: it names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409: it clashes with what exists.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than this route takes.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not of the type the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: the body is well-formed JSON of the wrong shape.
    #[error("{0}")]
    Unprocessable(String),
    /// 502: a service Pagehook asked for the caller (Slack, Confluence)
    /// refused or failed; the message says which and why.
    #[error("{0}")]
    Upstream(String),
    /// 503: the database cannot be reached. The detail is logged, never answered.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// 500: Pagehook itself failed. The detail is logged, never answered.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error answer.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words the caller can act on.
    pub error: String,
}

impl ApiError {
    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The same refusal with a hint after its message (internal errors unchanged).
    pub fn with_hint(self, hint: &str) -> ApiError {
        let add = |m: String| format!("{m}: {hint}");
        match self {
            ApiError::BadRequest(m) => ApiError::BadRequest(add(m)),
            ApiError::PayloadTooLarge(m) => ApiError::PayloadTooLarge(add(m)),
            ApiError::UnsupportedMediaType(m) => ApiError::UnsupportedMediaType(add(m)),
            ApiError::Unprocessable(m) => ApiError::Unprocessable(add(m)),
            other => other,
        }
    }

    /// An extractor's rejection, with axum's message and status (400, 413,
    /// 415 or 422); anything else it could say is Pagehook's own bug.
    fn rejected(status: StatusCode, message: String) -> ApiError {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(message),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(message),
            s if s.is_client_error() => ApiError::BadRequest(message),
            _ => ApiError::Internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "admin API request failed");
                INTERNAL_MESSAGE.to_owned()
            }
            ApiError::Unavailable(detail) => {
                tracing::error!(error = %detail, "admin API request failed: database unavailable");
                UNAVAILABLE_MESSAGE.to_owned()
            }
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Unprocessable(m)
            | ApiError::Upstream(m) => m,
        };
        (status, Json(ErrorBody { error: message })).into_response()
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(m) => ApiError::BadRequest(m),
            AdminError::NotFound(m) => ApiError::NotFound(m),
            AdminError::Conflict(m) => ApiError::Conflict(m),
            AdminError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            e @ StoreError::Database { .. } => ApiError::Unavailable(e.to_string()),
            e @ StoreError::Corrupt { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let message = match &r {
            Refusal::Disabled => {
                "the admin API is disabled: set server.admin-token in the config".to_owned()
            }
            Refusal::Unauthenticated => "missing or wrong admin token (Authorization: Bearer <server.admin-token>) and no console session".to_owned(),
            Refusal::Csrf => "missing or wrong CSRF token: changes made with a console session must send the X-CSRF-Token header".to_owned(),
            Refusal::Unavailable => {
                "sessions cannot be read right now (the log has the details); try again".to_owned()
            }
        };
        match r {
            Refusal::Disabled | Refusal::Unauthenticated => ApiError::Unauthorized(message),
            Refusal::Csrf => ApiError::Forbidden(message),
            Refusal::Unavailable => ApiError::Unavailable(message),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let message = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                "send the body as JSON with `Content-Type: application/json`".to_owned()
            }
            // serde's text as a sentence, without positions or values.
            _ => crate::server::form_errors::api_sentence(&r.body_text()),
        };
        ApiError::rejected(r.status(), message)
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::rejected(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::rejected(r.status(), r.body_text())
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(r: MultipartRejection) -> Self {
        ApiError::rejected(r.status(), r.body_text())
    }
}

impl From<MultipartError> for ApiError {
    fn from(e: MultipartError) -> Self {
        ApiError::rejected(e.status(), e.body_text())
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_failures_answer_a_fixed_sentence() {
        let e = ApiError::from(AdminError::Internal(
            "cannot copy the plugin to /var/lib/pagehook/plugins/x: Permission denied".into(),
        ));
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, INTERNAL_MESSAGE);

        let e = ApiError::from(StoreError::Database {
            database: "postgres://pagehook@db.internal/pagehook".into(),
            message: "connection refused".into(),
        });
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(e.into_response().into_body(), 4096)
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("db.internal"));
    }
}
