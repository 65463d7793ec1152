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
//! ([`postgres`], any number of replicas) is async by nature. Each backend
//! keeps its own SQL and migrations; what crosses this boundary are the
//! named records of the submodules here and [`StoreError`], which carries
//! no driver type. Nothing outside this module knows which backend it talks
//! to, and the store test suite (`host/tests/it/store_suite.rs`) runs the same
//! tests against both.

mod bindings;
pub mod changes;
pub mod claims;
mod connections;
mod delivery;
mod digests;
mod events;
pub mod ingest;
mod outbox;
mod plugins;
pub mod postgres;
pub mod search;
pub mod sessions;
pub mod sql;
pub mod sqlite;
pub mod user_links;

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

pub use bindings::{Binding, NewBinding, Scope};
pub use changes::{ChangeQuery, ChangeRecord, NewChange};
pub use claims::{Claim, DeliveryRound, RateKeys, RatePolicy, SendSlot};
pub use connections::{ConnectionKind, ConnectionRecord, TokenExpiry, redacted_url};
pub use digests::{ClaimedHeld, DigestSettings, HeldEvent, NewHeld, Released};
pub use delivery::{AttemptRecord, AttemptResult, Claimed, HealthChange, Outcome, SlackThread};
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

/// Forwards each listed call to the backend: SQLite on the blocking pool
/// (arguments are made owned first), PostgreSQL directly.
macro_rules! forward {
    ($(
        $(#[$doc:meta])*
        fn $name:ident(&self $(, $arg:ident: $ty:ty => $owned:expr, $borrow:expr)* $(,)?) -> $ret:ty;
    )*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub async fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret> {
                    match &self.backend {
                        Backend::Sqlite(s) => {
                            $(let $arg = $owned(&$arg);)*
                            s.run(move |s| s.$name($($borrow(&$arg)),*)).await
                        }
                        Backend::Postgres(p) => p.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

/// Conversions for [`forward!`]: how an argument crosses to the blocking
/// pool and back.
fn copied<T: Copy>(v: &T) -> T {
    *v
}
fn owned_str(v: &&str) -> String {
    (*v).to_owned()
}
fn as_str(v: &String) -> &str {
    v
}
fn owned_opt_str(v: &Option<&str>) -> Option<String> {
    v.map(str::to_owned)
}
fn as_opt_str(v: &Option<String>) -> Option<&str> {
    v.as_deref()
}
fn owned_ref<T: Clone>(v: &&T) -> T {
    (*v).clone()
}
fn owned_opt_ref<T: Clone>(v: &Option<&T>) -> Option<T> {
    v.cloned()
}
fn as_opt_ref<T>(v: &Option<T>) -> Option<&T> {
    v.as_ref()
}
fn owned_slice<T: Clone>(v: &&[T]) -> Vec<T> {
    v.to_vec()
}
fn as_slice<T>(v: &Vec<T>) -> &[T] {
    v
}
fn by_ref<T>(v: &T) -> &T {
    v
}
fn owned_opt_slice<T: Clone>(v: &Option<&[T]>) -> Option<Vec<T>> {
    v.map(<[T]>::to_vec)
}
fn as_opt_slice<T>(v: &Option<Vec<T>>) -> Option<&[T]> {
    v.as_deref()
}

forward! {
    // Dispatch's results.
    /// Writes dispatch's results for events still held by `claim`, in one
    /// transaction; returns how many events were still held and written.
    fn finish_dispatch(&self, claim: &Claim => owned_ref, by_ref, batch: &[Dispatched] => owned_slice, as_slice, breaker: BreakerPolicy => copied, copied) -> usize;
    /// Queues a message Pagehook itself sends; returns the delivery's id.
    fn enqueue_notice(&self, what: &str => owned_str, as_str, d: &NewDelivery => owned_ref, by_ref) -> i64;
    /// Deliveries, newest first, optionally in one status.
    fn deliveries(&self, status: Option<DeliveryStatus> => copied, copied, limit: usize => copied, copied) -> Vec<DeliveryRecord>;
    /// The deliveries one event produced.
    fn event_deliveries(&self, event_id: i64 => copied, copied) -> Vec<DeliveryRecord>;
    /// The audit log, newest first, optionally for one event.
    fn audit(&self, event_id: Option<i64> => copied, copied, limit: usize => copied, copied) -> Vec<AuditRecord>;
    /// Failed plugin calls, newest first, optionally of one plugin.
    fn failures(&self, plugin: Option<&str> => owned_opt_str, as_opt_str, limit: usize => copied, copied) -> Vec<FailureRecord>;
    /// The failed calls of one event.
    fn event_failures(&self, event_id: i64 => copied, copied) -> Vec<FailureRecord>;

    // Delivery.
    /// Claims the head of up to `max` lanes: due, not leased by a live
    /// claim, allowed by Slack's rates (taking their slots), and only of
    /// events whose predecessors are all dispatched. Marks them `sending`.
    fn claim_deliveries(&self, claim: &Claim => owned_ref, by_ref, rates: RatePolicy => copied, copied, max: usize => copied, copied) -> DeliveryRound;
    /// Records attempts of deliveries still held by `claim` and the health
    /// they showed, in one transaction, and releases the claim's lanes;
    /// returns how many attempts were recorded.
    fn finish_attempts(&self, claim: &Claim => owned_ref, by_ref, attempts: &[AttemptResult] => owned_slice, as_slice, health: &[HealthChange] => owned_slice, as_slice) -> usize;
    /// Extends the lease of everything `claim` holds; returns how many rows it still holds.
    fn renew(&self, claim: &Claim => owned_ref, by_ref) -> usize;
    /// Lets go of everything `claim` holds (a clean stop).
    fn release(&self, claim: &Claim => owned_ref, by_ref) -> ();
    /// Lets go of everything the replica named `replica` holds, whatever
    /// round took it (a stopping server whose rounds did not finish within
    /// its grace): its lanes, its events, and its deliveries in flight, which
    /// go back to pending as uncertain (they may have been sent). Wakes the
    /// other replicas, so they take the work now rather than after the
    /// lease. Returns how many rows it let go.
    fn release_replica(&self, replica: &str => owned_str, as_str) -> usize;
    /// After a restart of the only server (SQLite): claims left by the
    /// previous run end now and their deliveries become uncertain; returns
    /// how many deliveries were in flight. PostgreSQL leaves them to expire.
    fn release_stale_claims(&self) -> usize;
    /// Takes the next send-time slot of a message's channel and workspace
    /// (see `claims::send_keys`) if it is due; otherwise takes nothing and
    /// says how long until it is.
    fn take_send_slot(&self, keys: &RateKeys => owned_ref, by_ref, rates: RatePolicy => copied, copied) -> SendSlot;

    // --- the console: searches, counts, change log, sessions ---

    /// Deliveries matching `q`, newest first, a page at a time.
    fn search_deliveries(&self, q: &DeliveryQuery => owned_ref, by_ref) -> Vec<DeliveryRecord>;

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
