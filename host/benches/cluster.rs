//! Cluster mode: ingest and end-to-end throughput and latency with 1, 2 and 3
//! `pagehook serve` replicas on one PostgreSQL database, beside one replica
//! on SQLite and the bare axum handler, all measured in one run.
//!
//! Every setup gets its own config directory and, on PostgreSQL, a fresh
//! database on one throwaway server (`TestPostgres`); the replicas of a
//! setup are release `pagehook serve` processes sharing that config. The
//! load generator in this process spreads requests round-robin over the
//! replicas, request by request, as a load balancer in front of them would.
//!
//! 1. Ingest: CONNECTIONS keep-alive clients post distinct signed
//!    `page_updated` webhooks for the measured time (no bindings: ingest
//!    alone). Right after each setup's round, with its replicas stopped, the
//!    bare axum 202 handler gets a round of the same load, and the setup's
//!    ratio is taken against that neighbouring round, so drift in the shared
//!    machine's load falls on both.
//! 2. End to end: slack-poster bound to `#eng` at a fake Slack (rate limits
//!    raised out of the way, as in the end_to_end bench), E2E_RATE distinct
//!    signed `page_created` webhooks a second; latency from sending the
//!    webhook to the fake Slack receiving the post, and every accepted event
//!    checked for exactly one post.
//!
//! `cargo bench -p pagehook --bench cluster` (or `make bench`) after `make
//! plugins` and `make postgres`. `PAGEHOOK_BENCH_SECONDS` (default 5; 1
//! under `cargo test --benches`) sets the length of each measured part.
//! Figures go to docs/benchmarks.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pagehook_fakes::FakeSlack;
use pagehook_fakes::postgres::TestPostgres;

// A bench uses a few of the integration tests' harnesses; the rest are
// theirs (the `it` binary uses every one, and warns there when one is not).
#[allow(dead_code)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use common::sidecar::{HOOK_SECRET, Sidecar, sign};

/// Keep-alive clients of the ingest load, as in the ingest bench, so the
/// SQLite ratio compares with its figures.
const CONNECTIONS: usize = 64;
/// Load before each ingest measurement starts.
const WARMUP: Duration = Duration::from_secs(1);
/// Offered webhooks per second end to end.
const E2E_RATE: u64 = 500;
/// Channels of the second end-to-end measure.
const E2E_CHANNELS: usize = 16;
/// How long to wait for the last posts once nothing new arrives.
const E2E_QUIET: Duration = Duration::from_secs(15);
/// How long to keep watching for a second post of an event after all arrived.
const E2E_LINGER: Duration = Duration::from_secs(2);
const TOKEN: &str = "xoxb-bench";

