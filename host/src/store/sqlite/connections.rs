use crate::secret::SecretSource;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;

use crate::store::{ConnectionKind, ConnectionRecord, StoreError, StoreResult, TokenExpiry};

const COLUMNS: &str = "name, kind, url, username, secret, hook_secret, dry_run, created_at, health_error, \
     token_name, token_expires_at, token_checked_at, confluence, app_token, proxy";

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
            confluence: r.get(12)?,
            app_token: r.get(13)?,
            proxy: r.get(14)?,
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
    confluence: Option<String>,
    app_token: Option<String>,
    proxy: Option<String>,
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
        app_token: source(raw.app_token)?,
        name: raw.name,
        url: raw.url,
        username: raw.username,
        dry_run: raw.dry_run,
        created_at: raw.created_at,
        health: raw.health,
        confluence: raw.confluence,
        proxy: raw
            .proxy
            .map(|p| {
                crate::http::proxy::ProxyOverride::parse(&p).map_err(|message| {
                    StoreError::Corrupt {
                        what: "connection proxy",
                        message,
                    }
                })
            })
            .transpose()?,
    })
}

impl SqliteStore {
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
                &format!("INSERT OR REPLACE INTO connections ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, NULL, NULL, ?9, ?10, ?11)"),
                params![
                    c.name,
                    c.kind.as_str(),
                    c.url,
                    c.username,
                    c.secret.as_ref().map(SecretSource::to_spec),
                    c.hook_secret.as_ref().map(SecretSource::to_spec),
                    c.dry_run,
                    c.created_at,
                    c.confluence,
                    c.app_token.as_ref().map(SecretSource::to_spec),
                    c.proxy.as_ref().map(|p| p.as_str())
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

    /// Sets a connection's own proxy (`ProxyOverride::as_str`, checked by
    /// the caller) or, with `None`, puts it back on the global one.
    pub fn set_connection_proxy(&self, name: &str, proxy: Option<&str>) -> StoreResult<()> {
        let n = self.with(|conn| {
            conn.execute(
                "UPDATE connections SET proxy = ?2 WHERE name = ?1",
                params![name, proxy],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no connection named `{name}`"
            )));
        }
        Ok(())
    }

    /// Names the Confluence connection a Slack connection's chat uses
    /// (`None`: the only one with a token).
    pub fn set_slack_confluence(&self, name: &str, confluence: Option<&str>) -> StoreResult<()> {
        let n = self.with(|conn| {
            conn.execute(
                "UPDATE connections SET confluence = ?2 WHERE name = ?1 AND kind = 'slack'",
                params![name, confluence],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no Slack connection named `{name}`"
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
        let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
        let mut c = ConnectionRecord::new("acme", ConnectionKind::Slack, "https://slack.com/api/");
        c.secret = Some(SecretSource::Value("xoxb-123-secret".into()));
        c.app_token = Some(SecretSource::Value("xapp-1-A1-secret".into()));
        store.add_connection(&c).unwrap();
        let back = store.connection("acme").unwrap().unwrap();
        assert_eq!(back, c);
        let shown = serde_json::to_string(&back).unwrap();
        assert!(!shown.contains("xoxb-123-secret"), "{shown}");
        assert!(!shown.contains("xapp-1-A1-secret"), "{shown}");
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
        let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
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
