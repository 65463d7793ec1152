//! Delivery to a Slack that behaves as Slack's published Web API description
//! says (`shared/specs/slack/`): read methods parse only query or form
//! arguments, `conversations.list` pages 1,000 channels at a time and has
//! a tier limit, metadata comes back only when asked. Each test starts a
//! real `pagehook serve` and checks what arrived in the fake workspace.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::confluence::{self, ADA};
use common::sidecar::{HOOK_SECRET, PAT, Sidecar};
use pagehook_fakes::{ConfluenceAuth, ContentBuilder, FakeConfluence, FakeSlack, Fault, SlackPost};
use serde_json::Value;

const BOT: &str = "xoxb-contract-tests";
const FIRST_PAGE: u64 = 3_000_001;

/// A fake Confluence with `pages` pages in ENG, `Runbook <i>`.
fn confluence_with_runbooks(pages: u64) -> FakeConfluence {
    confluence::with_ada(
        (0..pages).map(|i| ContentBuilder::page(FIRST_PAGE + i, "ENG", &format!("Runbook {i}"))),
    )
}

fn page_event(name: &str, page: u64, ts: u64) -> Vec<u8> {
    format!(r#"{{"timestamp":{ts},"event":"{name}","userKey":"{ADA}","page":{{"id":{page}}},"updateTrigger":"edit_page"}}"#)
        .into_bytes()
}

fn connect_slack(side: &Sidecar, name: &str, slack: &FakeSlack, token: &str) -> String {
    side.connect_slack(name, &slack.base_url(), token)
}

/// Confluence `prod`, Slack `acme` and slack-poster bound quietly to #eng.
fn bind_eng(side: &Sidecar, conf: &FakeConfluence, slack: &FakeSlack) {
    side.connect_confluence("prod", &conf.base_url());
    connect_slack(side, "acme", slack, BOT);
    side.bind_slack_poster("eng", &[]);
}

fn delivery_id(post: &SlackPost) -> Option<i64> {
    post.metadata.as_ref()?["event_payload"]["delivery_id"].as_i64()
}

fn deliveries(side: &Sidecar) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&side.cli(&["deliveries", "--json", "--limit", "5000"])).unwrap();
    v.as_array().unwrap().clone()
}

