//! Issue 26's feedback, in headless Chromium against the Slack and
//! Confluence fakes: what the console says after an admin acts, and that
//! it stays after the page reloads.
//!
//! - A connection Test that fails leaves "failed" and Slack's reason on the
//!   connection's row and marks its Health (still there after a reload, with
//!   the fix); a passing one shows ok. A new bot token typed in the
//!   connection's edit page is the one the next Test uses; it is never shown
//!   again (page, API answer, change log), and a refused edit changes
//!   nothing.
//! - The Overview's "Would send (dry run)" tile counts what a dry-run
//!   connection recorded; "Start sending" and "Switch to dry run" change the
//!   connection (the next event is sent, or recorded again) and say which.
//! - A token Slack revokes (`token_revoked` on delivery) names the
//!   connection on the Overview with the fix and an "Edit NAME" link; the
//!   new token sends what waited.
//! - Deliveries' "Retry all dead letters of destination" and the plugin
//!   page's forms (grants, disable, enable, reset breaker, grant limits) say
//!   what they did in words: how many were queued, what changed.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::confluence;
use common::sidecar::{ADMIN_TOKEN, HOOK_SECRET, Sidecar};
use pagehook_fakes::{ContentBuilder, FakeConfluence, FakeSlack, Fault};
use serde_json::{Value, json};

const BOT: &str = "xoxb-feedback-5150-right";
/// A token the fake Slack never issued: `auth.test` answers `invalid_auth`.
const WRONG: &str = "xoxb-feedback-5150-wrong";
/// The token the revoked one is replaced by.
const NEW_BOT: &str = "xoxb-feedback-5150-reissued";
const FIRST: u64 = 5_150_001;
const SECOND: u64 = 5_150_002;
const THIRD: u64 = 5_150_003;
const ENG: &str = "C0ENG05150";
const WAIT: Duration = Duration::from_secs(20);

/// A fake Confluence with three ENG pages by Ada.
fn wiki() -> FakeConfluence {
    confluence::with_ada(
        [
            (FIRST, "First launch note"),
            (SECOND, "Second launch note"),
            (THIRD, "Third launch note"),
        ]
        .map(|(id, title)| ContentBuilder::page(id, "ENG", title)),
    )
}

