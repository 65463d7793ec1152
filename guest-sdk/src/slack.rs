//! Slack Block Kit that Slack accepts.
//!
//! Slack rejects a whole message (`invalid_blocks`, and the host does not
//! retry that) when one block breaks a limit: more than 50 blocks, a header
//! over 150 characters, a section over 3000, a button label over 75. Text
//! from Confluence has no such limits, and unescaped `&`, `<`, `>` in mrkdwn
//! turn titles into broken links or mentions. Every builder here escapes
//! what it must and shortens what is too long (cutting on character
//! boundaries, ending in "…"), so a plugin cannot produce blocks Slack
//! refuses because of the text it was given.
//!
//! ```
//! use pagehook_guest::slack::{self, Blocks};
//!
//! let mut blocks = Blocks::new();
//! blocks.push(slack::header("Release notes <Q3>"));
//! blocks.push(slack::section(&format!(
//!     "{} created {}",
//!     slack::mrkdwn_escape("Ada & co"),
//!     slack::link("https://wiki.example.com/x", "Release notes"),
//! )));
//! blocks.push(slack::actions([slack::LinkButton::new("Open", "https://wiki.example.com/x")]));
//! let json = blocks.to_json(); // for SlackMessage::blocks
//! assert!(json.starts_with('['));
//! ```

use serde_json::{Value, json};

use crate::text::truncate;

/// Most blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Most characters in a header block's text.
pub const MAX_HEADER_CHARS: usize = 150;
/// Most characters in a section's text (and in a context element here).
pub const MAX_SECTION_CHARS: usize = 3000;
/// Most fields in a section.
pub const MAX_SECTION_FIELDS: usize = 10;
/// Most characters in one section field.
pub const MAX_FIELD_CHARS: usize = 2000;
/// Most elements in a context block.
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// Most elements in an actions block.
pub const MAX_ACTION_ELEMENTS: usize = 25;
/// Most characters in a button's label.
pub const MAX_BUTTON_TEXT_CHARS: usize = 75;
/// Most characters in a button's URL.
pub const MAX_URL_CHARS: usize = 3000;

/// `text` with `&`, `<` and `>` escaped as Slack requires in mrkdwn and
/// plain text it parses, so a title like `<Q3> & more` shows as written
/// instead of becoming a broken link or mention.
pub fn mrkdwn_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A mrkdwn link `<url|text>` that cannot break out of its brackets: the
/// text is escaped and newlines flattened; in the URL, characters that would
/// end or split the link (`<`, `>`, `|`, spaces, controls) are
/// percent-encoded and `&` is escaped. With empty text it is `<url>`.
pub fn link(url: &str, text: &str) -> String {
    let url = escape_url(url);
    let text = mrkdwn_escape(&text.replace(['\r', '\n'], " "));
    if text.trim().is_empty() {
        format!("<{url}>")
    } else {
        format!("<{url}|{text}>")
    }
}

fn escape_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.trim().chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '|' => out.push_str("%7C"),
            ' ' => out.push_str("%20"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// mrkdwn `text` shortened to `max_chars` without cutting through an escape
/// (`&amp;`) or a link/mention (`<...>`): a cut there would leave Slack
/// markup half-open. Ends in "…" when shortened.
pub fn truncate_mrkdwn(text: &str, max_chars: usize) -> String {
    if text.chars().nth(max_chars).is_none() {
        return text.to_owned();
    }
    let shortened = truncate(text, max_chars);
    let kept = shortened.trim_end_matches(crate::text::ELLIPSIS);
    // Back up to before an unclosed `<` or `&` in what was kept.
    let open_angle = kept.rfind('<').filter(|&i| !kept[i..].contains('>'));
    let open_amp = kept.rfind('&').filter(|&i| !kept[i..].contains(';'));
    let cut = match (open_angle, open_amp) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => kept.len(),
    };
    format!("{}{}", kept[..cut].trim_end(), crate::text::ELLIPSIS)
}

fn plain_text(text: &str, max_chars: usize) -> Value {
    json!({ "type": "plain_text", "text": non_empty(truncate(text, max_chars)), "emoji": true })
}

fn mrkdwn(text: &str, max_chars: usize) -> Value {
    json!({ "type": "mrkdwn", "text": non_empty(truncate_mrkdwn(text, max_chars)) })
}

/// Slack rejects empty text objects; a single space renders as nothing.
fn non_empty(text: String) -> String {
    if text.trim().is_empty() {
        " ".to_owned()
    } else {
        text
    }
}

