//! Building Confluence storage format that is always well-formed.
//!
//! Pages and comments a plugin creates are written in Confluence's storage
//! format, an XHTML dialect with `ac:` and `ri:` elements for macros, links
//! and tasks. Confluence rejects a body that is not well-formed XML, and text
//! from events (titles, excerpts, names) can contain anything: `&`, `<`,
//! quotes, even control characters that XML 1.0 forbids outright. Gluing
//! strings together by hand is how such a body breaks, so this module builds
//! it from [`Xml`] fragments that can only be made well-formed: plain text
//! goes through [`escape_text`], attribute values through [`escape_attr`],
//! and every element function closes what it opens.
//!
//! ```
//! use pagehook_guest::storage::{self, PanelKind, StatusColour, Xml};
//!
//! let mut body = Xml::new();
//! body.push(storage::heading(2, "Action items for <Q3> & beyond"));
//! body.push(storage::paragraph(
//!     Xml::text("State: ").then(storage::status(StatusColour::Red, "OPEN")),
//! ));
//! body.push(storage::panel(PanelKind::Info, storage::paragraph("Created by Pagehook")));
//! assert!(body.as_str().contains("Action items for &lt;Q3&gt; &amp; beyond"));
//! ```

use std::borrow::Cow;

crate::text::safe_text! {
    /// A well-formed fragment of storage format.
    ///
    /// Made only by escaping text ([`Xml::text`], or `From<&str>`/`From<String>`),
    /// by this module's element functions, or by [`Xml::from_trusted`] for markup
    /// the author vouches for; concatenating well-formed fragments keeps them
    /// well-formed, so a body built this way always parses.
    pub struct Xml;
    escape: escape_text;

    /// An empty fragment, to [`push`](Xml::push) parts onto.
    fn new;

    /// Plain text, escaped: `a < b` becomes `a &lt; b`.
    fn text(text);

    /// Markup taken as is. The caller promises it is well-formed storage
    /// format; use it only for constant markup this module does not cover.
    fn from_trusted;

    /// Append a part (text is escaped on the way in).
    fn push;

    /// This fragment followed by `part`, for building inline runs in one
    /// expression.
    fn then;

    /// True when nothing has been added.
    fn is_empty;

    /// The markup.
    fn as_str;

    /// The markup, e.g. for [`NewPage::body`](crate::NewPage).
    fn into_string;
}

impl Extend<Xml> for Xml {
    fn extend<I: IntoIterator<Item = Xml>>(&mut self, iter: I) {
        for part in iter {
            self.push(part);
        }
    }
}

/// True for characters XML 1.0 allows in a document at all (its `Char`
/// production); everything else (most C0 controls, U+FFFE, U+FFFF) makes
/// the whole body unparseable, even when escaped as a character reference.
pub fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\u{9}' | '\u{A}' | '\u{D}'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

/// `text` without the characters XML 1.0 forbids; borrowed when there were none.
pub fn strip_invalid_chars(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_xml_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

/// `text` made safe as element content: `&`, `<`, `>` and both quotes
/// escaped, forbidden characters dropped.
pub fn escape_text(text: &str) -> String {
    escape(text, false)
}

/// `text` made safe inside a double- or single-quoted attribute value: as
/// [`escape_text`], plus tab and line breaks as character references so
/// attribute-value normalisation does not turn them into spaces.
pub fn escape_attr(text: &str) -> String {
    escape(text, true)
}

fn escape(text: &str, attr: bool) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            '\r' if attr => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
    out
}

/// `<tag>content</tag>`; `tag` is always one of this module's constants.
fn element(tag: &str, content: Xml) -> Xml {
    Xml(format!("<{tag}>{}</{tag}>", content.0))
}

/// A paragraph, `<p>`.
pub fn paragraph(content: impl Into<Xml>) -> Xml {
    element("p", content.into())
}

/// A heading `<h1>`..`<h6>`; levels outside 1..=6 are clamped.
pub fn heading(level: u8, content: impl Into<Xml>) -> Xml {
    element(&format!("h{}", level.clamp(1, 6)), content.into())
}

/// Bold text, `<strong>`.
pub fn strong(content: impl Into<Xml>) -> Xml {
    element("strong", content.into())
}

/// Italic text, `<em>`.
pub fn em(content: impl Into<Xml>) -> Xml {
    element("em", content.into())
}

/// Inline code, `<code>`.
pub fn code(content: impl Into<Xml>) -> Xml {
    element("code", content.into())
}

/// A line break inside a paragraph, `<br/>`.
pub fn line_break() -> Xml {
    Xml::from_trusted("<br/>")
}

