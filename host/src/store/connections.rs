//! Connections: the Slack workspaces, Teams workflow webhooks and Confluence
//! instances Pagehook talks to, and how they are stored (the same SQL on
//! both backends). Only the host ever sees their secrets; they are stored as
//! their source (`env:`, `file:`, `value:`) and never logged from here.

use serde::Serialize;

use super::sql::{Column, FromRow, Param, Row, parsed};
use super::{Store, StoreError, StoreResult, now_ms};
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
    /// A Teams bot (a single-tenant Microsoft Entra app registered as an
    /// Azure Bot): personal messages and chat through the Bot Connector.
    #[serde(rename = "teams-bot")]
    TeamsBot,
    /// A Confluence Data Center instance: a webhook source and a REST API.
    Confluence,
}

impl ConnectionKind {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Slack => "slack",
            ConnectionKind::Teams => "teams",
            ConnectionKind::TeamsBot => "teams-bot",
            ConnectionKind::Confluence => "confluence",
        }
    }

    pub(crate) fn parse(s: &str) -> StoreResult<ConnectionKind> {
        match s {
            "slack" => Ok(ConnectionKind::Slack),
            "teams" => Ok(ConnectionKind::Teams),
            "teams-bot" => Ok(ConnectionKind::TeamsBot),
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
    /// Base URL (Slack API, Confluence), webhook URL (Teams, a secret
    /// itself) or Microsoft Entra ID's sign-in base (Teams bot).
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
    /// Teams bot: the Microsoft Entra app (client) id, also the bot's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "00000000-0000-0000-0000-000000000000")]
    pub app_id: Option<String>,
    /// Teams bot: the Entra tenant the single-tenant app belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
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
            app_id: None,
            tenant_id: None,
        }
    }
}

impl Column for ConnectionKind {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<ConnectionKind>> {
        row.text(column)?
            .map(|s| ConnectionKind::parse(&s))
            .transpose()
    }
}

impl Column for SecretSource {
    /// A secret's source (`env:`, `file:`, `value:`), never its value.
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<SecretSource>> {
        parsed(row, column, "secret", SecretSource::from_spec)
    }
}

impl Column for ProxyOverride {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<ProxyOverride>> {
        parsed(row, column, "connection proxy", ProxyOverride::parse)
    }
}

impl FromRow for ConnectionRecord {
    const COLUMNS: &'static str = "name, kind, url, username, secret, hook_secret, dry_run, created_at, health_error, \
         token_name, token_expires_at, token_checked_at, confluence, app_token, proxy, app_id, tenant_id";

    fn from_row(r: &dyn Row) -> StoreResult<ConnectionRecord> {
        let token = match (r.get("token_name")?, r.get("token_checked_at")?) {
            (Some(name), Some(checked_at)) => Some(TokenExpiry {
                name,
                expires_at: r.get("token_expires_at")?,
                checked_at,
            }),
            _ => None,
        };
        Ok(ConnectionRecord {
            name: r.get("name")?,
            kind: r.get("kind")?,
            url: r.get("url")?,
            username: r.get("username")?,
            secret: r.get("secret")?,
            hook_secret: r.get("hook_secret")?,
            app_token: r.get("app_token")?,
            dry_run: r.get("dry_run")?,
            created_at: r.get("created_at")?,
            health: r.get("health_error")?,
            token,
            confluence: r.get("confluence")?,
            proxy: r.get("proxy")?,
            app_id: r.get("app_id")?,
            tenant_id: r.get("tenant_id")?,
        })
    }
}

