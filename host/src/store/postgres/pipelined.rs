//! Transactions whose `BEGIN` and `COMMIT` travel with their statements.
//!
//! tokio-postgres's `Client::transaction` waits for the answer to `BEGIN`
//! before it hands out the transaction, and `commit` is a round trip of its
//! own: two of a short transaction's three or four trips. Under load each
//! trip is a wait for a busy server's backend, then for our task, to be
//! scheduled again, so the hot paths (claiming events, writing what dispatch
//! decided, claiming and recording deliveries) send `BEGIN` with their first
//! statements and, where the commit does not depend on what the last
//! statements answer, `COMMIT` with those. The server runs one connection's
//! messages in the order they were sent, and a statement sent after one that
//! failed runs in the aborted transaction: it fails too, and a `COMMIT`
//! there rolls back.
//!
//! Statements must be prepared before they are sent in such a pipeline
//! (`prepare_cached` is a round trip of its own the first time on each
//! connection, and whatever was sent after it would overtake the statement).
//!
//! What this module must never do: give a connection back to the pool
//! inside a transaction. A [`Tx`] dropped after `BEGIN` went out and before
//! its end did (an error between the two, or a cancelled future) takes its
//! connection out of the pool and closes it, and the server rolls back.

use std::ops::Deref;
use std::sync::atomic::{AtomicU8, Ordering};

use deadpool_postgres::{Client, Object};

use super::PgResult;

/// No transaction open, or the last one's end was sent.
const IDLE: u8 = 0;
/// `BEGIN` was sent and its end was not.
const OPEN: u8 = 1;

/// A pooled connection that runs transactions whose `BEGIN` and `COMMIT`
/// are sent along with other statements; derefs to the connection for
/// those.
pub(super) struct Tx {
    client: Option<Client>,
    state: AtomicU8,
}

impl Tx {
    /// The connection `client`, with no transaction open.
    pub(super) fn new(client: Client) -> Tx {
        Tx {
            client: Some(client),
            state: AtomicU8::new(IDLE),
        }
    }

    /// Opens a transaction, running `settings` (statements such as `SET
    /// LOCAL`, or none) first in it. Join it with the transaction's first
    /// statements, ahead of them: it is sent when first polled.
    pub(super) async fn begin(&self, settings: &str) -> PgResult<()> {
        self.state.store(OPEN, Ordering::Release);
        let sql = if settings.is_empty() {
            "BEGIN".to_owned()
        } else {
            format!("BEGIN; {settings}")
        };
        Ok(self.client().batch_execute(&sql).await?)
    }

    /// Commits (or, if a statement of the transaction failed, rolls back:
    /// the caller sees that statement's error). Join it with the last
    /// statements, after them, only when nothing they answer could decide
    /// against committing.
    pub(super) async fn commit(&self) -> PgResult<()> {
        self.end("COMMIT").await
    }

    /// Rolls back.
    pub(super) async fn rollback(&self) -> PgResult<()> {
        self.end("ROLLBACK").await
    }

    /// Sends `end`. Once it is sent the transaction ends on the server
    /// whatever becomes of this future, so the connection may go back to
    /// the pool: the next statement on it runs after the end.
    async fn end(&self, end: &str) -> PgResult<()> {
        self.state.store(IDLE, Ordering::Release);
        Ok(self.client().batch_execute(end).await?)
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a Tx holds its connection until dropped")
    }
}

impl Deref for Tx {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client()
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) == OPEN
            && let Some(client) = self.client.take()
        {
            // Closing the connection ends the transaction on the server.
            drop(Object::take(client));
        }
    }
}

#[cfg(test)]
mod tests {
    use pagehook_fakes::postgres::TestPostgres;
    use tokio_postgres::Statement;

    use super::super::PgStore;
    use super::super::testing::fresh;
    use super::*;

    /// How many sessions of `db` sit inside a transaction, as psql (not a
    /// pooled connection, which could be the one in question) sees them.
    fn idle_in_transaction(db: &str) -> String {
        TestPostgres::shared().psql(
            db,
            &format!(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = '{db}' AND state LIKE 'idle in transaction%'"
            ),
        )
    }

    /// A store on a fresh database with a table `t (n int PRIMARY KEY)`, a
    /// `Tx` on one of its connections, and the insert into `t` prepared.
    async fn with_table() -> (PgStore, Tx, Statement) {
        let (store, _db) = fresh().await;
        let tx = Tx::new(store.client().await.unwrap());
        tx.batch_execute("CREATE TABLE t (n int PRIMARY KEY)")
            .await
            .unwrap();
        let insert = tx
            .prepare_cached("INSERT INTO t VALUES ($1)")
            .await
            .unwrap();
        (store, tx, insert)
    }

    /// How many rows `t` holds.
    async fn rows_in_t(client: &Client) -> i64 {
        client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn begin_statements_and_commit_go_together_and_the_writes_stay() {
        let (store, tx, insert) = with_table().await;
        let level = tx
            .prepare_cached("SELECT current_setting('synchronous_commit')")
            .await
            .unwrap();
        let ((), _, row, ()) = futures::future::try_join4(
            tx.begin("SET LOCAL synchronous_commit = off"),
            async { Ok(tx.execute(&insert, &[&1]).await?) },
            async { Ok(tx.query_one(&level, &[]).await?) },
            tx.commit(),
        )
        .await
        .unwrap();
        // The statement ran inside the transaction: `SET LOCAL` has no
        // effect outside one.
        assert_eq!(row.get::<_, String>(0), "off");
        drop(tx);
        let client = store.client().await.unwrap();
        assert_eq!(rows_in_t(&client).await, 1);
        // Outside it the pool's setting is back.
        let level: String = client
            .query_one("SELECT current_setting('synchronous_commit')", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(level, "on");
    }

    #[tokio::test]
    async fn a_failed_statement_rolls_the_pipelined_commit_back() {
        let (_store, tx, insert) = with_table().await;
        let result = futures::future::try_join4(
            tx.begin(""),
            async { Ok(tx.execute(&insert, &[&1]).await?) },
            async { Ok(tx.execute(&insert, &[&1]).await?) },
            tx.commit(),
        )
        .await;
        assert!(result.is_err(), "the second insert breaks the key");
        // The connection is usable and outside any transaction: the first
        // insert was rolled back with the second.
        assert_eq!(rows_in_t(&tx).await, 0);
        assert!(
            tx.batch_execute("SAVEPOINT s").await.is_err(),
            "a savepoint needs a transaction, and none is open"
        );
    }

    #[tokio::test]
    async fn a_transaction_left_open_closes_its_connection_instead_of_pooling_it() {
        let (store, db) = fresh().await;
        {
            let tx = Tx::new(store.client().await.unwrap());
            tx.begin("").await.unwrap();
            tx.batch_execute("CREATE TABLE t (n int)").await.unwrap();
            assert_eq!(idle_in_transaction(&db), "1");
            // Dropped without its end: an error's `?` between the two.
        }
        // Give the server a moment to see the closed socket.
        let mut open = String::new();
        for _ in 0..50 {
            open = idle_in_transaction(&db);
            if open == "0" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(open, "0", "no connection is left inside a transaction");
        let created = TestPostgres::shared().psql(&db, "SELECT to_regclass('t') IS NOT NULL");
        assert_eq!(created, "f", "the open transaction was rolled back");
        // The pool goes on with a new connection.
        let tx = Tx::new(store.client().await.unwrap());
        futures::future::try_join(tx.begin(""), tx.commit())
            .await
            .unwrap();
    }
}
