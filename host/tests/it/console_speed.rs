//! The console stays fast with 100,000 events stored: each page under
//! 200 ms (the median of 5 requests, in process through the router, in the
//! test profile).
//!
//! The store holds 100,000 events dispatched into 20 spaces and a small one
//! (about 5 events per page, six Confluence event names), 60,000
//! deliveries of which the oldest 3,000 were played out (sent, would-send,
//! dead) and the rest wait, an audit verdict per delivery and a failed call
//! every 50 events. The
//! pages ask for what a person would: the newest events, one space, one
//! page, one kind, one status, a filter that matches nothing, an older
//! page, a space admin's view, the deliveries by status and destination,
//! one event, the overview. Run with `--nocapture` to see the figures.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use pagehook::model::{Action, Event};
use pagehook::server::router;
use pagehook::server::session::{Principal, SpaceAdmin};
use pagehook::store::{
    AttemptResult, AuditRecord, BreakerPolicy, Claim, Dispatched, FailureRecord, NewDelivery,
    NewEvent, Outcome, PluginCall, RatePolicy,
};
use tower::ServiceExt;

use crate::common::console::ConsoleApp;

pub(crate) const EVENTS: usize = 100_000;
const SPACES: usize = 20;
/// Events with a delivery: 6 in 10.
const WITH_DELIVERY: usize = 6;
/// The oldest deliveries, played out.
const PLAYED: usize = 3_000;
/// What every page must beat.
const BUDGET: Duration = Duration::from_millis(200);
/// The admin token of the store (console_walkthrough signs in with it).
pub(crate) const ADMIN_TOKEN: &str = "console-speed-token";

const NAMES: [&str; 6] = [
    "page_created",
    "page_updated",
    "page_updated",
    "comment_created",
    "blog_created",
    "label_added",
];

const BREAKER: BreakerPolicy = BreakerPolicy {
    threshold: 1_000_000,
    cooldown_ms: 60_000,
};

/// Twenty spaces, and a small one (TINY: one event in a thousand), whose
/// events are far apart in every index but its own.
fn space(i: usize) -> String {
    if i % 1000 == 999 {
        "TINY".into()
    } else {
        format!("S{:02}", i % SPACES)
    }
}

/// Five events per page, the page in the event's space.
fn page_id(i: usize) -> u64 {
    1_000_000 + (i / (5 * SPACES) * SPACES + i % SPACES) as u64
}

fn event_of(id: i64, i: usize) -> Event {
    let name = NAMES[i % NAMES.len()];
    serde_json::from_value(serde_json::json!({
        "id": format!("e{id}"),
        "kind": name.replace('_', "-"),
        "name": name,
        "source": "wiki",
        "actor": {"key": "k1", "username": "jdoe", "display_name": "J Doe"},
        "content": {
            "id": page_id(i), "content_type": "page", "title": format!("Page {} of {}", page_id(i), space(i)),
            "space_key": space(i), "space_name": format!("Space {}", space(i)),
            "url": format!("https://wiki.example/pages/{}", page_id(i)), "version": 3,
            "labels": ["release", "team"], "ancestors": [{"id": 1, "title": "Home"}],
            "excerpt": "A short excerpt of the page, as enrichment fetches it for plugins to show."
        }
    }))
    .unwrap()
}

fn delivery_of(id: i64, i: usize, played: bool) -> NewDelivery {
    let (destination, action, lane) = if played {
        (
            "teams:alerts".to_owned(),
            Action::PostTeams {
                channel: "alerts".into(),
                card: serde_json::json!({"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": format!("event {id}")}]}),
            },
            // A lane each, so a round claims many.
            format!("teams:alerts/{id}"),
        )
    } else {
        let channel = format!("#{}", space(i).to_lowercase());
        (
            format!("slack:acme/{channel}"),
            Action::PostSlack {
                channel: channel.clone(),
                text: format!("Page {} was updated", page_id(i)),
                blocks: None,
                thread_key: None,
            },
            format!("slack:acme/{channel}"),
        )
    };
    NewDelivery {
        binding_id: 1,
        plugin: if i.is_multiple_of(2) {
            "poster"
        } else {
            "notifier"
        }
        .into(),
        destination,
        action,
        dry_run: false,
        lane,
        source: "wiki".into(),
        connection: Some("acme".into()),
    }
}

/// The console over a fresh store, filled with [`EVENTS`] events by [`App::fill`].
pub(crate) struct App(ConsoleApp);

