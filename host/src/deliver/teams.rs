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

/// The small card that says Pagehook is connected to a channel, with
/// `line` under its title: what the console's test card and a Teams bot's
/// greeting in a team post.
pub(crate) fn connected_card(line: String) -> Value {
    json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "Pagehook is connected", "weight": "Bolder", "size": "Medium", "wrap": true},
            {"type": "TextBlock", "wrap": true, "isSubtle": true, "text": line},
        ],
    })
}

/// Posts a small card saying Pagehook is connected to `conn`'s workflow,
/// once (the console's "Send test card", asked by `actor`). `Ok` with
/// what Teams said on 200/202; `Err` in words otherwise, with the fix when
/// the workflow is gone ([`super::gone::teams`]). Never the URL: it
/// carries the workflow's signature.
pub async fn test_card(
    conn: &ConnectionRecord,
    actor: &str,
    timeout: std::time::Duration,
) -> Result<String, String> {
    let card = connected_card(format!(
        "A test card from Pagehook (connection {}), sent by {}. Confluence news bound to this channel will appear here.",
        conn.name, actor
    ));
    let envelope = json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    });
    let http = crate::http::client_builder_for(conn.proxy.as_ref())
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let answer = http
        .post(&conn.url)
        .header("content-type", "application/json")
        .body(envelope.to_string())
        .send()
        .await
        .map_err(|e| {
            format!(
                "Teams workflow of `{}` ({}) could not be reached: {}",
                conn.name,
                redacted_url(&conn.url),
                crate::http::describe(e)
            )
        })?;
    let status = answer.status().as_u16();
    if matches!(status, 200 | 202) {
        return Ok(format!(
            "Teams accepted the test card (HTTP {status}): look for “Pagehook is connected” in the channel of `{}`",
            conn.name
        ));
    }
    let body = answer.text().await.unwrap_or_default();
    let code = super::gone::teams_code(&body);
    Err(
        super::gone::teams(&conn.name, status, code.as_deref()).unwrap_or_else(|| {
            format!(
                "Teams refused the test card (HTTP {status}{}); check the workflow URL of `{}`",
                code.map(|c| format!(" {c}")).unwrap_or_default(),
                conn.name
            )
        }),
    )
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
            // A deleted or turned-off workflow, a refused signature: the
            // connection is marked with the fix.
            let code = super::gone::teams_code(&text);
            match super::gone::teams(&conn.name, s, code.as_deref()) {
                Some(mark) => Attempt::Gone {
                    connection: conn.name.clone(),
                    error: mark,
                },
                None => Attempt::Dead(format!(
                    "Teams refused the card (HTTP {s}): {text}; check the workflow URL of `{}`",
                    conn.name
                )),
            }
        }
    }
}
