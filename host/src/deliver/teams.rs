//! Teams: POST the Adaptive Card, wrapped in the message envelope, to the
//! channel's Workflows webhook. 200 and 202 are success; 429 and 5xx are
//! retried; a payload over 28 KB is refused before sending.

use serde_json::json;

use super::{Attempt, Deliverer, request_error, retry_after};
use crate::model::Action;
use crate::store::{Claimed, ConnectionRecord, redacted_url};

/// Largest payload a Teams workflow webhook takes.
pub const MAX_PAYLOAD: usize = 28 * 1024;

pub(super) async fn deliver(
    w: &Deliverer,
    conn: &ConnectionRecord,
    d: &Claimed,
    dry_run: bool,
) -> Attempt {
    let Action::PostTeams { card, .. } = &d.action else {
        unreachable!("routed by action kind")
    };
    let envelope = json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    });
    let body = envelope.to_string();
    if body.len() > MAX_PAYLOAD {
        return Attempt::Dead(format!(
            "the card message is {} bytes, over Teams' limit of {MAX_PAYLOAD}; the plugin must send less",
            body.len()
        ));
    }
    if dry_run {
        return Attempt::WouldSend(json!({"url": redacted_url(&conn.url), "body": envelope}));
    }
    let answer = match w
        .http
        .post(&conn.url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(a) => a,
        Err(e) => return request_error(e),
    };
    let status = answer.status().as_u16();
    match status {
        200 | 202 => Attempt::sent(format!("HTTP {status}")),
        429 => Attempt::Retry {
            error: "Teams rate limited the workflow (HTTP 429)".into(),
            retry_after: retry_after(answer.headers()),
            uncertain: false,
        },
        s if s >= 500 => Attempt::Retry {
            error: format!("Teams answered HTTP {s}"),
            retry_after: None,
            uncertain: true,
        },
        s => {
            let text: String = answer
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            Attempt::Dead(format!(
                "Teams refused the card (HTTP {s}): {text}; check the workflow URL of `{}`",
                conn.name
            ))
        }
    }
}
