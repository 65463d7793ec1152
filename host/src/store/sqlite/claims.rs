//! Claims on SQLite: the rules of [`crate::store::claims`] (written there
//! once, with the statements both backends share), in one immediate
//! transaction per round. One server runs per file, so nothing races here
//! but the server's own rounds (one at a time on the connection) and its
//! restarts; the rules still hold a stalled round to its token.
//!
//! What this module must never do: record a result without the token check,
//! or advance a rate for a delivery it did not claim.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::SqliteStore;
use super::sql::{Fail, execute_in, query_in};
use crate::store::claims::{
    CLAIMED_COLUMNS, Finished, GoOn, HELD_BY_CLAIM, LaneScan, Plan, Queued, admit, attempt_writes,
    claimed_from_row, going_on_in_order, lane_batch, lanes_of, rate_rows, release_lanes_sql,
    taken_going_on,
};
use crate::store::sql::{Dialect, Param, Row};
use crate::store::{
    AttemptResult, Claim, Claimed, DeliveryRound, HealthChange, RateKeys, RatePolicy, SendSlot,
    StoreResult, now_ms,
};

/// The head of the first lane after `?1` by name (what a round reads of it).
pub(super) const NEXT_HEAD: &str = "SELECT id, event_id, lane, next_try_at, status
     FROM deliveries INDEXED BY deliveries_head_order
     WHERE status IN ('pending', 'sending') AND lane > ?1
     ORDER BY lane, event_id, id LIMIT 1";

/// The head of the first lane by name.
const FIRST_HEAD: &str = "SELECT id, event_id, lane, next_try_at, status
     FROM deliveries INDEXED BY deliveries_head_order
     WHERE status IN ('pending', 'sending')
     ORDER BY lane, event_id, id LIMIT 1";

/// What follows a place in a lane (`?2`, `?3`: event, id), of events older
/// than the watermark `?4`, at most `?5`.
const FOLLOWERS: &str = "SELECT id, event_id, lane, next_try_at, status
     FROM deliveries INDEXED BY deliveries_head_order
     WHERE status IN ('pending', 'sending') AND lane = ?1 AND (event_id, id) > (?2, ?3) AND event_id < ?4
     ORDER BY event_id, id LIMIT ?5";

/// Marks a delivery taken (uncertain if it was `sending`: its last holder
/// may have sent it) and reads it.
fn mark_sql() -> String {
    format!(
        "UPDATE deliveries SET status = 'sending', uncertain = (uncertain OR status = 'sending'),
           claim_token = ?2, claimed_by = ?3
         WHERE id = ?1 AND status IN ('pending', 'sending')
         RETURNING {CLAIMED_COLUMNS}"
    )
}

/// Takes a lane for the round: a new lease, an expired one, or its own.
const LEASE: &str = "INSERT INTO lane_leases (lane, replica, token, until_ms) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (lane) DO UPDATE SET replica = excluded.replica, token = excluded.token, until_ms = excluded.until_ms
     WHERE lane_leases.until_ms <= ?5 OR lane_leases.token = excluded.token
     RETURNING lane";

impl SqliteStore {
    /// See `Store::claim_deliveries` and [`crate::store::claims`].
    pub fn claim_deliveries(
        &self,
        claim: &Claim,
        rates: RatePolicy,
        max: usize,
    ) -> StoreResult<DeliveryRound> {
        let mut conn = self.lock();
        let round = (|| -> Result<DeliveryRound, Fail> {
            let tx = Transaction::new(&mut conn, TransactionBehavior::Immediate)?;
            let database = self.path().display().to_string();
            let round = claim_in(&tx, &database, claim, rates, max, now_ms())?;
            tx.commit()?;
            Ok(round)
        })();
        round.map_err(|e| self.fail(e))
    }

