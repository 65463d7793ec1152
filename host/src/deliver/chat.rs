//! Slack chat answers: previews of shared links (`chat.unfurl`) and answers
//! to slash commands (the command's response URL), sent back through the
//! Slack connection the chat event came in on.
//!
//! `chat.unfurl` is sent as Slack's spec describes it: a form with the
//! message's `channel` and `ts` and `unfurls`, the URL → preview map as
//! JSON text, the bot token in `Authorization: Bearer`. Sending it again
//! replaces the previews, so an attempt whose answer was lost is simply
//! sent again.
//!
//! A response URL is a capability Slack handed to the sidecar in a signed
//! request: whoever holds it may answer the command (up to 5 times within
//! 30 minutes). It is posted to as JSON with no token (it needs none, and a
//! token must never go to a URL a plugin chose), only when it is https on
//! `hooks.slack.com`, or on the connection's own loopback API base (the
//! fake Slack of tests: see [`response_url_allowed`]); and it never appears
//! in a log line, an error, a dry run's record or an audit line (dry runs
//! show it with its path masked). Slack keeps no idempotency key for it: an
//! attempt whose answer was lost (a timeout, a 5xx) is sent again and the
//! user may see the answer twice, which beats never seeing it.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::slack::{classify, verdict};
use super::{Attempt, Deliverer, request_error, retry_after};
use crate::model::Action;
use crate::slack::SlackClient;
use crate::slack::methods::CHAT_UNFURL;
use crate::store::{Claimed, ConnectionRecord};

/// The only host Slack's response URLs live on.
pub const RESPONSE_HOST: &str = "hooks.slack.com";

/// The `chat.unfurl` arguments of an unfurl delivery.
fn unfurl_args(d: &Claimed) -> Vec<(&'static str, String)> {
    let Action::Unfurl {
        channel,
        message_ts,
        unfurls,
    } = &d.action
    else {
        unreachable!("routed by action kind")
    };
    vec![
        ("channel", channel.clone()),
        ("ts", message_ts.clone()),
        ("unfurls", unfurls.to_string()),
    ]
}

/// The JSON body a respond delivery posts to the response URL.
fn response_body(d: &Claimed) -> Value {
    let Action::Respond {
        text,
        blocks,
        in_channel,
        ..
    } = &d.action
    else {
        unreachable!("routed by action kind")
    };
    let mut body = json!({
        "text": text,
        "response_type": if *in_channel { "in_channel" } else { "ephemeral" },
    });
    if let Some(blocks) = blocks {
        body["blocks"] = blocks.clone();
    }
    body
}

fn response_url(d: &Claimed) -> &str {
    match &d.action {
        Action::Respond { response_url, .. } => response_url,
        _ => unreachable!("routed by action kind"),
    }
}

/// What a dry run records instead of sending: for an unfurl the method, the
/// workspace and its form arguments (`unfurls` as the map itself, for
/// reading); for a respond the response URL with its path masked, and the
/// body.
pub(super) fn would_send(conn: &ConnectionRecord, d: &Claimed) -> Value {
    match &d.action {
        Action::Unfurl {
            channel,
            message_ts,
            unfurls,
        } => json!({
            "method": CHAT_UNFURL.name,
            "connection": conn.name,
            "encoding": "application/x-www-form-urlencoded",
            "body": {"channel": channel, "ts": message_ts, "unfurls": unfurls},
        }),
        _ => json!({
            "url": masked(response_url(d)),
            "connection": conn.name,
            "body": response_body(d),
        }),
    }
}

/// A response URL for showing: its scheme and host, the path masked (the
/// path is the secret part).
pub fn masked(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/[redacted]",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "[redacted]".to_owned(),
    }
}

