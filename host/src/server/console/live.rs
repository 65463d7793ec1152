//! `/console/live`: tells open console pages that something new happened,
//! as Server-Sent Events, so lists refresh without a reload.
//!
//! Each second it reads the store's newest ids (`Store::latest_ids`: the
//! newest event, delivery and attempt and how many are pending) and sends
//! `event: change` with them as JSON whenever they differ from what the
//! page last saw; `console.js` then fetches its page again and swaps the
//! parts marked `data-live`. Between polls it holds nothing of the store,
//! and a keep-alive comment goes out when nothing else does.
//!
//! A stream lasts [`LIFETIME`], then ends; the browser's `EventSource`
//! connects again by itself a second later ([`RECONNECT`]), with the id of
//! the last message it got (`Last-Event-ID`: the ids themselves), so it
//! hears of a change at connect only if there was one. A stream must end:
//! `serve` lets open responses finish when it stops, so a stream without
//! end would hold up every shutdown while a console tab is open. Each
//! reconnect also checks the session again (signed out, expired: no more
//! stream). It stops at once when the browser goes away (axum drops it).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use tokio::time::{Instant, MissedTickBehavior};

use super::Viewer;
use crate::server::AppState;
use crate::store::LatestIds;

/// How often the store is asked what is new.
const POLL: Duration = Duration::from_secs(1);

/// How long one stream lasts before the browser connects again.
const LIFETIME: Duration = Duration::from_secs(20);

/// How soon the browser connects again after a stream ends.
const RECONNECT: Duration = Duration::from_secs(1);

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/live", get(live))
}

/// Where one stream stands.
struct Watch {
    state: Arc<AppState>,
    ticks: tokio::time::Interval,
    /// What the page has seen (from `Last-Event-ID` on a reconnect).
    seen: Option<LatestIds>,
    ends: Instant,
}

async fn live(
    _viewer: Viewer,
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_id);
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watch = Watch {
        state,
        ticks,
        seen,
        ends: Instant::now() + LIFETIME,
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        loop {
            w.ticks.tick().await;
            if Instant::now() >= w.ends {
                return None;
            }
            match w.state.store.latest_ids().await {
                Ok(ids) if w.seen != Some(ids) => {
                    w.seen = Some(ids);
                    let event = Event::default()
                        .event("change")
                        .id(event_id(&ids))
                        .retry(RECONNECT)
                        .json_data(ids)
                        .unwrap_or_else(|_| Event::default().event("change"));
                    return Some((Ok(event), w));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "console live: cannot read the newest ids"),
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The ids as a message id: `event.delivery.attempt.pending_events.pending_deliveries`.
fn event_id(ids: &LatestIds) -> String {
    format!(
        "{}.{}.{}.{}.{}",
        ids.event, ids.delivery, ids.attempt, ids.pending_events, ids.pending_deliveries
    )
}

/// Reads a message id back (`None` for anything else).
fn parse_id(text: &str) -> Option<LatestIds> {
    let mut parts = text.split('.').map(|p| p.parse::<i64>().ok());
    let mut next = || parts.next().flatten();
    let ids = LatestIds {
        event: next()?,
        delivery: next()?,
        attempt: next()?,
        pending_events: next()?,
        pending_deliveries: next()?,
    };
    parts.next().is_none().then_some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_carry_the_ids_there_and_back() {
        let ids = LatestIds {
            event: 12,
            delivery: 40,
            attempt: 77,
            pending_events: 0,
            pending_deliveries: 3,
        };
        assert_eq!(event_id(&ids), "12.40.77.0.3");
        assert_eq!(parse_id("12.40.77.0.3"), Some(ids));
        for wrong in ["", "1.2.3.4", "1.2.3.4.5.6", "a.2.3.4.5", "1..3.4.5"] {
            assert_eq!(parse_id(wrong), None, "{wrong}");
        }
    }
}
