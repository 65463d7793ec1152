//! `/console/deliveries`: the outbox, a page at a time, with every attempt,
//! each message drawn as it lands (folded under its row, with the exact
//! request of a dry run behind "Show request"), and retries.
//!
//! Filters by status, destination, plugin and event, newest first, keyset
//! paged like the events (`before=<the last id shown>`). The attempts of the
//! rows on the page are read with the page (one indexed query per row, at
//! most 200), so nothing is fetched later. Retrying is the
//! admin API's job (`POST /api/deliveries/{id}/retry`,
//! `POST /api/deliveries/retry-dead`): the buttons here are forms that
//! `console.js` sends there, so the API's space check and change log apply.
//! A space admin sees only deliveries of events in their spaces. A dry
//! run's would-send row offers no Retry (retrying would only record it
//! again) and says so; one recorded because its connection was in dry run
//! offers "Send now".

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::events::{PAGE_SIZE, Paging, caption, given, pager, params, push};
use super::render;
use super::{PageError, PageResult, Section, Viewer, api_form, field, page, when};
use crate::server::AppState;
use crate::store::{AttemptRecord, DeliveryQuery, DeliveryRecord, DeliveryStatus};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/deliveries", get(list))
}

/// The list's query, as typed (parsed by hand: a wrong value is a 400 page).
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    status: Option<String>,
    destination: Option<String>,
    plugin: Option<String>,
    event: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

async fn list(
    viewer: Viewer,
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> PageResult {
    let p = params(query)?;
    let status = given(&p.status)
        .map(DeliveryStatus::parse)
        .transpose()
        .map_err(PageError::Invalid)?;
    let destination = given(&p.destination);
    let plugin = given(&p.plugin);
    let event = given(&p.event)
        .map(|e| match e.parse::<i64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(PageError::Invalid(format!(
                "`event={e}` is not an event id (a positive number)."
            ))),
        })
        .transpose()?;
    let paging = Paging::parse(given(&p.before), given(&p.limit))?;
    let store = &state.store;
    let rows = store
        .search_deliveries(&DeliveryQuery {
            status,
            destination: destination.map(str::to_owned),
            plugin: plugin.map(str::to_owned),
            event_id: event,
            spaces: viewer.principal().space_filter(),
            before: paging.before,
            limit: paging.limit,
        })
        .await?;
    let ids: Vec<i64> = rows.iter().map(|d| d.id).collect();
    let mut by_delivery = store.attempts_of(&ids).await?;
    let attempts: Vec<Vec<AttemptRecord>> = rows
        .iter()
        .map(|d| by_delivery.remove(&d.id).unwrap_or_default())
        .collect();

    let mut filters = Vec::new();
    push(&mut filters, "status", status.map(DeliveryStatus::as_str));
    push(&mut filters, "destination", destination);
    push(&mut filters, "plugin", plugin);
    let event_text = event.map(|e| e.to_string());
    push(&mut filters, "event", event_text.as_deref());
    paging.push_limit(&mut filters);

    let body = html! {
        form class="filters" method="get" action="/console/deliveries" role="search" aria-label="Filter deliveries" {
            (field("status", "Status", None, html! {
                select id="status" name="status" {
                    option value="" { "Any" }
                    @for s in DeliveryStatus::ALL {
                        option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                    }
                }
            }))
            (field("destination", "Destination", None, html! {
                input id="destination" name="destination" type="text" value=[destination] placeholder="slack:acme/#eng";
            }))
            (field("plugin", "Plugin", None, html! {
                input id="plugin" name="plugin" type="text" size="14" value=[plugin];
            }))
            (field("event", "Event", None, html! {
                input id="event" name="event" type="text" inputmode="numeric" size="8" value=[event_text.as_deref()];
            }))
            @if paging.limit != PAGE_SIZE {
                input type="hidden" name="limit" value=(paging.limit);
            }
            button type="submit" { "Filter" }
        }
        div id="deliveries-live" data-live {
            (caption(rows.len(), ("delivery", "deliveries"), paging.before))
            @if rows.is_empty() {
                p class="muted" { "No deliveries match." }
            } @else {
                table id="deliveries-table" {
                    thead {
                        tr {
                            th scope="col" class="num" { "Id" }
                            th scope="col" { "Event" }
                            th scope="col" { "Plugin" }
                            th scope="col" { "Destination" }
                            th scope="col" { "Status" }
                            th scope="col" class="num" { "Attempts" }
                            th scope="col" { "Last error" }
                            th scope="col" { "Created" }
                            th scope="col" { "Result" }
                            th scope="col" { "Actions" }
                        }
                    }
                    tbody {
                        @for (d, tries) in rows.iter().zip(&attempts) {
                            tr class="delivery-main" {
                                td class="num" { (d.id) }
                                td { a href={ "/console/events/" (d.event_id) } { "Event " (d.event_id) } }
                                td { (d.plugin) }
                                td { code { (d.destination) } }
                                td {
                                    span class={ "state " (delivery_state(d.status)) } { (d.status.as_str()) }
                                    @if d.dry_run { " " span class="muted" { "(dry run)" } }
                                }
                                td class="num" { (d.attempts) }
                                td { @if let Some(e) = &d.last_error { (e) } }
                                td { (when(d.created_at)) }
                                td { (result_summary(d)) }
                                td class="row-actions" {
                                    (retry_button(d))
                                    (attempts_details(tries))
                                }
                            }
                            tr class="delivery-detail" {
                                td colspan="10" { (message_details(d)) }
                            }
                        }
                    }
                }
            }
            (pager("/console/deliveries", &filters, &paging, rows.len(), rows.last().map(|d| d.id), "deliveries"))
        }
        h2 { "Retry all dead letters of destination" }
        p class="muted" {
            "After fixing a destination (a revoked token, a removed channel), queue every dead letter to it again"
            @if !viewer.is_admin() { " (of your spaces)" }
            "."
        }
        form data-method="POST" data-path="/api/deliveries/retry-dead" data-then="reload" data-describe="retried-dead" {
            (field("retry-destination", "Destination", Some("Exactly as the deliveries show it, e.g. slack:acme/#eng."), html! {
                input id="retry-destination" name="destination" type="text" required aria-describedby="retry-destination-help" value=[destination];
            }))
            button type="submit" { "Retry all" }
        }
    };
    Ok(page(&viewer, Section::Deliveries, "Deliveries", body))
}

