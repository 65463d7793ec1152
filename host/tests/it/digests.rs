//! Digests end to end (issue 25): `pagehook serve` with slack-poster
//! (contract 0.3.0, `digests = true`) against the fake Confluence and fake
//! Slack on loopback.
//!
//! - A 600-page import posts one digest to `#eng` and one direct message
//!   per person concerned; every event is covered, once.
//! - Seven quick edits of one page post one "edited 7 times" in its thread.
//! - With digests off every event posts as before, in order, at Slack's
//!   per-channel pace (the fake refusing faster posts).
//! - SIGKILL while a digest is collecting: after the restart it is posted
//!   once, covering every event.
//! - A dry-run binding records the digest instead of sending it.
//!
//! The window is short here (seconds, so a burst goes quiet quickly); the
//! rules themselves are unit-tested in `digest::rules` with the defaults.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::sidecar::{HOOK_SECRET, PAT, Sidecar};
use pagehook_fakes::{
    ConfluenceAuth, ContentBuilder, FakeConfluence, FakeSlack, SERVICE_USERNAME, SlackPost,
};
use serde_json::{Value, json};

const ADA: &str = "8a7f80839e460b0f019e460ba6440001";
const GRACE: &str = "8a7f80839e460b0f019e460ba6440002";
const LINUS: &str = "8a7f80839e460b0f019e460ba6440003";
const BOT: &str = "xoxb-digest-tests";
const ENG: &str = "C0ENG00001";
const GRACE_SLACK: &str = "U0GRACE001";
const LINUS_SLACK: &str = "U0LINUS001";
/// The first imported page's id.
const FIRST: u64 = 5_000_000;

/// Confluence with Ada, Grace and Linus and `pages` pages in ENG created by
/// Ada (`Imported page <i>`), Grace watching every one, Linus the first.
fn confluence_with_watched_pages(pages: u64) -> FakeConfluence {
    let conf = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    // Watchers are listed to a Confluence administrator (Data Center 9),
    // and who may view ENG's pages to an administrator of the space.
    conf.set_service_confluence_admin(true);
    conf.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
    conf.grant_space("ENG", "group:confluence-users", &["read"]);
    for (key, name, display) in [
        (ADA, "ada", "Ada Lovelace"),
        (GRACE, "grace", "Grace Hopper"),
        (LINUS, "linus", "Linus Torvalds"),
    ] {
        conf.add_user(
            name,
            key,
            display,
            &format!("{name}@example.com"),
            &format!("pw-{name}"),
            &["confluence-users"],
        );
    }
    for i in 0..pages {
        let id = FIRST + i;
        conf.put_content(
            id,
            ContentBuilder::page(id, "ENG", &format!("Imported page {i}"))
                .space("ENG", "Engineering")
                .ancestors(&[])
                .author("ada", ADA, "Ada Lovelace")
                .build(),
        );
        conf.watch(id, "grace");
    }
    if pages > 0 {
        conf.watch(FIRST, "linus");
    }
    conf
}

fn slack() -> FakeSlack {
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", ENG, true);
    slack.add_user("grace@example.com", GRACE_SLACK);
    slack.add_user("linus@example.com", LINUS_SLACK);
    slack
}

