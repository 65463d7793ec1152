//! Who may do what through the admin API, and what it records, in process
//! through `pagehook::server::router` on a temp SQLite store: credentials
//! (admin token, or console session with its CSRF token on changes), a
//! space admin kept to their spaces (403 elsewhere, listings restricted),
//! the change log, plugin upload and grants, connection dry run, the
//! preview of a binding (the exact Slack request a dry run records), and
//! retrying a destination's dead letters.

use crate::api_support;
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use api_support::{App, Auth};
use axum::http::StatusCode;
use common::plugin_dir;
use common::sidecar::sign;
use pagehook::deliver::Deliverer;
use pagehook::dispatch::Dispatcher;
use pagehook::server::session::Principal;
use serde_json::{Value, json};

const HOOK_SECRET: &str = "api-access-webhook-secret";
const SLACK_TOKEN: &str = "xoxb-api-access-never-shown";

/// A page-created webhook for page `id` in `space`.
fn page_created(id: u64, space: &str) -> Vec<u8> {
    json!({
        "timestamp": 1768241233603u64 + id,
        "event": "page_created",
        "userKey": "u-ada",
        "page": {
            "id": id,
            "title": format!("Page {id} of {space}"),
            "contentType": "page",
            "version": 1,
            "spaceKey": space,
            "self": format!("https://wiki.example.com/spaces/{space}/pages/{id}"),
        }
    })
    .to_string()
    .into_bytes()
}