impl Store {
    /// Adds a connection, or replaces the one with the same name and kind
    /// (how an admin rotates a token); a name taken by another kind is refused.
    pub async fn add_connection(&self, c: &ConnectionRecord) -> StoreResult<()> {
        let spec = |s: &Option<SecretSource>| Param::from(s.as_ref().map(SecretSource::to_spec));
        // A name taken by another kind changes nothing: decided in the
        // statement, so two replicas adding the same name at once cannot
        // both win. Replacing forgets the health and the token check.
        let add = format!(
            "INSERT INTO connections ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, NULL, NULL, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, url = excluded.url,
               username = excluded.username, secret = excluded.secret, hook_secret = excluded.hook_secret,
               dry_run = excluded.dry_run, created_at = excluded.created_at, health_error = NULL,
               token_name = NULL, token_expires_at = NULL, token_checked_at = NULL,
               confluence = excluded.confluence, app_token = excluded.app_token, proxy = excluded.proxy,
               app_id = excluded.app_id, tenant_id = excluded.tenant_id
             WHERE connections.kind = excluded.kind",
            ConnectionRecord::COLUMNS
        );
        let written = self
            .execute(
                &add,
                vec![
                    (&c.name).into(),
                    c.kind.as_str().into(),
                    (&c.url).into(),
                    (&c.username).into(),
                    spec(&c.secret),
                    spec(&c.hook_secret),
                    c.dry_run.into(),
                    c.created_at.into(),
                    (&c.confluence).into(),
                    spec(&c.app_token),
                    c.proxy.as_ref().map(ProxyOverride::as_str).into(),
                    (&c.app_id).into(),
                    (&c.tenant_id).into(),
                ],
            )
            .await?;
        if written == 0 {
            let existing = self
                .connection(&c.name)
                .await?
                .map_or("another", |e| e.kind.as_str());
            return Err(StoreError::Conflict(format!(
                "connection `{}` already exists as a {existing} connection",
                c.name
            )));
        }
        Ok(())
    }

    /// The connection called `name`, if any.
    pub async fn connection(&self, name: &str) -> StoreResult<Option<ConnectionRecord>> {
        self.select_opt("FROM connections WHERE name = ?1", vec![name.into()])
            .await
    }

    /// Every connection, by name.
    pub async fn connections(&self) -> StoreResult<Vec<ConnectionRecord>> {
        self.select("FROM connections ORDER BY name", vec![]).await
    }

    /// Removes a connection; true if it existed.
    pub async fn remove_connection(&self, name: &str) -> StoreResult<bool> {
        let n = self
            .execute("DELETE FROM connections WHERE name = ?1", vec![name.into()])
            .await?;
        Ok(n > 0)
    }

