//! The webhook's write path on PostgreSQL: an event is answered only once
//! it is committed, and concurrent webhooks share one commit.
//!
//! One writer task takes every insert waiting in its queue (up to
//! `MAX_BATCH`) and stores them with one statement: an `INSERT ... ON
//! CONFLICT (key) DO NOTHING` over arrays, which is its own transaction and
//! is committed with `synchronous_commit = on` (the pool sets it) before the
//! driver returns, so an acknowledged event survives a crash of the database
//! server. The same statement tells the other replicas (`NOTIFY
//! pagehook_events`, delivered at commit). The event key's unique index
//! deduplicates across replicas: a key inserted by another replica's
//! transaction still in flight makes this one wait for it, so a duplicate is
//! only ever reported for a committed event. A key twice in one batch is
//! stored once and reported as a duplicate of the first.
//!
//! What it must never do: acknowledge an event that is not committed, or
//! put the database's URL or password into a webhook's answer. When a batch
//! fails nothing of it was stored: every caller is answered with one fixed
//! refusal (Confluence sends the event again; the real error goes to the
//! log) and the next batch simply tries again on a connection the pool
//! checks first, so ingest resumes by itself once the database is back.
//! A batch whose connection the server had just ended (a restart,
//! `pg_terminate_backend`, faster than the pool could notice) is tried
//! again, once per pooled connection that may have been ended with it,
//! before anyone is refused: the insert is keyed,
//! so a batch that did commit before the connection broke is found, not
//! stored twice (its events are then answered as duplicates: stored all
//! the same).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use super::{PgResult, PgStore};
use crate::store::ingest::{IngestError, Inserted};
use crate::store::{NewEvent, StoreError, now_ms};

/// Most events stored by one statement.
const MAX_BATCH: usize = 512;

/// The answer for webhooks whose batch could not be stored.
const REFUSAL: IngestError =
    IngestError::NotStored("the database is unreachable or refused the write");

/// Stores a batch: new rows come back with their ids (and wake the other
/// replicas at commit); keys already stored do not.
const INSERT: &str = "WITH ins AS (
       INSERT INTO events (key, source, name, received_at, payload, status)
       SELECT key, source, name, $4, payload, status
       FROM unnest($1::text[], $2::text[], $3::text[], $5::text[], $6::text[])
         WITH ORDINALITY AS u(key, source, name, payload, status, ord)
       ORDER BY ord
       ON CONFLICT (key) DO NOTHING
       RETURNING id, key
     )
     -- Identical notifications in one transaction are delivered once.
     SELECT id, key, pg_notify('pagehook_events', '') FROM ins";

type Job = (NewEvent, oneshot::Sender<Result<Inserted, IngestError>>);

/// Sends events to the writer task; cheap to clone.
#[derive(Clone)]
pub struct PgIngest {
    tx: mpsc::UnboundedSender<Job>,
}

impl PgIngest {
    /// Starts the writer task on `store` (on the current tokio runtime);
    /// `stored` is notified after every batch that stored something new.
    pub fn start(store: PgStore, stored: Arc<Notify>) -> PgIngest {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, rx, stored));
        PgIngest { tx }
    }

    /// Stores `event`; returns once it is committed. The error is the
    /// webhook's answer: it names no host, URL or password.
    pub async fn insert(&self, event: NewEvent) -> Result<Inserted, IngestError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((event, done))
            .map_err(|_| IngestError::Stopped)?;
        wait.await.map_err(|_| IngestError::Stopped)?
    }
}

/// Stores batches until every [`PgIngest`] is dropped.
async fn writer(store: PgStore, mut rx: mpsc::UnboundedReceiver<Job>, stored: Arc<Notify>) {
    // The last batch failed; logged once until one succeeds again.
    let mut failing = false;
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        let events: Vec<&NewEvent> = jobs.iter().map(|(e, _)| e).collect();
        let mut outcome = commit(&store, &events).await;
        // Every pooled connection may have been ended at once; each failed
        // try discards one, so the pool's size plus one tries reach a new one.
        let mut tries = store.pool_size();
        while tries > 0 && outcome.as_ref().is_err_and(|e| e.connection_lost()) {
            tries -= 1;
            outcome = commit(&store, &events).await;
        }
        match outcome {
            Ok(results) => {
                if std::mem::take(&mut failing) {
                    tracing::warn!("storing webhook events works again");
                }
                let new = results.iter().any(|r| !r.duplicate);
                for ((_, done), result) in jobs.into_iter().zip(results) {
                    let _ = done.send(Ok(result));
                }
                if new {
                    stored.notify_one();
                }
            }
            Err(e) => {
                if !failing {
                    tracing::error!(
                        error = %store.error(e),
                        "storing webhook events failed; each new webhook tries again"
                    );
                }
                failing = true;
                for (_, done) in jobs {
                    let _ = done.send(Err(REFUSAL));
                }
            }
        }
    }
}