/// Whether Pagehook may post to `url` as a response URL of a command that
/// came in on a connection whose Web API base is `api_base`; `Err` says why
/// not, without the URL.
///
/// Allowed: `https://hooks.slack.com/...` (default port, no user name or
/// password), where Slack's response URLs live. Also allowed, for tests
/// only: a URL on the very origin (scheme, host, port) of the connection's
/// own API base when that base is on loopback — the fake Slack, which mints
/// response URLs on its own port. A production connection
/// (`https://slack.com/api/`) widens nothing, and no setting can point
/// answers at another host: the exception can only ever reach a process on
/// the same machine that the admin already gave the bot token to.
pub fn response_url_allowed(url: &str, api_base: &str) -> Result<reqwest::Url, String> {
    let refused = |why: &str| Err(format!("the command's response URL {why}; not sent"));
    let Ok(u) = reqwest::Url::parse(url) else {
        return refused("is not a URL");
    };
    if !u.username().is_empty() || u.password().is_some() {
        return refused("carries a user name or password");
    }
    if u.scheme() == "https" && u.host_str() == Some(RESPONSE_HOST) && u.port().is_none() {
        return Ok(u);
    }
    let loopback_base = reqwest::Url::parse(api_base)
        .ok()
        .filter(is_loopback)
        .filter(|b| b.origin() == u.origin());
    if loopback_base.is_some() {
        return Ok(u);
    }
    refused(&format!("is not https on {RESPONSE_HOST}"))
}

fn is_loopback(u: &reqwest::Url) -> bool {
    let Some(host) = u.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || host.eq_ignore_ascii_case("localhost")
}

/// Sends an unfurl or a respond (or records it, in a dry run).
pub(super) async fn deliver(
    w: &Deliverer,
    conn: &ConnectionRecord,
    d: &Claimed,
    dry_run: bool,
) -> Attempt {
    if let Action::Respond { response_url, .. } = &d.action
        && let Err(why) = response_url_allowed(response_url, &conn.url)
    {
        // Refused before a dry run too: a dry run shows what would be sent.
        return Attempt::Dead(why);
    }
    if dry_run {
        return Attempt::WouldSend(would_send(conn, d));
    }
    match &d.action {
        Action::Unfurl { .. } => unfurl(w, conn, d).await,
        _ => respond(w, conn, d).await,
    }
}

async fn unfurl(w: &Deliverer, conn: &ConnectionRecord, d: &Claimed) -> Attempt {
    let token = match conn.secret.as_ref().map(|s| s.resolve()) {
        Some(Ok(t)) => t,
        Some(Err(m)) => return Attempt::retry(format!("Slack token of `{}`: {m}", conn.name)),
        None => return Attempt::Dead(format!("Slack connection `{}` has no token", conn.name)),
    };
    let http = w.http(conn);
    let client = SlackClient::new(&http, &conn.url, &token);
    match client.post_form(CHAT_UNFURL, &unfurl_args(d)).await {
        Ok(_) => Attempt::sent("unfurled"),
        Err(e) => match e.code() {
            Some(code) => classify_unfurl(&conn.name, code),
            // Unfurling again replaces the previews: never uncertain.
            None => verdict(&conn.name, e, false),
        },
    }
}

/// `chat.unfurl`'s own refusals (its spec's error list and its reference
/// page), each with what an admin can do; the rest as `chat.postMessage`'s.
fn classify_unfurl(connection: &str, code: &str) -> Attempt {
    let method = CHAT_UNFURL.name;
    match code {
        "missing_scope" | "no_permission" => Attempt::Reauth {
            connection: connection.to_owned(),
            error: format!(
                "Slack refused chat.unfurl for `{connection}` ({code}): the app needs the links:write scope (and links:read for link_shared events); update it from Pagehook's app manifest and reinstall it"
            ),
        },
        "cannot_unfurl_url" | "cannot_unfurl_message" => Attempt::Dead(format!(
            "Slack would not unfurl these links ({code}): a link is not in the message, or its domain is not one of the app's unfurl domains (see the app manifest)"
        )),
        "cannot_find_message" | "message_not_found" => Attempt::Dead(format!(
            "the message to unfurl is gone ({code}): it was deleted or its channel is no longer readable"
        )),
        "cannot_find_channel" | "channel_not_found" => Attempt::Dead(format!(
            "the channel of the shared link cannot be found ({code})"
        )),
        "not_in_channel" => Attempt::Dead(
            "the bot is not in the channel where the link was shared (not_in_channel): invite it with /invite @<bot>".into(),
        ),
        "cannot_prompt" => Attempt::Dead(
            "Slack cannot prompt the user to authenticate here (cannot_prompt): nothing was unfurled".into(),
        ),
        "missing_unfurls" | "invalid_unfurls" | "invalid_unfurl_url" | "invalid_blocks"
        | "invalid_json" | "json_not_object" | "invalid_arguments" => Attempt::Dead(format!(
            "Slack refused the previews ({code}): the plugin's unfurls map is not one Slack takes (not retried)"
        )),
        "cannot_find_service" | "invalid_source" | "team_added_to_org" | "upgrade_required" => {
            Attempt::Dead(format!("Slack {method}: {code} (not retried)"))
        }
        other => classify(connection, method, other),
    }
}

