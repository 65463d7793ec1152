//! Chat-user links and their one-time tokens on PostgreSQL: the same rows
//! and rules as SQLite's (`sqlite/user_links.rs`). Using a token is one
//! conditional `UPDATE` inside the transaction that writes the link, so of
//! two replicas confirming the same token at once exactly one makes a link.

use tokio_postgres::Row;

use super::{PgResult, PgStore};
use crate::store::user_links::{LinkMethod, LinkToken, NewLinkToken, UserLink, VerifiedPerson};
use crate::store::{StoreResult, now_ms};

const LINK_COLUMNS: &str = "slack_connection, slack_team, slack_user, confluence_connection, \
     confluence_user_key, confluence_username, confluence_display_name, method, linked_at";

fn decode_link(r: &Row) -> PgResult<UserLink> {
    Ok(UserLink {
        slack_connection: r.try_get(0)?,
        slack_team: r.try_get(1)?,
        slack_user: r.try_get(2)?,
        confluence_connection: r.try_get(3)?,
        confluence_user_key: r.try_get(4)?,
        confluence_username: r.try_get(5)?,
        confluence_display_name: r.try_get(6)?,
        method: LinkMethod::parse(r.try_get(7)?)?,
        linked_at: r.try_get(8)?,
    })
}

const TOKEN_COLUMNS: &str = "slack_connection, slack_team, slack_user, confluence_connection, \
     created_at, expires_at, user_key, username, display_name, used_at";

fn decode_token(r: &Row) -> PgResult<LinkToken> {
    let user_key: Option<String> = r.try_get(6)?;
    Ok(LinkToken {
        slack_connection: r.try_get(0)?,
        slack_team: r.try_get(1)?,
        slack_user: r.try_get(2)?,
        confluence_connection: r.try_get(3)?,
        created_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        verified: match user_key {
            Some(user_key) => Some(VerifiedPerson {
                user_key,
                username: r.try_get(7)?,
                display_name: r.try_get(8)?,
            }),
            None => None,
        },
        used_at: r.try_get(9)?,
    })
}

