//! Contract versions: components built against `pagehook:plugin@0.1.0`
//! before 0.2.0 existed, and against 0.2.0 before 0.3.0 existed (committed
//! in `fixtures/contract-<version>/`, never rebuilt), keep working, byte for
//! byte the same answers, beside plugins built against 0.3.0, in `plugin
//! run`, `plugin audit` and one sidecar.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::confluence;
use common::sidecar::{HOOK_SECRET, Sidecar};
use pagehook_fakes::{ContentBuilder, fixture_bytes};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The committed 0.2.0 components, with the sha256 each had when built.
const FIXTURES_0_2: [(&str, &str, &str); 4] = [
    (
        "hello",
        "hello_plugin.wasm",
        "f35dd23fe323a345a1b9c2dd431ee742d844ad594d0c4e3546d4a7988d2f740a",
    ),
    (
        "slack-poster",
        "slack_poster.wasm",
        "d9272c8581027aa959dbddaf0b15ce27c8a7c5539fb0d5eeec35fdd6b4192690",
    ),
    (
        "teams-poster",
        "teams_poster.wasm",
        "d81b461386d715800d1afd21286cae9de6488e3029e61ec35beccd127c20e33f",
    ),
    (
        "retro-writer",
        "retro_writer.wasm",
        "891faec27c7a1c8d4d0fbb9515a1d7f3f5b83e6b3346c7109684fedb2435ed41",
    ),
];

/// The committed 0.1.0 components, with the sha256 each had when built.
const FIXTURES: [(&str, &str, &str); 4] = [
    (
        "hello",
        "hello_plugin.wasm",
        "f591f0079b08daa4074b96fea8f109039ae58599eaf1e97a79dca709c080ad23",
    ),
    (
        "slack-poster",
        "slack_poster.wasm",
        "fd958cf34fd68ef86dda96bbb890c42b29235c92496f1803da3b26b15b6908c8",
    ),
    (
        "teams-poster",
        "teams_poster.wasm",
        "c3cbd28c6cb24516c8da6fa25e9b26c8b862f3bdf299763297105008ef1934f0",
    ),
    (
        "retro-writer",
        "retro_writer.wasm",
        "cc9831912929456e3ea723f1cc6c21b182d9d2bb90bfc98c496546cbdfba9093",
    ),
];

fn fixture(name: &str) -> PathBuf {
    fixture_of("0.1.0", name)
}

fn fixture_of(version: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/contract-{version}"))
        .join(name)
}

/// The settings the expected outputs were recorded with (see the fixtures' README).
fn settings(plugin: &str) -> &'static str {
    match plugin {
        "hello" | "slack-poster" => "channel=#eng",
        "teams-poster" => "channel=eng",
        _ => "space=OPS",
    }
}

fn pagehook(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .args(args)
        .env("PAGEHOOK_CACHE_DIR", cache)
        .env_remove("PAGEHOOK_CONFIG")
        .env_remove("PAGEHOOK_LOG")
        .output()
        .unwrap()
}

#[test]
fn the_committed_components_are_the_ones_built_against_0_1_0() {
    for (name, component, sha) in FIXTURES {
        let bytes = std::fs::read(fixture(name).join(component)).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            sha,
            "{name}: the 0.1.0 fixture was rebuilt or changed; it must stay as built"
        );
        let manifest = std::fs::read_to_string(fixture(name).join("plugin.toml")).unwrap();
        assert!(manifest.contains("wit = \"0.1.0\""), "{name}");
    }
}

#[test]
fn the_committed_components_are_the_ones_built_against_0_2_0() {
    for (name, component, sha) in FIXTURES_0_2 {
        let bytes = std::fs::read(fixture_of("0.2.0", name).join(component)).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            sha,
            "{name}: the 0.2.0 fixture was rebuilt or changed; it must stay as built"
        );
        let manifest =
            std::fs::read_to_string(fixture_of("0.2.0", name).join("plugin.toml")).unwrap();
        assert!(manifest.contains("wit = \"0.2.0\""), "{name}");
    }
}

