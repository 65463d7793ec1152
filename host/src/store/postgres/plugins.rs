//! Installed plugins on PostgreSQL: the same rows and messages as SQLite's
//! (`sqlite/plugins.rs`). Never decides anything about a plugin itself.

use tokio_postgres::Row;

use super::{PgResult, PgStore, count};
use crate::store::{PluginRecord, StoreError, StoreResult, from_json, json};

const COLUMNS: &str = "name, version, description, sha256, dir, manifest, grants, enabled, failures, breaker_until, breaker_error, installed_at";

fn decode(r: &Row) -> PgResult<PluginRecord> {
    let manifest: String = r.try_get(5)?;
    let grants: String = r.try_get(6)?;
    Ok(PluginRecord {
        name: r.try_get(0)?,
        version: r.try_get(1)?,
        description: r.try_get(2)?,
        sha256: r.try_get(3)?,
        dir: r.try_get(4)?,
        manifest: from_json("plugin manifest", &manifest)?,
        grants: from_json("plugin grants", &grants)?,
        enabled: r.try_get(7)?,
        failures: count(r.try_get(8)?),
        breaker_until: r.try_get(9)?,
        breaker_error: r.try_get(10)?,
        installed_at: r.try_get(11)?,
    })
}

fn not_installed(name: &str) -> StoreError {
    StoreError::NotFound(format!("no plugin named `{name}` is installed"))
}

impl PgStore {
    /// Installs a plugin or upgrades the installed one of the same name,
    /// keeping its bindings and resetting its breaker.
    pub async fn install_plugin(&self, p: &PluginRecord) -> StoreResult<()> {
        self.run(async {
            self.client()
                .await?
                .execute(
                    &format!(
                        "INSERT INTO plugins ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL, NULL, $9)
                         ON CONFLICT (name) DO UPDATE SET version = $2, description = $3, sha256 = $4,
                           dir = $5, manifest = $6, grants = $7, enabled = $8, failures = 0,
                           breaker_until = NULL, breaker_error = NULL, installed_at = $9"
                    ),
                    &[
                        &p.name,
                        &p.version,
                        &p.description,
                        &p.sha256,
                        &p.dir,
                        &json(&p.manifest),
                        &json(&p.grants),
                        &p.enabled,
                        &p.installed_at,
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// The installed plugin called `name`.
    pub async fn plugin(&self, name: &str) -> StoreResult<Option<PluginRecord>> {
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM plugins WHERE name = $1"),
                    &[&name],
                )
                .await?;
            row.as_ref().map(decode).transpose()
        })
        .await
    }

    /// The installed plugin called `name`, or a not-found error naming it.
    pub async fn require_plugin(&self, name: &str) -> StoreResult<PluginRecord> {
        self.plugin(name).await?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no plugin named `{name}` is installed (see `pagehook plugin list`)"
            ))
        })
    }

    /// Every installed plugin, by name.
    pub async fn plugins(&self) -> StoreResult<Vec<PluginRecord>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(&format!("SELECT {COLUMNS} FROM plugins ORDER BY name"), &[])
                .await?;
            rows.iter().map(decode).collect()
        })
        .await
    }

    /// Sets the action kinds a plugin is granted.
    pub async fn set_plugin_grants(&self, name: &str, grants: &[String]) -> StoreResult<()> {
        let grants = json(&grants);
        self.update_plugin(
            name,
            "UPDATE plugins SET grants = $2 WHERE name = $1",
            &[&name, &grants],
        )
        .await
    }

    /// Enables or disables a plugin.
    pub async fn set_plugin_enabled(&self, name: &str, enabled: bool) -> StoreResult<()> {
        self.update_plugin(
            name,
            "UPDATE plugins SET enabled = $2 WHERE name = $1",
            &[&name, &enabled],
        )
        .await
    }

    /// Closes a plugin's breaker and forgets its failure count.
    pub async fn reset_breaker(&self, name: &str) -> StoreResult<()> {
        self.update_plugin(
            name,
            "UPDATE plugins SET failures = 0, breaker_until = NULL, breaker_error = NULL WHERE name = $1",
            &[&name],
        )
        .await
    }

    /// Runs `sql` (an `UPDATE` of plugin `name`); refuses a plugin that is not installed.
    async fn update_plugin(
        &self,
        name: &str,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<()> {
        let n = self
            .run(async { Ok(self.client().await?.execute(sql, args).await?) })
            .await?;
        if n == 0 {
            return Err(not_installed(name));
        }
        Ok(())
    }

    /// Removes a plugin and its bindings; returns how many bindings went with it.
    pub async fn remove_plugin(&self, name: &str) -> StoreResult<usize> {
        let (n, bindings) = self
            .run(async {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                let bindings = tx
                    .execute("DELETE FROM bindings WHERE plugin = $1", &[&name])
                    .await?;
                let n = tx
                    .execute("DELETE FROM plugins WHERE name = $1", &[&name])
                    .await?;
                tx.commit().await?;
                Ok((n, bindings as usize))
            })
            .await?;
        if n == 0 {
            return Err(not_installed(name));
        }
        Ok(bindings)
    }
}
