//! Slack Block Kit that Slack accepts, with Confluence text that stays text.
//!
//! Slack rejects a whole message (`invalid_blocks`, and the host does not
//! retry that) when one block breaks a limit: more than 50 blocks, a header
//! over 150 characters, a section over 3000, a button label over 75. Text
//! from Confluence has no such limits, and every builder here shortens what
//! is too long (cutting on character boundaries, ending in "…"), so a plugin
//! cannot produce blocks Slack refuses because of the text it was given.
//!
//! ## Escaping is the default
//!
//! Slack reads the message's `text` fallback and every `mrkdwn` text object
//! as mrkdwn, where `&`, `<` and `>` are control characters: `<!channel>`
//! and `<!here>` notify a whole channel, `<@U123>` mentions a person and
//! `<https://x|label>` is a link whose label can say anything. A page titled
//! `<!channel> launch` must therefore reach Slack as `&lt;!channel&gt;
//! launch`, which Slack shows as written. So every place that takes mrkdwn
//! here takes a [`Mrkdwn`], and a plain `&str` or `String` converts into
//! one *escaped*:
//!
//! - [`section`], [`section_fields`], [`context`] and the message's fallback
//!   (`SlackMessage::new`, `SlackDirectMessage::new`) escape text given as
//!   `&str`/`String`: pass Confluence content as it is.
//! - Markup the plugin author writes goes through [`mrkdwn!`](crate::mrkdwn!)
//!   (a `format!` whose template is taken as markup and whose arguments are
//!   escaped) or, for a constant, [`Mrkdwn::trusted`].
//! - [`Mrkdwn::link`] (or [`link`]) makes `<url|label>` with the label escaped
//!   and the URL unable to end or split the link.
//! - `plain_text` objects ([`header`], button labels) are not mrkdwn: Slack
//!   shows them literally, so they are not escaped.
//!
//! ```
//! use pagehook_guest::mrkdwn;
//! use pagehook_guest::slack::{self, Blocks, Mrkdwn};
//!
//! let title = "Release notes <!channel>";
//! let mut blocks = Blocks::new();
//! blocks.push(slack::header(title)); // plain text: shown literally
//! blocks.push(slack::section(mrkdwn!(
//!     "*{}* created {}",
//!     "Ada & co",
//!     Mrkdwn::link("https://wiki.example.com/x", title),
//! )));
//! blocks.push(slack::context(["labels: <@U123>"])); // content: escaped
//! blocks.push(slack::actions([slack::LinkButton::new("Open", "https://wiki.example.com/x")]));
//! let json = blocks.to_json(); // for SlackMessage::blocks
//! assert!(json.contains("*Ada &amp; co* created <https://wiki.example.com/x|Release notes &lt;!channel&gt;>"));
//! assert!(json.contains("labels: &lt;@U123&gt;"));
//! assert!(json.contains(r#""text":"Release notes <!channel>""#));
//! ```

use serde::Serialize;
use serde_json::Value;

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

/// `text` with `&`, `<` and `>` escaped as Slack requires in mrkdwn, so a
/// title like `<Q3> & more` shows as written instead of becoming a broken
/// link or mention. [`Mrkdwn::text`] is the same as a [`Mrkdwn`].
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

crate::text::safe_text! {
    /// Text in Slack's mrkdwn that is safe to send: Confluence content in it is
    /// escaped, markup in it was written by the plugin author.
    ///
    /// Made by escaping ([`Mrkdwn::text`], or `From<&str>`/`From<String>`, which
    /// is what happens when a builder is given a string), by [`Mrkdwn::link`], by
    /// the [`mrkdwn!`](crate::mrkdwn!) macro, or by [`Mrkdwn::trusted`] for markup
    /// the author vouches for. Appending one `Mrkdwn` to another keeps it safe.
    ///
    /// ```
    /// use pagehook_guest::slack::Mrkdwn;
    ///
    /// assert_eq!(Mrkdwn::text("<!here> & <@U1>").as_str(), "&lt;!here&gt; &amp; &lt;@U1&gt;");
    /// assert_eq!(Mrkdwn::from("a < b").as_str(), "a &lt; b");
    /// assert_eq!(Mrkdwn::trusted("*bold*").as_str(), "*bold*");
    /// let line = Mrkdwn::trusted("*New:* ").then("<b>").then(Mrkdwn::link("https://x", "y"));
    /// assert_eq!(line.as_str(), "*New:* &lt;b&gt;<https://x|y>");
    /// ```
    pub struct Mrkdwn;
    escape: mrkdwn_escape;

    /// Empty, to [`push`](Mrkdwn::push) parts onto.
    fn new;

    /// Content shown as written: `&`, `<`, `>` escaped.
    fn text(content);

    /// Markup taken as is (`*bold*`, `<!here>`, a link you built). Only for
    /// text the plugin author wrote: never pass Confluence content here.
    fn trusted;

    extra {
        /// A link `<url|label>`: see [`link`].
        pub fn link(url: &str, label: &str) -> Self {
            link(url, label)
        }
    }

    /// Append a part (a string is escaped on the way in).
    fn push;

    /// This text followed by `part`, to build a line in one expression.
    fn then;

    /// True when there is no text.
    fn is_empty;

    /// The mrkdwn.
    fn as_str;

    /// The mrkdwn, e.g. for `SlackMessage::text`.
    fn into_string;
}
crate::text::safe_text_argument!(Mrkdwn);

