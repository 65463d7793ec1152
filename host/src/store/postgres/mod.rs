//! The shared backend: PostgreSQL, for any number of replicas.
//!
//! Confluence Data Center sites already run PostgreSQL; with this backend
//! several `pagehook serve` replicas share one database, so losing a replica
//! loses nothing. Everything the replicas must agree on is decided by the
//! database: deduplication by the event key's unique index, claims with
//! `FOR UPDATE SKIP LOCKED` and leases by the database's clock (see
//! `events.rs` and `claims.rs`), Slack's rate state in rows locked by the round that uses
//! them, wake-ups through `LISTEN`/`NOTIFY` (see [`PgStore::listen`]).
//!
//! Connections come from a pool (deadpool-postgres) that checks each one
//! with a trivial query before handing it out, so a connection the server
//! closed (a restart, `pg_terminate_backend`) is replaced instead of failing
//! the next call. Every connection runs with `synchronous_commit = on` (a
//! committed webhook survives a crash of the database server too) and an
//! idle-in-transaction timeout (a replica cut off mid-transaction does not
//! keep its locks).
//!
//! TLS follows libpq's `sslmode` (default `prefer`; `verify-full` for a
//! database across a network), for the pool and the LISTEN connection
//! alike: see [`tls`].
//!
//! What this module must never do: hand a driver type to its callers
//! (errors become [`StoreError`]), put a password into an error, a log line
//! or [`PgStore::describe`], or let a replica record a result for work it no
//! longer holds (every finishing statement checks the claim's token).

mod claims;
mod digests;
mod events;
pub mod ingest;
mod listen;
mod outbox;
mod pipelined;
mod repairs;
mod send_slots;
mod sql;
pub mod tls;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError, QueueMode, RecyclingMethod,
    Runtime,
};
use serde_json::{Map, Value};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PostgresConfig;
use crate::store::{COPIED_TABLES, StoreError, StoreResult};

/// Schema migrations, applied in order; `pagehook_schema.version` is the
/// count applied. Later versions are appended, never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_1.sql"),
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
];

/// The advisory lock migrations run under, so that replicas starting
/// together migrate once: "pagehook" in ASCII.
const MIGRATION_LOCK: i64 = 0x7061_6765_686f_6f6b;

/// The advisory lock a delivery claiming round holds: rounds of all replicas
/// take turns (a round lasts milliseconds), so two rounds never lease lanes
/// in opposite orders (a deadlock) nor read the same rate slots.
const DELIVERY_ROUND_LOCK: i64 = MIGRATION_LOCK + 1;

/// Every pooled connection's settings. `synchronous_commit = on`: a commit
/// returns once it is durable, so an acknowledged webhook survives a crash
/// of the database server. An idle-in-transaction timeout: a replica that
/// hangs or is cut off in the middle of a transaction must not keep its
/// locks (a delivery round's turn, rate rows, lanes) for as long as TCP
/// takes to notice; no transaction here waits for anything but the database.
const SESSION: &str =
    "SET synchronous_commit = on; SET idle_in_transaction_session_timeout = '60s'";

/// Lets a transaction commit without waiting for its WAL flush. Only for
/// writes that a later synced commit makes durable anyway (the WAL is
/// written in order, and claiming deliveries, which precedes every send,
/// waits for its flush), or whose loss in a server crash costs nothing but
/// a redo: dispatch's claims (the event is claimed again) and results (the
/// events stay pending), attempt results (the delivery is taken over as
/// uncertain and looked for before it is sent again), rate slots and
/// released claims. Ingest and delivery claims never use it.
pub(super) const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off";

/// Back to waiting for the flush, in a transaction that began with
/// [`ASYNC_COMMIT`] and then claimed deliveries after all (a record whose
/// lanes go on, see `finish_attempts`).
pub(super) const SYNC_COMMIT: &str = "SET LOCAL synchronous_commit = on";

/// A pooled connection unused for this long is queried before it is handed
/// out, so one the server ended meanwhile (a restart, `pg_terminate_backend`)
/// is replaced instead of failing the caller; one in steady use skips that
/// round trip (a query before every use cost a quarter of the delivery
/// throughput across 16 channels). The same rule as HikariCP's
/// `aliveBypassWindowMs`, with its default.
const VERIFY_AFTER_IDLE: Duration = Duration::from_millis(500);

