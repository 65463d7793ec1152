//! Dispatch: turn each stored event into outbox deliveries.
//!
//! For every pending event, oldest first: enrich it from its Confluence
//! source, find the enabled bindings that want it, run each binding's plugin
//! in the sandbox (in parallel, off the async threads), check every action
//! against the two-party rule (declared in the manifest, granted at install,
//! destination named by the binding) and write the accepted ones as
//! deliveries, the verdicts as audit lines and failed calls as failures, in
//! the one transaction that marks the event dispatched. A plugin failure is
//! recorded and never blocks other bindings or events; enrichment that fails
//! for now leaves the event pending with a growing delay. Nothing is lost on
//! a crash: an event is pending until that transaction commits, and plugins
//! are pure, so running them again gives the same actions.
//!
//! A stored Slack request (a shared link, a slash command) becomes a chat
//! event instead: its Slack user is who they linked themselves to, else
//! whoever their email (read with `users.info`) matches, and the Confluence
//! connection the Slack connection uses
//! ([`crate::enrich::chat_confluence`]) resolves what that person may see
//! ([`Enricher::resolve_chat`]); failures defer it the same way, and a
//! Slack connection whose Confluence an admin must choose fails it with
//! that reason instead of waiting.
//!
//! A binding whose plugin takes digests (and that has them on) holds the
//! event instead of running it: the row that holds it is written in that
//! same transaction, and [`digests`] releases it later, into one digest
//! call or its own call (see [`crate::digest`]).
//!
//! The loop and the round are here; [`run`] runs one event's bindings,
//! [`chat`] resolves a chat event's person, [`digests`] releases held
//! events, [`judge`] holds the two-party rule (pure, shared with the
//! console's preview). Lanes are named beside the destinations
//! ([`crate::destination::lane`]).

mod chat;
mod digests;
mod judge;
pub mod links;
mod run;

pub use judge::judge;
pub use run::load_pinned;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::enrich::{EnrichError, Enricher, from_webhook_only};
use crate::heartbeat::Heartbeat;
use crate::metrics::Metrics;
use crate::model::Event;
use crate::runtime::{LoadedPlugin, Runtime};
use crate::source::webhook::{self, Payload};
use crate::source::{slack_events, teams_activity};
use crate::store::{
    Binding, BreakerPolicy, Claim, ConnectionRecord, DigestSettings, Dispatched, EventRecord,
    EventStatus, NewHeld, PluginRecord, Store, now_ms,
};

use chat::ChatNotReady;

/// Events taken from the store per round.
const BATCH: usize = 64;
/// Least time from the start of one round to the start of the next unless
/// the last one was full: an event waits at most this long for its round.
const PACE: Duration = Duration::from_millis(5);
/// Events enriched and run at the same time.
const CONCURRENCY: usize = 8;
/// Longest wait between retries of an event whose source could not be read.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// What a round reads once for all its events: bindings, installed plugins
/// and connections as they stood when the round began, so a burst of events
/// costs one read of them instead of one per event.
struct Snapshot {
    bindings: Vec<Binding>,
    plugins: HashMap<String, PluginRecord>,
    connections: Vec<ConnectionRecord>,
    /// Digest settings of the bindings that changed the defaults.
    digests: HashMap<i64, DigestSettings>,
}

impl Snapshot {
    /// Reads what a round needs from the store.
    async fn read(store: &Store) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            bindings: store.bindings(None).await?,
            plugins: store
                .plugins()
                .await?
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            connections: store.connections().await?,
            digests: store.digest_settings().await?.into_iter().collect(),
        })
    }

    /// A binding's digest settings (the defaults unless changed).
    fn digest_settings(&self, binding_id: i64) -> DigestSettings {
        self.digests.get(&binding_id).copied().unwrap_or_default()
    }

    /// The chat connections (Slack workspaces, Teams bots) by kind.
    fn chat_connections(&self) -> crate::destination::ChatConnections<'_> {
        crate::destination::ChatConnections::of(&self.connections)
    }
}

