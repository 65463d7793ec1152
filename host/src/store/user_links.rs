//! Links between chat users and Confluence users, and the one-time tokens
//! that make them (self-linking).
//!
//! A [`UserLink`] says that a Slack user of one Slack connection is a
//! Confluence user of one Confluence connection, because that person proved
//! both: they typed `/confluence link` in Slack (Slack signed the request)
//! and then signed in to Confluence with their own credentials on the
//! console page the one-time link led to. A link beats an email match: chat
//! lookups and personal notifications read it first.
//!
//! A [`LinkToken`] is the state of one such link request: issued (the Slack
//! side, with the token's SHA-256 as its key), verified (who signed in to
//! Confluence, and the SHA-256 of the confirmation secret the browser that
//! signed in holds), used (the link was made), or expired. What the store
//! must never hold: a token, a confirmation secret or a credential itself,
//! only hashes of the first two; and it must never make a link from a token
//! that is used, expired, or confirmed without the secret of its sign-in.
//!
//! Stored with the same SQL on both backends. Every state change of a
//! token is one statement, or one transaction that checks the token is
//! still live, so a token is used once even when two browsers (or two
//! replicas) confirm it at the same moment.

use serde::Serialize;

use super::sql::{Column, FromRow, Param, Row};
use super::{Store, StoreError, StoreResult, now_ms};

/// How a link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LinkMethod {
    /// The person ran `/confluence link` and signed in to Confluence.
    SelfLink,
}

impl LinkMethod {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMethod::SelfLink => "self-link",
        }
    }

    pub(crate) fn parse(s: &str) -> StoreResult<LinkMethod> {
        match s {
            "self-link" => Ok(LinkMethod::SelfLink),
            other => Err(StoreError::Corrupt {
                what: "link method",
                message: other.to_owned(),
            }),
        }
    }
}

/// A Slack user known to be a Confluence user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserLink {
    /// The Slack connection (workspace) the Slack user belongs to.
    #[schema(example = "acme")]
    pub slack_connection: String,
    /// Slack's id of that workspace (`team_id`).
    #[schema(example = "T0ACME0001")]
    pub slack_team: String,
    /// Slack's id of the user.
    #[schema(example = "U0ADA00001")]
    pub slack_user: String,
    /// The Confluence connection the Confluence user belongs to.
    #[schema(example = "wiki")]
    pub confluence_connection: String,
    /// Confluence's key of the user (`userKey`; stable across renames).
    pub confluence_user_key: String,
    /// Their username when the link was made.
    pub confluence_username: Option<String>,
    /// Their display name when the link was made.
    pub confluence_display_name: Option<String>,
    /// How the link was made.
    pub method: LinkMethod,
    /// When (ms since the epoch).
    pub linked_at: i64,
}

impl UserLink {
    /// The Confluence user as shown to people: `Ada Lovelace (ada)`.
    pub fn confluence_label(&self) -> String {
        match (&self.confluence_display_name, &self.confluence_username) {
            (Some(d), Some(u)) if d != u => format!("{d} ({u})"),
            (Some(d), _) => d.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => self.confluence_user_key.clone(),
        }
    }
}

/// A link request to store (the Slack side of self-linking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLinkToken {
    /// SHA-256 of the token, hex; the token itself is only in the link.
    pub token_hash: String,
    /// What answers a request once: the Slack connection and the command's
    /// `trigger_id`. A request seen again (a replay) gets no second token.
    pub request_key: String,
    pub slack_connection: String,
    pub slack_team: String,
    pub slack_user: String,
    /// The Confluence connection the person signs in to.
    pub confluence_connection: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Who signed in to Confluence with a link token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPerson {
    pub user_key: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
}

/// A stored link request, whatever its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkToken {
    pub slack_connection: String,
    pub slack_team: String,
    pub slack_user: String,
    pub confluence_connection: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Who signed in with it, once someone has.
    pub verified: Option<VerifiedPerson>,
    /// When it made its link; a used token makes no other.
    pub used_at: Option<i64>,
}

impl LinkToken {
    /// Whether it may still be signed in with and confirmed at `now` (ms).
    pub fn is_live(&self, now: i64) -> bool {
        self.used_at.is_none() && self.expires_at > now
    }
}

