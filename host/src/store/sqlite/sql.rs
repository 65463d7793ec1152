//! SQLite's side of the shared SQL layer (see `store::sql`): binding
//! [`Param`]s, reading rusqlite's rows by name, and running shared
//! statements on the one connection.
//!
//! Everything here is synchronous; `Store` calls it on the blocking pool.
//! What it must never do: hand a rusqlite type to a caller outside this
//! backend.

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, ToSql};

use super::SqliteStore;
use crate::store::sql::{Param, Row};
use crate::store::{StoreError, StoreResult};

/// Why a call failed, before it becomes a [`StoreError`] naming the file.
#[derive(Debug)]
pub(super) enum Fail {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Sqlite(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Int(n) => ToSqlOutput::Owned(n.map_or(Value::Null, Value::Integer)),
            Param::Text(s) => match s {
                Some(s) => ToSqlOutput::Borrowed(s.as_str().into()),
                None => ToSqlOutput::Owned(Value::Null),
            },
            Param::Flag(b) => ToSqlOutput::Owned(Value::Integer(i64::from(*b))),
            // A list as JSON, for `json_each` (see `Dialect::in_list`).
            Param::Texts(list) => ToSqlOutput::Owned(Value::Text(
                serde_json::to_string(list).expect("strings serialize"),
            )),
            Param::Ints(list) => ToSqlOutput::Owned(Value::Text(
                serde_json::to_string(list).expect("numbers serialize"),
            )),
        })
    }
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, column: &'static str) -> StoreResult<Option<i64>> {
        self.get(column).map_err(|e| unreadable(column, e))
    }

    fn text(&self, column: &'static str) -> StoreResult<Option<String>> {
        self.get(column).map_err(|e| unreadable(column, e))
    }

    fn flag(&self, column: &'static str) -> StoreResult<Option<bool>> {
        self.get(column).map_err(|e| unreadable(column, e))
    }
}

fn unreadable(column: &'static str, e: rusqlite::Error) -> StoreError {
    StoreError::Corrupt {
        what: column,
        message: e.to_string(),
    }
}

/// Runs a query on `conn` (the store's connection or a transaction on it)
/// and decodes every row.
pub(super) fn query_in<T>(
    conn: &Connection,
    sql: &str,
    params: &[Param],
    decode: fn(&dyn Row) -> StoreResult<T>,
) -> Result<Vec<T>, Fail> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Runs a statement on `conn`; how many rows it changed.
pub(super) fn execute_in(conn: &Connection, sql: &str, params: &[Param]) -> Result<u64, Fail> {
    let n = conn
        .prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(params))?;
    Ok(n as u64)
}

impl SqliteStore {
    /// Runs `f` in a transaction, committed when it returns `Ok`; errors
    /// name the database file.
    pub(super) fn transaction<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, Fail>,
    ) -> StoreResult<T> {
        let mut conn = self.lock();
        let run = || -> Result<T, Fail> {
            let tx = conn.transaction()?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        };
        run().map_err(|e| self.fail(e))
    }

    /// A [`Fail`] as the caller sees it.
    pub(super) fn fail(&self, e: Fail) -> StoreError {
        match e {
            Fail::Sqlite(e) => self.error(e),
            Fail::Store(e) => e,
        }
    }

    /// Runs a shared query and decodes every row.
    pub(crate) fn query<T>(
        &self,
        sql: &str,
        params: &[Param],
        decode: fn(&dyn Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        query_in(&self.lock(), sql, params, decode).map_err(|e| self.fail(e))
    }

    /// Runs a shared statement; how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Param]) -> StoreResult<u64> {
        execute_in(&self.lock(), sql, params).map_err(|e| self.fail(e))
    }

    /// Runs a shared query, then the statements `then` makes of its rows,
    /// in one transaction; the rows.
    pub(crate) fn query_then<T>(
        &self,
        sql: &str,
        params: &[Param],
        decode: fn(&dyn Row) -> StoreResult<T>,
        then: impl FnOnce(&[T]) -> Vec<(&'static str, Vec<Param>)>,
    ) -> StoreResult<Vec<T>> {
        self.transaction(|tx| {
            let rows = query_in(tx, sql, params, decode)?;
            for (sql, params) in then(&rows) {
                execute_in(tx, sql, &params)?;
            }
            Ok(rows)
        })
    }

    /// Runs shared statements in order in one transaction; how many rows
    /// each changed.
    pub(crate) fn execute_all(
        &self,
        statements: &[(&'static str, Vec<Param>)],
    ) -> StoreResult<Vec<u64>> {
        self.transaction(|tx| {
            statements
                .iter()
                .map(|(sql, params)| execute_in(tx, sql, params))
                .collect()
        })
    }
}
