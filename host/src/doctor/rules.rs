//! From what was measured ([`super::facts`]) and what the bindings use
//! ([`super::usage`]) to a verdict per feature: works, degraded (why, and
//! the fix), unavailable (why, and the fix), or unknown.
//!
//! The rules follow what the host does, feature by feature:
//!
//! - **channel posts** need the bound spaces to be viewable (enrichment).
//! - **restricted-content filtering** reads each content's own and its
//!   ancestors' view restrictions (for a channel); for one person it also
//!   needs who may view a space, which only the space permissions resource
//!   lists (9.1+, to the space's and Confluence administrators). That part
//!   counts only when something shows pages to one person.
//! - **personal notifications** need the per-person part, people's emails
//!   (user profiles, as far as the email visibility lets this account see
//!   them, or the admin user list; else only self-linked people), and for
//!   `notify-watchers` the watchers resource (9.0+, administrators).
//! - **linking by email** needs the admin user list with emails (9.4+,
//!   Confluence administrators); when it cannot work, self-linking takes its
//!   place, so it never blocks on its own.
//! - **self-linking** needs Confluence to answer sign-ins: it works when the
//!   service account's own credentials do.
//! - **space-admin sign-in** needs the space permissions resource (9.1+);
//!   the console always offers it, so it never blocks.
//! - **templates** need `/rest/experimental/template/page` and the named
//!   template; **search** needs CQL search and the per-person part.
//!
//! Slack: each feature needs scopes (required ones make it unavailable when
//! missing, helpful ones degrade it); link previews and slash commands also
//! need a signing secret, and are not seen working until Slack has sent a
//! request.
//!
//! What it must never do: reach the network, or say "works" of what was
//! not measured.

use std::collections::BTreeSet;

use super::facts::{
    Account, AccountFailure, Admin, ConfluenceFacts, Credentials, EmailFacts, EmailSeen, Reach,
    ServerVersion, SlackFacts, SlackFailure,
};
use super::usage::{ConfluenceUsage, SlackUsage};
use super::{
    AccountReport, AdminReport, Capability, ConfluenceReport, EmailReport, Feature, FeatureCheck,
    SlackReport, State, TokenReport, VersionReport, WorkspaceReport,
};

/// A verdict being put together: the worst state seen, with every reason.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    state: State,
    why: Vec<String>,
    fix: Vec<String>,
}

impl Verdict {
    fn works() -> Verdict {
        Verdict {
            state: State::Works,
            why: Vec::new(),
            fix: Vec::new(),
        }
    }

    fn new(state: State, why: impl Into<String>, fix: Option<String>) -> Verdict {
        let mut v = Verdict::works();
        v.worsen(state, why, fix);
        v
    }

    /// Records a reason, raising the state to `state` if that is worse.
    fn worsen(&mut self, state: State, why: impl Into<String>, fix: Option<String>) {
        self.state = self.state.max(state);
        let why = why.into();
        if !why.is_empty() && !self.why.contains(&why) {
            self.why.push(why);
        }
        if let Some(fix) = fix
            && !self.fix.contains(&fix)
        {
            self.fix.push(fix);
        }
    }

    fn merge(&mut self, other: &Verdict) {
        self.state = self.state.max(other.state);
        for w in &other.why {
            if !self.why.contains(w) {
                self.why.push(w.clone());
            }
        }
        for f in &other.fix {
            if !self.fix.contains(f) {
                self.fix.push(f.clone());
            }
        }
    }

    /// Adds `other`'s reasons as notes, without changing the state.
    fn note(&mut self, prefix: &str, other: &Verdict) {
        for w in &other.why {
            let w = format!("{prefix}{w}");
            if !self.why.contains(&w) {
                self.why.push(w);
            }
        }
    }

    fn check(self, feature: Feature, bound_by: &[String], may_block: bool) -> FeatureCheck {
        FeatureCheck {
            feature,
            title: feature.title(),
            blocking: may_block && !bound_by.is_empty() && self.state == State::Unavailable,
            state: self.state,
            bound_by: bound_by.to_vec(),
            why: self.why,
            fix: self.fix,
        }
    }
}

/// "Confluence 8.5.16 (8.5 LTS) has no X (Data Center has it from 9.1)",
/// or, when the version is new enough or unknown, that the instance
/// answered 404 all the same.
fn missing_on(version: Option<&ServerVersion>, what: &str, since: (u32, u32)) -> String {
    let (major, minor) = since;
    match version {
        Some(v) if v.before(major, minor) => format!(
            "Confluence {} ({}) has no {what} (Data Center has it from {major}.{minor})",
            v.version,
            v.line()
        ),
        Some(v) => format!(
            "Confluence {} answers 404 for {what}, which Data Center documents from {major}.{minor} (a proxy in the way, or the resource disabled?)",
            v.version
        ),
        None => format!(
            "this Confluence answers 404 for {what} (Data Center has it from {major}.{minor})"
        ),
    }
}

fn upgrade_to(since: (u32, u32)) -> String {
    let lts = if since <= (9, 2) { "9.2" } else { "10.2" };
    format!(
        "upgrade Confluence to {}.{} or later (the {lts} LTS or newer)",
        since.0, since.1
    )
}

fn list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The same verdict for every feature when the account cannot be used.
fn account_failure(f: &ConfluenceFacts, why: &AccountFailure) -> Verdict {
    let connect = format!(
        "pagehook connect confluence {} --url {} --token-env VAR --webhook-secret-env VAR",
        f.connection, f.url
    );
    match why {
        AccountFailure::NoToken => Verdict::new(
            State::Unavailable,
            "the connection has no token (webhook only): events are not read back from Confluence and nothing is looked up",
            Some(format!("give it a token: {connect}")),
        ),
        AccountFailure::SecretUnreadable(m) => Verdict::new(
            State::Unavailable,
            format!("its token cannot be read: {m}"),
            Some(format!(
                "make the token's variable or file readable by Pagehook, or {connect}"
            )),
        ),
        AccountFailure::Refused(status) => Verdict::new(
            State::Unavailable,
            format!(
                "Confluence refuses the credentials (HTTP {status}): the personal access token expired or was revoked, or the password changed"
            ),
            Some(format!(
                "create a new personal access token in Confluence (your profile picture > Settings > Personal Access Tokens) and run {connect}"
            )),
        ),
        AccountFailure::Unreachable(m) => Verdict::new(
            State::Unavailable,
            format!("cannot reach Confluence: {m}"),
            Some(format!(
                "check the URL, the network path, the proxy and the CA trust (`pagehook connection test {}`)",
                f.connection
            )),
        ),
    }
}

/// The spaces whose pages may be shown to one person.
fn person_spaces(f: &ConfluenceFacts, u: &ConfluenceUsage) -> Vec<String> {
    let readable: Vec<String> = f.spaces.clone().unwrap_or_default();
    if u.person_everywhere || u.person_spaces.is_empty() {
        readable
    } else {
        u.person_spaces
            .iter()
            .filter(|s| readable.contains(s))
            .cloned()
            .collect()
    }
}

