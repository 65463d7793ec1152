//! Issue 26, walked through in headless Chromium as a new admin would:
//! connect Slack and test it, bind slack-poster to space ENG by picking
//! `#eng` from the channel list (the destination and the plugin's channel
//! setting agree by construction, and only what differs from the defaults
//! is stored), tick events, preview a stored event; connect Teams, send a
//! test card, bind teams-poster by picking the Teams channel; then the
//! Teams workflow is deleted, its deliveries turn dead letters, the
//! connection is marked with the fix on the Overview; the admin edits the
//! connection's URL and retries the dead letters from the Overview, and
//! sees them sent. Every step is screenshotted (`target/console/walk-*.png`,
//! copied to docs/console/ and shown in docs/console.md).
//!
//! Also: the same console with 100,000 events stored, timed in the
//! browser (navigation to load event), every page under 200 ms.

use crate::common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::confluence::{self, ADA};
use common::sidecar::{ADMIN_TOKEN, HOOK_SECRET, Sidecar};
use pagehook_fakes::{ContentBuilder, FakeSlack, FakeTeams};
use serde_json::{Value, json};

const BOT: &str = "xoxb-walkthrough-7781";
const ENG_PAGE: u64 = 3_310_001;
/// Long, as real titles are: the preview's event list must not push the
/// row's buttons off a 1280 px screen.
const ENG_TITLE: &str = "Release checklist for the October launch of the new billing pipeline, with the migration plan, the rollback drill and the on-call rota for the first week";
const SECOND_PAGE: u64 = 3_310_002;
const SECOND_TITLE: &str = "Postmortem: the billing export of 12 November";
const THIRD_PAGE: u64 = 3_310_003;
const WAIT: Duration = Duration::from_secs(20);

fn page_created(page: u64, ts: u64) -> Vec<u8> {
    format!(
        r#"{{"timestamp":{ts},"event":"page_created","userKey":"{ADA}","page":{{"id":{page}}}}}"#
    )
    .into_bytes()
}

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

