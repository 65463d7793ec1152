//! `pagehook serve` end to end: signed webhooks from Confluence's real
//! payloads, enrichment from a fake Confluence on loopback, dispatch to
//! bound plugins, and what the admin sees through the CLI and the API.

use crate::common;

use common::confluence;
use common::sidecar::{HOOK_SECRET, PAT, Sidecar};
use pagehook_fakes::{ContentBuilder, FakeConfluence, Fault, endpoints, fixture_bytes};
use serde_json::Value;

const PAGE: u64 = 2818051;

/// A fake Confluence with the checklist page, labelled `release`, below
/// Engineering Home.
fn confluence_with_checklist() -> FakeConfluence {
    confluence::with_ada([ContentBuilder::page(PAGE, "ENG", "Q3 launch checklist")
        .labels(&["release"])
        .ancestors(&[(2818001, "Engineering Home")])])
}

fn hello_sidecar(fake: &FakeConfluence) -> Sidecar {
    let side = Sidecar::new();
    side.connect_confluence("prod", &fake.base_url());
    side.install("hello", &["post-slack"]);
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
    let fake = confluence_with_checklist();
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
    let fake = confluence_with_checklist();
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
    let fake = confluence_with_checklist();
    let mut side = hello_sidecar(&fake);
    side.install("hostile", &["post-slack"]);
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
    let fake = confluence_with_checklist();
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
    let fake2 = confluence_with_checklist();
    // Point the source at a healthy Confluence and restart: the event is dispatched.
    side.connect_confluence("prod", &fake2.base_url());
    side.start();
    let delivered = deliveries(&side, 1);
    assert_eq!(delivered[0]["action"]["channel"], "#eng");
    // Dispatched once, after the restart: one event, one delivery.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let events: Value = serde_json::from_str(&side.cli(&["events", "--json"])).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 1);
    assert_eq!(events[0]["status"], "dispatched");
    assert_eq!(side.api("/api/deliveries").1.as_array().unwrap().len(), 1);
}

