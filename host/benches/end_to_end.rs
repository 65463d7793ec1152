//! End to end: events per second from signed webhook to a post at a fake
//! Slack on loopback, and the latency from sending the webhook to Slack
//! receiving the message (p50/p99), at fixed offered rates, on SQLite and on
//! PostgreSQL (one replica), in two setups:
//!
//! - **one channel, its rate raised** (standing in for many channels): the
//!   channel is given by name and is the last of 5,000 in the fake Slack, so
//!   the name is resolved by paging as in a large workspace. 100 and 1,000
//!   events/s, then higher rates to find the knee (the most it delivers a
//!   second), then twice the knee: delivered/s must stay at the knee, not
//!   fall (a backlog must not make delivery slower);
//! - **100 channels at Slack's rate** (one message a second per channel;
//!   the fake refuses posts beyond three in any two seconds per channel, as
//!   Slack refuses bursts): event `n` goes to space `S<n mod 100>`, each
//!   space bound to its channel, so the knee is 100 a second; offered at
//!   100, 200 (twice the knee) and 1,000 a second.
//!
//! The release `pagehook serve` runs slack-poster, a webhook-only source (no
//! enrichment round trip) and the default durability (each webhook answered
//! once its event is synced). One warm-up event is posted before each
//! measured run (it resolves the channel names and loads the plugin).
//! Delivered/s counts the posts that arrived while events were offered,
//! over that time; latencies are over every event posted.
//!
//! `cargo bench -p pagehook --bench end_to_end` (or `make bench`) after
//! `make plugins` and `make postgres`; `PAGEHOOK_BENCH_SECONDS` (default 5;
//! 1 with only the first run of each setup under `cargo test --benches`)
//! sets the length of each run, `PAGEHOOK_BENCH_STORE=sqlite` or `postgres`
//! runs one store only, `PAGEHOOK_BENCH_RATES=1000,1000` only those runs of
//! the first setup, `PAGEHOOK_BENCH_ONE_PAGE=1` every event an edit of one
//! page (one Slack thread: one lane with a backlog instead of a lane per
//! page), `PAGEHOOK_BENCH_STORE_KEYS` more `[store]` keys for the sidecar on
//! PostgreSQL (`max-connections = 16`), and `PAGEHOOK_BENCH_PROBE=1` (PostgreSQL) prints where
//! the backlog sits, where each event's time went and the p99 of each second's events. Figures go to
//! docs/benchmarks.md.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pagehook_fakes::postgres::TestPostgres;
use pagehook_fakes::{FakeSlack, SlackPost};

// A bench uses a few of the integration tests' harnesses; the rest are
// theirs (the `it` binary uses every one, and warns there when one is not).
#[allow(dead_code)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use common::sidecar::{HOOK_SECRET, Sidecar, sign};

const TOKEN: &str = "xoxb-bench";
/// Channels of the second setup.
const CHANNELS: usize = 100;
/// How long to wait for the last posts of a run below the knee once nothing
/// new arrives.
const QUIET: Duration = Duration::from_secs(10);

/// Seconds of each run: `PAGEHOOK_BENCH_SECONDS`, default 5; 1 when run
/// without `--bench` (by `cargo test --benches`: a smoke test).
fn seconds() -> u64 {
    std::env::var("PAGEHOOK_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(if full() { 5 } else { 1 })
}

/// A real bench run (`cargo bench`), not the smoke test.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Where events go and how fast Slack lets them.
#[derive(Clone, Copy)]
struct Setup {
    postgres: bool,
    channels: usize,
}

impl Setup {
    fn store(&self) -> &'static str {
        if self.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    fn name(&self) -> String {
        match self.channels {
            1 => "1 channel, rate raised".into(),
            n => format!("{n} channels, 1/s each"),
        }
    }

    fn delivery(&self) -> &'static str {
        if self.channels == 1 {
            "slack-channel-rate = 100000.0\nslack-workspace-rate = 100000.0\n"
        } else {
            "slack-channel-rate = 1.0\nslack-workspace-rate = 100000.0\n"
        }
    }

    /// The channel of event `n`, by name, and its space.
    fn target(&self, n: u64) -> (String, String) {
        if self.channels == 1 {
            ("eng".into(), "ENG".into())
        } else {
            let c = n % self.channels as u64;
            (format!("c{c:02}"), format!("S{c:02}"))
        }
    }
}

