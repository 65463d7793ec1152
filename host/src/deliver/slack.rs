//! Slack: `chat.postMessage` for channel posts and DMs, in the workspace
//! dispatch chose.
//!
//! Channel names resolve to ids through the workspace's
//! [`Directory`](crate::slack::directory::Directory) (paged, bounded,
//! cached); a name whose id Slack no longer knows is looked up once more.
//! DMs go to the user `users.lookupByEmail` finds. A thread key maps to the
//! `ts` of the first message posted with it, so follow-ups are replies in
//! its thread. Each message carries metadata
//! `{"event_type": "pagehook_delivery", "event_payload": {"delivery_id": N}}`:
//! Slack has no idempotency key, so after an attempt whose outcome is
//! unknown the channel (or thread) is read from just before the first
//! attempt, page by page with the metadata included, and the message is
//! posted again only if it is not there. A failed lookup is retried; it
//! never turns a delivery into a dead letter by itself.

use serde_json::{Value, json};

use super::{Attempt, Deliverer, ThreadKey, Turn};
use crate::destination::split_workspace;
use crate::model::Action;
use crate::secret::Secret;
use crate::slack::directory::{Directory, LookupError};
use crate::slack::methods::{
    CHAT_POST_MESSAGE, CONVERSATIONS_HISTORY, CONVERSATIONS_OPEN, CONVERSATIONS_REPLIES, Method,
};
use crate::slack::{SlackClient, SlackError};
use crate::store::{Claimed, ConnectionRecord, SlackThread};

/// The metadata event type Pagehook marks its messages with.
const EVENT_TYPE: &str = "pagehook_delivery";
/// How far before the first attempt a lookup starts reading, for the
/// difference between our clock and Slack's.
const CLOCK_MARGIN_MS: i64 = 5 * 60 * 1000;

/// What a delivery posts: where, and the `chat.postMessage` body without
/// its channel (text, blocks, link unfurling off, Pagehook's metadata).
fn message(d: &Claimed) -> (Target<'_>, Value, Option<&str>) {
    let (target, text, blocks, thread_key) = match &d.action {
        Action::PostSlack {
            channel,
            text,
            blocks,
            thread_key,
        } => (
            Target::Channel(split_workspace(channel).1),
            text,
            blocks,
            thread_key.as_deref(),
        ),
        Action::DmSlack {
            email,
            text,
            blocks,
        } => (Target::Email(split_workspace(email).1), text, blocks, None),
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
    (target, body, thread_key)
}

/// The request a dry run records instead of posting: the method, the
/// workspace and the body, with the channel as named (or the DM's email)
/// and the thread key in place of the thread's `ts`.
pub(super) fn would_send(conn: &ConnectionRecord, d: &Claimed) -> Value {
    let (target, mut body, thread_key) = message(d);
    body["channel"] = json!(match target {
        Target::Channel(c) => c.to_owned(),
        Target::Email(e) => format!("(the Slack user with email {e})"),
    });
    if let Some(key) = thread_key {
        body["thread_key"] = json!(key);
    }
    json!({"method": CHAT_POST_MESSAGE.name, "connection": conn.name, "body": body})
}

pub(super) async fn deliver(
    w: &Deliverer,
    conn: &ConnectionRecord,
    d: &Claimed,
    dry_run: bool,
    turn: &Turn<'_>,
) -> Attempt {
    let attempt = deliver_once(w, conn, d, dry_run, turn).await;
    // A channel archived or gone marks its workspace with the fix (until a
    // post to that channel works again).
    let Action::PostSlack { channel, .. } = &d.action else {
        return attempt;
    };
    match attempt {
        Attempt::Dead(error) => match channel_gone(&error) {
            Some(code) => Attempt::Gone {
                connection: conn.name.clone(),
                error: super::gone::slack_channel(&d.destination, channel, code),
            },
            None => Attempt::Dead(error),
        },
        other => other,
    }
}

/// The Slack error a dead letter's words come from, when they say the
/// channel itself is gone (this file's own words, below).
fn channel_gone(error: &str) -> Option<&'static str> {
    if error.starts_with("is_archived:") {
        Some("is_archived")
    } else if error.starts_with("channel_not_found:")
        || (error.starts_with("Slack channel #") && error.contains(" not found in workspace "))
    {
        Some("channel_not_found")
    } else {
        None
    }
}

