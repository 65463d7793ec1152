//! `/api/plugins`: install (from a directory on the server, or uploaded),
//! list, grant, enable, disable, reset the breaker, remove. Listing is open
//! to every caller; the rest is the Pagehook admin's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Form, PathParam};
use super::require_admin;
use crate::manifest::Manifest;
use crate::ops;
use crate::ops::plugins::{Install, Installed};
use crate::plugin_trust::signature::SignedFiles;
use crate::server::AppState;
use crate::server::session::Caller;
use crate::store::PluginRecord;

/// `POST /api/plugins`: what to install.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallBody {
    /// A plugin directory on the server (plugin.toml + component).
    #[schema(value_type = String, example = "/opt/pagehook/plugins/slack-poster")]
    pub dir: PathBuf,
    /// Action kinds to grant: any of those the manifest declares.
    /// An upgrade given none keeps the grants it has (those the new version still declares).
    #[serde(default)]
    #[schema(example = json!(["post-slack"]))]
    pub grants: Vec<String>,
    /// Install a lower version than the installed one.
    #[serde(default)]
    pub allow_downgrade: bool,
    /// Grant an upgrade the limits its manifest requests (otherwise a larger
    /// request runs at the limits granted before).
    #[serde(default)]
    pub grant_limits: bool,
}

/// `POST /api/plugins/upload`: a plugin's files, as `multipart/form-data`.
#[derive(ToSchema)]
#[allow(dead_code)] // The document's description of the multipart parts.
pub struct UploadForm {
    /// The plugin's `plugin.toml`.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    manifest: String,
    /// The WebAssembly component the manifest names.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    component: String,
    /// An action kind to grant (repeat the part for several); an upgrade
    /// sent without any keeps the grants it has.
    grant: Option<Vec<String>>,
    /// The signed statement (`plugin.statement`), when the plugin is signed.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    statement: Option<String>,
    /// Its minisign signature (`plugin.statement.minisig`).
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    signature: Option<String>,
    /// `true`: install a lower version than the installed one.
    allow_downgrade: Option<bool>,
    /// `true`: grant an upgrade the limits its manifest requests.
    grant_limits: Option<bool>,
}

/// `PUT /api/plugins/{name}/grants`: the action kinds the plugin may use.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsBody {
    /// Action kinds, each declared by the plugin's manifest; the rest are revoked.
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
pub async fn list(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
) -> ApiResult<Json<Vec<PluginRecord>>> {
    Ok(Json(state.store.plugins().await?))
}

/// Installs or upgrades the plugin in a directory on the server.
#[utoipa::path(post, path = "/plugins", tag = "plugins", request_body = InstallBody,
    responses(
        (status = 201, description = "Installed, with the signature's verdict and an upgrade's diff", body = Installed),
        (status = 400, description = "No plugin there, or it is refused (the message says why: a bad or missing signature, a downgrade, ...)", body = ErrorBody),
    ))]
pub async fn install(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<InstallBody>,
) -> ApiResult<(StatusCode, Json<Installed>)> {
    require_admin(&caller, "install plugins")?;
    if !body.dir.is_dir() {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a directory on the Pagehook server; give a plugin directory (plugin.toml + component), or upload the files with POST /api/plugins/upload",
            body.dir.display()
        )));
    }
    let options = InstallOptions {
        grants: (!body.grants.is_empty()).then_some(body.grants.as_slice()),
        allow_downgrade: body.allow_downgrade,
        grant_limits: body.grant_limits,
    };
    let installed = install_from(&state, &caller, &body.dir, options, "directory").await?;
    Ok((StatusCode::CREATED, Json(installed)))
}