impl PgStore {
    /// Stores a link request; false when its request was answered already.
    pub async fn create_link_token(&self, t: &NewLinkToken) -> StoreResult<bool> {
        self.run(async {
            let n = self
                .client()
                .await?
                .execute(
                    "INSERT INTO link_tokens (token_hash, request_key, slack_connection, slack_team, slack_user,
                       confluence_connection, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (request_key) DO NOTHING",
                    &[
                        &t.token_hash,
                        &t.request_key,
                        &t.slack_connection,
                        &t.slack_team,
                        &t.slack_user,
                        &t.confluence_connection,
                        &t.created_at,
                        &t.expires_at,
                    ],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// The link request with this token hash, used and expired ones too.
    pub async fn link_token(&self, token_hash: &str) -> StoreResult<Option<LinkToken>> {
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    &format!("SELECT {TOKEN_COLUMNS} FROM link_tokens WHERE token_hash = $1"),
                    &[&token_hash],
                )
                .await?;
            row.as_ref().map(decode_token).transpose()
        })
        .await
    }

    /// Records who signed in with a live token and the hash of the secret
    /// their confirmation must carry; false when the token is not live.
    pub async fn verify_link_token(
        &self,
        token_hash: &str,
        person: &VerifiedPerson,
        confirm_hash: &str,
    ) -> StoreResult<bool> {
        self.run(async {
            let n = self
                .client()
                .await?
                .execute(
                    "UPDATE link_tokens SET user_key = $2, username = $3, display_name = $4, confirm_hash = $5
                     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $6",
                    &[
                        &token_hash,
                        &person.user_key,
                        &person.username,
                        &person.display_name,
                        &confirm_hash,
                        &now_ms(),
                    ],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Uses a live, verified token whose confirmation secret hashes to
    /// `confirm_hash`, and makes (or replaces) its link, in one
    /// transaction; `None` when the token is not live or not so confirmed.
    pub async fn complete_link(
        &self,
        token_hash: &str,
        confirm_hash: &str,
    ) -> StoreResult<Option<UserLink>> {
        let now = now_ms();
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let row = tx
                .query_opt(
                    &format!(
                        "UPDATE link_tokens SET used_at = $3
                         WHERE token_hash = $1 AND confirm_hash = $2 AND user_key IS NOT NULL
                           AND used_at IS NULL AND expires_at > $3
                         RETURNING {TOKEN_COLUMNS}"
                    ),
                    &[&token_hash, &confirm_hash, &now],
                )
                .await?;
            let Some(token) = row.as_ref().map(decode_token).transpose()? else {
                return Ok(None);
            };
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
            // Linking again replaces the Confluence user's earlier link in
            // this Slack connection.
            tx.execute(
                "DELETE FROM user_links WHERE confluence_connection = $1 AND confluence_user_key = $2
                   AND slack_connection = $3 AND slack_user <> $4",
                &[
                    &link.confluence_connection,
                    &link.confluence_user_key,
                    &link.slack_connection,
                    &link.slack_user,
                ],
            )
            .await?;
            tx.execute(
                &format!(
                    "INSERT INTO user_links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (slack_connection, slack_user) DO UPDATE SET
                       slack_team = excluded.slack_team, confluence_connection = excluded.confluence_connection,
                       confluence_user_key = excluded.confluence_user_key,
                       confluence_username = excluded.confluence_username,
                       confluence_display_name = excluded.confluence_display_name,
                       method = excluded.method, linked_at = excluded.linked_at"
                ),
                &[
                    &link.slack_connection,
                    &link.slack_team,
                    &link.slack_user,
                    &link.confluence_connection,
                    &link.confluence_user_key,
                    &link.confluence_username,
                    &link.confluence_display_name,
                    &link.method.as_str(),
                    &link.linked_at,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(Some(link))
        })
        .await
    }

    /// Every link, by Slack connection and user.
    pub async fn user_links(&self) -> StoreResult<Vec<UserLink>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(
                    &format!(
                        "SELECT {LINK_COLUMNS} FROM user_links ORDER BY slack_connection, slack_user"
                    ),
                    &[],
                )
                .await?;
            rows.iter().map(decode_link).collect()
        })
        .await
    }

    /// The link of one Slack user of a Slack connection.
    pub async fn user_link(
        &self,
        slack_connection: &str,
        slack_user: &str,
    ) -> StoreResult<Option<UserLink>> {
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    &format!(
                        "SELECT {LINK_COLUMNS} FROM user_links WHERE slack_connection = $1 AND slack_user = $2"
                    ),
                    &[&slack_connection, &slack_user],
                )
                .await?;
            row.as_ref().map(decode_link).transpose()
        })
        .await
    }

    /// The Slack users (one per Slack connection) linked to a Confluence
    /// user, newest link first.
    pub async fn slack_links_of(
        &self,
        confluence_connection: &str,
        user_key: &str,
    ) -> StoreResult<Vec<UserLink>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(
                    &format!(
                        "SELECT {LINK_COLUMNS} FROM user_links
                         WHERE confluence_connection = $1 AND confluence_user_key = $2
                         ORDER BY linked_at DESC, slack_connection"
                    ),
                    &[&confluence_connection, &user_key],
                )
                .await?;
            rows.iter().map(decode_link).collect()
        })
        .await
    }

    /// Removes one Slack user's link; the link it was, if there was one.
    pub async fn remove_user_link(
        &self,
        slack_connection: &str,
        slack_user: &str,
    ) -> StoreResult<Option<UserLink>> {
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    &format!(
                        "DELETE FROM user_links WHERE slack_connection = $1 AND slack_user = $2 RETURNING {LINK_COLUMNS}"
                    ),
                    &[&slack_connection, &slack_user],
                )
                .await?;
            row.as_ref().map(decode_link).transpose()
        })
        .await
    }

    /// Forgets link requests that expired before `before` (ms); how many.
    pub async fn purge_link_tokens(&self, before: i64) -> StoreResult<usize> {
        self.run(async {
            let n = self
                .client()
                .await?
                .execute("DELETE FROM link_tokens WHERE expires_at < $1", &[&before])
                .await?;
            Ok(n as usize)
        })
        .await
    }
}
