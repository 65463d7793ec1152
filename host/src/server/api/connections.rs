//! `/api/connections`: Slack workspaces, Teams workflows and Confluence
//! instances. Secrets are accepted (as `{"env": ...}`, `{"file": ...}` or
//! `{"value": ...}`) and never returned, nor recorded in the change log.
//! Listing is open to every caller; the rest is the Pagehook admin's.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Params, PathParam};
use super::require_admin;
use crate::ops;
use crate::ops::connections::{ConnectRequest, Connected, ConnectionTest};
use crate::pickers::{PageEntry, PickerError, SpaceEntry};
use crate::secret::SecretSource;
use crate::server::AppState;
use crate::server::session::Caller;
use crate::slack::directory::ChannelList;
use crate::store::{ConnectionKind, ConnectionRecord};

/// Where a secret comes from: exactly one of `value`, `env` (an environment
/// variable of the server) or `file` (a file on the server). The schema of
/// [`SecretSource`], which deserializes from these shapes.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(as = SecretSource)]
#[allow(dead_code)]
pub enum SecretSourceDoc {
    /// The value itself.
    Value(SecretValue),
    /// An environment variable of the server.
    Env(SecretEnv),
    /// A file on the server.
    File(SecretFile),
}

/// A secret given as its value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SecretValue {
    /// The value itself.
    value: String,
}

/// A secret in an environment variable of the server.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SecretEnv {
    /// The variable's name.
    env: String,
}

/// A secret in a file on the server.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SecretFile {
    /// The file's path.
    file: String,
}

/// `POST /api/connections`: a connection to create or replace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    /// Its name: 1-64 letters, digits, `-` or `_`.
    #[schema(example = "acme", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// What it talks to: `slack`, `teams`, `teams-bot` or `confluence`.
    #[schema(value_type = ConnectionKind)]
    pub kind: String,
    /// Base URL (Slack: defaults to https://slack.com/api/; Confluence) or
    /// the workflow URL (Teams).
    pub url: Option<String>,
    /// Confluence Basic-auth user; without it the token is a personal access token.
    pub username: Option<String>,
    /// Slack bot token, Confluence personal access token or password, or a
    /// Teams bot's client secret.
    #[schema(value_type = Option<SecretSourceDoc>)]
    pub token: Option<SecretSource>,
    /// Confluence's webhook signing secret.
    #[schema(value_type = Option<SecretSourceDoc>)]
    pub webhook_secret: Option<SecretSource>,
    /// Slack: the app's signing secret, which verifies what Slack sends to
    /// `/hooks/slack/{name}`; never returned.
    #[schema(value_type = Option<SecretSourceDoc>)]
    pub signing_secret: Option<SecretSource>,
    /// Slack: the app-level token (`xapp-`, scope `connections:write`);
    /// with it, events and slash commands arrive over Socket Mode (an
    /// outbound WebSocket) instead of at `/hooks/slack/{name}`; never returned.
    #[schema(value_type = Option<SecretSourceDoc>)]
    pub app_token: Option<SecretSource>,
    /// Record deliveries through it, never send them.
    #[serde(default)]
    pub dry_run: bool,
    /// Slack: greet this email by DM once the connection works.
    pub notify: Option<String>,
    /// Slack: the Confluence connection its chat lookups (who a Slack user
    /// is, what they may see) and self-links use. Left out: the one named
    /// before (when replacing), else the only Confluence connection with a
    /// token; with several, name one, or chat events fail saying so.
    #[schema(example = "wiki")]
    pub confluence: Option<String>,
    /// Its own egress proxy: `direct` (never through a proxy, not even the
    /// environment's) or `http(s)://host:port` without credentials (every
    /// request of this connection goes through it; `[network]
    /// proxy-credentials` only when it is the same proxy as `[network]
    /// proxy`). Left out: the global `[network] proxy`. Anything else is
    /// refused with 400 and nothing is stored.
    #[schema(example = "http://proxy.eu.corp:3128")]
    pub proxy: Option<String>,
    /// Teams bot: the Azure Bot's Microsoft App ID (the Entra app's client id).
    #[schema(example = "00000000-0000-0000-0000-000000000000")]
    pub app_id: Option<String>,
    /// Teams bot: the directory (tenant) id of the single-tenant app.
    pub tenant_id: Option<String>,
}

