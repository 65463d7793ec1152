//! Slack's mrkdwn as a person sees it in Slack: `*bold*`, `_italic_`,
//! `~strike~`, `` `code` ``, code blocks, `>` quotes, line breaks, links
//! `<url|label>`, mentions (`<@U1>`, `<#C1|eng>`, `<!here>`), dates
//! (`<!date^…|fallback>`) and a few `:emoji:` the plugins use.
//!
//! The input is what a plugin sent Slack: text whose `&`, `<` and `>` are
//! escaped as `&amp;`, `&lt;`, `&gt;` and whose unescaped `<…>` are control
//! sequences. It is parsed into [`Inline`] nodes and written out with maud,
//! so every character of it reaches the page as text.
//!
//! What it must never do: emit markup from the input (nothing here is
//! `PreEscaped`), or link anything but an `http(s)` or `mailto` URL (a
//! `javascript:` link shows as its label, marked refused).

use maud::{Markup, html};

use super::link_url;

/// One piece of a line of mrkdwn.
#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    Text(String),
    Bold(Vec<Inline>),
    Italic(Vec<Inline>),
    Strike(Vec<Inline>),
    Code(String),
    /// `<url|label>`; `url` is `None` when it is not a URL a page may link.
    Link {
        url: Option<String>,
        refused: Option<String>,
        label: Vec<Inline>,
    },
    /// `<@U1>`, `<#C1|eng>`, `<!here>`, `<!subteam^…|@team>`: shown highlighted.
    Mention(String),
}

/// A unit of a line before formatting: a character, or a control sequence
/// already parsed.
#[derive(Debug, Clone)]
enum Unit {
    Ch(char),
    Atom(Inline),
}

/// mrkdwn as markup: code blocks, quotes and lines.
pub fn render(text: &str) -> Markup {
    let blocks = split_code_blocks(text);
    html! {
        @for block in &blocks {
            @match block {
                Block::Code(code) => pre class="sk-pre" { (decode_entities(code)) },
                Block::Text(text) => (lines(text)),
            }
        }
    }
}

/// plain_text as Slack shows it (with `emoji: true`): literal, `:emoji:` shown.
pub fn plain(text: &str) -> String {
    emojify(text)
}

enum Block<'a> {
    Text(&'a str),
    Code(&'a str),
}

/// Splits on ``` fences: text, code, text, ... (an unclosed fence is text).
fn split_code_blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("```") else {
            break;
        };
        if start > 0 {
            out.push(Block::Text(&rest[..start]));
        }
        out.push(Block::Code(after[..end].trim_matches('\n')));
        rest = &after[end + 3..];
    }
    if !rest.is_empty() {
        out.push(Block::Text(rest));
    }
    out
}

/// Lines, with consecutive `>` lines as one quote.
fn lines(text: &str) -> Markup {
    let mut groups: Vec<(bool, Vec<&str>)> = Vec::new();
    for line in text.split('\n') {
        let (quoted, line) = match line.strip_prefix('>') {
            Some(rest) => (true, rest.strip_prefix(' ').unwrap_or(rest)),
            None => (false, line),
        };
        match groups.last_mut() {
            Some((q, ls)) if *q == quoted => ls.push(line),
            _ => groups.push((quoted, vec![line])),
        }
    }
    html! {
        @for (quoted, ls) in &groups {
            @if *quoted {
                blockquote class="sk-quote" { (joined_lines(ls)) }
            } @else {
                span class="sk-lines" { (joined_lines(ls)) }
            }
        }
    }
}

fn joined_lines(lines: &[&str]) -> Markup {
    html! {
        @for (i, line) in lines.iter().enumerate() {
            @if i > 0 { br; }
            (inlines(&parse_line(line)))
        }
    }
}

