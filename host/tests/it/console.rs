//! The console in a real browser: headless Chromium (driven through
//! chromedriver, `make chromium` installs both) against `pagehook serve`.
//!
//! An admin signs in with the admin token (by keyboard), connects a dry-run
//! Slack, installs slack-poster by upload and reads its audit, binds it to
//! space ENG for page-created only; a signed webhook arrives and the message
//! that would be sent shows up on the Deliveries page without a reload. A
//! Confluence space admin signs in through the fake Confluence, sees only
//! ENG and is refused OPS in the pages and in the API. A dead letter is
//! retried from the Deliveries page. Every page is screenshotted into
//! `target/console/` (docs/console.md shows them) and checked for inputs
//! without a label.

use crate::common;

use std::time::{Duration, Instant};

use common::browser::{Browser, StaticSite};

/// A page with the kinds of inputs the console has, to prove the harness.
const HARNESS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><title>Harness</title></head><body>
<h1>Harness</h1>
<form method="post" action="/sent">
  <label for="name">Name</label> <input id="name" name="name">
  <label for="secret">Secret <small>(optional)</small></label> <input id="secret" name="secret" type="password">
  <label><input type="checkbox" name="dry" value="yes"> Dry run</label>
  <label for="kind">Kind</label> <select id="kind" name="kind"><option>page-created</option><option>blog-created</option></select>
  <button>Send</button>
</form>
<form method="post" action="/other">
  <label for="other-name">Name</label> <input id="other-name" name="other">
  <button>Other</button>
</form>
<table><tr><td>first row</td><td><button type="button" onclick="document.getElementById('out').textContent='first'">Retry</button></td></tr>
<tr><td>second row</td><td><button type="button" onclick="document.getElementById('out').textContent='second'">Retry</button></td></tr></table>
<p id="out"></p>
</body></html>"#;

const UNLABELLED_PAGE: &str = r#"<!doctype html><html lang="en"><body><h1>Bad</h1>
<input id="orphan"><input type="hidden" name="ok"><input aria-label="Search" name="q">
<label>Kept <input name="kept"></label></body></html>"#;

