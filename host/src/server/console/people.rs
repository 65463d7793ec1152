//! `/console/people`: who is who across Slack and Confluence. Which
//! Confluence connection each Slack workspace's chat uses (and choosing
//! one), and the links Slack users made to their Confluence users with
//! `/confluence link`, each with how and when it was made, a page of
//! [`PAGE_SIZE`] at a time and searchable by who; an admin can remove one.
//!
//! Only the Pagehook admin sees it: links say who people are across
//! systems. Every change goes through the admin API (`PATCH
//! /api/connections/{name}`, `DELETE /api/links/...`) and so into the
//! change log. What it must never show: a token or a credential (links hold
//! none).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::events::{given, params, query_string};
use super::{PageError, PageResult, Section, Viewer, api_form, field, page, when};
use crate::enrich::chat_confluence::chat_confluence;
use crate::server::AppState;
use crate::store::{ConnectionKind, ConnectionRecord, UserLink};

/// Links shown per page (10,000 links on one page are 6 MB of HTML).
const PAGE_SIZE: usize = 100;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/people", get(people))
}

#[derive(Debug, Default, Deserialize)]
struct PeopleParams {
    /// Part of a Slack user id, or of a Confluence username, display name or key.
    q: Option<String>,
    /// Which page of links, from 1.
    page: Option<String>,
}

async fn people(
    viewer: Viewer,
    State(state): State<Arc<AppState>>,
    query: Result<Query<PeopleParams>, QueryRejection>,
) -> PageResult {
    viewer.require_admin("people's links")?;
    let p = params(query)?;
    let q = given(&p.q);
    let number = match given(&p.page) {
        None => 1,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(PageError::Invalid(format!(
                    "`page={n}` is not a page number: it must be 1 or more."
                )));
            }
        },
    };
    let connections = state.store.connections().await?;
    let all = state.store.user_links().await?;
    let total = all.len();
    let matching: Vec<UserLink> = match q {
        Some(q) => all.into_iter().filter(|l| matches(l, q)).collect(),
        None => all,
    };
    let found = matching.len();
    let links: Vec<UserLink> = matching
        .into_iter()
        .skip((number - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    let slack: Vec<&ConnectionRecord> = connections
        .iter()
        .filter(|c| c.kind == ConnectionKind::Slack)
        .collect();
    let confluence: Vec<&str> = connections
        .iter()
        .filter(|c| c.kind == ConnectionKind::Confluence)
        .map(|c| c.name.as_str())
        .collect();
    let body = html! {
        p class="muted" { "A Slack user who types " code { "/confluence link" } " and signs in to Confluence is linked to that Confluence user: link previews and searches in Slack show them what that user may see, and their Confluence notifications reach them in Slack. A link counts before any email match, and it is the only way that works where Confluence hides emails." }
        h2 id="workspaces" { "Which Confluence each Slack workspace uses" }
        @if slack.is_empty() {
            p class="muted" { "No Slack connection yet (Connections → Connect Slack)." }
        } @else {
            table id="workspaces-table" {
                thead { tr {
                    th scope="col" { "Slack connection" } th scope="col" { "Chat uses" } th scope="col" { "Change" }
                } }
                tbody {
                    @for s in &slack {
                        tr {
                            th scope="row" { (s.name) }
                            td { (uses(s, &connections)) }
                            td { (choose(s, &confluence)) }
                        }
                    }
                }
            }
        }
        h2 id="links" { "Links" }
        @if total == 0 {
            p class="muted" { "Nobody has linked themselves yet." }
        } @else {
            form class="filters" method="get" action="/console/people" role="search" aria-label="Search links" {
                (field("q", "Who", Some("Part of a Slack user id, or of a Confluence username, name or user key."), html! {
                    input id="q" name="q" type="search" value=[q] aria-describedby="q-help";
                }))
                button type="submit" { "Search" }
            }
            p class="muted" {
                @if found == 0 {
                    "No link matches."
                } @else {
                    "Links " ((number - 1) * PAGE_SIZE + 1) "–" ((number - 1) * PAGE_SIZE + links.len())
                    " of " (found)
                    @if q.is_some() { " matching (" (total) " in all)" }
                    ", by Slack workspace and user."
                }
            }
            @if !links.is_empty() {
                (links_table(&links, &connections, found))
            }
            (pager(q, number, found))
        }
    };
    Ok(page(&viewer, Section::People, "People", body))
}

/// Which Confluence a Slack connection's chat uses, or why none.
fn uses(s: &ConnectionRecord, all: &[ConnectionRecord]) -> Markup {
    html! {
        @match chat_confluence(s, all) {
            Ok(c) => {
                span class="state state-ok" { (c.name) }
                @if s.confluence.is_none() { " " span class="muted" { "(the only one with a token)" } }
            }
            Err(why) => {
                @if why.needs_admin() {
                    span class="state state-bad" { "choose one" }
                } @else {
                    span class="state state-warn" { "none yet" }
                }
                " " span { (why.to_string()) }
            }
        }
    }
}

/// The form that names the Confluence a Slack connection's chat uses.
fn choose(s: &ConnectionRecord, confluence: &[&str]) -> Markup {
    let id = format!("confluence-of-{}", s.name);
    api_form(
        "PATCH",
        &format!("/api/connections/{}", s.name),
        "reload",
        "inline",
        html! {
            (field(&id, &format!("Confluence for {}", s.name), None, html! {
                select id=(id) name="confluence" required {
                    option value="" selected[s.confluence.is_none()] { "the only one with a token" }
                    @for c in confluence {
                        option value=(c) selected[s.confluence.as_deref() == Some(*c)] { (c) }
                    }
                }
            }))
            button type="submit" class="secondary" aria-label={ "Use this Confluence for " (s.name) } { "Use" }
        },
    )
}

/// Whether a link is someone `q` names: part of their Slack user id, or of
/// their Confluence username, display name or user key (any case).
fn matches(l: &UserLink, q: &str) -> bool {
    let q = q.to_lowercase();
    [
        Some(&l.slack_user),
        l.confluence_username.as_ref(),
        l.confluence_display_name.as_ref(),
        Some(&l.confluence_user_key),
    ]
    .into_iter()
    .flatten()
    .any(|v| v.to_lowercase().contains(&q))
}

/// Links to the previous and next page of links.
fn pager(q: Option<&str>, number: usize, found: usize) -> Markup {
    let link = |n: usize| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(q) = q {
            pairs.push(("q", q.to_owned()));
        }
        if n > 1 {
            pairs.push(("page", n.to_string()));
        }
        format!("/console/people{}", query_string(&pairs))
    };
    let more = found > number * PAGE_SIZE;
    html! {
        @if number > 1 || more {
            nav class="pager" aria-label="Pages of links" {
                @if number > 1 { a href=(link(number - 1)) { "Previous" } " " }
                @if more { a href=(link(number + 1)) { "Next" } }
            }
        }
    }
}

