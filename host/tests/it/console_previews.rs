//! Rendered previews in a real browser (headless Chromium, `make chromium`):
//! a page whose title is an XSS probe is previewed through three bindings,
//! and each action is drawn as it would land, in the binding's row and on
//! its own preview page: slack-poster's Block Kit as a Slack message,
//! teams-poster's card by Microsoft's Adaptive Cards renderer (its
//! `.ac-adaptiveCard`), retro-writer's storage format as a Confluence page.
//! The raw request waits behind a closed "Show request"; the Deliveries
//! page folds each message under its row and offers no Retry on a dry
//! run's would-send rows. The probe stays text everywhere, and the
//! browser's console shows no Content-Security-Policy violation.
//! Screenshots go to `target/console/` (docs/console.md shows them).

use crate::common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::confluence::{self, ADA};
use common::sidecar::{ADMIN_TOKEN, HOOK_SECRET, Sidecar};
use pagehook_fakes::{ContentBuilder, FakeSlack, FakeTeams};
use serde_json::{Value, json};

const ENG_PAGE: u64 = 2818051;
const BOT: &str = "xoxb-console-previews";
/// Markup, a handler and a Slack broadcast in a title: all must stay text.
const TITLE: &str = r#"Q3 launch <script>window.__pwned=1</script> "><img src=x onerror=window.__pwned=2> & <!channel>"#;
const WAIT: Duration = Duration::from_secs(20);

