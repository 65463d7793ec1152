//! `pagehook doctor`: which features work with each Confluence and Slack
//! connection, measured against the instance, before anyone complains.
//!
//! A Data Center site differs in version (8.5 LTS has no watchers, space
//! permissions or admin user list over REST; 9.1 adds space permissions,
//! 9.4 the admin user list), in what the service account may do (plain
//! user, space admin, Confluence admin) and in its email-visibility
//! setting. Which of Pagehook's features work depends on all three, so the
//! doctor asks the instance rather than assuming from a version number:
//!
//! - [`probes`]: the requests, one attempt each, reads only: Confluence's
//!   version, the account and its rights, the spaces it may view, whether
//!   it can read restrictions, watchers, space permissions, user emails
//!   (mobile profiles), the admin user list, templates, search, its token's
//!   expiry; Slack's `auth.test` with the token's scopes. Results are
//!   [`facts`].
//! - [`usage`]: what the bindings use of each connection.
//! - [`rules`]: facts and usage to a verdict per feature: works, degraded
//!   (why, and the fix), unavailable (why, and the fix), or unknown.
//!
//! A feature something uses that cannot work makes the report not `ok`
//! (and `pagehook doctor` exit non-zero); a feature nothing uses is
//! reported and never fails it.
//!
//! What it must never do: change anything in Confluence or Slack (every
//! probe is a `GET` or a Slack read method), put a secret in the report, or
//! call a feature working because of a version number alone.

pub mod facts;
pub mod probes;
pub mod rules;
pub mod usage;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{ConnectionKind, EventQuery, Store, StoreResult, now_ms};

/// What Pagehook does that depends on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// Page events posted to a Slack channel or Teams.
    ChannelPosts,
    /// Never showing restricted content where it does not belong: in a
    /// channel, or to one person (DMs, previews, search).
    RestrictedFiltering,
    /// DMs to the people a page concerns (creator, mentioned, watchers).
    PersonalNotifications,
    /// A Slack user found in Confluence by their email.
    LinkingByEmail,
    /// `/confluence link`: a person links their Slack and Confluence users.
    SelfLinking,
    /// Confluence space admins signing in to the console.
    SpaceAdminSignIn,
    /// Pages written from a space's page template.
    Templates,
    /// `/confluence search` (and the view checks of link previews).
    Search,
    /// Slack: previews of shared Confluence links.
    LinkPreviews,
    /// Slack: the `/confluence` slash command.
    SlashCommands,
}

impl Feature {
    /// What a Confluence connection is checked for.
    pub const CONFLUENCE: [Feature; 8] = [
        Feature::ChannelPosts,
        Feature::RestrictedFiltering,
        Feature::PersonalNotifications,
        Feature::LinkingByEmail,
        Feature::SelfLinking,
        Feature::SpaceAdminSignIn,
        Feature::Templates,
        Feature::Search,
    ];

    /// What a Slack connection is checked for.
    pub const SLACK: [Feature; 4] = [
        Feature::ChannelPosts,
        Feature::PersonalNotifications,
        Feature::LinkPreviews,
        Feature::SlashCommands,
    ];

    /// Its name in reports and the admin guide.
    pub fn title(self) -> &'static str {
        match self {
            Feature::ChannelPosts => "channel posts",
            Feature::RestrictedFiltering => "restricted-content filtering",
            Feature::PersonalNotifications => "personal notifications",
            Feature::LinkingByEmail => "linking by email",
            Feature::SelfLinking => "self-linking",
            Feature::SpaceAdminSignIn => "space-admin sign-in",
            Feature::Templates => "templates",
            Feature::Search => "search",
            Feature::LinkPreviews => "link previews",
            Feature::SlashCommands => "slash commands",
        }
    }
}

/// How well a feature works, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// It works.
    Works,
    /// Could not be measured (nothing to try it on, Slack did not say);
    /// nothing says it is broken.
    Unknown,
    /// It works in part: `why` says what is missing, `fix` what to do.
    Degraded,
    /// It cannot work here: with this version, these rights, or these
    /// credentials.
    Unavailable,
}

impl State {
    /// `works`, `unknown`, `degraded`, `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Works => "works",
            State::Unknown => "unknown",
            State::Degraded => "degraded",
            State::Unavailable => "unavailable",
        }
    }
}

/// The verdict on one feature of one connection.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FeatureCheck {
    /// Which feature.
    pub feature: Feature,
    /// Its name, for people.
    #[schema(example = "personal notifications")]
    pub title: &'static str,
    /// How well it works.
    pub state: State,
    /// The bindings that use it; empty: nothing does.
    #[schema(example = json!(["binding #3 (slack-poster)"]))]
    pub bound_by: Vec<String>,
    /// Something uses it and it cannot work, and nothing takes its place:
    /// the report is not `ok`.
    pub blocking: bool,
    /// Why it does not (fully) work.
    pub why: Vec<String>,
    /// What to do about it.
    pub fix: Vec<String>,
}

