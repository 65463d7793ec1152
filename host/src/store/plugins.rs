//! Installed plugins: the pinned component hash, the admin's grants, the
//! enabled flag and the failure breaker; how they are stored (the same SQL
//! on both backends).

use serde::Serialize;

use super::sql::{FromRow, Param, Row};
use super::{Store, StoreError, StoreResult, json};
use crate::manifest::{LimitRequest, Manifest};

/// An installed plugin.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PluginRecord {
    /// Its manifest name.
    pub name: String,
    /// Its manifest version.
    pub version: String,
    /// Its manifest description.
    pub description: String,
    /// The component's sha256, pinned at install: a different file will not load.
    pub sha256: String,
    /// Where install copied the package (manifest + component).
    pub dir: String,
    /// The manifest as installed.
    pub manifest: Manifest,
    /// Action kinds the admin granted (a subset of the manifest's).
    pub grants: Vec<String>,
    /// The limit requests the admin granted: installing grants what that
    /// version requests; an upgrade keeps this, so a larger request runs
    /// held to it until granted (see `plugin_trust::grants`).
    pub limit_grants: LimitRequest,
    /// Disabled plugins keep their bindings but are not called.
    pub enabled: bool,
    /// Consecutive failed calls; reset by a success.
    pub failures: u32,
    /// While set and in the future, the breaker is open and calls are skipped.
    pub breaker_until: Option<i64>,
    /// The failure that opened the breaker.
    pub breaker_error: Option<String>,
    /// When it was (last) installed.
    pub installed_at: i64,
}

impl FromRow for PluginRecord {
    const COLUMNS: &'static str = "name, version, description, sha256, dir, manifest, grants, enabled, failures, breaker_until, breaker_error, installed_at, limit_grants";

    fn from_row(r: &dyn Row) -> StoreResult<PluginRecord> {
        let manifest: Manifest = r.json("manifest", "plugin manifest")?;
        // Rows from before limit grants were stored: what the manifest
        // requests was in force, so it stays granted.
        let limit_grants = r
            .json_opt("limit_grants", "plugin limit grants")?
            .unwrap_or_else(|| manifest.limits.clone());
        Ok(PluginRecord {
            name: r.get("name")?,
            version: r.get("version")?,
            description: r.get("description")?,
            sha256: r.get("sha256")?,
            dir: r.get("dir")?,
            manifest,
            grants: r.json("grants", "plugin grants")?,
            limit_grants,
            enabled: r.get("enabled")?,
            failures: r.get("failures")?,
            breaker_until: r.get("breaker_until")?,
            breaker_error: r.get("breaker_error")?,
            installed_at: r.get("installed_at")?,
        })
    }
}

fn not_installed(name: &str) -> StoreError {
    StoreError::NotFound(format!("no plugin named `{name}` is installed"))
}

impl Store {
    /// Installs a plugin or upgrades the installed one of the same name,
    /// keeping its bindings and resetting its breaker.
    pub async fn install_plugin(&self, p: &PluginRecord) -> StoreResult<()> {
        self.execute(
            &format!(
                "INSERT INTO plugins ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, NULL, NULL, ?9, ?10)
                 ON CONFLICT (name) DO UPDATE SET version = ?2, description = ?3, sha256 = ?4,
                   dir = ?5, manifest = ?6, grants = ?7, enabled = ?8, failures = 0,
                   breaker_until = NULL, breaker_error = NULL, installed_at = ?9,
                   limit_grants = ?10",
                PluginRecord::COLUMNS
            ),
            vec![
                (&p.name).into(),
                (&p.version).into(),
                (&p.description).into(),
                (&p.sha256).into(),
                (&p.dir).into(),
                json(&p.manifest).into(),
                json(&p.grants).into(),
                p.enabled.into(),
                p.installed_at.into(),
                json(&p.limit_grants).into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// The installed plugin called `name`.
    pub async fn plugin(&self, name: &str) -> StoreResult<Option<PluginRecord>> {
        self.select_opt("FROM plugins WHERE name = ?1", vec![name.into()])
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
        self.select("FROM plugins ORDER BY name", vec![]).await
    }

    /// Sets the action kinds a plugin is granted (checked by the caller).
    pub async fn set_plugin_grants(&self, name: &str, grants: &[String]) -> StoreResult<()> {
        self.update_plugin(
            name,
            "UPDATE plugins SET grants = ?2 WHERE name = ?1",
            vec![name.into(), json(&grants).into()],
        )
        .await
    }

    /// Sets the limit requests a plugin is granted (see `plugin_trust::grants`).
    pub async fn set_plugin_limit_grants(
        &self,
        name: &str,
        granted: &LimitRequest,
    ) -> StoreResult<()> {
        self.update_plugin(
            name,
            "UPDATE plugins SET limit_grants = ?2 WHERE name = ?1",
            vec![name.into(), json(granted).into()],
        )
        .await
    }

    /// Enables or disables a plugin.
    pub async fn set_plugin_enabled(&self, name: &str, enabled: bool) -> StoreResult<()> {
        self.update_plugin(
            name,
            "UPDATE plugins SET enabled = ?2 WHERE name = ?1",
            vec![name.into(), enabled.into()],
        )
        .await
    }

    /// Closes a plugin's breaker and forgets its failure count.
    pub async fn reset_breaker(&self, name: &str) -> StoreResult<()> {
        self.update_plugin(
            name,
            "UPDATE plugins SET failures = 0, breaker_until = NULL, breaker_error = NULL WHERE name = ?1",
            vec![name.into()],
        )
        .await
    }

    /// Runs `sql` (an `UPDATE` of plugin `name`); refuses a plugin that is
    /// not installed.
    async fn update_plugin(&self, name: &str, sql: &str, params: Vec<Param>) -> StoreResult<()> {
        if self.execute(sql, params).await? == 0 {
            return Err(not_installed(name));
        }
        Ok(())
    }

    /// Removes a plugin and its bindings; returns how many bindings went with it.
    pub async fn remove_plugin(&self, name: &str) -> StoreResult<usize> {
        let changed = self
            .execute_all(vec![
                ("DELETE FROM bindings WHERE plugin = ?1", vec![name.into()]),
                ("DELETE FROM plugins WHERE name = ?1", vec![name.into()]),
            ])
            .await?;
        if changed[1] == 0 {
            return Err(not_installed(name));
        }
        Ok(changed[0] as usize)
    }
}
