//! Teams: POST the Adaptive Card, wrapped in the message envelope, to the
//! channel's Workflows webhook. 200 and 202 are success; 429 and 5xx are
//! retried; a payload over 28 KB is refused before sending.

use serde_json::{Value, json};

use super::{Attempt, Deliverer, request_error, retry_after};
use crate::model::Action;
use crate::store::{Claimed, ConnectionRecord, redacted_url};

/// Largest payload a Teams workflow webhook takes.
pub const MAX_PAYLOAD: usize = 28 * 1024;

/// The message envelope around the card, as sent; refused (a dead letter)
/// when it is over [`MAX_PAYLOAD`].
fn envelope(d: &Claimed) -> Result<(Value, String), Attempt> {
    let Action::PostTeams { card, .. } = &d.action else {
        unreachable!("routed by action kind")
    };
    let envelope = json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    });
    let body = envelope.to_string();
    if body.len() > MAX_PAYLOAD {
        return Err(Attempt::Dead(format!(
            "the card message is {} bytes, over Teams' limit of {MAX_PAYLOAD}; the plugin must send less",
            body.len()
        )));
    }
    Ok((envelope, body))
}

/// The request a dry run records instead of posting (the workflow URL
/// without its signature).
pub(super) fn would_send(conn: &ConnectionRecord, d: &Claimed) -> Result<Value, Attempt> {
    let (envelope, _) = envelope(d)?;
    Ok(json!({"url": redacted_url(&conn.url), "body": envelope}))
}

pub(super) async fn deliver(
    w: &Deliverer,
    conn: &ConnectionRecord,
    d: &Claimed,
    dry_run: bool,
) -> Attempt {
    if dry_run {
        return match would_send(conn, d) {
            Ok(request) => Attempt::WouldSend(request),
            Err(refused) => refused,
        };
    }
    let body = match envelope(d) {
        Ok((_, body)) => body,
        Err(a) => return a,
    };
    let answer = match w
        .http(conn)
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