/// A capability measured against Confluence.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Capability {
    /// What was asked: `restrictions`, `watchers`, `space-permissions`,
    /// `user-profiles`, `admin-user-list`, `templates`, `search`,
    /// `token-list`.
    pub name: &'static str,
    /// `yes`, `refused`, `absent` (no such resource on this instance),
    /// `failed` or `untried`.
    pub state: &'static str,
    /// The HTTP status of a refusal.
    pub status: Option<u16>,
    /// What was asked and what came back, in words.
    pub detail: String,
}

/// The instance's version.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VersionReport {
    /// As reported.
    #[schema(example = "9.2.3")]
    pub version: String,
    /// The build number.
    pub build: Option<u64>,
    /// The admin guide's matrix column: `8.5 LTS`, `9.2 LTS`, `9.4+`, `10.x`.
    #[schema(example = "9.2 LTS")]
    pub line: String,
    /// The resource that said so.
    #[schema(example = "/rest/api/server-information")]
    pub from: &'static str,
}

/// The service account.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AccountReport {
    /// Its user name.
    pub username: String,
    /// Its user key.
    pub user_key: String,
    /// Its display name.
    pub display_name: Option<String>,
    /// `personal access token` or `password`.
    pub credentials: &'static str,
}

/// Whether the account is a Confluence administrator.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AdminReport {
    /// `yes`, `no` or `unknown`.
    pub state: &'static str,
    /// How that is known (or why it is not).
    pub how: String,
}

/// What the account can tell of people's emails.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EmailReport {
    /// The instance's email visibility as far as it can be told: `public`,
    /// `public-or-admins-only` (visible to this administrator account),
    /// `admins-only-or-hidden` (hidden from this account, which is not an
    /// administrator), `hidden`, `masked`, or `unknown`.
    pub visibility: &'static str,
    /// Other people's emails can be read by this account; `None`: could
    /// not be told.
    pub usable: Option<bool>,
    /// What was asked and seen.
    pub detail: String,
}

/// The personal access token's expiry.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TokenReport {
    /// `ok`, `expiring`, `expired`, `never-expires`, `unknown` or `password`.
    pub state: &'static str,
    /// Its name in Confluence (never its value).
    pub name: Option<String>,
    /// When it expires (ms since the epoch).
    pub expires_at: Option<i64>,
    /// What to do, when anything.
    pub message: Option<String>,
}

/// What `pagehook serve` counted of people's emails since it started: the
/// `pagehook_people_emails_total` and `pagehook_people_unresolved_total`
/// metrics of one connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct PeopleCounts {
    /// Emails found, by where from (`link`, `mobile_profile`, `admin_list`).
    pub found: BTreeMap<String, u64>,
    /// People left out of personal notifications, by why (`email_hidden`,
    /// `no_profile`, `not_permitted`, `lookup_failed`, `view_not_known`).
    pub left_out: BTreeMap<String, u64>,
}

/// One Confluence connection.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConfluenceReport {
    /// The connection.
    pub connection: String,
    /// Its base URL.
    pub url: String,
    /// The version, when the instance said.
    pub version: Option<VersionReport>,
    /// The service account, when it could be read.
    pub account: Option<AccountReport>,
    /// Why nothing else could be asked, when so.
    pub error: Option<String>,
    /// Whether the account is a Confluence administrator.
    pub confluence_admin: AdminReport,
    /// The global spaces the account may view.
    pub spaces: Vec<String>,
    /// Spaces whose permissions the account may read (it administers them).
    pub administered_spaces: Vec<String>,
    /// People's emails.
    pub emails: EmailReport,
    /// The token's expiry.
    pub token: TokenReport,
    /// What was measured.
    pub capabilities: Vec<Capability>,
    /// People's emails found and people left out since `pagehook serve`
    /// started (`GET /api/doctor` only; the CLI runs apart from the server).
    pub people: Option<PeopleCounts>,
    /// The verdicts.
    pub features: Vec<FeatureCheck>,
}

/// The workspace a Slack token belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorkspaceReport {
    /// Its name.
    pub team: String,
    /// Its id.
    pub team_id: String,
    /// The bot user.
    pub bot_user: String,
}

/// One Slack connection.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SlackReport {
    /// The connection.
    pub connection: String,
    /// The Web API base URL.
    pub url: String,
    /// What `auth.test` said.
    pub workspace: Option<WorkspaceReport>,
    /// Why `auth.test` failed, when it did.
    pub error: Option<String>,
    /// The token's scopes; `None`: Slack did not say.
    pub scopes: Option<Vec<String>>,
    /// A signing secret is configured.
    pub signing_secret: bool,
    /// An app-level token is configured and Slack accepted it for Socket
    /// Mode (`apps.connections.open`).
    pub socket_mode: bool,
    /// When the last request from Slack arrived (ms since the epoch), among
    /// the newest events.
    pub last_request_at: Option<i64>,
    /// The verdicts.
    pub features: Vec<FeatureCheck>,
}

/// What `pagehook doctor` and `GET /api/doctor` answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Report {
    /// When it was measured (ms since the epoch).
    pub checked_at: i64,
    /// Nothing that is used is unavailable.
    pub ok: bool,
    /// What is used and cannot work, one line each.
    pub blocking: Vec<String>,
    /// What the bindings leave open, in words.
    pub notes: Vec<String>,
    /// Confluence connections.
    pub confluence: Vec<ConfluenceReport>,
    /// Slack connections.
    pub slack: Vec<SlackReport>,
}

