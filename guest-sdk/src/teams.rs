//! Adaptive Cards that Microsoft Teams accepts, with Confluence text that
//! stays text.
//!
//! Teams channels are reached through a Workflows webhook that takes an
//! Adaptive Card (version 1.5) wrapped in a message envelope, and refuses
//! a payload over about 28 KB; it has no way to call a plugin back, so a
//! channel card (`post-teams`) offers only `Action.OpenUrl`. A page
//! excerpt or a long list of facts can push a card over the limit, so
//! [`Card::to_json`] shortens the longest texts (and, as a last resort,
//! drops trailing elements) until the whole envelope fits: the limit is
//! measured on the serialized [`envelope`], the bytes the host sends.
//!
//! ## Teams bots (contract 0.3.0)
//!
//! A Teams bot connection carries personal messages
//! ([`TeamsDirectMessage`](crate::TeamsDirectMessage), `dm-teams`) and
//! answers to what people write to the bot
//! ([`TeamsReply`](crate::TeamsReply), `reply-teams`, see
//! [`chat`](crate::chat)). A bot's message is plain text with an optional
//! card, and the bot *does* receive the card's buttons: a [`submit`]
//! button comes back as a `teams-card-action` event with the button's
//! data. Never put one on a `post-teams` card: a Workflows webhook drops
//! it. [`Card::to_bot_json`] fits a card beside the message's text (the
//! host sends both in one activity, within the same 28 KB);
//! [`page_preview`] and [`page_result`] show a page the host read for a
//! Teams user (search results, a page shared from a card).
//!
//! ## Escaping is the default
//!
//! TextBlock text and facts are read as Teams' markdown subset: `[label](url)`
//! is a link whose label can say anything, and `<at>Name</at>` is how a card
//! mentions someone. So every text builder here ([`text_block`], [`heading`],
//! [`subtle_text`], [`fact_set`]) takes a [`Markdown`], and a plain `&str` or
//! `String` converts into one *escaped* (see [`markdown_escape`]):
//!
//! - `&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;`, which Adaptive Card
//!   renderers decode back for display: `<at>`, `<https://…>` and HTML in
//!   content show as written. (Teams only turns `<at>…</at>` into a mention
//!   when the card's `msteams.entities` lists it, which these builders never
//!   do; the escaping makes sure content cannot even spell one.)
//! - an invisible U+200B ZERO WIDTH SPACE is put after each `]`, so
//!   `[label](url)`, `[label][ref]` and `[ref]: url` in content are no
//!   longer link syntax. The text looks the same.
//! - Emphasis and list markers in content (`**`, `_`, `- `) are left alone:
//!   they change how a text looks, not what it links to or who it notifies.
//!
//! Markdown the plugin author writes goes through [`markdown!`](crate::markdown!)
//! (a `format!` whose template is markup and whose arguments are escaped),
//! [`Markdown::trusted`], or [`Markdown::link`] for a link with an escaped
//! label. [`open_url`] titles are plain text in Teams and are not escaped.
//!
//! ```
//! use pagehook_guest::markdown;
//! use pagehook_guest::teams::{self, Card, Markdown};
//!
//! let title = "Release notes <at>Everyone</at>";
//! let card = Card::new()
//!     .push(teams::heading(title)) // content: escaped
//!     .push(teams::fact_set([("Space", "ENG"), ("Author", "Ada")]))
//!     .push(teams::text_block(markdown!(
//!         "**{}** created {}",
//!         "Ada",
//!         Markdown::link("https://wiki.example.com/x", title),
//!     )))
//!     .action(teams::open_url("Open page", "https://wiki.example.com/x"));
//! let json = card.to_json(); // for TeamsMessage::card
//! assert!(!json.contains("<at>"));
//! assert!(json.contains("Release notes &lt;at&gt;Everyone&lt;/at&gt;"));
//! assert!(teams::message_size(&serde_json::from_str(&json).unwrap()) <= teams::MAX_MESSAGE_BYTES);
//! ```

use serde_json::{Map, Value, json};

use crate::text::truncate;

/// The Adaptive Card version Teams renders everywhere.
pub const CARD_VERSION: &str = "1.5";

/// The schema URL cards declare.
pub const SCHEMA_URL: &str = "http://adaptivecards.io/schemas/adaptive-card.json";