/// Whether a page can be shown to one person: who may view a space comes
/// only from its permissions.
fn person_view(f: &ConfluenceFacts, u: &ConfluenceUsage, me: &Account) -> Verdict {
    let sp = &f.space_permissions;
    let since = (9, 1);
    if sp.absent && sp.listed.is_empty() {
        return Verdict::new(
            State::Unavailable,
            format!(
                "{}: Pagehook cannot show that a person may view a page, so personal notifications, link previews and search show nobody anything",
                missing_on(
                    f.version.as_ref(),
                    "space permissions REST (GET /rest/api/space/{key}/permissions)",
                    since
                )
            ),
            Some(upgrade_to(since)),
        );
    }
    if let Err(m) = &f.spaces {
        return Verdict::new(
            State::Unknown,
            format!("the spaces the account may view could not be listed: {m}"),
            None,
        );
    }
    let relevant = person_spaces(f, u);
    if relevant.is_empty() {
        return Verdict::new(
            State::Unknown,
            format!("the account `{}` may view no space", me.username),
            Some(format!(
                "give `{}` View permission in the spaces to show",
                me.username
            )),
        );
    }
    let mut v = Verdict::works();
    let refused: Vec<&String> = relevant
        .iter()
        .filter(|s| sp.refused.contains_key(*s))
        .collect();
    let listed = relevant.iter().filter(|s| sp.listed.contains(*s)).count();
    if !refused.is_empty() {
        let statuses: BTreeSet<u16> = refused.iter().map(|s| sp.refused[*s]).collect();
        let said = list(statuses.iter().map(u16::to_string));
        let bug = if statuses.iter().any(|s| *s >= 500) {
            " (500 is how Confluence refuses callers who do not administer a space, CONFSERVER-99908)"
        } else {
            ""
        };
        let state = if listed == 0 {
            State::Unavailable
        } else {
            State::Degraded
        };
        v.worsen(
            state,
            format!(
                "the account `{}` does not administer {} (Confluence answered HTTP {said} to their space permissions{bug}): who may view their pages cannot be told, so nothing from them is shown to one person",
                me.username,
                if listed == 0 && refused.len() == relevant.len() {
                    format!("any of the spaces it may view ({})", list(&refused))
                } else {
                    format!("space(s) {}", list(&refused))
                }
            ),
            Some(format!(
                "make `{}` a space admin of {} (Space tools > Permissions){}",
                me.username,
                list(&refused),
                // Measured: being one did not make Confluence list them.
                if f.admin.is_yes() {
                    ""
                } else {
                    ", or a Confluence administrator"
                }
            )),
        );
    }
    let failed: Vec<&String> = relevant
        .iter()
        .filter(|s| sp.failed.contains_key(*s))
        .collect();
    if !failed.is_empty() {
        v.worsen(
            State::Unknown,
            format!(
                "the space permissions of {} could not be read ({})",
                list(&failed),
                list(failed.iter().map(|s| sp.failed[*s].as_str()))
            ),
            None,
        );
    }
    let unasked = relevant
        .iter()
        .filter(|s| {
            !sp.listed.contains(*s) && !sp.refused.contains_key(*s) && !sp.failed.contains_key(*s)
        })
        .count();
    if unasked > 0 && !sp.absent {
        v.worsen(
            State::Works,
            format!(
                "{unasked} of the {} spaces were not asked about (at most {} are)",
                relevant.len(),
                super::probes::MAX_SPACES
            ),
            None,
        );
    }
    v
}

/// Whether enrichment can read view restrictions.
fn restriction_reads(f: &ConfluenceFacts, me: &Account) -> Verdict {
    match &f.restrictions {
        Reach::Yes => Verdict::works(),
        Reach::Untried(why) => Verdict::new(State::Unknown, format!("not tried: {why}"), None),
        other => Verdict::new(
            State::Degraded,
            format!(
                "the view restrictions of a page could not be read ({}): Pagehook counts such content as restricted and leaves it out of channel posts, DMs, previews and search",
                describe(other)
            ),
            Some(format!(
                "check that `{}` may view the pages of the bound spaces",
                me.username
            )),
        ),
    }
}

fn describe(r: &Reach) -> String {
    match r {
        Reach::Yes => "answered".into(),
        Reach::Refused(s) => format!("refused, HTTP {s}"),
        Reach::Absent => "HTTP 404: no such resource".into(),
        Reach::Failed(m) => m.clone(),
        Reach::Untried(m) => format!("not tried: {m}"),
    }
}

/// What the profiles tell of email visibility.
pub fn email_report(e: &EmailFacts, admin: &Admin) -> EmailReport {
    let other = e.other_user.as_deref().unwrap_or("another user");
    let (visibility, usable, detail) = match &e.reach {
        Reach::Yes => match (e.others, e.own) {
            (Some(EmailSeen::Shown), _) => (
                if admin.is_no() {
                    "public"
                } else {
                    "public-or-admins-only"
                },
                Some(true),
                format!("the profile of `{other}` shows this account their email"),
            ),
            (Some(EmailSeen::Masked), _) | (None, Some(EmailSeen::Masked)) => (
                "masked",
                Some(false),
                "profiles show masked addresses (`ada at example dot com`), which are not used"
                    .to_owned(),
            ),
            (Some(EmailSeen::Missing), _) => (
                if admin.is_yes() {
                    "hidden"
                } else {
                    "admins-only-or-hidden"
                },
                Some(false),
                format!("the profile of `{other}` shows this account no email"),
            ),
            (None, Some(EmailSeen::Missing)) => (
                if admin.is_yes() {
                    "hidden"
                } else {
                    "admins-only-or-hidden"
                },
                Some(false),
                "even the account's own profile shows no email".to_owned(),
            ),
            (None, _) => (
                "unknown",
                None,
                "the account's own profile shows its email, and no other user could be tried (nobody else edited a page it may view)".to_owned(),
            ),
        },
        Reach::Absent => (
            "unknown",
            Some(false),
            "this Confluence has no user profile resource (GET /rest/mobile/1.0/profile/{username} answered 404)".to_owned(),
        ),
        other => (
            "unknown",
            None,
            format!("the user profile resource: {}", describe(other)),
        ),
    };
    EmailReport {
        visibility,
        usable,
        detail,
    }
}

fn token_report(f: &ConfluenceFacts, now: i64) -> TokenReport {
    let mut r = TokenReport {
        state: "unknown",
        name: None,
        expires_at: None,
        message: None,
    };
    match f.credentials {
        Credentials::None => {
            r.state = "none";
            return r;
        }
        Credentials::Password => {
            r.state = "password";
            return r;
        }
        Credentials::PersonalAccessToken => {}
    }
    let Some(t) = &f.token else {
        return r;
    };
    if !t.reach.is_yes() {
        r.message = Some(format!(
            "the token list (GET /rest/pat/latest/tokens): {}",
            describe(&t.reach)
        ));
        return r;
    }
    r.name = t.name.clone();
    r.expires_at = t.expires_at;
    const DAY_MS: i64 = 86_400_000;
    r.state = match (t.name.as_ref(), t.expires_at) {
        (None, _) => "unknown",
        (Some(_), None) => "never-expires",
        (Some(_), Some(at)) if at <= now => "expired",
        (Some(_), Some(at)) if at - now <= crate::ops::tokens::TOKEN_WARN_DAYS * DAY_MS => {
            "expiring"
        }
        _ => "ok",
    };
    if let (Some(name), Some(at)) = (&t.name, t.expires_at)
        && matches!(r.state, "expired" | "expiring")
    {
        r.message = Some(format!(
            "the personal access token `{name}` {} {}: create a new one in Confluence (your profile picture > Settings > Personal Access Tokens) and connect again with it",
            if r.state == "expired" {
                "expired on"
            } else {
                "expires on"
            },
            crate::clock::utc_minutes(at)
        ));
    }
    r
}

