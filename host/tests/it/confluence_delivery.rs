//! Confluence delivery against the real contracts, end to end: `pagehook
//! serve` writes to a fake Confluence that rewrites storage format on save
//! (as Confluence does), refuses a blog post named as a page, and lists the
//! service account's personal access tokens with their expiry.

use crate::common;

use std::time::{Duration, Instant, SystemTime};

use common::confluence::{self, ADA};
use common::sidecar::{HOOK_SECRET, PAT, Sidecar};
use pagehook_fakes::{ContentBuilder, FakeConfluence, Fault, endpoints};
use serde_json::{Value, json};

const PAGE: u64 = 2818051;
const INCIDENT: u64 = 2818090;
const BLOG: u64 = 2818200;
const WAIT: Duration = Duration::from_secs(20);
const DAY: Duration = Duration::from_secs(86_400);

/// A fake Confluence with the checklist in ENG and an incident in OPS.
fn confluence_with_checklist_and_incident() -> FakeConfluence {
    confluence::with_ada([
        ContentBuilder::page(PAGE, "ENG", "Q3 launch checklist"),
        ContentBuilder::page(INCIDENT, "OPS", "Checkout down").labels(&["incident"]),
    ])
}

/// A sidecar with Confluence `prod` and retro-writer bound to write pages
/// and comments anywhere, with these extra settings.
fn retro_side(conf: &FakeConfluence, settings: &[&str]) -> Sidecar {
    let side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    side.install("retro-writer", &["create-page", "add-comment"]);
    let mut args = vec![
        "bind",
        "retro-writer",
        "--to",
        "confluence:*",
        "--to",
        "comment:*",
    ];
    for s in settings {
        args.extend(["--set", s]);
    }
    side.cli(&args);
    side
}

