//! What a delivery looks like where it lands, for the console's previews
//! (a binding's Preview, the Deliveries and event pages): a Slack message
//! drawn from its Block Kit ([`slack`], [`mrkdwn`]), a Confluence page or
//! comment from its storage format ([`storage`]), and a Teams card handed
//! to Microsoft's Adaptive Cards renderer in the browser
//! (`assets/adaptivecards.min.js`, started by `assets/preview.js`).
//!
//! Everything is drawn from the action a plugin returned, the same data
//! delivery sends; the exact request stays one click away behind a closed
//! "Show request" toggle ([`request`]).
//!
//! What it must never do: pass a plugin's text or a Confluence body to the
//! page as markup (every renderer writes through maud, and nothing here is
//! `PreEscaped`), load anything from elsewhere (images are named, not
//! shown), or link a URL that is not http(s) (or mailto in text).

mod mrkdwn;
mod slack;
mod storage;

use maud::{Markup, html};
use serde_json::Value;

use crate::model::Action;

/// The only URLs a button or card action may open: the judge's rule.
pub use crate::dispatch::links::web_url;

/// A URL a link in text may have: [`web_url`], or `mailto:`.
pub fn link_url(url: &str) -> Option<&str> {
    web_url(url).or_else(|| {
        let url = url.trim();
        let parsed = reqwest::Url::parse(url).ok()?;
        (parsed.scheme() == "mailto").then_some(url)
    })
}

/// The message, card, page or comment an action would deliver, as it
/// would look there.
pub fn message(action: &Action) -> Markup {
    match action {
        Action::PostSlack {
            channel,
            text,
            blocks,
            thread_key,
        } => html! {
            div class="rendered rendered-slack" {
                p class="rendered-where" {
                    "Slack message to " strong { (channel) }
                    @if let Some(key) = thread_key { span class="muted" { " · in the thread " code { (key) } } }
                }
                (slack::message(text, blocks.as_ref()))
            }
        },
        Action::DmSlack {
            email,
            text,
            blocks,
        } => html! {
            div class="rendered rendered-slack" {
                p class="rendered-where" { "Slack direct message to the person with email " strong { (email) } }
                (slack::message(text, blocks.as_ref()))
            }
        },
        Action::Respond {
            text,
            blocks,
            in_channel,
            ..
        } => html! {
            div class="rendered rendered-slack" {
                p class="rendered-where" {
                    "Slack answer to the command, "
                    (if *in_channel { "posted in the channel" } else { "shown only to the person who asked" })
                }
                (slack::message(text, blocks.as_ref()))
            }
        },
        Action::Unfurl {
            channel, unfurls, ..
        } => html! {
            div class="rendered rendered-slack" {
                p class="rendered-where" { "Slack link previews in " strong { (channel) } }
                @for (url, preview) in unfurls.as_object().into_iter().flatten() {
                    div class="sk-unfurl" {
                        p class="muted" { "Preview of " code { (url) } }
                        (slack::message("", preview.get("blocks")))
                    }
                }
            }
        },
        Action::DmTeams { email, text, card } => html! {
            div class="rendered rendered-teams" {
                p class="rendered-where" { "Teams personal message to the person with email " strong { (email) } }
                p { (text) }
                @if let Some(card) = card { (teams_card(card)) }
            }
        },
        Action::ReplyTeams {
            text,
            card,
            replace_card,
            ..
        } => html! {
            div class="rendered rendered-teams" {
                p class="rendered-where" {
                    @if *replace_card { "Teams card replaced: the bot's card whose button was pressed now shows" }
                    @else { "Teams answer in the conversation that asked" }
                }
                p { (text) }
                @if let Some(card) = card { (teams_card(card)) }
            }
        },
        Action::PostTeams { channel, card } => html! {
            div class="rendered rendered-teams" {
                p class="rendered-where" { "Teams card to " strong { (channel) } }
                (teams_card(card))
            }
        },
        Action::CreatePage {
            space_key,
            parent_id,
            title,
            body,
            labels,
            ..
        } => html! {
            div class="rendered rendered-confluence" {
                p class="rendered-where" {
                    "New Confluence page in space " strong { (space_key) }
                    @if let Some(parent) = parent_id { ", under page " (parent) }
                    @if !labels.is_empty() {
                        ", labelled "
                        @for (i, l) in labels.iter().enumerate() { @if i > 0 { ", " } code { (l) } }
                    }
                }
                (storage::page(title, body))
            }
        },
        Action::AddComment { page_id, body, .. } => html! {
            div class="rendered rendered-confluence" {
                p class="rendered-where" { "Comment on Confluence page " strong { (page_id) } }
                article class="cf-page cf-comment" { (storage::body(body)) }
            }
        },
    }
}

