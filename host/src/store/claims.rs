//! Claims: how replicas share the work without sending anything twice, and
//! the rules of a delivery round, written once for both backends.
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
//! # A delivery round
//!
//! A round looks at the **head of every lane** (its oldest delivery still to
//! send, by event then id), found through the `deliveries_lane_heads` index
//! one lane at a time, so a lane with 100,000 deliveries queued costs a round
//! no more than a lane with one, and never hides another lane's head. Only
//! deliveries of events older than the oldest event not yet dispatched (the
//! *watermark*) are taken, so a lane keeps the events' order across
//! replicas. From those heads ([`Plan::heads`]), in event order, it takes
//! first one head per rate group (a Slack channel or DM, else the lane
//! itself), then further heads: each must be free (no live lease of another
//! claim), due, and admitted by Slack's rates. Then ([`Plan::extend`]) each
//! lane taken may also take the deliveries that follow its head, in order, as
//! far as its rate admits them and up to [`lane_batch`]: a lane with a
//! backlog sends several messages per round, one after the other, instead
//! of one per round.
//!
//! Rates admit a message up to [`CLAIM_AHEAD_MS`] before its slot; the
//! send-time slots ([`send_keys`]) space the requests themselves, so
//! claiming ahead never sends early. A round looks at most at
//! [`LANES_LOOKED_AT`] lanes, starting where the last round of this process
//! stopped ([`LaneScan`]); with more lanes than that, it says so
//! ([`DeliveryRound::more_lanes`]) and the next round comes soon and goes on
//! from there, so every lane's head is looked at within a few rounds.
//!
//! Finishing ([`attempt_writes`], [`release_lanes_sql`]) records each
//! attempt only under the claim's token, and lets go of each lane an
//! attempt was recorded for: a delivery of that lane the claim still holds
//! without a result was never attempted (a lane stops at its first failure)
//! and goes back to the queue as it was. A lane that sent everything it
//! held and that no rate paces may instead *go on* ([`GoOn`]): the same
//! transaction renews its lease (only if the claim still holds it) and takes
//! what follows its last delivery, as a round takes what follows a head
//! (due, older than the watermark, up to its batch: [`taken_going_on`]), so
//! a lane with a backlog keeps sending without waiting for a round; a lane
//! with nothing left is let go.
//!
//! This module only computes, and writes the statements that are the same on
//! both backends; it must never reach the database itself (the backends run
//! the statements, and their own where the dialects differ).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use crate::destination::split_workspace;
use crate::model::Action;

use super::sql::{Dialect, Param, Row};
use super::{AttemptResult, Claimed, Outcome, StoreResult};

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

/// A lane all of whose claimed deliveries went through, asking to take what
/// follows them in the transaction that records them
/// (`Store::finish_and_go_on`): a lane with a backlog then keeps sending
/// without letting go and waiting for the next round to claim it again.
#[derive(Debug, Clone, PartialEq)]
pub struct GoOn {
    /// The lane.
    pub lane: String,
    /// Its last delivery, `(event, id)`: what follows it comes next.
    pub after: (i64, i64),
}

/// What recording a round's finished lanes came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finished {
    /// Attempts recorded (those still carrying the claim's token).
    pub recorded: usize,
    /// The deliveries the lanes that went on took, now `sending` under the
    /// same claim: lane by lane, each lane's in its order, as in
    /// [`DeliveryRound::claimed`].
    pub next: Vec<Claimed>,
}

/// Whether `lane` may go on from its record instead of a round: no Slack
/// rate is in force on it. A paced lane's next message waits for its slot
/// in any case, and it is the rounds that admit against the shared rate
/// rows, so a paced lane always goes back to them.
pub fn goes_on_unpaced(lane: &str, rates: &RatePolicy) -> bool {
    lane_rate_keys(lane).is_none() || (rates.channel_gap_ms == 0 && rates.workspace_gap_ms == 0)
}

/// What a lane going on takes of `followers` (what follows its last
/// delivery, in its order, of events older than the watermark): as many as
/// its batch allows ([`lane_batch`]), up to the first not yet due at `now`.
pub fn taken_going_on(lane: &str, followers: &[Queued], now: i64) -> Vec<i64> {
    followers
        .iter()
        .filter(|f| f.lane == lane)
        .take(lane_batch(lane))
        .take_while(|f| f.next_try_at <= now)
        .map(|f| f.id)
        .collect()
}

