//! Plugin dispatch cost: slack-poster called in the sandbox (pooling
//! allocator, cached `InstancePre`, a fresh instance per event, all limits
//! on) against the same plugin logic compiled natively and called as a Rust
//! function, measured side by side in one run; plus sandboxed calls per
//! second on all cores.
//!
//! `cargo bench -p pagehook --bench dispatch` (or `make bench`) after
//! `make plugins`. Figures go to docs/benchmarks.md.

use std::path::Path;
use std::time::{Duration, Instant};

use pagehook::model::Event;
use pagehook::runtime::{PluginPackage, Runtime, RuntimeConfig};
use pagehook_guest::{EventKind, Plugin, Settings};
use slack_poster::SlackPoster;

fn per_call(total: Duration, n: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let package = PluginPackage::open(&root.join("target/plugins/slack-poster"))
        .expect("build the plugins first: make plugins");
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    });
    let plugin = runtime.load(&package).unwrap();
    // The sandbox's fixed cost: hello ignores an update after one log line,
    // so its call is all entry and exit (store, WASI context, instance,
    // lowering the event, the log import, teardown) and no plugin work.
    let hello = runtime
        .load(&PluginPackage::open(&root.join("target/plugins/hello")).unwrap())
        .unwrap();
    let event: Event = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/events/page_updated.json")).unwrap(),
    )
    .unwrap();
    let settings = package
        .manifest
        .resolve_settings(&[("channel".into(), "#eng".into())])
        .unwrap();
    // The native baseline runs the same code on the SDK's sample update
    // event, which has the same shape (title, excerpt, labels, ancestors).
    let native_event = pagehook_guest::testing::event(EventKind::PageUpdated);
    let native_settings = Settings::from_pairs(settings.clone());

    let sandboxed = |n: u32| {
        let start = Instant::now();
        for _ in 0..n {
            let report = plugin.call(&event, &settings);
            assert_eq!(report.outcome.as_ref().map(Vec::len).unwrap(), 1);
        }
        start.elapsed()
    };
    let fixed = |n: u32| {
        let start = Instant::now();
        for _ in 0..n {
            let report = hello.call(&event, &settings);
            assert_eq!(report.outcome.as_ref().map(Vec::len).unwrap(), 0);
        }
        start.elapsed()
    };
    let native = |n: u32| {
        let start = Instant::now();
        for _ in 0..n {
            let actions =
                SlackPoster::handle(native_event.clone(), native_settings.clone()).unwrap();
            assert_eq!(std::hint::black_box(actions).len(), 1);
        }
        start.elapsed()
    };
    sandboxed(300);
    native(3000);
    // Interleave rounds so both see the same machine load.
    let (mut s_total, mut f_total, mut n_total) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (s_n, n_n) = (1000u32, 10_000u32);
    for _ in 0..5 {
        s_total += sandboxed(s_n);
        f_total += fixed(s_n);
        n_total += native(n_n);
    }
    let s_us = per_call(s_total, 5 * s_n);
    let f_us = per_call(f_total, 5 * s_n);
    let n_us = per_call(n_total, 5 * n_n);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = 2000u32;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    assert!(plugin.call(&event, &settings).outcome.is_ok());
                }
            });
        }
    });
    let all = start.elapsed();
    let rate = f64::from(per_thread) * cores as f64 / all.as_secs_f64();

    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| slack-poster in the sandbox, per event | {s_us:.1} µs |");
    println!("| slack-poster natively, per event | {n_us:.1} µs |");
    println!(
        "| sandbox overhead per event (sandboxed − native) | {:.1} µs ({:.1}x) |",
        s_us - n_us,
        s_us / n_us
    );
    println!("| fixed cost of a sandboxed call (hello, no work) | {f_us:.1} µs |");
    println!(
        "| slack-poster's own work as wasm (sandboxed − fixed) | {:.1} µs ({:.1}x native) |",
        s_us - f_us,
        (s_us - f_us) / n_us
    );
    println!("| sandboxed events/s on {cores} cores | {rate:.0} |");
}
