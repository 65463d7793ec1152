//! The delivery side of the outbox: claiming due deliveries in order,
//! recording every attempt and its outcome, and the small maps delivery
//! needs to be idempotent (Slack thread keys, Confluence once-keys). The
//! small reads and writes here are the same SQL on both backends; claiming
//! and recording attempts are in `claims.rs` and the backends.

use std::collections::HashMap;

use serde::Serialize;

use super::sql::{FromRow, Param, Row};
use super::{Store, StoreError, StoreResult};
use crate::model::Action;

/// A pending delivery taken up by the delivery worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Its id (also sent to Slack as message metadata).
    pub id: i64,
    /// The event it came from.
    pub event_id: i64,
    /// The binding destination it matched.
    pub destination: String,
    /// What to send.
    pub action: Action,
    /// The binding asked for a dry run.
    pub dry_run: bool,
    /// Its ordering lane.
    pub lane: String,
    /// The Confluence connection of its event.
    pub source: String,
    /// The Slack workspace chosen at dispatch (`None`: written before
    /// several workspaces existed, or not a Slack delivery).
    pub connection: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// An earlier attempt may have succeeded without us learning it.
    pub uncertain: bool,
    /// Whether it is due now (not waiting for a retry).
    pub due: bool,
    /// When it was written (ms).
    pub created_at: i64,
}

/// The first Slack message posted under a thread key: later messages with
/// the key become replies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackThread {
    /// The Slack connection it was posted through.
    pub connection: String,
    /// The channel (or DM) id.
    pub channel: String,
    /// The plugin's thread key.
    pub key: String,
    /// The message's `ts`.
    pub ts: String,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Delivered; `result` is what identifies it there (Slack ts, page id).
    Sent {
        /// The target's id for what was created.
        result: String,
        /// A thread this message started, remembered in the same commit
        /// that marks it sent (a follow-up in its lane waits for that).
        thread: Option<SlackThread>,
    },
    /// Dry run: the exact request that would have been sent.
    WouldSend {
        /// The request, as JSON.
        request: String,
    },
    /// Try again at `at` (ms); `uncertain` if it may have gone through.
    Retry {
        /// Why this attempt failed.
        error: String,
        /// When to try again.
        at: i64,
        /// The outcome of this attempt is unknown (a timeout after sending).
        uncertain: bool,
    },
    /// Give up: a dead letter, replayable with `pagehook retry`.
    Dead {
        /// Why, in words an admin can act on.
        error: String,
    },
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    /// When it started.
    pub at: i64,
    /// `sent`, `would-send`, `retry` or `dead`.
    pub outcome: String,
    /// The error, if any.
    pub error: Option<String>,
    /// How long it took.
    pub latency_ms: i64,
    /// When its request left, at its send-time rate slot (ms, the store's
    /// clock; Slack messages only).
    pub sent_at: Option<i64>,
}

/// What one attempt at a claimed delivery came to, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    /// The delivery.
    pub delivery_id: i64,
    /// When the attempt started (ms).
    pub started_at: i64,
    /// Its outcome.
    pub outcome: Outcome,
    /// How long it took (ms).
    pub latency_ms: i64,
    /// When its request left, at its send-time rate slot (ms, the store's
    /// clock); `None` if it never reached the point of sending.
    pub sent_at: Option<i64>,
}

/// A connection's health as an attempt showed it: the refusal that marks
/// it, or `None` when it worked.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    /// The connection.
    pub connection: String,
    /// The refusal, `None` when healthy.
    pub error: Option<String>,
}

impl FromRow for AttemptRecord {
    const COLUMNS: &'static str = "at, outcome, error, latency_ms, sent_at";

    fn from_row(r: &dyn Row) -> StoreResult<AttemptRecord> {
        Ok(AttemptRecord {
            at: r.get("at")?,
            outcome: r.get("outcome")?,
            error: r.get("error")?,
            latency_ms: r.get("latency_ms")?,
            sent_at: r.get("sent_at")?,
        })
    }
}

/// The Slack `ts` of a thread: connection, channel id, thread key.
const THREAD_TS: &str =
    "SELECT ts FROM slack_threads WHERE connection = ?1 AND channel = ?2 AND thread_key = ?3";

impl Store {
    /// Every attempt of one delivery, oldest first.
    pub async fn attempts(&self, delivery_id: i64) -> StoreResult<Vec<AttemptRecord>> {
        self.select(
            "FROM attempts WHERE delivery_id = ?1 ORDER BY id",
            vec![delivery_id.into()],
        )
        .await
    }

    /// Every attempt of each of `ids`, oldest first, by delivery: one query
    /// for a page of deliveries (the console's), not one per row.
    pub async fn attempts_of(&self, ids: &[i64]) -> StoreResult<HashMap<i64, Vec<AttemptRecord>>> {
        let sql = format!(
            "SELECT delivery_id, {} FROM attempts WHERE delivery_id {} ORDER BY id",
            AttemptRecord::COLUMNS,
            self.dialect().in_list(1)
        );
        let rows = self
            .query(&sql, vec![Param::Ints(ids.to_vec())], |r| {
                Ok((r.get::<i64>("delivery_id")?, AttemptRecord::from_row(r)?))
            })
            .await?;
        let mut by_delivery: HashMap<i64, Vec<AttemptRecord>> = HashMap::new();
        for (id, attempt) in rows {
            by_delivery.entry(id).or_default().push(attempt);
        }
        Ok(by_delivery)
    }

