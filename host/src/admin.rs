//! The admin's operations, shared by the CLI and the HTTP admin API so both
//! have the same powers, checks and messages.
//!
//! Every operation validates fully before it writes: a refused install,
//! connection or binding changes nothing and says what to fix.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::destination::Destination;
use crate::manifest::Manifest;
use crate::model::{ACTION_KINDS, Action, EventKind};
use crate::runtime::{PluginPackage, Runtime};
use crate::secret::SecretSource;
use crate::store::{
    Binding, ConnectionKind, ConnectionRecord, NewBinding, NewDelivery, PluginRecord, Scope, Store,
    StoreError, TokenExpiry, now_ms,
};

/// Why an admin operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is wrong; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// It names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It clashes with what exists.
    #[error("{0}")]
    Conflict(String),
    /// Pagehook itself failed (database, disk).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AdminError::NotFound(m),
            StoreError::Conflict(m) => AdminError::Conflict(m),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

/// Result of an admin operation.
pub type AdminResult<T> = Result<T, AdminError>;

/// Writes one row of the change log: `actor` did `action` to `target`.
/// The change itself has happened, so a failure to record it is logged,
/// not returned. `detail` must never hold a secret.
pub async fn log_change(
    store: &Store,
    actor: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) {
    let change = crate::store::NewChange {
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail,
    };
    if let Err(e) = store.record_change(&change).await {
        tracing::error!(error = %e, action, target, "cannot record a change in the change log");
    }
}

/// Who runs the CLI, for the change log: `root (CLI)`.
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "someone".into());
    format!("{user} (CLI)")
}

/// `grants` without repeats, after checking each is an action kind that
/// `manifest` declares. Any subset may be granted: an action the plugin
/// declares but was not granted is rejected at dispatch and audited.
pub fn checked_grants(manifest: &Manifest, grants: &[String]) -> AdminResult<Vec<String>> {
    let mut granted = Vec::new();
    for g in grants {
        if !ACTION_KINDS.contains(&g.as_str()) {
            return Err(AdminError::Invalid(format!(
                "cannot grant `{g}`: action kinds are {}",
                ACTION_KINDS.join(", ")
            )));
        }
        if !manifest.actions.contains(g) {
            return Err(AdminError::Invalid(format!(
                "cannot grant `{g}`: plugin `{}` does not declare it (it declares: {})",
                manifest.name,
                list_or_none(&manifest.actions)
            )));
        }
        if !granted.contains(g) {
            granted.push(g.clone());
        }
    }
    Ok(granted)
}

/// Sets what an installed plugin may do (a subset of what it declares);
/// its breaker and failure count are left as they are.
pub async fn set_grants(store: &Store, name: &str, grants: &[String]) -> AdminResult<PluginRecord> {
    let plugin = store.require_plugin(name).await?;
    let granted = checked_grants(&plugin.manifest, grants)?;
    store.set_plugin_grants(name, &granted).await?;
    Ok(store.require_plugin(name).await?)
}

/// Installs (or upgrades) the plugin in `dir`, granting `grants`.
///
/// The component is compiled and checked exactly as dispatch will load it
/// (imports, exports, limits), then the package is copied into the
/// configured plugins directory under its hash, so later changes to `dir`
/// cannot change what runs.
pub async fn install_plugin(
    store: &Store,
    runtime: &Runtime,
    config: &Config,
    dir: &Path,
    grants: &[String],
) -> AdminResult<PluginRecord> {
    let package = PluginPackage::open(dir).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let manifest = &package.manifest;
    let granted = checked_grants(manifest, grants)?;
    runtime
        .load(&package)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let dest =
        config
            .store
            .plugins_dir
            .join(format!("{}-{}", manifest.name, &package.sha256[..16]));
    copy_package(&package, &dest).map_err(|e| {
        AdminError::Internal(format!("cannot copy the plugin to {}: {e}", dest.display()))
    })?;
    let record = PluginRecord {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        description: manifest.description.clone(),
        sha256: package.sha256.clone(),
        dir: absolute(&dest).display().to_string(),
        manifest: manifest.clone(),
        grants: granted,
        enabled: true,
        failures: 0,
        breaker_until: None,
        breaker_error: None,
        installed_at: now_ms(),
    };
    store.install_plugin(&record).await?;
    Ok(record)
}