    /// Records what a check of a Confluence connection's personal access token
    /// found (`None` forgets it). A connection that no longer exists is ignored.
    pub async fn set_token_expiry(
        &self,
        name: &str,
        token: Option<&TokenExpiry>,
    ) -> StoreResult<()> {
        self.execute(
            "UPDATE connections SET token_name = ?2, token_expires_at = ?3, token_checked_at = ?4 WHERE name = ?1",
            vec![
                name.into(),
                token.map(|t| t.name.as_str()).into(),
                token.and_then(|t| t.expires_at).into(),
                token.map(|t| t.checked_at).into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Marks a connection unhealthy with `error`, or healthy with `None`
    /// (what `pagehook connections` shows under HEALTH).
    pub async fn set_connection_health(&self, name: &str, error: Option<&str>) -> StoreResult<()> {
        self.execute(
            "UPDATE connections SET health_error = ?2 WHERE name = ?1",
            vec![name.into(), error.into()],
        )
        .await?;
        Ok(())
    }

    /// Marks a connection dry-run (deliveries recorded, never sent) or live.
    pub async fn set_connection_dry_run(&self, name: &str, dry_run: bool) -> StoreResult<()> {
        self.update_connection(
            "UPDATE connections SET dry_run = ?2 WHERE name = ?1",
            vec![name.into(), dry_run.into()],
            || format!("no connection named `{name}`"),
        )
        .await
    }

    /// Sets a connection's own proxy (`direct` or a URL, as
    /// `ProxyOverride::as_str`, checked by the caller) or, with `None`, puts
    /// it back on the global one.
    pub async fn set_connection_proxy(&self, name: &str, proxy: Option<&str>) -> StoreResult<()> {
        self.update_connection(
            "UPDATE connections SET proxy = ?2 WHERE name = ?1",
            vec![name.into(), proxy.into()],
            || format!("no connection named `{name}`"),
        )
        .await
    }

    /// Names the Confluence connection a Slack connection's chat uses
    /// (`None`: the only one with a token).
    pub async fn set_slack_confluence(
        &self,
        name: &str,
        confluence: Option<&str>,
    ) -> StoreResult<()> {
        self.update_connection(
            "UPDATE connections SET confluence = ?2 WHERE name = ?1 AND kind = 'slack'",
            vec![name.into(), confluence.into()],
            || format!("no Slack connection named `{name}`"),
        )
        .await
    }

    /// Runs `sql` (an `UPDATE` of one connection); `missing` says what was
    /// not found when it changed nothing.
    async fn update_connection(
        &self,
        sql: &str,
        params: Vec<Param>,
        missing: impl FnOnce() -> String,
    ) -> StoreResult<()> {
        if self.execute(sql, params).await? == 0 {
            return Err(StoreError::NotFound(missing()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_round_trip_but_never_serialize() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("p.db")).unwrap();
        let mut c = ConnectionRecord::new("acme", ConnectionKind::Slack, "https://slack.com/api/");
        c.secret = Some(SecretSource::Value("xoxb-123-secret".into()));
        c.app_token = Some(SecretSource::Value("xapp-1-A1-secret".into()));
        store.add_connection(&c).await.unwrap();
        let back = store.connection("acme").await.unwrap().unwrap();
        assert_eq!(back, c);
        let shown = serde_json::to_string(&back).unwrap();
        assert!(!shown.contains("xoxb-123-secret"), "{shown}");
        assert!(!shown.contains("xapp-1-A1-secret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");

        let teams = ConnectionRecord::new("eng", ConnectionKind::Teams, "https://x/wf?sig=abc");
        store.add_connection(&teams).await.unwrap();
        let shown = serde_json::to_string(&store.connection("eng").await.unwrap()).unwrap();
        assert!(!shown.contains("sig=abc"), "{shown}");

        let clash = ConnectionRecord::new("acme", ConnectionKind::Teams, "https://y");
        assert!(matches!(
            store.add_connection(&clash).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(store.remove_connection("acme").await.unwrap());
        assert!(!store.remove_connection("acme").await.unwrap());
    }

    #[tokio::test]
    async fn token_expiry_is_kept_until_the_connection_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("p.db")).unwrap();
        let mut c = ConnectionRecord::new("prod", ConnectionKind::Confluence, "https://wiki");
        c.secret = Some(SecretSource::Env("PAT".into()));
        store.add_connection(&c).await.unwrap();
        assert_eq!(store.connection("prod").await.unwrap().unwrap().token, None);
        let token = TokenExpiry {
            name: "sidecar".into(),
            expires_at: Some(1_000),
            checked_at: 500,
        };
        store.set_token_expiry("prod", Some(&token)).await.unwrap();
        store
            .set_connection_health("prod", Some("token expired"))
            .await
            .unwrap();
        let back = store.connection("prod").await.unwrap().unwrap();
        assert_eq!(back.token, Some(token));
        assert_eq!(back.health.as_deref(), Some("token expired"));
        let shown = serde_json::to_value(&back).unwrap();
        assert_eq!(shown["token"]["expires_at"], 1_000);
        store.add_connection(&c).await.unwrap();
        let fresh = store.connection("prod").await.unwrap().unwrap();
        assert_eq!(
            (fresh.token, fresh.health),
            (None, None),
            "connect again resets"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_of_another_kind_is_a_conflict_and_connect_again_resets() {
        let (store, _db) = crate::store::postgres::testing::fresh().await;
        let store = crate::store::postgres::testing::boundary(&store);
        let mut c = ConnectionRecord::new("acme", ConnectionKind::Slack, "https://slack.com/api/");
        c.secret = Some(SecretSource::Value("xoxb-123-secret".into()));
        store.add_connection(&c).await.unwrap();
        assert_eq!(store.connection("acme").await.unwrap().unwrap(), c);
        store
            .set_connection_health("acme", Some("refused"))
            .await
            .unwrap();
        let token = TokenExpiry {
            name: "t".into(),
            expires_at: None,
            checked_at: 1,
        };
        store.set_token_expiry("acme", Some(&token)).await.unwrap();
        assert_eq!(
            store.connection("acme").await.unwrap().unwrap().token,
            Some(token)
        );
        store.add_connection(&c).await.unwrap();
        let fresh = store.connection("acme").await.unwrap().unwrap();
        assert_eq!((fresh.health, fresh.token), (None, None));

        let clash = ConnectionRecord::new("acme", ConnectionKind::Teams, "https://y");
        match store.add_connection(&clash).await {
            Err(StoreError::Conflict(m)) => {
                assert_eq!(m, "connection `acme` already exists as a slack connection")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.set_connection_dry_run("nope", true).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(store.remove_connection("acme").await.unwrap());
        assert!(!store.remove_connection("acme").await.unwrap());
    }
}
