//! Delivery end to end: `pagehook serve` carries out deliveries to fake
//! Slack, Teams and Confluence servers on loopback that inject faults, and
//! every accepted event reaches each destination exactly once, in order,
//! within the rate limits — also across a SIGKILL.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::confluence::{self, ADA};
use common::sidecar::{HOOK_SECRET, Sidecar};
use pagehook_fakes::{
    ContentBuilder, FakeConfluence, FakeSlack, FakeTeams, Fault, SlackPost, endpoints,
};
use serde_json::Value;

const PAGE: u64 = 2818051;
const COMMENT: u64 = 2818077;
const BOT: &str = "xoxb-delivery-tests";
const WAIT: Duration = Duration::from_secs(20);

/// A fake Confluence with the checklist in ENG and a comment on it.
fn confluence_with_page_and_comment() -> FakeConfluence {
    confluence::with_ada([
        ContentBuilder::page(PAGE, "ENG", "Q3 launch checklist"),
        ContentBuilder::comment(COMMENT, PAGE, "Q3 launch checklist", "ENG"),
    ])
}

fn slack() -> FakeSlack {
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    slack
}

/// A sidecar with Confluence `prod`, Slack `acme` and slack-poster bound to #eng.
fn slack_side(side: Sidecar, conf: &FakeConfluence, slack: &FakeSlack) -> Sidecar {
    side.connect_confluence("prod", &conf.base_url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.bind_slack_poster(
        "eng",
        &[
            "--scope",
            "space:ENG",
            "--set",
            "events=page-created, page-updated, comment-created",
            // One message per event, whatever comes how fast: these tests
            // count deliveries (digests have their own, tests/it/digests.rs).
            "--digest",
            "off",
        ],
    );
    side
}

fn page_event(name: &str, ts: u64) -> Vec<u8> {
    format!(r#"{{"timestamp":{ts},"event":"{name}","userKey":"{ADA}","page":{{"id":{PAGE}}},"updateTrigger":"edit_page"}}"#)
        .into_bytes()
}

fn comment_event(ts: u64) -> Vec<u8> {
    format!(r#"{{"timestamp":{ts},"event":"comment_created","userKey":"{ADA}","comment":{{"id":{COMMENT}}}}}"#).into_bytes()
}

fn delivery_id(post: &SlackPost) -> i64 {
    post.metadata.as_ref().expect("metadata")["event_payload"]["delivery_id"]
        .as_i64()
        .expect("delivery_id")
}

fn assert_each_once(posts: &[SlackPost], n: usize) {
    let ids: HashSet<i64> = posts.iter().map(delivery_id).collect();
    assert_eq!(ids.len(), n, "distinct deliveries");
    assert_eq!(posts.len(), n, "posts: a delivery was posted twice");
}

fn statuses(side: &Sidecar) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&side.cli(&["deliveries", "--json", "--limit", "1000"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn threads_are_kept_and_each_event_is_posted_once_despite_faults() {
    let conf = confluence_with_page_and_comment();
    let slack = slack();
    let mut side = slack_side(
        Sidecar::with_delivery(
            "retry-schedule-ms = [100, 200, 400]\nretry-every-ms = 400\ngive-up-after-ms = 30000\ntimeout-ms = 700\nslack-channel-rate = 50.0\njitter = 0.0\n",
        ),
        &conf,
        &slack,
    );
    // The first post meets, in turn: a 429, a 500, Slack's internal_error,
    // and an answer that arrives after the client gave up (the message was posted).
    slack.inject(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    slack.inject("chat.postMessage", Fault::Status(500));
    slack.inject(
        "chat.postMessage",
        Fault::SlackError("internal_error".into()),
    );
    slack.inject(
        "chat.postMessage",
        Fault::Delay(Duration::from_millis(1500)),
    );
    side.start();
    assert_eq!(
        side.hook("prod", &page_event("page_created", 1), Some(HOOK_SECRET))
            .0,
        202
    );
    assert_eq!(
        side.hook("prod", &page_event("page_updated", 2), Some(HOOK_SECRET))
            .0,
        202
    );
    assert_eq!(
        side.hook("prod", &comment_event(3), Some(HOOK_SECRET)).0,
        202
    );

    let posts = slack.wait_for_posts(3, WAIT);
    side.wait_json(&["deliveries"], "all sent", |v| {
        v.as_array().unwrap().len() == 3
            && v.as_array().unwrap().iter().all(|d| d["status"] == "sent")
    });
    std::thread::sleep(Duration::from_millis(500));
    let posts = if slack.posts().len() > posts.len() {
        slack.posts()
    } else {
        posts
    };
    assert_each_once(&posts, 3);
    assert_eq!(slack.faults_left("chat.postMessage"), 0);
    // In order, and the update and the comment are replies in the page's thread.
    assert!(
        posts[0]
            .text
            .as_deref()
            .unwrap()
            .contains("created the page")
    );
    assert_eq!(posts[0].thread_ts, None);
    assert!(
        posts[1]
            .text
            .as_deref()
            .unwrap()
            .contains("updated the page")
    );
    assert_eq!(posts[1].thread_ts.as_deref(), Some(posts[0].ts.as_str()));
    assert!(posts[2].text.as_deref().unwrap().contains("commented on"));
    assert_eq!(posts[2].thread_ts.as_deref(), Some(posts[0].ts.as_str()));
    assert!(
        posts
            .iter()
            .all(|p| p.channel == "C0ENG00001" && p.blocks.is_some())
    );

    // Every attempt is recorded.
    let (_, attempts) = side.api(&format!(
        "/api/deliveries/{}/attempts",
        delivery_id(&posts[0])
    ));
    let outcomes: Vec<&str> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["retry", "retry", "retry", "retry", "sent"],
        "{attempts:#}"
    );
}

#[test]
fn not_in_channel_is_a_dead_letter_with_advice_and_retry_replays_it() {
    let conf = confluence_with_page_and_comment();
    let slack = slack();
    let mut side = slack_side(Sidecar::new(), &conf, &slack);
    slack.inject(
        "chat.postMessage",
        Fault::SlackError("not_in_channel".into()),
    );
    side.start();
    side.hook("prod", &page_event("page_created", 1), Some(HOOK_SECRET));
    let dead = side.wait_json(&["deliveries", "--status", "dead"], "a dead letter", |v| {
        !v.as_array().unwrap().is_empty()
    });
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("/invite"),
        "{dead}"
    );
    assert!(slack.posts().is_empty());
    let id = dead[0]["id"].as_i64().unwrap().to_string();
    side.cli(&["retry", &id]);
    let posts = slack.wait_for_posts(1, WAIT);
    assert_eq!(delivery_id(&posts[0]).to_string(), id);
    side.wait_json(&["deliveries"], "sent", |v| v[0]["status"] == "sent");
}

#[test]
fn refused_token_marks_the_connection_and_delivery_resumes_after_the_fix() {
    let conf = confluence_with_page_and_comment();
    let slack = slack();
    let mut side = slack_side(
        Sidecar::with_delivery(
            "retry-schedule-ms = [100]\nretry-every-ms = 200\ngive-up-after-ms = 60000\njitter = 0.0\n",
        ),
        &conf,
        &slack,
    );
    slack.rotate_token("xoxb-new");
    side.start();
    side.hook("prod", &page_event("page_created", 1), Some(HOOK_SECRET));
    let pending = side.wait_json(&["deliveries"], "a refused attempt", |v| {
        v[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("token_revoked") || e.contains("invalid_auth"))
    });
    assert_eq!(pending[0]["status"], "pending", "kept for after the fix");
    side.cli(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        "xoxb-new",
    ]);
    slack.wait_for_posts(1, WAIT);
}

#[test]
fn one_channel_gets_at_most_its_rate() {
    let conf = confluence_with_page_and_comment();
    let slack = slack();
    let mut side = slack_side(
        Sidecar::with_delivery("slack-channel-rate = 4.0\nslack-workspace-rate = 100.0\n"),
        &conf,
        &slack,
    );
    side.start();
    for ts in 0..6 {
        side.hook(
            "prod",
            &page_event("page_updated", 100 + ts),
            Some(HOOK_SECRET),
        );
    }
    let posts = slack.wait_for_posts(6, WAIT);
    assert_each_once(&posts, 6);
    // Sends start 250 ms apart; arrival times add loopback jitter, so allow 50 ms.
    let gaps: Vec<Duration> = posts
        .windows(2)
        .map(|p| p[1].received_at - p[0].received_at)
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(200)),
        "{gaps:?}"
    );
    let total = posts[5].received_at - posts[0].received_at;
    assert!(
        total >= Duration::from_millis(1200),
        "6 posts at 4/s take 1.25 s: {total:?}"
    );
}

#[test]
fn teams_cards_are_delivered_after_a_429() {
    let conf = confluence_with_page_and_comment();
    let teams = FakeTeams::start();
    let url = teams.add_workflow("eng-news");
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    side.cli(&["connect", "teams", "eng-news", "--url", &url]);
    side.install("teams-poster", &["post-teams"]);
    side.cli(&[
        "bind",
        "teams-poster",
        "--to",
        "teams:eng-news",
        "--set",
        "channel=eng-news",
    ]);
    teams.inject(
        "eng-news",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    side.start();
    side.hook("prod", &page_event("page_created", 1), Some(HOOK_SECRET));
    let posts = teams.wait_for_posts(1, WAIT);
    assert_eq!(posts[0].workflow, "eng-news");
    assert_eq!(posts[0].card["type"], "AdaptiveCard");
    assert_eq!(posts[0].card["version"], "1.5");
    side.wait_json(&["deliveries"], "sent", |v| v[0]["status"] == "sent");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(teams.posts().len(), 1);
}

#[test]
fn a_retrospective_is_created_once_even_when_the_answer_is_lost() {
    let conf = confluence_with_page_and_comment();
    conf.put_content(
        2818090,
        ContentBuilder::page(2818090, "OPS", "Checkout down")
            .labels(&["incident"])
            .build(),
    );
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    side.install("retro-writer", &["create-page", "add-comment"]);
    side.cli(&[
        "bind",
        "retro-writer",
        "--to",
        "confluence:*",
        "--to",
        "comment:*",
    ]);
    // The page is created, but the answer comes after the client gave up.
    conf.inject(
        endpoints::CREATE_CONTENT,
        Fault::Delay(Duration::from_millis(1500)),
    );
    side.start();
    let body = format!(
        r#"{{"timestamp":9,"event":"page_created","userKey":"{ADA}","page":{{"id":2818090}}}}"#
    );
    side.hook("prod", body.as_bytes(), Some(HOOK_SECRET));
    let created = conf.wait_for_created(2, WAIT);
    side.wait_json(&["deliveries"], "both sent", |v| {
        v.as_array().unwrap().len() == 2
            && v.as_array().unwrap().iter().all(|d| d["status"] == "sent")
    });
    std::thread::sleep(Duration::from_millis(300));
    let created = if conf.created().len() > created.len() {
        conf.created()
    } else {
        created
    };
    let pages: Vec<_> = created
        .iter()
        .filter(|c| c.content_type == "page")
        .collect();
    let comments: Vec<_> = created
        .iter()
        .filter(|c| c.content_type == "comment")
        .collect();
    assert_eq!((pages.len(), comments.len()), (1, 1), "{created:#?}");
    assert_eq!(pages[0].title, "Retrospective: Checkout down");
    assert_eq!(pages[0].parent_id, Some(2818090));
    assert_eq!(pages[0].labels, vec!["retrospective"]);
    assert_eq!(comments[0].container_id, Some(2818090));
    assert!(comments[0].storage.contains("Retrospective: Checkout down"));
}

#[test]
fn dry_run_records_the_exact_request_and_sends_nothing() {
    let conf = confluence_with_page_and_comment();
    let slack = slack();
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
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
    side.install("slack-poster", &["post-slack", "dm-slack"]);
    side.cli(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    side.start();
    side.hook("prod", &page_event("page_created", 1), Some(HOOK_SECRET));
    let done = side.wait_json(&["deliveries"], "would-send", |v| {
        v[0]["status"] == "would-send"
    });
    let request: Value = serde_json::from_str(done[0]["result"].as_str().unwrap()).unwrap();
    assert_eq!(request["method"], "chat.postMessage");
    assert_eq!(request["body"]["channel"], "#eng");
    assert!(
        request["body"]["text"]
            .as_str()
            .unwrap()
            .contains("Q3 launch checklist")
    );
    assert!(request["body"]["blocks"].is_array());
    assert!(!request.to_string().contains(BOT), "no token in the record");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(slack.calls("chat.postMessage"), 0);
}

#[test]
fn sigkill_in_the_middle_of_a_burst_loses_nothing_and_duplicates_nothing() {
    let conf = confluence_with_page_and_comment();
    let slack = slack();
    let mut side = slack_side(
        Sidecar::with_delivery(
            "retry-schedule-ms = [100]\nretry-every-ms = 200\ngive-up-after-ms = 60000\ntimeout-ms = 2000\nslack-channel-rate = 40.0\nslack-workspace-rate = 100.0\njitter = 0.0\n",
        ),
        &conf,
        &slack,
    );
    // Slow answers keep posts in flight when the process dies.
    for _ in 0..30 {
        slack.inject("chat.postMessage", Fault::Delay(Duration::from_millis(60)));
    }
    side.start();
    const N: u64 = 30;
    for ts in 0..N {
        assert_eq!(
            side.hook(
                "prod",
                &page_event("page_updated", 1000 + ts),
                Some(HOOK_SECRET)
            )
            .0,
            202
        );
    }
    slack.wait_for_posts(5, WAIT);
    side.kill();
    let at_kill = slack.posts().len();
    assert!(
        at_kill < N as usize,
        "killed before the burst was delivered"
    );
    side.start();
    let posts = slack.wait_for_posts(N as usize, Duration::from_secs(40));
    side.wait_json(&["deliveries", "--limit", "1000"], "all sent", |v| {
        v.as_array().unwrap().len() == N as usize
            && v.as_array().unwrap().iter().all(|d| d["status"] == "sent")
    });
    std::thread::sleep(Duration::from_millis(500));
    let posts = if slack.posts().len() > posts.len() {
        slack.posts()
    } else {
        posts
    };
    assert_each_once(&posts, N as usize);
    assert!(statuses(&side).iter().all(|s| s == "sent"));
}

#[test]
fn sigterm_stops_cleanly() {
    let conf = confluence_with_page_and_comment();
    let slack = slack();
    let mut side = slack_side(Sidecar::new(), &conf, &slack);
    side.start();
    side.hook("prod", &page_event("page_created", 1), Some(HOOK_SECRET));
    slack.wait_for_posts(1, WAIT);
    assert!(side.terminate().success());
}