/// Runs plugins over stored events; one per process, any number of
/// processes per shared store (each round claims its events).
pub struct Dispatcher {
    store: Arc<Store>,
    replica: String,
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    config: Config,
    plugins: Mutex<HashMap<String, LoadedPlugin>>,
    outbox: Arc<Notify>,
    sources: Mutex<HashMap<String, (ConnectionRecord, Arc<Enricher>)>>,
    /// For Slack's Web API (`users.info` for chat events), one client per
    /// proxy a Slack connection names.
    http: Arc<crate::http::clients::ClientsByProxy>,
    /// Slack users' emails, cached.
    slack_emails: Arc<crate::slack::users::UserEmails>,
    /// The Teams bots' tokens, for looking up who wrote to a bot.
    teams_bots: Arc<crate::teams::bots::TeamsBots>,
    /// Linked people's emails, for `event.people` (see [`crate::self_link::emails`]).
    linked_emails: Arc<crate::self_link::emails::SlackLinkedEmails>,
    /// When released held events were last purged (ms).
    last_purge: Mutex<i64>,
}

impl Dispatcher {
    /// A dispatcher over `store`, loading plugins with `runtime`; `outbox`
    /// is notified whenever deliveries were written.
    pub fn new(
        store: Arc<Store>,
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
        config: Config,
        outbox: Arc<Notify>,
    ) -> Dispatcher {
        let timeout = config.enrichment_timeout();
        let http = Arc::new(crate::http::clients::ClientsByProxy::new(move |b| {
            b.timeout(timeout)
        }));
        let slack_emails = Arc::new(crate::slack::users::UserEmails::new(Duration::from_secs(
            config.enrichment.cache_ttl_secs,
        )));
        let linked_emails = Arc::new(crate::self_link::emails::SlackLinkedEmails::new(
            store.clone(),
            http.clone(),
            slack_emails.clone(),
        ));
        Dispatcher {
            store,
            replica: crate::store::claims::replica_name(),
            runtime,
            metrics,
            outbox,
            plugins: Mutex::new(HashMap::new()),
            sources: Mutex::new(HashMap::new()),
            http,
            slack_emails,
            teams_bots: Arc::default(),
            linked_emails,
            config,
            last_purge: Mutex::new(0),
        }
    }

    /// The same dispatcher sharing `bots` (the server's Teams bot tokens).
    pub fn with_teams_bots(mut self, bots: Arc<crate::teams::bots::TeamsBots>) -> Dispatcher {
        self.teams_bots = bots;
        self
    }

