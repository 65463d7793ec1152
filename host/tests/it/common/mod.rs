//! Shared by the integration tests: where the built plugins and events are.
//!
//! Plugins are compiled to components by `make plugins` (which `make test`
//! runs first) into `target/plugins/<name>/`.

pub mod browser;
pub mod confluence;
pub mod console;
pub mod doctor;
pub mod people;
pub mod self_link;
pub mod sidecar;
pub mod slack_hook;

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// A packaged plugin directory; fails with instructions when it is missing.
pub fn plugin_dir(name: &str) -> PathBuf {
    let dir = root().join("target/plugins").join(name);
    assert!(
        dir.join("plugin.toml").exists(),
        "{} is missing: run `make plugins` (or `make test`) to build the test plugins",
        dir.display()
    );
    dir
}

/// An example event from examples/events/.
pub fn event_path(name: &str) -> PathBuf {
    root().join("examples/events").join(name)
}

/// Parses an example event.
pub fn event(name: &str) -> pagehook::model::Event {
    let text = std::fs::read_to_string(event_path(name)).expect("example event exists");
    serde_json::from_str(&text).expect("example event parses")
}
