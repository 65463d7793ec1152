//! Bindings by space: which plugin runs on which events of a space, where
//! it may deliver, with which settings; add one (the settings form is
//! generated from the plugin's manifest: descriptions, defaults, required),
//! preview one on a stored event in the real sandbox, remove one.
//!
//! A space admin sees and adds only bindings of the spaces they
//! administer; the API refuses anything else too (403), so this page only
//! keeps them from being offered.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::binding_form::{add_form, space_field};
use super::{PageResult, Section, Viewer, field, page, when};
use crate::server::AppState;
use crate::store::{Binding, EventQuery, EventStatus, Scope};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/bindings", get(bindings))
}

#[derive(Deserialize)]
struct Filter {
    /// Only this space's bindings.
    space: Option<String>,
    /// The plugin the add form is for.
    plugin: Option<String>,
}

/// Recent events offered for a preview.
const PREVIEW_EVENTS: usize = 20;

async fn bindings(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> PageResult {
    // Space keys in any case: `eng` finds ENG's bindings.
    let space = filter
        .space
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(|s| super::events::canonical_space(&viewer, &s));
    if let Some(space) = &space {
        viewer.require_space(space)?;
    }
    let plugins = state.store.plugins().await?;
    let all = state.store.bindings(None).await?;
    let connections = state.store.connections().await?;
    // What the viewer may see, grouped by scope ("global", "space:ENG", ...).
    let mut groups: BTreeMap<String, Vec<&Binding>> = BTreeMap::new();
    for b in &all {
        let visible = match &b.scope {
            Scope::Space(key) => {
                viewer.principal().may_administer(key)
                    && space.as_ref().is_none_or(|s| s.eq_ignore_ascii_case(key))
            }
            _ => viewer.is_admin() && space.is_none(),
        };
        if visible {
            groups.entry(b.scope.to_string()).or_default().push(b);
        }
    }
    let collecting = super::digests::collecting(&state.store, &viewer).await?;
    let mut previews = BTreeMap::new();
    for scope in groups.keys() {
        let key = scope.strip_prefix("space:").map(str::to_owned);
        let events = state
            .store
            .search_events(&EventQuery {
                space: key,
                spaces: viewer.principal().space_filter(),
                status: Some(EventStatus::Dispatched),
                limit: PREVIEW_EVENTS,
                ..EventQuery::default()
            })
            .await?;
        previews.insert(scope.clone(), events);
    }
    let chosen = filter
        .plugin
        .as_deref()
        .and_then(|name| plugins.iter().find(|p| p.name == name))
        .or(plugins.first());
    let body = html! {
        form class="filters" method="get" action="/console/bindings" {
            (space_field(viewer.principal(), space.as_deref(), "filter-space", "space", false))
            button type="submit" class="secondary" { "Show" }
        }
        @if groups.is_empty() {
            p { "No bindings" @if let Some(s) = &space { " in space " (s) } " yet." }
        }
        @for (scope, list) in &groups {
            section aria-labelledby={ "scope-" (slug(scope)) } {
                h2 id={ "scope-" (slug(scope)) } { (scope_title(scope)) }
                table {
                    thead { tr {
                        th scope="col" { "Id" } th scope="col" { "Plugin" } th scope="col" { "Events" }
                        th scope="col" { "Destinations" } th scope="col" { "Settings" } th scope="col" { "Mode" }
                        th scope="col" { "Since" } th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for b in list {
                            tr id={ "binding-" (b.id) } {
                                th scope="row" { (b.id) }
                                td { a href={ "/console/plugins/" (b.plugin) } { (b.plugin) } }
                                td { @if b.events.is_empty() { "all it subscribes to" } @else { (b.events.join(", ")) } }
                                td { @for d in &b.destinations { code { (d) } " " } }
                                td { @for (k, v) in &b.settings { code { (k) "=" (v) } " " } }
                                td {
                                    @if b.dry_run { span class="state state-warn" { "dry run" } } @else { "live" }
                                    (super::digests::binding_state(collecting.get(&b.id)))
                                }
                                td { (when(b.created_at)) }
                                td class="row-actions" {
                                    (preview_form(b, previews.get(scope).map(Vec::as_slice).unwrap_or_default()))
                                    form class="inline" data-method="DELETE" data-path={ "/api/bindings/" (b.id) } data-then="reload"
                                        data-describe="binding-removed" data-confirm={ "Remove binding " (b.id) " (" (b.plugin) ")?" } {
                                        button type="submit" class="danger" aria-label={ "Remove binding " (b.id) } { "Remove" }
                                    }
                                }
                            }
                            tr {
                                td colspan="8" {
                                    div id={ "preview-" (b.id) } class="preview-slot" hidden aria-live="polite" aria-label={ "Preview of binding " (b.id) } {}
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 id="add" { "Add a binding" }
        @if plugins.is_empty() {
            p { "Install a plugin first." }
        } @else {
            form class="filters" method="get" action="/console/bindings#add" {
                @if let Some(s) = &space { input type="hidden" name="space" value=(s); }
                (field("plugin", "Plugin", None, html! {
                    select id="plugin" name="plugin" data-autosubmit {
                        @for p in &plugins {
                            option value=(p.name) selected[chosen.is_some_and(|c| c.name == p.name)] { (p.name) " " (p.version) }
                        }
                    }
                }))
                button type="submit" class="secondary" { "Choose plugin" }
            }
            @if let Some(p) = chosen { (add_form(&viewer, p, space.as_deref(), &connections)) }
        }
    };
    Ok(page(&viewer, Section::Bindings, "Bindings", body))
}

/// The binding's Preview: a GET form to its preview page, which
/// `preview.js` loads into the row (`#preview-<id>`; see `preview.rs`).
fn preview_form(b: &Binding, events: &[crate::store::EventSummary]) -> Markup {
    let id = format!("preview-event-{}", b.id);
    html! {
        form class="inline" method="get" action={ "/console/bindings/" (b.id) "/preview" }
            data-preview-into={ "preview-" (b.id) } {
            label for=(id) { "Event" }
            " "
            select id=(id) name="event_id" required {
                @if events.is_empty() { option value="" { "no dispatched event yet" } }
                @for e in events {
                    option value=(e.id) {
                        "#" (e.id) " " (e.name)
                        @if let Some(t) = &e.title { " — " (t) }
                    }
                }
            }
            " "
            button type="submit" class="secondary" aria-label={ "Preview binding " (b.id) } { "Preview" }
        }
    }
}

fn scope_title(scope: &str) -> String {
    match scope.split_once(':') {
        Some(("space", key)) => format!("Space {key}"),
        Some(("page", id)) => format!("Page {id} and below"),
        _ => "Every space (global)".into(),
    }
}

fn slug(scope: &str) -> String {
    scope
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