/// `format!` for Slack mrkdwn: the template is markup the author wrote, each
/// argument is converted with `Mrkdwn::from`, so strings (Confluence
/// content) are escaped while [`Mrkdwn`] values (links, nested `mrkdwn!`)
/// and numbers go in as they are.
///
/// Only `{}` placeholders are allowed (and `{{`/`}}`): a captured `{name}`
/// would skip the escaping, so it is a compile-time error.
///
/// ```
/// use pagehook_guest::mrkdwn;
/// use pagehook_guest::slack::Mrkdwn;
///
/// let title = "<!channel> launch";
/// let m = mrkdwn!("*{}* updated {} (v{})", "Ada", Mrkdwn::link("https://x/1", title), 3);
/// assert_eq!(m.as_str(), "*Ada* updated <https://x/1|&lt;!channel&gt; launch> (v3)");
/// ```
///
/// ```compile_fail,E0080
/// let title = "<!channel>";
/// let m = pagehook_guest::mrkdwn!("*{title}*"); // not escaped: refused
/// ```
#[macro_export]
macro_rules! mrkdwn {
    ($template:literal $(, $arg:expr)* $(,)?) => {
        $crate::__safe_text_format!($crate::slack::Mrkdwn; $template $(, $arg)*)
    };
}

/// A mrkdwn link `<url|text>` that cannot break out of its brackets: the
/// text is escaped and newlines flattened; in the URL, characters that would
/// end or split the link (`<`, `>`, `|`, spaces, controls) are
/// percent-encoded and `&` is escaped. With empty text it is `<url>`.
/// Only `http(s)` URLs (see [`crate::text::web_url`]) and `mailto:` links
/// are made: for any other URL (`javascript:`...) it is the text alone.
pub fn link(url: &str, text: &str) -> Mrkdwn {
    let text = mrkdwn_escape(&text.replace(['\r', '\n'], " "));
    if !is_linkable(url) {
        // `javascript:` and the like: the label alone, never a link.
        return Mrkdwn(text);
    }
    let url = escape_url(url);
    Mrkdwn(if text.trim().is_empty() {
        format!("<{url}>")
    } else {
        format!("<{url}|{text}>")
    })
}

/// An http(s) URL, or a `mailto:` link (Slack opens those in a mail client).
fn is_linkable(url: &str) -> bool {
    let url = url.trim();
    crate::text::web_url(url).is_some()
        || url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("mailto:"))
            && url.len() > 7
            && !url.chars().any(char::is_control)
}

fn escape_url(url: &str) -> String {
    crate::text::escape_url(url, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("%3C"),
        '>' => Some("%3E"),
        '|' => Some("%7C"),
        ' ' => Some("%20"),
        _ => None,
    })
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

/// A text object: plain text (emoji shown) or mrkdwn.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Text {
    PlainText { text: String, emoji: bool },
    Mrkdwn { text: String },
}

fn plain_text(text: &str, max_chars: usize) -> Text {
    Text::PlainText {
        text: non_empty(truncate(text, max_chars)),
        emoji: true,
    }
}

fn mrkdwn(text: Mrkdwn, max_chars: usize) -> Text {
    Text::Mrkdwn {
        text: non_empty(truncate_mrkdwn(text.as_str(), max_chars)),
    }
}

/// Slack rejects empty text objects; a single space renders as nothing.
fn non_empty(text: String) -> String {
    if text.trim().is_empty() {
        " ".to_owned()
    } else {
        text
    }
}

