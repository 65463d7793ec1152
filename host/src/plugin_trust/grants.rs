//! Limits a plugin may use above the host's defaults, as the admin granted
//! them, and the limits it therefore runs with.
//!
//! A manifest's `[limits]` is a request. Installing a plugin grants what
//! that version requests (the admin read it in the audit first); an
//! upgrade keeps the grant it had, so a new version that asks for more
//! memory, fuel or time runs with what was granted until an admin grants
//! the new request (`pagehook plugin grant NAME --limits`, or install with
//! `--grant-limits`). A request at or below the host default is never held:
//! every plugin gets the defaults without asking.
//!
//! What it must never do: let a request exceed what was granted, or lower
//! a limit below what the plugin asked for when the grant covers it.

use serde::Serialize;

use crate::manifest::LimitRequest;
use crate::runtime::Limits;

/// The manifest names of the limits, in `LimitRequest`'s order.
pub const LIMIT_NAMES: [&str; 8] = [
    "fuel",
    "deadline-ms",
    "memory-mib",
    "stack-kib",
    "max-actions",
    "action-bytes",
    "total-bytes",
    "log-bytes",
];

/// A request's fields in [`LIMIT_NAMES`] order, in manifest units.
pub fn fields(r: &LimitRequest) -> [Option<u64>; 8] {
    [
        r.fuel,
        r.deadline_ms,
        r.memory_mib,
        r.stack_kib,
        r.max_actions.map(|v| v as u64),
        r.action_bytes.map(|v| v as u64),
        r.total_bytes.map(|v| v as u64),
        r.log_bytes.map(|v| v as u64),
    ]
}

fn from_fields(f: [Option<u64>; 8]) -> LimitRequest {
    let size = |v: Option<u64>| v.map(|v| usize::try_from(v).unwrap_or(usize::MAX));
    LimitRequest {
        fuel: f[0],
        deadline_ms: f[1],
        memory_mib: f[2],
        stack_kib: f[3],
        max_actions: size(f[4]),
        action_bytes: size(f[5]),
        total_bytes: size(f[6]),
        log_bytes: size(f[7]),
    }
}

/// The host's limits in manifest units ([`LIMIT_NAMES`] order).
pub fn default_fields(l: &Limits) -> [u64; 8] {
    [
        l.fuel,
        l.deadline_ms,
        l.memory_bytes / (1024 * 1024),
        l.stack_bytes / 1024,
        l.max_actions as u64,
        l.action_bytes as u64,
        l.total_bytes as u64,
        l.log_bytes as u64,
    ]
}

/// One limit a manifest requests beyond what was granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldLimit {
    /// Its manifest name (`memory-mib`).
    pub limit: String,
    /// What the manifest requests.
    pub requested: u64,
    /// What it runs with instead: the grant, or the host default.
    pub in_force: u64,
}

/// The request a plugin runs with: each field of `requested`, held to
/// `granted` (or to the host default where that is more).
pub fn in_force(
    requested: &LimitRequest,
    granted: &LimitRequest,
    defaults: &Limits,
) -> LimitRequest {
    let (req, grant, dflt) = (fields(requested), fields(granted), default_fields(defaults));
    let mut out = [None; 8];
    for i in 0..8 {
        out[i] = req[i].map(|r| r.min(allowance(grant[i], dflt[i])));
    }
    from_fields(out)
}

/// The requests `granted` does not cover.
pub fn held(requested: &LimitRequest, granted: &LimitRequest, defaults: &Limits) -> Vec<HeldLimit> {
    let (req, grant, dflt) = (fields(requested), fields(granted), default_fields(defaults));
    (0..8)
        .filter_map(|i| {
            let r = req[i]?;
            let allowed = allowance(grant[i], dflt[i]);
            (r > allowed).then(|| HeldLimit {
                limit: LIMIT_NAMES[i].to_owned(),
                requested: r,
                in_force: allowed,
            })
        })
        .collect()
}

fn allowance(granted: Option<u64>, default: u64) -> u64 {
    granted.map_or(default, |g| g.max(default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_beyond_the_grant_runs_at_the_grant_and_is_listed() {
        let defaults = Limits::default();
        let granted = LimitRequest {
            memory_mib: Some(48),
            ..LimitRequest::default()
        };
        let requested = LimitRequest {
            memory_mib: Some(64),
            fuel: Some(1_000),
            deadline_ms: Some(5_000),
            ..LimitRequest::default()
        };
        let force = in_force(&requested, &granted, &defaults);
        assert_eq!(force.memory_mib, Some(48));
        // Below the default: never held.
        assert_eq!(force.fuel, Some(1_000));
        // Above the default, never granted: the default.
        assert_eq!(force.deadline_ms, Some(defaults.deadline_ms));
        assert_eq!(
            held(&requested, &granted, &defaults),
            vec![
                HeldLimit {
                    limit: "deadline-ms".into(),
                    requested: 5_000,
                    in_force: defaults.deadline_ms
                },
                HeldLimit {
                    limit: "memory-mib".into(),
                    requested: 64,
                    in_force: 48
                },
            ]
        );
        // Granting the request releases all of it.
        assert_eq!(in_force(&requested, &requested, &defaults), requested);
        assert!(held(&requested, &requested, &defaults).is_empty());
    }
}
