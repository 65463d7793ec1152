//! A Slack message as Slack would show it: its Block Kit blocks (header,
//! section with fields and a button, context, divider, actions, image,
//! rich text), or its `text` when it has none; the notification text
//! beside it.
//!
//! The block types are the ones Pagehook's SDK builds and Slack's
//! reference defines (`shared/specs/slack/`); anything else shows as a
//! named placeholder rather than disappearing. Images are not loaded (the
//! console loads nothing from elsewhere): their alt text stands in.
//!
//! What it must never do: turn block text into markup (plain_text is text,
//! mrkdwn goes through [`super::mrkdwn`]), or make a button of a URL that is
//! not http(s): such a button is shown, struck through, with "link refused".

use maud::{Markup, html};
use serde_json::Value;

use super::mrkdwn;
use super::web_url;

/// A whole message: `blocks` (a JSON array, or a string holding one, as
/// the contract carries it) when there are any, `text` otherwise.
pub fn message(text: &str, blocks: Option<&Value>) -> Markup {
    let parsed;
    let blocks = match blocks {
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s).ok();
            parsed.as_ref()
        }
        other => other,
    };
    let list = blocks.and_then(Value::as_array).filter(|b| !b.is_empty());
    html! {
        div class="sk-message" {
            div class="sk-avatar" aria-hidden="true" { "P" }
            div class="sk-body" {
                div class="sk-sender" { strong { "Pagehook" } " " span class="sk-app" { "APP" } }
                @match list {
                    Some(blocks) => {
                        @for block in blocks { (self::block(block)) }
                    }
                    None => div class="sk-block" { (mrkdwn::render(text)) },
                }
            }
        }
        @if list.is_some() && !text.trim().is_empty() {
            p class="sk-fallback muted" {
                "Notification text: " (mrkdwn::node_texts(text))
            }
        }
    }
}

/// One block.
pub fn block(block: &Value) -> Markup {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "header" => html! {
            div class="sk-block sk-header" { (text_object(block.get("text"))) }
        },
        "section" => section(block),
        "context" => html! {
            div class="sk-block sk-context" {
                @for e in array(block.get("elements")) {
                    span class="sk-context-item" { (element(e)) }
                }
            }
        },
        "divider" => html! { hr class="sk-divider"; },
        "actions" => html! {
            div class="sk-block sk-actions" {
                @for e in array(block.get("elements")) { (element(e)) }
            }
        },
        "image" => html! {
            div class="sk-block sk-image" {
                @if let Some(title) = block.get("title") { div { (text_object(Some(title))) } }
                (image_placeholder(block))
            }
        },
        "rich_text" => html! {
            div class="sk-block" { (rich_text(block)) }
        },
        other => html! {
            div class="sk-block sk-unknown" {
                "[a " code { (if other.is_empty() { "block without a type" } else { other }) } " block, not shown here]"
            }
        },
    }
}

fn section(block: &Value) -> Markup {
    let fields = array(block.get("fields"));
    html! {
        div class="sk-block sk-section" {
            div class="sk-section-main" {
                @if let Some(text) = block.get("text") { div { (text_object(Some(text))) } }
                @if !fields.is_empty() {
                    div class="sk-fields" {
                        @for f in fields { div class="sk-field" { (text_object(Some(f))) } }
                    }
                }
            }
            @if let Some(accessory) = block.get("accessory") {
                div class="sk-accessory" { (element(accessory)) }
            }
        }
    }
}

/// A text object: `plain_text` literally (emoji shown), `mrkdwn` formatted.
fn text_object(t: Option<&Value>) -> Markup {
    let Some(t) = t else {
        return html! {};
    };
    let text = t.get("text").and_then(Value::as_str).unwrap_or("");
    match t.get("type").and_then(Value::as_str) {
        Some("mrkdwn") => mrkdwn::render(text),
        _ => html! { (mrkdwn::plain(text)) },
    }
}

/// An element of a context, actions block or accessory.
fn element(e: &Value) -> Markup {
    match e.get("type").and_then(Value::as_str).unwrap_or("") {
        "plain_text" | "mrkdwn" => text_object(Some(e)),
        "button" => button(e),
        "image" => image_placeholder(e),
        "overflow" => html! {
            span class="sk-overflow" title="A menu of links" {
                "⋯ "
                @for (i, o) in array(e.get("options")).iter().enumerate() {
                    @if i > 0 { " · " }
                    (link_or_refused(o.get("url").and_then(Value::as_str), text_object(o.get("text"))))
                }
            }
        },
        other => html! { span class="sk-unknown" { "[" (other) "]" } },
    }
}

