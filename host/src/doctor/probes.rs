//! The requests `pagehook doctor` makes, and what it keeps of the answers
//! ([`super::facts`]).
//!
//! Confluence, through the connection's own client (`source::client`), one
//! attempt per request and no waiting on rate limits:
//!
//! | what | request | tells |
//! | --- | --- | --- |
//! | version | `GET /rest/api/server-information` (9.1+), else `GET /rest/applinks/1.0/manifest` | version and build |
//! | account | `GET /rest/api/user/current` | the credentials work, whose they are |
//! | spaces | `GET /rest/api/space?type=global` (paged) | the spaces it may view |
//! | a page, search | `GET /rest/api/content/search?cql=type = page ...&expand=<chat search's>`; on 404 again without the nested ancestors' restrictions | search works; a page to try the rest on |
//! | restrictions | `GET /rest/api/content/{id}?expand=restrictions.read...,ancestors.restrictions.read...` | enrichment can read view restrictions |
//! | watchers | `GET /rest/api/content/{id}/watchers?limit=1` | 200 / 403 (not an admin) / 404 (before 9.0) |
//! | space permissions | `GET /rest/api/space/{key}/permissions` for the bound spaces first, at most [`MAX_SPACES`] | which spaces it administers; 404 before 9.1 |
//! | admin | `GET /rest/api/admin/users/list/active?limit=5` (9.4+); before, membership of `confluence-administrators` | Confluence administrator; the list carries emails |
//! | emails | `GET /rest/mobile/1.0/profile/{username}`, its own and one other user's | email visibility |
//! | templates | `GET /rest/experimental/template/page?spaceKey=` for each space a binding names one in | the resource exists, the templates' names |
//! | token | `GET /rest/pat/latest/tokens` | the PAT's expiry |
//!
//! Slack: `auth.test` (who the token is, and its scopes from the
//! `x-oauth-scopes` header); whether a signing secret is set.
//!
//! What it must never do: write anything (only `GET`s and Slack's read
//! `auth.test`), retry or wait (a doctor run must end within a few
//! timeouts), or keep a secret beyond the request.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::Value;

use super::facts::{
    Account, AccountFailure, Admin, ConfluenceFacts, Credentials, EmailFacts, EmailSeen, Reach,
    ServerVersion, SlackFacts, SlackFailure, SlackWorkspace, SpacePermissions, SpaceTemplates,
    TokenFacts,
};
use super::usage::Usage;
use crate::confluence::client::{
    ClientError, ClientOptions, ConfluenceAuth, ConfluenceClient, Probed, SEARCH_EXPAND,
    SEARCH_EXPAND_FLAT, encoded, token_in_use,
};
use crate::store::{ConnectionRecord, now_ms};

/// Most spaces whose permissions are asked for (bound spaces first).
pub const MAX_SPACES: usize = 50;
/// Space permission requests in flight at once.
const CONCURRENT: usize = 8;
/// The group Confluence gives the Confluence Administrator permission by default.
const ADMIN_GROUP: &str = "confluence-administrators";
/// What the restrictions probe asks for: the content's own and its
/// ancestors' view restrictions, as enrichment does.
const RESTRICTIONS_PROBE_EXPAND: &str = "restrictions.read.restrictions.user,restrictions.read.restrictions.group,ancestors.restrictions.read.restrictions.user,ancestors.restrictions.read.restrictions.group";

fn untried(why: &str) -> Reach {
    Reach::Untried(why.to_owned())
}

/// A fact sheet where nothing was asked yet.
fn nothing_asked(conn: &ConnectionRecord, why: &str) -> ConfluenceFacts {
    ConfluenceFacts {
        connection: conn.name.clone(),
        url: crate::store::redacted_url(&conn.url),
        credentials: Credentials::None,
        account: Err(AccountFailure::NoToken),
        version: None,
        admin: Admin::Unknown(why.to_owned()),
        spaces: Err(why.to_owned()),
        sample: None,
        restrictions: untried(why),
        watchers: untried(why),
        space_permissions: SpacePermissions::default(),
        emails: EmailFacts {
            reach: untried(why),
            own: None,
            others: None,
            other_user: None,
        },
        admin_list: untried(why),
        admin_list_emails: None,
        templates: BTreeMap::new(),
        search: untried(why),
        search_nested_404: false,
        token: None,
    }
}

/// What a non-2xx status means for a capability.
fn reach_of(status: u16, what: &str) -> Reach {
    match status {
        200..=299 => Reach::Yes,
        401 | 403 => Reach::Refused(status),
        404 => Reach::Absent,
        s => Reach::Failed(format!("{what} answered HTTP {s}")),
    }
}

