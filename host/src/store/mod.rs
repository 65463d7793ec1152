//! The durable store: one boundary, two backends.
//!
//! Everything the sidecar must not lose lives here: accepted events (written
//! before the webhook is answered), installed plugins and their grants,
//! connections, bindings, the delivery outbox, the audit log and plugin
//! failures, and the claims and rate state that let several replicas share
//! the work.
//!
//! [`Store`] is the only way in. It is async and never blocks an async
//! worker: the embedded SQLite backend ([`sqlite`], one process, one file)
//! runs each call on the blocking pool; the PostgreSQL backend
//! ([`postgres`], any number of replicas) is async by nature. What crosses
//! this boundary are the named records of the submodules here and
//! [`StoreError`], which carries no driver type. Nothing outside this module
//! knows which backend it talks to, and the store test suite
//! (`host/tests/it/store_suite.rs`) runs the same tests against both.
//!
//! Beneath the boundary, one layer is shared ([`sql`]): a statement that is
//! the same on both backends is written once, in the module of its record
//! (`plugins.rs`, `connections.rs`, `events.rs`, ...), next to that record's
//! one decoder, which reads columns by name over either driver's row. Only
//! what really differs stays in a backend: migrations, claiming (the claim
//! walk's SQL, leases, rate rows), dispatch's batch writes, ingest's group
//! commit, PostgreSQL's LISTEN/NOTIFY and TLS, SQLite's file handling;
//! [`Store`] hands those calls over in `per_backend.rs`.

/// Runs one call on whichever backend holds the store: SQLite's on the
/// blocking pool (the closure owns what it uses), PostgreSQL's directly.
/// For the calls each backend answers in its own SQL (`per_backend.rs`);
/// the rest is written once (`sql.rs`).
macro_rules! on_backend {
    ($self:ident, |$s:ident| $sqlite:expr, |$p:ident| $pg:expr) => {
        match &$self.backend {
            $crate::store::Backend::Sqlite($s) => $s.run(move |$s| $sqlite).await,
            $crate::store::Backend::Postgres($p) => $pg.await,
        }
    };
}

mod bindings;
pub mod changes;
pub mod claims;
mod connections;
mod delivery;
mod digests;
mod events;
mod history;
pub mod ingest;
mod outbox;
mod per_backend;
mod plugins;
pub mod postgres;
pub mod search;
pub mod sessions;
pub mod sql;
pub mod sqlite;
pub mod teams_conversations;
pub mod user_links;

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

pub use bindings::{Binding, NewBinding, Scope};
pub use changes::{ChangeQuery, ChangeRecord, NewChange};
pub use claims::{Claim, DeliveryRound, RateKeys, RatePolicy, SendSlot};
pub use connections::{ConnectionKind, ConnectionRecord, TokenExpiry, redacted_url};
pub use delivery::{AttemptRecord, AttemptResult, Claimed, HealthChange, Outcome, SlackThread};
pub use digests::{ClaimedHeld, DigestSettings, HeldEvent, NewHeld, Released};
pub use events::{EventCount, EventRecord, EventStatus, NewEvent};
pub use outbox::{
    AuditRecord, BreakerPolicy, DeliveryRecord, DeliveryStatus, Dispatched, FailureRecord,
    NewDelivery, PluginCall,
};
pub use plugins::PluginRecord;
pub use search::{DeliveryCount, DeliveryQuery, EventQuery, EventSummary, LatestIds};
pub use sessions::{NewSession, SessionRecord};
pub use user_links::{LinkMethod, LinkToken, NewLinkToken, UserLink, VerifiedPerson};

use crate::config::Database;

/// Why a store operation failed. No driver type crosses the boundary: the
/// backends turn their errors into these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached, read or written. `database` names
    /// it (a file, or a URL without its password) for the log; it is never
    /// shown to API clients.
    #[error("database {database}: {message}")]
    Database { database: String, message: String },
    /// A named row does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with what is stored (a duplicate name, a row in use).
    #[error("{0}")]
    Conflict(String),
    /// A stored value could not be decoded; the database was edited by hand or is newer.
    #[error("database holds an unreadable {what}: {message}")]
    Corrupt { what: &'static str, message: String },
}

impl StoreError {
    /// A database migrated by a newer Pagehook than this one: refused
    /// rather than damaged.
    /// `written_by`: the Pagehook version that migrated it, when it recorded one.
    pub(crate) fn newer_schema(
        applied: usize,
        known: usize,
        written_by: Option<&str>,
    ) -> StoreError {
        let this = env!("CARGO_PKG_VERSION");
        let message = match written_by {
            Some(needed) => format!(
                "version {applied} is newer than this binary's {known} (pagehook {this}); it was written by pagehook {needed}: run pagehook {needed} or newer, or restore the backup taken before the upgrade; nothing was changed"
            ),
            None => format!(
                "version {applied} is newer than this binary's {known} (pagehook {this}); upgrade pagehook; nothing was changed"
            ),
        };
        StoreError::Corrupt {
            what: "schema",
            message,
        }
    }
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// What `store copy` moved, table by table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CopyReport {
    /// `(table, rows)` in the order they were copied.
    pub tables: Vec<(String, u64)>,
}

