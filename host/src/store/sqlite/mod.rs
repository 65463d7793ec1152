//! The embedded backend: one SQLite file in WAL mode, one process.
//!
//! The default for `make run` and small sites. Only one `pagehook serve` may
//! use a file (the server holds a lock beside it); several replicas need
//! PostgreSQL. The CLI may still read and administer while a server runs.
//!
//! Every call is synchronous here; [`SqliteStore::run`] puts it on tokio's
//! blocking pool so no async worker ever waits on the file. This module must
//! never hand a rusqlite type to its callers: errors become [`StoreError`].
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so a transaction
//! that has committed survives a power cut, not only a process crash. The
//! webhook path batches concurrent inserts into one transaction (see
//! [`ingest`]) to pay for one fsync per batch instead of one per event.

pub mod backup;
mod claims;
mod digests;
mod events;
pub mod ingest;
mod outbox;
mod repairs;
mod schema_writer;
mod sql;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::store::{COPIED_TABLES, StoreError, StoreResult};

/// Schema migrations, applied in order; `PRAGMA user_version` is the count applied.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
    include_str!("schema_5.sql"),
    include_str!("schema_6.sql"),
    include_str!("schema_7.sql"),
    include_str!("schema_8.sql"),
    include_str!("schema_9.sql"),
    include_str!("schema_10.sql"),
    include_str!("schema_11.sql"),
    include_str!("schema_12.sql"),
    include_str!("schema_13.sql"),
    include_str!("schema_14.sql"),
    include_str!("schema_15.sql"),
    include_str!("schema_16.sql"),
];