/// Puts claimed rows (any order) lane by lane in the order the lanes were
/// asked to go on, each lane's by `(event, id)`.
pub fn going_on_in_order(go_on: &[GoOn], mut rows: Vec<Claimed>) -> Vec<Claimed> {
    let place: HashMap<&str, usize> = go_on
        .iter()
        .enumerate()
        .map(|(i, g)| (g.lane.as_str(), i))
        .collect();
    rows.retain(|d| place.contains_key(d.lane.as_str()));
    rows.sort_by_key(|d| (place[d.lane.as_str()], d.event_id, d.id));
    rows
}

/// Lanes whose heads one round looks at, at most (see [`LaneScan`]): each
/// costs a round an index probe, and a round holds SQLite's one connection
/// (or PostgreSQL's round lock), so the bound keeps a round short however
/// many lanes wait; a round takes at most 64 lanes anyway (the delivery
/// loop's room), and the rest are looked at by the next rounds.
pub const LANES_LOOKED_AT: usize = 256;

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
    /// Rates in messages per second (at least one an hour). A rate above
    /// 1,000 a second is no limit: slots are kept in milliseconds.
    pub fn per_second(channel: f64, workspace: f64) -> RatePolicy {
        let gap = |rate: f64| {
            if rate > 1000.0 {
                0
            } else {
                (1000.0 / rate.max(1.0 / 3600.0)).ceil() as i64
            }
        };
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

/// The rate keys a round admits a delivery against, read from its lane
/// (`slack:<workspace>/<channel>[:<thread key>]`, `slack-dm:<workspace>/<email>`;
/// see `destination::lane`), so a round never decodes an action it does not
/// take. They are [`rate_keys`] for every channel name Slack allows (a name
/// with a `:` would count against a shorter name's slots: stricter, never
/// looser).
pub fn lane_rate_keys(lane: &str) -> Option<RateKeys> {
    let (ws, channel) = if let Some(rest) = lane.strip_prefix("slack:") {
        let (ws, rest) = rest.split_once('/')?;
        let channel = rest.split(':').next().unwrap_or(rest);
        (ws, format!("#{channel}"))
    } else if let Some(rest) = lane.strip_prefix("slack-dm:") {
        let (ws, email) = rest.split_once('/')?;
        (ws, email.to_owned())
    } else {
        return None;
    };
    Some(RateKeys {
        channel: format!("slack-channel:{ws}/{channel}"),
        workspace: format!("slack-workspace:{ws}"),
    })
}

/// The rate keys checked again right before a message is sent: claiming
/// paces what is taken up, but the time from claim to request varies (a
/// thread lookup, a crash lookup after an uncertain attempt, messages claimed
/// ahead), so two messages claimed a gap apart could still reach Slack closer
/// together. The send-time slots, kept apart from the claim-time ones, space
/// the requests themselves.
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
    admit_ahead(policy, channel_tat, workspace_tat, now, 0)
}

/// [`admit`] for a message that may be taken up to `ahead` ms before its
/// slot (it is sent at its slot, see [`send_keys`]).
fn admit_ahead(
    policy: &RatePolicy,
    channel_tat: i64,
    workspace_tat: i64,
    now: i64,
    ahead: i64,
) -> Result<(i64, i64), i64> {
    let wait_channel = channel_tat - now - ahead;
    let wait_workspace = workspace_tat - (now + policy.workspace_burst_ms) - ahead;
    let wait = wait_channel.max(wait_workspace);
    if wait > 0 {
        return Err(wait);
    }
    Ok((
        channel_tat.max(now) + policy.channel_gap_ms,
        workspace_tat.max(now) + policy.workspace_gap_ms,
    ))
}

/// A delivery still to send, as a round first sees it: where it stands in
/// its lane and whether it may go now; its action is read only once it is
/// taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// The delivery.
    pub id: i64,
    /// Its event (a lane goes by event, then id).
    pub event_id: i64,
    /// Its lane.
    pub lane: String,
    /// Not before this time (ms): a retry's.
    pub next_try_at: i64,
    /// It was `sending`: a claim that ended without recording it may have
    /// sent it.
    pub in_flight: bool,
}