/// A Teams card, for `preview.js` to draw with the Adaptive Cards
/// renderer: the card's JSON in `data-adaptive-card` (an attribute,
/// escaped; the script parses it, it is never HTML).
fn teams_card(card: &Value) -> Markup {
    let parsed;
    let card = match card {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            &parsed
        }
        other => other,
    };
    html! {
        div class="teams-card" data-adaptive-card=(card.to_string()) {
            p class="muted teams-card-waiting" { "Drawing the card with Microsoft's Adaptive Cards renderer…" }
        }
    }
}

/// The raw request (or action) as pretty JSON behind a closed toggle;
/// `id` names the `<pre>` (e.g. `would-send-4`).
pub fn request(summary: &str, value: &Value, id: Option<&str>) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    html! {
        details class="raw-request" {
            summary { (summary) }
            pre id=[id] { (text) }
        }
    }
}

/// A short line saying what an action carries (a title or the first words
/// of a message), for a table row.
pub fn gist(action: &Action) -> String {
    let text = match action {
        Action::PostSlack { text, .. }
        | Action::DmSlack { text, .. }
        | Action::Respond { text, .. } => mrkdwn::node_texts(text),
        Action::PostTeams { card, .. } => card_heading(card),
        Action::DmTeams { text, card, .. } | Action::ReplyTeams { text, card, .. } => card
            .as_ref()
            .map(card_heading)
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| text.clone()),
        Action::CreatePage { title, .. } => title.clone(),
        Action::AddComment { page_id, .. } => format!("comment on page {page_id}"),
        Action::Unfurl { unfurls, .. } => format!(
            "{} link preview(s)",
            unfurls.as_object().map(|m| m.len()).unwrap_or(0)
        ),
    };
    let text = text.trim();
    let mut short: String = text.chars().take(GIST_CHARS).collect();
    if text.chars().count() > GIST_CHARS {
        short.push('…');
    }
    short
}

const GIST_CHARS: usize = 90;

