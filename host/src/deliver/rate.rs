//! Slack's rate limits, kept before Slack has to enforce them: about one
//! message per second per channel, and a cap for the whole workspace.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::Action;
use crate::store::Claimed;

/// Next free slot per channel lane and for the workspace.
pub struct Rates {
    channel_gap: Duration,
    workspace_gap: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

const WORKSPACE: &str = "\u{0}workspace";

impl Rates {
    /// Rates in messages per second (at least one message per hour).
    pub fn new(per_channel: f64, per_workspace: f64) -> Rates {
        let gap = |rate: f64| Duration::from_secs_f64(1.0 / rate.max(1.0 / 3600.0));
        Rates {
            channel_gap: gap(per_channel),
            workspace_gap: gap(per_workspace),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// `None` and a slot taken if `d` may go now; otherwise how long until it may.
    pub fn wait_for(&self, d: &Claimed) -> Option<Duration> {
        let channel = match &d.action {
            Action::PostSlack { channel, .. } => {
                format!("#{}", channel.trim_start_matches('#').to_lowercase())
            }
            Action::DmSlack { email, .. } => email.to_lowercase(),
            _ => return None,
        };
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let lane_free = next.get(&channel).copied().unwrap_or(now);
        let all_free = next.get(WORKSPACE).copied().unwrap_or(now);
        let free = lane_free.max(all_free);
        if free > now {
            return Some(free - now);
        }
        next.insert(channel, now + self.channel_gap);
        next.insert(WORKSPACE.to_owned(), now + self.workspace_gap);
        None
    }
}
