//! Events on PostgreSQL: reading them, and the dispatch side of claims.
//!
//! A dispatch round claims the oldest due events with `FOR UPDATE SKIP
//! LOCKED`, so rounds of several replicas never take the same event, and
//! stamps them with its token and a lease that ends by the database's clock;
//! an event whose lease ended is taken over by the next round. Finishing an
//! event (here: deferring or closing it; `outbox.rs`: dispatching it) only
//! happens while it still carries the round's token, so a stalled replica
//! can never overwrite what another has done since.

use tokio_postgres::Row;

use super::{DB_NOW, PgResult, PgStore, count, sql_limit};
use crate::store::{
    Claim, EventCount, EventRecord, EventStatus, StoreError, StoreResult, from_json, now_ms,
};

pub(super) const COLUMNS: &str =
    "id, key, source, name, received_at, payload, event, status, attempts, error, dispatched_at";

pub(super) fn status(s: &str) -> Result<EventStatus, StoreError> {
    EventStatus::parse(s).map_err(|message| StoreError::Corrupt {
        what: "event status",
        message,
    })
}

pub(super) fn decode(r: &Row) -> PgResult<EventRecord> {
    let payload: String = r.try_get(5)?;
    let event: Option<String> = r.try_get(6)?;
    let status_name: String = r.try_get(7)?;
    Ok(EventRecord {
        id: r.try_get(0)?,
        key: r.try_get(1)?,
        source: r.try_get(2)?,
        name: r.try_get(3)?,
        received_at: r.try_get(4)?,
        payload: from_json("event payload", &payload)?,
        event: event.map(|e| from_json("enriched event", &e)).transpose()?,
        status: status(&status_name)?,
        attempts: count(r.try_get(8)?),
        error: r.try_get(9)?,
        dispatched_at: r.try_get(10)?,
    })
}

impl PgStore {
    /// The event with this id.
    pub async fn event(&self, id: i64) -> StoreResult<Option<EventRecord>> {
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM events WHERE id = $1"),
                    &[&id],
                )
                .await?;
            row.as_ref().map(decode).transpose()
        })
        .await
    }

    /// The newest events first, optionally only those in one status.
    pub async fn events(
        &self,
        status: Option<EventStatus>,
        limit: usize,
    ) -> StoreResult<Vec<EventRecord>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM events WHERE $1::text IS NULL OR status = $1::text ORDER BY id DESC LIMIT $2"
                    ),
                    &[&status.map(EventStatus::as_str), &sql_limit(limit)],
                )
                .await?;
            rows.iter().map(decode).collect()
        })
        .await
    }

    /// How many events are in each status.
    pub async fn event_counts(&self) -> StoreResult<Vec<EventCount>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT status, count(*) FROM events GROUP BY status ORDER BY status",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let name: String = r.try_get(0)?;
                    Ok(EventCount {
                        status: status(&name)?,
                        count: r.try_get(1)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Claims the oldest due events no live claim holds (see
    /// `Store::claim_events`), in id order. One statement: the database's
    /// clock is read once, rows another round is claiming right now are
    /// skipped, not waited for.
    pub async fn claim_events(&self, claim: &Claim, limit: usize) -> StoreResult<Vec<EventRecord>> {
        self.run(async {
            let client = self.client().await?;
            let claim_sql = format!(
                "WITH now AS MATERIALIZED (SELECT {DB_NOW} AS ms),
                 due AS (
                     SELECT e.id FROM events e
                     WHERE e.status = 'pending' AND e.next_try_at <= (SELECT ms FROM now)
                       AND (e.claim_until IS NULL OR e.claim_until <= (SELECT ms FROM now))
                     ORDER BY e.id LIMIT $3
                     FOR UPDATE OF e SKIP LOCKED
                 )
                 UPDATE events SET claim_token = $1, claimed_by = $2, claim_until = (SELECT ms FROM now) + $4
                 FROM due WHERE events.id = due.id
                 RETURNING {}",
                COLUMNS
                    .split(", ")
                    .map(|c| format!("events.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let stmt = client.prepare_cached(&claim_sql).await?;
            let rows = client
                .query(
                    &stmt,
                    &[&claim.token, &claim.replica, &sql_limit(limit), &claim.lease_ms],
                )
                .await?;
            let mut events = rows.iter().map(decode).collect::<PgResult<Vec<_>>>()?;
            events.sort_by_key(|e| e.id);
            Ok(events)
        })
        .await
    }

    /// Puts a claimed event back to wait until `next_try_at`; false if the
    /// claim was lost.
    pub async fn defer_event(
        &self,
        claim: &Claim,
        id: i64,
        error: &str,
        next_try_at: i64,
    ) -> StoreResult<bool> {
        self.run(async {
            let n = self
                .client()
                .await?
                .execute(
                    "UPDATE events SET attempts = attempts + 1, error = $2, next_try_at = $3, claim_token = NULL, claim_until = NULL
                     WHERE id = $1 AND claim_token = $4 AND status = 'pending'",
                    &[&id, &error, &next_try_at, &claim.token],
                )
                .await?;
            Ok(n == 1)
        })
        .await
    }

    /// Closes a claimed event without dispatching it; false if the claim was lost.
    pub async fn close_event(
        &self,
        claim: &Claim,
        id: i64,
        status: EventStatus,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        self.run(async {
            let n = self
                .client()
                .await?
                .execute(
                    "UPDATE events SET status = $2, error = $3, attempts = attempts + 1, dispatched_at = $4, claim_token = NULL, claim_until = NULL
                     WHERE id = $1 AND claim_token = $5 AND status = 'pending'",
                    &[&id, &status.as_str(), &error, &now_ms(), &claim.token],
                )
                .await?;
            Ok(n == 1)
        })
        .await
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashSet;

    use super::super::testing::fresh;
    use super::*;
    use crate::store::NewEvent;

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
        assert!(!store.defer_event(&a, first, "late", 0).await.unwrap());
        assert!(
            !store
                .close_event(&a, first, EventStatus::Failed, None)
                .await
                .unwrap()
        );
        assert!(
            store
                .close_event(&c, first, EventStatus::Failed, Some("gone"))
                .await
                .unwrap()
        );
        let e = store.event(first).await.unwrap().unwrap();
        assert_eq!(
            (e.status, e.error.as_deref()),
            (EventStatus::Failed, Some("gone"))
        );

        // A deferred event comes back once due, to any claim.
        let second = *sb.iter().min().unwrap();
        assert!(store.defer_event(&b, second, "wait", 0).await.unwrap());
        let again = store
            .claim_events(&Claim::new("d", 1000), 100)
            .await
            .unwrap();
        assert_eq!(again.iter().map(|e| e.id).collect::<Vec<_>>(), [second]);
        assert_eq!(again[0].attempts, 1);
        assert_eq!(ids.len(), 40);
        let counts = store.event_counts().await.unwrap();
        assert_eq!(
            counts
                .iter()
                .map(|c| (c.status, c.count))
                .collect::<Vec<_>>(),
            [(EventStatus::Failed, 1), (EventStatus::Pending, 39)]
        );
        assert_eq!(
            store
                .events(Some(EventStatus::Failed), 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
