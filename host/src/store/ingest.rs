//! The webhook's write path: an event is answered only once it is stored
//! durably, and concurrent webhooks share one commit (group commit).
//!
//! Each backend writes its own way: SQLite commits batches on a writer
//! thread and syncs the write-ahead log on another ([`super::sqlite::ingest`]);
//! PostgreSQL commits each batch in one transaction with
//! `synchronous_commit` on and tells the other replicas with NOTIFY
//! ([`super::postgres::ingest`]). Both deduplicate by the event's key in the
//! statement that inserts it.

use std::sync::Arc;

use tokio::sync::Notify;

use super::{NewEvent, Store, StoreResult, postgres, sqlite};

/// Where an inserted event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// Its id (the first one's, for a duplicate).
    pub id: i64,
    /// The same key was stored before; nothing new was written.
    pub duplicate: bool,
}

/// Why an event was not stored. Each is the webhook's answer: it says what
/// to do and names no file, host or password (the log has those).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The database refused the batch the event was in, or could not be
    /// reached: nothing of it was stored, and ingest goes on (each new
    /// webhook tries again). Says why, in words.
    #[error(
        "{0}: the event was not stored; send it again later (pagehook resumes by itself once writes succeed)"
    )]
    NotStored(&'static str),
    /// The event was written but could not be made durable (SQLite's
    /// sync): nothing written since can be promised, so ingest stops until
    /// a restart.
    #[error(
        "syncing the event to disk failed ({0}): the event was not acknowledged, and webhook storage has stopped; restart pagehook"
    )]
    NotDurable(String),
    /// The writer is gone (after a failed sync, or the process is ending).
    #[error("webhook storage has stopped (see the log); restart pagehook")]
    Stopped,
}

/// Sends events to the backend's writer; cheap to clone.
#[derive(Clone)]
pub enum Ingest {
    /// SQLite's writer and sync threads.
    Sqlite(sqlite::ingest::SqliteIngest),
    /// PostgreSQL's writer task.
    Postgres(postgres::ingest::PgIngest),
}

impl Ingest {
    /// Starts the writer on `store`; `stored` is notified after every
    /// durable batch that wrote something new.
    pub fn start(store: &Store, stored: Arc<Notify>) -> StoreResult<Ingest> {
        if let Some(s) = store.as_sqlite() {
            return Ok(Ingest::Sqlite(sqlite::ingest::SqliteIngest::start(
                s.clone(),
                stored,
            )?));
        }
        let p = store
            .as_postgres()
            .expect("a store is SQLite or PostgreSQL");
        Ok(Ingest::Postgres(postgres::ingest::PgIngest::start(
            p.clone(),
            stored,
        )))
    }

    /// Stores `event` durably; returns once it is committed. The error is
    /// the answer for the webhook: it says what to do and names no file,
    /// host or password.
    pub async fn insert(&self, event: NewEvent) -> Result<Inserted, IngestError> {
        match self {
            Ingest::Sqlite(s) => s.insert(event).await,
            Ingest::Postgres(p) => p.insert(event).await,
        }
    }
}