/// A web link, `<a href="...">content</a>`. The URL is escaped, not
/// validated: pass URLs from the event (`content.url`) or settings.
pub fn link(href: &str, content: impl Into<Xml>) -> Xml {
    Xml(format!(
        "<a href=\"{}\">{}</a>",
        escape_attr(href),
        content.into().0
    ))
}

/// A link to the page titled `title` in the same space, which Confluence
/// keeps working when the page moves: `<ac:link><ri:page ri:content-title="..."/></ac:link>`.
pub fn page_link(title: &str) -> Xml {
    Xml(format!(
        "<ac:link><ri:page ri:content-title=\"{}\"/></ac:link>",
        escape_attr(title)
    ))
}

/// A link to the page titled `title` in space `space_key`.
pub fn page_link_in(space_key: &str, title: &str) -> Xml {
    Xml(format!(
        "<ac:link><ri:page ri:space-key=\"{}\" ri:content-title=\"{}\"/></ac:link>",
        escape_attr(space_key),
        escape_attr(title)
    ))
}

/// A mention of the Confluence user with this user key (`Person::key`),
/// which Confluence renders as their current name and notifies.
pub fn user_mention(user_key: &str) -> Xml {
    Xml(format!(
        "<ac:link><ri:user ri:userkey=\"{}\"/></ac:link>",
        escape_attr(user_key)
    ))
}

/// Colours of the status lozenge, as the `status` macro names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusColour {
    /// Neutral (Confluence's default).
    Grey,
    /// Bad or blocked.
    Red,
    /// In progress or at risk.
    Yellow,
    /// Done or good.
    Green,
    /// Informational.
    Blue,
}

impl StatusColour {
    /// The macro's parameter value (`Red`).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusColour::Grey => "Grey",
            StatusColour::Red => "Red",
            StatusColour::Yellow => "Yellow",
            StatusColour::Green => "Green",
            StatusColour::Blue => "Blue",
        }
    }
}

/// A status lozenge (`status` macro), e.g. a red `OPEN`.
pub fn status(colour: StatusColour, title: &str) -> Xml {
    Xml(format!(
        "<ac:structured-macro ac:name=\"status\">\
         <ac:parameter ac:name=\"colour\">{}</ac:parameter>\
         <ac:parameter ac:name=\"title\">{}</ac:parameter>\
         </ac:structured-macro>",
        colour.as_str(),
        escape_text(title)
    ))
}

/// The kinds of coloured panel macro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelKind {
    /// Blue "info" panel.
    Info,
    /// Yellow "note" panel.
    Note,
    /// Red "warning" panel.
    Warning,
    /// Green "tip" panel.
    Tip,
}

impl PanelKind {
    /// The macro name (`info`).
    pub fn as_str(self) -> &'static str {
        match self {
            PanelKind::Info => "info",
            PanelKind::Note => "note",
            PanelKind::Warning => "warning",
            PanelKind::Tip => "tip",
        }
    }
}

/// A panel macro around block content (paragraphs, lists).
pub fn panel(kind: PanelKind, body: impl Into<Xml>) -> Xml {
    panel_inner(kind, None, body.into())
}

/// A panel macro with a title line.
pub fn panel_titled(kind: PanelKind, title: &str, body: impl Into<Xml>) -> Xml {
    panel_inner(kind, Some(title), body.into())
}

fn panel_inner(kind: PanelKind, title: Option<&str>, body: Xml) -> Xml {
    let title = title
        .map(|t| {
            format!(
                "<ac:parameter ac:name=\"title\">{}</ac:parameter>",
                escape_text(t)
            )
        })
        .unwrap_or_default();
    Xml(format!(
        "<ac:structured-macro ac:name=\"{}\">{title}<ac:rich-text-body>{}</ac:rich-text-body></ac:structured-macro>",
        kind.as_str(),
        body.0
    ))
}

/// One task of a [`task_list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Inline content of the task.
    pub body: Xml,
    /// Ticked already.
    pub done: bool,
}

impl Task {
    /// An open task.
    pub fn new(body: impl Into<Xml>) -> Self {
        Task {
            body: body.into(),
            done: false,
        }
    }

    /// A task ticked or not.
    pub fn done(mut self, done: bool) -> Self {
        self.done = done;
        self
    }
}

/// A task list whose ids start at 1. A page with several task lists should
/// number them apart with [`task_list_from`], because Confluence ties a
/// task's tick box to its id within the page.
pub fn task_list(tasks: impl IntoIterator<Item = Task>) -> Xml {
    task_list_from(1, tasks)
}

