//! Connections on PostgreSQL: the same rows and messages as SQLite's
//! (`sqlite/connections.rs`). Secrets are stored as their source
//! (`env:`, `file:`, `value:`) and must never be logged from here.

use tokio_postgres::Row;

use super::{PgResult, PgStore};
use crate::secret::SecretSource;
use crate::store::{ConnectionKind, ConnectionRecord, StoreError, StoreResult, TokenExpiry};

const COLUMNS: &str = "name, kind, url, username, secret, hook_secret, dry_run, created_at, health_error, \
     token_name, token_expires_at, token_checked_at, confluence, app_token, proxy";

fn source(s: Option<String>) -> Result<Option<SecretSource>, StoreError> {
    s.map(|s| {
        SecretSource::from_spec(&s).map_err(|message| StoreError::Corrupt {
            what: "secret",
            message,
        })
    })
    .transpose()
}

fn decode(r: &Row) -> PgResult<ConnectionRecord> {
    let token_name: Option<String> = r.try_get(9)?;
    let token_checked_at: Option<i64> = r.try_get(11)?;
    let token = match (token_name, token_checked_at) {
        (Some(name), Some(checked_at)) => Some(TokenExpiry {
            name,
            expires_at: r.try_get(10)?,
            checked_at,
        }),
        _ => None,
    };
    Ok(ConnectionRecord {
        name: r.try_get(0)?,
        kind: ConnectionKind::parse(r.try_get(1)?)?,
        url: r.try_get(2)?,
        username: r.try_get(3)?,
        secret: source(r.try_get(4)?)?,
        hook_secret: source(r.try_get(5)?)?,
        dry_run: r.try_get(6)?,
        created_at: r.try_get(7)?,
        health: r.try_get(8)?,
        token,
        confluence: r.try_get(12)?,
        app_token: source(r.try_get(13)?)?,
        proxy: r
            .try_get::<_, Option<String>>(14)?
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

impl PgStore {
    /// Adds a connection, or replaces the one with the same name and kind
    /// (how an admin rotates a token); a name taken by another kind is
    /// refused. Decided in the statement itself, so two replicas adding the
    /// same name at once cannot both win.
    pub async fn add_connection(&self, c: &ConnectionRecord) -> StoreResult<()> {
        let written = self
            .run(async {
                Ok(self
                    .client()
                    .await?
                    .execute(
                        &format!(
                            "INSERT INTO connections ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL, NULL, $9, $10, $11)
                             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, url = excluded.url,
                               username = excluded.username, secret = excluded.secret, hook_secret = excluded.hook_secret,
                               dry_run = excluded.dry_run, created_at = excluded.created_at, health_error = NULL,
                               token_name = NULL, token_expires_at = NULL, token_checked_at = NULL,
                               confluence = excluded.confluence, app_token = excluded.app_token,
                               proxy = excluded.proxy
                             WHERE connections.kind = excluded.kind"
                        ),
                        &[
                            &c.name,
                            &c.kind.as_str(),
                            &c.url,
                            &c.username,
                            &c.secret.as_ref().map(SecretSource::to_spec),
                            &c.hook_secret.as_ref().map(SecretSource::to_spec),
                            &c.dry_run,
                            &c.created_at,
                            &c.confluence,
                            &c.app_token.as_ref().map(SecretSource::to_spec),
                            &c.proxy.as_ref().map(|p| p.as_str()),
                        ],
                    )
                    .await?)
            })
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
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM connections WHERE name = $1"),
                    &[&name],
                )
                .await?;
            row.as_ref().map(decode).transpose()
        })
        .await
    }

    /// Every connection, by name.
    pub async fn connections(&self) -> StoreResult<Vec<ConnectionRecord>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(
                    &format!("SELECT {COLUMNS} FROM connections ORDER BY name"),
                    &[],
                )
                .await?;
            rows.iter().map(decode).collect()
        })
        .await
    }

    /// Removes a connection; true if it existed.
    pub async fn remove_connection(&self, name: &str) -> StoreResult<bool> {
        self.run(async {
            let n = self
                .client()
                .await?
                .execute("DELETE FROM connections WHERE name = $1", &[&name])
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Records what a check of a Confluence connection's personal access token
    /// found (`None` forgets it). A connection that no longer exists is ignored.
    pub async fn set_token_expiry(
        &self,
        name: &str,
        token: Option<&TokenExpiry>,
    ) -> StoreResult<()> {
        self.run(async {
            self.client()
                .await?
                .execute(
                    "UPDATE connections SET token_name = $2, token_expires_at = $3, token_checked_at = $4 WHERE name = $1",
                    &[
                        &name,
                        &token.map(|t| t.name.as_str()),
                        &token.and_then(|t| t.expires_at),
                        &token.map(|t| t.checked_at),
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Marks a connection unhealthy with `error`, or healthy with `None`.
    pub async fn set_connection_health(&self, name: &str, error: Option<&str>) -> StoreResult<()> {
        self.run(async {
            self.client()
                .await?
                .execute(
                    "UPDATE connections SET health_error = $2 WHERE name = $1",
                    &[&name, &error],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Marks a connection dry-run (deliveries recorded, never sent) or live.
    pub async fn set_connection_dry_run(&self, name: &str, dry_run: bool) -> StoreResult<()> {
        let n = self
            .run(async {
                Ok(self
                    .client()
                    .await?
                    .execute(
                        "UPDATE connections SET dry_run = $2 WHERE name = $1",
                        &[&name, &dry_run],
                    )
                    .await?)
            })
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no connection named `{name}`"
            )));
        }
        Ok(())
    }

    /// Sets a connection's own proxy (`ProxyOverride::as_str`, checked by
    /// the caller) or, with `None`, puts it back on the global one.
    pub async fn set_connection_proxy(&self, name: &str, proxy: Option<&str>) -> StoreResult<()> {
        let n = self
            .run(async {
                Ok(self
                    .client()
                    .await?
                    .execute(
                        "UPDATE connections SET proxy = $2 WHERE name = $1",
                        &[&name, &proxy],
                    )
                    .await?)
            })
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no connection named `{name}`"
            )));
        }
        Ok(())
    }

    /// Names the Confluence connection a Slack connection's chat uses
    /// (`None`: the only one with a token).
    pub async fn set_slack_confluence(
        &self,
        name: &str,
        confluence: Option<&str>,
    ) -> StoreResult<()> {
        let n = self
            .run(async {
                Ok(self
                    .client()
                    .await?
                    .execute(
                        "UPDATE connections SET confluence = $2 WHERE name = $1 AND kind = 'slack'",
                        &[&name, &confluence],
                    )
                    .await?)
            })
            .await?;
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
    use super::super::testing::fresh;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_of_another_kind_is_a_conflict_and_connect_again_resets() {
        let (store, _db) = fresh().await;
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
