//! Digests on SQLite: binding digest settings and held events (see
//! [`crate::store::digests`]). A held event is written in its event's
//! dispatch transaction and released in the transaction that writes what
//! its plugin made of it; nothing here decides when.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::SqliteStore;
use super::outbox::write_results;
use crate::store::{
    BreakerPolicy, Claim, ClaimedHeld, DigestSettings, Dispatched, HeldEvent, NewHeld, Released,
    StoreError, StoreResult, from_json, now_ms,
};

const HELD_COLUMNS: &str =
    "id, binding_id, event_id, space_key, page_update, held_at, released_at, released_with";

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
    /// See `Store::digest_settings`.
    pub fn digest_settings(&self) -> StoreResult<Vec<(i64, DigestSettings)>> {
        self.with(|conn| {
            conn.prepare_cached(
                "SELECT binding_id, enabled, threshold, window_secs FROM binding_digests ORDER BY binding_id",
            )?
            .query_map([], |r| {
                Ok((
                    r.get("binding_id")?,
                    DigestSettings {
                        enabled: r.get("enabled")?,
                        threshold: r.get("threshold")?,
                        window_secs: r.get("window_secs")?,
                    },
                ))
            })?
            .collect()
        })
    }

    /// See `Store::set_digest_settings`.
    pub fn set_digest_settings(
        &self,
        binding_id: i64,
        settings: Option<DigestSettings>,
    ) -> StoreResult<()> {
        let found = self.with(|conn| {
            let tx = conn.transaction()?;
            let found = tx
                .query_row("SELECT 1 FROM bindings WHERE id = ?1", [binding_id], |_| {
                    Ok(())
                })
                .optional()?
                .is_some();
            if found {
                match settings {
                    Some(s) => tx.execute(
                        "INSERT INTO binding_digests (binding_id, enabled, threshold, window_secs)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (binding_id) DO UPDATE SET enabled = excluded.enabled,
                           threshold = excluded.threshold, window_secs = excluded.window_secs",
                        params![binding_id, s.enabled, s.threshold, s.window_secs],
                    )?,
                    None => tx.execute(
                        "DELETE FROM binding_digests WHERE binding_id = ?1",
                        [binding_id],
                    )?,
                };
            }
            tx.commit()?;
            Ok(found)
        })?;
        if !found {
            return Err(StoreError::NotFound(format!(
                "no binding with id {binding_id} (see `pagehook bindings`)"
            )));
        }
        Ok(())
    }

    /// See `Store::held_events`.
    pub fn held_events(&self, since: i64) -> StoreResult<Vec<HeldEvent>> {
        self.with(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {HELD_COLUMNS} FROM held_events
                 WHERE released_at IS NULL
                    OR (held_at >= ?1 AND EXISTS (
                        SELECT 1 FROM held_events u WHERE u.released_at IS NULL
                          AND u.binding_id = held_events.binding_id AND u.space_key = held_events.space_key))
                 ORDER BY id"
            ))?
            .query_map([since], held)?
            .collect()
        })
    }

    /// See `Store::event_held`.
    pub fn event_held(&self, event_id: i64) -> StoreResult<Vec<HeldEvent>> {
        self.with(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {HELD_COLUMNS} FROM held_events WHERE event_id = ?1 ORDER BY id"
            ))?
            .query_map([event_id], held)?
            .collect()
        })
    }

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
                HELD_COLUMNS
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

    /// See `Store::release_held_claim`.
    pub fn release_held_claim(&self, claim: &Claim) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE held_events SET claim_token = NULL, claim_until = NULL, claimed_by = NULL
                 WHERE claim_token = ?1",
                [claim.token],
            )
        })?;
        Ok(())
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

    /// See `Store::purge_released_held`.
    pub fn purge_released_held(&self, before: i64) -> StoreResult<usize> {
        self.with(|conn| {
            conn.execute(
                "DELETE FROM held_events WHERE released_at IS NOT NULL AND held_at < ?1",
                [before],
            )
        })
    }
}
