//! `GET /api/doctor`: `pagehook doctor` over HTTP. Measures every
//! Confluence and Slack connection now (reads only, one attempt per
//! request, see [`crate::doctor`]) and answers the report, which the
//! console's overview then shows. The Pagehook admin's only: the report
//! names every connection, space and binding.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;

use super::error::ApiResult;
use super::require_admin;
use crate::doctor::Report;
use crate::server::AppState;
use crate::server::session::Caller;

/// Longest wait for one request to Confluence or Slack.
const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Which features work with each connection, measured now.
#[utoipa::path(get, path = "/doctor", tag = "doctor",
    responses((status = 200, description = "The report; `ok` is false when a feature a binding uses cannot work (`blocking` says which)", body = Report)))]
pub async fn check(State(state): State<Arc<AppState>>, caller: Caller) -> ApiResult<Json<Report>> {
    require_admin(&caller, "run the doctor")?;
    let timeout = state.config.enrichment_timeout().min(MAX_TIMEOUT);
    let report = crate::doctor::run(&state.store, timeout, Some(&state.metrics)).await?;
    state.doctor.set(report.clone());
    Ok(Json(report))
}
