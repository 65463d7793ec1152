//! The overview: is Pagehook well, and what needs an admin now — what
//! works with each connection (the last `doctor` report, and a button that
//! checks again through `GET /api/doctor`), events waiting, dead letters,
//! connections whose token is refused or expiring, plugins whose breaker is
//! open, recent plugin failures. A space admin sees their spaces' bindings,
//! dead letters and latest events instead. The lists refresh themselves
//! when something new happens; the doctor's report only when asked (it
//! sends requests to Confluence and Slack).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use maud::{Markup, html};

use super::{PageResult, Section, Viewer, api_form, page, when};
use crate::doctor::{FeatureCheck, Report, State as Verdict};
use crate::ops::tokens::token_status;
use crate::server::AppState;
use crate::store::{
    ConnectionKind, DeliveryQuery, DeliveryRecord, DeliveryStatus, EventQuery, EventStatus,
    EventSummary, Scope, now_ms,
};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/overview", get(overview))
}

/// Rows in each "recent" list.
const RECENT: usize = 10;

async fn overview(State(state): State<Arc<AppState>>, viewer: Viewer) -> PageResult {
    let store = &state.store;
    let spaces = viewer.principal().space_filter();
    let dead = store
        .search_deliveries(&DeliveryQuery {
            status: Some(DeliveryStatus::Dead),
            spaces: spaces.clone(),
            limit: RECENT,
            ..DeliveryQuery::default()
        })
        .await?;
    let latest = store
        .search_events(&EventQuery {
            spaces: spaces.clone(),
            limit: RECENT,
            ..EventQuery::default()
        })
        .await?;
    let body = if viewer.is_admin() {
        let events = store.event_counts().await?;
        let deliveries = store.delivery_counts().await?;
        let connections = store.connections().await?;
        let plugins = store.plugins().await?;
        let failures = store.failures(None, RECENT).await?;
        let now = now_ms();
        let count_event =
            |s: EventStatus| events.iter().find(|c| c.status == s).map_or(0, |c| c.count);
        let count_delivery = |s: DeliveryStatus| {
            deliveries
                .iter()
                .find(|c| c.status == s)
                .map_or(0, |c| c.count)
        };
        let dead_all = store
            .search_deliveries(&DeliveryQuery {
                status: Some(DeliveryStatus::Dead),
                limit: DEAD_SCAN,
                ..DeliveryQuery::default()
            })
            .await?;
        let attention = attention(&connections, &dead_all, now);
        let open: Vec<_> = plugins
            .iter()
            .filter(|p| p.breaker_until.is_some_and(|u| u > now))
            .collect();
        let doctor = state.doctor.get();
        html! {
            (doctor_section(doctor.as_ref()))
            div id="overview-live" data-live {
                div class="cards" {
                    (card("Health", html! { span class="state state-ok" { "serving" } }, "The database answers."))
                    (card("Events waiting", html! { (count_event(EventStatus::Pending)) }, "Accepted, not yet dispatched."))
                    (card("Events failed", html! { (count_event(EventStatus::Failed)) }, "Could not be dispatched for good."))
                    (card("Deliveries waiting", html! { (count_delivery(DeliveryStatus::Pending) + count_delivery(DeliveryStatus::Sending)) }, "Queued or being sent."))
                    (card("Dead letters", html! { (count_delivery(DeliveryStatus::Dead)) }, "Given up; retry them under Deliveries."))
                    (card("Sent", html! { (count_delivery(DeliveryStatus::Sent)) }, "Delivered."))
                    (card("Would send (dry run)", html! { (count_delivery(DeliveryStatus::WouldSend)) }, "Recorded by dry-run connections and bindings, not sent: see them under Deliveries."))
                }
                h2 id="attention-title" { "Connections needing attention" }
                (attention_list(&attention))
                h2 { "Open breakers" }
                @if open.is_empty() {
                    p { span class="state state-ok" { "none" } " Every enabled plugin is being called." }
                } @else {
                    ul { @for p in &open {
                        li { a href={ "/console/plugins/" (p.name) } { (p.name) } ": " span class="state state-bad" { "breaker open" }
                            " until " (when(p.breaker_until.unwrap_or_default()))
                            @if let Some(e) = &p.breaker_error { " — " (e) } }
                    } }
                }
                h2 { "Recent plugin failures" }
                @if failures.is_empty() {
                    p { "None." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Plugin" } th scope="col" { "Event" } th scope="col" { "Why" } } }
                        tbody { @for f in &failures {
                            tr {
                                td { (when(f.at)) }
                                td { a href={ "/console/plugins/" (f.plugin) } { (f.plugin) } }
                                td { a href={ "/console/events/" (f.event_id) } { "#" (f.event_id) } }
                                td { code { (f.code) } " " (f.message) }
                            }
                        } }
                    }
                }
                (dead_letters(&dead))
                (recent_events(&latest))
            }
        }
    } else {
        let bindings = store.bindings(None).await?;
        let mine: Vec<_> = bindings
            .iter()
            .filter(|b| matches!(&b.scope, Scope::Space(k) if viewer.principal().may_administer(k)))
            .collect();
        let spaces = spaces.unwrap_or_default();
        html! {
            p { "You administer " strong { (spaces.join(", ")) } ". You can bind plugins to these spaces, preview them, and follow their events and deliveries." }
            div id="overview-live" data-live {
                div class="cards" {
                    (card("Your bindings", html! { (mine.len()) }, "Plugins bound to your spaces."))
                    (card("Dead letters", html! { (dead.len()) @if dead.len() >= RECENT { "+" } }, "Deliveries of your spaces that were given up."))
                }
                (dead_letters(&dead))
                (recent_events(&latest))
            }
        }
    };
    Ok(page(&viewer, Section::Overview, "Overview", body))
}

