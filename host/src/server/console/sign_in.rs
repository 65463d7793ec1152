//! Signing in and out of the console.
//!
//! The Pagehook admin signs in with the admin token. A Confluence space
//! admin signs in with their own Confluence credentials (a personal access
//! token, or username and password), which are sent once to the chosen
//! Confluence connection to ask who they are and which spaces they
//! administer (`source::space_admin`), then dropped. Either way the browser
//! gets a session cookie (see `server::session`) and the sign-in lands in
//! the change log.
//!
//! The sign-in forms have no session yet, so they carry a double-submit
//! token: a random value both in a `SameSite=Strict` cookie and in the
//! form, compared in constant time. What it must never do: keep or log the
//! credentials, or say which part of a wrong sign-in was wrong beyond what
//! Confluence said.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server::form_errors::PageForm;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::field;
use crate::confluence::client::{ClientError, ClientOptions, ConfluenceAuth, ConfluenceClient};
use crate::ops::changes::{ChangeAction, log_change};
use crate::secret::Secret;
use crate::server::AppState;
use crate::server::session::{
    self, Principal, SESSION_COOKIE, SpaceAdmin, cookie, id_hash, over_tls, random_token,
    same_secret, set_cookie,
};
use crate::store::{ConnectionKind, ConnectionRecord};

/// The double-submit cookie of the sign-in forms.
const SIGN_IN_COOKIE: &str = "pagehook_sign_in";

/// Failed sign-ins (wrong admin token, credentials Confluence refused)
/// allowed per [`FAILURE_WINDOW`] in this process; then sign-in answers 429
/// until the window has passed. It slows guessing the admin token, and
/// keeps Pagehook from hammering Confluence with someone's wrong password.
const MAX_FAILURES: usize = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The recent failed sign-ins of this process.
static FAILURES: std::sync::Mutex<std::collections::VecDeque<Instant>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// Whether sign-in is paused after too many failures (also the self-link
/// page's sign-in, which counts in the same window).
pub(super) fn throttled() -> bool {
    let mut failures = FAILURES.lock().unwrap_or_else(|p| p.into_inner());
    while failures
        .front()
        .is_some_and(|t| t.elapsed() >= FAILURE_WINDOW)
    {
        failures.pop_front();
    }
    failures.len() >= MAX_FAILURES
}

/// Counts a failed sign-in.
pub(super) fn failed() {
    FAILURES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back(Instant::now());
}

/// The answer while sign-in is paused.
async fn paused(state: &AppState, headers: &HeaderMap) -> Response {
    form_page(
        state,
        headers,
        StatusCode::TOO_MANY_REQUESTS,
        Some("Too many failed sign-ins in the last minute. Wait a minute and try again."),
    )
    .await
}

/// How long Confluence may take to answer a sign-in's questions.
const CONFLUENCE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sign-in", get(sign_in_page))
        .route("/sign-in/admin", post(sign_in_admin))
        .route("/sign-in/confluence", post(sign_in_confluence))
        .route("/sign-out", post(sign_out))
}

#[derive(Deserialize)]
struct AdminForm {
    csrf: String,
    #[serde(rename = "admin-token")]
    admin_token: String,
}

#[derive(Deserialize)]
struct ConfluenceForm {
    csrf: String,
    source: String,
    #[serde(default)]
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct SignOutForm {
    csrf: String,
}

async fn sign_in_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    // Already signed in: straight to the overview.
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && session::session_caller(&state.store, id).await.is_ok()
    {
        return Redirect::to("/console/overview").into_response();
    }
    form_page(&state, &headers, StatusCode::OK, None).await
}

/// The sign-in page, with a fresh double-submit token (and `problem`).
async fn form_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    problem: Option<&str>,
) -> Response {
    let token = random_token();
    let sources: Vec<String> = match state.store.connections().await {
        Ok(c) => c
            .into_iter()
            // Only connections Pagehook reads Confluence through: a
            // webhook-only one (no token) may point nowhere reachable.
            .filter(offers_sign_in)
            .map(|c| c.name)
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "sign-in page: cannot list Confluence connections");
            Vec::new()
        }
    };
    let cookie = set_cookie(SIGN_IN_COOKIE, &token, 3600, over_tls(headers));
    let body = sign_in_markup(&token, &sources, problem, state.admin_token.is_some());
    (status, [(header::SET_COOKIE, cookie)], body).into_response()
}