    /// See `Store::finish_and_go_on` and [`crate::store::claims`].
    pub fn finish_attempts(
        &self,
        claim: &Claim,
        attempts: &[AttemptResult],
        health: &[HealthChange],
        go_on: &[GoOn],
    ) -> StoreResult<Finished> {
        self.transaction(|tx| {
            let token = Param::from(claim.token);
            let held: HashMap<i64, String> =
                query_in(tx, HELD_BY_CLAIM, std::slice::from_ref(&token), held_row)?
                    .into_iter()
                    .collect();
            // The lanes going on that the claim still holds, leases renewed
            // (before the attempts' updates, the order a round locks in).
            let now = now_ms();
            let mut going: Vec<&GoOn> = Vec::new();
            for g in go_on {
                let renewed = tx
                    .prepare_cached(
                        "UPDATE lane_leases SET until_ms = ?3 WHERE token = ?1 AND lane = ?2 RETURNING lane",
                    )?
                    .query_row(params![claim.token, g.lane, now + claim.lease_ms], |r| {
                        r.get::<_, String>(0)
                    })
                    .optional()?;
                if renewed.is_some() {
                    going.push(g);
                }
            }
            let lanes: Vec<String> = lanes_of(attempts, &held)
                .into_iter()
                .filter(|l| !going.iter().any(|g| &g.lane == l))
                .collect();
            let [leases, back] = release_lanes_sql(Dialect::Sqlite);
            let on_lanes = [token.clone(), Param::Texts(lanes.clone())];
            if !lanes.is_empty() {
                execute_in(tx, &leases, &on_lanes)?;
            }
            let mut recorded = 0;
            for a in attempts {
                let w = attempt_writes(claim, a, now);
                if execute_in(tx, w.update.0, &w.update.1)? == 1 {
                    recorded += 1;
                    for (sql, params) in &w.then {
                        execute_in(tx, sql, params)?;
                    }
                }
            }
            if !lanes.is_empty() {
                execute_in(tx, &back, &on_lanes)?;
            }
            for h in health {
                execute_in(
                    tx,
                    "UPDATE connections SET health_error = ?2 WHERE name = ?1",
                    &[(&h.connection).into(), (&h.error).into()],
                )?;
            }
            let next = if going.is_empty() {
                Vec::new()
            } else {
                go_on_in(tx, claim, &going, now)?
            };
            Ok(Finished {
                recorded,
                next: going_on_in_order(go_on, next),
            })
        })
    }

    /// See `Store::renew`.
    /// Unsynced, like every claim on SQLite (see `claim_events`).
    pub fn renew(&self, claim: &Claim) -> StoreResult<usize> {
        self.with_unsynced(|conn| {
            let until = now_ms() + claim.lease_ms;
            let events = conn.execute(
                "UPDATE events SET claim_until = ?2 WHERE claim_token = ?1 AND status = 'pending'",
                params![claim.token, until],
            )?;
            let lanes = conn.execute(
                "UPDATE lane_leases SET until_ms = ?2 WHERE token = ?1",
                params![claim.token, until],
            )?;
            Ok(events + lanes)
        })
        .map_err(|e| self.error(e))
    }

    /// See `Store::take_send_slot`. Unsynced: a rate slot lost to a power
    /// cut costs nothing.
    pub fn take_send_slot(&self, keys: &RateKeys, rates: RatePolicy) -> StoreResult<SendSlot> {
        self.with_unsynced(|conn| {
            let tx = conn.transaction()?;
            let mut tats = HashMap::new();
            let now = now_ms();
            let channel = tat(&tx, &mut tats, &keys.channel)?;
            let workspace = tat(&tx, &mut tats, &keys.workspace)?;
            let wait = match admit(&rates, channel, workspace, now) {
                Ok((channel, workspace)) => {
                    let mut put = tx.prepare_cached(
                        "INSERT INTO rate_limits (key, tat_ms) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET tat_ms = excluded.tat_ms",
                    )?;
                    put.execute(params![keys.channel, channel])?;
                    put.execute(params![keys.workspace, workspace])?;
                    SendSlot::Granted { at: now }
                }
                Err(ms) => SendSlot::Wait { ms },
            };
            tx.commit()?;
            Ok(wait)
        })
        .map_err(|e| self.error(e))
    }

