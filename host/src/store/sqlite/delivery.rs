use rusqlite::{OptionalExtension, params};

use super::SqliteStore;

use crate::store::{AttemptRecord, StoreError, StoreResult};

impl SqliteStore {
    pub fn attempts(&self, delivery_id: i64) -> StoreResult<Vec<AttemptRecord>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT at, outcome, error, latency_ms, sent_at FROM attempts WHERE delivery_id = ?1 ORDER BY id",
            )?;
            stmt.query_map([delivery_id], |r| {
                Ok(AttemptRecord {
                    at: r.get(0)?,
                    outcome: r.get(1)?,
                    error: r.get(2)?,
                    latency_ms: r.get(3)?,
                    sent_at: r.get(4)?,
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
