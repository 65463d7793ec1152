//! Claims: how replicas share the work without sending anything twice.
//!
//! Dispatch and delivery take work with a *claim*: a token of their own for
//! one round, the replica's name (shown to admins), and a lease that ends by
//! the database's clock. A claimed event or a leased lane belongs to its
//! claim until the lease ends; the holder renews it while it works
//! (heartbeats), and a replica that stops renewing loses it to another. A
//! result is recorded only while the row still carries the claim's token,
//! so a replica that stalled past its lease can never record (and, because
//! it checks its lease before sending, never send) what another has taken.
//!
//! Slack's rates are kept here as well: the theoretical arrival time of the
//! next message of each channel and workspace is a row in the database, read
//! and advanced in the transaction that claims the delivery, so the limits
//! hold for the whole cluster, not per replica.
//!
//! This module only computes; it must never reach the database itself (the
//! backends do, each in its own SQL).

use crate::destination::split_workspace;
use crate::model::Action;

use super::Claimed;

/// One round's claim on work.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The replica that holds it (`host:pid:random`), for admins and logs.
    pub replica: String,
    /// This round's token: only a row still carrying it can be finished.
    pub token: i64,
    /// How long the lease lasts from the moment it is taken or renewed (ms).
    pub lease_ms: i64,
}

impl Claim {
    /// A new claim with a fresh random token.
    pub fn new(replica: &str, lease_ms: i64) -> Claim {
        Claim {
            replica: replica.to_owned(),
            token: random_token(),
            lease_ms: lease_ms.max(1),
        }
    }
}

/// A token no other round will draw: random bits from the standard
/// library's randomly keyed hasher, mixed with the time.
fn random_token() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 1) as i64
}

/// The name of this process among the replicas: host, pid and a random part,
/// drawn once, so dispatch and delivery claim under the same name and a
/// stopping server can let go of everything it holds by that name
/// (`Store::release_replica`).
pub fn replica_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        format!(
            "{host}:{}:{:04x}",
            std::process::id(),
            random_token() & 0xffff
        )
    })
    .clone()
}

/// What one delivery round claimed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryRound {
    /// Deliveries now `sending` under the round's claim: for each lane taken,
    /// its head and what follows it that the round may send, consecutive and
    /// in the lane's order (send them one after the other).
    pub claimed: Vec<Claimed>,
    /// A delivery was due but held back by a rate or a retry time: how long
    /// until the next one may go (ms).
    pub wait_ms: Option<i64>,
    /// The round looked at [`LANES_LOOKED_AT`] lanes and there may be more:
    /// the next round should come soon; it starts where this one stopped.
    pub more_lanes: bool,
}

impl DeliveryRound {
    /// The claimed deliveries lane by lane, each lane's in its order.
    pub fn lanes(&self) -> Vec<&[Claimed]> {
        self.claimed.chunk_by(|a, b| a.lane == b.lane).collect()
    }
}

/// Lanes whose heads one round looks at, at most (see [`LaneScan`]).
pub const LANES_LOOKED_AT: usize = 2048;

/// How far ahead of its rate slot a Slack message may be claimed (ms): a
/// channel allowed 1,000 messages a second gives a round up to 250 of them,
/// one allowed one a second gives it one, taken a little before its slot.
pub const CLAIM_AHEAD_MS: i64 = 250;

/// How many deliveries of one lane a round may take: a Slack lane as many as
/// its rate admits up to 32 (a message that may have been sent is looked for
/// before it is sent again, see `deliver::slack`); a Confluence lane 8 (its
/// pages and comments carry a marker looked for likewise); any other lane one
/// at a time (a Teams webhook keeps no trace to look for, so a crash must not
/// leave more than one of a lane's cards in doubt).
pub fn lane_batch(lane: &str) -> usize {
    if lane.starts_with("slack:") || lane.starts_with("slack-dm:") {
        32
    } else if lane.starts_with("confluence:") {
        8
    } else {
        1
    }
}

/// Slack's rates, as theoretical-arrival-time spacings (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePolicy {
    /// Between two messages in one channel (or DM); a channel never bursts.
    pub channel_gap_ms: i64,
    /// Between two messages in one workspace.
    pub workspace_gap_ms: i64,
    /// How far ahead of its rate a workspace may run after a quiet spell
    /// (one second's worth of messages).
    pub workspace_burst_ms: i64,
}

impl RatePolicy {
    /// Rates in messages per second (at least one an hour).
    pub fn per_second(channel: f64, workspace: f64) -> RatePolicy {
        let gap = |rate: f64| (1000.0 / rate.max(1.0 / 3600.0)).ceil() as i64;
        let workspace_gap_ms = gap(workspace);
        RatePolicy {
            channel_gap_ms: gap(channel),
            workspace_gap_ms,
            workspace_burst_ms: workspace_gap_ms * (workspace.floor() as i64 - 1).max(0),
        }
    }
}

