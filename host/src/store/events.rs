//! Accepted events: their raw payload (as Confluence sent it), the enriched
//! event plugins saw, and where dispatch stands; reading them and closing
//! or deferring a claimed one (the same SQL on both backends). Claiming
//! differs per backend (`sqlite/events.rs`, `postgres/events.rs`).

use serde::Serialize;

use super::sql::{Column, FromRow, Row, parsed};
use super::{Claim, Store, StoreResult, now_ms};
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

impl NewEvent {
    /// The status it is stored in: unknown event names are kept, ignored.
    pub(crate) fn status(&self) -> EventStatus {
        if self.dispatchable {
            EventStatus::Pending
        } else {
            EventStatus::Ignored
        }
    }
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

impl Column for EventStatus {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<EventStatus>> {
        parsed(row, column, "event status", EventStatus::parse)
    }
}

impl FromRow for EventRecord {
    const COLUMNS: &'static str = "id, key, source, name, received_at, payload, event, status, attempts, error, dispatched_at";

    fn from_row(r: &dyn Row) -> StoreResult<EventRecord> {
        Ok(EventRecord {
            id: r.get("id")?,
            key: r.get("key")?,
            source: r.get("source")?,
            name: r.get("name")?,
            received_at: r.get("received_at")?,
            payload: r.json("payload", "event payload")?,
            event: r.json_opt("event", "enriched event")?,
            status: r.get("status")?,
            attempts: r.get("attempts")?,
            error: r.get("error")?,
            dispatched_at: r.get("dispatched_at")?,
        })
    }
}

impl Store {
    /// One event.
    pub async fn event(&self, id: i64) -> StoreResult<Option<EventRecord>> {
        self.select_opt("FROM events WHERE id = ?1", vec![id.into()])
            .await
    }

    /// Events, newest first, optionally in one status.
    pub async fn events(
        &self,
        status: Option<EventStatus>,
        limit: usize,
    ) -> StoreResult<Vec<EventRecord>> {
        self.select(
            "FROM events WHERE CAST(?1 AS TEXT) IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2",
            vec![status.map(EventStatus::as_str).into(), limit.into()],
        )
        .await
    }

    /// How many events are in each status.
    pub async fn event_counts(&self) -> StoreResult<Vec<EventCount>> {
        self.query(
            "SELECT status, COUNT(*) AS n FROM events GROUP BY status ORDER BY status",
            vec![],
            |r| {
                Ok(EventCount {
                    status: r.get("status")?,
                    count: r.get("n")?,
                })
            },
        )
        .await
    }

    /// Claims the oldest due events no live claim holds, at most `limit`,
    /// in id order.
    pub async fn claim_events(&self, claim: &Claim, limit: usize) -> StoreResult<Vec<EventRecord>> {
        match &self.backend {
            super::Backend::Sqlite(s) => {
                let claim = claim.clone();
                s.run(move |s| s.claim_events(&claim, limit)).await
            }
            super::Backend::Postgres(p) => p.claim_events(claim, limit).await,
        }
    }

    /// Puts a claimed event back to wait until `next_try_at` (ms); false if
    /// the claim was lost.
    pub async fn defer_event(
        &self,
        claim: &Claim,
        id: i64,
        error: &str,
        next_try_at: i64,
    ) -> StoreResult<bool> {
        let n = self
            .execute(
                "UPDATE events SET attempts = attempts + 1, error = ?2, next_try_at = ?3, claim_token = NULL, claim_until = NULL
                 WHERE id = ?1 AND claim_token = ?4 AND status = 'pending'",
                vec![id.into(), error.into(), next_try_at.into(), claim.token.into()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Closes a claimed event without dispatching it; false if the claim was lost.
    pub async fn close_event(
        &self,
        claim: &Claim,
        id: i64,
        status: EventStatus,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        let n = self
            .execute(
                "UPDATE events SET status = ?2, error = ?3, attempts = attempts + 1, dispatched_at = ?4, claim_token = NULL, claim_until = NULL
                 WHERE id = ?1 AND claim_token = ?5 AND status = 'pending'",
                vec![
                    id.into(),
                    status.as_str().into(),
                    error.into(),
                    now_ms().into(),
                    claim.token.into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }
}
