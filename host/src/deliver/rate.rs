//! Slack's rate limits, kept before Slack has to enforce them: about one
//! message per second per channel, and a cap for the whole workspace.
//!
//! Each limit is a generic cell rate (GCRA): a rate of `r` per second lets
//! one message through every `1/r` seconds. A channel never bursts (Slack
//! counts per channel and a thread's replies must stay readable); the
//! workspace allows a burst of one second's worth (`r` messages) after a
//! quiet spell, so a delivery round with many channels ready sends them
//! together instead of one per workspace gap.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::destination::split_workspace;
use crate::model::Action;
use crate::store::Claimed;

/// One limit: the spacing of its messages and how far ahead of it a burst may run.
#[derive(Debug, Clone, Copy)]
struct Limit {
    gap: Duration,
    burst: Duration,
}

impl Limit {
    /// A limit of `rate` messages per second (at least one an hour),
    /// strictly spaced, or with a burst of one second's worth.
    fn per_second(rate: f64, burst: bool) -> Limit {
        let rate = rate.max(1.0 / 3600.0);
        let gap = Duration::from_secs_f64(1.0 / rate);
        let extra = if burst {
            (rate.floor() - 1.0).max(0.0)
        } else {
            0.0
        };
        Limit {
            gap,
            burst: gap.mul_f64(extra),
        }
    }

    /// How long until a message may go, given the theoretical arrival time
    /// `tat` of the next one (zero: now).
    fn wait(&self, tat: Option<Instant>, now: Instant) -> Duration {
        tat.map_or(Duration::ZERO, |tat| {
            tat.saturating_duration_since(now + self.burst)
        })
    }

    /// The theoretical arrival time after one more message at `now`.
    fn next(&self, tat: Option<Instant>, now: Instant) -> Instant {
        tat.map_or(now, |tat| tat.max(now)) + self.gap
    }
}

/// Theoretical arrival times per channel lane and for the workspace.
pub struct Rates {
    channel: Limit,
    workspace: Limit,
    tat: Mutex<HashMap<String, Instant>>,
}

const WORKSPACE: &str = "\u{0}workspace";

impl Rates {
    /// Rates in messages per second (at least one message per hour).
    pub fn new(per_channel: f64, per_workspace: f64) -> Rates {
        Rates {
            channel: Limit::per_second(per_channel, false),
            workspace: Limit::per_second(per_workspace, true),
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// `None` and a slot taken if `d` may go now; otherwise how long until it may.
    pub fn wait_for(&self, d: &Claimed) -> Option<Duration> {
        let ws = d.connection.as_deref().unwrap_or("");
        let channel = match &d.action {
            Action::PostSlack { channel, .. } => format!(
                "{ws}/#{}",
                split_workspace(channel)
                    .1
                    .trim_start_matches('#')
                    .to_lowercase()
            ),
            Action::DmSlack { email, .. } => {
                format!("{ws}/{}", split_workspace(email).1.to_lowercase())
            }
            _ => return None,
        };
        self.take_in(ws, channel, Instant::now())
    }

    #[cfg(test)]
    fn take(&self, channel: String, now: Instant) -> Option<Duration> {
        self.take_in("", channel, now)
    }

    /// Takes a slot in `channel` and in its workspace `ws`: each workspace
    /// has its own budget.
    fn take_in(&self, ws: &str, channel: String, now: Instant) -> Option<Duration> {
        let workspace = format!("{WORKSPACE}{ws}");
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let lane = tat.get(&channel).copied();
        let all = tat.get(&workspace).copied();
        let wait = self
            .channel
            .wait(lane, now)
            .max(self.workspace.wait(all, now));
        if !wait.is_zero() {
            return Some(wait);
        }
        tat.insert(channel, self.channel.next(lane, now));
        tat.insert(workspace, self.workspace.next(all, now));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_never_bursts() {
        let rates = Rates::new(4.0, 100.0);
        let t = Instant::now();
        assert_eq!(rates.take("#eng".into(), t), None);
        let wait = rates.take("#eng".into(), t).unwrap();
        assert_eq!(wait, Duration::from_millis(250));
        assert_eq!(
            rates.take("#ops".into(), t),
            None,
            "another channel is free"
        );
        assert_eq!(
            rates.take("#eng".into(), t + Duration::from_millis(250)),
            None
        );
    }

    #[test]
    fn workspace_allows_a_second_of_burst_then_its_rate() {
        let rates = Rates::new(1.0, 10.0);
        let t = Instant::now();
        for i in 0..10 {
            assert_eq!(rates.take(format!("#c{i}"), t), None, "message {i}");
        }
        let wait = rates.take("#c10".into(), t).unwrap();
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(
            rates.take("#c10".into(), t + Duration::from_millis(100)),
            None
        );
        assert!(
            rates
                .take("#c11".into(), t + Duration::from_millis(100))
                .is_some()
        );
    }

    #[test]
    fn each_workspace_has_its_own_budget() {
        let rates = Rates::new(100.0, 1.0);
        let t = Instant::now();
        assert_eq!(rates.take_in("acme", "acme/#eng".into(), t), None);
        assert!(rates.take_in("acme", "acme/#ops".into(), t).is_some());
        assert_eq!(rates.take_in("beta", "beta/#eng".into(), t), None);
    }

    #[test]
    fn a_raised_limit_lets_a_whole_round_through() {
        let rates = Rates::new(100_000.0, 100_000.0);
        let t = Instant::now();
        for i in 0..500 {
            assert_eq!(rates.take(format!("#c{i}"), t), None, "message {i}");
        }
    }
}
