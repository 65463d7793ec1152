//! Slack: `chat.postMessage` for channel posts and DMs.
//!
//! Channel names are resolved to ids once per workspace (`conversations.list`)
//! and cached; DMs go to the user `users.lookupByEmail` finds (cached). A
//! thread key maps to the `ts` of the first message posted with it, so
//! follow-ups are replies in its thread. Each message carries metadata
//! `{"event_type": "pagehook_delivery", "event_payload": {"delivery_id": N}}`:
//! Slack has no idempotency key, so after an attempt whose outcome is
//! unknown the channel is searched for that metadata before posting again.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::{Attempt, Deliverer, request_error, retry_after};
use crate::model::Action;
use crate::secret::Secret;
use crate::store::{Claimed, ConnectionRecord, SlackThread};

/// Per-workspace caches: channel ids by name, user ids by email.
#[derive(Default)]
pub struct SlackState {
    channels: Mutex<HashMap<(String, String), String>>,
    users: Mutex<HashMap<(String, String), String>>,
}

/// The metadata event type Pagehook marks its messages with.
const EVENT_TYPE: &str = "pagehook_delivery";

pub(super) async fn deliver(
    w: &Deliverer,
    conn: &ConnectionRecord,
    d: &Claimed,
    dry_run: bool,
) -> Attempt {
    let (target, text, blocks, thread_key) = match &d.action {
        Action::PostSlack {
            channel,
            text,
            blocks,
            thread_key,
        } => (
            Target::Channel(channel),
            text,
            blocks,
            thread_key.as_deref(),
        ),
        Action::DmSlack {
            email,
            text,
            blocks,
        } => (Target::Email(email), text, blocks, None),
        _ => unreachable!("routed by action kind"),
    };
    let mut body = json!({
        "text": text,
        "unfurl_links": false,
        "metadata": {"event_type": EVENT_TYPE, "event_payload": {"delivery_id": d.id, "event_id": d.event_id}},
    });
    if let Some(blocks) = blocks {
        body["blocks"] = blocks.clone();
    }
    if dry_run {
        body["channel"] = json!(match target {
            Target::Channel(c) => c.clone(),
            Target::Email(e) => format!("(the Slack user with email {e})"),
        });
        if let Some(key) = thread_key {
            body["thread_key"] = json!(key);
        }
        return Attempt::WouldSend(
            json!({"method": "chat.postMessage", "connection": conn.name, "body": body}),
        );
    }
    let token = match conn.secret.as_ref().map(|s| s.resolve()) {
        Some(Ok(t)) => t,
        Some(Err(m)) => return Attempt::retry(format!("Slack token of `{}`: {m}", conn.name)),
        None => return Attempt::Dead(format!("Slack connection `{}` has no token", conn.name)),
    };
    let api = Api {
        w,
        conn,
        token: &token,
    };
    let channel = match target {
        Target::Channel(name) => match api.channel_id(name).await {
            Ok(id) => id,
            Err(a) => return a,
        },
        Target::Email(email) => match api.user_id(email).await {
            Ok(id) => id,
            Err(a) => return a,
        },
    };
    body["channel"] = json!(channel);
    let thread_ts = match thread_key {
        Some(key) => {
            // Off the async workers: the store may be busy committing.
            let (store, name, id, key) = (
                w.store.clone(),
                conn.name.clone(),
                channel.clone(),
                key.to_owned(),
            );
            match tokio::task::spawn_blocking(move || store.thread_ts(&name, &id, &key)).await {
                Ok(Ok(ts)) => ts,
                Ok(Err(e)) => return Attempt::retry(e.to_string()),
                Err(e) => return Attempt::retry(e.to_string()),
            }
        }
        None => None,
    };
    if let Some(ts) = &thread_ts {
        body["thread_ts"] = json!(ts);
    }
    if d.uncertain {
        match api.find_posted(&channel, thread_ts.as_deref(), d).await {
            Ok(Some(ts)) => {
                tracing::info!(delivery = d.id, %ts, "found in Slack after an uncertain attempt: not posting again");
                let thread = new_thread(conn, &channel, thread_key, thread_ts.as_deref(), &ts);
                return Attempt::Sent { result: ts, thread };
            }
            Ok(None) => {}
            Err(a) => return a,
        }
    }
    match api.call("chat.postMessage", &body).await {
        Ok(answer) => {
            let ts = answer["ts"].as_str().unwrap_or_default().to_owned();
            let thread = new_thread(conn, &channel, thread_key, thread_ts.as_deref(), &ts);
            Attempt::Sent { result: ts, thread }
        }
        Err(a) => a,
    }
}

/// The thread a message starts: one with a thread key that had no thread yet.
fn new_thread(
    conn: &ConnectionRecord,
    channel: &str,
    key: Option<&str>,
    existing: Option<&str>,
    ts: &str,
) -> Option<SlackThread> {
    match (key, existing) {
        (Some(key), None) => Some(SlackThread {
            connection: conn.name.clone(),
            channel: channel.to_owned(),
            key: key.to_owned(),
            ts: ts.to_owned(),
        }),
        _ => None,
    }
}

enum Target<'a> {
    Channel(&'a String),
    Email(&'a String),
}

struct Api<'a> {
    w: &'a Deliverer,
    conn: &'a ConnectionRecord,
    token: &'a Secret,
}

