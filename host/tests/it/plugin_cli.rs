//! `pagehook plugin run` and `plugin audit` as a plugin author and a security
//! reviewer use them: the real binary, its stdout, stderr and exit status.

use crate::common;

use std::process::{Command, Output};

fn pagehook(args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("PAGEHOOK_LOG")
        .output()
        .expect("pagehook runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn dir(name: &str) -> String {
    common::plugin_dir(name).display().to_string()
}

fn event(name: &str) -> String {
    common::event_path(name).display().to_string()
}

#[test]
fn run_prints_the_actions_as_json_and_the_log_on_stderr() {
    let cache = tempfile::tempdir().unwrap();
    let out = pagehook(
        &[
            "plugin",
            "run",
            &dir("hello"),
            "--event",
            &event("page_created.json"),
            "--set",
            "channel=#eng",
        ],
        cache.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let actions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        actions,
        serde_json::json!([{
            "type": "post-slack",
            "channel": "#eng",
            "text": "New page: Ada Lovelace created \"Q3 launch checklist\" in Engineering: https://wiki.example.com/spaces/ENG/pages/2818051/Q3+launch+checklist",
            "blocks": null,
            "thread_key": "page-2818051"
        }])
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("[info] announcing 2818051 in #eng"),
        "{stderr}"
    );
    assert!(
        stderr.contains("compiled `hello` in ") && stderr.contains(" (cached for next time)"),
        "{stderr}"
    );
}

#[test]
fn second_run_loads_the_compiled_component_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "plugin",
        "run",
        &dir("hello"),
        "--event",
        &event("blog_created.json"),
        "--set",
        "channel=#eng",
    ];
    let first = pagehook(&args, cache.path());
    let second = pagehook(&args, cache.path());
    assert!(text(&first.stderr).contains("(cached for next time)"));
    assert!(
        text(&second.stderr).contains("loaded `hello` from cache in "),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn event_can_come_from_stdin() {
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .args([
            "plugin",
            "run",
            &dir("hello"),
            "--event",
            "-",
            "--set",
            "channel=#x",
        ])
        .arg("--cache-dir")
        .arg(cache.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let body = std::fs::read(common::event_path("page_created.json")).unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &body).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"channel\": \"#x\""));
}

#[test]
fn missing_required_setting_fails_before_running() {
    let cache = tempfile::tempdir().unwrap();
    let out = pagehook(
        &[
            "plugin",
            "run",
            &dir("hello"),
            "--event",
            &event("page_created.json"),
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).trim(),
        "error: plugin `hello` needs setting `channel`: Slack channel to post to, e.g. #eng"
    );
}

