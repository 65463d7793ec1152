//! `/api/links`: which Slack users linked themselves to which Confluence
//! users (`/confluence link`), and removing a link. The Pagehook admin's:
//! links say who people are, so space admins see none.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;

use super::error::{ApiResult, ErrorBody};
use super::extract::PathParam;
use super::require_admin;
use crate::server::AppState;
use crate::server::session::Caller;
use crate::store::UserLink;

/// Every link, by Slack connection and user.
#[utoipa::path(get, path = "/links", tag = "people",
    responses((status = 200, description = "Links between Slack users and Confluence users", body = [UserLink])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Vec<UserLink>>> {
    require_admin(&caller, "list people's links")?;
    Ok(Json(state.store.user_links().await?))
}

/// Removes a Slack user's link: their chat lookups fall back to their
/// email, and the change log records who removed it.
#[utoipa::path(delete, path = "/links/{slack_connection}/{slack_user}", tag = "people",
    params(
        ("slack_connection" = String, Path, description = "The Slack connection", example = "acme"),
        ("slack_user" = String, Path, description = "Slack's id of the user", example = "U0ADA00001"),
    ),
    responses(
        (status = 200, description = "The link that was removed", body = UserLink),
        (status = 404, description = "That Slack user is not linked", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam((slack_connection, slack_user)): PathParam<(String, String)>,
) -> ApiResult<Json<UserLink>> {
    require_admin(&caller, "remove people's links")?;
    let link = crate::self_link::remove(
        &state.store,
        &slack_connection,
        &slack_user,
        &caller.actor(),
    )
    .await?;
    Ok(Json(link))
}