/// The database's clock in milliseconds since the epoch. Leases use it, not
/// the replicas' clocks, which may disagree.
pub(super) const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The tables with an identity `id`, whose sequence must move past the
/// highest id after rows are imported with their ids.
const ID_TABLES: &[&str] = &[
    "bindings",
    "events",
    "held_events",
    "deliveries",
    "attempts",
    "audit",
    "failures",
    "changes",
];

/// Rows inserted by one statement when importing.
const IMPORT_CHUNK: usize = 500;

/// A pool of connections to one PostgreSQL database; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// How to connect (with the password), for the LISTEN connection.
    config: tokio_postgres::Config,
    /// The TLS connector of every connection, and the settings it came from.
    tls: MakeRustlsConnect,
    tls_settings: tls::PgTls,
    /// The URL without any password, for messages.
    described: String,
}

/// Why a call failed, before it becomes a [`StoreError`] naming the database.
#[derive(Debug)]
pub(super) enum Fail {
    Pg(tokio_postgres::Error),
    Pool(PoolError),
    Store(StoreError),
}

impl Fail {
    /// The connection was gone or ended by the server (closed socket,
    /// `pg_terminate_backend`, a server shutting down): the same call on a
    /// new connection may well succeed.
    pub(super) fn connection_lost(&self) -> bool {
        let Fail::Pg(e) = self else { return false };
        e.is_closed()
            || e.code().is_some_and(|c| c.code().starts_with("57P"))
            || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
    }
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Fail {
        Fail::Pg(e)
    }
}