/// An app with a webhook-only Confluence source `wiki`, a Slack workspace
/// `acme` and slack-poster installed.
async fn seeded(slack_dry_run: bool) -> App {
    let app = App::new();
    let admin = Auth::admin();
    let a = app
        .call(
            "POST",
            "/api/connections",
            Some(
                &json!({"name": "wiki", "kind": "confluence", "url": "https://wiki.example.com",
                "webhook_secret": {"value": HOOK_SECRET}}),
            ),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    let a = app
        .call(
            "POST",
            "/api/connections",
            Some(
                &json!({"name": "acme", "kind": "slack", "url": "http://127.0.0.1:9/api/",
                "token": {"value": SLACK_TOKEN}, "dry_run": slack_dry_run}),
            ),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    let a = app
        .call(
            "POST",
            "/api/plugins",
            Some(&json!({"dir": plugin_dir("slack-poster"), "grants": ["post-slack", "dm-slack"]})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    app
}

/// Binds slack-poster in `scope`, posting to `channel`; returns its id.
async fn bind(
    app: &App,
    auth: &Auth,
    scope: &str,
    channel: &str,
    dry_run: bool,
) -> (StatusCode, Value) {
    let a = app
        .call(
            "POST",
            "/api/bindings",
            Some(
                &json!({"plugin": "slack-poster", "scope": scope, "events": ["page-created"],
                "to": [format!("slack:acme/{channel}")], "settings": {"channel": channel},
                "dry_run": dry_run, "quiet": true}),
            ),
            auth,
        )
        .await;
    // These tests dispatch with single rounds: every event runs at once,
    // none is held for a digest (tests/it/digests.rs has those).
    if a.status == StatusCode::CREATED {
        let off = pagehook::store::DigestSettings {
            enabled: false,
            ..Default::default()
        };
        app.state
            .store
            .set_digest_settings(a.json["id"].as_i64().unwrap(), Some(off))
            .await
            .unwrap();
    }
    (a.status, a.json)
}

/// Sends a signed webhook and dispatches everything pending; returns the event id.
async fn event(app: &App, id: u64, space: &str) -> i64 {
    let body = page_created(id, space);
    let sig = sign(HOOK_SECRET, &body);
    let a = app
        .send(
            "POST",
            "/hooks/confluence/wiki",
            body,
            Some("application/json"),
            &[("x-hub-signature", &sig)],
            &Auth::None,
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.json);
    let state = &app.state;
    let dispatcher = Dispatcher::new(
        state.store.clone(),
        state.runtime.clone(),
        state.metrics.clone(),
        state.config.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    dispatcher.round().await.unwrap();
    a.json["id"].as_i64().unwrap()
}

/// Runs delivery until `done` holds of the deliveries (at most 20 s).
async fn deliver_until(app: &App, done: impl Fn(&[pagehook::store::DeliveryRecord]) -> bool) {
    let state = &app.state;
    let deliverer = Arc::new(Deliverer::new(
        state.store.clone(),
        state.config.delivery.clone(),
        state.config.store.lease_ms,
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(deliverer.run(Arc::new(tokio::sync::Notify::new()), stopped));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all = state.store.deliveries(None, 1000).await.unwrap();
        if done(&all) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries stuck: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
}

#[tokio::test]
async fn a_session_needs_its_csrf_token_for_changes_and_the_token_none() {
    let app = App::new();
    let admin = app.session(&Principal::Admin).await;
    let a = app
        .call("GET", "/api/plugins", None, &admin.without_csrf())
        .await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "a read needs no CSRF token: {}",
        a.json
    );
    let change = json!({"name": "eng", "kind": "teams", "url": "https://example.invalid/wf?sig=1"});
    let a = app
        .call(
            "POST",
            "/api/connections",
            Some(&change),
            &admin.without_csrf(),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.json);
    assert!(
        a.json["error"].as_str().unwrap().contains("CSRF"),
        "{}",
        a.json
    );
    let wrong = Auth::Session {
        cookie: admin.cookie.clone(),
        csrf: Some("not-the-token".into()),
    };
    let a = app
        .call("POST", "/api/connections", Some(&change), &wrong)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.json);
    assert!(
        app.state.store.connections().await.unwrap().is_empty(),
        "nothing was changed"
    );
    let a = app
        .call("POST", "/api/connections", Some(&change), &admin.auth())
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    // The token needs no CSRF header; no credentials or a stale cookie is a 401.
    let a = app
        .call("DELETE", "/api/connections/eng", None, &Auth::admin())
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    for auth in [
        Auth::None,
        Auth::Bearer("wrong".into()),
        Auth::Session {
            cookie: "pagehook_session=forged".into(),
            csrf: Some("x".into()),
        },
    ] {
        let a = app.call("GET", "/api/plugins", None, &auth).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}: {}", a.json);
    }
}

#[tokio::test]
async fn a_space_admin_is_kept_to_their_spaces() {
    let app = seeded(true).await;
    let admin = Auth::admin();
    let (s, global) = bind(&app, &admin, "global", "#all", true).await;
    assert_eq!(s, StatusCode::CREATED, "{global}");
    let (s, ops) = bind(&app, &admin, "space:OPS", "#ops", true).await;
    assert_eq!(s, StatusCode::CREATED, "{ops}");
    let eng_event = event(&app, 101, "ENG").await;
    let ops_event = event(&app, 202, "OPS").await;

    let jdoe = app.space_admin(&["ENG"]).await.auth();
    // Reading plugins and connections is fine; changing them is not.
    assert_eq!(
        app.call("GET", "/api/plugins", None, &jdoe).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call("GET", "/api/connections", None, &jdoe)
            .await
            .status,
        StatusCode::OK
    );
    for (method, path, body) in [
        ("POST", "/api/plugins", json!({"dir": "/tmp"})),
        ("POST", "/api/plugins/slack-poster/disable", Value::Null),
        (
            "PUT",
            "/api/plugins/slack-poster/grants",
            json!({"grants": []}),
        ),
        ("DELETE", "/api/connections/acme", Value::Null),
        ("PATCH", "/api/connections/acme", json!({"dry_run": false})),
        ("POST", "/api/connections/acme/test", Value::Null),
        ("GET", "/api/audit", Value::Null),
        ("GET", "/api/failures", Value::Null),
        ("GET", "/api/changes", Value::Null),
        ("GET", "/api/links", Value::Null),
        ("DELETE", "/api/links/acme/U0ADA00001", Value::Null),
        (
            "PATCH",
            "/api/connections/acme",
            json!({"confluence": "wiki"}),
        ),
    ] {
        let body = (!body.is_null()).then_some(&body);
        let a = app.call(method, path, body, &jdoe).await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            a.json
        );
        assert!(
            a.json["error"].as_str().unwrap().contains("Pagehook admin"),
            "{}",
            a.json
        );
    }

    // Bindings: only ENG's, created and removed only in ENG.
    let (s, refused) = bind(&app, &jdoe, "space:OPS", "#ops2", true).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("OPS"),
        "{refused}"
    );
    let (s, refused) = bind(&app, &jdoe, "global", "#x", true).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{refused}");
    let (s, eng) = bind(&app, &jdoe, "space:ENG", "#eng", true).await;
    assert_eq!(s, StatusCode::CREATED, "{eng}");
    let listed = app.call("GET", "/api/bindings", None, &jdoe).await.json;
    let ids: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["id"])
        .collect();
    assert_eq!(ids, vec![&eng["id"]], "{listed}");
    assert_eq!(
        app.call("GET", "/api/bindings?space=OPS", None, &jdoe)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call("GET", "/api/bindings", None, &admin)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        3
    );
    for id in [&ops["id"], &global["id"]] {
        let a = app
            .call("DELETE", &format!("/api/bindings/{id}"), None, &jdoe)
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.json);
        let a = app
            .call(
                "POST",
                &format!("/api/bindings/{id}/preview"),
                Some(&json!({"event_id": eng_event})),
                &jdoe,
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.json);
    }
    // Their binding previewed on another space's event is refused too.
    let a = app
        .call(
            "POST",
            &format!("/api/bindings/{}/preview", eng["id"]),
            Some(&json!({"event_id": ops_event})),
            &jdoe,
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.json);

    // Events and deliveries: their spaces only.
    let events = app.call("GET", "/api/events", None, &jdoe).await.json;
    let spaces: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["space_key"].as_str().unwrap())
        .collect();
    assert_eq!(spaces, vec!["ENG"], "{events}");
    assert_eq!(
        app.call("GET", "/api/events", None, &admin)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        app.call("GET", "/api/events?space=OPS", None, &jdoe)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call("GET", &format!("/api/events/{ops_event}"), None, &jdoe)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call("GET", &format!("/api/events/{eng_event}"), None, &jdoe)
            .await
            .status,
        StatusCode::OK
    );
    let theirs = app.call("GET", "/api/deliveries", None, &jdoe).await.json;
    let all = app.call("GET", "/api/deliveries", None, &admin).await.json;
    assert!(
        theirs
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["event_id"] == json!(eng_event)),
        "{theirs}"
    );
    let ops_delivery = all
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_id"] == json!(ops_event))
        .unwrap_or_else(|| panic!("the OPS event was delivered: {all}"));
    for path in ["retry", "attempts"] {
        let method = if path == "retry" { "POST" } else { "GET" };
        let a = app
            .call(
                method,
                &format!("/api/deliveries/{}/{path}", ops_delivery["id"]),
                None,
                &jdoe,
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {}", a.json);
    }
    // The filters the console uses.
    let kind = app
        .call(
            "GET",
            "/api/events?kind=page-created&space=ENG&page=101",
            None,
            &jdoe,
        )
        .await
        .json;
    assert_eq!(kind.as_array().unwrap().len(), 1, "{kind}");
    let none = app
        .call("GET", "/api/events?kind=blog-created", None, &admin)
        .await
        .json;
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn every_change_is_recorded_with_who_made_it_and_no_secret() {
    let app = seeded(true).await;
    let admin = Auth::admin();
    let (s, bound) = bind(&app, &admin, "space:ENG", "#eng", true).await;
    assert_eq!(s, StatusCode::CREATED, "{bound}");
    let jdoe = app.space_admin(&["ENG"]).await.auth();
    let (s, theirs) = bind(&app, &jdoe, "space:ENG", "#eng-news", true).await;
    assert_eq!(s, StatusCode::CREATED, "{theirs}");
    let a = app
        .call(
            "DELETE",
            &format!("/api/bindings/{}", theirs["id"]),
            None,
            &jdoe,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    for (method, path, body) in [
        (
            "PATCH",
            "/api/connections/acme",
            Some(json!({"dry_run": false})),
        ),
        (
            "PUT",
            "/api/plugins/slack-poster/grants",
            Some(json!({"grants": ["post-slack"]})),
        ),
        ("POST", "/api/plugins/slack-poster/disable", None),
        ("POST", "/api/plugins/slack-poster/enable", None),
        ("POST", "/api/plugins/slack-poster/reset", None),
        (
            "POST",
            "/api/deliveries/retry-dead",
            Some(json!({"destination": "slack:acme/#eng"})),
        ),
    ] {
        let a = app.call(method, path, body.as_ref(), &admin).await;
        assert_eq!(a.status, StatusCode::OK, "{method} {path}: {}", a.json);
    }
    // A refused change records nothing.
    let (s, _) = bind(&app, &jdoe, "space:OPS", "#ops", true).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let changes = app
        .call("GET", "/api/changes?limit=100", None, &admin)
        .await
        .json;
    let seen: Vec<(String, String, String)> = changes
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_owned(),
                c["actor"].as_str().unwrap().to_owned(),
                c["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let token = "admin (API token)".to_owned();
    let jdoe_actor = "jdoe (Confluence user on `wiki`)".to_owned();
    let want = [
        ("connection.add", &token, "wiki".to_owned()),
        ("connection.add", &token, "acme".to_owned()),
        ("plugin.install", &token, "slack-poster".to_owned()),
        ("binding.add", &token, bound["id"].to_string()),
        ("binding.add", &jdoe_actor, theirs["id"].to_string()),
        ("binding.remove", &jdoe_actor, theirs["id"].to_string()),
        ("connection.dry-run", &token, "acme".to_owned()),
        ("plugin.grant", &token, "slack-poster".to_owned()),
        ("plugin.disable", &token, "slack-poster".to_owned()),
        ("plugin.enable", &token, "slack-poster".to_owned()),
        ("plugin.reset", &token, "slack-poster".to_owned()),
        ("delivery.retry-dead", &token, "slack:acme/#eng".to_owned()),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).clone(), c.clone()))
        .collect();
    assert_eq!(seen, want, "{changes:#}");
    let text = changes.to_string();
    for secret in [SLACK_TOKEN, HOOK_SECRET] {
        assert!(!text.contains(secret), "{secret} in the change log: {text}");
    }
    // Paged by id.
    let first = changes[0]["id"].as_i64().unwrap();
    let older = app
        .call(
            "GET",
            &format!("/api/changes?before={first}&limit=2"),
            None,
            &admin,
        )
        .await
        .json;
    assert_eq!(older.as_array().unwrap().len(), 2);
    assert!(older[0]["id"].as_i64().unwrap() < first);
}

#[tokio::test]
async fn a_preview_shows_the_exact_request_a_dry_run_records() {
    let app = seeded(false).await;
    let admin = Auth::admin();
    let (s, bound) = bind(&app, &admin, "space:ENG", "#eng", true).await;
    assert_eq!(s, StatusCode::CREATED, "{bound}");
    let id = bound["id"].as_i64().unwrap();
    let event_id = event(&app, 101, "ENG").await;
    let preview = app
        .call(
            "POST",
            &format!("/api/bindings/{id}/preview"),
            Some(&json!({"event_id": event_id})),
            &admin,
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.json);
    let p = &preview.json;
    assert_eq!(p["would_run"], true, "{p:#}");
    assert_eq!(p["failure"], Value::Null, "{p:#}");
    let actions = p["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{p:#}");
    let action = &actions[0];
    assert_eq!(action["verdict"], "accepted");
    assert_eq!(action["allowed_by"], "slack:acme/#eng");
    assert_eq!(action["connection"], "acme");
    assert_eq!(action["dry_run"], true);
    assert_eq!(action["request"]["method"], "chat.postMessage");
    assert_eq!(action["request"]["body"]["channel"], "#eng");

    // Delivery records the dry run; its request is the preview's but for the delivery id.
    deliver_until(&app, |all| {
        all.iter().all(|d| d.status.as_str() == "would-send")
    })
    .await;
    let delivered = app.state.store.deliveries(None, 10).await.unwrap();
    assert_eq!(delivered.len(), 1);
    let mut recorded: Value =
        serde_json::from_str(delivered[0].result.as_deref().unwrap()).unwrap();
    assert_eq!(
        recorded["body"]["metadata"]["event_payload"]["delivery_id"],
        json!(delivered[0].id)
    );
    recorded["body"]["metadata"]["event_payload"]["delivery_id"] = json!(0);
    assert_eq!(action["request"], recorded);

    // Nothing was written by the preview: still one delivery, no new audit line.
    let audit = app.call("GET", "/api/audit", None, &admin).await.json;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");

    // A verdict as dispatch would give it: revoke post-slack and preview again.
    let a = app
        .call(
            "PUT",
            "/api/plugins/slack-poster/grants",
            Some(&json!({"grants": ["dm-slack"]})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    let again = app
        .call(
            "POST",
            &format!("/api/bindings/{id}/preview"),
            Some(&json!({"event_id": event_id})),
            &admin,
        )
        .await
        .json;
    let action = &again["actions"][0];
    assert_eq!(action["verdict"], "rejected", "{again:#}");
    assert!(
        action["reason"].as_str().unwrap().contains("not granted"),
        "{again:#}"
    );
    assert_eq!(action["request"], Value::Null);

    // No such event or binding.
    let a = app
        .call(
            "POST",
            &format!("/api/bindings/{id}/preview"),
            Some(&json!({"event_id": 999})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.json);
    let a = app
        .call(
            "POST",
            "/api/bindings/999/preview",
            Some(&json!({"event_id": event_id})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.json);
}

#[tokio::test]
async fn plugins_are_uploaded_granted_and_connections_switched_to_dry_run() {
    let app = App::new();
    let admin = Auth::admin();
    let dir = plugin_dir("slack-poster");
    let manifest = std::fs::read(dir.join("plugin.toml")).unwrap();
    let component = std::fs::read(dir.join("slack_poster.wasm")).unwrap();
    let boundary = "pagehook-test-boundary";
    let mut body = Vec::new();
    let mut part = |name: &str, file: Option<&str>, bytes: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    };
    part("manifest", Some("plugin.toml"), &manifest);
    part("component", Some("slack_poster.wasm"), &component);
    part("grant", None, b"post-slack");
    part("grant", None, b"dm-slack");
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let a = app
        .send(
            "POST",
            "/api/plugins/upload",
            body.clone(),
            Some(&content_type),
            &[],
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert_eq!(a.json["name"], "slack-poster");
    assert_eq!(a.json["grants"], json!(["post-slack", "dm-slack"]));
    // Again: an upgrade, recorded as one.
    let a = app
        .send(
            "POST",
            "/api/plugins/upload",
            body,
            Some(&content_type),
            &[],
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    let changes = app.call("GET", "/api/changes", None, &admin).await.json;
    assert_eq!(changes[0]["action"], "plugin.upgrade");
    assert_eq!(changes[1]["action"], "plugin.install");
    assert_eq!(changes[1]["detail"]["via"], "upload");
    // No scratch directory is left behind.
    let left: Vec<String> = std::fs::read_dir(&app.state.config.store.plugins_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| !n.starts_with(".upload")), "{left:?}");

    // Grants: a subset of what the manifest declares, nothing else.
    let a = app
        .call(
            "PUT",
            "/api/plugins/slack-poster/grants",
            Some(&json!({"grants": ["post-teams"]})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
    assert!(
        a.json["error"]
            .as_str()
            .unwrap()
            .contains("does not declare"),
        "{}",
        a.json
    );
    let a = app
        .call(
            "PUT",
            "/api/plugins/slack-poster/grants",
            Some(&json!({"grants": ["post-slack"]})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    assert_eq!(a.json["grants"], json!(["post-slack"]));
    assert_eq!(
        app.state
            .store
            .require_plugin("slack-poster")
            .await
            .unwrap()
            .grants,
        vec!["post-slack".to_owned()]
    );
    // An upgrade uploaded without grants keeps the ones it has.
    let mut bare = Vec::new();
    for (name, file, bytes) in [
        ("manifest", "plugin.toml", &manifest),
        ("component", "slack_poster.wasm", &component),
    ] {
        bare.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        bare.extend_from_slice(bytes);
        bare.extend_from_slice(b"\r\n");
    }
    bare.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let a = app
        .send(
            "POST",
            "/api/plugins/upload",
            bare,
            Some(&content_type),
            &[],
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert_eq!(
        a.json["grants"],
        json!(["post-slack"]),
        "grants kept on upgrade"
    );
    let a = app
        .call(
            "PUT",
            "/api/plugins/nope/grants",
            Some(&json!({"grants": []})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.json);

    // A part missing, or a manifest that does not parse: 400 with the reason.
    let only = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\nname = 1\r\n--{boundary}--\r\n"
    );
    let a = app
        .send(
            "POST",
            "/api/plugins/upload",
            only.into_bytes(),
            Some(&content_type),
            &[],
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
    assert!(
        a.json["error"].as_str().unwrap().contains("component"),
        "{}",
        a.json
    );

    // Connections: dry run on and off.
    let a = app
        .call(
            "POST",
            "/api/connections",
            Some(&json!({"name": "acme", "kind": "slack", "token": {"value": SLACK_TOKEN}})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    assert_eq!(a.json["dry_run"], false);
    let a = app
        .call(
            "PATCH",
            "/api/connections/acme",
            Some(&json!({"dry_run": true})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    assert_eq!(a.json["dry_run"], true);
    assert!(!a.json.to_string().contains(SLACK_TOKEN));
    let a = app
        .call(
            "PATCH",
            "/api/connections/nope",
            Some(&json!({"dry_run": true})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.json);
}

#[tokio::test]
async fn dead_letters_of_a_destination_are_retried_at_once() {
    let app = seeded(false).await;
    let admin = Auth::admin();
    let (s, eng) = bind(&app, &admin, "space:ENG", "#eng", false).await;
    assert_eq!(s, StatusCode::CREATED, "{eng}");
    let (s, ops) = bind(&app, &admin, "space:OPS", "#ops", false).await;
    assert_eq!(s, StatusCode::CREATED, "{ops}");
    event(&app, 101, "ENG").await;
    event(&app, 102, "ENG").await;
    event(&app, 202, "OPS").await;
    // The workspace goes away: its deliveries become dead letters.
    assert_eq!(
        app.call("DELETE", "/api/connections/acme", None, &admin)
            .await
            .status,
        StatusCode::OK
    );
    deliver_until(&app, |all| {
        all.len() == 3 && all.iter().all(|d| d.status.as_str() == "dead")
    })
    .await;

    // A space admin of OPS retries what is theirs only.
    let ops_admin = app.space_admin(&["OPS"]).await.auth();
    let a = app
        .call(
            "POST",
            "/api/deliveries/retry-dead",
            Some(&json!({"destination": "slack:acme/#eng"})),
            &ops_admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    assert_eq!(a.json["queued"], 0);
    let a = app
        .call(
            "POST",
            "/api/deliveries/retry-dead",
            Some(&json!({"destination": "slack:acme/#eng"})),
            &admin,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    assert_eq!(
        a.json,
        json!({"destination": "slack:acme/#eng", "queued": 2})
    );
    let pending = app
        .call(
            "GET",
            "/api/deliveries?status=pending&destination=slack:acme/%23eng",
            None,
            &admin,
        )
        .await
        .json;
    assert_eq!(pending.as_array().unwrap().len(), 2, "{pending}");
    let dead = app
        .call("GET", "/api/deliveries?status=dead", None, &admin)
        .await
        .json;
    assert_eq!(dead.as_array().unwrap().len(), 1, "{dead}");
    assert_eq!(dead[0]["destination"], "slack:acme/#ops");
}
