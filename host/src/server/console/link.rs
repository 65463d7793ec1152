//! The pages behind `/confluence link`'s one-time link: a person signs in to
//! Confluence, sees which Slack user of which workspace will be linked to
//! which Confluence user, and confirms (see [`crate::self_link`]).
//!
//! 1. `GET /console/link/{token}`: what the link is for, and a sign-in form
//!    (username and password, or a personal access token where the site
//!    signs in through SSO).
//! 2. `POST /console/link/{token}/sign-in`: the credentials go once to the
//!    token's Confluence connection (`GET /rest/api/user/current`, as the
//!    space-admin sign-in does) and are dropped. The token is marked with
//!    who signed in and the hash of a fresh confirmation secret, and the
//!    answer shows both accounts with a form that carries that secret.
//! 3. `POST /console/link/{token}/confirm`: with the secret of the latest
//!    sign-in, the token is used and the link made, in one transaction.
//!
//! Both forms carry a double-submit token (a random value in a
//! `SameSite=Strict` cookie and in the form, compared in constant time), as
//! the console's sign-in does, and failed sign-ins count in its throttle.
//! An unknown, used or expired link gets a page that says which, and what
//! to do. What it must never do: keep or log credentials or tokens, link
//! on a GET, or link an identity other than the one the confirming
//! browser signed in as.

use std::sync::Arc;
use std::time::Duration;

use crate::server::form_errors::PageForm;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::field;
use super::sign_in::{failed, personal_client, throttled};
use crate::confluence::client::ClientError;
use crate::ops::changes::{ChangeAction, log_change};
use crate::self_link::{self, secret_hash};
use crate::server::AppState;
use crate::server::session::{cookie, over_tls, random_token, same_secret, set_cookie};
use crate::store::{ConnectionKind, ConnectionRecord, LinkToken, VerifiedPerson, now_ms};

/// The double-submit cookie of the link forms.
const LINK_COOKIE: &str = "pagehook_link";

/// How long Slack may take to say who a Slack user is, for the page.
const SLACK_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/link/{token}", get(start))
        .route("/link/{token}/sign-in", post(sign_in))
        .route("/link/{token}/confirm", post(confirm))
}

#[derive(Deserialize)]
struct SignInForm {
    csrf: String,
    #[serde(default)]
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct ConfirmForm {
    csrf: String,
    confirm: String,
}

/// What a link request stands for, ready to show.
struct Shown {
    token: LinkToken,
    /// The name Slack shows for the Slack user, if Slack said.
    slack_name: Option<String>,
    /// The Confluence connection, if it still exists.
    confluence: Option<ConnectionRecord>,
    /// The request came from a Teams bot (`link` written to it), not Slack.
    teams: bool,
}

impl Shown {
    /// The chat service's name, for the page's words.
    fn chat(&self) -> &'static str {
        if self.teams { "Teams" } else { "Slack" }
    }
}

/// Whether chat connection `name` is a Teams bot.
async fn is_teams_bot(state: &AppState, name: &str) -> bool {
    matches!(state.store.connection(name).await, Ok(Some(c)) if c.kind == ConnectionKind::TeamsBot)
}

/// A page of its own (the person is not signed in to the console).
fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Pagehook" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                main id="main" class="signin" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page that says the link cannot be used, and why.
fn refused(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        p role="alert" class="alert" { (message) }
        p { "In Slack, type " code { "/confluence link" } " for a new link." }
    };
    (status, shell(title, body)).into_response()
}

fn unknown() -> Response {
    refused(
        StatusCode::NOT_FOUND,
        "Link not known",
        "Pagehook does not know this link: it may be mistyped, or so old that it was forgotten.",
    )
}

fn unavailable() -> Response {
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "Pagehook cannot read its database right now.",
    )
}

/// The answer for a link that cannot be signed in with or confirmed now.
fn not_live(token: &LinkToken) -> Response {
    if token.used_at.is_some() {
        refused(
            StatusCode::GONE,
            "Link already used",
            "This link was used already: each link works once.",
        )
    } else {
        refused(
            StatusCode::GONE,
            "Link expired",
            &format!(
                "This link has expired: links work for {} minutes after /confluence link.",
                self_link::TOKEN_TTL.as_secs() / 60
            ),
        )
    }
}

