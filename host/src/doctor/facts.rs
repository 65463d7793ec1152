//! What [`super::probes`] measured about one connection, as plain data for
//! [`super::rules`] to judge.
//!
//! Every field is an answer Confluence or Slack gave (or the reason no
//! question was asked), never a conclusion drawn from a version number:
//! the version is kept to *name* what is missing, not to decide it.

use std::collections::{BTreeMap, BTreeSet};

/// What one request for a capability came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Confluence answered it (2xx).
    Yes,
    /// Confluence refused it: 403 (or 401), and for space permissions also
    /// the 500 Confluence is reported to give callers who do not administer
    /// the space (CONFSERVER-99908).
    Refused(u16),
    /// 404 where the thing asked about exists: this Confluence has no such
    /// resource (an older version, or a disabled plugin).
    Absent,
    /// No usable answer: network, timeout, a server error, an unreadable body.
    Failed(String),
    /// Not asked, and why.
    Untried(String),
}

impl Reach {
    /// A 2xx answer.
    pub fn is_yes(&self) -> bool {
        matches!(self, Reach::Yes)
    }
}

/// A Data Center version as the instance reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// As reported (`9.2.3`).
    pub version: String,
    /// The build number, when reported.
    pub build: Option<u64>,
    /// The resource that said so.
    pub from: &'static str,
}

impl ServerVersion {
    /// Major and minor, when `version` starts with them.
    pub fn number(&self) -> Option<(u32, u32)> {
        let mut parts = self.version.split(['.', '-']);
        let major = parts.next()?.trim().parse().ok()?;
        let minor = parts
            .next()
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or(0);
        Some((major, minor))
    }

    /// The column of the admin guide's matrix this version falls in:
    /// `8.5 LTS`, `9.2 LTS`, `9.4+` (9.4 and later 9.x), `10.x`, or the
    /// version's own major.minor for anything else.
    pub fn line(&self) -> String {
        match self.number() {
            Some((8, 5)) => "8.5 LTS".into(),
            Some((9, 2)) => "9.2 LTS".into(),
            Some((9, m)) if m >= 4 => "9.4+".into(),
            Some((10, _)) => "10.x".into(),
            Some((major, minor)) => format!("{major}.{minor}"),
            None => self.version.clone(),
        }
    }

    /// Whether this version is older than `major.minor` (`false` when it
    /// cannot be read).
    pub fn before(&self, major: u32, minor: u32) -> bool {
        self.number().is_some_and(|v| v < (major, minor))
    }
}

/// How the connection authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// No token: a webhook-only connection.
    None,
    /// A personal access token.
    PersonalAccessToken,
    /// A user name and password (Basic).
    Password,
}

/// Why the service account could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountFailure {
    /// The connection has no token.
    NoToken,
    /// The token or password cannot be read (env or file missing).
    SecretUnreadable(String),
    /// Confluence refused the credentials (401, or 403 to `/user/current`).
    Refused(u16),
    /// Confluence could not be reached or answered oddly.
    Unreachable(String),
}

/// The service account, as `GET /rest/api/user/current` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its user name.
    pub username: String,
    /// Its user key.
    pub key: String,
    /// Its display name.
    pub display_name: Option<String>,
}

/// Whether the account is a Confluence administrator, and how that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// It is: how Pagehook knows.
    Yes(String),
    /// It is not: how Pagehook knows.
    No(String),
    /// Cannot be told: why.
    Unknown(String),
}

impl Admin {
    /// Known to be an administrator.
    pub fn is_yes(&self) -> bool {
        matches!(self, Admin::Yes(_))
    }

    /// Known not to be one.
    pub fn is_no(&self) -> bool {
        matches!(self, Admin::No(_))
    }
}

/// What `GET /rest/api/space/{key}/permissions` answered across spaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpacePermissions {
    /// Spaces whose permissions were listed (the account administers them,
    /// or is a Confluence administrator).
    pub listed: BTreeSet<String>,
    /// Spaces that refused, with the status (403, or 500: CONFSERVER-99908).
    pub refused: BTreeMap<String, u16>,
    /// The resource answered 404 for a space the account may view: this
    /// Confluence has no space permissions REST (before 9.1).
    pub absent: bool,
    /// Failures other than refusals, by space.
    pub failed: BTreeMap<String, String>,
    /// Spaces asked about, and how many there were to ask about.
    pub asked: usize,
    /// How many spaces the account may view.
    pub of: usize,
}

/// The page templates of one space, as
/// `GET /rest/experimental/template/page?spaceKey=` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceTemplates {
    /// Whether the resource answered.
    pub reach: Reach,
    /// The templates' names (when it answered).
    pub names: Vec<String>,
}

/// The account's personal access token, as `GET /rest/pat/latest/tokens`
/// lists it (see `source::client::token_in_use`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    /// Whether the list answered.
    pub reach: Reach,
    /// The token taken to be in use, when one expires.
    pub name: Option<String>,
    /// When it expires (ms since the epoch); `None`: never, or not known.
    pub expires_at: Option<i64>,
}