async fn deliver_once(
    w: &Deliverer,
    conn: &ConnectionRecord,
    d: &Claimed,
    dry_run: bool,
    turn: &Turn<'_>,
) -> Attempt {
    if dry_run {
        return Attempt::WouldSend(would_send(conn, d));
    }
    let (target, mut body, thread_key) = message(d);
    let token = match conn.secret.as_ref().map(|s| s.resolve()) {
        Some(Ok(t)) => t,
        Some(Err(m)) => return Attempt::retry(format!("Slack token of `{}`: {m}", conn.name)),
        None => return Attempt::Dead(format!("Slack connection `{}` has no token", conn.name)),
    };
    let send = Send {
        w,
        http: w.http(conn),
        conn,
        d,
        token: &token,
        target,
        thread_key,
        turn,
    };
    let mut channel = match send.resolve().await {
        Ok(id) => id,
        Err(a) => return a,
    };
    let mut re_resolved = false;
    loop {
        body["channel"] = json!(channel);
        match send.post(&channel, &mut body).await {
            Err(Failure::ChannelNotFound) if !re_resolved && target.is_name() => {
                // Renamed or recreated since we cached its id: ask once more.
                re_resolved = true;
                w.slack.forget_channel(&conn.name, target.name()).await;
                match send.resolve().await {
                    Ok(id) if id != channel => channel = id,
                    Ok(_) => {
                        return classify(&conn.name, CHAT_POST_MESSAGE.name, "channel_not_found");
                    }
                    Err(a) => return a,
                }
            }
            Err(Failure::ChannelNotFound) => {
                return classify(&conn.name, CHAT_POST_MESSAGE.name, "channel_not_found");
            }
            Err(Failure::Attempt(a)) => return a,
            Ok(sent) => return sent,
        }
    }
}

#[derive(Clone, Copy)]
enum Target<'a> {
    Channel(&'a str),
    Email(&'a str),
}

impl Target<'_> {
    /// A channel given by name (not by id), which may be renamed.
    fn is_name(&self) -> bool {
        matches!(self, Target::Channel(c) if given_id(c).is_none())
    }

    fn name(&self) -> &str {
        match self {
            Target::Channel(c) | Target::Email(c) => c,
        }
    }
}

enum Failure {
    ChannelNotFound,
    Attempt(Attempt),
}

/// One delivery's work against its workspace.
struct Send<'a> {
    w: &'a Deliverer,
    /// The connection's client (its own proxy, if it names one).
    http: reqwest::Client,
    conn: &'a ConnectionRecord,
    d: &'a Claimed,
    token: &'a Secret,
    target: Target<'a>,
    thread_key: Option<&'a str>,
    turn: &'a Turn<'a>,
}