#[test]
fn unknown_setting_is_refused_naming_the_known_ones() {
    let cache = tempfile::tempdir().unwrap();
    let out = pagehook(
        &[
            "plugin",
            "run",
            &dir("hello"),
            "--event",
            &event("page_created.json"),
            "--set",
            "channel=#eng",
            "--set",
            "chanel=#typo",
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no setting `chanel` (settings: channel, greeting)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plugin_failure_exits_1_with_the_typed_error() {
    let cache = tempfile::tempdir().unwrap();
    let out = pagehook(
        &[
            "plugin",
            "run",
            &dir("hostile"),
            "--event",
            &event("page_created.json"),
            "--set",
            "mode=panic",
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: plugin `hostile` panicked: hostile plugin panicked on purpose"),
        "{stderr}"
    );

    let out = pagehook(
        &[
            "plugin",
            "run",
            &dir("hostile"),
            "--event",
            &event("page_created.json"),
            "--set",
            "mode=loop",
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error: plugin `hostile` ran out of fuel after 10000000 units"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn malformed_event_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let bad = cache.path().join("bad.json");
    std::fs::write(&bad, r#"{"id": "x", "kind": "page-exploded", "name": "x"}"#).unwrap();
    let out = pagehook(
        &[
            "plugin",
            "run",
            &dir("hello"),
            "--event",
            bad.to_str().unwrap(),
            "--set",
            "channel=#eng",
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is not a valid event"), "{stderr}");
    assert!(stderr.contains("page-exploded"), "{stderr}");
}

#[test]
fn audit_json_shows_hash_surface_and_limits() {
    let cache = tempfile::tempdir().unwrap();
    let out = pagehook(&["plugin", "audit", &dir("hello"), "--json"], cache.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let wasm = std::fs::read(common::plugin_dir("hello").join("hello_plugin.wasm")).unwrap();
    use sha2::Digest;
    assert_eq!(audit["sha256"], hex::encode(sha2::Sha256::digest(&wasm)));
    assert_eq!(audit["size_bytes"], wasm.len());
    assert_eq!(audit["manifest"]["name"], "hello");
    assert_eq!(audit["loadable"], true, "{audit}");
    assert!(audit["problem"].is_null(), "{audit}");
    let imports = audit["imports"].as_array().unwrap();
    assert!(
        imports
            .iter()
            .any(|i| i["name"] == "pagehook:plugin/types@0.3.0"),
        "{audit}"
    );
    assert_eq!(audit["built_against"], "0.3.0", "{audit}");
    assert!(imports.iter().all(|i| i["allowed"] == true), "{audit}");
    // Built with the SDK (world `digest-plugin`), but its manifest does not
    // ask for digests: every event is its own call.
    assert_eq!(
        audit["exports"],
        serde_json::json!(["handle", "handle-digest"])
    );
    assert_eq!(audit["takes_digests"], false, "{audit}");
    assert_eq!(audit["limits"]["fuel"], 10_000_000);
}

#[test]
fn audit_names_a_refused_import_and_exits_1() {
    let cache = tempfile::tempdir().unwrap();
    let out = pagehook(&["plugin", "audit", &dir("imports-outside")], cache.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("import      evil:net/sockets (REFUSED)"),
        "{stdout}"
    );
    assert!(stdout.contains("loadable    NO: "), "{stdout}");
}

/// The progress lines, as they read when stderr is not a terminal (as in
/// CI and logs): what is being loaded, then how and how long it took.
fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.starts_with("loading plugin ")
                || l.starts_with("compiled ")
                || l.starts_with("loaded ")
        })
        .collect()
}

#[test]
fn audit_shows_compile_then_cache_hit_on_stderr_only() {
    let cache = tempfile::tempdir().unwrap();
    let first = pagehook(&["plugin", "audit", &dir("hello")], cache.path());
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stderr = text(&first.stderr);
    let lines = progress_lines(&stderr);
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("loading plugin `hello` (") && lines[0].ends_with(" MB component)..."),
        "{stderr}"
    );
    assert!(lines[1].starts_with("compiled `hello` in "), "{stderr}");
    assert!(lines[1].ends_with(" (cached for next time)"), "{stderr}");
    // stdout stays the report alone.
    assert!(text(&first.stdout).starts_with("plugin      hello "));
    assert!(!text(&first.stdout).contains("cached"));

    let second = pagehook(&["plugin", "audit", &dir("hello"), "--json"], cache.path());
    assert!(second.status.success(), "{}", text(&second.stderr));
    let stderr = text(&second.stderr);
    assert!(
        progress_lines(&stderr)[1].starts_with("loaded `hello` from cache in "),
        "{stderr}"
    );
    let _: serde_json::Value = serde_json::from_slice(&second.stdout).expect("stdout is JSON");
}

#[test]
fn install_shows_compile_then_cache_hit_on_stderr() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("pagehook.toml");
    std::fs::write(&config, "[sandbox]\ncache-dir = \"cache\"\n").unwrap();
    let install = || {
        Command::new(env!("CARGO_BIN_EXE_pagehook"))
            .arg("--config")
            .arg(&config)
            .args(["plugin", "install", &dir("hello"), "--grant", "post-slack"])
            .env_remove("PAGEHOOK_LOG")
            .output()
            .unwrap()
    };
    let first = install();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stderr = text(&first.stderr);
    let lines = progress_lines(&stderr);
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("loading plugin `hello`"), "{stderr}");
    assert!(
        lines[1].starts_with("compiled `hello` in ")
            && lines[1].ends_with("(cached for next time)"),
        "{stderr}"
    );
    assert!(text(&first.stdout).starts_with("installed hello "));

    let again = install();
    assert!(again.status.success(), "{}", text(&again.stderr));
    let stderr = text(&again.stderr);
    assert!(
        progress_lines(&stderr)[1].starts_with("loaded `hello` from cache in "),
        "{stderr}"
    );

    // A wrong grant is refused at once, before any compiling.
    let out = Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .arg("--config")
        .arg(&config)
        .args(["plugin", "install", &dir("hello"), "--grant", "create-page"])
        .env_remove("PAGEHOOK_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not declare it"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        progress_lines(&text(&out.stderr)).is_empty(),
        "{}",
        text(&out.stderr)
    );
}
