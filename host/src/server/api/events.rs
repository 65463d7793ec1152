//! `/api/events`, `/api/audit`, `/api/failures`: what Confluence sent, what
//! the plugins asked for and the verdicts, and the plugin calls that failed.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Params, PathParam};
use super::limit;
use crate::server::AppState;
use crate::store::{AuditRecord, DeliveryRecord, EventRecord, EventStatus, FailureRecord};

/// `GET /api/events` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events in this status.
    #[param(value_type = Option<EventStatus>)]
    pub status: Option<String>,
    /// At most this many, newest first (default 100, at most 10000).
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

/// Events, newest first.
#[utoipa::path(get, path = "/events", tag = "events", params(EventQuery),
    responses(
        (status = 200, description = "Events", body = [EventRecord]),
        (status = 400, description = "A filter that does not parse", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Params(q): Params<EventQuery>,
) -> ApiResult<Json<Vec<EventRecord>>> {
    let status = q
        .status
        .as_deref()
        .map(EventStatus::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    Ok(Json(state.store.events(status, limit(q.limit)).await?))
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
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<EventDetail>> {
    let s = &state.store;
    let event = s
        .event(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
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
    Params(q): Params<AuditQuery>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
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
    Params(q): Params<FailureQuery>,
) -> ApiResult<Json<Vec<FailureRecord>>> {
    Ok(Json(
        state
            .store
            .failures(q.plugin.as_deref(), limit(q.limit))
            .await?,
    ))
}
