use rusqlite::{OptionalExtension, params};

use super::SqliteStore;

use crate::store::{
    Claim, EventCount, EventRecord, EventStatus, StoreError, StoreResult, from_json, now_ms,
};

/// Where a dispatch round's events come from: the oldest due ones no live
/// claim holds, read in id order from the pending index (see
/// schema_3.sql); `?4` is now, `?5` the limit.
pub(super) const DUE_EVENTS: &str = "FROM events INDEXED BY events_pending_order WHERE status = 'pending' AND next_try_at <= ?4 AND (claim_until IS NULL OR claim_until <= ?4) ORDER BY id LIMIT ?5";

const COLUMNS: &str =
    "id, key, source, name, received_at, payload, event, status, attempts, error, dispatched_at";

type Raw = (
    i64,
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
    String,
    u32,
    Option<String>,
    Option<i64>,
);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn decode(raw: Raw) -> StoreResult<EventRecord> {
    let (
        id,
        key,
        source,
        name,
        received_at,
        payload,
        event,
        status,
        attempts,
        error,
        dispatched_at,
    ) = raw;
    Ok(EventRecord {
        id,
        key,
        source,
        name,
        received_at,
        payload: from_json("event payload", &payload)?,
        event: event.map(|e| from_json("enriched event", &e)).transpose()?,
        status: EventStatus::parse(&status).map_err(|message| StoreError::Corrupt {
            what: "event status",
            message,
        })?,
        attempts,
        error,
        dispatched_at,
    })
}

impl SqliteStore {
    /// The event with this id.
    pub fn event(&self, id: i64) -> StoreResult<Option<EventRecord>> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM events WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
        })?
        .map(decode)
        .transpose()
    }

    /// The newest events first, optionally only those in one status.
    pub fn events(
        &self,
        status: Option<EventStatus>,
        limit: usize,
    ) -> StoreResult<Vec<EventRecord>> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM events WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            stmt.query_map(params![status.map(EventStatus::as_str), limit as i64], row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(decode).collect()
    }

    /// Claims the oldest due events no live claim holds (see `Store::claim_events`).
    ///
    /// Unsynced: on SQLite a claim only matters while this process runs (the
    /// next `serve` releases every claim first), so it is not worth an fsync.
    pub fn claim_events(&self, claim: &Claim, limit: usize) -> StoreResult<Vec<EventRecord>> {
        let rows = self
            .with_unsynced(|conn| {
                let tx = conn.transaction()?;
                let now = now_ms();
                let rows = tx
                    .prepare_cached(&format!(
                        "UPDATE events SET claim_token = ?1, claimed_by = ?2, claim_until = ?3
                     WHERE id IN (SELECT id {DUE_EVENTS})
                     RETURNING {COLUMNS}"
                    ))?
                    .query_map(
                        params![
                            claim.token,
                            claim.replica,
                            now + claim.lease_ms,
                            now,
                            limit as i64
                        ],
                        row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                tx.commit()?;
                Ok(rows)
            })
            .map_err(|e| self.error(e))?;
        let mut events = rows
            .into_iter()
            .map(decode)
            .collect::<StoreResult<Vec<_>>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    /// Puts a claimed event back to wait; false if the claim was lost.
    pub fn defer_event(
        &self,
        claim: &Claim,
        id: i64,
        error: &str,
        next_try_at: i64,
    ) -> StoreResult<bool> {
        self.with(|conn| {
            conn.execute(
                "UPDATE events SET attempts = attempts + 1, error = ?2, next_try_at = ?3, claim_token = NULL, claim_until = NULL
                 WHERE id = ?1 AND claim_token = ?4 AND status = 'pending'",
                params![id, error, next_try_at, claim.token],
            )
        })
        .map(|n| n == 1)
    }

    /// Closes a claimed event without dispatching it; false if the claim was lost.
    pub fn close_event(
        &self,
        claim: &Claim,
        id: i64,
        status: EventStatus,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        self.with(|conn| {
            conn.execute(
                "UPDATE events SET status = ?2, error = ?3, attempts = attempts + 1, dispatched_at = ?4, claim_token = NULL, claim_until = NULL
                 WHERE id = ?1 AND claim_token = ?5 AND status = 'pending'",
                params![id, status.as_str(), error, now_ms(), claim.token],
            )
        })
        .map(|n| n == 1)
    }

    pub fn event_counts(&self) -> StoreResult<Vec<EventCount>> {
        let rows: Vec<(String, i64)> = self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT status, COUNT(*) FROM events GROUP BY status ORDER BY status")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(status, count)| {
                Ok(EventCount {
                    status: EventStatus::parse(&status).map_err(|message| StoreError::Corrupt {
                        what: "event status",
                        message,
                    })?,
                    count,
                })
            })
            .collect()
    }
}
