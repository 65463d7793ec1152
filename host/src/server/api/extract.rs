//! Axum's extractors, answering their rejections as [`ApiError`]s: a body
//! that is not JSON, a path id that is not a number or an unknown query
//! parameter gets `{"error": "..."}` with 400, 413, 415 or 422, never
//! axum's plain text. [`json_errors`] is the net under them for answers no
//! handler makes (an unknown route, a method the route does not take).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Body(v))
    }
}

/// A `multipart/form-data` request body.
pub struct Form(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let form = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|r| {
                ApiError::from(r).with_hint(
                    "send the plugin as multipart/form-data with parts `manifest` and `component`",
                )
            })?;
        Ok(Form(form))
    }
}

/// Path parameters.
pub struct PathParam<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParam(v))
    }
}

/// Query parameters.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Params(v))
    }
}

/// Deserializes an integer as JSON Schema counts them: `7` or `7.0` (a
/// number with no fraction is an integer there, and clients may send one).
pub fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    match serde_json::Number::deserialize(d)? {
        n if n.is_i64() => Ok(n.as_i64().unwrap_or_default()),
        n => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
                Ok(f as i64)
            }
            _ => Err(D::Error::custom(format!("expected an integer id, got {n}"))),
        },
    }
}

/// Turns an error answer that is not JSON into `{"error": "..."}` with the
/// same status: the 404 of an unknown route, the 405 of a method a route
/// does not take (its `Allow` header kept), a body limit's 413.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status.as_u16() {
        404 => "no such API route (GET /api/openapi.json lists them)".to_owned(),
        405 => "this API route does not take that method (see the Allow header)".to_owned(),
        413 => "the request body is too large for this route".to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_owned(),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let error = if status.is_server_error() {
        ApiError::Internal(format!("{status} answered without a JSON body"))
    } else {
        ApiError::BadRequest(message)
    };
    let mut fixed = error.into_response();
    *fixed.status_mut() = status;
    for (name, value) in parts.headers.iter() {
        fixed.headers_mut().append(name.clone(), value.clone());
    }
    fixed
}