impl Send<'_> {
    fn client(&self) -> SlackClient<'_> {
        SlackClient::new(&self.http, &self.conn.url, self.token)
    }

    /// The channel id to post to: an id as given, a name through the
    /// directory, an email through `users.lookupByEmail`.
    async fn resolve(&self) -> Result<String, Attempt> {
        let client = self.client();
        let ws = &self.conn.name;
        match self.target {
            Target::Channel(name) => {
                if let Some(id) = given_id(name) {
                    return Ok(id.to_owned());
                }
                let bare = name.trim_start_matches('#');
                self.w
                    .slack
                    .channel_id(ws, &client, bare)
                    .await
                    .map_err(|e| match e {
                        LookupError::NotFound => Attempt::Dead(format!(
                            "Slack channel #{bare} not found in workspace `{ws}`: create it, or for a private channel invite the bot (/invite @pagehook), then `pagehook retry {}`",
                            self.d.id
                        )),
                        LookupError::Incomplete { seen } => Attempt::retry(format!(
                            "still looking for #{bare} in workspace `{ws}`: {seen} channels read so far; the lookup goes on at the next attempt"
                        )),
                        LookupError::Slack(e) => verdict(ws, e, false),
                    })
            }
            Target::Email(email) => self.w.slack.user_id(ws, &client, email).await.map_err(|e| {
                match e {
                    LookupError::NotFound => Attempt::Dead(format!(
                        "no Slack user in workspace `{ws}` has the email {email} (users_not_found)"
                    )),
                    LookupError::Incomplete { .. } => Attempt::retry("user lookup incomplete"),
                    LookupError::Slack(e) => verdict(ws, e, false),
                }
            }),
        }
    }

    /// Posts (unless an uncertain earlier attempt already did) to `channel`.
    async fn post(&self, channel: &str, body: &mut Value) -> Result<Attempt, Failure> {
        let thread_ts = match self.thread_key {
            Some(key) => match self.turn.threads.get(&self.conn.name, channel, key) {
                Some(read) => read,
                None => {
                    let _turn = self.w.store_turn().await;
                    match self.w.store.thread_ts(&self.conn.name, channel, key).await {
                        Ok(ts) => {
                            let name = &self.conn.name;
                            self.turn.threads.put(name, channel, key, ts.clone());
                            ts
                        }
                        Err(e) => return Err(Failure::Attempt(Attempt::retry(e.to_string()))),
                    }
                }
            },
            None => None,
        };
        match &thread_ts {
            Some(ts) => body["thread_ts"] = json!(ts),
            None => {
                if let Some(map) = body.as_object_mut() {
                    map.remove("thread_ts");
                }
            }
        }
        if self.d.uncertain {
            match self.find_posted(channel, thread_ts.as_deref()).await {
                Ok(Some(ts)) => {
                    tracing::info!(delivery = self.d.id, %ts, "found in Slack after an uncertain attempt: not posting again");
                    let thread = self.new_thread(channel, thread_ts.as_deref(), &ts);
                    return Ok(Attempt::Sent { result: ts, thread });
                }
                Ok(None) => {}
                Err(a) => return Err(Failure::Attempt(a)),
            }
        }
        self.w
            .send_slot(self.d, self.turn)
            .await
            .map_err(Failure::Attempt)?;
        match self.client().write(CHAT_POST_MESSAGE, body).await {
            Ok(answer) => {
                let ts = answer["ts"].as_str().unwrap_or_default().to_owned();
                let thread = self.new_thread(channel, thread_ts.as_deref(), &ts);
                Ok(Attempt::Sent { result: ts, thread })
            }
            Err(e) if e.code() == Some("channel_not_found") => Err(Failure::ChannelNotFound),
            Err(e) => Err(Failure::Attempt(verdict(&self.conn.name, e, true))),
        }
    }

    /// The thread a message starts: one with a thread key that had no thread yet.
    fn new_thread(&self, channel: &str, existing: Option<&str>, ts: &str) -> Option<SlackThread> {
        match (self.thread_key, existing) {
            (Some(key), None) => Some(SlackThread {
                connection: self.conn.name.clone(),
                channel: channel.to_owned(),
                key: key.to_owned(),
                ts: ts.to_owned(),
            }),
            _ => None,
        }
    }

    /// The ts of the message this delivery already posted, if Slack has it.
    ///
    /// Reads the channel (or the thread) from shortly before the first
    /// attempt, newest first, with message metadata, a page at a time up to
    /// the configured number of pages. Any failure, or running out of
    /// pages, is a retry: the delivery stays uncertain and is looked for
    /// again, never posted blind and never given up because of the lookup.
    async fn find_posted(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
    ) -> Result<Option<String>, Attempt> {
        let client = self.client();
        let lookup_failed = |e: SlackError| match verdict(&self.conn.name, e, false) {
            Attempt::Dead(why) => Attempt::retry(format!(
                "could not check whether an earlier attempt was posted ({why}); will look again"
            )),
            other => other,
        };
        // A DM's history is read through its channel (D...), not the user id.
        let channel = if channel.starts_with('U') || channel.starts_with('W') {
            let opened = client
                .write(CONVERSATIONS_OPEN, &json!({"users": channel}))
                .await
                .map_err(lookup_failed)?;
            opened
                .pointer("/channel/id")
                .and_then(Value::as_str)
                .unwrap_or(channel)
                .to_owned()
        } else {
            channel.to_owned()
        };
        let first = self
            .w
            .store
            .first_attempt_at(self.d.id)
            .await
            .map_err(|e| Attempt::retry(e.to_string()))?;
        let since = first.unwrap_or(self.d.created_at) - CLOCK_MARGIN_MS;
        let oldest = slack_ts(since.max(0));
        let (method, mut args): (Method, Vec<(&str, String)>) = match thread_ts {
            Some(ts) => (
                CONVERSATIONS_REPLIES,
                vec![("channel", channel.clone()), ("ts", ts.to_owned())],
            ),
            None => (CONVERSATIONS_HISTORY, vec![("channel", channel.clone())]),
        };
        args.extend([
            ("oldest", oldest),
            ("inclusive", "true".to_owned()),
            ("limit", "200".to_owned()),
            ("include_all_metadata", "true".to_owned()),
        ]);
        let mut cursor = String::new();
        for _ in 0..self.w.config.slack_history_pages.max(1) {
            let mut page_args = args.clone();
            if !cursor.is_empty() {
                page_args.push(("cursor", cursor.clone()));
            }
            let page = client
                .read(method, &page_args)
                .await
                .map_err(lookup_failed)?;
            let found = page["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| {
                    m.pointer("/metadata/event_type").and_then(Value::as_str) == Some(EVENT_TYPE)
                        && m.pointer("/metadata/event_payload/delivery_id")
                            .and_then(Value::as_i64)
                            == Some(self.d.id)
                })
                .and_then(|m| m["ts"].as_str().map(str::to_owned));
            if found.is_some() {
                return Ok(found);
            }
            cursor = page
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if cursor.is_empty() {
                return Ok(None);
            }
        }
        Err(Attempt::retry(format!(
            "looked through {} pages of {channel} for an earlier attempt without reaching its start; will look again",
            self.w.config.slack_history_pages
        )))
    }
}