/// Installs or upgrades an uploaded plugin: parts `manifest` (plugin.toml),
/// `component` (the .wasm it names) and any number of `grant`.
#[utoipa::path(post, path = "/plugins/upload", tag = "plugins",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Installed, with the signature's verdict and an upgrade's diff", body = Installed),
        (status = 400, description = "A part is missing, or the plugin is refused (the message says why: a bad or missing signature, a downgrade, ...)", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Form(mut form): Form,
) -> ApiResult<(StatusCode, Json<Installed>)> {
    require_admin(&caller, "install plugins")?;
    let (mut manifest, mut component, mut grants) = (None, None, Vec::new());
    let (mut statement, mut signature) = (None, None);
    let (mut allow_downgrade, mut grant_limits) = (false, false);
    let flag = |name: &str, text: &str| match text.trim() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" | "" => Ok(false),
        other => Err(ApiError::BadRequest(format!(
            "part `{name}` is `{other}`: send true or false"
        ))),
    };
    while let Some(part) = form.next_field().await? {
        match part.name().unwrap_or_default() {
            "manifest" => manifest = Some(part.bytes().await?),
            "component" => component = Some(part.bytes().await?),
            // An empty file input (the console's optional signature fields).
            "statement" | "signature" if part.file_name() == Some("") => {
                part.bytes().await?;
            }
            "statement" => statement = Some(part.bytes().await?),
            "signature" => signature = Some(part.bytes().await?),
            "grant" | "grants" | "grants[]" => grants.push(part.text().await?),
            "allow_downgrade" => allow_downgrade = flag("allow_downgrade", &part.text().await?)?,
            "grant_limits" => grant_limits = flag("grant_limits", &part.text().await?)?,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected part `{other}`: send `manifest` (plugin.toml), `component` (the .wasm), any `grant`, and for a signed plugin `statement` and `signature`"
                )));
            }
        }
    }
    let (Some(manifest), Some(component)) = (manifest, component) else {
        return Err(ApiError::BadRequest(
            "send both parts: `manifest` (plugin.toml) and `component` (the .wasm it names)".into(),
        ));
    };
    let text = std::str::from_utf8(&manifest)
        .map_err(|_| ApiError::BadRequest("the manifest is not UTF-8 text".into()))?;
    let parsed = Manifest::parse(text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if statement.is_some() != signature.is_some() {
        return Err(ApiError::BadRequest(
            "a signed plugin needs both parts: `statement` (plugin.statement) and `signature` (plugin.statement.minisig)".into(),
        ));
    }
    let dir = Upload::new(&state)?;
    let files = SignedFiles {
        manifest: manifest.to_vec(),
        statement: statement.map(|b| b.to_vec()),
        signature: signature.map(|b| b.to_vec()),
    };
    std::fs::write(dir.path().join("plugin.toml"), &files.manifest)
        .and_then(|()| std::fs::write(dir.path().join(&parsed.component), &component))
        .and_then(|()| files.write_signature(dir.path()))
        .map_err(|e| ApiError::Internal(format!("cannot write the uploaded plugin: {e}")))?;
    // An upgrade sent without grants keeps the ones it has (those the new
    // version still declares), as the console's upload form promises.
    let options = InstallOptions {
        grants: (!grants.is_empty()).then_some(grants.as_slice()),
        allow_downgrade,
        grant_limits,
    };
    let installed = install_from(&state, &caller, dir.path(), options, "upload").await?;
    Ok((StatusCode::CREATED, Json(installed)))
}

/// A scratch directory for an upload, removed when dropped.
struct Upload(PathBuf);

impl Upload {
    fn new(state: &AppState) -> ApiResult<Upload> {
        let dir = state.config.store.plugins_dir.join(format!(
            ".upload-{}",
            crate::server::session::random_token()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| {
            ApiError::Internal(format!("cannot make {} for an upload: {e}", dir.display()))
        })?;
        Ok(Upload(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What an install request asks beyond the files.
struct InstallOptions<'a> {
    grants: Option<&'a [String]>,
    allow_downgrade: bool,
    grant_limits: bool,
}

/// Installs (or upgrades) the package in `dir` (the change log says which).
async fn install_from(
    state: &AppState,
    caller: &Caller,
    dir: &Path,
    options: InstallOptions<'_>,
    via: &str,
) -> ApiResult<Installed> {
    let install = Install {
        dir,
        grants: options.grants,
        actor: &caller.actor(),
        via,
        allow_downgrade: options.allow_downgrade,
        grant_limits: options.grant_limits,
    };
    Ok(ops::plugins::install_plugin(&state.store, &state.runtime, &state.config, install).await?)
}

/// Sets the action kinds a plugin may use (a subset of what it declares).
#[utoipa::path(put, path = "/plugins/{name}/grants", tag = "plugins", request_body = GrantsBody,
    params(("name" = String, Path, description = "The plugin's name", example = "slack-poster")),
    responses(
        (status = 200, description = "Granted", body = PluginRecord),
        (status = 400, description = "A kind the plugin does not declare", body = ErrorBody),
        (status = 404, description = "No such plugin", body = ErrorBody),
    ))]
pub async fn grants(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    Body(body): Body<GrantsBody>,
) -> ApiResult<Json<PluginRecord>> {
    require_admin(&caller, "grant actions")?;
    let plugin =
        ops::plugins::set_grants(&state.store, &caller.actor(), &name, &body.grants).await?;
    Ok(Json(plugin))
}

/// Grants a plugin the limits its installed manifest requests (an upgrade
/// that asks for more runs held to the earlier grant until this is done).
#[utoipa::path(post, path = "/plugins/{name}/grant-limits", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name", example = "slack-poster")),
    responses(
        (status = 200, description = "Granted: `limit_grants` is now what the manifest requests", body = PluginRecord),
        (status = 404, description = "No such plugin", body = ErrorBody),
    ))]
pub async fn grant_limits(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<PluginRecord>> {
    require_admin(&caller, "grant limits")?;
    let plugin = ops::plugins::grant_limits(&state.store, &caller.actor(), &name).await?;
    Ok(Json(plugin))
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
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<PluginRemoved>> {
    require_admin(&caller, "remove plugins")?;
    let bindings_removed = ops::plugins::remove(&state.store, &caller.actor(), &name).await?;
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
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<PluginRecord>> {
    require_admin(&caller, "enable plugins")?;
    let plugin = ops::plugins::set_enabled(&state.store, &caller.actor(), &name, true).await?;
    Ok(Json(plugin))
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
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<PluginRecord>> {
    require_admin(&caller, "disable plugins")?;
    let plugin = ops::plugins::set_enabled(&state.store, &caller.actor(), &name, false).await?;
    Ok(Json(plugin))
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
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<PluginRecord>> {
    require_admin(&caller, "reset breakers")?;
    let plugin = ops::plugins::reset(&state.store, &caller.actor(), &name).await?;
    Ok(Json(plugin))
}
