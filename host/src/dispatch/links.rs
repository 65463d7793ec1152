//! The links a delivered message lets a reader open: a Slack button (or
//! overflow option, or rich-text link) and a Teams `Action.OpenUrl` may
//! open only an `http(s)` URL.
//!
//! Plugins build buttons from content URLs that come from Confluence or a
//! webhook; a `javascript:` or `data:` URL there would become a button that
//! runs script in whatever client opens it. The guest SDK leaves such
//! buttons out; this is the host's half of the rule, for plugins built
//! without the SDK or before it did: the judge ([`super::judge`]) rejects
//! the action, naming the link, so it is audited and never delivered.
//!
//! What it must never do: change an action (a plugin's output is delivered
//! as returned, or not at all), or look at text that opens nothing (a URL
//! written in a message's text is just text).

use serde_json::Value;

use crate::model::Action;

/// `url` (trimmed) when it is an absolute `http` or `https` URL with a
/// host; `None` for `javascript:`, `data:`, `file:`, relative paths and
/// anything that does not parse.
pub fn web_url(url: &str) -> Option<&str> {
    let url = url.trim();
    let parsed = reqwest::Url::parse(url).ok()?;
    (matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some_and(|h| !h.is_empty()))
    .then_some(url)
}

/// Why `action` may not be delivered because of a link it would let a
/// reader open, or `None` when every such link is http(s).
pub fn unsafe_link(action: &Action) -> Option<String> {
    let (what, found) = match action {
        Action::PostSlack { blocks, .. }
        | Action::DmSlack { blocks, .. }
        | Action::Respond { blocks, .. } => ("Slack", blocks.as_ref().and_then(slack_link)),
        Action::Unfurl { unfurls, .. } => ("Slack", slack_link(unfurls)),
        Action::PostTeams { card, .. } => ("Teams", teams_link(card)),
        Action::DmTeams { card, .. } | Action::ReplyTeams { card, .. } => {
            ("Teams", card.as_ref().and_then(teams_link))
        }
        Action::CreatePage { .. } | Action::AddComment { .. } => return None,
    };
    found.map(|(element, url)| {
        format!(
            "a {what} {element} would open `{}`: only http and https URLs may be opened from a message",
            shortened(&url)
        )
    })
}

/// JSON carried as a string (as the contract carries blocks and cards) or as JSON.
fn parsed(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

/// The first Slack element that opens a URL that is not http(s): any
/// object with a string `url` (buttons, overflow options, rich-text links).
fn slack_link(blocks: &Value) -> Option<(String, String)> {
    if let Some(inner) = parsed(blocks) {
        return slack_link(&inner);
    }
    match blocks {
        Value::Array(items) => items.iter().find_map(slack_link),
        Value::Object(map) => {
            if let Some(url) = map.get("url").and_then(Value::as_str)
                && web_url(url).is_none()
            {
                let kind = map.get("type").and_then(Value::as_str).unwrap_or("element");
                let kind = if map.contains_key("value") && kind == "element" {
                    "menu option"
                } else {
                    kind
                };
                return Some((kind.replace('_', " "), url.to_owned()));
            }
            map.values().find_map(slack_link)
        }
        _ => None,
    }
}

/// The first `Action.OpenUrl` (card action, `ActionSet`, `selectAction`)
/// whose URL is not http(s).
fn teams_link(card: &Value) -> Option<(String, String)> {
    if let Some(inner) = parsed(card) {
        return teams_link(&inner);
    }
    match card {
        Value::Array(items) => items.iter().find_map(teams_link),
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("Action.OpenUrl") {
                let url = map.get("url").and_then(Value::as_str).unwrap_or_default();
                if web_url(url).is_none() {
                    return Some(("card action (Action.OpenUrl)".into(), url.to_owned()));
                }
            }
            map.values().find_map(teams_link)
        }
        _ => None,
    }
}

