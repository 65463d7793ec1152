//! Digests on PostgreSQL: holding events and releasing them (see
//! [`crate::store::digests`], where the reads shared with SQLite are). Replicas release held events under claims
//! (a token and a lease on the database's clock, rows taken with `SKIP
//! LOCKED`), so one held event is released by one replica, once; this
//! module must never release a row whose claim token is not the caller's.

use super::outbox::write_results;
use super::{DB_NOW, PgResult, PgStore};
use crate::store::sql::FromRow;
use crate::store::{
    BreakerPolicy, Claim, ClaimedHeld, Dispatched, HeldEvent, NewHeld, Released, StoreError,
    StoreResult, from_json, now_ms,
};

/// Holds events for their bindings inside a dispatch transaction.
pub(super) async fn hold<'a>(
    tx: &impl deadpool_postgres::GenericClient,
    held: impl Iterator<Item = &'a NewHeld>,
    now: i64,
) -> PgResult<()> {
    let held: Vec<&NewHeld> = held.collect();
    if held.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO held_events (binding_id, event_id, space_key, page_update, held_at)
             SELECT binding_id, event_id, space_key, page_update, $5
             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[])
               WITH ORDINALITY AS u(binding_id, event_id, space_key, page_update, ord)
             ORDER BY ord
             ON CONFLICT (binding_id, event_id) DO NOTHING",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &held.iter().map(|h| h.binding_id).collect::<Vec<i64>>(),
            &held.iter().map(|h| h.event_id).collect::<Vec<i64>>(),
            &held
                .iter()
                .map(|h| h.space_key.as_str())
                .collect::<Vec<&str>>(),
            &held
                .iter()
                .map(|h| h.page_update.map(|p| p as i64))
                .collect::<Vec<Option<i64>>>(),
            &now,
        ],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// See `Store::claim_held`.
    pub async fn claim_held(&self, claim: &Claim, ids: &[i64]) -> StoreResult<Vec<ClaimedHeld>> {
        let rows = self
            .run(async {
                let client = self.client().await?;
                let stmt = client
                    .prepare_cached(&format!(
                        "WITH now AS MATERIALIZED (SELECT {DB_NOW} AS ms),
                         due AS (
                             SELECT h.id FROM held_events h
                             WHERE h.id = ANY($1) AND h.released_at IS NULL
                               AND (h.claim_until IS NULL OR h.claim_until <= (SELECT ms FROM now))
                             FOR UPDATE OF h SKIP LOCKED
                         ),
                         taken AS (
                             UPDATE held_events SET claim_token = $2, claimed_by = $3,
                               claim_until = (SELECT ms FROM now) + $4
                             FROM due WHERE held_events.id = due.id
                             RETURNING {}
                         )
                         SELECT taken.*, e.event AS event FROM taken JOIN events e ON e.id = taken.event_id",
                        HeldEvent::COLUMNS
                            .split(", ")
                            .map(|c| format!("held_events.{c}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .await?;
                let rows = client
                    .query(&stmt, &[&ids, &claim.token, &claim.replica, &claim.lease_ms])
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            HeldEvent::from_row(r)?,
                            r.try_get::<_, Option<String>>("event")?,
                        ))
                    })
                    .collect::<PgResult<Vec<_>>>()
            })
            .await?;
        let mut claimed = rows
            .into_iter()
            .map(|(held, event)| {
                let event = event.ok_or_else(|| StoreError::Corrupt {
                    what: "held event",
                    message: format!("event {} was held before it was enriched", held.event_id),
                })?;
                Ok(ClaimedHeld {
                    event: from_json("held event", &event)?,
                    held,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        claimed.sort_by_key(|c| (c.held.event_id, c.held.id));
        Ok(claimed)
    }

    /// See `Store::finish_held`.
    pub async fn finish_held(
        &self,
        claim: &Claim,
        released: &[Released],
        results: &[Dispatched],
        breaker: BreakerPolicy,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let ids: Vec<i64> = released.iter().map(|r| r.held_id).collect();
        let with: Vec<i64> = released.iter().map(|r| r.with_event).collect();
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let ours = tx
                .query(
                    "SELECT id FROM held_events WHERE id = ANY($1) AND claim_token = $2 AND released_at IS NULL
                     FOR UPDATE",
                    &[&ids, &claim.token],
                )
                .await?
                .len();
            if ours != ids.len() {
                return Ok(false);
            }
            let written: Vec<&Dispatched> = results.iter().collect();
            write_results(&tx, &written, now, breaker).await?;
            tx.execute(
                "UPDATE held_events SET released_at = $3, released_with = u.with_event,
                   claim_token = NULL, claim_until = NULL, claimed_by = NULL
                 FROM unnest($1::bigint[], $2::bigint[]) AS u(id, with_event)
                 WHERE held_events.id = u.id",
                &[&ids, &with, &now],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}