    /// See `Store::release`.
    pub fn release(&self, claim: &Claim) -> StoreResult<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE deliveries SET status = 'pending', uncertain = 1, claim_token = NULL, claimed_by = NULL
                 WHERE claim_token = ?1 AND status = 'sending'",
                [claim.token],
            )?;
            tx.execute("DELETE FROM lane_leases WHERE token = ?1", [claim.token])?;
            tx.execute(
                "UPDATE events SET claim_token = NULL, claim_until = NULL WHERE claim_token = ?1",
                [claim.token],
            )?;
            tx.commit()
        })
    }

    /// See `Store::release_replica`.
    pub fn release_replica(&self, replica: &str) -> StoreResult<usize> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let mut n = tx.execute(
                "UPDATE deliveries SET status = 'pending', uncertain = 1, claim_token = NULL, claimed_by = NULL
                 WHERE claimed_by = ?1 AND status = 'sending'",
                [replica],
            )?;
            n += tx.execute("DELETE FROM lane_leases WHERE replica = ?1", [replica])?;
            n += tx.execute(
                "UPDATE events SET claim_token = NULL, claim_until = NULL WHERE claimed_by = ?1 AND claim_token IS NOT NULL",
                [replica],
            )?;
            tx.commit()?;
            Ok(n)
        })
    }

    /// See `Store::release_stale_claims`: the server holds the file's lock,
    /// so every claim in it is its own previous run's.
    pub fn release_stale_claims(&self) -> StoreResult<usize> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(
                "UPDATE deliveries SET status = 'pending', uncertain = 1, claim_token = NULL, claimed_by = NULL WHERE status = 'sending'",
                [],
            )?;
            tx.execute("DELETE FROM lane_leases", [])?;
            tx.execute(
                "UPDATE events SET claim_token = NULL, claim_until = NULL WHERE claim_until IS NOT NULL",
                [],
            )?;
            tx.commit()?;
            Ok(n)
        })
    }
}

/// `(id, lane)` of a row of [`HELD_BY_CLAIM`].
fn held_row(row: &dyn Row) -> StoreResult<(i64, String)> {
    Ok((row.get("id")?, row.get("lane")?))
}

/// The oldest event not yet dispatched (deliveries of it and later events
/// wait), `i64::MAX` when there is none.
fn watermark(tx: &Transaction<'_>) -> Result<i64, Fail> {
    Ok(tx
        .prepare_cached(
            "SELECT MIN(id) FROM events INDEXED BY events_undispatched WHERE status = 'pending' AND attempts = 0",
        )?
        .query_row([], |r| r.get::<_, Option<i64>>(0))?
        .unwrap_or(i64::MAX))
}

/// Marks deliveries `ids` taken by `claim` (see [`mark_sql`]) and reads
/// those it could take.
fn mark(tx: &Transaction<'_>, ids: &[i64], claim: &Claim) -> Result<Vec<Claimed>, Fail> {
    let sql = mark_sql();
    let mut marked = Vec::with_capacity(ids.len());
    for id in ids {
        marked.extend(query_in(
            tx,
            &sql,
            &[(*id).into(), claim.token.into(), (&claim.replica).into()],
            claimed_from_row,
        )?);
    }
    Ok(marked)
}

/// Lanes going on (leases renewed) take what follows them, as a round
/// takes what follows a head; a lane with nothing to take is let go.
fn go_on_in(
    tx: &Transaction<'_>,
    claim: &Claim,
    going: &[&GoOn],
    now: i64,
) -> Result<Vec<Claimed>, Fail> {
    let watermark = watermark(tx)?;
    let mut marked = Vec::new();
    for g in going {
        let followers = query_in(
            tx,
            FOLLOWERS,
            &[
                g.lane.as_str().into(),
                g.after.0.into(),
                g.after.1.into(),
                watermark.into(),
                lane_batch(&g.lane).into(),
            ],
            Queued::from_row,
        )?;
        let before = marked.len();
        marked.extend(mark(tx, &taken_going_on(&g.lane, &followers, now), claim)?);
        if marked.len() == before {
            tx.execute(
                "DELETE FROM lane_leases WHERE token = ?1 AND lane = ?2",
                params![claim.token, g.lane],
            )?;
        }
    }
    Ok(marked)
}