impl Queued {
    /// Reads one from a row of `id, event_id, lane, next_try_at, status`.
    pub(crate) fn from_row(row: &dyn Row) -> StoreResult<Queued> {
        Ok(Queued {
            id: row.get("id")?,
            event_id: row.get("event_id")?,
            lane: row.get("lane")?,
            next_try_at: row.get("next_try_at")?,
            in_flight: row.get::<String>("status")? == "sending",
        })
    }
}

/// The columns a claimed delivery is read from ([`claimed_from_row`]).
pub(crate) const CLAIMED_COLUMNS: &str = "id, event_id, destination, action, dry_run, lane, source, attempts, uncertain, created_at, connection";

/// A claimed delivery from a row of [`CLAIMED_COLUMNS`].
pub(crate) fn claimed_from_row(row: &dyn Row) -> StoreResult<Claimed> {
    Ok(Claimed {
        id: row.get("id")?,
        event_id: row.get("event_id")?,
        destination: row.get("destination")?,
        action: row.json("action", "delivery action")?,
        dry_run: row.get("dry_run")?,
        lane: row.get("lane")?,
        source: row.get("source")?,
        connection: row.get("connection")?,
        attempts: row.get("attempts")?,
        uncertain: row.get("uncertain")?,
        due: true,
        created_at: row.get("created_at")?,
    })
}

/// Where the last round of this process stopped looking at lanes (by name),
/// per database. Only a starting point: every round still looks at every
/// lane when there are no more than [`LANES_LOOKED_AT`].
static LANE_CURSORS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// The lanes one round looks at: first those after where the last round on
/// the same database stopped (by name), then from the first lane up to
/// there, at most [`LANES_LOOKED_AT`] in all. Backends run the two scans
/// (`lane > after`, then, when there is an `after`, `lane <= after`; each in
/// name order, the head of each lane) and hand what they found to
/// [`LaneScan::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct LaneScan {
    /// Look at lanes after this one first (`None`: from the first lane).
    pub after: Option<String>,
    database: String,
}

impl LaneScan {
    /// Starts where the last round on `database` (a file, a URL) stopped.
    pub fn start(database: &str) -> LaneScan {
        LaneScan {
            after: LANE_CURSORS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(database)
                .cloned(),
            database: database.to_owned(),
        }
    }

    /// How many more lanes the second scan may look at after the first found `first`.
    pub fn room_after(first: usize) -> usize {
        LANES_LOOKED_AT.saturating_sub(first)
    }

    /// Notes where this scan stopped; whether lanes were left unseen.
    pub fn finish(self, seen: &[Queued]) -> bool {
        let more = seen.len() >= LANES_LOOKED_AT;
        if more && let Some(last) = seen.last() {
            LANE_CURSORS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.database, last.lane.clone());
        }
        more
    }
}

/// The rate rows a round reads (and, on PostgreSQL, locks, in this order):
/// those of every head that is free and due.
pub fn rate_rows(heads: &[Queued], unavailable: &HashSet<String>, now: i64) -> Vec<String> {
    let mut keys = BTreeSet::new();
    for h in heads {
        if h.next_try_at <= now
            && !unavailable.contains(&h.lane)
            && let Some(k) = lane_rate_keys(&h.lane)
        {
            keys.insert(k.channel);
            keys.insert(k.workspace);
        }
    }
    keys.into_iter().collect()
}

/// One lane a round takes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedLane {
    /// The lane.
    pub lane: String,
    /// Its deliveries taken, in its order.
    pub ids: Vec<i64>,
    /// The last one's place (event, id): what follows comes after it.
    pub last: (i64, i64),
    /// How many more it may take.
    pub room: usize,
    keys: Option<RateKeys>,
}

/// What a round takes: the walk over the heads and then over what follows
/// them, with the arrival times it advanced.
#[derive(Debug, Clone)]
pub struct Plan {
    rates: RatePolicy,
    now: i64,
    stored: HashMap<String, i64>,
    tats: HashMap<String, i64>,
    /// How long until a held-back delivery may go (ms).
    pub wait_ms: Option<i64>,
    /// The lanes taken, in the order their heads were taken.
    pub lanes: Vec<PlannedLane>,
}

