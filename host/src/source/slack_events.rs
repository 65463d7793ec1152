//! Slack as an event source: what arrives at `POST /hooks/slack/{connection}`,
//! or over Socket Mode as an envelope's payload ([`parse_envelope`]; the
//! socket is authenticated by the app-level token, so there is no signature).
//!
//! Slack signs every request with the app's signing secret (`v0`):
//! `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>`
//! with the timestamp in `X-Slack-Request-Timestamp`. [`verify_signature`]
//! checks it in constant time and refuses timestamps more than
//! [`MAX_SKEW_SECS`] from the host's clock, so a captured request cannot be
//! replayed later.
//!
//! Two encodings arrive at the same URL:
//! - the Events API (`application/json`): `url_verification` (answered with
//!   its challenge), and `event_callback` envelopes, of which only
//!   `link_shared` is stored; other event types are acknowledged and
//!   dropped (Pagehook asks Slack for no others), and so is a `link_shared`
//!   from the message composer (Slack sends it again, with the message,
//!   once the message is posted: that one is previewed);
//! - slash commands (`application/x-www-form-urlencoded`), stored as a JSON
//!   object of their form fields with `"type": "slash_command"`.
//!
//! What is stored deduplicates on Slack's own identifiers (`event_id`, a
//! command's `trigger_id`), so Slack's retries (`X-Slack-Retry-Num`) are
//! stored, and reach plugins, once. [`from_stored`] turns a stored payload
//! back into the chat part of the event plugins see.
//!
//! This module must never keep or show Slack's legacy verification `token`
//! (it is dropped before storing), never accept a request whose signature it
//! did not check, and never put the signing secret in an error.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::model::{ChatEvent, ChatUser, Event, EventKind, SharedLink};

/// Largest distance between Slack's request timestamp and the host's clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// The stored event name of a shared link.
pub const LINK_SHARED: &str = "link_shared";
/// The stored event name of a slash command.
pub const SLASH_COMMAND: &str = "slash_command";

/// Why a Slack request's `v0` signature (`X-Slack-Signature`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackSignatureError {
    /// No `X-Slack-Request-Timestamp`.
    #[error(
        "missing X-Slack-Request-Timestamp header: this URL takes requests signed by Slack only"
    )]
    MissingTimestamp,
    /// No `X-Slack-Signature`.
    #[error("missing X-Slack-Signature header: this URL takes requests signed by Slack only")]
    MissingSignature,
    /// The timestamp is not a number of seconds.
    #[error("malformed X-Slack-Request-Timestamp header: expected seconds since the epoch")]
    MalformedTimestamp,
    /// The timestamp is too far from the host's clock.
    #[error(
        "X-Slack-Request-Timestamp is {skew_secs} s away from this server's clock (at most {MAX_SKEW_SECS} s is accepted): a replayed request, or this server's clock is wrong"
    )]
    Stale {
        /// How far off it is, in seconds.
        skew_secs: i64,
    },
    /// The header is not `v0=<64 hex digits>`.
    #[error("malformed X-Slack-Signature header: expected v0=<64 hex digits>")]
    Malformed,
    /// The signature does not match.
    #[error(
        "X-Slack-Signature does not match the request: the signing secret differs from the connection's (Slack app settings, Basic Information, Signing Secret)"
    )]
    Mismatch,
}

/// Checks Slack's `v0` signature of `body` against `secret`, at `now_secs`
/// (seconds since the epoch on the host's clock), in constant time.
pub fn verify_signature(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), SlackSignatureError> {
    let timestamp = timestamp
        .ok_or(SlackSignatureError::MissingTimestamp)?
        .trim();
    let signature = signature
        .ok_or(SlackSignatureError::MissingSignature)?
        .trim();
    let at: i64 = timestamp
        .parse()
        .ok()
        .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(SlackSignatureError::MalformedTimestamp)?;
    let skew_secs = now_secs.saturating_sub(at).saturating_abs();
    if skew_secs > MAX_SKEW_SECS {
        return Err(SlackSignatureError::Stale { skew_secs });
    }
    let digits = signature
        .strip_prefix("v0=")
        .ok_or(SlackSignatureError::Malformed)?;
    if digits.len() != 64 {
        return Err(SlackSignatureError::Malformed);
    }
    let expected = hex::decode(digits).map_err(|_| SlackSignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SlackSignatureError::Mismatch)
}