/// Waits until every delivery is `sent` and there are `n` of them.
fn wait_all_sent(side: &Sidecar, n: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let all = deliveries(side);
        if all.len() == n && all.iter().all(|d| d["status"] == "sent") {
            return all;
        }
        if Instant::now() > deadline {
            let mut by_status: HashMap<String, usize> = HashMap::new();
            for d in &all {
                *by_status
                    .entry(d["status"].as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            let not_sent: Vec<&Value> = all
                .iter()
                .filter(|d| d["status"] != "sent")
                .take(3)
                .collect();
            panic!(
                "{} deliveries, by status {by_status:?}; some not sent: {not_sent:#?}",
                all.len()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every `conversations.list` / read-method request carried its arguments
/// in the query string, never as JSON.
fn assert_reads_by_query(slack: &FakeSlack) {
    for r in slack.requests() {
        let Some(method) = r.endpoint.as_deref() else {
            continue;
        };
        if matches!(
            method,
            "conversations.list"
                | "conversations.history"
                | "conversations.replies"
                | "users.lookupByEmail"
        ) {
            assert_eq!(r.method, "GET", "{method}: {}", r.path);
            assert!(r.body.is_empty(), "{method} sent a body: {}", r.body);
            assert!(
                r.path.contains('?'),
                "{method} without arguments: {}",
                r.path
            );
        }
    }
}

#[test]
fn a_thousand_events_reach_a_channel_named_last_of_five_thousand_exactly_once_through_faults_and_a_sigkill()
 {
    const PAGES: u64 = 100;
    const PER_PAGE: u64 = 10;
    const N: usize = (PAGES * PER_PAGE) as usize;
    let conf = confluence_with_runbooks(PAGES);
    let slack = FakeSlack::start(BOT);
    slack.add_numbered_channels("team", 4_999);
    slack.add_channel("eng", "C0ENG00001", true);
    let mut side = Sidecar::with_delivery(
        "retry-schedule-ms = [100, 200]\nretry-every-ms = 300\ngive-up-after-ms = 600000\n\
         timeout-ms = 600\nslack-channel-rate = 5000.0\nslack-workspace-rate = 5000.0\njitter = 0.0\n",
    );
    side.connect_confluence("prod", &conf.base_url());
    connect_slack(&side, "acme", &slack, BOT);
    side.install("slack-poster", &["post-slack", "dm-slack"]);
    side.cli(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--scope",
        "space:ENG",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
        "--set",
        "events=page-created, page-updated",
        // A thousand events, one post each (digests would gather them).
        "--digest",
        "off",
    ]);
    // The channel list is rate limited once; then posts meet 429s, 500s
    // before the message lands, 500s after it landed, answers slower than
    // the client's timeout (the message landed), and Slack's own
    // internal_error; the lookups that follow lost answers fail too.
    slack.inject(
        "conversations.list",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    for _ in 0..8 {
        slack.inject(
            "chat.postMessage",
            Fault::RateLimited {
                retry_after_secs: 1,
            },
        );
        slack.inject("chat.postMessage", Fault::Status(500));
        slack.inject("chat.postMessage", Fault::StatusAfterEffect(500));
        slack.inject("chat.postMessage", Fault::Delay(Duration::from_millis(900)));
        slack.inject(
            "chat.postMessage",
            Fault::SlackError("internal_error".into()),
        );
        for _ in 0..20 {
            slack.inject("chat.postMessage", Fault::Delay(Duration::from_millis(5)));
        }
    }
    for _ in 0..3 {
        slack.inject("conversations.replies", Fault::Status(500));
        slack.inject("conversations.history", Fault::Status(503));
    }
    side.start();
    let started = Instant::now();
    let mut ts = 1_000u64;
    for round in 0..PER_PAGE {
        for p in 0..PAGES {
            let name = if round == 0 {
                "page_created"
            } else {
                "page_updated"
            };
            ts += 1;
            let (status, _) = side.hook(
                "prod",
                &page_event(name, FIRST_PAGE + p, ts),
                Some(HOOK_SECRET),
            );
            assert_eq!(status, 202);
        }
        if round == 3 {
            // Mid-burst: kill the server with deliveries in flight.
            slack.wait_for_posts(150, Duration::from_secs(60));
            side.kill();
            side.start();
        }
    }
    let all = wait_all_sent(&side, N, Duration::from_secs(240));
    std::thread::sleep(Duration::from_millis(500));
    let posts = slack.posts();
    let mut per_delivery: HashMap<i64, Vec<&SlackPost>> = HashMap::new();
    for p in &posts {
        assert_eq!(p.channel, "C0ENG00001", "every message in #eng");
        per_delivery
            .entry(delivery_id(p).expect("metadata on every post"))
            .or_default()
            .push(p);
    }
    let twice: Vec<_> = per_delivery
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(twice.is_empty(), "posted more than once: {twice:?}");
    assert_eq!(posts.len(), N, "one message per event");
    for d in &all {
        let id = d["id"].as_i64().unwrap();
        let post = per_delivery
            .get(&id)
            .unwrap_or_else(|| panic!("delivery {id} not in Slack"));
        assert_eq!(
            d["result"].as_str(),
            Some(post[0].ts.as_str()),
            "delivery {id} shows its ts"
        );
    }
    // Threads: each page's updates are replies under its first message.
    let roots = posts.iter().filter(|p| p.thread_ts.is_none()).count();
    assert_eq!(roots, PAGES as usize, "one thread per page");
    assert_reads_by_query(&slack);
    assert!(
        slack.calls("conversations.list") <= 20,
        "names resolved once per scan, not per message: {} list calls",
        slack.calls("conversations.list")
    );
    assert_eq!(
        slack.faults_left("chat.postMessage"),
        0,
        "every fault was met"
    );
    eprintln!(
        "1,000 events through faults and a SIGKILL in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_channel_scan_is_bounded_per_attempt_and_goes_on_where_it_stopped() {
    let conf = confluence_with_runbooks(1);
    let slack = FakeSlack::start(BOT);
    slack.add_numbered_channels("team", 4_999);
    slack.add_channel("eng", "C0ENG00001", true);
    let mut side = Sidecar::with_delivery(
        "retry-schedule-ms = [100]\nretry-every-ms = 100\ngive-up-after-ms = 60000\ntimeout-ms = 2000\n\
         slack-list-pages-per-attempt = 2\njitter = 0.0\n",
    );
    bind_eng(&side, &conf, &slack);
    side.start();
    side.hook(
        "prod",
        &page_event("page_created", FIRST_PAGE, 1),
        Some(HOOK_SECRET),
    );
    let posts = slack.wait_for_posts(1, Duration::from_secs(30));
    assert_eq!(posts[0].channel, "C0ENG00001");
    let list = slack.calls("conversations.list");
    assert_eq!(
        list, 5,
        "5,000 channels are five pages of 1,000, each read once"
    );
    let all = wait_all_sent(&side, 1, Duration::from_secs(10));
    let id = all[0]["id"].as_i64().unwrap();
    let (status, attempts) = side.api(&format!("/api/deliveries/{id}/attempts"));
    assert_eq!(status, 200);
    let text = attempts.to_string();
    assert!(
        text.contains("still looking for #eng"),
        "the first attempts stopped after two pages each: {text}"
    );
    // Every page asked for both channel kinds, without archived ones, 1,000 at a time.
    for r in slack
        .requests()
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some("conversations.list"))
    {
        assert!(
            r.path.contains("types=public_channel%2Cprivate_channel"),
            "{}",
            r.path
        );
        assert!(r.path.contains("exclude_archived=true"), "{}", r.path);
        assert!(r.path.contains("limit=1000"), "{}", r.path);
    }
}

#[test]
fn a_private_channel_and_a_dm_by_email_are_delivered() {
    let conf = confluence_with_runbooks(1);
    let slack = FakeSlack::start(BOT);
    slack.add_numbered_channels("team", 150);
    slack.add_private_channel("secret-eng", "G0SECRET01", true);
    // Not Ada: she makes the change, and nobody is told what they just did.
    slack.add_user("grace@example.com", "U0GRACE001");
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    connect_slack(&side, "acme", &slack, BOT);
    side.install("slack-poster", &["post-slack", "dm-slack"]);
    side.cli(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--to",
        "slack:#secret-eng",
        "--to",
        "slack-dm:grace@example.com",
        "--set",
        "channel=#secret-eng",
        "--set",
        "dm-emails=grace@example.com",
    ]);
    side.start();
    side.hook(
        "prod",
        &page_event("page_created", FIRST_PAGE, 1),
        Some(HOOK_SECRET),
    );
    let posts = slack.wait_for_posts(2, Duration::from_secs(20));
    let dm = slack
        .dm_channel("U0GRACE001")
        .expect("a DM was opened with Grace");
    let mut channels: Vec<&str> = posts.iter().map(|p| p.channel.as_str()).collect();
    channels.sort();
    let mut wanted = vec!["G0SECRET01", dm.as_str()];
    wanted.sort();
    assert_eq!(channels, wanted);
    wait_all_sent(&side, 2, Duration::from_secs(10));
    assert_reads_by_query(&slack);
}

#[test]
fn two_workspaces_bound_at_once_each_get_their_own_messages() {
    let conf = confluence_with_runbooks(1);
    let acme = FakeSlack::start_team("xoxb-acme", "T0ACME", "Acme");
    acme.add_channel("eng", "C0ACMEENG1", true);
    let beta = FakeSlack::start_team("xoxb-beta", "T0BETA", "Beta");
    beta.add_channel("eng", "C0BETAENG1", true);
    beta.add_channel("news", "C0BETANEW1", true);
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    side.install("slack-poster", &["post-slack", "dm-slack"]);
    // A binding from before workspaces were named (as an existing database
    // has): `slack:#eng` means the only workspace...
    side.cli(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    let first = connect_slack(&side, "acme", &acme, "xoxb-acme");
    assert!(!first.contains("binding(s)"), "{first}");
    // ...and keeps meaning it when a second one is connected.
    let said = connect_slack(&side, "beta", &beta, "xoxb-beta");
    assert!(
        said.contains("1 binding(s)"),
        "the old binding now names acme: {said}"
    );
    let bindings = side.cli(&["bindings", "--json"]);
    assert!(bindings.contains("slack:acme/#eng"), "{bindings}");
    // Now `slack:#eng` is ambiguous and refused with the way out.
    let refused = side.cli_output(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("ambiguous") && err.contains("acme, beta"),
        "{err}"
    );
    side.cli(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--to",
        "slack:beta/#news",
        "--set",
        "channel=#news",
    ]);
    side.start();
    side.hook(
        "prod",
        &page_event("page_created", FIRST_PAGE, 1),
        Some(HOOK_SECRET),
    );
    let a = acme.wait_for_posts(1, Duration::from_secs(20));
    let b = beta.wait_for_posts(1, Duration::from_secs(20));
    wait_all_sent(&side, 2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(acme.posts().len(), 1);
    assert_eq!(beta.posts().len(), 1);
    assert_eq!(a[0].channel, "C0ACMEENG1");
    assert_eq!(b[0].channel, "C0BETANEW1", "beta's #news, not beta's #eng");
}

#[test]
fn a_new_connection_greets_the_admin_and_a_binding_announces_itself() {
    let conf = confluence_with_runbooks(1);
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    slack.add_user("admin@example.com", "U0ADMIN001");
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    let said = side.cli(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        BOT,
        "--notify",
        "admin@example.com",
    ]);
    assert!(said.contains("greeting DM is queued"), "{said}");
    side.install("slack-poster", &["post-slack", "dm-slack"]);
    let bound = side.cli(&[
        "bind",
        "slack-poster",
        "--scope",
        "space:ENG",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    assert!(bound.contains("announced"), "{bound}");
    let quiet = side.cli(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--scope",
        "space:OPS",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    assert!(!quiet.contains("announced"), "{quiet}");
    side.start();
    let posts = slack.wait_for_posts(2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(slack.posts().len(), 2, "the quiet binding posted nothing");
    let dm = slack.dm_channel("U0ADMIN001").expect("the admin got a DM");
    let greeting = posts.iter().find(|p| p.channel == dm).expect("greeting");
    assert!(
        greeting
            .text
            .as_deref()
            .unwrap_or_default()
            .contains("Pagehook is connected")
    );
    let note = posts
        .iter()
        .find(|p| p.channel == "C0ENG00001")
        .expect("announcement");
    let text = note.text.as_deref().unwrap_or_default();
    assert!(
        text.contains("space:ENG") && text.contains("page-created"),
        "{text}"
    );
    wait_all_sent(&side, 2, Duration::from_secs(10));
}

#[test]
fn confluence_content_never_becomes_a_slack_mention() {
    let conf = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    let evil = "<!channel> <!here> <@U0ADMIN> & <https://evil.example|click>";
    conf.put_user(ADA, "ada", evil, "ada@example.com");
    conf.put_content(
        FIRST_PAGE,
        ContentBuilder::page(FIRST_PAGE, "ENG", &format!("Launch {evil}"))
            .author("ada", ADA, evil)
            .build(),
    );
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let mut side = Sidecar::new();
    bind_eng(&side, &conf, &slack);
    side.start();
    side.hook(
        "prod",
        &page_event("page_created", FIRST_PAGE, 1),
        Some(HOOK_SECRET),
    );
    let post = &slack.wait_for_posts(1, Duration::from_secs(20))[0];
    let mut rendered = vec![post.text.clone().unwrap_or_default()];
    fn mrkdwn(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if m.get("type").and_then(Value::as_str) == Some("mrkdwn")
                    && let Some(t) = m.get("text").and_then(Value::as_str)
                {
                    out.push(t.to_owned());
                }
                m.values().for_each(|v| mrkdwn(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| mrkdwn(v, out)),
            _ => {}
        }
    }
    mrkdwn(post.blocks.as_ref().unwrap_or(&Value::Null), &mut rendered);
    for text in &rendered {
        for control in [
            "<!channel>",
            "<!here>",
            "<@U0ADMIN>",
            "<https://evil.example|",
        ] {
            assert!(
                !text.contains(control),
                "`{control}` reached Slack as mrkdwn: {text}"
            );
        }
    }
    assert!(
        rendered[0].contains("&lt;!channel&gt;"),
        "the fallback shows the title escaped: {}",
        rendered[0]
    );
}

#[test]
fn a_channel_deleted_and_made_again_under_its_name_is_looked_up_once_more() {
    let conf = confluence_with_runbooks(2);
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let mut side = Sidecar::new();
    bind_eng(&side, &conf, &slack);
    side.start();
    side.hook(
        "prod",
        &page_event("page_created", FIRST_PAGE, 1),
        Some(HOOK_SECRET),
    );
    slack.wait_for_posts(1, Duration::from_secs(20));
    let lists = slack.calls("conversations.list");
    // #eng is deleted and made again: the cached id is gone.
    slack.delete_channel("C0ENG00001");
    slack.add_channel("eng", "C0ENG00002", true);
    side.hook(
        "prod",
        &page_event("page_created", FIRST_PAGE + 1, 2),
        Some(HOOK_SECRET),
    );
    let posts = slack.wait_for_posts(2, Duration::from_secs(20));
    assert_eq!(posts[1].channel, "C0ENG00002", "posted to the new #eng");
    assert_eq!(
        slack.calls("conversations.list"),
        lists + 1,
        "one more lookup after channel_not_found"
    );
    wait_all_sent(&side, 2, Duration::from_secs(10));
}

#[test]
fn a_failed_lookup_after_a_lost_answer_is_retried_never_a_dead_letter() {
    let conf = confluence_with_runbooks(1);
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    let mut side = Sidecar::with_delivery(
        "retry-schedule-ms = [100]\nretry-every-ms = 100\ngive-up-after-ms = 60000\ntimeout-ms = 400\njitter = 0.0\n",
    );
    bind_eng(&side, &conf, &slack);
    // The post lands but its answer comes after the client gave up; then
    // the history lookup meets a 500, a 429 and an error that would be a
    // dead letter for a post.
    slack.inject("chat.postMessage", Fault::Delay(Duration::from_millis(800)));
    slack.inject("conversations.history", Fault::Status(500));
    slack.inject(
        "conversations.history",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    slack.inject(
        "conversations.history",
        Fault::SlackError("channel_not_found".into()),
    );
    side.start();
    side.hook(
        "prod",
        &page_event("page_created", FIRST_PAGE, 1),
        Some(HOOK_SECRET),
    );
    let all = wait_all_sent(&side, 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(slack.posts().len(), 1, "found, not posted again");
    assert_eq!(slack.faults_left("conversations.history"), 0);
    assert_eq!(
        all[0]["result"].as_str(),
        Some(slack.posts()[0].ts.as_str())
    );
    let (_, attempts) = side.api(&format!(
        "/api/deliveries/{}/attempts",
        all[0]["id"].as_i64().unwrap()
    ));
    let outcomes: Vec<&str> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert!(!outcomes.contains(&"dead"), "{attempts:#}");
    assert_eq!(outcomes.last(), Some(&"sent"));
    assert!(
        outcomes.len() >= 5,
        "one lost answer, three failed lookups, then found: {attempts:#}"
    );
    // Every lookup read from just before the first attempt, with metadata.
    for r in slack
        .requests()
        .iter()
        .filter(|r| r.endpoint.as_deref() == Some("conversations.history"))
    {
        assert!(r.path.contains("oldest="), "{}", r.path);
        assert!(r.path.contains("include_all_metadata=true"), "{}", r.path);
    }
}
