//! Preview: what a binding would do with a stored event, shown before it
//! does it (the console's "Preview" button, `POST /api/bindings/{id}/preview`).
//!
//! The binding's plugin runs in the real sandbox, on the event as dispatch
//! gave it to plugins (or, for an event not dispatched yet, as its webhook
//! alone says), with the binding's settings. Each action it returns is
//! judged by dispatch's own two-party rule ([`crate::dispatch::judge`]),
//! and each accepted one is rendered as the exact request delivery would
//! make, by the function a dry run records with
//! ([`crate::deliver::would_send`]).
//!
//! An event that went out in a digest (or is being collected into one) is
//! previewed as that digest: the binding's plugin runs `handle-digest` on
//! the whole batch, re-formed from the store as dispatch formed it, and the
//! preview says so (`digest_of`).
//!
//! Chat answers are previewed the same way: an `unfurl` as the
//! `chat.unfurl` form it would send, a `respond` as the JSON it would post,
//! the response URL (in the request and in the action shown) with its path
//! masked.
//!
//! What it must never do: write anything (no delivery, audit line, failure
//! or breaker count), send anything, show a response URL, or judge by rules
//! of its own.

use serde::Serialize;
use utoipa::ToSchema;

use crate::digest::Digest;
use crate::dispatch::{judge, load_pinned};
use crate::enrich::from_webhook_only;
use crate::model::{Action, Event};
use crate::ops::{AdminError, AdminResult};
use crate::runtime::Runtime;
use crate::source::slack_events;
use crate::source::webhook::{self, Payload};
use crate::store::{Claimed, ConnectionKind, Dispatched, Store, now_ms};

/// What a binding would do with an event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Preview {
    /// The binding.
    pub binding_id: i64,
    /// The stored event it ran on.
    pub event_id: i64,
    /// The plugin that ran.
    pub plugin: String,
    /// The exact component that ran.
    pub sha256: String,
    /// Whether dispatch would run this binding on this event now (see `notes`
    /// when not: another source, kind or scope, a disabled plugin, an open breaker).
    pub would_run: bool,
    /// Whether the event is in its enriched form (false: only what the webhook said).
    pub enriched: bool,
    /// What else is worth knowing about this preview.
    pub notes: Vec<String>,
    /// When the event went out in a digest (or is being collected into
    /// one): every event of that digest, oldest first; the plugin ran on
    /// the digest. Empty when it ran on the event alone.
    pub digest_of: Vec<i64>,
    /// Every action the plugin returned, with its verdict and request.
    pub actions: Vec<PreviewAction>,
    /// Why the plugin call failed, if it did (then there are no actions).
    pub failure: Option<PreviewFailure>,
    /// What the plugin logged.
    pub log: String,
    /// Fuel the call used.
    pub fuel_used: u64,
    /// How long the call took (ms).
    pub elapsed_ms: u64,
}

/// One action a plugin returned, judged as dispatch judges it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewAction {
    /// The action as the plugin returned it.
    pub action: Action,
    /// Its kind (`post-slack`, ...).
    pub kind: String,
    /// Where the plugin wanted it to go.
    pub destination: String,
    /// `accepted` or `rejected`, as the audit log would record it.
    pub verdict: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// The binding destination that allows it (accepted actions).
    pub allowed_by: Option<String>,
    /// The connection that would carry it (a Slack workspace, chosen as dispatch chooses).
    pub connection: Option<String>,
    /// Delivery would only record it (the binding or the connection is a dry run).
    pub dry_run: bool,
    /// The exact request delivery would make, as a dry run records it; in a
    /// preview, the message metadata's `delivery_id` is 0 (a real delivery's
    /// id is known once it is written).
    pub request: Option<serde_json::Value>,
    /// Why an accepted action could not be delivered (no such connection, a
    /// Teams card over the size limit).
    pub undeliverable: Option<String>,
}

/// An action as a preview shows it: a response URL with its path masked
/// (it is a capability: whoever reads it may answer the command).
fn shown_action(action: Action) -> Action {
    match action {
        Action::Respond {
            response_url,
            text,
            blocks,
            in_channel,
        } => Action::Respond {
            response_url: crate::deliver::chat::masked(&response_url),
            text,
            blocks,
            in_channel,
        },
        other => other,
    }
}

