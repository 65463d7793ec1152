//! Cluster mode end to end: several `pagehook serve` replicas on one
//! PostgreSQL database (a real, throwaway server: `TestPostgres`) share the
//! work. Replicas are SIGKILLed, their connections terminated and their
//! database closed under them, and still every accepted event reaches the
//! fake Slack exactly once, in order per channel, within the channel's rate,
//! and nothing stays claimed afterwards.
//!
//! Every check of the database goes through `psql`, so a failure shows what
//! PostgreSQL holds, not what a replica believes.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use common::confluence::{self, ADA};
use common::sidecar::{HOOK_SECRET, Sidecar, sign};
use pagehook_fakes::postgres::TestPostgres;
use pagehook_fakes::{ContentBuilder, FakeConfluence, FakeSlack, Fault, SlackPost};
use serde_json::Value;

const BOT: &str = "xoxb-cluster-tests";
/// Channel `c` gets the events of page `FIRST_PAGE + c`, in space `S<c>`.
const FIRST_PAGE: u64 = 4_000_001;

/// The chaos test's Slack channel rate: one message every 100 ms per channel.
const CHANNEL_RATE: f64 = 10.0;
/// How much earlier than the channel's rate allows a post may arrive at the
/// fake: a request's way from a replica to the fake (loopback, three
/// replicas, PostgreSQL and the fake scheduled on two busy cores) does not
/// take the same time twice. In CI one post took 38 ms to reach the fake
/// and the next 3 ms, so two sends started 51 ms apart arrived 23 ms apart
/// (with a 50 ms gap and 25 ms of slack, that failed the run although the
/// sends kept the rate). Half a gap absorbs such stalls. The slack does not
/// add up: `k` posts after a post must still arrive at least `k` gaps
/// later, less this once, so sends that start early, even a little each
/// time, still fail; and no second may see more posts than the rate allows
/// (plus one).
const GAP_TOLERANCE: Duration = Duration::from_millis(50);
/// How many posts ahead the spacing is checked (see [`GAP_TOLERANCE`]).
const GAP_SPAN: usize = 6;

/// `[delivery]` for the cluster tests: quick retries, nothing given up.
fn delivery(channel_rate: f64) -> String {
    format!(
        "retry-schedule-ms = [100, 200, 400]\nretry-every-ms = 500\ngive-up-after-ms = 600000\n\
         timeout-ms = 1000\nslack-channel-rate = {channel_rate:.1}\nslack-workspace-rate = 400.0\n\
         jitter = 0.0\n"
    )
}

/// A fake Confluence with one page per channel, page `c` in space `S<c>`.
fn confluence_with_runbook_per_channel(channels: usize) -> FakeConfluence {
    confluence::with_ada((0..channels).map(|c| {
        let id = FIRST_PAGE + c as u64;
        ContentBuilder::page(id, &format!("S{c}"), &format!("Runbook {c}"))
    }))
}

/// Slack channel `cl-<c>`, id `C0CL0000<c>`.
fn channel_id(c: usize) -> String {
    format!("C0CL{c:05}")
}

fn slack(channels: usize) -> FakeSlack {
    let slack = FakeSlack::start(BOT);
    for c in 0..channels {
        slack.add_channel(&format!("cl-{c}"), &channel_id(c), true);
    }
    slack
}

/// A config on `db`, set up once through its CLI: Confluence `prod`, Slack
/// `acme` (no greeting), slack-poster bound quietly once per channel, space
/// `S<c>` to `#cl-<c>`. Replicas are [`Sidecar::replica`]s of it.
fn admin(
    pg: &TestPostgres,
    db: &str,
    lease_ms: u64,
    channel_rate: f64,
    conf: &FakeConfluence,
    slack: &FakeSlack,
    channels: usize,
) -> Sidecar {
    let side = Sidecar::on_postgres(
        &pg.url(db),
        pg.password(),
        &format!("lease-ms = {lease_ms}\n"),
        &delivery(channel_rate),
    );
    side.connect_confluence("prod", &conf.base_url());
    side.connect_slack("acme", &slack.base_url(), BOT);
    side.install("slack-poster", &["post-slack", "dm-slack"]);
    for c in 0..channels {
        let scope = format!("space:S{c}");
        let to = format!("slack:#cl-{c}");
        let set = format!("channel=#cl-{c}");
        side.cli(&[
            "bind",
            "slack-poster",
            "--quiet",
            "--scope",
            &scope,
            "--to",
            &to,
            "--set",
            &set,
            "--set",
            "events=page-created, page-updated",
            // One post per event: the cluster counts them (each page is
            // updated again and again, which digests would gather).
            "--digest",
            "off",
        ]);
    }
    side
}