/// A handle on one SQLite file; cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Database {
                database: path.display().to_string(),
                message: format!("cannot create its directory: {e}"),
            })?;
        }
        let conn = open_connection(path)?;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
            }),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Runs `f` on the blocking pool, so no async worker waits on the file.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Database {
                database: self.inner.path.display().to_string(),
                message: format!("the database call did not finish: {e}"),
            })?
    }

    /// The [`crate::store::Store`] over this file, for what only the
    /// boundary offers (tests).
    #[cfg(test)]
    pub(crate) fn boundary(&self) -> crate::store::Store {
        crate::store::Store {
            backend: crate::store::Backend::Sqlite(self.clone()),
        }
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The write-ahead log beside the database, which every commit appends
    /// to; it stays in place while the store is open.
    pub(crate) fn wal_path(&self) -> PathBuf {
        let mut wal = self.inner.path.clone().into_os_string();
        wal.push("-wal");
        PathBuf::from(wal)
    }

    fn migrate(&self) -> StoreResult<()> {
        self.with(|conn| {
            let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok(applied)
        })
        .and_then(|applied| {
            if applied > MIGRATIONS.len() {
                let written_by = self.with(|conn| schema_writer::read(conn)).ok().flatten();
                return Err(StoreError::newer_schema(
                    applied,
                    MIGRATIONS.len(),
                    written_by.as_deref(),
                ));
            }
            self.with(|conn| {
                for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
                    let tx = conn.transaction()?;
                    tx.execute_batch(sql)?;
                    tx.pragma_update(None, "user_version", i + 1)?;
                    tx.commit()?;
                }
                repairs::repair(conn, MIGRATIONS.len())?;
                schema_writer::record(conn, applied < MIGRATIONS.len())
            })
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.inner.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection, naming the database file in any error.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        let mut conn = self.lock();
        f(&mut conn).map_err(|source| self.error(source))
    }

    /// Runs `f` with commits that skip the fsync (`synchronous=NORMAL`).
    /// For work whose caller makes it durable itself (the webhook writer
    /// syncs the write-ahead log before it answers) or redoes it the same
    /// way if a power cut loses it (dispatch's results: the event is still
    /// pending then). The log is written in order, so the next synced commit
    /// (a webhook, or claiming deliveries, which comes before anything
    /// leaves) makes all of it durable; a crash of the process alone loses
    /// nothing.
    fn with_unsynced<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = f(&mut conn);
        let restored = conn.pragma_update(None, "synchronous", "FULL");
        let value = result?;
        restored?;
        Ok(value)
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Database {
            database: self.inner.path.display().to_string(),
            message: source.to_string(),
        }
    }

    /// A trivial query: the file is still readable.
    pub fn ping(&self) -> StoreResult<()> {
        self.with(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
    }

    /// Whether nothing is stored yet (a copy's target must be empty).
    pub fn is_empty(&self) -> StoreResult<bool> {
        self.with(|conn| {
            for table in COPIED_TABLES {
                let any: bool =
                    conn.query_row(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), [], |r| {
                        r.get(0)
                    })?;
                if any {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Every row of `table` as a JSON object of its columns, in id (or key) order.
    pub fn export_table(
        &self,
        table: &str,
    ) -> StoreResult<Vec<serde_json::Map<String, serde_json::Value>>> {
        use rusqlite::types::ValueRef;
        use serde_json::Value;
        if !COPIED_TABLES.contains(&table) {
            return Err(StoreError::NotFound(format!("no table {table} to copy")));
        }
        self.with(|conn| {
            // Stored columns only: generated ones (events.space_key, ...)
            // are computed again by the target.
            let columns: Vec<String> = conn
                .prepare("SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0 ORDER BY cid")?
                .query_map([table], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = conn.prepare(&format!(
                "SELECT {} FROM {table} ORDER BY rowid",
                columns.join(", ")
            ))?;
            let names: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let mut object = serde_json::Map::new();
                for (i, name) in names.iter().enumerate() {
                    let value = match row.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(n) => Value::from(n),
                        ValueRef::Real(x) => Value::from(x),
                        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => Value::from(hex::encode(b)),
                    };
                    object.insert(name.clone(), value);
                }
                out.push(object);
            }
            Ok(out)
        })
    }

    /// Inserts rows exported by [`SqliteStore::export_table`] (or the
    /// PostgreSQL backend's) as they are, ids included.
    pub fn import_table(
        &self,
        table: &str,
        rows: &[serde_json::Map<String, serde_json::Value>],
    ) -> StoreResult<()> {
        use serde_json::Value;
        if !COPIED_TABLES.contains(&table) {
            return Err(StoreError::NotFound(format!("no table {table} to copy")));
        }
        self.with(|conn| {
            let tx = conn.transaction()?;
            for row in rows {
                let columns: Vec<&String> = row.keys().collect();
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    columns
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    (1..=columns.len())
                        .map(|i| format!("?{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let values: Vec<rusqlite::types::Value> = row
                    .values()
                    .map(|v| match v {
                        Value::Null => rusqlite::types::Value::Null,
                        Value::Bool(b) => rusqlite::types::Value::Integer(*b as i64),
                        Value::Number(n) => match n.as_i64() {
                            Some(i) => rusqlite::types::Value::Integer(i),
                            None => rusqlite::types::Value::Real(n.as_f64().unwrap_or(0.0)),
                        },
                        Value::String(s) => rusqlite::types::Value::Text(s.clone()),
                        other => rusqlite::types::Value::Text(other.to_string()),
                    })
                    .collect();
                tx.execute(&sql, rusqlite::params_from_iter(values))?;
            }
            tx.commit()
        })
    }
}

/// Opens one connection with the durability and concurrency settings every
/// connection to the file must share.
fn open_connection(path: &Path) -> StoreResult<Connection> {
    let err = |source: rusqlite::Error| StoreError::Database {
        database: path.display().to_string(),
        message: source.to_string(),
    };
    let conn = Connection::open(path).map_err(err)?;
    // Statements are prepared once (`prepare_cached`, every shared one and
    // the hot ones of claiming and dispatch); room for all of them, the
    // search's filter combinations included, so none pushes a hot one out.
    conn.set_prepared_statement_cache_capacity(256);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ConnectionKind, ConnectionRecord};

    #[test]
    fn rounds_read_the_oldest_pending_rows_without_sorting_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
        for query in [
            format!("SELECT id {}", events::DUE_EVENTS),
            claims::NEXT_HEAD.to_owned(),
        ] {
            let plan: Vec<String> = store
                .with(|conn| {
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {query}"))?;
                    let zeros = std::iter::repeat_n(0, stmt.parameter_count());
                    stmt.query_map(rusqlite::params_from_iter(zeros), |r| r.get(3))?
                        .collect()
                })
                .unwrap();
            let plan = plan.join("; ");
            assert!(plan.contains("_order"), "{query}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{query}: {plan}");
        }
    }

    #[tokio::test]
    async fn opening_twice_keeps_the_schema_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pagehook.db");
        let store = crate::store::Store::open_sqlite(&path).unwrap();
        store
            .add_connection(&ConnectionRecord::new(
                "acme",
                ConnectionKind::Teams,
                "https://x",
            ))
            .await
            .unwrap();
        drop(store);
        let store = crate::store::Store::open_sqlite(&path).unwrap();
        assert_eq!(store.connections().await.unwrap().len(), 1);
        let mode: String = store
            .as_sqlite()
            .unwrap()
            .with(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn unsynced_work_skips_the_fsync_and_everything_else_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
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

    #[tokio::test]
    async fn a_version_3_database_keeps_its_pending_deliveries_and_threads() {
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
        let store = SqliteStore::open(&path).unwrap();
        let round = store
            .claim_deliveries(
                &crate::store::Claim::new("test", 1000),
                crate::store::RatePolicy::per_second(100.0, 100.0),
                10,
            )
            .unwrap();
        assert_eq!(round.claimed.len(), 1);
        assert_eq!(
            round.claimed[0].connection, None,
            "routed to the only workspace at delivery"
        );
        assert_eq!(
            store
                .boundary()
                .thread_ts("acme", "C0ENG00001", "page-1")
                .await
                .unwrap(),
            Some("1.000100".into())
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        SqliteStore::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = SqliteStore::open(&path).err().unwrap().to_string();
        assert!(err.contains("newer than this binary"), "{err}");
    }
}
