//! Running `pagehook doctor --json` against a test sidecar's config and
//! reading its report: the exit status, a feature's verdict, and the bot
//! scopes of Pagehook's own Slack app manifest (so a fake Slack can grant
//! exactly those).
//!
//! It must never interpret a verdict (tests assert on the report as the
//! doctor printed it).

use serde_json::Value;

use super::sidecar::Sidecar;

/// The bot scopes of Pagehook's Slack app manifest.
pub fn manifest_scopes() -> Vec<&'static str> {
    pagehook::slack::app_manifest::SLACK_APP_MANIFEST
        .lines()
        .skip_while(|l| !l.contains("bot:"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .filter_map(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .split_whitespace()
                .next()
        })
        .collect()
}

/// `pagehook doctor --json`: its exit code and report.
pub fn doctor(side: &Sidecar) -> (i32, Value) {
    let out = side.cli_output(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

/// The verdict on `feature` of connection `name` (`kind`: `confluence` or `slack`).
pub fn feature<'a>(report: &'a Value, kind: &str, name: &str, feature: &str) -> &'a Value {
    report[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["connection"] == name)
        .unwrap_or_else(|| panic!("no {kind} connection {name} in {report:#}"))["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == feature)
        .unwrap_or_else(|| panic!("no feature {feature} in {report:#}"))
}