/// The `n`-th event of channel `c`: the page is created, then updated.
fn event_body(c: usize, n: usize) -> Vec<u8> {
    let name = if n == 0 {
        "page_created"
    } else {
        "page_updated"
    };
    let page = FIRST_PAGE + c as u64;
    let ts = 1_700_000_000_000u64 + n as u64;
    format!(r#"{{"timestamp":{ts},"event":"{name}","userKey":"{ADA}","page":{{"id":{page}}},"updateTrigger":"edit_page"}}"#)
        .into_bytes()
}

/// The replicas webhooks go to, as Confluence's load balancer would: round
/// robin over those still listed, the next one when one does not answer.
struct Targets {
    client: reqwest::blocking::Client,
    /// Each replica's base URL; `None` once it is known to be dead.
    bases: RwLock<Vec<Option<String>>>,
    turn: AtomicUsize,
    /// Webhooks that did not reach a replica (it had died) and were re-sent.
    resent: AtomicUsize,
    /// Answers other than 202 from a replica, by status, re-sent as well.
    refused: Mutex<HashMap<u16, usize>>,
}

impl Targets {
    fn new(replicas: &[&Sidecar]) -> Targets {
        Targets {
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            bases: RwLock::new(replicas.iter().map(|r| Some(r.base.clone())).collect()),
            turn: AtomicUsize::new(0),
            resent: AtomicUsize::new(0),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Stops sending to replica `i` (after it was killed).
    fn forget(&self, i: usize) {
        self.bases.write().unwrap()[i] = None;
    }

    /// Sends a signed webhook until some replica answers 202; returns the
    /// event id it answered.
    fn send(&self, body: &[u8]) -> i64 {
        let signature = sign(HOOK_SECRET, body);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "no replica accepted a webhook within 60 s; refused: {:?}",
                self.refused.lock().unwrap()
            );
            let base = {
                let bases = self.bases.read().unwrap();
                let i = self.turn.fetch_add(1, Ordering::Relaxed) % bases.len();
                bases[i].clone()
            };
            let Some(base) = base else { continue };
            let answer = self
                .client
                .post(format!("{base}/hooks/confluence/prod"))
                .header("content-type", "application/json")
                .header("X-Hub-Signature", &signature)
                .body(body.to_vec())
                .send();
            match answer {
                Ok(a) if a.status().as_u16() == 202 => {
                    let v: Value = a.json().unwrap();
                    return v["id"].as_i64().expect("202 names the event id");
                }
                Ok(a) => {
                    *self
                        .refused
                        .lock()
                        .unwrap()
                        .entry(a.status().as_u16())
                        .or_default() += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(_) => {
                    self.resent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// `GET /healthz`: its status and body; `None` if the replica does not answer.
fn healthz(base: &str) -> Option<(u16, String)> {
    probe(base, "/healthz")
}

/// `GET {base}{path}`: status and body, or `None` if it cannot be reached.
fn probe(base: &str, path: &str) -> Option<(u16, String)> {
    let answer = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .send()
        .ok()?;
    Some((answer.status().as_u16(), answer.text().unwrap_or_default()))
}

/// Waits until `/healthz` answers `status`; returns its body.
fn wait_healthz(base: &str, status: u16, within: Duration) -> String {
    wait_probe(base, "/healthz", status, within)
}

/// Waits until `path` answers `status`; returns its body.
fn wait_probe(base: &str, path: &str, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let got = probe(base, path);
        if let Some((s, body)) = &got
            && *s == status
        {
            return body.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{base}{path} did not answer {status} within {within:?}; last: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One number from `psql`.
fn count(pg: &TestPostgres, db: &str, sql: &str) -> i64 {
    let out = pg.psql(db, sql);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: unexpected psql output {out:?}: {e}"))
}

/// What the database holds, for failure messages: statuses, claims, leases
/// and attempt outcomes.
fn database_report(pg: &TestPostgres, db: &str) -> String {
    let queries = [
        "SELECT status, count(*) FROM events GROUP BY 1 ORDER BY 1",
        "SELECT status, count(*), count(claim_token) AS claimed FROM deliveries GROUP BY 1 ORDER BY 1",
        "SELECT outcome, count(*) FROM attempts GROUP BY 1 ORDER BY 1",
        "SELECT lane, replica, token, until_ms - (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms_left FROM lane_leases ORDER BY lane",
        "SELECT id, event_id, lane, status, attempts, uncertain, claimed_by, last_error FROM deliveries WHERE status NOT IN ('sent') ORDER BY id LIMIT 20",
        "SELECT id, status, attempts, claimed_by, claim_until, error FROM events WHERE status = 'pending' OR claim_token IS NOT NULL ORDER BY id LIMIT 20",
    ];
    queries
        .iter()
        .map(|q| format!("-- {q}\n{}\n", pg.psql(db, q)))
        .collect()
}

/// What the fake Slack was asked, for failure messages: per method, the
/// calls and those its tier limit refused; for the lookup methods, a
/// timeline in 5-second steps (admitted/refused).
fn slack_report(slack: &FakeSlack) -> String {
    let requests = slack.requests();
    let Some(first) = requests.first().map(|r| r.received_at) else {
        return "Slack: no requests\n".into();
    };
    let mut out = String::from("-- Slack: method, calls, refused by its tier, faults served\n");
    let mut methods: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.endpoint.as_deref())
        .collect();
    methods.sort();
    methods.dedup();
    for m in methods {
        let of: Vec<_> = requests
            .iter()
            .filter(|r| r.endpoint.as_deref() == Some(m))
            .collect();
        let refused = of.iter().filter(|r| r.rate_limited).count();
        let faulted = of.iter().filter(|r| r.fault.is_some()).count();
        out.push_str(&format!("{m}|{}|{refused}|{faulted}\n", of.len()));
        if m.starts_with("conversations.") {
            let mut steps: Vec<(usize, usize)> = Vec::new();
            for r in &of {
                let step = (r.received_at - first).as_secs() as usize / 5;
                if steps.len() <= step {
                    steps.resize(step + 1, (0, 0));
                }
                if r.rate_limited {
                    steps[step].1 += 1;
                } else {
                    steps[step].0 += 1;
                }
            }
            out.push_str(&format!("  {m} per 5 s (admitted, refused): {steps:?}\n"));
        }
    }
    out
}

/// The event id a post carries in its metadata.
fn event_id(post: &SlackPost) -> i64 {
    post.metadata
        .as_ref()
        .and_then(|m| m["event_payload"]["event_id"].as_i64())
        .unwrap_or_else(|| panic!("a post without its event id: {post:?}"))
}

/// Waits until `n` deliveries were sent and none is left to send.
fn wait_delivered(pg: &TestPostgres, db: &str, slack: &FakeSlack, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let open = count(
            pg,
            db,
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending')",
        );
        let undispatched = count(
            pg,
            db,
            "SELECT count(*) FROM events WHERE status = 'pending'",
        );
        // Counted in the database: reading the fake's posts stops its
        // thread while they are copied, and that would skew its timestamps.
        let sent = count(
            pg,
            db,
            "SELECT count(*) FROM deliveries WHERE status = 'sent'",
        );
        if sent >= n as i64 && open == 0 && undispatched == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered within {within:?}: {sent} of {n} sent, {open} deliveries open, \
             {undispatched} events not dispatched\n{}{}",
            database_report(pg, db),
            slack_report(slack)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every accepted event is in Slack exactly once, and nothing else is.
fn assert_each_event_once(posts: &[SlackPost], accepted: &[i64], report: impl Fn() -> String) {
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for p in posts {
        *seen.entry(event_id(p)).or_default() += 1;
    }
    let twice: Vec<(i64, usize)> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (*id, *n))
        .collect();
    let missing: Vec<i64> = accepted
        .iter()
        .copied()
        .filter(|id| !seen.contains_key(id))
        .collect();
    let unknown: Vec<i64> = seen
        .keys()
        .copied()
        .filter(|id| !accepted.contains(id))
        .collect();
    assert!(
        twice.is_empty() && missing.is_empty() && unknown.is_empty(),
        "{} posts for {} accepted events: posted more than once (event, times): {twice:?}; \
         never posted: {missing:?}; posts of events never accepted: {unknown:?}\n{}",
        posts.len(),
        accepted.len(),
        report()
    );
    assert_eq!(posts.len(), accepted.len());
}

/// Nothing is left pending, sending, leased or carrying a claim token.
fn assert_nothing_claimed(pg: &TestPostgres, db: &str) {
    let open = count(
        pg,
        db,
        "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending')",
    );
    let leases = count(pg, db, "SELECT count(*) FROM lane_leases");
    let pending = count(
        pg,
        db,
        "SELECT count(*) FROM events WHERE status = 'pending'",
    );
    let tokens = count(
        pg,
        db,
        "SELECT (SELECT count(*) FROM events WHERE claim_token IS NOT NULL) \
         + (SELECT count(*) FROM deliveries WHERE claim_token IS NOT NULL)",
    );
    assert_eq!(
        (open, leases, pending, tokens),
        (0, 0, 0, 0),
        "(open deliveries, lane leases, pending events, rows with a claim token) left behind\n{}",
        database_report(pg, db)
    );
}

/// Sends `per_channel` events to each of `channels` channels from one thread
/// per channel, each channel's next event only once the previous one was
/// accepted. `during` runs on the calling thread meanwhile, with the number
/// accepted so far. Returns, per channel, the event ids in sending order.
fn send_bursts(
    targets: &Targets,
    channels: usize,
    per_channel: usize,
    during: impl FnOnce(&AtomicUsize),
) -> Vec<Vec<i64>> {
    let accepted = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let senders: Vec<_> = (0..channels)
            .map(|c| {
                let accepted = &accepted;
                s.spawn(move || {
                    (0..per_channel)
                        .map(|n| {
                            let id = targets.send(&event_body(c, n));
                            accepted.fetch_add(1, Ordering::Relaxed);
                            id
                        })
                        .collect::<Vec<i64>>()
                })
            })
            .collect();
        during(&accepted);
        senders.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Sets a flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits until `n` events were accepted.
fn wait_accepted(accepted: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while accepted.load(Ordering::Relaxed) < n {
        assert!(
            Instant::now() < deadline,
            "only {} events accepted",
            accepted.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The posts of channel `c`, in the order Slack took them.
fn in_channel(posts: &[SlackPost], c: usize) -> Vec<&SlackPost> {
    let channel = channel_id(c);
    posts.iter().filter(|p| p.channel == channel).collect()
}

/// Per channel: posts in the order their events were sent (`sent`, per
/// channel), the first one starting the page's thread and the others
/// replies in it. A failure shows what `explain` says about the first two
/// events out of order.
fn assert_order(posts: &[SlackPost], sent: &[Vec<i64>], explain: impl Fn(i64, i64) -> String) {
    for (c, ids) in sent.iter().enumerate() {
        let in_channel = in_channel(posts, c);
        let order: Vec<i64> = in_channel.iter().map(|p| event_id(p)).collect();
        if order != *ids {
            let first = order
                .iter()
                .zip(ids)
                .position(|(a, b)| a != b)
                .unwrap_or(order.len().min(ids.len()));
            panic!(
                "#cl-{c}: {} posts, {} events sent; order differs first at #{first}: posted {:?}, \
                 sent {:?}\n{}",
                order.len(),
                ids.len(),
                &order[first.saturating_sub(2)..(first + 3).min(order.len())],
                &ids[first.saturating_sub(2)..(first + 3).min(ids.len())],
                explain(
                    order.get(first).copied().unwrap_or_default(),
                    ids.get(first).copied().unwrap_or_default()
                )
            );
        }
        assert!(in_channel[0].thread_ts.is_none(), "#cl-{c} starts a thread");
        assert!(
            in_channel[1..]
                .iter()
                .all(|p| p.thread_ts.as_deref() == Some(in_channel[0].ts.as_str())),
            "#cl-{c}: every update is a reply in the page's thread"
        );
    }
}

/// Per channel: never more than a second's worth of posts (and one more) in
/// any second, and the k-th post after any post (k up to [`GAP_SPAN`]) at
/// least k gaps after it (less [`GAP_TOLERANCE`], once), by the time Slack
/// read each post's request
/// (`arrived`, from [`arrivals`]), unless the two sends started at least k
/// gaps apart (`started`: the start of each event's successful attempt, ms,
/// from the database): then the request was held up on its way, which the
/// replicas do not control, and it is reported but not failed. A failure
/// shows every breach with how far apart the two sends started, and for the
/// first ones what `explain` says about the two events.
fn assert_rate(
    posts: &[SlackPost],
    channels: usize,
    gap: Duration,
    arrived: &HashMap<i64, Instant>,
    started: &HashMap<i64, i64>,
    explain: impl Fn(i64, i64) -> String,
) {
    let mut smallest = Duration::MAX;
    let mut breaches = Vec::new();
    for c in 0..channels {
        let in_channel = in_channel(posts, c);
        let at = |p: &SlackPost| arrived.get(&event_id(p)).copied().unwrap_or(p.received_at);
        let times: Vec<Instant> = in_channel.iter().map(|p| at(p)).collect();
        let busiest = (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| t.duration_since(times[i]) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0);
        let per_second = (Duration::from_secs(1).as_nanos() / gap.as_nanos()) as usize;
        assert!(
            busiest <= per_second + 1,
            "#cl-{c}: {busiest} posts arrived within one second; the rate allows {per_second}"
        );
        for (i, pair) in in_channel.windows(2).enumerate() {
            let between = at(pair[1])
                .checked_duration_since(at(pair[0]))
                .unwrap_or(Duration::ZERO);
            smallest = smallest.min(between);
            // The k-th post after this one: at least k gaps later.
            for k in 1..=GAP_SPAN.min(in_channel.len() - 1 - i) {
                let span = at(in_channel[i + k])
                    .checked_duration_since(at(pair[0]))
                    .unwrap_or(Duration::ZERO);
                if span + GAP_TOLERANCE < gap * k as u32 {
                    breaches.push((
                        c,
                        i,
                        k,
                        event_id(pair[0]),
                        event_id(in_channel[i + k]),
                        span,
                    ));
                    break;
                }
            }
        }
    }
    eprintln!("smallest gap between two posts in one channel: {smallest:?} (rate gap {gap:?})");
    if breaches.is_empty() {
        return;
    }
    let start_gap = |a: &i64, b: &i64| Some(started.get(b)? - started.get(a)?);
    // What the replicas control is when each send starts: a pair whose sends
    // started k gaps apart (or more) and still arrived closer was bunched on
    // its way (a request stalled in a loaded machine's network stack, seen in
    // CI at 38 ms and 78 ms); the per-second count above still holds at
    // arrival. Such pairs are reported, not failed.
    let spaced = |k: usize, a: &i64, b: &i64| {
        start_gap(a, b).is_some_and(|ms| ms >= (gap * k as u32).as_millis() as i64)
    };
    let (jitter, breaches): (Vec<_>, Vec<_>) = breaches
        .into_iter()
        .partition(|(_, _, k, a, b, _)| spaced(*k, a, b));
    for (c, i, k, a, b, d) in &jitter {
        eprintln!(
            "#cl-{c} from post {i}: events {a} and {b} ({k} apart) arrived {d:?} apart although their sends started {:?} ms apart",
            start_gap(a, b)
        );
    }
    if breaches.is_empty() {
        return;
    }
    let all: Vec<String> = breaches
        .iter()
        .map(|(c, i, _, a, b, d)| {
            format!(
                "#cl-{c} from post {i} (events {a}, {b}): arrived {d:?} apart, sends started {:?} ms apart",
                start_gap(a, b)
            )
        })
        .collect();
    let evidence: String = breaches
        .iter()
        .take(3)
        .map(|(_, _, _, a, b, _)| explain(*a, *b))
        .collect();
    panic!(
        "{} times a post's send started, and it arrived, earlier after an earlier post in its channel than the gaps between them allow ({gap:?} each, less {GAP_TOLERANCE:?}):\n{}\n{evidence}",
        breaches.len(),
        all.join("\n")
    );
}

/// When the fake Slack finished reading the request that posted each
/// event's message: the request's own timestamp, taken before the fake
/// handles it. (A post's `received_at` is taken once the fake gets to the
/// message, which can be later: its single thread may be busy meanwhile,
/// and a post arrived 55 ms after another showed as 10 ms after it.)
fn arrivals(slack: &FakeSlack) -> HashMap<i64, Instant> {
    let mut arrived = HashMap::new();
    for r in slack.requests() {
        let carried_out = !r.rate_limited
            && matches!(
                r.fault,
                None | Some(Fault::Delay(_)) | Some(Fault::StatusAfterEffect(_))
            );
        if r.endpoint.as_deref() != Some("chat.postMessage") || !carried_out {
            continue;
        }
        let Ok(body) = serde_json::from_str::<Value>(&r.body) else {
            continue;
        };
        if let Some(e) = body
            .pointer("/metadata/event_payload/event_id")
            .and_then(Value::as_i64)
        {
            arrived.entry(e).or_insert(r.received_at);
        }
    }
    arrived
}

/// When each event's message left: the send-time slot of its last attempt
/// that sent a request (ms, the database's clock).
fn send_started(pg: &TestPostgres, db: &str) -> HashMap<i64, i64> {
    pg.psql(
        db,
        "SELECT DISTINCT ON (d.event_id) d.event_id, a.sent_at FROM attempts a \
         JOIN deliveries d ON d.id = a.delivery_id WHERE a.sent_at IS NOT NULL \
         ORDER BY d.event_id, a.id DESC",
    )
    .lines()
    .map(|l| {
        let (e, at) = l.split_once('|').expect("event|at");
        (e.parse().unwrap(), at.parse().unwrap())
    })
    .collect()
}

/// Two events' deliveries and attempts as the database has them, and every
/// chat.postMessage request about them as Slack saw it (ms after the first).
fn explain_pair(pg: &TestPostgres, db: &str, slack: &FakeSlack, a: i64, b: i64) -> String {
    let attempts = pg.psql(
        db,
        &format!(
            "SELECT d.event_id, d.id, d.claimed_by, a.at, a.at - min(a.at) OVER (), a.outcome, \
             a.latency_ms, coalesce(a.error, '') FROM attempts a JOIN deliveries d ON d.id = \
             a.delivery_id WHERE d.event_id IN ({a}, {b}) ORDER BY a.at, a.id"
        ),
    );
    let requests: Vec<_> = slack
        .requests()
        .into_iter()
        .filter(|r| r.endpoint.as_deref() == Some("chat.postMessage"))
        .filter_map(|r| {
            let e = [a, b]
                .into_iter()
                .find(|e| r.body.contains(&format!("\"event_id\":{e}}}")))?;
            Some((e, r.received_at, r.fault, r.rate_limited))
        })
        .collect();
    let first = requests.first().map(|r| r.1);
    let requests: Vec<String> = requests
        .iter()
        .map(|(e, at, fault, limited)| {
            format!(
                "event {e} at +{:?} fault {fault:?} tier-refused {limited}",
                at.duration_since(first.unwrap_or(*at))
            )
        })
        .collect();
    format!(
        "-- events {a} and {b}: attempts (event, delivery, claimed by, at, +ms, outcome, latency, error)\n{attempts}\n\
         -- their chat.postMessage requests at Slack\n{}\n",
        requests.join("\n")
    )
}

#[test]
fn three_replicas_deliver_every_event_exactly_once_through_kills() {
    const CHANNELS: usize = 8;
    const EVENTS: usize = 2_000;
    const PER_CHANNEL: usize = EVENTS / CHANNELS;
    let pg = TestPostgres::shared();
    let db = pg.fresh_database();
    let conf = confluence_with_runbook_per_channel(CHANNELS);
    let slack = slack(CHANNELS);
    let admin = admin(pg, &db, 3_000, CHANNEL_RATE, &conf, &slack, CHANNELS);
    let mut replicas: Vec<Sidecar> = (0..3).map(|_| admin.replica()).collect();
    for r in &mut replicas {
        r.start();
    }
    let pids: Vec<u32> = replicas.iter().map(Sidecar::pid).collect();
    eprintln!("replicas' pids: {pids:?}");
    let targets = Targets::new(&replicas.iter().collect::<Vec<_>>());

    // Slack misbehaves all along: one post in twenty meets a fault, in turn
    // 429s with Retry-After, 5xx, answers slower than usual and, one fault
    // in twenty, an answer slower than the client waits (the message landed;
    // the replica must find it rather than post it again). Faults go with
    // the posts, not the clock. After a 5xx or a lost answer a replica looks
    // the message up with conversations.replies, Slack's tier 3 (50 calls a
    // minute), so more 5xx would make the run wait for that tier: with a
    // fault every ten posts (half of them 5xx), 2,000 events were not
    // delivered within 150 s.
    let slow = |ms| Fault::Delay(Duration::from_millis(ms));
    let limited = Fault::RateLimited {
        retry_after_secs: 1,
    };
    let faults = [
        limited.clone(),
        slow(300),
        Fault::Status(500),
        slow(200),
        slow(400),
        limited.clone(),
        slow(250),
        Fault::Status(503),
        slow(350),
        slow(150),
        limited.clone(),
        slow(300),
        Fault::Status(500),
        slow(200),
        slow(1_500),
        limited,
        slow(250),
        Fault::Status(502),
        slow(400),
        slow(150),
    ];
    const POSTS_PER_FAULT: usize = 20;
    let injected = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut killed_at = Vec::new();
    let sent = std::thread::scope(|s| {
        // Stops the fault thread however this scope ends (a failed wait too).
        let _stop = SetOnDrop(&stop);
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let i = injected.load(Ordering::Relaxed);
                if slack.calls("chat.postMessage") >= i * POSTS_PER_FAULT {
                    slack.inject("chat.postMessage", faults[i % faults.len()].clone());
                    injected.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let sent = send_bursts(&targets, CHANNELS, PER_CHANNEL, |accepted| {
            for (victim, after) in [(0, EVENTS * 3 / 10), (1, EVENTS * 6 / 10)] {
                wait_accepted(accepted, after);
                replicas[victim].kill();
                targets.forget(victim);
                killed_at.push((
                    victim,
                    accepted.load(Ordering::Relaxed),
                    slack.calls("chat.postMessage"),
                    started.elapsed(),
                ));
            }
        });
        let ingest = started.elapsed();
        eprintln!(
            "{EVENTS} events accepted in {ingest:?}; {} re-sent after a replica died, \
             refused by live replicas: {:?}; kills (replica, accepted, Slack posts tried, at): {killed_at:?}",
            targets.resent.load(Ordering::Relaxed),
            targets.refused.lock().unwrap()
        );
        wait_delivered(pg, &db, &slack, EVENTS, Duration::from_secs(150));
        sent
    });
    eprintln!("all delivered after {:?}", started.elapsed());
    // Anything still in flight would show now.
    std::thread::sleep(Duration::from_secs(1));
    let posts = slack.posts();
    let accepted: Vec<i64> = sent.iter().flatten().copied().collect();
    assert_eq!(accepted.len(), EVENTS);
    assert_each_event_once(&posts, &accepted, || database_report(pg, &db));
    assert_order(&posts, &sent, |a, b| explain_pair(pg, &db, &slack, a, b));
    assert_nothing_claimed(pg, &db);
    assert_eq!(
        count(
            pg,
            &db,
            "SELECT count(*) FROM deliveries WHERE status = 'sent'"
        ),
        EVENTS as i64,
        "{}",
        database_report(pg, &db)
    );
    let met = injected.load(Ordering::Relaxed) - slack.faults_left("chat.postMessage");
    eprintln!(
        "Slack faults met: {met}; attempts by outcome:\n{}",
        pg.psql(
            &db,
            "SELECT outcome, count(*) FROM attempts GROUP BY 1 ORDER BY 1"
        )
    );
    // The last few faults may come after the last post.
    assert!(
        met + 10 >= EVENTS / POSTS_PER_FAULT,
        "one post in {POSTS_PER_FAULT} met a fault: {met}"
    );
    // The survivor answers for the cluster.
    let survivor = &replicas[2];
    let body = wait_healthz(&survivor.base, 200, Duration::from_secs(5));
    assert!(body.contains("\"ok\""), "{body}");
    let gap = Duration::from_secs_f64(1.0 / CHANNEL_RATE);
    assert_send_slots(pg, &db, CHANNELS, gap);
    assert_rate(
        &posts,
        CHANNELS,
        gap,
        &arrivals(&slack),
        &send_started(pg, &db),
        |a, b| explain_pair(pg, &db, &slack, a, b),
    );
}

/// What Pagehook itself controls, exactly: in each channel, every request
/// it let go (every attempt's send-time slot, whichever replica made it,
/// by the database's clock) at least one gap after the one before.
fn assert_send_slots(pg: &TestPostgres, db: &str, channels: usize, gap: Duration) {
    let rows = pg.psql(
        db,
        "SELECT split_part(d.lane, ':', 2), a.sent_at FROM attempts a \
         JOIN deliveries d ON d.id = a.delivery_id WHERE a.sent_at IS NOT NULL \
         ORDER BY 1, 2",
    );
    let mut by_channel: HashMap<String, Vec<i64>> = HashMap::new();
    for line in rows.lines() {
        let (channel, at) = line.split_once('|').expect("channel|sent_at");
        by_channel
            .entry(channel.to_owned())
            .or_default()
            .push(at.parse().unwrap());
    }
    assert_eq!(by_channel.len(), channels, "{:?}", by_channel.keys());
    let gap_ms = gap.as_millis() as i64;
    for (channel, slots) in &by_channel {
        let closest = slots
            .windows(2)
            .map(|w| w[1] - w[0])
            .min()
            .unwrap_or(i64::MAX);
        assert!(
            closest >= gap_ms,
            "{channel}: two requests let go {closest} ms apart, the gap is {gap_ms} ms"
        );
    }
}

#[test]
fn a_replica_whose_connections_are_terminated_reconnects_and_loses_nothing() {
    const CHANNELS: usize = 4;
    const PER_CHANNEL: usize = 150;
    let pg = TestPostgres::start();
    let db = pg.fresh_database();
    let conf = confluence_with_runbook_per_channel(CHANNELS);
    let slack = slack(CHANNELS);
    let admin = admin(&pg, &db, 2_000, 50.0, &conf, &slack, CHANNELS);
    let mut replicas: Vec<Sidecar> = (0..2).map(|_| admin.replica()).collect();
    for r in &mut replicas {
        r.start();
    }
    let targets = Targets::new(&replicas.iter().collect::<Vec<_>>());
    let started = Instant::now();
    let mut terminated = Vec::new();
    let sent = send_bursts(&targets, CHANNELS, PER_CHANNEL, |accepted| {
        for round in 1..=4 {
            wait_accepted(accepted, CHANNELS * PER_CHANNEL * round / 5);
            terminated.push(pg.terminate_connections(&db, "pagehook"));
        }
    });
    eprintln!(
        "{} events accepted in {:?}; connections terminated: {terminated:?}; refused while \
         reconnecting: {:?}",
        CHANNELS * PER_CHANNEL,
        started.elapsed(),
        targets.refused.lock().unwrap()
    );
    assert!(
        terminated.iter().any(|n| *n > 0),
        "some connections were terminated: {terminated:?}"
    );
    // And while the replicas deliver, every 400 ms: each time they find
    // out at their next query. /healthz may say 503 for a moment.
    let n = CHANNELS * PER_CHANNEL;
    let mut health = Vec::new();
    while count(
        &pg,
        &db,
        "SELECT count(*) FROM deliveries WHERE status = 'sent'",
    ) < n as i64 / 2
    {
        terminated.push(pg.terminate_connections(&db, "pagehook"));
        health.extend(
            replicas
                .iter()
                .filter_map(|r| healthz(&r.base).map(|h| h.0)),
        );
        std::thread::sleep(Duration::from_millis(400));
    }
    terminated.push(pg.terminate_connections(&db, "pagehook"));
    for r in &replicas {
        wait_healthz(&r.base, 200, Duration::from_secs(20));
    }
    eprintln!("connections terminated each time: {terminated:?}; /healthz right after: {health:?}");
    wait_delivered(&pg, &db, &slack, n, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    let posts = slack.posts();
    let accepted: Vec<i64> = sent.iter().flatten().copied().collect();
    assert_each_event_once(&posts, &accepted, || database_report(&pg, &db));
    assert_order(&posts, &sent, |a, b| explain_pair(&pg, &db, &slack, a, b));
    assert_nothing_claimed(&pg, &db);
    eprintln!("delivered after {:?}", started.elapsed());
}

#[test]
fn healthz_and_readyz_are_503_while_the_database_is_unreachable() {
    let pg = TestPostgres::start();
    let db = pg.fresh_database();
    let conf = confluence_with_runbook_per_channel(1);
    let slack = slack(1);
    let admin = admin(&pg, &db, 2_000, 50.0, &conf, &slack, 1);
    let mut replica = admin.replica();
    replica.start();
    let targets = Targets::new(&[&replica]);
    let first = targets.send(&event_body(0, 0));
    wait_healthz(&replica.base, 200, Duration::from_secs(5));
    let ready = wait_probe(&replica.base, "/readyz", 200, Duration::from_secs(5));
    assert!(ready.contains("\"ready\""), "{ready}");

    // The database refuses every connection, and the open ones are cut.
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false"),
    );
    pg.terminate_connections(&db, "pagehook");
    let body = wait_healthz(&replica.base, 503, Duration::from_secs(15));
    assert!(body.contains("database"), "the 503 says why: {body}");
    // A load balancer or Kubernetes stops routing to it, and hears why.
    let unready = wait_probe(&replica.base, "/readyz", 503, Duration::from_secs(15));
    assert!(
        unready.contains("\"database-unreachable\""),
        "the 503 says why: {unready}"
    );
    let (status, _) = replica.hook("prod", &event_body(0, 1), Some(HOOK_SECRET));
    assert_ne!(
        status, 202,
        "a webhook cannot be accepted while nothing can store it"
    );
    // Still unreachable a moment later: it does not flap to 200.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(healthz(&replica.base).map(|h| h.0), Some(503));

    pg.psql(
        "postgres",
        &format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true"),
    );
    wait_healthz(&replica.base, 200, Duration::from_secs(30));
    wait_probe(&replica.base, "/readyz", 200, Duration::from_secs(10));
    let second = targets.send(&event_body(0, 1));
    wait_delivered(&pg, &db, &slack, 2, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let posts = slack.posts();
    assert_each_event_once(&posts, &[first, second], || database_report(&pg, &db));
    assert_nothing_claimed(&pg, &db);
}

#[test]
fn a_second_serve_on_one_sqlite_file_refuses_but_postgres_replicas_start() {
    let mut side = Sidecar::new();
    side.start();
    let second = side.second_serve_output();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second serve exited 0: {said}"
    );
    assert!(
        said.contains("PostgreSQL"),
        "the refusal points to PostgreSQL: {said}"
    );
    wait_healthz(&side.base, 200, Duration::from_secs(5));

    // Two replicas on one fresh PostgreSQL database, started together: they
    // migrate once and both serve.
    let pg = TestPostgres::shared();
    let db = pg.fresh_database();
    let first = Sidecar::on_postgres(&pg.url(&db), pg.password(), "", &delivery(1.0));
    let mut replicas = [first.replica(), first.replica()];
    std::thread::scope(|s| {
        for r in &mut replicas {
            s.spawn(|| r.start());
        }
    });
    for r in &replicas {
        wait_healthz(&r.base, 200, Duration::from_secs(10));
    }
}

#[test]
fn store_copy_moves_a_sqlite_installation_and_a_replica_carries_on_from_it() {
    let conf = confluence_with_runbook_per_channel(1);
    let slack = slack(1);
    // A SQLite installation that has delivered something.
    let mut old = Sidecar::new();
    old.connect_confluence("prod", &conf.base_url());
    old.connect_slack("acme", &slack.base_url(), BOT);
    old.bind_slack_poster(
        "cl-0",
        &[
            "--scope",
            "space:S0",
            "--set",
            "events=page-created, page-updated",
            "--digest",
            "off",
        ],
    );
    old.start();
    for n in 0..3 {
        let (status, _) = old.hook("prod", &event_body(0, n), Some(HOOK_SECRET));
        assert_eq!(status, 202);
    }
    old.wait_json(&["deliveries", "--status", "sent"], "three sent", |v| {
        v.as_array().is_some_and(|a| a.len() == 3)
    });
    old.terminate();

    let pg = TestPostgres::shared();
    let db = pg.fresh_database();
    let password = old.path().join("target-password");
    std::fs::write(&password, pg.password()).unwrap();
    let password = password.display().to_string();
    let url = pg.url(&db);
    let said = old.cli(&["store", "copy", "--to", &url, "--password-file", &password]);
    assert!(said.contains("copied"), "{said}");
    for (table, rows) in [
        ("events", 3),
        ("deliveries", 3),
        ("bindings", 1),
        ("plugins", 1),
    ] {
        let line = said
            .lines()
            .find(|l| l.split_whitespace().next() == Some(table))
            .unwrap_or_else(|| panic!("no line for {table}: {said}"));
        assert!(
            line.split_whitespace().nth(1) == Some(&rows.to_string()),
            "{table}: {line}"
        );
    }
    assert!(
        !said.contains(pg.password()),
        "no password in the output: {said}"
    );
    // Copying again would mix two installations: refused, nothing written.
    let again = old.cli_output(&["store", "copy", "--to", &url, "--password-file", &password]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds data"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(count(pg, &db, "SELECT count(*) FROM events"), 3);

    // A replica on PostgreSQL sees everything and goes on from it: the next
    // event continues the page's thread and nothing old is sent again.
    let mut replica = Sidecar::on_postgres(&url, pg.password(), "", &delivery(20.0));
    replica.start();
    let (status, answer) = replica.hook("prod", &event_body(0, 3), Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
    assert!(
        answer["id"].as_i64().unwrap() > 3,
        "ids go on after the copied ones: {answer}"
    );
    wait_delivered(pg, &db, &slack, 4, Duration::from_secs(20));
    let posts = slack.posts();
    assert_eq!(posts.len(), 4, "the copied deliveries were not sent again");
    assert!(
        posts[3].thread_ts.as_deref() == Some(posts[0].ts.as_str()),
        "the thread started on SQLite goes on: {posts:#?}"
    );
}
