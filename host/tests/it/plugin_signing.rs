//! Plugins a security team can sign off (issue 29), as an admin meets them
//! through the real `pagehook` binary, the admin API and the console:
//! signatures checked offline at install (each way of failing refused with
//! its own message under `require-signature`), producers and the embedded
//! dependency list in audit, upgrades that show what changes and grant
//! nothing new by themselves, downgrades refused unless allowed, and the
//! report a reviewer files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pagehook::config::Config;
use pagehook::plugin_trust::signature::{KeyProtection, keygen};
use pagehook::plugin_trust::{SIGNATURE_FILE, STATEMENT_FILE};
use pagehook::server::session::Principal;
use pagehook::server::{AppState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api_support::{App, Auth};
use crate::common;

fn cache_dir() -> PathBuf {
    common::root().join("target/pagehook-cache")
}

fn pagehook(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagehook"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("PAGEHOOK_LOG")
        .env_remove("PAGEHOOK_SIGNING_KEY_PASSWORD")
        .output()
        .expect("pagehook runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
fn ok(config: &Path, args: &[&str]) -> String {
    let out = pagehook(config, args);
    assert!(
        out.status.success(),
        "pagehook {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs a command that must fail; its stderr.
fn refused(config: &Path, args: &[&str]) -> String {
    let out = pagehook(config, args);
    assert!(
        !out.status.success(),
        "pagehook {args:?} succeeded:\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// A site: a config with its own SQLite store and plugins dir, and the
/// `[plugins]` section given.
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Site {
    fn new(plugins_section: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pagehook.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\ndatabase = \"pagehook.db\"\nplugins-dir = \"plugins\"\n[sandbox]\ncache-dir = \"{}\"\n{plugins_section}",
                cache_dir().display()
            ),
        )
        .unwrap();
        Site { dir, config }
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.config, args)
    }

    fn refused(&self, args: &[&str]) -> String {
        refused(&self.config, args)
    }

    fn plugins(&self) -> Value {
        serde_json::from_str(&self.ok(&["plugin", "list", "--json"])).unwrap()
    }

    fn installed(&self, name: &str) -> Option<Value> {
        self.plugins()
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
    }
}

/// A copy of a built plugin's manifest and component (without any
/// signature `make` wrote), in a directory of its own.
fn copy_plugin(name: &str) -> tempfile::TempDir {
    let src = common::plugin_dir(name);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        if file == STATEMENT_FILE || file == SIGNATURE_FILE {
            continue;
        }
        std::fs::copy(&path, dir.path().join(&file)).unwrap();
    }
    dir
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(String) -> String) {
    let path = dir.join("plugin.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
}

fn copy_signature(from: &Path, to: &Path) {
    for f in [STATEMENT_FILE, SIGNATURE_FILE] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// A publisher's key pair: (secret key file, public key base64).
fn publisher(keys: &Path, name: &str) -> (PathBuf, String) {
    let new = keygen(&keys.join(name), KeyProtection::Unencrypted).unwrap();
    (PathBuf::from(new.secret_file), new.public_key)
}

fn sign(config: &Path, dir: &Path, key: &Path) {
    ok(
        config,
        &[
            "plugin",
            "sign",
            dir.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
}

fn install(site: &Site, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["plugin", "install", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    pagehook(&site.config, &args)
}

#[test]
fn under_require_signature_each_failure_is_refused_with_its_own_message_and_a_good_signature_installs()
 {
    let keys = tempfile::tempdir().unwrap();
    let (acme, acme_pub) = publisher(keys.path(), "acme");
    let (old, old_pub) = publisher(keys.path(), "acme-2024");
    let (stranger, _) = publisher(keys.path(), "stranger");
    let site = Site::new(&format!(
        "[plugins]\nrequire-signature = true\n[plugins.trusted-keys]\nacme = \"{acme_pub}\"\nacme-old = \"{old_pub}\"\n[plugins.revoked-keys]\nacme-2024 = \"{old_pub}\"\n"
    ));
    let cfg = &site.config;
    let mut messages = Vec::new();
    let mut refuse = |what: &str, dir: &Path, expected: &[&str]| {
        let out = install(&site, dir, &["--grant", "post-slack"]);
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{what}: installed:\n{}",
            text(&out.stdout)
        );
        for e in expected {
            assert!(err.contains(e), "{what}: expected {e:?} in\n{err}");
        }
        assert!(
            site.installed("hello").is_none(),
            "{what}: something was installed"
        );
        messages.push((what.to_owned(), err));
    };

    // Unsigned.
    let unsigned = copy_plugin("hello");
    refuse(
        "unsigned",
        unsigned.path(),
        &["plugin `hello` is not signed", "require-signature = true"],
    );

    // A tampered component: a custom section appended after signing (still
    // a valid component; only its bytes differ).
    let tampered = copy_plugin("hello");
    sign(cfg, tampered.path(), &acme);
    let wasm = tampered.path().join("hello_plugin.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    bytes.extend_from_slice(&[0x00, 0x04, 0x03, b'x', b'y', b'z']);
    std::fs::write(&wasm, bytes).unwrap();
    refuse(
        "tampered component",
        tampered.path(),
        &[
            "the component is not the one `acme`",
            "changed after signing",
        ],
    );

    // A tampered manifest: one more action declared after signing.
    let tampered = copy_plugin("hello");
    sign(cfg, tampered.path(), &acme);
    edit_manifest(tampered.path(), |m| {
        m.replace(
            "actions = [\"post-slack\"]",
            "actions = [\"post-slack\", \"dm-slack\"]",
        )
    });
    refuse(
        "tampered manifest",
        tampered.path(),
        &["plugin.toml is not the one `acme`", "changed after signing"],
    );

    // A signature moved to another version of the same component.
    let signed = copy_plugin("hello");
    sign(cfg, signed.path(), &acme);
    let next = copy_plugin("hello");
    edit_manifest(next.path(), |m| {
        m.replace("version = \"0.1.0\"", "version = \"0.1.1\"")
    });
    copy_signature(signed.path(), next.path());
    refuse(
        "moved to another version",
        next.path(),
        &[
            "was made for `hello` 0.1.0",
            "not for `hello` 0.1.1",
            "cannot be moved to another plugin or version",
        ],
    );

    // A signature moved to another plugin.
    let other = copy_plugin("slack-poster");
    copy_signature(signed.path(), other.path());
    let out = install(&site, other.path(), &[]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("was made for `hello` 0.1.0") && err.contains("not for `slack-poster`"),
        "{err}"
    );
    assert!(site.installed("slack-poster").is_none());

    // An unknown key.
    let strange = copy_plugin("hello");
    sign(cfg, strange.path(), &stranger);
    refuse(
        "unknown key",
        strange.path(),
        &[
            "which is not in [plugins] trusted-keys",
            "require-signature = true",
        ],
    );

    // A revoked key (also listed as trusted: revoked wins).
    let revoked = copy_plugin("hello");
    sign(cfg, revoked.path(), &old);
    refuse(
        "revoked key",
        revoked.path(),
        &["`acme-2024`", "which this site has revoked"],
    );

    // Every refusal says something different.
    for (i, (a, ma)) in messages.iter().enumerate() {
        for (b, mb) in &messages[i + 1..] {
            assert_ne!(ma, mb, "{a} and {b} are refused with the same message");
        }
    }

    // A correctly signed plugin installs, and says who signed it.
    let out = install(&site, signed.path(), &["--grant", "post-slack"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("signature: verified: signed by `acme` (key ID "),
        "{said}"
    );
    let plugin = site.installed("hello").unwrap();
    assert_eq!(plugin["version"], "0.1.0");
    // The installed copy keeps its signature, so it can be checked again.
    let installed_dir = PathBuf::from(plugin["dir"].as_str().unwrap());
    assert!(installed_dir.join(SIGNATURE_FILE).exists());
    let audit = site.ok(&["plugin", "audit", installed_dir.to_str().unwrap(), "--json"]);
    let audit: Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(audit["signature"]["status"], "verified", "{audit}");
    assert_eq!(audit["signature"]["signer"], "acme");
    // The change log says who signed what was installed.
    let changes: Value = serde_json::from_str(&site.ok(&["changes", "--json"])).unwrap();
    let change = &changes[0];
    assert_eq!(change["action"], "plugin.install", "{changes}");
    assert_eq!(change["detail"]["signer"], "acme");
}

#[test]
fn without_the_policy_an_unsigned_plugin_installs_and_audit_says_unsigned() {
    let keys = tempfile::tempdir().unwrap();
    let (acme, acme_pub) = publisher(keys.path(), "acme");
    let (someone, _) = publisher(keys.path(), "someone");
    // Keys are listed, but signatures are not required.
    let site = Site::new(&format!("[plugins.trusted-keys]\nacme = \"{acme_pub}\"\n"));
    let dir = copy_plugin("hello");
    let audit = site.ok(&["plugin", "audit", dir.path().to_str().unwrap()]);
    assert!(audit.contains("\nsignature   unsigned\n"), "{audit}");
    let json: Value = serde_json::from_str(&site.ok(&[
        "plugin",
        "audit",
        dir.path().to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(json["signature"]["status"], "unsigned", "{json}");
    let said = site.ok(&[
        "plugin",
        "install",
        dir.path().to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    assert!(said.contains("signature: unsigned"), "{said}");
    assert_eq!(
        site.installed("hello").unwrap()["grants"],
        json!(["post-slack"])
    );

    // A key nobody listed: nothing can be checked; it installs without the
    // policy, and audit names the key.
    let strange = copy_plugin("teams-poster");
    sign(&site.config, strange.path(), &someone);
    let audit = site.ok(&["plugin", "audit", strange.path().to_str().unwrap()]);
    assert!(
        audit.contains("which is not in [plugins] trusted-keys: not verified"),
        "{audit}"
    );
    site.ok(&["plugin", "install", strange.path().to_str().unwrap()]);

    // A listed key's signature that does not vouch for the files refuses
    // even without the policy: that is evidence of tampering.
    let signed = copy_plugin("retro-writer");
    sign(&site.config, signed.path(), &acme);
    edit_manifest(signed.path(), |m| {
        m.replacen("description = \"", "description = \"Now ", 1)
    });
    let err = site.refused(&["plugin", "install", signed.path().to_str().unwrap()]);
    assert!(err.contains("plugin.toml is not the one `acme`"), "{err}");
    assert!(site.installed("retro-writer").is_none());
}

#[test]
fn the_bundled_python_and_javascript_plugins_show_their_producers() {
    let site = Site::new("");
    let audit = |name: &str| -> Value {
        let dir = common::plugin_dir(name);
        serde_json::from_str(&site.ok(&["plugin", "audit", dir.to_str().unwrap(), "--json"]))
            .unwrap()
    };
    let has = |a: &Value, field: &str, name: &str| {
        a["provenance"]["producers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["field"] == field && p["name"] == name)
    };

    // Rust: the compiler and the binding generator, with versions.
    let rust = audit("slack-poster");
    assert!(has(&rust, "language", "Rust"), "{}", rust["provenance"]);
    assert!(
        has(&rust, "processed-by", "rustc"),
        "{}",
        rust["provenance"]
    );
    assert!(
        has(&rust, "processed-by", "wit-bindgen-rust"),
        "{}",
        rust["provenance"]
    );
    // ... and the crate list cargo auditable embeds (make plugins builds with it).
    let deps = rust["provenance"]["dependencies"]
        .as_array()
        .unwrap_or_else(|| panic!("no dependency list in slack-poster: {}", rust["provenance"]));
    let named = |n: &str| deps.iter().any(|d| d["name"] == n);
    assert!(
        named("slack-poster") && named("pagehook-guest") && named("wit-bindgen"),
        "{deps:?}"
    );
    assert!(
        deps.iter()
            .any(|d| d["name"] == "slack-poster" && d["root"] == true)
    );

    // Python: componentize-py (its build records it) and the language.
    let python = audit("python-filter");
    assert!(
        has(&python, "processed-by", "componentize-py"),
        "{}",
        python["provenance"]
    );
    assert!(
        has(&python, "language", "Python"),
        "{}",
        python["provenance"]
    );
    assert_eq!(python["provenance"]["dependencies"], Value::Null);

    // JavaScript: ComponentizeJS records itself and the language.
    let js = audit("js-filter");
    assert!(
        has(&js, "processed-by", "ComponentizeJS"),
        "{}",
        js["provenance"]
    );
    assert!(has(&js, "language", "JavaScript"), "{}", js["provenance"]);

    // The text audit says it in one line.
    let dir = common::plugin_dir("python-filter");
    let said = site.ok(&["plugin", "audit", dir.to_str().unwrap()]);
    let line = said
        .lines()
        .find(|l| l.starts_with("producers "))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(line.contains("componentize-py 0.25.1"), "{line}");
}

#[test]
fn the_plugins_this_project_builds_are_signed_by_its_development_key() {
    let public = common::root().join("keys/pagehook-dev.pub");
    let site = Site::new(&format!(
        "[plugins]\nrequire-signature = true\n[plugins.trusted-keys]\npagehook-dev = {{ file = \"{}\" }}\n",
        public.display()
    ));
    for name in [
        "hello",
        "slack-poster",
        "teams-poster",
        "retro-writer",
        "python-filter",
        "js-filter",
    ] {
        let dir = common::plugin_dir(name);
        let audit: Value =
            serde_json::from_str(&site.ok(&["plugin", "audit", dir.to_str().unwrap(), "--json"]))
                .unwrap();
        assert_eq!(
            audit["signature"]["status"], "verified",
            "{name} is not signed by keys/pagehook-dev: `make test` and `make build` sign target/plugins/ \
             (after `make plugins` alone: make sign-plugins PAGEHOOK=target/debug/pagehook): {}",
            audit["signature"]
        );
        assert_eq!(audit["signature"]["signer"], "pagehook-dev");
    }
}

/// hello 0.1.0 and a 0.2.0 that declares one more action, one more setting
/// and asks for more memory, both unsigned.
fn hello_versions() -> (tempfile::TempDir, tempfile::TempDir) {
    let v1 = copy_plugin("hello");
    let v2 = copy_plugin("hello");
    edit_manifest(v2.path(), |m| {
        format!(
            "{}\n[settings.footer]\ndescription = \"Words put after the announcement\"\n\n[limits]\nmemory-mib = 64\n",
            m.replace("version = \"0.1.0\"", "version = \"0.2.0\"")
                .replace(
                    "actions = [\"post-slack\"]",
                    "actions = [\"post-slack\", \"dm-slack\"]"
                )
        )
    });
    (v1, v2)
}

#[test]
fn an_upgrade_that_adds_an_action_a_setting_and_memory_shows_all_three_and_grants_none() {
    let site = Site::new("");
    let (v1, v2) = hello_versions();
    site.ok(&[
        "plugin",
        "install",
        v1.path().to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    site.ok(&[
        "bind",
        "hello",
        "--scope",
        "space:ENG",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    let said = site.ok(&["plugin", "install", v2.path().to_str().unwrap()]);
    for expected in [
        "hello 0.1.0 -> 0.2.0 (upgrade)",
        "+ action    dm-slack (NOT granted",
        "+ setting   footer: optional: Words put after the announcement — no binding sets it",
        "~ limit     memory-mib default -> 64 (NOT granted: runs with 32 until `pagehook plugin grant hello --limits`)",
        "granted: post-slack; not granted: dm-slack",
        "not granted by this upgrade: action dm-slack; memory-mib 64 (runs with 32); setting footer (no binding sets it)",
    ] {
        assert!(said.contains(expected), "expected {expected:?} in:\n{said}");
    }

    // Nothing new is granted: the action, the limit, the binding's settings.
    let plugin = site.installed("hello").unwrap();
    assert_eq!(plugin["version"], "0.2.0");
    assert_eq!(plugin["grants"], json!(["post-slack"]));
    assert_eq!(
        plugin["limit_grants"]["memory-mib"],
        Value::Null,
        "{plugin}"
    );
    let bindings: Value = serde_json::from_str(&site.ok(&["bindings", "--json"])).unwrap();
    assert_eq!(
        bindings[0]["settings"],
        json!([["channel", "#eng"]]),
        "{bindings}"
    );

    // What dispatch loads runs with the memory granted, not the memory asked for.
    let record = record_of(&site, "hello");
    let runtime = pagehook::runtime::Runtime::new(pagehook::runtime::RuntimeConfig {
        cache_dir: Some(cache_dir()),
        ..Default::default()
    });
    let loaded = pagehook::dispatch::load_pinned(&runtime, &record).unwrap();
    assert_eq!(loaded.limits().memory_bytes, 32 * 1024 * 1024);

    // The report shows it held, from the store the config names.
    let report: Value = serde_json::from_str(&site.ok(&[
        "plugin",
        "audit",
        v2.path().to_str().unwrap(),
        "--report",
        "json",
    ]))
    .unwrap();
    let installed = &report["installed"];
    assert_eq!(installed["installed"], true, "{report}");
    assert_eq!(installed["not_granted"], json!(["dm-slack"]));
    assert_eq!(
        installed["held_limits"],
        json!([{"limit": "memory-mib", "requested": 64, "in_force": 32}])
    );
    assert_eq!(
        installed["limits_in_force"]["memory_bytes"],
        32 * 1024 * 1024
    );
    assert_eq!(installed["bindings"].as_array().unwrap().len(), 1);

    // The change log keeps the diff.
    let changes: Value = serde_json::from_str(&site.ok(&["changes", "--json"])).unwrap();
    let upgrade = changes
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "plugin.upgrade")
        .unwrap();
    assert_eq!(
        upgrade["detail"]["upgrade"]["actions_added"],
        json!(["dm-slack"])
    );
    assert_eq!(upgrade["detail"]["upgrade"]["limits"][0]["held_at"], 32);

    // Granting is explicit, and then it holds.
    let said = site.ok(&["plugin", "grant", "hello", "--limits"]);
    assert!(said.contains("granted: post-slack;"), "{said}");
    let record = record_of(&site, "hello");
    assert_eq!(record.limit_grants.memory_mib, Some(64));
    assert_eq!(record.grants, vec!["post-slack"]);
    let loaded = pagehook::dispatch::load_pinned(&runtime, &record).unwrap();
    assert_eq!(loaded.limits().memory_bytes, 64 * 1024 * 1024);
    site.ok(&[
        "plugin",
        "grant",
        "hello",
        "--grant",
        "post-slack",
        "--grant",
        "dm-slack",
    ]);
    assert_eq!(
        site.installed("hello").unwrap()["grants"],
        json!(["post-slack", "dm-slack"])
    );
}

fn record_of(site: &Site, name: &str) -> pagehook::store::PluginRecord {
    let config = Config::load(Some(site.config.as_path())).unwrap();
    let database = config.store.location().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            pagehook::store::Store::open(&database)
                .await
                .unwrap()
                .require_plugin(name)
                .await
                .unwrap()
        })
}

#[test]
fn a_downgrade_is_refused_unless_allowed() {
    let site = Site::new("");
    let (v1, v2) = hello_versions();
    site.ok(&[
        "plugin",
        "install",
        v2.path().to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    let err = site.refused(&["plugin", "install", v1.path().to_str().unwrap()]);
    assert!(
        err.contains("plugin `hello` 0.2.0 is installed and 0.1.0 is older")
            && err.contains("--allow-downgrade"),
        "{err}"
    );
    assert_eq!(site.installed("hello").unwrap()["version"], "0.2.0");
    let said = site.ok(&[
        "plugin",
        "install",
        v1.path().to_str().unwrap(),
        "--allow-downgrade",
    ]);
    assert!(said.contains("hello 0.2.0 -> 0.1.0 (DOWNGRADE)"), "{said}");
    assert!(said.contains("- action    dm-slack"), "{said}");
    let plugin = site.installed("hello").unwrap();
    assert_eq!(plugin["version"], "0.1.0");
    assert_eq!(plugin["grants"], json!(["post-slack"]));
}

#[test]
fn the_markdown_report_has_what_a_security_team_files() {
    let keys = tempfile::tempdir().unwrap();
    let (acme, acme_pub) = publisher(keys.path(), "acme");
    let site = Site::new(&format!("[plugins.trusted-keys]\nacme = \"{acme_pub}\"\n"));
    let dir = copy_plugin("slack-poster");
    sign(&site.config, dir.path(), &acme);
    let before = site.ok(&[
        "plugin",
        "audit",
        dir.path().to_str().unwrap(),
        "--report",
        "md",
    ]);
    assert!(before.contains("no store at "), "{before}");
    assert!(
        !site.dir.path().join("pagehook.db").exists(),
        "a report must not create a store"
    );
    site.ok(&[
        "plugin",
        "install",
        dir.path().to_str().unwrap(),
        "--grant",
        "post-slack",
    ]);
    site.ok(&[
        "bind",
        "slack-poster",
        "--scope",
        "space:ENG",
        "--to",
        "slack:#eng",
        "--set",
        "channel=#eng",
    ]);
    let md = site.ok(&[
        "plugin",
        "audit",
        dir.path().to_str().unwrap(),
        "--report",
        "md",
    ]);
    for expected in [
        "# Plugin audit: slack-poster ",
        "## Signature\n\n**verified: signed by 'acme' (key ID ",
        "## Provenance (the builder's own words)",
        "| processed-by | rustc |",
        "Embedded dependency list (`cargo auditable`)",
        "## What the component imports and exports",
        "## Limits",
        "In force where it is installed",
        "## Sandbox guarantees (every plugin)",
        "No network: no socket is ever granted",
        "An upgrade grants nothing new by itself",
        "## Where it is installed",
        ": the audited component",
        "- Granted actions: post-slack",
        "- Declared, not granted: dm-slack",
        "| Id | Scope | Events | Destinations | Settings |",
        "space:ENG",
        "channel=#eng",
    ] {
        assert!(md.contains(expected), "expected {expected:?} in:\n{md}");
    }
    // Markdown tables stay tables whatever a manifest says.
    assert!(
        !md.lines()
            .any(|l| l.starts_with('|') && l.matches('|').count() < 3)
    );
}

/// An app whose config trusts `acme` and requires signatures.
fn app_requiring(acme_pub: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.database = dir.path().join("pagehook.db");
    config.store.plugins_dir = dir.path().join("plugins");
    config.sandbox.cache_dir = Some(cache_dir());
    config.server.admin_token = Some(pagehook::secret::SecretSource::Value(
        crate::api_support::TOKEN.into(),
    ));
    config.plugins = toml::from_str(&format!(
        "require-signature = true\n[trusted-keys]\nacme = \"{acme_pub}\"\n"
    ))
    .unwrap();
    let state = AppState::standalone(config).unwrap();
    App { dir, state }
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (Vec<u8>, String) {
    let boundary = "pagehook-signing-boundary";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

#[tokio::test]
async fn the_api_and_console_check_uploads_and_show_the_upgrade() {
    let keys = tempfile::tempdir().unwrap();
    let (acme, acme_pub) = publisher(keys.path(), "acme");
    let app = app_requiring(&acme_pub);
    let admin = Auth::admin();
    let (v1, v2) = hello_versions();
    let scratch = Site::new("");
    sign(&scratch.config, v1.path(), &acme);
    sign(&scratch.config, v2.path(), &acme);
    let read = |dir: &Path, f: &str| std::fs::read(dir.join(f)).unwrap();
    let upload = |dir: &Path, signed: bool, grant: Option<&str>| {
        let mut parts: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
            ("manifest", Some("plugin.toml"), read(dir, "plugin.toml")),
            (
                "component",
                Some("hello_plugin.wasm"),
                read(dir, "hello_plugin.wasm"),
            ),
        ];
        if signed {
            parts.push(("statement", Some(STATEMENT_FILE), read(dir, STATEMENT_FILE)));
            parts.push(("signature", Some(SIGNATURE_FILE), read(dir, SIGNATURE_FILE)));
        }
        if let Some(grant) = grant {
            parts.push(("grant", None, grant.as_bytes().to_vec()));
        }
        let borrowed: Vec<(&str, Option<&str>, &[u8])> = parts
            .iter()
            .map(|(n, f, b)| (*n, *f, b.as_slice()))
            .collect();
        multipart(&borrowed)
    };

    // Without the signature parts: refused, saying why.
    let (body, ct) = upload(v1.path(), false, Some("post-slack"));
    let a = app
        .send("POST", "/api/plugins/upload", body, Some(&ct), &[], &admin)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
    assert!(
        a.json["error"].as_str().unwrap().contains("is not signed"),
        "{}",
        a.json
    );

    // Signed: installed, with the verdict in the answer.
    let (body, ct) = upload(v1.path(), true, Some("post-slack"));
    let a = app
        .send("POST", "/api/plugins/upload", body, Some(&ct), &[], &admin)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert!(
        a.json["signature"]
            .as_str()
            .unwrap()
            .starts_with("verified: signed by `acme`")
    );
    assert_eq!(a.json["upgrade"], Value::Null);

    // The upgrade: its diff in the answer, nothing new granted.
    let (body, ct) = upload(v2.path(), true, None);
    let a = app
        .send("POST", "/api/plugins/upload", body, Some(&ct), &[], &admin)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert_eq!(a.json["grants"], json!(["post-slack"]));
    assert_eq!(a.json["upgrade"]["actions_added"], json!(["dm-slack"]));
    assert_eq!(a.json["upgrade"]["settings"][0]["name"], "footer");
    assert_eq!(a.json["upgrade"]["limits"][0]["held_at"], 32);
    assert_eq!(
        a.json["not_granted"],
        json!([
            "action dm-slack",
            "memory-mib 64 (runs with 32)",
            "setting footer (no binding sets it)"
        ])
    );

    // The downgrade back: refused, then allowed.
    let (body, ct) = upload(v1.path(), true, None);
    let a = app
        .send("POST", "/api/plugins/upload", body, Some(&ct), &[], &admin)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json);
    assert!(
        a.json["error"].as_str().unwrap().contains("is older"),
        "{}",
        a.json
    );

    // The console's plugin page shows the signature, the producers, the
    // held limit with its grant button, and the last upgrade.
    let session = app.session(&Principal::Admin).await;
    let html = console_page(&app, "/console/plugins/hello", &session.cookie).await;
    for expected in [
        "verified: signed by `acme`",
        "id=\"producers\"",
        "rustc",
        "id=\"held-limits\"",
        "memory-mib",
        "Grant the limits it requests",
        "Last upgrade",
        "id=\"upgrade-diff\"",
        "dm-slack",
        "footer",
        "default → 64 — not granted: runs with 32",
        "Not granted by this install: action dm-slack; memory-mib 64 (runs with 32); setting footer (no binding sets it)",
    ] {
        assert!(
            html.contains(expected),
            "expected {expected:?} in the plugin page"
        );
    }

    // Granting the limits through the API releases them.
    let a = app
        .call("POST", "/api/plugins/hello/grant-limits", None, &admin)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json);
    assert_eq!(a.json["limit_grants"]["memory-mib"], 64);
    let html = console_page(&app, "/console/plugins/hello", &session.cookie).await;
    assert!(!html.contains("id=\"held-limits\""));
}

async fn console_page(app: &App, path: &str, cookie: &str) -> String {
    let response = router(app.state.clone())
        .oneshot(
            Request::builder()
                .uri(path)
                .header("cookie", cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_grants_are_kept_by_upgrades_on_both_backends() {
    for fresh in [
        crate::store_suite::sqlite().await,
        crate::store_suite::postgres().await,
    ] {
        let store = &fresh.store;
        let mut record = pagehook::testing::plugin(
            pagehook::testing::manifest(
                "name = \"hello\"\nversion = \"1.0.0\"\ndescription = \"d\"\nwit = \"0.1.0\"\n\
                 component = \"hello.wasm\"\nevents = [\"page-created\"]\nactions = [\"post-slack\"]\n\
                 [limits]\nmemory-mib = 48\n",
            ),
            &["post-slack"],
        );
        store.install_plugin(&record).await.unwrap();
        let read = store.require_plugin("hello").await.unwrap();
        assert_eq!(read.limit_grants.memory_mib, Some(48));
        assert_eq!(read, record);

        // An upgrade written with the old grant keeps it; granting replaces it.
        record.version = "1.1.0".into();
        record.manifest.limits.memory_mib = Some(96);
        store.install_plugin(&record).await.unwrap();
        let read = store.require_plugin("hello").await.unwrap();
        assert_eq!(read.manifest.limits.memory_mib, Some(96));
        assert_eq!(read.limit_grants.memory_mib, Some(48));
        store
            .set_plugin_limit_grants("hello", &read.manifest.limits)
            .await
            .unwrap();
        let read = store.require_plugin("hello").await.unwrap();
        assert_eq!(read.limit_grants.memory_mib, Some(96));
        let err = store
            .set_plugin_limit_grants("nobody", &read.manifest.limits)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no plugin named `nobody`"),
            "{err}"
        );
    }
}