#[test]
fn purged_content_is_dispatched_unenriched() {
    let fake = confluence_with_checklist();
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
    let fake = confluence_with_checklist();
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

#[test]
fn admin_api_needs_the_token_and_has_the_cli_powers() {
    let fake = confluence_with_checklist();
    let mut side = hello_sidecar(&fake);
    side.start();
    let client = reqwest::blocking::Client::new();
    let url = |p: &str| format!("{}{p}", side.base);

    let anonymous = client.get(url("/api/plugins")).send().unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = client
        .get(url("/api/plugins"))
        .bearer_auth("nope")
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let body: Value = wrong.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("admin token"),
        "{body}"
    );

    let (status, plugins) = side.api("/api/plugins");
    assert_eq!(status, 200);
    assert_eq!(plugins[0]["name"], "hello");
    assert_eq!(plugins[0]["grants"], serde_json::json!(["post-slack"]));

    // Bind through the API; a destination the plugin was not granted is refused.
    let post = |path: &str, body: Value| {
        let r = client
            .post(url(path))
            .bearer_auth(common::sidecar::ADMIN_TOKEN)
            .json(&body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let (status, refused) = post(
        "/api/bindings",
        serde_json::json!({"plugin": "hello", "to": ["teams:eng"], "settings": {"channel": "#x"}}),
    );
    assert_eq!(status, 400);
    assert!(
        refused["error"].as_str().unwrap().contains("not granted"),
        "{refused}"
    );
    let (status, missing) = post(
        "/api/bindings",
        serde_json::json!({"plugin": "hello", "to": ["slack:#x"]}),
    );
    assert_eq!(status, 400);
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("needs setting `channel`"),
        "{missing}"
    );
    let (status, bound) = post(
        "/api/bindings",
        serde_json::json!({"plugin": "hello", "scope": "page:2818001", "to": ["slack:#launch"], "settings": {"channel": "#launch"}}),
    );
    assert_eq!(status, 201, "{bound}");
    assert_eq!(bound["scope"], "page:2818001");

    // The page is under 2818001 and in space ENG: both bindings deliver.
    let body = fixture_bytes("confluence/webhook-id-only/page_created.json");
    let (_, stored) = side.hook("prod", &body, Some(HOOK_SECRET));
    let delivered = deliveries(&side, 2);
    let mut channels: Vec<&str> = delivered
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"]["channel"].as_str().unwrap())
        .collect();
    channels.sort();
    assert_eq!(channels, vec!["#eng", "#launch"]);

    let (status, detail) = side.api(&format!("/api/events/{}", stored["id"]));
    assert_eq!(status, 200);
    assert_eq!(detail["deliveries"].as_array().unwrap().len(), 2);
    assert_eq!(detail["audit"].as_array().unwrap().len(), 2);
    assert!(
        detail["audit"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["verdict"] == "accepted")
    );
    assert_eq!(side.api("/api/events/999").0, 404);

    let health: Value = reqwest::blocking::get(url("/healthz"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "ok");
}

#[test]
fn secrets_never_appear_in_cli_or_api_output() {
    let fake = confluence_with_checklist();
    let mut side = Sidecar::new();
    side.cli(&[
        "connect",
        "confluence",
        "prod",
        "--url",
        &fake.base_url(),
        "--token",
        PAT,
        "--webhook-secret",
        HOOK_SECRET,
    ]);
    side.cli(&[
        "connect",
        "teams",
        "eng",
        "--url",
        "https://example.invalid/workflows/run?sig=TEAMS-SIG-SECRET",
    ]);
    let table = side.cli(&["connections"]);
    let json = side.cli(&["connections", "--json"]);
    side.start();
    let (_, api) = side.api("/api/connections");
    for shown in [table, json, api.to_string()] {
        for secret in [PAT, HOOK_SECRET, "TEAMS-SIG-SECRET"] {
            assert!(!shown.contains(secret), "{secret} leaked in:\n{shown}");
        }
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    // `connection test` checks the PAT against Confluence's current user.
    let ok = side.cli(&["connection", "test", "prod"]);
    assert!(ok.contains("accepts the credentials of Pagehook"), "{ok}");
    let slack = pagehook_fakes::FakeSlack::start("xoxb-good-token");
    side.cli(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        "xoxb-good-token",
    ]);
    let ok = side.cli(&["connection", "test", "acme"]);
    assert!(ok.contains("Slack accepts the token"), "{ok}");
    assert!(!side.cli(&["connections"]).contains("xoxb-good-token"));
    side.cli(&[
        "connect",
        "slack",
        "acme",
        "--url",
        &slack.base_url(),
        "--token",
        "xoxb-bad",
    ]);
    let bad = side.cli_output(&["connection", "test", "acme"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("invalid_auth"));
    let teams = side.cli(&["connection", "test", "eng"]);
    assert!(teams.contains("no test endpoint"), "{teams}");
    side.cli(&[
        "connect",
        "confluence",
        "prod",
        "--url",
        &fake.base_url(),
        "--token",
        "wrong-pat",
        "--webhook-secret",
        HOOK_SECRET,
    ]);
    let refused = side.cli_output(&["connection", "test", "prod"]);
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(
        said.contains("refused the credentials (HTTP 401)"),
        "{said}"
    );
    assert!(!said.contains("wrong-pat"), "{said}");
}

#[test]
fn install_checks_grants_and_bind_checks_everything() {
    let side = Sidecar::new();
    let hello = common::plugin_dir("hello");
    let out = side.cli_output(&[
        "plugin",
        "install",
        hello.to_str().unwrap(),
        "--grant",
        "create-page",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not declare it"));
    let outside = common::plugin_dir("imports-outside");
    let out = side.cli_output(&[
        "plugin",
        "install",
        outside.to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("evil:net/sockets"));
    assert!(side.cli(&["plugin", "list", "--json"]).trim() == "[]");

    // Granting less than it declares is allowed, and said; the grant
    // command changes it later.
    let withheld = side.cli(&["plugin", "install", hello.to_str().unwrap()]);
    assert!(
        withheld.contains("granted: nothing; not granted: post-slack"),
        "{withheld}"
    );
    let out = side.cli_output(&["plugin", "grant", "hello", "--grant", "dm-slack"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not declare it"));

    let installed = side.cli(&[
        "plugin",
        "install",
        hello.to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    assert!(installed.contains("sha256"), "{installed}");
    for (args, says) in [
        (
            vec!["bind", "hello", "--to", "slack:#eng"],
            "needs setting `channel`",
        ),
        (
            vec!["bind", "hello", "--to", "#eng", "--set", "channel=#eng"],
            "a destination is",
        ),
        (
            vec![
                "bind",
                "hello",
                "--scope",
                "team:x",
                "--to",
                "slack:#e",
                "--set",
                "channel=#e",
            ],
            "a scope is",
        ),
        (
            vec![
                "bind",
                "hello",
                "--events",
                "page-updated",
                "--to",
                "slack:#e",
                "--set",
                "channel=#e",
            ],
            "does not handle `page-updated`",
        ),
        (
            vec![
                "bind",
                "hello",
                "--to",
                "slack:#e",
                "--set",
                "channel=#e",
                "--source",
                "nope",
            ],
            "no Confluence connection named `nope`",
        ),
        (
            vec!["bind", "nope", "--to", "slack:#e"],
            "no plugin named `nope`",
        ),
    ] {
        let out = side.cli_output(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(side.cli(&["bindings", "--json"]).trim() == "[]");
    side.cli(&[
        "bind",
        "hello",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    side.cli(&["plugin", "disable", "hello"]);
    assert!(side.cli(&["plugin", "list"]).contains("no"));
    let removed = side.cli(&["plugin", "remove", "hello"]);
    assert!(removed.contains("1 binding"), "{removed}");
}

#[test]
fn webhook_only_source_dispatches_rich_payloads_to_bundled_and_python_plugins() {
    let mut side = Sidecar::new();
    // No token: Confluence is never asked; rich payloads carry title, space and URL.
    let said = side.cli(&[
        "connect",
        "confluence",
        "legacy",
        "--url",
        "http://127.0.0.1:9",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    assert!(said.contains("not read back from Confluence"), "{said}");
    side.install("slack-poster", &["post-slack", "dm-slack"]);
    side.cli(&[
        "bind",
        "slack-poster",
        "--scope",
        "space:ENG",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    side.install("python-filter", &["post-slack"]);
    side.cli(&[
        "bind",
        "python-filter",
        "--to",
        "slack:#launches",
        "--set",
        "channel=#launches",
        "--set",
        "title-pattern=(?i)launch",
    ]);
    side.start();
    let body = fixture_bytes("confluence/webhook-rich/page_created.json");
    assert_eq!(side.hook("legacy", &body, Some(HOOK_SECRET)).0, 202);

    let delivered = deliveries(&side, 2);
    let by_plugin = |name: &str| {
        delivered
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["plugin"] == name)
            .unwrap_or_else(|| panic!("no {name} delivery in {delivered:#}"))
            .clone()
    };
    let slack = by_plugin("slack-poster");
    assert_eq!(slack["action"]["channel"], "#eng");
    let text = slack["action"]["text"].as_str().unwrap();
    assert!(text.contains("\"Q3 launch checklist\" in ENG"), "{text}");
    let blocks = slack["action"]["blocks"].to_string();
    assert!(
        blocks.contains("Pagehook could not read this content"),
        "{blocks}"
    );
    let python = by_plugin("python-filter");
    assert_eq!(python["action"]["channel"], "#launches");
    let events: Value = serde_json::from_str(&side.cli(&["events", "--json"])).unwrap();
    assert_eq!(events[0]["event"]["enriched"], false);
    assert_eq!(
        events[0]["event"]["content"]["title"],
        "Q3 launch checklist"
    );
}

#[test]
fn an_action_to_a_destination_the_binding_does_not_name_is_rejected_and_audited() {
    let fake = confluence_with_checklist();
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &fake.base_url());
    side.install("hello", &["post-slack"]);
    // The admin allowed #announcements, but the plugin is configured to post to #eng.
    side.cli(&[
        "bind",
        "hello",
        "--to",
        "slack:#announcements",
        "--set",
        "channel=#eng",
    ]);
    side.start();
    let body = fixture_bytes("confluence/webhook-id-only/page_created.json");
    let (_, stored) = side.hook("prod", &body, Some(HOOK_SECRET));
    side.wait_json(&["events"], "dispatch", |v| v[0]["status"] == "dispatched");
    let (_, detail) = side.api(&format!("/api/events/{}", stored["id"]));
    assert_eq!(detail["deliveries"], serde_json::json!([]));
    let audit = &detail["audit"][0];
    assert_eq!(audit["verdict"], "rejected");
    assert_eq!(audit["destination"], "#eng");
    assert!(
        audit["reason"].as_str().unwrap().contains(
            "does not allow `post-slack` to `#eng` (its destinations: slack:#announcements)"
        ),
        "{audit}"
    );
    assert_eq!(audit["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn enrichment_honours_429_and_clamps_an_absurd_retry_after() {
    let fake = confluence_with_checklist();
    let mut side = hello_sidecar(&fake);
    // Clamp Retry-After to one second so the absurd value costs the test one second.
    side.add_to_config("\n[enrichment]\nmax-retry-after-secs = 1\n");
    fake.inject(
        endpoints::GET_CONTENT,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    fake.inject(
        endpoints::GET_CONTENT,
        Fault::RateLimited {
            retry_after_secs: 9_223_372_036_854_775_807,
        },
    );
    fake.inject(
        endpoints::GET_CONTENT,
        Fault::RateLimited {
            retry_after_secs: 9_223_372_036_854_775_807,
        },
    );
    fake.inject(
        endpoints::GET_CONTENT,
        Fault::RateLimited {
            retry_after_secs: 9_223_372_036_854_775_807,
        },
    );
    side.start();
    let body = fixture_bytes("confluence/webhook-id-only/page_created.json");
    let started = std::time::Instant::now();
    assert_eq!(side.hook("prod", &body, Some(HOOK_SECRET)).0, 202);
    let events = side.wait_json(&["events"], "dispatch after the 429s", |v| {
        v[0]["status"] == "dispatched"
    });
    assert_eq!(events[0]["event"]["enriched"], true);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "Retry-After was clamped"
    );
    assert_eq!(
        fake.faults_left(endpoints::GET_CONTENT),
        0,
        "every 429 was met and waited out"
    );
    assert_eq!(deliveries(&side, 1).as_array().unwrap().len(), 1);
}
