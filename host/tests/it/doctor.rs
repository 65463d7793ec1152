//! `pagehook doctor` against the fake Confluence emulating each Data Center
//! release (8.5 LTS, 9.2 LTS, 9.4, 10.2 LTS) with a plain and an admin
//! service account, and against the spec-driven fake Slack.
//!
//! What must hold: the verdict on every feature the bindings use follows
//! what the instance answers (8.5 shows nobody anything personally and has
//! no space-admin sign-in; 9.x shows it only with a space-admin account;
//! linking by email needs a Confluence admin and an admin user list whose
//! entries name their users, 10.2); the exit status is 1 exactly when a
//! used feature cannot work; the email-visibility setting decides whether
//! personal notifications reach everyone or only linked people; missing
//! Slack scopes and a missing signing secret are named; the console's
//! overview shows the report `GET /api/doctor` made.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use pagehook::config::Config;
use pagehook::secret::SecretSource;
use pagehook::server::session::{self, Principal};
use pagehook::server::{AppState, router};
use pagehook::store::{ConnectionKind, ConnectionRecord};
use pagehook_fakes::{
    ConfluenceAuth, ContentBuilder, DcVersion, EmailVisibility, FakeConfluence, FakeSlack,
    SERVICE_USERNAME,
};
use serde_json::Value;
use tower::ServiceExt;

use crate::common::doctor::{doctor, feature, manifest_scopes};
use crate::common::sidecar::{PAT, Sidecar};

const ADA_KEY: &str = "key-ada-doctor-0001";
const SLACK_TOKEN: &str = "xoxb-doctor-token";
const PAGE: u64 = 4100;

/// A Confluence with space ENG, a page Ada wrote there and a page template.
fn confluence_with_template() -> FakeConfluence {
    let fake = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    fake.add_user(
        "ada",
        ADA_KEY,
        "Ada Lovelace",
        "ada@example.com",
        "pw",
        &["confluence-users"],
    );
    fake.grant_space("ENG", "group:confluence-users", &["read"]);
    fake.put_content(
        PAGE,
        ContentBuilder::page(PAGE, "ENG", "Launch plan")
            .author("ada", ADA_KEY, "Ada Lovelace")
            .build(),
    );
    fake.put_template("ENG", "Retro", "<p>Retrospective</p>");
    fake
}

/// The service account's rights.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rights {
    /// A plain user: views ENG, administers nothing.
    Plain,
    /// A Confluence administrator and a space admin of ENG.
    Admin,
}

fn set_rights(fake: &FakeConfluence, rights: Rights) {
    match rights {
        Rights::Plain => {
            fake.set_service_confluence_admin(false);
            fake.revoke_space("ENG", SERVICE_USERNAME);
        }
        Rights::Admin => {
            fake.set_service_confluence_admin(true);
            fake.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
        }
    }
}

/// A sidecar with Confluence `wiki` and Slack `acme`, slack-poster bound for
/// channel posts, personal notifications (watchers too), link previews and
/// search, and retro-writer writing from the space template `Retro`.
fn sidecar(confluence: &FakeConfluence, slack: &FakeSlack, signing_secret: bool) -> Sidecar {
    let side = Sidecar::new();
    side.connect_confluence("wiki", &confluence.base_url());
    let url = slack.base_url();
    let mut connect = vec![
        "connect",
        "slack",
        "acme",
        "--url",
        &url,
        "--token",
        SLACK_TOKEN,
    ];
    if signing_secret {
        connect.extend(["--signing-secret", "doctor-signing-secret"]);
    }
    side.cli(&connect);
    side.install_slack_poster();
    side.install("retro-writer", &["create-page", "add-comment"]);
    side.cli(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--scope",
        "space:ENG",
        "--to",
        "slack:#eng",
        "--to",
        "slack-dm:*",
        "--set",
        "channel=#eng",
        "--set",
        "notify-watchers=true",
    ]);
    side.bind_slack_answers("acme");
    side.cli(&[
        "bind",
        "retro-writer",
        "--quiet",
        "--scope",
        "space:ENG",
        "--to",
        "confluence:ENG",
        "--set",
        "space-template=Retro",
    ]);
    side
}