/// Sends Confluence's `page_created` for `page` (each with a timestamp of
/// its own: none is a duplicate); the stored event's id.
fn created(side: &Sidecar, page: u64) -> i64 {
    static SENT: AtomicU64 = AtomicU64::new(1);
    let ts = SENT.fetch_add(1, Ordering::Relaxed);
    let body = format!(
        r#"{{"timestamp":{ts},"event":"page_created","userKey":"{}","page":{{"id":{page}}}}}"#,
        confluence::ADA
    );
    let (status, answer) = side.hook("wiki", body.as_bytes(), Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_i64().expect("the event id")
}

/// A browser signed in to `side`'s console as the admin.
fn signed_in(side: &Sidecar) -> Browser {
    let mut b = Browser::start();
    b.set_base(&side.base);
    b.goto("/console/sign-in");
    b.form("Sign in as admin")
        .fill("Admin token", ADMIN_TOKEN)
        .submit();
    b.wait_for_h1("Overview", WAIT);
    b
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `#result` holds `part`; returns all it says.
fn wait_said(b: &Browser, part: &str) -> String {
    let started = Instant::now();
    loop {
        let text = b.texts("#result").join(" ");
        if text.contains(part) {
            return text;
        }
        assert!(
            started.elapsed() < WAIT,
            "#result never said {part:?} on {} (last: {text:?}); the page reads:\n{}",
            b.url(),
            b.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Does `act` (a form that reloads the page), waits for the new page, and
/// returns what `#result` says there once it holds `part`: the words
/// stayed across the reload.
fn said_after_reload(b: &Browser, part: &str, act: impl FnOnce()) -> String {
    b.js("window.__beforeTheForm = true;", vec![]);
    act();
    wait_until("the page to reload after the form", || {
        b.js("return window.__beforeTheForm === true;", vec![]) == json!(false)
    });
    wait_said(b, part)
}

/// The number on the Overview's tile titled `title`.
fn tile(b: &Browser, title: &str) -> String {
    b.js(
        "const c = [...document.querySelectorAll('.card')].find(c => c.firstElementChild && c.firstElementChild.textContent.trim() === arguments[0]);
         return c ? c.querySelector('.big').textContent.trim() : null;",
        vec![json!(title)],
    )
    .as_str()
    .unwrap_or_else(|| panic!("no tile {title:?} on {}:\n{}", b.url(), b.text()))
    .to_owned()
}

/// Opens the Overview and waits until its tile `title` reads `value`.
fn wait_for_tile(b: &Browser, title: &str, value: &str) {
    let started = Instant::now();
    loop {
        b.goto("/console/overview");
        b.wait_for_h1("Overview", WAIT);
        let shown = tile(b, title);
        if shown == value {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "the tile {title:?} reads {shown:?}, not {value:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the edit page's facts say under `term` (Health, Mode, ...).
fn fact(b: &Browser, term: &str) -> String {
    b.js(
        "const dt = [...document.querySelectorAll('dl.facts dt')].find(d => d.textContent.trim() === arguments[0]);
         return dt ? dt.nextElementSibling.innerText.trim() : null;",
        vec![json!(term)],
    )
    .as_str()
    .unwrap_or_else(|| panic!("no fact {term:?} on {}", b.url()))
    .to_owned()
}

/// The text of connection `name`'s Health cell.
fn health_cell(b: &Browser, name: &str) -> String {
    b.texts(&format!("tr#connection-{name} [data-health]"))
        .join(" ")
}

/// Connection `name` as the API lists it.
fn connection(side: &Sidecar, name: &str) -> Value {
    let (status, all) = side.api("/api/connections");
    assert_eq!(status, 200, "{all}");
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no connection {name}: {all}"))
}

/// Plugin `name` as the API lists it.
fn plugin(side: &Sidecar, name: &str) -> Value {
    let (status, all) = side.api("/api/plugins");
    assert_eq!(status, 200, "{all}");
    all.as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no plugin {name}: {all}"))
}

/// Sends `method path` to the API as the admin; the status and the body
/// as text (to look for secrets in it) and as JSON.
fn call(side: &Sidecar, method: &str, path: &str, body: Option<Value>) -> (u16, String, Value) {
    let mut req = reqwest::blocking::Client::new()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", side.base),
        )
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let answer = req.send().unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, text, json)
}

/// The page's whole HTML, hidden parts included.
fn html(b: &Browser) -> String {
    b.js("return document.documentElement.outerHTML;", vec![])
        .as_str()
        .unwrap()
        .to_owned()
}

fn deliveries(side: &Sidecar) -> Vec<Value> {
    let (status, all) = side.api("/api/deliveries");
    assert_eq!(status, 200, "{all}");
    all.as_array().cloned().unwrap_or_default()
}

#[test]
fn a_failed_test_stays_on_its_row_and_a_new_token_typed_once_makes_it_pass() {
    let slack = FakeSlack::start(BOT);
    let mut side = Sidecar::new();
    side.connect_slack("initech", &slack.base_url(), WRONG);
    side.connect_slack("umbrella", &slack.base_url(), BOT);
    side.start();
    let b = signed_in(&side);
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);

    // umbrella: Slack refuses its first auth.test, then accepts the token.
    // A failing Test marks it; the passing one turns it back to ok.
    slack.inject("auth.test", Fault::SlackError("invalid_auth".into()));
    b.click_button_near("umbrella", "Test");
    wait_said(&b, "Test failed");
    assert!(health_cell(&b, "umbrella").starts_with("failing"));
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);
    assert!(
        health_cell(&b, "umbrella").starts_with("failing"),
        "the failure is its health now"
    );
    b.click_button_near("umbrella", "Test");
    assert_eq!(wait_said(&b, "Test passed"), "Test passed.");
    let row = b.texts("tr#connection-umbrella").join(" ");
    assert!(
        row.contains("works") && row.contains("Slack accepts the token"),
        "{row}"
    );
    assert_eq!(health_cell(&b, "umbrella"), "ok");

    // A test that fails: "failed" and Slack's reason on its row, Health failing.
    b.click_button_near("initech", "Test");
    assert_eq!(
        wait_said(&b, "Test failed"),
        "Test failed: the row says why."
    );
    let result = b
        .texts("tr#connection-initech [data-test-result]")
        .join(" ");
    assert!(
        result.starts_with("failed") && result.contains("invalid_auth"),
        "{result}"
    );
    let health = health_cell(&b, "initech");
    assert!(
        health.starts_with("failing") && health.contains("invalid_auth"),
        "{health}"
    );
    // Both stay after a reload: the failure is the connection's health now,
    // with the fix; the passing one is ok.
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);
    let health = health_cell(&b, "initech");
    assert!(
        health.starts_with("failing")
            && health.contains("Slack refused the token: invalid_auth")
            && health.contains("Fix:"),
        "{health}"
    );
    assert_eq!(health_cell(&b, "umbrella"), "ok");
    let initech = connection(&side, "initech");
    assert!(
        initech["health"]
            .as_str()
            .is_some_and(|h| h.contains("invalid_auth")),
        "{initech}"
    );
    assert_eq!(connection(&side, "umbrella")["health"], Value::Null);
    // The Overview names it, with the fix and a way to it.
    b.goto("/console/overview");
    b.wait_for_h1("Overview", WAIT);
    let attention = b.texts("#attention li").join("\n");
    assert!(
        attention.starts_with("initech: failing")
            && attention.contains("Fix:")
            && attention.contains("Edit initech")
            && !attention.contains("umbrella"),
        "{attention}"
    );

    // A refused edit changes nothing: the good token sent beside a URL that
    // is not one is not stored (the next Test still fails), and the mark stays.
    let (status, text, refused) = call(
        &side,
        "PATCH",
        "/api/connections/initech",
        Some(json!({"url": "ftp://slack.example/api/", "token": {"value": BOT}})),
    );
    assert_eq!(status, 400, "{text}");
    assert!(
        refused["error"].as_str().unwrap().contains("https://"),
        "{refused}"
    );
    assert!(!text.contains(BOT), "{text}");
    assert!(connection(&side, "initech")["health"].is_string());
    let (status, _, tested) = call(&side, "POST", "/api/connections/initech/test", None);
    assert_eq!(status, 200);
    assert_eq!(
        tested["ok"], false,
        "the refused token was not stored: {tested}"
    );
    let (_, _, changes) = call(&side, "GET", "/api/changes", None);
    assert!(
        !changes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["action"] == "connection.edit"),
        "nothing logged: {changes}"
    );

    // The new token, typed once in the connection's edit page.
    b.goto("/console/connections/initech");
    b.wait_for_h1("Connection initech", WAIT);
    let words = said_after_reload(&b, "Connection initech changed", || {
        b.form("Save changes").fill("Bot token", BOT).submit();
    });
    assert!(
        words.starts_with("Connection initech changed: token.")
            && words.contains("health mark is cleared"),
        "{words}"
    );
    let page = html(&b);
    assert!(
        !page.contains(BOT) && !page.contains(WRONG),
        "no token in the edit page"
    );
    assert_eq!(fact(&b, "Health"), "ok", "the edit cleared the mark");
    // The next Test uses it.
    let auth_tests = slack.calls("auth.test");
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);
    b.click_button_near("initech", "Test");
    assert_eq!(wait_said(&b, "Test passed"), "Test passed.");
    assert_eq!(slack.calls("auth.test"), auth_tests + 1);
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);
    assert_eq!(health_cell(&b, "initech"), "ok");
    assert_eq!(connection(&side, "initech")["health"], Value::Null);
    assert!(!html(&b).contains(BOT), "no token in the connections page");

    // The API's answer to a token edit names the change, never the token.
    let (status, text, changed) = call(
        &side,
        "PATCH",
        "/api/connections/initech",
        Some(json!({"token": {"value": BOT}})),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(changed["changed"], json!(["token"]), "{changed}");
    assert!(!text.contains(BOT) && !text.contains(WRONG), "{text}");
    // Nor does the change log, in the API or the console.
    let (_, text, changes) = call(&side, "GET", "/api/changes", None);
    let edits: Vec<&Value> = changes
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "connection.edit" && c["target"] == "initech")
        .collect();
    assert_eq!(edits.len(), 2, "{changes}");
    assert!(
        edits
            .iter()
            .all(|c| c["detail"]["changed"] == json!(["token"])),
        "{edits:?}"
    );
    assert!(!text.contains(BOT) && !text.contains(WRONG), "{text}");
    b.goto("/console/changes");
    b.wait_for_h1("Changes", WAIT);
    let log = html(&b);
    assert!(log.contains("connection.edit"), "the edits are listed");
    assert!(
        !log.contains(BOT) && !log.contains(WRONG),
        "no token in the change log"
    );
}