/// The rate-limit rows a delivery counts against: its channel's and its
/// workspace's. Only Slack deliveries have them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateKeys {
    /// `slack-channel:<workspace>/#<channel>` or `.../<email>` for a DM.
    pub channel: String,
    /// `slack-workspace:<workspace>`.
    pub workspace: String,
}

/// The rate keys of a delivery, `None` if no rate applies to it.
pub fn rate_keys(d: &Claimed) -> Option<RateKeys> {
    let ws = d.connection.as_deref().unwrap_or("");
    let channel = match &d.action {
        Action::PostSlack { channel, .. } => format!(
            "slack-channel:{ws}/#{}",
            split_workspace(channel)
                .1
                .trim_start_matches('#')
                .to_lowercase()
        ),
        Action::DmSlack { email, .. } => {
            format!(
                "slack-channel:{ws}/{}",
                split_workspace(email).1.to_lowercase()
            )
        }
        _ => return None,
    };
    Some(RateKeys {
        channel,
        workspace: format!("slack-workspace:{ws}"),
    })
}

/// The rate keys checked again right before a message is sent: claiming
/// paces what is taken up, but the time from claim to request varies (a
/// thread lookup, a crash lookup after an uncertain attempt), so two
/// messages claimed a gap apart could still reach Slack closer together.
/// The send-time slots, kept apart from the claim-time ones, space the
/// requests themselves.
pub fn send_keys(d: &Claimed) -> Option<RateKeys> {
    rate_keys(d).map(|k| RateKeys {
        channel: format!("send:{}", k.channel),
        workspace: format!("send:{}", k.workspace),
    })
}

/// What asking for a send-time slot came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendSlot {
    /// Taken: the message may go now; `at` is the slot's time (ms, the
    /// store's clock), recorded with the attempt.
    Granted {
        /// The slot's time.
        at: i64,
    },
    /// Not yet: nothing was taken; ask again in this many ms.
    Wait {
        /// How long until the slot is due.
        ms: i64,
    },
}

/// The generic cell rate algorithm over stored arrival times (ms since the
/// epoch, 0 for a key never used): `Ok` with the new arrival times when a
/// message may go at `now`, else `Err` with how long until it may.
pub fn admit(
    policy: &RatePolicy,
    channel_tat: i64,
    workspace_tat: i64,
    now: i64,
) -> Result<(i64, i64), i64> {
    let wait_channel = channel_tat - now;
    let wait_workspace = workspace_tat - (now + policy.workspace_burst_ms);
    let wait = wait_channel.max(wait_workspace);
    if wait > 0 {
        return Err(wait);
    }
    Ok((
        channel_tat.max(now) + policy.channel_gap_ms,
        workspace_tat.max(now) + policy.workspace_gap_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_never_bursts() {
        let p = RatePolicy::per_second(4.0, 100.0);
        let (ch, ws) = admit(&p, 0, 0, 1_000).unwrap();
        assert_eq!(ch, 1_250);
        assert_eq!(admit(&p, ch, ws, 1_000), Err(250));
        assert!(admit(&p, 0, ws, 1_000).is_ok(), "another channel is free");
        assert!(admit(&p, ch, ws, 1_250).is_ok());
    }

    #[test]
    fn a_workspace_allows_a_second_of_burst_then_its_rate() {
        let p = RatePolicy::per_second(1.0, 10.0);
        let mut ws = 0;
        for i in 0..10 {
            let (_, next) = admit(&p, 0, ws, 1_000).unwrap_or_else(|w| panic!("message {i}: {w}"));
            ws = next;
        }
        assert_eq!(admit(&p, 0, ws, 1_000), Err(100));
        let (_, ws) = admit(&p, 0, ws, 1_100).unwrap();
        assert!(admit(&p, 0, ws, 1_100).is_err());
    }

    #[test]
    fn a_raised_limit_lets_a_whole_round_through() {
        let p = RatePolicy::per_second(100_000.0, 100_000.0);
        let mut ws = 0;
        for i in 0..500 {
            let (_, next) = admit(&p, 0, ws, 1_000).unwrap_or_else(|w| panic!("message {i}: {w}"));
            ws = next;
        }
    }

    #[test]
    fn keys_are_per_workspace_and_channel() {
        let d = |connection: &str, channel: &str| Claimed {
            id: 1,
            event_id: 1,
            destination: String::new(),
            action: Action::PostSlack {
                channel: channel.into(),
                text: String::new(),
                blocks: None,
                thread_key: Some("t".into()),
            },
            dry_run: false,
            lane: String::new(),
            source: String::new(),
            connection: Some(connection.into()),
            attempts: 0,
            uncertain: false,
            due: true,
            created_at: 0,
        };
        let a = rate_keys(&d("acme", "#Eng")).unwrap();
        assert_eq!(a.channel, "slack-channel:acme/#eng");
        assert_eq!(a.workspace, "slack-workspace:acme");
        assert_eq!(rate_keys(&d("acme", "acme/eng")).unwrap(), a);
        assert_ne!(rate_keys(&d("beta", "#eng")).unwrap(), a);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(Claim::new("r", 1).token, Claim::new("r", 1).token);
    }
}