fn copy_package(package: &PluginPackage, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    std::fs::copy(package.dir.join("plugin.toml"), dest.join("plugin.toml"))?;
    std::fs::write(
        dest.join(&package.manifest.component),
        package.wasm.as_slice(),
    )?;
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// What an admin gives to create a connection.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// Its name.
    pub name: String,
    /// What it talks to.
    pub kind: ConnectionKind,
    /// Base URL (Slack, Confluence) or workflow URL (Teams).
    pub url: Option<String>,
    /// Confluence Basic-auth user; without it the token is a PAT.
    pub username: Option<String>,
    /// Token (Slack bot token, Confluence PAT or password).
    pub secret: Option<SecretSource>,
    /// Confluence webhook signing secret, or a Slack app's signing secret
    /// (verifies what Slack sends to `/hooks/slack/{name}`).
    pub hook_secret: Option<SecretSource>,
    /// Record deliveries, never send.
    pub dry_run: bool,
    /// Slack: the admin's email, sent a DM once the connection works.
    pub notify: Option<String>,
    /// Slack: the Confluence connection its chat lookups and self-links use
    /// (`None`: the one named before, if the connection existed, else the
    /// only Confluence connection with a token).
    pub confluence: Option<String>,
    /// Slack: the app-level token (`xapp-`, scope `connections:write`);
    /// with it, `serve` takes events and commands over Socket Mode.
    pub app_token: Option<SecretSource>,
    /// Its own egress proxy as given: `direct` or `http(s)://host:port`
    /// (`None`: the global `[network] proxy`); checked by [`connect`].
    pub proxy: Option<String>,
}

/// A connection's proxy override as an admin gives it, checked: `direct`
/// or an `http(s)://host:port` without credentials.
pub fn proxy_override(raw: &str) -> AdminResult<crate::http::proxy::ProxyOverride> {
    crate::http::proxy::ProxyOverride::parse(raw)
        .map_err(|m| AdminError::Invalid(format!("--proxy: {m}")))
}

/// Gives connection `name` its own proxy (`Some("direct")` or a URL) or,
/// with `None` or `""`, puts it back on the global one; nothing changes
/// when the value is refused.
pub async fn set_connection_proxy(
    store: &Store,
    name: &str,
    raw: Option<&str>,
) -> AdminResult<ConnectionRecord> {
    let proxy = match raw.map(str::trim).filter(|r| !r.is_empty()) {
        Some(raw) => Some(proxy_override(raw)?),
        None => None,
    };
    store
        .set_connection_proxy(name, proxy.as_ref().map(|p| p.as_str()))
        .await?;
    store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no connection named `{name}`")))
}

/// What `connect` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Connected {
    /// The stored connection (secrets redacted when shown).
    #[serde(flatten)]
    pub connection: ConnectionRecord,
    /// Bindings whose Slack destinations now name the workspace that was
    /// the only one until this connection (they keep meaning it).
    pub qualified_bindings: usize,
    /// The delivery that greets `notify`, if asked.
    pub notice_delivery: Option<i64>,
}