/// Largest serialized [`envelope`] [`Card::to_json`] produces, in bytes.
/// Teams documents 28 KB for the whole payload and the host refuses an
/// envelope over 28 KiB (28 672 bytes) before sending; this stays some
/// hundred bytes under that, measured on the same envelope.
pub const MAX_MESSAGE_BYTES: usize = 28_000;

/// Shortening never takes a text below this many characters; past that,
/// trailing elements are dropped instead, so what remains is still readable.
const MIN_KEPT_CHARS: usize = 100;

/// `text` made safe for Teams' markdown (TextBlock text, facts): `&`, `<`,
/// `>` as `&amp;`, `&lt;`, `&gt;` (Adaptive Card renderers decode them for
/// display), and U+200B ZERO WIDTH SPACE after each `]` so no link syntax
/// survives. [`Markdown::text`] is the same as a [`Markdown`].
pub fn markdown_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            ']' => out.push_str("]\u{200B}"),
            c => out.push(c),
        }
    }
    out
}

crate::text::safe_text! {
    /// Text in Teams' markdown subset that is safe to put in a card: content in
    /// it is escaped ([`markdown_escape`]), markup in it was written by the
    /// plugin author.
    ///
    /// Made by escaping ([`Markdown::text`], or `From<&str>`/`From<String>`,
    /// which is what happens when a builder is given a string), by
    /// [`Markdown::link`], by [`markdown!`](crate::markdown!), or by
    /// [`Markdown::trusted`] for markup the author vouches for.
    ///
    /// ```
    /// use pagehook_guest::teams::Markdown;
    ///
    /// assert_eq!(Markdown::text("<at>All</at> & co").as_str(), "&lt;at&gt;All&lt;/at&gt; &amp; co");
    /// assert_eq!(Markdown::text("[win](https://evil)").as_str(), "[win]\u{200B}(https://evil)");
    /// assert_eq!(Markdown::trusted("**bold**").as_str(), "**bold**");
    /// ```
    pub struct Markdown;
    escape: markdown_escape;

    /// Empty, to [`push`](Markdown::push) parts onto.
    fn new;

    /// Content shown as written: see [`markdown_escape`].
    fn text(content);

    /// Markup taken as is (`**bold**`, a link you built). Only for text the
    /// plugin author wrote: never pass Confluence content here.
    fn trusted;

    extra {
        /// A link `[label](url)`: the label is escaped (newlines flattened) and
        /// characters that would end the URL early (`(`, `)`, `<`, `>`, spaces,
        /// controls) are percent-encoded. With an empty label the URL is shown.
        /// A URL that is not http(s) ([`crate::text::web_url`]) makes no link:
        /// the label alone.
        pub fn link(url: &str, label: &str) -> Self {
            if crate::text::web_url(url).is_none() {
                // `javascript:` and the like: the label alone, never a link.
                return Markdown(markdown_escape(&label.replace(['\r', '\n'], " ")));
            }
            let url = escape_url(url);
            let label = label.replace(['\r', '\n'], " ");
            let label = if label.trim().is_empty() {
                markdown_escape(&url)
            } else {
                markdown_escape(&label)
            };
            Markdown(format!("[{label}]({url})"))
        }
    }

    /// Append a part (a string is escaped on the way in).
    fn push;

    /// This text followed by `part`, to build a line in one expression.
    fn then;

    /// True when there is no text.
    fn is_empty;

    /// The markdown.
    fn as_str;

    /// The markdown.
    fn into_string;
}
crate::text::safe_text_argument!(Markdown);

fn escape_url(url: &str) -> String {
    crate::text::escape_url(url, |c| match c {
        '(' => Some("%28"),
        ')' => Some("%29"),
        '<' => Some("%3C"),
        '>' => Some("%3E"),
        '[' => Some("%5B"),
        ']' => Some("%5D"),
        ' ' => Some("%20"),
        _ => None,
    })
}

