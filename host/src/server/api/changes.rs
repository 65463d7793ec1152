//! `/api/changes`: the change log, who changed what through the API or the
//! console, newest first. The Pagehook admin's.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiResult;
use super::extract::Params;
use super::{limit, require_admin};
use crate::server::AppState;
use crate::server::session::Caller;
use crate::store::{ChangeQuery, ChangeRecord};

/// `GET /api/changes` paging.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangePage {
    /// Only changes older than this id: pass the last id of a page for the next.
    pub before: Option<i64>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 0)]
    pub limit: Option<usize>,
}

/// The change log, newest first.
#[utoipa::path(get, path = "/changes", tag = "changes", params(ChangePage),
    responses((status = 200, description = "Changes", body = [ChangeRecord])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Params(q): Params<ChangePage>,
) -> ApiResult<Json<Vec<ChangeRecord>>> {
    require_admin(&caller, "read the change log")?;
    let query = ChangeQuery {
        before: q.before,
        limit: limit(q.limit),
    };
    Ok(Json(state.store.changes(&query).await?))
}