/// Why a verified body is not something Pagehook can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// Not JSON (for an Events API request).
    #[error("malformed JSON: {0}")]
    Json(String),
    /// Not a Slack request Pagehook understands.
    #[error("not a Slack event or slash command: {0}")]
    Shape(String),
}

/// Why a Slack request cannot be read as the chat event it is stored for:
/// checked before it is stored (refused then as [`InboundError::Shape`]) and
/// again when [`from_stored`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredSlackError {
    /// A field the request must carry is missing or empty.
    #[error("{what} without `{field}`")]
    Missing {
        /// The request, as the message names it (`link_shared`, `a slash command`).
        what: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// An `event_callback` whose event is not `link_shared` (`?`: no type).
    #[error("stored Slack event is `{0}`, not link_shared")]
    NotLinkShared(String),
}

/// What a verified request asks of Pagehook.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Slack checks the URL when it is set: answer with `challenge`.
    UrlVerification {
        /// What to echo.
        challenge: String,
    },
    /// Store this, then acknowledge.
    Store(Box<StoredSlack>),
    /// Acknowledge and drop (an event type Pagehook does not use).
    Ignored {
        /// What it was, for the log.
        what: String,
    },
}

/// A Slack request to store as an event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSlack {
    /// Deduplication key: Slack's `event_id`, or a command's `trigger_id`,
    /// after the connection name.
    pub key: String,
    /// [`LINK_SHARED`] or [`SLASH_COMMAND`].
    pub name: &'static str,
    /// What is kept: the request without Slack's verification token.
    pub payload: Value,
}

/// Reads a verified request body. `content_type` picks the encoding (a
/// form for slash commands, JSON otherwise); `timestamp` is Slack's
/// request timestamp, kept with slash commands as their time.
pub fn parse(
    connection: &str,
    content_type: Option<&str>,
    timestamp: &str,
    body: &[u8],
) -> Result<Inbound, InboundError> {
    let form = content_type.is_some_and(|t| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if form {
        parse_form(connection, timestamp, body)
    } else {
        parse_json(connection, body)
    }
}

fn parse_json(connection: &str, body: &[u8]) -> Result<Inbound, InboundError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| InboundError::Json(e.to_string()))?;
    parse_events_api(connection, value)
}

/// What a Socket Mode envelope asks of Pagehook: its `payload` read as the
/// same request would be read at `/hooks/slack/{connection}`, so it is
/// stored, deduplicated and dispatched the same way. `events_api` carries
/// the Events API body, `slash_commands` a command's fields as a JSON
/// object; `received_at_secs` (the host's clock) stands in for the request
/// timestamp Slack puts on HTTP requests only. Interactivity and envelope
/// types Pagehook does not use are [`Inbound::Ignored`].
pub fn parse_envelope(
    connection: &str,
    envelope_type: &str,
    payload: Value,
    received_at_secs: i64,
) -> Result<Inbound, InboundError> {
    match envelope_type {
        "events_api" => parse_events_api(connection, payload),
        "slash_commands" => {
            let Value::Object(fields) = payload else {
                return Err(InboundError::Shape(
                    "a slash_commands envelope whose payload is not an object".into(),
                ));
            };
            let fields = fields
                .into_iter()
                .filter(|(k, _)| k != "token")
                .map(|(k, v)| match v {
                    Value::String(s) => (k, Value::String(s)),
                    other => (k, Value::String(other.to_string())),
                })
                .collect();
            slash_command_fields(connection, &received_at_secs.to_string(), fields)
        }
        other => Ok(Inbound::Ignored {
            what: format!("Socket Mode envelope {other}"),
        }),
    }
}