/// The blocks the builders make, in Block Kit's shape.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Kind {
    Header {
        text: Text,
    },
    Section {
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<Text>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fields: Option<Vec<Text>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        accessory: Option<Button>,
    },
    Context {
        elements: Vec<Text>,
    },
    Divider,
    Actions {
        elements: Vec<Button>,
    },
}

#[derive(Serialize)]
struct Button {
    #[serde(rename = "type")]
    kind: &'static str,
    action_id: String,
    text: Text,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    style: Option<&'static str>,
}

/// One Block Kit block in its JSON form, for [`Blocks::push`]. The builders
/// here write it directly rather than through a `serde_json::Value` tree,
/// which made building maps most of a plugin's time as wasm; a block they
/// don't offer converts from a `Value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    json: String,
    /// An actions, context or fields block with nothing in it: Slack
    /// rejects those, so [`Blocks::push`] leaves them out.
    empty: bool,
}

impl Block {
    fn of(kind: &Kind) -> Block {
        let empty = match kind {
            Kind::Context { elements } => elements.is_empty(),
            Kind::Actions { elements } => elements.is_empty(),
            Kind::Section {
                fields: Some(fields),
                ..
            } => fields.is_empty(),
            _ => false,
        };
        Block {
            json: serde_json::to_string(kind).expect("blocks always serialize"),
            empty,
        }
    }

    /// The block's JSON text.
    pub fn as_json(&self) -> &str {
        &self.json
    }

    /// The block as a JSON value, to inspect it.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.json).expect("a block is JSON")
    }
}

impl From<Value> for Block {
    /// A block written as JSON; buttons (and overflow options) in it whose
    /// `url` is not http(s) are taken out, as the builders leave them out.
    fn from(mut block: Value) -> Block {
        drop_unsafe_links(&mut block);
        let empty = ["elements", "fields"].iter().any(|key| {
            block
                .get(key)
                .and_then(Value::as_array)
                .is_some_and(|e| e.is_empty())
        });
        Block {
            json: block.to_string(),
            empty,
        }
    }
}

/// Whether `v` is something that opens its `url` (a button, an overflow
/// option) with a URL that is not http(s).
fn opens_unsafe_url(v: &Value) -> bool {
    v.get("url")
        .and_then(Value::as_str)
        .is_some_and(|url| crate::text::web_url(url).is_none())
}

/// Takes out of a JSON block every element, accessory or option whose
/// `url` is not http(s): Slack would show it as a button that runs it.
fn drop_unsafe_links(v: &mut Value) {
    match v {
        Value::Array(items) => {
            items.retain(|item| !opens_unsafe_url(item));
            items.iter_mut().for_each(drop_unsafe_links);
        }
        Value::Object(map) => {
            if map.get("accessory").is_some_and(opens_unsafe_url) {
                map.remove("accessory");
            }
            map.values_mut().for_each(drop_unsafe_links);
        }
        _ => {}
    }
}

/// A header block: large bold `plain_text`, shown exactly as given (Slack
/// parses no mrkdwn in it, so it is not escaped), shortened to 150
/// characters, line breaks flattened.
pub fn header(text: &str) -> Block {
    Block::of(&Kind::Header {
        text: plain_text(&text.replace(['\r', '\n'], " "), MAX_HEADER_CHARS),
    })
}

/// A section block with mrkdwn text, shortened to 3000 characters. A
/// string is escaped (content shown as written); build markup with
/// [`mrkdwn!`](crate::mrkdwn!) or [`Mrkdwn`].
pub fn section(text: impl Into<Mrkdwn>) -> Block {
    Block::of(&Kind::Section {
        text: Some(mrkdwn(text.into(), MAX_SECTION_CHARS)),
        fields: None,
        accessory: None,
    })
}

/// A section shown as two columns of mrkdwn fields (e.g.
/// `mrkdwn!("*Space*\n{}", space)`): at most 10 fields of 2000 characters
/// each; extra fields are dropped. Strings are escaped, as in [`section`].
pub fn section_fields<S: Into<Mrkdwn>>(fields: impl IntoIterator<Item = S>) -> Block {
    let fields = fields
        .into_iter()
        .take(MAX_SECTION_FIELDS)
        .map(|f| mrkdwn(f.into(), MAX_FIELD_CHARS))
        .collect();
    Block::of(&Kind::Section {
        text: None,
        fields: Some(fields),
        accessory: None,
    })
}

