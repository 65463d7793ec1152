//! The layer beneath the store's boundary that both backends share: SQL
//! written once, its parameters, and rows read by column name.
//!
//! Most of what the store does is the same statement on SQLite and on
//! PostgreSQL; those statements are written here once, with SQLite's
//! numbered placeholders (`?1`, `?2`, ...), which the PostgreSQL backend turns
//! into its own (`$1`, `$2`, ...) before preparing them (see
//! [`Dialect::text`]). Where a parameter's type cannot be inferred by
//! PostgreSQL (`?1 IS NULL`) the statement says it with a `CAST`, which
//! both understand. A statement that really differs (claiming with `FOR
//! UPDATE SKIP LOCKED`, SQLite's `INDEXED BY`, PostgreSQL's arrays) stays in
//! its backend.
//!
//! A row is read through [`Row`], which each backend implements for its
//! driver's row: a record's decoder (`EventRecord::from_row`, ...) asks for
//! columns by name, so it is written once for both backends and does not
//! care about the order of a `SELECT` list.
//!
//! What this module must never do: name a driver type (the backends
//! implement [`Row`] and bind [`Param`]s), or build SQL from values (every
//! value is a parameter).

use std::borrow::Cow;

use super::{Store, StoreError, StoreResult, from_json};

/// The SQL of one backend, where a statement's text differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A shared statement as this backend takes it: PostgreSQL numbers its
    /// placeholders `$1`; SQLite's `?1` are kept. Quoted text is left alone.
    pub fn text(self, sql: &str) -> Cow<'_, str> {
        if self == Dialect::Sqlite || !sql.contains('?') {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len());
        let mut quoted = false;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' => quoted = !quoted,
                '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => {
                    out.push('$');
                    continue;
                }
                _ => {}
            }
            out.push(c);
        }
        Cow::Owned(out)
    }

    /// `IN` a list given as parameter `n` ([`Param::Texts`],
    /// [`Param::Ints`]): SQLite reads it as a JSON array, PostgreSQL as an
    /// array.
    pub fn in_list(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("IN (SELECT value FROM json_each(?{n}))"),
            Dialect::Postgres => format!("= ANY(?{n})"),
        }
    }
}

/// One parameter of a statement, owned so that it can cross to SQLite's
/// blocking pool. Nulls are typed: PostgreSQL checks a parameter's type
/// even when it is null.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(Option<i64>),
    Text(Option<String>),
    Flag(bool),
    /// A list of texts (space keys): see [`Dialect::in_list`].
    Texts(Vec<String>),
    /// A list of ids: see [`Dialect::in_list`].
    Ints(Vec<i64>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Param {
        Param::Int(Some(v))
    }
}

impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Param {
        Param::Int(v)
    }
}

impl From<usize> for Param {
    /// A count or a row limit (`LIMIT` is a bigint; a negative one is an error).
    fn from(v: usize) -> Param {
        Param::Int(Some(i64::try_from(v).unwrap_or(i64::MAX)))
    }
}

impl From<bool> for Param {
    fn from(v: bool) -> Param {
        Param::Flag(v)
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Param {
        Param::Text(Some(v.to_owned()))
    }
}

impl From<&String> for Param {
    fn from(v: &String) -> Param {
        Param::Text(Some(v.clone()))
    }
}

impl From<String> for Param {
    fn from(v: String) -> Param {
        Param::Text(Some(v))
    }
}

impl From<Option<&str>> for Param {
    fn from(v: Option<&str>) -> Param {
        Param::Text(v.map(str::to_owned))
    }
}

impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Param {
        Param::Text(v)
    }
}

impl From<&Option<String>> for Param {
    fn from(v: &Option<String>) -> Param {
        Param::Text(v.clone())
    }
}