/// Creates or replaces a connection after checking it is complete.
pub async fn connect(store: &Store, req: ConnectRequest) -> AdminResult<Connected> {
    if req.name.is_empty()
        || req.name.len() > 64
        || !req
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(AdminError::Invalid(format!(
            "`{}`: a connection name is 1-64 letters, digits, - or _",
            req.name
        )));
    }
    let url = match (req.kind, req.url) {
        (ConnectionKind::Slack, None) => "https://slack.com/api/".to_owned(),
        (_, Some(url)) => url,
        (kind, None) => {
            return Err(AdminError::Invalid(format!(
                "a {} connection needs --url ({})",
                kind.as_str(),
                match kind {
                    ConnectionKind::Teams => "the workflow's webhook URL",
                    _ => "Confluence's base URL, e.g. https://wiki.example.com",
                }
            )));
        }
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(AdminError::Invalid(format!(
            "`{}`: the URL must start with https:// (or http:// for a local test server)",
            crate::store::redacted_url(&url)
        )));
    }
    let hook_secret_name = match req.kind {
        ConnectionKind::Slack => "signing secret",
        _ => "webhook secret",
    };
    for (what, source) in [("token", &req.secret), (hook_secret_name, &req.hook_secret)] {
        if let Some(source) = source {
            source
                .resolve()
                .map_err(|m| AdminError::Invalid(format!("{what}: {m}")))?;
        }
    }
    // `global` goes back to the global setting; without a value the
    // connection keeps its own (a new token must not change its way out).
    let proxy: Option<Option<crate::http::proxy::ProxyOverride>> =
        match req.proxy.as_deref().map(str::trim) {
            None => None,
            Some(raw) if raw.eq_ignore_ascii_case("global") => Some(None),
            Some(raw) => Some(Some(proxy_override(raw)?)),
        };
    if let Some(app_token) = &req.app_token {
        if req.kind != ConnectionKind::Slack {
            return Err(AdminError::Invalid(
                "an app-level token is for Slack connections (Socket Mode) only".into(),
            ));
        }
        let token = app_token
            .resolve()
            .map_err(|m| AdminError::Invalid(format!("app-level token: {m}")))?;
        if !token.expose().trim().starts_with("xapp-") {
            return Err(AdminError::Invalid(
                "the app-level token starts with xapp- (Slack app settings, Basic Information, App-Level Tokens, with the scope connections:write); the bot token (xoxb-) goes to --token".into(),
            ));
        }
    }
    match req.kind {
        ConnectionKind::Slack if req.secret.is_none() => {
            return Err(AdminError::Invalid(
                "a Slack connection needs the bot token (xoxb-...): --token-env, --token-file or --token".into(),
            ));
        }
        ConnectionKind::Teams if req.hook_secret.is_some() => {
            return Err(AdminError::Invalid(
                "a Teams connection takes no webhook or signing secret (its URL carries its signature)".into(),
            ));
        }
        ConnectionKind::Confluence if req.hook_secret.is_none() => {
            return Err(AdminError::Invalid(
                "a Confluence connection needs the webhook secret set in Confluence's webhook screen: --webhook-secret-env, --webhook-secret-file or --webhook-secret".into(),
            ));
        }
        _ => {}
    }
    if let Some(email) = &req.notify
        && (req.kind != ConnectionKind::Slack || !email.contains('@') || email.contains('/'))
    {
        return Err(AdminError::Invalid(format!(
            "--notify `{email}`: give the email of a Slack user to greet (Slack connections only)"
        )));
    }
    if let Some(confluence) = &req.confluence {
        if req.kind != ConnectionKind::Slack {
            return Err(AdminError::Invalid(format!(
                "--confluence `{confluence}`: only a Slack connection names the Confluence connection its chat uses"
            )));
        }
        check_chat_confluence(store, confluence).await?;
    }
    let other_workspaces: Vec<String> = store
        .connections()
        .await?
        .into_iter()
        .filter(|c| c.kind == ConnectionKind::Slack && c.name != req.name)
        .map(|c| c.name)
        .collect();
    let mut record = ConnectionRecord::new(&req.name, req.kind, url.trim_end_matches(' '));
    record.username = req.username;
    record.secret = req.secret;
    record.hook_secret = req.hook_secret;
    record.dry_run = req.dry_run;
    // Connecting again (a new token) keeps the Confluence its chat uses
    // unless another is named: forgetting it would break chat.
    record.confluence = match req.confluence {
        Some(named) => Some(named),
        None if req.kind == ConnectionKind::Slack => store
            .connection(&req.name)
            .await?
            .filter(|c| c.kind == ConnectionKind::Slack)
            .and_then(|c| c.confluence),
        None => None,
    };
    record.app_token = req.app_token;
    record.proxy = match proxy {
        Some(given) => given,
        None => store
            .connection(&req.name)
            .await?
            .filter(|c| c.kind == req.kind)
            .and_then(|c| c.proxy),
    };
    store.add_connection(&record).await?;
    // A second workspace: bindings written for the first keep meaning it.
    let qualified_bindings = match other_workspaces.as_slice() {
        [only] if req.kind == ConnectionKind::Slack => {
            store.qualify_slack_destinations(only).await?
        }
        _ => 0,
    };
    let notice_delivery = match &req.notify {
        Some(email) => Some(store.enqueue_notice(
            "connected",
            &notice(
                &record.name,
                Action::DmSlack {
                    email: email.clone(),
                    text: format!(
                        "Pagehook is connected to this Slack workspace (connection `{}`). Confluence events bound to its channels will appear there.",
                        slack_escape(&record.name)
                    ),
                    blocks: None,
                },
                0,
                &format!("slack-dm:{}/{email}", record.name),
            ),
        ).await?),
        None => None,
    };
    Ok(Connected {
        connection: record,
        qualified_bindings,
        notice_delivery,
    })
}