impl Plan {
    /// Takes heads (`heads`: at most one per lane, any order) that are free,
    /// due and admitted by the rates, at most `max_lanes`: in event order,
    /// first one per rate group (a Slack channel or DM, else the lane), then
    /// the rest. `stored` holds the arrival times of [`rate_rows`] as read.
    pub fn heads(
        heads: &[Queued],
        unavailable: &HashSet<String>,
        stored: &HashMap<String, i64>,
        rates: RatePolicy,
        now: i64,
        max_lanes: usize,
    ) -> Plan {
        let mut plan = Plan {
            rates,
            now,
            stored: stored.clone(),
            tats: stored.clone(),
            wait_ms: None,
            lanes: Vec::new(),
        };
        let mut order: Vec<&Queued> = heads
            .iter()
            .filter(|h| !unavailable.contains(&h.lane))
            .collect();
        order.sort_by_key(|h| (h.event_id, h.id));
        let mut taken = vec![false; order.len()];
        let mut groups: HashSet<String> = HashSet::new();
        for first_of_group in [true, false] {
            for (i, h) in order.iter().enumerate() {
                if taken[i] || plan.lanes.len() >= max_lanes {
                    continue;
                }
                let keys = lane_rate_keys(&h.lane);
                if first_of_group {
                    let group = keys
                        .as_ref()
                        .map_or_else(|| h.lane.clone(), |k| k.channel.clone());
                    if !groups.insert(group) {
                        continue;
                    }
                }
                taken[i] = true;
                if h.next_try_at > now {
                    plan.hold(h.next_try_at - now);
                    continue;
                }
                if !plan.admit(keys.as_ref()) {
                    continue;
                }
                plan.lanes.push(PlannedLane {
                    lane: h.lane.clone(),
                    ids: vec![h.id],
                    last: (h.event_id, h.id),
                    room: lane_batch(&h.lane) - 1,
                    keys,
                });
            }
        }
        plan
    }

    /// The lanes that may take what follows their head: `(lane, after
    /// (event, id), at most)`.
    pub fn wanting_more(&self) -> Vec<(&str, (i64, i64), usize)> {
        self.lanes
            .iter()
            .filter(|l| l.room > 0)
            .map(|l| (l.lane.as_str(), l.last, l.room))
            .collect()
    }

    /// Takes what follows the lanes' heads (`followers`: each lane's next
    /// deliveries in its order, lanes in any order), each as far as it is
    /// due and admitted by the rates, in the order the lanes were taken.
    pub fn extend(&mut self, followers: &[Queued]) {
        let mut by_lane: HashMap<&str, Vec<&Queued>> = HashMap::new();
        for f in followers {
            by_lane.entry(f.lane.as_str()).or_default().push(f);
        }
        for i in 0..self.lanes.len() {
            let Some(next) = by_lane.get(self.lanes[i].lane.as_str()) else {
                continue;
            };
            for f in next {
                let lane = &self.lanes[i];
                if lane.room == 0 || (f.event_id, f.id) <= lane.last {
                    break;
                }
                if f.next_try_at > self.now {
                    self.hold(f.next_try_at - self.now);
                    break;
                }
                let keys = lane.keys.clone();
                if !self.admit(keys.as_ref()) {
                    break;
                }
                let lane = &mut self.lanes[i];
                lane.ids.push(f.id);
                lane.last = (f.event_id, f.id);
                lane.room -= 1;
            }
        }
    }

    /// Every delivery taken, lane by lane.
    pub fn ids(&self) -> Vec<i64> {
        self.lanes
            .iter()
            .flat_map(|l| l.ids.iter().copied())
            .collect()
    }