/// What works with each connection: the last report, and a button that
/// makes a new one.
fn doctor_section(report: Option<&Report>) -> Markup {
    let check = api_form(
        "GET",
        "/api/doctor",
        "reload",
        "inline",
        html! { button type="submit" { "Check now" } },
    );
    html! {
        section id="doctor" aria-labelledby="doctor-title" {
            h2 id="doctor-title" { "What works" }
            @match report {
                None => p { "Not checked since Pagehook started. Checking asks each Confluence and Slack connection what this service account may do there (read-only requests). " (check) }
                Some(r) => {
                    p {
                        "Checked " (when(r.checked_at)) " UTC. "
                        @if r.ok {
                            span class="state state-ok" { "everything used works" }
                        } @else {
                            span class="state state-bad" { (r.blocking.len()) " used feature" @if r.blocking.len() != 1 { "s" } " cannot work" }
                        }
                        " " (check)
                    }
                    @if !r.blocking.is_empty() {
                        ul class="blocking" { @for b in &r.blocking { li { (b) } } }
                    }
                    @for n in &r.notes { p class="muted" { (n) } }
                    @for c in &r.confluence {
                        details open[!r.ok] {
                            summary {
                                "Confluence " code { (c.connection) } " — "
                                @match &c.version {
                                    Some(v) => { (v.version) " (" (v.line) ")" }
                                    None => "version not reported",
                                }
                                @if let Some(a) = &c.account {
                                    ", account " (a.username) ", Confluence administrator: " (c.confluence_admin.state)
                                    ", user emails: " (c.emails.visibility)
                                }
                            }
                            @if let Some(e) = &c.error { p class="state state-bad" { (e) } }
                            @if let Some(m) = &c.token.message { p class="state state-warn" { (m) } }
                            (feature_table(&c.features))
                        }
                    }
                    @for s in &r.slack {
                        details open[!r.ok] {
                            summary {
                                "Slack " code { (s.connection) }
                                @if let Some(w) = &s.workspace { " — " (w.team) " (" (w.team_id) ")" }
                                @if s.socket_mode { ", Socket Mode" }
                                @else if !s.signing_secret { ", no signing secret" }
                            }
                            @if let Some(e) = &s.error { p class="state state-bad" { (e) } }
                            (feature_table(&s.features))
                        }
                    }
                }
            }
        }
    }
}