/// Writes parsed inline nodes.
pub fn inlines(nodes: &[Inline]) -> Markup {
    html! {
        @for node in nodes {
            @match node {
                Inline::Text(t) => (t),
                Inline::Bold(n) => b { (inlines(n)) },
                Inline::Italic(n) => i { (inlines(n)) },
                Inline::Strike(n) => s { (inlines(n)) },
                Inline::Code(c) => code class="sk-code" { (c) },
                Inline::Mention(m) => span class="sk-mention" { (m) },
                Inline::Link { url: Some(url), label, .. } => {
                    a href=(url) target="_blank" rel="noopener noreferrer" {
                        @if label.is_empty() { (url) } @else { (inlines(label)) }
                    }
                }
                Inline::Link { url: None, refused, label } => {
                    span class="sk-refused-link" title="Not linked: not an http(s) or mailto URL" {
                        @if label.is_empty() { (refused.as_deref().unwrap_or_default()) } @else { (inlines(label)) }
                    }
                }
            }
        }
    }
}

/// One line of mrkdwn as inline nodes.
pub fn parse_line(line: &str) -> Vec<Inline> {
    parse_units(&units(line))
}

/// Characters (entities decoded) and control sequences.
fn units(line: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('<') {
        push_text(&mut out, &rest[..open]);
        let after = &rest[open + 1..];
        match after.find('>') {
            Some(close) => {
                out.push(Unit::Atom(control(&after[..close])));
                rest = &after[close + 1..];
            }
            None => {
                // A lone `<` Slack would not parse: shown as written.
                push_text(&mut out, &rest[open..]);
                rest = "";
            }
        }
    }
    push_text(&mut out, rest);
    out
}

fn push_text(out: &mut Vec<Unit>, raw: &str) {
    out.extend(decode_entities(raw).chars().map(Unit::Ch));
}

/// A control sequence `<…>` (without its brackets).
fn control(inner: &str) -> Inline {
    let (target, label) = match inner.split_once('|') {
        Some((t, l)) => (t, Some(l)),
        None => (inner, None),
    };
    let label_text = label.map(decode_entities);
    if let Some(special) = target.strip_prefix('!') {
        let name = special.split('^').next().unwrap_or_default();
        return match name {
            "here" | "channel" | "everyone" => Inline::Mention(format!("@{name}")),
            // `<!date^1767225600^{date_short}|Jan 1, 2026>`: the fallback.
            "date" => Inline::Text(label_text.unwrap_or_else(|| special.to_owned())),
            _ => Inline::Mention(label_text.unwrap_or_else(|| format!("@{name}"))),
        };
    }
    if let Some(user) = target.strip_prefix('@') {
        return Inline::Mention(match label_text {
            Some(l) => format!("@{}", l.trim_start_matches('@')),
            None => format!("@{user}"),
        });
    }
    if let Some(channel) = target.strip_prefix('#') {
        return Inline::Mention(match label_text {
            Some(l) => format!("#{}", l.trim_start_matches('#')),
            None => format!("#{channel}"),
        });
    }
    let url = decode_entities(target);
    let label = label.map(parse_line).unwrap_or_default();
    match link_url(&url) {
        Some(ok) => Inline::Link {
            url: Some(ok.to_owned()),
            refused: None,
            label,
        },
        None => Inline::Link {
            url: None,
            refused: Some(url),
            label,
        },
    }
}

