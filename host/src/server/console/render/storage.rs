//! A Confluence page or comment body (storage format, XHTML with Atlassian's
//! `ac:` and `ri:` elements) as a reader would see it in Confluence, safely.
//!
//! The body is parsed as XML (Confluence refuses a body that is not
//! well-formed, and so does this: the error is shown instead). Then only
//! what is known is written out, element by element, with maud:
//!
//! - plain XHTML text elements (paragraphs, headings, lists, tables,
//!   emphasis, code, quotes) as themselves, with no attribute but a
//!   numeric `colspan`/`rowspan`: no `style`, no `class`, no `on…` handler;
//! - links only to `http(s)` and `mailto` URLs; any other `href`
//!   (`javascript:`, `data:`, relative) leaves the text unlinked;
//! - macros as Confluence draws them (info/note/warning/tip panels, code,
//!   status lozenges, task lists) or as a named placeholder; page and user
//!   links as text; images as their file name (nothing is loaded);
//! - `script`, `style`, `iframe`, `object`, forms and the like dropped with
//!   everything inside them; any other element unwrapped to its content.
//!
//! What it must never do: copy an element, attribute or URL from the body
//! into the page without it being on the lists above (nothing here is
//! `PreEscaped`).

use maud::{Markup, html};
use roxmltree::{Document, Node, ParsingOptions};

use super::link_url;

const AC: &str = "http://atlassian.com/content";
const RI: &str = "http://atlassian.com/resource/identifier";

/// HTML's named entities that storage format uses (Confluence writes
/// `&nbsp;`, `&ndash;`, quotes...), declared so the XML parser knows them.
const ENTITIES: [(&str, &str); 24] = [
    ("nbsp", "&#160;"),
    ("ndash", "&#8211;"),
    ("mdash", "&#8212;"),
    ("hellip", "&#8230;"),
    ("lsquo", "&#8216;"),
    ("rsquo", "&#8217;"),
    ("ldquo", "&#8220;"),
    ("rdquo", "&#8221;"),
    ("laquo", "&#171;"),
    ("raquo", "&#187;"),
    ("middot", "&#183;"),
    ("bull", "&#8226;"),
    ("copy", "&#169;"),
    ("reg", "&#174;"),
    ("trade", "&#8482;"),
    ("euro", "&#8364;"),
    ("pound", "&#163;"),
    ("times", "&#215;"),
    ("deg", "&#176;"),
    ("rarr", "&#8594;"),
    ("larr", "&#8592;"),
    ("auml", "&#228;"),
    ("ouml", "&#246;"),
    ("uuml", "&#252;"),
];

/// Elements dropped with everything inside them.
const DROPPED: [&str; 22] = [
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript",
    "template", "svg", "math", "form", "input", "button", "textarea", "select", "option", "link",
    "meta", "base", "head",
];

/// A page: its title as Confluence shows it, then its body.
pub fn page(title: &str, storage: &str) -> Markup {
    html! {
        article class="cf-page" {
            h1 class="cf-title" { (title) }
            (body(storage))
        }
    }
}

/// A body in storage format, rendered; or why it is not well-formed.
pub fn body(storage: &str) -> Markup {
    let entities: String = ENTITIES
        .iter()
        .map(|(name, value)| format!("<!ENTITY {name} \"{value}\">"))
        .collect();
    let doc = format!(
        "<!DOCTYPE storage [{entities}]><storage xmlns:ac=\"{AC}\" xmlns:ri=\"{RI}\" xmlns:at=\"http://atlassian.com/template\">{storage}</storage>"
    );
    let options = ParsingOptions {
        allow_dtd: true,
        ..ParsingOptions::default()
    };
    match Document::parse_with_options(&doc, options) {
        Ok(parsed) => html! {
            div class="cf-body" { (children(parsed.root_element())) }
        },
        Err(e) => html! {
            div class="cf-body" {
                p class="alert" {
                    "This body is not well-formed storage format, and Confluence would refuse it: " (e.to_string())
                }
                pre { (storage) }
            }
        },
    }
}

