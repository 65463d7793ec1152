//! `/console/live`: tells open console pages that something new happened,
//! as Server-Sent Events, so lists refresh without a reload.
//!
//! Each second it reads the store's newest ids (`Store::latest_ids`: the
//! newest event, delivery and attempt and how many are pending) and sends
//! `event: change` with them as JSON whenever they differ from what it last
//! sent (and once at connect); `console.js` then fetches its page again and
//! swaps the parts marked `data-live`. Between polls it holds nothing of the
//! store, and a keep-alive comment goes out when nothing else does.
//!
//! It stops when the browser goes away (axum drops the stream) and when
//! the session ends (sign-out, expiry), which it checks every
//! [`SESSION_CHECK`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use tokio::time::{Instant, MissedTickBehavior};

use super::Viewer;
use crate::server::AppState;
use crate::server::session::Via;
use crate::store::LatestIds;

/// How often the store is asked what is new.
const POLL: Duration = Duration::from_secs(1);

/// How often the stream checks that its session still exists.
const SESSION_CHECK: Duration = Duration::from_secs(15);

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/live", get(live))
}

/// Where one stream stands.
struct Watch {
    state: Arc<AppState>,
    /// The session to keep checking (`None`: not a session; not reached,
    /// the console only has session viewers).
    session: Option<String>,
    ticks: tokio::time::Interval,
    last_sent: Option<LatestIds>,
    session_checked: Instant,
}

async fn live(
    viewer: Viewer,
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let session = match viewer.caller.via {
        Via::Session { id_hash, .. } => Some(id_hash),
        Via::Token => None,
    };
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watch = Watch {
        state,
        session,
        ticks,
        last_sent: None,
        session_checked: Instant::now(),
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        loop {
            w.ticks.tick().await;
            if w.session_checked.elapsed() >= SESSION_CHECK {
                w.session_checked = Instant::now();
                if let Some(hash) = &w.session {
                    match w.state.store.session(hash).await {
                        Ok(Some(_)) => {}
                        Ok(None) => return None, // signed out or expired
                        Err(e) => tracing::warn!(error = %e, "console live: cannot read sessions"),
                    }
                }
            }
            match w.state.store.latest_ids().await {
                Ok(ids) if w.last_sent != Some(ids) => {
                    w.last_sent = Some(ids);
                    let event = Event::default()
                        .event("change")
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
