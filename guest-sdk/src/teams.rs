//! Adaptive Cards that Microsoft Teams accepts.
//!
//! Teams channels are reached through a Workflows webhook that takes an
//! Adaptive Card (version 1.5) wrapped in a message envelope, and refuses
//! a payload over about 28 KB; it has no way to call a plugin back, so
//! `Action.Submit` is useless and only `Action.OpenUrl` is offered. A page
//! excerpt or a long list of facts can push a card over the limit, so
//! [`Card::to_json`] shortens the longest texts (and, as a last resort,
//! drops trailing elements) until the whole envelope fits.
//!
//! ```
//! use pagehook_guest::teams::{self, Card};
//!
//! let card = Card::new()
//!     .push(teams::heading("Release notes"))
//!     .push(teams::fact_set([("Space", "ENG"), ("Author", "Ada")]))
//!     .push(teams::text_block("The first lines of the page…"))
//!     .action(teams::open_url("Open page", "https://wiki.example.com/x"));
//! let json = card.to_json(); // for TeamsMessage::card
//! assert!(teams::message_size(&serde_json::from_str(&json).unwrap()) <= teams::MAX_MESSAGE_BYTES);
//! ```

use serde_json::{Map, Value, json};

use crate::text::truncate;

/// The Adaptive Card version Teams renders everywhere.
pub const CARD_VERSION: &str = "1.5";

/// The schema URL cards declare.
pub const SCHEMA_URL: &str = "http://adaptivecards.io/schemas/adaptive-card.json";

/// Largest serialized envelope [`Card::to_json`] produces, in bytes. Teams
/// documents 28 KB for the whole payload; this stays some hundred bytes under
/// 28 KiB so that the host's own envelope (key order, extra fields) still fits.
pub const MAX_MESSAGE_BYTES: usize = 28_000;

/// Shortening never takes a text below this many characters; past that,
/// trailing elements are dropped instead, so what remains is still readable.
const MIN_KEPT_CHARS: usize = 100;

/// An Adaptive Card under construction: body elements and link actions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Card {
    body: Vec<Value>,
    actions: Vec<Value>,
}

impl Card {
    /// An empty card.
    pub fn new() -> Self {
        Card::default()
    }

    /// Append a body element ([`text_block`], [`heading`], [`fact_set`], ...).
    pub fn push(mut self, element: Value) -> Self {
        self.body.push(element);
        self
    }

    /// Append a card-level action (an [`open_url`] button).
    pub fn action(mut self, action: Value) -> Self {
        self.actions.push(action);
        self
    }

    /// The card as JSON, exactly as built (no size fitting).
    pub fn to_value(&self) -> Value {
        let mut card = json!({
            "type": "AdaptiveCard",
            "$schema": SCHEMA_URL,
            "version": CARD_VERSION,
            "body": self.body,
        });
        if !self.actions.is_empty() {
            card["actions"] = Value::Array(self.actions.clone());
        }
        card
    }

    /// The card as a JSON string for `TeamsMessage::card`, shortened so the
    /// message envelope is at most [`MAX_MESSAGE_BYTES`].
    pub fn to_json(&self) -> String {
        let mut card = self.to_value();
        fit(&mut card, MAX_MESSAGE_BYTES);
        card.to_string()
    }
}

/// A paragraph of text (Teams' markdown subset applies), wrapped rather
/// than cut off at the card's edge.
pub fn text_block(text: &str) -> Value {
    json!({ "type": "TextBlock", "text": text, "wrap": true })
}

/// A heading: large, bold, and marked as a heading for screen readers.
pub fn heading(text: &str) -> Value {
    json!({
        "type": "TextBlock",
        "text": text,
        "wrap": true,
        "size": "Large",
        "weight": "Bolder",
        "style": "heading",
    })
}

/// Small, muted text for secondary details (who, when, where).
pub fn subtle_text(text: &str) -> Value {
    json!({
        "type": "TextBlock",
        "text": text,
        "wrap": true,
        "size": "Small",
        "isSubtle": true,
    })
}

