//! Enrichment: from an id-only webhook to the event plugins see.
//!
//! The content itself is always read fresh (an update right after a create
//! must show the new version); what changes rarely is cached for a short
//! TTL: users by key, the container page of a comment, and the account
//! Pagehook itself acts as (to mark `by-pagehook`). Content that is gone or
//! hidden from that account (404) still gives an event, with `enriched =
//! false` and what the webhook said.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{ClientError, ConfluenceClient};
use super::webhook::Webhook;
use crate::model::{Ancestor, Content, Event, Person};

/// Most entries a cache holds before it is emptied (it refills from Confluence).
const CACHE_CAP: usize = 10_000;
/// Longest comment excerpt, in characters.
const EXCERPT_CHARS: usize = 300;

/// Why an event could not be enriched now.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnrichError {
    /// Try again later (network, 5xx, rate limit); `retry_after` when Confluence said.
    #[error("{message}")]
    Transient {
        /// What went wrong.
        message: String,
        /// How long Confluence asked to wait.
        retry_after: Option<Duration>,
    },
    /// An admin must act (credentials refused).
    #[error("{0}")]
    Permanent(String),
}

impl From<ClientError> for EnrichError {
    fn from(e: ClientError) -> Self {
        if e.is_transient() {
            EnrichError::Transient {
                retry_after: e.retry_after(),
                message: e.to_string(),
            }
        } else {
            EnrichError::Permanent(e.to_string())
        }
    }
}

struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_CAP {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }
}

/// Enriches events of one Confluence source.
pub struct Enricher {
    source: String,
    client: ConfluenceClient,
    users: TtlCache<String, Option<Person>>,
    containers: TtlCache<u64, Option<Value>>,
    service_key: TtlCache<(), String>,
}

impl Enricher {
    /// An enricher reading from `client`, caching for `ttl`.
    pub fn new(source: &str, client: ConfluenceClient, ttl: Duration) -> Enricher {
        Enricher {
            source: source.to_owned(),
            client,
            users: TtlCache::new(ttl),
            containers: TtlCache::new(ttl),
            // The account a connection uses does not change while it exists.
            service_key: TtlCache::new(Duration::from_secs(3600)),
        }
    }

    /// The full event for `hook`, read back from Confluence.
    pub async fn enrich(&self, event_id: &str, hook: &Webhook) -> Result<Event, EnrichError> {
        let mut event = from_webhook_only(&self.source, event_id, hook);
        if let Some(key) = &hook.user_key {
            let actor = self.user(key).await?;
            event.by_pagehook = self.service_key().await? == actor.key;
            event.actor = Some(actor);
        }
        let Some(id) = hook.content_id else {
            event.enriched = true;
            return Ok(event);
        };
        let Some(json) = self.client.content(id).await? else {
            tracing::info!(source = %self.source, id, "content not found (purged or restricted): enriched = false");
            return Ok(event);
        };
        let mut content = content_from_rest(&json);
        if content.content_type == "comment"
            && let Some(page_id) = content.container_id
            && let Some(page) = self.container(page_id).await?
        {
            let page = content_from_rest(&page);
            content.ancestors = page.ancestors;
            content.ancestors.push(Ancestor {
                id: page.id,
                title: page.title,
            });
            content.restricted |= page.restricted;
        }
        event.content = Some(content);
        event.enriched = true;
        Ok(event)
    }

    async fn user(&self, key: &str) -> Result<Person, EnrichError> {
        let user = match self.users.get(&key.to_owned()) {
            Some(u) => u,
            None => {
                let u = self.client.user(key).await?;
                self.users.put(key.to_owned(), u.clone());
                u
            }
        };
        Ok(user.unwrap_or_else(|| Person {
            key: key.to_owned(),
            username: None,
            display_name: None,
            email: None,
        }))
    }

    async fn container(&self, id: u64) -> Result<Option<Value>, EnrichError> {
        if let Some(c) = self.containers.get(&id) {
            return Ok(c);
        }
        let c = self.client.content(id).await?;
        self.containers.put(id, c.clone());
        Ok(c)
    }

    async fn service_key(&self) -> Result<String, EnrichError> {
        if let Some(k) = self.service_key.get(&()) {
            return Ok(k);
        }
        let key = self.client.current_user().await?.key;
        self.service_key.put((), key.clone());
        Ok(key)
    }
}

