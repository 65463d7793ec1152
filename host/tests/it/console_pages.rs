//! The console's Events, Deliveries and Changes pages and its live updates,
//! in process through `pagehook::server::router` on a temp SQLite store
//! holding events dispatched into spaces ENG and OPS (with audit verdicts,
//! a failed plugin call, a dry run that would send and a dead letter).
//!
//! What must hold: each page answers the admin with its heading; without a
//! session it sends the browser to sign in; a space admin sees only their
//! spaces' events and deliveries and is refused another space, another
//! space's event (403, as the API answers) and the change log; filters
//! narrow the lists; paging goes older and back to the newest; a wrong
//! query value is a 400 page that says why; whatever Confluence or a plugin wrote is shown escaped; the
//! exact request of a dry run is on the page; retries are forms for the
//! admin API; `/console/live` sends a `change` event at once and again when
//! something new is stored, resumes from the id the browser last saw, and
//! ends after a while (the browser reconnects) so that it never holds up a
//! shutdown.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use pagehook::model::{Action, Event};
use pagehook::server::router;
use pagehook::server::session::{Principal, SpaceAdmin};
use pagehook::store::{
    AttemptResult, AuditRecord, BreakerPolicy, Claim, Dispatched, FailureRecord, NewChange,
    NewDelivery, NewEvent, Outcome, PluginCall, RatePolicy, Store,
};
use tower::ServiceExt;

use crate::common::console::{ConsoleApp, Page};

const BREAKER: BreakerPolicy = BreakerPolicy {
    threshold: 3,
    cooldown_ms: 60_000,
};

/// A title a page must never render as markup.
const HOSTILE_TITLE: &str = "Release <script>alert('x')</script> & notes";

/// The console over a fresh store, with this file's sessions and events.
struct App(ConsoleApp);

impl std::ops::Deref for App {
    type Target = ConsoleApp;
    fn deref(&self) -> &ConsoleApp {
        &self.0
    }
}

impl App {
    async fn new() -> App {
        App(ConsoleApp::new("console-pages-token"))
    }

    fn store(&self) -> &Store {
        &self.state.store
    }

    /// A session cookie (`pagehook_session=...`) for `principal`.
    async fn session(&self, principal: &Principal) -> String {
        self.session_cookie(principal).await
    }

    async fn admin(&self) -> String {
        self.session(&Principal::Admin).await
    }

    async fn space_admin(&self, spaces: &[&str]) -> String {
        self.session(&Principal::SpaceAdmin(SpaceAdmin {
            source: "wiki".into(),
            user_key: "k-jdoe".into(),
            username: "jdoe".into(),
            display_name: "J Doe".into(),
            spaces: spaces.iter().map(|s| s.to_string()).collect(),
        }))
        .await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let cookies: Vec<&str> = cookie.into_iter().collect();
        self.request("GET", path, &cookies, None, &[]).await
    }

