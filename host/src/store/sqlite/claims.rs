//! Claims on SQLite: the same rules as on PostgreSQL (see
//! [`crate::store::claims`]), in one immediate transaction each. One server
//! runs per file, so nothing races here but the server's own rounds and its
//! restarts; the rules still hold a stalled round to its token.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::SqliteStore;
use crate::store::claims::{admit, rate_keys};
use crate::store::{
    AttemptResult, Claim, Claimed, DeliveryRound, HealthChange, Outcome, RateKeys, RatePolicy,
    SendSlot, StoreResult, from_json, now_ms,
};

/// Candidates per round: the oldest deliveries still to send, by event then
/// id, of events older than every event not yet dispatched.
pub(super) const CANDIDATES: &str = "SELECT id, event_id, destination, action, dry_run, lane, source, attempts, uncertain, next_try_at, created_at, connection, status
     FROM deliveries INDEXED BY deliveries_lane_order
     WHERE status IN ('pending', 'sending') AND event_id < ?1
     ORDER BY event_id, id LIMIT ?2";

/// Deliveries looked at per round.
const WINDOW: i64 = 500;

type Candidate = (Claimed, i64, bool);

impl SqliteStore {
    /// See `Store::claim_deliveries`.
    pub fn claim_deliveries(
        &self,
        claim: &Claim,
        rates: RatePolicy,
        max: usize,
    ) -> StoreResult<DeliveryRound> {
        let candidates = self.with(|conn| {
            let tx = Transaction::new(conn, TransactionBehavior::Immediate)?;
            let now = now_ms();
            let round = claim_in(&tx, claim, rates, max, now)?;
            tx.commit()?;
            Ok(round)
        })?;
        let (rows, wait_ms) = candidates;
        let mut claimed = Vec::with_capacity(rows.len());
        for (raw, action) in rows {
            let mut d = raw;
            d.action = from_json("delivery action", &action)?;
            claimed.push(d);
        }
        Ok(DeliveryRound { claimed, wait_ms })
    }

