//! The durable store: one SQLite file in WAL mode behind one boundary.
//!
//! Everything the sidecar must not lose lives here: accepted events (written
//! before the webhook is answered), installed plugins and their grants,
//! connections, bindings, the delivery outbox, the audit log and plugin
//! failures. All SQL is in this module, so a shared PostgreSQL can replace
//! SQLite later without touching ingest, dispatch or the admin commands.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so a transaction
//! that has committed survives a power cut, not only a process crash. The
//! webhook path batches concurrent inserts into one transaction (see
//! [`ingest`]) to pay for one fsync per batch instead of one per event.

mod bindings;
mod connections;
mod delivery;
mod events;
pub mod ingest;
mod outbox;
mod plugins;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

pub use bindings::{Binding, NewBinding, Scope};
pub use connections::{ConnectionKind, ConnectionRecord, TokenExpiry, redacted_url};
pub use delivery::{AttemptRecord, Claimed, Outcome, SlackThread};
pub use events::{EventRecord, EventStatus, NewEvent};
pub use outbox::{
    AuditRecord, BreakerPolicy, DeliveryRecord, Dispatched, FailureRecord, NewDelivery,
};
pub use plugins::PluginRecord;

/// Schema migrations, applied in order; `PRAGMA user_version` is the count applied.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
    include_str!("schema_5.sql"),
];

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    /// A named row does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with what is stored (a duplicate name, a row in use).
    #[error("{0}")]
    Conflict(String),
    /// A stored value could not be decoded; the file was edited by hand or is newer.
    #[error("database holds an unreadable {what}: {message}")]
    Corrupt { what: &'static str, message: String },
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// A handle on the database, shared by the server, the dispatcher and the CLI.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Sqlite {
                path: path.display().to_string(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let conn = open_connection(path)?;
        let store = Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write-ahead log beside the database, which every commit appends
    /// to; it stays in place while the store is open.
    fn wal_path(&self) -> PathBuf {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        PathBuf::from(wal)
    }

    fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.lock();
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let applied: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Corrupt {
                what: "schema",
                message: format!(
                    "version {applied} is newer than this binary's {}; upgrade pagehook",
                    MIGRATIONS.len()
                ),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", i + 1).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection, naming the database file in any error.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let mut conn = self.lock();
        f(&mut conn).map_err(|source| self.sqlite(source))
    }

    /// Runs `f` with commits that skip the fsync (`synchronous=NORMAL`).
    /// For work whose caller makes it durable itself (the webhook writer
    /// syncs the write-ahead log before it answers) or redoes it the same
    /// way if a power cut loses it (dispatch's results: the event is still
    /// pending then). The log is written in order, so the next synced commit
    /// (a webhook, or marking deliveries as being sent, which comes before
    /// anything leaves) makes all of it durable; a crash of the process
    /// alone loses nothing.
    fn with_unsynced<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|source| self.sqlite(source))?;
        let result = f(&mut conn);
        let restored = conn.pragma_update(None, "synchronous", "FULL");
        let value = result.map_err(|source| self.sqlite(source))?;
        restored.map_err(|source| self.sqlite(source))?;
        Ok(value)
    }

    fn sqlite(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }
}

/// Opens one connection with the durability and concurrency settings every
/// connection to the file must share.
fn open_connection(path: &Path) -> StoreResult<Connection> {
    let err = |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    // Hot statements are prepared once (`prepare_cached`); room for all of them.
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(err)?;
    restrict_permissions(path);
    Ok(conn)
}

/// The database holds connection secrets given inline: keep it owner-only.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// Milliseconds since the Unix epoch: the store's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("store values serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_read_the_oldest_pending_rows_without_sorting_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        for tail in [events::DUE_EVENTS, delivery::PENDING_DELIVERIES] {
            let plan: Vec<String> = store
                .with(|conn| {
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN SELECT id {tail}"))?;
                    let zeros = std::iter::repeat_n(0, stmt.parameter_count());
                    stmt.query_map(rusqlite::params_from_iter(zeros), |r| r.get(3))?
                        .collect()
                })
                .unwrap();
            let plan = plan.join("; ");
            assert!(plan.contains("_pending_order"), "{tail}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{tail}: {plan}");
        }
    }

    #[test]
    fn opening_twice_keeps_the_schema_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pagehook.db");
        let store = Store::open(&path).unwrap();
        store
            .add_connection(&ConnectionRecord::new(
                "acme",
                ConnectionKind::Teams,
                "https://x",
            ))
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.connections().unwrap().len(), 1);
        let mode: String = store
            .with(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn unsynced_work_skips_the_fsync_and_everything_else_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let synchronous =
            |c: &mut Connection| c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0));
        // 1 = NORMAL, 2 = FULL.
        assert_eq!(store.with_unsynced(synchronous).unwrap(), 1);
        assert_eq!(store.with(synchronous).unwrap(), 2);
        let failed = store.with_unsynced(|c| c.execute("INSERT INTO nowhere VALUES (1)", []));
        assert!(failed.is_err());
        assert_eq!(
            store.with(synchronous).unwrap(),
            2,
            "restored after an error"
        );
    }

    #[test]
    fn a_version_3_database_keeps_its_pending_deliveries_and_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        {
            // The database as version 3 left it: one pending Slack delivery, one thread.
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute_batch(
                r##"INSERT INTO events (id, key, source, name, received_at, payload, status)
                    VALUES (1, 'k', 'prod', 'page_created', 0, '{}', 'dispatched');
                INSERT INTO deliveries (event_id, binding_id, plugin, kind, destination, action, created_at, lane, source)
                    VALUES (1, 1, 'slack-poster', 'post-slack', 'slack:#eng',
                    '{"type":"post-slack","channel":"#eng","text":"hi","blocks":null,"thread_key":"page-1"}',
                    0, 'slack:eng:page-1', 'prod');
                INSERT INTO slack_threads VALUES ('acme', 'C0ENG00001', 'page-1', '1.000100');"##,
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let pending = store.pending_deliveries(10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].connection, None,
            "routed to the only workspace at delivery"
        );
        assert_eq!(
            store.thread_ts("acme", "C0ENG00001", "page-1").unwrap(),
            Some("1.000100".into())
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        Store::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(err.contains("newer than this binary"), "{err}");
    }
}
