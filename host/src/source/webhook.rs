//! Confluence Data Center webhooks: signature check and parsing.
//!
//! Current Data Center versions send ids only (`{"event": "page_created",
//! "page": {"id": 2818051}, ...}`); older ones, or 9.x with id-only payloads
//! disabled, send title, space and URL too. Both shapes parse into one
//! [`Webhook`]; anything Pagehook does not know is kept with kind `other`.
//! The body is signed with HMAC-SHA256 in `X-Hub-Signature: sha256=<hex>`.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::model::EventKind;

/// What a webhook body is.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// The admin screen's "Test connection" (`{"test": true}`).
    Test,
    /// An event.
    Event(Box<Webhook>),
}

/// One Confluence webhook event, as much as the body tells.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Confluence's event name, e.g. `page_created`.
    pub name: String,
    /// The contract's kind for it (`Other` for names Pagehook does not know).
    pub kind: EventKind,
    /// When Confluence says it happened (ms since the epoch; 0 if absent).
    pub timestamp_ms: u64,
    /// The acting user's key.
    pub user_key: Option<String>,
    /// The page, blog post, comment or attachment id.
    pub content_id: Option<u64>,
    /// `page`, `blogpost`, `comment` or `attachment`, from the key that carried the id.
    pub content_type: Option<String>,
    /// For updates: why the page was saved (`edit_page`, `link_refactoring`, ...).
    pub update_trigger: Option<String>,
    /// For label events: the label.
    pub label: Option<String>,
    /// What a rich (pre-9.x) payload carried about the content.
    pub rich: Option<RichContent>,
}

/// The content fields of a rich payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RichContent {
    /// Title.
    pub title: Option<String>,
    /// Space key.
    pub space_key: Option<String>,
    /// Link to the content (the payload's `self`).
    pub url: Option<String>,
    /// Version number.
    pub version: Option<u32>,
}

/// Why a body is not a webhook Pagehook can store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not JSON; says where it broke.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// JSON, but not a Confluence webhook.
    #[error("not a Confluence webhook: {0}")]
    Shape(String),
}

/// Why a Confluence webhook's `X-Hub-Signature` check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfluenceSignatureError {
    /// No `X-Hub-Signature` header.
    #[error(
        "missing X-Hub-Signature header: set the same secret in Confluence's webhook and in `pagehook connect confluence`"
    )]
    Missing,
    /// The header is not `sha256=<64 hex digits>` or bare hex.
    #[error("malformed X-Hub-Signature header: expected sha256=<64 hex digits>")]
    Malformed,
    /// The signature does not match the body and secret.
    #[error(
        "X-Hub-Signature does not match the body: the webhook secret differs from the connection's"
    )]
    Mismatch,
}

/// Checks `X-Hub-Signature` against HMAC-SHA256(secret, body) in constant time.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), ConfluenceSignatureError> {
    let header = header.ok_or(ConfluenceSignatureError::Missing)?.trim();
    let hex_sig = header.strip_prefix("sha256=").unwrap_or(header);
    if hex_sig.len() != 64 {
        return Err(ConfluenceSignatureError::Malformed);
    }
    let given = hex::decode(hex_sig).map_err(|_| ConfluenceSignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| ConfluenceSignatureError::Mismatch)
}

/// Content keys in webhook bodies and the content type each implies.
const CONTENT_KEYS: [(&str, Option<&str>); 5] = [
    ("page", Some("page")),
    ("blog", Some("blogpost")),
    ("comment", Some("comment")),
    ("attachment", Some("attachment")),
    ("labeled", None),
];

/// Parses a webhook body.
pub fn parse(body: &[u8]) -> Result<Payload, WebhookError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Json(e.to_string()))?;
    from_value(&value)
}

