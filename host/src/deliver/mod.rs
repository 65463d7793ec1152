//! Delivery: carrying out the outbox.
//!
//! One worker inside each `pagehook serve` claims work lane by lane (a Slack
//! thread, channel or DM, a Teams channel, a Confluence space or page) from
//! the store: each lane's head and, as far as its rate allows, what follows
//! it (see [`crate::store::claims`]). A lane's deliveries are sent one after
//! the other, in order, while different lanes are sent at once, by this
//! replica and by others; each lane is recorded and let go as soon as it is
//! done, and a new round claims more whenever lanes are free, so a busy lane
//! never waits for a slow one and a lane with a backlog keeps sending. It
//! keeps Slack's per-channel and per-workspace rates (kept in the store, for
//! the whole cluster), and records every attempt under the claim it was made
//! with. It never starts a request once its claim may have ended. Failures are classified the way
//! each service documents them: retry (429 with its `Retry-After`, 5xx,
//! timeouts), give up on this destination with a message an admin can act
//! on (a dead letter, replayable with `pagehook retry`), or re-authorise
//! (the connection is marked unhealthy and the delivery keeps retrying so
//! it goes out once the token is fixed). Dry-run connections and bindings
//! record the exact request instead of sending it.
//!
//! Crash safety: a delivery is marked `sending` when it is claimed, before
//! the request; after a crash (or once the claim's lease ends without a
//! result) it is taken up again *uncertain*, and is looked for before it is
//! sent again (Slack: message metadata carrying the delivery id;
//! Confluence: the anchor marker, and once-keys).
//!
//! Chat answers (`unfurl`, `respond`) go back through the Slack connection
//! their event came in on ([`chat`]); a response URL is a capability and
//! is never logged, shown or sent a token.

pub mod chat;
mod confluence;
pub mod gone;
mod slack;
pub(crate) mod teams;
mod teams_bot;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::config::DeliveryConfig;
use crate::heartbeat::Heartbeat;
use crate::http::retry_after;
use crate::model::Action;
use crate::slack::directory::{Directory, DirectoryOptions};
use crate::store::claims::GoOn;
use crate::store::{
    AttemptResult, Claim, Claimed, ConnectionKind, ConnectionRecord, HealthChange, Outcome,
    RatePolicy, SendSlot, SlackThread, Store, now_ms,
};

/// Lanes in flight at once in one replica: each sends its deliveries one
/// after the other, so at most this many requests are open at a time.
const LANES_IN_FLIGHT: usize = 64;

/// Store calls the lane tasks of one replica make at once (a thread's ts, a
/// send-time slot), so that many lanes sending at once never take every
/// pooled connection (PostgreSQL's pool holds 8 by default) from ingest,
/// dispatch and the rounds themselves.
const LANE_STORE_CALLS: usize = 4;

/// How long a round's finished lanes wait for more of its lanes to finish,
/// so that lanes done together are recorded in one commit.
const RECORD_WAIT: Duration = Duration::from_millis(2);

/// How many times recording a round's attempts (or letting go of it) is
/// tried before its lanes are left to their lease (50 ms, then twice as long
/// each time: about 1.5 s in all).
const RECORD_TRIES: u32 = 5;

/// How long a round started because lanes were let go waits for more lanes
/// to be let go, so that rounds (each a commit) are few and full under load
/// (new work and timers start one at once).
const ROUND_GAP: Duration = Duration::from_millis(5);

/// The longest wait before the next round when the last one could not look
/// at every lane (see `DeliveryRound::more_lanes`).
const MORE_LANES_GAP: Duration = Duration::from_millis(50);

/// What one attempt came to, before the retry schedule is applied.
#[derive(Debug)]
enum Attempt {
    /// Delivered; the target's id for it, and the Slack thread it started.
    Sent {
        result: String,
        thread: Option<SlackThread>,
    },
    /// Dry run: the request that would have been sent.
    WouldSend(serde_json::Value),
    /// Failed for now.
    Retry {
        error: String,
        retry_after: Option<Duration>,
        /// The request may have been processed (timeout after sending).
        uncertain: bool,
    },
    /// The credentials were refused: mark the connection, keep retrying.
    Reauth { connection: String, error: String },
    /// Give up on this destination.
    Dead(String),
    /// The destination is gone (a deleted Teams workflow, an archived
    /// Slack channel): a dead letter, and `connection` is marked with
    /// `error`, which says what to do ([`gone`]).
    Gone { connection: String, error: String },
}

impl Attempt {
    fn sent(result: impl Into<String>) -> Attempt {
        Attempt::Sent {
            result: result.into(),
            thread: None,
        }
    }

    fn retry(error: impl Into<String>) -> Attempt {
        Attempt::Retry {
            error: error.into(),
            retry_after: None,
            uncertain: false,
        }
    }