/// The three entities Slack escapes (and `&quot;`/`&#39;`, which some
/// senders use); anything else stays as written.
pub fn decode_entities(raw: &str) -> String {
    if !raw.contains('&') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let known = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&#39;", '\''),
        ];
        match known.iter().find(|(e, _)| tail.starts_with(e)) {
            Some((e, c)) => {
                out.push(*c);
                rest = &tail[e.len()..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

const MARKERS: [char; 4] = ['*', '_', '~', '`'];

fn is_boundary(u: Option<&Unit>) -> bool {
    match u {
        None => true,
        Some(Unit::Ch(c)) => {
            c.is_whitespace() || (c.is_ascii_punctuation() && !MARKERS.contains(c))
        }
        Some(Unit::Atom(_)) => true,
    }
}

fn is_space(u: Option<&Unit>) -> bool {
    matches!(u, Some(Unit::Ch(c)) if c.is_whitespace())
}

/// Formatting over units: a marker opens after a boundary and before a
/// non-space, and closes (the same marker) after a non-space and before a
/// boundary, on the same line.
fn parse_units(units: &[Unit]) -> Vec<Inline> {
    let mut out: Vec<Inline> = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < units.len() {
        match &units[i] {
            Unit::Atom(node) => {
                flush(&mut out, &mut text);
                out.push(node.clone());
                i += 1;
            }
            Unit::Ch(c) if MARKERS.contains(c) => {
                let opens = is_boundary(if i == 0 { None } else { units.get(i - 1) })
                    && units.get(i + 1).is_some()
                    && !is_space(units.get(i + 1))
                    && !matches!(units.get(i + 1), Some(Unit::Ch(n)) if n == c);
                let close = if opens {
                    (i + 2..units.len()).find(|&j| {
                        matches!(&units[j], Unit::Ch(m) if m == c)
                            && !is_space(units.get(j - 1))
                            && is_boundary(units.get(j + 1))
                    })
                } else {
                    None
                };
                match close {
                    Some(j) => {
                        flush(&mut out, &mut text);
                        let inner = &units[i + 1..j];
                        out.push(match c {
                            '*' => Inline::Bold(parse_units(inner)),
                            '_' => Inline::Italic(parse_units(inner)),
                            '~' => Inline::Strike(parse_units(inner)),
                            _ => Inline::Code(plain_units(inner)),
                        });
                        i = j + 1;
                    }
                    None => {
                        text.push(*c);
                        i += 1;
                    }
                }
            }
            Unit::Ch(c) => {
                text.push(*c);
                i += 1;
            }
        }
    }
    flush(&mut out, &mut text);
    out
}

fn flush(out: &mut Vec<Inline>, text: &mut String) {
    if !text.is_empty() {
        out.push(Inline::Text(emojify(text)));
        text.clear();
    }
}

/// Units as plain text (inside `code`, where nothing is formatted).
fn plain_units(units: &[Unit]) -> String {
    let mut out = String::new();
    for u in units {
        match u {
            Unit::Ch(c) => out.push(*c),
            Unit::Atom(node) => out.push_str(&node_text(node)),
        }
    }
    out
}

/// What a notification shows of mrkdwn: its text, formatting removed,
/// lines joined by spaces.
pub fn node_texts(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let line = line.strip_prefix('>').unwrap_or(line);
            parse_line(line).iter().map(node_text).collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text a node shows.
pub fn node_text(node: &Inline) -> String {
    match node {
        Inline::Text(t) | Inline::Code(t) | Inline::Mention(t) => t.clone(),
        Inline::Bold(n) | Inline::Italic(n) | Inline::Strike(n) => {
            n.iter().map(node_text).collect()
        }
        Inline::Link {
            url,
            refused,
            label,
        } => {
            if label.is_empty() {
                url.clone().or_else(|| refused.clone()).unwrap_or_default()
            } else {
                label.iter().map(node_text).collect()
            }
        }
    }
}

/// The emoji Pagehook's plugins and SDK write, by their Slack names; others
/// stay `:name:` (as Slack shows a name it does not know).
const EMOJI: [(&str, &str); 24] = [
    ("bell", "🔔"),
    ("lock", "🔒"),
    ("memo", "📝"),
    ("warning", "⚠️"),
    ("white_check_mark", "✅"),
    ("heavy_check_mark", "✔️"),
    ("x", "❌"),
    ("pencil", "✏️"),
    ("pencil2", "✏️"),
    ("page_facing_up", "📄"),
    ("speech_balloon", "💬"),
    ("tada", "🎉"),
    ("eyes", "👀"),
    ("link", "🔗"),
    ("wave", "👋"),
    ("+1", "👍"),
    ("thumbsup", "👍"),
    ("mag", "🔍"),
    ("information_source", "ℹ️"),
    ("calendar", "📅"),
    ("rotating_light", "🚨"),
    ("bulb", "💡"),
    ("label", "🏷️"),
    ("books", "📚"),
];

fn emojify(text: &str) -> String {
    if !text.contains(':') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(':') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_+-".contains(c)))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let closed = after[name_len..].starts_with(':');
        match EMOJI.iter().find(|(n, _)| *n == name) {
            Some((_, emoji)) if closed && !name.is_empty() => {
                out.push_str(emoji);
                rest = &after[name_len + 1..];
            }
            _ => {
                out.push(':');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html_of(text: &str) -> String {
        render(text).into_string()
    }

    #[test]
    fn formatting_marks_become_elements() {
        assert_eq!(
            html_of("*Ada* _edited_ ~old~ `x<y`"),
            r#"<span class="sk-lines"><b>Ada</b> <i>edited</i> <s>old</s> <code class="sk-code">x&lt;y</code></span>"#
        );
        // Markers inside words or without a partner stay as written.
        assert_eq!(
            html_of("snake_case_name 2*3 *open"),
            r#"<span class="sk-lines">snake_case_name 2*3 *open</span>"#
        );
        assert_eq!(
            html_of("*bold <https://x/1|link>*"),
            r#"<span class="sk-lines"><b>bold <a href="https://x/1" target="_blank" rel="noopener noreferrer">link</a></b></span>"#
        );
    }

    #[test]
    fn escapes_decode_once_and_stay_text() {
        // What the SDK sends for a title `<script>alert(1)</script> & <!channel>`.
        let sent = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt; &amp;amp;";
        let out = html_of(sent);
        assert_eq!(
            out,
            r#"<span class="sk-lines">&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt; &amp;amp;</span>"#
        );
        assert!(!out.contains("<script"));
    }

    #[test]
    fn raw_markup_in_mrkdwn_is_never_markup() {
        // Unescaped angle brackets are control sequences for Slack, never HTML here.
        for probe in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "\"><svg onload=alert(1)>",
            "*<https://x/\" onmouseover=\"alert(1)|b>*",
        ] {
            let out = html_of(probe);
            super::super::tests::assert_only_safe_markup(&out);
            assert!(!out.contains("href=\"javascript"), "{out}");
        }
    }

    #[test]
    fn links_are_http_or_mailto_only() {
        assert_eq!(
            html_of("<javascript:alert(1)|click me>"),
            r#"<span class="sk-lines"><span class="sk-refused-link" title="Not linked: not an http(s) or mailto URL">click me</span></span>"#
        );
        assert_eq!(
            html_of("<JavaScript:alert(1)>"),
            r#"<span class="sk-lines"><span class="sk-refused-link" title="Not linked: not an http(s) or mailto URL">JavaScript:alert(1)</span></span>"#
        );
        assert!(html_of("<data:text/html,<b>x</b>|d>").contains("sk-refused-link"));
        let ok = html_of("<https://wiki.example.com/x?a=1&amp;b=%22|Q3 &lt;plan&gt;>");
        assert!(
            ok.contains(r#"href="https://wiki.example.com/x?a=1&amp;b=%22""#),
            "{ok}"
        );
        assert!(ok.contains(">Q3 &lt;plan&gt;</a>"), "{ok}");
        // A URL cannot break out of its attribute.
        let quote = html_of("<https://x/\"onmouseover=\"alert(1)|y>");
        assert!(!quote.contains("\"onmouseover"), "{quote}");
        assert!(
            html_of("<mailto:ada@example.com|Ada>").contains("href=\"mailto:ada@example.com\"")
        );
    }

    #[test]
    fn mentions_dates_quotes_code_blocks_and_emoji() {
        assert_eq!(
            html_of("<!here> <@U123> <@U9|ada> <#C1|eng>"),
            r#"<span class="sk-lines"><span class="sk-mention">@here</span> <span class="sk-mention">@U123</span> <span class="sk-mention">@ada</span> <span class="sk-mention">#eng</span></span>"#
        );
        assert_eq!(
            html_of("edited <!date^1767225600^on {date_short}|on Jan 1, 2026>"),
            r#"<span class="sk-lines">edited on Jan 1, 2026</span>"#
        );
        assert_eq!(
            html_of("intro\n>quoted &lt;b&gt;\n>two"),
            r#"<span class="sk-lines">intro</span><blockquote class="sk-quote">quoted &lt;b&gt;<br>two</blockquote>"#
        );
        assert_eq!(
            html_of("a\n```<b>x</b> &amp;```"),
            r#"<span class="sk-lines">a<br></span><pre class="sk-pre">&lt;b&gt;x&lt;/b&gt; &amp;</pre>"#
        );
        assert_eq!(
            html_of(":lock: restricted :no_such_emoji:"),
            r#"<span class="sk-lines">🔒 restricted :no_such_emoji:</span>"#
        );
    }
}
