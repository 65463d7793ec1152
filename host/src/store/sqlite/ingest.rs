//! The webhook's write path: durable inserts with group commit.
//!
//! A webhook may only be answered once its event is on disk. One writer
//! thread takes every insert waiting in its queue and commits them in one
//! transaction; a second thread then syncs the write-ahead log and answers
//! them. The two overlap: while one batch's fsync is on its way to the disk,
//! the next batch is already being inserted and written, so a commit no
//! longer waits for the previous one's fsync. Under load, dozens of requests
//! share one fsync; alone, a request waits for exactly one. Each caller
//! learns the event's id and whether it was a duplicate only after its
//! batch is durable.
//!
//! Two kinds of failure are told apart, because only one of them can break
//! the promise that an acknowledged event is on disk:
//!
//! - **A write fails** (the disk is full, the database or its filesystem is
//!   read-only, an I/O error on write): SQLite rolls the transaction back,
//!   nothing of the batch is committed and none of it is acknowledged; its
//!   webhooks are answered 503 with the reason, and Confluence sends them
//!   again. Everything acknowledged earlier is untouched. Every new batch
//!   simply tries again, so ingest resumes by itself, without a restart, as
//!   soon as writes succeed (space freed, filesystem writable again).
//! - **An fsync fails** after a batch was committed: see [`syncer`]; that
//!   stops ingest until a restart.
//!
//! The writer commits through the [`Store`]'s own connection, so it queues
//! behind dispatch and delivery on a mutex instead of meeting them at
//! SQLite's write lock, where the loser sleeps in SQLite's busy handler
//! (1 to 100 ms at a time) long after the lock is free.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, mpsc};

use rusqlite::{OptionalExtension, params};
use tokio::sync::{Notify, oneshot};

use super::SqliteStore;
use crate::store::ingest::{IngestError, Inserted};
use crate::store::{NewEvent, StoreError, StoreResult, now_ms};

/// Most events committed in one transaction.
const MAX_BATCH: usize = 512;

type Job = (NewEvent, oneshot::Sender<Result<Inserted, IngestError>>);

/// A committed batch waiting for the fsync: its callers and their answers.
type Committed = Vec<(oneshot::Sender<Result<Inserted, IngestError>>, Inserted)>;

/// Sends events to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct SqliteIngest {
    tx: mpsc::Sender<Job>,
}

impl SqliteIngest {
    /// Starts the writer and sync threads on `store`; `stored` is notified
    /// after every synced batch that wrote something new.
    pub fn start(store: SqliteStore, stored: Arc<Notify>) -> StoreResult<SqliteIngest> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (committed_tx, committed_rx) = mpsc::channel::<Committed>();
        let wal = store.wal_path();
        let database = store.path().display().to_string();
        let thread_error = |e: std::io::Error| StoreError::Database {
            database: database.clone(),
            message: format!("cannot start the ingest thread: {e}"),
        };
        std::thread::Builder::new()
            .name("pagehook-ingest-sync".into())
            .spawn(move || syncer(&wal, committed_rx, &stored))
            .map_err(thread_error)?;
        std::thread::Builder::new()
            .name("pagehook-ingest".into())
            .spawn(move || writer(&store, rx, committed_tx))
            .map_err(thread_error)?;
        Ok(SqliteIngest { tx })
    }

    /// Stores `event` durably; returns once it is on disk.
    pub async fn insert(&self, event: NewEvent) -> Result<Inserted, IngestError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((event, done))
            .map_err(|_| IngestError::Stopped)?;
        wait.await.map_err(|_| IngestError::Stopped)?
    }
}

/// Commits batches without syncing them and hands them to the syncer.
fn writer(store: &SqliteStore, rx: mpsc::Receiver<Job>, synced: mpsc::Sender<Committed>) {
    // The last batch failed; logged once until one succeeds again.
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let events: Vec<&NewEvent> = batch.iter().map(|(e, _)| e).collect();
        match store.with_unsynced(|conn| commit(conn, &events)) {
            Ok(results) => {
                if std::mem::take(&mut failing) {
                    tracing::warn!("storing webhook events works again");
                }
                let committed = batch
                    .into_iter()
                    .zip(results)
                    .map(|((_, done), result)| (done, result))
                    .collect();
                if synced.send(committed).is_err() {
                    return; // the syncer is gone; the dropped senders answer
                }
            }
            Err(e) => {
                let reason = refusal(&e);
                if !failing {
                    tracing::error!(error = %e, database = %store.path().display(), "storing webhook events failed; each new webhook tries again: {reason}");
                }
                failing = true;
                for (_, done) in batch {
                    let _ = done.send(Err(IngestError::NotStored(reason)));
                }
                continue;
            }
        }
    }
}

/// The answer for webhooks whose batch could not be committed: nothing of
/// it was stored, so it is safe to refuse and to try again later.
fn refusal(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode;
    let code = match e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.code),
        _ => None,
    };
    // The store error names the database file: it goes to the log, never
    // into the answer.
    match code {
        Some(ErrorCode::DiskFull) => "the disk holding the database is full",
        Some(ErrorCode::ReadOnly) => "the database is read-only",
        Some(ErrorCode::CannotOpen) => "the database file cannot be opened for writing",
        Some(ErrorCode::SystemIoFailure) => "writing to the database failed (I/O error)",
        _ => "storing the event failed",
    }
}