/// `PATCH /api/connections/{name}`: what to change (at least one). Every
/// value is checked before anything changes; secrets are never returned.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionChange {
    /// Record deliveries through it, never send them.
    pub dry_run: Option<bool>,
    /// A new URL: Slack's API base, the Teams workflow's URL (a workflow
    /// made again), Confluence's base URL. Clears the health mark.
    #[schema(example = "https://prod-12.westeurope.logic.azure.com/workflows/.../invoke?sig=...")]
    pub url: Option<String>,
    /// Confluence: the Basic-auth user; `""` goes back to a personal access token.
    pub username: Option<String>,
    /// A new token (Slack bot token, Confluence personal access token or
    /// password). Clears the health mark.
    #[schema(value_type = Option<SecretSourceDoc>)]
    pub token: Option<SecretSource>,
    /// Confluence: a new webhook secret.
    #[schema(value_type = Option<SecretSourceDoc>)]
    pub webhook_secret: Option<SecretSource>,
    /// Slack: a new signing secret.
    #[schema(value_type = Option<SecretSourceDoc>)]
    pub signing_secret: Option<SecretSource>,
    /// Slack: a new app-level token (Socket Mode).
    #[schema(value_type = Option<SecretSourceDoc>)]
    pub app_token: Option<SecretSource>,
    /// Slack: the Confluence connection its chat lookups and self-links
    /// use; `""` goes back to the only Confluence connection with a token.
    #[schema(example = "wiki")]
    pub confluence: Option<String>,
    /// Its own egress proxy: `direct` or `http(s)://host:port`; `""` goes
    /// back to the global `[network] proxy`. A bad value is refused with
    /// 400 and nothing is changed.
    #[schema(example = "direct")]
    pub proxy: Option<String>,
}

/// The answer to a change: the connection as it is now, and what changed.
#[derive(Serialize, ToSchema)]
pub struct ConnectionChanged {
    /// The connection (secrets redacted).
    #[serde(flatten)]
    pub connection: ConnectionRecord,
    /// What changed: `url`, `username`, `token`, `webhook_secret`,
    /// `signing_secret`, `app_token`, `confluence`, `proxy`, `dry_run`.
    pub changed: Vec<String>,
}

/// The answer to removing a connection.
#[derive(Serialize, ToSchema)]
pub struct ConnectionRemoved {
    /// Its name.
    pub removed: String,
}

/// Every connection, secrets redacted.
#[utoipa::path(get, path = "/connections", tag = "connections",
    responses((status = 200, description = "Connections", body = [ConnectionRecord])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
) -> ApiResult<Json<Vec<ConnectionRecord>>> {
    Ok(Json(state.store.connections().await?))
}

/// Creates or replaces a connection.
#[utoipa::path(post, path = "/connections", tag = "connections", request_body = ConnectBody,
    responses(
        (status = 200, description = "Connected", body = Connected),
        (status = 400, description = "Incomplete or invalid", body = ErrorBody),
        (status = 409, description = "Clashes with what exists", body = ErrorBody),
    ))]
pub async fn connect(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<ConnectBody>,
) -> ApiResult<Json<Connected>> {
    require_admin(&caller, "connect services")?;
    let kind = match body.kind.as_str() {
        "slack" => ConnectionKind::Slack,
        "teams" => ConnectionKind::Teams,
        "teams-bot" => ConnectionKind::TeamsBot,
        "confluence" => ConnectionKind::Confluence,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown connection kind `{other}` (slack, teams, teams-bot, confluence)"
            )));
        }
    };
    let hook_secret = match (kind, body.webhook_secret, body.signing_secret) {
        (ConnectionKind::Slack, None, signing) => signing,
        (ConnectionKind::Slack, Some(_), _) => {
            return Err(ApiError::BadRequest(
                "a Slack connection takes `signing_secret` (the Slack app's), not `webhook_secret`"
                    .into(),
            ));
        }
        (_, webhook, None) => webhook,
        (_, _, Some(_)) => {
            return Err(ApiError::BadRequest(
                "`signing_secret` is for Slack connections; Confluence takes `webhook_secret`"
                    .into(),
            ));
        }
    };
    let req = ConnectRequest {
        name: body.name,
        kind,
        url: body.url,
        username: body.username,
        secret: body.token,
        hook_secret,
        dry_run: body.dry_run,
        notify: body.notify,
        confluence: body.confluence,
        app_token: body.app_token,
        proxy: body.proxy,
        app_id: body.app_id,
        tenant_id: body.tenant_id,
    };
    let connected = ops::connections::connect(&state.store, &caller.actor(), req).await?;
    Ok(Json(connected))
}