fn children(node: Node) -> Markup {
    html! { @for child in node.children() { (render(child)) } }
}

/// Allowed plain elements, written as themselves without attributes.
macro_rules! plain_elements {
    ($node:expr, $name:expr, $($tag:ident)*) => {
        match $name {
            $(stringify!($tag) => return html! { $tag { (children($node)) } },)*
            _ => {}
        }
    };
}

fn render(node: Node) -> Markup {
    if node.is_text() {
        return html! { (node.text().unwrap_or_default()) };
    }
    if !node.is_element() {
        return html! {};
    }
    let tag = node.tag_name();
    match tag.namespace() {
        Some(AC) => return atlassian(node, tag.name()),
        Some(RI) => return resource(node),
        Some(_) => return children(node),
        None => {}
    }
    let name = tag.name().to_ascii_lowercase();
    if DROPPED.contains(&name.as_str()) {
        return html! {};
    }
    plain_elements!(node, name.as_str(),
        p h1 h2 h3 h4 h5 h6 strong em u s del sub sup code pre blockquote ul ol li
        table thead tbody tfoot tr caption span div small mark dl dt dd);
    match name.as_str() {
        "b" => html! { strong { (children(node)) } },
        "i" => html! { em { (children(node)) } },
        "strike" => html! { s { (children(node)) } },
        "br" => html! { br; },
        "hr" => html! { hr; },
        "th" => {
            html! { th colspan=[span(node, "colspan")] rowspan=[span(node, "rowspan")] { (children(node)) } }
        }
        "td" => {
            html! { td colspan=[span(node, "colspan")] rowspan=[span(node, "rowspan")] { (children(node)) } }
        }
        "a" => link(node.attribute("href"), children(node)),
        "img" => image_placeholder(node.attribute("alt").or(node.attribute("src"))),
        // `time datetime="2026-01-12"`: Confluence shows the date.
        "time" => match node.attribute("datetime") {
            Some(date) if !node.has_children() => html! { span class="cf-date" { (date) } },
            _ => html! { span class="cf-date" { (children(node)) } },
        },
        _ => children(node),
    }
}

/// A `colspan`/`rowspan` that is a small number.
fn span(node: Node, name: &str) -> Option<u16> {
    node.attribute(name)
        .and_then(|v| v.trim().parse::<u16>().ok())
        .filter(|n| (1..=100).contains(n))
}

fn link(href: Option<&str>, label: Markup) -> Markup {
    match href.and_then(link_url) {
        Some(url) => html! { a href=(url) target="_blank" rel="noopener noreferrer" { (label) } },
        None => html! {
            span class="cf-unlinked" title={ "Not linked: " (href.unwrap_or("no URL")) } { (label) }
        },
    }
}

fn image_placeholder(what: Option<&str>) -> Markup {
    html! {
        span class="cf-image" title="Images are not loaded in the console" {
            "🖼 " (what.unwrap_or("image"))
        }
    }
}

fn ac_attr<'a>(node: Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.attribute((AC, name))
}

fn ri_attr<'a>(node: Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.attribute((RI, name))
}

fn ac_child<'a>(node: Node<'a, 'a>, name: &str) -> Option<Node<'a, 'a>> {
    node.children()
        .find(|c| c.tag_name().namespace() == Some(AC) && c.tag_name().name() == name)
}

fn text_of(node: Node) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// A macro's `ac:parameter` named `name`.
fn parameter<'a>(node: Node<'a, 'a>, name: &str) -> Option<String> {
    node.children()
        .find(|c| {
            c.tag_name().namespace() == Some(AC)
                && c.tag_name().name() == "parameter"
                && ac_attr(*c, "name") == Some(name)
        })
        .map(text_of)
}