#[test]
fn the_would_send_tile_counts_a_dry_run_connection_and_its_switch_says_what_it_did() {
    let conf = wiki();
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", ENG, true);
    let mut side = Sidecar::new();
    side.connect_confluence("wiki", &conf.base_url());
    side.cli(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        BOT,
        "--dry-run",
    ]);
    side.bind_slack_poster("eng", &["--scope", "space:ENG"]);
    side.start();
    let b = signed_in(&side);
    assert_eq!(tile(&b, "Would send (dry run)"), "0");

    // Recorded, not sent: the tile counts it.
    let first = created(&side, FIRST);
    side.wait_until("the would-send delivery", WAIT, || {
        deliveries(&side)
            .iter()
            .any(|d| d["event_id"] == first && d["status"] == "would-send")
            .then_some(())
    });
    wait_for_tile(&b, "Would send (dry run)", "1");
    assert_eq!(tile(&b, "Sent"), "0");
    assert!(slack.posts().is_empty(), "a dry run sends nothing");

    // "Start sending": it says so, the row says live, the next page is sent.
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);
    let row = b.texts("tr#connection-acme").join(" ");
    assert!(row.contains("dry run records, sends nothing"), "{row}");
    let words = said_after_reload(&b, "Connection acme", || {
        b.click_button_near("acme", "Start sending");
    });
    assert_eq!(
        words,
        "Connection acme is live: deliveries through it are sent from now on."
    );
    let row = b.texts("tr#connection-acme").join(" ");
    assert!(
        row.contains("live sends") && row.contains("Switch to dry run"),
        "{row}"
    );
    assert_eq!(connection(&side, "acme")["dry_run"], false);
    created(&side, SECOND);
    let posts = slack.wait_for_posts(1, WAIT);
    assert!(
        posts[0].channel == ENG
            && posts[0]
                .text
                .as_deref()
                .is_some_and(|t| t.contains("Second launch note")),
        "{posts:?}"
    );
    wait_for_tile(&b, "Sent", "1");
    assert_eq!(tile(&b, "Would send (dry run)"), "1");

    // "Switch to dry run": said, and the next page is recorded again.
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);
    let words = said_after_reload(&b, "Connection acme", || {
        b.click_button_near("acme", "Switch to dry run");
    });
    assert_eq!(
        words,
        "Connection acme switched to dry run: deliveries through it are recorded (Would send), not sent."
    );
    assert!(
        b.texts("tr#connection-acme")
            .join(" ")
            .contains("Start sending")
    );
    assert_eq!(connection(&side, "acme")["dry_run"], true);
    let third = created(&side, THIRD);
    side.wait_until("the third page recorded", WAIT, || {
        deliveries(&side)
            .iter()
            .any(|d| d["event_id"] == third && d["status"] == "would-send")
            .then_some(())
    });
    wait_for_tile(&b, "Would send (dry run)", "2");
    assert_eq!(slack.posts().len(), 1, "nothing more was sent");
    let (_, _, changes) = call(&side, "GET", "/api/changes", None);
    let switches = changes
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["target"] == "acme" && c["action"] == "connection.dry-run")
        .count();
    assert_eq!(switches, 2, "both switches are logged: {changes}");
}