fn created_event(kind: &str, id: u64, ts: u64) -> Vec<u8> {
    let field = if kind == "blog_created" {
        "blog"
    } else {
        "page"
    };
    format!(r#"{{"timestamp":{ts},"event":"{kind}","userKey":"{ADA}","{field}":{{"id":{id}}}}}"#)
        .into_bytes()
}

fn deliveries_settled(side: &Sidecar, n: usize) -> Value {
    side.wait_json(&["deliveries"], "deliveries settled", |v| {
        let all = v.as_array().unwrap();
        all.len() == n
            && all
                .iter()
                .all(|d| d["status"] == "sent" || d["status"] == "dead")
    })
}

/// `pagehook_confluence_token_expiry_seconds{connection="prod"}` from
/// `/metrics`, once serve's token watch has set it.
fn expiry_metric(side: &Sidecar) -> i64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = reqwest::blocking::get(format!("{}/metrics", side.base))
            .unwrap()
            .text()
            .unwrap();
        let value = text.lines().find_map(|l| {
            l.strip_prefix("pagehook_confluence_token_expiry_seconds{connection=\"prod\"} ")
        });
        if let Some(v) = value {
            return v.trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no expiry metric in:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn healthz(side: &Sidecar) -> (u16, Value) {
    let answer = reqwest::blocking::get(format!("{}/healthz", side.base)).unwrap();
    (answer.status().as_u16(), answer.json().unwrap())
}

fn wait_healthz(side: &Sidecar, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = healthz(side);
        assert_eq!(status, 200, "{body}");
        if check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {body:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_uncertain_comment_is_found_by_its_marker_and_not_posted_twice() {
    let conf = confluence_with_checklist_and_incident();
    let mut side = retro_side(&conf, &[]);
    // Both creates are carried out, but their answers come after the client
    // (timeout 1 s) gave up, so both deliveries are retried uncertain.
    for _ in 0..2 {
        conf.inject(
            endpoints::CREATE_CONTENT,
            Fault::Delay(Duration::from_millis(1500)),
        );
    }
    side.start();
    side.hook(
        "prod",
        &created_event("page_created", INCIDENT, 9),
        Some(HOOK_SECRET),
    );
    let done = side.wait_json(&["deliveries"], "both sent", |v| {
        v.as_array().unwrap().len() == 2
            && v.as_array().unwrap().iter().all(|d| d["status"] == "sent")
    });
    std::thread::sleep(Duration::from_millis(1800)); // any late duplicate lands by now
    let created = conf.created();
    let comments: Vec<_> = created
        .iter()
        .filter(|c| c.content_type == "comment")
        .collect();
    let pages: Vec<_> = created
        .iter()
        .filter(|c| c.content_type == "page")
        .collect();
    assert_eq!((pages.len(), comments.len()), (1, 1), "{created:#?}");
    assert_eq!(
        conf.calls(endpoints::CREATE_CONTENT),
        2,
        "no second POST after the lost answers"
    );
    let comment = comments[0];
    assert_eq!(comment.container_id, Some(INCIDENT));
    assert_ne!(
        comment.stored, comment.storage,
        "Confluence saved something else than was sent"
    );
    let marker = comment
        .storage
        .split("<ac:parameter ac:name=\"\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the comment ends with Pagehook's anchor")
        .to_owned();
    assert!(marker.starts_with("pagehook-"), "{marker}");
    assert!(comment.stored.contains(&marker), "{}", comment.stored);
    assert!(
        comment.stored.contains("ac:macro-id="),
        "{}",
        comment.stored
    );
    let results: Vec<&str> = done
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["result"].as_str().unwrap())
        .collect();
    assert!(
        results.contains(&comment.id.to_string().as_str()),
        "{done:#}"
    );
    assert!(
        results.contains(&pages[0].id.to_string().as_str()),
        "{done:#}"
    );
}

#[test]
fn a_page_gets_the_documented_labels_and_is_confirmed_by_its_marker() {
    let conf = confluence_with_checklist_and_incident();
    // Someone already wrote a page with the title the plugin will choose for
    // the second incident; Pagehook must not take it for its own.
    conf.put_content(
        2818300,
        ContentBuilder::page(2818300, "OPS", "Retrospective: Payments down")
            .body_storage("<p>Written by hand</p>")
            .build(),
    );
    conf.put_content(
        2818091,
        ContentBuilder::page(2818091, "OPS", "Payments down")
            .labels(&["incident"])
            .build(),
    );
    let mut side = retro_side(&conf, &["comment=false"]);
    side.start();
    side.hook(
        "prod",
        &created_event("page_created", INCIDENT, 9),
        Some(HOOK_SECRET),
    );
    side.hook(
        "prod",
        &created_event("page_created", 2818091, 10),
        Some(HOOK_SECRET),
    );
    let done = deliveries_settled(&side, 2);
    let created = conf.created();
    assert_eq!(created.len(), 1, "{created:#?}");
    let page = &created[0];
    assert_eq!(page.title, "Retrospective: Checkout down");
    assert_eq!(
        page.request["metadata"]["labels"],
        json!([{"prefix": "global", "name": "retrospective"}]),
        "labels as Data Center documents them"
    );
    let stored = conf.content(page.id).unwrap();
    let labels: Vec<&str> = stored["metadata"]["labels"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["retrospective"]);
    assert!(
        conf.labels_added()
            .iter()
            .any(|l| l.content_id == page.id && l.labels == ["retrospective"]),
        "labels also through /label, for versions that ignore metadata.labels"
    );
    assert!(
        page.stored.contains("ac:name=\"anchor\""),
        "{}",
        page.stored
    );

    let by_title: Vec<&Value> = done
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "dead")
        .collect();
    assert_eq!(by_title.len(), 1, "{done:#}");
    let error = by_title[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("Retrospective: Payments down") && error.contains("2818300"),
        "{error}"
    );
    assert!(error.contains("did not create it"), "{error}");
}

#[test]
fn a_comment_on_a_blog_post_names_its_container_as_a_blog_post() {
    let conf = confluence_with_checklist_and_incident();
    conf.put_content(
        BLOG,
        ContentBuilder::blogpost(BLOG, "ENG", "Checkout was down")
            .labels(&["incident"])
            .build(),
    );
    let mut side = retro_side(&conf, &["parent-id=2818051"]);
    side.start();
    side.hook(
        "prod",
        &created_event("blog_created", BLOG, 11),
        Some(HOOK_SECRET),
    );
    let done = deliveries_settled(&side, 2);
    assert!(
        done.as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "sent"),
        "{done:#}"
    );
    let comment = conf
        .created()
        .into_iter()
        .find(|c| c.content_type == "comment")
        .expect("a comment");
    assert_eq!(comment.container_id, Some(BLOG));
    assert_eq!(comment.request["container"]["type"], "blogpost");
    assert_eq!(comment.title, "Re: Checkout was down");
}

#[test]
fn a_token_expiring_in_ten_days_warns_in_the_cli_healthz_and_metrics() {
    let conf = confluence_with_checklist_and_incident();
    conf.set_tokens(&[
        ("pagehook-sidecar", Some(SystemTime::now() + 10 * DAY)),
        ("pagehook-old", Some(SystemTime::now() + 60 * DAY)),
    ]);
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());

    let table = side.cli(&["connections"]);
    assert!(table.contains("TOKEN EXPIRES"), "{table}");
    assert!(table.contains("(in 10 days)"), "{table}");
    let warning = table
        .lines()
        .find(|l| l.starts_with("warning:"))
        .unwrap_or_else(|| panic!("no warning in:\n{table}"));
    assert!(
        warning.contains("`pagehook-sidecar`") && warning.contains("expires in 10 days"),
        "{warning}"
    );
    assert!(
        warning.contains("pagehook connect confluence prod"),
        "{warning}"
    );
    assert!(!table.contains(PAT), "{table}");
    let json: Value = serde_json::from_str(&side.cli(&["connections", "--json"])).unwrap();
    assert_eq!(json[0]["token"]["name"], "pagehook-sidecar");
    assert_eq!(json[0]["health"], Value::Null, "expiring is not unhealthy");

    side.start();
    let health = wait_healthz(&side, "the token warning", |h| h["status"] == "warning");
    let token = &health["confluence_tokens"][0];
    assert_eq!(token["connection"], "prod");
    assert_eq!(token["state"], "expiring");
    assert_eq!(token["days_left"], 10);
    assert!(
        health["warnings"][0]
            .as_str()
            .unwrap()
            .contains("expires in 10 days"),
        "{health:#}"
    );
    let seconds = expiry_metric(&side);
    assert!(
        (10 * 86_400 - 120..=10 * 86_400).contains(&seconds),
        "{seconds}"
    );
}

