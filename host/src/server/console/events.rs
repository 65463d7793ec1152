//! `/console/events` and `/console/events/{id}`: what Confluence sent and
//! what Pagehook made of it.
//!
//! The list searches by space, page, kind and status, newest first, a page
//! at a time by id (keyset: `before=<the last id shown>`), so it costs the
//! same with 100 events stored or 100,000. One event's page shows its
//! enriched form, every plugin call that failed, every audit verdict and
//! every delivery, with the exact request of a dry run.
//!
//! A space admin's searches are restricted to their spaces by the store
//! (`EventQuery::spaces`), and asking for another space is refused (403).
//! One event outside their spaces, or not dispatched yet (so in no space),
//! is refused too (403, as the admin API answers it), with nothing of the
//! event but its space. Query values are parsed here, so a wrong one is a
//! 400 page that says what is wrong, never a 500.
//!
//! Also here, for the other list pages: paging and query-string helpers.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::deliveries::{attempts_details, delivery_state, request_block, retry_button};
use super::{PageError, PageResult, Section, Viewer, field, page, when};
use crate::model::EventKind;
use crate::server::AppState;
use crate::store::{EventQuery, EventRecord, EventStatus, EventSummary};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/events", get(list))
        .route("/events/{id}", get(detail))
}

/// Rows on a page unless `limit` says otherwise.
pub(super) const PAGE_SIZE: usize = 50;

/// Most rows `limit` may ask for.
pub(super) const MAX_PAGE_SIZE: usize = 200;

/// Every event status, for the filter.
const EVENT_STATUSES: [EventStatus; 4] = [
    EventStatus::Pending,
    EventStatus::Dispatched,
    EventStatus::Ignored,
    EventStatus::Failed,
];

/// The list's query, as typed: parsed by hand so a wrong value is a 400
/// page with the reason.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    space: Option<String>,
    page: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

