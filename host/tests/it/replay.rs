//! Replay gives the same answer: a plugin that reads the clocks sees the
//! event's time, so two calls on one event agree, in the runtime and through
//! `pagehook plugin run`.

use crate::common;

use std::process::{Command, Output};
use std::time::Duration;

use pagehook::model::Action;
use pagehook::runtime::{Limits, PluginPackage, Runtime, RuntimeConfig};

fn clock_mode() -> Vec<(String, String)> {
    vec![("mode".to_string(), "clock".to_string())]
}

fn text_of(actions: &[Action]) -> &str {
    match actions {
        [Action::PostSlack { text, .. }] => text,
        other => panic!("expected one post-slack action, got {other:?}"),
    }
}

#[test]
fn clocks_read_the_event_time_on_every_call() {
    let rt = Runtime::new(RuntimeConfig {
        defaults: Limits::default(),
        ceiling: Limits::ceiling(),
        cache_dir: None,
    });
    let package = PluginPackage::open(&common::plugin_dir("hostile")).expect("package opens");
    let plugin = rt.load(&package).expect("plugin loads");
    let event = common::event("page_created.json");

    let first = plugin.call(&event, &clock_mode());
    std::thread::sleep(Duration::from_millis(20));
    let second = plugin.call(&event, &clock_mode());

    let first_actions = first.outcome.expect("first call succeeds");
    let second_actions = second.outcome.expect("second call succeeds");
    let text = text_of(&first_actions);
    // Wall clock: the event's own time. Monotonic clock: two reads, one
    // step apart, however long the plugin's real 5 ms sleep took.
    assert_eq!(
        text,
        format!("now_ms={} elapsed_ns=1000", event.occurred_at_ms)
    );
    assert_eq!(first_actions, second_actions);
    assert_eq!(first.log, second.log);
    assert!(first.log.contains(text), "{}", first.log);

    // Another event, another time: the clock follows the event.
    let mut later = event.clone();
    later.occurred_at_ms += 60_000;
    let third = plugin
        .call(&later, &clock_mode())
        .outcome
        .expect("succeeds");
    assert_eq!(
        text_of(&third),
        format!("now_ms={} elapsed_ns=1000", later.occurred_at_ms)
    );
}

fn plugin_run(cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .args(["plugin", "run"])
        .arg(common::plugin_dir("hostile"))
        .arg("--event")
        .arg(common::event_path("page_created.json"))
        .args(["--set", "mode=clock", "--cache-dir"])
        .arg(cache)
        .env_remove("PAGEHOOK_LOG")
        .output()
        .expect("pagehook runs")
}

#[test]
fn plugin_run_twice_prints_byte_identical_actions() {
    let cache = tempfile::tempdir().unwrap();
    let first = plugin_run(cache.path());
    std::thread::sleep(Duration::from_millis(20));
    let second = plugin_run(cache.path());
    for out in [&first, &second] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&second.stdout)
    );
    assert_eq!(first.stdout, second.stdout);
    let event = common::event("page_created.json");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains(&format!("now_ms={} ", event.occurred_at_ms)),
        "{stdout}"
    );
}