impl Api<'_> {
    /// Calls a Web API method; `Err` is the attempt's verdict for Slack's error.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, Attempt> {
        let url = format!("{}/{method}", self.conn.url.trim_end_matches('/'));
        let answer = self
            .w
            .http
            .post(&url)
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(request_error)?;
        let status = answer.status();
        if status.as_u16() == 429 {
            return Err(Attempt::Retry {
                error: format!("Slack rate limited {method} (HTTP 429)"),
                retry_after: retry_after(answer.headers()),
                uncertain: false,
            });
        }
        if status.is_server_error() {
            return Err(Attempt::Retry {
                error: format!("Slack answered HTTP {} to {method}", status.as_u16()),
                retry_after: None,
                uncertain: method == "chat.postMessage",
            });
        }
        let value: Value = answer.json().await.map_err(|e| {
            Attempt::retry(format!(
                "unreadable answer from Slack to {method}: {}",
                e.without_url()
            ))
        })?;
        if value["ok"] == true {
            return Ok(value);
        }
        let error = value["error"]
            .as_str()
            .unwrap_or("unknown_error")
            .to_owned();
        Err(classify(&self.conn.name, method, &error))
    }

    async fn channel_id(&self, name: &str) -> Result<String, Attempt> {
        let bare = name.trim_start_matches('#');
        if looks_like_id(bare) {
            return Ok(bare.to_owned());
        }
        let key = (self.conn.name.clone(), bare.to_lowercase());
        if let Some(id) = self
            .w
            .slack
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(id.clone());
        }
        let mut cursor = String::new();
        loop {
            let mut body = json!({"types": "public_channel,private_channel", "limit": 1000, "exclude_archived": false});
            if !cursor.is_empty() {
                body["cursor"] = json!(cursor);
            }
            let page = self.call("conversations.list", &body).await?;
            let mut cache = self
                .w
                .slack
                .channels
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for c in page["channels"].as_array().into_iter().flatten() {
                if let (Some(n), Some(id)) = (c["name"].as_str(), c["id"].as_str()) {
                    cache.insert((self.conn.name.clone(), n.to_lowercase()), id.to_owned());
                }
            }
            if let Some(id) = cache.get(&key) {
                return Ok(id.clone());
            }
            drop(cache);
            cursor = page
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if cursor.is_empty() {
                return Err(Attempt::Dead(format!(
                    "Slack channel #{bare} not found in workspace `{}`: create it, or for a private channel invite the bot (/invite @pagehook), then `pagehook retry`",
                    self.conn.name
                )));
            }
        }
    }

    async fn user_id(&self, email: &str) -> Result<String, Attempt> {
        let key = (self.conn.name.clone(), email.to_lowercase());
        if let Some(id) = self
            .w
            .slack
            .users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(id.clone());
        }
        let answer = self
            .call("users.lookupByEmail", &json!({"email": email}))
            .await?;
        let id = answer
            .pointer("/user/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.w
            .slack
            .users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, id.clone());
        Ok(id)
    }

    /// The ts of the message this delivery already posted, if Slack has it.
    async fn find_posted(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        d: &Claimed,
    ) -> Result<Option<String>, Attempt> {
        // The newest 1000 messages: a retry follows its lost attempt closely.
        let (method, body) = match thread_ts {
            Some(ts) => (
                "conversations.replies",
                json!({"channel": channel, "ts": ts, "limit": 1000, "include_all_metadata": true}),
            ),
            None => (
                "conversations.history",
                json!({"channel": channel, "limit": 1000, "include_all_metadata": true}),
            ),
        };
        let answer = self.call(method, &body).await?;
        Ok(answer["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m.pointer("/metadata/event_type").and_then(Value::as_str) == Some(EVENT_TYPE)
                    && m.pointer("/metadata/event_payload/delivery_id")
                        .and_then(Value::as_i64)
                        == Some(d.id)
            })
            .and_then(|m| m["ts"].as_str().map(str::to_owned)))
    }
}

fn looks_like_id(s: &str) -> bool {
    s.len() >= 9
        && matches!(s.as_bytes()[0], b'C' | b'G' | b'D' | b'U')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Slack's error codes, sorted the way design.md lists them.
fn classify(connection: &str, method: &str, error: &str) -> Attempt {
    match error {
        "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" => {
            Attempt::retry(format!("Slack {method}: {error}"))
        }
        "request_timeout" => Attempt::Retry {
            error: format!("Slack {method}: {error}"),
            retry_after: None,
            uncertain: true,
        },
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" | "missing_scope" | "no_permission" => {
            Attempt::Reauth {
                connection: connection.to_owned(),
                error: format!(
                    "Slack refused the token of `{connection}` ({error}): reinstall the app or update the token with `pagehook connect slack {connection} ...`; deliveries resume after that"
                ),
            }
        }
        "not_in_channel" => Attempt::Dead(
            "the bot is not in this channel (not_in_channel): invite it with /invite @<bot>, then `pagehook retry`".into(),
        ),
        "channel_not_found" => Attempt::Dead(
            "channel_not_found: the channel does not exist or is private without the bot; invite the bot or fix the binding, then `pagehook retry`".into(),
        ),
        "is_archived" => Attempt::Dead("is_archived: the channel is archived; unarchive it or bind another channel".into()),
        "users_not_found" => Attempt::Dead("users_not_found: no Slack user has this email".into()),
        other => Attempt::Dead(format!("Slack {method} refused the message: {other} (not retried)")),
    }
}
