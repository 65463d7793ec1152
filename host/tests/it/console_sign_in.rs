//! Signing in to the console, in process through `pagehook::server::router`
//! on a temp SQLite store, against the fake Confluence (which answers as
//! Data Center does: the current user, the spaces they may view, a space's
//! permissions only to its admins, group membership).
//!
//! What must hold: the admin token signs in, a wrong one does not; a space
//! admin is signed in with exactly the spaces Confluence says they
//! administer, a wrong password or a person who administers nothing is
//! refused; sign-in forms need their double-submit token and sign-out the
//! session's CSRF token; sessions are HttpOnly SameSite=Strict cookies
//! (Secure behind TLS) that end at sign-out; every sign-in and sign-out is
//! in the change log; pages carry a Content-Security-Policy and no inline
//! script; a space admin is refused what is not theirs.

use axum::http::{StatusCode, header};
use pagehook::secret::SecretSource;
use pagehook::store::{ChangeQuery, ConnectionKind, ConnectionRecord};
use pagehook_fakes::{ConfluenceAuth, FakeConfluence};

use crate::common::console::{ConsoleApp, Page};

const TOKEN: &str = "console-sign-in-test-token";

/// The console over a fresh store, with Confluence `wiki` when given one.
struct App(ConsoleApp);

impl std::ops::Deref for App {
    type Target = ConsoleApp;
    fn deref(&self) -> &ConsoleApp {
        &self.0
    }
}

impl App {
    async fn new(confluence: Option<&FakeConfluence>) -> App {
        let app = ConsoleApp::new(TOKEN);
        let state = &app.state;
        if let Some(fake) = confluence {
            let mut c = ConnectionRecord::new("wiki", ConnectionKind::Confluence, &fake.base_url());
            c.secret = Some(SecretSource::Value("service-pat".into()));
            c.hook_secret = Some(SecretSource::Value("hook".into()));
            state.store.add_connection(&c).await.unwrap();
        }
        App(app)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        cookies: &[&str],
        form: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Page {
        self.request(method, path, cookies, form, extra).await
    }

    /// Opens the sign-in page: its double-submit cookie and token.
    async fn sign_in_form(&self) -> (String, String) {
        let page = self.call("GET", "/console/sign-in", &[], None, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        (page.cookie("pagehook_sign_in"), page.csrf())
    }

    async fn sign_in_admin(&self, token: &str) -> Page {
        let (cookie, csrf) = self.sign_in_form().await;
        self.call(
            "POST",
            "/console/sign-in/admin",
            &[&cookie],
            Some(&format!("csrf={csrf}&admin-token={token}")),
            &[],
        )
        .await
    }

    async fn sign_in_confluence(&self, username: &str, password: &str) -> Page {
        let (cookie, csrf) = self.sign_in_form().await;
        self.call(
            "POST",
            "/console/sign-in/confluence",
            &[&cookie],
            Some(&format!(
                "csrf={csrf}&source=wiki&username={username}&password={password}"
            )),
            &[],
        )
        .await
    }

    async fn changes(&self) -> Vec<(String, String)> {
        self.state
            .store
            .changes(&ChangeQuery {
                before: None,
                limit: 100,
            })
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.actor, c.action))
            .collect()
    }
}