fn feature_table(features: &[FeatureCheck]) -> Markup {
    html! {
        table class="doctor" {
            thead { tr { th scope="col" { "Feature" } th scope="col" { "State" } th scope="col" { "Used by" } th scope="col" { "Why, and the fix" } } }
            tbody { @for f in features {
                tr data-feature=(serde_json::to_value(f.feature).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) {
                    td { (f.title) }
                    td { span class={ "state " (match f.state {
                        Verdict::Works => "state-ok",
                        Verdict::Unknown | Verdict::Degraded => "state-warn",
                        Verdict::Unavailable => "state-bad",
                    }) } { (f.state.as_str()) } }
                    td { @if f.bound_by.is_empty() { span class="muted" { "not used" } } @else { (f.bound_by.join(", ")) } }
                    td {
                        @for w in &f.why { div { (w) } }
                        @for x in &f.fix { div { strong { "Fix: " } (x) } }
                    }
                }
            } }
        }
    }
}

fn card(title: &str, value: Markup, help: &str) -> Markup {
    html! {
        div class="card" {
            div { (title) }
            div class="big" { (value) }
            div class="muted" { (help) }
        }
    }
}

fn dead_letters(dead: &[DeliveryRecord]) -> Markup {
    html! {
        h2 { "Latest dead letters" }
        @if dead.is_empty() {
            p { span class="state state-ok" { "none" } }
        } @else {
            table {
                thead { tr { th scope="col" { "Delivery" } th scope="col" { "Destination" } th scope="col" { "Plugin" } th scope="col" { "Why" } } }
                tbody { @for d in dead {
                    tr {
                        td { a href={ "/console/deliveries?status=dead&event=" (d.event_id) } { "#" (d.id) } }
                        td { code { (d.destination) } }
                        td { (d.plugin) }
                        td { (d.last_error.clone().unwrap_or_default()) }
                    }
                } }
            }
        }
    }
}

fn recent_events(events: &[EventSummary]) -> Markup {
    html! {
        h2 { "Latest events" }
        @if events.is_empty() {
            p { "No events yet. Point a Confluence webhook at /hooks/confluence/NAME." }
        } @else {
            table {
                thead { tr { th scope="col" { "Event" } th scope="col" { "Received" } th scope="col" { "Kind" } th scope="col" { "Space" } th scope="col" { "Title" } th scope="col" { "Status" } } }
                tbody { @for e in events {
                    tr {
                        td { a href={ "/console/events/" (e.id) } { "#" (e.id) } }
                        td { (when(e.received_at)) }
                        td { (e.name) }
                        td { (e.space_key.clone().unwrap_or_default()) }
                        td { (e.title.clone().unwrap_or_default()) }
                        td { (e.status.as_str()) }
                    }
                } }
            }
        }
    }
}

/// Dead letters read to group by connection (the newest; more are
/// counted as "at least").
pub(super) const DEAD_SCAN: usize = 500;

/// A connection that needs the admin: its mark (what, the fix) or its
/// token's state, and its dead letters by destination.
struct Attention<'a> {
    name: &'a str,
    /// `state-bad` (failing, expired) or `state-warn` (expiring).
    class: &'static str,
    state: &'static str,
    what: Option<String>,
    fix: Option<String>,
    /// Dead letters through it, by destination.
    dead: Vec<(String, usize)>,
}