/// Syncs the write-ahead log once for every batch committed so far, then
/// answers their callers. The first sync also syncs the directory, so the
/// log file itself is sure to be found after a power cut.
///
/// A failed sync stops ingest for good (every later webhook is refused until
/// a restart), whatever the error, ENOSPC included: after a failed fsync the
/// kernel may have dropped the unwritten pages and marked them clean, so
/// nothing written since can be promised to be on disk (a later fsync that
/// succeeds does not bring them back), and answering a retried event as a
/// duplicate of a row that never got there would lose it. A restart reads
/// the database back from what is really on disk. A full disk is normally
/// met earlier, when the write itself fails (see the module docs), and that
/// does not stop ingest.
fn syncer(wal: &Path, rx: mpsc::Receiver<Committed>, stored: &Notify) {
    let mut dir_synced = false;
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        batches.extend(rx.try_iter());
        if let Err(e) = sync(wal, &mut dir_synced) {
            tracing::error!(
                error = %e,
                wal = %wal.display(),
                "syncing webhook events to disk failed; no more webhooks are accepted until pagehook is restarted"
            );
            for (done, _) in batches.into_iter().flatten() {
                let _ = done.send(Err(IngestError::NotDurable(e.kind().to_string())));
            }
            return;
        }
        let mut new = false;
        for (done, inserted) in batches.into_iter().flatten() {
            new |= !inserted.duplicate;
            let _ = done.send(Ok(inserted));
        }
        if new {
            stored.notify_one();
        }
    }
}

/// fdatasync on the log: the data of every frame written before the call,
/// whichever descriptor wrote it, is on disk when it returns.
fn sync(wal: &Path, dir_synced: &mut bool) -> std::io::Result<()> {
    File::open(wal)?.sync_data()?;
    if !*dir_synced {
        let dir = match wal.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
        *dir_synced = true;
    }
    Ok(())
}

fn commit(
    conn: &mut rusqlite::Connection,
    events: &[&NewEvent],
) -> rusqlite::Result<Vec<Inserted>> {
    let tx = conn.transaction()?;
    let mut out = Vec::with_capacity(events.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (key, source, name, received_at, payload, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key) DO NOTHING",
        )?;
        let mut existing = tx.prepare_cached("SELECT id FROM events WHERE key = ?1")?;
        let now = now_ms();
        for e in events {
            let status = e.status().as_str();
            let n = insert.execute(params![e.key, e.source, e.name, now, e.payload, status])?;
            if n == 1 {
                out.push(Inserted {
                    id: tx.last_insert_rowid(),
                    duplicate: false,
                });
            } else {
                let id: Option<i64> = existing.query_row([&e.key], |r| r.get(0)).optional()?;
                out.push(Inserted {
                    id: id.unwrap_or_default(),
                    duplicate: true,
                });
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventStatus;

    fn event(key: &str, dispatchable: bool) -> NewEvent {
        NewEvent {
            key: key.into(),
            source: "prod".into(),
            name: "page_created".into(),
            payload: r#"{"event":"page_created"}"#.into(),
            dispatchable,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_that_cannot_be_synced_is_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
        let ingest = SqliteIngest::start(store.clone(), Arc::new(Notify::new())).unwrap();
        ingest.insert(event("first", true)).await.unwrap();
        // SQLite keeps writing to its open descriptor; the sync, which goes
        // by the file's name, can no longer reach the log.
        std::fs::remove_file(store.wal_path()).unwrap();
        let err = ingest.insert(event("second", true)).await.unwrap_err();
        assert!(matches!(err, IngestError::NotDurable(_)), "{err}");
        assert!(
            err.to_string().contains("syncing the event to disk failed"),
            "{err}"
        );
        // Nothing written after a failed sync can be promised: ingest stops.
        let err = ingest.insert(event("third", true)).await.unwrap_err();
        assert_eq!(err, IngestError::Stopped);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_are_stored_once_each_and_duplicates_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let store = SqliteStore::open(&path).unwrap();
        let notify = Arc::new(Notify::new());
        let ingest = SqliteIngest::start(store.clone(), notify.clone()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let ingest = ingest.clone();
            tasks.push(tokio::spawn(async move {
                ingest
                    .insert(event(&format!("k{}", i % 100), true))
                    .await
                    .unwrap()
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 100);
        let mut ids: Vec<i64> = results.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 100, "duplicates report the first event's id");
        assert_eq!(
            store.boundary().events(None, 1000).await.unwrap().len(),
            100
        );

        let ignored = ingest.insert(event("unknown", false)).await.unwrap();
        let rec = store.boundary().event(ignored.id).await.unwrap().unwrap();
        assert_eq!(rec.status, EventStatus::Ignored);
        assert!(
            store
                .claim_events(&crate::store::Claim::new("test", 1000), 1000)
                .unwrap()
                .iter()
                .all(|e| e.id != ignored.id)
        );
    }
}