/// Runs `plugin` of contract `version` on `event` with `settings` and
/// compares its output with `expected`; checks `plugin run` names the
/// contract.
fn answers_as_it_did(
    version: &str,
    plugin: &str,
    event: &Path,
    settings: &[&str],
    expected: &Path,
    cache: &Path,
) {
    let dir = fixture_of(version, plugin);
    let mut args = vec![
        "plugin",
        "run",
        dir.to_str().unwrap(),
        "--event",
        event.to_str().unwrap(),
    ];
    for s in settings {
        args.extend(["--set", s]);
    }
    let out = pagehook(&args, cache);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!("{plugin} {version} on {}", event.display());
    assert!(out.status.success(), "{what}: {stderr}");
    assert!(
        stderr.contains(&format!("plugin `{plugin}` (pagehook:plugin@{version})")),
        "plugin run names the contract: {stderr}"
    );
    let expected =
        std::fs::read_to_string(expected).unwrap_or_else(|e| panic!("{}: {e}", expected.display()));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        expected,
        "{what} answers differently than when it was built"
    );
}

#[test]
fn every_0_1_0_component_answers_every_example_event_as_it_did() {
    let cache = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for (name, _, _) in FIXTURES {
        for entry in std::fs::read_dir(common::root().join("examples/events")).unwrap() {
            let event = entry.unwrap().path();
            let stem = event.file_stem().unwrap().to_str().unwrap().to_owned();
            answers_as_it_did(
                "0.1.0",
                name,
                &event,
                &[settings(name)],
                &fixture("expected").join(format!("{name}.{stem}.json")),
                cache.path(),
            );
            compared += 1;
        }
    }
    assert!(compared >= 40, "only {compared} comparisons");
}

#[test]
fn every_0_2_0_component_answers_every_example_event_as_it_did() {
    let cache = tempfile::tempdir().unwrap();
    let expected = fixture_of("0.2.0", "expected");
    let mut compared = 0;
    for (name, _, _) in FIXTURES_0_2 {
        for entry in std::fs::read_dir(common::root().join("examples/events")).unwrap() {
            let event = entry.unwrap().path();
            let stem = event.file_stem().unwrap().to_str().unwrap().to_owned();
            answers_as_it_did(
                "0.2.0",
                name,
                &event,
                &[settings(name)],
                &expected.join(format!("{name}.{stem}.json")),
                cache.path(),
            );
            compared += 1;
        }
    }
    // slack-poster 0.2.x on what 0.2.0 added: the people a page event
    // concerns (notified personally), a shared link, slash commands.
    for entry in std::fs::read_dir(fixture_of("0.2.0", "events")).unwrap() {
        let event = entry.unwrap().path();
        let stem = event.file_stem().unwrap().to_str().unwrap().to_owned();
        answers_as_it_did(
            "0.2.0",
            "slack-poster",
            &event,
            &[
                "channel=#eng",
                "notify-creator=true",
                "notify-mentioned=true",
                "notify-watchers=true",
            ],
            &expected.join(format!("slack-poster.people-and-chat.{stem}.json")),
            cache.path(),
        );
        compared += 1;
    }
    assert!(compared >= 44, "only {compared} comparisons");
}

#[test]
fn audit_reads_the_contract_from_the_component_and_refuses_a_mislabelled_one() {
    let cache = tempfile::tempdir().unwrap();
    let out = pagehook(
        &["plugin", "audit", fixture("slack-poster").to_str().unwrap()],
        cache.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("contract    pagehook:plugin@0.1.0 (read from the component's imports)"),
        "{text}"
    );

    let current = common::plugin_dir("slack-poster");
    let out = pagehook(
        &["plugin", "audit", "--json", current.to_str().unwrap()],
        cache.path(),
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["built_against"], "0.3.0", "{json}");
    assert_eq!(json["loadable"], true, "{json}");
    assert_eq!(json["takes_digests"], true, "{json}");
    let old = pagehook(
        &[
            "plugin",
            "audit",
            "--json",
            fixture_of("0.2.0", "slack-poster").to_str().unwrap(),
        ],
        cache.path(),
    );
    let old: Value = serde_json::from_slice(&old.stdout).unwrap();
    assert_eq!(old["built_against"], "0.2.0", "{old}");
    assert_eq!(old["takes_digests"], false, "{old}");
    assert_eq!(old["exports"], serde_json::json!(["handle"]), "{old}");

    // A 0.1.0 component whose manifest claims 0.2.0 is refused, naming both.
    let lying = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("hello")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, lying.path().join(path.file_name().unwrap())).unwrap();
    }
    let manifest = lying.path().join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("wit = \"0.1.0\"", "wit = \"0.2.0\""),
    )
    .unwrap();
    let out = pagehook(
        &["plugin", "audit", lying.path().to_str().unwrap()],
        cache.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("built against pagehook:plugin@0.1.0")
            && text.contains("manifest says `wit = \"0.2.0\"`"),
        "{text}"
    );
}