/// Removes a connection.
#[utoipa::path(delete, path = "/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "The connection's name", example = "acme")),
    responses(
        (status = 200, description = "Removed", body = ConnectionRemoved),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "Still in use", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<ConnectionRemoved>> {
    require_admin(&caller, "remove connections")?;
    ops::connections::disconnect(&state.store, &caller.actor(), &name).await?;
    Ok(Json(ConnectionRemoved { removed: name }))
}

/// Checks a connection's credentials against the service.
#[utoipa::path(post, path = "/connections/{name}/test", tag = "connections",
    params(("name" = String, Path, description = "The connection's name", example = "acme")),
    responses(
        (status = 200, description = "What the service said (`ok` false when it refused)", body = ConnectionTest),
        (status = 400, description = "The connection's secret cannot be read", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    ))]
pub async fn test(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<ConnectionTest>> {
    require_admin(&caller, "test connections")?;
    let tested =
        ops::connections::test_connection(&state.store, &caller.actor(), &name, &state.config)
            .await?;
    Ok(Json(tested))
}

/// Changes a connection: its URL, credentials or secrets (edited in
/// place, the change logged without values), its dry run, its own egress
/// proxy, or the Confluence connection a Slack connection's chat uses.
/// Everything is checked first: a refused value changes nothing.
#[utoipa::path(patch, path = "/connections/{name}", tag = "connections", request_body = ConnectionChange,
    params(("name" = String, Path, description = "The connection's name", example = "acme")),
    responses(
        (status = 200, description = "Changed", body = ConnectionChanged),
        (status = 400, description = "Nothing to change, or a value refused (nothing changed)", body = ErrorBody),
        (status = 404, description = "No such connection (or no such Confluence connection to use)", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    Body(body): Body<ConnectionChange>,
) -> ApiResult<Json<ConnectionChanged>> {
    require_admin(&caller, "change connections")?;
    let current = state
        .store
        .connection(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection named `{name}`")))?;
    let hook_secret = match (current.kind, body.webhook_secret, body.signing_secret) {
        (ConnectionKind::Slack, Some(_), _) => {
            return Err(ApiError::BadRequest(
                "a Slack connection takes `signing_secret` (the Slack app's), not `webhook_secret`"
                    .into(),
            ));
        }
        (ConnectionKind::Slack, None, signing) => signing,
        (_, _, Some(_)) => {
            return Err(ApiError::BadRequest(
                "`signing_secret` is for Slack connections; Confluence takes `webhook_secret`"
                    .into(),
            ));
        }
        (_, webhook, None) => webhook,
    };
    let edit = ops::connection_edit::ConnectionEdit {
        url: body.url.filter(|u| !u.trim().is_empty()),
        username: body.username,
        token: body.token,
        hook_secret,
        app_token: body.app_token,
    };
    if edit.is_empty()
        && body.dry_run.is_none()
        && body.confluence.is_none()
        && body.proxy.is_none()
    {
        return Err(ApiError::BadRequest(
            "nothing to change: give `url`, a secret, `dry_run`, `proxy` or (for a Slack connection) `confluence`"
                .into(),
        ));
    }
    // Checked before anything changes, so a bad value changes nothing.
    ops::connection_edit::check(&state.store, &name, &edit).await?;
    if let Some(raw) = body
        .proxy
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        ops::connections::proxy_override(raw)?;
    }
    let actor = caller.actor();
    let mut changed: Vec<String> = Vec::new();
    if let Some(confluence) = &body.confluence {
        ops::connections::set_chat_confluence(&state.store, &actor, &name, Some(confluence))
            .await?;
        changed.push("confluence".into());
    }
    if !edit.is_empty() {
        let (_, edited) = ops::connection_edit::edit(&state.store, &actor, &name, &edit).await?;
        changed.extend(edited.iter().map(|c| (*c).to_owned()));
    }
    if let Some(proxy) = &body.proxy {
        ops::connections::set_connection_proxy(&state.store, &actor, &name, Some(proxy)).await?;
        changed.push("proxy".into());
    }
    if let Some(dry_run) = body.dry_run {
        if dry_run != current.dry_run {
            changed.push("dry_run".into());
        }
        ops::connections::set_dry_run(&state.store, &actor, &name, dry_run).await?;
    }
    let connection = state
        .store
        .connection(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection named `{name}`")))?;
    Ok(Json(ConnectionChanged {
        connection,
        changed,
    }))
}

/// Posts a real test card to a Teams connection's workflow (people in the
/// channel see it), and records the result as the connection's health.
#[utoipa::path(post, path = "/connections/{name}/test-card", tag = "connections",
    params(("name" = String, Path, description = "The Teams connection's name", example = "eng-news")),
    responses(
        (status = 200, description = "What Teams said (`ok` false when it refused)", body = ConnectionTest),
        (status = 400, description = "Not a Teams connection", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    ))]
pub async fn test_card(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
) -> ApiResult<Json<ConnectionTest>> {
    require_admin(&caller, "test connections")?;
    let tested =
        ops::connections::send_test_card(&state.store, &caller.actor(), &name, &state.config)
            .await?;
    Ok(Json(tested))
}

/// `?q=` of a picker.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PickerQuery {
    /// Part of the name (any case); empty: the first ones.
    #[serde(default)]
    pub q: String,
    /// Pages: only in this space.
    pub space: Option<String>,
}

async fn picker_connection(state: &AppState, name: &str) -> ApiResult<ConnectionRecord> {
    state
        .store
        .connection(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection named `{name}`")))
}

fn picker_error(e: PickerError) -> ApiError {
    match e {
        PickerError::WrongKind(m) => ApiError::BadRequest(m),
        PickerError::CannotAsk(m) => ApiError::Conflict(m),
        PickerError::Service(m) => ApiError::Upstream(m),
    }
}

/// The channels of a Slack connection the bot can post to, whose name
/// contains `q`: from the directory delivery uses (cached; Slack is asked
/// only when it is stale). Private channels are listed only when the bot
/// is in them, and marked.
#[utoipa::path(get, path = "/connections/{name}/channels", tag = "connections", params(
        ("name" = String, Path, description = "The Slack connection's name", example = "acme"),
        PickerQuery),
    responses(
        (status = 200, description = "Matching channels", body = ChannelList),
        (status = 400, description = "Not a Slack connection", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The connection cannot be asked (no token, or one that cannot be read): type the channel", body = ErrorBody),
        (status = 502, description = "Slack refused or failed (the message says why)", body = ErrorBody),
    ))]