/// The console's words about the last form (`#result`), once they no
/// longer say it is working.
fn said(b: &Browser) -> String {
    let started = Instant::now();
    loop {
        let text = b.texts("#result").join(" ");
        if !text.is_empty() && !text.ends_with('…') {
            return text;
        }
        assert!(
            started.elapsed() < WAIT,
            "no answer in #result on {}; the page reads:\n{}",
            b.url(),
            b.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `#result` holds `part` (after a reload it holds what the
/// form said before it).
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

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Screenshots the whole page from its top (a reload to `#binding-1`
/// scrolls to the row), as `target/console/<name>.png`.
fn shot(b: &Browser, name: &str) {
    b.js("window.scrollTo(0, 0);", vec![]);
    b.screenshot(name);
}

/// The preview in `slot` is drawn, not dumped: the request JSON (which
/// holds `raw`, say `"blocks":`) is in the page, folded behind a closed
/// "Show request", and nothing a person reads there shows it.
fn assert_preview_drawn(b: &Browser, slot: &str, raw: &str) {
    let shown = b.texts(slot).join("\n");
    assert!(
        !shown.contains(raw) && !shown.contains("{\""),
        "{slot} shows raw JSON ({raw}):\n{shown}"
    );
    let folded = b.js(
        "return [...document.querySelectorAll(arguments[0] + ' details.raw-request')].map(d => [d.open, d.querySelector('pre') ? d.querySelector('pre').textContent : '']);",
        vec![json!(slot)],
    );
    let folded = folded.as_array().unwrap();
    assert!(
        folded.iter().all(|d| d[0] == false),
        "{slot}: every request starts closed: {folded:?}"
    );
    assert!(
        folded
            .iter()
            .any(|d| d[1].as_str().unwrap_or_default().contains(raw)),
        "{slot}: the request, with {raw}, is behind Show request: {folded:?}"
    );
}

/// Every button and link of the table rows is inside a 1280 px window.
fn assert_actions_in_view(b: &Browser, page: &str) {
    let outside = b.js(
        r#"return [...document.querySelectorAll('td.row-actions button, td.row-actions select')]
             .filter(e => e.offsetParent !== null)
             .map(e => [e.textContent.trim() || e.id, Math.round(e.getBoundingClientRect().right)])
             .filter(([, right]) => right > window.innerWidth);"#,
        vec![],
    );
    assert_eq!(
        outside,
        json!([]),
        "actions off a {} px screen on {page}",
        b.js("return window.innerWidth;", vec![])
    );
}

#[test]
fn a_new_admin_connects_binds_by_picking_breaks_teams_and_repairs_it() {
    let started = Instant::now();
    // ENG with three pages by Ada; OPS known, without pages.
    let conf = confluence::with_ada(
        [
            (ENG_PAGE, ENG_TITLE),
            (SECOND_PAGE, SECOND_TITLE),
            (THIRD_PAGE, "Launch retrospective"),
        ]
        .map(|(id, title)| ContentBuilder::page(id, "ENG", title)),
    );
    conf.add_space("ENG", "Engineering");
    conf.add_space("OPS", "Operations");
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    slack.add_channel("general", "C0GEN00001", true);
    slack.add_channel("engineering-leads", "C0LEADS001", false);
    slack.add_private_channel("eng-private", "G0ENGP0001", true);
    slack.add_private_channel("hr-secret", "G0HR000001", false);
    let teams = FakeTeams::start();
    let first_workflow = teams.add_workflow("eng-news");

    let mut side = Sidecar::new();
    side.connect_confluence("wiki", &conf.base_url());
    // A connection that only receives webhooks (no token): Pagehook never
    // reads Confluence through it, so nobody is offered to sign in with it.
    side.cli(&[
        "connect",
        "confluence",
        "hooks-only",
        "--url",
        "http://127.0.0.1:9",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    side.install("slack-poster", &["post-slack"]);
    side.install("teams-poster", &["post-teams"]);
    side.start();
    let mut b = Browser::start();
    b.set_base(&side.base);

    // `/` leads to the console (and, signed out, to the sign-in page).
    b.goto("/");
    assert_eq!(b.path(), "/console/sign-in", "{}", b.url());
    assert_eq!(
        b.options("Confluence"),
        ["wiki"],
        "no sign-in through hooks-only"
    );
    // A form without its fields is answered in a sentence, not parser text.
    let raw = reqwest::blocking::Client::new()
        .post(format!("{}/console/sign-out", side.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let page = raw.text().unwrap();
    assert!(
        page.contains("The form was sent without its “csrf” field. Reload the page")
            && !page.contains("missing field"),
        "{page}"
    );
    let raw = reqwest::blocking::Client::new()
        .post(format!("{}/api/bindings", side.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"scope": "space:ENG"}))
        .send()
        .unwrap();
    let answer: Value = raw.json().unwrap();
    assert_eq!(
        answer["error"], "the request has no `plugin` (it is required)",
        "{answer}"
    );
    b.form("Sign in as admin")
        .fill("Admin token", ADMIN_TOKEN)
        .submit();
    b.wait_for_h1("Overview", WAIT);

    // --- 1. Connect Slack; the words stay after the page reloads.
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);
    b.form("Connect Slack")
        .fill("Name", "acme")
        .fill("Bot token", BOT)
        .fill("Slack API URL", &slack.base_url())
        .submit();
    wait_said(&b, "Connection acme (slack) saved");
    b.wait_for("tr#connection-acme", WAIT);
    let kept = wait_said(&b, "Connection acme (slack) saved");
    assert!(kept.contains("Test it"), "{kept}");

    // Its test: the result stays on the row and sets the health.
    b.click_button_near("acme", "Test");
    assert!(said(&b).contains("Test passed"), "{}", b.text());
    let row = b.texts("tr#connection-acme").join(" ");
    assert!(
        row.contains("works") && row.contains("Slack accepts the token"),
        "{row}"
    );
    b.assert_inputs_labelled("connections");
    shot(&b, "walk-1-connect-slack");

    // --- 2. Bind slack-poster to ENG by picking #eng from the list.
    b.goto("/console/bindings?plugin=slack-poster");
    b.wait_for_h1("Bindings", WAIT);
    b.wait_for_text("Where to post", WAIT);
    let form = b.form("Add binding");
    form.fill("Space key", "eng");
    form.fill("Find a channel", "eng");
    wait_until("the channels matching “eng”", || {
        b.texts("[data-pick-status]")
            .iter()
            .any(|t| t.contains("matching “eng”"))
    });
    let options = b.options("Channel");
    assert!(
        options
            .iter()
            .any(|o| o == "#eng-private (private; the bot is in it)"),
        "a private channel the bot is in is marked: {options:?}"
    );
    assert!(
        options
            .iter()
            .any(|o| o == "#engineering-leads (the bot is not in it)"),
        "{options:?}"
    );
    assert!(
        !options
            .iter()
            .any(|o| o.contains("hr-secret") || o.contains("general")),
        "private channels without the bot are not listed, and the search narrows: {options:?}"
    );
    form.select("Channel", "#eng");
    let summary = b.texts("[data-picker=slack] [data-pick-summary]").join(" ");
    assert_eq!(
        summary, "Posts to slack:acme/#eng; setting channel = #eng.",
        "the destination and the setting, from one choice"
    );
    form.check_only("Events", &["page-created", "page-updated"]);
    form.check("skip-minor-edits", false);
    // A page-id setting searches pages by title (Pagehook's account reads them).
    form.fill("under-page", "Postm");
    wait_until("the page search", || {
        b.js(
            "return [...document.querySelectorAll('#setting-under-page-pages option')].map(o => o.value + ' ' + o.label);",
            vec![],
        )
        .to_string()
        .contains(&format!("{SECOND_PAGE} Postmortem: the billing export of 12 November (ENG)"))
    });
    form.fill("under-page", "");
    form.fill("labels", "release");
    b.enter();
    form.fill("labels", "launch,");
    let chips = b.texts(".chip");
    assert_eq!(chips.len(), 2, "{chips:?}");
    b.assert_inputs_labelled("bindings");
    shot(&b, "walk-2-pick-channel");
    form.submit();
    let words = wait_said(&b, "Binding ");
    assert!(
        words.starts_with("Binding 1 added for space ENG.")
            && words.contains("It may post to slack:acme/#eng"),
        "{words}"
    );
    // The page was reloaded: the words stayed and the new row is the target.
    wait_until("the reload", || b.url().contains("#binding-1"));
    wait_said(&b, "Binding 1 added for space ENG");
    // The Space filter takes any case.
    b.goto("/console/bindings?space=eng");
    b.wait_for_h1("Bindings", WAIT);
    assert!(
        b.text().contains("Space ENG") && b.text().contains("slack:acme/#eng"),
        "{}",
        b.text()
    );
    let bindings = cli_json(&side, &["bindings"]);
    assert_eq!(bindings.len(), 1, "{bindings:#?}");
    let bound = &bindings[0];
    assert_eq!(bound["scope"], "space:ENG");
    assert_eq!(bound["destinations"], json!(["slack:acme/#eng"]));
    assert_eq!(bound["events"], json!(["page-created", "page-updated"]));
    let settings: Vec<(String, String)> =
        serde_json::from_value(bound["settings"].clone()).unwrap();
    let mut settings = settings;
    settings.sort();
    assert_eq!(
        settings,
        [
            ("channel".to_owned(), "#eng".to_owned()),
            ("events".to_owned(), "page-created, page-updated".to_owned()),
            ("labels".to_owned(), "release, launch".to_owned()),
            ("skip-minor-edits".to_owned(), "false".to_owned()),
        ],
        "only what differs from the defaults is stored"
    );
    shot(&b, "walk-3-bound");

    // The same rule from the command line: a channel the binding's
    // destinations do not allow is refused, saying both; nothing changes.
    let refused = side.cli_output(&[
        "bind",
        "slack-poster",
        "--scope",
        "space:ENG",
        "--to",
        "slack:acme/#eng",
        "--set",
        "channel=#general",
        "--quiet",
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("`channel` = `#general`") && err.contains("slack:acme/#eng"),
        "{err}"
    );
    assert_eq!(cli_json(&side, &["bindings"]).len(), 1, "nothing changed");
    // The pickers' look-ups, as the API answers them.
    let (status, spaces) = side.api("/api/connections/wiki/spaces?q=eng");
    assert_eq!(status, 200, "{spaces}");
    assert_eq!(spaces, json!([{"key": "ENG", "name": "Engineering"}]));
    let (status, channels) = side.api("/api/connections/acme/channels?q=ENG-");
    assert_eq!(status, 200, "{channels}");
    assert_eq!(
        channels["channels"],
        json!([{"name": "#eng-private", "id": "G0ENGP0001", "private": true, "member": true}])
    );
    let (status, wrong) = side.api("/api/connections/wiki/channels");
    assert_eq!(status, 400, "{wrong}");

    // The binding announced itself in #eng; a page created in ENG reaches
    // #eng too (after the digest's gathering second).
    let first_event = hook(&side, &page_created(ENG_PAGE, 1));
    wait_until("the page's post in #eng", || {
        slack.posts().iter().any(|p| {
            p.channel == "C0ENG00001"
                && p.text
                    .as_deref()
                    .is_some_and(|t| t.contains("Release checklist"))
        })
    });
    side.wait_json(&["events"], "the event dispatched", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == first_event && e["status"] == "dispatched")
    });

    // --- 3. Preview the stored event; the row keeps its buttons in view.
    b.goto("/console/bindings");
    b.wait_for_h1("Bindings", WAIT);
    assert_actions_in_view(&b, "bindings");
    let preview = b.form_near("slack:acme/#eng", "Preview");
    preview.select_containing("Event", &format!("#{first_event} "));
    preview.submit();
    // Drawn as Slack shows it: a message with the page's title, no JSON.
    let message = b.wait_for("#preview-1 .sk-message", WAIT);
    assert!(message.contains("Release checklist"), "{message}");
    assert_preview_drawn(&b, "#preview-1", "\"blocks\":");
    assert_actions_in_view(&b, "bindings with a preview");
    shot(&b, "walk-4-preview");

    // --- 4. Connect Teams, send a test card (with consent), bind teams-poster.
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);
    b.form("Connect Teams")
        .fill("Name", "eng-news")
        .fill("Workflow URL", &first_workflow)
        .submit();
    wait_said(&b, "Connection eng-news (teams) saved");
    b.wait_for("tr#connection-eng-news", WAIT);
    b.click_button_near("eng-news", "Test");
    let words = said(&b);
    assert!(words.contains("Not tested"), "{words}");
    let row = b.texts("tr#connection-eng-news").join(" ");
    assert!(row.contains("Send test card"), "{row}");
    // The console asks before it posts a real card: say yes.
    b.js("window.confirm = () => true;", vec![]);
    b.click_button_near("eng-news", "Send test card");
    assert!(said(&b).contains("Test passed"), "{}", b.text());
    let cards = teams.wait_for_posts(1, WAIT);
    assert!(
        cards[0].card.to_string().contains("Pagehook"),
        "{}",
        cards[0].card
    );
    shot(&b, "walk-5-teams-test-card");

    b.goto("/console/bindings?plugin=teams-poster");
    b.wait_for_h1("Bindings", WAIT);
    b.wait_for_text("Teams channel", WAIT);
    b.form("Add binding")
        .fill("Space key", "ENG")
        .select_containing("Teams channel (connection)", "eng-news")
        .check_only("Events", &["page-created"])
        .submit();
    let words = wait_said(&b, "Binding 2 added for space ENG");
    assert!(words.contains("teams:eng-news"), "{words}");
    let bindings = cli_json(&side, &["bindings"]);
    let teams_binding = bindings
        .iter()
        .find(|x| x["plugin"] == "teams-poster")
        .unwrap();
    assert_eq!(teams_binding["destinations"], json!(["teams:eng-news"]));
    assert!(
        teams_binding["settings"]
            .to_string()
            .contains("[\"channel\",\"eng-news\"]"),
        "{teams_binding}"
    );
    // Its preview on the stored event: the card drawn by the Adaptive Cards
    // renderer, as the channel will see it, with its button.
    b.goto("/console/bindings");
    b.wait_for_h1("Bindings", WAIT);
    let preview = b.form_near("teams:eng-news", "Preview");
    preview.select_containing("Event", &format!("#{first_event} "));
    preview.submit();
    let card = b.wait_for("#preview-2 .teams-card .ac-adaptiveCard", WAIT);
    assert!(card.contains("Release checklist"), "{card}");
    assert_preview_drawn(&b, "#preview-2", "\"AdaptiveCard\"");
    let buttons = b.js(
        "return [...document.querySelectorAll('#preview-2 .ac-adaptiveCard button')].map(x => x.textContent.trim());",
        vec![],
    );
    assert!(
        buttons.as_array().unwrap().iter().any(|x| x == "Open page"),
        "{buttons}"
    );
    assert_actions_in_view(&b, "bindings with a Teams preview");
    shot(&b, "walk-5b-teams-preview");

    // --- 5. The workflow is deleted in Teams; a new page's card is a dead
    // letter, and the connection says so, with the fix, on the Overview.
    teams.remove_workflow("eng-news");
    hook(&side, &page_created(SECOND_PAGE, 2));
    side.wait_json(&["deliveries", "--status", "dead"], "a dead letter", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|d| d["destination"] == "teams:eng-news")
    });
    // The page's Slack post too (slack-poster holds each event a second
    // for a possible digest): nothing changes under the Overview's buttons
    // while they are clicked.
    side.wait_json(&["deliveries"], "the other deliveries settled", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] != "pending" && d["status"] != "sending")
            && v.as_array().unwrap().len() >= 3
    });
    b.goto("/console/overview");
    b.wait_for_h1("Overview", WAIT);
    wait_until("the mark on the overview", || b.text().contains("workflow"));
    let attention = b.texts("#attention li").join("\n");
    assert!(
        attention.contains("eng-news")
            && attention.contains("no longer exists")
            && attention.contains("Fix:"),
        "the overview names the connection and the fix:\n{attention}"
    );
    assert!(!b.text().contains("Every connection works"), "{}", b.text());
    shot(&b, "walk-6-overview-marked");

    // --- 6. Repair: a new workflow, its URL in the connection (edited; the
    // change is logged), then retry the dead letters from the Overview.
    let second_workflow = teams.add_workflow("eng-news-2");
    // A refused value changes nothing, not even the dry run sent beside it.
    let refused = reqwest::blocking::Client::new()
        .patch(format!("{}/api/connections/eng-news", side.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"url": "ftp://teams.example/workflow", "dry_run": true}))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let said: Value = refused.json().unwrap();
    assert!(
        said["error"].as_str().unwrap().contains("https://"),
        "{said}"
    );
    let (_, connections) = side.api("/api/connections");
    let eng_news = connections
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "eng-news")
        .unwrap();
    assert_eq!(eng_news["dry_run"], false, "{eng_news}");
    assert!(eng_news["health"].is_string(), "still marked: {eng_news}");
    b.goto("/console/connections/eng-news");
    b.wait_for_h1("Connection eng-news", WAIT);
    b.form("Save changes")
        .fill("Workflow URL", &second_workflow)
        .submit();
    let words = wait_said(&b, "eng-news");
    assert!(words.contains("URL"), "{words}");
    shot(&b, "walk-7-edit-connection");
    b.goto("/console/overview");
    b.wait_for_h1("Overview", WAIT);
    let attention = b.texts("#attention li").join("\n");
    assert!(attention.contains("1 dead letter"), "{attention}");
    b.click_button_near("eng-news", "Retry 1 dead letter");
    wait_said(&b, "queued again");
    let cards = teams.wait_for_posts(2, WAIT);
    assert_eq!(cards[1].workflow, "eng-news-2");
    assert!(
        cards[1].card.to_string().contains("Postmortem"),
        "{}",
        cards[1].card
    );
    side.wait_json(&["deliveries", "--status", "dead"], "no dead letter", |v| {
        v.as_array().unwrap().is_empty()
    });
    b.goto("/console/overview");
    b.wait_for_h1("Overview", WAIT);
    assert!(b.text().contains("Every connection works"), "{}", b.text());
    shot(&b, "walk-8-repaired");
    b.goto("/console/deliveries");
    b.wait_for_h1("Deliveries", WAIT);
    shot(&b, "walk-9-deliveries-sent");
    b.goto("/console/changes");
    b.wait_for_h1("Changes", WAIT);
    let changes = b.text();
    assert!(changes.contains("connection.edit"), "{changes}");
    assert!(
        !changes.contains("sig="),
        "the workflow's signature is never shown"
    );
    b.goto("/console/connections");
    b.wait_for_h1("Connections", WAIT);
    assert_actions_in_view(&b, "connections");

    // An archived Slack channel marks its workspace too, naming the channel.
    slack.archive_channel("eng");
    let third = hook(&side, &page_created(THIRD_PAGE, 3));
    side.wait_json(&["connections"], "acme marked", |v| {
        v.as_array().unwrap().iter().any(|c| {
            c["name"] == "acme"
                && c["health"].as_str().is_some_and(|h| {
                    h.starts_with("Slack channel #eng (slack:acme/#eng) is archived")
                })
        })
    });
    // A new #eng is made; Retry on the dead letter's row: the row says it
    // was queued, then (without a reload) that it was sent; the mark goes.
    slack.delete_channel("C0ENG00001");
    slack.add_channel("eng", "C0ENG00002", true);
    b.goto("/console/deliveries");
    b.wait_for_h1("Deliveries", WAIT);
    let event_cell = format!("Event {third}");
    let status_of = |cell: &str| {
        b.js(
            "const row = [...document.querySelectorAll('tr')].find(r => r.innerText.includes(arguments[0]) && r.innerText.includes('slack:acme/#eng') && r.querySelector('td .state'));
             return row ? row.querySelector('td .state').textContent : null;",
            vec![json!(cell)],
        )
    };
    assert_eq!(status_of(&event_cell), json!("dead"));
    b.click_button_near("slack:acme/#eng", "Retry");
    wait_said(&b, "queued again");
    b.js("window.__notReloaded = true;", vec![]);
    assert!(
        b.texts("tr.retried").join(" ").contains("queued again"),
        "{:?}",
        b.texts("tr")
    );
    wait_until("the retried row to say sent", || {
        status_of(&event_cell) == json!("sent")
    });
    assert_eq!(
        b.js("return window.__notReloaded === true;", vec![]),
        json!(true),
        "the row changed without a reload"
    );
    side.wait_json(&["connections"], "acme's mark cleared", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "acme" && c["health"].is_null())
    });
    eprintln!("walkthrough: {:?}", started.elapsed());
}

