//! `/api/deliveries`: the outbox, every attempt, and retrying dead letters.
//! A space admin lists, reads and retries only deliveries of events in
//! their spaces.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Params, PathParam};
use super::limit;
use crate::ops;
use crate::server::AppState;
use crate::server::session::Caller;
use crate::store::{AttemptRecord, DeliveryQuery, DeliveryRecord, DeliveryStatus};

/// `GET /api/deliveries` filters; all optional, combined with AND.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatus>)]
    pub status: Option<String>,
    /// Only deliveries to exactly this binding destination (`slack:acme/#eng`).
    pub destination: Option<String>,
    /// Only deliveries of this plugin.
    pub plugin: Option<String>,
    /// Only deliveries of this event.
    pub event: Option<i64>,
    /// Only deliveries older than this id: pass the last id of a page for the next.
    pub before: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 0)]
    pub limit: Option<usize>,
}

/// `POST /api/deliveries/retry-dead`: whose dead letters to retry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDeadBody {
    /// The binding destination, exactly as deliveries name it (`slack:acme/#eng`).
    #[schema(example = "slack:acme/#eng")]
    pub destination: String,
}

/// The answer to a retry.
#[derive(Serialize, ToSchema)]
pub struct Queued {
    /// The delivery, queued again.
    pub queued: i64,
}

/// The answer to retrying a destination's dead letters.
#[derive(Serialize, ToSchema)]
pub struct QueuedDead {
    /// The destination.
    pub destination: String,
    /// How many dead letters were queued again.
    pub queued: usize,
}

/// Deliveries, newest first, a page at a time; a space admin's are those of their spaces.
#[utoipa::path(get, path = "/deliveries", tag = "deliveries", params(DeliveryFilter),
    responses(
        (status = 200, description = "Deliveries", body = [DeliveryRecord]),
        (status = 400, description = "A filter that does not parse", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Params(q): Params<DeliveryFilter>,
) -> ApiResult<Json<Vec<DeliveryRecord>>> {
    let status = q
        .status
        .as_deref()
        .map(DeliveryStatus::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let query = DeliveryQuery {
        status,
        destination: q.destination,
        plugin: q.plugin,
        event_id: q.event,
        spaces: caller.principal.space_filter(),
        before: q.before,
        limit: limit(q.limit),
    };
    Ok(Json(state.store.search_deliveries(&query).await?))
}

/// Refuses a space admin a delivery of an event outside their spaces.
async fn require_delivery_space(state: &AppState, caller: &Caller, id: i64) -> ApiResult<()> {
    let Some(spaces) = caller.principal.space_filter() else {
        return Ok(());
    };
    // The newest delivery up to `id` among the caller's: `id` itself if it is theirs.
    let theirs = state
        .store
        .search_deliveries(&DeliveryQuery {
            spaces: Some(spaces),
            before: id.checked_add(1),
            limit: 1,
            ..DeliveryQuery::default()
        })
        .await?;
    if theirs.first().is_some_and(|d| d.id == id) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "delivery {id} is not of an event in a space you administer"
        )))
    }
}

/// Puts a dead (or dry-run) delivery back in the queue.
#[utoipa::path(post, path = "/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = i64, Path, description = "The delivery's id", example = 1)),
    responses(
        (status = 200, description = "Queued again", body = Queued),
        (status = 404, description = "No dead or dry-run delivery with that id", body = ErrorBody),
    ))]
pub async fn retry(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<Queued>> {
    require_delivery_space(&state, &caller, id).await?;
    ops::deliveries::retry(&state.store, &caller.actor(), id).await?;
    Ok(Json(Queued { queued: id }))
}

/// Puts every dead letter of one destination back in the queue (after the
/// destination was fixed); a space admin's, only those of their spaces.
#[utoipa::path(post, path = "/deliveries/retry-dead", tag = "deliveries", request_body = RetryDeadBody,
    responses((status = 200, description = "Queued again", body = QueuedDead)))]
pub async fn retry_dead(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<RetryDeadBody>,
) -> ApiResult<Json<QueuedDead>> {
    let spaces = caller.principal.space_filter();
    let queued = ops::deliveries::retry_dead(
        &state.store,
        &caller.actor(),
        &body.destination,
        spaces.as_deref(),
    )
    .await?;
    Ok(Json(QueuedDead {
        destination: body.destination,
        queued,
    }))
}

/// Every attempt of one delivery, oldest first.
#[utoipa::path(get, path = "/deliveries/{id}/attempts", tag = "deliveries",
    params(("id" = i64, Path, description = "The delivery's id", example = 1)),
    responses((status = 200, description = "Attempts", body = [AttemptRecord])))]
pub async fn attempts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<Vec<AttemptRecord>>> {
    require_delivery_space(&state, &caller, id).await?;
    Ok(Json(state.store.attempts(id).await?))
}