/// A context block: small grey mrkdwn lines (who, where, when); at most 10
/// elements, extra ones dropped. Strings are escaped, as in [`section`].
pub fn context<S: Into<Mrkdwn>>(elements: impl IntoIterator<Item = S>) -> Block {
    let elements = elements
        .into_iter()
        .take(MAX_CONTEXT_ELEMENTS)
        .map(|e| mrkdwn(e.into(), MAX_SECTION_CHARS))
        .collect();
    Block::of(&Kind::Context { elements })
}

/// A divider line.
pub fn divider() -> Block {
    Block::of(&Kind::Divider)
}

/// A button that opens a URL. Plugins get no interactivity (no callbacks
/// reach them), so link buttons are the only kind offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkButton {
    /// Label, shortened to 75 characters.
    pub text: String,
    /// Target URL; a button whose URL is not `http(s)` (a `javascript:`
    /// content URL, say) or is over 3000 characters is left out, since it
    /// would run something or lead somewhere wrong.
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

/// An actions block of link buttons: at most 25, buttons with over-long,
/// empty or non-http(s) URLs left out, labels shortened to 75 characters. Each button gets
/// an `action_id` unique within the block, as Slack requires.
pub fn actions(buttons: impl IntoIterator<Item = LinkButton>) -> Block {
    let elements = buttons
        .into_iter()
        .filter(LinkButton::has_usable_url)
        .take(MAX_ACTION_ELEMENTS)
        .enumerate()
        .map(|(i, b)| b.to_button(format!("link-{i}")))
        .collect();
    Block::of(&Kind::Actions { elements })
}

/// A section of mrkdwn text (as in [`section`]) with a link button on its
/// right (Block Kit's `accessory`), the usual shape of one item in a list.
/// A button whose URL is empty, not http(s) or over 3000 characters is
/// left out. `action_id` names the button (Slack wants it unique in the message,
/// e.g. `open-<page id>`).
pub fn section_with_button(
    text: impl Into<Mrkdwn>,
    action_id: impl Into<String>,
    button: LinkButton,
) -> Block {
    Block::of(&Kind::Section {
        text: Some(mrkdwn(text.into(), MAX_SECTION_CHARS)),
        fields: None,
        accessory: button
            .has_usable_url()
            .then(|| button.to_button(action_id.into())),
    })
}

impl LinkButton {
    fn has_usable_url(&self) -> bool {
        crate::text::web_url(&self.url).is_some_and(|url| url.chars().count() <= MAX_URL_CHARS)
    }

    fn to_button(&self, action_id: String) -> Button {
        Button {
            kind: "button",
            action_id,
            text: plain_text(&self.text, MAX_BUTTON_TEXT_CHARS),
            url: self.url.trim().to_owned(),
            style: self.primary.then_some("primary"),
        }
    }
}

/// Label of the button that opens a page in [`page_preview`] and [`page_result`].
pub const OPEN_IN_CONFLUENCE: &str = "Open in Confluence";
/// Longest excerpt in a [`page_preview`], in characters.
pub const PREVIEW_EXCERPT_CHARS: usize = 300;
/// Longest excerpt in a [`page_result`], in characters.
pub const RESULT_EXCERPT_CHARS: usize = 150;

/// The blocks that preview one page a chat user may view (a link's
/// [`PageSummary`](crate::PageSummary), e.g. for an unfurl): the title as a
/// bold link, an excerpt quoted, a context line (space, last editor and
/// when, a lock when the page has view restrictions) and a button
/// "Open in Confluence". Every piece of Confluence text is escaped.
///
/// ```
/// use pagehook_guest::{slack, testing};
///
/// let mut page = testing::page_summary();
/// page.title = "<!channel> Q3 plan".into();
/// let json = slack::page_preview(&page).to_json();
/// assert!(json.contains("|&lt;!channel&gt; Q3 plan>*"));
/// assert!(json.contains("Open in Confluence"));
/// ```
pub fn page_preview(page: &crate::PageSummary) -> Blocks {
    let mut blocks = Blocks::new();
    blocks.push(section(page_title_link(page)));
    if let Some(excerpt) = page_excerpt(page, PREVIEW_EXCERPT_CHARS) {
        blocks.push(section(excerpt));
    }
    blocks.push(context(page_facts(page)));
    blocks.push(actions([LinkButton::new(
        OPEN_IN_CONFLUENCE,
        page.url.clone(),
    )]));
    blocks
}