/// Milliseconds since the epoch as a Slack timestamp (`secs.micros`).
fn slack_ts(ms: i64) -> String {
    format!("{}.{:06}", ms / 1000, (ms % 1000) * 1000)
}

/// The thread a Slack post reads before it goes (its connection, channel id
/// and thread key), when it has a thread key and its channel's id is known
/// without asking Slack; `None` otherwise (the post reads its own). The same
/// triple [`Send::post`] looks its thread up by.
pub(super) fn thread_to_read(
    directory: &Directory,
    d: &Claimed,
    connections: &[ConnectionRecord],
) -> Option<ThreadKey> {
    let Action::PostSlack {
        channel,
        thread_key: Some(key),
        ..
    } = &d.action
    else {
        return None;
    };
    let conn = super::connection_for(d, connections).ok()?;
    let channel = split_workspace(channel).1;
    let id = match given_id(channel) {
        Some(id) => id.to_owned(),
        None => directory.cached_channel_id(&conn.name, channel)?,
    };
    Some((conn.name, id, key.clone()))
}

/// The channel id a target channel gives (`C0123ABCD` or `#C0123ABCD`), or
/// `None` when it gives a name, which the directory resolves.
fn given_id(channel: &str) -> Option<&str> {
    let bare = channel.trim_start_matches('#');
    looks_like_id(bare).then_some(bare)
}

