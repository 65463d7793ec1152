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
use crate::model::{ACTION_KINDS, EventKind};
use crate::runtime::{PluginPackage, Runtime};
use crate::secret::SecretSource;
use crate::store::{
    Binding, ConnectionKind, ConnectionRecord, NewBinding, PluginRecord, Scope, Store, StoreError,
    now_ms,
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

/// Installs (or upgrades) the plugin in `dir`, granting `grants`.
///
/// The component is compiled and checked exactly as dispatch will load it
/// (imports, exports, limits), then the package is copied into the
/// configured plugins directory under its hash, so later changes to `dir`
/// cannot change what runs.
pub fn install_plugin(
    store: &Store,
    runtime: &Runtime,
    config: &Config,
    dir: &Path,
    grants: &[String],
) -> AdminResult<PluginRecord> {
    let package = PluginPackage::open(dir).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let manifest = &package.manifest;
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
    let missing: Vec<&String> = manifest
        .actions
        .iter()
        .filter(|a| !granted.contains(a))
        .collect();
    if !missing.is_empty() {
        return Err(AdminError::Invalid(format!(
            "plugin `{}` may return {}; grant each with --grant, or it cannot be installed: {} not granted",
            manifest.name,
            manifest.actions.join(", "),
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
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
    store.install_plugin(&record)?;
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
    /// Confluence webhook signing secret.
    pub hook_secret: Option<SecretSource>,
    /// Record deliveries, never send.
    pub dry_run: bool,
}

/// Creates or replaces a connection after checking it is complete.
pub fn connect(store: &Store, req: ConnectRequest) -> AdminResult<ConnectionRecord> {
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
    for (what, source) in [("token", &req.secret), ("webhook secret", &req.hook_secret)] {
        if let Some(source) = source {
            source
                .resolve()
                .map_err(|m| AdminError::Invalid(format!("{what}: {m}")))?;
        }
    }
    match req.kind {
        ConnectionKind::Slack if req.secret.is_none() => {
            return Err(AdminError::Invalid(
                "a Slack connection needs the bot token (xoxb-...): --token-env, --token-file or --token".into(),
            ));
        }
        ConnectionKind::Confluence if req.hook_secret.is_none() => {
            return Err(AdminError::Invalid(
                "a Confluence connection needs the webhook secret set in Confluence's webhook screen: --webhook-secret-env, --webhook-secret-file or --webhook-secret".into(),
            ));
        }
        _ => {}
    }
    let mut record = ConnectionRecord::new(&req.name, req.kind, url.trim_end_matches(' '));
    record.username = req.username;
    record.secret = req.secret;
    record.hook_secret = req.hook_secret;
    record.dry_run = req.dry_run;
    store.add_connection(&record)?;
    Ok(record)
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
}

/// Creates a binding after checking it against the plugin and its grants.
pub fn bind(store: &Store, req: BindRequest) -> AdminResult<Binding> {
    let plugin = store.require_plugin(&req.plugin)?;
    let manifest: &Manifest = &plugin.manifest;
    let scope: Scope = req.scope.parse().map_err(AdminError::Invalid)?;
    if let Some(source) = &req.source {
        match store.connection(source)? {
            Some(c) if c.kind == ConnectionKind::Confluence => {}
            _ => {
                return Err(AdminError::NotFound(format!(
                    "no Confluence connection named `{source}` (see `pagehook connections`)"
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
    for to in &req.to {
        let dest: Destination = to.parse().map_err(AdminError::Invalid)?;
        if !plugin.grants.iter().any(|g| g == dest.action_kind()) {
            return Err(AdminError::Invalid(format!(
                "destination `{to}` receives `{}` actions, which plugin `{}` was not granted (granted: {})",
                dest.action_kind(),
                plugin.name,
                list_or_none(&plugin.grants)
            )));
        }
    }
    manifest
        .resolve_settings(&req.settings)
        .map_err(AdminError::Invalid)?;
    Ok(store.add_binding(&NewBinding {
        plugin: plugin.name,
        source: req.source,
        scope,
        events,
        destinations: req.to,
        settings: req.settings,
        dry_run: req.dry_run,
    })?)
}

/// The answer to `connection test`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionTest {
    /// Whether the service accepted the credentials.
    pub ok: bool,
    /// What was checked and what it said.
    pub message: String,
}

/// Checks a connection's credentials against the service.
pub async fn test_connection(
    store: &Store,
    name: &str,
    config: &Config,
) -> AdminResult<ConnectionTest> {
    let conn = store
        .connection(name)?
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
            crate::slack::auth_test(&conn.url, &token, config.enrichment_timeout()).await
        }
        ConnectionKind::Confluence => {
            use crate::source::client::{ClientOptions, ConfluenceAuth, ConfluenceClient};
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
                    message: format!("Confluence at {}: {e}", conn.url),
                },
            }
        }
    })
}