/// The Pagehook admin's pages, timed in Chromium with 100,000 events
/// stored (console_speed's store): from the navigation's start to its load
/// event (the HTML, the stylesheets and scripts, the page drawn), the
/// best of five visits each (the suite shares two cores), every one under 200 ms.
#[test]
fn pages_load_in_the_browser_in_under_200_ms_with_100k_events() {
    const BUDGET: f64 = 200.0;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = crate::console_speed::App::new();
    let filled = Instant::now();
    rt.block_on(app.fill());
    eprintln!(
        "100,000 events stored in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = pagehook::server::router(app.state.clone());
    rt.spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });

    let mut b = Browser::start();
    b.set_base(&base);
    b.goto("/console/sign-in");
    b.form("Sign in as admin")
        .fill("Admin token", crate::console_speed::ADMIN_TOKEN)
        .submit();
    b.wait_for_h1("Overview", WAIT);
    let detail = crate::console_speed::EVENTS / 2;
    let pages = [
        "/console/overview".to_owned(),
        "/console/events".to_owned(),
        "/console/events?space=s07".to_owned(),
        "/console/events?space=S07&kind=page_created&status=dispatched".to_owned(),
        format!("/console/events/{detail}"),
        "/console/deliveries".to_owned(),
        "/console/deliveries?status=dead".to_owned(),
        "/console/bindings".to_owned(),
        "/console/connections".to_owned(),
        "/console/changes".to_owned(),
    ];
    let mut slow = Vec::new();
    eprintln!("{:>9} {:>9}  page", "loaded", "answered");
    for path in &pages {
        let mut loads = Vec::new();
        let mut answers = Vec::new();
        // The best of five: the suite runs hundreds of tests beside this one
        // on two cores, and a page is as fast as it can load when nothing
        // else takes the CPU (a slow page is slow every time).
        for _ in 0..5 {
            b.goto(path);
            let t = b.js(
                r#"const n = performance.getEntriesByType('navigation')[0];
                   return [n.loadEventEnd - n.startTime, n.responseEnd - n.startTime, document.querySelector('h1') ? document.querySelector('h1').textContent : ''];"#,
                vec![],
            );
            assert!(
                !t[2].as_str().unwrap_or_default().is_empty(),
                "{path} showed no heading"
            );
            if path.contains("space=s07") {
                let text = b.text();
                assert!(
                    text.contains("50 events") && text.contains("of S07"),
                    "`s07` finds space S07's events:\n{}",
                    &text[..text.len().min(2000)]
                );
            }
            loads.push(t[0].as_f64().unwrap());
            answers.push(t[1].as_f64().unwrap());
        }
        loads.sort_by(f64::total_cmp);
        answers.sort_by(f64::total_cmp);
        let (load, answer) = (loads[0], answers[0]);
        eprintln!("{load:>6.1} ms {answer:>6.1} ms  {path}");
        if load >= BUDGET {
            slow.push(format!("{path}: {load:.1} ms"));
        }
    }
    assert!(
        slow.is_empty(),
        "pages over {BUDGET} ms in the browser with 100,000 events: {slow:#?}"
    );
}