/// A plugin call that failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewFailure {
    /// Stable error code (`out-of-fuel`, `panic`, `load`, ...).
    pub code: String,
    /// The error in words.
    pub message: String,
}

/// Runs binding `binding_id` on stored event `event_id` in the sandbox and
/// judges what it returns, writing and sending nothing.
pub async fn preview(
    store: &Store,
    runtime: &Runtime,
    binding_id: i64,
    event_id: i64,
) -> AdminResult<Preview> {
    let binding = store
        .binding(binding_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no binding with id {binding_id}")))?;
    let record = store
        .event(event_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no event with id {event_id}")))?;
    let mut notes = Vec::new();
    // A Slack request not dispatched yet: the chat event as Slack sent it.
    let chat = match (&record.event, slack_events::from_stored(&record.payload)) {
        (None, Some(Ok(inbound))) => {
            notes.push(format!(
                "event {event_id} is {}: the plugin saw it as Slack sent it (dispatch also reads the Slack user's email and what they may see in Confluence)",
                record.status.as_str()
            ));
            Some(inbound.into_event(&record.source, &record.key, false))
        }
        (None, Some(Err(e))) => {
            return Err(AdminError::Invalid(format!(
                "event {event_id} cannot be previewed: its stored Slack payload does not parse ({e})"
            )));
        }
        _ => None,
    };
    let event: Event = match record.event.or(chat) {
        Some(event) => event,
        None => match webhook::from_value(&record.payload) {
            Ok(Payload::Event(hook)) => {
                notes.push(format!(
                    "event {event_id} is {}: the plugin saw only what its webhook said (dispatch reads the rest from Confluence)",
                    record.status.as_str()
                ));
                from_webhook_only(&record.source, &record.key, &hook)
            }
            Ok(Payload::Test) => {
                return Err(AdminError::Invalid(format!(
                    "event {event_id} is Confluence's test-connection call; pick an event about a page, blog post or comment"
                )));
            }
            Err(e) => {
                return Err(AdminError::Invalid(format!(
                    "event {event_id} cannot be previewed: its stored payload does not parse ({e})"
                )));
            }
        },
    };
    let plugin = store.require_plugin(&binding.plugin).await?;
    let mut would_run = true;
    if !binding.wants(&event) {
        would_run = false;
        notes.push(format!(
            "binding {binding_id} would not run on this event: it takes {} events{}{} (this one: `{}` from `{}`{})",
            binding.events.join(", "),
            binding
                .source
                .as_deref()
                .map(|s| format!(" from `{s}`"))
                .unwrap_or_default(),
            format_args!(" in {}", binding.scope),
            event.kind.name(),
            event.source,
            event
                .content
                .as_ref()
                .map(|c| format!(" in space {}", c.space_key))
                .unwrap_or_default(),
        ));
    }
    if !plugin.manifest.wants(event.kind) {
        would_run = false;
        notes.push(format!(
            "plugin `{}` does not handle `{}` events",
            plugin.name,
            event.kind.name()
        ));
    }
    if !plugin.enabled {
        would_run = false;
        notes.push(format!("plugin `{}` is disabled", plugin.name));
    }
    if plugin.breaker_until.is_some_and(|until| until > now_ms()) {
        would_run = false;
        notes.push(format!(
            "plugin `{}`'s breaker is open: dispatch skips it until it is reset",
            plugin.name
        ));
    }
    let settings = plugin
        .manifest
        .resolve_settings(&binding.settings)
        .map_err(AdminError::Invalid)?;
    let mut preview = Preview {
        binding_id,
        event_id,
        plugin: plugin.name.clone(),
        sha256: plugin.sha256.clone(),
        would_run,
        enriched: event.enriched,
        notes,
        digest_of: Vec::new(),
        actions: Vec::new(),
        failure: None,
        log: String::new(),
        fuel_used: 0,
        elapsed_ms: 0,
    };
    let loaded = match load_pinned(runtime, &plugin) {
        Ok(l) => l,
        Err(message) => {
            preview.failure = Some(PreviewFailure {
                code: "load".into(),
                message,
            });
            return Ok(preview);
        }
    };
    let connections = store.connections().await?;
    let digest = if loaded.takes_digests() {
        digest_of(store, binding_id, event_id, &connections).await?
    } else {
        None
    };
    let call_event = event.clone();
    let report = match digest {
        Some(digest) => {
            preview.digest_of = digest.1;
            preview.notes.push(format!(
                "event {event_id} {} a digest of {} events of space {} for this binding: the plugin ran on that digest",
                if digest.2 { "is being collected into" } else { "went out in" },
                preview.digest_of.len(),
                digest.0.space_key
            ));
            let digest = digest.0;
            tokio::task::spawn_blocking(move || loaded.call_digest(&digest, &settings)).await
        }
        None => tokio::task::spawn_blocking(move || loaded.call(&call_event, &settings)).await,
    }
    .map_err(|e| AdminError::Internal(format!("the preview's plugin call stopped: {e}")))?;
    preview.log = report.log;
    preview.fuel_used = report.fuel_used;
    preview.elapsed_ms = report.elapsed.as_millis() as u64;
    let actions = match report.outcome {
        Ok(actions) => actions,
        Err(e) => {
            preview.failure = Some(PreviewFailure {
                code: e.code().into(),
                message: e.to_string(),
            });
            return Ok(preview);
        }
    };
    let chats = crate::destination::ChatConnections::of(&connections);
    for action in actions {
        let mut judged = Dispatched {
            event_id,
            event: event.clone(),
            deliveries: Vec::new(),
            audit: Vec::new(),
            failures: Vec::new(),
            calls: Vec::new(),
        };
        judge(&mut judged, &binding, &plugin, &chats, action.clone());
        let Some(verdict) = judged.audit.pop() else {
            continue;
        };
        let mut shown = PreviewAction {
            kind: verdict.kind,
            destination: verdict.destination,
            verdict: verdict.verdict,
            reason: verdict.reason,
            allowed_by: None,
            connection: None,
            dry_run: binding.dry_run,
            request: None,
            undeliverable: None,
            action: shown_action(action),
        };
        if let Some(delivery) = judged.deliveries.pop() {
            let claimed = Claimed {
                id: 0,
                event_id,
                destination: delivery.destination.clone(),
                action: delivery.action,
                dry_run: delivery.dry_run,
                lane: delivery.lane,
                source: delivery.source,
                connection: delivery.connection.clone(),
                attempts: 0,
                uncertain: false,
                due: true,
                created_at: now_ms(),
            };
            match crate::deliver::would_send(&claimed, &connections) {
                Ok(would) => {
                    shown.dry_run = would.dry_run;
                    shown.connection = Some(would.connection);
                    shown.request = Some(would.request);
                }
                Err(why) => {
                    shown.connection = delivery.connection;
                    shown.undeliverable = Some(why);
                }
            }
            shown.allowed_by = Some(delivery.destination);
        }
        preview.actions.push(shown);
    }
    Ok(preview)
}

/// The digest event `event_id` went out in for `binding_id` (or is being
/// collected into), with its events' ids and whether it is still held;
/// `None` when the binding ran it on its own.
async fn digest_of(
    store: &Store,
    binding_id: i64,
    event_id: i64,
    connections: &[crate::store::ConnectionRecord],
) -> AdminResult<Option<(Digest, Vec<i64>, bool)>> {
    let batch = store.held_batch(binding_id, event_id).await?;
    if batch.len() < 2 {
        return Ok(None);
    }
    let collecting = batch.iter().any(|h| h.released_at.is_none());
    let mut events = Vec::with_capacity(batch.len());
    for held in &batch {
        let Some(event) = store.event(held.event_id).await?.and_then(|r| r.event) else {
            return Ok(None);
        };
        events.push(event);
    }
    let space_key = batch[0].space_key.clone();
    let source = events.last().map(|e| e.source.clone()).unwrap_or_default();
    let search_url = connections
        .iter()
        .find(|c| c.name == source && c.kind == ConnectionKind::Confluence)
        .and_then(|c| crate::digest::search::search_url(&c.url, &space_key, &events));
    let ids = batch.iter().map(|h| h.event_id).collect();
    Ok(Some((
        Digest {
            space_name: events
                .iter()
                .filter_map(|e| e.content.as_ref()?.space_name.clone())
                .next(),
            space_key,
            events,
            search_url,
        },
        ids,
        collecting,
    )))
}
