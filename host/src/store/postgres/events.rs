//! Claiming events on PostgreSQL (reading, deferring and closing them is
//! shared: `store/events.rs`).
//!
//! A dispatch round claims the oldest due events with `FOR UPDATE SKIP
//! LOCKED`, so rounds of several replicas never take the same event, and
//! stamps them with its token and a lease that ends by the database's clock;
//! an event whose lease ended is taken over by the next round. Finishing an
//! event (deferring or closing it; `outbox.rs`: dispatching it) only
//! happens while it still carries the round's token, so a stalled replica
//! can never overwrite what another has done since.

use std::sync::LazyLock;

use super::pipelined::Tx;
use super::sql::bind;
use super::{ASYNC_COMMIT, DB_NOW, Fail, PgResult, PgStore};
use crate::store::sql::{Dialect, FromRow};
use crate::store::{Claim, EventRecord, StoreResult};

/// Claims the oldest due events (`$1` the claim's token, `$2` its replica,
/// `$3` how many at most, `$4` the lease), returning them; built once.
static CLAIM_EVENTS: LazyLock<String> = LazyLock::new(|| {
    let sql = format!(
        "WITH now AS MATERIALIZED (SELECT {DB_NOW} AS ms),
         due AS (
             SELECT e.id FROM events e
             WHERE e.status = 'pending' AND e.next_try_at <= (SELECT ms FROM now)
               AND (e.claim_until IS NULL OR e.claim_until <= (SELECT ms FROM now))
             ORDER BY e.id LIMIT ?3
             FOR UPDATE OF e SKIP LOCKED
         )
         UPDATE events SET claim_token = ?1, claimed_by = ?2, claim_until = (SELECT ms FROM now) + ?4
         FROM due WHERE events.id = due.id
         RETURNING {}",
        EventRecord::COLUMNS
            .split(", ")
            .map(|c| format!("events.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Dialect::Postgres.text(&sql).into_owned()
});

impl PgStore {
    /// Claims the oldest due events no live claim holds (see
    /// `Store::claim_events`), in id order. One statement: the database's
    /// clock is read once, rows another round is claiming right now are
    /// skipped, not waited for.
    pub async fn claim_events(&self, claim: &Claim, limit: usize) -> StoreResult<Vec<EventRecord>> {
        // Committed without waiting for the WAL to reach the disk: a claim
        // the database loses in a crash only means the event is claimed
        // again, and what dispatch writes for it commits after the claim,
        // so it can never outlive a lost claim.
        let mut events = self
            .run(async {
                let tx = Tx::new(self.client().await?);
                let params = [
                    claim.token.into(),
                    (&claim.replica).into(),
                    limit.into(),
                    claim.lease_ms.into(),
                ];
                // Prepared first: then the transaction's start, the claim
                // and the commit are sent together (one round trip).
                let stmt = tx.prepare_cached(&CLAIM_EVENTS).await?;
                let ((), rows, ()) = futures::future::try_join3(
                    tx.begin(ASYNC_COMMIT),
                    async { Ok(tx.query(&stmt, &bind(&params)).await?) },
                    tx.commit(),
                )
                .await?;
                rows.iter()
                    .map(|r| EventRecord::from_row(r).map_err(Fail::Store))
                    .collect::<PgResult<Vec<_>>>()
            })
            .await?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashSet;

    use super::super::testing::{boundary, fresh};
    use super::*;
    use crate::store::{EventStatus, NewEvent};

    /// Stores `n` dispatchable events through ingest; returns their ids.
    pub async fn stored_events(store: &PgStore, prefix: &str, n: usize) -> Vec<i64> {
        let ingest = super::super::ingest::PgIngest::start(
            store.clone(),
            std::sync::Arc::new(tokio::sync::Notify::new()),
        );
        let mut ids = Vec::new();
        for i in 0..n {
            let inserted = ingest
                .insert(NewEvent {
                    key: format!("{prefix}{i}"),
                    source: "prod".into(),
                    name: "page_created".into(),
                    payload: r#"{"event":"page_created"}"#.into(),
                    dispatchable: true,
                })
                .await
                .unwrap();
            ids.push(inserted.id);
        }
        ids
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_claims_never_take_the_same_event_and_an_expired_lease_is_taken_over() {
        let (store, db) = fresh().await;
        let shared = boundary(&store);
        let ids = stored_events(&store, "e", 40).await;
        let a = Claim::new("a", 60_000);
        let b = Claim::new("b", 60_000);
        let (ra, rb) = tokio::join!(store.claim_events(&a, 25), store.claim_events(&b, 25));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.len() + rb.len(), 40, "every event claimed once");
        let sa: HashSet<i64> = ra.iter().map(|e| e.id).collect();
        let sb: HashSet<i64> = rb.iter().map(|e| e.id).collect();
        assert!(sa.is_disjoint(&sb));
        assert!(ra.windows(2).all(|w| w[0].id < w[1].id), "in id order");
        assert!(
            store
                .claim_events(&Claim::new("c", 60_000), 100)
                .await
                .unwrap()
                .is_empty()
        );

        // a's lease runs out: c takes its events over; a can no longer finish them.
        pagehook_fakes::postgres::TestPostgres::shared().psql(
            &db,
            &format!(
                "UPDATE events SET claim_until = 0 WHERE claim_token = {}",
                a.token
            ),
        );
        let c = Claim::new("c", 60_000);
        let rc = store.claim_events(&c, 100).await.unwrap();
        assert_eq!(rc.iter().map(|e| e.id).collect::<HashSet<_>>(), sa);
        let first = *sa.iter().min().unwrap();
        assert!(!shared.defer_event(&a, first, "late", 0).await.unwrap());
        assert!(
            !shared
                .close_event(&a, first, EventStatus::Failed, None)
                .await
                .unwrap()
        );
        assert!(
            shared
                .close_event(&c, first, EventStatus::Failed, Some("gone"))
                .await
                .unwrap()
        );
        let e = shared.event(first).await.unwrap().unwrap();
        assert_eq!(
            (e.status, e.error.as_deref()),
            (EventStatus::Failed, Some("gone"))
        );

        // A deferred event comes back once due, to any claim.
        let second = *sb.iter().min().unwrap();
        assert!(shared.defer_event(&b, second, "wait", 0).await.unwrap());
        let again = store
            .claim_events(&Claim::new("d", 1000), 100)
            .await
            .unwrap();
        assert_eq!(again.iter().map(|e| e.id).collect::<Vec<_>>(), [second]);
        assert_eq!(again[0].attempts, 1);
        assert_eq!(ids.len(), 40);
        let counts = shared.event_counts().await.unwrap();
        assert_eq!(
            counts
                .iter()
                .map(|c| (c.status, c.count))
                .collect::<Vec<_>>(),
            [(EventStatus::Failed, 1), (EventStatus::Pending, 39)]
        );
        assert_eq!(
            shared
                .events(Some(EventStatus::Failed), 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