/// The tables `store copy` moves, parents before children. Claims and rate
/// state are not copied: they belong to the processes of the old store.
pub const COPIED_TABLES: &[&str] = &[
    "connections",
    "plugins",
    "bindings",
    "binding_digests",
    "events",
    "held_events",
    "deliveries",
    "attempts",
    "audit",
    "failures",
    "slack_threads",
    "once_keys",
    "changes",
    "user_links",
    "teams_conversations",
    "teams_bot_teams",
];

/// A handle on the database, shared by the server, the workers and the CLI.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens the configured database and brings its schema up to date.
    pub async fn open(database: &Database) -> StoreResult<Store> {
        match database {
            Database::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || Store::open_sqlite(&path))
                    .await
                    .map_err(|e| StoreError::Database {
                        database: "sqlite".into(),
                        message: e.to_string(),
                    })?
            }
            Database::Postgres(pg) => Ok(Store {
                backend: Backend::Postgres(postgres::PgStore::connect(pg).await?),
            }),
        }
    }

    /// Opens (creating if needed) a SQLite database file, from outside any
    /// async runtime (tests, tools).
    pub fn open_sqlite(path: &Path) -> StoreResult<Store> {
        Ok(Store {
            backend: Backend::Sqlite(sqlite::SqliteStore::open(path)?),
        })
    }

    /// The database, for logs and messages: a file path, or a URL without
    /// its password.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.path().display().to_string(),
            Backend::Postgres(p) => p.describe(),
        }
    }

    /// Opens the connections a shared store's pool may hold (see
    /// [`postgres::PgStore::fill_pool`]); how many are open. SQLite has its
    /// one already.
    pub async fn fill_pool(&self) -> usize {
        match &self.backend {
            Backend::Sqlite(_) => 1,
            Backend::Postgres(p) => p.fill_pool().await,
        }
    }

    /// Whether several replicas can share this store.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The SQLite backend, for ingest's group commit.
    pub(crate) fn as_sqlite(&self) -> Option<&sqlite::SqliteStore> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s),
            Backend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL backend, for ingest.
    pub(crate) fn as_postgres(&self) -> Option<&postgres::PgStore> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(p) => Some(p),
        }
    }

    /// Answers once the database answers a trivial query (`/healthz`).
    pub async fn ping(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(s) => s.run(|s| s.ping()).await,
            Backend::Postgres(p) => p.ping().await,
        }
    }

    /// Wakes `events` when another replica stored an event and `deliveries`
    /// when one wrote deliveries (PostgreSQL's LISTEN/NOTIFY). A lost
    /// notification only delays: the workers also poll. Nothing to do on
    /// SQLite, where this process is the only writer.
    pub fn listen(&self, events: Arc<Notify>, deliveries: Arc<Notify>) {
        if let Backend::Postgres(p) = &self.backend {
            p.listen(events, deliveries);
        }
    }

    /// Copies every row of this store into `target`, which must be empty,
    /// keeping ids; returns what it copied.
    pub async fn copy_into(&self, target: &Store) -> StoreResult<CopyReport> {
        if !target.is_empty().await? {
            return Err(StoreError::Conflict(format!(
                "{} already holds data; copy into a new, empty database",
                target.describe()
            )));
        }
        let mut tables = Vec::new();
        for table in COPIED_TABLES {
            let rows = self.export_table(table).await?;
            let n = rows.len() as u64;
            target.import_table(table, rows).await?;
            tables.push(((*table).to_owned(), n));
        }
        Ok(CopyReport { tables })
    }

    async fn is_empty(&self) -> StoreResult<bool> {
        match &self.backend {
            Backend::Sqlite(s) => s.run(|s| s.is_empty()).await,
            Backend::Postgres(p) => p.is_empty().await,
        }
    }

    async fn export_table(
        &self,
        table: &'static str,
    ) -> StoreResult<Vec<serde_json::Map<String, serde_json::Value>>> {
        match &self.backend {
            Backend::Sqlite(s) => s.run(move |s| s.export_table(table)).await,
            Backend::Postgres(p) => p.export_table(table).await,
        }
    }

    async fn import_table(
        &self,
        table: &'static str,
        rows: Vec<serde_json::Map<String, serde_json::Value>>,
    ) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(s) => s.run(move |s| s.import_table(table, &rows)).await,
            Backend::Postgres(p) => p.import_table(table, &rows).await,
        }
    }
}

/// Milliseconds since the Unix epoch: this process's clock. Claims and
/// leases use the database's clock instead.
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
