//! Hostile plugins are stopped with the right typed error, and the host keeps
//! working: after every failure, a good plugin's next call succeeds in the
//! same runtime.

use crate::common;

use std::time::{Duration, Instant};

use pagehook::model::Action;
use pagehook::runtime::{
    Limits, LoadError, LoadedPlugin, PluginError, PluginPackage, Runtime, RuntimeConfig,
};

fn runtime(defaults: Limits) -> Runtime {
    Runtime::new(RuntimeConfig {
        defaults,
        ceiling: Limits::ceiling(),
        cache_dir: None,
    })
}

fn load(rt: &Runtime, name: &str) -> LoadedPlugin {
    let package = PluginPackage::open(&common::plugin_dir(name)).expect("package opens");
    rt.load(&package).expect("plugin loads")
}

fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Runs the hostile plugin in `mode`, returns its error, then proves the
/// runtime still serves a good call.
fn stopped(rt: &Runtime, mode: &str) -> PluginError {
    let hostile = load(rt, "hostile");
    let event = common::event("page_created.json");
    let report = hostile.call(&event, &settings(&[("mode", mode)]));
    let err = report.outcome.expect_err("hostile call must fail");
    good_call_still_works(rt);
    err
}

fn good_call_still_works(rt: &Runtime) {
    let hello = load(rt, "hello");
    let event = common::event("page_created.json");
    let actions = hello
        .call(
            &event,
            &settings(&[("channel", "#eng"), ("greeting", "New page")]),
        )
        .outcome
        .expect("good plugin succeeds after a hostile one");
    assert_eq!(actions.len(), 1);
    assert!(matches!(&actions[0], Action::PostSlack { channel, .. } if channel == "#eng"));
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let rt = runtime(Limits::default());
    let err = stopped(&rt, "loop");
    assert_eq!(
        err,
        PluginError::OutOfFuel {
            plugin: "hostile".into(),
            fuel: 10_000_000
        }
    );
    assert_eq!(
        err.to_string(),
        "plugin `hostile` ran out of fuel after 10000000 units"
    );
}

#[test]
fn infinite_loop_with_ample_fuel_hits_the_deadline_on_time() {
    let rt = runtime(Limits {
        fuel: u64::MAX / 2,
        deadline_ms: 150,
        ..Limits::default()
    });
    let hostile = load(&rt, "hostile");
    let start = Instant::now();
    let report = hostile.call(
        &common::event("page_created.json"),
        &settings(&[("mode", "loop")]),
    );
    let elapsed = start.elapsed();
    assert_eq!(
        report.outcome.unwrap_err().to_string(),
        "plugin `hostile` exceeded its deadline 150 ms"
    );
    assert!(
        elapsed >= Duration::from_millis(150),
        "stopped early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "stopped late: {elapsed:?}"
    );
    good_call_still_works(&rt);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let rt = runtime(Limits::default());
    let err = stopped(&rt, "memory");
    assert_eq!(
        err.to_string(),
        "plugin `hostile` exceeded its memory limit 32 MiB"
    );
}

#[test]
fn unbounded_recursion_overflows_the_stack_limit() {
    let rt = runtime(Limits::default());
    let err = stopped(&rt, "recursion");
    assert_eq!(err.code(), "stack-overflow", "{err}");
    assert!(err.to_string().contains("512 KiB"), "{err}");
}

