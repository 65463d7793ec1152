//! `/api/plugins`: install (from a directory on the server), list, enable,
//! disable, reset the breaker, remove.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, PathParam};
use crate::admin;
use crate::server::AppState;
use crate::store::PluginRecord;

/// `POST /api/plugins`: what to install.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallBody {
    /// A plugin directory on the server (plugin.toml + component).
    #[schema(value_type = String, example = "/opt/pagehook/plugins/slack-poster")]
    pub dir: PathBuf,
    /// Action kinds to grant; every kind the manifest declares must be granted.
    #[serde(default)]
    #[schema(example = json!(["post-slack"]))]
    pub grants: Vec<String>,
}

/// The answer to removing a plugin.
#[derive(Serialize, ToSchema)]
pub struct PluginRemoved {
    /// The plugin's name.
    pub removed: String,
    /// How many of its bindings went with it.
    pub bindings_removed: usize,
}

/// Every installed plugin.
#[utoipa::path(get, path = "/plugins", tag = "plugins",
    responses((status = 200, description = "Installed plugins", body = [PluginRecord])))]
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<PluginRecord>>> {
    Ok(Json(state.store.plugins().await?))
}

/// Installs or upgrades the plugin in a directory on the server.
#[utoipa::path(post, path = "/plugins", tag = "plugins", request_body = InstallBody,
    responses(
        (status = 201, description = "Installed", body = PluginRecord),
        (status = 400, description = "No plugin there, or it is refused (the message says why)", body = ErrorBody),
    ))]
pub async fn install(
    State(state): State<Arc<AppState>>,
    Body(body): Body<InstallBody>,
) -> ApiResult<(StatusCode, Json<PluginRecord>)> {
    if !body.dir.is_dir() {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a directory on the Pagehook server; give a plugin directory (plugin.toml + component), or upload the files with POST /api/plugins/upload",
            body.dir.display()
        )));
    }
    let record = admin::install_plugin(
        &state.store,
        &state.runtime,
        &state.config,
        &body.dir,
        &body.grants,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Removes a plugin and its bindings.
#[utoipa::path(delete, path = "/plugins/{name}", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name", example = "slack-poster")),
    responses(
        (status = 200, description = "Removed", body = PluginRemoved),
        (status = 404, description = "No such plugin", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<PluginRemoved>> {
    let bindings_removed = state.store.remove_plugin(&name).await?;
    Ok(Json(PluginRemoved {
        removed: name,
        bindings_removed,
    }))
}

/// Lets a disabled plugin run again.
#[utoipa::path(post, path = "/plugins/{name}/enable", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name", example = "slack-poster")),
    responses(
        (status = 200, description = "Enabled", body = PluginRecord),
        (status = 404, description = "No such plugin", body = ErrorBody),
    ))]
pub async fn enable(
    State(state): State<Arc<AppState>>,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<PluginRecord>> {
    state.store.set_plugin_enabled(&name, true).await?;
    Ok(Json(state.store.require_plugin(&name).await?))
}

/// Stops calling a plugin; its bindings stay.
#[utoipa::path(post, path = "/plugins/{name}/disable", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name", example = "slack-poster")),
    responses(
        (status = 200, description = "Disabled", body = PluginRecord),
        (status = 404, description = "No such plugin", body = ErrorBody),
    ))]
pub async fn disable(
    State(state): State<Arc<AppState>>,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<PluginRecord>> {
    state.store.set_plugin_enabled(&name, false).await?;
    Ok(Json(state.store.require_plugin(&name).await?))
}

/// Closes a plugin's failure breaker.
#[utoipa::path(post, path = "/plugins/{name}/reset", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name", example = "slack-poster")),
    responses(
        (status = 200, description = "Breaker closed", body = PluginRecord),
        (status = 404, description = "No such plugin", body = ErrorBody),
    ))]
pub async fn reset(
    State(state): State<Arc<AppState>>,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<PluginRecord>> {
    state.store.reset_breaker(&name).await?;
    Ok(Json(state.store.require_plugin(&name).await?))
}