fn cli_json(side: &Sidecar, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str::<Value>(&side.cli(&all))
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The id of the binding of `plugin`.
fn binding(side: &Sidecar, plugin: &str) -> i64 {
    cli_json(side, &["bindings"])
        .iter()
        .find(|b| b["plugin"] == plugin)
        .and_then(|b| b["id"].as_i64())
        .unwrap_or_else(|| panic!("no binding of {plugin}"))
}

/// Chooses `event` in binding `id`'s Preview form and sends it, as the
/// select and the button would.
fn preview_in_row(b: &Browser, id: i64, event: i64) {
    let sent = b.js(
        "const f = document.querySelector('form[data-preview-into=\"preview-' + arguments[0] + '\"]');
         if (!f) return 'no preview form for binding ' + arguments[0];
         const s = f.querySelector('select[name=event_id]');
         s.value = String(arguments[1]);
         if (s.value !== String(arguments[1])) return 'event ' + arguments[1] + ' is not offered';
         f.requestSubmit(f.querySelector('button[type=submit]'));
         return 'ok';",
        vec![json!(id), json!(event)],
    );
    assert_eq!(sent, "ok");
}

/// Fails the test when the page's DOM holds an element the probe would
/// have made, or when its script ran.
fn assert_probe_is_text(b: &Browser, scope: &str) {
    let found = b.js(
        "const root = document.querySelector(arguments[0]);
         if (!root) return 'missing ' + arguments[0];
         const bad = [...root.querySelectorAll('script, img, iframe, [onerror], [onclick]')].map(e => e.outerHTML);
         const links = [...root.querySelectorAll('a[href]')].map(a => a.getAttribute('href')).filter(h => !/^(https?:|mailto:|\\/console\\/)/i.test(h));
         return JSON.stringify({bad, links, pwned: window.__pwned || null});",
        vec![json!(scope)],
    );
    assert_eq!(
        found,
        json!(r#"{"bad":[],"links":[],"pwned":null}"#),
        "{scope} on {}",
        b.url()
    );
}

fn assert_no_csp_violation(b: &Browser, step: &str) {
    let violations = b.csp_violations();
    assert!(
        violations.is_empty(),
        "{step}: the Content-Security-Policy refused something: {violations:#?}"
    );
}

/// Waits for `css` to match; returns its text.
fn drawn(b: &Browser, css: &str) -> String {
    b.wait_for(css, WAIT)
}

#[test]
fn previews_draw_slack_teams_and_confluence_as_they_land() {
    let conf = confluence::with_ada([ContentBuilder::page(ENG_PAGE, "ENG", TITLE)
        .labels(&["incident"])
        .version_message("Fixed the <rollback> steps")]);
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let teams = FakeTeams::start();
    let workflow = teams.add_workflow("eng-news");
    let mut side = Sidecar::new();
    side.connect_confluence("wiki", &conf.base_url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.cli(&["connect", "teams", "eng-news", "--url", &workflow]);
    side.install("slack-poster", &["post-slack"]);
    side.install("teams-poster", &["post-teams"]);
    side.install("retro-writer", &["create-page", "add-comment"]);
    let eng = ["--scope", "space:ENG", "--dry-run"];
    for args in [
        &[
            "bind",
            "slack-poster",
            "--quiet",
            "--to",
            "slack:#eng",
            "--set",
            "channel=#eng",
        ][..],
        &[
            "bind",
            "teams-poster",
            "--to",
            "teams:eng-news",
            "--set",
            "channel=eng-news",
        ][..],
        &[
            "bind",
            "retro-writer",
            "--to",
            "confluence:*",
            "--to",
            "comment:*",
        ][..],
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(&eng);
        side.cli(&all);
    }
    side.start();
    let body = format!(
        r#"{{"timestamp":1,"event":"page_created","userKey":"{ADA}","page":{{"id":{ENG_PAGE}}}}}"#
    );
    let (status, stored) = side.hook("wiki", body.as_bytes(), Some(HOOK_SECRET));
    assert_eq!(status, 202, "{stored}");
    let event = stored["id"].as_i64().unwrap();
    side.wait_json(&["deliveries"], "four dry-run deliveries", |v| {
        let all = v.as_array().unwrap();
        all.len() == 4 && all.iter().all(|d| d["status"] == "would-send")
    });
    let (s, t, r) = (
        binding(&side, "slack-poster"),
        binding(&side, "teams-poster"),
        binding(&side, "retro-writer"),
    );

    let mut b = Browser::start();
    b.set_base(&side.base);
    b.goto("/console/sign-in");
    b.form("Sign in as admin")
        .fill("Admin token", ADMIN_TOKEN)
        .submit();
    b.wait_for_h1("Overview", WAIT);

    // --- In the bindings' rows.
    b.goto("/console/bindings");
    b.wait_for_h1("Bindings", WAIT);
    let started = Instant::now();
    preview_in_row(&b, s, event);
    let message = drawn(&b, &format!("#preview-{s} .sk-message"));
    let slack_ms = started.elapsed();
    assert!(
        message.contains("Q3 launch <script>window.__pwned=1</script>"),
        "{message}"
    );
    assert!(message.contains("Open page"), "{message}");
    let header = b.texts(&format!("#preview-{s} .sk-header"));
    assert_eq!(
        header,
        [TITLE],
        "the header is plain text, shown as written"
    );
    let started = Instant::now();
    preview_in_row(&b, t, event);
    let card = drawn(&b, &format!("#preview-{t} .teams-card .ac-adaptiveCard"));
    let teams_ms = started.elapsed();
    assert!(
        card.contains("Q3 launch <script>window.__pwned=1</script>"),
        "{card}"
    );
    preview_in_row(&b, r, event);
    let page = drawn(&b, &format!("#preview-{r} .cf-page"));
    assert!(page.contains("Retrospective"), "{page}");
    assert!(page.contains("Q3 launch <script>"), "{page}");
    for id in [s, t, r] {
        let slot = format!("#preview-{id}");
        assert_probe_is_text(&b, &slot);
        // The request is there, folded.
        let closed = b.js(
            "return [...document.querySelectorAll(arguments[0] + ' details.raw-request')].map(d => d.open);",
            vec![json!(slot)],
        );
        let closed = closed.as_array().unwrap();
        assert!(
            !closed.is_empty() && closed.iter().all(|o| o == false),
            "{slot}: {closed:?}"
        );
    }
    let request = b.js(
        "return document.querySelector(arguments[0] + ' details.raw-request pre').textContent;",
        vec![json!(format!("#preview-{s}"))],
    );
    assert!(
        request
            .as_str()
            .unwrap()
            .contains("\"method\": \"chat.postMessage\""),
        "{request}"
    );
    assert_no_csp_violation(&b, "previews in the bindings' rows");
    b.screenshot("binding-previews");
    eprintln!(
        "in-row previews drawn: Slack in {slack_ms:?}, Teams (renderer loaded) in {teams_ms:?}"
    );

    // --- Each on its own page.
    for (id, css, shot) in [
        (s, ".sk-message", "preview-slack"),
        (t, ".ac-adaptiveCard", "preview-teams"),
        (r, ".cf-page", "preview-confluence"),
    ] {
        b.goto(&format!("/console/bindings/{id}/preview?event_id={event}"));
        b.wait_for_h1(&format!("Preview of binding {id} on event {event}"), WAIT);
        drawn(&b, &format!("#preview-body {css}"));
        assert_probe_is_text(&b, "#preview-body");
        b.assert_inputs_labelled(shot);
        assert_no_csp_violation(&b, shot);
        b.screenshot(shot);
    }
    // The card the renderer drew is the card teams-poster made: its action is a button.
    b.goto(&format!("/console/bindings/{t}/preview?event_id={event}"));
    drawn(&b, "#preview-body .ac-adaptiveCard");
    let buttons = b.js(
        "return [...document.querySelectorAll('.ac-adaptiveCard button')].map(x => x.textContent.trim());",
        vec![],
    );
    assert!(
        buttons.as_array().unwrap().iter().any(|x| x == "Open page"),
        "{buttons}"
    );

    // --- Deliveries: one line each, the message folded under it.
    b.goto("/console/deliveries");
    b.wait_for_h1("Deliveries", WAIT);
    let open = b.js(
        "return [...document.querySelectorAll('details')].filter(d => d.open).length;",
        vec![],
    );
    assert_eq!(open, 0, "nothing is open by default");
    let text = b.text();
    assert!(
        !text.contains("\"method\""),
        "no request shown until asked:\n{text}"
    );
    assert_eq!(
        b.texts("button").iter().filter(|t| *t == "Retry").count(),
        0,
        "no Retry on a dry run's would-send rows"
    );
    assert!(
        text.contains("Dry-run binding: recorded, never sent; nothing to retry."),
        "{text}"
    );
    let height = b
        .js("return document.documentElement.scrollHeight;", vec![])
        .as_u64()
        .unwrap();
    assert!(
        height < 1600,
        "four deliveries fit on a screen or so: {height} px"
    );
    let wide = b
        .js("return document.documentElement.scrollWidth;", vec![])
        .as_u64()
        .unwrap();
    assert!(wide <= 1280, "the table fits the window: {wide} px");
    b.screenshot("deliveries-folded");
    b.js(
        "for (const d of document.querySelectorAll('details.delivery-message')) d.open = true;",
        vec![],
    );
    drawn(&b, "#deliveries-table .ac-adaptiveCard");
    drawn(&b, "#deliveries-table .sk-message");
    drawn(&b, "#deliveries-table .cf-page");
    assert_probe_is_text(&b, "#deliveries-table");
    assert_no_csp_violation(&b, "deliveries");
    b.screenshot("deliveries-messages");
}