fn failed(e: &ClientError) -> Reach {
    Reach::Failed(e.to_string())
}

/// Measures one Confluence connection.
pub async fn confluence(
    conn: &ConnectionRecord,
    usage: &Usage,
    timeout: Duration,
) -> ConfluenceFacts {
    let auth = match ConfluenceAuth::of(conn) {
        Ok(Some(auth)) => auth,
        Ok(None) => return nothing_asked(conn, "the connection has no token"),
        Err(message) => {
            let mut f = nothing_asked(conn, "its token cannot be read");
            f.account = Err(AccountFailure::SecretUnreadable(message));
            return f;
        }
    };
    let mut f = nothing_asked(conn, "the service account could not be read");
    f.credentials = match auth {
        ConfluenceAuth::Bearer(_) => Credentials::PersonalAccessToken,
        ConfluenceAuth::Basic { .. } => Credentials::Password,
    };
    let client = ConfluenceClient::new(
        &conn.url,
        auth,
        ClientOptions {
            timeout,
            max_retry_after: timeout,
            max_inline_wait: Duration::ZERO,
            attempts: 1,
            proxy: conn.proxy.clone(),
        },
    );
    f.version = version(&client).await;
    f.account = account(&client).await;
    let Ok(me) = f.account.clone() else {
        return f;
    };
    let used = usage
        .confluence
        .get(&conn.name)
        .cloned()
        .unwrap_or_default();
    f.spaces = client.spaces().await.map_err(|e| e.to_string());
    let readable: Vec<String> = f.spaces.clone().unwrap_or_default();

    // Search, and a page to try the per-content probes on: in a bound
    // space when there is one.
    let preferred: Vec<&String> = used
        .spaces
        .iter()
        .chain(&used.person_spaces)
        .filter(|s| readable.contains(s))
        .collect();
    let mut cql = match preferred.first() {
        Some(space) => format!("type = page and space = \"{space}\""),
        None => "type = page".to_owned(),
    };
    let mut results = Vec::new();
    for _ in 0..2 {
        let (reach, nested_404, found) = search(&client, &cql).await;
        f.search = reach;
        f.search_nested_404 = nested_404;
        results = found;
        if !results.is_empty() || cql == "type = page" || !f.search.is_yes() {
            break;
        }
        cql = "type = page".to_owned();
    }
    f.sample = results.iter().find_map(|r| {
        let id = r.get("id")?;
        let id = id.as_u64().or_else(|| id.as_str()?.parse().ok())?;
        let space = r.pointer("/space/key")?.as_str()?.to_owned();
        Some((id, space))
    });
    let mut others: Vec<String> = results
        .iter()
        .flat_map(|r| {
            ["/version/by/username", "/history/createdBy/username"]
                .iter()
                .filter_map(|p| r.pointer(p).and_then(Value::as_str).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .filter(|u| !u.eq_ignore_ascii_case(&me.username))
        .collect();

    match f.sample.clone() {
        Some((id, _)) => {
            f.restrictions = restrictions(&client, id).await;
            f.watchers = match client
                .probe(&format!("/rest/api/content/{id}/watchers?limit=1"))
                .await
            {
                Ok(p) => reach_of(p.status, "the watchers list"),
                Err(e) => failed(&e),
            };
        }
        None => {
            let why = "the account may view no page to try it on";
            f.restrictions = untried(why);
            f.watchers = untried(why);
        }
    }

    let mut ask: Vec<String> = used
        .spaces
        .iter()
        .chain(&used.person_spaces)
        .chain(used.templates.iter().map(|t| &t.space))
        .filter(|s| readable.contains(s))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for s in &readable {
        if ask.len() >= MAX_SPACES {
            break;
        }
        if !ask.contains(s) {
            ask.push(s.clone());
        }
    }
    f.space_permissions = space_permissions(&client, &ask, readable.len()).await;

    let (admin, list, list_emails, listed_users) = admin(&client, &me).await;
    f.admin = admin;
    f.admin_list = list;
    f.admin_list_emails = list_emails;
    others.extend(listed_users);
    others.retain(|u| !u.eq_ignore_ascii_case(&me.username));
    f.emails = emails(&client, &me.username, others.first().map(String::as_str)).await;

    let mut template_spaces: BTreeSet<String> =
        used.templates.iter().map(|t| t.space.clone()).collect();
    if template_spaces.is_empty()
        && let Some(space) = f
            .sample
            .as_ref()
            .map(|(_, s)| s.clone())
            .or_else(|| readable.first().cloned())
    {
        template_spaces.insert(space);
    }
    for space in template_spaces {
        let t = templates(&client, &space, readable.contains(&space)).await;
        f.templates.insert(space, t);
    }

    if f.credentials == Credentials::PersonalAccessToken {
        f.token = Some(match client.tokens().await {
            Ok(Some(tokens)) => {
                let chosen = token_in_use(&tokens, now_ms())
                    .or_else(|| tokens.iter().find(|t| t.expires_at.is_none()));
                TokenFacts {
                    reach: Reach::Yes,
                    name: chosen.map(|t| t.name.clone()),
                    expires_at: chosen.and_then(|t| t.expires_at),
                }
            }
            Ok(None) => TokenFacts {
                reach: Reach::Absent,
                name: None,
                expires_at: None,
            },
            Err(ClientError::Unauthorized(s)) => TokenFacts {
                reach: Reach::Refused(s),
                name: None,
                expires_at: None,
            },
            Err(e) => TokenFacts {
                reach: failed(&e),
                name: None,
                expires_at: None,
            },
        });
    }
    f
}

/// The version from `/rest/api/server-information` (documented from 9.1),
/// else from the application-links manifest every Atlassian product serves.
async fn version(client: &ConfluenceClient) -> Option<ServerVersion> {
    for from in [
        "/rest/api/server-information",
        "/rest/applinks/1.0/manifest",
    ] {
        let body = match client.probe(from).await {
            Ok(Probed {
                status: 200,
                body: Some(body),
            }) => body,
            Ok(_) => continue,
            // Unreachable: the account probe says so; no second timeout.
            Err(_) => return None,
        };
        let Some(version) = body.get("version").and_then(Value::as_str) else {
            continue;
        };
        let build = body.get("buildNumber").and_then(|b| {
            b.as_u64()
                .or_else(|| b.as_str().and_then(|s| s.parse().ok()))
        });
        return Some(ServerVersion {
            version: version.to_owned(),
            build,
            from,
        });
    }
    None
}

async fn account(client: &ConfluenceClient) -> Result<Account, AccountFailure> {
    let answer = match client.probe("/rest/api/user/current").await {
        Ok(a) => a,
        // A refused certificate is named in words, with the fix.
        Err(e) => {
            return Err(AccountFailure::Unreachable(
                match crate::http::tls::check(client.base_url()).await {
                    Err(certificate) => certificate,
                    Ok(()) => e.to_string(),
                },
            ));
        }
    };
    match answer.status {
        200 => {}
        401 | 403 => return Err(AccountFailure::Refused(answer.status)),
        s => {
            return Err(AccountFailure::Unreachable(format!(
                "GET /rest/api/user/current answered HTTP {s}"
            )));
        }
    }
    let body = answer.body.unwrap_or(Value::Null);
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match (field("username"), field("userKey")) {
        (Some(username), Some(key)) => Ok(Account {
            username,
            key,
            display_name: field("displayName"),
        }),
        // Confluence answers an anonymous user when it ignored the credentials.
        _ => Err(AccountFailure::Refused(401)),
    }
}

/// The search chat answers make (with its expansion), and its results.
async fn search(client: &ConfluenceClient, cql: &str) -> (Reach, bool, Vec<Value>) {
    let path = |expand: &str| {
        format!(
            "/rest/api/content/search?cql={}&limit=5&expand={expand}",
            encoded(cql)
        )
    };
    let results = |p: &Probed| {
        p.body
            .as_ref()
            .and_then(|b| b.get("results"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let first = match client.probe(&path(SEARCH_EXPAND)).await {
        Ok(p) => p,
        Err(e) => return (failed(&e), false, Vec::new()),
    };
    if first.status != 404 {
        return (reach_of(first.status, "the search"), false, results(&first));
    }
    match client.probe(&path(SEARCH_EXPAND_FLAT)).await {
        Ok(p) if p.status == 200 => (Reach::Yes, true, results(&p)),
        Ok(p) => (reach_of(p.status, "the search"), false, Vec::new()),
        Err(e) => (failed(&e), false, Vec::new()),
    }
}

async fn restrictions(client: &ConfluenceClient, id: u64) -> Reach {
    let answer = match client
        .probe(&format!(
            "/rest/api/content/{id}?status=any&expand={RESTRICTIONS_PROBE_EXPAND}"
        ))
        .await
    {
        Ok(p) => p,
        Err(e) => return failed(&e),
    };
    if answer.status != 200 {
        return reach_of(answer.status, "the page with its restrictions");
    }
    match answer
        .body
        .as_ref()
        .and_then(|b| b.pointer("/restrictions/read/restrictions"))
    {
        Some(Value::Object(_)) => Reach::Yes,
        _ => Reach::Failed("the page came back without its view restrictions expanded".to_owned()),
    }
}

async fn space_permissions(
    client: &ConfluenceClient,
    spaces: &[String],
    of: usize,
) -> SpacePermissions {
    let mut out = SpacePermissions {
        asked: spaces.len(),
        of,
        ..SpacePermissions::default()
    };
    let mut answers = futures::stream::iter(spaces.iter().cloned())
        .map(|key| async move {
            let answer = client
                .probe(&format!("/rest/api/space/{}/permissions", encoded(&key)))
                .await;
            (key, answer)
        })
        .buffer_unordered(CONCURRENT);
    while let Some((key, answer)) = answers.next().await {
        match answer {
            Ok(p) => match p.status {
                200 => {
                    out.listed.insert(key);
                }
                401 | 403 => {
                    out.refused.insert(key, p.status);
                }
                404 => out.absent = true,
                // CONFSERVER-99908: a 500 to a caller who does not
                // administer the space.
                s @ 500..=599 => {
                    out.refused.insert(key, s);
                }
                s => {
                    out.failed.insert(key, format!("HTTP {s}"));
                }
            },
            Err(e) => {
                out.failed.insert(key, e.to_string());
            }
        }
    }
    out
}

/// Whether the account is a Confluence administrator, what the admin user
/// list answered, whether it carried emails, and the usernames it listed.
async fn admin(
    client: &ConfluenceClient,
    me: &Account,
) -> (Admin, Reach, Option<bool>, Vec<String>) {
    let answer = match client
        .probe("/rest/api/admin/users/list/active?limit=5")
        .await
    {
        Ok(p) => p,
        Err(e) => {
            return (
                Admin::Unknown(format!("the admin user list could not be read: {e}")),
                failed(&e),
                None,
                Vec::new(),
            );
        }
    };
    match answer.status {
        200 => {
            let users: Vec<Value> = answer
                .body
                .as_ref()
                .and_then(|b| b.get("results"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // An entry helps only when it names its user (by key or
            // username, documented from 10.2) and carries a usable email.
            let emails = users.iter().any(|u| {
                let names = ["userKey", "username"].iter().any(|k| {
                    u.get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|v| !v.is_empty())
                });
                names
                    && u.get("email")
                        .and_then(Value::as_str)
                        .and_then(crate::enrich::emails::usable_email)
                        .is_some()
            });
            let names = users
                .iter()
                .filter_map(|u| u.get("username").and_then(Value::as_str))
                .map(str::to_owned)
                .collect();
            (
                Admin::Yes(
                    "the admin user list, which Confluence shows only to its administrators, answered"
                        .into(),
                ),
                Reach::Yes,
                Some(emails),
                names,
            )
        }
        401 | 403 => (
            Admin::No(format!(
                "the admin user list (Confluence administrators only) answered HTTP {}",
                answer.status
            )),
            Reach::Refused(answer.status),
            None,
            Vec::new(),
        ),
        404 => {
            let admin = match client.groups(&me.username).await {
                Ok(groups) if groups.iter().any(|g| g == ADMIN_GROUP) => Admin::Yes(format!(
                    "member of {ADMIN_GROUP}, the group Confluence gives the administrator permission by default (this version has no admin user list to ask)"
                )),
                Ok(_) => Admin::Unknown(format!(
                    "this version has no REST resource that says so (the admin user list is 9.4+), and the account is not in {ADMIN_GROUP}"
                )),
                Err(e) => Admin::Unknown(format!("its groups could not be read: {e}")),
            };
            (admin, Reach::Absent, None, Vec::new())
        }
        s => (
            Admin::Unknown(format!("the admin user list answered HTTP {s}")),
            Reach::Failed(format!("the admin user list answered HTTP {s}")),
            None,
            Vec::new(),
        ),
    }
}

/// What the profile of `username` shows of its email; `None` when it is
/// no profile of that user (`unknownUser`, `anonymous`, another name).
fn seen(body: Option<&Value>, username: &str) -> Option<EmailSeen> {
    use crate::enrich::emails::ProfileAnswer;
    let body = body?;
    if ProfileAnswer::from_profile(body, username) == ProfileAnswer::NoProfile {
        return None;
    }
    Some(
        match body.get("email").and_then(Value::as_str).map(str::trim) {
            Some(e) if crate::enrich::emails::usable_email(e).is_some() => EmailSeen::Shown,
            Some(e) if !e.is_empty() => EmailSeen::Masked,
            _ => EmailSeen::Missing,
        },
    )
}

async fn emails(client: &ConfluenceClient, own: &str, other: Option<&str>) -> EmailFacts {
    let profile = |user: &str| format!("/rest/mobile/1.0/profile/{}", encoded(user));
    let mut facts = EmailFacts {
        reach: untried(""),
        own: None,
        others: None,
        other_user: None,
    };
    match client.probe(&profile(own)).await {
        Ok(p) if p.status == 200 => {
            facts.reach = Reach::Yes;
            facts.own = seen(p.body.as_ref(), own);
        }
        Ok(p) => {
            facts.reach = reach_of(p.status, "the account's own profile");
            return facts;
        }
        Err(e) => {
            facts.reach = failed(&e);
            return facts;
        }
    }
    if let Some(other) = other
        && let Ok(p) = client.probe(&profile(other)).await
        && p.status == 200
        && let Some(shown) = seen(p.body.as_ref(), other)
    {
        facts.others = Some(shown);
        facts.other_user = Some(other.to_owned());
    }
    facts
}

async fn templates(client: &ConfluenceClient, space: &str, readable: bool) -> SpaceTemplates {
    let answer = client
        .probe(&format!(
            "/rest/experimental/template/page?spaceKey={}&limit=100",
            encoded(space)
        ))
        .await;
    match answer {
        Ok(p) if p.status == 200 => SpaceTemplates {
            reach: Reach::Yes,
            names: p
                .body
                .as_ref()
                .and_then(|b| b.get("results"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect(),
        },
        Ok(p) if p.status == 404 && !readable => SpaceTemplates {
            reach: Reach::Failed(format!(
                "space {space} does not exist or the account may not view it"
            )),
            names: Vec::new(),
        },
        Ok(p) => SpaceTemplates {
            reach: reach_of(p.status, "the page templates"),
            names: Vec::new(),
        },
        Err(e) => SpaceTemplates {
            reach: failed(&e),
            names: Vec::new(),
        },
    }
}

/// Measures one Slack connection: `auth.test` with the token's scopes.
pub async fn slack(
    conn: &ConnectionRecord,
    last_request_at: Option<i64>,
    timeout: Duration,
) -> SlackFacts {
    use crate::slack::{SlackClient, SlackError, auth};
    let mut f = SlackFacts {
        connection: conn.name.clone(),
        url: conn.url.clone(),
        auth: Err(SlackFailure::SecretUnreadable(
            "the connection has no token".into(),
        )),
        scopes: None,
        signing_secret: conn
            .hook_secret
            .as_ref()
            .is_some_and(|s| s.resolve().is_ok()),
        socket_mode: None,
        last_request_at,
    };
    let token = match conn.secret.as_ref().map(|s| s.resolve()) {
        Some(Ok(token)) => token,
        Some(Err(message)) => {
            f.auth = Err(SlackFailure::SecretUnreadable(message));
            return f;
        }
        None => return f,
    };
    let http = match crate::http::client_builder_for(conn.proxy.as_ref())
        .timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            f.auth = Err(SlackFailure::Unreachable(format!(
                "cannot make an HTTP client: {e}"
            )));
            return f;
        }
    };
    f.auth = match auth::auth_test_with_scopes(&SlackClient::new(&http, &conn.url, &token)).await {
        Ok((ws, scopes)) => {
            f.scopes = scopes;
            Ok(SlackWorkspace {
                team: ws.team,
                team_id: ws.team_id,
                bot_user: ws.user,
            })
        }
        Err(SlackError::Api { code, .. }) => Err(SlackFailure::Refused(code)),
        Err(e) => Err(SlackFailure::Unreachable(e.to_string())),
    };
    f.socket_mode = match conn.app_token.as_ref().map(|s| s.resolve()) {
        None => None,
        Some(Err(message)) => Some(Err(format!(
            "the app-level token cannot be read: {message}"
        ))),
        Some(Ok(app_token)) => Some(
            match crate::slack::socket_mode::open_connection(&SlackClient::new(
                &http, &conn.url, &app_token,
            ))
            .await
            {
                Ok(_) => Ok(()),
                Err(SlackError::Api { code, .. }) => Err(format!(
                    "Slack refused the app-level token: {code}{}",
                    crate::slack::socket_mode::refusal_hint(&code)
                )),
                Err(e) => Err(e.to_string()),
            },
        ),
    };
    f
}
