//! `/console/bindings/{id}/preview?event_id=N`: what a binding would do
//! with a stored event, drawn as it would land (a Slack message, a Teams
//! card, a Confluence page), each action with its verdict, and the exact
//! request behind a closed "Show request" toggle.
//!
//! The bindings page's Preview button loads this page's `#preview-body`
//! into the binding's row (`assets/preview.js`); opened on its own it is an
//! ordinary page. The plugin runs in the real sandbox through
//! [`crate::preview::preview`], as the API's `POST /api/bindings/{id}/preview`
//! does, with the same checks: a space admin previews only bindings of
//! their spaces, on events of their spaces.
//!
//! What it must never do: write or send anything (a preview is a GET), or
//! show an action or request other than through [`super::render`].

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::render;
use super::{PageError, PageResult, Section, Viewer, page};
use crate::preview::{Preview, PreviewAction};
use crate::server::AppState;
use crate::store::Scope;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/bindings/{id}/preview", get(show))
}

#[derive(Debug, Default, Deserialize)]
struct Which {
    event_id: Option<String>,
}

async fn show(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<i64>,
    query: Result<Query<Which>, QueryRejection>,
) -> PageResult {
    let Query(which) = query.map_err(|e| PageError::Invalid(e.body_text()))?;
    let event_id = match which.event_id.as_deref().map(str::trim) {
        Some(e) => match e.parse::<i64>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(PageError::Invalid(format!(
                    "`event_id={e}` is not an event id (a positive number)."
                )));
            }
        },
        None => {
            return Err(PageError::Invalid(
                "Pick a stored event to preview the binding on (`event_id`).".into(),
            ));
        }
    };
    let binding = state
        .store
        .binding(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no binding {id}.")))?;
    match &binding.scope {
        Scope::Space(key) => viewer.require_space(key)?,
        Scope::Global | Scope::Page(_) => viewer.require_admin("global and page bindings")?,
    }
    if !viewer.is_admin() {
        let event = state
            .store
            .event(event_id)
            .await?
            .ok_or_else(|| PageError::NotFound(format!("There is no event {event_id}.")))?;
        match event.event.as_ref().and_then(|e| e.content.as_ref()) {
            Some(content) => viewer.require_space(&content.space_key)?,
            None => {
                return Err(PageError::Forbidden(format!(
                    "Event {event_id} is not in a space you administer (its space is known once it is dispatched)."
                )));
            }
        }
    }
    let preview = crate::preview::preview(&state.store, &state.runtime, id, event_id)
        .await
        .map_err(|e| match e {
            crate::ops::AdminError::NotFound(m) => PageError::NotFound(m),
            crate::ops::AdminError::Invalid(m) | crate::ops::AdminError::Conflict(m) => {
                PageError::Invalid(m)
            }
            crate::ops::AdminError::Internal(m) => PageError::Internal(m),
        })?;
    let body = html! {
        div id="preview-body" { (view(&preview)) }
        p { a href="/console/bindings" { "Back to the bindings" } }
    };
    Ok(page(
        &viewer,
        Section::Bindings,
        &format!("Preview of binding {id} on event {event_id}"),
        body,
    ))
}

/// A whole preview: what ran, the notes, then each action drawn.
pub fn view(p: &Preview) -> Markup {
    html! {
        section class="preview" aria-label={ "Preview of binding " (p.binding_id) " on event " (p.event_id) } {
            p class="preview-facts" {
                "Plugin " strong { (p.plugin) } " on event " a href={ "/console/events/" (p.event_id) } { (p.event_id) }
                " · " (p.actions.len()) @if p.actions.len() == 1 { " action" } @else { " actions" }
                " · " (p.fuel_used) " fuel, " (p.elapsed_ms) " ms"
                @if !p.enriched { " · " span class="state state-warn" { "not enriched" } }
                @if !p.would_run { " · " span class="state state-warn" { "dispatch would not run it" } }
            }
            @for note in &p.notes { p class="notice" { (note) } }
            @if let Some(f) = &p.failure {
                p class="alert" role="alert" { "The plugin failed (" code { (f.code) } "): " (f.message) }
            }
            @if p.actions.is_empty() && p.failure.is_none() {
                p class="muted" { "The plugin returned no action for this event (its log may say why)." }
            }
            @for (i, a) in p.actions.iter().enumerate() { (action(p.binding_id, i, a)) }
            @if !p.log.trim().is_empty() {
                details class="raw-request" {
                    summary { "Plugin log" }
                    pre { (p.log) }
                }
            }
        }
    }
}

fn action(binding: i64, index: usize, a: &PreviewAction) -> Markup {
    let accepted = a.verdict == "accepted";
    html! {
        article class="preview-action" {
            p class="preview-verdict" {
                span class={ "state " (if accepted { "state-ok" } else { "state-bad" }) } { (a.verdict) }
                " " code { (a.kind) } " to " code { (a.destination) }
                @if let Some(c) = &a.connection { " through " strong { (c) } }
                @if accepted && a.dry_run { " · " span class="state state-warn" { "dry run: recorded, not sent" } }
                @if let Some(r) = &a.reason { br; span class="muted" { (r) } }
                @if let Some(u) = &a.undeliverable { br; span class="state state-bad" { "cannot be delivered: " } (u) }
            }
            (render::message(&a.action))
            @match &a.request {
                Some(request) => (render::request("Show request", request, Some(&format!("preview-{binding}-request-{index}")))),
                None => (render::request(
                    "Show the plugin's action",
                    &serde_json::to_value(&a.action).unwrap_or_default(),
                    None,
                )),
            }
        }
    }
}
