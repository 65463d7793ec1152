//! What dispatch writes: the delivery outbox, the audit log of every action
//! a plugin asked for, and plugin failures — all in the one transaction that
//! marks the event dispatched, so a crash leaves either all of it or none.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreResult, from_json, json, now_ms};
use crate::model::{Action, Event};

/// An accepted action to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The binding whose plugin returned it.
    pub binding_id: i64,
    /// That plugin.
    pub plugin: String,
    /// The destination it matched (as the binding names it).
    pub destination: String,
    /// The action itself.
    pub action: Action,
    /// Record, never send.
    pub dry_run: bool,
    /// Deliveries in one lane go out in order (a Slack channel, a Teams
    /// channel, a Confluence page).
    pub lane: String,
    /// The Confluence connection the event came from (where pages and comments go).
    pub source: String,
    /// The Slack workspace (connection) that carries it, chosen at dispatch.
    pub connection: Option<String>,
}

/// One line of the audit log: an action a plugin returned and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// When.
    pub at: i64,
    /// For which event.
    pub event_id: i64,
    /// Under which binding.
    pub binding_id: i64,
    /// Which plugin.
    pub plugin: String,
    /// The exact component that ran.
    pub sha256: String,
    /// The action kind.
    pub kind: String,
    /// Where it wanted to go.
    pub destination: String,
    /// `accepted` or `rejected`.
    pub verdict: String,
    /// Why it was rejected.
    pub reason: Option<String>,
}

/// A plugin call that failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureRecord {
    /// When.
    pub at: i64,
    /// The event it was called on.
    pub event_id: i64,
    /// The binding.
    pub binding_id: i64,
    /// The plugin.
    pub plugin: String,
    /// Stable error code (`out-of-fuel`, `panic`, `breaker-open`, ...).
    pub code: String,
    /// The error in words.
    pub message: String,
    /// What the plugin logged during the call.
    pub log: String,
}

/// Everything dispatch decided about one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    /// The event.
    pub event_id: i64,
    /// The enriched event the plugins saw.
    pub event: Event,
    /// Accepted actions.
    pub deliveries: Vec<NewDelivery>,
    /// A verdict for every action returned (accepted and rejected).
    pub audit: Vec<AuditRecord>,
    /// Failed calls.
    pub failures: Vec<FailureRecord>,
    /// Per plugin called: did the call succeed (feeds the breaker).
    pub calls: Vec<(String, bool, Option<String>)>,
}

/// How the breaker reacts to failures.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    /// Consecutive failures that open it.
    pub threshold: u32,
    /// How long it stays open before a trial call (ms).
    pub cooldown_ms: i64,
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    /// Its id.
    pub id: i64,
    /// The event that produced it.
    pub event_id: i64,
    /// The binding.
    pub binding_id: i64,
    /// The plugin.
    pub plugin: String,
    /// Action kind.
    pub kind: String,
    /// The binding destination it matched.
    pub destination: String,
    /// The action.
    pub action: Action,
    /// Recorded only, never sent.
    pub dry_run: bool,
    /// `pending`, then what delivery made of it.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// What delivery made of it: Slack `ts`, created content id, or the
    /// exact request of a dry run (JSON).
    pub result: Option<String>,
    /// When it was written.
    pub created_at: i64,
}

