//! What the host reads from Confluence for a chat event (contract 0.2.0):
//! who the Slack user is in Confluence, the pages behind the links they
//! shared, and a slash command's search results. Plugins never reach the
//! network, so this is the only way they learn about Confluence pages from
//! chat.
//!
//! What it must never do: show a person a page that [`crate::confluence::viewers`] does
//! not say they may view. Everything is read with the service account's
//! credentials and filtered per person; when the Slack user cannot be
//! matched to a Confluence user, links get no pages and searches find
//! nothing.
//!
//! # Who the Slack user is
//!
//! First their own link ([`ChatIdentity::Linked`]): a Slack user who ran
//! `/confluence link` and signed in to Confluence is that Confluence user,
//! read back with `GET /rest/api/user?key=`. A link beats an email match,
//! and it is the only way that works where Confluence hides emails.
//!
//! Otherwise their Slack email ([`ChatIdentity::Email`]). Data Center
//! documents no REST resource that finds a user by email (the Cloud-only
//! `/rest/api/search/user` does not exist there, and Data Center's CQL has
//! no email field). What it documents is
//! `GET /rest/api/admin/users/list/active` (Data Center 9.4 and later,
//! Confluence administrators only), the active users, each with `email`
//! "depending on the type of user" and, where Confluence gives them, the
//! `userKey` or `username` that names them. Pagehook reads that list page
//! by page, keeps an email → user index for the TTL, and reads the matching
//! user by key (or username). An entry naming neither is matched to nobody
//! (display names are not unique), nor is a masked address; an email shared
//! by several users links nobody. Where Confluence refuses the list (403)
//! or lacks it (404), nobody is matched by email (logged once per source).
//!
//! # Links
//!
//! A link counts when it starts with the source's base URL (scheme, host,
//! port and context path) and has one of Confluence's page URL forms:
//! `/pages/viewpage.action?pageId=N`, `/spaces/KEY/pages/N/Title`,
//! `/spaces/KEY/blog/YYYY/MM/DD/N/Title`, `/display/KEY/Title` (read with
//! `GET /rest/api/content?type=page&spaceKey=&title=`) and the short
//! `/x/<code>` links (the page id, 8 bytes little-endian, base64 with `-`
//! for `/` and `_` for `+`, trailing `A`s and `=` dropped; decoded locally).
//! Only current pages and blog posts are summarised.
//!
//! # Search
//!
//! `search <words>` (case-insensitive) runs
//! `GET /rest/api/content/search?cql=text ~ "<words>" and type in (page, blogpost)`.
//! The words are reduced to letters, digits and spaces before they go into
//! the quoted CQL string (then `\` and `"` are escaped all the same), so a
//! person's words can neither end the string nor use Lucene's operators.
//! Up to 50 results are read, filtered to what the person may view, and the
//! first 10 kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use super::{EnrichError, Enricher, excerpt};
use crate::confluence::client::{ClientError, person, timestamp_ms};
use crate::confluence::viewers::Access;
use crate::model::{ChatEvent, PageSummary, Person};
use crate::ttl_cache::TtlCache;

/// Most search results shown.
pub const SEARCH_RESULTS: usize = 10;
/// Results read from Confluence before filtering.
const SEARCH_READ: usize = 50;
/// Longest page excerpt, in characters.
const SUMMARY_EXCERPT_CHARS: usize = 300;

/// Who a chat event's Slack user is, as Pagehook knows before it asks
/// Confluence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatIdentity<'a> {
    /// They linked themselves to this Confluence user (its user key).
    Linked(&'a str),
    /// Not linked: their Slack email, when Slack shows it.
    Email(Option<&'a str>),
}

/// A Confluence user as the admin user list names them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listed {
    Key(String),
    Username(String),
}

/// What chat lookups cache per source.
pub struct ChatCaches {
    /// Email (lower case) → user; `None`: Confluence would not list users.
    emails: TtlCache<(), Option<Arc<HashMap<String, Listed>>>>,
    warned: AtomicBool,
}

