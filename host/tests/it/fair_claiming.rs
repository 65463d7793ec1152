//! Fair claiming and no collapse under backlog (issue 25), on both backends
//! and end to end.
//!
//! A delivery round looks at the head of every lane, not at a window of the
//! oldest rows, so one lane's backlog never hides another lane's head; and a
//! lane with a backlog takes several of its next deliveries per round, in
//! its order, as far as its rate allows. The store tests run on the embedded
//! SQLite file and on a real PostgreSQL server (the store suite's harness);
//! the import test runs `pagehook serve` against a fake Slack that keeps
//! Slack's per-channel posting rate.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagehook::model::{Action, Event, EventKind};
use pagehook::store::claims::{Finished, GoOn};
use pagehook::store::ingest::Ingest;
use pagehook::store::{
    AttemptResult, BreakerPolicy, Claim, Claimed, DeliveryRound, Dispatched, NewDelivery, NewEvent,
    Outcome, RatePolicy, Store,
};
use tokio::sync::Notify;

use crate::common::sidecar::{HOOK_SECRET, Sidecar};
use pagehook_fakes::{FakeSlack, Fault};

/// Defines each test once per backend, as the store suite does.
macro_rules! both_backends {
    ($( async fn $name:ident($store:ident: &Store) $body:block )*) => {
        $( async fn $name($store: &Store) $body )*
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fresh = crate::store_suite::sqlite().await;
                    super::$name(&fresh.store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fresh = crate::store_suite::postgres().await;
                    super::$name(&fresh.store).await;
                }
            )*
        }
    };
}

const BREAKER: BreakerPolicy = BreakerPolicy {
    threshold: 3,
    cooldown_ms: 60_000,
};

/// A Slack post to `channel` (no thread: the channel is the lane) whose text
/// names its place: `<lane>:<n>`.
fn post(channel: &str, n: usize) -> NewDelivery {
    let lane = format!("slack:acme/{channel}");
    NewDelivery {
        binding_id: 1,
        plugin: "poster".into(),
        destination: format!("slack:acme/#{channel}"),
        action: Action::PostSlack {
            channel: format!("#{channel}"),
            text: format!("{lane}:{n}"),
            blocks: None,
            thread_key: None,
        },
        dry_run: false,
        lane,
        source: "prod".into(),
        connection: Some("acme".into()),
    }
}

/// A Teams card for the channel `channel` (its own lane).
fn card(channel: &str, n: usize) -> NewDelivery {
    NewDelivery {
        binding_id: 1,
        plugin: "poster".into(),
        destination: format!("teams:{channel}"),
        action: Action::PostTeams {
            channel: channel.into(),
            card: serde_json::json!({"n": n}),
        },
        dry_run: false,
        lane: format!("teams:{channel}"),
        source: "prod".into(),
        connection: None,
    }
}