    /// Dispatches until `shutdown` turns true: whenever `wake` is notified
    /// (a new event was stored), and at least once a second for deferred ones.
    ///
    /// Between rounds it releases the events held for digests whose time
    /// has come ([`digests`]), and wakes when the next is due.
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self.store.release_stale_held_claims().await {
            tracing::error!(error = %e, "could not release the held events' claims of the previous run");
        }
        loop {
            if *shutdown.borrow() {
                return;
            }
            let started = tokio::time::Instant::now();
            let round = self.round().await;
            let next_held = match self.release_held().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "releasing held events failed");
                    None
                }
            };
            match round {
                Ok(n) if n == BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "dispatch round failed"),
            }
            let idle = next_held
                .map(|at| Duration::from_millis((at - now_ms()).clamp(0, 1_000) as u64))
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => {}
            }
            // Under a stream of webhooks every commit wakes us: gather what
            // arrives for a moment so rounds are few and full rather than one
            // per commit, each paying its reads and its own commit.
            tokio::time::sleep_until(started + PACE).await;
        }
    }

    /// Dispatches the events that are due now; returns how many it took.
    ///
    /// The batch is enriched and run concurrently (at most [`CONCURRENCY`]
    /// events at a time, so Confluence is not flooded), and everything it
    /// decided is committed in one transaction, in event order, so a burst
    /// costs one commit rather than one per event.
    ///
    /// What the round reads of bindings, plugins and connections is read
    /// while its events are claimed, not after: on PostgreSQL that is a
    /// round trip less of each round's time (about 1.5 ms at 1,000 events/s).
    pub async fn round(&self) -> anyhow::Result<usize> {
        let claim = Claim::new(&self.replica, self.config.store.lease_ms as i64);
        let taken_at = tokio::time::Instant::now();
        let (due, snapshot) = tokio::join!(
            self.store.claim_events(&claim, BATCH),
            Snapshot::read(&self.store)
        );
        let due = due?;
        if due.is_empty() {
            return Ok(0);
        }
        let heartbeat = Heartbeat::start((*self.store).clone(), claim.clone(), taken_at);
        let result = match snapshot {
            Ok(snapshot) => self.run_claimed(&claim, due, &snapshot).await,
            Err(e) => Err(e),
        };
        drop(heartbeat);
        if result.is_err() {
            // Let the events go now rather than at the end of the lease.
            let _ = self.store.release(&claim).await;
        }
        result
    }

    /// Runs a round's claimed events and writes what they came to.
    async fn run_claimed(
        &self,
        claim: &Claim,
        due: Vec<EventRecord>,
        snapshot: &Snapshot,
    ) -> anyhow::Result<usize> {
        let n = due.len();
        let limit = tokio::sync::Semaphore::new(CONCURRENCY);
        let results = futures::future::join_all(due.into_iter().map(|record| async {
            let _permit = limit.acquire().await;
            let span = tracing::info_span!("dispatch", event = record.id);
            tracing::Instrument::instrument(self.dispatch(record, snapshot, claim), span).await
        }))
        .await;
        let mut done = Vec::with_capacity(n);
        let mut held = Vec::new();
        for result in results {
            if let Some((d, h)) = result? {
                done.push(d);
                held.extend(h);
            }
        }
        if done.is_empty() {
            return Ok(n);
        }
        let wrote = done.iter().any(|d| !d.deliveries.is_empty());
        let count = done.len();
        let written = self
            .store
            .finish_dispatch_holding(claim, &done, &held, self.breaker_policy())
            .await?;
        if written < count {
            tracing::warn!(
                lost = count - written,
                "events were taken over by another replica before this one finished them; their results were not written"
            );
        }
        for _ in 0..written {
            self.metrics.dispatched();
        }
        if wrote {
            self.outbox.notify_one();
        }
        Ok(n)
    }

    /// Enriches one event and runs its bindings; `None` when it was
    /// deferred or closed instead.
    async fn dispatch(
        &self,
        record: EventRecord,
        snapshot: &Snapshot,
        claim: &Claim,
    ) -> anyhow::Result<Option<(Dispatched, Vec<NewHeld>)>> {
        if let Some(inbound) = teams_activity::from_stored(&record.payload) {
            let inbound = match inbound {
                Ok(inbound) => inbound,
                Err(e) => {
                    let msg = format!("stored Teams activity does not parse: {e}");
                    self.store
                        .close_event(claim, record.id, EventStatus::Failed, Some(&msg))
                        .await?;
                    return Ok(None);
                }
            };
            let event = self.teams_event(&record, inbound, snapshot).await;
            return self.chat_or_wait(claim, &record, event, snapshot).await;
        }
        if let Some(inbound) = slack_events::from_stored(&record.payload) {
            let inbound = match inbound {
                Ok(inbound) => inbound,
                Err(e) => {
                    let msg = format!("stored Slack payload does not parse: {e}");
                    self.store
                        .close_event(claim, record.id, EventStatus::Failed, Some(&msg))
                        .await?;
                    return Ok(None);
                }
            };
            let event = self.chat_event(&record, inbound, snapshot).await;
            return self.chat_or_wait(claim, &record, event, snapshot).await;
        }
        self.confluence_event(record, snapshot, claim).await
    }

    /// Runs a chat event's bindings, or defers or fails it as `event` says.
    async fn chat_or_wait(
        &self,
        claim: &Claim,
        record: &EventRecord,
        event: Result<Event, ChatNotReady>,
        snapshot: &Snapshot,
    ) -> anyhow::Result<Option<(Dispatched, Vec<NewHeld>)>> {
        match event {
            Ok(event) => self.run_or_defer(claim, record, event, snapshot).await,
            Err(ChatNotReady::Wait {
                message,
                retry_after,
            }) => {
                self.defer(claim, record, &message, retry_after).await?;
                Ok(None)
            }
            Err(ChatNotReady::Fail(message)) => {
                tracing::warn!(event = record.id, "{message}");
                self.store
                    .close_event(claim, record.id, EventStatus::Failed, Some(&message))
                    .await?;
                Ok(None)
            }
        }
    }

    /// Enriches one Confluence webhook and runs its bindings.
    async fn confluence_event(
        &self,
        record: EventRecord,
        snapshot: &Snapshot,
        claim: &Claim,
    ) -> anyhow::Result<Option<(Dispatched, Vec<NewHeld>)>> {
        let hook = match webhook::from_value(&record.payload) {
            Ok(Payload::Event(hook)) => hook,
            Ok(Payload::Test) => {
                self.store
                    .close_event(
                        claim,
                        record.id,
                        EventStatus::Ignored,
                        Some("test connection"),
                    )
                    .await?;
                return Ok(None);
            }
            Err(e) => {
                let msg = format!("stored payload does not parse: {e}");
                self.store
                    .close_event(claim, record.id, EventStatus::Failed, Some(&msg))
                    .await?;
                return Ok(None);
            }
        };
        let event = match self.enricher(&record.source, &snapshot.connections) {
            Err(message) => {
                // The source was removed or misconfigured after the event was
                // accepted: keep the event until an admin fixes it.
                self.defer(claim, &record, &message, None).await?;
                return Ok(None);
            }
            Ok(None) => from_webhook_only(&record.source, &record.key, &hook),
            Ok(Some(enricher)) => match enricher.enrich(&record.key, &hook).await {
                Ok(event) => event,
                Err(e) => {
                    let retry_after = match &e {
                        EnrichError::Transient { retry_after, .. } => *retry_after,
                        EnrichError::Permanent(_) => None,
                    };
                    self.defer(
                        claim,
                        &record,
                        &format!("reading the event from Confluence: {e}"),
                        retry_after,
                    )
                    .await?;
                    return Ok(None);
                }
            },
        };
        self.run_or_defer(claim, &record, event, snapshot).await
    }

    /// Runs the bindings on `event`, or leaves it pending when one of them
    /// needs something Confluence cannot give right now (a template).
    async fn run_or_defer(
        &self,
        claim: &Claim,
        record: &EventRecord,
        event: Event,
        snapshot: &Snapshot,
    ) -> anyhow::Result<Option<(Dispatched, Vec<NewHeld>)>> {
        match self.run_bindings(record.id, event, snapshot).await? {
            Ok(ran) => Ok(Some(ran)),
            Err(Wait {
                message,
                retry_after,
            }) => {
                self.defer(claim, record, &message, retry_after).await?;
                Ok(None)
            }
        }
    }

    /// How the breaker reacts to failed calls, from the configuration.
    fn breaker_policy(&self) -> BreakerPolicy {
        BreakerPolicy {
            threshold: self.config.dispatch.breaker_threshold.max(1),
            cooldown_ms: self.config.dispatch.breaker_cooldown_secs as i64 * 1000,
        }
    }

    /// Leaves an event pending for a later round: after Confluence's
    /// `Retry-After` if it gave one, else with a doubling delay.
    async fn defer(
        &self,
        claim: &Claim,
        record: &EventRecord,
        message: &str,
        retry_after: Option<Duration>,
    ) -> anyhow::Result<()> {
        let first = Duration::from_secs(self.config.dispatch.retry_secs.max(1));
        let backoff = first
            .saturating_mul(1 << record.attempts.min(16))
            .min(MAX_RETRY);
        let wait = retry_after.map_or(backoff, |r| r.max(first));
        tracing::warn!(event = record.id, retry_in = ?wait, "{message}");
        self.store
            .defer_event(
                claim,
                record.id,
                message,
                now_ms() + wait.as_millis() as i64,
            )
            .await?;
        Ok(())
    }
}

/// Why an event waits for a later round instead of running now.
pub(super) struct Wait {
    message: String,
    retry_after: Option<Duration>,
}
