//! `/api/bindings`: which plugin runs on which events, where its actions
//! may go and with which settings, and a preview of what a binding would do.
//! A space admin sees, creates, removes and previews only bindings with
//! scope `space:KEY` for the spaces they administer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Params, PathParam};
use super::{require_scope, require_space};
use crate::ops;
use crate::ops::bindings::{BindRequest, Bound};
use crate::preview::Preview;
use crate::server::AppState;
use crate::server::session::Caller;
use crate::store::{Binding, Scope};

/// `GET /api/bindings` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BindingQuery {
    /// Only the bindings of this plugin.
    pub plugin: Option<String>,
    /// Only the bindings with scope `space:KEY` for this space.
    pub space: Option<String>,
}

/// `POST /api/bindings`: a binding to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindBody {
    /// The installed plugin to run.
    #[schema(example = "slack-poster")]
    pub plugin: String,
    /// `global` (the default), `space:KEY` or `page:ID`.
    #[serde(default = "global")]
    #[schema(
        default = "global",
        example = "space:ENG",
        pattern = "^(global|space:\\S+|page:[0-9]+)$"
    )]
    pub scope: String,
    /// Only events from this Confluence connection.
    pub source: Option<String>,
    /// Event kinds (e.g. `page-created`); empty: every kind the plugin handles.
    #[serde(default)]
    #[schema(example = json!(["page-created"]))]
    pub events: Vec<String>,
    /// Destinations its actions may use (e.g. `slack:#eng`, `slack:acme/#eng`, `teams:eng`).
    #[serde(default)]
    #[schema(example = json!(["slack:#eng"]))]
    pub to: Vec<String>,
    /// Settings for the plugin, by the names its manifest gives.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Record its deliveries, never send them.
    #[serde(default)]
    pub dry_run: bool,
    /// Do not announce the binding in the Slack channels it names.
    #[serde(default)]
    pub quiet: bool,
}

fn global() -> String {
    "global".into()
}

/// `POST /api/bindings/{id}/preview`: the stored event to run it on.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// A stored event's id (`GET /api/events`).
    #[schema(example = 1)]
    #[serde(deserialize_with = "super::extract::integer")]
    pub event_id: i64,
}

/// The answer to removing a binding.
#[derive(Serialize, ToSchema)]
pub struct BindingRemoved {
    /// Its id.
    pub removed: i64,
}

/// Bindings, optionally of one plugin or space; a space admin's are those of their spaces.
#[utoipa::path(get, path = "/bindings", tag = "bindings", params(BindingQuery),
    responses((status = 200, description = "Bindings", body = [Binding])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Params(q): Params<BindingQuery>,
) -> ApiResult<Json<Vec<Binding>>> {
    if let Some(space) = &q.space {
        require_space(&caller, space)?;
    }
    let admin = caller.principal.is_admin();
    let bindings = state
        .store
        .bindings(q.plugin.as_deref())
        .await?
        .into_iter()
        .filter(|b| match &b.scope {
            Scope::Space(key) => {
                q.space.as_ref().is_none_or(|s| s == key) && caller.principal.may_administer(key)
            }
            Scope::Global | Scope::Page(_) => admin && q.space.is_none(),
        })
        .collect();
    Ok(Json(bindings))
}

/// Binds a plugin, after checking it against the plugin and its grants.
#[utoipa::path(post, path = "/bindings", tag = "bindings", request_body = BindBody,
    responses(
        (status = 201, description = "Bound", body = Bound),
        (status = 400, description = "Refused (the message says why)", body = ErrorBody),
        (status = 404, description = "No such plugin, source or Slack workspace", body = ErrorBody),
        (status = 409, description = "Clashes with what exists", body = ErrorBody),
    ))]
pub async fn bind(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<BindBody>,
) -> ApiResult<(StatusCode, Json<Bound>)> {
    let scope: Scope = body.scope.parse().map_err(ApiError::BadRequest)?;
    require_scope(&caller, &scope)?;
    let req = BindRequest {
        plugin: body.plugin,
        scope: body.scope,
        source: body.source,
        events: body.events,
        to: body.to,
        settings: body.settings.into_iter().collect(),
        dry_run: body.dry_run,
        quiet: body.quiet,
    };
    let bound = ops::bindings::bind(&state.store, &caller.actor(), req).await?;
    Ok((StatusCode::CREATED, Json(bound)))
}

/// The binding `id`, if the caller may manage it.
async fn owned(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Binding> {
    let binding = state
        .store
        .binding(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no binding with id {id}")))?;
    require_scope(caller, &binding.scope)?;
    Ok(binding)
}

/// Removes a binding.
#[utoipa::path(delete, path = "/bindings/{id}", tag = "bindings",
    params(("id" = i64, Path, description = "The binding's id", example = 1)),
    responses(
        (status = 200, description = "Removed", body = BindingRemoved),
        (status = 404, description = "No such binding", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<BindingRemoved>> {
    owned(&state, &caller, id).await?;
    ops::bindings::unbind(&state.store, &caller.actor(), id).await?;
    Ok(Json(BindingRemoved { removed: id }))
}

/// Runs the binding's plugin on a stored event in the sandbox and shows
/// what it would do: each action, its verdict by the two-party rule, and the
/// exact request delivery would make. Nothing is written or sent.
#[utoipa::path(post, path = "/bindings/{id}/preview", tag = "bindings", request_body = PreviewBody,
    params(("id" = i64, Path, description = "The binding's id", example = 1)),
    responses(
        (status = 200, description = "What the binding would do (a failed plugin call is in `failure`)", body = Preview),
        (status = 400, description = "The event cannot be previewed, or the binding's settings no longer fit the plugin", body = ErrorBody),
        (status = 404, description = "No such binding, event or plugin", body = ErrorBody),
    ))]
pub async fn preview(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<i64>,
    Body(body): Body<PreviewBody>,
) -> ApiResult<Json<Preview>> {
    owned(&state, &caller, id).await?;
    if !caller.principal.is_admin() {
        let event = state
            .store
            .event(body.event_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no event with id {}", body.event_id)))?;
        super::events::require_event_space(&caller, &event)?;
    }
    let preview = crate::preview::preview(&state.store, &state.runtime, id, body.event_id).await?;
    Ok(Json(preview))
}
