//! What dispatch writes: the delivery outbox, the audit log of every action
//! a plugin asked for, and plugin failures — all in the one transaction that
//! marks the event dispatched, so a crash leaves either all of it or none.

use serde::Serialize;

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