    /// `get` that must answer 200 with heading `h1`.
    async fn page(&self, path: &str, cookie: &str, h1: &str) -> Page {
        let a = self.get(path, Some(cookie)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert_eq!(a.h1(), h1, "{path}");
        a
    }

    async fn ingest(&self, key: &str, name: &str) -> i64 {
        self.state
            .ingest
            .insert(NewEvent {
                key: key.into(),
                source: "wiki".into(),
                name: name.into(),
                payload: format!(r#"{{"event":"{name}","marker":"raw-{key}"}}"#),
                dispatchable: true,
            })
            .await
            .unwrap()
            .id
    }
}

/// An event to dispatch: its Confluence name, space, page and title, and
/// whether it gets a delivery (dry run or not).
struct Fixture {
    name: &'static str,
    space: &'static str,
    page: u64,
    title: &'static str,
    delivery: Option<bool>,
}

fn enriched(id: i64, f: &Fixture) -> Event {
    serde_json::from_value(serde_json::json!({
        "id": format!("e{id}"),
        "kind": f.name.replace('_', "-"),
        "name": f.name,
        "source": "wiki",
        "content": {
            "id": f.page, "content_type": "page", "title": f.title, "space_key": f.space,
            "url": format!("https://wiki.example/pages/{}", f.page)
        }
    }))
    .unwrap()
}

fn delivery(space: &str, event: i64, dry_run: bool) -> NewDelivery {
    let channel = format!("#{}", space.to_lowercase());
    NewDelivery {
        binding_id: 1,
        plugin: if dry_run { "poster" } else { "notifier" }.into(),
        destination: format!("slack:acme/{channel}"),
        action: Action::PostSlack {
            channel: channel.clone(),
            text: format!("event {event}"),
            blocks: None,
            thread_key: None,
        },
        dry_run,
        // A lane per event, so one round claims them all.
        lane: format!("test/{event}"),
        source: "wiki".into(),
        connection: Some("acme".into()),
    }
}

/// The store of every test: five events dispatched into ENG and OPS (ids
/// 1..=5), their deliveries played out (ENG's dry runs would send, OPS's
/// die), then one event still pending (id 6).
struct Seeded {
    app: App,
    eng: Vec<i64>,
    ops: Vec<i64>,
    pending: i64,
    /// The dry run of the first ENG event, and the dead letter of the first OPS one.
    would_send: i64,
    dead: i64,
}

async fn seeded() -> Seeded {
    let app = App::new().await;
    let fixtures = [
        Fixture {
            name: "page_created",
            space: "ENG",
            page: 100,
            title: HOSTILE_TITLE,
            delivery: Some(true),
        },
        Fixture {
            name: "page_created",
            space: "OPS",
            page: 200,
            title: "Runbook",
            delivery: Some(false),
        },
        Fixture {
            name: "page_updated",
            space: "ENG",
            page: 101,
            title: "Roadmap",
            delivery: Some(true),
        },
        Fixture {
            name: "page_updated",
            space: "OPS",
            page: 200,
            title: "Runbook",
            delivery: Some(false),
        },
        Fixture {
            name: "comment_created",
            space: "ENG",
            page: 101,
            title: "Roadmap",
            delivery: None,
        },
    ];
    let mut ids = Vec::new();
    for (i, f) in fixtures.iter().enumerate() {
        ids.push(app.ingest(&format!("k{i}"), f.name).await);
    }
    let claim = Claim::new("test", 60_000);
    assert_eq!(
        app.store().claim_events(&claim, 100).await.unwrap().len(),
        5
    );
    let batch: Vec<Dispatched> = ids
        .iter()
        .zip(&fixtures)
        .map(|(&id, f)| {
            let destination = format!("slack:acme/#{}", f.space.to_lowercase());
            Dispatched {
                event_id: id,
                event: enriched(id, f),
                deliveries: f
                    .delivery
                    .map(|dry| vec![delivery(f.space, id, dry)])
                    .unwrap_or_default(),
                audit: vec![
                    AuditRecord {
                        at: 1_000,
                        event_id: id,
                        binding_id: 1,
                        plugin: "poster".into(),
                        sha256: "ab".repeat(32),
                        kind: "post-slack".into(),
                        destination: destination.clone(),
                        verdict: "accepted".into(),
                        reason: None,
                    },
                    AuditRecord {
                        at: 1_000,
                        event_id: id,
                        binding_id: 1,
                        plugin: "poster".into(),
                        sha256: "ab".repeat(32),
                        kind: "dm-slack".into(),
                        destination: "boss@example.com".into(),
                        verdict: "rejected".into(),
                        reason: Some("<b>not granted</b>: dm-slack".into()),
                    },
                ],
                failures: vec![FailureRecord {
                    at: 1_000,
                    event_id: id,
                    binding_id: 2,
                    plugin: "fragile".into(),
                    code: "out-of-fuel".into(),
                    message: "the plugin ran out of fuel".into(),
                    log: "<img src=x onerror=alert(1)>".into(),
                }],
                calls: vec![PluginCall {
                    plugin: "poster".into(),
                    succeeded: true,
                    error: None,
                }],
            }
        })
        .collect();
    assert_eq!(
        app.store()
            .finish_dispatch(&claim, &batch, BREAKER)
            .await
            .unwrap(),
        5
    );

    // Play the deliveries out: dry runs record their request, the rest die.
    // (Slack's rate keeps two messages to one channel a slot apart, so a
    // round or two more.)
    let rates = RatePolicy::per_second(1_000_000.0, 1_000_000.0);
    let mut played = 0;
    for _ in 0..100 {
        let round = app
            .store()
            .claim_deliveries(&claim, rates, 100)
            .await
            .unwrap();
        let results: Vec<AttemptResult> = round
            .claimed
            .iter()
            .map(|d| AttemptResult {
                delivery_id: d.id,
                started_at: 2_000,
                outcome: if d.dry_run {
                    Outcome::WouldSend {
                        request: serde_json::json!({
                            "url": "https://slack.com/api/chat.postMessage",
                            "body": {"channel": "#eng", "text": format!("would-send-marker {}", d.event_id)}
                        })
                        .to_string(),
                    }
                } else {
                    Outcome::Dead {
                        error: "channel_not_found <#ops>".into(),
                    }
                },
                latency_ms: 7,
                sent_at: None,
            })
            .collect();
        played += app
            .store()
            .finish_attempts(&claim, &results, &[])
            .await
            .unwrap();
        if played == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(played, 4);
    let deliveries = app.store().event_deliveries(ids[0]).await.unwrap();
    let would_send = deliveries[0].id;
    let dead = app.store().event_deliveries(ids[1]).await.unwrap()[0].id;

    let pending = app.ingest("k-pending", "page_moved").await;
    Seeded {
        app,
        eng: vec![ids[0], ids[2], ids[4]],
        ops: vec![ids[1], ids[3]],
        pending,
        would_send,
        dead,
    }
}

#[tokio::test]
async fn each_page_answers_the_admin_with_its_heading() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    s.app.page("/console/events", &admin, "Events").await;
    s.app
        .page(
            &format!("/console/events/{}", s.eng[0]),
            &admin,
            &format!("Event {}", s.eng[0]),
        )
        .await;
    s.app
        .page("/console/deliveries", &admin, "Deliveries")
        .await;
    let changes = s.app.page("/console/changes", &admin, "Changes").await;
    assert!(changes.body.contains("Nothing has been changed yet"));

    // The navigation marks the section; the lists refresh live.
    let events = s.app.page("/console/events", &admin, "Events").await;
    assert!(
        events
            .body
            .contains(r#"<a href="/console/events" aria-current="page">Events</a>"#)
    );
    assert!(events.body.contains(r#"id="events-live" data-live"#));
    assert!(events.body.contains("<label for=\"space\">Space</label>"));
    assert!(events.body.contains("<label for=\"page\">Page</label>"));
    assert!(events.body.contains("<label for=\"kind\">Kind</label>"));
    assert!(events.body.contains("<label for=\"status\">Status</label>"));
    assert!(
        events
            .body
            .contains("<button type=\"submit\">Search</button>")
    );
    assert!(events.body.contains("<option value=\"label_added\">"));
}

#[tokio::test]
async fn without_a_session_every_page_sends_the_browser_to_sign_in() {
    let s = seeded().await;
    for path in [
        "/console/events",
        "/console/events/1",
        "/console/deliveries",
        "/console/changes",
        "/console/people",
        "/console/live",
    ] {
        for cookie in [None, Some("pagehook_session=forged")] {
            let a = s.app.get(path, cookie).await;
            assert!(a.status.is_redirection(), "{path}: {}", a.status);
            assert_eq!(a.headers[header::LOCATION], "/console/sign-in", "{path}");
        }
    }
}

#[tokio::test]
async fn the_events_list_shows_newest_first_with_every_column() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    let a = s.app.page("/console/events", &admin, "Events").await;
    let mut all: Vec<i64> = s.eng.iter().chain(&s.ops).copied().collect();
    all.push(s.pending);
    all.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(a.events(), all);
    assert!(a.body.contains("comment_created"));
    assert!(
        a.body
            .contains(r#"<span class="state state-ok">dispatched</span>"#)
    );
    assert!(
        a.body
            .contains(r#"<span class="state state-warn">pending</span>"#)
    );
    assert!(a.body.contains("Roadmap"));
    assert!(a.body.contains(r#"href="/console/events?page=101""#));
    assert!(a.body.contains(r#"href="/console/events?space=OPS""#));
}

#[tokio::test]
async fn filters_narrow_the_lists() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    let events = |q: &'static str| {
        let app = &s.app;
        let admin = admin.clone();
        async move {
            app.page(&format!("/console/events{q}"), &admin, "Events")
                .await
                .events()
        }
    };
    let rev = |v: &[i64]| v.iter().rev().copied().collect::<Vec<_>>();
    assert_eq!(events("?space=ENG").await, rev(&s.eng));
    assert_eq!(events("?space=OPS&page=&kind=&status=").await, rev(&s.ops));
    assert_eq!(events("?page=101").await, vec![s.eng[2], s.eng[1]]);
    assert_eq!(events("?kind=page_updated").await, vec![s.ops[1], s.eng[1]]);
    assert_eq!(events("?status=pending").await, vec![s.pending]);
    assert_eq!(events("?space=OPS&kind=page_created").await, vec![s.ops[0]]);
    assert_eq!(events("?status=failed").await, Vec::<i64>::new());
    // The form keeps what was asked.
    let a = s
        .app
        .page(
            "/console/events?space=ENG&kind=page_updated&status=dispatched",
            &admin,
            "Events",
        )
        .await;
    assert!(a.body.contains(r#"value="ENG""#));
    assert!(a.body.contains(r#"<option value="page_updated" selected>"#));
    assert!(a.body.contains(r#"<option value="dispatched" selected>"#));

    let deliveries = |q: &'static str| {
        let app = &s.app;
        let admin = admin.clone();
        async move {
            app.page(&format!("/console/deliveries{q}"), &admin, "Deliveries")
                .await
        }
    };
    assert_eq!(deliveries("").await.delivery_rows(), 4);
    let dead = deliveries("?status=dead").await;
    assert_eq!(dead.delivery_rows(), 2);
    assert!(!dead.body.contains("<code>slack:acme/#eng</code>"));
    assert_eq!(deliveries("?status=would-send").await.delivery_rows(), 2);
    assert_eq!(
        deliveries("?destination=slack%3Aacme%2F%23ops")
            .await
            .delivery_rows(),
        2
    );
    assert_eq!(deliveries("?plugin=poster").await.delivery_rows(), 2);
    assert_eq!(deliveries("?plugin=nobody").await.delivery_rows(), 0);
    let one = s
        .app
        .page(
            &format!("/console/deliveries?event={}", s.ops[0]),
            &admin,
            "Deliveries",
        )
        .await;
    assert_eq!(one.delivery_rows(), 1);
    assert_eq!(one.linked_ids("/console/events/"), vec![s.ops[0]]);
    assert_eq!(deliveries("?status=sent").await.delivery_rows(), 0);
}

#[tokio::test]
async fn paging_goes_older_and_back_to_the_newest() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    let first = s
        .app
        .page("/console/events?limit=2", &admin, "Events")
        .await;
    assert_eq!(first.events(), vec![6, 5]);
    assert!(first.link("Newest").is_none(), "already the newest page");
    let older = first.link("Older").expect("an Older link");
    assert_eq!(older, "/console/events?limit=2&before=5");
    let second = s.app.page(&older, &admin, "Events").await;
    assert_eq!(second.events(), vec![4, 3]);
    assert!(second.body.contains("older than event 5"));
    assert_eq!(
        second.link("Newest").as_deref(),
        Some("/console/events?limit=2")
    );
    let third = s
        .app
        .page(&second.link("Older").unwrap(), &admin, "Events")
        .await;
    assert_eq!(third.events(), vec![2, 1]);
    let last = s
        .app
        .page(&third.link("Older").unwrap(), &admin, "Events")
        .await;
    assert_eq!(last.events(), Vec::<i64>::new());
    assert!(last.body.contains("No events match."));
    assert!(last.link("Older").is_none());

    // Filters travel with the pages.
    let eng = s
        .app
        .page("/console/events?space=ENG&limit=1", &admin, "Events")
        .await;
    assert_eq!(eng.events(), vec![s.eng[2]]);
    let older = eng.link("Older").unwrap();
    assert_eq!(
        older,
        format!("/console/events?space=ENG&limit=1&before={}", s.eng[2])
    );
    assert_eq!(
        s.app.page(&older, &admin, "Events").await.events(),
        vec![s.eng[1]]
    );

    // Deliveries and changes page the same way.
    let d = s
        .app
        .page("/console/deliveries?limit=3&status=", &admin, "Deliveries")
        .await;
    assert_eq!(d.delivery_rows(), 3);
    let rest = s
        .app
        .page(&d.link("Older").unwrap(), &admin, "Deliveries")
        .await;
    assert_eq!(rest.delivery_rows(), 1);
    for i in 0..3 {
        s.app
            .store()
            .record_change(&NewChange {
                actor: "admin (console)".into(),
                action: "binding.add".into(),
                target: format!("binding {i}"),
                detail: serde_json::json!({"space": "ENG", "n": i}),
            })
            .await
            .unwrap();
    }
    let c = s
        .app
        .page("/console/changes?limit=2", &admin, "Changes")
        .await;
    assert!(
        c.body.contains("binding 2")
            && c.body.contains("binding 1")
            && !c.body.contains("binding 0")
    );
    assert!(
        c.body.contains("&quot;space&quot;:&quot;ENG&quot;"),
        "{}",
        c.body
    );
    let c2 = s
        .app
        .page(&c.link("Older").unwrap(), &admin, "Changes")
        .await;
    assert!(c2.body.contains("binding 0") && !c2.body.contains("binding 1"));
}

#[tokio::test]
async fn a_wrong_query_value_is_a_400_page_that_says_why() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    for (path, why) in [
        (
            "/console/events?status=nonsense",
            "unknown event status `nonsense`",
        ),
        ("/console/events?before=abc", "`before=abc` is not a row id"),
        ("/console/events?before=-3", "`before=-3` is not a row id"),
        ("/console/events?limit=0", "`limit=0` is not a page size"),
        ("/console/events?limit=500", "from 1 to 200"),
        ("/console/events?page=abc", "`abc` is not a page id"),
        (
            "/console/events?kind=%3Cscript%3E",
            "`&lt;script&gt;` is not a Confluence event name",
        ),
        (
            "/console/events?space=ENG&space=OPS",
            "The address's query is wrong",
        ),
        ("/console/events/abc", "`abc` is not an event id"),
        (
            "/console/deliveries?status=lost",
            "unknown delivery status `lost`",
        ),
        (
            "/console/deliveries?event=x",
            "`event=x` is not an event id",
        ),
        (
            "/console/deliveries?before=1.5",
            "`before=1.5` is not a row id",
        ),
        ("/console/changes?before=zz", "`before=zz` is not a row id"),
    ] {
        let a = s.app.get(path, Some(&admin)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.body);
        assert!(a.body.contains("role=\"alert\""), "{path}");
        assert!(a.body.contains(why), "{path}: {}", a.body);
        assert!(!a.body.contains("<script>"), "{path}");
    }
    let missing = s.app.get("/console/events/999", Some(&admin)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("There is no event 999."));
}

#[tokio::test]
async fn what_confluence_and_plugins_wrote_is_shown_escaped() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    let escaped = "Release &lt;script&gt;alert('x')&lt;/script&gt; &amp; notes";
    let list = s.app.page("/console/events", &admin, "Events").await;
    assert!(list.body.contains(escaped), "{}", list.body);
    let detail = s
        .app
        .page(
            &format!("/console/events/{}", s.eng[0]),
            &admin,
            &format!("Event {}", s.eng[0]),
        )
        .await;
    assert!(detail.body.contains(escaped));
    assert!(detail.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(detail.body.contains("&lt;b&gt;not granted&lt;/b&gt;"));
    for page in [&list, &detail] {
        assert!(!page.body.contains("<script>"), "an unescaped script");
        assert!(!page.body.contains("<img"), "an unescaped image");
        assert!(!page.body.contains("<b>"), "unescaped markup");
    }
    let d = s
        .app
        .page("/console/deliveries", &admin, "Deliveries")
        .await;
    assert!(d.body.contains("channel_not_found &lt;#ops&gt;"));
}

#[tokio::test]
async fn an_event_page_shows_what_happened_to_it() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    let id = s.eng[0];
    let a = s
        .app
        .page(
            &format!("/console/events/{id}"),
            &admin,
            &format!("Event {id}"),
        )
        .await;
    // The enriched event, and for the admin the webhook as received.
    assert!(a.body.contains("id=\"enriched-event\""));
    assert!(a.body.contains("&quot;space_key&quot;: &quot;ENG&quot;"));
    assert!(a.body.contains("id=\"raw-payload\""));
    assert!(a.body.contains("raw-k0"));
    assert!(
        a.body
            .contains(r#"<a href="https://wiki.example/pages/100">"#)
    );
    // Each failed call and each verdict.
    assert!(a.body.contains("out-of-fuel"));
    assert!(a.body.contains("the plugin ran out of fuel"));
    assert!(
        a.body
            .contains(r#"<span class="state state-ok">accepted</span>"#)
    );
    assert!(
        a.body
            .contains(r#"<span class="state state-bad">rejected</span>"#)
    );
    assert!(a.body.contains("boss@example.com"));
    // Its delivery: a dry run, with the exact request, live.
    assert!(a.body.contains(r#"id="event-deliveries" data-live"#));
    assert!(
        a.body
            .contains(&format!("id=\"would-send-{}\"", s.would_send))
    );
    assert!(a.body.contains("would-send-marker"));
    assert!(
        a.body
            .contains("&quot;url&quot;: &quot;https://slack.com/api/chat.postMessage&quot;")
    );
    assert!(
        a.body
            .contains(r#"<span class="state state-ok">would-send</span>"#)
    );
    assert!(a.body.contains("<summary>Attempts (1)</summary>"));
    // A dry-run binding's would-send row is not retried (it would only be recorded again).
    assert!(!a.body.contains(&format!(
        r#"data-path="/api/deliveries/{}/retry""#,
        s.would_send
    )));
    assert!(
        a.body
            .contains("Dry-run binding: recorded, never sent; nothing to retry.")
    );

    // An event not dispatched yet has no enriched form and no deliveries.
    let p = s
        .app
        .page(
            &format!("/console/events/{}", s.pending),
            &admin,
            &format!("Event {}", s.pending),
        )
        .await;
    assert!(p.body.contains("Not enriched yet"));
    assert!(p.body.contains("No deliveries."));
}

#[tokio::test]
async fn the_deliveries_page_offers_attempts_and_retries() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    let a = s
        .app
        .page("/console/deliveries", &admin, "Deliveries")
        .await;
    assert!(a.body.contains(r#"id="deliveries-live" data-live"#));
    assert!(a.body.contains(r#"id="deliveries-table""#));
    assert!(a.body.contains("4 deliveries, newest first."));
    assert!(
        a.body
            .contains(r#"<span class="state state-bad">dead</span>"#)
    );
    let retry = format!(
        r#"<form class="inline" data-method="POST" data-path="/api/deliveries/{}/retry" data-then="call:row-retry"><button type="submit" class="secondary">Retry</button></form>"#,
        s.dead
    );
    assert!(a.body.contains(&retry), "{}", a.body);
    // Dead letters can be retried; a dry-run binding's would-send rows say why not.
    assert_eq!(a.body.matches(">Retry</button>").count(), 2);
    assert_eq!(
        a.body
            .matches("Dry-run binding: recorded, never sent; nothing to retry.")
            .count(),
        2
    );
    // Each message is folded under its row, its request behind a closed toggle.
    assert_eq!(
        a.body
            .matches(r#"<details class="delivery-message"><summary>Show message"#)
            .count(),
        4
    );
    assert!(!a.body.contains("<details open"));
    // Every attempt, with its outcome, latency and error.
    assert_eq!(a.body.matches("<summary>Attempts (1)</summary>").count(), 4);
    assert!(a.body.contains("<td>dead</td><td class=\"num\">7 ms</td>"));
    // The request a dry run would send.
    assert!(
        a.body
            .contains(&format!("id=\"would-send-{}\"", s.would_send))
    );
    // Retry all dead letters of a destination.
    assert!(a.body.contains(
        r#"data-method="POST" data-path="/api/deliveries/retry-dead" data-then="reload""#
    ));
    assert!(
        a.body
            .contains(r#"<label for="retry-destination">Destination</label>"#)
    );
    assert!(
        a.body
            .contains(r#"id="retry-destination" name="destination""#)
    );
    assert!(
        a.body
            .contains("<button type=\"submit\">Retry all</button>")
    );
    for label in ["Status", "Destination", "Plugin", "Event"] {
        let id = label.to_lowercase();
        assert!(
            a.body
                .contains(&format!("<label for=\"{id}\">{label}</label>")),
            "{label}"
        );
    }
    assert!(a.body.contains("<button type=\"submit\">Filter</button>"));
    // A pending delivery offers no retry.
    let pending = s
        .app
        .page("/console/deliveries?status=pending", &admin, "Deliveries")
        .await;
    assert!(pending.body.contains("No deliveries match."));
}

#[tokio::test]
async fn a_space_admin_sees_only_their_spaces() {
    let s = seeded().await;
    let eng = s.app.space_admin(&["ENG"]).await;
    let a = s.app.page("/console/events", &eng, "Events").await;
    assert_eq!(a.events(), s.eng.iter().rev().copied().collect::<Vec<_>>());
    // Their spaces are a select, not a free text.
    assert!(a.body.contains(r#"<select id="space" name="space">"#));
    assert!(a.body.contains("All my spaces"));
    assert_eq!(
        s.app
            .page("/console/events?space=ENG", &eng, "Events")
            .await
            .events()
            .len(),
        3
    );
    assert!(
        s.app
            .page("/console/events?status=pending", &eng, "Events")
            .await
            .events()
            .is_empty(),
        "a pending event is in no space yet"
    );

    // Another space, another space's event, the change log: refused.
    let other = s.app.get("/console/events?space=OPS", Some(&eng)).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(other.body.contains("You do not administer space OPS"));
    let changes = s.app.get("/console/changes", Some(&eng)).await;
    assert_eq!(changes.status, StatusCode::FORBIDDEN);
    assert!(changes.body.contains("Only the Pagehook admin"));
    let people = s.app.get("/console/people", Some(&eng)).await;
    assert_eq!(people.status, StatusCode::FORBIDDEN);
    assert!(
        people
            .body
            .contains("Only the Pagehook admin may see people's links")
    );
    let ops = s
        .app
        .get(&format!("/console/events/{}", s.ops[0]), Some(&eng))
        .await;
    assert_eq!(ops.status, StatusCode::FORBIDDEN);
    assert!(ops.body.contains("You do not administer space OPS"));
    assert!(
        !ops.body.contains("Runbook"),
        "nothing of the event is shown"
    );
    let pending = s
        .app
        .get(&format!("/console/events/{}", s.pending), Some(&eng))
        .await;
    assert_eq!(pending.status, StatusCode::FORBIDDEN);
    assert!(
        pending
            .body
            .contains("its space is known once it is dispatched")
    );
    let missing = s.app.get("/console/events/999", Some(&eng)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Their own event, without the raw webhook.
    let own = s
        .app
        .page(
            &format!("/console/events/{}", s.eng[0]),
            &eng,
            &format!("Event {}", s.eng[0]),
        )
        .await;
    assert!(own.body.contains("id=\"enriched-event\""));
    assert!(!own.body.contains("id=\"raw-payload\""));

    // Deliveries: only ENG's, whatever the filters say.
    let d = s.app.page("/console/deliveries", &eng, "Deliveries").await;
    assert_eq!(d.delivery_rows(), 2);
    assert!(!d.body.contains("slack:acme/#ops"));
    assert!(d.body.contains("(of your spaces)"));
    let ops = s
        .app
        .page(
            "/console/deliveries?destination=slack:acme/%23ops",
            &eng,
            "Deliveries",
        )
        .await;
    assert_eq!(ops.delivery_rows(), 0);
    let by_event = s
        .app
        .page(
            &format!("/console/deliveries?event={}", s.ops[0]),
            &eng,
            "Deliveries",
        )
        .await;
    assert_eq!(by_event.delivery_rows(), 0);

    // A space admin of no space sees nothing.
    let nobody = s.app.space_admin(&[]).await;
    assert!(
        s.app
            .page("/console/events", &nobody, "Events")
            .await
            .events()
            .is_empty()
    );
    assert_eq!(
        s.app
            .page("/console/deliveries", &nobody, "Deliveries")
            .await
            .delivery_rows(),
        0
    );
}

/// A `/console/live` stream's body (after checking it is one).
async fn live(app: &App, cookie: &str, last_event_id: Option<&str>) -> axum::body::BodyDataStream {
    let mut req = Request::builder()
        .uri("/console/live")
        .header(header::COOKIE, cookie);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let response = router(app.state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    response.into_body().into_data_stream()
}

/// The next `change` message within `wait`: its id and its data.
async fn next_change(
    body: &mut axum::body::BodyDataStream,
    wait: Duration,
) -> Option<(String, serde_json::Value)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut text = String::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .ok()?
            .expect("the stream goes on")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if let Some(i) = text.find("event: change\n") {
            let rest = &text[i..];
            if let Some(end) = rest.find("\n\n") {
                let field = |name: &str| {
                    rest[..end]
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .unwrap_or_else(|| panic!("no {name} in {rest}"))
                        .to_owned()
                };
                assert_eq!(field("retry: "), "1000");
                return Some((
                    field("id: "),
                    serde_json::from_str(&field("data: ")).unwrap(),
                ));
            }
        }
    }
}

#[tokio::test]
async fn live_sends_a_change_at_once_and_when_something_new_is_stored() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    let mut body = live(&s.app, &admin, None).await;
    let wait = Duration::from_secs(5);
    let (id, first) = next_change(&mut body, wait)
        .await
        .expect("a change at once");
    assert_eq!(first["event"], s.pending);
    assert_eq!(first["delivery"], 4);
    assert_eq!(first["attempt"], 4);
    assert_eq!(first["pending_events"], 1);
    assert_eq!(id, format!("{}.4.4.1.0", s.pending));

    let newer = s.app.ingest("k-live", "page_created").await;
    let (id, second) = next_change(&mut body, wait).await.expect("a change");
    assert_eq!(second["event"], newer);
    assert_eq!(second["pending_events"], 2);
    drop(body);

    // The browser connects again with the last id it saw: nothing new, no
    // change at connect; then the next news.
    let mut again = live(&s.app, &admin, Some(&id)).await;
    assert!(
        next_change(&mut again, Duration::from_millis(2_500))
            .await
            .is_none(),
        "no change since {id}"
    );
    let newest = s.app.ingest("k-live-2", "page_created").await;
    let (_, third) = next_change(&mut again, wait).await.expect("a change");
    assert_eq!(third["event"], newest);

    // An id that is not ours is ignored: a change at connect.
    let mut odd = live(&s.app, &admin, Some("junk")).await;
    assert!(next_change(&mut odd, wait).await.is_some());
}

#[tokio::test]
async fn a_live_stream_ends_so_that_it_never_holds_up_a_shutdown() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    let started = tokio::time::Instant::now();
    let mut body = live(&s.app, &admin, None).await;
    // (The browser connects again by itself, a second later.)
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while body.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream still runs after 30 s");
    assert!(started.elapsed() >= Duration::from_secs(19));
}

#[tokio::test]
async fn the_retry_forms_reach_the_admin_api_and_the_list_shows_it() {
    let s = seeded().await;
    let admin = s.app.admin().await;
    let page = s
        .app
        .page("/console/deliveries", &admin, "Deliveries")
        .await;
    let csrf = {
        let marker = r#"<meta name="csrf-token" content=""#;
        let i = page.body.find(marker).unwrap() + marker.len();
        page.body[i..i + page.body[i..].find('"').unwrap()].to_owned()
    };
    // What console.js does with a form: its data-path, a JSON body of its
    // fields, the session cookie and the CSRF token.
    let post = |path: String, body: &'static str| {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header(header::COOKIE, &admin)
            .header("x-csrf-token", &csrf)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        router(s.app.state.clone()).oneshot(req)
    };
    let path = format!("/api/deliveries/{}/retry", s.dead);
    assert!(page.body.contains(&format!("data-path=\"{path}\"")));
    let answer = post(path, "{}").await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let dead = s
        .app
        .page("/console/deliveries?status=dead", &admin, "Deliveries")
        .await;
    assert_eq!(dead.delivery_rows(), 1);

    let answer = post(
        "/api/deliveries/retry-dead".into(),
        r#"{"destination":"slack:acme/#ops"}"#,
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let dead = s
        .app
        .page("/console/deliveries?status=dead", &admin, "Deliveries")
        .await;
    assert_eq!(dead.delivery_rows(), 0);
    let pending = s
        .app
        .page("/console/deliveries?status=pending", &admin, "Deliveries")
        .await;
    assert_eq!(pending.delivery_rows(), 2);
    assert!(
        pending.body.contains("<summary>Attempts (1)</summary>"),
        "the attempts stay"
    );

    // Both retries are in the change log.
    let changes = s.app.page("/console/changes", &admin, "Changes").await;
    assert!(changes.body.contains("<code>delivery.retry</code>"));
    assert!(changes.body.contains("<code>delivery.retry-dead</code>"));
}