/// A sidecar with Confluence `prod`, Slack `acme`, and slack-poster posting
/// ENG's pages to #eng and telling watchers personally, with `extra` bind
/// arguments (digest settings).
fn sidecar(side: Sidecar, conf: &FakeConfluence, slack: &FakeSlack, extra: &[&str]) -> Sidecar {
    side.connect_confluence("prod", &conf.base_url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    let mut args = vec![
        "--scope",
        "space:ENG",
        "--to",
        "slack-dm:*",
        "--set",
        "events=page-created, page-updated",
        "--set",
        "notify-watchers=true",
    ];
    args.extend_from_slice(extra);
    side.bind_slack_poster("eng", &args);
    side
}

/// Confluence's id-only webhook for `event` on `page` by Ada at `ts`.
fn webhook(event: &str, page: u64, ts: u64) -> Vec<u8> {
    json!({
        "timestamp": ts,
        "event": event,
        "userKey": ADA,
        "page": {"id": page},
        "updateTrigger": "edit_page"
    })
    .to_string()
    .into_bytes()
}

/// Sends the creation of pages `0..n`, in order.
fn import(side: &Sidecar, n: u64) {
    for i in 0..n {
        let (status, answer) = side.hook(
            "prod",
            &webhook("page_created", FIRST + i, 1_768_000_000_000 + i),
            Some(HOOK_SECRET),
        );
        assert_eq!(status, 202, "{answer}");
    }
}

fn channel_posts(slack: &FakeSlack) -> Vec<SlackPost> {
    slack
        .posts()
        .into_iter()
        .filter(|p| p.channel == ENG)
        .collect()
}

fn dms(slack: &FakeSlack) -> Vec<SlackPost> {
    slack
        .posts()
        .into_iter()
        .filter(|p| p.channel != ENG)
        .collect()
}

/// Waits until `check` holds, for at most `secs` seconds.
fn wait_until(secs: u64, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json_of(side: &Sidecar, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&side.cli(&all)).unwrap()
}

/// Every event is dispatched, and every one was held for the binding and
/// released with one event (the digest's last): returns that event's id.
fn all_in_one_digest(side: &Sidecar, n: usize) -> i64 {
    let events = json_of(side, &["events", "--limit", "1000"]);
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), n, "every event stored once");
    assert!(
        events.iter().all(|e| e["status"] == "dispatched"),
        "every event dispatched"
    );
    let mut carriers = HashSet::new();
    for e in events {
        let (status, held) = side.api(&format!("/api/events/{}/held", e["id"]));
        assert_eq!(status, 200, "{held}");
        let held = held.as_array().unwrap();
        assert_eq!(held.len(), 1, "held once: {held:?}");
        assert!(held[0]["released_at"].is_i64(), "released: {held:?}");
        carriers.insert(held[0]["released_with"].as_i64().unwrap());
    }
    assert_eq!(
        carriers.len(),
        1,
        "one digest carries them all: {carriers:?}"
    );
    carriers.into_iter().next().unwrap()
}

#[test]
fn a_600_page_import_posts_one_digest_and_one_message_per_person() {
    const N: u64 = 600;
    let conf = confluence_with_watched_pages(N);
    let slack = slack();
    let mut side = sidecar(Sidecar::new(), &conf, &slack, &["--digest-window", "8"]);
    side.start();
    let started = Instant::now();
    import(&side, N);
    // Grace watches all 600 pages, Linus the first: three messages in all.
    wait_until(120, "the digest and two direct messages", || {
        slack.posts().len() >= 3
    });
    let took = started.elapsed();
    // Nothing more comes: the digest covered every event.
    std::thread::sleep(Duration::from_secs(4));
    let posts = channel_posts(&slack);
    assert_eq!(posts.len(), 1, "one message to #eng: {posts:#?}");
    let text = posts[0].text.as_deref().unwrap();
    assert!(
        text.starts_with(
            "Ada Lovelace created 600 pages in Engineering: Imported page 0, Imported page 1, Imported page 2 and 597 more: "
        ),
        "{text}"
    );
    assert!(text.contains("/dosearchsite.action?cql="), "{text}");
    let blocks = posts[0].blocks.as_ref().unwrap().to_string();
    assert!(blocks.contains("Imported page 9") && !blocks.contains("Imported page 10"));
    assert!(blocks.contains("and 590 more"), "{blocks}");
    assert!(
        blocks.contains(&format!("{}/dosearchsite.action?cql=", conf.base_url())),
        "the search is on the Confluence the events came from: {blocks}"
    );

    let dms = dms(&slack);
    assert_eq!(dms.len(), 2, "{dms:#?}");
    let to = |user: &str| -> SlackPost {
        let channel = slack.dm_channel(user).unwrap();
        let mine: Vec<SlackPost> = dms
            .iter()
            .filter(|p| p.channel == channel)
            .cloned()
            .collect();
        assert_eq!(mine.len(), 1, "one message for {user}: {mine:#?}");
        mine[0].clone()
    };
    let grace = to(GRACE_SLACK);
    assert!(
        grace
            .text
            .as_deref()
            .unwrap()
            .starts_with("You watch it: 600 updates in Engineering concern you"),
        "{grace:?}"
    );
    let linus = to(LINUS_SLACK);
    assert!(
        linus
            .text
            .as_deref()
            .unwrap()
            .starts_with("You watch it: Ada Lovelace created the page \"Imported page 0\""),
        "one page concerns Linus: its own message. {linus:?}"
    );

    let carrier = all_in_one_digest(&side, N as usize);
    let deliveries = json_of(&side, &["deliveries", "--limit", "1000"]);
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 3, "{deliveries:#?}");
    assert!(deliveries.iter().all(|d| d["event_id"] == carrier));
    assert_eq!(
        carrier,
        json_of(&side, &["events", "--limit", "1"])[0]["id"],
        "a digest hangs off its last event"
    );
    eprintln!("600-page import to one digest and two DMs in {took:?}");
}

