//! The delivery side's small reads and writes on PostgreSQL: attempts, the
//! replay of dead letters, Slack thread keys and Confluence once-keys, with
//! the same rows and messages as SQLite's (`sqlite/delivery.rs`). Claiming
//! and recording attempts are in `claims.rs`.

use super::PgStore;
use crate::store::{AttemptRecord, StoreError, StoreResult};

impl PgStore {
    /// Every attempt of one delivery, oldest first.
    pub async fn attempts(&self, delivery_id: i64) -> StoreResult<Vec<AttemptRecord>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT at, outcome, error, latency_ms, sent_at FROM attempts WHERE delivery_id = $1 ORDER BY id",
                    &[&delivery_id],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(AttemptRecord {
                        at: r.try_get(0)?,
                        outcome: r.try_get(1)?,
                        error: r.try_get(2)?,
                        latency_ms: r.try_get(3)?,
                        sent_at: r.try_get(4)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// When the delivery's first attempt started (ms), if it had one: a
    /// message it posted cannot be older.
    pub async fn first_attempt_at(&self, delivery_id: i64) -> StoreResult<Option<i64>> {
        self.run(async {
            Ok(self
                .client()
                .await?
                .query_one(
                    "SELECT min(at) FROM attempts WHERE delivery_id = $1",
                    &[&delivery_id],
                )
                .await?
                .try_get(0)?)
        })
        .await
    }

    /// Puts a dead (or dry-run) delivery back in the queue, due now.
    pub async fn retry_delivery(&self, id: i64) -> StoreResult<()> {
        let n = self
            .run(async {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                let n = tx
                    .execute(
                        "UPDATE deliveries SET status = 'pending', attempts = 0, next_try_at = 0 WHERE id = $1 AND status IN ('dead', 'would-send')",
                        &[&id],
                    )
                    .await?;
                if n > 0 {
                    tx.execute("SELECT pg_notify('pagehook_deliveries', '')", &[])
                        .await?;
                }
                tx.commit().await?;
                Ok(n)
            })
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no dead or dry-run delivery with id {id} (see `pagehook deliveries --status dead`)"
            )));
        }
        Ok(())
    }

    /// The Slack `ts` of the first message posted under a thread key.
    pub async fn thread_ts(
        &self,
        connection: &str,
        channel: &str,
        key: &str,
    ) -> StoreResult<Option<String>> {
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT ts FROM slack_threads WHERE connection = $1 AND channel = $2 AND thread_key = $3",
                    &[&connection, &channel, &key],
                )
                .await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        })
        .await
    }

    /// What a once-key created, if anything.
    pub async fn once_key(&self, source: &str, key: &str) -> StoreResult<Option<u64>> {
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT content_id FROM once_keys WHERE source = $1 AND once_key = $2",
                    &[&source, &key],
                )
                .await?;
            let id: Option<i64> = row.map(|r| r.try_get(0)).transpose()?;
            Ok(id.map(|id| id as u64))
        })
        .await
    }

    /// Records what a once-key created (the first record wins).
    pub async fn set_once_key(&self, source: &str, key: &str, content_id: u64) -> StoreResult<()> {
        let content_id = i64::try_from(content_id).map_err(|_| StoreError::Database {
            database: self.describe(),
            message: format!("content id {content_id} is too large to store"),
        })?;
        self.run(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO once_keys (source, once_key, content_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&source, &key, &content_id],
                )
                .await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fresh;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn once_keys_keep_the_first_and_threads_are_read_back() {
        let (store, _db) = fresh().await;
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
