//! Restricted content never reaches a channel: `pagehook serve` enriches
//! webhooks from a fake Confluence that answers restrictions as Confluence
//! does (a page's own `restrictions.read` never lists what it inherits), and
//! slack-poster, bound to #eng of a fake Slack, skips restricted content by
//! default. Every test also sends an event for an open page afterwards and
//! waits for its post, so "not posted" is checked after the pipeline ran.

use crate::common;

use std::time::Duration;

use common::confluence::{self, ADA};
use common::sidecar::{HOOK_SECRET, Sidecar};
use pagehook_fakes::{ContentBuilder, FakeConfluence, FakeSlack, SlackPost};
use serde_json::Value;

const BOT: &str = "xoxb-restriction-tests";
/// Engineering Home > Releases > Q3 launch checklist, plus a comment on it.
const ROOT: u64 = 500;
const PARENT: u64 = 600;
const PAGE: u64 = 700;
const COMMENT: u64 = 701;
/// An open page in the same space, in a tree of its own.
const OPEN: u64 = 900;
const WAIT: Duration = Duration::from_secs(20);

/// A fake Confluence with the checklist (and a comment on it) below
/// Releases below Engineering Home, and an open page in a tree of its own.
fn confluence_with_page_tree() -> FakeConfluence {
    confluence::with_ada([
        ContentBuilder::page(ROOT, "ENG", "Engineering Home").ancestors(&[]),
        ContentBuilder::page(PARENT, "ENG", "Releases").ancestors(&[(ROOT, "Engineering Home")]),
        ContentBuilder::page(PAGE, "ENG", "Q3 launch checklist")
            .ancestors(&[(ROOT, "Engineering Home"), (PARENT, "Releases")]),
        ContentBuilder::comment(COMMENT, PAGE, "Q3 launch checklist", "ENG"),
        ContentBuilder::page(OPEN, "ENG", "Team lunch").ancestors(&[]),
    ])
}