fn reach_state(r: &Reach) -> (&'static str, Option<u16>) {
    match r {
        Reach::Yes => ("yes", None),
        Reach::Refused(s) => ("refused", Some(*s)),
        Reach::Absent => ("absent", Some(404)),
        Reach::Failed(_) => ("failed", None),
        Reach::Untried(_) => ("untried", None),
    }
}

fn capabilities(f: &ConfluenceFacts) -> Vec<Capability> {
    let cap = |name: &'static str, r: &Reach, what: String| {
        let (state, status) = reach_state(r);
        Capability {
            name,
            state,
            status,
            detail: format!("{what}: {}", describe(r)),
        }
    };
    let mut out = Vec::new();
    let sample = f
        .sample
        .as_ref()
        .map(|(id, space)| format!("page {id} in {space}"))
        .unwrap_or_else(|| "no page".into());
    out.push(cap(
        "restrictions",
        &f.restrictions,
        format!("view restrictions of {sample} and its ancestors"),
    ));
    out.push(cap(
        "watchers",
        &f.watchers,
        format!("watchers of {sample}"),
    ));
    let sp = &f.space_permissions;
    let sp_reach = if !sp.listed.is_empty() {
        Reach::Yes
    } else if sp.absent {
        Reach::Absent
    } else if let Some(s) = sp.refused.values().next() {
        Reach::Refused(*s)
    } else if let Some(m) = sp.failed.values().next() {
        Reach::Failed(m.clone())
    } else {
        Reach::Untried("no space to ask about".into())
    };
    let (state, status) = reach_state(&sp_reach);
    out.push(Capability {
        name: "space-permissions",
        state,
        status,
        detail: format!(
            "asked for {} of {} spaces: listed {}{}{}",
            sp.asked,
            sp.of,
            if sp.listed.is_empty() {
                "none".to_owned()
            } else {
                list(&sp.listed)
            },
            if sp.refused.is_empty() {
                String::new()
            } else {
                format!(
                    "; refused {}",
                    list(sp.refused.iter().map(|(k, s)| format!("{k} ({s})")))
                )
            },
            if sp.absent {
                "; 404: no such resource"
            } else {
                ""
            }
        ),
    });
    out.push(cap(
        "user-profiles",
        &f.emails.reach,
        "user profiles (GET /rest/mobile/1.0/profile/{username})".into(),
    ));
    out.push(cap(
        "admin-user-list",
        &f.admin_list,
        format!(
            "the admin user list{}",
            match f.admin_list_emails {
                Some(true) => " (carries emails)",
                Some(false) => " (carries no emails)",
                None => "",
            }
        ),
    ));
    for (space, t) in &f.templates {
        out.push(cap(
            "templates",
            &t.reach,
            format!(
                "page templates of {space}{}",
                if t.names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", list(&t.names))
                }
            ),
        ));
    }
    out.push(cap(
        "search",
        &f.search,
        format!(
            "CQL search{}",
            if f.search_nested_404 {
                " (404 with the nested ancestors' restrictions, 200 without)"
            } else {
                ""
            }
        ),
    ));
    if let Some(t) = &f.token {
        out.push(cap(
            "token-list",
            &t.reach,
            "personal access tokens (GET /rest/pat/latest/tokens)".into(),
        ));
    }
    out
}

/// The report on one Confluence connection.
pub fn confluence_report(f: &ConfluenceFacts, u: &ConfluenceUsage, now: i64) -> ConfluenceReport {
    let features = match &f.account {
        Err(why) => {
            let v = account_failure(f, why);
            Feature::CONFLUENCE
                .iter()
                .map(|feature| {
                    v.clone().check(
                        *feature,
                        u.by(*feature),
                        *feature != Feature::SpaceAdminSignIn,
                    )
                })
                .collect()
        }
        Ok(me) => confluence_features(f, u, me),
    };
    let admin = match &f.admin {
        Admin::Yes(how) => AdminReport {
            state: "yes",
            how: how.clone(),
        },
        Admin::No(how) => AdminReport {
            state: "no",
            how: how.clone(),
        },
        Admin::Unknown(why) => AdminReport {
            state: "unknown",
            how: why.clone(),
        },
    };
    ConfluenceReport {
        connection: f.connection.clone(),
        url: f.url.clone(),
        version: f.version.as_ref().map(|v| VersionReport {
            version: v.version.clone(),
            build: v.build,
            line: v.line(),
            from: v.from,
        }),
        account: f.account.as_ref().ok().map(|a| AccountReport {
            username: a.username.clone(),
            user_key: a.key.clone(),
            display_name: a.display_name.clone(),
            credentials: match f.credentials {
                Credentials::Password => "password",
                _ => "personal access token",
            },
        }),
        error: f.account.as_ref().err().map(|e| {
            account_failure(f, e)
                .why
                .first()
                .cloned()
                .unwrap_or_default()
        }),
        confluence_admin: admin,
        spaces: f.spaces.clone().unwrap_or_default(),
        administered_spaces: f.space_permissions.listed.iter().cloned().collect(),
        emails: email_report(&f.emails, &f.admin),
        token: token_report(f, now),
        capabilities: if f.account.is_ok() {
            capabilities(f)
        } else {
            Vec::new()
        },
        people: None,
        features,
    }
}

/// Adds to the personal notifications' verdict how many people were left
/// out since the server started, and why (what was counted, not measured:
/// the state stays as measured).
pub fn note_left_out(r: &mut ConfluenceReport, counts: &super::PeopleCounts) {
    let total: u64 = counts.left_out.values().sum();
    if total == 0 {
        return;
    }
    let Some(check) = r
        .features
        .iter_mut()
        .find(|c| c.feature == Feature::PersonalNotifications)
    else {
        return;
    };
    check.why.push(format!(
        "since the server started, {total} {} left out ({})",
        if total == 1 {
            "person was"
        } else {
            "people were"
        },
        list(counts.left_out.iter().map(|(why, n)| format!("{why}: {n}")))
    ));
}