fn sign_in_markup(
    token: &str,
    sources: &[String],
    problem: Option<&str>,
    admin_on: bool,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · Pagehook" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                main id="main" class="signin" {
                    h1 { "Sign in to Pagehook" }
                    @if let Some(problem) = problem {
                        p role="alert" class="alert" { (problem) }
                    }
                    section aria-labelledby="admin-heading" {
                        h2 id="admin-heading" { "Sign in as Pagehook admin" }
                        @if admin_on {
                            form method="post" action="/console/sign-in/admin" {
                                input type="hidden" name="csrf" value=(token);
                                (field("admin-token", "Admin token", Some("The server.admin-token of this Pagehook."),
                                    html! { input id="admin-token" name="admin-token" type="password" required autocomplete="current-password" aria-describedby="admin-token-help"; }))
                                button type="submit" { "Sign in as admin" }
                            }
                        } @else {
                            p class="notice" { "No admin token is configured (server.admin-token), so nobody can sign in as admin." }
                        }
                    }
                    section aria-labelledby="confluence-heading" {
                        h2 id="confluence-heading" { "Sign in with Confluence" }
                        p class="muted" { "For Confluence space admins: configure the spaces you administer. Your credentials are checked with Confluence and not kept." }
                        @if sources.is_empty() {
                            p class="notice" { "No Confluence connection with a base URL is set up yet; the Pagehook admin adds one under Connections." }
                        } @else {
                            form method="post" action="/console/sign-in/confluence" {
                                input type="hidden" name="csrf" value=(token);
                                (field("source", "Confluence", None, html! {
                                    select id="source" name="source" {
                                        @for s in sources { option value=(s) { (s) } }
                                    }
                                }))
                                (field("username", "Username", Some("Leave empty when you sign in with a personal access token."),
                                    html! { input id="username" name="username" type="text" autocomplete="username" aria-describedby="username-help"; }))
                                (field("password", "Password or personal access token", None,
                                    html! { input id="password" name="password" type="password" required autocomplete="current-password"; }))
                                button type="submit" { "Sign in with Confluence" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whether space admins may sign in through connection `c`: a Confluence
/// connection with a base URL that Pagehook itself reads with a token (a
/// webhook-only one only receives, and its URL may lead nowhere).
fn offers_sign_in(c: &ConnectionRecord) -> bool {
    c.kind == ConnectionKind::Confluence && !c.url.is_empty() && c.secret.is_some()
}

/// Whether the form's token matches the sign-in cookie.
fn sign_in_token_ok(headers: &HeaderMap, given: &str) -> bool {
    cookie(headers, SIGN_IN_COOKIE).is_some_and(|c| !c.is_empty() && same_secret(c, given))
}

async fn sign_in_admin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    PageForm(form): PageForm<AdminForm>,
) -> Response {
    if !sign_in_token_ok(&headers, &form.csrf) {
        return expired(&state, &headers).await;
    }
    if throttled() {
        return paused(&state, &headers).await;
    }
    let ok = state
        .admin_token
        .as_ref()
        .is_some_and(|t| same_secret(&form.admin_token, t.expose()));
    if !ok {
        failed();
        tracing::warn!("console: a wrong admin token was entered");
        return form_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        )
        .await;
    }
    signed_in(&state, &headers, &Principal::Admin, "admin (console)").await
}

async fn sign_in_confluence(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    PageForm(form): PageForm<ConfluenceForm>,
) -> Response {
    if !sign_in_token_ok(&headers, &form.csrf) {
        return expired(&state, &headers).await;
    }
    if throttled() {
        return paused(&state, &headers).await;
    }
    let refuse = |status, message: String| {
        let state = state.clone();
        let headers = headers.clone();
        async move { form_page(&state, &headers, status, Some(&message)).await }
    };
    let conn = match state.store.connection(&form.source).await {
        Ok(Some(c)) if offers_sign_in(&c) => c,
        Ok(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("There is no Confluence connection named `{}`.", form.source),
            )
            .await;
        }
        Err(e) => {
            tracing::error!(error = %e, "console sign-in: cannot read connections");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "Pagehook cannot read its database right now; try again in a moment.".into(),
            )
            .await;
        }
    };
    if form.password.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Enter your password or personal access token.".into(),
        )
        .await;
    }
    let client = personal_client(&conn, &form.username, form.password);
    let check = match crate::confluence::space_admin::check(&client).await {
        Ok(c) => c,
        Err(ClientError::Unauthorized(_)) => {
            failed();
            return refuse(
                StatusCode::UNAUTHORIZED,
                format!(
                    "Confluence `{}` did not accept that username and password or token.",
                    conn.name
                ),
            )
            .await;
        }
        Err(e) => {
            tracing::warn!(error = %e, source = %conn.name, "console sign-in: Confluence could not be asked");
            return refuse(
                StatusCode::BAD_GATEWAY,
                format!("Pagehook could not ask Confluence `{}`: {e}", conn.name),
            )
            .await;
        }
    };
    let username = check
        .person
        .username
        .clone()
        .unwrap_or_else(|| check.person.key.clone());
    if check.spaces.is_empty() && check.permissions_unlisted {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Confluence `{}` does not list space permissions (GET /rest/api/space/{{key}}/permissions answered 404: Data Center has it from 9.1), so Pagehook cannot tell which spaces {username} administers. Space admins can sign in here once Confluence is 9.1 or later; until then ask the Pagehook admin.",
                conn.name
            ),
        )
        .await;
    }
    if check.spaces.is_empty() {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Confluence says {username} administers no space, so there is nothing here for you to configure. Ask the Pagehook admin, or a space admin, for help."
            ),
        )
        .await;
    }
    let principal = Principal::SpaceAdmin(SpaceAdmin {
        source: conn.name.clone(),
        user_key: check.person.key.clone(),
        display_name: check
            .person
            .display_name
            .clone()
            .unwrap_or_else(|| username.clone()),
        username: username.clone(),
        spaces: check.spaces,
    });
    let actor = format!("{username} (Confluence user on `{}`)", conn.name);
    signed_in(&state, &headers, &principal, &actor).await
}