/// What a user profile showed of the user's email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailSeen {
    /// A usable address.
    Shown,
    /// Something that is not an address (`ada at example dot com`): the
    /// instance masks emails.
    Masked,
    /// No email at all.
    Missing,
}

/// What user profiles (`GET /rest/mobile/1.0/profile/{username}`) show
/// this account: the only Data Center resource that gives a user's email,
/// and it obeys the instance's email-visibility setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailFacts {
    /// Whether the profile resource answered for the account's own user.
    pub reach: Reach,
    /// What the account's own profile showed.
    pub own: Option<EmailSeen>,
    /// What another user's profile (someone who edited a page the account
    /// may view) showed; `None` when there was nobody else to ask.
    pub others: Option<EmailSeen>,
    /// The other user asked about.
    pub other_user: Option<String>,
}

/// Everything measured about one Confluence connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfluenceFacts {
    /// The connection's name.
    pub connection: String,
    /// Its base URL.
    pub url: String,
    /// How it authenticates.
    pub credentials: Credentials,
    /// The service account, or why it could not be read (then nothing
    /// else was asked).
    pub account: Result<Account, AccountFailure>,
    /// The version, when the instance said.
    pub version: Option<ServerVersion>,
    /// Whether the account is a Confluence administrator.
    pub admin: Admin,
    /// The global spaces the account may view (`GET /rest/api/space`).
    pub spaces: Result<Vec<String>, String>,
    /// A page the account may view, for the per-content probes: its id
    /// and space.
    pub sample: Option<(u64, String)>,
    /// A content's own and its ancestors' view restrictions came back
    /// (the expansion enrichment asks for).
    pub restrictions: Reach,
    /// `GET /rest/api/content/{id}/watchers` on the sample page.
    pub watchers: Reach,
    /// Space permissions across the spaces the account may view.
    pub space_permissions: SpacePermissions,
    /// User profiles and emails.
    pub emails: EmailFacts,
    /// `GET /rest/api/admin/users/list/active` (9.4+, Confluence admins).
    pub admin_list: Reach,
    /// The admin user list carried `email` for at least one user.
    pub admin_list_emails: Option<bool>,
    /// Page templates, by space key.
    pub templates: BTreeMap<String, SpaceTemplates>,
    /// CQL search with the expansion chat search uses.
    pub search: Reach,
    /// The search answered 404 with the nested ancestors' restrictions
    /// expansion and 200 without it.
    pub search_nested_404: bool,
    /// The personal access token's expiry (`None` for passwords).
    pub token: Option<TokenFacts>,
}

/// Why Slack did not say who the token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackFailure {
    /// The token cannot be read (env or file missing), or there is none.
    SecretUnreadable(String),
    /// Slack refused it: its error code (`invalid_auth`, ...).
    Refused(String),
    /// Slack could not be reached or answered oddly.
    Unreachable(String),
}

/// The workspace a Slack token belongs to (`auth.test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackWorkspace {
    /// The workspace's name.
    pub team: String,
    /// Its id.
    pub team_id: String,
    /// The bot user's name.
    pub bot_user: String,
}

/// Everything measured about one Slack connection.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackFacts {
    /// The connection's name.
    pub connection: String,
    /// The Web API base URL.
    pub url: String,
    /// `auth.test`'s answer.
    pub auth: Result<SlackWorkspace, SlackFailure>,
    /// The token's scopes (`x-oauth-scopes`); `None` when Slack did not say.
    pub scopes: Option<Vec<String>>,
    /// A signing secret is configured (Slack's requests can be verified).
    pub signing_secret: bool,
    /// Socket Mode: `None` without an app-level token; else whether
    /// `apps.connections.open` accepted it (why not, in words).
    pub socket_mode: Option<Result<(), String>>,
    /// When the last request from Slack was stored (among the newest
    /// events), if any.
    pub last_request_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: &str) -> ServerVersion {
        ServerVersion {
            version: version.into(),
            build: None,
            from: "test",
        }
    }

    #[test]
    fn versions_fall_in_the_matrix_columns() {
        assert_eq!(v("8.5.16").line(), "8.5 LTS");
        assert_eq!(v("9.2.3").line(), "9.2 LTS");
        assert_eq!(v("9.4.0").line(), "9.4+");
        assert_eq!(v("9.5.2").line(), "9.4+");
        assert_eq!(v("10.0.1").line(), "10.x");
        assert_eq!(v("9.1.0").line(), "9.1");
        assert_eq!(v("nonsense").line(), "nonsense");
        assert!(v("8.5.16").before(9, 1));
        assert!(!v("9.1.0").before(9, 1));
        assert!(!v("10.0").before(9, 4));
        assert!(
            !v("nonsense").before(9, 4),
            "an unreadable version is never taken as old"
        );
        assert_eq!(v("9.2.3-m01").number(), Some((9, 2)));
    }
}