/// Refuses a name that is not a Confluence connection, naming the ones
/// there are.
async fn check_chat_confluence(store: &Store, name: &str) -> AdminResult<()> {
    let all = store.connections().await?;
    if all
        .iter()
        .any(|c| c.name == name && c.kind == ConnectionKind::Confluence)
    {
        return Ok(());
    }
    let known: Vec<String> = all
        .into_iter()
        .filter(|c| c.kind == ConnectionKind::Confluence)
        .map(|c| c.name)
        .collect();
    Err(AdminError::NotFound(format!(
        "no Confluence connection named `{name}` (Confluence connections: {})",
        list_or_none(&known)
    )))
}

/// Names the Confluence connection Slack connection `slack`'s chat lookups
/// and self-links use; `None` (or an empty name) goes back to the only
/// Confluence connection with a token. Links made with another Confluence
/// connection stay stored but no longer count for this workspace's chat.
pub async fn set_chat_confluence(
    store: &Store,
    slack: &str,
    confluence: Option<&str>,
) -> AdminResult<ConnectionRecord> {
    let confluence = confluence.map(str::trim).filter(|c| !c.is_empty());
    match store.connection(slack).await? {
        Some(c) if c.kind == ConnectionKind::Slack => {}
        _ => {
            return Err(AdminError::NotFound(format!(
                "no Slack connection named `{slack}`"
            )));
        }
    }
    if let Some(name) = confluence {
        check_chat_confluence(store, name).await?;
    }
    store.set_slack_confluence(slack, confluence).await?;
    store
        .connection(slack)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no Slack connection named `{slack}`")))
}

/// A delivery Pagehook itself asks for, in workspace `workspace`.
fn notice(workspace: &str, action: Action, binding_id: i64, destination: &str) -> NewDelivery {
    NewDelivery {
        binding_id,
        plugin: "pagehook".into(),
        lane: crate::destination::lane(&action, "", Some(workspace)),
        destination: destination.to_owned(),
        source: String::new(),
        connection: Some(workspace.to_owned()),
        action,
        dry_run: false,
    }
}

/// Escapes text for Slack's mrkdwn (`&`, `<`, `>`), so names never become
/// mentions or links.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What an admin gives to bind a plugin.
#[derive(Debug, Clone)]
pub struct BindRequest {
    /// The installed plugin.
    pub plugin: String,
    /// Scope: `global`, `space:KEY`, `page:ID`.
    pub scope: String,
    /// Only events from this Confluence connection.
    pub source: Option<String>,
    /// Event kinds; empty means all the plugin subscribes to.
    pub events: Vec<String>,
    /// Allowed destinations.
    pub to: Vec<String>,
    /// Settings.
    pub settings: Vec<(String, String)>,
    /// Record deliveries, never send.
    pub dry_run: bool,
    /// Do not announce the binding in the Slack channels it names.
    pub quiet: bool,
}

/// What `bind` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Bound {
    /// The stored binding.
    #[serde(flatten)]
    pub binding: Binding,
    /// The deliveries announcing it in each Slack channel it names.
    pub announcements: Vec<i64>,
}