/// A link button: a link for an http(s) URL, refused otherwise; a button
/// without a URL is shown as Slack shows it (it would call an app back).
fn button(e: &Value) -> Markup {
    let label = text_object(e.get("text"));
    let style = match e.get("style").and_then(Value::as_str) {
        Some("primary") => "sk-button sk-primary",
        Some("danger") => "sk-button sk-danger",
        _ => "sk-button",
    };
    match e.get("url").and_then(Value::as_str) {
        None => html! { span class=(style) { (label) } },
        Some(url) => match web_url(url) {
            Some(url) => html! {
                a class=(style) href=(url) target="_blank" rel="noopener noreferrer" title=(url) { (label) }
            },
            None => html! {
                span class={ (style) " sk-refused" } title="Not linked: not an http(s) URL" {
                    (label) " (link refused: " code { (url) } ")"
                }
            },
        },
    }
}

fn link_or_refused(url: Option<&str>, label: Markup) -> Markup {
    match url.and_then(web_url) {
        Some(url) => html! { a href=(url) target="_blank" rel="noopener noreferrer" { (label) } },
        None => {
            html! { span class="sk-refused-link" title="Not linked: not an http(s) URL" { (label) } }
        }
    }
}

fn image_placeholder(e: &Value) -> Markup {
    let alt = e.get("alt_text").and_then(Value::as_str).unwrap_or("image");
    html! { span class="sk-image-placeholder" title="Images are not loaded in the console" { "🖼 " (alt) } }
}

/// `rich_text`: its sections, lists, quotes and preformatted parts, with
/// text styles and links (refused unless http(s)).
fn rich_text(block: &Value) -> Markup {
    html! {
        @for part in array(block.get("elements")) {
            @match part.get("type").and_then(Value::as_str).unwrap_or("") {
                "rich_text_section" => div { (rich_elements(part)) },
                "rich_text_quote" => blockquote class="sk-quote" { (rich_elements(part)) },
                "rich_text_preformatted" => pre class="sk-pre" { (rich_elements(part)) },
                "rich_text_list" => ul {
                    @for item in array(part.get("elements")) { li { (rich_elements(item)) } }
                },
                other => span class="sk-unknown" { "[" (other) "]" },
            }
        }
    }
}

fn rich_elements(part: &Value) -> Markup {
    html! {
        @for e in array(part.get("elements")) {
            @let text = e.get("text").and_then(Value::as_str).unwrap_or("");
            @let styled = styled(e, html! { (text) });
            @match e.get("type").and_then(Value::as_str).unwrap_or("") {
                "text" => (styled),
                "link" => {
                    @let url = e.get("url").and_then(Value::as_str);
                    @let label = if text.is_empty() { url.unwrap_or_default() } else { text };
                    (link_or_refused(url, styled_text(e, label)))
                }
                "emoji" => (mrkdwn::plain(&format!(":{}:", e.get("name").and_then(Value::as_str).unwrap_or_default()))),
                "user" => span class="sk-mention" { "@" (e.get("user_id").and_then(Value::as_str).unwrap_or_default()) },
                "channel" => span class="sk-mention" { "#" (e.get("channel_id").and_then(Value::as_str).unwrap_or_default()) },
                "broadcast" => span class="sk-mention" { "@" (e.get("range").and_then(Value::as_str).unwrap_or_default()) },
                other => span class="sk-unknown" { "[" (other) "]" },
            }
        }
    }
}

fn styled_text(e: &Value, text: &str) -> Markup {
    styled(e, html! { (text) })
}