impl Column for LinkMethod {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<LinkMethod>> {
        row.text(column)?.map(|s| LinkMethod::parse(&s)).transpose()
    }
}

impl FromRow for UserLink {
    const COLUMNS: &'static str = "slack_connection, slack_team, slack_user, confluence_connection, \
         confluence_user_key, confluence_username, confluence_display_name, method, linked_at";

    fn from_row(r: &dyn Row) -> StoreResult<UserLink> {
        Ok(UserLink {
            slack_connection: r.get("slack_connection")?,
            slack_team: r.get("slack_team")?,
            slack_user: r.get("slack_user")?,
            confluence_connection: r.get("confluence_connection")?,
            confluence_user_key: r.get("confluence_user_key")?,
            confluence_username: r.get("confluence_username")?,
            confluence_display_name: r.get("confluence_display_name")?,
            method: r.get("method")?,
            linked_at: r.get("linked_at")?,
        })
    }
}

impl FromRow for LinkToken {
    const COLUMNS: &'static str = "slack_connection, slack_team, slack_user, confluence_connection, \
         created_at, expires_at, user_key, username, display_name, used_at";

    fn from_row(r: &dyn Row) -> StoreResult<LinkToken> {
        let verified = match r.get("user_key")? {
            Some(user_key) => Some(VerifiedPerson {
                user_key,
                username: r.get("username")?,
                display_name: r.get("display_name")?,
            }),
            None => None,
        };
        Ok(LinkToken {
            slack_connection: r.get("slack_connection")?,
            slack_team: r.get("slack_team")?,
            slack_user: r.get("slack_user")?,
            confluence_connection: r.get("confluence_connection")?,
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
            verified,
            used_at: r.get("used_at")?,
        })
    }
}

impl LinkToken {
    /// The link a token signed in with makes, at `now`.
    fn link(&self, now: i64) -> Option<UserLink> {
        let person = self.verified.as_ref()?;
        Some(UserLink {
            slack_connection: self.slack_connection.clone(),
            slack_team: self.slack_team.clone(),
            slack_user: self.slack_user.clone(),
            confluence_connection: self.confluence_connection.clone(),
            confluence_user_key: person.user_key.clone(),
            confluence_username: person.username.clone(),
            confluence_display_name: person.display_name.clone(),
            method: LinkMethod::SelfLink,
            linked_at: now,
        })
    }
}

impl UserLink {
    /// The statements that store this link, replacing the Slack user's
    /// earlier link and the Confluence user's earlier link in the same
    /// Slack connection.
    fn writes(&self) -> Vec<(&'static str, Vec<Param>)> {
        vec![
            (
                "DELETE FROM user_links WHERE confluence_connection = ?1 AND confluence_user_key = ?2
                   AND slack_connection = ?3 AND slack_user <> ?4",
                vec![
                    (&self.confluence_connection).into(),
                    (&self.confluence_user_key).into(),
                    (&self.slack_connection).into(),
                    (&self.slack_user).into(),
                ],
            ),
            (
                "INSERT INTO user_links (slack_connection, slack_team, slack_user, confluence_connection,
                   confluence_user_key, confluence_username, confluence_display_name, method, linked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (slack_connection, slack_user) DO UPDATE SET
                   slack_team = excluded.slack_team, confluence_connection = excluded.confluence_connection,
                   confluence_user_key = excluded.confluence_user_key,
                   confluence_username = excluded.confluence_username,
                   confluence_display_name = excluded.confluence_display_name,
                   method = excluded.method, linked_at = excluded.linked_at",
                vec![
                    (&self.slack_connection).into(),
                    (&self.slack_team).into(),
                    (&self.slack_user).into(),
                    (&self.confluence_connection).into(),
                    (&self.confluence_user_key).into(),
                    (&self.confluence_username).into(),
                    (&self.confluence_display_name).into(),
                    self.method.as_str().into(),
                    self.linked_at.into(),
                ],
            ),
        ]
    }
}

