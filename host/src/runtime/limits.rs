//! How much one plugin call may use, and how much a plugin may ask for.
//!
//! Every limit exists because a plugin could otherwise make the host spend
//! without bound: CPU (fuel, deadline), memory (linear memory and tables),
//! native stack, and host memory for what it returns (actions, log). Defaults
//! suit a compiled Rust plugin; a manifest may request more up to the host's
//! ceiling, and a request above the ceiling refuses the plugin at load.

use std::time::Duration;

use serde::Serialize;

use crate::manifest::LimitRequest;

const MIB: u64 = 1024 * 1024;

/// The limits in force for one plugin's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Deterministic instruction budget per call (Shopify Functions use 11M).
    pub fuel: u64,
    /// Wall-clock budget per call, enforced by epoch interruption.
    pub deadline_ms: u64,
    /// Linear memory cap per memory, in bytes.
    pub memory_bytes: u64,
    /// Native stack wasm code may use, in bytes.
    pub stack_bytes: u64,
    /// Most actions one call may return.
    pub max_actions: usize,
    /// Most bytes one action may take (as JSON).
    pub action_bytes: usize,
    /// Most bytes all actions of one call may take together.
    pub total_bytes: usize,
    /// Most bytes of log (the `log` import, stdout and stderr) per call.
    pub log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 10_000_000,
            deadline_ms: 200,
            memory_bytes: 32 * MIB,
            stack_bytes: 512 * 1024,
            max_actions: 50,
            action_bytes: 64 * 1024,
            total_bytes: 512 * 1024,
            log_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    /// The most any plugin may request on this host.
    pub fn ceiling() -> Limits {
        Limits {
            fuel: 20_000_000_000,
            deadline_ms: 10_000,
            memory_bytes: 512 * MIB,
            stack_bytes: 4 * MIB,
            max_actions: 1_000,
            action_bytes: 1024 * 1024,
            total_bytes: 8 * 1024 * 1024,
            log_bytes: 1024 * 1024,
        }
    }

    /// Applies a manifest's requests over these defaults, refusing any that
    /// exceed `ceiling` with a message naming the limit.
    pub fn with_requests(&self, req: &LimitRequest, ceiling: &Limits) -> Result<Limits, String> {
        fn pick<T: Copy + PartialOrd + std::fmt::Display>(
            name: &str,
            unit: &str,
            default: T,
            requested: Option<T>,
            ceiling: T,
        ) -> Result<T, String> {
            match requested {
                None => Ok(default),
                Some(v) if v > ceiling => Err(format!(
                    "requests {name} {v}{unit}, above this host's ceiling of {ceiling}{unit}"
                )),
                Some(v) => Ok(v),
            }
        }
        Ok(Limits {
            fuel: pick("fuel", "", self.fuel, req.fuel, ceiling.fuel)?,
            deadline_ms: pick(
                "deadline-ms",
                " ms",
                self.deadline_ms,
                req.deadline_ms,
                ceiling.deadline_ms,
            )?,
            memory_bytes: pick(
                "memory-mib",
                " MiB",
                self.memory_bytes / MIB,
                req.memory_mib,
                ceiling.memory_bytes / MIB,
            )? * MIB,
            stack_bytes: pick(
                "stack-kib",
                " KiB",
                self.stack_bytes / 1024,
                req.stack_kib,
                ceiling.stack_bytes / 1024,
            )? * 1024,
            max_actions: pick(
                "max-actions",
                "",
                self.max_actions,
                req.max_actions,
                ceiling.max_actions,
            )?,
            action_bytes: pick(
                "action-bytes",
                "",
                self.action_bytes,
                req.action_bytes,
                ceiling.action_bytes,
            )?,
            total_bytes: pick(
                "total-bytes",
                "",
                self.total_bytes,
                req.total_bytes,
                ceiling.total_bytes,
            )?,
            log_bytes: pick(
                "log-bytes",
                "",
                self.log_bytes,
                req.log_bytes,
                ceiling.log_bytes,
            )?,
        })
    }

    /// The deadline as a duration.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_override_defaults_within_the_ceiling() {
        let req = LimitRequest {
            fuel: Some(1_000_000_000),
            memory_mib: Some(128),
            ..Default::default()
        };
        let l = Limits::default()
            .with_requests(&req, &Limits::ceiling())
            .unwrap();
        assert_eq!(l.fuel, 1_000_000_000);
        assert_eq!(l.memory_bytes, 128 * MIB);
        assert_eq!(l.deadline_ms, Limits::default().deadline_ms);
    }

    #[test]
    fn request_above_ceiling_is_refused_by_name() {
        let req = LimitRequest {
            memory_mib: Some(4096),
            ..Default::default()
        };
        let err = Limits::default()
            .with_requests(&req, &Limits::ceiling())
            .unwrap_err();
        assert_eq!(
            err,
            "requests memory-mib 4096 MiB, above this host's ceiling of 512 MiB"
        );
    }
}
