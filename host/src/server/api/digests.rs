//! `/api/digests`, `/api/bindings/{id}/digest`, `/api/events/{id}/held`:
//! a binding's digest settings (on or off, threshold, window) and the
//! bursts it is collecting, and where an event was held. The same
//! operation as `pagehook digest` ([`crate::ops::digests`]); a space admin
//! reads and changes only bindings of their spaces.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, PathParam};
use super::require_scope;
use crate::ops::digests::{self, BindingDigest, DigestChange};
use crate::server::AppState;
use crate::server::session::Caller;
use crate::store::{DigestSettings, HeldEvent};

/// Every binding's digest settings and the bursts it is collecting (a
/// space admin's: the bindings of their spaces).
#[utoipa::path(get, path = "/digests", tag = "bindings",
    responses((status = 200, description = "Digest settings and bursts, by binding", body = [BindingDigest])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Vec<BindingDigest>>> {
    let mine: Vec<i64> = state
        .store
        .bindings(None)
        .await?
        .into_iter()
        .filter(|b| require_scope(&caller, &b.scope).is_ok())
        .map(|b| b.id)
        .collect();
    let all = digests::list(&state.store, None).await?;
    Ok(Json(
        all.into_iter()
            .filter(|d| mine.contains(&d.binding_id))
            .collect(),
    ))
}

/// One binding's digest settings and the bursts it is collecting.
#[utoipa::path(get, path = "/bindings/{id}/digest", tag = "bindings",
    params(("id" = i64, Path, description = "The binding's id", example = 1)),
    responses(
        (status = 200, description = "Its digest settings and bursts", body = BindingDigest),
        (status = 404, description = "No such binding", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<BindingDigest>> {
    owned(&state, &caller, id).await?;
    let mut one = digests::list(&state.store, Some(id)).await?;
    Ok(Json(one.remove(0)))
}

/// Changes a binding's digest settings: each field given replaces the
/// current value (`defaults: true` starts from the defaults). A value out
/// of range is refused and nothing changes.
#[utoipa::path(put, path = "/bindings/{id}/digest", tag = "bindings", request_body = DigestChange,
    params(("id" = i64, Path, description = "The binding's id", example = 1)),
    responses(
        (status = 200, description = "The settings as they now are", body = DigestSettings),
        (status = 400, description = "A value out of range", body = ErrorBody),
        (status = 404, description = "No such binding", body = ErrorBody),
    ))]
pub async fn change(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
    Body(change): Body<DigestChange>,
) -> ApiResult<Json<DigestSettings>> {
    owned(&state, &caller, id).await?;
    Ok(Json(
        digests::set(&state.store, &caller.actor(), id, &change).await?,
    ))
}

/// Where an event was held for a digest, one row per binding that held
/// it: when, and when it was released with which event (a digest's
/// deliveries hang off its last event). Empty when no binding held it.
#[utoipa::path(get, path = "/events/{id}/held", tag = "events",
    params(("id" = i64, Path, description = "The event's id", example = 1)),
    responses(
        (status = 200, description = "Where it was held", body = [HeldEvent]),
        (status = 404, description = "No such event", body = ErrorBody),
    ))]
pub async fn held(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<Vec<HeldEvent>>> {
    let event = state
        .store
        .event(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
    super::events::require_event_space(&caller, &event)?;
    Ok(Json(state.store.event_held(id).await?))
}

/// The binding `id`, if the caller may manage it.
async fn owned(state: &AppState, caller: &Caller, id: i64) -> ApiResult<()> {
    let binding = state
        .store
        .binding(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no binding with id {id}")))?;
    require_scope(caller, &binding.scope)
}