/// A task list whose ids start at `first_id`.
pub fn task_list_from(first_id: u32, tasks: impl IntoIterator<Item = Task>) -> Xml {
    let mut out = Xml::from_trusted("<ac:task-list>");
    for (id, task) in (first_id..).zip(tasks) {
        let status = if task.done { "complete" } else { "incomplete" };
        out.0.push_str(&format!(
            "<ac:task><ac:task-id>{id}</ac:task-id><ac:task-status>{status}</ac:task-status><ac:task-body>{}</ac:task-body></ac:task>",
            task.body.0
        ));
    }
    out.0.push_str("</ac:task-list>");
    out
}

/// A bulleted list, `<ul><li>..</li></ul>`.
pub fn bullet_list<T: Into<Xml>>(items: impl IntoIterator<Item = T>) -> Xml {
    list("ul", items)
}

/// A numbered list, `<ol><li>..</li></ol>`.
pub fn numbered_list<T: Into<Xml>>(items: impl IntoIterator<Item = T>) -> Xml {
    list("ol", items)
}

fn list<T: Into<Xml>>(tag: &str, items: impl IntoIterator<Item = T>) -> Xml {
    element(
        tag,
        items.into_iter().map(|i| element("li", i.into())).collect(),
    )
}

/// A table with a header row: `header` cells become `<th>`, each row's
/// cells `<td>`.
pub fn table<H, R, C>(header: impl IntoIterator<Item = H>, rows: impl IntoIterator<Item = R>) -> Xml
where
    H: Into<Xml>,
    R: IntoIterator<Item = C>,
    C: Into<Xml>,
{
    let mut body = element(
        "tr",
        header
            .into_iter()
            .map(|h| element("th", h.into()))
            .collect(),
    );
    for row in rows {
        body.push(element(
            "tr",
            row.into_iter().map(|c| element("td", c.into())).collect(),
        ));
    }
    element("table", element("tbody", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse `fragment` as Confluence would: inside a root that binds the
    /// `ac:` and `ri:` prefixes. Panics with the fragment if it is not
    /// well-formed.
    fn parse(fragment: &str) -> String {
        let doc = format!(
            "<root xmlns:ac=\"http://atlassian.com/content\" xmlns:ri=\"http://atlassian.com/resource/identifier\">{fragment}</root>"
        );
        match roxmltree::Document::parse(&doc) {
            Ok(d) => d
                .root_element()
                .descendants()
                .filter(|n| n.is_text())
                .map(|n| n.text().unwrap_or_default())
                .collect(),
            Err(e) => panic!("not well-formed ({e}): {fragment:?}"),
        }
    }

    fn attr_of(fragment: &str, name: &str) -> String {
        let doc = format!(
            "<root xmlns:ac=\"http://atlassian.com/content\" xmlns:ri=\"http://atlassian.com/resource/identifier\">{fragment}</root>"
        );
        let d = roxmltree::Document::parse(&doc).expect("well-formed");
        d.descendants()
            .find_map(|n| {
                n.attributes()
                    .find(|a| a.name() == name)
                    .map(|a| a.value().to_owned())
            })
            .expect("attribute present")
    }

    /// Nasty strings: markup, entities, CDATA ends, every C0 control,
    /// non-characters, astral plane.
    fn nasty() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            "plain",
            "a < b && c > d",
            "<script>alert('x')</script>",
            "&amp; &lt; &#0; &#x1; &nbsp;",
            "\"double\" 'single'",
            "]]> <![CDATA[ x ]]>",
            "<!-- comment --> <?pi?>",
            "tab\tnew\nline\r\ncr",
            "\u{FFFE}\u{FFFF}\u{FFFD}",
            "emoji 🎉 and 日本語",
            "\u{7F}\u{85}\u{9F} C1",
        ]
        .map(String::from)
        .to_vec();
        v.push((0u32..0x20).filter_map(char::from_u32).collect());
        // Deterministic pseudo-random strings over a mix of ranges.
        let mut seed = 0x2545_f491_u64;
        for _ in 0..200 {
            let mut s = String::new();
            for _ in 0..40 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let c = match seed % 4 {
                    0 => (seed >> 8) as u32 % 0x80,
                    1 => 0xD000 + (seed >> 8) as u32 % 0x3000,
                    2 => 0xFFF0 + (seed >> 8) as u32 % 0x10,
                    _ => (seed >> 8) as u32 % 0x11_0000,
                };
                if let Some(c) = char::from_u32(c) {
                    s.push(c);
                }
            }
            v.push(s);
        }
        v
    }

    /// What a parser gives back for text we escaped: the input minus
    /// forbidden characters, with CR LF and lone CR read as LF (XML's
    /// end-of-line handling).
    fn expected_text(input: &str) -> String {
        strip_invalid_chars(input)
            .replace("\r\n", "\n")
            .replace('\r', "\n")
    }

    #[test]
    fn escaped_text_round_trips_through_a_parser() {
        for s in nasty() {
            let got = parse(&paragraph(s.as_str()).into_string());
            assert_eq!(got, expected_text(&s), "input {s:?}");
        }
    }

    #[test]
    fn escaped_attributes_round_trip_exactly() {
        for s in nasty() {
            let frag = link(&s, "x").into_string();
            let got = attr_of(&frag, "href");
            assert_eq!(got, strip_invalid_chars(&s), "input {s:?}");
        }
    }

    #[test]
    fn every_builder_is_well_formed_with_nasty_input() {
        for s in nasty() {
            let s = s.as_str();
            let mut body = Xml::new();
            body.push(heading(0, s))
                .push(heading(9, s))
                .push(paragraph(
                    Xml::text(s)
                        .then(strong(s))
                        .then(em(s))
                        .then(code(s))
                        .then(line_break())
                        .then(link(s, s)),
                ))
                .push(page_link(s))
                .push(page_link_in(s, s))
                .push(user_mention(s))
                .push(status(StatusColour::Red, s))
                .push(panel(PanelKind::Warning, paragraph(s)))
                .push(panel_titled(PanelKind::Note, s, paragraph(s)))
                .push(task_list([Task::new(s), Task::new(s).done(true)]))
                .push(bullet_list([s, s]))
                .push(numbered_list([s]))
                .push(table([s], [[s, s]]));
            parse(body.as_str());
        }
    }

    #[test]
    fn status_macro_has_confluence_shape() {
        assert_eq!(
            status(StatusColour::Red, "OPEN").as_str(),
            "<ac:structured-macro ac:name=\"status\"><ac:parameter ac:name=\"colour\">Red</ac:parameter><ac:parameter ac:name=\"title\">OPEN</ac:parameter></ac:structured-macro>"
        );
    }

    #[test]
    fn panel_wraps_body_in_rich_text_body() {
        assert_eq!(
            panel(PanelKind::Info, paragraph("hi")).as_str(),
            "<ac:structured-macro ac:name=\"info\"><ac:rich-text-body><p>hi</p></ac:rich-text-body></ac:structured-macro>"
        );
        assert!(
            panel_titled(PanelKind::Tip, "T & C", "x")
                .as_str()
                .contains("<ac:parameter ac:name=\"title\">T &amp; C</ac:parameter>")
        );
    }

    #[test]
    fn task_list_numbers_tasks_and_marks_status() {
        assert_eq!(
            task_list([Task::new("Ship it"), Task::new("Party").done(true)]).as_str(),
            "<ac:task-list>\
             <ac:task><ac:task-id>1</ac:task-id><ac:task-status>incomplete</ac:task-status><ac:task-body>Ship it</ac:task-body></ac:task>\
             <ac:task><ac:task-id>2</ac:task-id><ac:task-status>complete</ac:task-status><ac:task-body>Party</ac:task-body></ac:task>\
             </ac:task-list>"
        );
        assert!(
            task_list_from(7, [Task::new("x")])
                .as_str()
                .contains("<ac:task-id>7</ac:task-id>")
        );
    }

    #[test]
    fn links_have_confluence_shape() {
        assert_eq!(
            page_link("Q3 \"plan\"").as_str(),
            "<ac:link><ri:page ri:content-title=\"Q3 &quot;plan&quot;\"/></ac:link>"
        );
        assert_eq!(
            page_link_in("ENG", "Home").as_str(),
            "<ac:link><ri:page ri:space-key=\"ENG\" ri:content-title=\"Home\"/></ac:link>"
        );
        assert_eq!(
            link("https://x/?a=1&b=2", "x & y").as_str(),
            "<a href=\"https://x/?a=1&amp;b=2\">x &amp; y</a>"
        );
    }

    #[test]
    fn headings_clamp_level() {
        assert_eq!(heading(0, "a").as_str(), "<h1>a</h1>");
        assert_eq!(heading(3, "a").as_str(), "<h3>a</h3>");
        assert_eq!(heading(200, "a").as_str(), "<h6>a</h6>");
    }

    #[test]
    fn control_characters_are_stripped() {
        assert_eq!(escape_text("a\u{0}b\u{1B}c\u{FFFF}"), "abc");
        assert_eq!(escape_text("keep\ttab\nnl"), "keep\ttab\nnl");
        assert_eq!(escape_attr("t\tn\nr\r"), "t&#9;n&#10;r&#13;");
        assert!(matches!(strip_invalid_chars("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn strings_convert_by_escaping() {
        let x: Xml = "<b>".into();
        assert_eq!(x.as_str(), "&lt;b&gt;");
        let x: Xml = String::from("&").into();
        assert_eq!(x.to_string(), "&amp;");
        let joined: Xml = ["a", "b"].into_iter().map(paragraph).collect();
        assert_eq!(String::from(joined), "<p>a</p><p>b</p>");
    }
}