/// A row of a result, read by column name. Each backend implements it for
/// its driver's row; a value the driver cannot read as asked (a text where
/// a number belongs, a column the query did not select) is an error naming
/// the column.
pub trait Row {
    /// An integer column.
    fn int(&self, column: &'static str) -> StoreResult<Option<i64>>;
    /// A text column.
    fn text(&self, column: &'static str) -> StoreResult<Option<String>>;
    /// A flag (`BOOLEAN` on PostgreSQL, 0 or 1 on SQLite).
    fn flag(&self, column: &'static str) -> StoreResult<Option<bool>>;
}

impl dyn Row + '_ {
    /// Column `column` as `T`; `Option<T>` where it may be null.
    pub fn get<T: FromColumn>(&self, column: &'static str) -> StoreResult<T> {
        T::from_column(self, column)
    }

    /// A JSON text column, parsed; `what` names it if it does not parse.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        column: &'static str,
        what: &'static str,
    ) -> StoreResult<T> {
        from_json(what, &self.get::<String>(column)?)
    }

    /// A JSON text column that may be null.
    pub fn json_opt<T: serde::de::DeserializeOwned>(
        &self,
        column: &'static str,
        what: &'static str,
    ) -> StoreResult<Option<T>> {
        self.get::<Option<String>>(column)?
            .map(|text| from_json(what, &text))
            .transpose()
    }
}

/// A record read from a row by column name; `COLUMNS` is what its decoder
/// reads, for `SELECT` and `RETURNING` lists.
pub trait FromRow: Sized + Send + 'static {
    /// The columns [`FromRow::from_row`] reads, comma-separated.
    const COLUMNS: &'static str;
    /// Reads the record.
    fn from_row(row: &dyn Row) -> StoreResult<Self>;
}

/// A value read from one column.
pub trait FromColumn: Sized {
    fn from_column(row: &dyn Row, column: &'static str) -> StoreResult<Self>;
}

/// A value a column may hold; null reads as `None`.
pub trait Column: Sized {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<Self>>;
}

impl<T: Column> FromColumn for T {
    fn from_column(row: &dyn Row, column: &'static str) -> StoreResult<T> {
        T::read(row, column)?.ok_or_else(|| StoreError::Corrupt {
            what: column,
            message: "null where a value belongs".into(),
        })
    }
}

impl<T: Column> FromColumn for Option<T> {
    fn from_column(row: &dyn Row, column: &'static str) -> StoreResult<Option<T>> {
        T::read(row, column)
    }
}

impl Column for i64 {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<i64>> {
        row.int(column)
    }
}

impl Column for u32 {
    /// A counter: negative reads as 0, more than fits as `u32::MAX`.
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<u32>> {
        Ok(row
            .int(column)?
            .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX)))
    }
}

impl Column for u64 {
    /// An id from elsewhere (a Confluence content id), stored as a bigint.
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<u64>> {
        row.int(column)?
            .map(|n| {
                u64::try_from(n).map_err(|_| StoreError::Corrupt {
                    what: column,
                    message: format!("{n} is negative"),
                })
            })
            .transpose()
    }
}

impl Column for String {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<String>> {
        row.text(column)
    }
}

impl Column for bool {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<bool>> {
        row.flag(column)
    }
}