#[test]
fn panic_is_reported_with_its_message() {
    let rt = runtime(Limits::default());
    match stopped(&rt, "panic") {
        PluginError::Panic { plugin, message } => {
            assert_eq!(plugin, "hostile");
            assert!(
                message.contains("hostile plugin panicked on purpose"),
                "{message}"
            );
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
}

#[test]
fn oversized_action_list_is_refused() {
    let rt = runtime(Limits::default());
    let err = stopped(&rt, "many-actions");
    assert_eq!(
        err,
        PluginError::TooManyActions {
            plugin: "hostile".into(),
            count: 1_000,
            limit: 50
        }
    );
}

#[test]
fn oversized_action_is_refused() {
    let rt = runtime(Limits::default());
    let err = stopped(&rt, "big-action");
    assert_eq!(err.code(), "action-too-large", "{err}");
    assert!(err.to_string().contains("limit of 65536 bytes"), "{err}");
}

#[test]
fn oversized_log_through_the_log_import_is_stopped() {
    let rt = runtime(Limits::default());
    let err = stopped(&rt, "log");
    assert_eq!(
        err,
        PluginError::LogLimit {
            plugin: "hostile".into(),
            limit: 65_536
        }
    );
}

#[test]
fn oversized_log_through_stdout_is_stopped() {
    let rt = runtime(Limits::default());
    let err = stopped(&rt, "stdout");
    assert_eq!(err.code(), "log-limit", "{err}");
}

#[test]
fn err_result_becomes_a_returned_error() {
    let rt = runtime(Limits::default());
    let err = stopped(&rt, "err");
    assert_eq!(
        err.to_string(),
        "plugin `hostile` returned an error: hostile plugin refuses this event"
    );
}

#[test]
fn blocks_that_are_not_json_are_refused() {
    let rt = runtime(Limits::default());
    let err = stopped(&rt, "bad-blocks");
    assert_eq!(err.code(), "invalid-action", "{err}");
    assert!(err.to_string().contains("`post-slack`"), "{err}");
}

#[test]
fn component_importing_outside_the_world_is_refused_at_load() {
    let rt = runtime(Limits::default());
    let package = PluginPackage::open(&common::plugin_dir("imports-outside")).unwrap();
    let err = rt.load(&package).err().expect("load must fail");
    match &err {
        LoadError::ForbiddenImport { plugin, import } => {
            assert_eq!(plugin, "imports-outside");
            assert!(import.starts_with("evil:net/sockets"), "{import}");
        }
        other => panic!("expected a forbidden import, got {other}"),
    }
    assert!(err.to_string().contains("evil:net/sockets"), "{err}");
    good_call_still_works(&rt);
}

#[test]
fn ok_mode_of_the_hostile_plugin_returns_its_action() {
    let rt = runtime(Limits::default());
    let hostile = load(&rt, "hostile");
    let report = hostile.call(
        &common::event("page_created.json"),
        &settings(&[("mode", "ok")]),
    );
    let actions = report.outcome.unwrap();
    assert_eq!(
        actions,
        vec![Action::PostSlack {
            channel: "#ok".into(),
            text: "ok".into(),
            blocks: None,
            thread_key: None
        }]
    );
    assert!(report.fuel_used > 0);
}

#[test]
fn nothing_survives_from_one_call_to_the_next() {
    // Pool slots stay resident between calls (for speed); each call must
    // still start from the module's initial image, statics and heap alike.
    let rt = runtime(Limits::default());
    let hostile = load(&rt, "hostile");
    let event = common::event("page_created.json");
    for _ in 0..5 {
        let actions = hostile
            .call(&event, &settings(&[("mode", "remember")]))
            .outcome
            .unwrap();
        match &actions[..] {
            [Action::PostSlack { text, .. }] => assert_eq!(text, "calls=1 seen=1"),
            other => panic!("unexpected actions {other:?}"),
        }
    }
}

#[test]
fn manifest_limit_request_above_the_ceiling_refuses_the_plugin() {
    let rt = Runtime::new(RuntimeConfig {
        defaults: Limits::default(),
        ceiling: Limits {
            memory_bytes: 16 * 1024 * 1024,
            ..Limits::ceiling()
        },
        cache_dir: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let src = common::plugin_dir("hello");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let manifest = std::fs::read_to_string(dir.path().join("plugin.toml")).unwrap();
    let manifest = if manifest.contains("[limits]") {
        manifest.replace("[limits]", "[limits]\nmemory-mib = 64")
    } else {
        format!("{manifest}\n[limits]\nmemory-mib = 64\n")
    };
    std::fs::write(dir.path().join("plugin.toml"), manifest).unwrap();
    let package = PluginPackage::open(dir.path()).unwrap();
    let err = rt.load(&package).err().expect("load must fail");
    assert_eq!(
        err.to_string(),
        "plugin `hello` requests memory-mib 64 MiB, above this host's ceiling of 16 MiB"
    );
}
