//! Claiming events on SQLite (reading, deferring and closing them is
//! shared: `store/events.rs`). One server runs per file, so a claim only
//! has to hold against this server's own rounds and its restarts.

use super::SqliteStore;
use super::sql::query_in;
use crate::store::sql::FromRow;
use crate::store::{Claim, EventRecord, StoreResult, now_ms};

/// Where a dispatch round's events come from: the oldest due ones no live
/// claim holds, read in id order from the pending index (see
/// schema_3.sql); `?4` is now, `?5` the limit.
pub(super) const DUE_EVENTS: &str = "FROM events INDEXED BY events_pending_order WHERE status = 'pending' AND next_try_at <= ?4 AND (claim_until IS NULL OR claim_until <= ?4) ORDER BY id LIMIT ?5";

impl SqliteStore {
    /// Claims the oldest due events no live claim holds (see `Store::claim_events`).
    ///
    /// Unsynced: on SQLite a claim only matters while this process runs (the
    /// next `serve` releases every claim first), so it is not worth an fsync.
    pub fn claim_events(&self, claim: &Claim, limit: usize) -> StoreResult<Vec<EventRecord>> {
        let now = now_ms();
        let claimed = format!(
            "UPDATE events SET claim_token = ?1, claimed_by = ?2, claim_until = ?3
             WHERE id IN (SELECT id {DUE_EVENTS})
             RETURNING {}",
            EventRecord::COLUMNS
        );
        let mut events = self
            .with_unsynced(|conn| {
                query_in(
                    conn,
                    &claimed,
                    &[
                        claim.token.into(),
                        (&claim.replica).into(),
                        (now + claim.lease_ms).into(),
                        now.into(),
                        limit.into(),
                    ],
                    EventRecord::from_row,
                )
            })
            .map_err(|e| self.fail(e))?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }
}