/// `format!` for Teams card markdown: the template is markup the author
/// wrote, each argument is converted with `Markdown::from`, so strings
/// (Confluence content) are escaped while [`Markdown`] values and numbers go
/// in as they are. Only `{}` placeholders are allowed (and `{{`/`}}`).
///
/// ```
/// use pagehook_guest::markdown;
/// use pagehook_guest::teams::Markdown;
///
/// let m = markdown!("**{}** updated {}", "<at>Ada</at>", Markdown::link("https://x/1", "Q3"));
/// assert_eq!(m.as_str(), "**&lt;at&gt;Ada&lt;/at&gt;** updated [Q3](https://x/1)");
/// ```
///
/// ```compile_fail,E0080
/// let name = "<at>Ada</at>";
/// let m = pagehook_guest::markdown!("**{name}**"); // not escaped: refused
/// ```
#[macro_export]
macro_rules! markdown {
    ($template:literal $(, $arg:expr)* $(,)?) => {
        $crate::__safe_text_format!($crate::teams::Markdown; $template $(, $arg)*)
    };
}

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
    /// `Action.OpenUrl`s inside it (an `ActionSet`, a `selectAction`) whose
    /// URL is not http(s) are taken out.
    pub fn push(mut self, mut element: Value) -> Self {
        drop_unsafe_actions(&mut element);
        self.body.push(element);
        self
    }

    /// Append a card-level action (an [`open_url`] button, or on a bot's
    /// message a [`submit`] button); an `Action.OpenUrl` whose URL is not
    /// http(s) (a `javascript:` content URL, say) is left out.
    pub fn action(mut self, action: Value) -> Self {
        if !opens_unsafe_url(&action) {
            self.actions.push(action);
        }
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

    /// The card as a JSON string for a Teams bot's message (`dm-teams`,
    /// `reply-teams`) whose text is `text`, shortened so the whole
    /// [`bot_activity`] (text and card, what the host sends) is at most
    /// [`MAX_MESSAGE_BYTES`]. [`TeamsDirectMessage::with_card`](crate::TeamsDirectMessage::with_card)
    /// and [`TeamsReply::with_card`](crate::TeamsReply::with_card) call it.
    pub fn to_bot_json(&self, text: &str) -> String {
        let empty = json!({});
        let beside =
            bot_activity(text, Some(&empty)).to_string().len() - envelope(&empty).to_string().len();
        let mut card = self.to_value();
        fit(&mut card, MAX_MESSAGE_BYTES.saturating_sub(beside));
        card.to_string()
    }

    /// True when the card (body or actions) has an `Action.Submit`, which
    /// only a bot's message can carry.
    pub fn has_submit(&self) -> bool {
        fn walk(v: &Value) -> bool {
            match v {
                Value::Object(map) => {
                    map.get("type").and_then(Value::as_str) == Some(SUBMIT)
                        || map.values().any(walk)
                }
                Value::Array(items) => items.iter().any(walk),
                _ => false,
            }
        }
        self.body.iter().chain(&self.actions).any(walk)
    }
}

/// A paragraph of text, wrapped rather than cut off at the card's edge. A
/// string is escaped (content shown as written); build markup with
/// [`markdown!`](crate::markdown!) or [`Markdown`].
pub fn text_block(text: impl Into<Markdown>) -> Value {
    json!({ "type": "TextBlock", "text": text.into().0, "wrap": true })
}

/// A heading: large, bold, and marked as a heading for screen readers.
/// Strings are escaped, as in [`text_block`].
pub fn heading(text: impl Into<Markdown>) -> Value {
    json!({
        "type": "TextBlock",
        "text": text.into().0,
        "wrap": true,
        "size": "Large",
        "weight": "Bolder",
        "style": "heading",
    })
}

/// Small, muted text for secondary details (who, when, where). Strings are
/// escaped, as in [`text_block`].
pub fn subtle_text(text: impl Into<Markdown>) -> Value {
    json!({
        "type": "TextBlock",
        "text": text.into().0,
        "wrap": true,
        "size": "Small",
        "isSubtle": true,
    })
}

