//! Fuzz target bodies: every parser of untrusted input, as plain functions.
//!
//! `fuzz/fuzz_targets/*.rs` (cargo-fuzz, libFuzzer, nightly) call these, and
//! `host/tests/it/fuzz_corpus.rs` replays the committed corpus through them on
//! stable Rust, so a crash once found can never come back. Each function
//! must return normally for every input: a panic is a finding. Besides "does
//! not panic", some check properties the rest of the host relies on (a
//! checked action reads back from its stored JSON; a signature computed for
//! a body verifies; a destination that allows a Slack action in a named
//! workspace routes it to that workspace).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::config::{Config, DeliveryConfig};
use crate::destination::lane;
use crate::destination::{Destination, first_allowing, slack_workspace, split_workspace};
use crate::manifest::Manifest;
use crate::model::{Action, Event, EventKind};
use crate::runtime::Limits;
use crate::runtime::contract::v0_2::types as wit;
use crate::runtime::contract::{v0_1, v0_2};
use crate::source::webhook;

/// The secret the webhook target signs and checks with.
pub const WEBHOOK_SECRET: &[u8] = b"It's a Secret to Everybody";

/// Confluence webhook: `data` is a body, or `<X-Hub-Signature>\n<body>`.
///
/// The whole input and the part after the first line are parsed as webhook
/// bodies (and as the event JSON `plugin run` reads); the first line is
/// checked as the signature header of the rest.
pub fn webhook(data: &[u8]) {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let header = std::str::from_utf8(head).ok();
    let _ = webhook::verify_signature(WEBHOOK_SECRET, body, header);
    let _ = webhook::verify_signature(WEBHOOK_SECRET, data, None);
    let _ = webhook::verify_signature(head, body, Some("sha256=00"));
    // The signature of a body always verifies, bare or prefixed.
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET).expect("any key length");
    mac.update(body);
    let good = hex::encode(mac.finalize().into_bytes());
    assert_eq!(
        webhook::verify_signature(WEBHOOK_SECRET, body, Some(&format!("sha256={good}"))),
        Ok(())
    );
    assert_eq!(
        webhook::verify_signature(WEBHOOK_SECRET, body, Some(&good)),
        Ok(())
    );
    for body in [data, body] {
        if let Ok(webhook::Payload::Event(hook)) = webhook::parse(body) {
            let _ = hook.dedupe_key("prod");
        }
        // A stored event's payload is read back with `from_value`.
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            assert_eq!(webhook::parse(body).ok(), webhook::from_value(&value).ok());
        }
        if let Ok(event) = serde_json::from_slice::<Event>(body) {
            let _ = v0_2::event(&event);
            let _ = v0_1::event(&event);
            let _ = serde_json::to_string(&event).expect("an event serializes");
        }
    }
}

/// `plugin.toml`: parse, validate, apply its limits, resolve its settings.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(m) = Manifest::parse(&text) else {
        return;
    };
    let _ = Limits::default().with_requests(&m.limits, &Limits::ceiling());
    for kind in EventKind::ALL {
        let _ = m.wants(kind);
    }
    let _ = m.resolve_settings(&[]);
    let given: Vec<(String, String)> = m
        .settings
        .keys()
        .map(|k| (k.clone(), "value".to_owned()))
        .collect();
    let _ = m.resolve_settings(&given);
    let _ = m.resolve_settings(&[("no-such-setting".into(), String::new())]);
}

/// `pagehook.toml`: parse and derive what `Config::load` derives (without
/// touching the file system or resolving secrets).
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = toml::from_str::<Config>(&text) else {
        return;
    };
    let _ = config.runtime_config();
    let _ = config.enrichment_timeout();
}

/// Destinations checked when the input names none.
const DESTINATIONS: [&str; 9] = [
    "slack:#eng",
    "slack:acme/*",
    "slack-dm:*",
    "slack-dm:acme/ada@example.com",
    "teams:eng-news",
    "confluence:ENG",
    "confluence:*",
    "comment:*",
    "comment:2818051",
];

