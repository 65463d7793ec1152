//! Fixtures shared by the unit tests and the integration-test binary
//! (`tests/it`), behind the `testing` feature that only the test build turns
//! on (`[dev-dependencies] pagehook = { features = ["testing"] }`), so a
//! record that gains a field is built in one place instead of in every test.
//!
//! Never compiled into a release binary, and never reaching for the network
//! or the disk: these are values, not harnesses (the harnesses that start
//! `pagehook serve`, Chromium or PostgreSQL live in `tests/it/common`).

use crate::manifest::Manifest;
use crate::store::PluginRecord;

/// A manifest from its TOML text; panics on a mistake in the fixture.
pub fn manifest(toml: &str) -> Manifest {
    Manifest::parse(toml).expect("a test manifest that parses")
}

/// The manifest of a bundled plugin (`slack-poster`, `teams-poster`,
/// `retro-writer`), read from the repository.
pub fn bundled_manifest(plugin: &str) -> Manifest {
    let path = format!(
        "{}/../plugins/{plugin}/plugin.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    manifest(&text)
}

/// An installed plugin as the store would return it: named and versioned as
/// its manifest says, enabled, granted `grants` and the limits it requests,
/// its breaker closed; its sha256 and directory are placeholders that load
/// nothing.
pub fn plugin(manifest: Manifest, grants: &[&str]) -> PluginRecord {
    PluginRecord {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        description: manifest.description.clone(),
        sha256: "ab".repeat(32),
        dir: "/nowhere".into(),
        grants: grants.iter().map(|g| (*g).to_owned()).collect(),
        limit_grants: manifest.limits.clone(),
        manifest,
        enabled: true,
        failures: 0,
        breaker_until: None,
        breaker_error: None,
        installed_at: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_plugin_is_what_its_manifest_says_and_granted_only_what_it_is_given() {
        let p = plugin(bundled_manifest("slack-poster"), &["post-slack"]);
        assert_eq!(p.name, "slack-poster");
        assert_eq!(p.version, p.manifest.version);
        assert_eq!(p.grants, vec!["post-slack".to_owned()]);
        assert!(p.enabled && p.breaker_until.is_none());
    }
}