pub async fn channels(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    PathParam(name): PathParam<String>,
    Params(q): Params<PickerQuery>,
) -> ApiResult<Json<ChannelList>> {
    let conn = picker_connection(&state, &name).await?;
    let list = state
        .pickers
        .channels(&conn, &q.q)
        .await
        .map_err(picker_error)?;
    Ok(Json(list))
}

/// The global spaces of a Confluence connection whose key or name contains
/// `q` (a space admin's own spaces only), as its service account sees them.
#[utoipa::path(get, path = "/connections/{name}/spaces", tag = "connections", params(
        ("name" = String, Path, description = "The Confluence connection's name", example = "wiki"),
        PickerQuery),
    responses(
        (status = 200, description = "Matching spaces", body = [SpaceEntry]),
        (status = 400, description = "Not a Confluence connection", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The connection cannot be asked (webhook-only, or a token that cannot be read): type the value", body = ErrorBody),
        (status = 502, description = "Confluence refused or failed (the message says why)", body = ErrorBody),
    ))]
pub async fn spaces(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    Params(q): Params<PickerQuery>,
) -> ApiResult<Json<Vec<SpaceEntry>>> {
    let conn = picker_connection(&state, &name).await?;
    let allowed = caller.principal.space_filter();
    let list = state
        .pickers
        .spaces(&conn, &q.q, allowed.as_deref())
        .await
        .map_err(picker_error)?;
    Ok(Json(list))
}

/// Pages of a Confluence connection whose title contains `q` (in `space`
/// when given), for a page-id setting. A space admin gets only pages of
/// their spaces that no view restriction hides.
#[utoipa::path(get, path = "/connections/{name}/pages", tag = "connections", params(
        ("name" = String, Path, description = "The Confluence connection's name", example = "wiki"),
        PickerQuery),
    responses(
        (status = 200, description = "Matching pages (at most 10)", body = [PageEntry]),
        (status = 400, description = "Not a Confluence connection", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The connection cannot be asked (webhook-only, or a token that cannot be read): type the value", body = ErrorBody),
        (status = 502, description = "Confluence refused or failed (the message says why)", body = ErrorBody),
    ))]
pub async fn pages(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    Params(q): Params<PickerQuery>,
) -> ApiResult<Json<Vec<PageEntry>>> {
    let conn = picker_connection(&state, &name).await?;
    let allowed = caller.principal.space_filter();
    let list = state
        .pickers
        .pages(&conn, &q.q, q.space.as_deref(), allowed.as_deref())
        .await
        .map_err(picker_error)?;
    Ok(Json(list))
}
