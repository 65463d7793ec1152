//! Digests in the console: the bursts being collected ("collecting a
//! digest", on the events and bindings pages) and where one event was held
//! (its page). Reads only; the settings change through
//! `PUT /api/bindings/{id}/digest` like every console change. Shows a
//! viewer only the bindings of spaces they administer.

use std::collections::HashMap;

use maud::{Markup, html};

use super::{PageError, Viewer, when};
use crate::digest::rules::Collecting;
use crate::store::{HeldEvent, Scope, Store};

/// The bursts the viewer's bindings are collecting, by binding.
pub(super) async fn collecting(
    store: &Store,
    viewer: &Viewer,
) -> Result<HashMap<i64, Vec<Collecting>>, PageError> {
    let bursts = crate::digest::collecting(store).await?;
    if bursts.is_empty() {
        return Ok(HashMap::new());
    }
    let visible: Vec<i64> = store
        .bindings(None)
        .await?
        .into_iter()
        .filter(|b| match &b.scope {
            Scope::Space(key) => viewer.principal().may_administer(key),
            _ => viewer.is_admin(),
        })
        .map(|b| b.id)
        .collect();
    let mut by_binding: HashMap<i64, Vec<Collecting>> = HashMap::new();
    for c in bursts
        .into_iter()
        .filter(|c| visible.contains(&c.binding_id))
    {
        by_binding.entry(c.binding_id).or_default().push(c);
    }
    Ok(by_binding)
}

/// "Collecting a digest" notices, one per burst (nothing when none).
pub(super) fn notices(collecting: &HashMap<i64, Vec<Collecting>>) -> Markup {
    let mut all: Vec<&Collecting> = collecting.values().flatten().collect();
    all.sort_by_key(|c| (c.binding_id, c.space_key.clone()));
    html! {
        @if !all.is_empty() {
            ul id="digests-collecting" class="notice" aria-label="Digests being collected" {
                @for c in all {
                    li {
                        span class="state state-warn" { "collecting a digest" } " "
                        "binding " a href={ "/console/bindings#binding-" (c.binding_id) } { (c.binding_id) }
                        ", space " (c.space_key) ": " (c.events) " events held since " (when(c.since))
                        "; posted at " (when(c.due_at)) " unless more come."
                    }
                }
            }
        }
    }
}

/// The state of a binding's row: "collecting a digest (N events)".
pub(super) fn binding_state(collecting: Option<&Vec<Collecting>>) -> Markup {
    html! {
        @if let Some(bursts) = collecting {
            @for c in bursts {
                br;
                span class="state state-warn" { "collecting a digest" }
                " " (c.events) " events of " (c.space_key)
            }
        }
    }
}

/// Where an event was held, for its page.
pub(super) fn held(rows: &[HeldEvent], event_id: i64) -> Markup {
    html! {
        @if !rows.is_empty() {
            h2 { "Digests" }
            ul id="event-held" {
                @for h in rows {
                    li {
                        "Held for binding " a href={ "/console/bindings#binding-" (h.binding_id) } { (h.binding_id) }
                        " (space " (h.space_key) ") at " (when(h.held_at)) ": "
                        @match (h.released_at, h.released_with) {
                            (None, _) => { span class="state state-warn" { "collecting a digest" } }
                            (Some(at), Some(with)) if with == event_id => {
                                "released " (when(at)) ", run on its own or as the last event of a digest (its deliveries are below)."
                            }
                            (Some(at), Some(with)) => {
                                "released " (when(at)) " in a digest, posted with event "
                                a href={ "/console/events/" (with) } { (with) } "."
                            }
                            (Some(at), None) => { "released " (when(at)) "." }
                        }
                    }
                }
            }
        }
    }
}