async fn list(
    viewer: Viewer,
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> PageResult {
    let p = params(query)?;
    // Space keys in any case: `eng` is ENG.
    let space = given(&p.space).map(|s| canonical_space(&viewer, s));
    let space = space.as_deref();
    if let Some(space) = space {
        viewer.require_space(space)?;
    }
    let content_id = given(&p.page).map(parse_content_id).transpose()?;
    let kind = given(&p.kind).map(parse_kind).transpose()?;
    let status = given(&p.status)
        .map(EventStatus::parse)
        .transpose()
        .map_err(PageError::Invalid)?;
    let paging = Paging::parse(given(&p.before), given(&p.limit))?;
    let rows = state
        .store
        .search_events(&EventQuery {
            space: space.map(str::to_owned),
            spaces: viewer.principal().space_filter(),
            content_id: content_id.clone(),
            name: kind.clone(),
            status,
            before: paging.before,
            limit: paging.limit,
        })
        .await?;
    let collecting = super::digests::collecting(&state.store, &viewer).await?;

    let mut filters = Vec::new();
    push(&mut filters, "space", space);
    push(&mut filters, "page", content_id.as_deref());
    push(&mut filters, "kind", kind.as_deref());
    push(&mut filters, "status", status.map(EventStatus::as_str));
    paging.push_limit(&mut filters);

    let body = html! {
        form class="filters" method="get" action="/console/events" role="search" aria-label="Search events" {
            (field("space", "Space", None, html! {
                @if let Some(spaces) = viewer.principal().space_filter() {
                    select id="space" name="space" {
                        option value="" { "All my spaces" }
                        @for s in &spaces {
                            option value=(s) selected[space == Some(s.as_str())] { (s) }
                        }
                    }
                } @else {
                    input id="space" name="space" type="text" size="10" value=[space] placeholder="ENG" data-upper;
                }
            }))
            (field("page", "Page", None, html! {
                input id="page" name="page" type="text" inputmode="numeric" size="12" value=[content_id.as_deref()] placeholder="content id";
            }))
            (field("kind", "Kind", None, html! {
                select id="kind" name="kind" {
                    option value="" { "Any" }
                    @for name in confluence_names() {
                        option value=(name) selected[kind.as_deref() == Some(name.as_str())] { (name) }
                    }
                    @if let Some(k) = kind.as_deref().filter(|k| !confluence_names().iter().any(|n| n == k)) {
                        option value=(k) selected { (k) }
                    }
                }
            }))
            (field("status", "Status", None, html! {
                select id="status" name="status" {
                    option value="" { "Any" }
                    @for s in EVENT_STATUSES {
                        option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                    }
                }
            }))
            @if paging.limit != PAGE_SIZE {
                input type="hidden" name="limit" value=(paging.limit);
            }
            button type="submit" { "Search" }
        }
        div id="events-live" data-live {
            (super::digests::notices(&collecting))
            (caption(rows.len(), ("event", "events"), paging.before))
            @if rows.is_empty() {
                p class="muted" { "No events match." }
            } @else {
                (events_table(&rows))
            }
            (pager("/console/events", &filters, &paging, rows.len(), rows.last().map(|e| e.id), "events"))
        }
    };
    Ok(page(&viewer, Section::Events, "Events", body))
}

fn events_table(rows: &[EventSummary]) -> Markup {
    html! {
        table id="events-table" {
            thead {
                tr {
                    th scope="col" class="num" { "Id" }
                    th scope="col" { "Received" }
                    th scope="col" { "Kind" }
                    th scope="col" { "Space" }
                    th scope="col" { "Page" }
                    th scope="col" { "Status" }
                    th scope="col" class="num" { "Attempts" }
                    th scope="col" { "Error" }
                }
            }
            tbody {
                @for e in rows {
                    tr {
                        td class="num" { a href={ "/console/events/" (e.id) } { (e.id) } }
                        td { (when(e.received_at)) }
                        td { (e.name) }
                        td {
                            @if let Some(space) = &e.space_key {
                                a href={ "/console/events" (query_string(&[("space", space.clone())])) } { (space) }
                            } @else { span class="muted" { "—" } }
                        }
                        td {
                            @if let Some(title) = &e.title { (title) " " }
                            @if let Some(id) = &e.content_id {
                                a class="muted" href={ "/console/events" (query_string(&[("page", id.clone())])) } { "(" (id) ")" }
                            } @else if e.title.is_none() { span class="muted" { "—" } }
                        }
                        td { span class={ "state " (event_state(e.status)) } { (e.status.as_str()) } }
                        td class="num" { (e.attempts) }
                        td { @if let Some(err) = &e.error { (err) } }
                    }
                }
            }
        }
    }
}

async fn detail(
    viewer: Viewer,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> PageResult {
    let id: i64 = id
        .parse()
        .map_err(|_| PageError::Invalid(format!("`{id}` is not an event id (a number).")))?;
    let store = &state.store;
    let event = store
        .event(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no event {id}.")))?;
    let space = space_of(&event);
    match space {
        Some(space) => viewer.require_space(space)?,
        None if !viewer.is_admin() => {
            return Err(PageError::Forbidden(format!(
                "Event {id} is not in a space you administer (its space is known once it is dispatched)."
            )));
        }
        None => {}
    }
    let failures = store.event_failures(id).await?;
    let audit = store.audit(Some(id), 1000).await?;
    let deliveries = store.event_deliveries(id).await?;
    let held = store.event_held(id).await?;
    let mut attempts = Vec::with_capacity(deliveries.len());
    for d in &deliveries {
        attempts.push(if d.attempts > 0 {
            store.attempts(d.id).await?
        } else {
            Vec::new()
        });
    }
    let content = event.event.as_ref().and_then(|e| e.content.as_ref());
    let title = format!("Event {id}");

    let body = html! {
        dl class="facts" {
            dt { "Kind" } dd { (event.name) }
            dt { "Source" } dd { (event.source) }
            dt { "Received" } dd { (when(event.received_at)) }
            dt { "Status" } dd { span class={ "state " (event_state(event.status)) } { (event.status.as_str()) } }
            dt { "Dispatch attempts" } dd { (event.attempts) }
            @if let Some(at) = event.dispatched_at {
                dt { "Dispatched" } dd { (when(at)) }
            }
            @if let Some(err) = &event.error {
                dt { "Error" } dd { (err) }
            }
            @if let Some(space) = space {
                dt { "Space" } dd { a href={ "/console/events" (query_string(&[("space", space.to_owned())])) } { (space) } }
            }
            @if let Some(c) = content {
                dt { "Content" }
                dd {
                    (c.content_type) " "
                    @if is_web_url(&c.url) {
                        a href=(c.url) { (c.title) }
                    } @else { (c.title) }
                    " "
                    a class="muted" href={ "/console/events" (query_string(&[("page", c.id.to_string())])) } { "(" (c.id) ")" }
                }
            }
            @if let Some(actor) = event.event.as_ref().and_then(|e| e.actor.as_ref()) {
                dt { "By" }
                dd { (actor.display_name.as_deref().or(actor.username.as_deref()).unwrap_or(&actor.key)) }
            }
            dt { "Deduplication key" } dd { code { (event.key) } }
        }

        (super::digests::held(&held, id))

        h2 { "Enriched event" }
        @if let Some(e) = &event.event {
            pre id="enriched-event" { (pretty(e)) }
        } @else {
            p class="muted" { "Not enriched yet: the event has not been dispatched." }
        }
        @if viewer.is_admin() {
            h2 { "Webhook as received" }
            pre id="raw-payload" { (pretty(&event.payload)) }
        }

        h2 { "Plugin calls that failed" }
        @if failures.is_empty() {
            p class="muted" { "None." }
        } @else {
            table id="event-failures" {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Plugin" } th scope="col" { "Binding" }
                    th scope="col" { "Code" } th scope="col" { "Message" } th scope="col" { "Plugin log" }
                } }
                tbody {
                    @for f in &failures {
                        tr {
                            td { (when(f.at)) }
                            td { a href={ "/console/plugins/" (f.plugin) } { (f.plugin) } }
                            td class="num" { (f.binding_id) }
                            td { code { (f.code) } }
                            td { (f.message) }
                            td { @if !f.log.is_empty() { pre { (f.log) } } }
                        }
                    }
                }
            }
        }

        h2 { "Audit verdicts" }
        @if audit.is_empty() {
            p class="muted" { "No plugin asked for anything." }
        } @else {
            table id="event-audit" {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Plugin" } th scope="col" { "Action" }
                    th scope="col" { "Destination" } th scope="col" { "Verdict" } th scope="col" { "Reason" }
                } }
                tbody {
                    @for a in &audit {
                        tr {
                            td { (when(a.at)) }
                            td { a href={ "/console/plugins/" (a.plugin) } { (a.plugin) } }
                            td { (a.kind) }
                            td { code { (a.destination) } }
                            td {
                                span class={ "state " (if a.verdict == "accepted" { "state-ok" } else { "state-bad" }) } { (a.verdict) }
                            }
                            td { @if let Some(r) = &a.reason { (r) } }
                        }
                    }
                }
            }
        }

        h2 { "Deliveries" }
        div id="event-deliveries" data-live {
            @if deliveries.is_empty() {
                p class="muted" { "No deliveries." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" class="num" { "Id" } th scope="col" { "Plugin" } th scope="col" { "Destination" }
                        th scope="col" { "Status" } th scope="col" class="num" { "Attempts" } th scope="col" { "Result" }
                        th scope="col" { "Last error" } th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for (d, tries) in deliveries.iter().zip(&attempts) {
                            tr {
                                td class="num" { (d.id) }
                                td { (d.plugin) }
                                td { code { (d.destination) } }
                                td { span class={ "state " (delivery_state(d.status)) } { (d.status.as_str()) } }
                                td class="num" { (d.attempts) }
                                td { (request_block(d)) }
                                td { @if let Some(e) = &d.last_error { (e) } }
                                td class="row-actions" {
                                    (retry_button(d))
                                    (attempts_details(tries))
                                }
                            }
                        }
                    }
                }
            }
        }
        p { a href={ "/console/deliveries" (query_string(&[("event", id.to_string())])) } { "These deliveries on the Deliveries page" } }
    };
    Ok(page(&viewer, Section::Events, &title, body))
}

