//! The delivery side of the outbox: claiming due deliveries in order,
//! recording every attempt and its outcome, and the small maps delivery
//! needs to be idempotent (Slack thread keys, Confluence once-keys).

use serde::Serialize;

use crate::model::Action;

/// A pending delivery taken up by the delivery worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Its id (also sent to Slack as message metadata).
    pub id: i64,
    /// The event it came from.
    pub event_id: i64,
    /// The binding destination it matched.
    pub destination: String,
    /// What to send.
    pub action: Action,
    /// The binding asked for a dry run.
    pub dry_run: bool,
    /// Its ordering lane.
    pub lane: String,
    /// The Confluence connection of its event.
    pub source: String,
    /// The Slack workspace chosen at dispatch (`None`: written before
    /// several workspaces existed, or not a Slack delivery).
    pub connection: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// An earlier attempt may have succeeded without us learning it.
    pub uncertain: bool,
    /// Whether it is due now (not waiting for a retry).
    pub due: bool,
    /// When it was written (ms).
    pub created_at: i64,
}

/// The first Slack message posted under a thread key: later messages with
/// the key become replies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackThread {
    /// The Slack connection it was posted through.
    pub connection: String,
    /// The channel (or DM) id.
    pub channel: String,
    /// The plugin's thread key.
    pub key: String,
    /// The message's `ts`.
    pub ts: String,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Delivered; `result` is what identifies it there (Slack ts, page id).
    Sent {
        /// The target's id for what was created.
        result: String,
        /// A thread this message started, remembered in the same commit
        /// that marks it sent (a follow-up in its lane waits for that).
        thread: Option<SlackThread>,
    },
    /// Dry run: the exact request that would have been sent.
    WouldSend {
        /// The request, as JSON.
        request: String,
    },
    /// Try again at `at` (ms); `uncertain` if it may have gone through.
    Retry {
        /// Why this attempt failed.
        error: String,
        /// When to try again.
        at: i64,
        /// The outcome of this attempt is unknown (a timeout after sending).
        uncertain: bool,
    },
    /// Give up: a dead letter, replayable with `pagehook retry`.
    Dead {
        /// Why, in words an admin can act on.
        error: String,
    },
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    /// When it started.
    pub at: i64,
    /// `sent`, `would-send`, `retry` or `dead`.
    pub outcome: String,
    /// The error, if any.
    pub error: Option<String>,
    /// How long it took.
    pub latency_ms: i64,
    /// When its request left, at its send-time rate slot (ms, the store's
    /// clock; Slack messages only).
    pub sent_at: Option<i64>,
}

/// What one attempt at a claimed delivery came to, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    /// The delivery.
    pub delivery_id: i64,
    /// When the attempt started (ms).
    pub started_at: i64,
    /// Its outcome.
    pub outcome: Outcome,
    /// How long it took (ms).
    pub latency_ms: i64,
    /// When its request left, at its send-time rate slot (ms, the store's
    /// clock); `None` if it never reached the point of sending.
    pub sent_at: Option<i64>,
}

/// A connection's health as an attempt showed it: the refusal that marks
/// it, or `None` when it worked.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    /// The connection.
    pub connection: String,
    /// The refusal, `None` when healthy.
    pub error: Option<String>,
}