    /// Why it did not go out (empty for a sent or recorded one).
    fn error(self) -> String {
        match self {
            Attempt::Retry { error, .. }
            | Attempt::Reauth { error, .. }
            | Attempt::Gone { error, .. }
            | Attempt::Dead(error) => error,
            Attempt::Sent { .. } | Attempt::WouldSend(_) => String::new(),
        }
    }
}

/// The request delivering `d` through one of `connections` would make,
/// exactly as a dry run records it (`would-send`): what the console's
/// preview of a binding shows. `Err` says why it could not go out at all.
pub fn would_send(d: &Claimed, connections: &[ConnectionRecord]) -> Result<WouldSend, String> {
    let conn = connection_for(d, connections).map_err(Attempt::error)?;
    let request = match (&d.action, conn.kind) {
        (Action::PostSlack { .. } | Action::DmSlack { .. }, ConnectionKind::Slack) => {
            slack::would_send(&conn, d)
        }
        (Action::Unfurl { .. } | Action::Respond { .. }, ConnectionKind::Slack) => {
            if let Action::Respond { response_url, .. } = &d.action {
                chat::response_url_allowed(response_url, &conn.url)?;
            }
            chat::would_send(&conn, d)
        }
        (Action::PostTeams { .. }, ConnectionKind::Teams) => {
            teams::would_send(&conn, d).map_err(Attempt::error)?
        }
        (
            Action::DmTeams { .. } | Action::ReplyTeams { .. } | Action::PostTeams { .. },
            ConnectionKind::TeamsBot,
        ) => teams_bot::would_send(&conn, d).map_err(Attempt::error)?,
        (Action::CreatePage { .. } | Action::AddComment { .. }, ConnectionKind::Confluence) => {
            confluence::would_send(&conn, d)
        }
        _ => return Err(cannot_carry(&conn, d)),
    };
    Ok(WouldSend {
        dry_run: d.dry_run || conn.dry_run,
        connection: conn.name,
        request,
    })
}

/// What [`would_send`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct WouldSend {
    /// The connection that would carry it.
    pub connection: String,
    /// Delivery would only record it (the delivery or the connection is a dry run).
    pub dry_run: bool,
    /// The request, as a dry run records it.
    pub request: serde_json::Value,
}

fn cannot_carry(conn: &ConnectionRecord, d: &Claimed) -> String {
    format!(
        "connection `{}` is a {} connection and cannot carry `{}`",
        conn.name,
        conn.kind.as_str(),
        d.action.kind()
    )
}

/// One attempt's link to its round: the claim's heartbeat, where the
/// attempt notes the moment its request left (its send-time slot), and what
/// its lane already read of Slack threads.
pub(crate) struct Turn<'a> {
    heartbeat: &'a Heartbeat,
    sent_at: &'a AtomicI64,
    threads: &'a LaneThreads,
}

/// The Slack threads one lane's batch has read, so that a batch of replies
/// reads its thread's ts once, not once per message (a read per message was
/// most of a thread lane's time per message on PostgreSQL).
///
/// It holds for one batch of one lane only: a lane is one thread (its
/// channel and thread key), nobody else sends in it while the lane is held,
/// and a message that starts a thread ends the batch (its replies wait for
/// the next one, which reads the thread again). A round's first batch of
/// each lane starts from what the round read for all its lanes at once,
/// after its claim took them (`Deliverer::round_threads`).
#[derive(Default)]
pub(crate) struct LaneThreads(std::sync::Mutex<HashMap<ThreadKey, Option<String>>>);

/// A Slack thread as the store keys it: connection, channel id, thread key.
type ThreadKey = (String, String, String);

impl LaneThreads {
    /// A batch's memo, starting from what its round read of `threads`.
    fn read_by_round(
        threads: &[ThreadKey],
        read: &HashMap<ThreadKey, Option<String>>,
    ) -> LaneThreads {
        let known = threads
            .iter()
            .filter_map(|t| read.get(t).map(|ts| (t.clone(), ts.clone())))
            .collect();
        LaneThreads(std::sync::Mutex::new(known))
    }