#[test]
fn an_expired_token_marks_the_connection_unhealthy() {
    let conf = confluence_with_checklist_and_incident();
    let expires = SystemTime::now() + Duration::from_secs(5);
    conf.set_tokens(&[("pagehook-sidecar", Some(expires))]);
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    let first = side.cli(&["connections"]);
    assert!(first.contains("(in 1 day)"), "{first}");
    if let Ok(left) = expires.duration_since(SystemTime::now()) {
        std::thread::sleep(left + Duration::from_millis(300));
    }
    // Confluence now refuses the token, so its expiry can only come from
    // what the earlier check recorded.
    let table = side.cli(&["connections"]);
    assert!(table.contains("EXPIRED"), "{table}");
    let json: Value = serde_json::from_str(&side.cli(&["connections", "--json"])).unwrap();
    let health = json[0]["health"].as_str().expect("marked unhealthy");
    assert!(health.contains("`pagehook-sidecar` expired on"), "{health}");
    assert!(
        health.contains("create a new one") && health.contains("pagehook connect confluence prod"),
        "{health}"
    );

    side.start();
    let health = wait_healthz(&side, "degraded", |h| h["status"] == "degraded");
    assert_eq!(health["confluence_tokens"][0]["state"], "expired");
    let seconds = expiry_metric(&side);
    assert!(seconds < 0, "{seconds}");

    // A new token, connected again, clears the mark.
    conf.set_tokens(&[("pagehook-new", Some(SystemTime::now() + 90 * DAY))]);
    side.connect_confluence("prod", &conf.base_url());
    let json: Value = serde_json::from_str(&side.cli(&["connections", "--json"])).unwrap();
    assert_eq!(json[0]["health"], Value::Null, "{json:#}");
    assert_eq!(json[0]["token"]["name"], "pagehook-new");
}

