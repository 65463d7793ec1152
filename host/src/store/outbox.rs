//! What dispatch writes: the delivery outbox, the audit log of every action
//! a plugin asked for, and plugin failures — all in the one transaction that
//! marks the event dispatched, so a crash leaves either all of it or none.
//!
//! The breaker rule is here, once for both backends: how a run of plugin
//! calls changes a plugin's breaker ([`breaker_steps`]) and the statement
//! that applies it ([`apply_breakers_sql`]). This module computes and writes
//! statements; it must never reach the database itself.

use serde::Serialize;

use super::sql::Dialect;
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
    /// Every plugin called and how the call went (feeds the breaker).
    pub calls: Vec<PluginCall>,
}

/// One plugin call of a dispatch, as the breaker counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginCall {
    /// The plugin.
    pub plugin: String,
    /// The call returned actions (even if some were rejected).
    pub succeeded: bool,
    /// Why it failed, shown while the breaker is open.
    pub error: Option<String>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryStatus {
    /// Waiting to be sent (or to be retried).
    Pending,
    /// Claimed by a replica that is sending it now.
    Sending,
    /// Delivered.
    Sent,
    /// Recorded by a dry run, never sent.
    WouldSend,
    /// Given up: a dead letter, replayable with `pagehook retry`.
    Dead,
}

impl DeliveryStatus {
    /// Every status, in the order a delivery goes through them.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::WouldSend,
        DeliveryStatus::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::WouldSend => "would-send",
            DeliveryStatus::Dead => "dead",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(s: &str) -> Result<DeliveryStatus, String> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown delivery status `{s}` (one of: {})",
                    DeliveryStatus::ALL.map(DeliveryStatus::as_str).join(", ")
                )
            })
    }
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
    /// Where it stands.
    pub status: DeliveryStatus,
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

/// The net effect of a run of plugin calls on one plugin's breaker: calls
/// after the last success count as failures (the breaker opens if the count
/// reaches the threshold, with the last error), a success resets the count
/// and closes the breaker. The same as applying the calls one by one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BreakerStep {
    /// The plugin.
    pub plugin: String,
    /// A call succeeded: the stored count starts again from zero.
    pub reset: bool,
    /// Failed calls after the last success.
    pub failed: i64,
    /// The last failed call's error.
    pub error: Option<String>,
}

/// Folds dispatch's plugin calls into one [`BreakerStep`] per plugin, in the
/// order the plugins were first called.
pub(crate) fn breaker_steps<'a>(
    calls: impl IntoIterator<Item = &'a PluginCall>,
) -> Vec<BreakerStep> {
    let mut steps: Vec<BreakerStep> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for call in calls {
        let i = *index.entry(call.plugin.as_str()).or_insert_with(|| {
            steps.push(BreakerStep {
                plugin: call.plugin.clone(),
                reset: false,
                failed: 0,
                error: None,
            });
            steps.len() - 1
        });
        let step = &mut steps[i];
        if call.succeeded {
            step.reset = true;
            step.failed = 0;
            step.error = None;
        } else {
            step.failed += 1;
            step.error = call.error.clone();
        }
    }
    steps
}

/// How a [`BreakerStep`] changes its plugin's row, the same on both
/// backends: `u` is the step (`name`, `reset`, `failed`, `error`), `?5` the
/// threshold and `?6` when an opened breaker lets a trial call through.
const BREAKER_SET: &str = "failures = (CASE WHEN u.reset THEN 0 ELSE plugins.failures END) + u.failed,
       breaker_until = CASE
         WHEN u.failed > 0 AND (CASE WHEN u.reset THEN 0 ELSE plugins.failures END) + u.failed >= ?5 THEN ?6
         WHEN u.reset THEN NULL ELSE plugins.breaker_until END,
       breaker_error = CASE
         WHEN u.failed > 0 AND (CASE WHEN u.reset THEN 0 ELSE plugins.failures END) + u.failed >= ?5 THEN u.error
         WHEN u.reset THEN NULL ELSE plugins.breaker_error END";

/// The statement applying [`BreakerStep`]s, with SQLite's placeholders (see
/// `Dialect::text`). On SQLite one step (`?1` plugin, `?2` reset, `?3`
/// failed, `?4` error); on PostgreSQL all of them at once (the same as
/// arrays), where only plugins whose row changes are locked, in name order:
/// dispatch rounds of several replicas touch the same plugin rows and must
/// not lock them in opposite orders (a deadlock), and the common case, a
/// success on a healthy plugin, locks and writes nothing.
pub(crate) fn apply_breakers_sql(dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => format!(
            "WITH u (name, reset, failed, error) AS (VALUES (?1, ?2, ?3, ?4))
             UPDATE plugins SET {BREAKER_SET}
             FROM u WHERE plugins.name = u.name"
        ),
        Dialect::Postgres => format!(
            "WITH u AS (
               SELECT * FROM unnest(?1::text[], ?2::bool[], ?3::bigint[], ?4::text[]) AS u(name, reset, failed, error)
             ),
             locked AS (
               SELECT p.name FROM plugins p JOIN u ON p.name = u.name
               WHERE u.failed > 0 OR p.failures <> 0 OR p.breaker_until IS NOT NULL OR p.breaker_error IS NOT NULL
               ORDER BY p.name
               FOR UPDATE OF p
             )
             UPDATE plugins SET {BREAKER_SET}
             FROM u, locked
             WHERE plugins.name = u.name AND plugins.name = locked.name"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_steps_fold_a_run_of_calls_per_plugin() {
        let call = |plugin: &str, succeeded: bool, error: Option<&str>| PluginCall {
            plugin: plugin.into(),
            succeeded,
            error: error.map(str::to_owned),
        };
        let steps = breaker_steps(&[
            call("a", false, Some("x")),
            call("b", true, None),
            call("a", true, None),
            call("a", false, Some("y")),
            call("a", false, Some("z")),
        ]);
        assert_eq!(
            steps,
            [
                BreakerStep {
                    plugin: "a".into(),
                    reset: true,
                    failed: 2,
                    error: Some("z".into())
                },
                BreakerStep {
                    plugin: "b".into(),
                    reset: true,
                    failed: 0,
                    error: None
                },
            ]
        );
    }
}