/// Atlassian's `ac:` elements.
fn atlassian(node: Node, name: &str) -> Markup {
    match name {
        "structured-macro" | "macro" => structured_macro(node),
        "rich-text-body" | "layout" | "layout-section" | "layout-cell" | "task-body"
        | "link-body" => {
            html! { div class={ "cf-" (name) } { (children(node)) } }
        }
        "plain-text-body" | "plain-text-link-body" => html! { (text_of(node)) },
        "link" => page_link(node),
        "image" => {
            let file = node
                .children()
                .find_map(|c| ri_attr(c, "filename").or(ri_attr(c, "value")));
            image_placeholder(file.or(ac_attr(node, "alt")))
        }
        "emoticon" => html! {
            span class="cf-emoticon" { (emoticon(ac_attr(node, "name").unwrap_or_default())) }
        },
        "task-list" => html! {
            ul class="cf-tasks" {
                @for task in node.children().filter(|c| c.tag_name().name() == "task") {
                    @let done = ac_child(task, "task-status").map(text_of).is_some_and(|s| s.trim() == "complete");
                    li class=(if done { "cf-task cf-done" } else { "cf-task" }) {
                        span class="cf-box" aria-label=(if done { "done" } else { "to do" }) { (if done { "☑ " } else { "☐ " }) }
                        @if let Some(body) = ac_child(task, "task-body") { (children(body)) }
                    }
                }
            }
        },
        "placeholder" => html! { span class="cf-placeholder" { (text_of(node)) } },
        // Parameters, task ids and statuses belong to their parent.
        "parameter" | "task-id" | "task-status" | "task" => html! {},
        _ => children(node),
    }
}

fn structured_macro(node: Node) -> Markup {
    let name = ac_attr(node, "name").unwrap_or_default();
    let body = ac_child(node, "rich-text-body");
    let plain = ac_child(node, "plain-text-body");
    match name {
        "info" | "note" | "warning" | "tip" | "panel" => html! {
            div class={ "cf-panel cf-" (name) } role="note" {
                @if let Some(title) = parameter(node, "title") { strong class="cf-panel-title" { (title) } }
                @if let Some(b) = body { (children(b)) }
            }
        },
        "code" | "noformat" => html! {
            figure class="cf-code" {
                @if let Some(lang) = parameter(node, "language") { figcaption { (lang) } }
                pre { (plain.map(text_of).unwrap_or_default()) }
            }
        },
        "status" => {
            let colour = parameter(node, "colour")
                .unwrap_or_else(|| "Grey".into())
                .to_ascii_lowercase();
            let colour = match colour.as_str() {
                "green" | "yellow" | "red" | "blue" | "purple" => colour,
                _ => "grey".into(),
            };
            html! {
                span class={ "cf-status cf-status-" (colour) } {
                    (parameter(node, "title").unwrap_or_else(|| colour.to_ascii_uppercase()))
                }
            }
        }
        "expand" => html! {
            div class="cf-expand" {
                div class="cf-expand-title" { "▸ " (parameter(node, "title").unwrap_or_else(|| "Click here to expand...".into())) }
                @if let Some(b) = body { (children(b)) }
            }
        },
        "quote" | "excerpt" | "section" | "column" | "details" => html! {
            div { @if let Some(b) = body { (children(b)) } }
        },
        other => html! {
            span class="cf-macro" title="A Confluence macro: Confluence draws it when the page is shown" {
                "[" (if other.is_empty() { "macro" } else { other }) " macro]"
                @if let Some(b) = body { (children(b)) }
            }
        },
    }
}

/// `ac:link` to a page, blog post, user, attachment, space or URL: the
/// link text (or the target's name), never a link into Confluence (it
/// would leave the console), except an absolute http(s) `ri:url`.
fn page_link(node: Node) -> Markup {
    let label = ac_child(node, "plain-text-link-body")
        .or_else(|| ac_child(node, "link-body"))
        .map(text_of)
        .filter(|t| !t.trim().is_empty());
    let target = node
        .children()
        .find(|c| c.tag_name().namespace() == Some(RI));
    let Some(target) = target else {
        return html! { span class="cf-link" { (label.unwrap_or_default()) } };
    };
    let named = match target.tag_name().name() {
        "page" | "blog-post" => ri_attr(target, "content-title").map(str::to_owned),
        "user" => Some(format!(
            "@{}",
            ri_attr(target, "username")
                .or(ri_attr(target, "userkey"))
                .unwrap_or("user")
        )),
        "attachment" => ri_attr(target, "filename").map(str::to_owned),
        "space" => ri_attr(target, "space-key").map(str::to_owned),
        "url" => {
            let url = ri_attr(target, "value").unwrap_or_default();
            return link(
                Some(url),
                html! { (label.clone().unwrap_or_else(|| url.to_owned())) },
            );
        }
        _ => None,
    };
    let shown = label.or(named).unwrap_or_default();
    html! { span class="cf-link" title="A link inside Confluence" { (shown) } }
}

