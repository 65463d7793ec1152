//! Which Confluence spaces a person administers, asked of Confluence with
//! that person's own credentials: the check behind a space admin's console
//! sign-in.
//!
//! Confluence Data Center (9.1 and later) lists a space's permissions only
//! to those who administer it, and each grant names a user (by key) or a
//! group. A person administers a space when a grant of `administer` on it
//! names them or one of their groups. Before 9.1 the resource does not
//! exist: every space the person may view answers 404, and the check says
//! so ([`SpaceAdminCheck::permissions_unlisted`]) rather than "administers
//! no space". What it must never do: keep the credentials (they are used
//! for these requests and dropped), or count a space whose permissions
//! Confluence would not show.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use serde_json::Value;

use super::client::{ClientError, ConfluenceClient, SpaceGrants};
use crate::model::Person;

/// Most spaces asked about at once.
const CONCURRENT: usize = 8;

/// Who signed in, and the keys of the spaces they administer.
#[derive(Debug, Clone, PartialEq)]
pub struct SpaceAdminCheck {
    pub person: Person,
    pub spaces: BTreeSet<String>,
    /// Every space the person may view answered 404 for its permissions:
    /// this Confluence has no space permissions REST (Data Center before
    /// 9.1), so which spaces they administer cannot be told.
    pub permissions_unlisted: bool,
}

/// Asks Confluence, as the person `client` authenticates, who they are and
/// which spaces they administer.
pub async fn check(client: &ConfluenceClient) -> Result<SpaceAdminCheck, ClientError> {
    let person = client.current_user().await?;
    let groups: BTreeSet<String> = match &person.username {
        Some(username) => client.groups(username).await?.into_iter().collect(),
        None => BTreeSet::new(),
    };
    let keys = client.spaces().await?;
    let mut spaces = BTreeSet::new();
    let (mut asked, mut missing) = (0usize, 0usize);
    let mut answers = futures::stream::iter(keys)
        .map(|key| async move {
            let grants = client.space_grants(&key).await;
            (key, grants)
        })
        .buffer_unordered(CONCURRENT);
    while let Some((key, grants)) = answers.next().await {
        asked += 1;
        match grants? {
            SpaceGrants::Listed(grants)
                if grants.iter().any(|g| administers(g, &person.key, &groups)) =>
            {
                spaces.insert(key);
            }
            SpaceGrants::Missing => missing += 1,
            _ => {}
        }
    }
    Ok(SpaceAdminCheck {
        person,
        spaces,
        permissions_unlisted: asked > 0 && missing == asked,
    })
}

/// Whether one permission grant gives `administer` on the space to the
/// user `user_key` or one of `groups`.
fn administers(grant: &Value, user_key: &str, groups: &BTreeSet<String>) -> bool {
    let operation = grant.get("operation");
    let is_admin = operation
        .and_then(|o| o.get("operationKey"))
        .and_then(Value::as_str)
        == Some("administer")
        && operation
            .and_then(|o| o.get("targetType"))
            .and_then(Value::as_str)
            == Some("space");
    if !is_admin {
        return false;
    }
    let subject = grant.get("subject");
    let field = |k: &str| subject.and_then(|s| s.get(k)).and_then(Value::as_str);
    match field("type") {
        Some("user") => field("userKey") == Some(user_key),
        Some("group") => field("name").is_some_and(|g| groups.contains(g)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_an_administer_grant_to_the_user_or_their_group_counts() {
        let groups: BTreeSet<String> = ["eng-leads".to_owned()].into();
        let grant = |op: &str, subject: Value| json!({"operation": {"targetType": "space", "operationKey": op}, "subject": subject, "spaceKey": "ENG"});
        assert!(administers(
            &grant("administer", json!({"type": "user", "userKey": "k1"})),
            "k1",
            &groups
        ));
        assert!(!administers(
            &grant("administer", json!({"type": "user", "userKey": "k2"})),
            "k1",
            &groups
        ));
        assert!(!administers(
            &grant("read", json!({"type": "user", "userKey": "k1"})),
            "k1",
            &groups
        ));
        assert!(administers(
            &grant("administer", json!({"type": "group", "name": "eng-leads"})),
            "k1",
            &groups
        ));
        assert!(!administers(
            &grant("administer", json!({"type": "group", "name": "everyone"})),
            "k1",
            &groups
        ));
        assert!(!administers(
            &grant("administer", json!({"type": "anonymous"})),
            "k1",
            &groups
        ));
    }
}
