//! Enrichment: from an id-only webhook to the event plugins see.
//!
//! The content itself is always read fresh (an update right after a create
//! must show the new version); what changes rarely is cached for a short
//! TTL: users by key, the container page of a comment, ancestors' view
//! restrictions read one by one, people's emails ([`self::emails`]), and
//! the account Pagehook itself acts as (to mark `by-pagehook`). Content that
//! is gone or hidden from that account (404) still gives an event, with
//! `enriched = false` and what the webhook said. A binding's settings that
//! name a Confluence page template reach its plugin as the template's body
//! ([`template_settings`]).
//!
//! # View restrictions
//!
//! `Content::restricted` is true when the content or any ancestor has view
//! restrictions: Confluence applies a page's view restrictions to every page
//! below it. Confluence's REST answers about restrictions list only what is
//! set on the content itself: the `restrictions.read` expansion and
//! `/rest/api/content/{id}/restriction/byOperation/read` are empty for the
//! child of a restricted page (Atlassian's CONFSERVER-45609; CONFSERVER-99749,
//! asking for inherited ones, is unresolved). Data Center 9's Java REST client
//! has `getRelevantViewRestrictionsForContent`, but Data Center's REST API
//! reference (9.2, 10.0) documents no resource for it, and its
//! `ContentRestrictionResource` serves only `byOperation`, `byOperation/{op}`
//! and updates; so Pagehook guesses no URL. One request still answers it: the
//! content read enrichment makes anyway ([`crate::confluence::client::CONTENT_EXPAND`])
//! expands `ancestors.restrictions.read.restrictions.user` and `.group`, and
//! each ancestor comes back with its own restrictions, root first.
//!
//! An ancestor whose restrictions did not come back expanded (a server or a
//! proxy that does not expand nested fields, an ancestor Confluence would not
//! expand) is read on its own ([`ConfluenceClient::own_restrictions`]), and
//! that answer is cached for the TTL. Whenever Pagehook cannot tell, the
//! content counts as restricted: restriction fields missing from an answer,
//! an ancestor without an id, an ancestor that answers 403, 404 or anything
//! the API does not document, a comment's page that cannot be read. Failures
//! worth retrying (network, 5xx, 429) defer the event like any other
//! enrichment failure, so nothing is posted meanwhile.
//!
//! A comment (or an attachment) is visible to whoever may view its page, so it
//! takes its page's restriction, the page's inherited restrictions included.
//! Content that cannot be read at all (404: purged, or hidden from Pagehook's
//! account; Confluence answers both alike) is described only by what the
//! webhook carried, nothing is read about it from elsewhere, and it counts as
//! restricted. A webhook-only source (no token) never asks Confluence: its
//! events carry `restricted = false`, which the admin guide states.

pub mod chat;
pub mod chat_confluence;
pub mod emails;
pub mod template_settings;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use self::emails::{EmailLookup, LinkedEmails, PeopleReport, PersonEmails, Unresolved};
use crate::confluence::client::{ClientError, ConfluenceClient};
use crate::confluence::people::{self, Gathered, Mention};
use crate::confluence::viewers::{Access, Viewers};
use crate::model::{
    Ancestor, ChatEvent, Concern, ConcernedPerson, Content, Event, EventKind, Person,
};
use crate::source::webhook::Webhook;
use crate::ttl_cache::TtlCache;

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

/// Enriches events of one Confluence source.
pub struct Enricher {
    source: String,
    client: ConfluenceClient,
    users: TtlCache<String, Option<Person>>,
    containers: TtlCache<u64, Option<Value>>,
    service_key: TtlCache<(), String>,
    /// Users by username (mentions in older content name them so).
    usernames: TtlCache<String, Option<Person>>,
    /// Who may view what (see [`crate::confluence::viewers`]).
    viewers: Viewers,
    /// Whether "watchers unknown" was logged already.
    watchers_logged: AtomicBool,
    /// Set while Confluence refuses to list watchers: not asked again for the TTL.
    watchers_refused: TtlCache<(), ()>,
    /// What chat lookups keep (see [`self::chat`]).
    chat: self::chat::ChatCaches,
    /// Page templates named by bindings (see [`crate::confluence::templates`]).
    templates: crate::confluence::templates::Templates,
    /// People's emails (see [`self::emails`]).
    emails: PersonEmails,
}