/// Event keys, distinct across `queue` calls.
static KEYS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Stores one event per entry and dispatches it into its deliveries (ids
/// follow the order given); returns the events' ids.
async fn queue(store: &Store, per_event: Vec<Vec<NewDelivery>>) -> Vec<i64> {
    let ingest = Ingest::start(store, Arc::new(Notify::new())).unwrap();
    let mut ids = Vec::new();
    for _ in 0..per_event.len() {
        let event = NewEvent {
            key: format!(
                "fair-{}",
                KEYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            source: "prod".into(),
            name: "page_created".into(),
            payload: r#"{"event":"page_created"}"#.into(),
            dispatchable: true,
        };
        ids.push(ingest.insert(event).await.unwrap().id);
    }
    let claim = Claim::new("dispatcher", 60_000);
    assert_eq!(
        store.claim_events(&claim, 10_000).await.unwrap().len(),
        ids.len()
    );
    let batch: Vec<Dispatched> = ids
        .iter()
        .zip(per_event)
        .map(|(&id, deliveries)| Dispatched {
            event_id: id,
            event: Event {
                id: format!("e{id}"),
                kind: EventKind::PageCreated,
                name: "page_created".into(),
                occurred_at_ms: 0,
                source: "prod".into(),
                actor: None,
                by_pagehook: false,
                content: None,
                update_trigger: None,
                label: None,
                enriched: true,
                people: vec![],
                chat: None,
            },
            deliveries,
            audit: vec![],
            failures: vec![],
            calls: vec![],
        })
        .collect();
    assert_eq!(
        store
            .finish_dispatch(&claim, &batch, BREAKER)
            .await
            .unwrap(),
        ids.len()
    );
    ids
}

/// What a claimed delivery says its place is (`<lane>:<n>`), Slack or Teams.
fn place(d: &Claimed) -> String {
    match &d.action {
        Action::PostSlack { text, .. } => text.clone(),
        Action::PostTeams { card, .. } => format!("{}:{}", d.lane, card["n"]),
        other => panic!("{other:?}"),
    }
}

/// Each lane of a round and the places it took, in order.
fn by_lane(round: &DeliveryRound) -> BTreeMap<String, Vec<String>> {
    round
        .lanes()
        .into_iter()
        .map(|lane| (lane[0].lane.clone(), lane.iter().map(place).collect()))
        .collect()
}

fn sent(d: &Claimed) -> AttemptResult {
    AttemptResult {
        delivery_id: d.id,
        started_at: 1,
        outcome: Outcome::Sent {
            result: "1.0001".into(),
            thread: None,
        },
        latency_ms: 1,
        sent_at: None,
    }
}

/// No rate worth the name.
fn fast() -> RatePolicy {
    RatePolicy::per_second(1_000_000.0, 1_000_000.0)
}

both_backends! {
    async fn every_lanes_head_goes_in_its_next_round_with_100000_queued(store: &Store) {
        // 99,000 deliveries for #c0..#c9 first, then 1,000 for #c10..#c49:
        // the oldest 500 rows are all in the first ten lanes.
        let mut events = Vec::new();
        let mut next = vec![0usize; 50];
        let mut add = |lane: usize, into: &mut Vec<NewDelivery>| {
            into.push(post(&format!("c{lane}"), next[lane]));
            next[lane] += 1;
        };
        for _ in 0..20 {
            let mut deliveries = Vec::new();
            for i in 0..4_950 {
                add(i % 10, &mut deliveries);
            }
            events.push(deliveries);
        }
        for _ in 0..2 {
            let mut deliveries = Vec::new();
            for i in 0..500 {
                add(10 + i % 40, &mut deliveries);
            }
            events.push(deliveries);
        }
        assert_eq!(next.iter().sum::<usize>(), 100_000);
        queue(store, events).await;

        // Slack's own rate: one message a second per channel.
        let slack = RatePolicy::per_second(1.0, 100_000.0);
        let claim = Claim::new("r", 60_000);
        let started = Instant::now();
        let round = store.claim_deliveries(&claim, slack, 64).await.unwrap();
        let took = started.elapsed();
        eprintln!("a round over 100,000 queued in 50 lanes took {took:?}");
        let heads = by_lane(&round);
        assert_eq!(heads.len(), 50, "every lane's head: {:?}", heads.keys());
        for (lane, places) in &heads {
            assert_eq!(places, &[format!("{lane}:0")], "the lane's head, alone (one a second)");
        }
        assert!(!round.more_lanes);
        assert!(took < Duration::from_secs(2), "a round over 100,000 queued took {took:?}");
        let wait = round.wait_ms.expect("the next messages are a second away");
        assert!((1..=750).contains(&wait), "{wait}");

        let results: Vec<AttemptResult> = round.claimed.iter().map(sent).collect();
        assert_eq!(store.finish_attempts(&claim, &results, &[]).await.unwrap(), 50);
        tokio::time::sleep(Duration::from_millis(wait as u64 + 20)).await;
        let claim = Claim::new("r", 60_000);
        let round = store.claim_deliveries(&claim, slack, 64).await.unwrap();
        let heads = by_lane(&round);
        assert_eq!(heads.len(), 50, "every lane again: {:?}", heads.keys());
        for (lane, places) in &heads {
            assert_eq!(places, &[format!("{lane}:1")]);
        }
    }

    async fn a_lane_with_a_backlog_sends_several_per_round_in_its_order(store: &Store) {
        let eng: Vec<NewDelivery> = (0..100).map(|n| post("eng", n)).collect();
        let news: Vec<NewDelivery> = (0..3).map(|n| card("news", n)).collect();
        queue(store, vec![eng, news]).await;
        for round_no in 0..2 {
            let claim = Claim::new("r", 60_000);
            let round = store.claim_deliveries(&claim, fast(), 64).await.unwrap();
            let lanes = by_lane(&round);
            let from = round_no * 32;
            let eng: Vec<String> = (from..from + 32).map(|n| format!("slack:acme/eng:{n}")).collect();
            assert_eq!(lanes["slack:acme/eng"], eng, "a Slack lane: up to 32, in order");
            assert_eq!(
                lanes["teams:news"],
                [format!("teams:news:{round_no}")],
                "a Teams lane: one at a time"
            );
            let results: Vec<AttemptResult> = round.claimed.iter().map(sent).collect();
            assert_eq!(store.finish_attempts(&claim, &results, &[]).await.unwrap(), 33);
        }
    }

    async fn a_finished_lane_gives_back_what_it_did_not_attempt(store: &Store) {
        queue(store, vec![(0..5).map(|n| post("eng", n)).collect()]).await;
        let claim = Claim::new("r", 60_000);
        let round = store.claim_deliveries(&claim, fast(), 64).await.unwrap();
        assert_eq!(round.claimed.len(), 5);
        // The first goes, the second must be tried again shortly: the lane
        // stops there and the last three were never attempted.
        let soon = pagehook::store::now_ms() + 300;
        let results = [
            sent(&round.claimed[0]),
            AttemptResult {
                outcome: Outcome::Retry { error: "HTTP 503".into(), at: soon, uncertain: false },
                ..sent(&round.claimed[1])
            },
        ];
        assert_eq!(store.finish_attempts(&claim, &results, &[]).await.unwrap(), 2);
        let other = Claim::new("other", 60_000);
        let waiting = store.claim_deliveries(&other, fast(), 64).await.unwrap();
        assert!(waiting.claimed.is_empty(), "the lane waits for its head's retry: {waiting:?}");
        assert!(waiting.wait_ms.is_some_and(|w| w <= 300), "{waiting:?}");
        tokio::time::sleep(Duration::from_millis(320)).await;
        let round = store.claim_deliveries(&other, fast(), 64).await.unwrap();
        let places: Vec<String> = round.claimed.iter().map(place).collect();
        assert_eq!(places, (1..5).map(|n| format!("slack:acme/eng:{n}")).collect::<Vec<_>>());
        assert!(
            round.claimed.iter().all(|d| !d.uncertain),
            "never sent, so nothing to look for: {round:?}"
        );
        assert_eq!(store.attempts(round.claimed[0].id).await.unwrap().len(), 1);
        assert!(store.attempts(round.claimed[1].id).await.unwrap().is_empty());
    }

    async fn a_lane_that_went_through_takes_what_follows_in_the_commit_that_records_it(store: &Store) {
        let eng: Vec<NewDelivery> = (0..70).map(|n| post("eng", n)).collect();
        let news: Vec<NewDelivery> = (0..2).map(|n| card("news", n)).collect();
        queue(store, vec![eng, news]).await;
        let claim = Claim::new("r", 60_000);
        let round = store.claim_deliveries(&claim, fast(), 64).await.unwrap();
        assert_eq!(round.claimed.len(), 33, "32 of #eng and the first card");
        let mut held = round.claimed;
        let expected = [
            // Each step: what each lane takes next, in order; a lane that
            // finds nothing is let go.
            (33, vec![("slack:acme/eng", 32..64), ("teams:news", 1..2)]),
            (33, vec![("slack:acme/eng", 64..70)]),
            (6, vec![]),
        ];
        for (recorded, next) in expected {
            let results: Vec<AttemptResult> = held.iter().map(sent).collect();
            let go_on: Vec<GoOn> = held
                .chunk_by(|a, b| a.lane == b.lane)
                .map(|lane| {
                    let last = lane.last().unwrap();
                    GoOn { lane: last.lane.clone(), after: (last.event_id, last.id) }
                })
                .collect();
            let finished = store.finish_and_go_on(&claim, &results, &[], &go_on).await.unwrap();
            assert_eq!(finished.recorded, recorded);
            let want: Vec<String> = next
                .iter()
                .flat_map(|(lane, places)| places.clone().map(move |n| format!("{lane}:{n}")))
                .collect();
            assert_eq!(finished.next.iter().map(place).collect::<Vec<_>>(), want);
            assert!(finished.next.iter().all(|d| !d.uncertain), "never sent before");
            // While a lane goes on, no other claim takes it.
            let other = Claim::new("other", 60_000);
            let round = store.claim_deliveries(&other, fast(), 64).await.unwrap();
            assert!(round.claimed.is_empty(), "held by the lanes going on: {round:?}");
            held = finished.next;
        }
        // Every lane was let go at the end: new work on both is claimed at once.
        queue(store, vec![vec![post("eng", 70), card("news", 2)]]).await;
        let other = Claim::new("other", 60_000);
        let round = store.claim_deliveries(&other, fast(), 64).await.unwrap();
        assert_eq!(
            round.claimed.iter().map(place).collect::<BTreeSet<_>>(),
            BTreeSet::from(["slack:acme/eng:70".to_owned(), "teams:news:2".to_owned()])
        );
    }

    async fn a_lane_goes_on_only_while_its_claim_still_holds_it(store: &Store) {
        queue(store, vec![(0..40).map(|n| post("eng", n)).collect()]).await;
        // A claim whose lease ends before it records: another round takes
        // the lane over; the late record writes nothing and takes nothing.
        let late = Claim::new("late", 1);
        let round = store.claim_deliveries(&late, fast(), 64).await.unwrap();
        assert_eq!(round.claimed.len(), 32);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let heir = Claim::new("heir", 60_000);
        let taken = store.claim_deliveries(&heir, fast(), 64).await.unwrap();
        assert_eq!(taken.claimed.len(), 32);
        assert!(taken.claimed.iter().all(|d| d.uncertain), "the late claim may have sent them");
        let last = round.claimed.last().unwrap();
        let go_on = [GoOn { lane: last.lane.clone(), after: (last.event_id, last.id) }];
        let results: Vec<AttemptResult> = round.claimed.iter().map(sent).collect();
        let finished = store.finish_and_go_on(&late, &results, &[], &go_on).await.unwrap();
        assert_eq!(finished, Finished::default(), "nothing recorded, nothing taken");

        // The heir's record goes on: it takes the rest.
        let last = taken.claimed.last().unwrap();
        let go_on = [GoOn { lane: last.lane.clone(), after: (last.event_id, last.id) }];
        let results: Vec<AttemptResult> = taken.claimed.iter().map(sent).collect();
        let finished = store.finish_and_go_on(&heir, &results, &[], &go_on).await.unwrap();
        assert_eq!(finished.recorded, 32);
        let places: Vec<String> = finished.next.iter().map(place).collect();
        assert_eq!(places, (32..40).map(|n| format!("slack:acme/eng:{n}")).collect::<Vec<_>>());
    }

    async fn a_round_looks_at_a_bounded_number_of_lanes_and_the_next_goes_on(store: &Store) {
        let lanes = pagehook::store::claims::LANES_LOOKED_AT + 100;
        queue(store, vec![(0..lanes).map(|n| card(&format!("t{n:05}"), 0)).collect()]).await;
        let first = Claim::new("r", 60_000);
        let round = store.claim_deliveries(&first, fast(), 100_000).await.unwrap();
        assert_eq!(round.claimed.len(), pagehook::store::claims::LANES_LOOKED_AT);
        assert!(round.more_lanes);
        let mut taken: HashSet<String> = round.claimed.iter().map(|d| d.lane.clone()).collect();
        let second = Claim::new("r", 60_000);
        let round = store.claim_deliveries(&second, fast(), 100_000).await.unwrap();
        assert_eq!(round.claimed.len(), 100, "the lanes the first round did not look at");
        for d in &round.claimed {
            assert!(taken.insert(d.lane.clone()), "{} taken twice", d.lane);
        }
        assert_eq!(taken.len(), lanes);
    }
}

/// A rich `page_created` webhook for page `n` in `space` (a webhook-only
/// source: no enrichment round trip).
fn page_created(n: u64, space: &str) -> Vec<u8> {
    format!(
        r#"{{"timestamp":{},"event":"page_created","userKey":"8a7f80839e460b0f019e460ba6440001","page":{{"id":{},"title":"Imported page {n}","spaceKey":"{space}","self":"https://wiki.example.com/pages/{n}","version":1}}}}"#,
        1_768_000_000_000u64 + n,
        4_000_000 + n
    )
    .into_bytes()
}

/// `pagehook serve` with `delivery` settings, a webhook-only source `wiki`,
/// the fake Slack as workspace `acme` and slack-poster bound, one post per
/// event (digests off: issue 25's other half), for each `(space, channel)`.
fn bound_to_slack(
    slack: &FakeSlack,
    bot: &str,
    delivery: &str,
    bindings: &[(&str, &str)],
) -> Sidecar {
    let mut side = Sidecar::with_delivery(delivery);
    side.connect_webhook_only("wiki");
    side.connect_slack("acme", &slack.base_url(), bot);
    for (space, channel) in bindings {
        let scope = format!("space:{space}");
        side.bind_slack_poster(channel, &["--scope", &scope, "--digest", "off"]);
    }
    side.start();
    side
}

/// The scenario of issue 25: someone imports 600 pages into ENG (bound to
/// #eng), then a page is created in OPS (bound to #ops). Slack lets #eng
/// drain at about a message a second (the fake refuses faster posting per
/// channel, as Slack does); #ops's post must not wait behind #eng's queue.
#[test]
fn an_import_into_one_channel_does_not_hold_back_another() {
    const BOT: &str = "xoxb-import";
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    slack.add_channel("ops", "C0OPS00001", true);
    // About one a second per channel; Slack allows short bursts, the fake
    // three posts in any two seconds.
    slack.limit_posts_per_channel(3, Duration::from_secs(2));
    let mut side = bound_to_slack(&slack, BOT, "", &[("ENG", "eng"), ("OPS", "ops")]);
    for n in 0..600 {
        let (status, _) = side.hook("wiki", &page_created(n, "ENG"), Some(HOOK_SECRET));
        assert_eq!(status, 202);
    }
    let sent = Instant::now();
    let (status, _) = side.hook("wiki", &page_created(600, "OPS"), Some(HOOK_SECRET));
    assert_eq!(status, 202);
    let deadline = sent + Duration::from_secs(10);
    let ops = loop {
        if let Some(p) = slack
            .posts()
            .into_iter()
            .find(|p| p.channel == "C0OPS00001")
        {
            break p;
        }
        assert!(Instant::now() < deadline, "#ops got nothing within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    };
    let waited = ops.received_at.saturating_duration_since(sent);
    let eng = slack
        .posts()
        .iter()
        .filter(|p| p.channel == "C0ENG00001")
        .count();
    side.kill();
    eprintln!("#ops posted {waited:?} after its event; #eng had {eng} of its 600 then");
    assert!(
        waited <= Duration::from_secs(2),
        "#ops posted {waited:?} after its event, with {eng} of #eng's 600 posted"
    );
    assert!(eng < 600, "#eng is still draining at Slack's pace: {eng}");
    assert_eq!(
        slack.rate_limited_posts(),
        0,
        "Pagehook keeps Slack's per-channel rate"
    );
}

/// Edit `version` of one page in ENG (every edit threads under the page's
/// first message: one lane).
fn page_edited(version: u64) -> Vec<u8> {
    format!(
        r#"{{"timestamp":{},"event":"page_updated","userKey":"8a7f80839e460b0f019e460ba6440001","page":{{"id":4100000,"title":"Busy page","spaceKey":"ENG","self":"https://wiki.example.com/pages/4100000","version":{version}}}}}"#,
        1_768_000_000_000u64 + version,
    )
    .into_bytes()
}

/// A thread with a backlog and Slack's rates raised (so no rate paces the
/// lane): the lane goes on from record to record, reading its thread once
/// per batch. Every edit is posted once, in order, into the page's thread,
/// through a SIGKILL in the middle of it.
#[test]
fn a_thread_with_a_backlog_goes_on_in_order_into_its_thread_through_a_kill() {
    const BOT: &str = "xoxb-thread";
    const EDITS: u64 = 120;
    let slack = FakeSlack::start(BOT);
    slack.add_channel("eng", "C0ENG00001", true);
    // Slack answers the first 40 posts slowly, so the edits queue up behind
    // them: the lane has a backlog, and the kill finds a batch in flight.
    for _ in 0..40 {
        slack.inject("chat.postMessage", Fault::Delay(Duration::from_millis(50)));
    }
    let mut side = bound_to_slack(
        &slack,
        BOT,
        "slack-channel-rate = 5000.0\nslack-workspace-rate = 5000.0\njitter = 0.0\n",
        &[("ENG", "eng")],
    );
    let mut events = Vec::new();
    for version in 1..=EDITS {
        let (status, body) = side.hook("wiki", &page_edited(version), Some(HOOK_SECRET));
        assert_eq!(status, 202);
        events.push(body["id"].as_i64().unwrap());
        if version == EDITS / 2 {
            // Kill it while the lane is busy, once some are posted.
            side.wait_until("a few posts", Duration::from_secs(20), || {
                (slack.posts().len() >= 10).then_some(())
            });
            side.kill();
            side.start();
        }
    }
    side.wait_until("every edit posted", Duration::from_secs(60), || {
        (slack.posts().len() >= EDITS as usize).then_some(())
    });
    // A moment more: nothing is posted twice.
    std::thread::sleep(Duration::from_millis(500));
    let posts = slack.posts();
    side.kill();
    let looked_for = slack.calls("conversations.replies");
    eprintln!(
        "{} posts; after the kill the thread was read {looked_for} times for messages that may have gone",
        posts.len()
    );
    assert!(
        looked_for > 0,
        "the kill came while a batch was being sent (40 slow answers): what it held is looked for in the thread before it is sent again"
    );
    let order: Vec<i64> = posts
        .iter()
        .map(|p| {
            p.metadata.as_ref().unwrap()["event_payload"]["event_id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(order, events, "each edit once, in the edits' order");
    let root = &posts[0];
    assert_eq!(root.thread_ts, None, "the first starts the page's thread");
    for p in &posts[1..] {
        assert_eq!(
            p.thread_ts.as_deref(),
            Some(root.ts.as_str()),
            "a reply in the thread"
        );
    }
}
