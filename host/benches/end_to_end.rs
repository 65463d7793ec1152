//! End to end: events per second from signed webhook to a post at a fake
//! Slack on loopback, and the latency from sending the webhook to Slack
//! receiving the message (p50/p99), at a fixed offered rate.
//!
//! The release `pagehook serve` runs slack-poster bound to one channel with
//! the per-channel rate limit raised out of the way (standing in for "many
//! channels"), a webhook-only source (no enrichment round trip) and the
//! default durability (each webhook answered once its event is synced).
//! The channel is given by name and is the last of 5,000 in a fake Slack
//! that follows Slack's spec (query-only reads, 1,000 a page, tier limits),
//! so the name is resolved by paging as in a large workspace.
//!
//! `cargo bench -p pagehook --bench end_to_end` (or `make bench`) after
//! `make plugins`. Figures go to docs/benchmarks.md.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pagehook_fakes::FakeSlack;

#[path = "../tests/it/common/mod.rs"]
mod common;

use common::sidecar::{HOOK_SECRET, Sidecar, sign};

const TOKEN: &str = "xoxb-bench";

/// A distinct, signed, rich `page_created` webhook.
fn signed(n: u64) -> (Vec<u8>, String) {
    let body = format!(
        r#"{{"timestamp":{},"event":"page_created","userKey":"8a7f80839e460b0f019e460ba6440001","page":{{"id":{},"title":"Bench page {n}","spaceKey":"ENG","self":"https://wiki.example.com/pages/{n}","version":1}}}}"#,
        1_768_000_000_000u64 + n,
        3_000_000 + n
    )
    .into_bytes();
    let sig = sign(HOOK_SECRET, &body);
    (body, sig)
}

/// Offers `rate` events/s for `seconds` after one warm-up event; returns
/// (delivered/s, p50, p99, lost, the warm-up's latency). The warm-up's post
/// is the one that resolves `#eng` (five `conversations.list` pages); the
/// measured events find the name in the directory's cache, as every event
/// after the first does in a running sidecar.
fn run(rate: u64, seconds: u64) -> (f64, Duration, Duration, usize, Duration) {
    let slack = FakeSlack::start(TOKEN);
    slack.add_numbered_channels("team", 4_999);
    slack.add_channel("eng", "C0ENG00001", true);
    let mut side =
        Sidecar::with_delivery("slack-channel-rate = 100000.0\nslack-workspace-rate = 100000.0\n");
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
        "--url",
        &slack.base_url(),
        "--token",
        TOKEN,
    ]);
    side.install("slack-poster", &["post-slack", "dm-slack"]);
    side.cli(&[
        "bind",
        "slack-poster",
        "--quiet",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    side.start();
    let url = format!("{}/hooks/confluence/bench", side.base);
    let cold = {
        let (body, sig) = signed(u64::from(u32::MAX));
        let at = Instant::now();
        let answer = reqwest::blocking::Client::new()
            .post(&url)
            .header("X-Hub-Signature", sig)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202);
        slack.wait_for_posts(1, Duration::from_secs(30))[0]
            .received_at
            .saturating_duration_since(at)
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let total = rate * seconds;
    let sent: HashMap<i64, Instant> = rt.block_on(async {
        let client = reqwest::Client::new();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for n in 0..total {
            let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let (body, sig) = signed(n);
                let at = Instant::now();
                let r = client
                    .post(&url)
                    .header("X-Hub-Signature", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let v: serde_json::Value = r.json().await.unwrap();
                (v["id"].as_i64().unwrap(), at)
            }));
        }
        let mut sent = HashMap::new();
        for t in tasks {
            let (id, at) = t.await.unwrap();
            sent.insert(id, at);
        }
        sent
    });
    let posts = slack.wait_for_posts(total as usize + 1, Duration::from_secs(120));
    let posts: Vec<_> = posts.into_iter().skip(1).collect();
    side.kill();
    let mut latencies: Vec<Duration> = posts
        .iter()
        .filter_map(|p| {
            let event = p.metadata.as_ref()?["event_payload"]["event_id"].as_i64()?;
            Some(p.received_at.saturating_duration_since(*sent.get(&event)?))
        })
        .collect();
    latencies.sort();
    let first = sent.values().min().copied().unwrap();
    let last = posts.iter().map(|p| p.received_at).max().unwrap();
    let rate = posts.len() as f64 / (last - first).as_secs_f64();
    (
        rate,
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        total as usize - posts.len(),
        cold,
    )
}

fn main() {
    println!(
        "| offered events/s | delivered/s | p50 webhook → Slack | p99 | not delivered | first message (resolves #eng) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (rate, seconds) in [(100, 10), (1000, 5)] {
        let (delivered, p50, p99, lost, cold) = run(rate, seconds);
        println!(
            "| {rate} | {delivered:.0} | {:.1} ms | {:.1} ms | {lost} | {:.1} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            cold.as_secs_f64() * 1e3
        );
    }
}
