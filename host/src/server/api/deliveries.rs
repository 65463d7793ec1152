//! `/api/deliveries`: the outbox, every attempt, and retrying dead letters.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Params, PathParam};
use super::limit;
use crate::server::AppState;
use crate::store::{AttemptRecord, DeliveryRecord, DeliveryStatus};

/// `GET /api/deliveries` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatus>)]
    pub status: Option<String>,
    /// At most this many, newest first (default 100, at most 10000).
    #[param(minimum = 0)]
    pub limit: Option<usize>,
}

/// The answer to a retry.
#[derive(Serialize, ToSchema)]
pub struct Queued {
    /// The delivery, queued again.
    pub queued: i64,
}

/// Deliveries, newest first.
#[utoipa::path(get, path = "/deliveries", tag = "deliveries", params(DeliveryQuery),
    responses(
        (status = 200, description = "Deliveries", body = [DeliveryRecord]),
        (status = 400, description = "A filter that does not parse", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Params(q): Params<DeliveryQuery>,
) -> ApiResult<Json<Vec<DeliveryRecord>>> {
    let status = q
        .status
        .as_deref()
        .map(DeliveryStatus::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    Ok(Json(state.store.deliveries(status, limit(q.limit)).await?))
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
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<Queued>> {
    state.store.retry_delivery(id).await?;
    Ok(Json(Queued { queued: id }))
}

/// Every attempt of one delivery, oldest first.
#[utoipa::path(get, path = "/deliveries/{id}/attempts", tag = "deliveries",
    params(("id" = i64, Path, description = "The delivery's id", example = 1)),
    responses((status = 200, description = "Attempts", body = [AttemptRecord])))]
pub async fn attempts(
    State(state): State<Arc<AppState>>,
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<Vec<AttemptRecord>>> {
    Ok(Json(state.store.attempts(id).await?))
}