/// A header block: large bold plain text (no mrkdwn, no escaping needed),
/// shortened to 150 characters, line breaks flattened.
pub fn header(text: &str) -> Value {
    json!({
        "type": "header",
        "text": plain_text(&text.replace(['\r', '\n'], " "), MAX_HEADER_CHARS),
    })
}

/// A section block with mrkdwn text (escape inserted values with
/// [`mrkdwn_escape`]), shortened to 3000 characters.
pub fn section(mrkdwn_text: &str) -> Value {
    json!({ "type": "section", "text": mrkdwn(mrkdwn_text, MAX_SECTION_CHARS) })
}

/// A section shown as two columns of mrkdwn fields (e.g. `*Space*\nENG`):
/// at most 10 fields of 2000 characters each; extra fields are dropped.
pub fn section_fields<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> Value {
    let fields: Vec<Value> = fields
        .into_iter()
        .take(MAX_SECTION_FIELDS)
        .map(|f| mrkdwn(f.as_ref(), MAX_FIELD_CHARS))
        .collect();
    json!({ "type": "section", "fields": fields })
}

/// A context block: small grey mrkdwn lines (who, where, when); at most 10
/// elements, extra ones dropped.
pub fn context<S: AsRef<str>>(elements: impl IntoIterator<Item = S>) -> Value {
    let elements: Vec<Value> = elements
        .into_iter()
        .take(MAX_CONTEXT_ELEMENTS)
        .map(|e| mrkdwn(e.as_ref(), MAX_SECTION_CHARS))
        .collect();
    json!({ "type": "context", "elements": elements })
}

/// A divider line.
pub fn divider() -> Value {
    json!({ "type": "divider" })
}

/// A button that opens a URL. Plugins get no interactivity (no callbacks
/// reach them), so link buttons are the only kind offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkButton {
    /// Label, shortened to 75 characters.
    pub text: String,
    /// Target URL; a button whose URL is over 3000 characters is left out,
    /// since a cut URL would lead somewhere wrong.
    pub url: String,
    /// Green (`primary`) styling.
    pub primary: bool,
}

impl LinkButton {
    /// A plain link button.
    pub fn new(text: impl Into<String>, url: impl Into<String>) -> Self {
        LinkButton {
            text: text.into(),
            url: url.into(),
            primary: false,
        }
    }

    /// Make it the green primary button.
    pub fn primary(mut self) -> Self {
        self.primary = true;
        self
    }
}

/// An actions block of link buttons: at most 25, buttons with over-long or
/// empty URLs left out, labels shortened to 75 characters. Each button gets
/// an `action_id` unique within the block, as Slack requires.
pub fn actions(buttons: impl IntoIterator<Item = LinkButton>) -> Value {
    let elements: Vec<Value> = buttons
        .into_iter()
        .filter(|b| {
            let url = b.url.trim();
            !url.is_empty() && url.chars().count() <= MAX_URL_CHARS
        })
        .take(MAX_ACTION_ELEMENTS)
        .enumerate()
        .map(|(i, b)| {
            let mut button = json!({
                "type": "button",
                "action_id": format!("link-{i}"),
                "text": plain_text(&b.text, MAX_BUTTON_TEXT_CHARS),
                "url": b.url.trim(),
            });
            if b.primary {
                button["style"] = json!("primary");
            }
            button
        })
        .collect();
    json!({ "type": "actions", "elements": elements })
}

/// The blocks of one message, capped at 50: pushes past the cap are
/// dropped (and counted), and empty actions or context blocks, which Slack
/// rejects, are skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blocks {
    blocks: Vec<Value>,
    dropped: usize,
}

impl Blocks {
    /// No blocks yet.
    pub fn new() -> Self {
        Blocks::default()
    }

