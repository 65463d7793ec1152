//! The clocks a plugin sees: the event's own time, never the host's.
//!
//! `handle` must be a pure function of event and settings, so a replay, a
//! preview or a retry gives the same actions. The host's clocks would break
//! that, so each call's WASI context gets these instead:
//!
//! - `wasi:clocks/wall-clock` always reads the event's `occurred-at-ms`
//!   (Rust's `SystemTime::now()`, Python's `time.time()`, JavaScript's
//!   `Date.now()`). It does not move during the call.
//! - `wasi:clocks/monotonic-clock` starts at 0 and advances by exactly
//!   [`MONOTONIC_STEP_NS`] each time it is read. It is strictly increasing,
//!   so code that divides by an elapsed time or waits for "time to pass" in a
//!   loop still ends (or runs out of fuel, the same way every time), and a
//!   plugin that reads it the same number of times sees the same values.
//!   Real sleeps (`subscribe-duration`) still take real time, bounded by the
//!   call's deadline, but do not show on this clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// How far the monotonic clock moves each time it is read.
pub const MONOTONIC_STEP_NS: u64 = 1_000;

/// A wall clock stopped at the event's time.
#[derive(Debug, Clone, Copy)]
pub struct EventWallClock {
    since_epoch: Duration,
}

impl EventWallClock {
    /// A clock that always reads `occurred_at_ms` (ms since the Unix epoch).
    pub fn new(occurred_at_ms: u64) -> EventWallClock {
        EventWallClock {
            since_epoch: Duration::from_millis(occurred_at_ms),
        }
    }
}

impl HostWallClock for EventWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        self.since_epoch
    }
}

/// A monotonic clock that starts at 0 and ticks once per read.
#[derive(Debug, Default)]
pub struct SteppingMonotonicClock {
    reads: AtomicU64,
}

impl HostMonotonicClock for SteppingMonotonicClock {
    fn resolution(&self) -> u64 {
        MONOTONIC_STEP_NS
    }

    fn now(&self) -> u64 {
        let reads = self.reads.fetch_add(1, Ordering::Relaxed);
        reads.saturating_mul(MONOTONIC_STEP_NS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_reads_the_event_time_every_time() {
        let clock = EventWallClock::new(1_768_241_233_603);
        assert_eq!(clock.now(), Duration::from_millis(1_768_241_233_603));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.now(), Duration::from_millis(1_768_241_233_603));
        assert_eq!(clock.resolution(), Duration::from_millis(1));
    }

    #[test]
    fn monotonic_clock_starts_at_zero_and_steps_per_read() {
        let clock = SteppingMonotonicClock::default();
        assert_eq!(clock.now(), 0);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.now(), MONOTONIC_STEP_NS);
        assert_eq!(clock.now(), 2 * MONOTONIC_STEP_NS);
        assert_eq!(clock.resolution(), MONOTONIC_STEP_NS);
    }
}