/// How many of the newest events are searched for a Slack connection's
/// last request.
const RECENT_EVENTS: usize = 1000;

/// Measures every Confluence and Slack connection (concurrently, each
/// request within `timeout`) and judges what the bindings use; with the
/// server's `metrics`, each Confluence connection also says whom personal
/// notifications left out since it started.
pub async fn run(
    store: &Store,
    timeout: Duration,
    metrics: Option<&crate::metrics::Metrics>,
) -> StoreResult<Report> {
    let connections = store.connections().await?;
    let plugins = store.plugins().await?;
    let bindings = store.bindings(None).await?;
    let usage = usage::usage(&connections, &plugins, &bindings);
    let recent = store
        .search_events(&EventQuery {
            limit: RECENT_EVENTS,
            ..EventQuery::default()
        })
        .await?;
    let last_request = |name: &str| {
        recent
            .iter()
            .filter(|e| e.source == name)
            .map(|e| e.received_at)
            .max()
    };
    let confluence = connections
        .iter()
        .filter(|c| c.kind == ConnectionKind::Confluence)
        .map(|c| probes::confluence(c, &usage, timeout));
    let slack = connections
        .iter()
        .filter(|c| c.kind == ConnectionKind::Slack)
        .map(|c| probes::slack(c, last_request(&c.name), timeout));
    let (confluence, slack) = futures::join!(
        futures::future::join_all(confluence),
        futures::future::join_all(slack)
    );
    let now = now_ms();
    let people = metrics.map(|m| people_counts(&m.encode()));
    let confluence: Vec<ConfluenceReport> = confluence
        .iter()
        .map(|f| {
            let mut r = rules::confluence_report(
                f,
                usage
                    .confluence
                    .get(&f.connection)
                    .unwrap_or(&Default::default()),
                now,
            );
            if let Some(people) = &people {
                let counts = people.get(&f.connection).cloned().unwrap_or_default();
                rules::note_left_out(&mut r, &counts);
                r.people = Some(counts);
            }
            r
        })
        .collect();
    let slack: Vec<SlackReport> = slack
        .iter()
        .map(|f| {
            rules::slack_report(
                f,
                usage
                    .slack
                    .get(&f.connection)
                    .unwrap_or(&Default::default()),
            )
        })
        .collect();
    let mut blocking = Vec::new();
    for (kind, name, features) in confluence
        .iter()
        .map(|r| ("Confluence", &r.connection, &r.features))
        .chain(slack.iter().map(|r| ("Slack", &r.connection, &r.features)))
    {
        for f in features.iter().filter(|f| f.blocking) {
            blocking.push(format!(
                "{kind} `{name}`: {} ({}) is {}: {}",
                f.title,
                f.bound_by.join(", "),
                f.state.as_str(),
                f.why.join("; ")
            ));
        }
    }
    Ok(Report {
        checked_at: now,
        ok: blocking.is_empty(),
        blocking,
        notes: usage.notes.clone(),
        confluence,
        slack,
    })
}

/// The people counters of each Confluence connection, read from the
/// metrics' exposition text (`pagehook_people_emails_total{connection,via}`,
/// `pagehook_people_unresolved_total{connection,reason}`).
pub fn people_counts(exposition: &str) -> BTreeMap<String, PeopleCounts> {
    let mut out: BTreeMap<String, PeopleCounts> = BTreeMap::new();
    for line in exposition.lines() {
        let (found, rest) = if let Some(rest) = line.strip_prefix("pagehook_people_emails_total{") {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix("pagehook_people_unresolved_total{") {
            (false, rest)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        let (Some(connection), Some(what)) = (
            label("connection"),
            label(if found { "via" } else { "reason" }),
        ) else {
            continue;
        };
        let counts = out.entry(connection).or_default();
        let map = if found {
            &mut counts.found
        } else {
            &mut counts.left_out
        };
        *map.entry(what).or_default() += value as u64;
    }
    out
}

/// The last report `pagehook serve` made (the console's overview shows it;
/// `GET /api/doctor` makes a new one).
#[derive(Debug, Default)]
pub struct Latest(Mutex<Option<Report>>);

impl Latest {
    /// The last report, if any.
    pub fn get(&self) -> Option<Report> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps `report` as the last one.
    pub fn set(&self, report: Report) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_counts_come_from_the_metrics() {
        let m = crate::metrics::Metrics::new();
        m.person_unresolved("prod", "email_hidden");
        m.person_unresolved("prod", "email_hidden");
        m.person_unresolved("docs", "no_profile");
        m.person_email_found("prod", "link");
        let counts = people_counts(&m.encode());
        assert_eq!(counts["prod"].left_out["email_hidden"], 2);
        assert_eq!(counts["prod"].found["link"], 1);
        assert_eq!(counts["docs"].left_out["no_profile"], 1);
        assert!(counts["docs"].found.is_empty());
        assert!(people_counts("# nothing\nother_total{connection=\"x\"} 3").is_empty());
    }
}