#[test]
fn the_harness_drives_a_static_page_by_labels_buttons_and_keys() {
    let site = StaticSite::serve(&[("/", HARNESS_PAGE), ("/bad", UNLABELLED_PAGE)]);
    let started = Instant::now();
    let b = Browser::start();
    let session = started.elapsed();
    b.goto(&site.url("/"));
    assert_eq!(b.h1(), "Harness");
    b.assert_inputs_labelled("harness");

    // Two forms have a "Name": the look-up is scoped by the form's button.
    let form = b.form("Send");
    form.fill("Name", "Ada Lovelace")
        .fill("Secret", "s3cret")
        .check("Dry run", true)
        .select("Kind", "blog-created");
    b.form("Other").fill("Name", "not sent");
    b.click_button_near("second row", "Retry");
    assert!(b.text().contains("second"));
    b.click_button_near("first row", "Retry");
    assert!(b.texts("#out").contains(&"first".to_string()));
    form.submit();
    b.wait_for_h1("Received", Duration::from_secs(10));
    let text = b.text();
    assert!(text.contains("name=Ada+Lovelace"), "{text}");
    assert!(
        text.contains("secret=s3cret&dry=yes&kind=blog-created"),
        "{text}"
    );
    assert!(!text.contains("not+sent"), "{text}");

    // By keyboard: Tab to the field, type, Enter submits the form.
    b.goto(&site.url("/"));
    let presses = b.tab_to("name", 10);
    assert_eq!(presses, 1, "the first field is the first stop");
    b.keys("typed");
    b.enter();
    b.wait_for_h1("Received", Duration::from_secs(10));
    assert!(b.text().contains("name=typed"));

    let shot = b.screenshot("harness");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(
        &png[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        shot.display()
    );
    std::fs::remove_file(shot).unwrap();

    b.goto(&site.url("/bad"));
    assert_eq!(b.unlabelled_inputs(), ["input#orphan"]);
    eprintln!(
        "harness: session opened in {session:?}, whole test {:?}",
        started.elapsed()
    );
}

use common::confluence::{self, ADA};
use common::sidecar::{ADMIN_TOKEN, HOOK_SECRET, Sidecar};
use pagehook_fakes::{ContentBuilder, FakeConfluence, FakeSlack, Fault};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ENG_PAGE: u64 = 2818051;
const ENG_TITLE: &str = "Q3 launch checklist";
const OPS_PAGE: u64 = 2818099;
const OPS_TITLE: &str = "Pager rota for October";
const JDOE: &str = "8a7f80839e460b0f019e460ba6440077";
const JDOE_PASSWORD: &str = "correct horse battery staple";
const JDOE_PAT: &str = "jdoe-pat-0001";
const OPS_BOT: &str = "xoxb-console-ops";
/// The dry-run workspace's token: entered once in the form, never shown again.
const DRY_BOT: &str = "xoxb-console-dry-run-4411";
const WAIT: Duration = Duration::from_secs(20);
/// A page must load and render within this (the issue asks for 200 ms per
/// page; a debug build in a test gets some slack, the times are printed).
const PAGE_WAIT: Duration = Duration::from_secs(10);

/// Fake Confluence `wiki`: ENG and OPS pages; jdoe administers ENG (through
/// the group eng-admins) and may only view OPS.
fn confluence_where_jdoe_administers_eng() -> FakeConfluence {
    let fake = confluence::with_ada([
        ContentBuilder::page(ENG_PAGE, "ENG", ENG_TITLE),
        ContentBuilder::page(OPS_PAGE, "OPS", OPS_TITLE),
    ]);
    fake.add_user(
        "jdoe",
        JDOE,
        "Jane Doe",
        "jdoe@example.com",
        JDOE_PASSWORD,
        &["confluence-users", "eng-admins"],
    );
    fake.add_pat("jdoe", JDOE_PAT);
    fake.grant_space("ENG", "group:eng-admins", &["administer"]);
    fake.grant_space("OPS", "group:confluence-users", &["read", "create:page"]);
    fake
}

fn page_created(page: u64, ts: u64) -> Vec<u8> {
    format!(
        r#"{{"timestamp":{ts},"event":"page_created","userKey":"{ADA}","page":{{"id":{page}}}}}"#
    )
    .into_bytes()
}

fn page_updated(page: u64, ts: u64) -> Vec<u8> {
    format!(r#"{{"timestamp":{ts},"event":"page_updated","userKey":"{ADA}","page":{{"id":{page}}},"updateTrigger":"edit_page"}}"#)
        .into_bytes()
}

/// Sends a signed webhook from `wiki`; returns the stored event's id.
fn hook(side: &Sidecar, body: &[u8]) -> i64 {
    let (status, answer) = side.hook("wiki", body, Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_i64().expect("the event id")
}

fn cli_json(side: &Sidecar, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str::<Value>(&side.cli(&all))
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits for the console's answer to a form (`#result`, `role="status"`)
/// once it no longer says it is working; returns it.
fn result(b: &Browser) -> String {
    let started = Instant::now();
    loop {
        let said = b.texts("#result").join(" ");
        if !said.is_empty() && !said.ends_with('…') {
            return said;
        }
        assert!(
            started.elapsed() < PAGE_WAIT,
            "no answer in #result on {} within {PAGE_WAIT:?} (last: {said:?}); the page reads:\n{}",
            b.url(),
            b.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a table row whose text holds every one of `parts`.
fn wait_for_row(b: &Browser, parts: &[&str]) -> String {
    let started = Instant::now();
    loop {
        if let Some(row) = b
            .texts("tr")
            .into_iter()
            .find(|r| parts.iter().all(|p| r.contains(p)))
        {
            return row;
        }
        assert!(
            started.elapsed() < WAIT,
            "no row with {parts:?} on {} within {WAIT:?}; rows: {:#?}",
            b.url(),
            b.texts("tr")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Times each page took to show its heading, for the report at the end.
struct Timings(Vec<(String, Duration)>);

impl Timings {
    /// Opens `path` and waits for its heading; screenshots it as `shot`
    /// and checks every input has a label.
    fn open(&mut self, b: &Browser, path: &str, h1: &str, shot: &str) {
        let started = Instant::now();
        b.goto(path);
        b.wait_for_h1(h1, PAGE_WAIT);
        self.0.push((path.to_string(), started.elapsed()));
        b.assert_inputs_labelled(shot);
        b.screenshot(shot);
    }
}

/// Calls the API the way the console's JavaScript does: with the browser's
/// session cookie and, for changes, its CSRF token.
fn api_as(
    side: &Sidecar,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::blocking::Client::new()
        .request(method, format!("{}{path}", side.base))
        .header("cookie", format!("pagehook_session={cookie}"));
    if let Some(token) = csrf {
        req = req.header("x-csrf-token", token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let answer = req.send().unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().unwrap_or(Value::Null))
}

#[test]
fn admin_and_space_admin_in_a_real_browser() {
    let started = Instant::now();
    let conf = confluence_where_jdoe_administers_eng();
    let ops_slack = FakeSlack::start(OPS_BOT);
    ops_slack.add_channel("ops", "C0OPS00001", true);
    let mut side = Sidecar::new();
    side.connect_confluence("wiki", &conf.base_url());
    side.connect_slack("ops", &ops_slack.base_url(), OPS_BOT);
    side.start();
    let mut b = Browser::start();
    b.set_base(&side.base);
    let mut t = Timings(Vec::new());

    // --- Signing in: a wrong token is refused with an alert; the right one
    // is typed by keyboard alone and sent with Enter.
    b.goto("/console");
    assert_eq!(
        b.path(),
        "/console/sign-in",
        "no session: to the sign-in page, not {} reading {:?}",
        b.url(),
        b.text()
    );
    b.assert_inputs_labelled("sign-in");
    b.screenshot("sign-in");
    b.form("Sign in as admin")
        .fill("Admin token", "not-the-token")
        .submit();
    let alert = b.wait_for("[role=alert]", PAGE_WAIT);
    assert!(!alert.is_empty(), "the alert says why");
    b.screenshot("sign-in-refused");
    b.goto("/console/sign-in");
    let presses = b.tab_to("admin-token", 20);
    b.keys(ADMIN_TOKEN);
    b.enter();
    b.wait_for_h1("Overview", PAGE_WAIT);
    eprintln!("keyboard sign-in: the admin token field was Tab stop {presses}");
    let nav = b.texts("nav[aria-label=Console] a");
    for link in [
        "Overview",
        "Connections",
        "Plugins",
        "Bindings",
        "Events",
        "Deliveries",
        "Changes",
    ] {
        assert!(nav.iter().any(|l| l == link), "nav lacks {link}: {nav:?}");
    }
    assert!(b.meta("csrf-token").is_some_and(|t| !t.is_empty()));
    assert!(b.text().contains("admin"), "the signed-in actor is shown");

    // --- Connections: a dry-run Slack through the form; the secret is not shown again.
    b.click_link("Connections");
    b.wait_for_h1("Connections", PAGE_WAIT);
    let manifest = b.wait_for("#slack-manifest", PAGE_WAIT);
    assert!(manifest.contains("chat:write"), "{manifest}");
    assert!(
        manifest.contains("url: http://127.0.0.1:") && manifest.contains("/hooks/slack/NAME"),
        "the manifest points at this server as the browser reached it: {manifest}"
    );
    b.form("Connect Slack")
        .fill("Name", "acme")
        .fill("Bot token", DRY_BOT)
        .check("Dry run", true)
        .submit();
    result(&b);
    b.wait_for_text("acme", PAGE_WAIT);
    t.open(&b, "/console/connections", "Connections", "connections");
    let text = b.text();
    assert!(text.contains("acme") && text.contains("ops") && text.contains("wiki"));
    assert!(!text.contains(DRY_BOT), "a secret is never shown again");
    assert!(
        !b.js("return document.documentElement.outerHTML;", vec![])
            .as_str()
            .unwrap()
            .contains(DRY_BOT),
        "nor hidden in the page"
    );

    // --- Plugins: install slack-poster by upload, read its audit, grant post-slack.
    t.open(&b, "/console/plugins", "Plugins", "plugins-empty");
    let dir = common::plugin_dir("slack-poster");
    let wasm = dir.join("slack_poster.wasm");
    b.form("Install")
        .upload("Manifest (plugin.toml)", &dir.join("plugin.toml"))
        .upload("Component (.wasm)", &wasm)
        .submit();
    let said = result(&b);
    assert!(!said.starts_with("Refused"), "installing by upload: {said}");
    b.wait_for_text("slack-poster", PAGE_WAIT);
    t.open(&b, "/console/plugins", "Plugins", "plugins");
    t.open(
        &b,
        "/console/plugins/slack-poster",
        "Plugin slack-poster",
        "plugin-audit",
    );
    let sha = hex::encode(Sha256::digest(std::fs::read(&wasm).unwrap()));
    let audit = b.text();
    assert!(audit.contains(&sha), "the audit shows the sha256 {sha}");
    for part in ["handle", "post-slack", "dm-slack", "wasi"] {
        assert!(audit.contains(part), "the audit shows {part:?}:\n{audit}");
    }
    b.check("post-slack", true);
    b.check("dm-slack", false);
    b.click_button("Save grants");
    result(&b);
    b.goto("/console/plugins/slack-poster");
    b.wait_for_h1("Plugin slack-poster", PAGE_WAIT);
    assert!(b.checked("post-slack"), "post-slack is granted");
    assert!(
        !b.checked("dm-slack"),
        "dm-slack is declared but not granted"
    );
    b.screenshot("plugin-audit");

    // --- Bindings: slack-poster on ENG, page-created only, to the dry-run
    // workspace; and on OPS to the real (fake) one.
    t.open(&b, "/console/bindings", "Bindings", "bindings-empty");
    for (space, to) in [("ENG", "slack:acme/#eng"), ("OPS", "slack:ops/#ops")] {
        // The plugin is chosen first (its own small form): the binding
        // form's settings are made from that plugin's manifest.
        b.form("Choose plugin")
            .select_containing("Plugin", "slack-poster")
            .submit();
        b.wait_for_url("plugin=slack-poster", PAGE_WAIT);
        b.wait_for_text("Settings", PAGE_WAIT);
        b.form("Add binding")
            .fill("Space key", space)
            .check_only("Events", &["page-created"])
            // Typed here (the channel picker is console_walkthrough's):
            // `bind` fills slack-poster's channel from the one destination.
            .fill("More destinations", to)
            .submit();
        result(&b);
        b.wait_for_text(to, PAGE_WAIT);
        b.goto("/console/bindings");
        b.wait_for_h1("Bindings", PAGE_WAIT);
    }
    t.open(&b, "/console/bindings", "Bindings", "bindings");
    let bindings = cli_json(&side, &["bindings"]);
    assert_eq!(bindings.len(), 2, "{bindings:#?}");
    let binding_of = |scope: &str| {
        bindings
            .iter()
            .find(|x| x["scope"] == scope)
            .unwrap_or_else(|| panic!("no binding {scope}: {bindings:#?}"))["id"]
            .as_i64()
            .unwrap()
    };
    let eng_binding = binding_of("space:ENG");
    let ops_binding = binding_of("space:OPS");

    // --- A signed webhook arrives while the Deliveries page is open: the
    // message that would be sent shows up without a reload.
    t.open(&b, "/console/deliveries", "Deliveries", "deliveries-empty");
    b.js("window.__notReloaded = true;", vec![]);
    let sent_at = Instant::now();
    let eng_event = hook(&side, &page_created(ENG_PAGE, 1));
    let live = b.wait_for_text(ENG_TITLE, WAIT);
    assert_eq!(
        b.js("return window.__notReloaded === true;", vec![]),
        json!(true),
        "the page was reloaded instead of updated"
    );
    eprintln!(
        "live update: the delivery showed {:?} after the webhook ({live:?} of polling)",
        sent_at.elapsed()
    );
    b.screenshot("deliveries-live");
    // page-created only: an update is stored but delivers nothing.
    let updated = hook(&side, &page_updated(ENG_PAGE, 2));
    side.wait_json(&["events"], "the update dispatched", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == updated && e["status"].as_str().is_some_and(|s| s != "pending"))
    });
    let deliveries = cli_json(&side, &["deliveries"]);
    assert!(
        deliveries.iter().any(|d| d["event_id"] == eng_event),
        "{deliveries:#?}"
    );
    assert!(
        !deliveries.iter().any(|d| d["event_id"] == updated),
        "page-created only: {deliveries:#?}"
    );

    t.open(&b, "/console/events", "Events", "events");
    let path = format!("/console/events/{eng_event}");
    t.open(&b, &path, &format!("Event {eng_event}"), "event");
    let event = b.text();
    for part in [ENG_TITLE, "slack-poster", "post-slack", "#eng"] {
        assert!(
            event.contains(part),
            "the event page shows {part:?}:\n{event}"
        );
    }

    // --- Preview: the binding run on the stored event shows the message.
    b.goto("/console/bindings");
    b.wait_for_h1("Bindings", PAGE_WAIT);
    let preview = b.form_near("slack:acme/#eng", "Preview");
    preview.select_containing("Event", &format!("#{eng_event} "));
    preview.submit();
    // Each binding row has its own preview output, `#preview-{binding}`.
    let output = format!("#preview-{eng_binding}");
    let asked = Instant::now();
    while !b.texts(&output).iter().any(|p| p.contains(ENG_TITLE)) {
        assert!(
            asked.elapsed() < PAGE_WAIT,
            "{output} never showed the message; it reads {:?}",
            b.texts(&output)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    b.screenshot("binding-preview");

    // --- A dead letter, retried from the Deliveries page after the fix.
    ops_slack.inject(
        "chat.postMessage",
        Fault::SlackError("not_in_channel".into()),
    );
    b.goto("/console/deliveries");
    b.wait_for_h1("Deliveries", PAGE_WAIT);
    let ops_event = hook(&side, &page_created(OPS_PAGE, 3));
    side.wait_json(&["deliveries", "--status", "dead"], "a dead letter", |v| {
        !v.as_array().unwrap().is_empty()
    });
    // The dead row arrives by the live update too.
    let row = format!("Event {ops_event}");
    wait_for_row(&b, &[&row, "slack:ops/#ops", "dead"]);
    b.screenshot("deliveries-dead");
    let before = ops_slack.posts().len();
    b.click_button_near(&row, "Retry");
    let posts = ops_slack.wait_for_posts(before + 1, WAIT);
    let last = posts.last().unwrap();
    assert!(
        last.text.as_deref().is_some_and(|t| t.contains(OPS_TITLE)),
        "{:?}",
        last.text
    );
    side.wait_json(&["deliveries", "--status", "dead"], "no dead letter", |v| {
        v.as_array().unwrap().is_empty()
    });
    t.open(&b, "/console/deliveries", "Deliveries", "deliveries");
    let ops_delivery = cli_json(&side, &["deliveries"])
        .into_iter()
        .find(|d| d["event_id"] == ops_event)
        .expect("the OPS delivery")["id"]
        .as_i64()
        .unwrap();

    // --- Changes: who changed what.
    t.open(&b, "/console/changes", "Changes", "changes");
    let changes = b.text();
    for action in [
        "session.sign-in",
        "connection.add",
        "plugin.install",
        "plugin.grant",
        "binding.add",
        "delivery.retry",
    ] {
        assert!(
            changes.contains(action),
            "the change log shows {action}:\n{changes}"
        );
    }
    assert!(changes.contains("admin (console)"), "{changes}");
    t.open(&b, "/console/overview", "Overview", "overview");

    // --- A Confluence space admin: a wrong password is refused, a personal
    // access token (no username) lets them in; they see ENG only.
    b.click_button("Sign out");
    b.wait_for_text("Sign in with Confluence", PAGE_WAIT);
    assert_eq!(b.path(), "/console/sign-in");
    b.form("Sign in with Confluence")
        .select("Confluence", "wiki")
        .fill("Username", "jdoe")
        .fill("Password or personal access token", "wrong")
        .submit();
    b.wait_for("[role=alert]", PAGE_WAIT);
    b.form("Sign in with Confluence")
        .select("Confluence", "wiki")
        .fill("Username", "jdoe")
        .fill("Password or personal access token", JDOE_PASSWORD)
        .submit();
    b.wait_for_h1("Overview", PAGE_WAIT);
    assert!(b.text().contains("jdoe") || b.text().contains("Jane Doe"));
    b.click_button("Sign out");
    b.wait_for_text("Sign in with Confluence", PAGE_WAIT);
    b.form("Sign in with Confluence")
        .select("Confluence", "wiki")
        .fill("Username", "")
        .fill("Password or personal access token", JDOE_PAT)
        .submit();
    b.wait_for_h1("Overview", PAGE_WAIT);
    b.screenshot("space-admin-overview");

    t.open(&b, "/console/bindings", "Bindings", "space-admin-bindings");
    let text = b.text();
    assert!(text.contains("slack:acme/#eng"), "{text}");
    assert!(
        !text.contains("slack:ops/#ops"),
        "OPS is not theirs:\n{text}"
    );
    let spaces = b.options("Space key");
    assert_eq!(
        spaces.iter().filter(|s| !s.is_empty()).collect::<Vec<_>>(),
        ["ENG"],
        "a space admin picks among their spaces"
    );
    t.open(&b, "/console/events", "Events", "space-admin-events");
    let text = b.text();
    assert!(
        text.contains(ENG_TITLE) && !text.contains(OPS_TITLE),
        "{text}"
    );
    t.open(
        &b,
        "/console/deliveries",
        "Deliveries",
        "space-admin-deliveries",
    );
    let text = b.text();
    assert!(
        !text.contains(OPS_TITLE) && !text.contains("#ops"),
        "{text}"
    );

    // Another space's pages are refused, and so is the API with their cookie.
    // The refusal reads "Not allowed" in the page and is a 403 on the wire.
    let cookie = b.cookie("pagehook_session").expect("a session cookie");
    let csrf = b.meta("csrf-token").expect("a CSRF token");
    let ops_event_page = format!("/console/events/{ops_event}");
    for path in ["/console/bindings?space=OPS", ops_event_page.as_str()] {
        b.goto(path);
        b.wait_for_h1("Not allowed", PAGE_WAIT);
        assert!(
            b.text().contains("OPS") || path == ops_event_page,
            "{}",
            b.text()
        );
        let (status, _) = api_as(&side, reqwest::Method::GET, path, &cookie, None, None);
        assert_eq!(status, 403, "{path} as the ENG admin");
        if path != ops_event_page {
            b.screenshot("space-admin-refused");
        }
    }
    let bind_ops = json!({
        "plugin": "slack-poster",
        "scope": "space:OPS",
        "events": ["page-created"],
        "to": ["slack:ops/#ops"],
        "settings": {"channel": "#ops"},
    });
    let post = reqwest::Method::POST;
    let (status, answer) = api_as(
        &side,
        post.clone(),
        "/api/bindings",
        &cookie,
        Some(&csrf),
        Some(bind_ops.clone()),
    );
    assert_eq!(status, 403, "binding OPS through the API: {answer}");
    let (status, _) = api_as(
        &side,
        post.clone(),
        "/api/bindings",
        &cookie,
        None,
        Some(bind_ops),
    );
    assert_eq!(status, 403, "no CSRF token, no change");
    let (status, answer) = api_as(
        &side,
        reqwest::Method::DELETE,
        &format!("/api/bindings/{ops_binding}"),
        &cookie,
        Some(&csrf),
        None,
    );
    assert_eq!(status, 403, "removing the OPS binding: {answer}");
    let (status, answer) = api_as(
        &side,
        post,
        &format!("/api/deliveries/{ops_delivery}/retry"),
        &cookie,
        Some(&csrf),
        None,
    );
    assert_eq!(status, 403, "retrying an OPS delivery: {answer}");
    let (status, events) = api_as(
        &side,
        reqwest::Method::GET,
        "/api/events",
        &cookie,
        None,
        None,
    );
    assert_eq!(status, 200, "{events}");
    assert!(
        !events.to_string().contains(&format!("\"id\":{ops_event},")),
        "{events}"
    );
    assert_eq!(cli_json(&side, &["bindings"]).len(), 2, "nothing changed");

    drop(b);
    let mut report = String::from("console pages (goto until the heading showed):\n");
    for (path, took) in &t.0 {
        report.push_str(&format!("  {path}: {took:?}\n"));
    }
    eprintln!("{report}whole test: {:?}", started.elapsed());
}