/// Creates a binding after checking it against the plugin and its grants.
pub async fn bind(store: &Store, req: BindRequest) -> AdminResult<Bound> {
    let plugin = store.require_plugin(&req.plugin).await?;
    let manifest: &Manifest = &plugin.manifest;
    let scope: Scope = req.scope.parse().map_err(AdminError::Invalid)?;
    if let Some(source) = &req.source {
        match store.connection(source).await? {
            // Slack connections are sources too: their link-shared events and slash commands.
            Some(c) if matches!(c.kind, ConnectionKind::Confluence | ConnectionKind::Slack) => {}
            _ => {
                return Err(AdminError::NotFound(format!(
                    "no Confluence connection named `{source}`, nor a Slack one (see `pagehook connections`)"
                )));
            }
        }
    }
    let events = if req.events.is_empty() {
        manifest.events.clone()
    } else {
        for e in &req.events {
            let Some(kind) = EventKind::from_name(e) else {
                return Err(AdminError::Invalid(format!(
                    "unknown event kind `{e}` (kinds: {})",
                    EventKind::ALL.map(EventKind::name).join(", ")
                )));
            };
            if !manifest.wants(kind) {
                return Err(AdminError::Invalid(format!(
                    "plugin `{}` does not handle `{e}` events (it handles: {})",
                    plugin.name,
                    manifest.events.join(", ")
                )));
            }
        }
        req.events.clone()
    };
    if req.to.is_empty() && !plugin.grants.is_empty() {
        return Err(AdminError::Invalid(format!(
            "say where its actions may go with --to (e.g. slack:#eng); plugin `{}` may return {}",
            plugin.name,
            plugin.grants.join(", ")
        )));
    }
    let workspaces: Vec<String> = store
        .connections()
        .await?
        .into_iter()
        .filter(|c| c.kind == ConnectionKind::Slack)
        .map(|c| c.name)
        .collect();
    let mut destinations = Vec::with_capacity(req.to.len());
    for to in &req.to {
        let dest: Destination = to.parse().map_err(AdminError::Invalid)?;
        let dest = match (dest.is_slack(), dest.workspace(), workspaces.as_slice()) {
            (true, None, [only]) => dest.in_workspace(only),
            (true, None, several) if several.len() > 1 => {
                return Err(AdminError::Invalid(format!(
                    "`{to}` is ambiguous: Pagehook has Slack workspaces {}; name one, e.g. {}",
                    several.join(", "),
                    dest.in_workspace(&several[0])
                )));
            }
            (true, Some(ws), _) if !workspaces.iter().any(|w| w == ws) => {
                return Err(AdminError::NotFound(format!(
                    "`{to}` names Slack workspace `{ws}`, which is not connected (see `pagehook connections`)"
                )));
            }
            _ => dest,
        };
        destinations.push(dest.clone());
        if !plugin.grants.iter().any(|g| g == dest.action_kind()) {
            return Err(AdminError::Invalid(format!(
                "destination `{to}` receives `{}` actions, which plugin `{}` was not granted (granted: {})",
                dest.action_kind(),
                plugin.name,
                list_or_none(&plugin.grants)
            )));
        }
    }
    let resolved = manifest
        .resolve_settings(&req.settings)
        .map_err(AdminError::Invalid)?;
    // Settings naming a Confluence page template must name one that exists.
    crate::confluence::templates::check_settings(
        manifest,
        match &scope {
            Scope::Space(key) => Some(key.as_str()),
            _ => None,
        },
        &resolved,
        &store.connections().await?,
        req.source.as_deref(),
    )
    .await
    .map_err(AdminError::Invalid)?;
    let binding = store
        .add_binding(&NewBinding {
            plugin: plugin.name,
            source: req.source,
            scope,
            events,
            destinations: destinations.iter().map(ToString::to_string).collect(),
            settings: req.settings,
            dry_run: req.dry_run,
        })
        .await?;
    let mut announcements = Vec::new();
    if !req.quiet {
        for dest in destinations
            .iter()
            .filter(|d| d.action_kind() == "post-slack")
        {
            let Some(channel) = dest.channel().filter(|c| *c != "*") else {
                continue;
            };
            let Some(ws) = dest.workspace().or(workspaces.first().map(String::as_str)) else {
                continue;
            };
            let text = format!(
                "Pagehook will post Confluence {} events from {} here (plugin `{}`, binding {}).",
                slack_escape(&binding.events.join(", ")),
                slack_escape(&match &binding.scope {
                    Scope::Global => "every space".to_owned(),
                    other => other.to_string(),
                }),
                slack_escape(&binding.plugin),
                binding.id
            );
            let action = Action::PostSlack {
                channel: channel.to_owned(),
                text,
                blocks: None,
                thread_key: None,
            };
            announcements.push(
                store
                    .enqueue_notice(
                        "bound",
                        &NewDelivery {
                            dry_run: binding.dry_run,
                            ..notice(ws, action, binding.id, &dest.to_string())
                        },
                    )
                    .await?,
            );
        }
    }
    Ok(Bound {
        binding,
        announcements,
    })
}

/// The answer to `connection test`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionTest {
    /// Whether the service accepted the credentials.
    pub ok: bool,
    /// What was checked and what it said.
    pub message: String,
}

/// `auth.test` against a workspace, in words an admin can act on.
async fn slack_connection_test(
    base_url: &str,
    token: &crate::secret::Secret,
    timeout: std::time::Duration,
    proxy: Option<&crate::http::proxy::ProxyOverride>,
) -> ConnectionTest {
    use crate::slack::{SlackClient, SlackError, auth};
    let http = match crate::http::client_builder_for(proxy)
        .timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return ConnectionTest {
                ok: false,
                message: format!("cannot make an HTTP client: {e}"),
            };
        }
    };
    match auth::auth_test(&SlackClient::new(&http, base_url, token)).await {
        Ok(ws) => ConnectionTest {
            ok: true,
            message: format!(
                "Slack accepts the token: bot user {} in workspace {} ({})",
                ws.user, ws.team, ws.url
            ),
        },
        Err(SlackError::Api { code, .. }) => ConnectionTest {
            ok: false,
            message: format!(
                "Slack refused the token: {code}{}",
                auth::refusal_hint(&code)
            ),
        },
        Err(e) => ConnectionTest {
            ok: false,
            message: match crate::http::tls::check_via(base_url, proxy).await {
                Err(certificate) => format!("Slack at {base_url}: {certificate}"),
                Ok(()) => {
                    format!("Slack at {base_url} could not be reached or answered oddly: {e}")
                }
            },
        },
    }
}