fn looks_like_id(s: &str) -> bool {
    s.len() >= 9
        && matches!(s.as_bytes()[0], b'C' | b'G' | b'D' | b'U' | b'W')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The attempt's verdict for a failed call; `posting` says whether the call
/// was the post itself (whose failure after sending leaves it uncertain).
pub(super) fn verdict(connection: &str, e: SlackError, posting: bool) -> Attempt {
    match e {
        SlackError::RateLimited {
            method,
            retry_after,
        } => Attempt::Retry {
            error: format!("Slack rate limited {method} (HTTP 429)"),
            retry_after,
            uncertain: false,
        },
        SlackError::Status { method, status } if status >= 500 => Attempt::Retry {
            error: format!("Slack answered HTTP {status} to {method}"),
            retry_after: None,
            uncertain: posting,
        },
        // A 4xx other than 429 means the request was not taken.
        SlackError::Status { method, status } => Attempt::Retry {
            error: format!(
                "Slack answered HTTP {status} to {method}; check the connection's URL (`pagehook connections`)"
            ),
            retry_after: None,
            uncertain: false,
        },
        SlackError::Transport {
            method,
            message,
            maybe_processed,
        } => Attempt::Retry {
            error: format!("Slack {method}: request failed: {message}"),
            retry_after: None,
            uncertain: posting && maybe_processed,
        },
        SlackError::Unreadable { method, message } => Attempt::Retry {
            error: format!("unreadable answer from Slack to {method}: {message}"),
            retry_after: None,
            uncertain: posting,
        },
        SlackError::Api { method, code } => classify(connection, method, &code),
    }
}

/// Slack's error codes, sorted the way design.md lists them.
pub(super) fn classify(connection: &str, method: &str, error: &str) -> Attempt {
    match error {
        "ratelimited" | "rate_limited" | "internal_error" | "fatal_error" | "service_unavailable" => {
            Attempt::retry(format!("Slack {method}: {error}"))
        }
        "request_timeout" => Attempt::Retry {
            error: format!("Slack {method}: {error}"),
            retry_after: None,
            uncertain: method == CHAT_POST_MESSAGE.name,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_that_say_the_channel_is_gone_are_told_from_others() {
        let words = |code| match classify("acme", "chat.postMessage", code) {
            Attempt::Dead(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(channel_gone(&words("is_archived")), Some("is_archived"));
        assert_eq!(
            channel_gone(&words("channel_not_found")),
            Some("channel_not_found")
        );
        assert_eq!(
            channel_gone("Slack channel #eng not found in workspace `acme`: create it, ..."),
            Some("channel_not_found")
        );
        assert_eq!(
            channel_gone(&words("not_in_channel")),
            None,
            "the bot can be invited"
        );
        assert_eq!(channel_gone(&words("msg_too_long")), None);
    }

    #[test]
    fn slack_timestamps_keep_microseconds() {
        assert_eq!(slack_ts(1_700_000_000_123), "1700000000.123000");
        assert_eq!(slack_ts(5), "0.005000");
    }

    #[test]
    fn a_lost_answer_to_a_post_is_uncertain_but_a_lost_lookup_is_not() {
        let timeout = |method| SlackError::Transport {
            method,
            message: "timed out".into(),
            maybe_processed: true,
        };
        assert!(matches!(
            verdict("acme", timeout("chat.postMessage"), true),
            Attempt::Retry {
                uncertain: true,
                ..
            }
        ));
        assert!(matches!(
            verdict("acme", timeout("conversations.list"), false),
            Attempt::Retry {
                uncertain: false,
                ..
            }
        ));
        assert!(matches!(
            verdict(
                "acme",
                SlackError::Api {
                    method: "chat.postMessage",
                    code: "token_revoked".into()
                },
                true
            ),
            Attempt::Reauth { .. }
        ));
    }
}
