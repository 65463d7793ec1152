//! Connections: the Slack workspaces, Teams workflow webhooks and Confluence
//! instances Pagehook talks to. Only the host ever sees their secrets.

use serde::Serialize;

use super::{StoreError, StoreResult, now_ms};
use crate::http::proxy::ProxyOverride;
use crate::secret::SecretSource;

/// What a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    /// A Slack workspace: bot token, Web API base URL.
    Slack,
    /// One Teams Workflows webhook (one channel); its URL is the secret.
    Teams,
    /// A Confluence Data Center instance: a webhook source and a REST API.
    Confluence,
}

impl ConnectionKind {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Slack => "slack",
            ConnectionKind::Teams => "teams",
            ConnectionKind::Confluence => "confluence",
        }
    }

    pub(crate) fn parse(s: &str) -> StoreResult<ConnectionKind> {
        match s {
            "slack" => Ok(ConnectionKind::Slack),
            "teams" => Ok(ConnectionKind::Teams),
            "confluence" => Ok(ConnectionKind::Confluence),
            other => Err(StoreError::Corrupt {
                what: "connection kind",
                message: other.to_owned(),
            }),
        }
    }
}

/// A stored connection. Serializes with secrets redacted (an env or file
/// reference is shown, an inline value never is).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConnectionRecord {
    /// The admin's name for it: `--to` destinations and webhook URLs use it.
    pub name: String,
    /// What it talks to.
    pub kind: ConnectionKind,
    /// Base URL (Slack API, Confluence) or webhook URL (Teams, a secret itself).
    #[serde(serialize_with = "redact_teams_url")]
    pub url: String,
    /// Basic-auth user name for Confluence; `None` means a bearer token (PAT).
    pub username: Option<String>,
    /// Token or password.
    #[serde(serialize_with = "redact")]
    #[schema(value_type = Option<String>, example = "env:SLACK_BOT_TOKEN")]
    pub secret: Option<SecretSource>,
    /// Confluence webhook signing secret.
    #[serde(serialize_with = "redact")]
    #[schema(value_type = Option<String>, example = "[redacted]")]
    pub hook_secret: Option<SecretSource>,
    /// Slack: the app-level token (`xapp-`, scope `connections:write`);
    /// with it, events and slash commands arrive over Socket Mode.
    #[serde(serialize_with = "redact", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "env:SLACK_APP_TOKEN")]
    pub app_token: Option<SecretSource>,
    /// Deliveries through it are recorded, never sent.
    pub dry_run: bool,
    /// When it was added (ms since the epoch).
    pub created_at: i64,
    /// Why the last delivery through it was refused for its credentials;
    /// `None` while healthy. Cleared by the next success or by `connect` again.
    pub health: Option<String>,
    /// Confluence: what Pagehook last learnt of its personal access token;
    /// `None` until first checked (and for Basic-auth and webhook-only connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenExpiry>,
    /// Slack: the Confluence connection its chat lookups (who a Slack user
    /// is, what they may see) and self-links use; `None`: the only
    /// Confluence connection with a token (see `source::chat_confluence`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "wiki")]
    pub confluence: Option<String>,
    /// Its own egress proxy: `direct` (never through a proxy) or the
    /// proxy's `http(s)://host:port`; `None`: the global `[network] proxy`
    /// (or the environment's) applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "direct")]
    pub proxy: Option<ProxyOverride>,
}

/// A Confluence personal access token's expiry, as last read from
/// `GET /rest/pat/latest/tokens` (see `source::client::token_in_use` for
/// which token that is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenExpiry {
    /// The token's name in Confluence (never its value).
    pub name: String,
    /// When it expires (ms since the epoch); `None`: it never expires.
    pub expires_at: Option<i64>,
    /// When Pagehook read this (ms since the epoch).
    pub checked_at: i64,
}

fn redact<S: serde::Serializer>(v: &Option<SecretSource>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(src) => s.serialize_some(&src.redacted()),
        None => s.serialize_none(),
    }
}

/// Teams workflow URLs carry their signature in the query string: whoever
/// has the URL can post, so only its host is shown.
fn redact_teams_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redacted_url(url))
}

/// A URL with its query string replaced, safe to print.
pub fn redacted_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?[redacted]"),
        None => url.to_owned(),
    }
}

impl ConnectionRecord {
    /// A connection with no secrets yet.
    pub fn new(name: &str, kind: ConnectionKind, url: &str) -> ConnectionRecord {
        ConnectionRecord {
            name: name.to_owned(),
            kind,
            url: url.to_owned(),
            username: None,
            secret: None,
            hook_secret: None,
            app_token: None,
            dry_run: false,
            created_at: now_ms(),
            health: None,
            token: None,
            confluence: None,
            proxy: None,
        }
    }
}