/// A space key as typed, in the case the viewer's spaces spell it (a
/// space admin's), else in capitals as Confluence writes global space
/// keys; a personal space (`~jdoe`) as typed.
pub(super) fn canonical_space(viewer: &Viewer, typed: &str) -> String {
    if let Some(spaces) = viewer.principal().space_filter()
        && let Some(key) = spaces.iter().find(|k| k.eq_ignore_ascii_case(typed))
    {
        return key.clone();
    }
    if typed.starts_with('~') {
        typed.to_owned()
    } else {
        typed.to_ascii_uppercase()
    }
}

/// The space an event belongs to, once enriched.
fn space_of(e: &EventRecord) -> Option<&str> {
    e.event
        .as_ref()
        .and_then(|e| e.content.as_ref())
        .map(|c| c.space_key.as_str())
        .filter(|s| !s.is_empty())
}

/// The Confluence event names Pagehook knows (`page_created`, ...).
fn confluence_names() -> Vec<String> {
    EventKind::ALL
        .into_iter()
        .filter(|k| *k != EventKind::Other)
        .map(|k| k.name().replace('-', "_"))
        .collect()
}

/// A Confluence event name as typed: known or not (ignored events keep
/// theirs), but made of lowercase letters, digits and `_`.
fn parse_kind(s: &str) -> Result<String, PageError> {
    let ok = s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(PageError::Invalid(format!(
            "`{s}` is not a Confluence event name (like page_created)."
        )))
    }
}