/// The stored request behind `token` (a path segment), or the page to answer.
async fn lookup(state: &AppState, token: &str) -> Result<(String, LinkToken), Response> {
    // Tokens are 43 URL-safe base64 characters: anything else is not one.
    if token.len() != 43
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(unknown());
    }
    let hash = secret_hash(token);
    match state.store.link_token(&hash).await {
        Ok(Some(t)) => Ok((hash, t)),
        Ok(None) => Err(unknown()),
        Err(e) => {
            tracing::error!(error = %e, "self-link page: cannot read link requests");
            Err(unavailable())
        }
    }
}

/// What the page shows about a link request: the Slack user's name (asked
/// of Slack, best effort) and the Confluence connection.
async fn shown(state: &AppState, token: LinkToken) -> Shown {
    let connections = state.store.connections().await.unwrap_or_default();
    let confluence = connections
        .iter()
        .find(|c| c.name == token.confluence_connection && c.kind == ConnectionKind::Confluence)
        .cloned();
    let slack_name = match connections
        .iter()
        .find(|c| c.name == token.slack_connection && c.kind == ConnectionKind::Slack)
    {
        Some(slack) => slack_name(slack, &token.slack_user).await,
        None => None,
    };
    let teams = connections
        .iter()
        .any(|c| c.name == token.slack_connection && c.kind == ConnectionKind::TeamsBot);
    Shown {
        token,
        slack_name,
        confluence,
        teams,
    }
}

async fn slack_name(slack: &ConnectionRecord, user: &str) -> Option<String> {
    let token = slack.secret.as_ref()?.resolve().ok()?;
    let http = crate::http::client_builder_for(slack.proxy.as_ref())
        .timeout(SLACK_TIMEOUT)
        .build()
        .ok()?;
    let client = crate::slack::SlackClient::new(&http, &slack.url, &token);
    match crate::slack::users::user_name(&client, user).await {
        Ok(name) => name,
        Err(e) => {
            tracing::info!(error = %e, slack = %slack.name, "self-link page: Slack did not say the user's name");
            None
        }
    }
}

/// The Slack side of a link request, as a definition list.
fn slack_side(s: &Shown) -> Markup {
    let t = &s.token;
    if s.teams {
        return html! {
            dt { "Teams user" }
            dd { code { (t.slack_user) } }
            dt { "Microsoft Entra tenant" }
            dd { code { (t.slack_team) } " (Pagehook Teams bot " code { (t.slack_connection) } ")" }
        };
    }
    html! {
        dt { "Slack user" }
        dd {
            @if let Some(name) = &s.slack_name { strong { (name) } " " }
            code { (t.slack_user) }
        }
        dt { "Slack workspace" }
        dd { code { (t.slack_team) } " (Pagehook connection " code { (t.slack_connection) } ")" }
    }
}

fn confluence_name(s: &Shown) -> Markup {
    html! {
        code { (s.token.confluence_connection) }
        @if let Some(c) = &s.confluence { " at " code { (c.url) } }
    }
}

/// The sign-in page of a live link request, with a fresh double-submit token.
fn sign_in_page(
    path_token: &str,
    s: &Shown,
    csrf: &str,
    problem: Option<&str>,
    status: StatusCode,
    secure: bool,
) -> Response {
    let body = html! {
        p { "Link your " (s.chat()) " account to your Confluence account, so that Pagehook shows you in " (s.chat()) " what you may see in Confluence, and sends your Confluence notifications to you." }
        dl { (slack_side(s)) dt { "Confluence" } dd { (confluence_name(s)) } }
        @if let Some(problem) = problem {
            p role="alert" class="alert" { (problem) }
        }
        h2 { "Sign in to Confluence" }
        p class="muted" { "Your credentials are checked with Confluence once and not kept. Where your Confluence signs in through single sign-on, use a personal access token (Confluence: your avatar → Profile → Personal Access Tokens) and leave the username empty." }
        form method="post" action={ "/console/link/" (path_token) "/sign-in" } {
            input type="hidden" name="csrf" value=(csrf);
            (field("username", "Username", Some("Leave empty when you sign in with a personal access token."),
                html! { input id="username" name="username" type="text" autocomplete="username" aria-describedby="username-help"; }))
            (field("password", "Password or personal access token", None,
                html! { input id="password" name="password" type="password" required autocomplete="current-password"; }))
            button type="submit" { "Sign in with Confluence" }
        }
        p class="muted" { "If you did not ask for this link, close this page: nothing changes." }
    };
    let cookie = set_cookie(LINK_COOKIE, csrf, self_link::TOKEN_TTL.as_secs(), secure);
    (
        status,
        [(header::SET_COOKIE, cookie)],
        shell(
            if s.teams {
                "Link your Teams account"
            } else {
                "Link your Slack account"
            },
            body,
        ),
    )
        .into_response()
}