fn states(report: &Value) -> Vec<(String, String)> {
    report["confluence"][0]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["feature"].as_str().unwrap().to_owned(),
                f["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const FEATURES: [&str; 8] = [
    "channel-posts",
    "restricted-filtering",
    "personal-notifications",
    "linking-by-email",
    "self-linking",
    "space-admin-sign-in",
    "templates",
    "search",
];

#[test]
fn each_release_with_a_plain_and_an_admin_account() {
    let wiki = confluence_with_template();
    let slack = FakeSlack::start(SLACK_TOKEN);
    slack.set_scopes(&manifest_scopes());
    let side = sidecar(&wiki, &slack, true);
    use DcVersion::*;
    use Rights::*;
    // channel posts, restricted filtering, personal notifications, linking
    // by email, self-linking, space-admin sign-in, templates, search; exit
    let w = "works";
    let u = "unavailable";
    let expected: [(DcVersion, Rights, [&str; 8], i32); 8] = [
        (V8_5, Plain, [w, u, u, u, w, u, w, u], 1),
        (V8_5, Admin, [w, u, u, u, w, u, w, u], 1),
        (V9_2, Plain, [w, u, u, u, w, w, w, u], 1),
        (V9_2, Admin, [w, w, w, u, w, w, w, w], 0),
        (V9_4, Plain, [w, u, u, u, w, w, w, u], 1),
        (V9_4, Admin, [w, w, w, u, w, w, w, w], 0),
        (V10_2, Plain, [w, u, u, u, w, w, w, u], 1),
        (V10_2, Admin, [w, w, w, w, w, w, w, w], 0),
    ];
    for (version, rights, verdicts, exit) in expected {
        wiki.emulate(version);
        set_rights(&wiki, rights);
        let (code, report) = doctor(&side);
        let what = format!("{version:?} {rights:?}");
        let want: Vec<(String, String)> = FEATURES
            .iter()
            .zip(verdicts)
            .map(|(f, s)| ((*f).to_owned(), s.to_owned()))
            .collect();
        assert_eq!(states(&report), want, "{what}: {report:#}");
        assert_eq!(code, exit, "{what}: {report:#}");
        assert_eq!(report["ok"], exit == 0, "{what}");
        let c = &report["confluence"][0];
        assert_eq!(c["version"]["version"], version.version(), "{what}");
        assert_eq!(c["version"]["build"], version.build_number(), "{what}");
        assert_eq!(
            c["version"]["from"],
            if version == V8_5 {
                "/rest/applinks/1.0/manifest"
            } else {
                "/rest/api/server-information"
            },
            "{what}"
        );
        assert_eq!(c["account"]["username"], SERVICE_USERNAME, "{what}");
        assert!(
            c["people"].is_null(),
            "the CLI runs apart from the server's counters"
        );
        assert!(
            c["spaces"].as_array().unwrap().contains(&"ENG".into()),
            "{what}: {c:#}"
        );
        // A non-administrator that sees emails sees them because they are
        // public; an administrator (or an account nothing says is one)
        // cannot tell that from "administrators only".
        let visibility = if rights == Plain && version >= V9_4 {
            "public"
        } else {
            "public-or-admins-only"
        };
        assert_eq!(c["emails"]["visibility"], visibility, "{what}: {c:#}");
        let admin = c["confluence_admin"]["state"].as_str().unwrap();
        match (version, rights) {
            (V8_5 | V9_2, _) => assert_eq!(admin, "unknown", "{what}: before 9.4 nothing says"),
            (_, Admin) => assert_eq!(admin, "yes", "{what}"),
            (_, Plain) => assert_eq!(admin, "no", "{what}"),
        }
        // Why, and what to do, in the admin's words.
        let personal = feature(&report, "confluence", "wiki", "personal-notifications");
        match (version, rights) {
            (V8_5, _) => {
                let why = personal["why"].to_string();
                assert!(
                    why.contains("Confluence 8.5.20 (8.5 LTS) has no space permissions REST"),
                    "{what}: {personal:#}"
                );
                assert!(
                    why.contains("has no content watchers REST"),
                    "{what}: {personal:#}"
                );
                assert!(
                    personal["fix"]
                        .to_string()
                        .contains("upgrade Confluence to 9.1"),
                    "{what}"
                );
            }
            (_, Plain) => {
                assert!(
                    personal["why"]
                        .to_string()
                        .contains("does not administer any of the spaces it may view (ENG)"),
                    "{what}: {personal:#}"
                );
                assert!(
                    personal["fix"]
                        .to_string()
                        .contains("make `pagehook` a space admin of ENG"),
                    "{what}"
                );
            }
            (_, Admin) => assert_eq!(personal["why"], serde_json::json!([]), "{what}"),
        }
        let linking = feature(&report, "confluence", "wiki", "linking-by-email");
        assert_eq!(
            linking["blocking"], false,
            "{what}: self-linking takes its place"
        );
        if (version, rights) == (V9_4, Admin) {
            assert!(
                linking["why"][0]
                    .as_str()
                    .unwrap()
                    .contains("names no user with an email"),
                "{linking:#}"
            );
        }
        let sign_in = feature(&report, "confluence", "wiki", "space-admin-sign-in");
        assert_eq!(
            sign_in["blocking"], false,
            "{what}: nothing binds the console"
        );
        // What cannot work is named with the binding that needs it.
        let blocking = report["blocking"].to_string();
        if exit == 1 {
            assert!(blocking.contains("Confluence `wiki`: personal notifications (binding #1 (slack-poster)) is unavailable"), "{what}: {blocking}");
            assert!(
                blocking.contains("search (binding #2 (slack-poster)) is unavailable"),
                "{what}: {blocking}"
            );
        }
        // The Slack side is set up: every scope, a signing secret, no
        // request seen yet.
        assert_eq!(
            feature(&report, "slack", "acme", "channel-posts")["state"],
            "works"
        );
        assert_eq!(
            feature(&report, "slack", "acme", "link-previews")["state"],
            "unknown"
        );
    }
    // A Confluence administrator that administers no space: watchers and the
    // admin user list answer, space permissions do not, so nothing is shown
    // to one person. Measured, not assumed from "admin".
    wiki.revoke_space("ENG", SERVICE_USERNAME);
    let (code, report) = doctor(&side);
    assert_eq!(code, 1, "{report:#}");
    let caps = report["confluence"][0]["capabilities"].as_array().unwrap();
    let cap = |name: &str| {
        caps.iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no capability {name}: {caps:#?}"))["state"]
            .clone()
    };
    assert_eq!(cap("watchers"), "yes");
    assert_eq!(cap("admin-user-list"), "yes");
    assert_eq!(cap("space-permissions"), "refused");
    assert_eq!(
        feature(&report, "confluence", "wiki", "personal-notifications")["state"],
        "unavailable"
    );
    assert_eq!(
        feature(&report, "confluence", "wiki", "linking-by-email")["state"],
        "unavailable",
        "a user found by email would be shown nothing: {report:#}"
    );
    wiki.grant_space("ENG", SERVICE_USERNAME, &["administer"]);

    // Text for people, and the same exit status.
    let out = side.cli_output(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Confluence `wiki` at "), "{text}");
    assert!(
        text.contains("Confluence 10.2.1 build 10022 (10.x, from /rest/api/server-information)"),
        "{text}"
    );
    assert!(
        text.contains("  works        personal notifications"),
        "{text}"
    );
    assert!(
        !text.contains(PAT) && !text.contains(SLACK_TOKEN),
        "no secret in the text"
    );
}

#[test]
fn email_visibility_decides_who_gets_personal_notifications() {
    let wiki = confluence_with_template();
    let slack = FakeSlack::start(SLACK_TOKEN);
    slack.set_scopes(&manifest_scopes());
    let side = sidecar(&wiki, &slack, true);
    // A space admin of ENG that is not a Confluence administrator.
    wiki.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
    let cases = [
        (
            EmailVisibility::Public,
            false,
            "public",
            "works",
            "unavailable",
        ),
        (
            EmailVisibility::AdminsOnly,
            false,
            "admins-only-or-hidden",
            "degraded",
            "unavailable",
        ),
        (
            EmailVisibility::Masked,
            false,
            "masked",
            "degraded",
            "unavailable",
        ),
        (
            EmailVisibility::AdminsOnly,
            true,
            "public-or-admins-only",
            "works",
            "works",
        ),
        (
            EmailVisibility::Hidden,
            true,
            "hidden",
            "degraded",
            "unavailable",
        ),
    ];
    for (visibility, admin, seen, personal, by_email) in cases {
        wiki.set_email_visibility(visibility);
        wiki.set_service_confluence_admin(admin);
        let (code, report) = doctor(&side);
        let what = format!("{visibility:?}, Confluence admin {admin}");
        assert_eq!(
            report["confluence"][0]["emails"]["visibility"], seen,
            "{what}: {report:#}"
        );
        let p = feature(&report, "confluence", "wiki", "personal-notifications");
        assert_eq!(p["state"], personal, "{what}: {p:#}");
        assert_eq!(
            feature(&report, "confluence", "wiki", "linking-by-email")["state"],
            by_email,
            "{what}"
        );
        if personal == "degraded" {
            assert!(p["why"].to_string().contains("only people who linked themselves (/confluence link) get personal notifications"), "{what}: {p:#}");
            assert!(
                p["fix"].to_string().contains("User email visibility"),
                "{what}: {p:#}"
            );
        }
        assert_eq!(code, 0, "degraded is not broken: {what}: {report:#}");
    }
    // Where the mobile profile does not exist, emails are not known.
    wiki.set_email_visibility(EmailVisibility::Public);
    wiki.set_service_confluence_admin(false);
    wiki.set_mobile_profile_available(false);
    let (_, report) = doctor(&side);
    let emails = &report["confluence"][0]["emails"];
    assert_eq!(emails["visibility"], "unknown", "{emails:#}");
    assert!(
        emails["detail"]
            .as_str()
            .unwrap()
            .contains("/rest/mobile/1.0/profile"),
        "{emails:#}"
    );
    assert_eq!(
        feature(&report, "confluence", "wiki", "personal-notifications")["state"],
        "degraded"
    );
}

#[test]
fn missing_scopes_a_missing_signing_secret_and_refused_credentials_are_named() {
    let wiki = confluence_with_template();
    wiki.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
    let slack = FakeSlack::start(SLACK_TOKEN);
    let without: Vec<&str> = manifest_scopes()
        .into_iter()
        .filter(|s| *s != "links:write")
        .collect();
    slack.set_scopes(&without);
    let side = sidecar(&wiki, &slack, false);
    let (code, report) = doctor(&side);
    assert_eq!(code, 1, "{report:#}");
    let previews = feature(&report, "slack", "acme", "link-previews");
    assert_eq!(previews["state"], "unavailable");
    assert_eq!(previews["blocking"], true);
    let why = previews["why"].to_string();
    assert!(
        why.contains("the token lacks the scope(s) links:write"),
        "{previews:#}"
    );
    assert!(why.contains("no signing secret"), "{previews:#}");
    let commands = feature(&report, "slack", "acme", "slash-commands");
    assert_eq!(commands["state"], "unavailable", "{commands:#}");
    assert!(
        commands["fix"].to_string().contains("--signing-secret-env"),
        "{commands:#}"
    );
    assert_eq!(
        report["slack"][0]["workspace"]["team_id"], "T1",
        "{report:#}"
    );
    let scopes: Vec<&str> = report["slack"][0]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(scopes, without);
    assert!(
        report["blocking"]
            .to_string()
            .contains("Slack `acme`: link previews")
    );

    // Slack refuses the token, and Confluence the PAT: every used feature
    // says so, with the fix.
    slack.rotate_token("xoxb-another-token");
    side.cli(&[
        "connect",
        "confluence",
        "wiki",
        "--url",
        &wiki.base_url(),
        "--token",
        "pat-that-confluence-refuses",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    let (code, report) = doctor(&side);
    assert_eq!(code, 1);
    let c = &report["confluence"][0];
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("Confluence refuses the credentials (HTTP 401)"),
        "{c:#}"
    );
    let posts = feature(&report, "confluence", "wiki", "channel-posts");
    assert_eq!(posts["state"], "unavailable");
    assert!(
        posts["fix"].to_string().contains("Personal Access Tokens"),
        "{posts:#}"
    );
    assert!(
        report["slack"][0]["error"]
            .as_str()
            .unwrap()
            .contains("Slack refused the token: token_revoked"),
        "{report:#}"
    );
    let text = serde_json::to_string(&report).unwrap();
    for secret in ["pat-that-confluence-refuses", SLACK_TOKEN, PAT] {
        assert!(!text.contains(secret), "the report holds no secret");
    }
}

#[tokio::test]
async fn the_overview_shows_the_report_get_api_doctor_made() {
    let wiki = confluence_with_template();
    wiki.emulate(DcVersion::V8_5);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.database = dir.path().join("pagehook.db");
    config.store.plugins_dir = dir.path().join("plugins");
    config.server.admin_token = Some(SecretSource::Value("doctor-admin-token".into()));
    let state: Arc<AppState> = AppState::standalone(config).unwrap();
    let mut conn = ConnectionRecord::new("wiki", ConnectionKind::Confluence, &wiki.base_url());
    conn.secret = Some(SecretSource::Value(PAT.into()));
    state.store.add_connection(&conn).await.unwrap();
    let cookie = session::start(&state.store, &Principal::Admin, false)
        .await
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let get = |path: &str, auth: (header::HeaderName, String)| {
        let state = state.clone();
        let req = Request::builder()
            .uri(path)
            .header(auth.0, auth.1)
            .body(Body::empty())
            .unwrap();
        async move {
            let answer = router(state).oneshot(req).await.unwrap();
            let status = answer.status();
            let body = axum::body::to_bytes(answer.into_body(), 1 << 24)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, page) = get("/console/overview", (header::COOKIE, cookie.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"<h2 id="doctor-title">What works</h2>"#),
        "{page}"
    );
    assert!(
        page.contains("Not checked since Pagehook started."),
        "{page}"
    );
    assert!(
        page.contains(r#"data-method="GET" data-path="/api/doctor" data-then="reload""#),
        "a Check now form for console.js: {page}"
    );
    assert_eq!(
        wiki.calls("GET /rest/api/user/current"),
        0,
        "the page asks nothing by itself"
    );

    let (status, body) = get(
        "/api/doctor",
        (header::AUTHORIZATION, "Bearer doctor-admin-token".into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["ok"], true, "nothing is bound: {report:#}");
    assert_eq!(report["confluence"][0]["version"]["line"], "8.5 LTS");
    assert_eq!(
        report["confluence"][0]["people"],
        serde_json::json!({"found": {}, "left_out": {}}),
        "the server says whom it left out so far: nobody"
    );

    let (_, page) = get("/console/overview", (header::COOKIE, cookie)).await;
    assert!(!page.contains("Not checked since"), "{page}");
    assert!(page.contains("everything used works"), "{page}");
    assert!(page.contains("8.5.20 (8.5 LTS)"), "{page}");
    let row = |feature: &str| {
        let start = page
            .find(&format!(r#"<tr data-feature="{feature}">"#))
            .unwrap_or_else(|| panic!("no row for {feature}: {page}"));
        let end = page[start..].find("</tr>").unwrap() + start;
        page[start..end].to_owned()
    };
    let sign_in = row("space-admin-sign-in");
    assert!(
        sign_in.contains(r#"<span class="state state-bad">unavailable</span>"#),
        "{sign_in}"
    );
    assert!(sign_in.contains("not used"), "{sign_in}");
    assert!(sign_in.contains("upgrade Confluence to 9.1"), "{sign_in}");
    assert!(row("channel-posts").contains(r#"<span class="state state-ok">works</span>"#));
    assert!(!page.contains(PAT), "no secret on the page");

    // Only the Pagehook admin may run it.
    let space_admin = session::start(
        &state.store,
        &Principal::SpaceAdmin(session::SpaceAdmin {
            source: "wiki".into(),
            user_key: "k".into(),
            username: "jdoe".into(),
            display_name: "J Doe".into(),
            spaces: ["ENG".to_owned()].into_iter().collect(),
        }),
        false,
    )
    .await
    .unwrap()
    .split(';')
    .next()
    .unwrap()
    .to_owned();
    let (status, _) = get("/api/doctor", (header::COOKIE, space_admin)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[test]
fn check_now_on_the_overview_in_a_real_browser() {
    use crate::common::browser::Browser;
    use crate::common::sidecar::ADMIN_TOKEN;
    use std::time::Duration;
    const WAIT: Duration = Duration::from_secs(15);

    let wiki = confluence_with_template();
    wiki.emulate(DcVersion::V8_5);
    let mut side = Sidecar::new();
    side.connect_confluence("wiki", &wiki.base_url());
    side.start();
    let mut b = Browser::start();
    b.set_base(&side.base);
    b.goto("/console/sign-in");
    b.form("Sign in as admin")
        .fill("Admin token", ADMIN_TOKEN)
        .submit();
    b.wait_for_h1("Overview", WAIT);
    b.wait_for_text("Not checked since Pagehook started.", WAIT);
    b.assert_inputs_labelled("overview");
    b.click_button("Check now");
    b.wait_for_text("everything used works", WAIT);
    let text = b.text();
    assert!(text.contains("8.5.20 (8.5 LTS)"), "{text}");
    // All is well, so the connection's details are folded: open them as a
    // person would, by their summary.
    b.js(
        "document.querySelector('#doctor details summary').click();",
        vec![],
    );
    let sign_in = b.texts("table.doctor tr[data-feature=space-admin-sign-in] td");
    assert_eq!(sign_in[0], "space-admin sign-in", "{sign_in:?}");
    assert_eq!(sign_in[1], "unavailable", "{sign_in:?}");
    assert_eq!(sign_in[2], "not used", "{sign_in:?}");
    assert!(
        sign_in[3].contains("(8.5 LTS) has no space permissions REST"),
        "{sign_in:?}"
    );
    assert!(
        sign_in[3].contains("Fix: upgrade Confluence to 9.1"),
        "{sign_in:?}"
    );
    b.screenshot("overview-doctor");
}

#[test]
fn what_the_instance_answers_on_the_way_is_named() {
    use pagehook_fakes::SpacePermissionsRefusal;
    use std::time::{Duration, SystemTime};
    let wiki = confluence_with_template();
    // A page under a parent that is in the trash: the search with the
    // ancestors' restrictions expanded answers 404 for the whole batch.
    wiki.put_content(
        PAGE + 1,
        ContentBuilder::page(PAGE + 1, "ENG", "Old home")
            .status("trashed")
            .build(),
    );
    wiki.put_content(
        PAGE + 2,
        ContentBuilder::page(PAGE + 2, "ENG", "Orphan notes")
            .ancestors(&[(PAGE + 1, "Old home")])
            .author("ada", ADA_KEY, "Ada Lovelace")
            .build(),
    );
    wiki.set_search_404_on_trashed_ancestor(true);
    wiki.set_space_permissions_refusal(SpacePermissionsRefusal::InternalError);
    wiki.set_tokens(&[(
        "pagehook",
        Some(SystemTime::now() + Duration::from_secs(3 * 86_400)),
    )]);
    let slack = FakeSlack::start(SLACK_TOKEN);
    slack.set_scopes(&manifest_scopes());
    let side = sidecar(&wiki, &slack, true);

    // A plain account on 10.2: Confluence answers 500 where it means "not
    // yours" (CONFSERVER-99908).
    let (code, report) = doctor(&side);
    assert_eq!(code, 1, "{report:#}");
    let personal = feature(&report, "confluence", "wiki", "personal-notifications");
    assert!(
        personal["why"].to_string().contains("HTTP 500"),
        "{personal:#}"
    );
    assert!(
        personal["why"].to_string().contains("CONFSERVER-99908"),
        "{personal:#}"
    );
    let sign_in = feature(&report, "confluence", "wiki", "space-admin-sign-in");
    assert_eq!(sign_in["state"], "works");
    assert!(
        sign_in["why"].to_string().contains("CONFSERVER-99908"),
        "{sign_in:#}"
    );
    // The nested expansion's 404 is recovered from, and said.
    let search = feature(&report, "confluence", "wiki", "search");
    assert!(
        search["why"]
            .to_string()
            .contains("searches again without it"),
        "{search:#}"
    );
    // The token expires in 3 days.
    let token = &report["confluence"][0]["token"];
    assert_eq!(token["state"], "expiring", "{token:#}");
    assert!(
        token["message"]
            .as_str()
            .unwrap()
            .contains("`pagehook` expires on"),
        "{token:#}"
    );

    // As a space admin the search is degraded, not broken; without the
    // template resource, the binding that names a template cannot work.
    wiki.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
    let (code, report) = doctor(&side);
    assert_eq!(code, 0, "{report:#}");
    let search = feature(&report, "confluence", "wiki", "search");
    assert_eq!(search["state"], "degraded", "{search:#}");
    assert_eq!(search["blocking"], false);
    wiki.set_page_templates_available(false);
    let (code, report) = doctor(&side);
    assert_eq!(code, 1, "{report:#}");
    let templates = feature(&report, "confluence", "wiki", "templates");
    assert_eq!(templates["state"], "unavailable");
    assert_eq!(
        templates["bound_by"],
        serde_json::json!(["binding #3 (retro-writer)"])
    );
    assert!(
        templates["why"][0]
            .as_str()
            .unwrap()
            .contains("/rest/experimental/template/page"),
        "{templates:#}"
    );
    assert!(
        templates["fix"][0].as_str().unwrap().contains("`template`"),
        "{templates:#}"
    );
}

#[test]
fn a_request_from_slack_shows_inbound_events_set_up() {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    let wiki = confluence_with_template();
    wiki.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
    let slack = FakeSlack::start(SLACK_TOKEN);
    slack.set_scopes(&manifest_scopes());
    let mut side = sidecar(&wiki, &slack, true);
    let (_, before) = doctor(&side);
    assert_eq!(
        feature(&before, "slack", "acme", "slash-commands")["state"],
        "unknown"
    );
    assert!(before["slack"][0]["last_request_at"].is_null());

    side.start();
    let url = slack.mint_response_url("C0ENG");
    let body = format!(
        "token=legacy&team_id=T1&team_domain=acme&channel_id=C0ENG&channel_name=eng\
         &user_id=U0ADA&user_name=ada&command=%2Fconfluence&text=search+launch\
         &api_app_id=A0PAGEHOOK&response_url={}&trigger_id=1.2.doctor",
        url.replace(':', "%3A").replace('/', "%2F")
    );
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"doctor-signing-secret").unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/hooks/slack/acme", side.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            format!("v0={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(body)
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);

    let (code, after) = doctor(&side);
    assert_eq!(code, 0, "{after:#}");
    assert!(after["slack"][0]["last_request_at"].is_i64(), "{after:#}");
    for f in ["link-previews", "slash-commands"] {
        assert_eq!(
            feature(&after, "slack", "acme", f)["state"],
            "works",
            "{f}: {after:#}"
        );
    }
    // The server's own report, through the API.
    let (status, report) = side.api("/api/doctor");
    assert_eq!(status, 200, "{report:#}");
    assert_eq!(report["ok"], true, "{report:#}");
    assert!(report["confluence"][0]["people"].is_object(), "{report:#}");
}
