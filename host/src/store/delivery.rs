//! The delivery side of the outbox: claiming due deliveries in order,
//! recording every attempt and its outcome, and the small maps delivery
//! needs to be idempotent (Slack thread keys, Confluence once-keys).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, StoreResult, from_json, now_ms};
use crate::model::Action;

/// Where a delivery round's candidates come from: the oldest pending
/// deliveries, read in id order from the pending index (see schema_3.sql).
pub(super) const PENDING_DELIVERIES: &str = "FROM deliveries INDEXED BY deliveries_pending_order WHERE status = 'pending' ORDER BY id LIMIT ?1";

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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// When it started.
    pub at: i64,
    /// `sent`, `would-send`, `retry` or `dead`.
    pub outcome: String,
    /// The error, if any.
    pub error: Option<String>,
    /// How long it took.
    pub latency_ms: i64,
}

impl Store {
    /// Puts deliveries left `sending` by a crash back to pending, marked
    /// uncertain (they may have reached the target); returns how many.
    pub fn release_in_flight(&self) -> StoreResult<usize> {
        self.with(|conn| {
            conn.execute(
                "UPDATE deliveries SET status = 'pending', uncertain = 1 WHERE status = 'sending'",
                [],
            )
        })
    }

    /// The oldest pending deliveries (due or waiting), in id order, so the
    /// worker can keep each lane in order.
    pub fn pending_deliveries(&self, limit: usize) -> StoreResult<Vec<Claimed>> {
        let now = now_ms();
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT id, event_id, destination, action, dry_run, lane, source, attempts, uncertain, next_try_at, created_at, connection {PENDING_DELIVERIES}"
            ))?;
            stmt.query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, u32>(7)?,
                    r.get::<_, bool>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get::<_, Option<String>>(11)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(
                |(
                    id,
                    event_id,
                    destination,
                    action,
                    dry_run,
                    lane,
                    source,
                    attempts,
                    uncertain,
                    next,
                    created_at,
                    connection,
                )| {
                    Ok(Claimed {
                        id,
                        event_id,
                        destination,
                        action: from_json("delivery action", &action)?,
                        dry_run,
                        lane,
                        source,
                        attempts,
                        uncertain,
                        due: next <= now,
                        created_at,
                        connection,
                    })
                },
            )
            .collect()
    }

    /// Marks deliveries as being sent (one transaction), so a crash leaves a trace.
    pub fn mark_sending(&self, ids: &[i64]) -> StoreResult<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            for id in ids {
                tx.prepare_cached("UPDATE deliveries SET status = 'sending' WHERE id = ?1")?
                    .execute([id])?;
            }
            tx.commit()
        })
    }

    /// Records attempts and their outcomes (id, start, outcome, latency in
    /// ms) and changes of connection health (a name and the error that
    /// marks it, `None` when healthy again), all in one transaction: a
    /// delivery round costs one commit however much it learned.
    pub fn finish_attempts(
        &self,
        attempts: &[(i64, i64, Outcome, i64)],
        health: &[(String, Option<String>)],
    ) -> StoreResult<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            for (id, started, outcome, latency_ms) in attempts {
                record_attempt(&tx, *id, *started, outcome, *latency_ms)?;
            }
            for (name, error) in health {
                tx.execute(
                    "UPDATE connections SET health_error = ?2 WHERE name = ?1",
                    params![name, error],
                )?;
            }
            tx.commit()
        })
    }

    /// Every attempt of one delivery, oldest first.
    pub fn attempts(&self, delivery_id: i64) -> StoreResult<Vec<AttemptRecord>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT at, outcome, error, latency_ms FROM attempts WHERE delivery_id = ?1 ORDER BY id",
            )?;
            stmt.query_map([delivery_id], |r| {
                Ok(AttemptRecord {
                    at: r.get(0)?,
                    outcome: r.get(1)?,
                    error: r.get(2)?,
                    latency_ms: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    /// When the delivery's first attempt started (ms), if it had one: a
    /// message it posted cannot be older.
    pub fn first_attempt_at(&self, delivery_id: i64) -> StoreResult<Option<i64>> {
        self.with(|conn| {
            conn.query_row(
                "SELECT MIN(at) FROM attempts WHERE delivery_id = ?1",
                [delivery_id],
                |r| r.get(0),
            )
        })
    }

    /// Puts a dead (or any finished) delivery back in the queue, due now.
    pub fn retry_delivery(&self, id: i64) -> StoreResult<()> {
        let n = self.with(|conn| {
            conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_try_at = 0 WHERE id = ?1 AND status IN ('dead', 'would-send')",
                [id],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no dead or dry-run delivery with id {id} (see `pagehook deliveries --status dead`)"
            )));
        }
        Ok(())
    }

    /// The Slack `ts` of the first message posted under a thread key.
    pub fn thread_ts(
        &self,
        connection: &str,
        channel: &str,
        key: &str,
    ) -> StoreResult<Option<String>> {
        self.with(|conn| {
            conn.query_row(
                "SELECT ts FROM slack_threads WHERE connection = ?1 AND channel = ?2 AND thread_key = ?3",
                params![connection, channel, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// What a once-key created, if anything.
    pub fn once_key(&self, source: &str, key: &str) -> StoreResult<Option<u64>> {
        self.with(|conn| {
            conn.query_row(
                "SELECT content_id FROM once_keys WHERE source = ?1 AND once_key = ?2",
                params![source, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Records what a once-key created.
    pub fn set_once_key(&self, source: &str, key: &str, content_id: u64) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO once_keys (source, once_key, content_id) VALUES (?1, ?2, ?3)",
                params![source, key, content_id],
            )
        })?;
        Ok(())
    }
}

fn record_attempt(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    started: i64,
    outcome: &Outcome,
    latency_ms: i64,
) -> rusqlite::Result<()> {
    let (label, error) = match outcome {
        Outcome::Sent { result, thread } => {
            tx.prepare_cached(
                        "UPDATE deliveries SET status = 'sent', result = ?2, sent_at = ?3, attempts = attempts + 1, last_error = NULL, uncertain = 0 WHERE id = ?1"
            )?
            .execute(
                        params![id, result, now_ms()],
                    )?;
            if let Some(t) = thread {
                // The first one wins: a retried root must not move its thread.
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO slack_threads (connection, channel, thread_key, ts) VALUES (?1, ?2, ?3, ?4)"
                )?
                .execute(
                    params![t.connection, t.channel, t.key, t.ts],
                )?;
            }
            ("sent", None)
        }
        Outcome::WouldSend { request } => {
            tx.prepare_cached(
                        "UPDATE deliveries SET status = 'would-send', result = ?2, sent_at = ?3, attempts = attempts + 1 WHERE id = ?1"
            )?
            .execute(
                        params![id, request, now_ms()],
                    )?;
            ("would-send", None)
        }
        Outcome::Retry {
            error,
            at,
            uncertain,
        } => {
            tx.prepare_cached(
                        "UPDATE deliveries SET status = 'pending', next_try_at = ?2, last_error = ?3, attempts = attempts + 1, uncertain = uncertain OR ?4 WHERE id = ?1"
            )?
            .execute(
                        params![id, at, error, uncertain],
                    )?;
            ("retry", Some(error.as_str()))
        }
        Outcome::Dead { error } => {
            tx.prepare_cached(
                        "UPDATE deliveries SET status = 'dead', last_error = ?2, attempts = attempts + 1 WHERE id = ?1"
            )?
            .execute(
                        params![id, error],
                    )?;
            ("dead", Some(error.as_str()))
        }
    };
    tx.prepare_cached(
                "INSERT INTO attempts (delivery_id, at, outcome, error, latency_ms) VALUES (?1, ?2, ?3, ?4, ?5)"
    )?
    .execute(
                params![id, started, label, error, latency_ms],
            )?;

    Ok(())
}