async fn start(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (_, stored) = match lookup(&state, &token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    if !stored.is_live(now_ms()) {
        return not_live(&stored);
    }
    let s = shown(&state, stored).await;
    if s.confluence.is_none() {
        return gone_confluence(&s);
    }
    sign_in_page(
        &token,
        &s,
        &random_token(),
        None,
        StatusCode::OK,
        over_tls(&headers),
    )
}

fn gone_confluence(s: &Shown) -> Response {
    refused(
        StatusCode::GONE,
        "Confluence connection gone",
        &format!(
            "The Confluence connection `{}` this link was made for no longer exists.",
            s.token.confluence_connection
        ),
    )
}

/// Whether a form's double-submit token matches the cookie.
fn csrf_ok(headers: &HeaderMap, given: &str) -> bool {
    cookie(headers, LINK_COOKIE).is_some_and(|c| !c.is_empty() && same_secret(c, given))
}

fn form_expired() -> Response {
    refused(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form expired (or cookies are off). Open the link from Slack again, or ask for a new one.",
    )
}

async fn sign_in(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    PageForm(form): PageForm<SignInForm>,
) -> Response {
    if !csrf_ok(&headers, &form.csrf) {
        return form_expired();
    }
    let (hash, stored) = match lookup(&state, &token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    if !stored.is_live(now_ms()) {
        return not_live(&stored);
    }
    let s = shown(&state, stored).await;
    let secure = over_tls(&headers);
    let again = |s: &Shown, status, problem: &str| {
        sign_in_page(&token, s, &random_token(), Some(problem), status, secure)
    };
    let Some(conn) = s.confluence.clone() else {
        return gone_confluence(&s);
    };
    if throttled() {
        return again(
            &s,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins in the last minute. Wait a minute and try again.",
        );
    }
    if form.password.is_empty() {
        return again(
            &s,
            StatusCode::BAD_REQUEST,
            "Enter your password or personal access token.",
        );
    }
    let client = personal_client(&conn, &form.username, form.password);
    let person = match client.current_user().await {
        Ok(p) => p,
        Err(ClientError::Unauthorized(_)) => {
            failed();
            return again(
                &s,
                StatusCode::UNAUTHORIZED,
                &format!(
                    "Confluence `{}` did not accept that username and password or token.",
                    conn.name
                ),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, source = %conn.name, "self-link sign-in: Confluence could not be asked");
            return again(
                &s,
                StatusCode::BAD_GATEWAY,
                &format!("Pagehook could not ask Confluence `{}`: {e}", conn.name),
            );
        }
    };
    drop(client);
    let verified = VerifiedPerson {
        user_key: person.key.clone(),
        username: person.username.clone(),
        display_name: person.display_name.clone(),
    };
    let confirm_secret = random_token();
    match state
        .store
        .verify_link_token(&hash, &verified, &secret_hash(&confirm_secret))
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return match state.store.link_token(&hash).await {
                Ok(Some(t)) => not_live(&t),
                _ => unknown(),
            };
        }
        Err(e) => {
            tracing::error!(error = %e, "self-link sign-in: cannot record who signed in");
            return unavailable();
        }
    }
    let csrf = random_token();
    let confluence_user = match (&verified.display_name, &verified.username) {
        (Some(d), Some(u)) if d != u => format!("{d} ({u})"),
        (Some(d), _) => d.clone(),
        (None, Some(u)) => u.clone(),
        (None, None) => verified.user_key.clone(),
    };
    let body = html! {
        p { "Confluence says you are " strong { (confluence_user) } ". Link these accounts?" }
        dl {
            (slack_side(&s))
            dt { "Confluence user" }
            dd { strong { (confluence_user) } " (user key " code { (verified.user_key) } ")" }
            dt { "Confluence" }
            dd { (confluence_name(&s)) }
        }
        @if s.teams {
            p { "Once linked, searches and buttons of this Teams bot show what this Confluence user may see. " code { "unlink" } " written to the bot undoes it." }
        } @else {
            p { "Once linked, link previews and searches in this Slack workspace show what this Confluence user may see, and Confluence notifications for this user go to this Slack account. " code { "/confluence unlink" } " in Slack undoes it." }
        }
        form method="post" action={ "/console/link/" (token) "/confirm" } {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="confirm" value=(confirm_secret);
            button type="submit" { "Link my accounts" }
        }
        p class="muted" { "Not you, or not what you wanted? Close this page: nothing changes." }
    };
    let cookie = set_cookie(LINK_COOKIE, &csrf, self_link::TOKEN_TTL.as_secs(), secure);
    (
        [(header::SET_COOKIE, cookie)],
        shell("Confirm the link", body),
    )
        .into_response()
}

