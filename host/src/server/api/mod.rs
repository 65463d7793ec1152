//! The admin HTTP API under `/api/`: the CLI's powers over HTTP, for
//! automation and the console. Every request needs `Authorization: Bearer
//! <token>` matching `server.admin-token` (compared in constant time);
//! answers are JSON, errors `{"error": "..."}` ([`error::ApiError`]).
//! Secrets are accepted (as `{"env": ...}`, `{"file": ...}` or
//! `{"value": ...}`) but never returned.
//!
//! Each resource is a module with its handlers; each handler carries its
//! `#[utoipa::path]`, and the router is built from those same handlers
//! ([`utoipa_axum::routes!`]), so the OpenAPI 3.1 document served without
//! auth at `GET /api/openapi.json` ([`openapi`]) lists exactly the routes
//! served.

mod bindings;
mod connections;
mod deliveries;
pub mod error;
mod events;
mod extract;
pub mod openapi;
mod plugins;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
pub use error::ApiError;

/// The API's routes, relative to `/api`, as one router with its document.
fn build() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(plugins::list, plugins::install))
        .routes(routes!(plugins::remove))
        .routes(routes!(plugins::enable))
        .routes(routes!(plugins::disable))
        .routes(routes!(plugins::reset))
        .routes(routes!(connections::list, connections::connect))
        .routes(routes!(connections::remove))
        .routes(routes!(connections::test))
        .routes(routes!(bindings::list, bindings::bind))
        .routes(routes!(bindings::remove))
        .routes(routes!(events::list))
        .routes(routes!(events::detail))
        .routes(routes!(events::audit))
        .routes(routes!(events::failures))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::retry))
        .routes(routes!(deliveries::attempts))
}

/// The router nested at `/api`.
pub(super) fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let (api, _) = build().split_for_parts();
    api.layer(middleware::from_fn_with_state(state, require_token))
        .route("/openapi.json", axum::routing::get(openapi::serve))
        .fallback(no_route)
        .layer(middleware::from_fn(extract::json_errors))
}

async fn no_route() -> ApiError {
    ApiError::NotFound("no such API route (GET /api/openapi.json lists them)".into())
}

async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(token) = &state.admin_token else {
        return ApiError::Unauthorized(
            "the admin API is disabled: set server.admin-token in the config".into(),
        )
        .into_response();
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
        ApiError::Unauthorized(
            "missing or wrong admin token (Authorization: Bearer <server.admin-token>)".into(),
        )
        .into_response()
    }
}

/// A listing's `limit`: 100 unless given, never above 10,000.
fn limit(given: Option<usize>) -> usize {
    given.unwrap_or(100).min(10_000)
}