/// A Confluence content id: a number.
fn parse_content_id(s: &str) -> Result<String, PageError> {
    match s.parse::<u64>() {
        Ok(n) => Ok(n.to_string()),
        Err(_) => Err(PageError::Invalid(format!(
            "`{s}` is not a page id: give the page's Confluence content id (a number)."
        ))),
    }
}

/// Only http(s) links are rendered as links.
fn is_web_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// Indented JSON.
fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The CSS state class of an event status (the word is always shown too).
pub(super) fn event_state(s: EventStatus) -> &'static str {
    match s {
        EventStatus::Dispatched => "state-ok",
        EventStatus::Pending => "state-warn",
        EventStatus::Ignored => "muted",
        EventStatus::Failed => "state-bad",
    }
}

// --- paging and queries, shared by the list pages ---

/// A list query's parameters, or a 400 page saying why not.
pub(super) fn params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, PageError> {
    query
        .map(|Query(p)| p)
        .map_err(|e| PageError::Invalid(format!("The address's query is wrong: {}", e.body_text())))
}

/// A filter's value, or `None` when it is absent or blank (a GET form
/// sends its empty fields too).
pub(super) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Adds `name=value` to a link's query when there is a value.
pub(super) fn push(
    pairs: &mut Vec<(&'static str, String)>,
    name: &'static str,
    value: Option<&str>,
) {
    if let Some(v) = value {
        pairs.push((name, v.to_owned()));
    }
}

/// Where a page of a list starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Paging {
    /// Only rows older than this id.
    pub before: Option<i64>,
    pub limit: usize,
}