fn parse_events_api(connection: &str, value: Value) -> Result<Inbound, InboundError> {
    let Value::Object(mut obj) = value else {
        return Err(InboundError::Shape("the body is not a JSON object".into()));
    };
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| InboundError::Shape("no `type` field".into()))?
        .to_owned();
    match kind.as_str() {
        "url_verification" => {
            let challenge = obj
                .get("challenge")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    InboundError::Shape("url_verification without `challenge`".into())
                })?;
            Ok(Inbound::UrlVerification {
                challenge: challenge.to_owned(),
            })
        }
        "event_callback" => {
            let event_type = obj
                .get("event")
                .and_then(|e| e.get("type"))
                .and_then(Value::as_str)
                .ok_or_else(|| InboundError::Shape("event_callback without `event.type`".into()))?
                .to_owned();
            if event_type != LINK_SHARED {
                return Ok(Inbound::Ignored {
                    what: format!("event {event_type}"),
                });
            }
            // Links typed into the message composer come first, with no
            // message to unfurl yet (`channel` COMPOSER); Slack sends the
            // event again once the message is posted, and that one is
            // previewed.
            let source = obj.get("event").and_then(|e| e.get("source"));
            if source.and_then(Value::as_str) == Some("composer") {
                return Ok(Inbound::Ignored {
                    what: "link_shared from the message composer (previewed once posted)".into(),
                });
            }
            let event_id = obj
                .get("event_id")
                .and_then(Value::as_str)
                .filter(|id| !id.trim().is_empty())
                .ok_or_else(|| InboundError::Shape("event_callback without `event_id`".into()))?
                .to_owned();
            // Checked now, so a stored link_shared always turns into an event.
            link_shared(&obj).map_err(|e| InboundError::Shape(e.to_string()))?;
            obj.remove("token");
            Ok(Inbound::Store(Box::new(StoredSlack {
                key: format!("{connection}:slack-event:{event_id}"),
                name: LINK_SHARED,
                payload: Value::Object(obj),
            })))
        }
        other => Ok(Inbound::Ignored {
            what: format!("request type {other}"),
        }),
    }
}

fn parse_form(connection: &str, timestamp: &str, body: &[u8]) -> Result<Inbound, InboundError> {
    let mut obj = Map::new();
    for (k, v) in decode_form(body) {
        if k != "token" {
            obj.insert(k, Value::String(v));
        }
    }
    slash_command_fields(connection, timestamp, obj)
}

/// A command's fields (without Slack's verification token), however they
/// arrived: a form at the HTTP endpoint, a JSON object over Socket Mode.
fn slash_command_fields(
    connection: &str,
    timestamp: &str,
    mut obj: Map<String, Value>,
) -> Result<Inbound, InboundError> {
    if obj.get("ssl_check").and_then(Value::as_str) == Some("1") {
        return Ok(Inbound::Ignored {
            what: "ssl_check".into(),
        });
    }
    if obj.contains_key("payload") {
        return Ok(Inbound::Ignored {
            what: "interactivity payload".into(),
        });
    }
    let trigger_id = obj
        .get("trigger_id")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| InboundError::Shape("a slash command without `trigger_id`".into()))?
        .to_owned();
    obj.insert("type".into(), Value::String(SLASH_COMMAND.into()));
    obj.insert(
        "request_timestamp".into(),
        Value::String(timestamp.trim().to_owned()),
    );
    slash_command(&obj).map_err(|e| InboundError::Shape(e.to_string()))?;
    Ok(Inbound::Store(Box::new(StoredSlack {
        key: format!("{connection}:slash-command:{trigger_id}"),
        name: SLASH_COMMAND,
        payload: Value::Object(obj),
    })))
}

