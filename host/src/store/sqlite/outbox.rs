use rusqlite::params;

use super::SqliteStore;
use crate::store::outbox::{apply_breakers_sql, breaker_steps};
use crate::store::search::Dialect;
use crate::store::{
    BreakerPolicy, Claim, Dispatched, NewDelivery, NewHeld, StoreResult, json, now_ms,
};

impl SqliteStore {
    /// Queues a message Pagehook itself sends (a new connection's greeting,
    /// a new binding's announcement) through the outbox, so it is durable
    /// and retried like any delivery. It hangs off an event of its own
    /// (`pagehook_notice`, never dispatched to plugins). Returns the
    /// delivery's id.
    pub fn enqueue_notice(&self, what: &str, d: &NewDelivery) -> StoreResult<i64> {
        let now = now_ms();
        self.with(|conn| {
            let tx = conn.transaction()?;
            let seq: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM events", [], |r| r.get(0))?;
            tx.execute(
                "INSERT INTO events (key, source, name, received_at, payload, status, dispatched_at)
                 VALUES (?1, 'pagehook', 'pagehook_notice', ?2, ?3, 'dispatched', ?2)",
                params![
                    format!("pagehook-notice:{now}:{seq}"),
                    now,
                    json(&serde_json::json!({ "notice": what }))
                ],
            )?;
            let event_id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO deliveries (event_id, binding_id, plugin, kind, destination, action, dry_run, created_at, lane, source, connection)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    event_id,
                    d.binding_id,
                    d.plugin,
                    d.action.kind(),
                    d.destination,
                    json(&d.action),
                    d.dry_run,
                    now,
                    d.lane,
                    d.source,
                    d.connection
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })
    }

    /// Writes dispatch's results for a batch of events and marks them
    /// dispatched, in order, in one transaction.
    /// Redone if a power cut loses it (see `with_unsynced`): the events stay
    /// pending until it is durable.
    pub fn finish_dispatch(
        &self,
        claim: &Claim,
        batch: &[Dispatched],
        breaker: BreakerPolicy,
    ) -> StoreResult<usize> {
        self.finish_dispatch_holding(claim, batch, &[], breaker)
    }

    /// [`Self::finish_dispatch`], holding `held` for their bindings in the
    /// same transaction (each only if its event was still the claim's).
    pub fn finish_dispatch_holding(
        &self,
        claim: &Claim,
        batch: &[Dispatched],
        held: &[NewHeld],
        breaker: BreakerPolicy,
    ) -> StoreResult<usize> {
        self.with_unsynced(|conn| {
            let tx = conn.transaction()?;
            let now = now_ms();
            let mut written = 0;
            for d in batch {
                // Only an event still held by this claim: a claim that ran
                // past its lease has lost it to another round.
                let still_ours = tx
                    .prepare_cached(
                        "UPDATE events SET status = 'dispatched', event = ?2, error = NULL, attempts = attempts + 1, dispatched_at = ?3, claim_token = NULL, claim_until = NULL
                         WHERE id = ?1 AND claim_token = ?4 AND status = 'pending'",
                    )?
                    .execute(params![d.event_id, json(&d.event), now, claim.token])?;
                if still_ours == 0 {
                    continue;
                }
                written += 1;
                write_results(&tx, d, now, breaker)?;
                super::digests::hold(&tx, held.iter().filter(|h| h.event_id == d.event_id), now)?;
            }
            tx.commit()?;
            Ok(written)
        })
        .map_err(|e| self.error(e))
    }
}

/// Writes what dispatch (or a digest's release) decided for one event: its
/// deliveries, the audit line of every action, failed calls, and what the
/// calls do to their plugins' breakers.
pub(super) fn write_results(
    tx: &rusqlite::Transaction<'_>,
    d: &Dispatched,
    now: i64,
    breaker: BreakerPolicy,
) -> rusqlite::Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO deliveries (event_id, binding_id, plugin, kind, destination, action, dry_run, created_at, lane, source, connection)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for del in &d.deliveries {
        ins.execute(params![
            d.event_id,
            del.binding_id,
            del.plugin,
            del.action.kind(),
            del.destination,
            json(&del.action),
            del.dry_run,
            now,
            del.lane,
            del.source,
            del.connection
        ])?;
    }
    let mut audit = tx.prepare_cached(
        "INSERT INTO audit (at, event_id, binding_id, plugin, sha256, kind, destination, verdict, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for a in &d.audit {
        audit.execute(params![
            now,
            d.event_id,
            a.binding_id,
            a.plugin,
            a.sha256,
            a.kind,
            a.destination,
            a.verdict,
            a.reason
        ])?;
    }
    let mut fail = tx.prepare_cached(
        "INSERT INTO failures (at, event_id, binding_id, plugin, code, message, log)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for f in &d.failures {
        fail.execute(params![
            now,
            d.event_id,
            f.binding_id,
            f.plugin,
            f.code,
            f.message,
            f.log
        ])?;
    }
    let apply = apply_breakers_sql(Dialect::Sqlite);
    for step in breaker_steps(&d.calls) {
        tx.prepare_cached(&apply)?.execute(params![
            step.plugin,
            step.reset,
            step.failed,
            step.error,
            breaker.threshold,
            now + breaker.cooldown_ms
        ])?;
    }
    Ok(())
}