impl ChatCaches {
    pub(super) fn new(ttl: Duration) -> ChatCaches {
        ChatCaches {
            emails: TtlCache::new(ttl),
            warned: AtomicBool::new(false),
        }
    }
}

/// Fills in `chat` for the Slack user who is `who` (see the module doc).
pub(super) async fn resolve(
    e: &Enricher,
    who: ChatIdentity<'_>,
    chat: &mut ChatEvent,
) -> Result<(), EnrichError> {
    let linked = match who {
        ChatIdentity::Linked(key) => Some(e.user(key).await?),
        ChatIdentity::Email(email) => match email.map(str::trim).filter(|m| !m.is_empty()) {
            Some(email) => user_by_email(e, email).await?,
            None => None,
        },
    };
    match chat {
        ChatEvent::LinkShared { user, links, .. } => {
            user.confluence = linked.clone();
            for link in links.iter_mut() {
                link.page = match &linked {
                    Some(person) => page_for_link(e, person, &link.url).await?,
                    None => None,
                };
            }
        }
        ChatEvent::SlashCommand {
            user,
            text,
            results,
            ..
        } => {
            user.confluence = linked.clone();
            results.clear();
            if let (Some(person), Some(words)) = (&linked, search_words(text)) {
                *results = search(e, person, &words).await?;
            }
        }
        ChatEvent::TeamsMessage {
            user,
            text,
            results,
            ..
        } => {
            user.confluence = linked.clone();
            results.clear();
            if let (Some(person), Some(words)) = (&linked, search_words(text)) {
                *results = search(e, person, &words).await?;
            }
        }
        ChatEvent::TeamsCardAction {
            user, value, page, ..
        } => {
            user.confluence = linked.clone();
            *page = None;
            let id = value.get("page-id").and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            });
            if let (Some(person), Some(id)) = (&linked, id) {
                *page = match e.client().content(id).await {
                    Ok(Some(json)) => summary_if_allowed(e, person, &json).await?.map(Box::new),
                    Ok(None)
                    | Err(ClientError::Rejected { .. })
                    | Err(ClientError::BadAnswer(_)) => None,
                    Err(err) => return Err(err.into()),
                };
            }
        }
    }
    Ok(())
}

/// The Confluence user whose email is `email`, if exactly one is.
async fn user_by_email(e: &Enricher, email: &str) -> Result<Option<Person>, EnrichError> {
    let index = match e.chat.emails.get(&()) {
        Some(index) => index,
        None => {
            let index = match e.client().active_users().await {
                Ok(Some(users)) => Some(Arc::new(email_index(&users))),
                Ok(None) | Err(ClientError::Rejected { .. }) | Err(ClientError::BadAnswer(_)) => {
                    None
                }
                Err(err) => return Err(err.into()),
            };
            if index.is_none() && !e.chat.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(source = %e.source(), "Confluence would not list its users (GET /rest/api/admin/users/list/active needs a Confluence administrator, Data Center 9.4+): chat users are not matched by email (they can link themselves with /confluence link)");
            }
            e.chat.emails.put((), index.clone());
            index
        }
    };
    let Some(listed) = index.as_ref().and_then(|i| i.get(&email.to_lowercase())) else {
        return Ok(None);
    };
    match listed {
        Listed::Key(key) => Ok(Some(e.user(key).await?)),
        Listed::Username(name) => e.user_named(name).await,
    }
}

/// Email (lower case) → the user the admin list names by key (or else by
/// username), leaving out emails several users share, masked addresses,
/// and entries that name nobody.
fn email_index(users: &[Value]) -> HashMap<String, Listed> {
    let mut index: HashMap<String, Option<Listed>> = HashMap::new();
    for u in users {
        let text = |k: &str| {
            u.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let Some(email) = text("email").and_then(super::emails::usable_email) else {
            continue;
        };
        let who = match (text("userKey"), text("username")) {
            (Some(key), _) => Listed::Key(key.to_owned()),
            (None, Some(name)) => Listed::Username(name.to_owned()),
            (None, None) => continue,
        };
        index
            .entry(email.to_lowercase())
            .and_modify(|k| {
                if k.as_ref() != Some(&who) {
                    *k = None;
                }
            })
            .or_insert_with(|| Some(who));
    }
    index
        .into_iter()
        .filter_map(|(m, k)| Some((m, k?)))
        .collect()
}

/// What a link into Confluence names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    /// Content by id.
    Id(u64),
    /// A page by space key and title (`/display/KEY/Title`).
    Title { space: String, title: String },
}