    /// When the delivery's first attempt started (ms), if it had one: a
    /// message it posted cannot be older.
    pub async fn first_attempt_at(&self, delivery_id: i64) -> StoreResult<Option<i64>> {
        let first = self
            .query_opt(
                "SELECT MIN(at) AS first FROM attempts WHERE delivery_id = ?1",
                vec![delivery_id.into()],
                |r| r.get("first"),
            )
            .await?;
        Ok(first.flatten())
    }

    /// Puts a dead (or dry-run) delivery back in the queue, due now.
    pub async fn retry_delivery(&self, id: i64) -> StoreResult<()> {
        let mut writes = vec![(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_try_at = 0 WHERE id = ?1 AND status IN ('dead', 'would-send')",
            vec![id.into()],
        )];
        writes.extend(self.wake_deliveries());
        if self.execute_all(writes).await?[0] == 0 {
            return Err(StoreError::NotFound(format!(
                "no dead or dry-run delivery with id {id} (see `pagehook deliveries --status dead`)"
            )));
        }
        Ok(())
    }

    /// The statement that wakes every replica's delivery worker when its
    /// transaction commits (PostgreSQL's NOTIFY); none on SQLite, whose one
    /// server wakes its own. A wake-up that finds nothing new costs a round.
    pub(crate) fn wake_deliveries(&self) -> Option<(&'static str, Vec<Param>)> {
        self.is_shared()
            .then(|| ("SELECT pg_notify('pagehook_deliveries', '')", vec![]))
    }

    /// The threads already started among `wanted` (connection, channel id,
    /// thread key), in one read: a delivery round asks once for the threads
    /// of all its lanes instead of each lane asking for its own.
    pub async fn threads_of(
        &self,
        wanted: &[(String, String, String)],
    ) -> StoreResult<Vec<SlackThread>> {
        match &self.backend {
            // One statement, one key lookup per thread (see `PgStore::threads_of`).
            super::Backend::Postgres(p) => p.threads_of(wanted).await,
            // In process, in one turn on the blocking pool: a key lookup
            // per thread, each a cached statement.
            super::Backend::Sqlite(s) => {
                let wanted = wanted.to_vec();
                s.run(move |s| {
                    let mut found = Vec::new();
                    for (connection, channel, key) in wanted {
                        let ts = s.query(
                            THREAD_TS,
                            &[(&connection).into(), (&channel).into(), (&key).into()],
                            |r| r.get::<String>("ts"),
                        )?;
                        found.extend(ts.into_iter().map(|ts| SlackThread {
                            connection: connection.clone(),
                            channel: channel.clone(),
                            key: key.clone(),
                            ts,
                        }));
                    }
                    Ok(found)
                })
                .await
            }
        }
    }

    /// The Slack `ts` of the first message posted under a thread key.
    pub async fn thread_ts(
        &self,
        connection: &str,
        channel: &str,
        key: &str,
    ) -> StoreResult<Option<String>> {
        self.query_opt(
            THREAD_TS,
            vec![connection.into(), channel.into(), key.into()],
            |r| r.get("ts"),
        )
        .await
    }

    /// What a once-key created, if anything.
    pub async fn once_key(&self, source: &str, key: &str) -> StoreResult<Option<u64>> {
        self.query_opt(
            "SELECT content_id FROM once_keys WHERE source = ?1 AND once_key = ?2",
            vec![source.into(), key.into()],
            |r| r.get("content_id"),
        )
        .await
    }

    /// Records what a once-key created (the first record wins).
    pub async fn set_once_key(&self, source: &str, key: &str, content_id: u64) -> StoreResult<()> {
        let content_id = i64::try_from(content_id).map_err(|_| StoreError::Database {
            database: self.describe(),
            message: format!("content id {content_id} is too large to store"),
        })?;
        self.execute(
            "INSERT INTO once_keys (source, once_key, content_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            vec![source.into(), key.into(), content_id.into()],
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::postgres::testing::{boundary, fresh};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn once_keys_keep_the_first_and_threads_are_read_back() {
        let (store, _db) = fresh().await;
        let store = boundary(&store);
        assert_eq!(store.once_key("prod", "k").await.unwrap(), None);
        store.set_once_key("prod", "k", 42).await.unwrap();
        store.set_once_key("prod", "k", 43).await.unwrap();
        assert_eq!(store.once_key("prod", "k").await.unwrap(), Some(42));
        assert_eq!(store.thread_ts("acme", "C1", "t").await.unwrap(), None);
        assert_eq!(store.first_attempt_at(1).await.unwrap(), None);
        assert!(store.attempts(1).await.unwrap().is_empty());
        assert!(matches!(
            store.retry_delivery(1).await,
            Err(crate::store::StoreError::NotFound(_))
        ));
    }
}
