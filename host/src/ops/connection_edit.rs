//! Editing a connection in place: a new URL (a Teams workflow made again,
//! Confluence moved), a new token or secret, another Confluence username.
//! Everything is checked before anything is written, the connection keeps
//! its name, kind, dry run, proxy and chat Confluence, and the change-log
//! line names what changed, never the values of secrets (nor a URL's
//! query, which may hold a workflow's signature).
//!
//! A change of URL or credentials is the fix for what a health mark said
//! (a deleted workflow, a revoked token), so it clears the mark; the next
//! delivery or test says whether it worked.

use serde_json::json;

use crate::secret::SecretSource;
use crate::store::{ConnectionKind, ConnectionRecord, Store, redacted_url};

use super::changes::{ChangeAction, log_change};
use super::{AdminError, AdminResult};

/// What to change; `None` keeps what is there.
#[derive(Debug, Clone, Default)]
pub struct ConnectionEdit {
    /// Its URL: Slack's API base, a Teams workflow's URL, Confluence's base.
    pub url: Option<String>,
    /// Confluence: the Basic-auth user; `Some("")` goes back to a personal
    /// access token.
    pub username: Option<String>,
    /// The token (Slack bot token, Confluence PAT or password).
    pub token: Option<SecretSource>,
    /// Confluence's webhook secret, or a Slack app's signing secret.
    pub hook_secret: Option<SecretSource>,
    /// Slack: the app-level token (Socket Mode).
    pub app_token: Option<SecretSource>,
}

impl ConnectionEdit {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.url.is_none()
            && self.username.is_none()
            && self.token.is_none()
            && self.hook_secret.is_none()
            && self.app_token.is_none()
    }
}

/// Connection `name` as it would be after `edit`, or why not: nothing is
/// written. Adapters that change several things check all of them first.
pub async fn check(
    store: &Store,
    name: &str,
    edit: &ConnectionEdit,
) -> AdminResult<(ConnectionRecord, Vec<&'static str>)> {
    let mut c = store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no connection named `{name}`")))?;
    let mut changed = Vec::new();
    if let Some(url) = edit.url.as_deref().map(str::trim) {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(AdminError::Invalid(format!(
                "`{}`: the URL must start with https:// (or http:// for a local test server)",
                redacted_url(url)
            )));
        }
        if reqwest::Url::parse(url).is_err() {
            return Err(AdminError::Invalid(format!(
                "`{}` is not a URL",
                redacted_url(url)
            )));
        }
        if url != c.url {
            c.url = url.to_owned();
            changed.push("url");
        }
    }
    if let Some(username) = edit.username.as_deref().map(str::trim) {
        if c.kind != ConnectionKind::Confluence {
            return Err(AdminError::Invalid(format!(
                "`{name}` is a {} connection; only Confluence connections have a username",
                c.kind.as_str()
            )));
        }
        let username = Some(username.to_owned()).filter(|u| !u.is_empty());
        if username != c.username {
            c.username = username;
            changed.push("username");
        }
    }
    let hook_secret_name = match c.kind {
        ConnectionKind::Slack => "signing secret",
        _ => "webhook secret",
    };
    for (what, source) in [
        ("token", &edit.token),
        (hook_secret_name, &edit.hook_secret),
        ("app-level token", &edit.app_token),
    ] {
        if let Some(source) = source {
            source
                .resolve()
                .map_err(|m| AdminError::Invalid(format!("{what}: {m}")))?;
        }
    }
    if let Some(token) = &edit.token {
        if c.kind == ConnectionKind::Teams {
            return Err(AdminError::Invalid(
                "a Teams connection has no token: its workflow URL carries its signature".into(),
            ));
        }
        c.secret = Some(token.clone());
        changed.push("token");
    }
    if let Some(secret) = &edit.hook_secret {
        if c.kind == ConnectionKind::Teams {
            return Err(AdminError::Invalid(
                "a Teams connection takes no webhook or signing secret (its URL carries its signature)".into(),
            ));
        }
        c.hook_secret = Some(secret.clone());
        changed.push(if c.kind == ConnectionKind::Slack {
            "signing_secret"
        } else {
            "webhook_secret"
        });
    }
    if let Some(app_token) = &edit.app_token {
        if c.kind != ConnectionKind::Slack {
            return Err(AdminError::Invalid(
                "an app-level token is for Slack connections (Socket Mode) only".into(),
            ));
        }
        let token = app_token
            .resolve()
            .map_err(|m| AdminError::Invalid(format!("app-level token: {m}")))?;
        if !token.expose().trim().starts_with("xapp-") {
            return Err(AdminError::Invalid(
                "the app-level token starts with xapp- (Slack app settings, Basic Information, App-Level Tokens, with the scope connections:write); the bot token (xoxb-) goes to the token".into(),
            ));
        }
        c.app_token = Some(app_token.clone());
        changed.push("app_token");
    }
    Ok((c, changed))
}

/// Applies `edit` to connection `name` and logs what changed
/// (`connection.edit`). Nothing changed, nothing written.
pub async fn edit(
    store: &Store,
    actor: &str,
    name: &str,
    edit: &ConnectionEdit,
) -> AdminResult<(ConnectionRecord, Vec<&'static str>)> {
    let (record, changed) = check(store, name, edit).await?;
    if changed.is_empty() {
        return Ok((record, changed));
    }
    let had_mark = record.health.clone();
    // Replacing keeps the name, kind, dry run, proxy, chat Confluence and
    // creation time, and forgets the health mark and the token check.
    store.add_connection(&record).await?;
    let record = store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no connection named `{name}`")))?;
    let detail = json!({
        "changed": changed,
        "url": redacted_url(&record.url),
        "health_cleared": had_mark.is_some(),
    });
    log_change(store, actor, ChangeAction::ConnectionEdit, name, detail).await;
    Ok((record, changed))
}