/// Posts the answer to the command's response URL, with no token.
async fn respond(w: &Deliverer, conn: &ConnectionRecord, d: &Claimed) -> Attempt {
    let answer = match w
        .hooks
        .get(conn.proxy.as_ref())
        .post(response_url(d))
        .json(&response_body(d))
        .send()
        .await
    {
        Ok(a) => a,
        Err(e) => return request_error(e),
    };
    let status = answer.status().as_u16();
    let wait = retry_after(answer.headers());
    let text: String = answer
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    response_verdict(status, &text, wait)
}

/// What Slack's answer to a response-URL post comes to. Slack answers 200
/// (`ok`, or `{"ok": true}`); an error as a status with its code in the
/// body, as text or as `{"ok": false, "error": ...}`: 404 `expired_url`
/// once 30 minutes have passed, `used_url` after the fifth answer.
fn response_verdict(status: u16, body: &str, wait: Option<std::time::Duration>) -> Attempt {
    let code = response_code(body);
    match (status, code.as_deref()) {
        (200..=299, None | Some("ok")) => Attempt::sent("responded"),
        (429, _) => Attempt::Retry {
            error: "Slack rate limited the command's response URL (HTTP 429)".into(),
            retry_after: wait,
            uncertain: false,
        },
        (500.., _) => Attempt::Retry {
            error: format!("Slack answered HTTP {status} to the command's response URL"),
            retry_after: wait,
            uncertain: true,
        },
        (_, Some("expired_url")) => Attempt::Dead(
            "the command's response URL has expired (expired_url): Slack takes answers for 30 minutes after a command; the user can run it again".into(),
        ),
        (_, Some("used_url")) => Attempt::Dead(
            "the command's response URL is used up (used_url): Slack takes at most 5 answers to a command".into(),
        ),
        (404, _) => Attempt::Dead(format!(
            "Slack no longer knows the command's response URL (HTTP 404{}): it expired or was used up",
            code.map(|c| format!(", {c}")).unwrap_or_default()
        )),
        (_, code) => Attempt::Dead(format!(
            "Slack refused the answer to the command (HTTP {status}{}) (not retried)",
            code.map(|c| format!(", {c}")).unwrap_or_default()
        )),
    }
}