/// What the webhook alone says, with `enriched = false`: the event when
/// Confluence cannot be asked (or the content is gone).
pub fn from_webhook_only(source: &str, event_id: &str, hook: &Webhook) -> Event {
    let rich = hook.rich.clone().unwrap_or_default();
    Event {
        id: event_id.to_owned(),
        kind: hook.kind,
        name: hook.name.clone(),
        occurred_at_ms: hook.timestamp_ms,
        source: source.to_owned(),
        actor: hook.user_key.as_ref().map(|key| Person {
            key: key.clone(),
            username: None,
            display_name: None,
            email: None,
        }),
        by_pagehook: false,
        content: hook.content_id.map(|id| Content {
            id,
            content_type: hook.content_type.clone().unwrap_or_default(),
            title: rich.title.unwrap_or_default(),
            space_key: rich.space_key.unwrap_or_default(),
            space_name: None,
            url: rich.url.unwrap_or_default(),
            version: rich.version.unwrap_or(1),
            minor_edit: false,
            version_message: None,
            labels: vec![],
            ancestors: vec![],
            restricted: false,
            container_id: None,
            excerpt: None,
        }),
        update_trigger: hook.update_trigger.clone(),
        label: hook.label.clone(),
        enriched: false,
    }
}

fn id_of(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Maps a REST content object (expanded as [`super::client::CONTENT_EXPAND`]) to [`Content`].
pub fn content_from_rest(v: &Value) -> Content {
    let links = |k: &str| str_at(v, &format!("/_links/{k}")).unwrap_or("");
    let url = format!("{}{}{}", links("base"), links("context"), links("webui"));
    let labels = v
        .pointer("/metadata/labels/results")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let ancestors = v
        .get("ancestors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|a| {
                    Some(Ancestor {
                        id: id_of(a.get("id")?)?,
                        title: a
                            .get("title")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let restricted = ["user", "group"].iter().any(|k| {
        v.pointer(&format!("/restrictions/read/restrictions/{k}/results"))
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty())
    });
    let content_type = str_at(v, "/type").unwrap_or("").to_owned();
    let is_comment = content_type == "comment";
    Content {
        id: v.get("id").and_then(id_of).unwrap_or(0),
        title: str_at(v, "/title").unwrap_or("").to_owned(),
        space_key: str_at(v, "/space/key").unwrap_or("").to_owned(),
        space_name: str_at(v, "/space/name").map(str::to_owned),
        url,
        version: v
            .pointer("/version/number")
            .and_then(Value::as_u64)
            .unwrap_or(1) as u32,
        minor_edit: v
            .pointer("/version/minorEdit")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        version_message: str_at(v, "/version/message").map(str::to_owned),
        labels,
        ancestors,
        restricted,
        container_id: if is_comment {
            v.pointer("/container/id").and_then(id_of)
        } else {
            None
        },
        excerpt: if is_comment {
            str_at(v, "/body/view/value").map(|html| excerpt(html, EXCERPT_CHARS))
        } else {
            None
        },
        content_type,
    }
}

/// Plain text from rendered HTML: tags dropped, common entities decoded,
/// whitespace collapsed, cut at `max` characters with an ellipsis.
fn excerpt(html: &str, max: usize) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let words: Vec<&str> = text.split_whitespace().collect();
    let text = words.join(" ");
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{}…", cut.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn rest(name: &str) -> Value {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/confluence/rest")
            .join(name);
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    #[test]
    fn rest_page_maps_field_by_field() {
        let c = content_from_rest(&rest("content-page.json"));
        assert_eq!(c.id, 2818051);
        assert_eq!(c.content_type, "page");
        assert_eq!(c.title, "Q3 launch checklist");
        assert_eq!(
            (c.space_key.as_str(), c.space_name.as_deref()),
            ("ENG", Some("Engineering"))
        );
        assert_eq!(
            c.url,
            "https://wiki.example.com/spaces/ENG/pages/2818051/Q3+launch+checklist"
        );
        assert_eq!((c.version, c.minor_edit), (3, false));
        assert_eq!(c.version_message.as_deref(), Some("Added rollback steps"));
        assert_eq!(c.labels, vec!["release", "q3"]);
        assert_eq!(
            c.ancestors.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![2818001, 2818002]
        );
        assert!(!c.restricted);
        assert_eq!(c.container_id, None);
    }

    #[test]
    fn rest_comment_has_container_and_plain_excerpt() {
        let c = content_from_rest(&rest("content-comment.json"));
        assert_eq!(c.content_type, "comment");
        assert_eq!(c.container_id, Some(2818051));
        assert_eq!(c.version_message, None, "an empty message is no message");
        assert_eq!(
            c.excerpt.as_deref(),
            Some("Do we also need a feature flag for the new checkout?")
        );
        assert_eq!(excerpt("<p>a &amp; b</p><p>c</p>", 300), "a & b c");
        assert_eq!(excerpt("abcdef", 4), "abc…");
    }
}