/// Name/value pairs shown as a two-column list (`Space: ENG`).
pub fn fact_set<K: AsRef<str>, V: AsRef<str>>(facts: impl IntoIterator<Item = (K, V)>) -> Value {
    let facts: Vec<Value> = facts
        .into_iter()
        .map(|(k, v)| json!({ "title": k.as_ref(), "value": v.as_ref() }))
        .collect();
    json!({ "type": "FactSet", "facts": facts })
}

/// Side-by-side columns, each a list of elements; every column stretches
/// to an equal share of the width.
pub fn column_set(columns: impl IntoIterator<Item = Vec<Value>>) -> Value {
    let columns: Vec<Value> = columns
        .into_iter()
        .map(|items| json!({ "type": "Column", "width": "stretch", "items": items }))
        .collect();
    json!({ "type": "ColumnSet", "columns": columns })
}

/// A button that opens `url`; the only action kind a plugin can use,
/// since nothing can call a plugin back.
pub fn open_url(title: &str, url: &str) -> Value {
    json!({ "type": "Action.OpenUrl", "title": title, "url": url })
}

/// The message a Workflows webhook receives for `card`; what the host sends
/// and what the size limit applies to.
pub fn envelope(card: &Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": card,
        }],
    })
}

/// Bytes of the serialized [`envelope`] of `card`.
pub fn message_size(card: &Value) -> usize {
    envelope(card).to_string().len()
}

/// Shorten `card` in place until its envelope is at most `max_bytes`:
/// first the longest texts (TextBlock and TextRun text, fact values), each
/// kept to at least 100 characters and ending in "…"; then trailing body
/// elements and actions are dropped. Returns false only if even an empty
/// card does not fit.
pub fn fit(card: &mut Value, max_bytes: usize) -> bool {
    loop {
        let size = message_size(card);
        if size <= max_bytes {
            return true;
        }
        let over = size - max_bytes;

        let mut texts = Vec::new();
        shrinkable_texts(card, String::new(), &mut texts);
        if let Some((pointer, chars)) = texts.into_iter().max_by_key(|(_, chars)| *chars)
            && chars > MIN_KEPT_CHARS
        {
            if let Some(Value::String(s)) = card.pointer_mut(&pointer) {
                let keep = chars_to_keep(s, chars, over).max(MIN_KEPT_CHARS);
                *s = truncate(s, keep);
            }
            continue;
        }

        let removed = ["body", "actions"].into_iter().any(|key| {
            card.get_mut(key)
                .and_then(Value::as_array_mut)
                .and_then(Vec::pop)
                .is_some()
        });
        if !removed {
            return false;
        }
    }
}