#[test]
fn a_revoked_token_is_named_on_the_overview_with_the_fix_and_an_edit_link() {
    let conf = wiki();
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", ENG, true);
    // Deliveries keep trying for a minute: the new token sends what waited.
    let mut side = Sidecar::with_delivery(
        "retry-schedule-ms = [100, 200, 400]\nretry-every-ms = 400\ngive-up-after-ms = 60000\n\
         timeout-ms = 1000\nslack-channel-rate = 50.0\nslack-workspace-rate = 100.0\njitter = 0.0\n",
    );
    side.connect_confluence("wiki", &conf.base_url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.bind_slack_poster("eng", &["--scope", "space:ENG"]);
    side.start();
    // The app is reinstalled in Slack: the old token is revoked.
    slack.rotate_token(NEW_BOT);
    created(&side, FIRST);
    side.wait_until("acme marked for its revoked token", WAIT, || {
        connection(&side, "acme")["health"]
            .as_str()
            .filter(|h| h.contains("token_revoked"))
            .map(str::to_owned)
    });

    let b = signed_in(&side);
    let attention = b.texts("#attention li").join("\n");
    assert!(
        attention.starts_with("acme: failing")
            && attention.contains("token_revoked")
            && attention.contains("Fix:"),
        "the Overview names the connection, what happened and the fix:\n{attention}"
    );
    let fix = b.texts("#attention li p.fix").join("\n");
    assert!(
        fix.starts_with("Fix:") && fix.ends_with("Edit acme"),
        "{fix}"
    );
    assert_eq!(
        b.js(
            "const a = [...document.querySelectorAll('#attention p.fix a')].find(a => a.textContent.trim() === 'Edit acme');
             return a ? a.getAttribute('href') : null;",
            vec![],
        ),
        json!("/console/connections/acme")
    );
    assert!(!b.text().contains("Every connection works"));
    b.screenshot("overview-token-revoked");

    // The link leads to the fix: the new token, typed once.
    b.click_link("Edit acme");
    b.wait_for_h1("Connection acme", WAIT);
    let health = fact(&b, "Health");
    assert!(
        health.starts_with("failing")
            && health.contains("token_revoked")
            && health.contains("Fix:"),
        "{health}"
    );
    let words = said_after_reload(&b, "Connection acme changed", || {
        b.form("Save changes").fill("Bot token", NEW_BOT).submit();
    });
    assert!(
        words.starts_with("Connection acme changed: token."),
        "{words}"
    );
    // What waited goes out with it (or, had it been given up, its retry).
    side.wait_until("the post or a dead letter", WAIT, || {
        (!slack.posts().is_empty() || deliveries(&side).iter().any(|d| d["status"] == "dead"))
            .then_some(())
    });
    if slack.posts().is_empty() {
        b.goto("/console/overview");
        b.wait_for_h1("Overview", WAIT);
        b.click_button_near("acme", "Retry 1 dead letter");
        wait_said(&b, "queued again");
    }
    let posts = slack.wait_for_posts(1, WAIT);
    assert!(
        posts[0]
            .text
            .as_deref()
            .is_some_and(|t| t.contains("First launch note")),
        "{posts:?}"
    );
    side.wait_until("the mark cleared", WAIT, || {
        connection(&side, "acme")["health"].is_null().then_some(())
    });
    b.goto("/console/overview");
    b.wait_for_h1("Overview", WAIT);
    assert!(b.text().contains("Every connection works"), "{}", b.text());
}

/// hello's package without its signature, with `edit` applied to its
/// manifest.
fn hello_copy(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let src = common::plugin_dir("hello");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        if file == pagehook::plugin_trust::STATEMENT_FILE
            || file == pagehook::plugin_trust::SIGNATURE_FILE
        {
            continue;
        }
        std::fs::copy(&path, dir.path().join(&file)).unwrap();
    }
    let manifest = dir.path().join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, edit(text)).unwrap();
    dir
}