/// `application/x-www-form-urlencoded` pairs: `+` is a space, `%XX` a
/// byte; malformed escapes are kept as written, invalid UTF-8 replaced.
fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(part: &[u8]) -> String {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < part.len() => {
                    match (hex_digit(part[i + 1]), hex_digit(part[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push(h << 4 | l);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let k = decode(it.next().unwrap_or_default());
            let v = decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A stored Slack request read back for dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatInbound {
    /// `link-shared` or `slash-command`.
    pub kind: EventKind,
    /// The stored name (`link_shared`, `slash_command`).
    pub name: &'static str,
    /// When Slack says it happened (ms since the epoch; 0 if it did not say).
    pub occurred_at_ms: u64,
    /// The Slack user who shared or typed it.
    pub user_id: String,
    /// Their workspace.
    pub team_id: String,
    /// The chat part of the event, not yet resolved against Confluence.
    pub chat: ChatEvent,
}

impl ChatInbound {
    /// The event plugins see, with the chat part as it stands (resolved
    /// against Confluence or not: `enriched` says which).
    pub fn into_event(self, source: &str, id: &str, enriched: bool) -> Event {
        Event {
            id: id.to_owned(),
            kind: self.kind,
            name: self.name.to_owned(),
            occurred_at_ms: self.occurred_at_ms,
            source: source.to_owned(),
            actor: None,
            by_pagehook: false,
            content: None,
            update_trigger: None,
            label: None,
            enriched,
            people: vec![],
            chat: Some(self.chat),
        }
    }
}

/// Reads a stored payload as a Slack request; `None` when it is not one
/// (a Confluence webhook), `Some(Err)` when it is one that cannot be read.
pub fn from_stored(payload: &Value) -> Option<Result<ChatInbound, StoredSlackError>> {
    let obj = payload.as_object()?;
    match obj.get("type").and_then(Value::as_str)? {
        "event_callback" if obj.get("event").is_some_and(Value::is_object) => {
            Some(link_shared(obj))
        }
        SLASH_COMMAND => Some(slash_command(obj)),
        _ => None,
    }
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn required(
    obj: &Map<String, Value>,
    key: &'static str,
    what: &'static str,
) -> Result<String, StoredSlackError> {
    text(obj, key)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or(StoredSlackError::Missing { what, field: key })
}

/// Slack's `ts` (`"1531420618.000200"`) in ms.
fn ts_ms(ts: &str) -> Option<u64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let secs: u64 = secs.parse().ok()?;
    let ms: u64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    Some(secs * 1000 + ms)
}

fn link_shared(obj: &Map<String, Value>) -> Result<ChatInbound, StoredSlackError> {
    let event = obj
        .get("event")
        .and_then(Value::as_object)
        .ok_or(StoredSlackError::Missing {
            what: "event_callback",
            field: "event",
        })?;
    if text(event, "type") != Some(LINK_SHARED) {
        return Err(StoredSlackError::NotLinkShared(
            text(event, "type").unwrap_or("?").to_owned(),
        ));
    }
    let what = "link_shared";
    let links = event
        .get("links")
        .and_then(Value::as_array)
        .ok_or(StoredSlackError::Missing {
            what,
            field: "links",
        })?
        .iter()
        .filter_map(|l| l.get("url").and_then(Value::as_str))
        .map(|url| SharedLink {
            url: url.to_owned(),
            page: None,
        })
        .collect();
    let user_id = required(event, "user", what)?;
    let team_id = text(obj, "team_id")
        .or_else(|| text(event, "team"))
        .unwrap_or("")
        .to_owned();
    let occurred_at_ms = text(event, "event_ts")
        .and_then(ts_ms)
        .or_else(|| {
            obj.get("event_time")
                .and_then(Value::as_u64)
                .map(|s| s * 1000)
        })
        .unwrap_or(0);
    Ok(ChatInbound {
        kind: EventKind::LinkShared,
        name: LINK_SHARED,
        occurred_at_ms,
        chat: ChatEvent::LinkShared {
            channel: required(event, "channel", what)?,
            message_ts: required(event, "message_ts", what)?,
            user: ChatUser {
                id: user_id.clone(),
                team_id: team_id.clone(),
                confluence: None,
            },
            links,
        },
        user_id,
        team_id,
    })
}

fn slash_command(obj: &Map<String, Value>) -> Result<ChatInbound, StoredSlackError> {
    let what = "a slash command";
    let user_id = required(obj, "user_id", what)?;
    let team_id = text(obj, "team_id").unwrap_or("").to_owned();
    let occurred_at_ms = text(obj, "request_timestamp")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(0, |s| s * 1000);
    Ok(ChatInbound {
        kind: EventKind::SlashCommand,
        name: SLASH_COMMAND,
        occurred_at_ms,
        chat: ChatEvent::SlashCommand {
            command: required(obj, "command", what)?,
            text: text(obj, "text").unwrap_or("").to_owned(),
            user: ChatUser {
                id: user_id.clone(),
                team_id: team_id.clone(),
                confluence: None,
            },
            channel: required(obj, "channel_id", what)?,
            response_url: required(obj, "response_url", what)?,
            results: vec![],
        },
        user_id,
        team_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Vector {
        secret: String,
        timestamp: String,
        body: String,
        signature: String,
    }

    fn vector() -> Vector {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/signatures/slack.json");
        let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        Vector {
            secret: s("signing_secret"),
            timestamp: s("timestamp"),
            body: s("body"),
            signature: s("expected_signature"),
        }
    }

    const AT: i64 = 1531420618;

    fn check(v: &Vector, secret: &str, body: &str, now: i64) -> Result<(), SlackSignatureError> {
        verify_signature(
            secret.as_bytes(),
            Some(&v.timestamp),
            Some(&v.signature),
            body.as_bytes(),
            now,
        )
    }

    #[test]
    fn the_published_vector_is_accepted_within_five_minutes() {
        let v = vector();
        assert_eq!(check(&v, &v.secret, &v.body, AT), Ok(()));
        assert_eq!(check(&v, &v.secret, &v.body, AT + 300), Ok(()));
        assert_eq!(check(&v, &v.secret, &v.body, AT - 300), Ok(()));
    }

    #[test]
    fn wrong_secret_altered_body_and_stale_timestamps_are_refused() {
        let v = vector();
        assert_eq!(
            check(&v, "not-the-secret", &v.body, AT),
            Err(SlackSignatureError::Mismatch)
        );
        let altered = v.body.replace("text=", "text=x");
        assert_eq!(
            check(&v, &v.secret, &altered, AT),
            Err(SlackSignatureError::Mismatch)
        );
        assert_eq!(
            check(&v, &v.secret, &v.body, AT + 301),
            Err(SlackSignatureError::Stale { skew_secs: 301 })
        );
        assert_eq!(
            check(&v, &v.secret, &v.body, AT - 3600),
            Err(SlackSignatureError::Stale { skew_secs: 3600 })
        );
        // Another timestamp in the base string: the signature no longer fits.
        assert_eq!(
            verify_signature(
                v.secret.as_bytes(),
                Some("1531420619"),
                Some(&v.signature),
                v.body.as_bytes(),
                AT
            ),
            Err(SlackSignatureError::Mismatch)
        );
        let err = check(&v, "not-the-secret", &v.body, AT)
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&v.secret), "{err}");
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let v = vector();
        let body = v.body.as_bytes();
        let secret = v.secret.as_bytes();
        assert_eq!(
            verify_signature(secret, None, Some(&v.signature), body, AT),
            Err(SlackSignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify_signature(secret, Some(&v.timestamp), None, body, AT),
            Err(SlackSignatureError::MissingSignature)
        );
        for ts in ["", "soon", "-1531420618", "+1531420618", "1531420618.5"] {
            assert_eq!(
                verify_signature(secret, Some(ts), Some(&v.signature), body, AT),
                Err(SlackSignatureError::MalformedTimestamp),
                "{ts:?}"
            );
        }
        let bare = v.signature.strip_prefix("v0=").unwrap();
        for sig in [
            bare.to_owned(),
            format!("v1={bare}"),
            "v0=abc".to_owned(),
            format!("v0={}", "z".repeat(64)),
        ] {
            assert_eq!(
                verify_signature(secret, Some(&v.timestamp), Some(&sig), body, AT),
                Err(SlackSignatureError::Malformed),
                "{sig}"
            );
        }
    }

    #[test]
    fn the_vectors_slash_command_is_stored_by_trigger_id_without_the_token() {
        let v = vector();
        let Inbound::Store(stored) = parse(
            "acme",
            Some("application/x-www-form-urlencoded"),
            &v.timestamp,
            v.body.as_bytes(),
        )
        .unwrap() else {
            panic!("a slash command is stored")
        };
        assert_eq!(
            stored.key,
            "acme:slash-command:398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        );
        assert_eq!(stored.name, SLASH_COMMAND);
        assert!(
            stored.payload.get("token").is_none(),
            "verification token dropped"
        );
        let inbound = from_stored(&stored.payload).unwrap().unwrap();
        assert_eq!(inbound.kind, EventKind::SlashCommand);
        assert_eq!(inbound.occurred_at_ms, 1531420618000);
        assert_eq!(
            (inbound.user_id.as_str(), inbound.team_id.as_str()),
            ("U2CERLKJA", "T1DC2JH3J")
        );
        assert_eq!(
            inbound.chat,
            ChatEvent::SlashCommand {
                command: "/webhook-collect".into(),
                text: String::new(),
                user: ChatUser {
                    id: "U2CERLKJA".into(),
                    team_id: "T1DC2JH3J".into(),
                    confluence: None
                },
                channel: "G8PSS9T3V".into(),
                response_url:
                    "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN"
                        .into(),
                results: vec![],
            }
        );
    }

    /// Slack's documented link_shared example (api.slack.com/events/link_shared).
    const LINK_SHARED_BODY: &str = r#"{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456",
        "event":{"type":"link_shared","channel":"C123ABC456","is_bot_user_member":true,"user":"U123ABC456",
        "message_ts":"123456789.9875","unfurl_id":"C123456.123456789.987501.1b90fa","thread_ts":"123456621.1855",
        "source":"conversations_history","event_ts":"123456789.987501",
        "links":[{"domain":"example.com","url":"https://example.com/12345"},
                 {"domain":"example.com","url":"https://example.com/67890"}]},
        "type":"event_callback","authed_users":["U123ABC456","U222222222"],"event_id":"Ev123ABC456","event_time":123456789}"#;

    #[test]
    fn link_shared_is_stored_by_event_id_and_reads_back_as_chat() {
        let Inbound::Store(stored) = parse(
            "acme",
            Some("application/json"),
            "1",
            LINK_SHARED_BODY.as_bytes(),
        )
        .unwrap() else {
            panic!("link_shared is stored")
        };
        assert_eq!(stored.key, "acme:slack-event:Ev123ABC456");
        assert_eq!(stored.name, LINK_SHARED);
        assert!(stored.payload.get("token").is_none());
        let inbound = from_stored(&stored.payload).unwrap().unwrap();
        assert_eq!(inbound.kind, EventKind::LinkShared);
        assert_eq!(inbound.occurred_at_ms, 123456789987);
        let ChatEvent::LinkShared {
            channel,
            message_ts,
            user,
            links,
        } = inbound.chat
        else {
            panic!()
        };
        assert_eq!(
            (channel.as_str(), message_ts.as_str()),
            ("C123ABC456", "123456789.9875")
        );
        assert_eq!(
            (user.id.as_str(), user.team_id.as_str()),
            ("U123ABC456", "T123ABC456")
        );
        assert_eq!(
            links.iter().map(|l| l.url.as_str()).collect::<Vec<_>>(),
            ["https://example.com/12345", "https://example.com/67890"]
        );
        // Another connection's copy of the same event is another event.
        let Inbound::Store(other) = parse("beta", None, "1", LINK_SHARED_BODY.as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_ne!(other.key, stored.key);
    }

    #[test]
    fn url_verification_other_events_and_bad_bodies() {
        assert_eq!(
            parse(
                "acme",
                Some("application/json"),
                "1",
                br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#
            ),
            Ok(Inbound::UrlVerification {
                challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into()
            })
        );
        let message = LINK_SHARED_BODY.replace(r#""type":"link_shared""#, r#""type":"message""#);
        assert_eq!(
            parse("acme", None, "1", message.as_bytes()),
            Ok(Inbound::Ignored {
                what: "event message".into()
            })
        );
        assert!(matches!(
            parse("acme", None, "1", br#"{"type":"app_rate_limited"}"#),
            Ok(Inbound::Ignored { .. })
        ));
        assert!(matches!(
            parse("acme", None, "1", b"{\"type\":"),
            Err(InboundError::Json(_))
        ));
        // The same links while still in the composer: previewed once posted.
        let composer = LINK_SHARED_BODY
            .replace(
                r#""source":"conversations_history""#,
                r#""source":"composer""#,
            )
            .replace(r#""channel":"C123ABC456""#, r#""channel":"COMPOSER""#);
        assert!(matches!(
            parse("acme", None, "1", composer.as_bytes()),
            Ok(Inbound::Ignored { what }) if what.contains("composer")
        ));
        let no_id = LINK_SHARED_BODY.replace(r#""event_id":"Ev123ABC456","#, "");
        assert!(
            parse("acme", None, "1", no_id.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("event_id")
        );
        let no_user = LINK_SHARED_BODY.replace(r#""user":"U123ABC456","#, "");
        assert!(parse("acme", None, "1", no_user.as_bytes()).is_err());
        let form = Some("application/x-www-form-urlencoded; charset=utf-8");
        assert!(matches!(
            parse("acme", form, "1", b"ssl_check=1&token=x"),
            Ok(Inbound::Ignored { .. })
        ));
        assert!(
            parse("acme", form, "1", b"command=%2Fwiki&user_id=U1")
                .unwrap_err()
                .to_string()
                .contains("trigger_id")
        );
    }

    /// Slack's documented Socket Mode slash command envelope
    /// (api.slack.com/apis/socket-mode#command).
    const SOCKET_COMMAND: &str = r#"{"payload":{"token":"bHKJ2n9AW6Ju3MjciOHfbA1b","team_id":"T123ABC456",
        "team_domain":"maria","channel_id":"C123ABC456","channel_name":"general","user_id":"U123ABC456",
        "user_name":"rainer","command":"/randorilke","text":"","response_url":"https://rilke.slack.com/commands/T0SNL8S4S/37053613554/YMB2ZESDLNjNLqSFZ1quhNAh",
        "trigger_id":"37053613634.26768298162.440952c06ef4de2653466a48fe495f93"},
        "envelope_id":"dbdd0ef3-1543-4f94-bfb4-133d0e6c1545","type":"slash_commands","accepts_response_payload":true}"#;

    #[test]
    fn socket_mode_envelopes_are_stored_as_their_http_twins() {
        let envelope: Value = serde_json::from_str(SOCKET_COMMAND).unwrap();
        let Inbound::Store(command) = parse_envelope(
            "acme",
            "slash_commands",
            envelope["payload"].clone(),
            1700000000,
        )
        .unwrap() else {
            panic!("a slash command is stored")
        };
        assert_eq!(
            command.key,
            "acme:slash-command:37053613634.26768298162.440952c06ef4de2653466a48fe495f93"
        );
        assert!(command.payload.get("token").is_none(), "token dropped");
        assert_eq!(command.payload["request_timestamp"], "1700000000");
        let read = from_stored(&command.payload).unwrap().unwrap();
        assert_eq!(read.kind, EventKind::SlashCommand);
        assert_eq!(read.occurred_at_ms, 1_700_000_000_000);

        // events_api carries the Events API body: the same key as over HTTP.
        let body: Value = serde_json::from_str(LINK_SHARED_BODY).unwrap();
        let Inbound::Store(event) = parse_envelope("acme", "events_api", body, 1).unwrap() else {
            panic!("link_shared is stored")
        };
        let Inbound::Store(http) = parse("acme", None, "1", LINK_SHARED_BODY.as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!((event.key, event.payload), (http.key, http.payload));

        assert!(matches!(
            parse_envelope("acme", "interactive", json!({"type": "block_actions"}), 1),
            Ok(Inbound::Ignored { .. })
        ));
        assert!(
            parse_envelope(
                "acme",
                "slash_commands",
                json!({"command": "/x", "user_id": "U1"}),
                1
            )
            .unwrap_err()
            .to_string()
            .contains("trigger_id")
        );
        assert!(parse_envelope("acme", "slash_commands", json!("text"), 1).is_err());
    }

    #[test]
    fn confluence_webhooks_are_not_slack_payloads() {
        let hook: Value =
            serde_json::from_str(r#"{"event":"page_created","page":{"id":1}}"#).unwrap();
        assert!(from_stored(&hook).is_none());
        let odd: Value = serde_json::from_str(r#"{"event":"x","type":"event_callback"}"#).unwrap();
        assert!(from_stored(&odd).is_none());
    }

    #[test]
    fn a_stored_request_missing_a_field_says_which() {
        let message = |payload: Value| from_stored(&payload).unwrap().unwrap_err().to_string();
        assert_eq!(
            message(json!({"type": "slash_command", "user_id": "U1"})),
            "a slash command without `command`"
        );
        assert_eq!(
            message(json!({"type": "event_callback", "event": {"type": "link_shared"}})),
            "link_shared without `links`"
        );
        assert_eq!(
            message(json!({"type": "event_callback", "event": {"type": "app_mention"}})),
            "stored Slack event is `app_mention`, not link_shared"
        );
    }

    #[test]
    fn forms_decode_plus_percent_and_bad_escapes() {
        assert_eq!(
            decode_form(b"text=a+b%26c%3D&x=%zz&y=%4&z&=v"),
            vec![
                ("text".to_owned(), "a b&c=".to_owned()),
                ("x".to_owned(), "%zz".to_owned()),
                ("y".to_owned(), "%4".to_owned()),
                ("z".to_owned(), String::new()),
                (String::new(), "v".to_owned()),
            ]
        );
        assert_eq!(
            decode_form("text=caf%C3%A9".as_bytes()),
            vec![("text".to_owned(), "café".to_owned())]
        );
        assert_eq!(ts_ms("1531420618.000200"), Some(1531420618000));
        assert_eq!(ts_ms("1531420618.5"), Some(1531420618500));
        assert_eq!(ts_ms("1531420618"), Some(1531420618000));
        assert_eq!(ts_ms("COMPOSER"), None);
    }
}