/// One page as a single section, for a list of several (search results):
/// the title as a bold link, the facts of [`page_preview`] on the next line,
/// a short quoted excerpt, and an "Open in Confluence" button beside it.
pub fn page_result(page: &crate::PageSummary) -> Block {
    let mut text = page_title_link(page);
    let facts = page_facts(page);
    if !facts.is_empty() {
        text.push(Mrkdwn::trusted("\n"));
        text.push(joined(facts, " · "));
    }
    if let Some(excerpt) = page_excerpt(page, RESULT_EXCERPT_CHARS) {
        text.push(Mrkdwn::trusted("\n"));
        text.push(excerpt);
    }
    section_with_button(
        text,
        format!("open-{}", page.id),
        LinkButton::new(OPEN_IN_CONFLUENCE, page.url.clone()),
    )
}

/// `*<url|title>*`, or the bold title alone when there is no URL.
fn page_title_link(page: &crate::PageSummary) -> Mrkdwn {
    let title = if page.title.trim().is_empty() {
        "Untitled page"
    } else {
        page.title.trim()
    };
    if page.url.trim().is_empty() {
        crate::mrkdwn!("*{}*", title)
    } else {
        crate::mrkdwn!("*{}*", Mrkdwn::link(&page.url, title))
    }
}

/// The excerpt as a mrkdwn quote, shortened; `None` when there is none.
fn page_excerpt(page: &crate::PageSummary, max_chars: usize) -> Option<Mrkdwn> {
    let excerpt = page
        .excerpt
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())?;
    let quoted = Mrkdwn::text(&truncate(excerpt, max_chars));
    Some(Mrkdwn::trusted(format!(
        ">{}",
        quoted.as_str().replace('\n', "\n>")
    )))
}

/// Space, last editor and date, and a lock for restricted content.
fn page_facts(page: &crate::PageSummary) -> Vec<Mrkdwn> {
    let mut facts = Vec::new();
    let space = page
        .space_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&page.space_key);
    if !space.is_empty() {
        facts.push(Mrkdwn::text(space));
    }
    match (&page.last_editor, page.last_edited_at_ms) {
        (Some(editor), Some(ms)) => facts.push(crate::mrkdwn!(
            "last edited by {} {}",
            editor.name(),
            date(ms)
        )),
        (Some(editor), None) => facts.push(crate::mrkdwn!("last edited by {}", editor.name())),
        (None, Some(ms)) => facts.push(crate::mrkdwn!("last edited {}", date(ms))),
        (None, None) => {}
    }
    if page.restricted {
        facts.push(Mrkdwn::trusted(":lock: restricted"));
    }
    facts
}

/// A date Slack shows in the reader's own time zone (`<!date^…>`), with
/// the UTC day as the fallback for clients that cannot: `on Jan 12, 2026`.
pub fn date(ms: u64) -> Mrkdwn {
    let secs = ms / 1000;
    Mrkdwn::trusted(format!(
        "<!date^{secs}^on {{date_short}}|on {}>",
        crate::text::utc_date(ms)
    ))
}

/// `parts` with `separator` (escaped) between them.
fn joined(parts: Vec<Mrkdwn>, separator: &str) -> Mrkdwn {
    let mut out = Mrkdwn::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push(separator);
        }
        out.push(part);
    }
    out
}

impl From<&Blocks> for String {
    /// [`Blocks::to_json`], so `with_blocks(&blocks)` reads as it should.
    fn from(blocks: &Blocks) -> String {
        blocks.to_json()
    }
}

impl From<Blocks> for String {
    fn from(blocks: Blocks) -> String {
        blocks.to_json()
    }
}

/// The blocks of one message, capped at 50: pushes past the cap are
/// dropped (and counted), and empty actions or context blocks, which Slack
/// rejects, are skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blocks {
    blocks: Vec<Block>,
    dropped: usize,
}

impl Blocks {
    /// No blocks yet.
    pub fn new() -> Self {
        Blocks::default()
    }

