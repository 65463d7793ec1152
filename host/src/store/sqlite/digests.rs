//! Digests on SQLite: holding events and releasing them (see
//! [`crate::store::digests`], where the reads shared with PostgreSQL are). A held event is written in its event's
//! dispatch transaction and released in the transaction that writes what
//! its plugin made of it; nothing here decides when.

use rusqlite::{Row, Transaction, params};

use super::SqliteStore;
use super::outbox::write_results;
use crate::store::sql::FromRow;
use crate::store::{
    BreakerPolicy, Claim, ClaimedHeld, Dispatched, HeldEvent, NewHeld, Released, StoreError,
    StoreResult, from_json, now_ms,
};

fn held(row: &Row<'_>) -> rusqlite::Result<HeldEvent> {
    Ok(HeldEvent {
        id: row.get("id")?,
        binding_id: row.get("binding_id")?,
        event_id: row.get("event_id")?,
        space_key: row.get("space_key")?,
        page_update: row.get::<_, Option<i64>>("page_update")?.map(|p| p as u64),
        held_at: row.get("held_at")?,
        released_at: row.get("released_at")?,
        released_with: row.get("released_with")?,
    })
}

/// Holds events for their bindings inside a dispatch transaction.
pub(super) fn hold<'a>(
    tx: &Transaction<'_>,
    held: impl IntoIterator<Item = &'a NewHeld>,
    now: i64,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO held_events (binding_id, event_id, space_key, page_update, held_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (binding_id, event_id) DO NOTHING",
    )?;
    for h in held {
        insert.execute(params![
            h.binding_id,
            h.event_id,
            h.space_key,
            h.page_update.map(|p| p as i64),
            now
        ])?;
    }
    Ok(())
}

impl SqliteStore {
    /// See `Store::claim_held`.
    pub fn claim_held(&self, claim: &Claim, ids: &[i64]) -> StoreResult<Vec<ClaimedHeld>> {
        let rows = self.with(|conn| {
            let tx = conn.transaction()?;
            let now = now_ms();
            let mut take = tx.prepare_cached(
                "UPDATE held_events SET claim_token = ?2, claim_until = ?3, claimed_by = ?4
                 WHERE id = ?1 AND released_at IS NULL
                   AND (claim_until IS NULL OR claim_until <= ?5)",
            )?;
            let mut taken = Vec::new();
            for id in ids {
                if take.execute(params![
                    id,
                    claim.token,
                    now + claim.lease_ms,
                    claim.replica,
                    now
                ])? > 0
                {
                    taken.push(*id);
                }
            }
            drop(take);
            let mut read = tx.prepare_cached(&format!(
                "SELECT {}, e.event AS event FROM held_events h JOIN events e ON e.id = h.event_id
                 WHERE h.id = ?1",
                HeldEvent::COLUMNS
                    .split(", ")
                    .map(|c| format!("h.{c} AS {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?;
            let mut rows = Vec::with_capacity(taken.len());
            for id in taken {
                rows.push(read.query_row([id], |r| {
                    Ok((held(r)?, r.get::<_, Option<String>>("event")?))
                })?);
            }
            drop(read);
            tx.commit()?;
            Ok(rows)
        })?;
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
    pub fn finish_held(
        &self,
        claim: &Claim,
        released: &[Released],
        results: &[Dispatched],
        breaker: BreakerPolicy,
    ) -> StoreResult<bool> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let now = now_ms();
            let mut ours = 0;
            {
                let mut mine = tx.prepare_cached(
                    "SELECT 1 FROM held_events WHERE id = ?1 AND claim_token = ?2 AND released_at IS NULL",
                )?;
                for r in released {
                    ours += mine.exists(params![r.held_id, claim.token])? as usize;
                }
            }
            if ours != released.len() {
                return Ok(false);
            }
            for d in results {
                write_results(&tx, d, now, breaker)?;
            }
            let mut release = tx.prepare_cached(
                "UPDATE held_events SET released_at = ?2, released_with = ?3,
                   claim_token = NULL, claim_until = NULL, claimed_by = NULL
                 WHERE id = ?1",
            )?;
            for r in released {
                release.execute(params![r.held_id, now, r.with_event])?;
            }
            drop(release);
            tx.commit()?;
            Ok(true)
        })
    }

    /// See `Store::release_stale_held_claims`.
    pub fn release_stale_held_claims(&self) -> StoreResult<usize> {
        self.with(|conn| {
            conn.execute(
                "UPDATE held_events SET claim_token = NULL, claim_until = NULL, claimed_by = NULL
                 WHERE claim_token IS NOT NULL",
                [],
            )
        })
    }
}
