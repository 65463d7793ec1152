//! "May Confluence user U view content C?", asked on a person's behalf with
//! the service account's own credentials.
//!
//! Personal notifications and chat answers show a page to one person, so the
//! host must know that this person may view it. Confluence Data Center has
//! no REST resource that answers the question for another user, so Pagehook
//! puts the answer together from what it may read, and answers
//! [`Access::Allowed`] only when every part says yes; anything it cannot
//! read or tell gives [`Access::NotKnown`], and the caller leaves the
//! content out. It must never guess `Allowed`.
//!
//! # The rules
//!
//! A user may view content when
//! 1. they may view its **space**: a space permission `read` (target
//!    `space`) names their user key or one of their groups; and
//! 2. at the content itself and at **every ancestor** that has view
//!    restrictions of its own (Confluence applies a page's view restrictions
//!    to every page below it; its answers list only a content's own, see
//!    enrichment's module doc, `enrich/mod.rs`), the user is listed (by user
//!    key or username) or one of their groups is. A comment or attachment is
//!    judged by its page.
//!
//! # What is read, and the assumption made
//!
//! - Restrictions: the content read with [`super::client::CONTENT_EXPAND`]
//!   carries its own and its ancestors' (`ancestors.restrictions.read...`);
//!   an ancestor that came back unexpanded is read by itself and cached.
//! - Groups: `GET /rest/api/user/memberof?key=` (documented for Data Center
//!   with `username` or `key`), cached per user for the TTL.
//! - The space: `GET /rest/api/space/{spaceKey}/permissions` (Data Center
//!   9.1 and later) is the only documented REST resource that lists who may
//!   view a space, and Confluence answers it only to the space's
//!   administrators (and Confluence administrators). **Assumption:** the
//!   service account is a space administrator of every space whose pages
//!   are shown to people personally (DMs, link previews, search results);
//!   where Confluence refuses the list (403/404, or a version before 9.1),
//!   or answers a server error twice (CONFSERVER-99908: Confluence has been
//!   reported to answer 500, not 403, to callers who do not administer the
//!   space; see [`ConfluenceClient::space_grants`]), the space counts as
//!   not known and nothing from it is shown to anyone. A 500 is therefore
//!   never a reason to defer an event again and again.
//!   Grants to anonymous users are not counted (they do not say who the
//!   person is). The list is cached per space for the TTL.
//!
//! Failures worth retrying (network, 5xx other than the space permissions
//! above, 429) are returned as the [`ClientError`] they are, which
//! enrichment turns into a transient error so the caller defers; refusals
//! and 404s are "not known".

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::client::{ClientError, ConfluenceClient, SpaceGrants};
use crate::model::Person;
use crate::ttl_cache::TtlCache;

/// The answer to "may this person view it?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Confluence's answers show that they may.
    Allowed,
    /// Confluence's answers show that they may not: leave the content out.
    Denied,
    /// Pagehook cannot tell (the restrictions, the space's permissions or
    /// the person's groups could not be read): leave the content out.
    NotKnown,
}

/// Who a view restriction set on one content object lets in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadRestriction {
    /// Listed users: (user key, username), either may be missing.
    pub users: Vec<(Option<String>, Option<String>)>,
    /// Listed group names.
    pub groups: Vec<String>,
}

impl ReadRestriction {
    fn lets_in(&self, user: &Person, groups: &BTreeSet<String>) -> bool {
        self.users.iter().any(|(key, name)| {
            key.as_deref() == Some(user.key.as_str())
                || (name.is_some() && name.as_deref() == user.username.as_deref())
        }) || self.groups.iter().any(|g| groups.contains(g))
    }
}

/// The view restrictions that decide who may view some content: one entry
/// per level (the content, then restricted ancestors) that has its own.
/// Empty: nothing beyond the space.
pub type Restrictions = Vec<ReadRestriction>;