    /// Append a block; returns false when it was not added (cap reached or
    /// an element-less block).
    pub fn push(&mut self, block: Value) -> bool {
        let empty_elements = block
            .get("elements")
            .and_then(Value::as_array)
            .is_some_and(|e| e.is_empty());
        let empty_fields = block
            .get("fields")
            .and_then(Value::as_array)
            .is_some_and(|e| e.is_empty());
        if empty_elements || empty_fields {
            return false;
        }
        if self.blocks.len() >= MAX_BLOCKS {
            self.dropped += 1;
            return false;
        }
        self.blocks.push(block);
        true
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True when there are none (then send no `blocks` at all).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// How many pushes were dropped at the cap, so a plugin can say "and N more".
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The blocks as a JSON array value.
    pub fn to_value(&self) -> Value {
        Value::Array(self.blocks.clone())
    }

    /// The blocks as a JSON array string, for `SlackMessage::blocks`.
    pub fn to_json(&self) -> String {
        Value::Array(self.blocks.clone()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(block: &Value) -> &str {
        block["text"]["text"].as_str().unwrap()
    }

    #[test]
    fn escape_covers_the_three_control_characters() {
        assert_eq!(mrkdwn_escape("a & <b> *c*"), "a &amp; &lt;b&gt; *c*");
    }

    #[test]
    fn link_cannot_break_out() {
        assert_eq!(link("https://x/a", "Title"), "<https://x/a|Title>");
        assert_eq!(
            link("https://x/?a=1&b=<2>|3 4", "a|b <c> & d\ne"),
            "<https://x/?a=1&amp;b=%3C2%3E%7C3%204|a|b &lt;c&gt; &amp; d e>"
        );
        assert_eq!(link("https://x", "  "), "<https://x>");
    }

    #[test]
    fn header_is_capped_at_150_chars() {
        let b = header(&"é".repeat(400));
        let t = text_of(&b);
        assert_eq!(t.chars().count(), MAX_HEADER_CHARS);
        assert!(t.ends_with('…'));
        assert_eq!(b["text"]["type"], "plain_text");
        assert_eq!(text_of(&header("a\nb")), "a b");
    }

    #[test]
    fn section_is_capped_at_3000_chars() {
        let b = section(&"x".repeat(10_000));
        assert_eq!(text_of(&b).chars().count(), MAX_SECTION_CHARS);
        assert_eq!(text_of(&section("short")), "short");
        assert_eq!(text_of(&section("")), " ");
    }

    #[test]
    fn truncation_never_splits_an_escape_or_a_link() {
        let text = format!("{}&amp;tail", "a".repeat(9));
        let t = truncate_mrkdwn(&text, 12);
        assert_eq!(t, "aaaaaaaaa…");
        let text = format!("{}<https://x|y> tail", "a".repeat(5));
        let t = truncate_mrkdwn(&text, 10);
        assert_eq!(t, "aaaaa…");
        assert_eq!(truncate_mrkdwn("<https://x|y> tail", 15), "<https://x|y>…");
    }

    #[test]
    fn context_keeps_at_most_10_elements() {
        let b = context((0..20).map(|i| i.to_string()));
        assert_eq!(
            b["elements"].as_array().unwrap().len(),
            MAX_CONTEXT_ELEMENTS
        );
    }

    #[test]
    fn section_fields_keeps_at_most_10_and_caps_each() {
        let long = "y".repeat(5000);
        let b = section_fields(std::iter::repeat_n(long.as_str(), 12));
        let fields = b["fields"].as_array().unwrap();
        assert_eq!(fields.len(), MAX_SECTION_FIELDS);
        assert_eq!(
            fields[0]["text"].as_str().unwrap().chars().count(),
            MAX_FIELD_CHARS
        );
    }

    #[test]
    fn actions_respect_button_limits() {
        let long_url = format!("https://x/{}", "p".repeat(MAX_URL_CHARS));
        let buttons = std::iter::once(LinkButton::new("too long url", long_url))
            .chain(std::iter::once(LinkButton::new("empty url", " ")))
            .chain((0..30).map(|i| LinkButton::new("b".repeat(100), format!("https://x/{i}"))));
        let b = actions(buttons);
        let els = b["elements"].as_array().unwrap();
        assert_eq!(els.len(), MAX_ACTION_ELEMENTS);
        assert_eq!(els[0]["url"], "https://x/0");
        assert_eq!(
            els[0]["text"]["text"].as_str().unwrap().chars().count(),
            MAX_BUTTON_TEXT_CHARS
        );
        let ids: std::collections::HashSet<_> = els
            .iter()
            .map(|e| e["action_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), els.len());
        let p = actions([LinkButton::new("Open", "https://x").primary()]);
        assert_eq!(p["elements"][0]["style"], "primary");
    }

    #[test]
    fn blocks_cap_at_50_and_skip_empty_blocks() {
        let mut blocks = Blocks::new();
        assert!(!blocks.push(actions([])));
        assert!(!blocks.push(context(Vec::<String>::new())));
        for _ in 0..60 {
            blocks.push(divider());
        }
        assert_eq!(blocks.len(), MAX_BLOCKS);
        assert_eq!(blocks.dropped(), 10);
        let parsed: Value = serde_json::from_str(&blocks.to_json()).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), MAX_BLOCKS);
    }
}