    /// See `Store::finish_attempts`.
    pub fn finish_attempts(
        &self,
        claim: &Claim,
        attempts: &[AttemptResult],
        health: &[HealthChange],
    ) -> StoreResult<usize> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let mut recorded = 0;
            for a in attempts {
                recorded += record_attempt(&tx, claim, a)? as usize;
            }
            for h in health {
                tx.execute(
                    "UPDATE connections SET health_error = ?2 WHERE name = ?1",
                    params![h.connection, h.error],
                )?;
            }
            tx.execute("DELETE FROM lane_leases WHERE token = ?1", [claim.token])?;
            tx.commit()?;
            Ok(recorded)
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

/// The claiming round itself; returns the claimed rows (action still JSON)
/// and how long until a held-back head may go.
#[allow(clippy::type_complexity)]
fn claim_in(
    tx: &Transaction<'_>,
    claim: &Claim,
    rates: RatePolicy,
    max: usize,
    now: i64,
) -> rusqlite::Result<(Vec<(Claimed, String)>, Option<i64>)> {
    let watermark: i64 = tx
        .prepare_cached(
            "SELECT MIN(id) FROM events INDEXED BY events_undispatched WHERE status = 'pending' AND attempts = 0",
        )?
        .query_row([], |r| r.get::<_, Option<i64>>(0))?
        .unwrap_or(i64::MAX);
    let leased: HashSet<String> = tx
        .prepare_cached("SELECT lane FROM lane_leases WHERE until_ms > ?1 AND token != ?2")?
        .query_map(params![now, claim.token], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let rows: Vec<(Candidate, String)> = tx
        .prepare_cached(CANDIDATES)?
        .query_map(params![watermark, WINDOW], |r| {
            let status: String = r.get(12)?;
            Ok((
                (
                    Claimed {
                        id: r.get(0)?,
                        event_id: r.get(1)?,
                        destination: r.get(2)?,
                        action: crate::model::Action::DmSlack {
                            email: String::new(),
                            text: String::new(),
                            blocks: None,
                        },
                        dry_run: r.get(4)?,
                        lane: r.get(5)?,
                        source: r.get(6)?,
                        attempts: r.get(7)?,
                        uncertain: r.get(8)?,
                        due: true,
                        created_at: r.get(10)?,
                        connection: r.get(11)?,
                    },
                    r.get::<_, i64>(9)?,
                    status == "sending",
                ),
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;

    let mut seen: HashSet<String> = HashSet::new();
    let mut tats: HashMap<String, i64> = HashMap::new();
    let mut wait: Option<i64> = None;
    let mut out = Vec::new();
    let mut hold = |ms: i64| wait = Some(wait.map_or(ms, |w| w.min(ms)));
    for ((mut d, next_try_at, in_flight), action) in rows {
        if out.len() >= max {
            break;
        }
        if !seen.insert(d.lane.clone()) || leased.contains(&d.lane) {
            continue;
        }
        if next_try_at > now {
            hold(next_try_at - now);
            continue;
        }
        // The rate is checked on the decoded action; a row that does not
        // decode goes through so delivery can report it.
        let keys = from_json::<crate::model::Action>("delivery action", &action)
            .ok()
            .and_then(|a| {
                let probe = Claimed {
                    action: a,
                    ..d.clone()
                };
                rate_keys(&probe)
            });
        let mut slots = None;
        if let Some(keys) = &keys {
            let channel = tat(tx, &mut tats, &keys.channel)?;
            let workspace = tat(tx, &mut tats, &keys.workspace)?;
            match admit(&rates, channel, workspace, now) {
                Ok(next) => slots = Some(next),
                Err(ms) => {
                    hold(ms);
                    continue;
                }
            }
        }
        let ours = tx
            .prepare_cached(
                "INSERT INTO lane_leases (lane, replica, token, until_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (lane) DO UPDATE SET replica = excluded.replica, token = excluded.token, until_ms = excluded.until_ms
                 WHERE lane_leases.until_ms <= ?5 OR lane_leases.token = excluded.token
                 RETURNING lane",
            )?
            .query_row(
                params![d.lane, claim.replica, claim.token, now + claim.lease_ms, now],
                |r| r.get::<_, String>(0),
            )
            .optional()?;
        if ours.is_none() {
            continue;
        }
        if let (Some(keys), Some((channel, workspace))) = (&keys, slots) {
            tats.insert(keys.channel.clone(), channel);
            tats.insert(keys.workspace.clone(), workspace);
            let mut put = tx.prepare_cached(
                "INSERT INTO rate_limits (key, tat_ms) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET tat_ms = excluded.tat_ms",
            )?;
            put.execute(params![keys.channel, channel])?;
            put.execute(params![keys.workspace, workspace])?;
        }
        d.uncertain |= in_flight;
        tx.prepare_cached(
            "UPDATE deliveries SET status = 'sending', uncertain = ?2, claim_token = ?3, claimed_by = ?4 WHERE id = ?1",
        )?
        .execute(params![d.id, d.uncertain, claim.token, claim.replica])?;
        out.push((d, action));
    }
    Ok((out, wait))
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

/// Records one attempt if the delivery still carries the claim's token;
/// whether it did.
fn record_attempt(
    tx: &Transaction<'_>,
    claim: &Claim,
    a: &AttemptResult,
) -> rusqlite::Result<bool> {
    let id = a.delivery_id;
    let token = claim.token;
    let (label, error, matched) = match &a.outcome {
        Outcome::Sent { result, thread } => {
            let n = tx
                .prepare_cached(
                    "UPDATE deliveries SET status = 'sent', result = ?2, sent_at = ?3, attempts = attempts + 1, last_error = NULL, uncertain = 0, claim_token = NULL, claimed_by = NULL
                     WHERE id = ?1 AND claim_token = ?4",
                )?
                .execute(params![id, result, now_ms(), token])?;
            if let (1, Some(t)) = (n, thread) {
                // The first one wins: a retried root must not move its thread.
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO slack_threads (connection, channel, thread_key, ts) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![t.connection, t.channel, t.key, t.ts])?;
            }
            ("sent", None, n)
        }
        Outcome::WouldSend { request } => {
            let n = tx
                .prepare_cached(
                    "UPDATE deliveries SET status = 'would-send', result = ?2, sent_at = ?3, attempts = attempts + 1, claim_token = NULL, claimed_by = NULL
                     WHERE id = ?1 AND claim_token = ?4",
                )?
                .execute(params![id, request, now_ms(), token])?;
            ("would-send", None, n)
        }
        Outcome::Retry {
            error,
            at,
            uncertain,
        } => {
            let n = tx
                .prepare_cached(
                    "UPDATE deliveries SET status = 'pending', next_try_at = ?2, last_error = ?3, attempts = attempts + 1, uncertain = uncertain OR ?4, claim_token = NULL, claimed_by = NULL
                     WHERE id = ?1 AND claim_token = ?5",
                )?
                .execute(params![id, at, error, uncertain, token])?;
            ("retry", Some(error.as_str()), n)
        }
        Outcome::Dead { error } => {
            let n = tx
                .prepare_cached(
                    "UPDATE deliveries SET status = 'dead', last_error = ?2, attempts = attempts + 1, claim_token = NULL, claimed_by = NULL
                     WHERE id = ?1 AND claim_token = ?3",
                )?
                .execute(params![id, error, token])?;
            ("dead", Some(error.as_str()), n)
        }
    };
    if matched == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO attempts (delivery_id, at, outcome, error, latency_ms, sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, a.started_at, label, error, a.latency_ms, a.sent_at])?;
    Ok(true)
}