/// Name/value pairs shown as a two-column list (`Space: ENG`). Teams reads
/// both as markdown, so strings are escaped, as in [`text_block`].
pub fn fact_set<K: Into<Markdown>, V: Into<Markdown>>(
    facts: impl IntoIterator<Item = (K, V)>,
) -> Value {
    let facts: Vec<Value> = facts
        .into_iter()
        .map(|(k, v)| json!({ "title": k.into().0, "value": v.into().0 }))
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

/// A button that opens `url`; the only action kind a channel card
/// (`post-teams`) can use, since a Workflows webhook calls nobody back.
/// Its title is plain text in Teams (no markdown, no mentions), so it is
/// not escaped. [`Card::action`] and [`Card::push`] leave it out when
/// `url` is not http(s).
pub fn open_url(title: &str, url: &str) -> Value {
    json!({ "type": "Action.OpenUrl", "title": title, "url": url })
}

const SUBMIT: &str = "Action.Submit";

/// A button that sends `data` (a JSON object) back to the bot: the host
/// hands it to the plugin as a `teams-card-action` event whose `value` is
/// `data`, and, when `data` has a `"page-id"`, with that page if the person
/// who pressed it may view it. Only for a bot's messages (`dm-teams`,
/// `reply-teams`): a channel card (`post-teams`) goes through a Workflows
/// webhook, which cannot receive it. The title is plain text, as in
/// [`open_url`]; `data` that is not an object is sent as `{}` (Teams
/// merges the button's data into an object).
///
/// ```
/// use pagehook_guest::teams::{self, Card};
/// use serde_json::json;
///
/// let card = Card::new()
///     .push(teams::text_block("Release notes"))
///     .action(teams::submit("Share to channel", json!({"action": "share", "page-id": 123456})));
/// assert!(card.has_submit());
/// assert_eq!(card.to_value()["actions"][0]["data"]["page-id"], 123456);
/// ```
pub fn submit(title: &str, data: Value) -> Value {
    let data = if data.is_object() { data } else { json!({}) };
    json!({ "type": SUBMIT, "title": title, "data": data })
}

/// Whether `v` is an `Action.OpenUrl` whose URL is not http(s).
fn opens_unsafe_url(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("Action.OpenUrl")
        && v.get("url")
            .and_then(Value::as_str)
            .is_none_or(|url| crate::text::web_url(url).is_none())
}

/// Takes every `Action.OpenUrl` whose URL is not http(s) out of an element
/// tree: from lists of actions, and as a `selectAction`.
fn drop_unsafe_actions(v: &mut Value) {
    match v {
        Value::Array(items) => {
            items.retain(|item| !opens_unsafe_url(item));
            items.iter_mut().for_each(drop_unsafe_actions);
        }
        Value::Object(map) => {
            if map.get("selectAction").is_some_and(opens_unsafe_url) {
                map.remove("selectAction");
            }
            map.values_mut().for_each(drop_unsafe_actions);
        }
        _ => {}
    }
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

/// The message activity the host sends for a Teams bot's `dm-teams` or
/// `reply-teams`: the text (plain, never read as markdown) and, with a
/// card, the card as an attachment. Teams' 28 KB covers all of it.
pub fn bot_activity(text: &str, card: Option<&Value>) -> Value {
    let mut activity = json!({ "type": "message", "text": text, "textFormat": "plain" });
    if let Some(card) = card {
        activity["attachments"] = envelope(card)["attachments"].clone();
    }
    activity
}

/// Bytes of the serialized [`bot_activity`].
pub fn bot_message_size(text: &str, card: Option<&Value>) -> usize {
    bot_activity(text, card).to_string().len()
}

/// Most bytes of a bot message's text: the builders cut a longer one
/// (with "…"), so a card beside it always has room.
pub const MAX_BOT_TEXT_BYTES: usize = 4_000;

/// Longest excerpt in a [`page_preview`], in characters.
const PREVIEW_EXCERPT_CHARS: usize = 500;
/// Longest excerpt in a [`page_result`], in characters.
const RESULT_EXCERPT_CHARS: usize = 200;

/// A page the host read for a Teams user (a search result, the page of a
/// card action) as a card: its title as a heading linked to the page, the
/// space, who last edited it and when, an excerpt, and a button "Open in
/// Confluence". Every piece of Confluence text is escaped.
///
/// ```
/// use pagehook_guest::{teams, testing};
///
/// let mut page = testing::page_summary();
/// page.title = "<at>Everyone</at> Q3 plan".into();
/// let json = teams::page_preview(&page).to_json();
/// assert!(json.contains("&lt;at&gt;Everyone&lt;/at&gt; Q3 plan"));
/// assert!(json.contains("Open in Confluence"));
/// ```
pub fn page_preview(page: &crate::PageSummary) -> Card {
    let mut card = Card::new().push(heading(page_title_link(page)));
    let facts = page_facts(page);
    if !facts.is_empty() {
        card = card.push(subtle_text(facts));
    }
    if let Some(excerpt) = page_excerpt(page, PREVIEW_EXCERPT_CHARS) {
        card = card.push(text_block(excerpt));
    }
    card.action(open_url(OPEN_IN_CONFLUENCE, &page.url))
}

/// One page as a single `Container`, for a list of several (search
/// results): the title as a bold link, the facts of [`page_preview`] in
/// small text, and a short excerpt.
///
/// ```
/// use pagehook_guest::{teams, testing};
///
/// let item = teams::page_result(&testing::page_summary());
/// assert_eq!(item["type"], "Container");
/// assert!(item.to_string().contains("[Release notes](https://wiki.example.com/"));
/// ```
pub fn page_result(page: &crate::PageSummary) -> Value {
    let mut items = vec![text_block(crate::markdown!(
        "**{}**",
        page_title_link(page)
    ))];
    let facts = page_facts(page);
    if !facts.is_empty() {
        items.push(subtle_text(facts));
    }
    if let Some(excerpt) = page_excerpt(page, RESULT_EXCERPT_CHARS) {
        items.push(text_block(excerpt));
    }
    json!({ "type": "Container", "items": items, "separator": true, "spacing": "Medium" })
}

const OPEN_IN_CONFLUENCE: &str = "Open in Confluence";

/// The title linked to the page (the title alone when its URL is not
/// http(s)); "Untitled page" when it has none.
fn page_title_link(page: &crate::PageSummary) -> Markdown {
    let title = page.title.trim();
    let title = if title.is_empty() {
        "Untitled page"
    } else {
        title
    };
    Markdown::link(&page.url, title)
}

/// "Engineering · last edited by Grace Hopper on Jan 1, 2026 · restricted".
fn page_facts(page: &crate::PageSummary) -> Markdown {
    let mut facts: Vec<Markdown> = Vec::new();
    let space = page
        .space_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&page.space_key);
    if !space.is_empty() {
        facts.push(Markdown::text(space));
    }
    let date = page.last_edited_at_ms.map(crate::text::utc_date);
    match (&page.last_editor, date) {
        (Some(editor), Some(date)) => facts.push(crate::markdown!(
            "last edited by {} on {}",
            editor.name(),
            date.as_str()
        )),
        (Some(editor), None) => facts.push(crate::markdown!("last edited by {}", editor.name())),
        (None, Some(date)) => facts.push(crate::markdown!("last edited on {}", date.as_str())),
        (None, None) => {}
    }
    if page.restricted {
        facts.push(Markdown::trusted("restricted"));
    }
    let mut out = Markdown::new();
    for (i, fact) in facts.into_iter().enumerate() {
        if i > 0 {
            out.push(Markdown::trusted(" · "));
        }
        out.push(fact);
    }
    out
}

/// The excerpt, shortened; `None` when there is none.
fn page_excerpt(page: &crate::PageSummary, max_chars: usize) -> Option<Markdown> {
    let excerpt = page
        .excerpt
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())?;
    Some(Markdown::text(&truncate(excerpt, max_chars)))
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
                // Always cut at least one character, so every round makes
                // progress even when one dropped character would be enough.
                let keep = chars_to_keep(s, chars, over)
                    .min(chars - 1)
                    .max(MIN_KEPT_CHARS);
                *s = truncate_markdown(s, keep);
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

/// `text` shortened to `max_chars` (ellipsis included) without ending in half
/// an escape such as `&am`, which would show as written.
fn truncate_markdown(text: &str, max_chars: usize) -> String {
    let shortened = truncate(text, max_chars);
    if shortened.len() == text.len() {
        return shortened;
    }
    let kept = shortened.trim_end_matches(crate::text::ELLIPSIS);
    match kept.rfind('&').filter(|&i| !kept[i..].contains(';')) {
        Some(cut) => format!("{}{}", kept[..cut].trim_end(), crate::text::ELLIPSIS),
        None => shortened,
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
    fn actions_never_open_a_url_that_is_not_http() {
        for url in [
            "javascript:alert(document.cookie)",
            " JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "/pages/viewpage.action?pageId=1",
        ] {
            let card = Card::new()
                .push(text_block("x"))
                .push(json!({ "type": "ActionSet", "actions": [open_url("bad", url), open_url("good", "https://x/1")] }))
                .push(json!({ "type": "Container", "items": [text_block("c")], "selectAction": open_url("bad", url) }))
                .action(open_url("Open page", url))
                .action(open_url("View changes", "https://x/2"));
            let json = card.to_json();
            assert!(!json.contains(url.trim()), "{url}: {json}");
            let value: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(value["actions"].as_array().unwrap().len(), 1, "{json}");
            assert_eq!(value["actions"][0]["url"], "https://x/2");
            assert_eq!(value["body"][1]["actions"][0]["url"], "https://x/1");
            assert!(value["body"][2].get("selectAction").is_none(), "{json}");
            assert_eq!(Markdown::link(url, "Q3 <plan>"), "Q3 &lt;plan&gt;");
            assert_valid(&value);
        }
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
            card = card.push(text_block(format!("line {i}")));
        }
        let json: Value = serde_json::from_str(&card.to_json()).unwrap();
        assert!(message_size(&json) <= MAX_MESSAGE_BYTES);
        assert_eq!(json["body"][0]["text"], "Title");
        assert_eq!(json["body"][1]["text"], "line 0");
        assert_valid(&json);
    }

    /// Every string in `value` that Teams reads as markdown: TextBlock
    /// text and fact titles and values.
    fn markdown_texts(value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(map) => {
                    let kind = map.get("type").and_then(Value::as_str);
                    for (key, child) in map {
                        match (child, key.as_str(), kind) {
                            (Value::String(s), "text", Some("TextBlock")) => out.push(s.clone()),
                            (Value::String(s), "title" | "value", None) => out.push(s.clone()),
                            _ => stack.push(child),
                        }
                    }
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        out
    }

    const HOSTILE: &str =
        "<at>Everyone</at> <!channel> [click here](https://evil.example) [x][r] & <b>";

    #[test]
    fn content_given_to_text_builders_is_escaped() {
        let escaped = "&lt;at&gt;Everyone&lt;/at&gt; &lt;!channel&gt; [click here]\u{200B}(https://evil.example) [x]\u{200B}[r]\u{200B} &amp; &lt;b&gt;";
        assert_eq!(markdown_escape(HOSTILE), escaped);
        let card = Card::new()
            .push(heading(HOSTILE))
            .push(subtle_text(HOSTILE.to_owned()))
            .push(text_block(HOSTILE.to_owned()))
            .push(fact_set([(HOSTILE, HOSTILE)]))
            .push(column_set([vec![text_block(HOSTILE)]]))
            .to_value();
        let texts = markdown_texts(&card);
        assert_eq!(texts.len(), 6);
        for t in texts {
            assert_eq!(t, escaped);
            assert!(
                !t.contains('<') && !t.contains("](") && !t.contains("]["),
                "{t}"
            );
        }
        assert_valid(&card);
        // Action titles are plain text in Teams: shown as written.
        let button = open_url(HOSTILE, "https://x");
        assert_eq!(button["title"], HOSTILE);
    }

    #[test]
    fn trusted_markdown_and_links_are_the_authors() {
        let md = Markdown::trusted("**bold** [docs](https://x) <at>Ada</at>");
        assert_eq!(text_block(&md)["text"], md.as_str());
        assert_eq!(
            crate::markdown!("**{}** by {} ({})", HOSTILE, &md, 3u32).as_str(),
            format!("**{}** by {} (3)", markdown_escape(HOSTILE), md)
        );
        // A link's label is content; its URL cannot close the link early.
        assert_eq!(
            Markdown::link("https://x/a) [b](https://evil", "<at>All</at> [y](z)"),
            "[&lt;at&gt;All&lt;/at&gt; [y]\u{200B}(z)](https://x/a%29%20%5Bb%5D%28https://evil)"
        );
        assert_eq!(Markdown::link("https://x", " "), "[https://x](https://x)");
        let mut m = Markdown::trusted("**Labels:** ");
        m.push("<a>").push(Markdown::trusted("_b_"));
        assert_eq!(m, "**Labels:** &lt;a&gt;_b_");
    }

    #[test]
    fn absurd_content_is_escaped_and_shortened_to_the_envelope_limit() {
        let title = format!("<at>{}</at>", "T&<".repeat(1_332));
        assert_eq!(title.chars().count(), 4_005);
        let labels: Vec<String> = (0..300).map(|i| format!("<at>label-{i}</at>")).collect();
        let excerpt = "[x](https://evil) <b>&".repeat(5_000);
        assert!(excerpt.len() > 100_000);
        let card = Card::new()
            .push(heading(&title))
            .push(fact_set([("Labels", labels.join(", "))]))
            .push(text_block(&excerpt))
            .action(open_url("Open page", "https://wiki.example.com/x"));
        let json: Value = serde_json::from_str(&card.to_json()).unwrap();
        let size = message_size(&json);
        assert!(size <= MAX_MESSAGE_BYTES, "{size}");
        assert_eq!(json["body"].as_array().unwrap().len(), 3, "nothing dropped");
        for t in markdown_texts(&json) {
            assert!(!t.contains('<') && !t.contains("]("), "{t}");
            // A cut never leaves half an escape (`&am…`) behind.
            if let Some(kept) = t.strip_suffix('…') {
                let tail = &kept[kept.rfind('&').unwrap_or(0)..];
                assert!(!tail.starts_with('&') || tail.contains(';'), "{tail}");
            }
        }
        assert_valid(&json);
    }

    #[test]
    fn a_cut_never_ends_in_half_an_escape() {
        let card = Card::new().push(text_block("&".repeat(10_000)));
        let json: Value = serde_json::from_str(&card.to_json()).unwrap();
        let text = json["body"][0]["text"].as_str().unwrap();
        assert!(text.ends_with("&amp;…"), "{}", &text[text.len() - 20..]);
    }

    #[test]
    fn fit_always_makes_progress() {
        // An envelope one byte over, whose last character alone is enough
        // to cut: the old fit kept every character and looped for ever.
        let text = |n: usize| format!("{}😀", "a".repeat(n));
        let card = |n: usize| Card::new().push(text_block(text(n))).to_value();
        let base = message_size(&card(200));
        let n = 200 + (MAX_MESSAGE_BYTES + 1 - base);
        let mut value = card(n);
        assert_eq!(message_size(&value), MAX_MESSAGE_BYTES + 1);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let fitted = fit(&mut value, MAX_MESSAGE_BYTES);
            tx.send((fitted, message_size(&value))).unwrap();
        });
        let (fitted, size) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("fit returns");
        assert!(fitted && size <= MAX_MESSAGE_BYTES, "{size}");
    }

    #[test]
    fn bot_cards_may_submit_and_show_pages_escaped() {
        let mut page = crate::testing::page_summary();
        page.title = HOSTILE.into();
        page.space_name = Some(HOSTILE.into());
        page.excerpt = Some(HOSTILE.repeat(100));
        page.restricted = true;
        let preview = page_preview(&page).action(submit(
            "Share to channel",
            json!({"action": "share", "page-id": page.id}),
        ));
        assert!(preview.has_submit());
        let value = preview.to_value();
        assert_valid(&value);
        assert_eq!(value["actions"][0]["title"], "Open in Confluence");
        assert_eq!(value["actions"][1]["type"], "Action.Submit");
        assert_eq!(value["actions"][1]["data"]["page-id"], 123_456);
        let list = Card::new()
            .push(heading("Results"))
            .push(page_result(&page))
            .push(page_result(&crate::testing::page_summary()))
            .to_value();
        assert_valid(&list);
        for t in markdown_texts(&value).iter().chain(&markdown_texts(&list)) {
            assert!(!t.contains('<'), "{t}");
        }
        let facts = list["body"][2]["items"][1]["text"].as_str().unwrap();
        assert_eq!(
            facts,
            "Engineering · last edited by Grace Hopper on Jan 1, 2026"
        );
        assert!(value.to_string().contains("restricted"));
        // Not an object: sent as `{}`.
        assert_eq!(submit("x", json!([1]))["data"], json!({}));
        assert!(!sample_card("x").has_submit());
        // A title link only to http(s).
        page.url = "javascript:alert(1)".into();
        let json = page_preview(&page).to_json();
        assert!(!json.contains("javascript"), "{json}");
    }

    #[test]
    fn fit_reports_impossible_limits() {
        let mut card = sample_card("x").to_value();
        assert!(!fit(&mut card, 10));
    }
}