    /// The arrival times the plan advanced, to write back.
    pub fn changed_tats(&self) -> Vec<(String, i64)> {
        let mut changed: Vec<(String, i64)> = self
            .tats
            .iter()
            .filter(|(k, v)| self.stored.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        changed.sort();
        changed
    }

    /// Puts the claimed rows (any order) in the plan's order: lane by lane,
    /// each lane's in its order. A row missing (finished by its previous
    /// holder after the round read it) is simply not there.
    pub fn in_order(&self, mut rows: Vec<Claimed>) -> Vec<Claimed> {
        let place: HashMap<i64, usize> = self
            .ids()
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        rows.retain(|d| place.contains_key(&d.id));
        rows.sort_by_key(|d| place[&d.id]);
        rows
    }

    /// Lanes the plan took none of whose deliveries `marked` holds: their
    /// deliveries were finished by their previous holder meanwhile, and their
    /// new leases are to be let go.
    pub fn idle_lanes(&self, marked: &[Claimed]) -> Vec<String> {
        let busy: HashSet<&str> = marked.iter().map(|d| d.lane.as_str()).collect();
        self.lanes
            .iter()
            .filter(|l| !busy.contains(l.lane.as_str()))
            .map(|l| l.lane.clone())
            .collect()
    }

    /// Admits one message against `keys` (none: no rate), advancing them.
    fn admit(&mut self, keys: Option<&RateKeys>) -> bool {
        let Some(keys) = keys else {
            return true;
        };
        let channel = self.tats.get(&keys.channel).copied().unwrap_or(0);
        let workspace = self.tats.get(&keys.workspace).copied().unwrap_or(0);
        match admit_ahead(&self.rates, channel, workspace, self.now, CLAIM_AHEAD_MS) {
            Ok((channel, workspace)) => {
                self.tats.insert(keys.channel.clone(), channel);
                self.tats.insert(keys.workspace.clone(), workspace);
                true
            }
            Err(ms) => {
                self.hold(ms);
                false
            }
        }
    }

    fn hold(&mut self, ms: i64) {
        self.wait_ms = Some(self.wait_ms.map_or(ms, |w| w.min(ms)));
    }
}

/// The statements that record one attempt: `update` changes the delivery
/// only while it still carries the claim's token; `then` runs only if it did.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptWrites {
    /// The delivery's new state, under the token.
    pub update: (&'static str, Vec<Param>),
    /// The attempt's row, and a Slack thread it started (the first one wins:
    /// a retried root must not move its thread).
    pub then: Vec<(&'static str, Vec<Param>)>,
}

/// What recording `a` under `claim` writes (`now`: the time it is recorded,
/// ms). Statements in SQLite's placeholders (see `Dialect::text`).
pub fn attempt_writes(claim: &Claim, a: &AttemptResult, now: i64) -> AttemptWrites {
    let id = Param::from(a.delivery_id);
    let token = Param::from(claim.token);
    let (label, error, update) = match &a.outcome {
        Outcome::Sent { result, .. } => (
            "sent",
            None,
            (
                "UPDATE deliveries SET status = 'sent', result = ?3, sent_at = ?4, attempts = attempts + 1,
                   last_error = NULL, uncertain = FALSE, claim_token = NULL, claimed_by = NULL
                 WHERE id = ?1 AND claim_token = ?2",
                vec![id.clone(), token, result.into(), now.into()],
            ),
        ),
        Outcome::WouldSend { request } => (
            "would-send",
            None,
            (
                "UPDATE deliveries SET status = 'would-send', result = ?3, sent_at = ?4, attempts = attempts + 1,
                   claim_token = NULL, claimed_by = NULL
                 WHERE id = ?1 AND claim_token = ?2",
                vec![id.clone(), token, request.into(), now.into()],
            ),
        ),
        Outcome::Retry {
            error,
            at,
            uncertain,
        } => (
            "retry",
            Some(error.as_str()),
            (
                "UPDATE deliveries SET status = 'pending', next_try_at = ?3, last_error = ?4, attempts = attempts + 1,
                   uncertain = (uncertain OR ?5), claim_token = NULL, claimed_by = NULL
                 WHERE id = ?1 AND claim_token = ?2",
                vec![
                    id.clone(),
                    token,
                    (*at).into(),
                    error.into(),
                    (*uncertain).into(),
                ],
            ),
        ),
        Outcome::Dead { error } => (
            "dead",
            Some(error.as_str()),
            (
                "UPDATE deliveries SET status = 'dead', last_error = ?3, attempts = attempts + 1,
                   claim_token = NULL, claimed_by = NULL
                 WHERE id = ?1 AND claim_token = ?2",
                vec![id.clone(), token, error.into()],
            ),
        ),
    };
    let mut then = vec![(
        "INSERT INTO attempts (delivery_id, at, outcome, error, latency_ms, sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        vec![
            id,
            a.started_at.into(),
            label.into(),
            error.into(),
            a.latency_ms.into(),
            a.sent_at.into(),
        ],
    )];
    if let Outcome::Sent {
        thread: Some(t), ..
    } = &a.outcome
    {
        then.push((
            "INSERT INTO slack_threads (connection, channel, thread_key, ts) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            vec![
                (&t.connection).into(),
                (&t.channel).into(),
                (&t.key).into(),
                (&t.ts).into(),
            ],
        ));
    }
    AttemptWrites { update, then }
}

