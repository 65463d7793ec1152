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

use serde::Serialize;

use super::{StoreError, StoreResult};

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
