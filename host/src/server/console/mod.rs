//! The admin console: server-rendered pages under `/console`, for the
//! Pagehook admin and for Confluence space admins, served by `pagehook
//! serve` itself (assets embedded in the binary).
//!
//! Pages are read here, in Rust, from the store; every change a page offers
//! is a form that `console.js` sends to the JSON admin API (`/api/...`) with
//! the session's CSRF token in `X-CSRF-Token`, so the API's checks (who may
//! change what, in which space) and its change log apply to the console
//! exactly as to any other client. Only signing in and out, and the pages
//! behind `/confluence link`'s one-time links ([`link`]), are the console's
//! own form posts.
//!
//! What it must never do: show a secret (connections show names and
//! health, never tokens), render text unescaped (maud escapes everything
//! that is not marked `PreEscaped`, and nothing here is), run an inline
//! script (the Content-Security-Policy allows only our own files), or show
//! a space admin anything outside their spaces.

mod assets;
mod binding_form;
mod bindings;
mod changes;
mod connections;
mod deliveries;
mod digests;
mod events;
mod link;
mod live;
mod overview;
mod people;
mod plugins;
mod preview;
mod render;
mod sign_in;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use tower_http::set_header::SetResponseHeaderLayer;

use super::AppState;
use super::session::{Caller, Principal, Refusal, SESSION_COOKIE, cookie, session_caller};

/// The console's routes, mounted at `/console`.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/overview") }))
        .merge(assets::routes())
        .merge(sign_in::routes())
        .merge(overview::routes())
        .merge(connections::routes())
        .merge(people::routes())
        .merge(link::routes())
        .merge(plugins::routes())
        .merge(bindings::routes())
        .merge(preview::routes())
        .merge(events::routes())
        .merge(deliveries::routes())
        .merge(changes::routes())
        .merge(live::routes())
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// Someone signed in to the console (a session cookie). A request without
/// a live session is sent to the sign-in page.
pub struct Viewer {
    pub caller: Caller,
}

impl Viewer {
    pub fn principal(&self) -> &Principal {
        &self.caller.principal
    }

    pub fn is_admin(&self) -> bool {
        self.caller.principal.is_admin()
    }

    /// The session's CSRF token, for the page's `<meta>` and its forms.
    pub fn csrf(&self) -> &str {
        self.caller.csrf().unwrap_or_default()
    }

    /// Refuses a page only the Pagehook admin may see.
    pub fn require_admin(&self, what: &str) -> Result<(), PageError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(PageError::Forbidden(format!(
                "Only the Pagehook admin may see {what}. You are signed in as a space admin of {}.",
                spaces_of(self.principal())
            )))
        }
    }

    /// Refuses a space the viewer does not administer.
    pub fn require_space(&self, space: &str) -> Result<(), PageError> {
        if self.principal().may_administer(space) {
            Ok(())
        } else {
            Err(PageError::Forbidden(format!(
                "You do not administer space {space}. You are signed in as a space admin of {}.",
                spaces_of(self.principal())
            )))
        }
    }
}

/// "ENG, OPS" (or "no space").
fn spaces_of(p: &Principal) -> String {
    match p {
        Principal::Admin => "every space".into(),
        Principal::SpaceAdmin(s) if s.spaces.is_empty() => "no space".into(),
        Principal::SpaceAdmin(s) => s.spaces.iter().cloned().collect::<Vec<_>>().join(", "),
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/console/sign-in").into_response();
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        match session_caller(&state.store, id).await {
            Ok(caller) => Ok(Viewer { caller }),
            Err(Refusal::Unavailable) => Err(PageError::Unavailable.into_response()),
            Err(_) => Err(to_sign_in()),
        }
    }
}