/// Slack's code in a response-URL answer: the text itself (`ok`,
/// `expired_url`) or the `error` of a JSON envelope; `None` for `{"ok":
/// true}` and an empty body.
fn response_code(body: &str) -> Option<String> {
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if v["ok"] == true {
            return None;
        }
        return v["error"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| Some("unknown_error".into()));
    }
    let word: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Some(if word.is_empty() {
        "unreadable_answer".into()
    } else {
        word
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE: &str = "http://127.0.0.1:4567/api/";

    #[test]
    fn response_urls_must_be_slacks_or_the_loopback_fakes() {
        let ok = |u: &str, base: &str| response_url_allowed(u, base).is_ok();
        assert!(ok(
            "https://hooks.slack.com/commands/T1/2/abc",
            "https://slack.com/api/"
        ));
        assert!(ok("https://hooks.slack.com/commands/T1/2/abc", FAKE));
        assert!(ok("http://127.0.0.1:4567/commands/T1/2/abc", FAKE));
        for bad in [
            "http://hooks.slack.com/commands/T1/2/abc",
            "https://hooks.slack.com:8443/commands/T1/2/abc",
            "https://hooks.slack.com.evil.example/commands/x",
            "https://evil.example/commands/T1/2/abc",
            "https://user:pw@hooks.slack.com/commands/T1/2/abc",
            "not a url",
            // Loopback, but not the connection's own API origin.
            "http://127.0.0.1:9999/commands/T1/2/abc",
            "http://localhost:4567/commands/T1/2/abc",
        ] {
            let err = response_url_allowed(bad, FAKE).unwrap_err();
            assert!(!err.contains("commands"), "the URL is never shown: {err}");
        }
        // A production base widens nothing, even for loopback URLs.
        assert!(!ok(
            "http://127.0.0.1:4567/commands/T1/2/abc",
            "https://slack.com/api/"
        ));
        // A non-loopback base on the URL's own origin does not either.
        assert!(!ok(
            "https://slack.example/commands/T1/2/abc",
            "https://slack.example/api/"
        ));
    }

    #[test]
    fn response_urls_are_shown_with_their_path_masked() {
        assert_eq!(
            masked("https://hooks.slack.com/commands/T1/2/s3cr3t"),
            "https://hooks.slack.com/[redacted]"
        );
        assert_eq!(
            masked("http://127.0.0.1:4567/commands/T1/2/s3cr3t"),
            "http://127.0.0.1:4567/[redacted]"
        );
        assert_eq!(masked("::"), "[redacted]");
    }

    #[test]
    fn response_url_answers_are_classified() {
        assert!(matches!(
            response_verdict(200, "ok", None),
            Attempt::Sent { .. }
        ));
        assert!(matches!(
            response_verdict(200, r#"{"ok":true}"#, None),
            Attempt::Sent { .. }
        ));
        match response_verdict(404, "expired_url", None) {
            Attempt::Dead(why) => assert!(why.contains("expired") && why.contains("30 minutes")),
            other => panic!("{other:?}"),
        }
        match response_verdict(404, r#"{"ok":false,"error":"used_url"}"#, None) {
            Attempt::Dead(why) => assert!(why.contains("at most 5 answers"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            response_verdict(200, r#"{"ok":false,"error":"expired_url"}"#, None),
            Attempt::Dead(_)
        ));
        assert!(matches!(
            response_verdict(503, "", None),
            Attempt::Retry {
                uncertain: true,
                ..
            }
        ));
        assert!(matches!(
            response_verdict(429, "", Some(std::time::Duration::from_secs(3))),
            Attempt::Retry {
                retry_after: Some(_),
                uncertain: false,
                ..
            }
        ));
        match response_verdict(400, "invalid_blocks", None) {
            Attempt::Dead(why) => assert!(why.contains("invalid_blocks"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unfurl_refusals_are_classified() {
        assert!(matches!(
            classify_unfurl("acme", "missing_scope"),
            Attempt::Reauth { error, .. } if error.contains("links:write")
        ));
        assert!(matches!(
            classify_unfurl("acme", "token_revoked"),
            Attempt::Reauth { .. }
        ));
        for dead in [
            "cannot_unfurl_url",
            "cannot_find_message",
            "cannot_prompt",
            "not_in_channel",
            "missing_unfurls",
        ] {
            match classify_unfurl("acme", dead) {
                Attempt::Dead(why) => assert!(why.contains(dead), "{why}"),
                other => panic!("{dead}: {other:?}"),
            }
        }
        for retry in [
            "internal_error",
            "fatal_error",
            "ratelimited",
            "request_timeout",
        ] {
            assert!(
                matches!(classify_unfurl("acme", retry), Attempt::Retry { .. }),
                "{retry}"
            );
        }
    }
}
