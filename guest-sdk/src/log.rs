//! Writing to the host's per-call log.
//!
//! A plugin has no files and no network, so the contract's `log` import is
//! its only way to explain itself: lines land in the bounded per-call log
//! that `pagehook plugin run` prints and that is kept with failed calls.
//! Never log secrets (a plugin has none) and do not rely on every line being
//! kept: the host caps log bytes per call.
//!
//! Outside WebAssembly (native `cargo test` of plugin logic) the lines go to
//! stderr instead, so the same code is testable without a host.

use crate::LogLevel;

/// Write `message` at `level`.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_family = "wasm")]
    crate::wit::log(level, message);

    #[cfg(not(target_family = "wasm"))]
    eprintln!("[pagehook {}] {message}", level_name(level));
}

/// Detail for authors debugging a plugin.
pub fn debug(message: impl AsRef<str>) {
    log(LogLevel::Debug, message.as_ref());
}

/// A normal decision worth recording ("skipped: minor edit").
pub fn info(message: impl AsRef<str>) {
    log(LogLevel::Info, message.as_ref());
}

/// Something odd the plugin worked around.
pub fn warn(message: impl AsRef<str>) {
    log(LogLevel::Warn, message.as_ref());
}

/// Something went wrong; usually followed by returning `Err`.
pub fn error(message: impl AsRef<str>) {
    log(LogLevel::Error, message.as_ref());
}

#[cfg(not(target_family = "wasm"))]
fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn native_logging_does_not_reach_the_wasm_import() {
        // On native targets the generated import stub is `unreachable!()`;
        // reaching it would panic this test.
        super::debug("d");
        super::info(String::from("i"));
        super::warn("w");
        super::error(format!("e {}", 1));
    }
}