#[test]
fn seven_quick_edits_of_one_page_post_one_update_in_its_thread() {
    let conf = confluence_with_watched_pages(1);
    let slack = slack();
    let mut side = sidecar(Sidecar::new(), &conf, &slack, &["--digest-window", "8"]);
    side.start();
    let (status, _) = side.hook(
        "prod",
        &webhook("page_created", FIRST, 1_768_000_000_000),
        Some(HOOK_SECRET),
    );
    assert_eq!(status, 202);
    wait_until(30, "the new page's message", || {
        !channel_posts(&slack).is_empty()
    });
    let opened = channel_posts(&slack)[0].clone();
    assert!(opened.thread_ts.is_none());
    for v in 2..=8u64 {
        conf.put_content(
            FIRST,
            ContentBuilder::page(FIRST, "ENG", "Imported page 0")
                .space("ENG", "Engineering")
                .ancestors(&[])
                .author("ada", ADA, "Ada Lovelace")
                .version(v as u32)
                .version_message(&format!("edit {v}"))
                .build(),
        );
        let (status, _) = side.hook(
            "prod",
            &webhook("page_updated", FIRST, 1_768_000_100_000 + v),
            Some(HOOK_SECRET),
        );
        assert_eq!(status, 202);
    }
    wait_until(60, "the update", || channel_posts(&slack).len() >= 2);
    std::thread::sleep(Duration::from_secs(4));
    let posts = channel_posts(&slack);
    assert_eq!(posts.len(), 2, "one message for seven edits: {posts:#?}");
    let update = &posts[1];
    assert_eq!(
        update.thread_ts.as_deref(),
        Some(opened.ts.as_str()),
        "in the page's thread"
    );
    let text = update.text.as_deref().unwrap();
    assert!(
        text.starts_with("Ada Lovelace edited \"Imported page 0\" 7 times in Engineering"),
        "{text}"
    );
    // Grace watches the page: the new page, then one message for the edits.
    let grace = slack.dm_channel(GRACE_SLACK).unwrap();
    let to_grace: Vec<SlackPost> = dms(&slack)
        .into_iter()
        .filter(|p| p.channel == grace)
        .collect();
    assert_eq!(to_grace.len(), 2, "{to_grace:#?}");
}

