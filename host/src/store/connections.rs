//! Connections: the Slack workspaces, Teams workflow webhooks and Confluence
//! instances Pagehook talks to. Only the host ever sees their secrets.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, StoreResult, now_ms};
use crate::secret::SecretSource;

/// What a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

    fn parse(s: &str) -> StoreResult<ConnectionKind> {
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub secret: Option<SecretSource>,
    /// Confluence webhook signing secret.
    #[serde(serialize_with = "redact")]
    pub hook_secret: Option<SecretSource>,
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
}

/// A Confluence personal access token's expiry, as last read from
/// `GET /rest/pat/latest/tokens` (see `source::client::token_in_use` for
/// which token that is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
            dry_run: false,
            created_at: now_ms(),
            health: None,
            token: None,
        }
    }
}

const COLUMNS: &str = "name, kind, url, username, secret, hook_secret, dry_run, created_at, health_error, \
     token_name, token_expires_at, token_checked_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ConnectionRecordRaw, String)> {
    Ok((
        ConnectionRecordRaw {
            name: r.get(0)?,
            url: r.get(2)?,
            username: r.get(3)?,
            secret: r.get(4)?,
            hook_secret: r.get(5)?,
            dry_run: r.get(6)?,
            created_at: r.get(7)?,
            health: r.get(8)?,
            token_name: r.get(9)?,
            token_expires_at: r.get(10)?,
            token_checked_at: r.get(11)?,
        },
        r.get(1)?,
    ))
}

struct ConnectionRecordRaw {
    name: String,
    url: String,
    username: Option<String>,
    secret: Option<String>,
    hook_secret: Option<String>,
    dry_run: bool,
    created_at: i64,
    health: Option<String>,
    token_name: Option<String>,
    token_expires_at: Option<i64>,
    token_checked_at: Option<i64>,
}

fn decode((raw, kind): (ConnectionRecordRaw, String)) -> StoreResult<ConnectionRecord> {
    let source = |s: Option<String>| -> StoreResult<Option<SecretSource>> {
        s.map(|s| {
            SecretSource::from_spec(&s).map_err(|message| StoreError::Corrupt {
                what: "secret",
                message,
            })
        })
        .transpose()
    };
    let token = match (raw.token_name, raw.token_checked_at) {
        (Some(name), Some(checked_at)) => Some(TokenExpiry {
            name,
            expires_at: raw.token_expires_at,
            checked_at,
        }),
        _ => None,
    };
    Ok(ConnectionRecord {
        token,
        kind: ConnectionKind::parse(&kind)?,
        secret: source(raw.secret)?,
        hook_secret: source(raw.hook_secret)?,
        name: raw.name,
        url: raw.url,
        username: raw.username,
        dry_run: raw.dry_run,
        created_at: raw.created_at,
        health: raw.health,
    })
}

impl Store {
    /// Adds a connection, or replaces the one with the same name and kind
    /// (how an admin rotates a token); a name taken by another kind is refused.
    pub fn add_connection(&self, c: &ConnectionRecord) -> StoreResult<()> {
        if let Some(existing) = self.connection(&c.name)?
            && existing.kind != c.kind
        {
            return Err(StoreError::Conflict(format!(
                "connection `{}` already exists as a {} connection",
                c.name,
                existing.kind.as_str()
            )));
        }
        self.with(|conn| {
            conn.execute(
                &format!("INSERT OR REPLACE INTO connections ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, NULL, NULL)"),
                params![
                    c.name,
                    c.kind.as_str(),
                    c.url,
                    c.username,
                    c.secret.as_ref().map(SecretSource::to_spec),
                    c.hook_secret.as_ref().map(SecretSource::to_spec),
                    c.dry_run,
                    c.created_at
                ],
            )
        })?;
        Ok(())
    }