    /// Append a block (one from the builders here, or any `Value`);
    /// returns false when it was not added (cap reached or an element-less
    /// block).
    pub fn push(&mut self, block: impl Into<Block>) -> bool {
        let block = block.into();
        if block.empty {
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
        Value::Array(self.blocks.iter().map(Block::to_value).collect())
    }

    /// The blocks as a JSON array string, for `SlackMessage::blocks`.
    pub fn to_json(&self) -> String {
        let len = self.blocks.iter().map(|b| b.json.len() + 1).sum::<usize>();
        let mut json = String::with_capacity(len + 2);
        json.push('[');
        for (i, block) in self.blocks.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&block.json);
        }
        json.push(']');
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(block: &Block) -> String {
        block.to_value()["text"]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn escape_covers_the_three_control_characters() {
        assert_eq!(mrkdwn_escape("a & <b> *c*"), "a &amp; &lt;b&gt; *c*");
    }

    /// Each of Slack's control sequences, as Confluence content.
    const HOSTILE: [(&str, &str); 5] = [
        ("<!channel> launch", "&lt;!channel&gt; launch"),
        ("<!here>", "&lt;!here&gt;"),
        ("hi <@U123>", "hi &lt;@U123&gt;"),
        ("<https://x|y>", "&lt;https://x|y&gt;"),
        ("R&D &amp; co", "R&amp;D &amp;amp; co"),
    ];

    fn mrkdwn_texts(block: &Block) -> Vec<String> {
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    if map.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                        out.push(map["text"].as_str().unwrap().to_owned());
                    }
                    map.values().for_each(|c| walk(c, out));
                }
                Value::Array(items) => items.iter().for_each(|c| walk(c, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&block.to_value(), &mut out);
        out
    }

    #[test]
    fn content_given_to_mrkdwn_builders_is_escaped() {
        for (content, escaped) in HOSTILE {
            assert_eq!(Mrkdwn::text(content), escaped);
            assert_eq!(Mrkdwn::from(content), escaped);
            assert_eq!(Mrkdwn::from(content.to_owned()), escaped);
            assert_eq!(text_of(&section(content)), escaped);
            assert_eq!(text_of(&section(content.to_owned())), escaped);
            assert_eq!(mrkdwn_texts(&context([content])), vec![escaped]);
            assert_eq!(mrkdwn_texts(&section_fields([content])), vec![escaped]);
            assert_eq!(
                crate::mrkdwn!("*{}*", content),
                format!("*{escaped}*").as_str()
            );
        }
    }

    #[test]
    fn trusted_mrkdwn_and_plain_text_are_untouched() {
        let markup = "<!here> *deploy* <https://x|y> &amp;";
        assert_eq!(Mrkdwn::trusted(markup), markup);
        assert_eq!(text_of(&section(Mrkdwn::trusted(markup))), markup);
        assert_eq!(
            mrkdwn_texts(&context([Mrkdwn::trusted(markup)])),
            vec![markup]
        );
        // The template of mrkdwn! is markup; Mrkdwn arguments are not escaped twice.
        let m = crate::mrkdwn!(
            "<!here> {} {}",
            link("https://x", "a<b"),
            Mrkdwn::trusted("*b*")
        );
        assert_eq!(m, "<!here> <https://x|a&lt;b> *b*");
        // plain_text is shown literally by Slack: never escaped.
        for (content, _) in HOSTILE {
            assert_eq!(text_of(&header(content)), content);
            let b = actions([LinkButton::new(content, "https://x")]).to_value();
            assert_eq!(b["elements"][0]["text"]["text"], content);
            assert_eq!(b["elements"][0]["text"]["type"], "plain_text");
        }
    }

    #[test]
    fn mrkdwn_pieces_compose_without_escaping_twice() {
        let mut m = Mrkdwn::trusted("*Labels:* ");
        m.push("<a>").push(", ").push(Mrkdwn::trusted("_b_"));
        assert_eq!(m, "*Labels:* &lt;a&gt;, _b_");
        let joined: Mrkdwn = ["<x>", "&"].into_iter().map(Mrkdwn::text).collect();
        assert_eq!(joined, "&lt;x&gt;&amp;");
        assert_eq!(crate::mrkdwn!("v{} of {}", 3u32, 10usize), "v3 of 10");
        assert_eq!(crate::mrkdwn!("{{literal}} {}", "<"), "{literal} &lt;");
        assert_eq!(String::from(Mrkdwn::text("<")), "&lt;");
    }

    #[test]
    fn link_cannot_break_out() {
        assert_eq!(link("https://x/a", "Title"), "<https://x/a|Title>");
        assert_eq!(
            link("https://x/?a=1&b=<2>|3 4", "a|b <c> & d\ne"),
            "<https://x/?a=1&amp;b=%3C2%3E%7C3%204|a|b &lt;c&gt; &amp; d e>"
        );
        assert_eq!(link("https://x", "  "), "<https://x>");
        // A label or URL from content cannot open a second link or mention.
        assert_eq!(
            link(
                "https://x/a>|<!channel",
                "<!here> <@U123> <https://evil|click>"
            ),
            "<https://x/a%3E%7C%3C!channel|&lt;!here&gt; &lt;@U123&gt; &lt;https://evil|click&gt;>"
        );
    }

