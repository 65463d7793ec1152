//! Drift between a database and its schema version, repaired on open.
//!
//! Schema 3 was edited after it had been committed: its second form
//! (02e68a6) adds `events_space_name` and `events_space_status`, which a
//! database migrated with the first form (6343649) lacks although it says
//! version 3 or later. And a database migrated before Pagehook recorded
//! which version migrated it lacks `pagehook_schema.pagehook`: it gets the
//! column, naming this binary (it reads the schema, so it will do as the
//! version an older binary is told to run). The repair looks before it writes (so replicas
//! starting together do not take a lock on `events` for nothing), runs
//! under the migration lock, and is a no-op everywhere else;
//! `host/tests/it/schema_upgrades.rs` proves it on databases made with each
//! shipped form. It must never change data, only indexes and that
//! bookkeeping column, and never run on a schema newer than this binary's.

use tokio_postgres::Transaction;

/// Applies every repair the schema `version` calls for; whether it changed anything.
pub(super) async fn repair(
    tx: &Transaction<'_>,
    version: usize,
) -> Result<bool, tokio_postgres::Error> {
    let mut changed = false;
    let recorded: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
             WHERE table_schema = current_schema() \
             AND table_name = 'pagehook_schema' AND column_name = 'pagehook')",
            &[],
        )
        .await?
        .get(0);
    if !recorded {
        tx.batch_execute("ALTER TABLE pagehook_schema ADD COLUMN pagehook TEXT")
            .await?;
        tx.execute(
            "UPDATE pagehook_schema SET pagehook = $1",
            &[&env!("CARGO_PKG_VERSION")],
        )
        .await?;
        changed = true;
    }
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