/// A distinct, signed, rich `page_created` webhook in `space`; with
/// `PAGEHOOK_BENCH_ONE_PAGE=1`, edit `n` of one page instead, so that every
/// post goes to one thread: one lane, which then has a backlog.
fn signed(n: u64, space: &str) -> (Vec<u8>, String) {
    let one_page = std::env::var_os("PAGEHOOK_BENCH_ONE_PAGE").is_some();
    let (event, page, version) = if one_page {
        ("page_updated", 3_000_000, n + 2)
    } else {
        ("page_created", 3_000_000 + n, 1)
    };
    let body = format!(
        r#"{{"timestamp":{},"event":"{event}","userKey":"8a7f80839e460b0f019e460ba6440001","page":{{"id":{page},"title":"Bench page {n}","spaceKey":"{space}","self":"https://wiki.example.com/pages/{page}","version":{version}}}}}"#,
        1_768_000_000_000u64 + n,
    )
    .into_bytes();
    let sig = sign(HOOK_SECRET, &body);
    (body, sig)
}

/// What one run measured.
struct Run {
    offered: u64,
    /// Webhooks answered 202.
    accepted: usize,
    /// Posts that arrived while events were offered, per second of it.
    delivered_per_s: f64,
    p50: Duration,
    p99: Duration,
    /// Accepted events not posted when the run ended (a run above the knee
    /// ends without waiting for its backlog).
    not_posted: usize,
    /// Posts the fake refused for the per-channel rate.
    refused_429: usize,
    /// The warm-up's post: names resolved, plugin loaded.
    cold: Duration,
}

