//! Slack's side of a two-way app, for tests that play it: requests to
//! `/hooks/slack/{connection}` signed as Slack signs them (`v0`, HMAC-SHA256
//! of `v0:{timestamp}:{body}` with the signing secret), the bodies of a
//! slash command and of a `link_shared` event, and the one-time link in a
//! `/confluence link` answer.
//!
//! It must never sign with anything but the secret the test configured, nor
//! send anywhere but the sidecar under test on loopback.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// Seconds since the epoch, as Slack's `X-Slack-Request-Timestamp`.
pub fn now_secs() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// POSTs `body` to `url` (a sidecar's `/hooks/slack/{connection}`), signed
/// with `secret` as Slack signs; fails the test unless it answers 200.
pub fn post_signed(
    url: &str,
    secret: &str,
    content_type: &str,
    body: &str,
) -> reqwest::blocking::Response {
    let ts = now_secs();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let signature = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    let answer = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", signature)
        .body(body.to_owned())
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200, "Slack's request to {url}");
    answer
}

/// The form body of `/confluence <text>` typed by `user` in `channel` of
/// workspace `team`, answered at `response_url`.
pub fn slash_command_body(
    team: &str,
    channel: &str,
    user: &str,
    text: &str,
    trigger: &str,
    response_url: &str,
) -> String {
    format!(
        "token=legacy&team_id={team}&team_domain=acme&channel_id={channel}&channel_name=eng\
         &user_id={user}&user_name=someone&command=%2Fconfluence&text={}\
         &api_app_id=A0PAGEHOOK&response_url={}&trigger_id={trigger}",
        text.replace(' ', "+"),
        response_url.replace(':', "%3A").replace('/', "%2F")
    )
}

/// The Events API body of a `link_shared` event: `user` posted the message
/// `ts` in `channel` linking `urls` (all on 127.0.0.1).
pub fn link_shared_body(
    team: &str,
    channel: &str,
    user: &str,
    ts: &str,
    event_id: &str,
    urls: &[String],
) -> String {
    let links: Vec<Value> = urls
        .iter()
        .map(|u| json!({"domain": "127.0.0.1", "url": u}))
        .collect();
    json!({
        "token": "legacy",
        "team_id": team,
        "api_app_id": "A0PAGEHOOK",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1764633600,
        "event": {
            "type": "link_shared", "channel": channel, "user": user,
            "message_ts": ts, "event_ts": ts, "source": "conversations_history",
            "links": links
        }
    })
    .to_string()
}

/// The one-time link in a `/confluence link` answer (`<url|label>`).
pub fn link_in(answer: &Value) -> String {
    let text = answer["text"].as_str().unwrap_or_default();
    let start = text
        .find('<')
        .unwrap_or_else(|| panic!("no link in {answer}"))
        + 1;
    let end = start + text[start..].find('|').unwrap();
    text[start..end].to_owned()
}
