//! Digests: a burst of one binding's events, held and handed to its plugin
//! together instead of one call (and one message) per event.
//!
//! When a binding's plugin takes digests (contract 0.3.0, `digests = true`)
//! and the binding has them on (the default), dispatch holds each event it
//! would run for that binding ([`hold`]), durably, beside the event's other
//! results; [`rules`] decides per binding and space when the held events go,
//! and whether as one digest (a burst) or one by one, as they would have
//! without digests. What a digest looks like to a plugin is [`Digest`].
//!
//! What this module must never do: drop, duplicate or reorder an event. A
//! held event is released exactly once, in event order, into one digest or
//! its own call; the rules only decide *when*.

pub mod hold;
pub mod rules;
pub mod search;

use std::collections::HashMap;

use serde::Serialize;

use crate::model::Event;
use crate::store::{DigestSettings, Store, StoreResult};

/// The bursts being collected now, per binding and space (what the console
/// and `pagehook digests` show as "collecting a digest"), by the rules
/// dispatch applies, with each binding's settings.
pub async fn collecting(store: &Store) -> StoreResult<Vec<rules::Collecting>> {
    let now = crate::store::now_ms();
    let rows = store
        .held_events(now - i64::from(DigestSettings::WINDOW_SECS.1) * 1000)
        .await?;
    if rows.iter().all(|r| r.released_at.is_some()) {
        return Ok(vec![]);
    }
    let settings: HashMap<i64, DigestSettings> =
        store.digest_settings().await?.into_iter().collect();
    Ok(rules::plan(
        &rows,
        |b| Some(settings.get(&b).copied().unwrap_or_default()),
        now,
    )
    .collecting)
}

/// Events of one binding and space, handed to the plugin together.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Digest {
    /// The space every event is in.
    pub space_key: String,
    /// Its name, when an event knew it.
    #[serde(default)]
    pub space_name: Option<String>,
    /// The events, oldest first (at least two).
    pub events: Vec<Event>,
    /// A Confluence search that lists what the events are about.
    #[serde(default)]
    pub search_url: Option<String>,
}
