//! A plugin that misbehaves on purpose, chosen by the `mode` setting, so the
//! host's tests can prove each sandbox limit stops it with the right typed
//! error and that the host keeps serving other plugins afterwards.
//!
//! Every mode is the smallest code that attacks one limit; nothing here is an
//! example to follow.

use std::hint::black_box;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pagehook_guest::slack::Mrkdwn;
use pagehook_guest::{Action, Event, Plugin, Settings, SlackMessage, log};

/// The misbehaving plugin.
pub struct Hostile;

impl Plugin for Hostile {
    fn handle(_event: Event, settings: Settings) -> Result<Vec<Action>, String> {
        match settings.string_or("mode", "ok") {
            "ok" => Ok(vec![post("ok")]),
            "loop" => spin(),
            "memory" => hoard(),
            "recursion" => Ok(vec![post(&recurse(black_box(1)).to_string())]),
            "panic" => panic!("hostile plugin panicked on purpose"),
            "many-actions" => {
                let count = settings.u64_or("count", 1_000)?;
                Ok((0..count).map(|i| post(&i.to_string())).collect())
            }
            "big-action" => {
                let size = settings.u64_or("size", 2_000_000)? as usize;
                Ok(vec![post(&"x".repeat(size))])
            }
            "log" => {
                let line = "y".repeat(1024);
                for _ in 0..10 * 1024 {
                    log::info(&line);
                }
                Ok(vec![])
            }
            "stdout" => {
                let line = "z".repeat(1024);
                let mut out = std::io::stdout();
                for _ in 0..10 * 1024 {
                    writeln!(out, "{line}").map_err(|e| e.to_string())?;
                }
                Ok(vec![])
            }
            "remember" => Ok(vec![post(&remember())]),
            "clock" => {
                let line = clock();
                log::info(&line);
                Ok(vec![post(&line)])
            }
            "err" => Err("hostile plugin refuses this event".into()),
            "bad-blocks" => Ok(vec![Action::PostSlack(
                SlackMessage::new("#ok", "ok").with_blocks("this is not JSON"),
            )]),
            other => Err(format!("unknown mode `{other}`")),
        }
    }
}

/// A post whose text is taken as written: these tests are about the host's
/// limits, not the SDK's escaping (which would spend the fuel first).
fn post(text: &str) -> Action {
    Action::PostSlack(SlackMessage::new("#ok", Mrkdwn::trusted(text)))
}

fn spin() -> Result<Vec<Action>, String> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Grows memory 4 MiB at a time without touching it, so the memory limit
/// (not fuel) is what stops it.
fn hoard() -> Result<Vec<Action>, String> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::with_capacity(4 << 20);
        chunk.push(1u8);
        chunks.push(black_box(chunk));
    }
}

/// Calls counted in the data segment, and the same count kept on the heap
/// behind a static: if anything of an earlier call survived into this one,
/// either number would be above one.
static CALLS: AtomicU64 = AtomicU64::new(0);
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn remember() -> String {
    let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    seen.push("x".repeat(64 * 1024));
    format!("calls={calls} seen={}", seen.len())
}

/// What the clocks say: the wall clock in ms since the epoch and how long a
/// real 5 ms sleep took by the monotonic clock. Read from the host's clocks,
/// both would differ on every call.
fn clock() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let start = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let elapsed_ns = start.elapsed().as_nanos();
    format!("now_ms={now_ms} elapsed_ns={elapsed_ns}")
}

/// Recursion whose frames live on the wasm stack (not Rust's shadow stack in
/// linear memory), so the host's stack limit is what stops it.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let below = recurse(black_box(depth + 1));
    black_box(below).wrapping_add(depth)
}

pagehook_guest::export_plugin!(Hostile);