impl Enricher {
    /// An enricher reading from `client`, caching for `ttl`.
    pub fn new(source: &str, client: ConfluenceClient, ttl: Duration) -> Enricher {
        Enricher {
            source: source.to_owned(),
            users: TtlCache::new(ttl),
            containers: TtlCache::new(ttl),
            // The account a connection uses does not change while it exists.
            service_key: TtlCache::new(Duration::from_secs(3600)),
            usernames: TtlCache::new(ttl),
            viewers: Viewers::new(source, client.clone(), ttl),
            watchers_logged: AtomicBool::new(false),
            watchers_refused: TtlCache::new(ttl),
            chat: self::chat::ChatCaches::new(ttl),
            templates: crate::confluence::templates::Templates::new(ttl),
            emails: PersonEmails::new(source, client.clone(), ttl),
            client,
        }
    }

    /// Counts people left out for want of an email (and emails found) in
    /// `metrics` as well as in [`Enricher::people_report`].
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Enricher {
        self.emails.set_metrics(metrics);
        self
    }

    /// Asks `linked` for a person's email before Confluence (see
    /// [`self::emails::LinkedEmails`]): the seam through which people's own
    /// links reach `event.people`.
    pub fn with_linked_emails(mut self, linked: Arc<dyn LinkedEmails>) -> Enricher {
        self.emails.set_linked(linked);
        self
    }

    /// How this connection's email lookups went: emails found by each way,
    /// people left out for each reason, and the latest people left out (for
    /// `doctor` and the console).
    pub fn people_report(&self) -> PeopleReport {
        self.emails.tally().report()
    }

    /// `person`'s email as [`self::emails`] finds it (link, mobile profile,
    /// admin user list), cached, not counted in the tally. `Err` when the
    /// event must wait (links unreadable, rate limited).
    pub async fn email_of(&self, person: &Person) -> Result<EmailLookup, EnrichError> {
        self.emails.resolve(person).await
    }

    /// Contract 0.2.0: fills in what the host reads from Confluence for a
    /// chat event: the Confluence user the Slack user is (`who`: their own
    /// link, else their email), the pages behind shared links, a slash
    /// command's search results; all of it only what that user may view
    /// (see [`self::chat`]).
    pub async fn resolve_chat(
        &self,
        who: self::chat::ChatIdentity<'_>,
        chat: &mut ChatEvent,
    ) -> Result<(), EnrichError> {
        self::chat::resolve(self, who, chat).await
    }

