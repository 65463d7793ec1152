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

use serde::Serialize;

use crate::model::Event;

/// Events of one binding and space, handed to the plugin together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    /// The space every event is in.
    pub space_key: String,
    /// Its name, when an event knew it.
    pub space_name: Option<String>,
    /// The events, oldest first (at least two).
    pub events: Vec<Event>,
    /// A Confluence search that lists what the events are about.
    pub search_url: Option<String>,
}
