use rusqlite::{OptionalExtension, params};

use super::SqliteStore;

use crate::store::{Binding, NewBinding, StoreError, StoreResult, from_json, json, now_ms};

const COLUMNS: &str =
    "id, plugin, source, scope, events, destinations, settings, dry_run, created_at";

type Raw = (
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    bool,
    i64,
);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn decode(raw: Raw) -> StoreResult<Binding> {
    let (id, plugin, source, scope, events, destinations, settings, dry_run, created_at) = raw;
    Ok(Binding {
        id,
        plugin,
        source,
        scope: scope.parse().map_err(|message| StoreError::Corrupt {
            what: "binding scope",
            message,
        })?,
        events: from_json("binding events", &events)?,
        destinations: from_json("binding destinations", &destinations)?,
        settings: from_json("binding settings", &settings)?,
        dry_run,
        created_at,
    })
}

impl SqliteStore {
    /// Stores a binding (already validated by the caller) and returns it.
    pub fn add_binding(&self, b: &NewBinding) -> StoreResult<Binding> {
        let created_at = now_ms();
        let id = self.with(|conn| {
            conn.execute(
                "INSERT INTO bindings (plugin, source, scope, events, destinations, settings, dry_run, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    b.plugin,
                    b.source,
                    b.scope.to_string(),
                    json(&b.events),
                    json(&b.destinations),
                    json(&b.settings),
                    b.dry_run,
                    created_at
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })?;
        Ok(Binding {
            id,
            plugin: b.plugin.clone(),
            source: b.source.clone(),
            scope: b.scope.clone(),
            events: b.events.clone(),
            destinations: b.destinations.clone(),
            settings: b.settings.clone(),
            dry_run: b.dry_run,
            created_at,
        })
    }

    /// Every binding, oldest first; `plugin` narrows to one plugin's.
    pub fn bindings(&self, plugin: Option<&str>) -> StoreResult<Vec<Binding>> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM bindings WHERE ?1 IS NULL OR plugin = ?1 ORDER BY id"
            ))?;
            stmt.query_map([plugin], row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(decode).collect()
    }

    /// The binding with this id.
    pub fn binding(&self, id: i64) -> StoreResult<Option<Binding>> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM bindings WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
        })?
        .map(decode)
        .transpose()
    }

    /// Names `workspace` in every Slack destination that names none, so
    /// bindings made while there was one Slack workspace keep meaning it
    /// once a second is connected. Returns how many bindings changed.
    pub fn qualify_slack_destinations(&self, workspace: &str) -> StoreResult<usize> {
        let bindings = self.bindings(None)?;
        let changed: Vec<(i64, Vec<String>)> = bindings
            .into_iter()
            .filter_map(|b| {
                let qualified: Vec<String> = b
                    .destinations
                    .iter()
                    .map(|d| match d.parse::<crate::destination::Destination>() {
                        Ok(dest) => dest.in_workspace(workspace).to_string(),
                        Err(_) => d.clone(),
                    })
                    .collect();
                (qualified != b.destinations).then_some((b.id, qualified))
            })
            .collect();
        self.with(|conn| {
            let tx = conn.transaction()?;
            for (id, destinations) in &changed {
                tx.execute(
                    "UPDATE bindings SET destinations = ?2 WHERE id = ?1",
                    params![id, json(destinations)],
                )?;
            }
            tx.commit()
        })?;
        Ok(changed.len())
    }

    /// Deletes a binding.
    pub fn remove_binding(&self, id: i64) -> StoreResult<()> {
        let n = self.with(|conn| conn.execute("DELETE FROM bindings WHERE id = ?1", [id]))?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no binding with id {id} (see `pagehook bindings`)"
            )));
        }
        Ok(())
    }
}
