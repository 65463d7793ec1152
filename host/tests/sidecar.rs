//! `pagehook serve` end to end: signed webhooks from Confluence's real
//! payloads, enrichment from a fake Confluence on loopback, dispatch to
//! bound plugins, and what the admin sees through the CLI and the API.

mod common;

use common::sidecar::{HOOK_SECRET, PAT, Sidecar};
use pagehook_fakes::{
    ConfluenceAuth, ContentBuilder, FakeConfluence, Fault, endpoints, fixture_bytes,
};
use serde_json::Value;

const PAGE: u64 = 2818051;

fn confluence() -> FakeConfluence {
    let fake = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    fake.put_user(
        "8a7f80839e460b0f019e460ba6440001",
        "ada",
        "Ada Lovelace",
        "ada@example.com",
    );
    fake.put_content(
        PAGE,
        ContentBuilder::page(PAGE, "ENG", "Q3 launch checklist")
            .labels(&["release"])
            .ancestors(&[(2818001, "Engineering Home")])
            .build(),
    );
    fake
}

fn hello_sidecar(fake: &FakeConfluence) -> Sidecar {
    let side = Sidecar::new();
    side.connect_confluence("prod", &fake.base_url());
    let hello = common::plugin_dir("hello");
    side.cli(&[
        "plugin",
        "install",
        hello.to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    side.cli(&[
        "bind",
        "hello",
        "--scope",
        "space:ENG",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    side
}

fn deliveries(side: &Sidecar, n: usize) -> Value {
    side.wait_json(&["deliveries"], &format!("{n} deliveries"), |v| {
        v.as_array().unwrap().len() >= n
    })
}

#[test]
fn signed_id_only_webhook_is_stored_enriched_dispatched_and_listed() {
    let fake = confluence();
    let mut side = hello_sidecar(&fake);
    side.start();
    let body = fixture_bytes("confluence/webhook-id-only/page_created.json");

    let (status, answer) = side.hook("prod", &body, Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["duplicate"], false);
    let id = answer["id"].as_i64().unwrap();

    let delivered = deliveries(&side, 1);
    let d = &delivered[0];
    assert_eq!(d["event_id"], id);
    assert_eq!(d["plugin"], "hello");
    assert_eq!(d["destination"], "slack:#eng");
    assert_eq!(d["status"], "pending");
    assert_eq!(d["action"]["type"], "post-slack");
    assert_eq!(d["action"]["channel"], "#eng");
    assert_eq!(d["action"]["thread_key"], format!("page-{PAGE}"));
    let text = d["action"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("New page: Ada Lovelace created \"Q3 launch checklist\" in "),
        "enriched from the fake Confluence: {text}"
    );

    // Confluence delivers again (it retries on timeouts): stored once, delivered once.
    let (status, again) = side.hook("prod", &body, Some(HOOK_SECRET));
    assert_eq!(
        (status, &again["id"], &again["duplicate"]),
        (202, &answer["id"], &Value::Bool(true))
    );

    let events: Value = serde_json::from_str(&side.cli(&["events", "--json"])).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["status"], "dispatched");
    assert_eq!(events[0]["event"]["enriched"], true);
    assert_eq!(
        events[0]["event"]["content"]["labels"],
        serde_json::json!(["release"])
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(side.api("/api/deliveries").1.as_array().unwrap().len(), 1);

    // The table form names the action and its destination.
    let table = side.cli(&["deliveries"]);
    assert!(
        table.contains("post-slack") && table.contains("#eng"),
        "{table}"
    );

    // Replay the stored, enriched event through the plugin directory.
    let hello = common::plugin_dir("hello");
    let replay = side.cli(&[
        "plugin",
        "run",
        hello.to_str().unwrap(),
        "--event-id",
        &id.to_string(),
        "--set",
        "channel=#test",
    ]);
    assert!(replay.contains("\"channel\": \"#test\""), "{replay}");
    assert!(replay.contains("Q3 launch checklist"), "{replay}");
}

#[test]
fn bad_requests_are_refused_clearly_and_store_nothing() {
    let fake = confluence();
    let mut side = hello_sidecar(&fake);
    side.start();
    let body = fixture_bytes("confluence/webhook-id-only/page_created.json");

    let (status, answer) = side.hook("prod", &body, Some("wrong secret"));
    assert_eq!(status, 401);
    assert!(
        answer["error"].as_str().unwrap().contains("does not match"),
        "{answer}"
    );
    let (status, answer) = side.hook("prod", &body, None);
    assert_eq!(status, 401);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("missing X-Hub-Signature"),
        "{answer}"
    );

    let (status, answer) = side.hook("prod", b"{\"event\": \"page_created\",", Some(HOOK_SECRET));
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{answer}"
    );

    let big = format!(
        "{{\"event\":\"page_created\",\"pad\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let (status, answer) = side.hook("prod", big.as_bytes(), Some(HOOK_SECRET));
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("65536"),
        "{answer}"
    );

    let (status, answer) = side.hook("nowhere", &body, Some(HOOK_SECRET));
    assert_eq!(status, 404);
    assert!(
        answer["error"].as_str().unwrap().contains("`nowhere`"),
        "{answer}"
    );

    let test = fixture_bytes("confluence/webhook-test-connection.json");
    let (status, answer) = side.hook("prod", &test, Some(HOOK_SECRET));
    assert_eq!((status, answer["test"].as_bool()), (200, Some(true)));

    // An event name Pagehook does not know is stored and ignored.
    let (status, _) = side.hook(
        "prod",
        br#"{"event":"space_created","timestamp":1}"#,
        Some(HOOK_SECRET),
    );
    assert_eq!(status, 202);

    let events: Value = serde_json::from_str(&side.cli(&["events", "--json"])).unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(
        events.len(),
        1,
        "only the unknown event is stored: {events:?}"
    );
    assert_eq!(events[0]["status"], "ignored");

    let metrics = reqwest::blocking::get(format!("{}/metrics", side.base))
        .unwrap()
        .text()
        .unwrap();
    for line in [
        "pagehook_events_rejected_total{reason=\"signature\"} 2",
        "pagehook_events_rejected_total{reason=\"malformed\"} 1",
        "pagehook_events_rejected_total{reason=\"too-large\"} 1",
        "pagehook_events_rejected_total{reason=\"unknown-source\"} 1",
        "pagehook_events_received_total{source=\"prod\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
}

#[test]
fn a_failing_plugin_is_recorded_and_never_blocks_the_others() {
    let fake = confluence();
    let mut side = hello_sidecar(&fake);
    let hostile = common::plugin_dir("hostile");
    side.cli(&[
        "plugin",
        "install",
        hostile.to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    side.cli(&["bind", "hostile", "--to", "slack:*", "--set", "mode=loop"]);
    side.start();

    for ts in 0..3 {
        let body = format!(
            r#"{{"timestamp":{},"event":"page_created","userKey":"8a7f80839e460b0f019e460ba6440001","page":{{"id":{PAGE}}}}}"#,
            1_768_241_233_603u64 + ts
        );
        assert_eq!(side.hook("prod", body.as_bytes(), Some(HOOK_SECRET)).0, 202);
    }
    // hello delivers for every event although hostile fails on each.
    let delivered = deliveries(&side, 3);
    assert!(
        delivered
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["plugin"] == "hello")
    );
    let failures = side.wait_json(&["failures"], "3 failures", |v| {
        v.as_array().unwrap().len() >= 3
    });
    assert_eq!(failures[0]["plugin"], "hostile");
    assert_eq!(failures[0]["code"], "out-of-fuel");
    assert_eq!(
        failures[0]["message"],
        "plugin `hostile` ran out of fuel after 10000000 units"
    );

    // Three consecutive failures open its breaker (threshold 3 in the test config).
    let plugins: Value = serde_json::from_str(&side.cli(&["plugin", "list", "--json"])).unwrap();
    let hostile = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hostile")
        .unwrap();
    assert!(hostile["breaker_until"].as_i64().is_some(), "{hostile}");
    assert!(
        side.cli(&["plugin", "list"])
            .contains("OPEN: plugin `hostile` ran out of fuel")
    );

    // While open it is skipped (recorded as such), and hello goes on.
    let body = br#"{"timestamp":99,"event":"page_created","userKey":"8a7f80839e460b0f019e460ba6440001","page":{"id":2818051}}"#;
    assert_eq!(side.hook("prod", body, Some(HOOK_SECRET)).0, 202);
    deliveries(&side, 4);
    let failures = side.wait_json(&["failures"], "a breaker-open failure", |v| {
        v[0]["code"] == "breaker-open"
    });
    assert!(
        failures[0]["message"]
            .as_str()
            .unwrap()
            .contains("pagehook plugin reset hostile")
    );

    side.cli(&["plugin", "reset", "hostile"]);
    assert!(side.cli(&["plugin", "list"]).contains("closed"));
}

#[test]
fn enrichment_failures_keep_the_event_until_confluence_answers_even_across_a_restart() {
    let fake = confluence();
    let mut side = hello_sidecar(&fake);
    for _ in 0..1000 {
        fake.inject(endpoints::GET_CONTENT, Fault::Status(503));
    }
    side.start();
    let body = fixture_bytes("confluence/webhook-id-only/page_created.json");
    assert_eq!(side.hook("prod", &body, Some(HOOK_SECRET)).0, 202);
    let pending = side.wait_json(&["events"], "an enrichment error", |v| {
        !v[0]["error"].is_null()
    });
    assert_eq!(pending[0]["status"], "pending");
    assert!(
        pending[0]["error"].as_str().unwrap().contains("HTTP 503"),
        "{pending}"
    );

    side.kill();
    assert!(
        fake.faults_left(endpoints::GET_CONTENT) > 0,
        "still failing"
    );
    let fake2 = confluence();
    // Point the source at a healthy Confluence and restart: the event is dispatched.
    side.connect_confluence("prod", &fake2.base_url());
    side.start();
    let delivered = deliveries(&side, 1);
    assert_eq!(delivered[0]["action"]["channel"], "#eng");
}

#[test]
fn purged_content_is_dispatched_unenriched() {
    let fake = confluence();
    let mut side = hello_sidecar(&fake);
    side.start();
    let body = br#"{"timestamp":5,"event":"page_created","userKey":"8a7f80839e460b0f019e460ba6440001","page":{"id":424242}}"#;
    assert_eq!(side.hook("prod", body, Some(HOOK_SECRET)).0, 202);
    let events = side.wait_json(&["events"], "dispatch", |v| v[0]["status"] == "dispatched");
    assert_eq!(events[0]["event"]["enriched"], false);
    assert_eq!(events[0]["event"]["content"]["id"], 424242);
    // hello is scoped to space ENG; content with no known space does not match it.
    assert_eq!(side.api("/api/deliveries").1, serde_json::json!([]));
}

#[test]
fn events_caused_by_pagehook_itself_are_marked() {
    let fake = confluence();
    let mut side = hello_sidecar(&fake);
    side.start();
    let body = format!(
        r#"{{"timestamp":7,"event":"page_created","userKey":"{}","page":{{"id":{PAGE}}}}}"#,
        pagehook_fakes::SERVICE_USER_KEY
    );
    assert_eq!(side.hook("prod", body.as_bytes(), Some(HOOK_SECRET)).0, 202);
    let events = side.wait_json(&["events"], "dispatch", |v| v[0]["status"] == "dispatched");
    assert_eq!(events[0]["event"]["by_pagehook"], true);
    assert_eq!(
        events[0]["event"]["actor"]["key"],
        pagehook_fakes::SERVICE_USER_KEY
    );
}