/// Stores `events` in one statement; each one's id and whether it was a
/// duplicate, in order.
async fn commit(store: &PgStore, events: &[&NewEvent]) -> PgResult<Vec<Inserted>> {
    let client = store.client().await?;
    let stmt = client.prepare_cached(INSERT).await?;
    let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
    let rows = client
        .query(
            &stmt,
            &[
                &keys,
                &events.iter().map(|e| e.source.as_str()).collect::<Vec<_>>(),
                &events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
                &now_ms(),
                &events
                    .iter()
                    .map(|e| e.payload.as_str())
                    .collect::<Vec<_>>(),
                &events
                    .iter()
                    .map(|e| e.status().as_str())
                    .collect::<Vec<_>>(),
            ],
        )
        .await?;
    let mut new: HashMap<String, i64> = HashMap::with_capacity(rows.len());
    for r in &rows {
        new.insert(r.try_get(1)?, r.try_get(0)?);
    }
    let mut old: HashMap<String, i64> = HashMap::new();
    let others: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !new.contains_key(*k))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !others.is_empty() {
        let stmt = client
            .prepare_cached("SELECT id, key FROM events WHERE key = ANY($1)")
            .await?;
        for r in client.query(&stmt, &[&others]).await? {
            old.insert(r.try_get(1)?, r.try_get(0)?);
        }
    }
    let mut answered: HashSet<&str> = HashSet::new();
    keys.iter()
        .map(|&key| {
            let first = answered.insert(key);
            match (new.get(key), old.get(key)) {
                (Some(&id), _) => Ok(Inserted {
                    id,
                    duplicate: !first,
                }),
                (None, Some(&id)) => Ok(Inserted {
                    id,
                    duplicate: true,
                }),
                (None, None) => Err(StoreError::Database {
                    database: store.describe(),
                    message: format!("event key {key} was neither stored nor found"),
                }
                .into()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{boundary, fresh};
    use super::*;
    use crate::store::{Claim, EventStatus};
    use pagehook_fakes::postgres::TestPostgres;

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
    async fn concurrent_duplicates_on_two_replicas_are_stored_once() {
        let (store, db) = fresh().await;
        let other = PgStore::connect(&super::super::testing::config(TestPostgres::shared(), &db))
            .await
            .unwrap();
        let notify = Arc::new(Notify::new());
        let ingests = [
            PgIngest::start(store.clone(), notify.clone()),
            PgIngest::start(other, Arc::new(Notify::new())),
        ];
        let mut tasks = Vec::new();
        for i in 0..400 {
            let ingest = ingests[i % 2].clone();
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
            boundary(&store).events(None, 1000).await.unwrap().len(),
            100
        );
        tokio::time::timeout(std::time::Duration::from_secs(1), notify.notified())
            .await
            .expect("the stored batch was announced");

        let ignored = ingests[0].insert(event("unknown", false)).await.unwrap();
        assert_eq!(
            boundary(&store)
                .event(ignored.id)
                .await
                .unwrap()
                .unwrap()
                .status,
            EventStatus::Ignored
        );
        assert!(
            store
                .claim_events(&Claim::new("t", 1000), 1000)
                .await
                .unwrap()
                .iter()
                .all(|e| e.id != ignored.id)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_is_refused_without_the_url_and_the_next_one_succeeds() {
        // A server of its own: it kills connections.
        let pg = TestPostgres::start();
        let db = pg.fresh_database();
        let store = PgStore::connect(&super::super::testing::config(&pg, &db))
            .await
            .unwrap();
        let ingest = PgIngest::start(store.clone(), Arc::new(Notify::new()));
        ingest.insert(event("a", true)).await.unwrap();
        // A write the database refuses.
        pg.psql(
            &db,
            "ALTER TABLE events ADD CONSTRAINT no_b CHECK (key <> 'b')",
        );
        let err = ingest.insert(event("b", true)).await.unwrap_err();
        assert_eq!(err, REFUSAL);
        let said = err.to_string();
        assert!(!said.contains("127.0.0.1") && !said.contains(pg.password()));
        pg.psql(&db, "ALTER TABLE events DROP CONSTRAINT no_b");
        // A killed connection: the pool replaces it before the next batch.
        pg.terminate_connections(&db, "pagehook");
        let b = ingest.insert(event("b", true)).await.unwrap();
        assert!(!b.duplicate);
        assert_eq!(boundary(&store).events(None, 10).await.unwrap().len(), 2);
    }
}
