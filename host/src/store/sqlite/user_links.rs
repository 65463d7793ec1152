//! Chat-user links and their one-time tokens on SQLite (see
//! `store/user_links.rs`). Every state change of a token is one statement
//! or one transaction that checks the token is still live, so a token is
//! used once even when two browsers confirm at the same moment.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::user_links::{LinkMethod, LinkToken, NewLinkToken, UserLink, VerifiedPerson};
use crate::store::{StoreResult, now_ms};

const LINK_COLUMNS: &str = "slack_connection, slack_team, slack_user, confluence_connection, \
     confluence_user_key, confluence_username, confluence_display_name, method, linked_at";

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(UserLink, String)> {
    Ok((
        UserLink {
            slack_connection: r.get(0)?,
            slack_team: r.get(1)?,
            slack_user: r.get(2)?,
            confluence_connection: r.get(3)?,
            confluence_user_key: r.get(4)?,
            confluence_username: r.get(5)?,
            confluence_display_name: r.get(6)?,
            method: LinkMethod::SelfLink,
            linked_at: r.get(8)?,
        },
        r.get(7)?,
    ))
}

fn decode((mut link, method): (UserLink, String)) -> StoreResult<UserLink> {
    link.method = LinkMethod::parse(&method)?;
    Ok(link)
}

const TOKEN_COLUMNS: &str = "slack_connection, slack_team, slack_user, confluence_connection, \
     created_at, expires_at, user_key, username, display_name, used_at";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LinkToken> {
    let user_key: Option<String> = r.get(6)?;
    Ok(LinkToken {
        slack_connection: r.get(0)?,
        slack_team: r.get(1)?,
        slack_user: r.get(2)?,
        confluence_connection: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        verified: match user_key {
            Some(user_key) => Some(VerifiedPerson {
                user_key,
                username: r.get(7)?,
                display_name: r.get(8)?,
            }),
            None => None,
        },
        used_at: r.get(9)?,
    })
}

impl SqliteStore {
    /// Stores a link request; false when its request was answered already.
    pub fn create_link_token(&self, t: &NewLinkToken) -> StoreResult<bool> {
        let n = self.with(|conn| {
            conn.execute(
                "INSERT INTO link_tokens (token_hash, request_key, slack_connection, slack_team, slack_user,
                   confluence_connection, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (request_key) DO NOTHING",
                params![
                    t.token_hash,
                    t.request_key,
                    t.slack_connection,
                    t.slack_team,
                    t.slack_user,
                    t.confluence_connection,
                    t.created_at,
                    t.expires_at
                ],
            )
        })?;
        Ok(n > 0)
    }

    /// The link request with this token hash, used and expired ones too.
    pub fn link_token(&self, token_hash: &str) -> StoreResult<Option<LinkToken>> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM link_tokens WHERE token_hash = ?1"),
                [token_hash],
                token_row,
            )
            .optional()
        })
    }

    /// Records who signed in with a live token and the hash of the secret
    /// their confirmation must carry; false when the token is not live.
    pub fn verify_link_token(
        &self,
        token_hash: &str,
        person: &VerifiedPerson,
        confirm_hash: &str,
    ) -> StoreResult<bool> {
        let n = self.with(|conn| {
            conn.execute(
                "UPDATE link_tokens SET user_key = ?2, username = ?3, display_name = ?4, confirm_hash = ?5
                 WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?6",
                params![
                    token_hash,
                    person.user_key,
                    person.username,
                    person.display_name,
                    confirm_hash,
                    now_ms()
                ],
            )
        })?;
        Ok(n > 0)
    }

    /// Uses a live, verified token whose confirmation secret hashes to
    /// `confirm_hash`, and makes (or replaces) its link, in one
    /// transaction; `None` when the token is not live or not so confirmed.
    pub fn complete_link(
        &self,
        token_hash: &str,
        confirm_hash: &str,
    ) -> StoreResult<Option<UserLink>> {
        let now = now_ms();
        self.with(|conn| {
            let tx = conn.transaction()?;
            let used = tx.execute(
                "UPDATE link_tokens SET used_at = ?3
                 WHERE token_hash = ?1 AND confirm_hash = ?2 AND user_key IS NOT NULL
                   AND used_at IS NULL AND expires_at > ?3",
                params![token_hash, confirm_hash, now],
            )?;
            if used == 0 {
                return Ok(None);
            }
            let token = tx.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM link_tokens WHERE token_hash = ?1"),
                [token_hash],
                token_row,
            )?;
            let Some(person) = token.verified else {
                return Ok(None);
            };
            let link = UserLink {
                slack_connection: token.slack_connection,
                slack_team: token.slack_team,
                slack_user: token.slack_user,
                confluence_connection: token.confluence_connection,
                confluence_user_key: person.user_key,
                confluence_username: person.username,
                confluence_display_name: person.display_name,
                method: LinkMethod::SelfLink,
                linked_at: now,
            };
            // OR REPLACE also removes the Confluence user's earlier link in
            // this Slack connection (the unique index): linking again replaces.
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO user_links ({LINK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    link.slack_connection,
                    link.slack_team,
                    link.slack_user,
                    link.confluence_connection,
                    link.confluence_user_key,
                    link.confluence_username,
                    link.confluence_display_name,
                    link.method.as_str(),
                    link.linked_at
                ],
            )?;
            tx.commit()?;
            Ok(Some(link))
        })
    }

    /// Every link, by Slack connection and user.
    pub fn user_links(&self) -> StoreResult<Vec<UserLink>> {
        let rows = self.with(|conn| {
            conn.prepare(&format!(
                "SELECT {LINK_COLUMNS} FROM user_links ORDER BY slack_connection, slack_user"
            ))?
            .query_map([], link_row)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(decode).collect()
    }

    /// The link of one Slack user of a Slack connection.
    pub fn user_link(
        &self,
        slack_connection: &str,
        slack_user: &str,
    ) -> StoreResult<Option<UserLink>> {
        self.with(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {LINK_COLUMNS} FROM user_links WHERE slack_connection = ?1 AND slack_user = ?2"
            ))?
            .query_row([slack_connection, slack_user], link_row)
            .optional()
        })?
        .map(decode)
        .transpose()
    }

    /// The Slack users (one per Slack connection) linked to a Confluence
    /// user, newest link first.
    pub fn slack_links_of(
        &self,
        confluence_connection: &str,
        user_key: &str,
    ) -> StoreResult<Vec<UserLink>> {
        let rows = self.with(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {LINK_COLUMNS} FROM user_links
                 WHERE confluence_connection = ?1 AND confluence_user_key = ?2
                 ORDER BY linked_at DESC, slack_connection"
            ))?
            .query_map([confluence_connection, user_key], link_row)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter().map(decode).collect()
    }

    /// Removes one Slack user's link; the link it was, if there was one.
    pub fn remove_user_link(
        &self,
        slack_connection: &str,
        slack_user: &str,
    ) -> StoreResult<Option<UserLink>> {
        self.with(|conn| {
            conn.query_row(
                &format!(
                    "DELETE FROM user_links WHERE slack_connection = ?1 AND slack_user = ?2 RETURNING {LINK_COLUMNS}"
                ),
                [slack_connection, slack_user],
                link_row,
            )
            .optional()
        })?
        .map(decode)
        .transpose()
    }

    /// Forgets link requests that expired before `before` (ms); how many.
    pub fn purge_link_tokens(&self, before: i64) -> StoreResult<usize> {
        self.with(|conn| conn.execute("DELETE FROM link_tokens WHERE expires_at < ?1", [before]))
    }
}