impl std::ops::Deref for App {
    type Target = ConsoleApp;
    fn deref(&self) -> &ConsoleApp {
        &self.0
    }
}

impl App {
    pub(crate) fn new() -> App {
        App(ConsoleApp::new(ADMIN_TOKEN))
    }

    /// Stores the events, dispatches them and plays the oldest deliveries out.
    pub(crate) async fn fill(&self) {
        let store = &self.state.store;
        let ingest = &self.state.ingest;
        // Many inserts in flight, so group commit writes them 512 at a time.
        let mut ids: Vec<i64> = futures::stream::iter(0..EVENTS)
            .map(|i| async move {
                let name = NAMES[i % NAMES.len()];
                ingest
                    .insert(NewEvent {
                        key: format!("speed-{i}"),
                        source: "wiki".into(),
                        name: name.into(),
                        payload: format!(
                            r#"{{"event":"{name}","timestamp":{i},"page":{{"id":{}}}}}"#,
                            page_id(i)
                        ),
                        dispatchable: true,
                    })
                    .await
                    .unwrap()
                    .id
            })
            .buffered(4096)
            .collect()
            .await;
        ids.sort_unstable();
        assert_eq!(ids.len(), EVENTS);
        let first = ids[0];

        let claim = Claim::new("speed", 600_000);
        let mut dispatched = 0;
        let mut delivered = 0;
        loop {
            let claimed = store.claim_events(&claim, 5_000).await.unwrap();
            if claimed.is_empty() {
                break;
            }
            let batch: Vec<Dispatched> = claimed
                .iter()
                .map(|e| {
                    let i = (e.id - first) as usize;
                    let deliveries = if i % 10 < WITH_DELIVERY {
                        delivered += 1;
                        vec![delivery_of(e.id, i, delivered <= PLAYED)]
                    } else {
                        Vec::new()
                    };
                    let audit = deliveries
                        .iter()
                        .map(|d| AuditRecord {
                            at: 1,
                            event_id: e.id,
                            binding_id: 1,
                            plugin: d.plugin.clone(),
                            sha256: "ab".repeat(32),
                            kind: d.action.kind().into(),
                            destination: d.destination.clone(),
                            verdict: "accepted".into(),
                            reason: None,
                        })
                        .collect();
                    let failures = if i.is_multiple_of(50) {
                        vec![FailureRecord {
                            at: 1,
                            event_id: e.id,
                            binding_id: 2,
                            plugin: "fragile".into(),
                            code: "out-of-fuel".into(),
                            message: "the plugin ran out of fuel".into(),
                            log: String::new(),
                        }]
                    } else {
                        Vec::new()
                    };
                    Dispatched {
                        event_id: e.id,
                        event: event_of(e.id, i),
                        deliveries,
                        audit,
                        failures,
                        calls: vec![PluginCall {
                            plugin: "poster".into(),
                            succeeded: true,
                            error: None,
                        }],
                    }
                })
                .collect();
            dispatched += store
                .finish_dispatch(&claim, &batch, BREAKER)
                .await
                .unwrap();
        }
        assert_eq!(dispatched, EVENTS);

        // Play the oldest deliveries out: sent, would-send, dead in turn.
        let rates = RatePolicy::per_second(1_000_000.0, 1_000_000.0);
        let mut played = 0;
        while played < PLAYED {
            let round = store.claim_deliveries(&claim, rates, 1_000).await.unwrap();
            assert!(!round.claimed.is_empty(), "played {played} of {PLAYED}");
            let results: Vec<AttemptResult> = round
                .claimed
                .iter()
                .map(|d| AttemptResult {
                    delivery_id: d.id,
                    started_at: 2,
                    outcome: match d.id % 3 {
                        0 => Outcome::Sent {
                            result: "1700000000.000100".into(),
                            thread: None,
                        },
                        1 => Outcome::WouldSend {
                            request: serde_json::json!({"url": "https://teams.example/workflow", "body": {"event": d.event_id}}).to_string(),
                        },
                        _ => Outcome::Dead {
                            error: "the workflow answered 404".into(),
                        },
                    },
                    latency_ms: 12,
                    sent_at: None,
                })
                .collect();
            played += store.finish_attempts(&claim, &results, &[]).await.unwrap();
        }
    }