    /// The storage body of page template `name` in `space`, cached for the
    /// TTL (see [`crate::confluence::templates`]).
    pub async fn template(
        &self,
        space: &str,
        name: &str,
    ) -> Result<String, crate::confluence::templates::TemplateError> {
        self.templates.body(&self.client, space, name).await
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
            tracing::info!(source = %self.source, id, "content not found (purged or restricted): enriched = false, restricted");
            // Purged, or hidden from Pagehook's account: Confluence does not
            // say which, so it cannot tell whether viewing is restricted.
            if let Some(content) = event.content.as_mut() {
                content.restricted = true;
            }
            return Ok(event);
        };
        let mut content = content_from_rest(&json);
        let mut page_json = None;
        if matches!(content.content_type.as_str(), "comment" | "attachment") {
            // Visible to whoever may view its page: the page decides.
            let own = own_restriction(&json) == Some(true);
            let page_id = json.pointer("/container/id").and_then(id_of);
            let page = match page_id {
                Some(page_id) => self.container(page_id).await?,
                None => None,
            };
            content.restricted = match &page {
                Some(page) => own || self.restricted(page).await?,
                None => true, // the page cannot be read: cannot tell
            };
            if content.content_type == "comment"
                && let Some(page) = &page
            {
                let summary = content_from_rest(page);
                content.ancestors = summary.ancestors;
                content.ancestors.push(Ancestor {
                    id: summary.id,
                    title: summary.title,
                });
            }
            page_json = page;
        } else {
            content.restricted = self.restricted(&json).await?;
        }
        let concerns_people = is_page_blog_or_comment(event.kind)
            && matches!(
                content.content_type.as_str(),
                "page" | "blogpost" | "comment"
            );
        event.content = Some(content);
        if concerns_people {
            let page = if page_json.is_some() {
                page_json.as_ref()
            } else if json.get("type").and_then(Value::as_str) == Some("comment") {
                None
            } else {
                Some(&json)
            };
            let actor = event.actor.as_ref().map(|a| a.key.clone());
            event.people = self.people(actor.as_deref(), &json, page).await?;
        }
        event.enriched = true;
        Ok(event)
    }

    /// Whether content read with [`crate::confluence::client::CONTENT_EXPAND`] may be
    /// viewed only by some: restrictions of its own or of any ancestor, or it
    /// cannot be told.
    async fn restricted(&self, json: &Value) -> Result<bool, EnrichError> {
        if own_restriction(json) != Some(false) {
            return Ok(true);
        }
        let Some(ancestors) = json.get("ancestors").and_then(Value::as_array) else {
            return Ok(true); // asked for and missing: cannot tell
        };
        let mut unexpanded = Vec::new();
        for ancestor in ancestors {
            let Some(id) = ancestor.get("id").and_then(id_of) else {
                return Ok(true);
            };
            match own_restriction(ancestor) {
                Some(true) => return Ok(true),
                Some(false) => {}
                None => unexpanded.push(id),
            }
        }
        for id in unexpanded {
            if self.ancestor_restricted(id).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// An ancestor's own view restrictions, read by themselves (cached, the
    /// same cache [`Viewers`] reads): true when it has some or its answer
    /// cannot tell.
    async fn ancestor_restricted(&self, id: u64) -> Result<bool, EnrichError> {
        let restricted = !matches!(self.viewers.ancestor(id).await?, Some(None));
        if restricted {
            tracing::info!(source = %self.source, ancestor = id, "ancestor's view restrictions: restricted or cannot tell");
        }
        Ok(restricted)
    }

    /// The people the content (`json`, read with
    /// [`crate::confluence::client::CONTENT_EXPAND`]) concerns, judged by `page` (the
    /// content itself, or a comment's page; `None`: it could not be read,
    /// so nobody is listed). See [`crate::confluence::people`].
    async fn people(
        &self,
        actor: Option<&str>,
        json: &Value,
        page: Option<&Value>,
    ) -> Result<Vec<ConcernedPerson>, EnrichError> {
        let Some(page) = page else {
            return Ok(Vec::new());
        };
        let mut candidates: Vec<(Person, Concern)> = Vec::new();
        if let Some(key) = people::creator_key(json) {
            candidates.push((self.user(&key).await?, Concern::Creator));
        }
        let storage = json
            .pointer("/body/storage/value")
            .and_then(Value::as_str)
            .unwrap_or("");
        for mention in people::mentions(storage) {
            let person = match mention {
                Mention::Key(key) => Some(self.user(&key).await?),
                Mention::Username(name) => self.user_named(&name).await?,
            };
            if let Some(person) = person {
                candidates.push((person, Concern::Mentioned));
            }
        }
        if let Some(page_id) = page.get("id").and_then(id_of)
            && self.watchers_refused.get(&()).is_none()
        {
            match self.client.watchers(page_id).await {
                Ok(Some(watchers)) => {
                    for w in watchers {
                        if let Some(key) = w.get("userKey").and_then(Value::as_str) {
                            candidates.push((self.user(key).await?, Concern::Watcher));
                        }
                    }
                }
                Ok(None) | Err(ClientError::Rejected { .. }) | Err(ClientError::BadAnswer(_)) => {
                    self.watchers_refused.put((), ());
                    if !self.watchers_logged.swap(true, Ordering::Relaxed) {
                        tracing::warn!(source = %self.source, "Confluence would not list watchers (GET /rest/api/content/{{id}}/watchers needs a Confluence or space administrator, Data Center 9): people are listed without watchers");
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        candidates.retain(|(p, _)| people::listable(p, actor, ""));
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let service = self.service_key().await?;
        candidates.retain(|(p, _)| p.key != service);
        let mut gathered = Gathered::default();
        let restrictions = self.viewers.restrictions(page).await?;
        let space = str_at(page, "/space/key").unwrap_or("");
        // Per person, once per event: may they view it, and their email
        // (looked for only when they may; counted when none is found).
        let mut judged: HashMap<String, Option<String>> = HashMap::new();
        for (mut person, concern) in candidates {
            let email = match judged.get(&person.key) {
                Some(email) => email.clone(),
                None => {
                    let access = self
                        .viewers
                        .access(&person, space, restrictions.as_ref())
                        .await?;
                    let email = match access {
                        Access::Allowed => match self.emails.resolve_and_count(&person).await? {
                            EmailLookup::Found { email, .. } => Some(email),
                            EmailLookup::Unresolved(_) => None,
                        },
                        // Left out silently: they may not view it.
                        Access::Denied => None,
                        // Left out, and counted: nobody could tell.
                        Access::NotKnown => {
                            self.emails
                                .count_left_out(&person, Unresolved::ViewNotKnown);
                            None
                        }
                    };
                    judged.insert(person.key.clone(), email.clone());
                    email
                }
            };
            if let Some(email) = email {
                person.email = Some(email);
                gathered.add(person, concern);
            }
        }
        Ok(gathered.into_people())
    }

    /// The view checks this source answers.
    fn viewers(&self) -> &Viewers {
        &self.viewers
    }

    /// The REST client of this source.
    fn client(&self) -> &ConfluenceClient {
        &self.client
    }

    /// The source's name.
    fn source(&self) -> &str {
        &self.source
    }

    /// A user by username (cached); `None` when Confluence does not know them.
    async fn user_named(&self, username: &str) -> Result<Option<Person>, EnrichError> {
        if let Some(u) = self.usernames.get(&username.to_owned()) {
            return Ok(u);
        }
        let u = self.client.user_by_username(username).await?;
        self.usernames.put(username.to_owned(), u.clone());
        Ok(u)
    }

    /// A user by key (cached); unknown users come back with the key alone.
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
        people: vec![],
        chat: None,
    }
}

/// Page, blog and comment events: the ones `event.people` is for.
fn is_page_blog_or_comment(kind: EventKind) -> bool {
    let name = kind.name();
    (name.starts_with("page-") || name.starts_with("blog-") || name.starts_with("comment-"))
        && !name.ends_with("-removed")
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

/// The view restrictions set on one content object (or an ancestor in its
/// `ancestors`) itself, as expanded by `restrictions.read.restrictions.user`
/// and `.group`: `Some(true)` when any user or group is listed, `Some(false)`
/// when both lists are there and empty, `None` when the answer does not tell.
pub fn own_restriction(v: &Value) -> Option<bool> {
    let listed = |k: &str| {
        v.pointer(&format!("/restrictions/read/restrictions/{k}/results"))
            .and_then(Value::as_array)
    };
    match (listed("user"), listed("group")) {
        (Some(users), Some(groups)) => Some(!users.is_empty() || !groups.is_empty()),
        (Some(some), None) | (None, Some(some)) if !some.is_empty() => Some(true),
        _ => None,
    }
}

/// Maps a REST content object (expanded as [`crate::confluence::client::CONTENT_EXPAND`]) to [`Content`].
///
/// `restricted` reflects the content's own view restrictions only (true when
/// the answer does not tell); [`Enricher`] adds the inherited ones.
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
    // Its own restrictions only; enrichment adds inherited ones.
    let restricted = own_restriction(v).unwrap_or(true);
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
        assert!(
            c.restricted,
            "the fixture was read without the restrictions expansion: cannot tell"
        );
        assert_eq!(c.container_id, None);
    }

    #[test]
    fn own_restrictions_are_read_strictly() {
        let with = |user: Value, group: Value| serde_json::json!({"restrictions": {"read": {"restrictions": {"user": user, "group": group}}}});
        let none = serde_json::json!({"results": []});
        let ops = serde_json::json!({"results": [{"type": "group", "name": "ops"}]});
        assert_eq!(
            own_restriction(&with(none.clone(), none.clone())),
            Some(false)
        );
        assert_eq!(
            own_restriction(&with(none.clone(), ops.clone())),
            Some(true)
        );
        assert_eq!(own_restriction(&with(ops.clone(), Value::Null)), Some(true));
        assert_eq!(own_restriction(&with(none.clone(), Value::Null)), None);
        assert_eq!(own_restriction(&serde_json::json!({"id": "1"})), None);
        assert!(content_from_rest(&serde_json::json!({"type": "page"})).restricted);
    }

    mod against_the_fake {
        use pagehook_fakes::{
            ConfluenceAuth as FakeAuth, ContentBuilder, FakeConfluence, Fault, endpoints,
        };

        use super::super::*;
        use crate::confluence::client::{ClientOptions, ConfluenceAuth};
        use crate::secret::Secret;
        use crate::source::webhook::{self, Payload};

        const PAT: &str = "unit-test-pat";
        const PAGE: u64 = 700;
        const PARENT: u64 = 600;
        const GRANDPARENT: u64 = 500;

        fn fake() -> FakeConfluence {
            let fake = FakeConfluence::start(FakeAuth::Bearer(PAT.into()));
            fake.put_content(
                GRANDPARENT,
                ContentBuilder::page(GRANDPARENT, "ENG", "Engineering Home")
                    .ancestors(&[])
                    .build(),
            );
            fake.put_content(
                PARENT,
                ContentBuilder::page(PARENT, "ENG", "Releases")
                    .ancestors(&[(GRANDPARENT, "Engineering Home")])
                    .build(),
            );
            fake.put_content(
                PAGE,
                ContentBuilder::page(PAGE, "ENG", "Q3 launch checklist")
                    .ancestors(&[(GRANDPARENT, "Engineering Home"), (PARENT, "Releases")])
                    .build(),
            );
            fake
        }

        fn enricher(fake: &FakeConfluence, ttl: Duration) -> Enricher {
            let client = ConfluenceClient::new(
                &fake.base_url(),
                ConfluenceAuth::Bearer(Secret::new(PAT)),
                ClientOptions {
                    attempts: 1,
                    ..ClientOptions::default()
                },
            );
            Enricher::new("prod", client, ttl)
        }

        fn hook(body: &str) -> Webhook {
            match webhook::parse(body.as_bytes()).unwrap() {
                Payload::Event(hook) => *hook,
                Payload::Test => unreachable!(),
            }
        }

        fn page_hook(id: u64) -> Webhook {
            hook(&format!(
                r#"{{"timestamp":1,"event":"page_updated","page":{{"id":{id}}}}}"#
            ))
        }

        async fn restricted(e: &Enricher, hook: &Webhook) -> bool {
            let event = e.enrich("e1", hook).await.unwrap();
            assert!(event.enriched);
            event.content.unwrap().restricted
        }

        #[tokio::test]
        async fn a_restricted_parent_or_grandparent_restricts_in_one_request() {
            let fake = fake();
            let e = enricher(&fake, Duration::from_secs(60));
            assert!(!restricted(&e, &page_hook(PAGE)).await);
            fake.set_read_restrictions(PARENT, &[], &["release-managers"]);
            assert!(restricted(&e, &page_hook(PAGE)).await, "parent");
            fake.set_read_restrictions(PARENT, &[], &[]);
            fake.set_read_restrictions(GRANDPARENT, &["ada"], &[]);
            assert!(restricted(&e, &page_hook(PAGE)).await, "grandparent");
            assert!(restricted(&e, &page_hook(GRANDPARENT)).await, "its own");
            // Inherited restrictions came with the content: one read per event.
            assert_eq!(fake.calls(endpoints::GET_CONTENT), 4);
            // Lifted: seen on the next event (the content is always read fresh).
            fake.set_read_restrictions(GRANDPARENT, &[], &[]);
            assert!(!restricted(&e, &page_hook(PAGE)).await);
        }

        #[tokio::test]
        async fn without_nested_expansion_each_ancestor_is_read_and_cached() {
            let fake = fake();
            fake.set_nested_ancestor_expansion(false);
            let e = enricher(&fake, Duration::from_secs(60));
            assert!(!restricted(&e, &page_hook(PAGE)).await);
            assert_eq!(
                fake.calls(endpoints::GET_CONTENT),
                3,
                "the page, then both ancestors"
            );
            assert!(!restricted(&e, &page_hook(PAGE)).await);
            assert_eq!(fake.calls(endpoints::GET_CONTENT), 4, "ancestors cached");

            fake.set_read_restrictions(PARENT, &[], &["release-managers"]);
            let fresh = enricher(&fake, Duration::from_millis(1));
            assert!(restricted(&fresh, &page_hook(PAGE)).await);
        }

        #[tokio::test]
        async fn an_ancestor_that_cannot_be_read_restricts() {
            let fake = fake();
            fake.remove_content(PARENT); // purged while the page still names it
            let e = enricher(&fake, Duration::from_secs(60));
            assert!(restricted(&e, &page_hook(PAGE)).await, "404");
        }

        #[tokio::test]
        async fn a_forbidden_ancestor_restricts_and_a_failing_one_defers() {
            let fake = fake();
            fake.set_nested_ancestor_expansion(false);
            let e = enricher(&fake, Duration::from_secs(60));
            // The event's first request reads the page, the second an ancestor.
            fake.inject(endpoints::GET_CONTENT, Fault::Delay(Duration::ZERO));
            fake.inject(endpoints::GET_CONTENT, Fault::Status(403));
            assert!(restricted(&e, &page_hook(PAGE)).await, "403");

            let fake2 = self::fake();
            fake2.set_nested_ancestor_expansion(false);
            let e = enricher(&fake2, Duration::from_secs(60));
            fake2.inject(endpoints::GET_CONTENT, Fault::Delay(Duration::ZERO));
            fake2.inject(endpoints::GET_CONTENT, Fault::Status(503));
            let err = e.enrich("e1", &page_hook(PAGE)).await.unwrap_err();
            assert!(matches!(err, EnrichError::Transient { .. }), "{err:?}");
        }

        #[tokio::test]
        async fn a_comment_takes_its_pages_inherited_restriction() {
            let fake = fake();
            fake.put_content(
                701,
                ContentBuilder::comment(701, PAGE, "Q3 launch checklist", "ENG").build(),
            );
            let comment = hook(r#"{"timestamp":1,"event":"comment_created","comment":{"id":701}}"#);
            let e = enricher(&fake, Duration::from_millis(1));
            let event = e.enrich("e1", &comment).await.unwrap();
            let content = event.content.unwrap();
            assert!(!content.restricted);
            assert_eq!(
                content.ancestors.iter().map(|a| a.id).collect::<Vec<_>>(),
                vec![GRANDPARENT, PARENT, PAGE]
            );
            fake.set_read_restrictions(GRANDPARENT, &[], &["leads"]);
            tokio::time::sleep(Duration::from_millis(5)).await; // past the container cache
            assert!(restricted(&e, &comment).await);
            // The page cannot be read: cannot tell.
            fake.set_read_restrictions(GRANDPARENT, &[], &[]);
            fake.remove_content(PAGE);
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(restricted(&e, &comment).await);
        }

        #[tokio::test]
        async fn unreadable_content_is_the_webhook_alone_and_restricted() {
            let fake = fake();
            fake.set_read_restrictions(PARENT, &[], &["leads"]);
            let e = enricher(&fake, Duration::from_secs(60));
            let rich = hook(
                r#"{"timestamp":1,"event":"page_removed","page":{"id":999,"title":"From the webhook","spaceKey":"ENG"}}"#,
            );
            let event = e.enrich("e1", &rich).await.unwrap();
            assert!(!event.enriched);
            let content = event.content.unwrap();
            assert!(content.restricted, "purged or hidden: cannot tell");
            assert_eq!(content.title, "From the webhook");
            assert!(content.ancestors.is_empty() && content.labels.is_empty());
            assert_eq!(
                fake.calls(endpoints::GET_CONTENT),
                1,
                "nothing read from elsewhere"
            );
        }
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