/// The CSS state class of a delivery status (the word is always shown too).
pub(super) fn delivery_state(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Sent | DeliveryStatus::WouldSend => "state-ok",
        DeliveryStatus::Pending | DeliveryStatus::Sending => "state-warn",
        DeliveryStatus::Dead => "state-bad",
    }
}

/// A delivery's retry: "Retry" for a dead letter; for a would-send row,
/// "Send now" when it was recorded only because its connection was in dry
/// run (the API queues it again and delivery sends it if the connection is
/// live now), and a word instead of a button when its binding was a dry
/// run (a retry would only record it again).
pub(super) fn retry_button(d: &DeliveryRecord) -> Markup {
    let form = |label: &str| {
        api_form(
            "POST",
            &format!("/api/deliveries/{}/retry", d.id),
            // forms.js: the row says it was queued; the live update shows the outcome.
            "call:row-retry",
            "inline",
            html! { button type="submit" class="secondary" { (label) } },
        )
    };
    match d.status {
        DeliveryStatus::Dead => form("Retry"),
        DeliveryStatus::WouldSend if d.dry_run => html! {
            small class="muted retry-note" { "Dry-run binding: recorded, never sent; nothing to retry." }
        },
        DeliveryStatus::WouldSend => html! {
            (form("Send now"))
            small class="muted retry-note" { "Recorded while its connection was in dry run; sends it if the connection is live now." }
        },
        _ => html! {},
    }
}

/// What delivery made of it, in a word: the destination's answer (Slack
/// `ts`, the created content's id, `HTTP 202`), or "recorded" for a dry run.
pub(super) fn result_summary(d: &DeliveryRecord) -> Markup {
    match (&d.result, d.status) {
        (Some(_), DeliveryStatus::WouldSend) => {
            html! { span class="muted" { "recorded (dry run)" } }
        }
        (Some(result), _) => html! { code { (result) } },
        (None, _) => html! {},
    }
}

/// The message, drawn as it lands, folded (closed) under its row, with
/// the exact request of a dry run (`#would-send-<id>`) or the plugin's
/// action behind its own closed toggle.
pub(super) fn message_details(d: &DeliveryRecord) -> Markup {
    let request = d
        .result
        .as_deref()
        .filter(|_| d.status == DeliveryStatus::WouldSend)
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r)
                .unwrap_or_else(|_| serde_json::Value::String(r.to_owned()))
        });
    html! {
        details class="delivery-message" {
            summary { "Show message" span class="gist" { " — " (render::gist(&d.action)) } }
            (render::message(&d.action))
            @match &request {
                Some(request) => (render::request("Show request", request, Some(&format!("would-send-{}", d.id)))),
                None => (render::request(
                    "Show the plugin's action",
                    &serde_json::to_value(&d.action).unwrap_or_default(),
                    None,
                )),
            }
        }
    }
}

/// What delivery made of it and the message, for a table cell (the event
/// page): [`result_summary`] above [`message_details`].
pub(super) fn request_block(d: &DeliveryRecord) -> Markup {
    html! {
        (result_summary(d))
        (message_details(d))
    }
}

/// Every attempt at a delivery, folded.
pub(super) fn attempts_details(attempts: &[AttemptRecord]) -> Markup {
    html! {
        details {
            summary { "Attempts (" (attempts.len()) ")" }
            @if attempts.is_empty() {
                p class="muted" { "None yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Started" } th scope="col" { "Outcome" }
                        th scope="col" class="num" { "Latency" } th scope="col" { "Error" }
                    } }
                    tbody {
                        @for a in attempts {
                            tr {
                                td { (when(a.at)) }
                                td { (a.outcome) }
                                td class="num" { (a.latency_ms) " ms" }
                                td { @if let Some(e) = &a.error { (e) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_state() {
        for s in DeliveryStatus::ALL {
            assert!(delivery_state(s).starts_with("state-"));
        }
    }
}