    /// The connection called `name`, if any.
    pub fn connection(&self, name: &str) -> StoreResult<Option<ConnectionRecord>> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM connections WHERE name = ?1"),
                [name],
                row,
            )
            .optional()
        })?
        .map(decode)
        .transpose()
    }

    /// Every connection, by name.
    pub fn connections(&self) -> StoreResult<Vec<ConnectionRecord>> {
        let rows = self.with(|conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {COLUMNS} FROM connections ORDER BY name"))?;
            stmt.query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(decode).collect()
    }

    /// Removes a connection; true if it existed.
    pub fn remove_connection(&self, name: &str) -> StoreResult<bool> {
        Ok(self.with(|conn| conn.execute("DELETE FROM connections WHERE name = ?1", [name]))? > 0)
    }

    /// Records what a check of a Confluence connection's personal access token
    /// found (`None` forgets it). A connection that no longer exists is ignored.
    pub fn set_token_expiry(&self, name: &str, token: Option<&TokenExpiry>) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE connections SET token_name = ?2, token_expires_at = ?3, token_checked_at = ?4 WHERE name = ?1",
                params![
                    name,
                    token.map(|t| t.name.as_str()),
                    token.and_then(|t| t.expires_at),
                    token.map(|t| t.checked_at)
                ],
            )
        })?;
        Ok(())
    }

    /// Marks a connection unhealthy with `error`, or healthy with `None`
    /// (what `pagehook connections` shows under HEALTH).
    pub fn set_connection_health(&self, name: &str, error: Option<&str>) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE connections SET health_error = ?2 WHERE name = ?1",
                params![name, error],
            )
        })?;
        Ok(())
    }

    /// Marks a connection dry-run (deliveries recorded, never sent) or live.
    pub fn set_connection_dry_run(&self, name: &str, dry_run: bool) -> StoreResult<()> {
        let n = self.with(|conn| {
            conn.execute(
                "UPDATE connections SET dry_run = ?2 WHERE name = ?1",
                params![name, dry_run],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no connection named `{name}`"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_but_never_serialize() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let mut c = ConnectionRecord::new("acme", ConnectionKind::Slack, "https://slack.com/api/");
        c.secret = Some(SecretSource::Value("xoxb-123-secret".into()));
        store.add_connection(&c).unwrap();
        let back = store.connection("acme").unwrap().unwrap();
        assert_eq!(back, c);
        let shown = serde_json::to_string(&back).unwrap();
        assert!(!shown.contains("xoxb-123-secret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");

        let teams = ConnectionRecord::new("eng", ConnectionKind::Teams, "https://x/wf?sig=abc");
        store.add_connection(&teams).unwrap();
        let shown = serde_json::to_string(&store.connection("eng").unwrap()).unwrap();
        assert!(!shown.contains("sig=abc"), "{shown}");

        let clash = ConnectionRecord::new("acme", ConnectionKind::Teams, "https://y");
        assert!(matches!(
            store.add_connection(&clash),
            Err(StoreError::Conflict(_))
        ));
        assert!(store.remove_connection("acme").unwrap());
        assert!(!store.remove_connection("acme").unwrap());
    }

    #[test]
    fn token_expiry_is_kept_until_the_connection_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let mut c = ConnectionRecord::new("prod", ConnectionKind::Confluence, "https://wiki");
        c.secret = Some(SecretSource::Env("PAT".into()));
        store.add_connection(&c).unwrap();
        assert_eq!(store.connection("prod").unwrap().unwrap().token, None);
        let token = TokenExpiry {
            name: "sidecar".into(),
            expires_at: Some(1_000),
            checked_at: 500,
        };
        store.set_token_expiry("prod", Some(&token)).unwrap();
        store
            .set_connection_health("prod", Some("token expired"))
            .unwrap();
        let back = store.connection("prod").unwrap().unwrap();
        assert_eq!(back.token, Some(token));
        assert_eq!(back.health.as_deref(), Some("token expired"));
        let shown = serde_json::to_value(&back).unwrap();
        assert_eq!(shown["token"]["expires_at"], 1_000);
        store.add_connection(&c).unwrap();
        let fresh = store.connection("prod").unwrap().unwrap();
        assert_eq!(
            (fresh.token, fresh.health),
            (None, None),
            "connect again resets"
        );
    }
}