/// The Slack, Teams or Confluence connection a delivery goes through, as
/// far as its destination says (`teams:NAME`, `slack:NAME/#channel`, or
/// the only Slack workspace).
pub(super) fn connection_of<'a>(
    d: &crate::store::DeliveryRecord,
    connections: &'a [crate::store::ConnectionRecord],
) -> Option<&'a str> {
    let (kind, target) = d.destination.split_once(':')?;
    let named = |k: crate::store::ConnectionKind, name: &str| {
        connections
            .iter()
            .find(|c| c.kind == k && c.name == name)
            .map(|c| c.name.as_str())
    };
    match kind {
        "teams" => named(crate::store::ConnectionKind::Teams, target),
        "slack" | "slack-dm" => match crate::destination::split_workspace(target).0 {
            Some(ws) => named(crate::store::ConnectionKind::Slack, ws),
            None => {
                let mut slack = connections
                    .iter()
                    .filter(|c| c.kind == crate::store::ConnectionKind::Slack);
                match (slack.next(), slack.next()) {
                    (Some(only), None) => Some(only.name.as_str()),
                    _ => None,
                }
            }
        },
        _ => None,
    }
}

/// A health mark as (what happened, the fix). A gone destination's mark
/// carries its fix (`gone::split_fix`); a refused token or credentials (a
/// delivery's re-authorise answer, or a failed Test) says what happened
/// and, at most, the command that fixes it from a shell: the fix then is
/// the console's way, with that advice kept in front of it.
pub(super) fn mark_parts(kind: ConnectionKind, mark: &str) -> (String, String) {
    if let (what, Some(fix)) = crate::deliver::gone::split_fix(mark) {
        return (what.to_owned(), fix.to_owned());
    }
    let console = match kind {
        ConnectionKind::Slack => {
            "paste a working bot token (the Slack app's Bot User OAuth Token, xoxb-…; reinstall the app first if it was removed) into this connection (Edit), then Test it; deliveries waiting for it go out after that, and its dead letters can be retried from the Overview."
        }
        ConnectionKind::Confluence => {
            "put a working personal access token (or username and password) into this connection (Edit), then Test it; deliveries waiting for it go out after that."
        }
        ConnectionKind::TeamsBot => {
            "put a valid client secret of the bot's Entra app into this connection (Edit), then Test it; deliveries waiting for it go out after that."
        }
        ConnectionKind::Teams => {
            "copy the workflow's URL again from Teams into this connection (Edit), then send a test card; then retry its dead letters from the Overview."
        }
    };
    // "Slack refused the token of `acme` (token_revoked): reinstall the
    // app or ...": what happened up to the code, its advice before ours.
    // Only a code ends it (`token_revoked`, `HTTP 401`), not a URL.
    let coded = |what: &str| {
        what.rsplit_once('(').is_some_and(|(_, code)| {
            !code.is_empty() && code.len() <= 40 && !code.contains(['/', ':', '`'])
        })
    };
    match mark.split_once("): ") {
        Some((what, advice)) if coded(what) && !advice.trim().is_empty() => (
            format!("{what})."),
            format!(
                "{}. In the console: {console}",
                advice.trim().trim_end_matches('.')
            ),
        ),
        _ => (mark.to_owned(), console.to_owned()),
    }
}

/// Every connection with a mark, a token to renew or dead letters.
fn attention<'a>(
    connections: &'a [crate::store::ConnectionRecord],
    dead: &[DeliveryRecord],
    now: i64,
) -> Vec<Attention<'a>> {
    let mut out = Vec::new();
    for c in connections {
        let mut by_destination: Vec<(String, usize)> = Vec::new();
        for d in dead
            .iter()
            .filter(|d| connection_of(d, connections) == Some(c.name.as_str()))
        {
            match by_destination
                .iter_mut()
                .find(|(dest, _)| *dest == d.destination)
            {
                Some((_, n)) => *n += 1,
                None => by_destination.push((d.destination.clone(), 1)),
            }
        }
        let token = token_status(c, now);
        let (class, state, what, fix) = if let Some(h) = &c.health {
            let (what, fix) = mark_parts(c.kind, h);
            ("state-bad", "failing", Some(what), Some(fix))
        } else if let Some(t) = token.as_ref().filter(|t| t.state == "expired") {
            ("state-bad", "token expired", t.message.clone(), None)
        } else if let Some(t) = token.as_ref().filter(|t| t.state == "expiring") {
            ("state-warn", "token expiring", t.message.clone(), None)
        } else if !by_destination.is_empty() {
            ("state-warn", "dead letters", None, None)
        } else {
            continue;
        };
        out.push(Attention {
            name: &c.name,
            class,
            state,
            what,
            fix,
            dead: by_destination,
        });
    }
    out
}

