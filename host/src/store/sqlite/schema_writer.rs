//! Which Pagehook last migrated this file, so that an older binary that
//! finds a newer schema can say which version it needs.
//!
//! `PRAGMA user_version` counts the migrations applied; it cannot say which
//! release applied them. This bookkeeping table (kept by the migration code,
//! like PostgreSQL's `pagehook_schema`) holds one row: the version of the
//! binary that last brought the schema up. It must never be read to decide
//! anything but that message, and never be written by a binary that refuses
//! the file.

use rusqlite::{Connection, OptionalExtension};

/// Creates the table when missing and records this binary as the writer
/// when it migrated something or nobody is recorded yet.
pub(super) fn record(conn: &Connection, migrated: bool) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS pagehook_schema_writer (pagehook TEXT NOT NULL)",
    )?;
    let recorded: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pagehook_schema_writer)",
        [],
        |r| r.get(0),
    )?;
    if migrated || !recorded {
        conn.execute_batch("DELETE FROM pagehook_schema_writer")?;
        conn.execute(
            "INSERT INTO pagehook_schema_writer (pagehook) VALUES (?1)",
            [env!("CARGO_PKG_VERSION")],
        )?;
    }
    Ok(())
}

/// The Pagehook version that last migrated the file, when one recorded it.
pub(super) fn read(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pagehook_schema_writer')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    conn.query_row(
        "SELECT pagehook FROM pagehook_schema_writer LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()
}
