//! Inbound Slack: `POST /hooks/slack/{connection}` verifies Slack's `v0`
//! signature, answers `url_verification`, stores `link_shared` events and
//! slash commands once (Slack's retries included) before answering, and
//! dispatch turns them into chat events that bindings with `--source
//! <slack connection>` run on.
//!
//! The published vector (`shared/fixtures/signatures/slack.json`, signed at
//! 1531420618) is checked through the router in process with the host's
//! clock fixed at that time; everything else runs against a real
//! `pagehook serve` on loopback, signed at the current time.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::sidecar::{PAT, Sidecar};
use hmac::{Hmac, Mac};
use pagehook::clock::Clock;
use pagehook::config::Config;
use pagehook::secret::SecretSource;
use pagehook::server::{AppState, router};
use pagehook::store::{ConnectionKind, ConnectionRecord};
use pagehook_fakes::{ConfluenceAuth, FakeConfluence, FakeSlack};
use serde_json::{Value, json};
use sha2::Sha256;
use tower::ServiceExt;

const BOT: &str = "xoxb-slack-inbound-tests";
const SIGNING_SECRET: &str = "e2e-signing-secret-0b1f";
const USER: &str = "U0ADA00001";
const TEAM: &str = "T0ACME0001";
/// The admin API token of the in-process router.
const ADMIN: &str = "slack-inbound-admin-token";

struct Vector {
    secret: String,
    timestamp: String,
    body: String,
    signature: String,
}

fn vector() -> Vector {
    let path = common::root().join("../shared/fixtures/signatures/slack.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    Vector {
        secret: s("signing_secret"),
        timestamp: s("timestamp"),
        body: s("body"),
        signature: s("expected_signature"),
    }
}

/// `v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{body}")>`, as Slack signs.
fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------
// In process, with the clock at the published vector's time.

struct App {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
}

/// A router over a fresh store whose clock reads `at_secs`, with Slack
/// connections `acme` (the vector's signing secret) and `bare` (none).
async fn app(at_secs: i64) -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.database = dir.path().join("pagehook.db");
    config.store.plugins_dir = dir.path().join("plugins");
    config.sandbox.cache_dir = Some(common::root().join("target/pagehook-cache"));
    config.server.admin_token = Some(SecretSource::Value(ADMIN.into()));
    let mut state = AppState::standalone(config).unwrap();
    Arc::get_mut(&mut state).unwrap().clock = Clock::Fixed(at_secs * 1000);
    let mut acme = ConnectionRecord::new("acme", ConnectionKind::Slack, "http://127.0.0.1:9/api/");
    acme.secret = Some(SecretSource::Value(BOT.into()));
    acme.hook_secret = Some(SecretSource::Value(vector().secret));
    state.store.add_connection(&acme).await.unwrap();
    let mut bare = ConnectionRecord::new("bare", ConnectionKind::Slack, "http://127.0.0.1:9/api/");
    bare.secret = Some(SecretSource::Value(BOT.into()));
    state.store.add_connection(&bare).await.unwrap();
    App { _dir: dir, state }
}

