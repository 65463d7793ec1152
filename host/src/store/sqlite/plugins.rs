use crate::manifest::Manifest;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;

use crate::store::{PluginRecord, StoreError, StoreResult, from_json, json};

const COLUMNS: &str = "name, version, description, sha256, dir, manifest, grants, enabled, failures, breaker_until, breaker_error, installed_at";

type Raw = (PluginRecord, String, String);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
    Ok((
        PluginRecord {
            name: r.get(0)?,
            version: r.get(1)?,
            description: r.get(2)?,
            sha256: r.get(3)?,
            dir: r.get(4)?,
            manifest: Manifest {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                wit: String::new(),
                component: String::new(),
                events: vec![],
                actions: vec![],
                settings: Default::default(),
                limits: Default::default(),
            },
            grants: vec![],
            enabled: r.get(7)?,
            failures: r.get(8)?,
            breaker_until: r.get(9)?,
            breaker_error: r.get(10)?,
            installed_at: r.get(11)?,
        },
        r.get(5)?,
        r.get(6)?,
    ))
}

fn decode((mut p, manifest, grants): Raw) -> StoreResult<PluginRecord> {
    p.manifest = from_json("plugin manifest", &manifest)?;
    p.grants = from_json("plugin grants", &grants)?;
    Ok(p)
}

impl SqliteStore {
    /// Installs a plugin or upgrades the installed one of the same name,
    /// keeping its bindings and resetting its breaker.
    pub fn install_plugin(&self, p: &PluginRecord) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO plugins ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, NULL, NULL, ?9)
                     ON CONFLICT (name) DO UPDATE SET version = ?2, description = ?3, sha256 = ?4,
                       dir = ?5, manifest = ?6, grants = ?7, enabled = ?8, failures = 0,
                       breaker_until = NULL, breaker_error = NULL, installed_at = ?9"
                ),
                params![
                    p.name,
                    p.version,
                    p.description,
                    p.sha256,
                    p.dir,
                    json(&p.manifest),
                    json(&p.grants),
                    p.enabled,
                    p.installed_at
                ],
            )
        })?;
        Ok(())
    }

    /// The installed plugin called `name`.
    pub fn plugin(&self, name: &str) -> StoreResult<Option<PluginRecord>> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM plugins WHERE name = ?1"),
                [name],
                row,
            )
            .optional()
        })?
        .map(decode)
        .transpose()
    }

    /// The installed plugin called `name`, or a not-found error naming it.
    pub fn require_plugin(&self, name: &str) -> StoreResult<PluginRecord> {
        self.plugin(name)?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no plugin named `{name}` is installed (see `pagehook plugin list`)"
            ))
        })
    }

    /// Every installed plugin, by name.
    pub fn plugins(&self) -> StoreResult<Vec<PluginRecord>> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM plugins ORDER BY name"))?;
            stmt.query_map([], row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(decode).collect()
    }

    /// Sets the action kinds a plugin is granted.
    pub fn set_plugin_grants(&self, name: &str, grants: &[String]) -> StoreResult<()> {
        self.update_plugin(
            name,
            "UPDATE plugins SET grants = ?2 WHERE name = ?1",
            params![name, json(&grants)],
        )
    }

    /// Enables or disables a plugin.
    pub fn set_plugin_enabled(&self, name: &str, enabled: bool) -> StoreResult<()> {
        self.update_plugin(
            name,
            "UPDATE plugins SET enabled = ?2 WHERE name = ?1",
            params![name, enabled],
        )
    }

    /// Closes a plugin's breaker and forgets its failure count.
    pub fn reset_breaker(&self, name: &str) -> StoreResult<()> {
        self.update_plugin(
            name,
            "UPDATE plugins SET failures = 0, breaker_until = NULL, breaker_error = NULL WHERE name = ?1",
            params![name],
        )
    }

    /// Runs `sql` (an `UPDATE` of plugin `name`); refuses a plugin that is not installed.
    fn update_plugin(&self, name: &str, sql: &str, args: impl rusqlite::Params) -> StoreResult<()> {
        if self.with(|conn| conn.execute(sql, args))? == 0 {
            return Err(StoreError::NotFound(format!(
                "no plugin named `{name}` is installed"
            )));
        }
        Ok(())
    }

    /// Removes a plugin and its bindings; returns how many bindings went with it.
    pub fn remove_plugin(&self, name: &str) -> StoreResult<usize> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let bindings = tx.execute("DELETE FROM bindings WHERE plugin = ?1", [name])?;
            let n = tx.execute("DELETE FROM plugins WHERE name = ?1", [name])?;
            tx.commit()?;
            Ok((n, bindings))
        })
        .and_then(|(n, bindings)| {
            if n == 0 {
                Err(StoreError::NotFound(format!(
                    "no plugin named `{name}` is installed"
                )))
            } else {
                Ok(bindings)
            }
        })
    }
}
