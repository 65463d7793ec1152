//! Drift between a database and its schema version, repaired on open.
//!
//! Schema 3 was edited after it had been committed: its second form
//! (02e68a6) adds `events_space_name` and `events_space_status`, which a
//! database migrated with the first form (6343649) lacks although it says
//! version 3 or later. The repair looks before it writes (so replicas
//! starting together do not take a lock on `events` for nothing), runs
//! under the migration lock, and is a no-op everywhere else;
//! `host/tests/it/schema_upgrades.rs` proves it on databases made with each
//! shipped form. It must never change data, only indexes, and never run on a
//! schema newer than this binary's.

use tokio_postgres::Transaction;

/// Applies every repair the schema `version` calls for; whether it changed anything.
pub(super) async fn repair(
    tx: &Transaction<'_>,
    version: usize,
) -> Result<bool, tokio_postgres::Error> {
    let mut changed = false;
    if version >= 3 {
        for (name, columns) in [
            ("events_space_name", "space_key, name, id"),
            ("events_space_status", "space_key, status, id"),
        ] {
            let exists: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_indexes \
                     WHERE schemaname = current_schema() AND indexname = $1)",
                    &[&name],
                )
                .await?
                .get(0);
            if !exists {
                tx.batch_execute(&format!("CREATE INDEX {name} ON events ({columns})"))
                    .await?;
                changed = true;
            }
        }
    }
    Ok(changed)
}