fn location(a: &Page) -> &str {
    a.headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_signs_in_with_the_token_and_out_again() {
    let app = App::new(None).await;
    // Without a session every page goes to the sign-in page.
    let anon = app.call("GET", "/console/overview", &[], None, &[]).await;
    assert!(anon.status.is_redirection());
    assert_eq!(location(&anon), "/console/sign-in");

    let wrong = app.sign_in_admin("not-the-token").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("role=\"alert\""), "{}", wrong.body);
    assert!(wrong.set_cookie("pagehook_session").is_none());

    let ok = app.sign_in_admin(TOKEN).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(location(&ok), "/console/overview");
    let set = ok.set_cookie("pagehook_session").unwrap();
    assert!(
        set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && set.contains("Max-Age=28800"),
        "{set}"
    );
    assert!(
        !set.contains("Secure"),
        "plain HTTP: no Secure, or the browser would drop it"
    );
    let session = ok.cookie("pagehook_session");

    let overview = app
        .call("GET", "/console/overview", &[&session], None, &[])
        .await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(
        overview.body.contains("<h1>Overview</h1>"),
        "{}",
        overview.body
    );
    assert!(overview.body.contains("admin (console)"));
    let csp = overview
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!overview.body.contains("<script>"), "no inline script");
    // The session works for the API too, reads without CSRF...
    let api = app
        .call("GET", "/api/plugins", &[&session], None, &[])
        .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);

    // Sign-out needs the session's CSRF token.
    let csrf = overview.csrf();
    let forged = app
        .call(
            "POST",
            "/console/sign-out",
            &[&session],
            Some("csrf=guess"),
            &[],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let out = app
        .call(
            "POST",
            "/console/sign-out",
            &[&session],
            Some(&format!("csrf={csrf}")),
            &[],
        )
        .await;
    assert!(out.status.is_redirection());
    assert!(
        out.set_cookie("pagehook_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = app
        .call("GET", "/console/overview", &[&session], None, &[])
        .await;
    assert_eq!(
        location(&after),
        "/console/sign-in",
        "the old cookie opens nothing"
    );
    let api = app
        .call("GET", "/api/plugins", &[&session], None, &[])
        .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);

    let changes = app.changes().await;
    assert!(
        changes.contains(&("admin (console)".into(), "session.sign-in".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("admin (console)".into(), "session.sign-out".into())),
        "{changes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_forms_need_their_token_and_secure_cookies_come_over_tls() {
    let app = App::new(None).await;
    let (cookie, csrf) = app.sign_in_form().await;
    // No cookie (a cross-site form), or a token that is not the cookie's.
    for (cookies, token) in [(vec![], csrf.as_str()), (vec![cookie.as_str()], "other")] {
        let a = app
            .call(
                "POST",
                "/console/sign-in/admin",
                &cookies,
                Some(&format!("csrf={token}&admin-token={TOKEN}")),
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
        assert!(a.set_cookie("pagehook_session").is_none());
    }
    // Behind a TLS proxy the session cookie is Secure.
    let (cookie, csrf) = app.sign_in_form().await;
    let tls = app
        .call(
            "POST",
            "/console/sign-in/admin",
            &[&cookie],
            Some(&format!("csrf={csrf}&admin-token={TOKEN}")),
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert!(
        tls.set_cookie("pagehook_session")
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_admin_signs_in_with_confluence_and_gets_exactly_their_spaces() {
    let fake = FakeConfluence::start(ConfluenceAuth::Bearer("service-pat".into()));
    fake.add_user(
        "ada",
        "key-ada",
        "Ada Lovelace",
        "ada@example.com",
        "pw-ada",
        &["eng-leads"],
    );
    fake.add_user("bob", "key-bob", "Bob", "bob@example.com", "pw-bob", &[]);
    fake.add_user("cy", "key-cy", "Cy", "cy@example.com", "", &[]);
    fake.add_pat("cy", "pat-cy");
    // Ada administers ENG through a group and DOCS herself; she only views OPS.
    fake.grant_space("ENG", "group:eng-leads", &["administer"]);
    fake.grant_space("DOCS", "user:ada", &["administer"]);
    fake.grant_space("OPS", "user:ada", &["read"]);
    fake.grant_space("OPS", "user:bob", &["read"]);
    fake.grant_space("OPS", "user:cy", &["administer"]);
    let app = App::new(Some(&fake)).await;

    let ada = app.sign_in_confluence("ada", "pw-ada").await;
    assert_eq!(ada.status, StatusCode::SEE_OTHER, "{}", ada.body);
    let session = ada.cookie("pagehook_session");
    let overview = app
        .call("GET", "/console/overview", &[&session], None, &[])
        .await;
    assert!(overview.body.contains("DOCS, ENG"), "{}", overview.body);
    assert!(!overview.body.contains("OPS"));
    // Not theirs: another space's bindings, and the admin's pages.
    let ops = app
        .call("GET", "/console/bindings?space=OPS", &[&session], None, &[])
        .await;
    assert_eq!(ops.status, StatusCode::FORBIDDEN);
    assert!(
        ops.body.contains("You do not administer space OPS"),
        "{}",
        ops.body
    );
    let eng = app
        .call("GET", "/console/bindings?space=ENG", &[&session], None, &[])
        .await;
    assert_eq!(eng.status, StatusCode::OK);
    // Connections: read only, no forms to change them.
    let conns = app
        .call("GET", "/console/connections", &[&session], None, &[])
        .await;
    assert_eq!(conns.status, StatusCode::OK);
    assert!(!conns.body.contains("Connect Slack"));
    assert!(!conns.body.contains("service-pat"), "a secret on a page");

    // A personal access token, no username.
    let cy = app.sign_in_confluence("", "pat-cy").await;
    assert_eq!(cy.status, StatusCode::SEE_OTHER, "{}", cy.body);

    let wrong = app.sign_in_confluence("ada", "nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("did not accept"), "{}", wrong.body);
    assert!(wrong.set_cookie("pagehook_session").is_none());

    let bob = app.sign_in_confluence("bob", "pw-bob").await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN);
    assert!(bob.body.contains("administers no space"), "{}", bob.body);
    assert!(bob.set_cookie("pagehook_session").is_none());

    let changes = app.changes().await;
    assert!(
        changes
            .iter()
            .any(|(actor, action)| actor == "ada (Confluence user on `wiki`)"
                && action == "session.sign-in"),
        "{changes:?}"
    );
    assert_eq!(
        changes
            .iter()
            .filter(|(_, a)| a == "session.sign-in")
            .count(),
        2,
        "only the two who got in"
    );
}
