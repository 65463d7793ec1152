//! `/api/events`, `/api/audit`, `/api/failures`: what Confluence sent, what
//! the plugins asked for and the verdicts, and the plugin calls that failed.
//! A space admin lists and reads only events of their spaces; the audit log
//! and failures lists are the Pagehook admin's.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Params, PathParam};
use super::{limit, require_admin, require_space};
use crate::server::AppState;
use crate::server::session::Caller;
use crate::store::{
    AuditRecord, DeliveryRecord, EventQuery, EventRecord, EventStatus, EventSummary, FailureRecord,
};

/// `GET /api/events` filters; all optional, combined with AND.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Only events about content in this space.
    #[param(example = "ENG")]
    pub space: Option<String>,
    /// Only events about this page, blog post or comment (its Confluence id).
    pub page: Option<String>,
    /// Only this kind of event: `page-created` (or Confluence's `page_created`).
    pub kind: Option<String>,
    /// Only events in this status.
    #[param(value_type = Option<EventStatus>)]
    pub status: Option<String>,
    /// Only events older than this id: pass the last id of a page for the next.
    pub before: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 0)]
    pub limit: Option<usize>,
}

/// One event with everything dispatch did with it.
#[derive(Serialize, ToSchema)]
pub struct EventDetail {
    /// The event, raw and enriched.
    pub event: EventRecord,
    /// The deliveries it produced.
    pub deliveries: Vec<DeliveryRecord>,
    /// The verdict on every action its plugins returned.
    pub audit: Vec<AuditRecord>,
    /// The plugin calls on it that failed.
    pub failures: Vec<FailureRecord>,
}

/// Refuses a space admin an event outside their spaces (or one whose space
/// is not known yet: it has not been dispatched).
pub(super) fn require_event_space(caller: &Caller, event: &EventRecord) -> ApiResult<()> {
    if caller.principal.is_admin() {
        return Ok(());
    }
    match event.event.as_ref().and_then(|e| e.content.as_ref()) {
        Some(content) => require_space(caller, &content.space_key),
        None => Err(ApiError::Forbidden(format!(
            "event {} is not in a space you administer (its space is known once it is dispatched)",
            event.id
        ))),
    }
}

/// Events, newest first, a page at a time; a space admin's are those of their spaces.
#[utoipa::path(get, path = "/events", tag = "events", params(EventFilter),
    responses(
        (status = 200, description = "Events", body = [EventSummary]),
        (status = 400, description = "A filter that does not parse", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Params(q): Params<EventFilter>,
) -> ApiResult<Json<Vec<EventSummary>>> {
    if let Some(space) = &q.space {
        require_space(&caller, space)?;
    }
    let status = q
        .status
        .as_deref()
        .map(EventStatus::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let query = EventQuery {
        space: q.space,
        spaces: caller.principal.space_filter(),
        content_id: q.page,
        name: q.kind.map(|k| k.replace('-', "_")),
        status,
        before: q.before,
        limit: limit(q.limit),
    };
    Ok(Json(state.store.search_events(&query).await?))
}

/// One event: raw and enriched, its deliveries, audit verdicts and failed calls.
#[utoipa::path(get, path = "/events/{id}", tag = "events",
    params(("id" = i64, Path, description = "The event's id", example = 1)),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        (status = 404, description = "No such event", body = ErrorBody),
    ))]
pub async fn detail(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<EventDetail>> {
    let s = &state.store;
    let event = s
        .event(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
    require_event_space(&caller, &event)?;
    Ok(Json(EventDetail {
        event,
        deliveries: s.event_deliveries(id).await?,
        audit: s.audit(Some(id), 10_000).await?,
        failures: s.event_failures(id).await?,
    }))
}

/// `GET /api/audit` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only the verdicts on this event's actions.
    pub event: Option<i64>,
    /// At most this many, newest first (default 100, at most 10000).
    #[param(minimum = 0)]
    pub limit: Option<usize>,
}

/// The audit log: every action a plugin returned and its verdict, newest first.
#[utoipa::path(get, path = "/audit", tag = "events", params(AuditQuery),
    responses((status = 200, description = "Audit records", body = [AuditRecord])))]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Params(q): Params<AuditQuery>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    require_admin(
        &caller,
        "read the whole audit log (an event's verdicts are in GET /api/events/{id})",
    )?;
    Ok(Json(state.store.audit(q.event, limit(q.limit)).await?))
}

/// `GET /api/failures` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FailureQuery {
    /// Only this plugin's failures.
    pub plugin: Option<String>,
    /// At most this many, newest first (default 100, at most 10000).
    #[param(minimum = 0)]
    pub limit: Option<usize>,
}

/// Failed plugin calls, newest first.
#[utoipa::path(get, path = "/failures", tag = "events", params(FailureQuery),
    responses((status = 200, description = "Failed calls", body = [FailureRecord])))]
pub async fn failures(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Params(q): Params<FailureQuery>,
) -> ApiResult<Json<Vec<FailureRecord>>> {
    require_admin(&caller, "read plugin failures")?;
    Ok(Json(
        state
            .store
            .failures(q.plugin.as_deref(), limit(q.limit))
            .await?,
    ))
}