    /// The median time of 5 requests for `path` (after one to warm up).
    async fn time(&self, path: &str, cookie: &str) -> (Duration, usize) {
        let mut times = Vec::new();
        let mut size = 0;
        for round in 0..6 {
            let req = Request::builder()
                .uri(path)
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap();
            let started = Instant::now();
            let response = router(self.state.clone()).oneshot(req).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 26)
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(
                status,
                StatusCode::OK,
                "{path}: {}",
                String::from_utf8_lossy(&bytes)
            );
            size = bytes.len();
            if round > 0 {
                times.push(took);
            }
        }
        times.sort_unstable();
        (times[times.len() / 2], size)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_in_under_200_ms_with_100k_events() {
    let app = App::new();
    let started = Instant::now();
    app.fill().await;
    let setup = started.elapsed();
    eprintln!(
        "setup: {EVENTS} events, {} deliveries stored and dispatched in {:.1} s",
        EVENTS / 10 * WITH_DELIVERY,
        setup.as_secs_f64()
    );

    let admin = app.session_cookie(&Principal::Admin).await;
    let space_admin = |spaces: &[usize]| {
        Principal::SpaceAdmin(SpaceAdmin {
            source: "wiki".into(),
            user_key: "k".into(),
            username: "jdoe".into(),
            display_name: "J Doe".into(),
            spaces: spaces.iter().map(|&s| space(s)).collect(),
        })
    };
    let one_space = app.session_cookie(&space_admin(&[3])).await;
    let three_spaces = app.session_cookie(&space_admin(&[3, 7, 11])).await;
    // An event in S03 half way (ids start at 1).
    let detail = (EVENTS / 2 + 3) as i64 + 1;
    let page = page_id(EVENTS / 2);

    let pages: Vec<(String, &str, &str)> = vec![
        ("/console/events".into(), &admin, "admin"),
        ("/console/events?space=S07".into(), &admin, "admin"),
        (format!("/console/events?page={page}"), &admin, "admin"),
        ("/console/events?kind=label_added".into(), &admin, "admin"),
        ("/console/events?status=dispatched".into(), &admin, "admin"),
        ("/console/events?status=pending".into(), &admin, "admin"),
        (
            "/console/events?space=S07&kind=page_created&status=dispatched".into(),
            &admin,
            "admin",
        ),
        (
            "/console/events?space=S07&status=failed".into(),
            &admin,
            "admin",
        ),
        (
            "/console/events?space=TINY&status=dispatched".into(),
            &admin,
            "admin",
        ),
        ("/console/events?before=50000".into(), &admin, "admin"),
        (
            "/console/events?space=S07&before=20000".into(),
            &admin,
            "admin",
        ),
        ("/console/events?limit=200".into(), &admin, "admin"),
        ("/console/events".into(), &one_space, "space admin of 1"),
        ("/console/events".into(), &three_spaces, "space admin of 3"),
        (
            "/console/events?kind=page_created".into(),
            &three_spaces,
            "space admin of 3",
        ),
        (format!("/console/events/{detail}"), &admin, "admin"),
        (
            format!("/console/events/{detail}"),
            &one_space,
            "space admin of 1",
        ),
        ("/console/deliveries".into(), &admin, "admin"),
        ("/console/deliveries?status=dead".into(), &admin, "admin"),
        ("/console/deliveries?status=pending".into(), &admin, "admin"),
        (
            "/console/deliveries?destination=teams%3Aalerts".into(),
            &admin,
            "admin",
        ),
        (
            "/console/deliveries?destination=slack%3Aacme%2F%23s03&status=pending".into(),
            &admin,
            "admin",
        ),
        ("/console/deliveries?plugin=poster".into(), &admin, "admin"),
        ("/console/deliveries?before=30000".into(), &admin, "admin"),
        ("/console/deliveries?limit=200".into(), &admin, "admin"),
        ("/console/deliveries".into(), &one_space, "space admin of 1"),
        (
            "/console/deliveries?status=dead".into(),
            &three_spaces,
            "space admin of 3",
        ),
        ("/console/changes".into(), &admin, "admin"),
        ("/console/overview".into(), &admin, "admin"),
        ("/console/overview".into(), &one_space, "space admin of 1"),
    ];
    let mut slow = Vec::new();
    eprintln!("{:>9} {:>8}  page (viewer)", "median", "bytes");
    for (path, cookie, who) in &pages {
        let (median, size) = app.time(path, cookie).await;
        eprintln!(
            "{:>6.1} ms {:>8}  {path} ({who})",
            median.as_secs_f64() * 1000.0,
            size
        );
        if median >= BUDGET {
            slow.push(format!("{path} ({who}): {median:?}"));
        }
    }
    assert!(
        slow.is_empty(),
        "pages over {BUDGET:?} with {EVENTS} events: {slow:#?}"
    );
}