/// Why a page could not be shown; answered as an HTML page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Signed in, but not allowed to see this.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// A query parameter is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The store cannot be read right now.
    #[error("the database cannot be read right now")]
    Unavailable,
    /// Pagehook failed; the detail is logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound(m) => PageError::NotFound(m),
            other => PageError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            PageError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            PageError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            PageError::Invalid(m) => (StatusCode::BAD_REQUEST, m.clone()),
            PageError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database cannot be read right now. Try again in a moment; the log has the details."
                    .to_owned(),
            ),
            PageError::Internal(detail) => {
                tracing::error!(error = %detail, "console page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Pagehook could not show this page (the log has the details).".to_owned(),
                )
            }
        };
        let title = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Cannot show that",
            _ => "Something went wrong",
        };
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (title) " · Pagehook" }
                    link rel="stylesheet" href="/console/assets/console.css";
                }
                body {
                    main id="main" {
                        h1 { (title) }
                        p role="alert" class="alert" { (message) }
                        p { a href="/console/overview" { "Back to the overview" } }
                    }
                }
            }
        };
        (status, body).into_response()
    }
}

/// What a page handler answers.
pub type PageResult = Result<Markup, PageError>;

/// The console's sections, in the order of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Connections,
    People,
    Plugins,
    Bindings,
    Events,
    Deliveries,
    Changes,
}

impl Section {
    const ALL: [Section; 8] = [
        Section::Overview,
        Section::Connections,
        Section::People,
        Section::Plugins,
        Section::Bindings,
        Section::Events,
        Section::Deliveries,
        Section::Changes,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Connections => "Connections",
            Section::People => "People",
            Section::Plugins => "Plugins",
            Section::Bindings => "Bindings",
            Section::Events => "Events",
            Section::Deliveries => "Deliveries",
            Section::Changes => "Changes",
        }
    }

    fn href(self) -> &'static str {
        match self {
            Section::Overview => "/console/overview",
            Section::Connections => "/console/connections",
            Section::People => "/console/people",
            Section::Plugins => "/console/plugins",
            Section::Bindings => "/console/bindings",
            Section::Events => "/console/events",
            Section::Deliveries => "/console/deliveries",
            Section::Changes => "/console/changes",
        }
    }
}

/// A whole page: the navigation, who is signed in, the heading `title`,
/// a live region for the answers of forms (`#result`), and `body`.
pub fn page(viewer: &Viewer, section: Section, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(viewer.csrf());
                title { (title) " · Pagehook" }
                link rel="stylesheet" href="/console/assets/console.css";
                link rel="stylesheet" href="/console/assets/preview.css";
                script src="/console/assets/console.js" defer {}
                script src="/console/assets/preview.js" defer {}
                link rel="stylesheet" href="/console/assets/forms.css";
                script src="/console/assets/forms.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    span class="brand" { "Pagehook" }
                    nav aria-label="Console" {
                        ul {
                            @for s in Section::ALL {
                                li {
                                    @if s == section {
                                        a href=(s.href()) aria-current="page" { (s.label()) }
                                    } @else {
                                        a href=(s.href()) { (s.label()) }
                                    }
                                }
                            }
                        }
                    }
                    div class="who" {
                        span { "Signed in as " strong { (viewer.caller.actor()) } }
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(viewer.csrf());
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    div id="result" role="status" aria-live="polite" {}
                    (body)
                }
            }
        }
    }
}

/// A form that `console.js` sends to the admin API: `method` and `path`
/// (`POST`, `/api/bindings`), what to do with a successful answer
/// (`reload`, or `show:<element id>` to print it there), and the fields.
/// Field names map to JSON: `a.b` nests, `x[]` collects every checked or
/// filled value into a list, a lone checkbox is a boolean, `data-list`
/// splits on commas; empty optional fields are left out.
pub fn api_form(method: &str, path: &str, then: &str, class: &str, fields: Markup) -> Markup {
    html! {
        form class=(class) data-method=(method) data-path=(path) data-then=(then) {
            (fields)
        }
    }
}

/// A labelled input; `help` is read out with it (`aria-describedby`).
pub fn field(id: &str, label: &str, help: Option<&str>, input: Markup) -> Markup {
    html! {
        div class="field" {
            label for=(id) { (label) }
            (input)
            @if let Some(help) = help {
                small id={ (id) "-help" } class="help" { (help) }
            }
        }
    }
}

/// A time in ms since the epoch as UTC text (`2026-12-01 20:42:31`).
pub fn when(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(&f).unwrap_or_else(|_| ms.to_string())
}