impl From<PoolError> for Fail {
    fn from(e: PoolError) -> Fail {
        Fail::Pool(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

/// Result inside this backend.
pub(super) type PgResult<T> = Result<T, Fail>;

impl PgStore {
    /// Connects to the configured database, checks that it answers, and
    /// brings its schema up to date (once, even when replicas start together).
    pub async fn connect(config: &PostgresConfig) -> StoreResult<PgStore> {
        let described = describe_url(&config.url);
        let fail = |message: String| StoreError::Database {
            database: described.clone(),
            message,
        };
        let (url, tls_settings) = tls::PgTls::from_url(&config.url).map_err(&fail)?;
        let connector = tls_settings.connector().map_err(&fail)?;
        let mut pg = tokio_postgres::Config::from_str(&url)
            .map_err(|e| fail(format!("not a PostgreSQL connection URL: {e}")))?;
        pg.ssl_mode(tls_settings.pg_mode());
        if let Some(source) = &config.password {
            let secret = source
                .resolve()
                .map_err(|e| fail(format!("cannot read the database password: {e}")))?;
            pg.password(secret.expose());
        }
        if pg.get_application_name().is_none() {
            pg.application_name("pagehook");
        }
        pg.connect_timeout(Duration::from_secs(5));
        // Notice a peer that vanished without closing (a network cut).
        pg.keepalives_idle(Duration::from_secs(30));
        let manager = Manager::from_config(
            pg.clone(),
            connector.clone(),
            ManagerConfig {
                // A connection whose socket is closed is replaced before
                // use; one that sat idle is also queried first (see
                // `verify_if_idle`).
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            // The connection used last is handed out first: under a light
            // load a few connections (and their server processes, and
            // their prepared statements) stay warm instead of every one
            // taking turns.
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .pre_recycle(Hook::async_fn(|client, metrics| {
                let idle = metrics.last_used();
                Box::pin(async move {
                    if idle >= VERIFY_AFTER_IDLE {
                        client.simple_query("").await.map_err(HookError::Backend)?;
                    }
                    Ok(())
                })
            }))
            .post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute(SESSION)
                        .await
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| fail(format!("cannot set up the connection pool: {e}")))?;
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                config: pg,
                tls: connector,
                tls_settings,
                described,
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The database's URL without any password, for logs and messages.
    pub fn describe(&self) -> String {
        self.inner.described.clone()
    }

    /// Runs `f`, turning its failure into a [`StoreError`] naming the database.
    pub(super) async fn run<T>(&self, f: impl Future<Output = PgResult<T>>) -> StoreResult<T> {
        f.await.map_err(|e| self.error(e))
    }

    /// Opens every connection the pool may hold, at once: a replica that
    /// starts under load (a restart in the middle of an import) otherwise
    /// opens them one by one in its first busy second, each a TCP
    /// handshake, a SCRAM authentication and the session's settings, paid
    /// by both processes while the events wait. How many were open; one
    /// that cannot be opened now is opened when needed, as before.
    pub async fn fill_pool(&self) -> usize {
        let opened =
            futures::future::join_all((0..self.pool_size()).map(|_| self.inner.pool.get())).await;
        opened.iter().filter(|c| c.is_ok()).count()
    }

    /// The most connections the pool holds.
    pub(super) fn pool_size(&self) -> usize {
        self.inner.pool.status().max_size
    }

    /// A pooled connection (checked before it is handed out).
    pub(super) async fn client(&self) -> PgResult<Object> {
        Ok(self.inner.pool.get().await?)
    }

    pub(super) fn error(&self, e: Fail) -> StoreError {
        let message = match e {
            Fail::Store(e) => return e,
            Fail::Pg(e) => pg_message(&e),
            Fail::Pool(e) => pool_message(&e),
        };
        let message = match tls::explain(&message, &self.inner.tls_settings) {
            Some(words) => format!("{message}: {words}"),
            None => message,
        };
        StoreError::Database {
            database: self.describe(),
            message,
        }
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS pagehook_schema (version INTEGER NOT NULL)",
            )
            .await?;
            let applied: Option<i32> = tx
                .query_opt("SELECT max(version) FROM pagehook_schema", &[])
                .await?
                .and_then(|r| r.get(0));
            let applied = applied.unwrap_or(0).max(0) as usize;
            if applied > MIGRATIONS.len() {
                // Which Pagehook migrated it, when that one recorded itself.
                let recorded: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
                         WHERE table_schema = current_schema() \
                         AND table_name = 'pagehook_schema' AND column_name = 'pagehook')",
                        &[],
                    )
                    .await?
                    .get(0);
                let written_by: Option<String> = if recorded {
                    tx.query_opt("SELECT pagehook FROM pagehook_schema LIMIT 1", &[])
                        .await?
                        .and_then(|r| r.get(0))
                } else {
                    None
                };
                return Err(StoreError::newer_schema(
                    applied,
                    MIGRATIONS.len(),
                    written_by.as_deref(),
                )
                .into());
            }
            if applied == MIGRATIONS.len() {
                if repairs::repair(&tx, applied).await? {
                    tx.commit().await?;
                }
                return Ok(());
            }
            for sql in &MIGRATIONS[applied..] {
                tx.batch_execute(sql).await?;
            }
            repairs::repair(&tx, MIGRATIONS.len()).await?;
            let version = MIGRATIONS.len() as i32;
            tx.execute("DELETE FROM pagehook_schema", &[]).await?;
            // The binary that migrated, for an older one's refusal to name.
            tx.batch_execute("ALTER TABLE pagehook_schema ADD COLUMN IF NOT EXISTS pagehook TEXT")
                .await?;
            tx.execute(
                "INSERT INTO pagehook_schema (version, pagehook) VALUES ($1, $2)",
                &[&version, &env!("CARGO_PKG_VERSION")],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(
                database = %self.describe(),
                from = applied,
                to = version,
                "database schema migrated"
            );
            Ok(())
        })
        .await
    }

    /// A trivial query: the database answers (`/healthz`).
    pub async fn ping(&self) -> StoreResult<()> {
        self.run(async {
            self.client().await?.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    /// Whether nothing is stored yet (a copy's target must be empty).
    pub async fn is_empty(&self) -> StoreResult<bool> {
        self.run(async {
            let client = self.client().await?;
            for table in COPIED_TABLES {
                let any: bool = client
                    .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
                    .await?
                    .try_get(0)?;
                if any {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await
    }

    /// Every row of `table` as a JSON object of its columns, in id (or key)
    /// order: flags as booleans, numbers as numbers, text as strings.
    pub async fn export_table(&self, table: &str) -> StoreResult<Vec<Map<String, Value>>> {
        let table = copied_table(table)?;
        self.run(async {
            let order = match table {
                "slack_threads" => "connection, channel, thread_key",
                "once_keys" => "source, once_key",
                "connections" | "plugins" => "name",
                _ => "id",
            };
            let rows = self
                .client()
                .await?
                .query(
                    &format!("SELECT row_to_json(t)::text FROM {table} t ORDER BY {order}"),
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let text: String = r.try_get(0)?;
                    serde_json::from_str(&text).map_err(|e| {
                        Fail::Store(StoreError::Corrupt {
                            what: "exported row",
                            message: e.to_string(),
                        })
                    })
                })
                .collect()
        })
        .await
    }

    /// Inserts rows exported by either backend as they are, ids included,
    /// and moves the id sequence past them. Values are converted to the
    /// columns' types by PostgreSQL (`json_populate_recordset`), so SQLite's
    /// 0/1 flags become booleans.
    pub async fn import_table(&self, table: &str, rows: &[Map<String, Value>]) -> StoreResult<()> {
        let table = copied_table(table)?;
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let columns: Vec<&str> = first.keys().map(String::as_str).collect();
        if let Some(bad) = columns.iter().find(|c| {
            c.is_empty()
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }) {
            return Err(StoreError::Corrupt {
                what: "exported row",
                message: format!("`{bad}` is not a column name"),
            });
        }
        let columns = columns.join(", ");
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let insert = tx
                .prepare(&format!(
                    "INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::{table}, $1::text::json)"
                ))
                .await?;
            for chunk in rows.chunks(IMPORT_CHUNK) {
                let json = serde_json::to_string(chunk).expect("JSON values serialize");
                tx.execute(&insert, &[&json]).await?;
            }
            if ID_TABLES.contains(&table) {
                tx.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table} HAVING max(id) IS NOT NULL"
                    ),
                    &[],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}

/// `table` if `store copy` moves it (the name goes into SQL).
fn copied_table(table: &str) -> StoreResult<&'static str> {
    COPIED_TABLES
        .iter()
        .find(|t| **t == table)
        .copied()
        .ok_or_else(|| StoreError::NotFound(format!("no table {table} to copy")))
}

/// A driver error in words: the server's message and SQLSTATE, or what went
/// wrong with the connection. Neither ever holds the password.
fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut message = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        return message;
    }
    // "error performing TLS handshake" says why only in its causes.
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !message.contains(&part) {
            message.push_str(": ");
            message.push_str(&part);
        }
        cause = c.source();
    }
    message
}

fn pool_message(e: &PoolError) -> String {
    match e {
        PoolError::Backend(e) => pg_message(e),
        PoolError::Timeout(kind) => {
            format!(
                "no database connection could be had in time ({kind:?}); is the database up and reachable?"
            )
        }
        PoolError::Closed => "the connection pool is closed".to_owned(),
        PoolError::NoRuntimeSpecified => "the connection pool has no runtime".to_owned(),
        PoolError::PostCreateHook(HookError::Backend(e)) => pg_message(e),
        PoolError::PostCreateHook(HookError::Message(m)) => m.to_string(),
    }
}

/// A URL safe to print: no `user:password@` and no `password=` option
/// (the configuration refuses both; this is a second line of defence).
fn describe_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((user, _)) => format!("{user}@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}{authority}{path}");
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| {
                !kv.split('=')
                    .next()
                    .unwrap_or("")
                    .eq_ignore_ascii_case("password")
            })
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

#[cfg(test)]
pub(super) mod testing {
    //! Connecting to the test server (`pagehook_fakes::postgres`).

    use pagehook_fakes::postgres::TestPostgres;

    use super::PgStore;
    use crate::config::PostgresConfig;
    use crate::secret::SecretSource;
    use crate::store::{Backend, Store};

    /// The configuration for `database` on the shared test server.
    pub fn config(pg: &TestPostgres, database: &str) -> PostgresConfig {
        PostgresConfig {
            url: pg.url(database),
            password: Some(SecretSource::Value(pg.password().to_owned())),
            max_connections: 4,
        }
    }

    /// The [`Store`] over `store`, for what only the boundary offers.
    pub fn boundary(store: &PgStore) -> Store {
        Store {
            backend: Backend::Postgres(store.clone()),
        }
    }

    /// The shared methods the backend's own tests (claims, outbox) call on
    /// a [`PgStore`]; they live on [`Store`].
    impl PgStore {
        pub async fn connection(
            &self,
            name: &str,
        ) -> crate::store::StoreResult<Option<crate::store::ConnectionRecord>> {
            boundary(self).connection(name).await
        }

        pub async fn add_connection(
            &self,
            c: &crate::store::ConnectionRecord,
        ) -> crate::store::StoreResult<()> {
            boundary(self).add_connection(c).await
        }

        pub async fn event(
            &self,
            id: i64,
        ) -> crate::store::StoreResult<Option<crate::store::EventRecord>> {
            boundary(self).event(id).await
        }

        pub async fn defer_event(
            &self,
            claim: &crate::store::Claim,
            id: i64,
            error: &str,
            next_try_at: i64,
        ) -> crate::store::StoreResult<bool> {
            boundary(self)
                .defer_event(claim, id, error, next_try_at)
                .await
        }

        pub async fn close_event(
            &self,
            claim: &crate::store::Claim,
            id: i64,
            status: crate::store::EventStatus,
            error: Option<&str>,
        ) -> crate::store::StoreResult<bool> {
            boundary(self).close_event(claim, id, status, error).await
        }

        pub async fn attempts(
            &self,
            delivery_id: i64,
        ) -> crate::store::StoreResult<Vec<crate::store::AttemptRecord>> {
            boundary(self).attempts(delivery_id).await
        }

        pub async fn first_attempt_at(
            &self,
            delivery_id: i64,
        ) -> crate::store::StoreResult<Option<i64>> {
            boundary(self).first_attempt_at(delivery_id).await
        }

        pub async fn deliveries(
            &self,
            status: Option<crate::store::DeliveryStatus>,
            limit: usize,
        ) -> crate::store::StoreResult<Vec<crate::store::DeliveryRecord>> {
            boundary(self).deliveries(status, limit).await
        }

        pub async fn event_deliveries(
            &self,
            event_id: i64,
        ) -> crate::store::StoreResult<Vec<crate::store::DeliveryRecord>> {
            boundary(self).event_deliveries(event_id).await
        }

        pub async fn audit(
            &self,
            event_id: Option<i64>,
            limit: usize,
        ) -> crate::store::StoreResult<Vec<crate::store::AuditRecord>> {
            boundary(self).audit(event_id, limit).await
        }

        pub async fn failures(
            &self,
            plugin: Option<&str>,
            limit: usize,
        ) -> crate::store::StoreResult<Vec<crate::store::FailureRecord>> {
            boundary(self).failures(plugin, limit).await
        }

        pub async fn event_failures(
            &self,
            event_id: i64,
        ) -> crate::store::StoreResult<Vec<crate::store::FailureRecord>> {
            boundary(self).event_failures(event_id).await
        }

        pub async fn set_connection_health(
            &self,
            name: &str,
            error: Option<&str>,
        ) -> crate::store::StoreResult<()> {
            boundary(self).set_connection_health(name, error).await
        }
    }

    /// A store on a fresh database of the shared test server, and its name.
    pub async fn fresh() -> (PgStore, String) {
        let pg = TestPostgres::shared();
        let db = pg.fresh_database();
        let store = PgStore::connect(&config(pg, &db)).await.unwrap();
        (store, db)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{boundary, config, fresh};
    use super::*;
    use pagehook_fakes::postgres::TestPostgres;

    #[test]
    fn describe_never_shows_a_password() {
        assert_eq!(
            describe_url("postgres://app:s3cret@db:5432/ph?sslmode=disable&password=x"),
            "postgres://app@db:5432/ph?sslmode=disable"
        );
        assert_eq!(describe_url("postgres://app@db/ph"), "postgres://app@db/ph");
        assert_eq!(describe_url("postgresql://db"), "postgresql://db");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_starting_together_migrate_once_and_a_newer_schema_is_refused() {
        let pg = TestPostgres::shared();
        let db = pg.fresh_database();
        let cfg = config(pg, &db);
        let (a, b) = tokio::join!(PgStore::connect(&cfg), PgStore::connect(&cfg));
        let (a, _b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            pg.psql(&db, "SELECT version FROM pagehook_schema"),
            MIGRATIONS.len().to_string(),
            "one row, the current version"
        );
        a.ping().await.unwrap();

        pg.psql(&db, "UPDATE pagehook_schema SET version = 99");
        let err = PgStore::connect(&cfg).await.err().expect("refused");
        assert_eq!(
            err.to_string(),
            format!(
                "database holds an unreadable schema: version 99 is newer than this binary's {} (pagehook {v}); it was written by pagehook {v}: run pagehook {v} or newer, or restore the backup taken before the upgrade; nothing was changed",
                MIGRATIONS.len(),
                v = env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn filling_the_pool_opens_every_connection_it_may_hold() {
        let (store, db) = fresh().await;
        let sessions = || {
            TestPostgres::shared().psql(
                &db,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
                ),
            )
        };
        // The connection that applied the migrations, at most.
        assert!(sessions().parse::<usize>().unwrap() <= 1);
        assert_eq!(store.fill_pool().await, 4);
        assert_eq!(sessions(), "4");
        // Filling a full pool opens none more.
        assert_eq!(store.fill_pool().await, 4);
        assert_eq!(sessions(), "4");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pooled_connections_run_with_synchronous_commit_and_the_app_name() {
        let (store, _db) = fresh().await;
        let row = store
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT current_setting('synchronous_commit'), current_setting('application_name')",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "on");
        let timeout: String = store
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT current_setting('idle_in_transaction_session_timeout')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(timeout, "1min");
        assert_eq!(row.get::<_, String>(1), "pagehook");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_password_or_a_missing_secret_is_reported_without_the_value() {
        let pg = TestPostgres::shared();
        let db = pg.fresh_database();
        let mut cfg = config(pg, &db);
        cfg.password = Some(crate::secret::SecretSource::Value(
            "not-the-password".into(),
        ));
        let err = PgStore::connect(&cfg)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(&pg.url(&db)), "{err}");
        assert!(!err.contains("not-the-password"), "{err}");
        assert!(err.contains("28P01"), "the SQLSTATE: {err}");

        cfg.password = Some(crate::secret::SecretSource::Env(
            "PAGEHOOK_TEST_SURELY_UNSET_PG_PASSWORD".into(),
        ));
        let err = PgStore::connect(&cfg)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("environment variable PAGEHOOK_TEST_SURELY_UNSET_PG_PASSWORD is not set"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_database_is_named_in_the_error() {
        let cfg = PostgresConfig {
            url: "postgres://pagehook@127.0.0.1:1/nothing".into(),
            password: Some(crate::secret::SecretSource::Value("pw-never-shown".into())),
            max_connections: 2,
        };
        let err = PgStore::connect(&cfg)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.starts_with("database postgres://pagehook@127.0.0.1:1/nothing: "),
            "{err}"
        );
        assert!(!err.contains("pw-never-shown"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_terminated_backend_is_survived_by_the_next_call() {
        // A server of its own: it kills connections.
        let pg = TestPostgres::start();
        let db = pg.fresh_database();
        let store = PgStore::connect(&config(&pg, &db)).await.unwrap();
        // Several connections in the pool, all of them killed while idle
        // (longer than VERIFY_AFTER_IDLE): the next calls get new ones.
        let boundary = boundary(&store);
        let (a, b, c) = tokio::join!(store.ping(), store.ping(), boundary.plugins());
        a.unwrap();
        b.unwrap();
        c.unwrap();
        tokio::time::sleep(VERIFY_AFTER_IDLE).await;
        assert!(pg.terminate_connections(&db, "pagehook") >= 1);
        store.ping().await.unwrap();
        assert!(boundary.plugins().await.unwrap().is_empty());
        tokio::time::sleep(VERIFY_AFTER_IDLE).await;
        assert!(pg.terminate_connections(&db, "pagehook") >= 1);
        assert!(store.is_empty().await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn export_and_import_keep_ids_and_convert_sqlite_flags() {
        let (store, _db) = fresh().await;
        let rows: Vec<Map<String, Value>> = vec![
            serde_json::json!({"name": "acme", "kind": "slack", "url": "https://s", "username": null,
                "secret": "env:T", "hook_secret": null, "dry_run": 1, "created_at": 5,
                "health_error": null, "token_name": null, "token_expires_at": null, "token_checked_at": null}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        store.import_table("connections", &rows).await.unwrap();
        let back = store.export_table("connections").await.unwrap();
        assert_eq!(back[0]["dry_run"], Value::Bool(true));
        assert_eq!(back[0]["created_at"], Value::from(5));
        assert!(
            boundary(&store)
                .connection("acme")
                .await
                .unwrap()
                .unwrap()
                .dry_run
        );

        let events: Vec<Map<String, Value>> = (1..=3)
            .map(|i| {
                serde_json::json!({"id": i * 10, "key": format!("k{i}"), "source": "prod", "name": "page_created",
                    "received_at": 1, "payload": "{}", "status": "dispatched", "attempts": 1})
                .as_object()
                .unwrap()
                .clone()
            })
            .collect();
        store.import_table("events", &events).await.unwrap();
        assert!(!store.is_empty().await.unwrap());
        let exported = store.export_table("events").await.unwrap();
        assert_eq!(
            exported
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            [10, 20, 30]
        );
        // New rows get ids past the imported ones.
        let d = crate::store::NewDelivery {
            binding_id: 1,
            plugin: "p".into(),
            destination: "#x".into(),
            action: crate::model::Action::PostSlack {
                channel: "#x".into(),
                text: "t".into(),
                blocks: None,
                thread_key: None,
            },
            dry_run: false,
            lane: "slack:#x".into(),
            source: "prod".into(),
            connection: None,
        };
        store.enqueue_notice("hello", &d).await.unwrap();
        let newest = boundary(&store).events(None, 1).await.unwrap();
        assert_eq!(newest[0].id, 31);
        assert!(store.export_table("lane_leases").await.is_err());
    }
}