fn path_str(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn retrying_dead_letters_and_the_plugin_forms_say_what_they_did() {
    let conf = wiki();
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", ENG, true);
    // The bot was not in #eng for the first two posts: dead letters.
    slack.inject(
        "chat.postMessage",
        Fault::SlackError("not_in_channel".into()),
    );
    slack.inject(
        "chat.postMessage",
        Fault::SlackError("not_in_channel".into()),
    );
    let mut side = Sidecar::new();
    side.connect_confluence("wiki", &conf.base_url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.bind_slack_poster("eng", &["--scope", "space:ENG"]);
    // hello 0.1.0, then 0.2.0 asking for more memory (not granted by the upgrade).
    let v1 = hello_copy(|m| m);
    let v2 = hello_copy(|m| {
        format!(
            "{}\n[limits]\nmemory-mib = 64\n",
            m.replace("version = \"0.1.0\"", "version = \"0.2.0\"")
        )
    });
    side.cli(&[
        "plugin",
        "install",
        path_str(v1.path()),
        "--grant",
        "post-slack",
    ]);
    side.cli(&["plugin", "install", path_str(v2.path())]);
    // hostile runs out of fuel on every event: three open its breaker.
    side.install("hostile", &["post-slack"]);
    side.cli(&[
        "bind",
        "hostile",
        "--scope",
        "space:OPS",
        "--to",
        "slack:*",
        "--set",
        "mode=loop",
    ]);
    side.start();
    let hello = plugin(&side, "hello");
    assert_eq!(hello["version"], "0.2.0");
    assert_eq!(
        hello["limit_grants"]["memory-mib"],
        Value::Null,
        "the upgrade granted no more memory: {hello}"
    );
    created(&side, FIRST);
    created(&side, SECOND);
    let dead = side.wait_until("two dead letters", WAIT, || {
        let dead: Vec<Value> = deliveries(&side)
            .into_iter()
            .filter(|d| d["status"] == "dead")
            .collect();
        (dead.len() == 2).then_some(dead)
    });
    let destination = dead[0]["destination"].as_str().unwrap().to_owned();
    assert_eq!(dead[1]["destination"], destination.as_str());
    assert!(slack.posts().is_empty());

    // --- Deliveries: retry every dead letter of the destination.
    let b = signed_in(&side);
    b.goto("/console/deliveries");
    b.wait_for_h1("Deliveries", WAIT);
    let words = said_after_reload(&b, "queued again", || {
        b.form("Retry all")
            .fill("Destination", &destination)
            .submit();
    });
    assert_eq!(
        words,
        format!(
            "2 dead letters to {destination} queued again: they go out now, and the lists below follow."
        )
    );
    let posts = slack.wait_for_posts(2, WAIT);
    assert!(posts.iter().all(|p| p.channel == ENG), "{posts:?}");
    // A destination with none: said, not "Done."
    let words = said_after_reload(&b, "nothing was queued", || {
        b.form("Retry all")
            .fill("Destination", "slack:#nowhere")
            .submit();
    });
    assert!(
        words.starts_with("No dead letters to slack:#nowhere: nothing was queued."),
        "{words}"
    );

    // --- The plugin page: grants, what changed.
    b.goto("/console/plugins/slack-poster");
    b.wait_for_h1("Plugin slack-poster", WAIT);
    assert!(b.checked("post-slack") && b.checked("dm-slack"));
    b.check("dm-slack", false);
    let words = said_after_reload(&b, "Grants of slack-poster", || {
        b.click_button("Save grants");
    });
    assert_eq!(
        words,
        "Grants of slack-poster saved: withdrawn dm-slack. It may return post-slack."
    );
    assert!(!b.checked("dm-slack"));
    assert_eq!(
        plugin(&side, "slack-poster")["grants"],
        json!(["post-slack"])
    );
    b.check("dm-slack", true);
    let words = said_after_reload(&b, "Grants of slack-poster", || {
        b.click_button("Save grants");
    });
    assert_eq!(
        words,
        "Grants of slack-poster saved: granted dm-slack. It may return post-slack, dm-slack."
    );

    // Disable, enable: what it means for the bindings.
    let words = said_after_reload(&b, "Plugin slack-poster", || b.click_button("Disable"));
    assert_eq!(
        words,
        "Plugin slack-poster disabled: it is not called until it is enabled again; its bindings stay."
    );
    assert_eq!(plugin(&side, "slack-poster")["enabled"], false);
    let words = said_after_reload(&b, "Plugin slack-poster", || b.click_button("Enable"));
    assert_eq!(
        words,
        "Plugin slack-poster enabled: it is called for its bindings' events again."
    );
    assert_eq!(plugin(&side, "slack-poster")["enabled"], true);
    // Its breaker was not open: said so.
    let words = said_after_reload(&b, "Breaker of slack-poster", || {
        b.click_button("Reset breaker")
    });
    assert_eq!(words, "Breaker of slack-poster reset (it was not open).");

    // hostile's breaker, opened by three failures in OPS, is closed.
    conf.put_content(
        5_150_100,
        ContentBuilder::page(5_150_100, "OPS", "Pager rota").build(),
    );
    for _ in 0..3 {
        created(&side, 5_150_100);
    }
    side.wait_until("hostile's breaker open", Duration::from_secs(60), || {
        plugin(&side, "hostile")["breaker_until"]
            .as_i64()
            .map(|_| ())
    });
    b.goto("/console/plugins/hostile");
    b.wait_for_h1("Plugin hostile", WAIT);
    let words = said_after_reload(&b, "Breaker of hostile", || b.click_button("Reset breaker"));
    assert_eq!(
        words,
        "Breaker of hostile closed: it is called again from the next event."
    );
    assert_eq!(plugin(&side, "hostile")["breaker_until"], Value::Null);

    // hello's held limit, granted: which limit, and what it ran with.
    b.goto("/console/plugins/hello");
    b.wait_for_h1("Plugin hello", WAIT);
    b.wait_for("#held-limits", WAIT);
    let words = said_after_reload(&b, "Plugin hello", || {
        b.click_button("Grant the limits it requests")
    });
    assert_eq!(
        words,
        "Plugin hello now runs with the limits it requests: memory-mib 64 (ran with 32)."
    );
    assert!(b.texts("#held-limits").is_empty(), "nothing is held now");
    assert_eq!(plugin(&side, "hello")["limit_grants"]["memory-mib"], 64);
    assert!(
        !b.text().contains("Done."),
        "no form here says only “Done.”"
    );
}