/// Plugin output: `data` is JSON, either a list of actions (what `plugin
/// run` prints; the golden files) or `{"actions": [...], "destinations":
/// [...], "workspaces": [...]}`. Each action is turned into the WIT record a
/// plugin returns (`blocks` and `card` as JSON text; a string is used as
/// is, anything else is printed) and goes through what the host does with
/// a plugin's answer: the 0.2.0 conversion, the size count, the stored JSON
/// read back, then the two-party rule against each destination, the Slack
/// workspace choice and the delivery lane. The JSON form itself is parsed
/// too, and every destination string on its own.
pub fn actions(data: &[u8]) {
    let _ = serde_json::from_slice::<Vec<Action>>(data);
    let _ = serde_json::from_slice::<Action>(data);
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let strings = |v: Option<&Value>| -> Option<Vec<String>> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().map(text).collect())
    };
    let (list, destinations, workspaces) = match &value {
        Value::Array(list) => (list.clone(), None, None),
        Value::Object(o) => (
            match o.get("actions") {
                Some(Value::Array(list)) => list.clone(),
                _ => vec![value.clone()],
            },
            strings(o.get("destinations")),
            strings(o.get("workspaces")),
        ),
        _ => return,
    };
    let destinations =
        destinations.unwrap_or_else(|| DESTINATIONS.iter().map(|d| d.to_string()).collect());
    for d in &destinations {
        destination(d);
    }
    let workspace_sets: Vec<Vec<String>> = match workspaces {
        Some(ws) => vec![ws],
        None => vec![
            vec![],
            vec!["acme".into()],
            vec!["acme".into(), "beta".into()],
        ],
    };
    for item in list.iter().take(64) {
        let Some(raw) = wit_action(item) else {
            continue;
        };
        let (_, Ok(action)) = v0_2::convert(raw) else {
            continue;
        };
        // The runtime counts the JSON bytes; the store keeps that JSON and
        // the deliverer reads it back.
        let stored = serde_json::to_vec(&action).expect("an action serializes");
        let back: Action = serde_json::from_slice(&stored).expect("a stored action reads back");
        assert_eq!(back, action, "stored action changed");
        let _ = action.kind();
        let wanted = action.destination();
        let _ = split_workspace(&wanted);
        let allowing = first_allowing(&destinations, &action);
        for ws in &workspace_sets {
            let ws: Vec<&str> = ws.iter().map(String::as_str).collect();
            for d in allowing
                .iter()
                .copied()
                .chain(destinations.iter().map(String::as_str))
            {
                let chosen = slack_workspace(&action, d, &ws);
                let Ok(parsed) = d.parse::<Destination>() else {
                    continue;
                };
                // A destination in one workspace that allows a Slack action
                // sends it through that workspace, never another.
                if parsed.is_slack()
                    && parsed.allows(&action)
                    && let Some(own) = parsed.workspace()
                {
                    assert_eq!(chosen, Ok(Some(own.to_owned())), "`{d}` for `{wanted}`");
                }
                if let Ok(Some(chosen)) = &chosen {
                    let _ = lane(&action, "prod", Some(chosen));
                }
            }
            let _ = lane(&action, "prod", ws.first().copied());
        }
        let _ = lane(&action, "prod", None);
    }
}

/// One destination string: parse, print and parse again, workspace views.
fn destination(text: &str) {
    let Ok(d) = text.parse::<Destination>() else {
        return;
    };
    let again: Destination = d.to_string().parse().expect("a printed destination parses");
    assert_eq!(again, d);
    let _ = (d.action_kind(), d.workspace(), d.channel());
    let bound = d.in_workspace("acme");
    if d.is_slack() {
        assert!(bound.workspace().is_some(), "`{text}` bound to acme");
    }
}

/// A JSON value as a string field: strings as they are, others printed.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn opt_text(v: Option<&Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(v) => Some(text(v)),
    }
}

/// The WIT action a plugin would have returned for one JSON action.
fn wit_action(v: &Value) -> Option<wit::Action> {
    let o = v.as_object()?;
    let field = |k: &str| o.get(k).map(text).unwrap_or_default();
    let opt = |k: &str| opt_text(o.get(k));
    let id = |k: &str| {
        o.get(k)
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
    };
    Some(match o.get("type").and_then(Value::as_str)? {
        "post-slack" => wit::Action::PostSlack(wit::SlackMessage {
            channel: field("channel"),
            text: field("text"),
            blocks: opt("blocks"),
            thread_key: opt("thread_key"),
        }),
        "dm-slack" => wit::Action::DmSlack(wit::SlackDirectMessage {
            email: field("email"),
            text: field("text"),
            blocks: opt("blocks"),
        }),
        "post-teams" => wit::Action::PostTeams(wit::TeamsMessage {
            channel: field("channel"),
            card: field("card"),
        }),
        "create-page" => wit::Action::CreatePage(wit::NewPage {
            space_key: field("space_key"),
            parent_id: id("parent_id"),
            title: field("title"),
            body: field("body"),
            labels: o
                .get("labels")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default(),
            once_key: opt("once_key"),
        }),
        "add-comment" => wit::Action::AddComment(wit::NewComment {
            page_id: id("page_id").unwrap_or_default(),
            body: field("body"),
            once_key: opt("once_key"),
        }),
        "unfurl" => wit::Action::Unfurl(wit::SlackUnfurl {
            channel: field("channel"),
            message_ts: field("message_ts"),
            unfurls: field("unfurls"),
        }),
        "respond" => wit::Action::Respond(wit::SlackResponse {
            response_url: field("response_url"),
            text: field("text"),
            blocks: opt("blocks"),
            in_channel: o
                .get("in_channel")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }),
        _ => return None,
    })
}

/// Header values: `Retry-After` as every client reads it (and as the
/// deliverer clamps Slack's and Teams', and the Confluence client its own),
/// and Confluence's ISO 8601 timestamps.
pub fn headers(data: &[u8]) {
    if let Ok(value) = reqwest::header::HeaderValue::from_bytes(data) {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, value);
        if let Some(wait) = crate::http::retry_after(&h) {
            // As `Deliverer::outcome` clamps a Slack or Teams `Retry-After`.
            let max = DeliveryConfig::default().max_retry_after_secs;
            let asked = wait.min(Duration::from_secs(max)).as_millis() as u64;
            assert!(asked <= max * 1000);
        }
    }
    let text = String::from_utf8_lossy(data);
    for line in text.lines().chain([text.as_ref()]) {
        if let Some(ms) = crate::clock::parse_iso8601_ms(line) {
            let _ = crate::clock::utc_seconds(ms);
            let _ = crate::clock::utc_minutes(ms);
        }
    }
}