/// Reads a webhook body already parsed as JSON (a stored event's payload),
/// so dispatch does not print and parse it again.
pub fn from_value(value: &Value) -> Result<Payload, WebhookError> {
    let Some(obj) = value.as_object() else {
        return Err(WebhookError::Shape("the body is not a JSON object".into()));
    };
    let name = match obj.get("event") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        Some(_) => {
            return Err(WebhookError::Shape(
                "`event` must be a non-empty string".into(),
            ));
        }
        None if obj.get("test") == Some(&Value::Bool(true)) => return Ok(Payload::Test),
        None => return Err(WebhookError::Shape("no `event` field".into())),
    };
    let kind = EventKind::from_name(&name.replace('_', "-")).unwrap_or(EventKind::Other);
    let mut hook = Webhook {
        kind,
        timestamp_ms: obj.get("timestamp").and_then(as_u64).unwrap_or(0),
        user_key: obj
            .get("userKey")
            .and_then(Value::as_str)
            .map(str::to_owned),
        content_id: None,
        content_type: None,
        update_trigger: obj
            .get("updateTrigger")
            .and_then(Value::as_str)
            .map(str::to_owned),
        label: obj
            .get("label")
            .and_then(|l| l.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        rich: None,
        name,
    };
    for (key, content_type) in CONTENT_KEYS {
        let Some(content) = obj.get(key) else {
            continue;
        };
        let Some(id) = content.get("id").and_then(as_u64) else {
            return Err(WebhookError::Shape(format!(
                "`{key}.id` must be a content id"
            )));
        };
        hook.content_id = Some(id);
        hook.content_type = content_type.map(str::to_owned).or_else(|| {
            content
                .get("contentType")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let rich = RichContent {
            title: content
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_owned),
            space_key: content
                .get("spaceKey")
                .and_then(Value::as_str)
                .map(str::to_owned),
            url: content
                .get("self")
                .and_then(Value::as_str)
                .map(str::to_owned),
            version: content.get("version").and_then(as_u64).map(|v| v as u32),
        };
        if rich != RichContent::default() {
            hook.rich = Some(rich);
        }
        break;
    }
    Ok(Payload::Event(Box::new(hook)))
}

/// Ids and timestamps arrive as numbers or as strings of digits.
fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl Webhook {
    /// The deduplication key: identical for Confluence's re-deliveries of one
    /// event (same source, name, content, label and timestamp), different for
    /// two real events, even on the same page in the same millisecond with
    /// different labels.
    pub fn dedupe_key(&self, source: &str) -> String {
        let mut key = format!(
            "{source}:{}:{}:{}",
            self.name,
            self.content_id.map_or("-".to_owned(), |id| id.to_string()),
            self.timestamp_ms
        );
        if let Some(label) = &self.label {
            key.push(':');
            key.push_str(label);
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
    }

    fn event(rel: &str) -> Webhook {
        let body = std::fs::read(fixtures().join("confluence").join(rel)).unwrap();
        match parse(&body).unwrap() {
            Payload::Event(e) => *e,
            Payload::Test => panic!("{rel} is not a test body"),
        }
    }

    #[test]
    fn every_fixture_parses_with_its_ids() {
        for dir in ["webhook-id-only", "webhook-rich"] {
            for entry in std::fs::read_dir(fixtures().join("confluence").join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let hook = match parse(&std::fs::read(&path).unwrap()).unwrap() {
                    Payload::Event(e) => e,
                    Payload::Test => panic!(),
                };
                assert_ne!(hook.kind, EventKind::Other, "{}", path.display());
                assert!(hook.content_id.is_some(), "{}", path.display());
                assert!(hook.timestamp_ms > 0, "{}", path.display());
            }
        }
        let p = event("webhook-id-only/page_updated.json");
        assert_eq!(p.kind, EventKind::PageUpdated);
        assert_eq!(p.content_id, Some(2818051));
        assert_eq!(p.content_type.as_deref(), Some("page"));
        assert_eq!(p.update_trigger.as_deref(), Some("edit_page"));
        assert!(p.rich.is_none());
        let c = event("webhook-id-only/comment_created.json");
        assert_eq!(
            (c.content_id, c.content_type.as_deref()),
            (Some(2818077), Some("comment"))
        );
        let b = event("webhook-id-only/blog_created.json");
        assert_eq!(b.content_type.as_deref(), Some("blogpost"));
        let l = event("webhook-id-only/label_added.json");
        assert_eq!(
            (l.kind, l.label.as_deref(), l.content_id),
            (EventKind::LabelAdded, Some("incident"), Some(2818090))
        );
        let r = event("webhook-rich/page_created.json");
        let rich = r.rich.unwrap();
        assert_eq!(rich.title.as_deref(), Some("Q3 launch checklist"));
        assert_eq!(rich.space_key.as_deref(), Some("ENG"));
        assert_eq!(rich.version, Some(1));
        let legacy = event("webhook-rich/page_updated_legacy_names.json");
        assert_eq!(legacy.rich.unwrap().space_key.as_deref(), Some("OPS"));
    }

    #[test]
    fn test_connection_unknown_and_malformed_bodies() {
        let body =
            std::fs::read(fixtures().join("confluence/webhook-test-connection.json")).unwrap();
        assert_eq!(parse(&body).unwrap(), Payload::Test);
        let Payload::Event(space) = parse(br#"{"event":"space_created","timestamp":"5"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((space.kind, space.timestamp_ms), (EventKind::Other, 5));
        let err = parse(b"{\"event\": \"page_created\",")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("malformed JSON: EOF while parsing"),
            "{err}"
        );
        assert!(err.contains("line 1"), "{err}");
        assert_eq!(
            parse(b"[1]").unwrap_err().to_string(),
            "not a Confluence webhook: the body is not a JSON object"
        );
        assert!(
            parse(br#"{"page":{"id":1}}"#)
                .unwrap_err()
                .to_string()
                .contains("no `event`")
        );
        assert!(parse(br#"{"event":"page_created","page":{"id":"x"}}"#).is_err());
    }

    #[test]
    fn dedupe_keys_are_stable_and_distinguish_events() {
        let a = event("webhook-id-only/page_updated.json");
        assert_eq!(
            a.dedupe_key("prod"),
            "prod:page_updated:2818051:1768246501113"
        );
        assert_eq!(
            a.dedupe_key("prod"),
            event("webhook-id-only/page_updated.json").dedupe_key("prod")
        );
        assert_ne!(a.dedupe_key("prod"), a.dedupe_key("staging"));
        let mut other_label = event("webhook-id-only/label_added.json");
        let first = other_label.dedupe_key("prod");
        other_label.label = Some("postmortem".into());
        assert_ne!(first, other_label.dedupe_key("prod"));
    }

    #[test]
    fn signatures_match_the_published_vector() {
        let v: Value = serde_json::from_slice(
            &std::fs::read(fixtures().join("signatures/hub-signature.json")).unwrap(),
        )
        .unwrap();
        let secret = v["secret"].as_str().unwrap().as_bytes();
        let body = v["body"].as_str().unwrap().as_bytes();
        let sig = v["expected_signature"].as_str().unwrap();
        assert_eq!(verify_signature(secret, body, Some(sig)), Ok(()));
        let bare = sig.strip_prefix("sha256=").unwrap();
        assert_eq!(verify_signature(secret, body, Some(bare)), Ok(()));
        assert_eq!(
            verify_signature(b"wrong", body, Some(sig)),
            Err(ConfluenceSignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(secret, b"Hello, World?", Some(sig)),
            Err(ConfluenceSignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(secret, body, None),
            Err(ConfluenceSignatureError::Missing)
        );
        assert_eq!(
            verify_signature(secret, body, Some("sha256=zz")),
            Err(ConfluenceSignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(secret, body, Some(&format!("sha256={}", "g".repeat(64)))),
            Err(ConfluenceSignatureError::Malformed)
        );
    }
}