/// The deliveries a claim holds and their lanes (`id`, `lane`): read before
/// recording, to know which lanes the recorded attempts let go.
pub const HELD_BY_CLAIM: &str =
    "SELECT id, lane FROM deliveries WHERE claim_token = ?1 AND status = 'sending'";

/// The lanes of `attempts` among `held` (`id` → lane), each once.
pub fn lanes_of(attempts: &[AttemptResult], held: &HashMap<i64, String>) -> Vec<String> {
    let lanes: BTreeSet<&String> = attempts
        .iter()
        .filter_map(|a| held.get(&a.delivery_id))
        .collect();
    lanes.into_iter().cloned().collect()
}

/// Letting go of lanes (`?1` the claim's token, `?2` the lanes): first their
/// leases (the order a round taking a lane over locks them in: lease, then
/// deliveries), and, once the attempts are recorded, the deliveries of those
/// lanes the claim still holds, which were never attempted and go back to
/// the queue as they were.
pub fn release_lanes_sql(dialect: Dialect) -> [String; 2] {
    let lanes = dialect.in_list(2);
    [
        format!("DELETE FROM lane_leases WHERE token = ?1 AND lane {lanes}"),
        format!(
            "UPDATE deliveries SET status = 'pending', claim_token = NULL, claimed_by = NULL
             WHERE claim_token = ?1 AND status = 'sending' AND lane {lanes}"
        ),
    ]
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
        assert_eq!((p.channel_gap_ms, p.workspace_gap_ms), (0, 0));
        let (mut ch, mut ws) = (0, 0);
        for i in 0..500 {
            (ch, ws) = admit(&p, ch, ws, 1_000).unwrap_or_else(|w| panic!("message {i}: {w}"));
        }
        let p = RatePolicy::per_second(1000.0, 1000.0);
        assert_eq!(p.channel_gap_ms, 1, "1,000 a second is still a limit");
    }

    fn claimed(connection: &str, action: Action) -> Claimed {
        Claimed {
            id: 1,
            event_id: 1,
            destination: String::new(),
            action,
            dry_run: false,
            lane: String::new(),
            source: String::new(),
            connection: Some(connection.into()),
            attempts: 0,
            uncertain: false,
            due: true,
            created_at: 0,
        }
    }

    fn post(channel: &str, thread_key: Option<&str>) -> Action {
        Action::PostSlack {
            channel: channel.into(),
            text: String::new(),
            blocks: None,
            thread_key: thread_key.map(str::to_owned),
        }
    }

    #[test]
    fn keys_are_per_workspace_and_channel() {
        let d = |connection: &str, channel: &str| claimed(connection, post(channel, Some("t")));
        let a = rate_keys(&d("acme", "#Eng")).unwrap();
        assert_eq!(a.channel, "slack-channel:acme/#eng");
        assert_eq!(a.workspace, "slack-workspace:acme");
        assert_eq!(rate_keys(&d("acme", "acme/eng")).unwrap(), a);
        assert_ne!(rate_keys(&d("beta", "#eng")).unwrap(), a);
    }

    #[test]
    fn a_lanes_keys_are_its_actions() {
        let actions = [
            post("#Eng", None),
            post("#eng", Some("page-1")),
            post("acme/eng", Some("page:2:x")),
            post("C0123ABC", None),
            Action::DmSlack {
                email: "Ada@Example.com".into(),
                text: String::new(),
                blocks: None,
            },
        ];
        for action in actions {
            let lane = crate::destination::lane(&action, "prod", Some("acme"));
            let d = claimed("acme", action);
            assert_eq!(lane_rate_keys(&lane), rate_keys(&d), "{lane}");
        }
        let teams = Action::PostTeams {
            channel: "news".into(),
            card: serde_json::json!({}),
        };
        assert_eq!(
            lane_rate_keys(&crate::destination::lane(&teams, "prod", None)),
            None
        );
    }

    fn queued(id: i64, event_id: i64, lane: &str) -> Queued {
        Queued {
            id,
            event_id,
            lane: lane.into(),
            next_try_at: 0,
            in_flight: false,
        }
    }

    #[test]
    fn heads_go_in_event_order_one_per_channel_first() {
        let rates = RatePolicy::per_second(100_000.0, 100_000.0);
        // Three thread lanes in #eng, older than #ops's only lane.
        let heads = [
            queued(4, 4, "slack:acme/ops:page-9"),
            queued(1, 1, "slack:acme/eng:page-1"),
            queued(2, 2, "slack:acme/eng:page-2"),
            queued(3, 3, "slack:acme/eng:page-3"),
        ];
        let plan = Plan::heads(&heads, &HashSet::new(), &HashMap::new(), rates, 1_000, 2);
        let lanes: Vec<&str> = plan.lanes.iter().map(|l| l.lane.as_str()).collect();
        assert_eq!(
            lanes,
            ["slack:acme/eng:page-1", "slack:acme/ops:page-9"],
            "#eng's older heads do not crowd #ops out"
        );
        let plan = Plan::heads(&heads, &HashSet::new(), &HashMap::new(), rates, 1_000, 10);
        assert_eq!(plan.ids(), [1, 4, 2, 3]);
    }

    #[test]
    fn a_held_channel_holds_its_heads_but_not_another_channels() {
        let rates = RatePolicy::per_second(1.0, 100.0);
        let heads = [
            queued(1, 1, "slack:acme/eng:page-1"),
            queued(2, 2, "slack:acme/eng:page-2"),
            queued(3, 3, "teams:news"),
            Queued {
                next_try_at: 5_000,
                ..queued(4, 4, "confluence:prod:ENG")
            },
            queued(5, 5, "slack:acme/ops"),
        ];
        let leased: HashSet<String> = ["slack:acme/ops".to_owned()].into();
        let plan = Plan::heads(&heads, &leased, &HashMap::new(), rates, 1_000, 10);
        assert_eq!(
            plan.ids(),
            [1, 3],
            "one #eng message a second; ops is leased"
        );
        assert_eq!(
            plan.wait_ms,
            Some(750),
            "#eng's next is claimable 250 ms early"
        );
        assert_eq!(
            plan.changed_tats(),
            [
                ("slack-channel:acme/#eng".to_owned(), 2_000),
                ("slack-workspace:acme".to_owned(), 1_010)
            ]
        );
    }

    #[test]
    fn a_lane_takes_what_follows_its_head_as_far_as_its_rate_and_batch_allow() {
        let fast = RatePolicy::per_second(100_000.0, 100_000.0);
        let heads = [queued(1, 1, "slack:acme/eng"), queued(2, 1, "teams:news")];
        let mut plan = Plan::heads(&heads, &HashSet::new(), &HashMap::new(), fast, 1_000, 10);
        assert_eq!(
            plan.wanting_more(),
            [("slack:acme/eng", (1, 1), 31)],
            "a Teams lane goes one card at a time"
        );
        let followers: Vec<Queued> = (0..40)
            .map(|i| queued(10 + i, 2 + i, "slack:acme/eng"))
            .collect();
        plan.extend(&followers);
        assert_eq!(plan.lanes[0].ids.len(), 32);
        assert_eq!(plan.lanes[0].ids[..3], [1, 10, 11]);

        // At 20 a second a channel may take what falls within the next 250 ms.
        let slow = RatePolicy::per_second(20.0, 100_000.0);
        let mut plan = Plan::heads(&heads, &HashSet::new(), &HashMap::new(), slow, 1_000, 10);
        plan.extend(&followers);
        assert_eq!(plan.lanes[0].ids, [1, 10, 11, 12, 13, 14]);
        assert_eq!(plan.wait_ms, Some(50));

        // A follower waiting for a retry stops its lane there.
        let mut plan = Plan::heads(&heads, &HashSet::new(), &HashMap::new(), fast, 1_000, 10);
        plan.extend(&[
            queued(10, 2, "slack:acme/eng"),
            Queued {
                next_try_at: 9_000,
                ..queued(11, 3, "slack:acme/eng")
            },
            queued(12, 4, "slack:acme/eng"),
        ]);
        assert_eq!(plan.lanes[0].ids, [1, 10]);
    }

    #[test]
    fn a_lane_going_on_takes_its_batch_up_to_the_first_not_yet_due() {
        let mut followers: Vec<Queued> = (1..=40).map(|n| queued(n, n, "slack:acme/eng")).collect();
        followers.push(queued(41, 41, "teams:news"));
        assert_eq!(
            taken_going_on("slack:acme/eng", &followers, 1_000),
            (1..=32).collect::<Vec<_>>(),
            "a Slack lane's batch, its own rows only"
        );
        assert_eq!(taken_going_on("teams:news", &followers, 1_000), [41]);
        followers[3].next_try_at = 5_000;
        assert_eq!(
            taken_going_on("slack:acme/eng", &followers, 1_000),
            [1, 2, 3],
            "never past a delivery waiting for its retry"
        );
        assert!(taken_going_on("confluence:prod/ENG", &followers, 1_000).is_empty());
    }

    #[test]
    fn only_a_lane_no_rate_paces_goes_on() {
        let slack = RatePolicy::per_second(1.0, 100.0);
        let raised = RatePolicy::per_second(100_000.0, 100_000.0);
        assert!(!goes_on_unpaced("slack:acme/eng", &slack));
        assert!(!goes_on_unpaced("slack-dm:acme/ada@example.com", &slack));
        assert!(goes_on_unpaced("slack:acme/eng", &raised));
        assert!(goes_on_unpaced("teams:news", &slack));
        assert!(goes_on_unpaced("confluence:prod/ENG", &slack));
    }

    #[test]
    fn rows_come_back_in_the_plans_order_and_idle_lanes_are_named() {
        let fast = RatePolicy::per_second(100_000.0, 100_000.0);
        let heads = [queued(5, 1, "slack:acme/b"), queued(3, 2, "slack:acme/a")];
        let mut plan = Plan::heads(&heads, &HashSet::new(), &HashMap::new(), fast, 1_000, 10);
        plan.extend(&[queued(7, 3, "slack:acme/b")]);
        let row = |id: i64, lane: &str| Claimed {
            id,
            lane: lane.into(),
            ..claimed("acme", post("#x", None))
        };
        let rows = plan.in_order(vec![row(7, "slack:acme/b"), row(5, "slack:acme/b")]);
        assert_eq!(rows.iter().map(|d| d.id).collect::<Vec<_>>(), [5, 7]);
        assert_eq!(plan.idle_lanes(&rows), ["slack:acme/a"]);
        let round = DeliveryRound {
            claimed: rows,
            ..DeliveryRound::default()
        };
        assert_eq!(round.lanes().len(), 1);
    }

    #[test]
    fn an_attempt_is_written_under_the_token_with_its_thread() {
        let claim = Claim::new("r", 1);
        let a = AttemptResult {
            delivery_id: 9,
            started_at: 5,
            outcome: Outcome::Sent {
                result: "1.2".into(),
                thread: Some(crate::store::SlackThread {
                    connection: "acme".into(),
                    channel: "C1".into(),
                    key: "k".into(),
                    ts: "1.2".into(),
                }),
            },
            latency_ms: 3,
            sent_at: Some(6),
        };
        let w = attempt_writes(&claim, &a, 7);
        assert!(w.update.0.contains("claim_token = ?2"));
        assert_eq!(
            w.update.1[..2],
            [Param::from(9i64), Param::from(claim.token)]
        );
        assert_eq!(w.then.len(), 2);
        let held: HashMap<i64, String> = [(9, "l".to_owned()), (8, "m".to_owned())].into();
        assert_eq!(lanes_of(&[a], &held), ["l"]);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(Claim::new("r", 1).token, Claim::new("r", 1).token);
    }
}