/// The first TextBlock's text of a card.
fn card_heading(card: &Value) -> String {
    let parsed;
    let card = match card {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            &parsed
        }
        other => other,
    };
    card.get("body")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|e| e.get("text").and_then(Value::as_str))
        .map(|t| mrkdwn::decode_entities(t).replace('\u{200B}', ""))
        .unwrap_or_else(|| "Teams card".into())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// Elements and attributes the renderers may write. maud escapes `<`
    /// in text and attribute values, so every `<` of the output opens a
    /// tag the renderer wrote: each is checked.
    pub fn assert_only_safe_markup(html: &str) {
        const TAGS: [&str; 45] = [
            "a",
            "article",
            "b",
            "blockquote",
            "br",
            "caption",
            "code",
            "dd",
            "del",
            "details",
            "div",
            "dl",
            "dt",
            "em",
            "figcaption",
            "figure",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "hr",
            "i",
            "li",
            "mark",
            "ol",
            "p",
            "pre",
            "s",
            "small",
            "span",
            "strong",
            "sub",
            "summary",
            "sup",
            "table",
            "tbody",
            "td",
            "tfoot",
            "th",
            "thead",
            "tr",
            "u",
            "ul",
        ];
        const ATTRIBUTES: [&str; 14] = [
            "class",
            "title",
            "href",
            "target",
            "rel",
            "colspan",
            "rowspan",
            "aria-hidden",
            "aria-label",
            "role",
            "id",
            "data-adaptive-card",
            "open",
            "hidden",
        ];
        for tag in html.split('<').skip(1) {
            let tag = tag.split('>').next().unwrap_or_default();
            let tag = tag.strip_prefix('/').unwrap_or(tag);
            let mut parts = tag.split_whitespace();
            let name = parts.next().unwrap_or_default();
            assert!(TAGS.contains(&name), "<{name}> in {html}");
            // Attributes: name="value" (maud quotes every value and escapes `"`).
            let rest = tag[name.len()..].trim();
            let mut rest = rest;
            while !rest.is_empty() {
                let end = rest.find(['=', ' ']).unwrap_or(rest.len());
                let attr = &rest[..end];
                assert!(
                    ATTRIBUTES.contains(&attr),
                    "attribute {attr:?} of <{name}> in {html}"
                );
                rest = &rest[end..];
                if let Some(value) = rest.strip_prefix("=\"") {
                    let close = value.find('"').expect("a quoted value");
                    if attr == "href" {
                        let url = &value[..close];
                        assert!(
                            url.starts_with("http://")
                                || url.starts_with("https://")
                                || url.starts_with("HTTP")
                                || url.starts_with("mailto:"),
                            "href {url:?} in {html}"
                        );
                    }
                    rest = &value[close + 1..];
                }
                rest = rest.trim_start();
            }
        }
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_are_web_urls() {
        for ok in [
            "https://wiki.example.com/x",
            " http://127.0.0.1:8090/p?a=1 ",
            "HTTPS://X.example",
        ] {
            assert!(web_url(ok).is_some(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,x",
            "vbscript:x",
            "file:///etc/passwd",
            "/relative/path",
            "//evil.example/x",
            "",
            "mailto:a@example.com",
        ] {
            assert!(web_url(bad).is_none(), "{bad}");
        }
        assert!(link_url("mailto:a@example.com").is_some());
        assert!(link_url("javascript:alert(1)").is_none());
    }

    #[test]
    fn a_teams_card_goes_to_the_renderer_as_an_attribute_never_as_markup() {
        let card = json!({"type": "AdaptiveCard", "version": "1.5", "body": [
            {"type": "TextBlock", "text": "</div><script>alert(1)</script>\"'"}
        ]});
        let out = message(&Action::PostTeams {
            channel: "eng".into(),
            card: card.clone(),
        })
        .into_string();
        assert!(!out.contains("<script"), "{out}");
        assert!(
            out.contains("data-adaptive-card=\"{&quot;body&quot;"),
            "{out}"
        );
        // A card given as a JSON string (as the contract carries it) is the same card.
        let same = message(&Action::PostTeams {
            channel: "eng".into(),
            card: Value::String(card.to_string()),
        })
        .into_string();
        assert_eq!(same, out);
    }

    #[test]
    fn the_request_is_behind_a_closed_toggle() {
        let out = request(
            "Show request",
            &json!({"body": {"text": "<b>"}}),
            Some("would-send-3"),
        )
        .into_string();
        assert!(out.starts_with(r#"<details class="raw-request"><summary>Show request</summary><pre id="would-send-3">"#), "{out}");
        assert!(!out.contains("<details open"), "{out}");
        assert!(out.contains("&lt;b&gt;"), "{out}");
    }

    #[test]
    fn pages_and_comments_render_their_storage_format() {
        let out = message(&Action::CreatePage {
            space_key: "OPS".into(),
            parent_id: Some(7),
            title: "Retro <script>".into(),
            body: "<p>Hi <a href=\"javascript:x()\">there</a></p>".into(),
            labels: vec!["retro".into()],
            once_key: None,
        })
        .into_string();
        assert!(out.contains("New Confluence page in space <strong>OPS</strong>, under page 7, labelled <code>retro</code>"), "{out}");
        assert!(out.contains("Retro &lt;script&gt;"), "{out}");
        assert!(!out.contains("href=\"javascript"), "{out}");
        assert_only_safe_markup(&out);
    }

    #[test]
    fn a_gist_is_short_text() {
        let a = Action::PostSlack {
            channel: "#eng".into(),
            text: "Ada created \"&lt;Q3&gt;\" <https://x|x>".into(),
            blocks: None,
            thread_key: None,
        };
        assert_eq!(gist(&a), "Ada created \"<Q3>\" x");
        let t = Action::PostTeams {
            channel: "eng".into(),
            card: json!({"body": [{"type": "TextBlock", "text": "Q3 &amp; more]\u{200B}"}]}),
        };
        assert_eq!(gist(&t), "Q3 & more]");
    }
}
