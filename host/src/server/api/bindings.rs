//! `/api/bindings`: which plugin runs on which events, where its actions
//! may go and with which settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, Params, PathParam};
use crate::admin::{self, BindRequest, Bound};
use crate::server::AppState;
use crate::store::Binding;

/// `GET /api/bindings` filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BindingQuery {
    /// Only the bindings of this plugin.
    pub plugin: Option<String>,
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

/// The answer to removing a binding.
#[derive(Serialize, ToSchema)]
pub struct BindingRemoved {
    /// Its id.
    pub removed: i64,
}

/// Bindings, optionally of one plugin.
#[utoipa::path(get, path = "/bindings", tag = "bindings", params(BindingQuery),
    responses((status = 200, description = "Bindings", body = [Binding])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Params(q): Params<BindingQuery>,
) -> ApiResult<Json<Vec<Binding>>> {
    Ok(Json(state.store.bindings(q.plugin.as_deref()).await?))
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
    Body(body): Body<BindBody>,
) -> ApiResult<(StatusCode, Json<Bound>)> {
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
    let bound = admin::bind(&state.store, req).await?;
    Ok((StatusCode::CREATED, Json(bound)))
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
    PathParam(id): PathParam<i64>,
) -> ApiResult<Json<BindingRemoved>> {
    state.store.remove_binding(id).await?;
    Ok(Json(BindingRemoved { removed: id }))
}