async fn confirm(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    PageForm(form): PageForm<ConfirmForm>,
) -> Response {
    if !csrf_ok(&headers, &form.csrf) {
        return form_expired();
    }
    let (hash, _) = match lookup(&state, &token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let link = match state
        .store
        .complete_link(&hash, &secret_hash(&form.confirm))
        .await
    {
        Ok(Some(link)) => link,
        Ok(None) => {
            return match state.store.link_token(&hash).await {
                Ok(Some(t)) if !t.is_live(now_ms()) => not_live(&t),
                Ok(Some(_)) => refused(
                    StatusCode::CONFLICT,
                    "Sign in again",
                    "This confirmation is not the latest sign-in with this link (was it opened twice?). Open the link again and sign in.",
                ),
                _ => unknown(),
            };
        }
        Err(e) => {
            tracing::error!(error = %e, "self-link: cannot store the link");
            return unavailable();
        }
    };
    let who = link
        .confluence_username
        .clone()
        .unwrap_or_else(|| link.confluence_user_key.clone());
    let actor = format!(
        "{who} (Confluence user on `{}`, /confluence link)",
        link.confluence_connection
    );
    log_change(
        &state.store,
        &actor,
        ChangeAction::LinkAdd,
        &self_link::target(&link),
        self_link::detail(&link),
    )
    .await;
    tracing::info!(slack = %link.slack_connection, user = %link.slack_user, confluence = %link.confluence_connection, "a chat user linked themselves");
    let teams = is_teams_bot(&state, &link.slack_connection).await;
    if teams {
        crate::server::teams_hooks::confirm_link(&state.store, &link).await;
    }
    let body = if teams {
        html! {
            p role="status" class="notice" {
                "Linked: Teams user " code { (link.slack_user) } " of tenant " code { (link.slack_team) }
                " is now Confluence user " strong { (link.confluence_label()) } " of " code { (link.confluence_connection) } "."
            }
            p { "Searches and buttons of the Teams bot now show what you may see in Confluence, and the bot confirms it in your chat. " code { "disconnect" } " written to the bot undoes the link." }
            p { "You can close this page." }
        }
    } else {
        html! {
        p role="status" class="notice" {
            "Linked: Slack user " code { (link.slack_user) } " of workspace " code { (link.slack_team) }
            " is now Confluence user " strong { (link.confluence_label()) } " of " code { (link.confluence_connection) } "."
        }
        p { "Link previews and " code { "/confluence search" } " in Slack now show what you may see in Confluence. " code { "/confluence unlink" } " in Slack undoes the link." }
        p { "You can close this page." }
        }
    };
    (
        [(
            header::SET_COOKIE,
            set_cookie(LINK_COOKIE, "", 0, over_tls(&headers)),
        )],
        shell("Linked", body),
    )
        .into_response()
}