/// `apps.connections.open` with the app-level token: whether Socket Mode
/// can connect (the URL Slack gives is not used, nor shown).
async fn socket_mode_test(
    base_url: &str,
    app_token: &crate::secret::Secret,
    timeout: std::time::Duration,
    proxy: Option<&crate::http::proxy::ProxyOverride>,
) -> ConnectionTest {
    use crate::slack::{SlackClient, SlackError, socket_mode};
    let http = match crate::http::client_builder_for(proxy)
        .timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return ConnectionTest {
                ok: false,
                message: format!("cannot make an HTTP client: {e}"),
            };
        }
    };
    match socket_mode::open_connection(&SlackClient::new(&http, base_url, app_token)).await {
        Ok(_) => ConnectionTest {
            ok: true,
            message: "Socket Mode: Slack accepts the app-level token (apps.connections.open)"
                .into(),
        },
        Err(SlackError::Api { code, .. }) => ConnectionTest {
            ok: false,
            message: format!(
                "Socket Mode: Slack refused the app-level token: {code}{}",
                socket_mode::refusal_hint(&code)
            ),
        },
        Err(e) => ConnectionTest {
            ok: false,
            message: format!("Socket Mode: {e}"),
        },
    }
}

/// Checks a connection's credentials against the service.
pub async fn test_connection(
    store: &Store,
    name: &str,
    config: &Config,
) -> AdminResult<ConnectionTest> {
    let conn = store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no connection named `{name}`")))?;
    let secret = match &conn.secret {
        Some(s) => Some(
            s.resolve()
                .map_err(|m| AdminError::Invalid(format!("token: {m}")))?,
        ),
        None => None,
    };
    Ok(match conn.kind {
        ConnectionKind::Teams => ConnectionTest {
            ok: true,
            message: "Teams workflow webhooks have no test endpoint; nothing was sent. The URL is checked by the first delivery (mark the connection or a binding dry-run to preview cards first).".into(),
        },
        ConnectionKind::Slack => {
            let token = secret.ok_or_else(|| AdminError::Invalid("the connection has no token".into()))?;
            let bot = slack_connection_test(
                &conn.url,
                &token,
                config.enrichment_timeout(),
                conn.proxy.as_ref(),
            )
            .await;
            match &conn.app_token {
                None => bot,
                Some(app_token) => {
                    let app_token = app_token
                        .resolve()
                        .map_err(|m| AdminError::Invalid(format!("app-level token: {m}")))?;
                    let socket =
                        socket_mode_test(
                            &conn.url,
                            &app_token,
                            config.enrichment_timeout(),
                            conn.proxy.as_ref(),
                        )
                        .await;
                    ConnectionTest {
                        ok: bot.ok && socket.ok,
                        message: format!("{}; {}", bot.message, socket.message),
                    }
                }
            }
        }
        ConnectionKind::Confluence => {
            use crate::confluence::client::{ClientOptions, ConfluenceAuth, ConfluenceClient};
            let secret = secret.ok_or_else(|| AdminError::Invalid("the connection has no token".into()))?;
            let auth = match &conn.username {
                Some(u) => ConfluenceAuth::Basic {
                    username: u.clone(),
                    password: secret,
                },
                None => ConfluenceAuth::Bearer(secret),
            };
            let client = ConfluenceClient::new(
                &conn.url,
                auth,
                ClientOptions {
                    timeout: config.enrichment_timeout(),
                    proxy: conn.proxy.clone(),
                    ..ClientOptions::default()
                },
            );
            match client.current_user().await {
                Ok(user) => ConnectionTest {
                    ok: true,
                    message: format!(
                        "Confluence at {} accepts the credentials of {} ({}); events this account causes are marked by-pagehook",
                        conn.url,
                        user.display_name.as_deref().or(user.username.as_deref()).unwrap_or(&user.key),
                        user.key
                    ),
                },
                Err(e) => ConnectionTest {
                    ok: false,
                    message: match crate::http::tls::check_via(&conn.url, conn.proxy.as_ref()).await {
                        Err(certificate) => format!("Confluence at {}: {certificate}", conn.url),
                        Ok(()) => format!("Confluence at {}: {e}", conn.url),
                    },
                },
            }
        }
    })
}

