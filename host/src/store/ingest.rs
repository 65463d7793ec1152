//! The webhook's write path: durable inserts with group commit.
//!
//! A webhook may only be answered once its event is on disk. With
//! `synchronous=FULL` that costs an fsync per commit, so one writer thread
//! with its own connection takes every insert waiting in its queue and
//! commits them in one transaction: under load, dozens of requests share one
//! fsync; alone, a request waits for exactly one. Each caller learns the
//! event's id and whether it was a duplicate only after the commit.
//!
//! The writer commits through the [`Store`]'s own connection, so it queues
//! behind dispatch and delivery on a mutex instead of meeting them at
//! SQLite's write lock, where the loser sleeps in SQLite's busy handler
//! (1 to 100 ms at a time) long after the lock is free.

use std::sync::{Arc, mpsc};

use rusqlite::{OptionalExtension, params};
use tokio::sync::{Notify, oneshot};

use super::{NewEvent, Store, StoreError, StoreResult, now_ms};

/// Most events committed in one transaction.
const MAX_BATCH: usize = 512;

/// What happened to an inserted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The stored event's id (the earlier one's, for a duplicate).
    pub id: i64,
    /// The same key was stored before; nothing new was written.
    pub duplicate: bool,
}

type Job = (NewEvent, oneshot::Sender<Result<Inserted, String>>);

/// Sends events to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
}

impl Ingest {
    /// Starts the writer thread on `store`; `stored` is notified after
    /// every commit that wrote something new.
    pub fn start(store: Arc<Store>, stored: Arc<Notify>) -> StoreResult<Ingest> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pagehook-ingest".into())
            .spawn(move || writer(&store, rx, &stored))
            .map_err(|e| StoreError::Sqlite {
                path: "ingest thread".into(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Ingest { tx })
    }

    /// Stores `event` durably; returns once it is committed.
    pub async fn insert(&self, event: NewEvent) -> Result<Inserted, String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((event, done))
            .map_err(|_| "the ingest writer has stopped".to_owned())?;
        wait.await
            .map_err(|_| "the ingest writer has stopped".to_owned())?
    }
}

fn writer(store: &Store, rx: mpsc::Receiver<Job>, stored: &Notify) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let events: Vec<&NewEvent> = batch.iter().map(|(e, _)| e).collect();
        match store.with(|conn| commit(conn, &events)) {
            Ok(results) => {
                let new = results.iter().any(|r| !r.duplicate);
                for ((_, done), result) in batch.into_iter().zip(results) {
                    let _ = done.send(Ok(result));
                }
                if new {
                    stored.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing webhook events failed");
                for (_, done) in batch {
                    let _ = done.send(Err(format!("storing the event failed: {e}")));
                }
            }
        }
    }
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
            let status = if e.dispatchable { "pending" } else { "ignored" };
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
    async fn concurrent_inserts_are_stored_once_each_and_duplicates_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let store = Arc::new(Store::open(&path).unwrap());
        let notify = Arc::new(Notify::new());
        let ingest = Ingest::start(store.clone(), notify.clone()).unwrap();
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
        assert_eq!(store.events(None, 1000).unwrap().len(), 100);

        let ignored = ingest.insert(event("unknown", false)).await.unwrap();
        let rec = store.event(ignored.id).unwrap().unwrap();
        assert_eq!(rec.status, EventStatus::Ignored);
        assert!(
            store
                .due_events(1000)
                .unwrap()
                .iter()
                .all(|e| e.id != ignored.id)
        );
    }
}
