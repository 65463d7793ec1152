//! PostgreSQL's side of the shared SQL layer (see `store::sql`): binding
//! [`Param`]s, reading tokio-postgres's rows by name, and running shared
//! statements (numbered `$1` here, see `Dialect::text`) on a pooled
//! connection.
//!
//! What it must never do: hand a driver type to a caller outside this
//! backend.

use tokio_postgres::types::{ToSql, Type};

use super::{Fail, PgResult, PgStore};
use crate::store::sql::{Dialect, Param, Row};
use crate::store::{StoreError, StoreResult};

impl Param {
    /// The parameter as the driver binds it.
    fn as_pg(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Int(n) => n,
            Param::Text(s) => s,
            Param::Flag(b) => b,
            Param::Texts(list) => list,
            Param::Ints(list) => list,
        }
    }
}

/// `params` as the driver's parameter slice.
pub(super) fn bind(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(Param::as_pg).collect()
}

impl Row for tokio_postgres::Row {
    fn int(&self, column: &'static str) -> StoreResult<Option<i64>> {
        let is_int4 = self
            .columns()
            .iter()
            .find(|c| c.name() == column)
            .is_some_and(|c| *c.type_() == Type::INT4);
        if is_int4 {
            let n: Option<i32> = self.try_get(column).map_err(|e| unreadable(column, e))?;
            return Ok(n.map(i64::from));
        }
        self.try_get(column).map_err(|e| unreadable(column, e))
    }

    fn text(&self, column: &'static str) -> StoreResult<Option<String>> {
        self.try_get(column).map_err(|e| unreadable(column, e))
    }

    fn flag(&self, column: &'static str) -> StoreResult<Option<bool>> {
        self.try_get(column).map_err(|e| unreadable(column, e))
    }
}

fn unreadable(column: &'static str, e: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt {
        what: column,
        message: e.to_string(),
    }
}

/// Runs a shared query on `client` (a pooled connection or a transaction)
/// and decodes every row.
pub(super) async fn query_in<T>(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[Param],
    decode: fn(&dyn Row) -> StoreResult<T>,
) -> PgResult<Vec<T>> {
    let stmt = client.prepare_cached(&Dialect::Postgres.text(sql)).await?;
    let rows = client.query(&stmt, &bind(params)).await?;
    rows.iter()
        .map(|r| decode(r).map_err(Fail::Store))
        .collect()
}

/// Runs a shared statement on `client`; how many rows it changed.
pub(super) async fn execute_in(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    params: &[Param],
) -> PgResult<u64> {
    let stmt = client.prepare_cached(&Dialect::Postgres.text(sql)).await?;
    Ok(client.execute(&stmt, &bind(params)).await?)
}

impl PgStore {
    /// Runs a shared query and decodes every row.
    pub(crate) async fn query<T>(
        &self,
        sql: &str,
        params: &[Param],
        decode: fn(&dyn Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.run(async { query_in(&self.client().await?, sql, params, decode).await })
            .await
    }

    /// Runs a shared statement; how many rows it changed.
    pub(crate) async fn execute(&self, sql: &str, params: &[Param]) -> StoreResult<u64> {
        self.run(async { execute_in(&self.client().await?, sql, params).await })
            .await
    }

    /// Runs a shared query, then the statements `then` makes of its rows,
    /// in one transaction; the rows.
    pub(crate) async fn query_then<T>(
        &self,
        sql: &str,
        params: &[Param],
        decode: fn(&dyn Row) -> StoreResult<T>,
        then: impl FnOnce(&[T]) -> Vec<(&'static str, Vec<Param>)>,
    ) -> StoreResult<Vec<T>> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let rows = query_in(&tx, sql, params, decode).await?;
            for (sql, params) in then(&rows) {
                execute_in(&tx, sql, &params).await?;
            }
            tx.commit().await?;
            Ok(rows)
        })
        .await
    }

    /// Runs shared statements in order in one transaction; how many rows
    /// each changed.
    pub(crate) async fn execute_all(
        &self,
        statements: &[(&'static str, Vec<Param>)],
    ) -> StoreResult<Vec<u64>> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let mut changed = Vec::with_capacity(statements.len());
            for (sql, params) in statements {
                changed.push(execute_in(&tx, sql, params).await?);
            }
            tx.commit().await?;
            Ok(changed)
        })
        .await
    }
}