impl Store {
    /// Stores a link request; false when its request was answered already.
    pub async fn create_link_token(&self, t: &NewLinkToken) -> StoreResult<bool> {
        let n = self
            .execute(
                "INSERT INTO link_tokens (token_hash, request_key, slack_connection, slack_team, slack_user,
                   confluence_connection, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (request_key) DO NOTHING",
                vec![
                    (&t.token_hash).into(),
                    (&t.request_key).into(),
                    (&t.slack_connection).into(),
                    (&t.slack_team).into(),
                    (&t.slack_user).into(),
                    (&t.confluence_connection).into(),
                    t.created_at.into(),
                    t.expires_at.into(),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    /// The link request with this token hash, used and expired ones too.
    pub async fn link_token(&self, token_hash: &str) -> StoreResult<Option<LinkToken>> {
        self.select_opt(
            "FROM link_tokens WHERE token_hash = ?1",
            vec![token_hash.into()],
        )
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
        let n = self
            .execute(
                "UPDATE link_tokens SET user_key = ?2, username = ?3, display_name = ?4, confirm_hash = ?5
                 WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?6",
                vec![
                    token_hash.into(),
                    (&person.user_key).into(),
                    (&person.username).into(),
                    (&person.display_name).into(),
                    confirm_hash.into(),
                    now_ms().into(),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    /// Uses a live token signed in with and confirmed with the secret whose
    /// hash is `confirm_hash`, making (or replacing) its link in the same
    /// transaction; `None` when the token is used, expired or not so
    /// confirmed. Using it is one conditional `UPDATE`, so of two
    /// confirmations at once exactly one makes a link.
    pub async fn complete_link(
        &self,
        token_hash: &str,
        confirm_hash: &str,
    ) -> StoreResult<Option<UserLink>> {
        let now = now_ms();
        let used = self
            .query_then(
                &format!(
                    "UPDATE link_tokens SET used_at = ?3
                     WHERE token_hash = ?1 AND confirm_hash = ?2 AND user_key IS NOT NULL
                       AND used_at IS NULL AND expires_at > ?3
                     RETURNING {}",
                    LinkToken::COLUMNS
                ),
                vec![token_hash.into(), confirm_hash.into(), now.into()],
                LinkToken::from_row,
                move |used| {
                    used.first()
                        .and_then(|token| token.link(now))
                        .map_or_else(Vec::new, |link| link.writes())
                },
            )
            .await?;
        Ok(used.first().and_then(|token| token.link(now)))
    }

    /// Every link, by Slack connection and user.
    pub async fn user_links(&self) -> StoreResult<Vec<UserLink>> {
        self.select(
            "FROM user_links ORDER BY slack_connection, slack_user",
            vec![],
        )
        .await
    }

    /// The link of one Slack user of a Slack connection.
    pub async fn user_link(
        &self,
        slack_connection: &str,
        slack_user: &str,
    ) -> StoreResult<Option<UserLink>> {
        self.select_opt(
            "FROM user_links WHERE slack_connection = ?1 AND slack_user = ?2",
            vec![slack_connection.into(), slack_user.into()],
        )
        .await
    }

    /// The Slack users (one per Slack connection) linked to a Confluence
    /// user of a Confluence connection, newest link first.
    pub async fn slack_links_of(
        &self,
        confluence_connection: &str,
        user_key: &str,
    ) -> StoreResult<Vec<UserLink>> {
        self.select(
            "FROM user_links WHERE confluence_connection = ?1 AND confluence_user_key = ?2
             ORDER BY linked_at DESC, slack_connection",
            vec![confluence_connection.into(), user_key.into()],
        )
        .await
    }

    /// Removes one Slack user's link; the link it was, if there was one.
    pub async fn remove_user_link(
        &self,
        slack_connection: &str,
        slack_user: &str,
    ) -> StoreResult<Option<UserLink>> {
        self.query_opt(
            &format!(
                "DELETE FROM user_links WHERE slack_connection = ?1 AND slack_user = ?2 RETURNING {}",
                UserLink::COLUMNS
            ),
            vec![slack_connection.into(), slack_user.into()],
            UserLink::from_row,
        )
        .await
    }

    /// Forgets link requests that expired before `before` (ms); how many.
    pub async fn purge_link_tokens(&self, before: i64) -> StoreResult<usize> {
        let n = self
            .execute(
                "DELETE FROM link_tokens WHERE expires_at < ?1",
                vec![before.into()],
            )
            .await?;
        Ok(n as usize)
    }
}