/// Days before a personal access token expires from which Pagehook warns.
pub const TOKEN_WARN_DAYS: i64 = 14;
/// How often `pagehook serve` reads its Confluence tokens' expiry.
pub const TOKEN_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
/// How a connection's health message about its token starts; such a mark is
/// cleared by the next successful token check.
const TOKEN_HEALTH_PREFIX: &str = "personal access token";
const DAY_MS: i64 = 86_400_000;

/// Where a Confluence connection's personal access token stands, from what
/// the last check recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenStatus {
    /// The connection.
    pub connection: String,
    /// `ok`, `expiring` (within [`TOKEN_WARN_DAYS`]), `expired`,
    /// `never-expires`, or `unknown` (not read yet, or this Confluence does not
    /// list tokens).
    pub state: &'static str,
    /// The token's name in Confluence.
    pub token: Option<String>,
    /// When it expires (ms since the epoch).
    pub expires_at: Option<i64>,
    /// Whole days left, rounded up (negative once expired).
    pub days_left: Option<i64>,
    /// When it was read (ms since the epoch).
    pub checked_at: Option<i64>,
    /// What the admin should do, when anything.
    pub message: Option<String>,
}

/// The token status of a Confluence connection that authenticates with a
/// personal access token; `None` for every other connection.
pub fn token_status(conn: &ConnectionRecord, now: i64) -> Option<TokenStatus> {
    if conn.kind != ConnectionKind::Confluence || conn.secret.is_none() || conn.username.is_some() {
        return None;
    }
    let mut status = TokenStatus {
        connection: conn.name.clone(),
        state: "unknown",
        token: None,
        expires_at: None,
        days_left: None,
        checked_at: None,
        message: None,
    };
    let Some(token) = &conn.token else {
        return Some(status);
    };
    status.token = Some(token.name.clone());
    status.checked_at = Some(token.checked_at);
    status.expires_at = token.expires_at;
    let Some(at) = token.expires_at else {
        status.state = "never-expires";
        return Some(status);
    };
    let left = at - now;
    let days = if left > 0 {
        (left + DAY_MS - 1) / DAY_MS
    } else {
        left / DAY_MS
    };
    status.days_left = Some(days);
    if left <= 0 {
        status.state = "expired";
        status.message = Some(expired_message(conn, &token.name, at));
    } else if left <= TOKEN_WARN_DAYS * DAY_MS {
        status.state = "expiring";
        status.message = Some(format!(
            "the personal access token `{}` of Confluence connection `{}` expires in {days} day{} ({}): create a new one in Confluence (your profile picture > Settings > Personal Access Tokens) and run `{}` with it before then",
            token.name,
            conn.name,
            if days == 1 { "" } else { "s" },
            crate::clock::utc_minutes(at),
            reconnect(conn)
        ));
    } else {
        status.state = "ok";
    }
    Some(status)
}

fn reconnect(conn: &ConnectionRecord) -> String {
    format!(
        "pagehook connect confluence {} --url {} --token-env ... --webhook-secret-env ...",
        conn.name,
        crate::store::redacted_url(&conn.url)
    )
}

fn expired_message(conn: &ConnectionRecord, token: &str, at: i64) -> String {
    format!(
        "{TOKEN_HEALTH_PREFIX} `{token}` expired on {}: Confluence refuses it, so events are not enriched and pages and comments are not written; create a new one in Confluence (your profile picture > Settings > Personal Access Tokens) and run `{}` with it",
        crate::clock::utc_minutes(at),
        reconnect(conn)
    )
}

/// Reads the expiry of every Confluence connection's personal access token
/// from Confluence (`GET /rest/pat/latest/tokens`, all connections at once,
/// each within `timeout`), records it, and marks a connection whose token
/// has expired (or is refused) unhealthy with what to do; a later successful
/// check clears that mark. Returns every PAT connection's status.
pub async fn check_tokens(
    store: &Store,
    timeout: std::time::Duration,
) -> AdminResult<Vec<TokenStatus>> {
    let conns: Vec<ConnectionRecord> = store
        .connections()
        .await?
        .into_iter()
        .filter(|c| token_status(c, 0).is_some())
        .collect();
    let checks = conns.iter().map(|c| check_token(store, c, timeout));
    futures::future::join_all(checks).await;
    let now = now_ms();
    Ok(store
        .connections()
        .await?
        .iter()
        .filter_map(|c| token_status(c, now))
        .collect())
}