    /// What Confluence (or a webhook) may give as a content URL, that no
    /// button may open.
    const UNSAFE_URLS: [&str; 5] = [
        "javascript:alert(document.cookie)",
        " JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "/pages/viewpage.action?pageId=1",
    ];

    #[test]
    fn buttons_and_links_never_open_a_url_that_is_not_http() {
        for url in UNSAFE_URLS {
            let b = actions([LinkButton::new("Open page", url).primary()]);
            assert!(b.empty, "{url}: {}", b.as_json());
            let mut blocks = Blocks::new();
            assert!(
                !blocks.push(b),
                "an actions block without buttons is left out"
            );
            let s = section_with_button("x", "open-1", LinkButton::new("Open", url)).to_value();
            assert!(s.get("accessory").is_none(), "{s}");
            assert_eq!(link(url, "Title <b>"), "Title &lt;b&gt;", "{url}");
            assert_eq!(crate::mrkdwn!("*{}*", Mrkdwn::link(url, "T")), "*T*");
            // Blocks written as JSON lose such buttons too.
            let raw = serde_json::json!({"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "bad"}, "url": url},
                {"type": "button", "text": {"type": "plain_text", "text": "good"}, "url": "https://x/1"},
                {"type": "overflow", "options": [{"text": {"type": "plain_text", "text": "o"}, "value": "v", "url": url}]}
            ]});
            let b = Block::from(raw).to_value();
            assert!(!b.to_string().contains(url.trim()), "{b}");
            assert_eq!(b["elements"][0]["url"], "https://x/1");
            let raw = serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": "x"},
                "accessory": {"type": "button", "text": {"type": "plain_text", "text": "o"}, "url": url}});
            assert!(Block::from(raw).to_value().get("accessory").is_none());
        }
        // Web and mail links still work.
        assert_eq!(
            link("mailto:ada@example.com", "Ada"),
            "<mailto:ada@example.com|Ada>"
        );
        assert_eq!(
            actions([LinkButton::new("Open", "HTTPS://x.example/1")]).to_value()["elements"][0]["url"],
            "HTTPS://x.example/1"
        );
    }

    #[test]
    fn header_is_capped_at_150_chars() {
        let b = header(&"é".repeat(400));
        let t = text_of(&b);
        let b = b.to_value();
        assert_eq!(t.chars().count(), MAX_HEADER_CHARS);
        assert!(t.ends_with('…'));
        assert_eq!(b["text"]["type"], "plain_text");
        assert_eq!(text_of(&header("a\nb")), "a b");
    }

    #[test]
    fn blocks_have_block_kits_shape() {
        assert_eq!(divider().as_json(), r#"{"type":"divider"}"#);
        assert_eq!(
            section(Mrkdwn::trusted("*hi*")).to_value(),
            serde_json::json!({ "type": "section", "text": { "type": "mrkdwn", "text": "*hi*" } })
        );
        assert_eq!(
            header("Hi").to_value(),
            serde_json::json!({
                "type": "header",
                "text": { "type": "plain_text", "text": "Hi", "emoji": true },
            })
        );
        assert_eq!(
            actions([LinkButton::new("Open", " https://x ")]).to_value(),
            serde_json::json!({ "type": "actions", "elements": [{
                "type": "button",
                "action_id": "link-0",
                "text": { "type": "plain_text", "text": "Open", "emoji": true },
                "url": "https://x",
            }] })
        );
        assert!(section_fields(["a"]).to_value()["text"].is_null());
    }

    #[test]
    fn section_is_capped_at_3000_chars() {
        let b = section("x".repeat(10_000));
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
        let b = context((0..20).map(|i| i.to_string())).to_value();
        assert_eq!(
            b["elements"].as_array().unwrap().len(),
            MAX_CONTEXT_ELEMENTS
        );
    }

    #[test]
    fn section_fields_keeps_at_most_10_and_caps_each() {
        let long = "y".repeat(5000);
        let b = section_fields(std::iter::repeat_n(long.as_str(), 12)).to_value();
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
        let b = actions(buttons).to_value();
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
        let p = actions([LinkButton::new("Open", "https://x").primary()]).to_value();
        assert_eq!(p["elements"][0]["style"], "primary");
    }

    #[test]
    fn blocks_cap_at_50_and_skip_empty_blocks() {
        let mut blocks = Blocks::new();
        assert!(!blocks.push(actions([])));
        assert!(!blocks.push(context(Vec::<String>::new())));
        assert!(!blocks.push(section_fields(Vec::<String>::new())));
        assert!(!blocks.push(serde_json::json!({ "type": "context", "elements": [] })));
        assert!(blocks.push(serde_json::json!({ "type": "divider" })));
        for _ in 0..60 {
            blocks.push(divider());
        }
        assert_eq!(blocks.len(), MAX_BLOCKS);
        assert_eq!(blocks.dropped(), 11);
        let parsed: Value = serde_json::from_str(&blocks.to_json()).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), MAX_BLOCKS);
    }

    const HOSTILE_PAGE: &str = "<!channel> <@U0ADMIN> <https://evil|click> & co";

    fn hostile_page() -> crate::PageSummary {
        let mut page = crate::testing::page_summary();
        page.title = format!("Title {HOSTILE_PAGE}");
        page.space_name = Some(format!("Space {HOSTILE_PAGE}"));
        page.excerpt = Some(format!("Excerpt {HOSTILE_PAGE}\nline two"));
        page.last_editor.as_mut().unwrap().display_name = Some(format!("Grace {HOSTILE_PAGE}"));
        page.restricted = true;
        page
    }

    /// Every mrkdwn text in a JSON value.
    fn page_mrkdwn_texts(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if map.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                    out.push(map["text"].as_str().unwrap().to_owned());
                }
                map.values().for_each(|v| page_mrkdwn_texts(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| page_mrkdwn_texts(v, out)),
            _ => {}
        }
    }

    fn assert_escaped(texts: &[String]) {
        let all = texts.join("\n");
        for piece in ["Title", "Space", "Excerpt", "line two", "Grace"] {
            assert!(all.contains(piece), "{piece} missing from {all}");
        }
        for t in texts {
            let without_ours = t
                .replace(
                    "<https://wiki.example.com/pages/viewpage.action?pageId=123456|",
                    "",
                )
                .replace("<!date^1767225600^on {date_short}|on Jan 1, 2026>", "");
            assert!(!without_ours.contains('<'), "{t}");
            assert!(
                t.contains("&lt;!channel&gt;") || !t.contains("channel"),
                "{t}"
            );
        }
    }

    #[test]
    fn page_preview_shows_title_excerpt_facts_and_a_button_escaped() {
        let blocks = page_preview(&hostile_page()).to_value();
        let types: Vec<_> = blocks
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["section", "section", "context", "actions"]);
        assert!(
            blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with(">Excerpt")
        );
        assert!(
            blocks[1]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("\n>line two")
        );
        let facts = blocks[2].to_string();
        assert!(facts.contains("last edited by Grace") && facts.contains(":lock: restricted"));
        assert_eq!(blocks[3]["elements"][0]["text"]["text"], OPEN_IN_CONFLUENCE);
        let mut texts = Vec::new();
        page_mrkdwn_texts(&blocks, &mut texts);
        assert_escaped(&texts);

        let mut bare = crate::testing::page_summary();
        bare.excerpt = None;
        bare.last_editor = None;
        bare.last_edited_at_ms = None;
        bare.space_name = None;
        let blocks = page_preview(&bare).to_value();
        assert_eq!(blocks.as_array().unwrap().len(), 3);
        assert_eq!(blocks[1]["elements"][0]["text"], "ENG");
    }

    #[test]
    fn page_result_is_one_section_with_an_open_button() {
        let block = page_result(&hostile_page()).to_value();
        assert_eq!(block["type"], "section");
        assert_eq!(block["accessory"]["type"], "button");
        assert_eq!(block["accessory"]["action_id"], "open-123456");
        assert_eq!(
            block["accessory"]["url"],
            crate::testing::page_summary().url
        );
        let text = block["text"]["text"].as_str().unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert_escaped(&[text.to_owned()]);
        let mut no_url = crate::testing::page_summary();
        no_url.url = String::new();
        let block = page_result(&no_url).to_value();
        assert!(block.get("accessory").is_none());
        assert!(
            block["text"]["text"]
                .as_str()
                .unwrap()
                .starts_with("*Release notes*")
        );
    }
}
