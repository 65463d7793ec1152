//! Drift between a database and its schema version, repaired on open.
//!
//! Two migrations were edited after they had been committed: schema 3 (its
//! second form drops the `events_pending` index the first one kept) and
//! schema 8 (its second form adds `events_space_name` and
//! `events_space_status`). A database migrated between the two forms has the
//! version number and not the schema. Each repair here brings such a file to
//! what a fresh database has, checks before it writes, and is a no-op
//! everywhere else; `host/tests/it/schema_upgrades.rs` proves it on
//! databases made with each shipped form. It must never change data, only
//! indexes, and never run on a schema newer than this binary's.

use rusqlite::Connection;

/// Applies every repair that the database's schema `version` calls for.
pub(super) fn repair(conn: &Connection, version: usize) -> rusqlite::Result<()> {
    let has_index = |name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)",
            [name],
            |r| r.get(0),
        )
    };
    // Schema 3 as first committed (2acff8f) kept the old pending index.
    if version >= 3 && has_index("events_pending")? {
        conn.execute_batch("DROP INDEX events_pending")?;
    }
    // Schema 8 as first committed (6343649) lacked a space with a kind or a status.
    if version >= 8 {
        if !has_index("events_space_name")? {
            conn.execute_batch("CREATE INDEX events_space_name ON events (space_key, name, id)")?;
        }
        if !has_index("events_space_status")? {
            conn.execute_batch(
                "CREATE INDEX events_space_status ON events (space_key, status, id)",
            )?;
        }
    }
    Ok(())
}