/// The list: which connection, what happened, the fix, and a retry per
/// destination of its dead letters (for once it is repaired).
fn attention_list(list: &[Attention<'_>]) -> Markup {
    html! {
        @if list.is_empty() {
            p id="attention" { span class="state state-ok" { "none" } " Every connection works and no Confluence token is expiring." }
        } @else {
            ul id="attention" class="attention" aria-labelledby="attention-title" { @for a in list {
                li {
                    a href={ "/console/connections/" (a.name) } { (a.name) } ": "
                    span class={ "state " (a.class) } { (a.state) }
                    @if let Some(what) = &a.what { " " (what) }
                    @if let Some(fix) = &a.fix { p class="fix" { strong { "Fix: " } (fix) " " a href={ "/console/connections/" (a.name) } { "Edit " (a.name) } } }
                    @for (destination, n) in &a.dead {
                        div class="dead-group" {
                            (n) " dead letter" @if *n != 1 { "s" } " to " code { (destination) }
                            form class="inline" data-method="POST" data-path="/api/deliveries/retry-dead" data-then="reload" data-describe="retried-dead" {
                                input type="hidden" name="destination" value=(destination);
                                button type="submit" class="secondary" aria-label={ "Retry the dead letters to " (destination) } {
                                    "Retry " (n) " dead letter" @if *n != 1 { "s" }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mark_gets_a_fix_and_a_gone_destination_keeps_its_own() {
        // A refused token (a delivery's re-authorise answer): what happened
        // up to Slack's code, its advice kept before the console's way.
        let (what, fix) = mark_parts(
            ConnectionKind::Slack,
            "Slack refused the token of `acme` (token_revoked): reinstall the app or update the token with `pagehook connect slack acme ...`; deliveries resume after that",
        );
        assert_eq!(what, "Slack refused the token of `acme` (token_revoked).");
        assert!(
            fix.starts_with("reinstall the app or update the token")
                && fix.contains("In the console: paste a working bot token")
                && fix.contains("(Edit)"),
            "{fix}"
        );
        // A failed Test: the mark whole, the console's fix.
        let mark = "Slack refused the token: invalid_auth: the token is wrong; copy the Bot User OAuth Token (xoxb-...) again";
        let (what, fix) = mark_parts(ConnectionKind::Slack, mark);
        assert_eq!(what, mark);
        assert!(fix.starts_with("paste a working bot token"), "{fix}");
        // A Test that did not reach Slack: a URL in brackets is no code.
        let mark = "Slack at http://127.0.0.1:9/ could not be reached or answered oddly: error sending request for url (http://127.0.0.1:9/auth.test): connection refused";
        let (what, fix) = mark_parts(ConnectionKind::Slack, mark);
        assert_eq!(what, mark);
        assert!(fix.starts_with("paste a working bot token"), "{fix}");
        let (_, fix) = mark_parts(
            ConnectionKind::Confluence,
            "Confluence refused the credentials of `wiki` (HTTP 401): update them with `pagehook connect confluence wiki ...`; deliveries resume after that",
        );
        assert!(fix.contains("personal access token"), "{fix}");
        // A gone destination's mark says its own fix.
        let gone = crate::deliver::gone::slack_channel("slack:acme/#eng", "eng", "is_archived");
        let (what, fix) = mark_parts(ConnectionKind::Slack, &gone);
        assert!(
            what.ends_with("is archived: Slack refuses posts to it."),
            "{what}"
        );
        assert!(fix.starts_with("unarchive it in Slack"), "{fix}");
    }
}