/// Reads a text column holding a stored name (a status, a kind) and parses
/// it; `what` names it in the error when it does not parse.
pub fn parsed<T>(
    row: &dyn Row,
    column: &'static str,
    what: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> StoreResult<Option<T>> {
    row.text(column)?
        .map(|s| parse(&s).map_err(|message| StoreError::Corrupt { what, message }))
        .transpose()
}

impl Store {
    /// Which SQL this store's backend speaks.
    pub(crate) fn dialect(&self) -> Dialect {
        if self.is_shared() {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        }
    }

    /// Runs a shared query and decodes every row (SQLite's on the blocking pool).
    pub(crate) async fn query<T: Send + 'static>(
        &self,
        sql: &str,
        params: Vec<Param>,
        decode: fn(&dyn Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        match &self.backend {
            super::Backend::Sqlite(s) => {
                let sql = sql.to_owned();
                s.run(move |s| s.query(&sql, &params, decode)).await
            }
            super::Backend::Postgres(p) => p.query(sql, &params, decode).await,
        }
    }

    /// Runs a shared query; its first row, decoded, if there is one.
    pub(crate) async fn query_opt<T: Send + 'static>(
        &self,
        sql: &str,
        params: Vec<Param>,
        decode: fn(&dyn Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        Ok(self.query(sql, params, decode).await?.into_iter().next())
    }

    /// `SELECT {T::COLUMNS} {from}`: records of one kind.
    pub(crate) async fn select<T: FromRow>(
        &self,
        from: &str,
        params: Vec<Param>,
    ) -> StoreResult<Vec<T>> {
        self.query(
            &format!("SELECT {} {from}", T::COLUMNS),
            params,
            T::from_row,
        )
        .await
    }

    /// `SELECT {T::COLUMNS} {from}`: the first record, if any.
    pub(crate) async fn select_opt<T: FromRow>(
        &self,
        from: &str,
        params: Vec<Param>,
    ) -> StoreResult<Option<T>> {
        Ok(self.select(from, params).await?.into_iter().next())
    }

    /// Runs a shared statement; how many rows it changed.
    pub(crate) async fn execute(&self, sql: &str, params: Vec<Param>) -> StoreResult<u64> {
        match &self.backend {
            super::Backend::Sqlite(s) => {
                let sql = sql.to_owned();
                s.run(move |s| s.execute(&sql, &params)).await
            }
            super::Backend::Postgres(p) => p.execute(sql, &params).await,
        }
    }

    /// Runs a shared query, then the statements `then` makes of its rows,
    /// in one transaction (a read and the writes it decides); the rows.
    pub(crate) async fn query_then<T: Send + 'static>(
        &self,
        sql: &str,
        params: Vec<Param>,
        decode: fn(&dyn Row) -> StoreResult<T>,
        then: impl FnOnce(&[T]) -> Vec<(&'static str, Vec<Param>)> + Send + 'static,
    ) -> StoreResult<Vec<T>> {
        match &self.backend {
            super::Backend::Sqlite(s) => {
                let sql = sql.to_owned();
                s.run(move |s| s.query_then(&sql, &params, decode, then))
                    .await
            }
            super::Backend::Postgres(p) => p.query_then(sql, &params, decode, then).await,
        }
    }

    /// Runs shared statements in order in one transaction; how many rows
    /// each changed.
    pub(crate) async fn execute_all(
        &self,
        statements: Vec<(&'static str, Vec<Param>)>,
    ) -> StoreResult<Vec<u64>> {
        match &self.backend {
            super::Backend::Sqlite(s) => s.run(move |s| s.execute_all(&statements)).await,
            super::Backend::Postgres(p) => p.execute_all(&statements).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventStatus, NewEvent, StoreError};

    /// Stores one event through ingest; its id.
    async fn one_event(store: &Store, key: &str) -> i64 {
        let ingest = crate::store::ingest::Ingest::start(
            store,
            std::sync::Arc::new(tokio::sync::Notify::new()),
        )
        .unwrap();
        ingest
            .insert(NewEvent {
                key: key.into(),
                source: "prod".into(),
                name: "page_created".into(),
                payload: "{}".into(),
                dispatchable: true,
            })
            .await
            .unwrap()
            .id
    }

    /// What reading the event gives after `sql` damaged its row.
    async fn read_after(store: &Store, id: i64, sql: &str) -> StoreResult<Option<EventStatus>> {
        store.execute(sql, vec![id.into()]).await.unwrap();
        Ok(store.event(id).await?.map(|e| e.status))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_value_that_does_not_decode_names_its_column_on_both_backends() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Store::open_sqlite(&dir.path().join("p.db")).unwrap();
        let (pg, _db) = crate::store::postgres::testing::fresh().await;
        let postgres = crate::store::postgres::testing::boundary(&pg);
        for store in [&sqlite, &postgres] {
            let id = one_event(store, "damaged").await;
            assert_eq!(
                read_after(
                    store,
                    id,
                    "UPDATE events SET status = 'pending' WHERE id = ?1"
                )
                .await
                .unwrap(),
                Some(EventStatus::Pending)
            );
            match read_after(
                store,
                id,
                "UPDATE events SET status = 'parked' WHERE id = ?1",
            )
            .await
            {
                Err(StoreError::Corrupt { what, message }) => {
                    assert_eq!(what, "event status");
                    assert!(message.contains("parked"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            match read_after(
                store,
                id,
                "UPDATE events SET status = 'pending', payload = 'not json' WHERE id = ?1",
            )
            .await
            {
                Err(StoreError::Corrupt { what, .. }) => assert_eq!(what, "event payload"),
                other => panic!("{other:?}"),
            }
        }
        // SQLite keeps whatever type it is given: a text where a count belongs.
        let id = one_event(&sqlite, "mistyped").await;
        match read_after(
            &sqlite,
            id,
            "UPDATE events SET attempts = 'many' WHERE id = ?1",
        )
        .await
        {
            Err(StoreError::Corrupt { what, .. }) => assert_eq!(what, "attempts"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn postgres_numbers_its_placeholders_and_leaves_quoted_text_alone() {
        let sql = "SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d IN (?12, ?3) AND e = ?";
        assert_eq!(Dialect::Sqlite.text(sql), sql);
        assert_eq!(
            Dialect::Postgres.text(sql),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d IN ($12, $3) AND e = ?"
        );
    }
}