/// The round itself (see [`crate::store::claims`]).
fn claim_in(
    tx: &Transaction<'_>,
    database: &str,
    claim: &Claim,
    rates: RatePolicy,
    max: usize,
    now: i64,
) -> Result<DeliveryRound, Fail> {
    let watermark = watermark(tx)?;
    let mut unavailable: HashSet<String> = tx
        .prepare_cached("SELECT lane FROM lane_leases WHERE until_ms > ?1 AND token != ?2")?
        .query_map(params![now, claim.token], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;

    let scan = LaneScan::start(database);
    let mut seen = lane_heads(tx, scan.after.as_deref(), None, LaneScan::room_after(0))?;
    if let Some(after) = scan.after.as_deref() {
        let room = LaneScan::room_after(seen.len());
        seen.extend(lane_heads(tx, None, Some(after), room)?);
    }
    let more_lanes = scan.finish(&seen);
    let heads: Vec<Queued> = seen
        .into_iter()
        .filter(|h| h.event_id < watermark)
        .collect();

    let mut stored = HashMap::new();
    for key in rate_rows(&heads, &unavailable, now) {
        let tat: Option<i64> = tx
            .prepare_cached("SELECT tat_ms FROM rate_limits WHERE key = ?1")?
            .query_row([&key], |r| r.get(0))
            .optional()?;
        stored.insert(key, tat.unwrap_or(0));
    }

    // Lease the lanes of the heads taken; walk again without any that
    // another claim holds after all (it cannot on one server, but the rule
    // is the same as on PostgreSQL).
    let until = now + claim.lease_ms;
    let mut plan = loop {
        let plan = Plan::heads(&heads, &unavailable, &stored, rates, now, max);
        let mut lost = Vec::new();
        for l in &plan.lanes {
            let ours = tx
                .prepare_cached(LEASE)?
                .query_row(
                    params![l.lane, claim.replica, claim.token, until, now],
                    |r| r.get::<_, String>(0),
                )
                .optional()?;
            if ours.is_none() {
                lost.push(l.lane.clone());
            }
        }
        if lost.is_empty() {
            break plan;
        }
        unavailable.extend(lost);
    };

    let mut followers = Vec::new();
    for (lane, (event_id, id), room) in plan.wanting_more() {
        followers.extend(query_in(
            tx,
            FOLLOWERS,
            &[
                lane.into(),
                event_id.into(),
                id.into(),
                watermark.into(),
                room.into(),
            ],
            Queued::from_row,
        )?);
    }
    plan.extend(&followers);

    for (key, tat) in plan.changed_tats() {
        tx.prepare_cached(
            "INSERT INTO rate_limits (key, tat_ms) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET tat_ms = excluded.tat_ms",
        )?
        .execute(params![key, tat])?;
    }

    let marked = mark(tx, &plan.ids(), claim)?;
    for lane in plan.idle_lanes(&marked) {
        tx.execute(
            "DELETE FROM lane_leases WHERE token = ?1 AND lane = ?2",
            params![claim.token, lane],
        )?;
    }
    Ok(DeliveryRound {
        claimed: plan.in_order(marked),
        wait_ms: plan.wait_ms,
        more_lanes,
    })
}

/// The heads of lanes in name order: of lanes after `after` (all when
/// `None`), up to and including `up_to`, at most `limit`.
fn lane_heads(
    tx: &Transaction<'_>,
    after: Option<&str>,
    up_to: Option<&str>,
    limit: usize,
) -> Result<Vec<Queued>, Fail> {
    let mut heads: Vec<Queued> = Vec::new();
    while heads.len() < limit {
        let next = match heads.last().map(|h| h.lane.as_str()).or(after) {
            Some(after) => query_in(tx, NEXT_HEAD, &[after.into()], Queued::from_row)?,
            None => query_in(tx, FIRST_HEAD, &[], Queued::from_row)?,
        };
        match next.into_iter().next() {
            Some(h) if up_to.is_none_or(|last| h.lane.as_str() <= last) => heads.push(h),
            _ => break,
        }
    }
    Ok(heads)
}

/// The stored arrival time of a rate key (0 if never used), read once per round.
fn tat(tx: &Transaction<'_>, tats: &mut HashMap<String, i64>, key: &str) -> rusqlite::Result<i64> {
    if let Some(t) = tats.get(key) {
        return Ok(*t);
    }
    let t = tx
        .prepare_cached("SELECT tat_ms FROM rate_limits WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    tats.insert(key.to_owned(), t);
    Ok(t)
}