/// Confluence `prod`, Slack `acme`, slack-poster bound to #eng with its
/// default `skip-restricted`, and a one-second enrichment cache.
fn sidecar(conf: &FakeConfluence, slack: &FakeSlack) -> Sidecar {
    let mut side = Sidecar::new();
    side.add_to_config("[enrichment]\ncache-ttl-secs = 1\n");
    side.connect_confluence("prod", &conf.base_url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.bind_slack_poster(
        "eng",
        &[
            "--scope",
            "space:ENG",
            "--set",
            "events=page-created, page-updated, comment-created",
            // Each update posts at once (a page updated twice would
            // otherwise collect into a digest: tests/it/digests.rs).
            "--digest",
            "off",
        ],
    );
    side.start();
    side
}

fn slack() -> FakeSlack {
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    slack
}

fn page_updated(id: u64, ts: u64) -> Vec<u8> {
    format!(r#"{{"timestamp":{ts},"event":"page_updated","userKey":"{ADA}","page":{{"id":{id}}},"updateTrigger":"edit_page"}}"#)
        .into_bytes()
}

fn comment_created(ts: u64) -> Vec<u8> {
    format!(r#"{{"timestamp":{ts},"event":"comment_created","userKey":"{ADA}","comment":{{"id":{COMMENT}}}}}"#).into_bytes()
}

fn send(side: &Sidecar, body: &[u8]) {
    let (status, answer) = side.hook("prod", body, Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
}

fn mentions(post: &SlackPost, title: &str) -> bool {
    post.text.as_deref().is_some_and(|t| t.contains(title))
}

/// Sends an event for the open page, waits until it is posted, and returns
/// every post so far: whatever was sent before it has been dispatched too.
fn posts_after_a_control_event(side: &Sidecar, slack: &FakeSlack, ts: u64) -> Vec<SlackPost> {
    let before = slack.posts().len();
    send(side, &page_updated(OPEN, ts));
    let posts = slack.wait_for_posts(before + 1, WAIT);
    assert!(
        posts.iter().any(|p| mentions(p, "Team lunch")),
        "the open page is posted: {:?}",
        posts.iter().map(|p| &p.text).collect::<Vec<_>>()
    );
    // Dispatch is in order of arrival; give a stray post a moment anyway.
    std::thread::sleep(Duration::from_millis(300));
    slack.posts()
}

/// What Pagehook recorded about the events for `id`: (restricted, enriched).
fn recorded(side: &Sidecar, id: u64) -> Vec<(Value, Value)> {
    let events: Value = serde_json::from_str(&side.cli(&["events", "--json"])).unwrap();
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["content"]["id"] == id)
        .map(|e| {
            (
                e["event"]["content"]["restricted"].clone(),
                e["event"]["enriched"].clone(),
            )
        })
        .collect()
}

fn assert_not_posted(posts: &[SlackPost], title: &str) {
    assert!(
        !posts.iter().any(|p| mentions(p, title)),
        "{title:?} reached the channel: {:?}",
        posts.iter().map(|p| &p.text).collect::<Vec<_>>()
    );
}

#[test]
fn a_page_under_a_restricted_parent_is_not_posted() {
    let conf = confluence_with_page_tree();
    let slack = slack();
    let side = sidecar(&conf, &slack);
    conf.set_read_restrictions(PARENT, &[], &["release-managers"]);
    send(&side, &page_updated(PAGE, 1));
    let posts = posts_after_a_control_event(&side, &slack, 2);
    assert_not_posted(&posts, "Q3 launch checklist");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        recorded(&side, PAGE),
        vec![(Value::Bool(true), Value::Bool(true))]
    );
}

#[test]
fn a_page_under_a_restricted_grandparent_is_not_posted() {
    let conf = confluence_with_page_tree();
    let slack = slack();
    let side = sidecar(&conf, &slack);
    conf.set_read_restrictions(ROOT, &["ada"], &[]);
    send(&side, &page_updated(PAGE, 1));
    let posts = posts_after_a_control_event(&side, &slack, 2);
    assert_not_posted(&posts, "Q3 launch checklist");
    assert_eq!(posts.len(), 1);
    assert_eq!(recorded(&side, PAGE)[0].0, Value::Bool(true));
}

#[test]
fn a_page_is_posted_once_its_parents_restriction_is_lifted() {
    let conf = confluence_with_page_tree();
    let slack = slack();
    let side = sidecar(&conf, &slack);
    conf.set_read_restrictions(PARENT, &[], &["release-managers"]);
    send(&side, &page_updated(PAGE, 1));
    let posts = posts_after_a_control_event(&side, &slack, 2);
    assert_not_posted(&posts, "Q3 launch checklist");

    conf.set_read_restrictions(PARENT, &[], &[]);
    std::thread::sleep(Duration::from_millis(1100)); // past the enrichment cache
    send(&side, &page_updated(PAGE, 3));
    let posts = slack.wait_for_posts(2, WAIT);
    assert!(
        mentions(&posts[1], "Q3 launch checklist"),
        "{:?}",
        posts[1].text
    );
}

#[test]
fn a_comment_on_a_page_under_a_restricted_parent_is_not_posted() {
    let conf = confluence_with_page_tree();
    let slack = slack();
    let side = sidecar(&conf, &slack);
    conf.set_read_restrictions(PARENT, &[], &["release-managers"]);
    send(&side, &comment_created(1));
    let posts = posts_after_a_control_event(&side, &slack, 2);
    assert_not_posted(&posts, "Q3 launch checklist");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        recorded(&side, COMMENT),
        vec![(Value::Bool(true), Value::Bool(true))]
    );
}

#[test]
fn a_page_whose_ancestor_cannot_be_read_is_not_posted() {
    let conf = confluence_with_page_tree();
    let slack = slack();
    let side = sidecar(&conf, &slack);
    // The parent is purged while the page still names it: Confluence leaves
    // it unexpanded and answers 404 for it, so Pagehook cannot tell.
    conf.remove_content(PARENT);
    send(&side, &page_updated(PAGE, 1));
    let posts = posts_after_a_control_event(&side, &slack, 2);
    assert_not_posted(&posts, "Q3 launch checklist");
    assert_eq!(posts.len(), 1);
    assert_eq!(recorded(&side, PAGE)[0].0, Value::Bool(true));
}

#[test]
fn without_nested_expansion_each_ancestor_is_read_and_a_restricted_one_counts() {
    let conf = confluence_with_page_tree();
    let slack = slack();
    let side = sidecar(&conf, &slack);
    conf.set_nested_ancestor_expansion(false);
    conf.set_read_restrictions(ROOT, &[], &["leads"]);
    send(&side, &page_updated(PAGE, 1));
    let posts = posts_after_a_control_event(&side, &slack, 2);
    assert_not_posted(&posts, "Q3 launch checklist");
    assert_eq!(posts.len(), 1);
}