/// A content object's own view restrictions as expanded by
/// `restrictions.read.restrictions.user` and `.group`: `Some(None)` when
/// both lists are there and empty, `Some(Some(..))` when any is listed,
/// `None` when the answer does not tell (a list missing).
pub fn read_restriction(v: &Value) -> Option<Option<ReadRestriction>> {
    let listed = |k: &str| {
        v.pointer(&format!("/restrictions/read/restrictions/{k}/results"))
            .and_then(Value::as_array)
    };
    let (users, groups) = (listed("user")?, listed("group")?);
    if users.is_empty() && groups.is_empty() {
        return Some(None);
    }
    let s = |u: &Value, k: &str| {
        u.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Some(Some(ReadRestriction {
        users: users
            .iter()
            .map(|u| (s(u, "userKey"), s(u, "username")))
            .collect(),
        groups: groups.iter().filter_map(|g| s(g, "name")).collect(),
    }))
}

/// Answers view checks for one Confluence source, caching what it reads.
pub struct Viewers {
    source: String,
    client: ConfluenceClient,
    /// Group names by user key; `None`: Confluence does not know the user.
    groups: TtlCache<String, Option<BTreeSet<String>>>,
    /// A space's permission grants; `None`: Confluence would not list them.
    spaces: TtlCache<String, Option<Vec<Value>>>,
    /// An ancestor's own restriction read by itself; outer `None`: cannot tell.
    own: TtlCache<u64, Option<Option<ReadRestriction>>>,
    warned_space: AtomicBool,
}

impl Viewers {
    /// Checks against `client`'s Confluence, caching for `ttl`.
    pub fn new(source: &str, client: ConfluenceClient, ttl: Duration) -> Viewers {
        Viewers {
            source: source.to_owned(),
            client,
            groups: TtlCache::new(ttl),
            spaces: TtlCache::new(ttl),
            own: TtlCache::new(ttl),
            warned_space: AtomicBool::new(false),
        }
    }

    /// The restrictions that decide who may view a page or blog post read
    /// with [`super::client::CONTENT_EXPAND`] (for a comment or attachment,
    /// pass its page); `None` when they cannot be told.
    pub async fn restrictions(&self, json: &Value) -> Result<Option<Restrictions>, ClientError> {
        let Some(own) = read_restriction(json) else {
            return Ok(None);
        };
        let Some(ancestors) = json.get("ancestors").and_then(Value::as_array) else {
            return Ok(None);
        };
        let mut levels: Restrictions = own.into_iter().collect();
        for ancestor in ancestors {
            let Some(id) = ancestor.get("id").and_then(id_of) else {
                return Ok(None);
            };
            let level = match read_restriction(ancestor) {
                Some(level) => level,
                None => match self.ancestor(id).await? {
                    Some(level) => level,
                    None => return Ok(None),
                },
            };
            levels.extend(level);
        }
        Ok(Some(levels))
    }

    /// Whether `user` may view content in `space` behind `restrictions`
    /// (from [`Viewers::restrictions`]).
    pub async fn access(
        &self,
        user: &Person,
        space: &str,
        restrictions: Option<&Restrictions>,
    ) -> Result<Access, ClientError> {
        let Some(restrictions) = restrictions else {
            return Ok(Access::NotKnown);
        };
        if user.key.is_empty() || space.is_empty() {
            return Ok(Access::NotKnown);
        }
        let Some(grants) = self.space_grants(space).await? else {
            return Ok(Access::NotKnown);
        };
        let reads = |g: &&Value| {
            g.pointer("/operation/operationKey").and_then(Value::as_str) == Some("read")
                && g.pointer("/operation/targetType").and_then(Value::as_str) == Some("space")
        };
        let subject = |g: &Value, k: &str| -> Option<String> {
            g.pointer(&format!("/subject/{k}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let direct = grants.iter().filter(reads).any(|g| {
            subject(g, "type").as_deref() == Some("user")
                && subject(g, "userKey").as_deref() == Some(user.key.as_str())
        });
        let needs_groups = !direct
            || restrictions
                .iter()
                .any(|r| !r.lets_in(user, &BTreeSet::new()));
        let groups = if needs_groups {
            match self.groups(&user.key).await? {
                Some(g) => g,
                None => return Ok(Access::NotKnown),
            }
        } else {
            BTreeSet::new()
        };
        let space_ok = direct
            || grants.iter().filter(reads).any(|g| {
                subject(g, "type").as_deref() == Some("group")
                    && subject(g, "name").is_some_and(|n| groups.contains(&n))
            });
        if space_ok && restrictions.iter().all(|r| r.lets_in(user, &groups)) {
            Ok(Access::Allowed)
        } else {
            Ok(Access::Denied)
        }
    }

    /// The user's groups (cached); `None` when Confluence does not know the
    /// user or would not say.
    async fn groups(&self, key: &str) -> Result<Option<BTreeSet<String>>, ClientError> {
        if let Some(g) = self.groups.get(&key.to_owned()) {
            return Ok(g);
        }
        let groups = match self.client.groups_by_key(key).await {
            Ok(g) => g.map(|g| g.into_iter().collect()),
            Err(ClientError::Unauthorized(403)) | Err(ClientError::Rejected { .. }) => None,
            Err(e) => return Err(e),
        };
        self.groups.put(key.to_owned(), groups.clone());
        Ok(groups)
    }

    async fn space_grants(&self, space: &str) -> Result<Option<Vec<Value>>, ClientError> {
        if let Some(g) = self.spaces.get(&space.to_owned()) {
            return Ok(g);
        }
        let (grants, why) = match self.client.space_grants(space).await {
            Ok(SpaceGrants::Listed(g)) => (Some(g), ""),
            Ok(SpaceGrants::Refused) => (None, "refused (403)"),
            Ok(SpaceGrants::Missing) => (None, "no such space or resource (404)"),
            Ok(SpaceGrants::NotKnown(_)) => (None, "a server error twice (CONFSERVER-99908)"),
            Err(ClientError::BadAnswer(_)) | Err(ClientError::Rejected { .. }) => {
                (None, "an answer that is not a list")
            }
            Err(e) => return Err(e),
        };
        if grants.is_none() && !self.warned_space.swap(true, Ordering::Relaxed) {
            tracing::warn!(source = %self.source, space, answer = why, "Confluence would not list the space's permissions (the service account must administer the space, Confluence 9.1+): its pages are shown to nobody personally");
        }
        self.spaces.put(space.to_owned(), grants.clone());
        Ok(grants)
    }

    /// An ancestor's own view restriction, read by itself (cached); `None`
    /// when it cannot be told (403, 404, an answer missing a list).
    pub(crate) async fn ancestor(
        &self,
        id: u64,
    ) -> Result<Option<Option<ReadRestriction>>, ClientError> {
        if let Some(r) = self.own.get(&id) {
            return Ok(r);
        }
        let r = match self.client.own_restrictions(id).await {
            Ok(Some(v)) => read_restriction(&v),
            Ok(None)
            | Err(ClientError::Unauthorized(403))
            | Err(ClientError::Rejected { .. })
            | Err(ClientError::BadAnswer(_)) => None,
            Err(e) => return Err(e),
        };
        self.own.put(id, r.clone());
        Ok(r)
    }
}

fn id_of(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person(key: &str, username: &str) -> Person {
        Person {
            key: key.into(),
            username: Some(username.into()),
            display_name: None,
            email: None,
        }
    }

    #[test]
    fn a_restriction_lets_in_listed_users_and_groups_only() {
        let v = json!({"restrictions": {"read": {"restrictions": {
            "user": {"results": [{"type": "known", "username": "ada", "userKey": "k-ada"}]},
            "group": {"results": [{"type": "group", "name": "leads"}]}}}}});
        let r = read_restriction(&v).unwrap().unwrap();
        let none = BTreeSet::new();
        assert!(r.lets_in(&person("k-ada", "x"), &none), "by key");
        assert!(r.lets_in(&person("other", "ada"), &none), "by username");
        assert!(!r.lets_in(&person("k-bob", "bob"), &none));
        let leads: BTreeSet<String> = ["leads".to_owned()].into();
        assert!(r.lets_in(&person("k-bob", "bob"), &leads), "by group");
        let no_name = Person {
            username: None,
            ..person("k-bob", "bob")
        };
        let anon = json!({"restrictions": {"read": {"restrictions": {
            "user": {"results": [{"type": "known", "userKey": "k-x"}]}, "group": {"results": []}}}}});
        assert!(
            !read_restriction(&anon)
                .unwrap()
                .unwrap()
                .lets_in(&no_name, &none),
            "a missing username matches no missing username"
        );
    }

    #[test]
    fn an_answer_missing_a_list_cannot_tell() {
        let empty = json!({"restrictions": {"read": {"restrictions": {
            "user": {"results": []}, "group": {"results": []}}}}});
        assert_eq!(read_restriction(&empty), Some(None));
        let half = json!({"restrictions": {"read": {"restrictions": {"user": {"results": []}}}}});
        assert_eq!(read_restriction(&half), None);
        assert_eq!(read_restriction(&json!({"id": "1"})), None);
    }
}