/// How many characters of `s` (`chars` long) to keep, ellipsis included,
/// so that its JSON form shrinks by at least `over` bytes: counts the
/// serialized size of each dropped character (2 for `"`, 3 for `é`...), so
/// a text is cut by what it really costs, not by a guess.
fn chars_to_keep(s: &str, chars: usize, over: usize) -> usize {
    const ELLIPSIS_BYTES: usize = 3;
    let mut saved = 0;
    let mut dropped = 0;
    for c in s.chars().rev() {
        if saved >= over + ELLIPSIS_BYTES {
            break;
        }
        saved += match c {
            '"' | '\\' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        dropped += 1;
    }
    // `truncate` keeps `keep - 1` characters and adds the ellipsis.
    (chars + 1).saturating_sub(dropped)
}

/// JSON pointers (and character counts) of the strings [`fit`] may shorten.
fn shrinkable_texts(value: &Value, pointer: String, out: &mut Vec<(String, usize)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_pointer =
                    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (child, is_shrinkable(map, key)) {
                    (Value::String(s), true) => out.push((child_pointer, s.chars().count())),
                    _ => shrinkable_texts(child, child_pointer, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                shrinkable_texts(item, format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn is_shrinkable(object: &Map<String, Value>, key: &str) -> bool {
    let kind = object.get("type").and_then(Value::as_str);
    match key {
        "text" => matches!(kind, Some("TextBlock" | "TextRun")),
        // A fact is a `{title, value}` object without a type.
        "value" => kind.is_none() && object.contains_key("title"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microsoft's Adaptive Card schema, from the shared folder beside the
    /// repository (it is not vendored into the crate).
    fn schema_validator() -> Option<jsonschema::Validator> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/schemas/adaptive-card-1.6.schema.json"
        );
        let text = std::fs::read_to_string(path).ok()?;
        let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
        Some(jsonschema::validator_for(&schema).expect("schema compiles"))
    }

    fn assert_valid(card: &Value) {
        let Some(validator) = schema_validator() else {
            eprintln!("shared/schemas not found; skipping schema validation");
            return;
        };
        let errors: Vec<String> = validator.iter_errors(card).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "card invalid: {errors:?}\n{card:#}");
    }

    fn sample_card(excerpt: &str) -> Card {
        Card::new()
            .push(heading("Release notes"))
            .push(subtle_text("Ada Lovelace created a page in ENG"))
            .push(fact_set([("Space", "ENG"), ("Version", "1")]))
            .push(column_set([
                vec![text_block("left")],
                vec![text_block("right")],
            ]))
            .push(text_block(excerpt))
            .action(open_url("Open page", "https://wiki.example.com/pages/1"))
    }

    #[test]
    fn card_has_the_adaptive_card_shape() {
        let card = sample_card("hello").to_value();
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.5");
        assert_eq!(card["$schema"], SCHEMA_URL);
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(card["body"][0]["style"], "heading");
        assert_valid(&card);
        let no_actions = Card::new().push(text_block("x")).to_value();
        assert!(no_actions.get("actions").is_none());
        assert_valid(&no_actions);
    }

    #[test]
    fn envelope_wraps_card_as_workflows_expects() {
        let card = sample_card("x").to_value();
        let env = envelope(&card);
        assert_eq!(env["type"], "message");
        assert_eq!(
            env["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(env["attachments"][0]["content"], card);
    }

    #[test]
    fn small_cards_are_left_alone() {
        let card = sample_card("short excerpt");
        let json: Value = serde_json::from_str(&card.to_json()).unwrap();
        assert_eq!(json, card.to_value());
    }

    #[test]
    fn long_text_is_shortened_to_fit() {
        let card = sample_card(&"é\"<".repeat(20_000));
        let json: Value = serde_json::from_str(&card.to_json()).unwrap();
        assert!(message_size(&json) <= MAX_MESSAGE_BYTES);
        assert!(
            message_size(&json) > MAX_MESSAGE_BYTES - 100,
            "cut far too much"
        );
        let excerpt = json["body"][4]["text"].as_str().unwrap();
        assert!(excerpt.ends_with('…'));
        // Everything else survives.
        assert_eq!(json["body"].as_array().unwrap().len(), 5);
        assert_eq!(json["body"][0]["text"], "Release notes");
        assert_valid(&json);
    }

    #[test]
    fn many_long_texts_are_each_shortened() {
        let long = "x".repeat(5_000);
        let mut card = Card::new();
        for _ in 0..20 {
            card = card.push(text_block(&long));
        }
        card = card.push(fact_set((0..20).map(|i| (format!("k{i}"), long.clone()))));
        let json: Value = serde_json::from_str(&card.to_json()).unwrap();
        assert!(message_size(&json) <= MAX_MESSAGE_BYTES);
        assert_eq!(json["body"].as_array().unwrap().len(), 21);
        assert_valid(&json);
    }

    #[test]
    fn too_many_elements_are_dropped_from_the_end() {
        let mut card = Card::new().push(heading("Title"));
        for i in 0..2_000 {
            card = card.push(text_block(&format!("line {i}")));
        }
        let json: Value = serde_json::from_str(&card.to_json()).unwrap();
        assert!(message_size(&json) <= MAX_MESSAGE_BYTES);
        assert_eq!(json["body"][0]["text"], "Title");
        assert_eq!(json["body"][1]["text"], "line 0");
        assert_valid(&json);
    }

    #[test]
    fn fit_reports_impossible_limits() {
        let mut card = sample_card("x").to_value();
        assert!(!fit(&mut card, 10));
    }
}