fn styled(e: &Value, inner: Markup) -> Markup {
    let on = |k: &str| {
        e.pointer(&format!("/style/{k}"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let mut m = inner;
    if on("code") {
        m = html! { code class="sk-code" { (m) } };
    }
    if on("strike") {
        m = html! { s { (m) } };
    }
    if on("italic") {
        m = html! { i { (m) } };
    }
    if on("bold") {
        m = html! { b { (m) } };
    }
    m
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The blocks slack-poster sends for a page titled with probes.
    fn poster_blocks(title: &str, url: &str) -> Value {
        json!([
            {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("Ada created <{url}|{}> in *ENG*", title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"))}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "ENG · version 1"}, {"type": "mrkdwn", "text": ":lock: restricted"}]},
            {"type": "divider"},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Space*\nENG"}, {"type": "plain_text", "text": "<b>x</b>"}],
             "accessory": {"type": "button", "action_id": "open-1", "text": {"type": "plain_text", "text": "Open in Confluence"}, "url": url}},
            {"type": "actions", "elements": [
                {"type": "button", "action_id": "link-0", "text": {"type": "plain_text", "text": "Open page", "emoji": true}, "url": url, "style": "primary"},
                {"type": "button", "action_id": "link-1", "text": {"type": "plain_text", "text": "Bad", "emoji": true}, "url": "javascript:alert(document.cookie)"}
            ]}
        ])
    }

    #[test]
    fn block_kit_renders_each_block_type() {
        let blocks = poster_blocks("Q3 launch checklist", "https://wiki.example.com/x/1");
        let out = message("Ada created Q3", Some(&blocks)).into_string();
        assert!(
            out.contains(r#"<div class="sk-block sk-header">Q3 launch checklist</div>"#),
            "{out}"
        );
        assert!(out.contains(r#"<b>ENG</b>"#), "{out}");
        assert!(
            out.contains(r#"<span class="sk-context-item"><span class="sk-lines">🔒 restricted</span></span>"#),
            "{out}"
        );
        assert!(out.contains(r#"<hr class="sk-divider">"#), "{out}");
        assert!(
            out.contains(
                r#"<div class="sk-field"><span class="sk-lines"><b>Space</b><br>ENG</span></div>"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"<a class="sk-button sk-primary" href="https://wiki.example.com/x/1""#),
            "{out}"
        );
        assert!(out.contains("Notification text: Ada created Q3"), "{out}");
        // A string holding the blocks, as the contract carries them, renders the same.
        let as_string = Value::String(blocks.to_string());
        assert_eq!(
            message("Ada created Q3", Some(&as_string)).into_string(),
            out
        );
    }

    #[test]
    fn xss_probes_in_titles_stay_text() {
        let title = r#"<script>alert(1)</script> "><img src=x onerror=alert(2)> &amp; <!channel>"#;
        let out = message(
            title,
            Some(&poster_blocks(title, "https://wiki.example.com/x/1")),
        )
        .into_string();
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        super::super::tests::assert_only_safe_markup(&out);
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{out}"
        );
        // plain_text is shown literally: `&amp;` in it is five characters.
        assert!(out.contains("&amp;amp;"), "{out}");
        assert!(out.contains("&lt;b&gt;x&lt;/b&gt;"), "{out}");
    }

    #[test]
    fn buttons_and_links_to_javascript_are_refused() {
        let blocks = poster_blocks("T", "javascript:alert(1)//");
        let out = message("t", Some(&blocks)).into_string();
        assert!(!out.contains("href=\"javascript"), "{out}");
        assert!(
            !out.to_ascii_lowercase().contains("href=\"javascript"),
            "{out}"
        );
        assert!(
            out.contains("(link refused: <code>javascript:alert(1)//</code>)"),
            "{out}"
        );
        assert!(
            out.contains("(link refused: <code>javascript:alert(document.cookie)</code>)"),
            "{out}"
        );
        let rich = json!([{"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "link", "url": " JAVASCRIPT:alert(1)", "text": "x"},
            {"type": "text", "text": "<i>t</i>", "style": {"bold": true}}
        ]}]}]);
        let out = message("", Some(&rich)).into_string();
        assert!(!out.contains("href="), "{out}");
        assert!(out.contains("<b>&lt;i&gt;t&lt;/i&gt;</b>"), "{out}");
    }

    #[test]
    fn without_blocks_the_text_is_the_message_and_unknown_blocks_are_named() {
        let out = message("*hi* <https://x|there>", None).into_string();
        assert!(out.contains("<b>hi</b>"), "{out}");
        assert!(!out.contains("Notification text"), "{out}");
        let out = message("t", Some(&json!([{"type": "input", "label": {"type": "plain_text", "text": "x"}}, {"type": "<b>"}]))).into_string();
        assert!(
            out.contains("[a <code>input</code> block, not shown here]"),
            "{out}"
        );
        assert!(out.contains("<code>&lt;b&gt;</code>"), "{out}");
        let out = message("t", Some(&json!([{"type": "image", "image_url": "https://evil/x.png", "alt_text": "<chart>"}]))).into_string();
        assert!(!out.contains("evil"), "images are not loaded: {out}");
        assert!(out.contains("&lt;chart&gt;"), "{out}");
    }
}