/// Binds retro-writer (pages only, no comment) to write from `template`;
/// `Err` with what `bind` said when it refused.
fn bind_retro_to_template(side: &Sidecar, template: &str) -> Result<(), String> {
    let set = format!("space-template={template}");
    let out = side.cli_output(&[
        "bind",
        "retro-writer",
        "--to",
        "confluence:*",
        "--set",
        &set,
        "--set",
        "comment=false",
    ]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// retro-writer's `space-template` names a page template of a space: bind
/// checks it exists, and each retrospective is written from the template's
/// body as Confluence has it then (the plugin never reaches Confluence).
#[test]
fn retrospectives_are_written_from_the_space_template_the_binding_names() {
    const SECOND: u64 = 2818091;
    let conf = confluence_with_checklist_and_incident();
    conf.put_content(
        SECOND,
        ContentBuilder::page(SECOND, "OPS", "Search slow")
            .labels(&["incident"])
            .build(),
    );
    conf.put_template(
        "OPS",
        "Incident retro",
        "<h2>Retro v1</h2><p>What broke: {{ incident.title }}</p>",
    );
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    side.install("retro-writer", &["create-page", "add-comment"]);
    // Confluence answers are reused for one second only, so the edit below
    // is read by the next event.
    side.add_to_config("\n[enrichment]\ncache-ttl-secs = 1\n");

    // A template the space does not have: refused, nothing bound.
    let said = bind_retro_to_template(&side, "OPS:Postmortem").unwrap_err();
    assert!(
        said.contains("Postmortem") && said.contains("Incident retro"),
        "names the template and the space's templates: {said}"
    );
    assert_eq!(
        side.cli(&["bindings", "--json"]).trim(),
        "[]",
        "nothing saved"
    );

    bind_retro_to_template(&side, "OPS:Incident retro").unwrap();
    side.start();
    let (status, answer) = side.hook(
        "prod",
        &created_event("page_created", INCIDENT, 1_768_246_500_000),
        Some(HOOK_SECRET),
    );
    assert_eq!(status, 202, "{answer}");
    let created = conf.wait_for_created(1, WAIT);
    assert!(
        created[0].storage.contains("Retro v1")
            && created[0].storage.contains("What broke: Checkout down"),
        "{}",
        created[0].storage
    );

    // The template is edited in Confluence: the next retrospective uses it.
    conf.put_template(
        "OPS",
        "Incident retro",
        "<h2>Retro v2</h2><p>Impact of {{ incident.title }}</p>",
    );
    std::thread::sleep(Duration::from_millis(1200));
    let (status, answer) = side.hook(
        "prod",
        &created_event("page_created", SECOND, 1_768_246_600_000),
        Some(HOOK_SECRET),
    );
    assert_eq!(status, 202, "{answer}");
    let created = conf.wait_for_created(2, WAIT);
    assert!(
        created[1].storage.contains("Retro v2")
            && created[1].storage.contains("Impact of Search slow"),
        "{}",
        created[1].storage
    );
}

/// Before Pagehook has read a binding's template, Confluence failing to
/// answer makes the event wait (nothing is written without the template,
/// and nothing is lost): it runs once Confluence answers again.
#[test]
fn an_event_waits_while_its_bindings_template_cannot_be_read_yet() {
    let conf = confluence_with_checklist_and_incident();
    conf.put_template(
        "OPS",
        "Incident retro",
        "<p>Retro of {{ incident.title }}</p>",
    );
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    side.install("retro-writer", &["create-page", "add-comment"]);
    bind_retro_to_template(&side, "OPS:Incident retro").unwrap();
    side.start();
    // The client tries three times per read; two rounds of the event fail.
    for _ in 0..6 {
        conf.inject(endpoints::PAGE_TEMPLATES, Fault::Status(503));
    }
    let (status, answer) = side.hook(
        "prod",
        &created_event("page_created", INCIDENT, 1_768_246_500_000),
        Some(HOOK_SECRET),
    );
    assert_eq!(status, 202, "{answer}");
    let created = conf.wait_for_created(1, WAIT);
    assert!(
        created[0].storage.contains("Retro of Checkout down"),
        "{}",
        created[0].storage
    );
    assert_eq!(conf.faults_left(endpoints::PAGE_TEMPLATES), 0);
    let events: Value = serde_json::from_str(&side.cli(&["events", "--json"])).unwrap();
    assert_eq!(events[0]["status"], "dispatched");
    assert!(
        events[0]["attempts"].as_u64().unwrap() >= 2,
        "it waited: {}",
        events[0]
    );
    let deliveries = side.cli(&["deliveries", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&deliveries)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1,
        "one page, written once: {deliveries}"
    );
}
