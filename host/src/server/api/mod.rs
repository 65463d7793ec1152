//! The admin HTTP API under `/api/`: the CLI's powers over HTTP, for
//! automation and the console. Answers are JSON, errors `{"error": "..."}`
//! ([`error::ApiError`]). Secrets are accepted (as `{"env": ...}`,
//! `{"file": ...}` or `{"value": ...}`) but never returned.
//!
//! Every route but the document needs a [`Caller`]: the admin token
//! (`Authorization: Bearer`), or a console session's cookie with its CSRF
//! token on changes. The Pagehook admin may do everything. A Confluence
//! space admin may read plugins and connections, and bindings, events and
//! deliveries of the spaces they administer, bind and unbind with scope
//! `space:KEY` there, preview those bindings and retry those deliveries;
//! anything else is a 403, and their listings are restricted to their
//! spaces. Every change that succeeds is recorded in the change log
//! (`GET /api/changes`) with who made it.
//!
//! Each resource is a module with its handlers; each handler carries its
//! `#[utoipa::path]`, and the router is built from those same handlers
//! ([`utoipa_axum::routes!`]), so the OpenAPI 3.1 document served without
//! auth at `GET /api/openapi.json` ([`openapi`]) lists exactly the routes
//! served.

mod bindings;
mod changes;
mod connections;
mod deliveries;
mod digests;
mod doctor;
pub mod error;
mod events;
mod extract;
mod links;
pub mod openapi;
mod plugins;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::session::{Caller, Principal};
use crate::store::Scope;
pub use error::ApiError;
use error::ApiResult;

/// Largest plugin upload (manifest and component): Python components are
/// near 20 MB.
pub const UPLOAD_LIMIT: usize = 32 * 1024 * 1024;

/// The API's routes, relative to `/api`, as one router with its document.
fn build() -> OpenApiRouter<Arc<AppState>> {
    let upload = OpenApiRouter::new()
        .routes(routes!(plugins::upload))
        .layer(DefaultBodyLimit::max(UPLOAD_LIMIT));
    OpenApiRouter::new()
        .routes(routes!(openapi::serve))
        .routes(routes!(plugins::list, plugins::install))
        .routes(routes!(plugins::remove))
        .routes(routes!(plugins::enable))
        .routes(routes!(plugins::disable))
        .routes(routes!(plugins::reset))
        .routes(routes!(plugins::grants))
        .routes(routes!(plugins::grant_limits))
        .merge(upload)
        .routes(routes!(connections::list, connections::connect))
        .routes(routes!(connections::remove, connections::update))
        .routes(routes!(connections::test))
        .routes(routes!(connections::test_card))
        .routes(routes!(connections::channels))
        .routes(routes!(connections::spaces))
        .routes(routes!(connections::pages))
        .routes(routes!(bindings::list, bindings::bind))
        .routes(routes!(bindings::remove))
        .routes(routes!(bindings::preview))
        .routes(routes!(digests::list))
        .routes(routes!(digests::show, digests::change))
        .routes(routes!(digests::held))
        .routes(routes!(events::list))
        .routes(routes!(events::detail))
        .routes(routes!(events::audit))
        .routes(routes!(events::failures))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::retry))
        .routes(routes!(deliveries::retry_dead))
        .routes(routes!(deliveries::attempts))
        .routes(routes!(changes::list))
        .routes(routes!(links::list))
        .routes(routes!(links::remove))
        .routes(routes!(doctor::check))
}

/// The router nested at `/api`.
pub(super) fn routes() -> Router<Arc<AppState>> {
    let (api, _) = build().split_for_parts();
    api.fallback(no_route)
        .layer(middleware::from_fn(extract::json_errors))
}

async fn no_route() -> ApiError {
    ApiError::NotFound("no such API route (GET /api/openapi.json lists them)".into())
}

/// Refuses anyone but the Pagehook admin; `what` says what they tried.
fn require_admin(caller: &Caller, what: &str) -> ApiResult<()> {
    if caller.principal.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "only a Pagehook admin may {what}"
        )))
    }
}

/// Refuses a space admin a space they do not administer.
fn require_space(caller: &Caller, space: &str) -> ApiResult<()> {
    if caller.principal.may_administer(space) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "you do not administer space {space} (yours: {})",
            your_spaces(&caller.principal)
        )))
    }
}

/// Refuses a space admin a binding scope outside their spaces: global and
/// page bindings are the Pagehook admin's.
fn require_scope(caller: &Caller, scope: &Scope) -> ApiResult<()> {
    match scope {
        Scope::Space(key) => require_space(caller, key),
        Scope::Global | Scope::Page(_) => require_admin(
            caller,
            "manage global and page bindings; bind with scope space:KEY for a space you administer",
        ),
    }
}

fn your_spaces(principal: &Principal) -> String {
    match principal.space_filter() {
        Some(spaces) if spaces.is_empty() => "none".into(),
        Some(spaces) => spaces.join(", "),
        None => "all".into(),
    }
}

/// A listing's `limit`: 100 unless given, never above 10,000.
fn limit(given: Option<usize>) -> usize {
    given.unwrap_or(100).min(10_000)
}