    /// The ts of thread `key` in `channel` of `connection`, as this batch
    /// read it, or `None` if it has not read it yet.
    fn get(&self, connection: &str, channel: &str, key: &str) -> Option<Option<String>> {
        let read = self.0.lock().unwrap_or_else(|e| e.into_inner());
        read.get(&(connection.to_owned(), channel.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Notes what reading thread `key` gave.
    fn put(&self, connection: &str, channel: &str, key: &str, ts: Option<String>) {
        let mut read = self.0.lock().unwrap_or_else(|e| e.into_inner());
        read.insert(
            (connection.to_owned(), channel.to_owned(), key.to_owned()),
            ts,
        );
    }
}

/// What sending one lane came to: its attempts, and whether it asks to go
/// on from its record.
struct LaneSent {
    results: Vec<(AttemptResult, Option<HealthChange>)>,
    go_on: Option<GoOn>,
}

/// The delivery worker.
pub struct Deliverer {
    store: Arc<Store>,
    config: DeliveryConfig,
    /// Slack's Web API, Teams' webhooks: one client per proxy a connection
    /// names (see [`crate::http::clients`]); get it with [`Deliverer::http`].
    http: crate::http::clients::ClientsByProxy,
    /// For Slack's response URLs: follows no redirect, so an answer can
    /// only ever reach the URL that was checked.
    hooks: crate::http::clients::ClientsByProxy,
    slack: Arc<Directory>,
    rates: RatePolicy,
    replica: String,
    lease_ms: i64,
    /// Lanes claimed and not yet recorded.
    in_flight: AtomicUsize,
    /// Told whenever lanes are recorded and let go.
    freed: Notify,
    /// Turns at the store for lane tasks (see [`LANE_STORE_CALLS`]).
    store_calls: tokio::sync::Semaphore,
    /// The Teams bots' tokens, one cache per bot (shared with the server).
    teams_bots: Arc<crate::teams::bots::TeamsBots>,
}

impl Deliverer {
    /// A worker over `store`.
    pub fn new(store: Arc<Store>, config: DeliveryConfig, lease_ms: u64) -> Deliverer {
        let timeout = Duration::from_millis(config.timeout_ms.max(100));
        let user_agent = concat!("pagehook/", env!("CARGO_PKG_VERSION"));
        let http = crate::http::clients::ClientsByProxy::new(move |b| {
            b.timeout(timeout).user_agent(user_agent)
        });
        let hooks = crate::http::clients::ClientsByProxy::new(move |b| {
            b.timeout(timeout)
                .user_agent(user_agent)
                .redirect(reqwest::redirect::Policy::none())
        });
        let rates = RatePolicy::per_second(config.slack_channel_rate, config.slack_workspace_rate);
        let slack = Arc::new(Directory::new(DirectoryOptions {
            ttl: Duration::from_secs(config.slack_directory_ttl_secs.max(1)),
            pages_per_attempt: config.slack_list_pages_per_attempt.max(1),
        }));
        Deliverer {
            store,
            config,
            http,
            hooks,
            slack,
            rates,
            replica: crate::store::claims::replica_name(),
            lease_ms: lease_ms as i64,
            in_flight: AtomicUsize::new(0),
            freed: Notify::new(),
            store_calls: tokio::sync::Semaphore::new(LANE_STORE_CALLS),
            teams_bots: Arc::default(),
        }
    }

    /// The same worker sharing `bots` (the server's Teams bot tokens), so a
    /// bot asks Entra ID for one token, not one per part of Pagehook.
    pub fn with_teams_bots(mut self, bots: Arc<crate::teams::bots::TeamsBots>) -> Deliverer {
        self.teams_bots = bots;
        self
    }

    /// A turn at the store for a lane task's call (a thread's ts, a
    /// send-time slot); held for the call only.
    pub(crate) async fn store_turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.store_calls
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// The Slack channel directory it resolves names with, shared with the
    /// console's channel picker (one cache per workspace, so listing costs
    /// Slack nothing while it is fresh).
    pub fn slack_directory(&self) -> Arc<Directory> {
        self.slack.clone()
    }

    /// The client for requests through `conn` (its own proxy, if it names one).
    pub(crate) fn http(&self, conn: &ConnectionRecord) -> reqwest::Client {
        self.http.get(conn.proxy.as_ref())
    }

    /// Delivers until `shutdown`; woken by `wake` when dispatch wrote
    /// deliveries. On `shutdown` it claims nothing more and returns once the
    /// lanes it holds are recorded (each stops after the delivery it is on).
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let mut rounds: JoinSet<()> = JoinSet::new();
        let mut due = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let free = LANES_IN_FLIGHT.saturating_sub(self.in_flight.load(Ordering::Acquire));
            if free > 0 && tokio::time::Instant::now() >= due {
                let wait = match self.round(free, &mut rounds, &shutdown).await {
                    Ok(wait) => wait,
                    Err(e) => {
                        tracing::error!(error = %e, "delivery round failed");
                        Duration::from_secs(1)
                    }
                };
                due = tokio::time::Instant::now() + wait;
                continue;
            }
            tokio::select! {
                _ = wake.notified() => due = tokio::time::Instant::now(),
                _ = self.freed.notified() => {
                    due = due.min(tokio::time::Instant::now() + ROUND_GAP);
                }
                _ = tokio::time::sleep_until(due), if free > 0 => {}
                Some(_) = rounds.join_next(), if !rounds.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        while rounds.join_next().await.is_some() {}
    }

    /// Claims what is due for up to `free` lanes and starts sending it;
    /// returns how long to wait before the next round (unless lanes are let
    /// go or new work comes first).
    ///
    /// A round takes each lane's head and what may follow it, marks them all
    /// `sending` in one transaction, and hands them to a task that sends
    /// each lane's deliveries in order, lanes at the same time, and records
    /// lanes as they finish (those finishing together in one commit).
    async fn round(
        self: &Arc<Self>,
        free: usize,
        rounds: &mut JoinSet<()>,
        shutdown: &watch::Receiver<bool>,
    ) -> anyhow::Result<Duration> {
        let claim = Claim::new(&self.replica, self.lease_ms);
        let taken_at = tokio::time::Instant::now();
        let round = self
            .store
            .claim_deliveries(&claim, self.rates, free)
            .await?;
        let mut next = round.wait_ms.map_or(Duration::from_secs(1), |ms| {
            Duration::from_millis(ms.clamp(1, 1000) as u64)
        });
        if round.more_lanes {
            // More lanes than a round looks at: the next goes on from here.
            next = next.min(MORE_LANES_GAP);
        }
        if round.claimed.is_empty() {
            return Ok(next);
        }
        let heartbeat = Heartbeat::start((*self.store).clone(), claim.clone(), taken_at);
        let connections = match self.store.connections().await {
            Ok(c) => c,
            Err(e) => {
                // Nothing was sent: let the lanes go now rather than at the
                // end of the lease.
                let _ = self.store.release(&claim).await;
                return Err(e.into());
            }
        };
        let lanes: Vec<Vec<Claimed>> = round.lanes().into_iter().map(<[_]>::to_vec).collect();
        self.in_flight.fetch_add(lanes.len(), Ordering::AcqRel);
        let me = self.clone();
        let stop = shutdown.clone();
        rounds.spawn(async move {
            me.send_round(claim, heartbeat, connections, lanes, stop)
                .await
        });
        Ok(next)
    }

    /// Sends a round's lanes at the same time and records each as it
    /// finishes; lanes finishing within [`RECORD_WAIT`] of each other share
    /// a commit. A lane none of whose deliveries could be attempted (its
    /// claim may have ended) is let go with the claim at the end.
    ///
    /// A lane that sent everything it held and that no rate paces goes on
    /// from its record: the commit that records it also takes what follows
    /// it (see `Store::finish_and_go_on`), and the lane keeps sending under
    /// the same claim instead of letting go and waiting for a round to claim
    /// it again. That keeps a lane with a backlog busy; other lanes are
    /// still claimed by the rounds meanwhile.
    ///
    /// One record is committed at a time, and the lanes still sending are
    /// polled meanwhile: a commit that waits (a busy pool, a database that
    /// blinks and is tried again) never leaves a request's answer unread or
    /// its timeout running out unseen.
    async fn send_round(
        &self,
        claim: Claim,
        heartbeat: Heartbeat,
        connections: Vec<ConnectionRecord>,
        lanes: Vec<Vec<Claimed>>,
        stop: watch::Receiver<bool>,
    ) {
        let (heartbeat_ref, connections_ref, stop_ref) = (&heartbeat, &connections[..], &stop);
        let send = |lane: Vec<Claimed>, threads: LaneThreads| async move {
            self.send_lane(lane, threads, connections_ref, heartbeat_ref, stop_ref)
                .await
        };
        let wanted: Vec<Vec<ThreadKey>> = lanes
            .iter()
            .map(|lane| {
                lane.iter()
                    .filter_map(|d| slack::thread_to_read(&self.slack, d, &connections))
                    .collect()
            })
            .collect();
        let read = self.round_threads(wanted.iter().flatten()).await;
        let mut sending: FuturesUnordered<_> = lanes
            .into_iter()
            .zip(&wanted)
            .map(|(lane, threads)| send(lane, LaneThreads::read_by_round(threads, &read)))
            .collect();
        let claim_ref = &claim;
        let mut recording: futures::future::OptionFuture<
            futures::future::BoxFuture<'_, Option<Vec<Claimed>>>,
        > = None.into();
        let mut recording_lanes = 0;
        let mut done: Vec<(AttemptResult, Option<HealthChange>)> = Vec::new();
        let mut go_on: Vec<GoOn> = Vec::new();
        let mut lanes_done = 0;
        let mut flush_at: Option<tokio::time::Instant> = None;
        let mut all_sent = false;
        let mut unfinished = false;
        loop {
            tokio::select! {
                lane = sending.next(), if !all_sent => match lane {
                    Some(lane) => {
                        unfinished |= lane.results.is_empty();
                        done.extend(lane.results);
                        go_on.extend(lane.go_on);
                        lanes_done += 1;
                        flush_at.get_or_insert(tokio::time::Instant::now() + RECORD_WAIT);
                    }
                    None => all_sent = true,
                },
                Some(recorded) = &mut recording, if recording_lanes > 0 => {
                    let next = recorded.unwrap_or_else(|| {
                        unfinished = true;
                        Vec::new()
                    });
                    let going = next.chunk_by(|a, b| a.lane == b.lane).count();
                    for lane in next.chunk_by(|a, b| a.lane == b.lane) {
                        sending.push(send(lane.to_vec(), LaneThreads::default()));
                        all_sent = false;
                    }
                    self.in_flight.fetch_sub(recording_lanes - going, Ordering::AcqRel);
                    if going < recording_lanes {
                        self.freed.notify_one();
                    }
                    recording_lanes = 0;
                    recording = None.into();
                },
                _ = async { tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)).await }, if flush_at.is_some() && recording_lanes == 0 => {}
            }
            let due = flush_at.is_some_and(|at| at <= tokio::time::Instant::now());
            if (all_sent || due) && lanes_done > 0 && recording_lanes == 0 {
                let batch = std::mem::take(&mut done);
                let going_on = std::mem::take(&mut go_on);
                recording = Some(Box::pin(async move {
                    self.record(claim_ref, connections_ref, batch, going_on)
                        .await
                })
                    as futures::future::BoxFuture<'_, Option<Vec<Claimed>>>)
                .into();
                recording_lanes = lanes_done;
                lanes_done = 0;
                flush_at = None;
            }
            if all_sent && lanes_done == 0 && recording_lanes == 0 {
                break;
            }
        }
        drop(sending);
        drop(heartbeat);
        if unfinished {
            // Whatever the claim still holds goes back now, as uncertain.
            self.release(&claim).await;
        }
    }

    /// Records attempts and the health they showed, and lets the lanes in
    /// `go_on` take what follows them; what they took, or `None` if the
    /// attempts could not be recorded. A failed commit changed nothing and a
    /// repeated one records nothing twice (only rows still carrying the
    /// claim's token are written), so it is tried again a few times first:
    /// while the database blinks, the lanes stay held rather than becoming
    /// uncertain.
    async fn record(
        &self,
        claim: &Claim,
        connections: &[ConnectionRecord],
        results: Vec<(AttemptResult, Option<HealthChange>)>,
        go_on: Vec<GoOn>,
    ) -> Option<Vec<Claimed>> {
        let (results, health): (Vec<_>, Vec<_>) = results.into_iter().unzip();
        let health = health_changes(connections, health.into_iter().flatten());
        let mut pause = Duration::from_millis(50);
        for tries_left in (0..RECORD_TRIES).rev() {
            match self
                .store
                .finish_and_go_on(claim, &results, &health, &go_on)
                .await
            {
                Ok(finished) => {
                    if finished.recorded < results.len() {
                        tracing::warn!(
                            lost = results.len() - finished.recorded,
                            "deliveries were taken over by another replica before their results were recorded; it checks before sending again"
                        );
                    }
                    return Some(finished.next);
                }
                Err(e) if tries_left > 0 => {
                    tracing::warn!(error = %e, "cannot record delivery attempts yet; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot record delivery attempts; the deliveries are looked for before they are sent again");
                }
            }
        }
        None
    }

    /// Lets go of whatever `claim` still holds (as uncertain), tried again
    /// like [`Deliverer::record`].
    async fn release(&self, claim: &Claim) {
        let mut pause = Duration::from_millis(50);
        for tries_left in (0..RECORD_TRIES).rev() {
            match self.store.release(claim).await {
                Ok(()) => return,
                Err(e) if tries_left > 0 => {
                    tracing::debug!(error = %e, "cannot let go of a round's lanes yet; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot let go of a round's lanes; they end with the lease");
                }
            }
        }
    }

    /// The Slack threads a round's lanes post into (`wanted`), read in one
    /// query once the round's claim holds their lanes, instead of one read
    /// per lane: each found thread's ts, and `None` for each one not yet
    /// started. Empty if the read fails (each lane then reads its own).
    async fn round_threads<'a>(
        &self,
        wanted: impl Iterator<Item = &'a ThreadKey>,
    ) -> HashMap<ThreadKey, Option<String>> {
        let wanted: Vec<ThreadKey> = wanted
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if wanted.is_empty() {
            return HashMap::new();
        }
        let found = {
            let _turn = self.store_turn().await;
            self.store.threads_of(&wanted).await
        };
        match found {
            Ok(found) => {
                let mut read: HashMap<ThreadKey, Option<String>> =
                    wanted.into_iter().map(|t| (t, None)).collect();
                for t in found {
                    read.insert((t.connection, t.channel, t.key), Some(t.ts));
                }
                read
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading a round's Slack threads failed; each lane reads its own");
                HashMap::new()
            }
        }
    }

    /// Sends one lane's deliveries in order until one does not go through
    /// (a retry keeps its place at the head), one starts a Slack thread (its
    /// replies wait until the thread is recorded), or delivery stops; the
    /// rest go back to the queue when the lane is recorded. A lane that went
    /// through to its end, with no rate pacing it, delivery not stopping and
    /// a lane slot free in this replica, asks to go on.
    async fn send_lane(
        &self,
        lane: Vec<Claimed>,
        threads: LaneThreads,
        connections: &[ConnectionRecord],
        heartbeat: &Heartbeat,
        stop: &watch::Receiver<bool>,
    ) -> LaneSent {
        let mut results = Vec::with_capacity(lane.len());
        let mut through = true;
        for d in &lane {
            if !results.is_empty() && *stop.borrow() {
                through = false;
                break;
            }
            let span = tracing::info_span!("delivery", delivery = d.id, event = d.event_id);
            let attempt = tracing::Instrument::instrument(
                self.attempt_one(d, connections, heartbeat, &threads),
                span,
            )
            .await;
            let Some((result, health)) = attempt else {
                through = false;
                break;
            };
            let go_on = matches!(
                result.outcome,
                Outcome::Sent { thread: None, .. }
                    | Outcome::WouldSend { .. }
                    | Outcome::Dead { .. }
            );
            results.push((result, health));
            if !go_on {
                through = false;
                break;
            }
        }
        // Only while this replica has room for more lanes: with every slot
        // taken, a lane going on would hold its slot against lanes waiting
        // for one, so it lets go and the rounds take heads in event order.
        let room = self.in_flight.load(Ordering::Acquire) < LANES_IN_FLIGHT;
        let go_on = lane
            .last()
            .filter(|last| {
                through
                    && room
                    && !*stop.borrow()
                    && crate::store::claims::goes_on_unpaced(&last.lane, &self.rates)
            })
            .map(|last| GoOn {
                lane: last.lane.clone(),
                after: (last.event_id, last.id),
            });
        LaneSent { results, go_on }
    }

    /// One attempt at one delivery, logged; its result and connection
    /// health. `None`, and nothing sent, when the claim may have run out
    /// before the attempt began (another replica may hold it by now).
    async fn attempt_one(
        &self,
        d: &Claimed,
        connections: &[ConnectionRecord],
        heartbeat: &Heartbeat,
        threads: &LaneThreads,
    ) -> Option<(AttemptResult, Option<HealthChange>)> {
        if !heartbeat.held() {
            tracing::warn!(delivery = d.id, "the claim may have ended; not sending");
            return None;
        }
        let started = now_ms();
        let clock = Instant::now();
        let sent_at = AtomicI64::new(0);
        let turn = Turn {
            heartbeat,
            sent_at: &sent_at,
            threads,
        };
        let (attempt, health) = self.attempt(d, connections, &turn).await;
        let outcome = self.outcome(d, attempt);
        match &outcome {
            Outcome::Sent { .. } => {
                tracing::info!(delivery = d.id, lane = %d.lane, "delivered")
            }
            Outcome::WouldSend { .. } => tracing::info!(delivery = d.id, "dry run: recorded"),
            Outcome::Retry { error, .. } => {
                tracing::warn!(delivery = d.id, %error, "will retry")
            }
            Outcome::Dead { error } => tracing::error!(delivery = d.id, %error, "dead letter"),
        }
        Some((
            AttemptResult {
                delivery_id: d.id,
                started_at: started,
                outcome,
                latency_ms: clock.elapsed().as_millis() as i64,
                sent_at: Some(sent_at.load(Ordering::Relaxed)).filter(|at| *at != 0),
            },
            health,
        ))
    }

    /// Makes one attempt; also returns what it showed of its connection's
    /// health (a connection name and the refusal, `None` when it worked).
    async fn attempt(
        &self,
        d: &Claimed,
        connections: &[ConnectionRecord],
        turn: &Turn<'_>,
    ) -> (Attempt, Option<HealthChange>) {
        let conn = match connection_for(d, connections) {
            Ok(c) => c,
            Err(a) => return (a, None),
        };
        let dry_run = d.dry_run || conn.dry_run;
        let attempt = match (&d.action, conn.kind) {
            (Action::PostSlack { .. } | Action::DmSlack { .. }, ConnectionKind::Slack) => {
                slack::deliver(self, &conn, d, dry_run, turn).await
            }
            (Action::Unfurl { .. } | Action::Respond { .. }, ConnectionKind::Slack) => {
                chat::deliver(self, &conn, d, dry_run).await
            }
            (Action::PostTeams { .. }, ConnectionKind::Teams) => {
                teams::deliver(self, &conn, d, dry_run).await
            }
            (
                Action::DmTeams { .. } | Action::ReplyTeams { .. } | Action::PostTeams { .. },
                ConnectionKind::TeamsBot,
            ) => teams_bot::deliver(self, &conn, d, dry_run).await,
            (Action::CreatePage { .. } | Action::AddComment { .. }, ConnectionKind::Confluence) => {
                confluence::deliver(self, &conn, d, dry_run).await
            }
            _ => Attempt::Dead(cannot_carry(&conn, d)),
        };
        let health = match &attempt {
            Attempt::Reauth { connection, error } | Attempt::Gone { connection, error } => {
                Some(HealthChange {
                    connection: connection.clone(),
                    error: Some(error.clone()),
                })
            }
            // A response URL takes no token: its success says nothing of
            // the connection's. A mark about one Slack channel is cleared
            // only by a success to that channel.
            Attempt::Sent { .. }
                if !matches!(d.action, Action::Respond { .. })
                    && gone::clears(conn.health.as_deref(), &d.destination) =>
            {
                Some(HealthChange {
                    connection: conn.name.clone(),
                    error: None,
                })
            }
            _ => None,
        };
        (attempt, health)
    }

    /// Waits for the message's send-time slot in its channel and workspace
    /// (taken in the store, so it holds for the whole cluster), right before
    /// the request; `Err` with a retry, and nothing sent, if the slot cannot
    /// be taken or the claim may have ended meanwhile.
    ///
    /// With no rate to keep (both raised above 1,000 a second) there is no
    /// slot to take: the message goes at once and `sent_at` is this
    /// process's clock.
    async fn send_slot(&self, d: &Claimed, turn: &Turn<'_>) -> Result<(), Attempt> {
        let Some(keys) = crate::store::claims::send_keys(d) else {
            return Ok(());
        };
        if self.rates.channel_gap_ms == 0 && self.rates.workspace_gap_ms == 0 {
            turn.sent_at.store(now_ms(), Ordering::Relaxed);
            return Ok(());
        }
        loop {
            let slot = {
                let _turn = self.store_turn().await;
                self.store.take_send_slot(&keys, self.rates).await
            };
            match slot {
                Ok(SendSlot::Granted { at }) => {
                    turn.sent_at.store(at, Ordering::Relaxed);
                    break;
                }
                Ok(SendSlot::Wait { ms }) => {
                    tokio::time::sleep(Duration::from_millis(ms.max(1) as u64)).await
                }
                Err(e) => {
                    return Err(Attempt::retry(format!(
                        "cannot take Slack's rate slot: {e}"
                    )));
                }
            }
        }
        if turn.heartbeat.held() {
            Ok(())
        } else {
            Err(Attempt::retry(
                "the claim may have ended while waiting for Slack's rate; not sending",
            ))
        }
    }

    /// Applies the retry schedule to an attempt.
    fn outcome(&self, d: &Claimed, attempt: Attempt) -> Outcome {
        let (error, retry_after, uncertain) = match attempt {
            Attempt::Sent { result, thread } => return Outcome::Sent { result, thread },
            Attempt::WouldSend(request) => {
                return Outcome::WouldSend {
                    request: request.to_string(),
                };
            }
            Attempt::Dead(error) | Attempt::Gone { error, .. } => return Outcome::Dead { error },
            Attempt::Reauth { error, .. } => (error, None, false),
            Attempt::Retry {
                error,
                retry_after,
                uncertain,
            } => (error, retry_after, uncertain),
        };
        let now = now_ms();
        let c = &self.config;
        let planned = c
            .retry_schedule_ms
            .get(d.attempts as usize)
            .copied()
            .unwrap_or(c.retry_every_ms);
        let asked = retry_after
            .map(|r| {
                r.min(Duration::from_secs(c.max_retry_after_secs))
                    .as_millis() as u64
            })
            .unwrap_or(0);
        let wait = planned.max(asked);
        let wait = wait
            + (wait as f64 * c.jitter.clamp(0.0, 1.0) * jitter_fraction(d.id, d.attempts)) as u64;
        let at = now + wait as i64;
        if at - d.created_at > c.give_up_after_ms as i64 {
            return Outcome::Dead {
                error: format!(
                    "gave up after {} attempts; last error: {error}",
                    d.attempts + 1
                ),
            };
        }
        Outcome::Retry {
            error,
            at,
            uncertain,
        }
    }
}

/// The connection a delivery goes through: the Slack workspace dispatch
/// chose (or, for deliveries written before workspaces were named, the only
/// Slack workspace), the Teams connection its channel names, the event's
/// Confluence source for pages and comments.
fn connection_for(d: &Claimed, all: &[ConnectionRecord]) -> Result<ConnectionRecord, Attempt> {
    match &d.action {
        Action::PostSlack { .. } | Action::DmSlack { .. } => {
            let slack: Vec<&ConnectionRecord> =
                all.iter().filter(|c| c.kind == ConnectionKind::Slack).collect();
            if let Some(name) = &d.connection {
                return slack.iter().find(|c| &c.name == name).map(|c| (*c).clone()).ok_or_else(|| {
                    Attempt::Dead(format!(
                        "no Slack workspace named `{name}`: connect it with `pagehook connect slack {name} --token-env ...`, then `pagehook retry {}`",
                        d.id
                    ))
                });
            }
            match slack.as_slice() {
                [only] => Ok((*only).clone()),
                [] => Err(Attempt::Dead(
                    "no Slack connection: add one with `pagehook connect slack <name> --token-env ...`, then `pagehook retry`".into(),
                )),
                several => Err(Attempt::Dead(format!(
                    "this delivery names no Slack workspace and Pagehook has {} ({}); bind with slack:<workspace>/#channel",
                    several.len(),
                    several.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                ))),
            }
        }
        // `post-teams` names a Teams (Workflows) connection, or
        // `<bot>/<team>`: the channel a Teams bot was added to in a team.
        Action::PostTeams { channel, .. } => all
            .iter()
            .find(|c| c.kind == ConnectionKind::Teams && &c.name == channel)
            .or_else(|| {
                let (bot, _team) = channel.split_once('/')?;
                all.iter()
                    .find(|c| c.kind == ConnectionKind::TeamsBot && c.name == bot)
            })
            .cloned()
            .ok_or_else(|| {
                Attempt::Dead(format!(
                    "no Teams connection named `{channel}`: add it with `pagehook connect teams {channel} --url ...` (or name a Teams bot and one of its teams: <bot>/<team>)"
                ))
            }),
        // A chat event's source is the Slack connection it came in on, and
        // its answer goes back through that one (dispatch names it as the
        // delivery's connection; the source is the same name).
        Action::Unfurl { .. } | Action::Respond { .. } => {
            let name = d.connection.as_deref().unwrap_or(&d.source);
            all.iter()
                .find(|c| c.kind == ConnectionKind::Slack && c.name == name)
                .cloned()
                .ok_or_else(|| {
                    Attempt::Dead(format!(
                        "the Slack connection `{name}` the chat event came from no longer exists: answers go back only through it"
                    ))
                })
        }
        // Dispatch names the bot a personal message goes through; an answer
        // goes back through the bot its event came to (its source).
        Action::DmTeams { .. } | Action::ReplyTeams { .. } => {
            let name = d.connection.as_deref().unwrap_or(&d.source);
            all.iter()
                .find(|c| c.kind == ConnectionKind::TeamsBot && c.name == name)
                .cloned()
                .ok_or_else(|| {
                    Attempt::Dead(format!(
                        "no Teams bot connection named `{name}`: connect it with `pagehook connect teams-bot {name} --app-id ...`, then `pagehook retry {}`",
                        d.id
                    ))
                })
        }
        Action::CreatePage { .. } | Action::AddComment { .. } => all
            .iter()
            .find(|c| c.kind == ConnectionKind::Confluence && c.name == d.source)
            .cloned()
            .ok_or_else(|| Attempt::Dead(format!("the Confluence connection `{}` no longer exists", d.source))),
    }
}

/// The health writes a round's attempts call for: a refusal marks its
/// connection (it wins over a success in the same round), a success clears
/// a mark; a connection whose stored health already says so is left alone,
/// so a healthy workspace costs no writes.
fn health_changes(
    connections: &[ConnectionRecord],
    seen: impl Iterator<Item = HealthChange>,
) -> Vec<HealthChange> {
    let mut wanted: HashMap<String, Option<String>> = HashMap::new();
    for HealthChange { connection, error } in seen {
        let slot = wanted.entry(connection).or_insert(None);
        if error.is_some() {
            *slot = error;
        }
    }
    wanted
        .into_iter()
        .filter(|(name, error)| {
            connections
                .iter()
                .find(|c| &c.name == name)
                .is_some_and(|c| &c.health != error)
        })
        .map(|(connection, error)| HealthChange { connection, error })
        .collect()
}

/// A fraction in [0, 1) that differs per delivery and attempt, so retries
/// of many deliveries after one outage spread out instead of arriving together.
fn jitter_fraction(id: i64, attempt: u32) -> f64 {
    let mut x = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(attempt).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    (x % 10_000) as f64 / 10_000.0
}

/// A failed request: was it possibly processed (sent, then timed out)?
fn request_error(e: reqwest::Error) -> Attempt {
    let uncertain = !e.is_connect();
    Attempt::Retry {
        error: format!("request failed: {}", crate::http::describe(e)),
        retry_after: None,
        uncertain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn jitter_spreads_within_the_unit_interval() {
        let values: Vec<f64> = (0..100).map(|i| jitter_fraction(i, 1)).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let distinct: HashSet<u64> = values.iter().map(|v| (v * 1000.0) as u64).collect();
        assert!(distinct.len() > 50, "{distinct:?}");
    }
}