/// A client that asks the Confluence of `conn` (at its URL, through its
/// proxy) as the person whose
/// credentials these are: a personal access token when `username` is
/// empty, else username and password; one attempt, a short timeout. The
/// credentials live only as long as the client.
pub(super) fn personal_client(
    conn: &ConnectionRecord,
    username: &str,
    password: String,
) -> ConfluenceClient {
    let auth = if username.trim().is_empty() {
        ConfluenceAuth::Bearer(Secret::new(password))
    } else {
        ConfluenceAuth::Basic {
            username: username.trim().to_owned(),
            password: Secret::new(password),
        }
    };
    let options = ClientOptions {
        timeout: CONFLUENCE_TIMEOUT,
        attempts: 1,
        proxy: conn.proxy.clone(),
        ..ClientOptions::default()
    };
    ConfluenceClient::new(&conn.url, auth, options)
}

/// Starts the session, records the sign-in, and goes to the overview.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    principal: &Principal,
    actor: &str,
) -> Response {
    let secure = over_tls(headers);
    let cookie = match session::start(&state.store, principal, secure).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "console sign-in: cannot store the session");
            return form_page(
                state,
                headers,
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Pagehook cannot write its database right now; try again in a moment."),
            )
            .await;
        }
    };
    let spaces = match principal {
        Principal::Admin => serde_json::Value::Null,
        Principal::SpaceAdmin(s) => serde_json::json!(s.spaces),
    };
    log_change(
        &state.store,
        actor,
        ChangeAction::SessionSignIn,
        actor,
        serde_json::json!({ "spaces": spaces }),
    )
    .await;
    (
        // Both cookies: a plain header array would keep only the last.
        AppendHeaders([
            (header::SET_COOKIE, cookie),
            (
                header::SET_COOKIE,
                set_cookie(SIGN_IN_COOKIE, "", 0, secure),
            ),
        ]),
        Redirect::to("/console/overview"),
    )
        .into_response()
}

async fn sign_out(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    PageForm(form): PageForm<SignOutForm>,
) -> Response {
    let secure = over_tls(&headers);
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && let Ok(caller) = session::session_caller(&state.store, id).await
    {
        if !same_secret(&form.csrf, caller.csrf().unwrap_or_default()) {
            return (
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page and sign out again",
            )
                .into_response();
        }
        if let Err(e) = state.store.delete_session(&id_hash(id)).await {
            tracing::error!(error = %e, "console sign-out: cannot end the session");
        }
        let actor = caller.actor();
        log_change(
            &state.store,
            &actor,
            ChangeAction::SessionSignOut,
            &actor,
            serde_json::Value::Null,
        )
        .await;
    }
    (
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", 0, secure),
        )],
        Redirect::to("/console/sign-in"),
    )
        .into_response()
}

/// A sign-in form whose token no longer matches (an old tab, cookies off).
async fn expired(state: &AppState, headers: &HeaderMap) -> Response {
    form_page(
        state,
        headers,
        StatusCode::FORBIDDEN,
        Some("This sign-in form expired (or cookies are off). Please try again."),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_pauses_after_ten_failures_a_minute() {
        assert!(!throttled());
        for _ in 0..MAX_FAILURES - 1 {
            failed();
        }
        assert!(!throttled(), "nine failures still may try");
        failed();
        assert!(throttled());
        // A minute later the window has moved on.
        let old = Instant::now() - FAILURE_WINDOW;
        FAILURES.lock().unwrap().iter_mut().for_each(|t| *t = old);
        assert!(!throttled());
    }
}
