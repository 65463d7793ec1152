//! Self-linking: a Slack user proves which Confluence user they are, the way
//! Atlassian's own chat apps do it, and the only way that works where
//! Confluence hides emails.
//!
//! 1. In Slack, `/confluence link` is answered by the host itself
//!    (`server::slack_link`), only to that person, with a one-time link to
//!    the console ([`issue`]): a random 256-bit token, of which the store
//!    keeps only the SHA-256, usable once, for [`TOKEN_TTL`].
//! 2. The person opens it, signs in to the Slack connection's Confluence
//!    with their own credentials (password, or a personal access token where
//!    the site signs in through SSO), sees which Slack user of which
//!    workspace will be linked to which Confluence user, and confirms
//!    (`server::console::link`). The link is stored; the credentials are not.
//! 3. From then on the link beats an email match: chat lookups read it first
//!    (`source::chat`), and personal notifications find the person's Slack
//!    email through it ([`emails`]).
//!
//! `/confluence unlink`, the console's People page, the admin API
//! (`DELETE /api/links/...`) and `pagehook unlink` undo a link ([`remove`]),
//! each with a change-log entry.
//!
//! What it must never do: keep or log a token, a confirmation secret or a
//! credential; make a link from a token that is used, expired, or confirmed
//! by another browser than the one that signed in; or link anyone without
//! their Confluence sign-in.

pub mod emails;

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::ops::changes::{ChangeAction, log_change};
use crate::ops::{AdminError, AdminResult};
use crate::store::{NewLinkToken, Store, StoreResult, UserLink, now_ms};

/// How long a one-time link may be used, from `/confluence link`: long
/// enough to open it and sign in, short enough that a link left in a
/// Slack history is dead by the time anyone else reads it.
pub const TOKEN_TTL: Duration = Duration::from_secs(10 * 60);

/// How long a used or expired link request is kept, so that opening it
/// again says "used" or "expired" rather than "unknown".
const KEPT_AFTER_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// SHA-256 of a token or confirmation secret, hex: what the store keeps.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Where a link request comes from: a signed `/confluence link` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest<'a> {
    /// The Slack connection the command came in on.
    pub slack_connection: &'a str,
    /// Slack's `team_id`.
    pub slack_team: &'a str,
    /// Slack's `user_id`.
    pub slack_user: &'a str,
    /// The command's `trigger_id`: one command gets one token.
    pub trigger_id: &'a str,
    /// The Confluence connection the person will sign in to.
    pub confluence_connection: &'a str,
}

/// Stores a one-time link request and returns its token (to put in the
/// link, and nowhere else); `None` when this command was answered already
/// (a replayed request gets no second token).
pub async fn issue(store: &Store, req: &LinkRequest<'_>) -> StoreResult<Option<String>> {
    let now = now_ms();
    // A request is a good moment to forget those long gone.
    if let Err(e) = store
        .purge_link_tokens(now - KEPT_AFTER_EXPIRY.as_millis() as i64)
        .await
    {
        tracing::warn!(error = %e, "cannot forget expired link requests");
    }
    let token = crate::server::session::random_token();
    let created = store
        .create_link_token(&NewLinkToken {
            token_hash: secret_hash(&token),
            request_key: format!("{}:{}", req.slack_connection, req.trigger_id),
            slack_connection: req.slack_connection.to_owned(),
            slack_team: req.slack_team.to_owned(),
            slack_user: req.slack_user.to_owned(),
            confluence_connection: req.confluence_connection.to_owned(),
            created_at: now,
            expires_at: now + TOKEN_TTL.as_millis() as i64,
        })
        .await?;
    Ok(created.then_some(token))
}

/// The change log's target for a link: `slack-connection/slack-user`.
pub fn target(link: &UserLink) -> String {
    format!("{}/{}", link.slack_connection, link.slack_user)
}

/// What the change log keeps about a link (names and ids, nothing secret).
pub fn detail(link: &UserLink) -> serde_json::Value {
    serde_json::json!({
        "slack_team": link.slack_team,
        "confluence_connection": link.confluence_connection,
        "confluence_user_key": link.confluence_user_key,
        "confluence_username": link.confluence_username,
        "method": link.method.as_str(),
    })
}

/// Removes the link of Slack user `slack_user` of Slack connection
/// `slack_connection`, recording `actor` in the change log; the link it was.
pub async fn remove(
    store: &Store,
    slack_connection: &str,
    slack_user: &str,
    actor: &str,
) -> AdminResult<UserLink> {
    let Some(link) = store.remove_user_link(slack_connection, slack_user).await? else {
        return Err(AdminError::NotFound(format!(
            "Slack user `{slack_user}` of Slack connection `{slack_connection}` is not linked to a Confluence user (see `pagehook links`)"
        )));
    };
    log_change(
        store,
        actor,
        ChangeAction::LinkRemove,
        &target(&link),
        detail(&link),
    )
    .await;
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_hide_what_they_hash() {
        let token = crate::server::session::random_token();
        let hash = secret_hash(&token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token));
        assert_eq!(hash, secret_hash(&token));
        assert_ne!(hash, secret_hash(&crate::server::session::random_token()));
    }
}