#[test]
fn a_0_1_0_manifest_cannot_ask_for_what_0_2_0_added() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("hello")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let manifest = dir.path().join("plugin.toml");
    let original = std::fs::read_to_string(&manifest).unwrap();
    let cache = tempfile::tempdir().unwrap();
    for (from, to, named) in [
        (
            "events = [\"page-created\", \"blog-created\"]",
            "events = [\"page-created\", \"link-shared\"]",
            "`link-shared`",
        ),
        (
            "actions = [\"post-slack\"]",
            "actions = [\"post-slack\", \"unfurl\"]",
            "`unfurl`",
        ),
    ] {
        std::fs::write(&manifest, original.replace(from, to)).unwrap();
        let out = pagehook(
            &["plugin", "audit", dir.path().to_str().unwrap()],
            cache.path(),
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains(named) && text.contains("contract 0.1.0 does not have"),
            "{text}"
        );
    }
}

/// One sidecar runs the 0.1.0 `hello` fixture and the 0.3.0 slack-poster on
/// the same webhook: the old plugin's action is exactly what it gave before.
#[test]
fn a_0_1_0_plugin_runs_beside_a_0_3_0_plugin_in_one_sidecar() {
    const PAGE: u64 = 2818051;
    let fake = confluence::with_ada([ContentBuilder::page(PAGE, "ENG", "Q3 launch checklist")
        .ancestors(&[(2818001, "Engineering Home")])]);
    let mut side = Sidecar::new();
    side.connect_confluence("prod", &fake.base_url());
    let legacy = fixture("hello");
    side.cli(&[
        "plugin",
        "install",
        legacy.to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    side.cli(&[
        "bind",
        "hello",
        "--scope",
        "space:ENG",
        "--to",
        "slack:#legacy",
        "--set",
        "channel=#legacy",
    ]);
    side.bind_slack_poster("eng", &["--scope", "space:ENG"]);
    let plugins = side.cli(&["plugin", "list"]);
    assert!(
        plugins.contains("0.1.0") && plugins.contains("0.3.0"),
        "{plugins}"
    );
    side.start();

    let body = fixture_bytes("confluence/webhook-id-only/page_created.json");
    let (status, answer) = side.hook("prod", &body, Some(HOOK_SECRET));
    assert_eq!(status, 202, "{answer}");
    let deliveries = side.wait_json(&["deliveries"], "two deliveries", |v| {
        v.as_array().unwrap().len() >= 2
    });
    let by = |plugin: &str| -> Value {
        deliveries
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["plugin"] == plugin)
            .unwrap_or_else(|| panic!("no delivery of {plugin}: {deliveries}"))
            .clone()
    };
    let old = by("hello");
    assert_eq!(old["action"]["type"], "post-slack");
    assert_eq!(old["action"]["channel"], "#legacy");
    assert_eq!(old["action"]["thread_key"], format!("page-{PAGE}"));
    let new = by("slack-poster");
    assert_eq!(new["action"]["channel"], "#eng");

    // The old plugin, replayed on the very event the sidecar stored,
    // answers what the sidecar delivered.
    let replay = side.cli(&[
        "plugin",
        "run",
        legacy.to_str().unwrap(),
        "--event-id",
        &answer["id"].to_string(),
        "--set",
        "channel=#legacy",
    ]);
    let replayed: Value = serde_json::from_str(&replay).unwrap();
    assert_eq!(replayed[0], old["action"]);
}