/// A lone `ri:` element (a user mention written without `ac:link`).
fn resource(node: Node) -> Markup {
    match node.tag_name().name() {
        "user" => html! {
            span class="cf-link" { "@" (ri_attr(node, "username").or(ri_attr(node, "userkey")).unwrap_or("user")) }
        },
        _ => html! {},
    }
}

fn emoticon(name: &str) -> &str {
    match name {
        "smile" => "🙂",
        "sad" => "🙁",
        "cheeky" => "😛",
        "laugh" => "😀",
        "wink" => "😉",
        "thumbs-up" => "👍",
        "thumbs-down" => "👎",
        "information" => "ℹ️",
        "tick" => "✅",
        "cross" => "❌",
        "warning" => "⚠️",
        "plus" => "➕",
        "minus" => "➖",
        "question" => "❓",
        "light-on" => "💡",
        "yellow-star" | "blue-star" | "green-star" | "red-star" => "⭐",
        "heart" => "❤️",
        _ => "🙂",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(storage: &str) -> String {
        body(storage).into_string()
    }

    #[test]
    fn plain_xhtml_renders_as_itself() {
        assert_eq!(
            out(
                "<h2>Summary</h2><p>What <strong>happened</strong>&nbsp;&ndash; <em>why</em>.</p><ul><li><p>a</p></li></ul>"
            ),
            "<div class=\"cf-body\"><h2>Summary</h2><p>What <strong>happened</strong>\u{a0}– <em>why</em>.</p><ul><li><p>a</p></li></ul></div>"
        );
        assert_eq!(
            out(
                r#"<table><tbody><tr><th colspan="2" style="color:red" class="x"><p>T</p></th></tr><tr><td rowspan="x">1</td></tr></tbody></table>"#
            ),
            r#"<div class="cf-body"><table><tbody><tr><th colspan="2"><p>T</p></th></tr><tr><td>1</td></tr></tbody></table></div>"#
        );
    }

    #[test]
    fn scripts_handlers_styles_and_javascript_links_never_survive() {
        let probes = [
            r#"<p>a<script>alert(1)</script>b</p>"#,
            r#"<p onclick="alert(1)" onmouseover="alert(2)">a</p>"#,
            r#"<a href="javascript:alert(1)">click</a>"#,
            r#"<a href=" JaVaScRiPt:alert(1)">click</a>"#,
            r#"<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">d</a>"#,
            r#"<img src="x" onerror="alert(1)"/>"#,
            r#"<iframe src="https://evil.example"><p>inside</p></iframe>"#,
            r#"<svg><script>alert(1)</script></svg>"#,
            r#"<style>body{display:none}</style><p style="background:url(javascript:alert(1))">s</p>"#,
            r#"<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"#,
            r#"<ac:structured-macro ac:name="html"><ac:plain-text-body><![CDATA[<script>alert(1)</script>]]></ac:plain-text-body></ac:structured-macro>"#,
            r#"<ac:link><ri:url ri:value="javascript:alert(1)"/><ac:plain-text-link-body><![CDATA[<b>x</b>]]></ac:plain-text-link-body></ac:link>"#,
            r#"<form action="https://evil"><input name="x"/><button>Go</button></form>"#,
        ];
        for probe in probes {
            let html = out(probe);
            let lower = html.to_ascii_lowercase();
            for bad in [
                "<script",
                "<iframe",
                "<img",
                "<svg",
                "<style",
                "<form",
                "<input",
                "<button",
                "onclick=",
                "onerror=",
                "onmouseover=",
                "style=",
                "href=\"data:",
                "href=\"javascript",
                "href=\" javascript",
            ] {
                assert!(!lower.contains(bad), "{bad} in {html} (from {probe})");
            }
            assert!(!lower.contains("evil.example"), "{html}");
            super::super::tests::assert_only_safe_markup(&html);
        }
        assert_eq!(
            out(r#"<a href="javascript:alert(1)">click</a>"#),
            r#"<div class="cf-body"><span class="cf-unlinked" title="Not linked: javascript:alert(1)">click</span></div>"#
        );
        assert_eq!(
            out(r#"<a href="https://wiki.example.com/x?a=1&amp;b=2">ok</a>"#),
            r#"<div class="cf-body"><a href="https://wiki.example.com/x?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">ok</a></div>"#
        );
        // Text that looks like markup stays text.
        assert!(out("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>").contains("&lt;script&gt;"));
    }

    #[test]
    fn confluence_macros_render_as_confluence_draws_them() {
        let retro = r#"<p><ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">Yellow</ac:parameter><ac:parameter ac:name="title">Draft</ac:parameter></ac:structured-macro></p>
<ac:structured-macro ac:name="info"><ac:rich-text-body><p>Retrospective of <a href="https://wiki.example.com/x">Outage &lt;db&gt;</a></p></ac:rich-text-body></ac:structured-macro>
<ac:task-list><ac:task><ac:task-id>1</ac:task-id><ac:task-status>incomplete</ac:task-status><ac:task-body>Hold the meeting</ac:task-body></ac:task><ac:task><ac:task-id>2</ac:task-id><ac:task-status>complete</ac:task-status><ac:task-body>Book a room</ac:task-body></ac:task></ac:task-list>
<p><ac:link><ri:page ri:content-title="Runbook" ri:space-key="OPS"/></ac:link> by <ac:link><ri:user ri:userkey="8a7f"/></ac:link> <ac:emoticon ac:name="tick"/></p>
<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">sql</ac:parameter><ac:plain-text-body><![CDATA[SELECT 1 < 2;]]></ac:plain-text-body></ac:structured-macro>
<ac:structured-macro ac:name="toc"/><ac:image><ri:attachment ri:filename="chart.png"/></ac:image>"#;
        let html = out(retro);
        for part in [
            r#"<span class="cf-status cf-status-yellow">Draft</span>"#,
            r#"<div class="cf-panel cf-info" role="note"><p>Retrospective of <a href="https://wiki.example.com/x" target="_blank" rel="noopener noreferrer">Outage &lt;db&gt;</a></p></div>"#,
            r#"<li class="cf-task"><span class="cf-box" aria-label="to do">☐ </span>Hold the meeting</li>"#,
            r#"<li class="cf-task cf-done"><span class="cf-box" aria-label="done">☑ </span>Book a room</li>"#,
            r#"<span class="cf-link" title="A link inside Confluence">Runbook</span>"#,
            r#"<span class="cf-link" title="A link inside Confluence">@8a7f</span>"#,
            "✅",
            r#"<figure class="cf-code"><figcaption>sql</figcaption><pre>SELECT 1 &lt; 2;</pre></figure>"#,
            "[toc macro]",
            "🖼 chart.png",
        ] {
            assert!(html.contains(part), "{part} missing from {html}");
        }
    }

    #[test]
    fn a_body_that_is_not_well_formed_says_so_and_shows_the_source_as_text() {
        let html = out("<p>open <b>bold</p><script>alert(1)</script>");
        assert!(html.contains("not well-formed storage format"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        // An entity Confluence does not know is an error, not markup.
        assert!(out("<p>&bogus;</p>").contains("not well-formed"));
        let page = page("<b>Title</b>", "<p>x</p>").into_string();
        assert!(
            page.contains(r#"<h1 class="cf-title">&lt;b&gt;Title&lt;/b&gt;</h1>"#),
            "{page}"
        );
    }
}
