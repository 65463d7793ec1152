//! Accepted events: their raw payload (as Confluence sent it), the enriched
//! event plugins saw, and where dispatch stands.

use serde::Serialize;

use crate::model::Event;

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Accepted, not yet dispatched (or waiting to retry enrichment).
    Pending,
    /// Bindings ran; deliveries, audit and failures are written.
    Dispatched,
    /// Kept but not dispatched: an event name Pagehook does not know.
    Ignored,
    /// Could not be dispatched for good (e.g. the source's credentials are refused).
    Failed,
}

impl EventStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Dispatched => "dispatched",
            EventStatus::Ignored => "ignored",
            EventStatus::Failed => "failed",
        }
    }

    /// Parses a stored or user-given status name.
    pub fn parse(s: &str) -> Result<EventStatus, String> {
        match s {
            "pending" => Ok(EventStatus::Pending),
            "dispatched" => Ok(EventStatus::Dispatched),
            "ignored" => Ok(EventStatus::Ignored),
            "failed" => Ok(EventStatus::Failed),
            other => Err(format!(
                "unknown event status `{other}` (pending, dispatched, ignored, failed)"
            )),
        }
    }
}

/// An event to store, as ingest received it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Deduplication key: the same event delivered twice has the same key.
    pub key: String,
    /// The Confluence connection it came from.
    pub source: String,
    /// Confluence's event name.
    pub name: String,
    /// The body as received (verified, parsed once, kept verbatim).
    pub payload: String,
    /// Whether it is an event Pagehook dispatches (unknown names are kept and ignored).
    pub dispatchable: bool,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    /// Its id (`pagehook events`, `plugin run --event-id`).
    pub id: i64,
    /// Its deduplication key.
    pub key: String,
    /// Source connection.
    pub source: String,
    /// Confluence's event name.
    pub name: String,
    /// When Pagehook accepted it.
    pub received_at: i64,
    /// The raw webhook body.
    pub payload: serde_json::Value,
    /// The enriched event as plugins saw it, once dispatched.
    pub event: Option<Event>,
    /// Where it stands.
    pub status: EventStatus,
    /// Dispatch attempts so far (enrichment may be retried).
    pub attempts: u32,
    /// The last problem, if any.
    pub error: Option<String>,
    /// When it was dispatched.
    pub dispatched_at: Option<i64>,
}

/// How many events are in one status.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventCount {
    /// The status.
    pub status: EventStatus,
    /// How many.
    pub count: i64,
}