fn links_table(links: &[UserLink], all: &[ConnectionRecord], found: usize) -> Markup {
    html! {
        table id="links-table" {
            caption class="muted" { (found) " linked " @if found == 1 { "person" } @else { "people" } }
            thead { tr {
                th scope="col" { "Slack user" } th scope="col" { "Slack workspace" }
                th scope="col" { "Confluence user" } th scope="col" { "Confluence" }
                th scope="col" { "How" } th scope="col" { "Actions" }
            } }
            tbody {
                @for l in links {
                    tr {
                        th scope="row" { code { (l.slack_user) } }
                        td { (l.slack_connection) " " span class="muted" { "(" (l.slack_team) ")" } }
                        td { (l.confluence_label()) }
                        td {
                            (l.confluence_connection)
                            @if let Some(note) = unused(l, all) { " " span class="state state-warn" { (note) } }
                        }
                        td { (l.method.as_str()) ", " (when(l.linked_at)) }
                        td class="row-actions" {
                            form class="inline" data-method="DELETE"
                                data-path={ "/api/links/" (l.slack_connection) "/" (l.slack_user) } data-then="reload"
                                data-confirm={ "Remove the link of Slack user " (l.slack_user) " to " (l.confluence_label()) "? Their chat lookups fall back to their email." } {
                                button type="submit" class="danger" aria-label={ "Remove the link of " (l.slack_user) } { "Remove" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Why a link does not count now, if it does not: its Slack connection is
/// gone, or its workspace's chat uses another Confluence.
fn unused(l: &UserLink, all: &[ConnectionRecord]) -> Option<String> {
    let Some(slack) = all
        .iter()
        .find(|c| c.name == l.slack_connection && c.kind == ConnectionKind::Slack)
    else {
        return Some("its Slack connection is gone".into());
    };
    match chat_confluence(slack, all) {
        Ok(c) if c.name == l.confluence_connection => None,
        Ok(c) => Some(format!("not used: {} uses {}", slack.name, c.name)),
        Err(_) => Some(format!("not used: {} has no Confluence to use", slack.name)),
    }
}