fn confluence_features(
    f: &ConfluenceFacts,
    u: &ConfluenceUsage,
    me: &Account,
) -> Vec<FeatureCheck> {
    let who = &me.username;
    let version = f.version.as_ref();
    let readable: Option<&Vec<String>> = f.spaces.as_ref().ok();
    let per_person_used = [
        Feature::PersonalNotifications,
        Feature::Search,
        Feature::LinkingByEmail,
    ]
    .iter()
    .any(|feature| !u.by(*feature).is_empty());
    let person = person_view(f, u, me);
    let restrictions = restriction_reads(f, me);

    // Channel posts.
    let mut channel = Verdict::works();
    match readable {
        Some(readable) => {
            let unreadable: Vec<&String> =
                u.spaces.iter().filter(|s| !readable.contains(s)).collect();
            if !unreadable.is_empty() {
                channel.worsen(
                    State::Degraded,
                    format!(
                        "the account `{who}` may not view space(s) {}: their events are not read back from Confluence, so plugins get no content and post nothing",
                        list(&unreadable)
                    ),
                    Some(format!(
                        "give `{who}` View permission in {} (Space tools > Permissions)",
                        list(&unreadable)
                    )),
                );
            }
        }
        None => channel.worsen(
            State::Unknown,
            "the spaces the account may view could not be listed",
            None,
        ),
    }

    // Restricted-content filtering.
    let mut filtering = restrictions.clone();
    if per_person_used {
        filtering.merge(&person);
    } else {
        filtering.note("for one person (nothing uses it now): ", &person);
    }

    // Personal notifications.
    let mut personal = person.clone();
    personal.merge(&restrictions);
    let emails = email_report(&f.emails, &f.admin);
    let admin_list_emails = f.admin_list.is_yes() && f.admin_list_emails == Some(true);
    match emails.usable {
        Some(true) => {}
        _ if admin_list_emails => {}
        Some(false) => {
            let fix = match emails.visibility {
                "admins-only-or-hidden" => format!(
                    "set User email visibility to Public (General Configuration > Security Configuration), or, if it is 'Only visible to site administrators', make `{who}` a Confluence administrator; people can also link themselves with /confluence link"
                ),
                "hidden" => "set User email visibility to Public (General Configuration > Security Configuration); until then people link themselves with /confluence link".to_owned(),
                "masked" => "set User email visibility to Public (masked addresses are not used); until then people link themselves with /confluence link".to_owned(),
                _ => "people link themselves with /confluence link; on 9.4 and later a Confluence administrator account also reads emails from the admin user list".to_owned(),
            };
            personal.worsen(
                State::Degraded,
                format!(
                    "{} (email visibility: {}): only people who linked themselves (/confluence link) get personal notifications",
                    emails.detail, emails.visibility
                ),
                Some(fix),
            );
        }
        None => personal.worsen(
            State::Unknown,
            format!(
                "whether people's emails can be read could not be told: {}",
                emails.detail
            ),
            None,
        ),
    }
    if !u.watchers_by.is_empty() {
        let by = list(&u.watchers_by);
        match &f.watchers {
            Reach::Yes => {}
            Reach::Refused(s) => personal.worsen(
                State::Degraded,
                format!(
                    "Confluence lists a page's watchers only to Confluence and space administrators and answered HTTP {s}: watchers are not notified ({by})"
                ),
                Some(format!(
                    "make `{who}` a space admin of the bound spaces or a Confluence administrator, or turn notify-watchers off"
                )),
            ),
            Reach::Absent => personal.worsen(
                State::Degraded,
                format!(
                    "{}: watchers are not notified ({by})",
                    missing_on(version, "content watchers REST (GET /rest/api/content/{id}/watchers)", (9, 0))
                ),
                Some(format!("{}, or turn notify-watchers off", upgrade_to((9, 0)))),
            ),
            other => personal.worsen(
                State::Unknown,
                format!("watchers: {}", describe(other)),
                None,
            ),
        }
    }

    // Linking by email.
    let mut by_email = Verdict::works();
    match &f.admin_list {
        Reach::Yes if f.admin_list_emails == Some(true) => {}
        Reach::Yes => by_email.worsen(
            State::Unavailable,
            "the admin user list names no user with an email (Data Center documents `userKey`, `username` and `email` on its entries from 10.2, and `email` only for some user types)",
            Some("people link themselves with /confluence link".into()),
        ),
        Reach::Refused(s) => by_email.worsen(
            State::Unavailable,
            format!(
                "only Confluence administrators may read the admin user list, the one Data Center resource that finds a user by email (HTTP {s})"
            ),
            Some(format!(
                "make `{who}` a Confluence administrator, or let people link themselves with /confluence link"
            )),
        ),
        Reach::Absent => by_email.worsen(
            State::Unavailable,
            format!(
                "{}, and Data Center has no other way to find a user by email",
                missing_on(version, "admin user list (GET /rest/api/admin/users/list/active)", (9, 4))
            ),
            Some(format!(
                "{} with a Confluence administrator account, or let people link themselves with /confluence link",
                upgrade_to((9, 4))
            )),
        ),
        other => by_email.worsen(
            State::Unknown,
            format!("the admin user list: {}", describe(other)),
            None,
        ),
    }
    if by_email.state == State::Works && !u.by(Feature::LinkingByEmail).is_empty() {
        by_email.merge(&person);
    }

    // Self-linking: people sign in with their own credentials, which works
    // wherever the service account's do.
    let self_linking = Verdict::works();

    // Space-admin sign-in.
    let mut sign_in = Verdict::works();
    let sp = &f.space_permissions;
    if sp.absent && sp.listed.is_empty() {
        sign_in.worsen(
            State::Unavailable,
            format!(
                "{}: the console cannot tell which spaces a person administers",
                missing_on(
                    version,
                    "space permissions REST (GET /rest/api/space/{key}/permissions)",
                    (9, 1)
                )
            ),
            Some(format!(
                "{}; meanwhile the Pagehook admin manages space bindings",
                upgrade_to((9, 1))
            )),
        );
    } else if sp.refused.values().any(|s| *s >= 500) {
        sign_in.worsen(
            State::Works,
            "Confluence answers 500 rather than 403 for spaces the caller does not administer (CONFSERVER-99908): sign-in counts such a space as not administered",
            None,
        );
    }

    // Templates.
    let mut templates = Verdict::works();
    let template_verdict = |space: &str, name: Option<&str>, v: &mut Verdict| {
        let Some(t) = f.templates.get(space) else {
            v.worsen(
                State::Unknown,
                format!("the templates of {space} were not asked for"),
                None,
            );
            return;
        };
        match &t.reach {
            Reach::Yes => {
                if let Some(name) = name
                    && !t.names.iter().any(|n| n == name)
                {
                    v.worsen(
                        State::Unavailable,
                        format!(
                            "space {space} has no page template named `{name}` (it has: {})",
                            if t.names.is_empty() { "none".to_owned() } else { list(&t.names) }
                        ),
                        Some(format!("create it in {space}, or bind again naming one of its templates")),
                    );
                }
            }
            Reach::Absent => v.worsen(
                State::Unavailable,
                "this Confluence answers 404 for page templates (GET /rest/experimental/template/page, which Atlassian's REST reference does not list)",
                Some("give the binding the template's body itself (`template`) instead of naming one (`space-template`)".into()),
            ),
            Reach::Refused(s) => v.worsen(
                State::Unavailable,
                format!("the account `{who}` may not read the page templates of {space} (HTTP {s})"),
                Some(format!("give `{who}` View permission in {space}")),
            ),
            other => v.worsen(
                State::Unknown,
                format!("the page templates of {space}: {}", describe(other)),
                None,
            ),
        }
    };
    if u.templates.is_empty() {
        match f.templates.keys().next() {
            Some(space) => template_verdict(space, None, &mut templates),
            None => templates.worsen(State::Unknown, "no space to try page templates in", None),
        }
    } else {
        for t in &u.templates {
            template_verdict(&t.space, Some(&t.name), &mut templates);
        }
    }

    // Search.
    let mut search = match &f.search {
        Reach::Yes if f.search_nested_404 => Verdict::new(
            State::Degraded,
            "Confluence answered 404 to the search with the ancestors' restrictions expanded (reported when an ancestor is in the trash): Pagehook searches again without it and reads each result's ancestors one by one, which is slower",
            None,
        ),
        Reach::Yes => Verdict::works(),
        Reach::Refused(s) => Verdict::new(
            State::Unavailable,
            format!("Confluence refused the CQL search (HTTP {s})"),
            Some(format!(
                "check that `{who}` may use Confluence and view the spaces"
            )),
        ),
        Reach::Absent => Verdict::new(
            State::Unavailable,
            "this Confluence answers 404 for CQL search (GET /rest/api/content/search)",
            None,
        ),
        other => Verdict::new(
            State::Unknown,
            format!("the search: {}", describe(other)),
            None,
        ),
    };
    search.merge(&person);
    search.merge(&restrictions);

    let self_linking_works = self_linking.state == State::Works;
    vec![
        channel.check(Feature::ChannelPosts, u.by(Feature::ChannelPosts), true),
        filtering.check(
            Feature::RestrictedFiltering,
            u.by(Feature::RestrictedFiltering),
            true,
        ),
        personal.check(
            Feature::PersonalNotifications,
            u.by(Feature::PersonalNotifications),
            true,
        ),
        by_email.check(
            Feature::LinkingByEmail,
            u.by(Feature::LinkingByEmail),
            !self_linking_works,
        ),
        self_linking.check(Feature::SelfLinking, u.by(Feature::SelfLinking), true),
        sign_in.check(Feature::SpaceAdminSignIn, &[], false),
        templates.check(Feature::Templates, u.by(Feature::Templates), true),
        search.check(Feature::Search, u.by(Feature::Search), true),
    ]
}