/// Seconds of each measured part: `PAGEHOOK_BENCH_SECONDS`, default 5; 1
/// when run without `--bench` (by `cargo test --benches`: a smoke test).
fn seconds() -> u64 {
    let default = if std::env::args().any(|a| a == "--bench") {
        5
    } else {
        1
    };
    std::env::var("PAGEHOOK_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&s| s > 0)
        .unwrap_or(default)
}

/// A store and how many replicas serve from it.
#[derive(Clone, Copy)]
struct Setup {
    postgres: bool,
    replicas: usize,
}

impl Setup {
    fn name(&self) -> String {
        let store = if self.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        let s = if self.replicas == 1 { "" } else { "s" };
        format!("{store}, {} replica{s}", self.replicas)
    }
}

const SETUPS: [Setup; 4] = [
    Setup {
        postgres: false,
        replicas: 1,
    },
    Setup {
        postgres: true,
        replicas: 1,
    },
    Setup {
        postgres: true,
        replicas: 2,
    },
    Setup {
        postgres: true,
        replicas: 3,
    },
];

/// A config directory (for the CLI) with the given `[delivery]` section, on
/// a fresh PostgreSQL database when `setup.postgres`, with the webhook-only
/// source `bench`.
fn configure(setup: Setup, pg: &TestPostgres, delivery: &str) -> Sidecar {
    let side = if setup.postgres {
        Sidecar::on_postgres(&pg.url(&pg.fresh_database()), pg.password(), "", delivery)
    } else {
        // An absolute database path, so the replica's copy of the config
        // (see `start_replicas`) names this same file.
        let side = Sidecar::with_delivery(delivery);
        let mut config = std::fs::read_to_string(side.config()).unwrap();
        config.push_str(&format!("\n[store]\ndatabase = {:?}\n", side.database()));
        std::fs::write(side.config(), config).unwrap();
        side
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
    side
}

/// `n` running `pagehook serve` replicas of `side`'s config (each killed
/// when dropped). On SQLite only one may serve the file: `n` is 1 there.
fn start_replicas(side: &Sidecar, n: usize) -> Vec<Sidecar> {
    (0..n)
        .map(|_| {
            let mut replica = side.replica();
            replica.start();
            replica
        })
        .collect()
}

/// A replica's webhook URL for the source `bench`.
fn hook_url(replica: &Sidecar) -> String {
    format!("{}/hooks/confluence/bench", replica.base)
}

/// A distinct, signed id-only `page_updated` webhook (as the ingest bench).
fn webhook(n: u64) -> (Vec<u8>, String) {
    let body = format!(
        r#"{{"timestamp":{},"event":"page_updated","userKey":"8a7f80839e460b0f019e460ba6440001","page":{{"id":{}}},"updateTrigger":"edit_page"}}"#,
        1_768_000_000_000u64 + n,
        2_818_051 + n % 1000
    )
    .into_bytes();
    let sig = sign(HOOK_SECRET, &body);
    (body, sig)
}

/// A distinct, signed, rich `page_created` webhook (as the end_to_end bench)
/// in space `space`.
fn signed(n: u64, space: &str) -> (Vec<u8>, String) {
    let body = format!(
        r#"{{"timestamp":{},"event":"page_created","userKey":"8a7f80839e460b0f019e460ba6440001","page":{{"id":{},"title":"Bench page {n}","spaceKey":"{space}","self":"https://wiki.example.com/pages/{n}","version":1}}}}"#,
        1_768_000_000_000u64 + n,
        3_000_000 + n
    )
    .into_bytes();
    let sig = sign(HOOK_SECRET, &body);
    (body, sig)
}

/// The `q`-quantile of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// One ingest round: accepted requests per second and their latencies.
struct Ingest {
    requests: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
    /// Requests not answered 202 (or not answered at all).
    errors: usize,
}

/// Drives `urls` round-robin with CONNECTIONS keep-alive clients for WARMUP,
/// then measures for `measure`.
async fn load(urls: Vec<String>, offset: u64, measure: Duration) -> Ingest {
    let urls = Arc::new(urls);
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (urls, stop, measuring) = (urls.clone(), stop.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let (mut latencies, mut errors) = (Vec::new(), 0);
            let mut n = offset + c as u64 * 10_000_000;
            // Round-robin, each client starting at a different replica.
            let mut next = c;
            while !stop.load(Ordering::Relaxed) {
                let url = &urls[next % urls.len()];
                next += 1;
                let (body, sig) = webhook(n);
                n += 1;
                let start = Instant::now();
                let answer = client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("X-Hub-Signature", sig)
                    .body(body)
                    .send()
                    .await;
                let accepted = match answer {
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        let _ = answer.bytes().await;
                        status == 202
                    }
                    Err(_) => false,
                };
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                if accepted {
                    latencies.push(start.elapsed());
                } else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(measure).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (latencies, e) = t.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    all.sort();
    Ingest {
        requests: all.len(),
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: quantile(&all, 0.5),
        p99: quantile(&all, 0.99),
        errors,
    }
}

/// Serves the baseline, axum answering 202, on its own runtime; returns its
/// webhook URL.
fn bare_axum(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        let app = axum::Router::new().route(
            "/hooks/confluence/{source}",
            axum::routing::post(|_body: axum::body::Bytes| async {
                axum::http::StatusCode::ACCEPTED
            }),
        );
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}/hooks/confluence/bench")
}

/// One end-to-end run.
struct EndToEnd {
    sent: usize,
    /// Webhooks not answered 202.
    refused: usize,
    delivered_per_s: f64,
    p50: Duration,
    p99: Duration,
    /// Accepted events with no post.
    lost: usize,
    /// Accepted events posted more than once.
    twice: usize,
    /// Posts of events nobody sent (or sent before the measured part).
    strays: usize,
}

/// Posts at `slack` once there are `n`, or once none arrived for E2E_QUIET.
fn wait_for_posts(slack: &FakeSlack, n: usize) -> Vec<pagehook_fakes::SlackPost> {
    let (mut seen, mut since) = (0, Instant::now());
    loop {
        let posts = slack.posts();
        if posts.len() >= n || since.elapsed() > E2E_QUIET {
            return posts;
        }
        if posts.len() > seen {
            (seen, since) = (posts.len(), Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn event_id(post: &pagehook_fakes::SlackPost) -> Option<i64> {
    post.metadata.as_ref()?["event_payload"]["event_id"].as_i64()
}

/// The space of event `n` when events go to `channels` channels (one space
/// bound to each channel).
fn space(n: u64, channels: usize) -> String {
    format!("S{}", n % channels as u64)
}

/// Offers E2E_RATE events/s for `seconds` over `setup`'s replicas, spread
/// over `channels` Slack channels (each a lane of its own).
fn end_to_end(
    setup: Setup,
    pg: &TestPostgres,
    rt: &tokio::runtime::Runtime,
    seconds: u64,
    channels: usize,
) -> EndToEnd {
    let slack = FakeSlack::start(TOKEN);
    let side = configure(
        setup,
        pg,
        "slack-channel-rate = 100000.0\nslack-workspace-rate = 100000.0\n",
    );
    side.connect_slack("bench-slack", &slack.base_url(), TOKEN);
    for c in 0..channels {
        let name = format!("ch{c}");
        slack.add_channel(&name, &format!("C0CH{c:06}"), true);
        let scope = format!("space:S{c}");
        // One post per event: the bench counts them (a burst in one space
        // is what digests would gather).
        side.bind_slack_poster(&name, &["--scope", &scope, "--digest", "off"]);
    }
    let replicas = start_replicas(&side, setup.replicas);
    let urls: Vec<String> = replicas.iter().map(hook_url).collect();

    // Warm-up: one event through each replica (loads the plugin, resolves
    // #eng), all posted before the measured part starts.
    let warm = urls.len();
    for (i, url) in urls.iter().enumerate() {
        let n = u64::from(u32::MAX) + i as u64;
        let (body, sig) = signed(n, &space(n, channels));
        let answer = reqwest::blocking::Client::new()
            .post(url)
            .header("X-Hub-Signature", sig)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202);
    }
    let posts = wait_for_posts(&slack, warm);
    assert!(posts.len() >= warm, "the warm-up events were not posted");

    let total = E2E_RATE * seconds;
    let (sent, refused): (HashMap<i64, Instant>, usize) = rt.block_on(async {
        let client = reqwest::Client::new();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for n in 0..total {
            let due = start + Duration::from_secs_f64(n as f64 / E2E_RATE as f64);
            tokio::time::sleep_until(due.into()).await;
            let (client, url) = (client.clone(), urls[n as usize % urls.len()].clone());
            tasks.push(tokio::spawn(async move {
                let (body, sig) = signed(n, &space(n, channels));
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
        let (mut sent, mut refused) = (HashMap::new(), 0);
        for t in tasks {
            match t.await.unwrap() {
                Some((id, at)) => {
                    sent.insert(id, at);
                }
                None => refused += 1,
            }
        }
        (sent, refused)
    });
    let _ = wait_for_posts(&slack, warm + sent.len());
    std::thread::sleep(E2E_LINGER);
    let posts = slack.posts();
    drop(replicas);

    let mut first: HashMap<i64, Instant> = HashMap::new();
    let mut count: HashMap<i64, usize> = HashMap::new();
    let mut strays = 0;
    for post in posts.iter().skip(warm) {
        match event_id(post).filter(|id| sent.contains_key(id)) {
            Some(id) => {
                *count.entry(id).or_default() += 1;
                first.entry(id).or_insert(post.received_at);
            }
            None => strays += 1,
        }
    }
    let mut latencies: Vec<Duration> = first
        .iter()
        .map(|(id, at)| at.saturating_duration_since(sent[id]))
        .collect();
    latencies.sort();
    let delivered_per_s = match (sent.values().min(), first.values().max()) {
        (Some(a), Some(b)) => first.len() as f64 / b.saturating_duration_since(*a).as_secs_f64(),
        _ => 0.0,
    };
    EndToEnd {
        sent: sent.len() + refused,
        refused,
        delivered_per_s,
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        lost: sent.len() - first.len(),
        twice: count.values().filter(|&&c| c > 1).count(),
        strays,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let seconds = seconds();
    let measure = Duration::from_secs(seconds);
    let began = Instant::now();
    eprintln!("load average at start: {}", load_average());
    let pg = TestPostgres::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let baseline_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bare_url = bare_axum(&baseline_rt);

    // 1. Ingest alone, each setup followed by a round of the bare handler.
    let mut ingest = Vec::new();
    for (round, setup) in SETUPS.into_iter().enumerate() {
        let offset = (round as u64) << 34;
        let side = configure(setup, &pg, "");
        let replicas = start_replicas(&side, setup.replicas);
        let urls = replicas.iter().map(hook_url).collect();
        let run = rt.block_on(load(urls, offset, measure));
        drop(replicas);
        drop(side);
        let bare = rt.block_on(load(vec![bare_url.clone()], offset, measure));
        eprintln!(
            "ingest {}: {:.0}/s, bare axum {:.0}/s",
            setup.name(),
            run.rps,
            bare.rps
        );
        ingest.push((setup, run, bare));
    }

    // 2. End to end, to one channel (one lane: every delivery waits for the
    // one before) and to E2E_CHANNELS channels.
    let mut e2e = Vec::new();
    for channels in [1, E2E_CHANNELS] {
        for setup in SETUPS {
            let run = end_to_end(setup, &pg, &rt, seconds, channels);
            eprintln!(
                "end to end {}, {channels} channel(s): {:.0}/s delivered, p99 {}",
                setup.name(),
                run.delivered_per_s,
                ms(run.p99)
            );
            e2e.push((channels, setup, run));
        }
    }
    drop(pg);

    println!(
        "\nIngest alone: {CONNECTIONS} keep-alive clients, distinct signed webhooks, {seconds} s measured after {} s warm-up per round\n",
        WARMUP.as_secs()
    );
    println!(
        "| setup | accepted | accepted/s | p50 | p99 | not 202 | bare axum 202 beside it | ratio to bare |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (setup, run, bare) in &ingest {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.0}/s (p99 {}) | {:.0} % |",
            setup.name(),
            run.requests,
            run.rps,
            ms(run.p50),
            ms(run.p99),
            run.errors,
            bare.rps,
            ms(bare.p99),
            100.0 * run.rps / bare.rps
        );
    }
    println!(
        "\nEnd to end: {E2E_RATE} signed webhooks/s offered for {seconds} s, slack-poster to 1 or {E2E_CHANNELS} channels at a fake Slack\n"
    );
    println!(
        "| channels | setup | sent | not 202 | delivered/s | p50 webhook → Slack | p99 | not delivered | delivered twice | stray posts |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (channels, setup, run) in &e2e {
        println!(
            "| {channels} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            setup.name(),
            run.sent,
            run.refused,
            run.delivered_per_s,
            ms(run.p50),
            ms(run.p99),
            run.lost,
            run.twice,
            run.strays
        );
    }
    println!(
        "\nwhole run {:.0} s; load average at the end: {}",
        began.elapsed().as_secs_f64(),
        load_average()
    );
}
