//! Accepted events: their raw payload (as Confluence sent it), the enriched
//! event plugins saw, and where dispatch stands.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, StoreResult, from_json, now_ms};
use crate::model::Event;

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Where a dispatch round's events come from: the oldest due ones, read in
/// id order from the pending index (see schema_3.sql).
pub(super) const DUE_EVENTS: &str = "FROM events INDEXED BY events_pending_order WHERE status = 'pending' AND next_try_at <= ?1 ORDER BY id LIMIT ?2";

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

impl Store {
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

    /// Pending events that are due, oldest first: what the dispatcher works on.
    pub fn due_events(&self, limit: usize) -> StoreResult<Vec<EventRecord>> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} {DUE_EVENTS}"))?;
            stmt.query_map(params![now_ms(), limit as i64], row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(decode).collect()
    }

    /// Leaves an event pending, to be tried again at `next_try_at`, and
    /// records why (a transient enrichment failure).
    pub fn defer_event(&self, id: i64, error: &str, next_try_at: i64) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE events SET attempts = attempts + 1, error = ?2, next_try_at = ?3 WHERE id = ?1",
                params![id, error, next_try_at],
            )
        })?;
        Ok(())
    }

    /// Ends an event without deliveries: `Ignored` or `Failed`, with a reason.
    pub fn close_event(
        &self,
        id: i64,
        status: EventStatus,
        error: Option<&str>,
    ) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE events SET status = ?2, error = ?3, attempts = attempts + 1, dispatched_at = ?4 WHERE id = ?1",
                params![id, status.as_str(), error, now_ms()],
            )
        })?;
        Ok(())
    }

    /// How many events are in each status, for `/metrics` and `/healthz`.
    pub fn event_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT status, COUNT(*) FROM events GROUP BY status ORDER BY status")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }
}