/// The sidecar of `setup` with slack-poster bound, started, and warmed up
/// with one event; its fake Slack.
fn start(
    setup: Setup,
    pg: Option<&TestPostgres>,
) -> (Sidecar, FakeSlack, String, Duration, Option<String>) {
    let slack = FakeSlack::start(TOKEN);
    let db = pg.map(|pg| pg.fresh_database());
    let mut side = match (pg, &db) {
        (Some(pg), Some(db)) => {
            // `PAGEHOOK_BENCH_STORE_KEYS`: more `[store]` keys, for trying
            // a setting (`max-connections = 16`).
            let keys = std::env::var("PAGEHOOK_BENCH_STORE_KEYS").unwrap_or_default();
            Sidecar::on_postgres(&pg.url(db), pg.password(), &keys, setup.delivery())
        }
        _ => Sidecar::with_delivery(setup.delivery()),
    };
    side.cli(&[
        "connect",
        "confluence",
        "bench",
        "--url",
        "http://127.0.0.1:9",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    side.connect_slack("bench-slack", &slack.base_url(), TOKEN);
    side.install("slack-poster", &["post-slack", "dm-slack"]);
    if setup.channels == 1 {
        slack.add_numbered_channels("team", 4_999);
        slack.add_channel("eng", "C0ENG00001", true);
    } else {
        slack.limit_posts_per_channel(3, Duration::from_secs(2));
    }
    for c in 0..setup.channels as u64 {
        let (channel, space) = setup.target(c);
        if setup.channels > 1 {
            slack.add_channel(&channel, &format!("C0CH{c:06}"), true);
        }
        side.cli(&[
            "bind",
            "slack-poster",
            "--quiet",
            "--to",
            &format!("slack:#{channel}"),
            "--set",
            &format!("channel=#{channel}"),
            "--scope",
            &format!("space:{space}"),
            // One post per event, as without digests (issue 25's digest half).
            "--digest",
            "off",
        ]);
    }
    side.start();
    let url = format!("{}/hooks/confluence/bench", side.base);
    let (body, sig) = signed(u64::from(u32::MAX), &setup.target(0).1);
    let at = Instant::now();
    let answer = reqwest::blocking::Client::new()
        .post(&url)
        .header("X-Hub-Signature", sig)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let cold = slack.wait_for_posts(1, Duration::from_secs(30))[0]
        .received_at
        .saturating_duration_since(at);
    // The warm-up took channel 0's slot: let it pass.
    std::thread::sleep(Duration::from_millis(1_100));
    (side, slack, url, cold, db)
}

/// Offers `rate` events/s for `seconds` to a fresh sidecar of `setup`. Below
/// the knee it waits for every post; above (`overload`) it stops once the
/// offered time is over.
fn run(setup: Setup, pg: Option<&TestPostgres>, rate: u64, seconds: u64, overload: bool) -> Run {
    let (mut side, slack, url, cold, db) = start(setup, pg);
    let probing = std::sync::atomic::AtomicBool::new(true);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let total = rate * seconds;
    // `PAGEHOOK_BENCH_PROBE=1` (PostgreSQL): where the backlog sits, twice
    // a second while events are offered: events not yet dispatched,
    // deliveries not yet sent.
    let ((sent, window), samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            let (Some(pg), Some(db), Some(_)) =
                (pg, db.as_ref(), std::env::var_os("PAGEHOOK_BENCH_PROBE"))
            else {
                return samples;
            };
            while probing.load(std::sync::atomic::Ordering::Relaxed) {
                samples.push(pg.psql(
                    db,
                    "SELECT (SELECT count(*) FROM events WHERE status = 'pending') || '/' || \
                     (SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending'))",
                ));
                std::thread::sleep(Duration::from_millis(500));
            }
            samples
        });
        let offered = rt.block_on(async {
            let client = reqwest::Client::new();
            let start = Instant::now();
            let mut tasks = Vec::new();
            for n in 0..total {
                let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let (client, url) = (client.clone(), url.clone());
                let space = setup.target(n).1;
                tasks.push(tokio::spawn(async move {
                    let (body, sig) = signed(n, &space);
                    let at = Instant::now();
                    let answer = client
                        .post(&url)
                        .header("X-Hub-Signature", sig)
                        .body(body)
                        .send()
                        .await
                        .ok()?;
                    if answer.status().as_u16() != 202 {
                        return None;
                    }
                    let v: serde_json::Value = answer.json().await.ok()?;
                    Some((v["id"].as_i64()?, at))
                }));
            }
            let end = Instant::now();
            let mut sent = HashMap::new();
            for t in tasks {
                if let Some((id, at)) = t.await.unwrap() {
                    sent.insert(id, at);
                }
            }
            (sent, (start, end))
        });
        probing.store(false, std::sync::atomic::Ordering::Relaxed);
        (offered, sampler.join().unwrap())
    });
    if !samples.is_empty() {
        eprintln!("  undispatched/unsent every 0.5 s: {}", samples.join(" "));
    }
    let posts: Vec<SlackPost> = if overload {
        slack.posts()
    } else {
        let (mut seen, mut since) = (0, Instant::now());
        loop {
            let posts = slack.posts();
            if posts.len() > sent.len() || since.elapsed() > QUIET {
                break posts;
            }
            if posts.len() > seen {
                (seen, since) = (posts.len(), Instant::now());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    side.kill();
    if let (Some(pg), Some(db), Some(_)) =
        (pg, db.as_ref(), std::env::var_os("PAGEHOOK_BENCH_PROBE"))
    {
        eprintln!("  stages, p50/p99 ms (ms clocks): {}", stages(pg, db));
        if std::env::var_os("PAGEHOOK_TEST_PG_OPTIONS")
            .is_some_and(|o| o.to_string_lossy().contains("pg_stat_statements"))
        {
            eprintln!("{}", statements(pg, db));
        }
    }
    let mut first: HashMap<i64, Instant> = HashMap::new();
    for p in posts.iter().skip(1) {
        if let Some(id) = p
            .metadata
            .as_ref()
            .and_then(|m| m["event_payload"]["event_id"].as_i64())
            && sent.contains_key(&id)
        {
            first.entry(id).or_insert(p.received_at);
        }
    }
    let mut latencies: Vec<Duration> = first
        .iter()
        .map(|(id, at)| at.saturating_duration_since(sent[id]))
        .collect();
    latencies.sort();
    let (from, to) = window;
    if std::env::var_os("PAGEHOOK_BENCH_PROBE").is_some() {
        eprintln!(
            "  p99 of the events sent in each second: {}",
            p99_by_second(&sent, &first, from)
        );
    }
    let in_window = first
        .values()
        .filter(|at| **at >= from && **at <= to)
        .count();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Run {
        offered: rate,
        accepted: sent.len(),
        delivered_per_s: in_window as f64 / (to - from).as_secs_f64(),
        p50: quantile(0.5),
        p99: quantile(0.99),
        not_posted: sent.len() - first.len(),
        refused_429: slack.rate_limited_posts(),
        cold,
    }
}

/// Where an event's time went on PostgreSQL, p50/p99 over the run's
/// deliveries, from the store's own millisecond times: received (the ingest
/// writer took it) to dispatched, dispatched to the delivery's attempt
/// starting, and the attempt (the request to Slack and its answer).
fn stages(pg: &TestPostgres, db: &str) -> String {
    pg.psql(
        db,
        "WITH s AS (SELECT e.dispatched_at - e.received_at AS dispatch,
                           a.at - e.dispatched_at AS claim, a.latency_ms AS send
                    FROM deliveries d JOIN events e ON e.id = d.event_id
                    JOIN attempts a ON a.delivery_id = d.id)
         SELECT 'received→dispatched ' || percentile_disc(0.5) WITHIN GROUP (ORDER BY dispatch)
             || '/' || percentile_disc(0.99) WITHIN GROUP (ORDER BY dispatch)
             || ', dispatched→attempt ' || percentile_disc(0.5) WITHIN GROUP (ORDER BY claim)
             || '/' || percentile_disc(0.99) WITHIN GROUP (ORDER BY claim)
             || ', attempt ' || percentile_disc(0.5) WITHIN GROUP (ORDER BY send)
             || '/' || percentile_disc(0.99) WITHIN GROUP (ORDER BY send) FROM s",
    )
    .trim()
    .to_owned()
}

/// The statements the server ran most, per event of the run (with
/// `PAGEHOOK_TEST_PG_OPTIONS=-c shared_preload_libraries=pg_stat_statements`).
fn statements(pg: &TestPostgres, db: &str) -> String {
    pg.psql(db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    let out = pg.psql(
        db,
        "WITH n AS (SELECT count(*)::float AS events FROM events)
         SELECT round((calls / n.events)::numeric, 2) || ' calls/event, '
             || round((total_exec_time * 1000 / n.events)::numeric) || ' µs/event: '
             || left(regexp_replace(query, '\\s+', ' ', 'g'), 110)
         FROM pg_stat_statements, n
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         ORDER BY calls DESC LIMIT 40",
    );
    pg.psql(db, "SELECT pg_stat_statements_reset()");
    out
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs one setup: its fixed rates, then (one channel) rates above them to
/// find the knee, then twice the knee; returns the runs and the knee.
fn setup_runs(setup: Setup, pg: Option<&TestPostgres>, seconds: u64) -> (Vec<Run>, f64) {
    let mut runs: Vec<Run> = Vec::new();
    let measure = |rate: u64, overload: bool, runs: &mut Vec<Run>| {
        let r = run(setup, pg, rate, seconds, overload);
        eprintln!(
            "{} {}: offered {rate}/s, delivered {:.0}/s, p99 {}, not posted {} (load {})",
            setup.store(),
            setup.name(),
            r.delivered_per_s,
            ms(r.p99),
            r.not_posted,
            load_average()
        );
        runs.push(r);
    };
    if !full() {
        measure(100, false, &mut runs);
        return (runs, 0.0);
    }
    if let Some(rates) = only_rates() {
        for rate in rates {
            measure(rate, false, &mut runs);
        }
        return (runs, 0.0);
    }
    if setup.channels == 1 {
        measure(100, false, &mut runs);
        measure(1_000, false, &mut runs);
        // Up until it falls behind what is offered.
        for rate in [2_000, 3_000, 4_000, 6_000] {
            measure(rate, true, &mut runs);
            if runs
                .last()
                .is_some_and(|r| r.delivered_per_s < 0.9 * rate as f64)
            {
                break;
            }
        }
    } else {
        measure(100, false, &mut runs);
    }
    let knee = if setup.channels == 1 {
        runs.iter().map(|r| r.delivered_per_s).fold(0.0, f64::max)
    } else {
        CHANNELS as f64
    };
    let twice = ((2.0 * knee / 100.0).round() as u64).max(1) * 100;
    measure(twice, true, &mut runs);
    if setup.channels > 1 {
        measure(1_000, true, &mut runs);
    }
    (runs, knee)
}

/// `PAGEHOOK_BENCH_RATES=1000,1000`: only these runs of the one-channel
/// setup, each waiting for every post (for comparing builds at one rate).
fn only_rates() -> Option<Vec<u64>> {
    let rates = std::env::var("PAGEHOOK_BENCH_RATES").ok()?;
    Some(
        rates
            .split(',')
            .filter_map(|r| r.trim().parse().ok())
            .collect(),
    )
}

fn main() {
    let seconds = seconds();
    let began = Instant::now();
    eprintln!("load average at start: {}", load_average());
    let pg = TestPostgres::start();
    let mut all = Vec::new();
    // `PAGEHOOK_BENCH_STORE=sqlite` or `postgres`: only that store.
    let only = std::env::var("PAGEHOOK_BENCH_STORE").unwrap_or_default();
    for postgres in [false, true] {
        if (only == "sqlite" && postgres) || (only == "postgres" && !postgres) {
            continue;
        }
        for channels in [1, CHANNELS] {
            if channels > 1 && only_rates().is_some() {
                continue;
            }
            let setup = Setup { postgres, channels };
            let (runs, knee) = setup_runs(setup, postgres.then_some(&pg), seconds);
            all.push((setup, runs, knee));
        }
    }
    drop(pg);
    println!(
        "\n{seconds} s per run; delivered/s counts posts that arrived while events were offered\n"
    );
    println!(
        "| store | setup | offered/s | delivered/s | p50 webhook → Slack | p99 | not posted at the end | 429s | first message |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (setup, runs, _) in &all {
        for r in runs {
            println!(
                "| {} | {} | {} | {:.0} | {} | {} | {} of {} | {} | {} |",
                setup.store(),
                setup.name(),
                r.offered,
                r.delivered_per_s,
                ms(r.p50),
                ms(r.p99),
                r.not_posted,
                r.accepted,
                r.refused_429,
                ms(r.cold)
            );
        }
    }
    println!();
    for (setup, _, knee) in &all {
        println!("knee, {} {}: {knee:.0}/s", setup.store(), setup.name());
    }
    println!(
        "\nwhole run {:.0} s; load average at the end: {}",
        began.elapsed().as_secs_f64(),
        load_average()
    );
}

/// The p99 latency (ms) of the events sent in each second of a run, to
/// tell a tail spread over the run from one of its start or of a stall.
fn p99_by_second(
    sent: &HashMap<i64, Instant>,
    first: &HashMap<i64, Instant>,
    from: Instant,
) -> String {
    let mut seconds: Vec<Vec<Duration>> = Vec::new();
    for (id, at) in first {
        let second = sent[id].saturating_duration_since(from).as_secs() as usize;
        if seconds.len() <= second {
            seconds.resize(second + 1, Vec::new());
        }
        seconds[second].push(at.saturating_duration_since(sent[id]));
    }
    seconds
        .iter_mut()
        .map(|l| {
            l.sort();
            l.get((l.len() as f64 * 0.99) as usize)
                .or(l.last())
                .map_or("-".into(), |d| format!("{}", d.as_millis()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}