#[test]
fn with_digests_off_every_event_posts_in_order_at_slacks_pace() {
    // 600 at one a second would take ten minutes: 25 show the same.
    const N: u64 = 25;
    let conf = confluence_with_watched_pages(N);
    let slack = slack();
    // Slack's own words: "1 per second, short bursts >1 allowed": at most
    // three in any two seconds (at exactly one a second, arrival jitter
    // may put three sends in a two-second window, never four).
    slack.limit_posts_per_channel(3, Duration::from_secs(2));
    let side = Sidecar::with_delivery(
        "retry-schedule-ms = [100, 200, 400]\nretry-every-ms = 400\ngive-up-after-ms = 60000\n\
         timeout-ms = 1000\nslack-channel-rate = 1.0\nslack-workspace-rate = 100.0\njitter = 0.0\n",
    );
    // Only the channel: nobody is told personally here.
    side.connect_confluence("prod", &conf.base_url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.bind_slack_poster("eng", &["--scope", "space:ENG", "--digest", "off"]);
    let mut side = side;
    let settings = json_of(&side, &["digest", "1"]);
    assert_eq!(settings[0]["settings"]["enabled"], false, "{settings}");
    assert_eq!(settings[0]["plugin_takes_digests"], true, "{settings}");
    side.start();
    import(&side, N);
    wait_until(N + 30, "every page's message", || {
        channel_posts(&slack).len() >= N as usize
    });
    std::thread::sleep(Duration::from_secs(2));
    let posts = channel_posts(&slack);
    assert_eq!(posts.len(), N as usize, "one message per event");
    let order: Vec<u64> = posts
        .iter()
        .map(|p| {
            let text = p.text.as_deref().unwrap();
            let rest = text
                .strip_prefix("Ada Lovelace created the page \"Imported page ")
                .unwrap_or_else(|| panic!("{text}"));
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect();
    assert_eq!(
        order,
        (0..N).collect::<Vec<_>>(),
        "in event order ({} posts refused with 429)",
        slack.rate_limited_posts()
    );
    assert_eq!(
        slack.rate_limited_posts(),
        0,
        "never faster than Slack allows"
    );
    let span = posts[N as usize - 1].received_at - posts[0].received_at;
    assert!(
        span >= Duration::from_millis(950 * (N - 1)),
        "at about one a second: {span:?}"
    );
    let (status, held) = side.api(&format!(
        "/api/events/{}/held",
        json_of(&side, &["events", "--limit", "1"])[0]["id"]
    ));
    assert_eq!((status, held), (200, json!([])), "nothing was held");
}

#[test]
fn sigkill_while_a_digest_collects_then_it_is_posted_once_covering_every_event() {
    const N: u64 = 100;
    let conf = confluence_with_watched_pages(N);
    let slack = slack();
    // A longer window: the burst collects for 15 s after its last event,
    // time enough to kill the server while it does.
    let mut side = sidecar(Sidecar::new(), &conf, &slack, &["--digest-window", "60"]);
    side.start();
    import(&side, N);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let digests = json_of(&side, &["digest", "1"]);
        let collecting = &digests[0]["collecting"];
        if collecting.as_array().is_some_and(|c| !c.is_empty()) {
            assert_eq!(collecting[0]["space_key"], "ENG");
            assert!(
                collecting[0]["events"].as_u64().unwrap() > 20,
                "{collecting}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never collecting: {digests}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The console says so too.
    let (status, page) = console_page(&side, "/console/events");
    assert_eq!(status, 200);
    assert!(page.contains("collecting a digest"), "{page}");
    side.kill();
    assert!(
        slack.posts().is_empty(),
        "nothing was posted before the kill"
    );

    side.start();
    wait_until(90, "the digest after the restart", || {
        !channel_posts(&slack).is_empty()
    });
    std::thread::sleep(Duration::from_secs(5));
    let posts = channel_posts(&slack);
    assert_eq!(posts.len(), 1, "posted once: {posts:#?}");
    assert!(
        posts[0]
            .text
            .as_deref()
            .unwrap()
            .starts_with("Ada Lovelace created 100 pages in Engineering"),
        "covering every event: {:?}",
        posts[0].text
    );
    all_in_one_digest(&side, N as usize);
    assert_eq!(dms(&slack).len(), 2, "Grace and Linus, once each");
}

#[test]
fn a_dry_run_binding_records_the_digest_and_sends_nothing() {
    const N: u64 = 30;
    let conf = confluence_with_watched_pages(N);
    let slack = slack();
    let mut side = sidecar(
        Sidecar::new(),
        &conf,
        &slack,
        &["--digest-window", "4", "--dry-run"],
    );
    side.start();
    import(&side, N);
    side.wait_json(&["deliveries"], "the digest, recorded", |v| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|d| d["status"] == "would-send" && d["action"]["channel"] == "#eng")
    });
    std::thread::sleep(Duration::from_secs(3));
    let deliveries = json_of(&side, &["deliveries"]);
    let to_eng: Vec<&Value> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"]["channel"] == "#eng")
        .collect();
    assert_eq!(to_eng.len(), 1, "{deliveries:#}");
    assert_eq!(to_eng[0]["status"], "would-send");
    assert!(
        to_eng[0]["action"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Ada Lovelace created 30 pages in Engineering"),
        "{deliveries:#}"
    );
    assert!(slack.posts().is_empty(), "a dry run sends nothing");

    // The preview of any of its events shows that digest.
    let first = json_of(&side, &["events", "--limit", "1000"])
        .as_array()
        .unwrap()
        .last()
        .unwrap()["id"]
        .clone();
    let preview: Value = reqwest::blocking::Client::new()
        .post(format!("{}/api/bindings/1/preview", side.base))
        .bearer_auth(common::sidecar::ADMIN_TOKEN)
        .json(&json!({ "event_id": first }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        preview["digest_of"].as_array().map(Vec::len),
        Some(N as usize),
        "{preview:#}"
    );
    assert!(
        preview["notes"]
            .to_string()
            .contains("went out in a digest of 30 events"),
        "{preview:#}"
    );
    let eng: Vec<&Value> = preview["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"]["channel"] == "#eng")
        .collect();
    assert_eq!(eng.len(), 1, "{preview:#}");
    assert!(
        eng[0]["action"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Ada Lovelace created 30 pages in Engineering"),
        "{preview:#}"
    );
}

/// `plugin run --digest` runs `handle-digest` on a list of events, as the
/// sidecar would; a plugin that does not take digests is told so.
#[test]
fn plugin_run_takes_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    let page = common::event("page_created.json");
    let events: Vec<Value> = (0..3)
        .map(|i| {
            let mut e = serde_json::to_value(&page).unwrap();
            e["id"] = json!(format!("prod:page_created:{i}"));
            e["content"]["id"] = json!(9_000 + i);
            e["content"]["title"] = json!(format!("Runbook {i}"));
            e
        })
        .collect();
    let path = dir.path().join("burst.json");
    std::fs::write(&path, serde_json::to_vec(&events).unwrap()).unwrap();
    let run = |plugin: &str, setting: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pagehook"))
            .args(["plugin", "run"])
            .arg(common::plugin_dir(plugin))
            .arg("--digest")
            .arg(&path)
            .args(["--set", setting])
            .env("PAGEHOOK_CACHE_DIR", dir.path().join("cache"))
            .env_remove("PAGEHOOK_CONFIG")
            .output()
            .unwrap()
    };
    let out = run("slack-poster", "channel=#eng");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let actions: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(actions.as_array().unwrap().len(), 1, "{actions:#}");
    assert!(
        actions[0]["text"]
            .as_str()
            .unwrap()
            .contains("created 3 pages in Engineering: Runbook 0, Runbook 1, Runbook 2"),
        "{actions:#}"
    );
    assert!(stderr.contains("(pagehook:plugin@0.3.0)"), "{stderr}");
    let refused = run("retro-writer", "space=OPS");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("does not take digests"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// GET a console page as the admin, signed in with the admin token as a
/// browser would (the sign-in form's double-submit token, then the
/// session cookie).
fn console_page(side: &Sidecar, path: &str) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie_of = |answer: &reqwest::blocking::Response, name: &str| -> String {
        answer
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .and_then(|c| c.split(';').next())
            .unwrap_or_else(|| panic!("no {name} cookie"))
            .to_owned()
    };
    let form = client
        .get(format!("{}/console/sign-in", side.base))
        .send()
        .unwrap();
    let sign_in = cookie_of(&form, "pagehook_sign_in");
    let html = form.text().unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the sign-in form's token")
        .to_owned();
    let signed_in = client
        .post(format!("{}/console/sign-in/admin", side.base))
        .header("cookie", &sign_in)
        .form(&[
            ("csrf", csrf.as_str()),
            ("admin-token", common::sidecar::ADMIN_TOKEN),
        ])
        .send()
        .unwrap();
    let session = cookie_of(&signed_in, "pagehook_session");
    let answer = client
        .get(format!("{}{path}", side.base))
        .header("cookie", session)
        .send()
        .unwrap();
    (answer.status().as_u16(), answer.text().unwrap())
}

/// The store's side of digests, on both backends (SQLite and a real
/// PostgreSQL): held events are written with their event's dispatch and
/// only while the event is still the claim's, released once under a
/// claim with what their plugin made of them, re-formed from the store
/// after a crash, and gone with their binding.
mod store {
    use std::sync::Arc;

    use pagehook::model::{Action, Event};
    use pagehook::store::ingest::Ingest;
    use pagehook::store::{
        BreakerPolicy, Claim, DigestSettings, Dispatched, NewBinding, NewDelivery, NewEvent,
        NewHeld, PluginCall, Released, Scope, Store, StoreError,
    };
    use tokio::sync::Notify;

    use crate::store_suite::{postgres, sqlite};

    const BREAKER: BreakerPolicy = BreakerPolicy {
        threshold: 3,
        cooldown_ms: 60_000,
    };

    /// slack-poster installed and bound once; the binding's id.
    async fn binding(store: &Store) -> i64 {
        let manifest = pagehook::testing::bundled_manifest("slack-poster");
        assert!(manifest.digests);
        store
            .install_plugin(&pagehook::testing::plugin(manifest, &["post-slack"]))
            .await
            .unwrap();
        store
            .add_binding(&NewBinding {
                plugin: "slack-poster".into(),
                source: None,
                scope: Scope::Space("ENG".into()),
                events: vec![],
                destinations: vec!["slack:#eng".into()],
                settings: vec![("channel".into(), "#eng".into())],
                dry_run: false,
            })
            .await
            .unwrap()
            .id
    }

    fn enriched(id: i64) -> Event {
        serde_json::from_value(serde_json::json!({
            "id": format!("prod:{id}"), "kind": "page-created", "name": "page_created",
            "source": "prod", "enriched": true,
            "content": {"id": 7000 + id, "content_type": "page", "title": format!("Page {id}"),
                        "space_key": "ENG", "url": "https://wiki/x", "version": 1}
        }))
        .unwrap()
    }

    fn dispatched(event_id: i64, deliveries: Vec<NewDelivery>) -> Dispatched {
        Dispatched {
            event_id,
            event: enriched(event_id),
            deliveries,
            audit: vec![],
            failures: vec![],
            calls: vec![PluginCall {
                plugin: "slack-poster".into(),
                succeeded: true,
                error: None,
            }],
        }
    }

    fn post(binding_id: i64, text: &str) -> NewDelivery {
        NewDelivery {
            binding_id,
            plugin: "slack-poster".into(),
            destination: "slack:#eng".into(),
            action: Action::PostSlack {
                channel: "#eng".into(),
                text: text.into(),
                blocks: None,
                thread_key: None,
            },
            dry_run: false,
            lane: "slack:acme/eng".into(),
            source: "prod".into(),
            connection: Some("acme".into()),
        }
    }

    /// Stores `n` events and dispatches them, holding each for `binding`.
    async fn held(store: &Store, binding_id: i64, n: usize) -> Vec<i64> {
        let ingest = Ingest::start(store, Arc::new(Notify::new())).unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            let event = NewEvent {
                key: format!("k{i}"),
                source: "prod".into(),
                name: "page_created".into(),
                payload: r#"{"event":"page_created"}"#.into(),
                dispatchable: true,
            };
            ids.push(ingest.insert(event).await.unwrap().id);
        }
        let claim = Claim::new("dispatcher", 60_000);
        assert_eq!(store.claim_events(&claim, 100).await.unwrap().len(), n);
        let batch: Vec<Dispatched> = ids.iter().map(|id| dispatched(*id, vec![])).collect();
        let holds: Vec<NewHeld> = ids
            .iter()
            .map(|id| NewHeld {
                binding_id,
                event_id: *id,
                space_key: "ENG".into(),
                page_update: None,
            })
            .collect();
        assert_eq!(
            store
                .finish_dispatch_holding(&claim, &batch, &holds, BREAKER)
                .await
                .unwrap(),
            n
        );
        ids
    }

    async fn held_then_released_once(store: &Store) {
        let b = binding(store).await;
        let ids = held(store, b, 3).await;
        let rows = store.held_events(0).await.unwrap();
        assert_eq!(rows.len(), 3);
        assert!(
            rows.iter()
                .all(|r| r.binding_id == b && r.released_at.is_none())
        );
        assert_eq!(rows.iter().map(|r| r.event_id).collect::<Vec<_>>(), ids);

        // One replica claims them; another finds nothing to take.
        let row_ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let a = Claim::new("a", 60_000);
        let claimed = store.claim_held(&a, &row_ids).await.unwrap();
        assert_eq!(
            claimed.iter().map(|c| c.held.event_id).collect::<Vec<_>>(),
            ids,
            "in event order"
        );
        assert_eq!(
            claimed[1].event,
            enriched(ids[1]),
            "as dispatch enriched it"
        );
        let other = Claim::new("b", 60_000);
        assert!(store.claim_held(&other, &row_ids).await.unwrap().is_empty());

        // The batch as the console's preview re-forms it, while held.
        let batch = store.held_batch(b, ids[1]).await.unwrap();
        assert_eq!(batch.len(), 3);

        // Released with the digest's delivery under its last event.
        let released: Vec<Released> = claimed
            .iter()
            .map(|c| Released {
                held_id: c.held.id,
                with_event: ids[2],
            })
            .collect();
        let digest = [dispatched(ids[2], vec![post(b, "3 new pages")])];
        assert!(
            !store
                .finish_held(&other, &released, &digest, BREAKER)
                .await
                .unwrap(),
            "not the claim's: nothing written"
        );
        assert!(store.deliveries(None, 10).await.unwrap().is_empty());
        assert!(
            store
                .finish_held(&a, &released, &digest, BREAKER)
                .await
                .unwrap()
        );
        assert!(
            !store
                .finish_held(&a, &released, &digest, BREAKER)
                .await
                .unwrap(),
            "released once"
        );
        let deliveries = store.deliveries(None, 10).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].event_id, ids[2]);
        for id in &ids {
            let rows = store.event_held(*id).await.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].released_with, Some(ids[2]));
        }
        assert_eq!(store.held_batch(b, ids[0]).await.unwrap().len(), 3);
        // Released rows of a space that holds nothing more are not read again.
        assert!(store.held_events(0).await.unwrap().is_empty());
        assert_eq!(store.purge_released_held(i64::MAX).await.unwrap(), 3);
    }

    async fn a_crash_leaves_them_held_and_a_lost_dispatch_holds_nothing(store: &Store) {
        let b = binding(store).await;
        held(store, b, 2).await;
        let rows = store.held_events(0).await.unwrap();
        let row_ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        // A replica claims them with a short lease and dies: once the lease
        // ends, the same batch is formed again from the store.
        let dead = Claim::new("dead", 1);
        assert_eq!(store.claim_held(&dead, &row_ids).await.unwrap().len(), 2);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let next = Claim::new("next", 60_000);
        assert_eq!(store.claim_held(&next, &row_ids).await.unwrap().len(), 2);
        store.release_held_claim(&next).await.unwrap();
        let again = Claim::new("again", 60_000);
        assert_eq!(store.claim_held(&again, &row_ids).await.unwrap().len(), 2);

        // Dispatch results of a claim that lost its events hold nothing.
        let ingest = Ingest::start(store, Arc::new(Notify::new())).unwrap();
        let id = ingest
            .insert(NewEvent {
                key: "late".into(),
                source: "prod".into(),
                name: "page_created".into(),
                payload: r#"{"event":"page_created"}"#.into(),
                dispatchable: true,
            })
            .await
            .unwrap()
            .id;
        let stale = Claim::new("stale", 60_000);
        let hold = [NewHeld {
            binding_id: b,
            event_id: id,
            space_key: "ENG".into(),
            page_update: Some(7),
        }];
        assert_eq!(
            store
                .finish_dispatch_holding(&stale, &[dispatched(id, vec![])], &hold, BREAKER)
                .await
                .unwrap(),
            0
        );
        assert!(store.event_held(id).await.unwrap().is_empty());
    }

    async fn settings_and_the_binding_going(store: &Store) {
        let b = binding(store).await;
        assert!(store.digest_settings().await.unwrap().is_empty());
        let off = DigestSettings {
            enabled: false,
            threshold: 50,
            window_secs: 600,
        };
        store.set_digest_settings(b, Some(off)).await.unwrap();
        assert_eq!(store.digest_settings().await.unwrap(), vec![(b, off)]);
        store.set_digest_settings(b, None).await.unwrap();
        assert!(store.digest_settings().await.unwrap().is_empty());
        assert!(matches!(
            store.set_digest_settings(b + 100, Some(off)).await,
            Err(StoreError::NotFound(_))
        ));
        store.set_digest_settings(b, Some(off)).await.unwrap();
        held(store, b, 2).await;
        store.remove_binding(b).await.unwrap();
        assert!(store.held_events(0).await.unwrap().is_empty());
        assert!(store.digest_settings().await.unwrap().is_empty());
    }

    macro_rules! on_both {
        ($($name:ident),*) => {
            mod on_sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::$name(&super::sqlite().await.store).await;
                    }
                )*
            }
            mod on_postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::$name(&super::postgres().await.store).await;
                    }
                )*
            }
        };
    }

    on_both!(
        held_then_released_once,
        a_crash_leaves_them_held_and_a_lost_dispatch_holds_nothing,
        settings_and_the_binding_going
    );
}
