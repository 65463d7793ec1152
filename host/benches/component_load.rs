//! Component load and call costs, per plugin: compile (cold, nothing
//! cached), load from the compiled-component cache (warm, what a restart
//! pays), and one call (fresh instance from the cached `InstancePre`).
//!
//! `cargo bench -p pagehook --bench component_load` (or `make bench`); the
//! plugins must be built first (`make plugins polyglot`). Figures go to
//! docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pagehook::model::Event;
use pagehook::runtime::{CacheOutcome, PluginPackage, Runtime, RuntimeConfig};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A plugin, the example event it runs on, and its settings.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

fn main() {
    let cases: [Case; 5] = [
        ("hello", "page_created.json", &[("channel", "#eng")]),
        ("slack-poster", "page_updated.json", &[("channel", "#eng")]),
        ("retro-writer", "incident_created.json", &[]),
        (
            "python-filter",
            "page_created.json",
            &[("channel", "#eng"), ("title-pattern", "(?i)launch")],
        ),
        ("js-filter", "blog_created.json", &[("channel", "eng-blog")]),
    ];
    println!(
        "| plugin | component | cold: compile | warm: load from cache | speed-up | call (median of 50) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, event, settings) in cases {
        let dir = root().join("target/plugins").join(name);
        let Ok(package) = PluginPackage::open(&dir) else {
            eprintln!(
                "skipping {name}: {} is not built (make plugins polyglot)",
                dir.display()
            );
            continue;
        };
        let event: Event = serde_json::from_str(
            &std::fs::read_to_string(root().join("examples/events").join(event)).unwrap(),
        )
        .unwrap();
        let settings: Vec<(String, String)> = package
            .manifest
            .resolve_settings(
                &settings
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let config = RuntimeConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..RuntimeConfig::default()
        };
        // Cold: a new runtime and an empty cache compile the component.
        let start = Instant::now();
        let cold = Runtime::new(config.clone()).load(&package).unwrap();
        let cold_time = start.elapsed();
        assert_eq!(cold.load_info().0, CacheOutcome::Compiled);
        // Warm: a new runtime (a restarted process) finds it in the cache.
        let warm: Vec<Duration> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let plugin = Runtime::new(config.clone()).load(&package).unwrap();
                let t = start.elapsed();
                assert_eq!(plugin.load_info().0, CacheOutcome::Hit);
                t
            })
            .collect();
        let warm = median(warm);
        let calls: Vec<Duration> = (0..50)
            .map(|_| {
                let report = cold.call(&event, &settings);
                report.outcome.as_ref().unwrap();
                report.elapsed
            })
            .collect();
        println!(
            "| {name} | {:.1} MB | {} | {} | {:.0}x | {} |",
            package.wasm.len() as f64 / 1e6,
            ms(cold_time),
            ms(warm),
            cold_time.as_secs_f64() / warm.as_secs_f64(),
            ms(median(calls))
        );
    }
}