/// The scopes a Slack feature needs: without a required one it cannot
/// work; without a helpful one it loses what the text says.
pub struct ScopeNeed {
    /// The feature.
    pub feature: Feature,
    /// Scopes it cannot do without.
    pub required: &'static [&'static str],
    /// Scopes that add something, and what.
    pub helpful: &'static [(&'static str, &'static str)],
    /// It answers requests Slack sends (events, commands).
    pub inbound: bool,
}

/// What each Slack feature needs (the app manifest's scopes, by feature;
/// a test holds the two together).
pub const SLACK_NEEDS: [ScopeNeed; 4] = [
    ScopeNeed {
        feature: Feature::ChannelPosts,
        required: &["chat:write", "channels:read"],
        helpful: &[
            ("groups:read", "private channels cannot be found by name"),
            (
                "channels:history",
                "a post whose answer was lost cannot be found, so it may be posted twice",
            ),
            ("groups:history", "the same in private channels"),
        ],
        inbound: false,
    },
    ScopeNeed {
        feature: Feature::PersonalNotifications,
        required: &["chat:write", "users:read.email"],
        helpful: &[
            (
                "im:write",
                "a DM whose answer was lost cannot be found, so it may be sent twice",
            ),
            ("im:history", "the same"),
        ],
        inbound: false,
    },
    ScopeNeed {
        feature: Feature::LinkPreviews,
        required: &["links:read", "links:write", "users:read"],
        helpful: &[(
            "users:read.email",
            "the person who shared a link is not found by email: only people who linked themselves get previews",
        )],
        inbound: true,
    },
    ScopeNeed {
        feature: Feature::SlashCommands,
        required: &["commands", "users:read"],
        helpful: &[(
            "users:read.email",
            "the person who typed the command is not found by email: only people who linked themselves get answers",
        )],
        inbound: true,
    },
];

/// The report on one Slack connection.
pub fn slack_report(f: &SlackFacts, u: &SlackUsage) -> SlackReport {
    let failure = match &f.auth {
        Ok(_) => None,
        Err(SlackFailure::SecretUnreadable(m)) => Some(Verdict::new(
            State::Unavailable,
            format!("its token cannot be read: {m}"),
            Some(format!(
                "pagehook connect slack {} --token-env VAR --signing-secret-env VAR",
                f.connection
            )),
        )),
        Err(SlackFailure::Refused(code)) => Some(Verdict::new(
            State::Unavailable,
            format!(
                "Slack refused the token: {code}{}",
                crate::slack::auth::refusal_hint(code)
            ),
            Some(format!(
                "reinstall the Slack app if needed and run pagehook connect slack {} --token-env VAR --signing-secret-env VAR with its Bot User OAuth Token",
                f.connection
            )),
        )),
        Err(SlackFailure::Unreachable(m)) => Some(Verdict::new(
            State::Unavailable,
            format!("cannot reach Slack: {m}"),
            Some(format!(
                "check the network path, the proxy and the CA trust (`pagehook connection test {}`)",
                f.connection
            )),
        )),
    };
    let features = SLACK_NEEDS
        .iter()
        .map(|need| {
            let v = match &failure {
                Some(v) => v.clone(),
                None => slack_feature(f, need),
            };
            v.check(need.feature, u.by(need.feature), true)
        })
        .collect();
    SlackReport {
        connection: f.connection.clone(),
        url: f.url.clone(),
        workspace: f.auth.as_ref().ok().map(|w| WorkspaceReport {
            team: w.team.clone(),
            team_id: w.team_id.clone(),
            bot_user: w.bot_user.clone(),
        }),
        error: failure.and_then(|v| v.why.first().cloned()),
        scopes: f.scopes.clone(),
        signing_secret: f.signing_secret,
        socket_mode: matches!(f.socket_mode, Some(Ok(()))),
        last_request_at: f.last_request_at,
        features,
    }
}