async fn check_token(store: &Store, conn: &ConnectionRecord, timeout: std::time::Duration) {
    use crate::confluence::client::{
        ClientError, ClientOptions, ConfluenceAuth, ConfluenceClient, token_in_use,
    };
    let auth = match ConfluenceAuth::of(conn) {
        Ok(Some(auth @ ConfluenceAuth::Bearer(_))) => auth,
        Ok(_) => return,
        Err(message) => {
            tracing::warn!(connection = %conn.name, %message, "cannot read the token to check its expiry");
            return;
        }
    };
    let client = ConfluenceClient::new(
        &conn.url,
        auth,
        ClientOptions {
            timeout,
            max_retry_after: timeout,
            max_inline_wait: std::time::Duration::ZERO,
            attempts: 1,
            proxy: conn.proxy.clone(),
        },
    );
    let now = now_ms();
    let mut health = conn.health.clone();
    let mut refreshed = false;
    match client.tokens().await {
        Ok(Some(tokens)) => {
            let chosen = token_in_use(&tokens, now)
                .or_else(|| tokens.iter().find(|t| t.expires_at.is_none()));
            if let Some(t) = chosen {
                let token = TokenExpiry {
                    name: t.name.clone(),
                    expires_at: t.expires_at,
                    checked_at: now,
                };
                match store.set_token_expiry(&conn.name, Some(&token)).await {
                    Ok(()) => refreshed = true,
                    Err(e) => {
                        tracing::error!(connection = %conn.name, error = %e, "cannot record the token's expiry");
                    }
                }
            }
            if health
                .as_deref()
                .is_some_and(|h| h.starts_with(TOKEN_HEALTH_PREFIX))
            {
                health = None;
            }
        }
        Ok(None) => {
            tracing::debug!(connection = %conn.name, "this Confluence does not list personal access tokens");
        }
        Err(ClientError::Unauthorized(401)) => {
            let expired = conn
                .token
                .as_ref()
                .and_then(|t| Some((t, t.expires_at?)))
                .filter(|(_, at)| *at <= now);
            health = Some(match expired {
                Some((t, at)) => expired_message(conn, &t.name, at),
                None => format!(
                    "{TOKEN_HEALTH_PREFIX} refused by Confluence (HTTP 401): it has expired or been revoked; create a new one in Confluence (your profile picture > Settings > Personal Access Tokens) and run `{}` with it",
                    reconnect(conn)
                ),
            });
        }
        Err(e) => {
            tracing::warn!(connection = %conn.name, error = %e, "cannot read the personal access token's expiry");
        }
    }
    // Confluence unreachable, but the expiry recorded earlier has passed.
    if !refreshed
        && health.is_none()
        && let Some(t) = &conn.token
        && let Some(at) = t.expires_at.filter(|at| *at <= now)
    {
        health = Some(expired_message(conn, &t.name, at));
    }
    if health != conn.health
        && let Err(e) = store
            .set_connection_health(&conn.name, health.as_deref())
            .await
    {
        tracing::error!(connection = %conn.name, error = %e, "cannot record the connection's health");
    }
}

/// `pagehook serve`'s token watch: checks every Confluence PAT at start and
/// then every [`TOKEN_CHECK_EVERY`], logs a warning for each token expiring
/// within [`TOKEN_WARN_DAYS`] and an error for each expired one, and feeds
/// the `pagehook_confluence_token_expiry_seconds` metric, until `shutdown`.
pub async fn watch_tokens(
    store: std::sync::Arc<Store>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    timeout: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match check_tokens(&store, timeout).await {
            Ok(statuses) => {
                metrics.set_token_expiries(
                    statuses
                        .iter()
                        .map(|s| (s.connection.clone(), s.expires_at))
                        .collect(),
                );
                for s in &statuses {
                    match (s.state, &s.message) {
                        ("expired", Some(m)) => tracing::error!(connection = %s.connection, "{m}"),
                        (_, Some(m)) => tracing::warn!(connection = %s.connection, "{m}"),
                        _ => {}
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot check the Confluence tokens' expiry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(TOKEN_CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
