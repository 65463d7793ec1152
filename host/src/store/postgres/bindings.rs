//! Bindings on PostgreSQL: the same rows and messages as SQLite's
//! (`sqlite/bindings.rs`). Bindings arrive validated; nothing here judges them.

use tokio_postgres::Row;

use super::{PgResult, PgStore};
use crate::store::{Binding, NewBinding, StoreError, StoreResult, from_json, json, now_ms};

const COLUMNS: &str =
    "id, plugin, source, scope, events, destinations, settings, dry_run, created_at";

fn decode(r: &Row) -> PgResult<Binding> {
    let scope: String = r.try_get(3)?;
    let events: String = r.try_get(4)?;
    let destinations: String = r.try_get(5)?;
    let settings: String = r.try_get(6)?;
    Ok(Binding {
        id: r.try_get(0)?,
        plugin: r.try_get(1)?,
        source: r.try_get(2)?,
        scope: scope.parse().map_err(|message| StoreError::Corrupt {
            what: "binding scope",
            message,
        })?,
        events: from_json("binding events", &events)?,
        destinations: from_json("binding destinations", &destinations)?,
        settings: from_json("binding settings", &settings)?,
        dry_run: r.try_get(7)?,
        created_at: r.try_get(8)?,
    })
}

impl PgStore {
    /// Stores a binding (already validated by the caller) and returns it.
    pub async fn add_binding(&self, b: &NewBinding) -> StoreResult<Binding> {
        let created_at = now_ms();
        let id: i64 = self
            .run(async {
                let row = self
                    .client()
                    .await?
                    .query_one(
                        "INSERT INTO bindings (plugin, source, scope, events, destinations, settings, dry_run, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                        &[
                            &b.plugin,
                            &b.source,
                            &b.scope.to_string(),
                            &json(&b.events),
                            &json(&b.destinations),
                            &json(&b.settings),
                            &b.dry_run,
                            &created_at,
                        ],
                    )
                    .await?;
                Ok(row.try_get(0)?)
            })
            .await?;
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
    pub async fn bindings(&self, plugin: Option<&str>) -> StoreResult<Vec<Binding>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM bindings WHERE $1::text IS NULL OR plugin = $1::text ORDER BY id"
                    ),
                    &[&plugin],
                )
                .await?;
            rows.iter().map(decode).collect()
        })
        .await
    }

    /// The binding with this id.
    pub async fn binding(&self, id: i64) -> StoreResult<Option<Binding>> {
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM bindings WHERE id = $1"),
                    &[&id],
                )
                .await?;
            row.as_ref().map(decode).transpose()
        })
        .await
    }

    /// Names `workspace` in every Slack destination that names none, so
    /// bindings made while there was one Slack workspace keep meaning it
    /// once a second is connected. Returns how many bindings changed.
    pub async fn qualify_slack_destinations(&self, workspace: &str) -> StoreResult<usize> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Read and rewrite under a lock, so a binding added meanwhile by
            // another replica is not overwritten with stale destinations.
            let rows = tx
                .query(
                    &format!("SELECT {COLUMNS} FROM bindings ORDER BY id FOR UPDATE"),
                    &[],
                )
                .await?;
            let mut changed = 0;
            for row in &rows {
                let b = decode(row)?;
                let qualified: Vec<String> = b
                    .destinations
                    .iter()
                    .map(|d| match d.parse::<crate::destination::Destination>() {
                        Ok(dest) => dest.in_workspace(workspace).to_string(),
                        Err(_) => d.clone(),
                    })
                    .collect();
                if qualified != b.destinations {
                    tx.execute(
                        "UPDATE bindings SET destinations = $2 WHERE id = $1",
                        &[&b.id, &json(&qualified)],
                    )
                    .await?;
                    changed += 1;
                }
            }
            tx.commit().await?;
            Ok(changed)
        })
        .await
    }

    /// Deletes a binding.
    pub async fn remove_binding(&self, id: i64) -> StoreResult<()> {
        let n = self
            .run(async {
                Ok(self
                    .client()
                    .await?
                    .execute("DELETE FROM bindings WHERE id = $1", &[&id])
                    .await?)
            })
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no binding with id {id} (see `pagehook bindings`)"
            )));
        }
        Ok(())
    }
}