impl Store {
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
    pub fn finish_dispatch(&self, batch: &[Dispatched], breaker: BreakerPolicy) -> StoreResult<()> {
        self.with_unsynced(|conn| {
            let tx = conn.transaction()?;
            let now = now_ms();
            for d in batch {
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
                        now, d.event_id, a.binding_id, a.plugin, a.sha256, a.kind, a.destination, a.verdict, a.reason
                    ])?;
                }
                let mut fail = tx.prepare_cached(
                    "INSERT INTO failures (at, event_id, binding_id, plugin, code, message, log)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for f in &d.failures {
                    fail.execute(params![now, d.event_id, f.binding_id, f.plugin, f.code, f.message, f.log])?;
                }
                let mut ok = tx.prepare_cached(
                    "UPDATE plugins SET failures = 0, breaker_until = NULL, breaker_error = NULL WHERE name = ?1",
                )?;
                let mut bad = tx.prepare_cached(
                    "UPDATE plugins SET failures = failures + 1,
                       breaker_until = CASE WHEN failures + 1 >= ?2 THEN ?3 ELSE breaker_until END,
                       breaker_error = CASE WHEN failures + 1 >= ?2 THEN ?4 ELSE breaker_error END
                     WHERE name = ?1",
                )?;
                for (plugin, success, error) in &d.calls {
                    if *success {
                        ok.execute([plugin])?;
                    } else {
                        bad.execute(params![plugin, breaker.threshold, now + breaker.cooldown_ms, error])?;
                    }
                }
                tx.prepare_cached(
                    "UPDATE events SET status = 'dispatched', event = ?2, error = NULL, attempts = attempts + 1, dispatched_at = ?3 WHERE id = ?1"
                )?
                .execute(
                    params![d.event_id, json(&d.event), now],
                )?;
            }
            tx.commit()
        })
    }

    /// Deliveries, newest first, optionally in one status.
    pub fn deliveries(
        &self,
        status: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        self.deliveries_where(status, None, limit)
    }

    /// The deliveries one event produced.
    pub fn event_deliveries(&self, event_id: i64) -> StoreResult<Vec<DeliveryRecord>> {
        self.deliveries_where(None, Some(event_id), 10_000)
    }

    fn deliveries_where(
        &self,
        status: Option<&str>,
        event_id: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, event_id, binding_id, plugin, kind, destination, action, dry_run, status, attempts, last_error, created_at, result
                 FROM deliveries WHERE (?1 IS NULL OR status = ?1) AND (?3 IS NULL OR event_id = ?3)
                 ORDER BY id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![status, limit as i64, event_id], |r| {
                Ok((
                    DeliveryRecord {
                        id: r.get(0)?,
                        event_id: r.get(1)?,
                        binding_id: r.get(2)?,
                        plugin: r.get(3)?,
                        kind: r.get(4)?,
                        destination: r.get(5)?,
                        action: Action::DmSlack {
                            email: String::new(),
                            text: String::new(),
                            blocks: None,
                        },
                        dry_run: r.get(7)?,
                        status: r.get(8)?,
                        attempts: r.get(9)?,
                        last_error: r.get(10)?,
                        created_at: r.get(11)?,
                        result: r.get(12)?,
                    },
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(mut d, action)| {
                d.action = from_json("delivery action", &action)?;
                Ok(d)
            })
            .collect()
    }

    /// The audit log, newest first, optionally for one event.
    pub fn audit(&self, event_id: Option<i64>, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT at, event_id, binding_id, plugin, sha256, kind, destination, verdict, reason
                 FROM audit WHERE ?1 IS NULL OR event_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![event_id, limit as i64], |r| {
                Ok(AuditRecord {
                    at: r.get(0)?,
                    event_id: r.get(1)?,
                    binding_id: r.get(2)?,
                    plugin: r.get(3)?,
                    sha256: r.get(4)?,
                    kind: r.get(5)?,
                    destination: r.get(6)?,
                    verdict: r.get(7)?,
                    reason: r.get(8)?,
                })
            })?
            .collect()
        })
    }

    /// Failed plugin calls, newest first, optionally for one plugin.
    pub fn failures(&self, plugin: Option<&str>, limit: usize) -> StoreResult<Vec<FailureRecord>> {
        self.failures_where(plugin, None, limit)
    }

    /// The failed calls of one event.
    pub fn event_failures(&self, event_id: i64) -> StoreResult<Vec<FailureRecord>> {
        self.failures_where(None, Some(event_id), 10_000)
    }

    fn failures_where(
        &self,
        plugin: Option<&str>,
        event_id: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<FailureRecord>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT at, event_id, binding_id, plugin, code, message, log
                 FROM failures WHERE (?1 IS NULL OR plugin = ?1) AND (?3 IS NULL OR event_id = ?3)
                 ORDER BY id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![plugin, limit as i64, event_id], |r| {
                Ok(FailureRecord {
                    at: r.get(0)?,
                    event_id: r.get(1)?,
                    binding_id: r.get(2)?,
                    plugin: r.get(3)?,
                    code: r.get(4)?,
                    message: r.get(5)?,
                    log: r.get(6)?,
                })
            })?
            .collect()
        })
    }
}