fn slack_feature(f: &SlackFacts, need: &ScopeNeed) -> Verdict {
    let add_scopes = "add them under OAuth & Permissions > Bot Token Scopes in the Slack app (or paste the app manifest from the console's Connections page), reinstall the app, and connect again if Slack issues a new token";
    let mut v = Verdict::works();
    match &f.scopes {
        None => v.worsen(
            State::Unknown,
            "Slack did not list the token's scopes (no x-oauth-scopes header on auth.test)",
            None,
        ),
        Some(granted) => {
            let has = |s: &str| granted.iter().any(|g| g == s);
            let missing: Vec<&str> = need.required.iter().copied().filter(|s| !has(s)).collect();
            if !missing.is_empty() {
                v.worsen(
                    State::Unavailable,
                    format!("the token lacks the scope(s) {}", missing.join(", ")),
                    Some(add_scopes.to_owned()),
                );
            }
            for (scope, loses) in need.helpful {
                if !has(scope) {
                    v.worsen(
                        State::Degraded,
                        format!("without {scope}, {loses}"),
                        Some(add_scopes.to_owned()),
                    );
                }
            }
        }
    }
    if need.inbound {
        let socket = match &f.socket_mode {
            Some(Ok(())) => true,
            Some(Err(why)) => {
                v.worsen(
                    State::Unavailable,
                    format!("Socket Mode cannot connect: {why}"),
                    Some(format!(
                        "give an app-level token (xapp-, scope connections:write; the Slack app's Basic Information > App-Level Tokens) with pagehook connect slack {} --token-env VAR --app-token-env VAR",
                        f.connection
                    )),
                );
                true
            }
            None => false,
        };
        if !socket && !f.signing_secret {
            v.worsen(
                State::Unavailable,
                format!(
                    "no app-level token for Socket Mode and no signing secret: Slack's events and commands cannot reach Pagehook (requests to /hooks/slack/{} are refused, 401)",
                    f.connection
                ),
                Some(format!(
                    "pagehook connect slack {} --token-env VAR --app-token-env VAR (Socket Mode: nothing inbound; the Slack app's Basic Information > App-Level Tokens, scope connections:write), or --signing-secret-env VAR for requests to /hooks/slack/{} (Basic Information > Signing Secret)",
                    f.connection, f.connection
                )),
            );
        } else if f.last_request_at.is_none() && !matches!(f.socket_mode, Some(Err(_))) {
            let fix = if socket {
                "check that the Slack app has Socket Mode on, and Event Subscriptions (link_shared) and the /confluence command enabled: they then arrive over the socket".to_owned()
            } else {
                format!(
                    "check that the Slack app's Event Subscriptions (link_shared) and its /confluence command send to <pagehook>/hooks/slack/{}",
                    f.connection
                )
            };
            v.worsen(
                State::Unknown,
                "no request from Slack has arrived yet",
                Some(fix),
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::doctor::facts::{SlackWorkspace, SpacePermissions, SpaceTemplates, TokenFacts};
    use crate::doctor::usage::TemplateUse;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;

    /// How the fake Confluence answers a plain account, a space admin and
    /// a Confluence admin on each version, as the probes would measure it.
    #[derive(Clone, Copy, PartialEq)]
    enum Rights {
        Plain,
        SpaceAdmin,
        ConfluenceAdmin,
    }

    fn facts(version: &str, rights: Rights, emails_public: bool) -> ConfluenceFacts {
        let v = ServerVersion {
            version: version.into(),
            build: Some(1),
            from: "/rest/api/server-information",
        };
        let at_least = |major, minor| !v.before(major, minor);
        let admin = rights == Rights::ConfluenceAdmin;
        let administers = rights != Rights::Plain;
        let spaces = vec!["ENG".to_owned(), "OPS".to_owned()];
        let mut sp = SpacePermissions {
            asked: 2,
            of: 2,
            ..Default::default()
        };
        for s in &spaces {
            if !at_least(9, 1) {
                sp.absent = true;
            } else if administers {
                sp.listed.insert(s.clone());
            } else {
                sp.refused.insert(s.clone(), 500);
            }
        }
        ConfluenceFacts {
            connection: "wiki".into(),
            url: "http://127.0.0.1:1".into(),
            credentials: Credentials::PersonalAccessToken,
            account: Ok(Account {
                username: "pagehook".into(),
                key: "k".into(),
                display_name: None,
            }),
            version: Some(v.clone()),
            admin: if !at_least(9, 4) {
                Admin::Unknown("no list".into())
            } else if admin {
                Admin::Yes("list".into())
            } else {
                Admin::No("403".into())
            },
            spaces: Ok(spaces),
            sample: Some((1, "ENG".into())),
            restrictions: Reach::Yes,
            watchers: if !at_least(9, 0) {
                Reach::Absent
            } else if administers {
                Reach::Yes
            } else {
                Reach::Refused(403)
            },
            space_permissions: sp,
            emails: EmailFacts {
                reach: Reach::Yes,
                own: Some(EmailSeen::Shown),
                others: Some(if emails_public || (admin && at_least(9, 4)) {
                    EmailSeen::Shown
                } else {
                    EmailSeen::Missing
                }),
                other_user: Some("ada".into()),
            },
            admin_list: if !at_least(9, 4) {
                Reach::Absent
            } else if admin {
                Reach::Yes
            } else {
                Reach::Refused(403)
            },
            // Entries name their user and carry email from 10.2.
            admin_list_emails: (admin && at_least(9, 4)).then_some(at_least(10, 2)),
            templates: BTreeMap::from([(
                "OPS".to_owned(),
                SpaceTemplates {
                    reach: Reach::Yes,
                    names: vec!["Retro".into()],
                },
            )]),
            search: Reach::Yes,
            search_nested_404: false,
            token: Some(TokenFacts {
                reach: Reach::Yes,
                name: Some("sidecar".into()),
                expires_at: Some(NOW + 80 * DAY),
            }),
        }
    }

    fn everything_bound() -> ConfluenceUsage {
        let by = vec!["binding #1 (slack-poster)".to_owned()];
        let mut u = ConfluenceUsage::default();
        for f in [
            Feature::ChannelPosts,
            Feature::RestrictedFiltering,
            Feature::PersonalNotifications,
            Feature::LinkingByEmail,
            Feature::SelfLinking,
            Feature::Templates,
            Feature::Search,
        ] {
            u.features.insert(f, by.clone());
        }
        u.spaces.insert("ENG".into());
        u.person_everywhere = true;
        u.watchers_by = by.clone();
        u.templates.push(TemplateUse {
            space: "OPS".into(),
            name: "Retro".into(),
            by: by[0].clone(),
        });
        u
    }

    fn state(r: &ConfluenceReport, feature: Feature) -> State {
        r.features
            .iter()
            .find(|c| c.feature == feature)
            .unwrap()
            .state
    }

    fn blocking(r: &ConfluenceReport) -> Vec<Feature> {
        r.features
            .iter()
            .filter(|c| c.blocking)
            .map(|c| c.feature)
            .collect()
    }

    #[test]
    fn on_8_5_whatever_the_rights_one_person_sees_nothing_and_sign_in_is_missing() {
        for rights in [Rights::Plain, Rights::SpaceAdmin, Rights::ConfluenceAdmin] {
            let r = confluence_report(&facts("8.5.16", rights, true), &everything_bound(), NOW);
            assert_eq!(state(&r, Feature::ChannelPosts), State::Works);
            assert_eq!(state(&r, Feature::RestrictedFiltering), State::Unavailable);
            assert_eq!(
                state(&r, Feature::PersonalNotifications),
                State::Unavailable
            );
            assert_eq!(state(&r, Feature::Search), State::Unavailable);
            assert_eq!(state(&r, Feature::LinkingByEmail), State::Unavailable);
            assert_eq!(state(&r, Feature::SelfLinking), State::Works);
            assert_eq!(state(&r, Feature::SpaceAdminSignIn), State::Unavailable);
            assert_eq!(state(&r, Feature::Templates), State::Works);
            let pn = r
                .features
                .iter()
                .find(|c| c.feature == Feature::PersonalNotifications)
                .unwrap();
            assert!(
                pn.why.iter().any(
                    |w| w.contains("Confluence 8.5.16 (8.5 LTS) has no space permissions REST")
                ),
                "{pn:?}"
            );
            assert!(pn.why.iter().any(|w| w.contains("watchers")), "{pn:?}");
            assert!(
                pn.fix
                    .iter()
                    .any(|f| f.contains("upgrade Confluence to 9.1"))
            );
            assert_eq!(
                blocking(&r),
                [
                    Feature::RestrictedFiltering,
                    Feature::PersonalNotifications,
                    Feature::Search
                ],
                "linking by email gives way to self-linking; sign-in is nobody's binding"
            );
        }
    }

    #[test]
    fn on_9_2_a_plain_account_cannot_show_pages_to_one_person_a_space_admin_can() {
        let plain = confluence_report(
            &facts("9.2.3", Rights::Plain, true),
            &everything_bound(),
            NOW,
        );
        assert_eq!(
            state(&plain, Feature::PersonalNotifications),
            State::Unavailable
        );
        let pn = plain
            .features
            .iter()
            .find(|c| c.feature == Feature::PersonalNotifications)
            .unwrap();
        assert!(
            pn.why.iter().any(|w| w.contains("CONFSERVER-99908")),
            "{pn:?}"
        );
        assert!(
            pn.fix.iter().any(|f| f.contains("space admin of ENG, OPS")),
            "{pn:?}"
        );
        assert_eq!(state(&plain, Feature::SpaceAdminSignIn), State::Works);
        assert!(!blocking(&plain).contains(&Feature::SpaceAdminSignIn));

        let admin = confluence_report(
            &facts("9.2.3", Rights::SpaceAdmin, true),
            &everything_bound(),
            NOW,
        );
        assert_eq!(state(&admin, Feature::PersonalNotifications), State::Works);
        assert_eq!(state(&admin, Feature::Search), State::Works);
        assert_eq!(state(&admin, Feature::RestrictedFiltering), State::Works);
        assert_eq!(state(&admin, Feature::LinkingByEmail), State::Unavailable);
        let linking = admin
            .features
            .iter()
            .find(|c| c.feature == Feature::LinkingByEmail)
            .unwrap();
        assert!(
            linking.why[0].contains("(9.2 LTS) has no admin user list"),
            "{linking:?}"
        );
        assert!(blocking(&admin).is_empty(), "{:?}", admin.features);
    }

    #[test]
    fn hidden_emails_degrade_personal_notifications_to_linked_people() {
        let r = confluence_report(
            &facts("9.2.3", Rights::SpaceAdmin, false),
            &everything_bound(),
            NOW,
        );
        assert_eq!(state(&r, Feature::PersonalNotifications), State::Degraded);
        assert_eq!(r.emails.visibility, "admins-only-or-hidden");
        let pn = r
            .features
            .iter()
            .find(|c| c.feature == Feature::PersonalNotifications)
            .unwrap();
        assert!(
            pn.why
                .iter()
                .any(|w| w.contains("only people who linked themselves"))
        );
        assert!(
            pn.fix
                .iter()
                .any(|f| f.contains("User email visibility to Public"))
        );
        assert!(!pn.blocking);
    }

    #[test]
    fn a_confluence_admin_on_9_4_reads_emails_from_profiles_but_links_nobody_by_email() {
        let r = confluence_report(
            &facts("9.4.1", Rights::ConfluenceAdmin, false),
            &everything_bound(),
            NOW,
        );
        assert_eq!(r.emails.visibility, "public-or-admins-only");
        assert_eq!(state(&r, Feature::PersonalNotifications), State::Works);
        assert_eq!(state(&r, Feature::LinkingByEmail), State::Unavailable);
        let linking = r
            .features
            .iter()
            .find(|c| c.feature == Feature::LinkingByEmail)
            .unwrap();
        assert!(linking.why[0].contains("from 10.2"), "{linking:?}");
        assert!(blocking(&r).is_empty(), "self-linking takes its place");
    }

    #[test]
    fn a_confluence_admin_on_10_2_links_by_email_even_when_profiles_hide_them() {
        for version in ["10.2.1"] {
            let mut f = facts(version, Rights::ConfluenceAdmin, false);
            f.emails.others = Some(EmailSeen::Missing);
            let r = confluence_report(&f, &everything_bound(), NOW);
            assert_eq!(r.emails.visibility, "hidden");
            for feature in [
                Feature::ChannelPosts,
                Feature::RestrictedFiltering,
                Feature::PersonalNotifications,
                Feature::LinkingByEmail,
                Feature::SelfLinking,
                Feature::SpaceAdminSignIn,
                Feature::Templates,
                Feature::Search,
            ] {
                assert_eq!(
                    state(&r, feature),
                    State::Works,
                    "{version} {feature:?}: {r:#?}"
                );
            }
            assert_eq!(r.confluence_admin.state, "yes");
        }
    }

    #[test]
    fn unbound_features_are_reported_but_never_block() {
        let r = confluence_report(
            &facts("8.5.16", Rights::Plain, false),
            &ConfluenceUsage::default(),
            NOW,
        );
        assert!(r.features.iter().any(|c| c.state == State::Unavailable));
        assert!(blocking(&r).is_empty());
        // With only channel posts bound, the per-person part is a note.
        let mut u = ConfluenceUsage::default();
        u.features
            .insert(Feature::ChannelPosts, vec!["binding #1 (p)".into()]);
        u.features
            .insert(Feature::RestrictedFiltering, vec!["binding #1 (p)".into()]);
        let r = confluence_report(&facts("8.5.16", Rights::Plain, false), &u, NOW);
        assert_eq!(state(&r, Feature::RestrictedFiltering), State::Works);
        let rf = &r.features[1];
        assert!(
            rf.why[0].starts_with("for one person (nothing uses it now): "),
            "{rf:?}"
        );
        assert!(blocking(&r).is_empty());
    }

    #[test]
    fn refused_credentials_make_every_bound_feature_unavailable_with_the_fix() {
        let mut f = facts("9.2.3", Rights::Plain, true);
        f.account = Err(AccountFailure::Refused(401));
        let r = confluence_report(&f, &everything_bound(), NOW);
        assert!(r.error.as_deref().unwrap().contains("HTTP 401"));
        assert!(r.features.iter().all(|c| c.state == State::Unavailable));
        assert_eq!(blocking(&r).len(), 7, "all but space-admin sign-in");
        assert!(r.features[0].fix[0].contains("Personal Access Tokens"));
        assert!(r.capabilities.is_empty());
    }

    #[test]
    fn templates_name_the_missing_one_and_the_missing_resource() {
        let mut f = facts("9.2.3", Rights::SpaceAdmin, true);
        let mut u = everything_bound();
        u.templates[0].name = "Postmortem".into();
        let r = confluence_report(&f, &u, NOW);
        let t = r
            .features
            .iter()
            .find(|c| c.feature == Feature::Templates)
            .unwrap();
        assert_eq!(t.state, State::Unavailable);
        assert!(t.why[0].contains("no page template named `Postmortem` (it has: Retro)"));
        f.templates.get_mut("OPS").unwrap().reach = Reach::Absent;
        let r = confluence_report(&f, &everything_bound(), NOW);
        let t = r
            .features
            .iter()
            .find(|c| c.feature == Feature::Templates)
            .unwrap();
        assert!(t.why[0].contains("/rest/experimental/template/page"));
        assert!(t.blocking);
    }

    #[test]
    fn search_recovered_from_the_nested_404_is_degraded_not_broken() {
        let mut f = facts("10.0.2", Rights::ConfluenceAdmin, true);
        f.search_nested_404 = true;
        let r = confluence_report(&f, &everything_bound(), NOW);
        assert_eq!(state(&r, Feature::Search), State::Degraded);
        assert!(blocking(&r).is_empty());
    }

    #[test]
    fn email_visibility_as_far_as_it_can_be_told() {
        let e = |own, others| EmailFacts {
            reach: Reach::Yes,
            own,
            others,
            other_user: Some("ada".into()),
        };
        let yes = Admin::Yes("x".into());
        let no = Admin::No("x".into());
        let unknown = Admin::Unknown("x".into());
        use EmailSeen::*;
        let vis = |f: EmailFacts, a: &Admin| email_report(&f, a).visibility;
        assert_eq!(vis(e(Some(Shown), Some(Shown)), &no), "public");
        assert_eq!(
            vis(e(Some(Shown), Some(Shown)), &yes),
            "public-or-admins-only"
        );
        assert_eq!(
            vis(e(Some(Shown), Some(Missing)), &no),
            "admins-only-or-hidden"
        );
        assert_eq!(
            vis(e(Some(Shown), Some(Missing)), &unknown),
            "admins-only-or-hidden"
        );
        assert_eq!(vis(e(Some(Missing), Some(Missing)), &yes), "hidden");
        assert_eq!(vis(e(Some(Masked), Some(Masked)), &no), "masked");
        assert_eq!(vis(e(Some(Missing), None), &no), "admins-only-or-hidden");
        let alone = email_report(&e(Some(Shown), None), &no);
        assert_eq!((alone.visibility, alone.usable), ("unknown", None));
        let absent = email_report(
            &EmailFacts {
                reach: Reach::Absent,
                own: None,
                others: None,
                other_user: None,
            },
            &no,
        );
        assert_eq!((absent.visibility, absent.usable), ("unknown", Some(false)));
    }

    #[test]
    fn people_left_out_are_noted_without_changing_the_verdict() {
        let mut r = confluence_report(
            &facts("10.2.1", Rights::ConfluenceAdmin, true),
            &everything_bound(),
            NOW,
        );
        let mut counts = crate::doctor::PeopleCounts::default();
        note_left_out(&mut r, &counts);
        assert!(r.features[2].why.is_empty());
        counts.left_out.insert("email_hidden".into(), 2);
        counts.left_out.insert("no_profile".into(), 1);
        note_left_out(&mut r, &counts);
        let pn = &r.features[2];
        assert_eq!(pn.feature, Feature::PersonalNotifications);
        assert_eq!(pn.state, State::Works);
        assert_eq!(
            pn.why,
            ["since the server started, 3 people were left out (email_hidden: 2, no_profile: 1)"]
        );
    }

    #[test]
    fn the_token_report_warns_before_expiry() {
        let mut f = facts("9.2.3", Rights::Plain, true);
        assert_eq!(token_report(&f, NOW).state, "ok");
        f.token.as_mut().unwrap().expires_at = Some(NOW + 3 * DAY);
        let t = token_report(&f, NOW);
        assert_eq!(t.state, "expiring");
        assert!(t.message.unwrap().contains("`sidecar` expires on"));
        f.token.as_mut().unwrap().expires_at = Some(NOW - DAY);
        assert_eq!(token_report(&f, NOW).state, "expired");
        f.credentials = Credentials::Password;
        assert_eq!(token_report(&f, NOW).state, "password");
    }

    #[test]
    fn socket_mode_lets_slack_in_without_a_signing_secret_and_a_refused_app_token_is_named() {
        let need = ScopeNeed {
            feature: Feature::SlashCommands,
            required: &[],
            helpful: &[],
            inbound: true,
        };
        let mut f = slack(Some(&[]), false, true);
        assert_eq!(slack_feature(&f, &need).state, State::Unavailable);
        f.socket_mode = Some(Ok(()));
        assert_eq!(slack_feature(&f, &need).state, State::Works);
        f.socket_mode = Some(Err("Slack refused the app-level token: invalid_auth".into()));
        let v = slack_feature(&f, &need);
        assert_eq!(v.state, State::Unavailable);
        assert!(v.why[0].contains("invalid_auth"), "{:?}", v.why);
        assert!(
            v.fix.iter().any(|fix| fix.contains("--app-token-env")),
            "{:?}",
            v.fix
        );
    }

    fn slack(scopes: Option<&[&str]>, signing: bool, seen: bool) -> SlackFacts {
        SlackFacts {
            connection: "acme".into(),
            url: "http://127.0.0.1:1/api/".into(),
            auth: Ok(SlackWorkspace {
                team: "Acme".into(),
                team_id: "T1".into(),
                bot_user: "pagehook".into(),
            }),
            scopes: scopes.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
            signing_secret: signing,
            socket_mode: None,
            last_request_at: seen.then_some(NOW),
        }
    }

    fn slack_usage() -> SlackUsage {
        let mut u = SlackUsage::default();
        for f in Feature::SLACK {
            u.features
                .insert(f, vec!["binding #1 (slack-poster)".into()]);
        }
        u
    }

    fn manifest_scopes() -> Vec<&'static str> {
        crate::slack::app_manifest::SLACK_APP_MANIFEST
            .lines()
            .skip_while(|l| !l.contains("bot:"))
            .skip(1)
            .take_while(|l| l.trim_start().starts_with("- "))
            .filter_map(|l| {
                l.trim_start()
                    .trim_start_matches("- ")
                    .split_whitespace()
                    .next()
            })
            .collect()
    }

    #[test]
    fn slack_features_need_exactly_the_manifest_scopes() {
        let manifest = manifest_scopes();
        let mut needed = BTreeSet::new();
        for need in &SLACK_NEEDS {
            for s in need
                .required
                .iter()
                .chain(need.helpful.iter().map(|(s, _)| s))
            {
                assert!(manifest.contains(s), "{s} is not in the app manifest");
                needed.insert(*s);
            }
        }
        for s in &manifest {
            assert!(
                needed.contains(s),
                "the manifest grants {s}, which no feature needs"
            );
        }
        let all = slack(Some(&manifest), true, true);
        let r = slack_report(&all, &slack_usage());
        assert!(r.features.iter().all(|c| c.state == State::Works), "{r:#?}");
    }

    #[test]
    fn missing_scopes_and_inbound_set_up() {
        let manifest = manifest_scopes();
        let without: Vec<&str> = manifest
            .iter()
            .copied()
            .filter(|s| *s != "links:write" && *s != "groups:history")
            .collect();
        let r = slack_report(&slack(Some(&without), true, true), &slack_usage());
        let by = |f: Feature| r.features.iter().find(|c| c.feature == f).unwrap();
        assert_eq!(by(Feature::LinkPreviews).state, State::Unavailable);
        assert!(by(Feature::LinkPreviews).why[0].contains("links:write"));
        assert!(by(Feature::LinkPreviews).blocking);
        assert_eq!(by(Feature::ChannelPosts).state, State::Degraded);
        assert_eq!(by(Feature::SlashCommands).state, State::Works);

        let r = slack_report(&slack(Some(&manifest), false, false), &slack_usage());
        let by = |f: Feature| r.features.iter().find(|c| c.feature == f).unwrap();
        assert_eq!(by(Feature::SlashCommands).state, State::Unavailable);
        assert!(by(Feature::SlashCommands).why[0].contains("no signing secret"));
        assert_eq!(by(Feature::ChannelPosts).state, State::Works);

        let r = slack_report(&slack(Some(&manifest), true, false), &slack_usage());
        let by = |f: Feature| r.features.iter().find(|c| c.feature == f).unwrap();
        assert_eq!(by(Feature::LinkPreviews).state, State::Unknown);
        assert!(!by(Feature::LinkPreviews).blocking);

        let r = slack_report(&slack(None, true, true), &slack_usage());
        assert!(
            r.features
                .iter()
                .all(|c| c.state == State::Unknown && !c.blocking)
        );

        let mut refused = slack(Some(&manifest), true, true);
        refused.auth = Err(SlackFailure::Refused("invalid_auth".into()));
        let r = slack_report(&refused, &SlackUsage::default());
        assert!(r.error.unwrap().contains("invalid_auth"));
        assert!(
            r.features
                .iter()
                .all(|c| c.state == State::Unavailable && !c.blocking)
        );
    }
}