impl Paging {
    /// Parses `before` (a positive id) and `limit` (1 to [`MAX_PAGE_SIZE`]).
    pub fn parse(before: Option<&str>, limit: Option<&str>) -> Result<Paging, PageError> {
        let before = before
            .map(|b| match b.parse::<i64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(PageError::Invalid(format!(
                    "`before={b}` is not a row id: it must be a positive number (the \"Older\" link sets it)."
                ))),
            })
            .transpose()?;
        let limit = limit
            .map(|l| match l.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
                _ => Err(PageError::Invalid(format!(
                    "`limit={l}` is not a page size: it must be a number from 1 to {MAX_PAGE_SIZE}."
                ))),
            })
            .transpose()?
            .unwrap_or(PAGE_SIZE);
        Ok(Paging { before, limit })
    }

    /// Keeps a page size that is not the default in the pager's links.
    pub fn push_limit(&self, pairs: &mut Vec<(&'static str, String)>) {
        if self.limit != PAGE_SIZE {
            pairs.push(("limit", self.limit.to_string()));
        }
    }
}

/// "50 events, newest first" (and where the page starts); `noun` is the
/// singular and the plural.
pub(super) fn caption(shown: usize, noun: (&str, &str), before: Option<i64>) -> Markup {
    let (one, many) = noun;
    html! {
        p class="muted" {
            (shown) " " (if shown == 1 { one } else { many }) ", newest first"
            @if let Some(b) = before { ", older than " (one) " " (b) }
            "."
        }
    }
}

/// Links to the newest page and to the next older one (when this page is
/// full, so there may be more).
pub(super) fn pager(
    path: &str,
    filters: &[(&'static str, String)],
    paging: &Paging,
    shown: usize,
    last_id: Option<i64>,
    noun: &str,
) -> Markup {
    let older = last_id.filter(|_| shown >= paging.limit).map(|last| {
        let mut pairs = filters.to_vec();
        pairs.push(("before", last.to_string()));
        format!("{path}{}", query_string(&pairs))
    });
    let newest = format!("{path}{}", query_string(filters));
    if paging.before.is_none() && older.is_none() {
        return html! {};
    }
    html! {
        nav class="pager" aria-label={ "Pages of " (noun) } {
            @if paging.before.is_some() {
                a href=(newest) { "Newest" }
            }
            @if let Some(older) = older {
                a href=(older) rel="next" { "Older" }
            }
        }
    }
}

/// `?a=1&b=x%20y` of the pairs (empty when there are none).
pub(super) fn query_string(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_encode_what_a_url_cannot_carry() {
        assert_eq!(query_string(&[]), "");
        assert_eq!(
            query_string(&[
                ("destination", "slack:acme/#eng".into()),
                ("before", "7".into())
            ]),
            "?destination=slack%3Aacme%2F%23eng&before=7"
        );
        assert_eq!(query_string(&[("a", "x y&<".into())]), "?a=x%20y%26%3C");
    }

    #[test]
    fn paging_refuses_what_is_not_a_row_id_or_page_size() {
        assert_eq!(
            Paging::parse(None, None).unwrap(),
            Paging {
                before: None,
                limit: PAGE_SIZE
            }
        );
        assert_eq!(
            Paging::parse(Some("9"), Some("200")).unwrap().before,
            Some(9)
        );
        for (before, limit) in [
            (Some("abc"), None),
            (Some("-1"), None),
            (Some("0"), None),
            (None, Some("0")),
            (None, Some("201")),
            (None, Some("x")),
        ] {
            assert!(
                matches!(Paging::parse(before, limit), Err(PageError::Invalid(_))),
                "{before:?} {limit:?}"
            );
        }
    }

    #[test]
    fn kinds_are_confluence_names() {
        assert!(confluence_names().contains(&"page_created".to_owned()));
        assert!(confluence_names().contains(&"label_added".to_owned()));
        assert!(!confluence_names().contains(&"other".to_owned()));
        assert!(parse_kind("space_created").is_ok());
        assert!(parse_kind("page-created").is_err());
        assert!(parse_kind("<script>").is_err());
        assert!(parse_content_id("12").is_ok());
        assert!(parse_content_id("12a").is_err());
    }
}
