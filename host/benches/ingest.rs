//! Ingest throughput and latency: signed webhooks accepted durably by the
//! real `pagehook serve` (release build, WAL, each answer after its batch
//! is synced to disk) against a bare axum handler that answers 202 and does
//! nothing, both driven by the same load generator in one run: 64
//! keep-alive connections, each request a distinct signed event. The two
//! are measured in alternating rounds, so a change in the shared machine's
//! load falls on both rather than on whichever ran second. Also the
//! resident memory of `pagehook serve` idle (the three bundled plugins
//! installed, bound and loaded) and under this load.
//!
//! `cargo bench -p pagehook --bench ingest` (or `make bench`) after
//! `make plugins`. Figures go to docs/benchmarks.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// A bench uses a few of the integration tests' harnesses; the rest are
// theirs (the `it` binary uses every one, and warns there when one is not).
#[allow(dead_code)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use common::sidecar::{HOOK_SECRET, Sidecar, sign};

const CONNECTIONS: usize = 64;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(8);
/// Alternating rounds of ingest alone and the bare handler, and their length.
const ROUNDS: u64 = 4;
const ROUND_WARMUP: Duration = Duration::from_secs(1);
const ROUND_MEASURE: Duration = Duration::from_secs(3);

/// A distinct, signed id-only `page_updated` webhook.
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

/// What one load run saw: every measured request's latency, and for how long.
struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

struct Run {
    requests: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
}

impl Run {
    /// Rate and percentiles over the samples of one or more runs together.
    fn of(samples: Vec<Sample>) -> Run {
        let elapsed: Duration = samples.iter().map(|s| s.elapsed).sum();
        let mut all: Vec<Duration> = samples.into_iter().flat_map(|s| s.latencies).collect();
        all.sort();
        Run {
            requests: all.len(),
            rps: all.len() as f64 / elapsed.as_secs_f64(),
            p50: all[all.len() / 2],
            p99: all[all.len() * 99 / 100],
        }
    }
}

/// Drives `url` with CONNECTIONS keep-alive clients for `warmup` + `measure`;
/// `during` is called once per 100 ms of the measured part.
async fn load(
    url: String,
    offset: u64,
    (warmup, measure): (Duration, Duration),
    mut during: impl FnMut(),
) -> Sample {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (url, stop, measuring) = (url.clone(), stop.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            let mut n = offset + c as u64 * 10_000_000;
            while !stop.load(Ordering::Relaxed) {
                let (body, sig) = webhook(n);
                n += 1;
                let start = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("X-Hub-Signature", sig)
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(answer.status().as_u16(), 202, "{:?}", answer.text().await);
                let _ = answer.bytes().await;
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(start.elapsed());
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    while start.elapsed() < measure {
        tokio::time::sleep(Duration::from_millis(100)).await;
        during();
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Sample { latencies, elapsed }
}

/// Serves the baseline, axum answering 202, on its own runtime with as many
/// workers as the sidecar has; returns its webhook URL.
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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until no event is pending (dispatch has caught up).
fn wait_until_dispatched(side: &Sidecar) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let out = side.cli_output(&["events", "--status", "pending", "--limit", "1", "--json"]);
        if String::from_utf8_lossy(&out.stdout).trim() == "[]" || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn main() {
    // The default delivery settings: dry-run deliveries keep Slack's rates.
    let mut side = Sidecar::with_delivery("");
    // A webhook-only source (nothing to enrich from) and dry-run targets:
    // the sidecar does all its own work, and nothing leaves the machine.
    side.cli(&[
        "connect",
        "confluence",
        "bench",
        "--url",
        "http://127.0.0.1:9",
        "--webhook-secret-env",
        "PAGEHOOK_TEST_HOOK_SECRET",
    ]);
    side.cli(&[
        "connect",
        "slack",
        "bench-slack",
        "--token",
        "xoxb-bench",
        "--dry-run",
    ]);
    side.cli(&[
        "connect",
        "teams",
        "bench-teams",
        "--url",
        "http://127.0.0.1:9/wf",
        "--dry-run",
    ]);
    for (plugin, grants) in [
        ("slack-poster", &["post-slack", "dm-slack"][..]),
        ("teams-poster", &["post-teams"][..]),
        ("retro-writer", &["create-page", "add-comment"][..]),
    ] {
        side.install(plugin, grants);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let baseline_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bare_url = bare_axum(&baseline_rt);
    side.start();
    let pid = side.pid();
    let url = format!("{}/hooks/confluence/bench", side.base);
    // 1. Ingest alone (events stored durably, no binding to dispatch them
    //    to) and the bare handler, in alternating rounds.
    let (mut alone, mut bare) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let span = (ROUND_WARMUP, ROUND_MEASURE);
        alone.push(rt.block_on(load(url.clone(), round << 34, span, || {})));
        // The sidecar finishes dispatching its backlog first, so it takes
        // nothing from the baseline's round.
        wait_until_dispatched(&side);
        bare.push(rt.block_on(load(bare_url.clone(), round << 34, span, || {})));
    }
    let (alone, bare) = (Run::of(alone), Run::of(bare));

    // 2. With the three plugins bound: every event is also dispatched and
    //    its deliveries recorded (dry run), on the same two cores. First the
    //    backlog of part 1 drains (no bindings: quick).
    wait_until_dispatched(&side);
    side.cli(&[
        "bind",
        "slack-poster",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
        "--set",
        "skip-personal-spaces=false",
    ]);
    side.cli(&[
        "bind",
        "teams-poster",
        "--to",
        "teams:bench-teams",
        "--set",
        "channel=bench-teams",
    ]);
    side.cli(&[
        "bind",
        "retro-writer",
        "--to",
        "confluence:*",
        "--to",
        "comment:*",
    ]);
    // One event loads the plugins; then let it settle.
    rt.block_on(async {
        let (body, sig) = webhook(1 << 50);
        let r = reqwest::Client::new()
            .post(&url)
            .header("X-Hub-Signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    });
    wait_until_dispatched(&side);
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_kib(pid);
    let mut peak_rss = idle_rss;
    let sidecar = Run::of(vec![rt.block_on(load(
        url,
        1 << 40,
        (WARMUP, MEASURE),
        || {
            peak_rss = peak_rss.max(rss_kib(pid));
        },
    ))]);
    side.kill();

    println!("| server | requests | accepted/s | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, r) in [
        ("pagehook serve, ingest alone (durable)", &alone),
        (
            "pagehook serve, ingest + dispatch to 3 plugins + delivery records",
            &sidecar,
        ),
        ("bare axum 202", &bare),
    ] {
        println!(
            "| {name} | {} | {:.0} | {:.2} ms | {:.2} ms |",
            r.requests,
            r.rps,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3
        );
    }
    println!(
        "\ndurable ingest / bare baseline: {:.0} % alone, {:.0} % while dispatching",
        100.0 * alone.rps / bare.rps,
        100.0 * sidecar.rps / bare.rps
    );
    println!(
        "resident memory of pagehook serve: idle with 3 plugins loaded {:.1} MiB, peak under load {:.1} MiB",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
}