/// At most 60 characters of a URL, for a reason an admin reads.
fn shortened(url: &str) -> String {
    let url = url.trim();
    let mut out: String = url.chars().take(60).collect();
    if url.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UNSAFE: [&str; 5] = [
        "javascript:alert(document.cookie)",
        " JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "/pages/viewpage.action?pageId=1",
    ];

    fn slack(blocks: Value) -> Action {
        Action::PostSlack {
            channel: "#eng".into(),
            text: "t".into(),
            blocks: Some(blocks),
            thread_key: None,
        }
    }

    fn teams(card: Value) -> Action {
        Action::PostTeams {
            channel: "eng".into(),
            card,
        }
    }

    #[test]
    fn slack_buttons_options_and_links_must_be_http() {
        for url in UNSAFE {
            let button = json!([{"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": "https://x/1"},
                {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": url}
            ]}]);
            let why = unsafe_link(&slack(button.clone())).expect(url);
            assert!(why.starts_with("a Slack button would open `"), "{why}");
            assert!(
                why.contains(&url.trim().chars().take(20).collect::<String>()),
                "{why}"
            );
            // Blocks carried as a JSON string are read the same.
            assert!(unsafe_link(&slack(Value::String(button.to_string()))).is_some());
            let accessory = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "x"},
                "accessory": {"type": "overflow", "options": [{"text": {"type": "plain_text", "text": "o"}, "value": "v", "url": url}]}}]);
            assert!(unsafe_link(&slack(accessory)).is_some());
            let rich = json!([{"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [{"type": "link", "url": url}]}]}]);
            assert!(unsafe_link(&slack(rich)).is_some());
            let unfurl = Action::Unfurl {
                channel: "C1".into(),
                message_ts: "1.2".into(),
                unfurls: json!({"https://wiki/x": {"blocks": [{"type": "actions", "elements": [{"type": "button", "url": url}]}]}}),
            };
            assert!(unsafe_link(&unfurl).is_some());
        }
    }

    #[test]
    fn teams_open_url_actions_must_be_http() {
        for url in UNSAFE {
            let card = json!({"type": "AdaptiveCard", "version": "1.5", "body": [],
                "actions": [{"type": "Action.OpenUrl", "title": "Open page", "url": url}]});
            let why = unsafe_link(&teams(card.clone())).expect(url);
            assert!(
                why.starts_with("a Teams card action (Action.OpenUrl) would open"),
                "{why}"
            );
            assert!(unsafe_link(&teams(Value::String(card.to_string()))).is_some());
            let select = json!({"type": "AdaptiveCard", "body": [{"type": "Container", "items": [],
                "selectAction": {"type": "Action.OpenUrl", "url": url}}]});
            assert!(unsafe_link(&teams(select)).is_some());
        }
        // An image's URL opens nothing (and data: images are allowed by Adaptive Cards).
        let image = json!({"type": "AdaptiveCard", "body": [{"type": "Image", "url": "data:image/png;base64,AAAA"}]});
        assert_eq!(unsafe_link(&teams(image)), None);
    }

    #[test]
    fn http_links_text_and_pages_pass() {
        let ok = json!([{"type": "actions", "elements": [{"type": "button", "url": "https://wiki.example.com/x?a=1"}]},
            {"type": "section", "text": {"type": "mrkdwn", "text": "see javascript:alert(1)"}}]);
        assert_eq!(unsafe_link(&slack(ok)), None);
        let card =
            json!({"actions": [{"type": "Action.OpenUrl", "url": "HTTP://127.0.0.1:8090/p"}]});
        assert_eq!(unsafe_link(&teams(card)), None);
        let page = Action::CreatePage {
            space_key: "OPS".into(),
            parent_id: None,
            title: "t".into(),
            body: "<a href=\"javascript:x\">x</a>".into(),
            labels: vec![],
            once_key: None,
        };
        assert_eq!(
            unsafe_link(&page),
            None,
            "Confluence sanitises bodies itself"
        );
        assert_eq!(
            unsafe_link(&slack(
                json!([{"type": "button", "url": format!("javascript:{}", "a".repeat(100))}])
            ))
            .unwrap(),
            format!(
                "a Slack button would open `javascript:{}…`: only http and https URLs may be opened from a message",
                "a".repeat(49)
            )
        );
    }
}