/// POSTs `body` as a form to `/hooks/slack/{connection}` with these
/// timestamp and signature headers; the status and body text.
async fn post_form(
    app: &App,
    connection: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::post(format!("/hooks/slack/{connection}"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(ts) = timestamp {
        req = req.header("x-slack-request-timestamp", ts);
    }
    if let Some(sig) = signature {
        req = req.header("x-slack-signature", sig);
    }
    let answer = router(app.state.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = answer.status();
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn stored(app: &App) -> Vec<pagehook::store::EventRecord> {
    app.state.store.events(None, 100).await.unwrap()
}

#[tokio::test]
async fn the_published_vector_is_accepted_and_its_command_stored_once() {
    let v = vector();
    let app = app(v.timestamp.parse().unwrap()).await;
    let ts = Some(v.timestamp.as_str());
    let sig = Some(v.signature.as_str());
    let (status, body) = post_form(&app, "acme", ts, sig, &v.body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body, "",
        "an empty answer: Slack shows nothing until the plugin responds"
    );
    // The same request again (a retry) is the same command.
    let (status, _) = post_form(&app, "acme", ts, sig, &v.body).await;
    assert_eq!(status, StatusCode::OK);
    let events = stored(&app).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(
        (e.source.as_str(), e.name.as_str()),
        ("acme", "slash_command")
    );
    assert_eq!(
        e.key,
        "acme:slash-command:398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    );
    assert_eq!(e.payload["command"], "/webhook-collect");
    assert_eq!(e.payload["user_id"], "U2CERLKJA");
    assert!(
        e.payload.get("token").is_none(),
        "Slack's verification token is not kept"
    );
}

#[tokio::test]
async fn refused_requests_answer_401_or_404_and_store_nothing() {
    let v = vector();
    let at: i64 = v.timestamp.parse().unwrap();
    let app = app(at).await;
    let ts = Some(v.timestamp.as_str());
    let sig = Some(v.signature.as_str());
    let wrong = sign("not-the-signing-secret", &v.timestamp, v.body.as_bytes());
    let altered = v.body.replace("text=", "text=drop+table");
    // (connection, timestamp, signature, body, status, what the answer says)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "acme",
            ts,
            Some(&wrong),
            &v.body,
            StatusCode::UNAUTHORIZED,
            "does not match",
        ),
        (
            "acme",
            ts,
            sig,
            &altered,
            StatusCode::UNAUTHORIZED,
            "does not match",
        ),
        (
            "acme",
            None,
            sig,
            &v.body,
            StatusCode::UNAUTHORIZED,
            "missing X-Slack-Request-Timestamp",
        ),
        (
            "acme",
            ts,
            None,
            &v.body,
            StatusCode::UNAUTHORIZED,
            "missing X-Slack-Signature",
        ),
        (
            "bare",
            ts,
            sig,
            &v.body,
            StatusCode::UNAUTHORIZED,
            "has no signing secret",
        ),
        (
            "nope",
            ts,
            sig,
            &v.body,
            StatusCode::NOT_FOUND,
            "no Slack connection named `nope`",
        ),
    ];
    for (connection, ts, sig, body, want, says) in cases {
        let (status, answer) = post_form(&app, connection, ts, sig, body).await;
        assert_eq!(status, want, "{connection} {ts:?} {sig:?}: {answer}");
        assert!(answer.contains(says), "{answer}");
        assert!(!answer.contains(&v.secret), "{answer}");
    }
    // Signed correctly, but replayed six minutes later.
    let late = app_at_same_store(&app, at + 360);
    let (status, answer) = post_form(&late, "acme", ts, sig, &v.body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(answer.contains("360 s away"), "{answer}");
    assert!(stored(&app).await.is_empty(), "refusals store nothing");
}

/// Another state on the same store, its clock at `at_secs`.
fn app_at_same_store(app: &App, at_secs: i64) -> App {
    let mut state = AppState::standalone(app.state.config.clone()).unwrap();
    Arc::get_mut(&mut state).unwrap().clock = Clock::Fixed(at_secs * 1000);
    App {
        _dir: tempfile::tempdir().unwrap(),
        state,
    }
}

/// `POST /api/connections` with the admin token; status and JSON answer.
async fn connect_api(app: &App, body: Value) -> (StatusCode, Value) {
    let req = Request::post("/api/connections")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let answer = router(app.state.clone()).oneshot(req).await.unwrap();
    let status = answer.status();
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_admin_api_sets_a_signing_secret_and_never_shows_it() {
    let v = vector();
    let at: i64 = v.timestamp.parse().unwrap();
    let app = app(at).await;
    let secret = "api-signing-secret-77c2";
    let (status, answer) = connect_api(
        &app,
        json!({"name": "beta", "kind": "slack", "url": "http://127.0.0.1:9/api/",
               "token": {"value": BOT}, "signing_secret": {"value": secret}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let text = answer.to_string();
    assert!(!text.contains(secret) && !text.contains(BOT), "{text}");
    assert_eq!(answer["hook_secret"], "[redacted]");
    // Slack's requests signed with it are taken.
    let signature = sign(secret, &v.timestamp, v.body.as_bytes());
    let (status, body) =
        post_form(&app, "beta", Some(&v.timestamp), Some(&signature), &v.body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stored(&app).await.len(), 1);

    for (body, says) in [
        (
            json!({"name": "gamma", "kind": "slack", "token": {"value": BOT},
                   "webhook_secret": {"value": secret}}),
            "signing_secret",
        ),
        (
            json!({"name": "wiki", "kind": "confluence", "url": "https://wiki.example.com",
                   "webhook_secret": {"value": "w"}, "signing_secret": {"value": secret}}),
            "for Slack connections",
        ),
    ] {
        let (status, answer) = connect_api(&app, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
        assert!(!answer.to_string().contains(secret), "{answer}");
    }
}

// ---------------------------------------------------------------------------
// End to end, against `pagehook serve`.

/// A sidecar with Confluence `prod` (the fake, by token) and Slack `acme`
/// (the fake, with [`SIGNING_SECRET`]), serving.
fn side(conf: &FakeConfluence, slack: &FakeSlack) -> Sidecar {
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &conf.base_url());
    let said = side.connect_slack_signed("acme", &slack.base_url(), BOT, SIGNING_SECRET, &[]);
    assert!(said.contains("/hooks/slack/acme"), "{said}");
    let listed = side.cli(&["connections", "--json"]);
    assert!(!listed.contains(SIGNING_SECRET), "{listed}");
    side.start();
    side
}

fn fakes() -> (FakeConfluence, FakeSlack) {
    let conf = FakeConfluence::start(ConfluenceAuth::Bearer(PAT.into()));
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    slack.add_user("ada@example.com", USER);
    (conf, slack)
}

/// POSTs to `/hooks/slack/acme`, signed with `secret` at `timestamp`.
fn post(
    side: &Sidecar,
    content_type: &str,
    body: &str,
    secret: &str,
    timestamp: i64,
    retry: Option<u32>,
) -> (u16, String) {
    let ts = timestamp.to_string();
    let mut req = reqwest::blocking::Client::new()
        .post(format!("{}/hooks/slack/acme", side.base))
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", sign(secret, &ts, body.as_bytes()))
        .body(body.to_owned());
    if let Some(n) = retry {
        req = req
            .header("x-slack-retry-num", n.to_string())
            .header("x-slack-retry-reason", "http_timeout");
    }
    let answer = req.send().unwrap();
    (answer.status().as_u16(), answer.text().unwrap())
}

fn events(side: &Sidecar) -> Vec<Value> {
    serde_json::from_str::<Value>(&side.cli(&["events", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn link_shared(event_id: &str) -> String {
    json!({
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": "A0PAGEHOOK",
        "event": {
            "type": "link_shared",
            "channel": "C0ENG00001",
            "is_bot_user_member": true,
            "user": USER,
            "message_ts": "1764633600.000100",
            "unfurl_id": "C0ENG00001.1764633600.000100.abc",
            "source": "conversations_history",
            "event_ts": "1764633600.000200",
            "links": [
                {"domain": "wiki.example.com", "url": "https://wiki.example.com/pages/viewpage.action?pageId=2818051"},
                {"domain": "wiki.example.com", "url": "https://wiki.example.com/x/AwArAA"}
            ]
        },
        "type": "event_callback",
        "authed_users": [USER],
        "event_id": event_id,
        "event_time": 1764633600
    })
    .to_string()
}

#[test]
fn url_verification_is_answered_and_bad_signatures_refused_over_http() {
    let (conf, slack) = fakes();
    let side = side(&conf, &slack);
    let body = r#"{"token":"legacy","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let (status, answer) = post(
        &side,
        "application/json",
        body,
        SIGNING_SECRET,
        now_secs(),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let event = link_shared("Ev0REFUSED1");
    let (status, answer) = post(
        &side,
        "application/json",
        &event,
        "wrong-secret",
        now_secs(),
        None,
    );
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("does not match"), "{answer}");
    let (status, answer) = post(
        &side,
        "application/json",
        &event,
        SIGNING_SECRET,
        now_secs() - 600,
        None,
    );
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("server's clock"), "{answer}");
    // A body other than the one signed.
    let ts = now_secs().to_string();
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/hooks/slack/acme", side.base))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            sign(SIGNING_SECRET, &ts, event.as_bytes()),
        )
        .body(event.replace("Ev0REFUSED1", "Ev0REFUSED2"))
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    let answer = answer.text().unwrap();
    assert!(answer.contains("does not match"), "{answer}");
    assert!(!answer.contains(SIGNING_SECRET), "{answer}");
    // A message event is acknowledged and dropped.
    let message = event.replace(r#""type":"link_shared""#, r#""type":"message""#);
    let (status, _) = post(
        &side,
        "application/json",
        &message,
        SIGNING_SECRET,
        now_secs(),
        None,
    );
    assert_eq!(status, 200);
    assert!(events(&side).is_empty(), "nothing stored");
}

/// Waits until `check` holds for the stored events.
fn wait_events(side: &Sidecar, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = events(side);
        if check(&all) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_retried_link_shared_is_stored_once_and_runs_a_plugin_once() {
    let (conf, slack) = fakes();
    let side = side(&conf, &slack);
    // The hostile fixture takes every event kind; mode ok answers one post,
    // recorded (dry run), so each run leaves one delivery.
    side.install("hostile", &["post-slack"]);
    side.cli(&[
        "bind",
        "hostile",
        "--source",
        "acme",
        "--to",
        "slack:#ok",
        "--quiet",
        "--dry-run",
    ]);
    let body = link_shared("Ev0LINK0001");
    let (status, first) = post(
        &side,
        "application/json",
        &body,
        SIGNING_SECRET,
        now_secs(),
        None,
    );
    assert_eq!(status, 200, "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["duplicate"], false);
    // Slack did not hear back in time and sends it again.
    let (status, again) = post(
        &side,
        "application/json",
        &body,
        SIGNING_SECRET,
        now_secs(),
        Some(1),
    );
    assert_eq!(status, 200, "{again}");
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (again["duplicate"].clone(), again["id"].clone()),
        (json!(true), first["id"].clone())
    );

    let all = wait_events(&side, "the link_shared event dispatched", |all| {
        all.iter().any(|e| e["status"] == "dispatched")
    });
    assert_eq!(all.len(), 1, "stored once: {all:#?}");
    let record = &all[0];
    assert_eq!(record["source"], "acme");
    assert_eq!(record["name"], "link_shared");
    assert_eq!(record["key"], "acme:slack-event:Ev0LINK0001");
    assert!(record["payload"].get("token").is_none());
    let event = &record["event"];
    assert_eq!(event["kind"], "link-shared");
    assert_eq!(event["source"], "acme");
    assert_eq!(event["occurred_at_ms"], 1764633600000u64);
    let chat = &event["chat"];
    assert_eq!(chat["type"], "link-shared");
    assert_eq!(chat["channel"], "C0ENG00001");
    assert_eq!(chat["message_ts"], "1764633600.000100");
    assert_eq!(chat["user"]["id"], USER);
    assert_eq!(chat["user"]["team_id"], TEAM);
    let urls: Vec<&str> = chat["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "https://wiki.example.com/pages/viewpage.action?pageId=2818051",
            "https://wiki.example.com/x/AwArAA"
        ]
    );
    assert_eq!(
        slack.calls("users.info"),
        1,
        "the Slack user's email was read"
    );

    let deliveries: Value = serde_json::from_str(&side.cli(&["deliveries", "--json"])).unwrap();
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "the plugin ran once: {deliveries:#?}");
    // A later retry still changes nothing.
    let (status, _) = post(
        &side,
        "application/json",
        &body,
        SIGNING_SECRET,
        now_secs(),
        Some(2),
    );
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(events(&side).len(), 1);
    let deliveries: Value = serde_json::from_str(&side.cli(&["deliveries", "--json"])).unwrap();
    assert_eq!(deliveries.as_array().unwrap().len(), 1);
}

#[test]
fn a_slash_command_becomes_an_event_with_its_response_url() {
    let (conf, slack) = fakes();
    let side = side(&conf, &slack);
    let response_url = "https://hooks.slack.com/commands/T0ACME0001/1234567890/abcdefABCDEF";
    let body = format!(
        "token=legacy&team_id={TEAM}&team_domain=acme&channel_id=C0ENG00001&channel_name=eng\
         &user_id={USER}&user_name=ada&command=%2Fwiki&text=search+launch+checklist\
         &api_app_id=A0PAGEHOOK&response_url={}&trigger_id=13345224609.738474920.8088930838d88f008e0",
        response_url.replace(':', "%3A").replace('/', "%2F")
    );
    let started = Instant::now();
    let (status, answer) = post(
        &side,
        "application/x-www-form-urlencoded",
        &body,
        SIGNING_SECRET,
        now_secs(),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer, "",
        "empty: the answer follows through the response URL"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within Slack's 3 s"
    );

    let all = wait_events(&side, "the slash command dispatched", |all| {
        all.iter().any(|e| e["status"] == "dispatched")
    });
    assert_eq!(all.len(), 1, "{all:#?}");
    let record = &all[0];
    assert_eq!(record["name"], "slash_command");
    assert_eq!(
        record["key"],
        "acme:slash-command:13345224609.738474920.8088930838d88f008e0"
    );
    assert!(record["payload"].get("token").is_none());
    let event = &record["event"];
    assert_eq!(event["kind"], "slash-command");
    assert_eq!(event["source"], "acme");
    let chat = &event["chat"];
    assert_eq!(chat["type"], "slash-command");
    assert_eq!(chat["command"], "/wiki");
    assert_eq!(chat["text"], "search launch checklist");
    assert_eq!(chat["channel"], "C0ENG00001");
    assert_eq!(chat["response_url"], response_url);
    assert_eq!(chat["user"]["id"], USER);
    assert_eq!(chat["user"]["team_id"], TEAM);
}

#[test]
fn chat_events_fail_naming_the_setting_while_several_confluence_connections_could_answer() {
    let (conf, slack) = fakes();
    let side = side(&conf, &slack);
    side.connect_confluence("staging", &conf.base_url());
    side.install("hostile", &["post-slack"]);
    side.cli(&[
        "bind",
        "hostile",
        "--source",
        "acme",
        "--to",
        "slack:#ok",
        "--quiet",
        "--dry-run",
    ]);
    let body = link_shared("Ev0WAIT0001");
    let (status, answer) = post(
        &side,
        "application/json",
        &body,
        SIGNING_SECRET,
        now_secs(),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    // Not a wait for an admin to remove one: the event fails at once, saying
    // which setting picks the Confluence connection.
    let all = wait_events(&side, "the event failed", |all| {
        all.iter().any(|e| e["error"].is_string())
    });
    let record = &all[0];
    assert_eq!(record["status"], "failed", "{record:#}");
    let error = record["error"].as_str().unwrap();
    assert!(
        error.contains("prod, staging") && error.contains("--confluence NAME"),
        "{error}"
    );
    // A preview still runs the binding on the event as Slack sent it.
    let bindings: Value = serde_json::from_str(&side.cli(&["bindings", "--json"])).unwrap();
    let preview: Value = reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/bindings/{}/preview",
            side.base, bindings[0]["id"]
        ))
        .bearer_auth(common::sidecar::ADMIN_TOKEN)
        .json(&json!({"event_id": record["id"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(preview["would_run"], true, "{preview:#}");
    assert_eq!(
        preview["actions"].as_array().unwrap().len(),
        1,
        "{preview:#}"
    );
    assert!(
        preview["notes"][0]
            .as_str()
            .unwrap()
            .contains("as Slack sent it"),
        "{preview:#}"
    );
    // The admin names the one the workspace uses, keeping both: the next event goes through.
    let named = reqwest::blocking::Client::new()
        .patch(format!("{}/api/connections/acme", side.base))
        .bearer_auth(common::sidecar::ADMIN_TOKEN)
        .json(&json!({"confluence": "prod"}))
        .send()
        .unwrap();
    assert_eq!(named.status().as_u16(), 200);
    let body = link_shared("Ev0NAMED0002");
    let (status, answer) = post(
        &side,
        "application/json",
        &body,
        SIGNING_SECRET,
        now_secs(),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    wait_events(&side, "the next event dispatched", |all| {
        all.iter().any(|e| e["status"] == "dispatched")
    });
}