/// What `url` points to in the Confluence at `base`, if it is a page link.
pub fn parse_link(base: &str, url: &str) -> Option<LinkTarget> {
    let base = reqwest::Url::parse(base).ok()?;
    let url = reqwest::Url::parse(url.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.scheme() != base.scheme()
        || url.host_str().map(str::to_lowercase) != base.host_str().map(str::to_lowercase)
        || url.port_or_known_default() != base.port_or_known_default()
    {
        return None;
    }
    let context = base.path().trim_end_matches('/');
    let path = url.path().strip_prefix(context)?;
    if !(path.starts_with('/')) {
        return None;
    }
    let segs: Vec<&str> = path[1..].split('/').collect();
    match segs.as_slice() {
        ["pages", "viewpage.action"] => url
            .query_pairs()
            .find(|(k, _)| k == "pageId")
            .and_then(|(_, v)| v.parse().ok())
            .map(LinkTarget::Id),
        ["spaces", _, "pages", id, ..] | ["spaces", _, "blog", _, _, _, id, ..] => {
            id.parse().ok().map(LinkTarget::Id)
        }
        ["display", space, title] if !title.is_empty() => Some(LinkTarget::Title {
            space: percent_decode(space)?,
            title: percent_decode(&title.replace('+', " "))?,
        }),
        ["x", code] => tiny_id(code).map(LinkTarget::Id),
        _ => None,
    }
    .filter(|t| !matches!(t, LinkTarget::Id(0)))
}

/// The content id behind a `/x/<code>` short link.
pub fn tiny_id(code: &str) -> Option<u64> {
    if code.is_empty() || code.len() > 11 {
        return None;
    }
    let mut b64: String = code
        .chars()
        .map(|c| match c {
            '-' => '/',
            '_' => '+',
            c => c,
        })
        .collect();
    while !b64.len().is_multiple_of(4) {
        b64.push('A');
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    if bytes.len() > 8 && bytes[8..].iter().any(|b| *b != 0) {
        return None;
    }
    let mut le = [0u8; 8];
    for (slot, b) in le.iter_mut().zip(bytes) {
        *slot = b;
    }
    Some(u64::from_le_bytes(le)).filter(|id| *id > 0)
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The summary of the page behind `url` when `person` may view it.
async fn page_for_link(
    e: &Enricher,
    person: &Person,
    url: &str,
) -> Result<Option<PageSummary>, EnrichError> {
    let Some(target) = parse_link(e.client().base_url(), url) else {
        return Ok(None);
    };
    let id = match target {
        LinkTarget::Id(id) => id,
        LinkTarget::Title { space, title } => match e.client().find_page(&space, &title).await {
            Ok(Some(id)) => id,
            Ok(None) | Err(ClientError::Rejected { .. }) | Err(ClientError::BadAnswer(_)) => {
                return Ok(None);
            }
            Err(err) => return Err(err.into()),
        },
    };
    let json = match e.client().content(id).await {
        Ok(Some(json)) => json,
        Ok(None) | Err(ClientError::Rejected { .. }) | Err(ClientError::BadAnswer(_)) => {
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    summary_if_allowed(e, person, &json).await
}

/// `json` (read with [`crate::confluence::client::CONTENT_EXPAND`] or
/// [`crate::confluence::client::SEARCH_EXPAND`]) as a summary, when
/// it is a current page or blog post `person` may view.
async fn summary_if_allowed(
    e: &Enricher,
    person: &Person,
    json: &Value,
) -> Result<Option<PageSummary>, EnrichError> {
    let kind = json.get("type").and_then(Value::as_str).unwrap_or("");
    let status = json
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("current");
    if !matches!(kind, "page" | "blogpost") || status != "current" {
        return Ok(None);
    }
    let restrictions = e.viewers().restrictions(json).await?;
    let space = json
        .pointer("/space/key")
        .and_then(Value::as_str)
        .unwrap_or("");
    if e.viewers()
        .access(person, space, restrictions.as_ref())
        .await?
        != Access::Allowed
    {
        return Ok(None);
    }
    let content = super::content_from_rest(json);
    Ok(Some(PageSummary {
        id: content.id,
        content_type: content.content_type,
        title: content.title,
        space_key: content.space_key,
        space_name: content.space_name,
        url: content.url,
        excerpt: json
            .pointer("/body/view/value")
            .and_then(Value::as_str)
            .map(|html| excerpt(html, SUMMARY_EXCERPT_CHARS))
            .filter(|x| !x.is_empty()),
        last_editor: json
            .pointer("/version/by")
            .filter(|v| v.is_object())
            .map(person_of)
            .filter(|p| !p.key.is_empty()),
        last_edited_at_ms: json
            .pointer("/version/when")
            .and_then(timestamp_ms)
            .and_then(|ms| u64::try_from(ms).ok()),
        restricted: restrictions.is_some_and(|r| !r.is_empty()),
    }))
}

fn person_of(v: &Value) -> Person {
    person(v, None)
}

/// The words of a `search <words>` command, if `text` is one.
pub fn search_words(text: &str) -> Option<String> {
    let text = text.trim();
    let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    (first.eq_ignore_ascii_case("search") && !rest.trim().is_empty())
        .then(|| rest.trim().to_owned())
}

/// The CQL for a person's search words (see the module doc); `None` when
/// nothing searchable is left.
pub fn search_cql(words: &str) -> Option<String> {
    let cleaned: String = words
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .to_lowercase();
    let terms: Vec<&str> = cleaned.split_whitespace().collect();
    if terms.is_empty() {
        return None;
    }
    let quoted = terms.join(" ").replace('\\', "\\\\").replace('"', "\\\"");
    Some(format!("text ~ \"{quoted}\" and type in (page, blogpost)"))
}

async fn search(
    e: &Enricher,
    person: &Person,
    words: &str,
) -> Result<Vec<PageSummary>, EnrichError> {
    let Some(cql) = search_cql(words) else {
        return Ok(Vec::new());
    };
    let found = match e.client().search(&cql, SEARCH_READ).await {
        Ok(found) => found,
        Err(ClientError::Rejected { .. }) | Err(ClientError::BadAnswer(_)) => Vec::new(),
        Err(err) => return Err(err.into()),
    };
    let mut results = Vec::new();
    for json in &found {
        if let Some(summary) = summary_if_allowed(e, person, json).await? {
            results.push(summary);
            if results.len() == SEARCH_RESULTS {
                break;
            }
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(id: u64) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(id.to_le_bytes());
        b64.replace('/', "-")
            .replace('+', "_")
            .trim_end_matches(['=', 'A'])
            .to_owned()
    }

    #[test]
    fn short_links_decode_to_their_page_id() {
        assert_eq!(tiny(2818051), "AwAr");
        for id in [1, 65547, 2818051, 98_765_432_101, u64::from(u32::MAX) + 7] {
            assert_eq!(tiny_id(&tiny(id)), Some(id), "{id}");
        }
        assert_eq!(tiny_id(""), None);
        assert_eq!(tiny_id("!!"), None);
        assert_eq!(tiny_id("AAAAAAAAAAAAAAAA"), None, "too long");
    }

    #[test]
    fn links_into_this_confluence_and_only_those() {
        let base = "https://wiki.example.com/confluence";
        let id = |u: &str| parse_link(base, u);
        assert_eq!(
            id("https://wiki.example.com/confluence/pages/viewpage.action?pageId=42"),
            Some(LinkTarget::Id(42))
        );
        assert_eq!(
            id("https://WIKI.example.com/confluence/spaces/ENG/pages/2818051/Q3+launch"),
            Some(LinkTarget::Id(2818051))
        );
        assert_eq!(
            id("https://wiki.example.com/confluence/spaces/ENG/blog/2026/01/12/77/News#x"),
            Some(LinkTarget::Id(77))
        );
        assert_eq!(
            id("https://wiki.example.com/confluence/display/ENG/Q3+launch+%C3%BC"),
            Some(LinkTarget::Title {
                space: "ENG".into(),
                title: "Q3 launch ü".into()
            })
        );
        assert_eq!(
            id("https://wiki.example.com/confluence/x/AwAr"),
            Some(LinkTarget::Id(2818051))
        );
        for other in [
            "https://evil.example.com/confluence/pages/viewpage.action?pageId=42",
            "http://wiki.example.com/confluence/pages/viewpage.action?pageId=42",
            "https://wiki.example.com:8443/confluence/pages/viewpage.action?pageId=42",
            "https://wiki.example.com/other/pages/viewpage.action?pageId=42",
            "https://wiki.example.com/confluencex/pages/viewpage.action?pageId=42",
            "https://wiki.example.com/confluence/pages/viewpage.action?pageId=x",
            "https://wiki.example.com/confluence/spaces/ENG/overview",
            "https://wiki.example.com/confluence/display/ENG/%ZZ",
            "not a url",
        ] {
            assert_eq!(id(other), None, "{other}");
        }
        assert_eq!(
            parse_link("http://127.0.0.1:9000", "http://127.0.0.1:9000/x/AwAr"),
            Some(LinkTarget::Id(2818051))
        );
    }

    #[test]
    fn search_words_cannot_leave_the_cql_string() {
        assert_eq!(
            search_words("Search launch plan"),
            Some("launch plan".into())
        );
        assert_eq!(search_words("  SEARCH\tq3  "), Some("q3".into()));
        assert_eq!(search_words("search"), None);
        assert_eq!(search_words("searching x"), None);
        assert_eq!(search_words("help"), None);
        assert_eq!(
            search_cql("launch plan").as_deref(),
            Some(r#"text ~ "launch plan" and type in (page, blogpost)"#)
        );
        let hostile = r#"x" or space = "HR" or text ~ "\" AND title:* ~2 (a) OR"#;
        let cql = search_cql(hostile).unwrap();
        assert_eq!(
            cql,
            r#"text ~ "x or space hr or text and title 2 a or" and type in (page, blogpost)"#
        );
        assert_eq!(cql.matches('"').count(), 2, "{cql}");
        assert_eq!(search_cql(r#""\*?"#), None);
        assert_eq!(
            search_cql("Größe über").as_deref(),
            Some(r#"text ~ "größe über" and type in (page, blogpost)"#)
        );
    }

    #[test]
    fn an_email_shared_by_two_users_links_nobody() {
        let users = vec![
            serde_json::json!({"userKey": "k1", "email": "Ada@Example.com"}),
            serde_json::json!({"userKey": "k2", "email": "shared@example.com"}),
            serde_json::json!({"userKey": "k3", "email": "shared@example.com"}),
            serde_json::json!({"userKey": "k4"}),
        ];
        let index = email_index(&users);
        assert_eq!(
            index.get("ada@example.com"),
            Some(&Listed::Key("k1".into()))
        );
        assert!(!index.contains_key("shared@example.com"));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn the_admin_list_names_users_by_key_or_username_and_never_by_a_masked_email() {
        let users = vec![
            // What Data Center documents: display name and type, email for some.
            serde_json::json!({"type": "known", "displayName": "Ada", "email": "ada@example.com"}),
            serde_json::json!({"type": "known", "displayName": "Bob", "username": "bob", "email": "bob@example.com"}),
            serde_json::json!({"type": "known", "userKey": "k-eve", "email": "eve at example dot com"}),
        ];
        let index = email_index(&users);
        assert_eq!(
            index.get("bob@example.com"),
            Some(&Listed::Username("bob".into()))
        );
        assert!(!index.contains_key("ada@example.com"), "names nobody");
        assert_eq!(index.len(), 1, "a masked address is no email");
    }
}
