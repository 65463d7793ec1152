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
//! ([`crate::source::chat_confluence`]) resolves what that person may see
//! ([`Enricher::resolve_chat`]); failures defer it the same way, and a
//! Slack connection whose Confluence an admin must choose fails it with
//! that reason instead of waiting.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::destination::{first_allowing_from, slack_workspace, split_workspace};
use crate::heartbeat::Heartbeat;
use crate::metrics::Metrics;
use crate::model::{Action, ChatEvent, Event};
use crate::runtime::{LoadedPlugin, PluginPackage, Runtime};
use crate::source::chat::ChatIdentity;
use crate::source::chat_confluence::chat_confluence;
use crate::source::client::{ClientOptions, ConfluenceAuth, ConfluenceClient};
use crate::source::enrich::{EnrichError, Enricher, from_webhook_only};
use crate::source::slack_events::{self, ChatInbound};
use crate::source::webhook::{self, Payload};
use crate::store::{
    AuditRecord, Binding, BreakerPolicy, Claim, ConnectionKind, ConnectionRecord, Dispatched,
    EventRecord, EventStatus, FailureRecord, NewDelivery, PluginCall, PluginRecord, Store, now_ms,
};

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
}

impl Snapshot {
    /// The names of the Slack connections (workspaces).
    fn slack_workspaces(&self) -> Vec<&str> {
        self.connections
            .iter()
            .filter(|c| c.kind == ConnectionKind::Slack)
            .map(|c| c.name.as_str())
            .collect()
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
    /// Linked people's emails, for `event.people` (see [`crate::self_link::emails`]).
    linked_emails: Arc<crate::self_link::emails::SlackLinkedEmails>,
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
            linked_emails,
            config,
        }
    }

    /// Dispatches until `shutdown` turns true: whenever `wake` is notified
    /// (a new event was stored), and at least once a second for deferred ones.
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let started = tokio::time::Instant::now();
            match self.round().await {
                Ok(n) if n == BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "dispatch round failed"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
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
    pub async fn round(&self) -> anyhow::Result<usize> {
        let claim = Claim::new(&self.replica, self.config.store.lease_ms as i64);
        let taken_at = tokio::time::Instant::now();
        let due = self.store.claim_events(&claim, BATCH).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let heartbeat = Heartbeat::start((*self.store).clone(), claim.clone(), taken_at);
        let result = self.run_claimed(&claim, due).await;
        drop(heartbeat);
        if result.is_err() {
            // Let the events go now rather than at the end of the lease.
            let _ = self.store.release(&claim).await;
        }
        result
    }

    /// Runs a round's claimed events and writes what they came to.
    async fn run_claimed(&self, claim: &Claim, due: Vec<EventRecord>) -> anyhow::Result<usize> {
        let snapshot = Snapshot {
            bindings: self.store.bindings(None).await?,
            plugins: self
                .store
                .plugins()
                .await?
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            connections: self.store.connections().await?,
        };
        let n = due.len();
        let limit = tokio::sync::Semaphore::new(CONCURRENCY);
        let snapshot = &snapshot;
        let results = futures::future::join_all(due.into_iter().map(|record| async {
            let _permit = limit.acquire().await;
            let span = tracing::info_span!("dispatch", event = record.id);
            tracing::Instrument::instrument(self.dispatch(record, snapshot, claim), span).await
        }))
        .await;
        let mut done = Vec::with_capacity(n);
        for result in results {
            if let Some(d) = result? {
                done.push(d);
            }
        }
        if done.is_empty() {
            return Ok(n);
        }
        let policy = BreakerPolicy {
            threshold: self.config.dispatch.breaker_threshold.max(1),
            cooldown_ms: self.config.dispatch.breaker_cooldown_secs as i64 * 1000,
        };
        let wrote = done.iter().any(|d| !d.deliveries.is_empty());
        let count = done.len();
        let written = self.store.finish_dispatch(claim, &done, policy).await?;
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
    ) -> anyhow::Result<Option<Dispatched>> {
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
            return match self.chat_event(&record, inbound, snapshot).await {
                Ok(event) => self.run_or_defer(claim, &record, event, snapshot).await,
                Err(ChatNotReady::Wait {
                    message,
                    retry_after,
                }) => {
                    self.defer(claim, &record, &message, retry_after).await?;
                    Ok(None)
                }
                Err(ChatNotReady::Fail(message)) => {
                    tracing::warn!(event = record.id, "{message}");
                    self.store
                        .close_event(claim, record.id, EventStatus::Failed, Some(&message))
                        .await?;
                    Ok(None)
                }
            };
        }
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
    ) -> anyhow::Result<Option<Dispatched>> {
        match self.run_bindings(record.id, event, snapshot).await? {
            Ok(dispatched) => Ok(Some(dispatched)),
            Err(Wait {
                message,
                retry_after,
            }) => {
                self.defer(claim, record, &message, retry_after).await?;
                Ok(None)
            }
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

    /// The event plugins see for a stored Slack request: the chat part as
    /// Slack sent it, resolved by the Confluence connection the Slack
    /// connection uses ([`Enricher::resolve_chat`]) for the Confluence user
    /// the Slack user linked themselves to, else the one their email (read
    /// with `users.info`) matches. [`ChatNotReady`] when it cannot run now.
    async fn chat_event(
        &self,
        record: &EventRecord,
        mut inbound: ChatInbound,
        snapshot: &Snapshot,
    ) -> Result<Event, ChatNotReady> {
        let source = record.source.as_str();
        let slack = snapshot
            .connections
            .iter()
            .find(|c| c.name == source && c.kind == ConnectionKind::Slack)
            .ok_or_else(|| {
                ChatNotReady::wait(format!("Slack connection `{source}` no longer exists"))
            })?;
        let confluence = match chat_confluence(slack, &snapshot.connections) {
            Ok(c) => c,
            Err(why) if why.needs_admin() => return Err(ChatNotReady::Fail(why.to_string())),
            Err(why) => return Err(ChatNotReady::wait(why.to_string())),
        };
        let enricher = self
            .enricher(&confluence.name, &snapshot.connections)
            .map_err(ChatNotReady::wait)?
            .ok_or_else(|| {
                ChatNotReady::wait(format!(
                    "Confluence connection `{}` has no token to read pages with",
                    confluence.name
                ))
            })?;
        let link = self
            .store
            .user_link(source, &inbound.user_id)
            .await
            .map_err(|e| ChatNotReady::wait(format!("reading the Slack user's link: {e}")))?
            // A link to another Confluence than the one this workspace uses
            // now says nothing about who they are there.
            .filter(|l| l.confluence_connection == confluence.name);
        let email = match &link {
            Some(_) => None,
            None => self.slack_email(slack, &inbound.user_id).await?,
        };
        let who = match &link {
            Some(link) => ChatIdentity::Linked(&link.confluence_user_key),
            None => ChatIdentity::Email(email.as_deref()),
        };
        enricher
            .resolve_chat(who, &mut inbound.chat)
            .await
            .map_err(|e| {
                let retry_after = match &e {
                    EnrichError::Transient { retry_after, .. } => *retry_after,
                    EnrichError::Permanent(_) => None,
                };
                ChatNotReady::Wait {
                    message: format!("reading what the Slack user may see in Confluence: {e}"),
                    retry_after,
                }
            })?;
        Ok(inbound.into_event(source, &record.key, true))
    }

    /// The email of Slack user `user` of connection `slack` (`users.info`,
    /// cached); `None` when Slack shows none.
    async fn slack_email(
        &self,
        slack: &ConnectionRecord,
        user: &str,
    ) -> Result<Option<String>, ChatNotReady> {
        let name = slack.name.as_str();
        let token = slack
            .secret
            .as_ref()
            .ok_or_else(|| format!("Slack connection `{name}` has no bot token"))
            .and_then(|s| {
                s.resolve()
                    .map_err(|m| format!("the bot token of Slack connection `{name}`: {m}"))
            })
            .map_err(ChatNotReady::wait)?;
        let http = self.http.get(slack.proxy.as_ref());
        let client = crate::slack::SlackClient::new(&http, &slack.url, &token);
        self.slack_emails
            .email(name, &client, user)
            .await
            .map_err(|e| {
                let retry_after = match &e {
                    crate::slack::SlackError::RateLimited { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let hint = e.code().map_or("", crate::slack::auth::refusal_hint);
                ChatNotReady::Wait {
                    message: format!("reading the Slack user's email (users.info): {e}{hint}"),
                    retry_after,
                }
            })
    }

    /// The enricher for a Confluence source, rebuilt when its connection
    /// changes; `None` for a webhook-only source (no REST credentials).
    fn enricher(
        &self,
        source: &str,
        connections: &[ConnectionRecord],
    ) -> Result<Option<Arc<Enricher>>, String> {
        let conn = connections
            .iter()
            .find(|c| c.name == source && c.kind == ConnectionKind::Confluence)
            .cloned()
            .ok_or_else(|| format!("Confluence connection `{source}` no longer exists"))?;
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, enricher)) = sources.get(source)
            && *known == conn
        {
            return Ok(Some(enricher.clone()));
        }
        let Some(auth) = ConfluenceAuth::of(&conn)? else {
            return Ok(None);
        };
        let options = ClientOptions {
            timeout: self.config.enrichment_timeout(),
            max_retry_after: Duration::from_secs(self.config.enrichment.max_retry_after_secs),
            proxy: conn.proxy.clone(),
            ..ClientOptions::default()
        };
        let client = ConfluenceClient::new(&conn.url, auth, options);
        let enricher = Arc::new(
            Enricher::new(
                source,
                client,
                Duration::from_secs(self.config.enrichment.cache_ttl_secs),
            )
            .with_linked_emails(self.linked_emails.clone())
            .with_metrics(self.metrics.clone()),
        );
        sources.insert(source.to_owned(), (conn, enricher.clone()));
        Ok(Some(enricher))
    }

    /// Runs every binding that wants `event` and collects what they decided;
    /// [`Wait`] when the event must wait instead (no binding's result is
    /// kept then: it runs again, whole, on a later round).
    async fn run_bindings(
        &self,
        event_id: i64,
        event: Event,
        snapshot: &Snapshot,
    ) -> anyhow::Result<Result<Dispatched, Wait>> {
        let plugins = &snapshot.plugins;
        let mut out = Dispatched {
            event_id,
            event: event.clone(),
            deliveries: vec![],
            audit: vec![],
            failures: vec![],
            calls: vec![],
        };
        let event = Arc::new(event);
        let mut calls = Vec::new();
        for binding in snapshot.bindings.iter().filter(|b| b.wants(&event)) {
            let Some(plugin) = plugins.get(&binding.plugin) else {
                continue;
            };
            if !plugin.enabled || !plugin.manifest.wants(event.kind) {
                continue;
            }
            if let Some(until) = plugin.breaker_until
                && until > now_ms()
            {
                self.metrics.failure(&plugin.name, "breaker-open");
                out.failures.push(failure(
                    event_id,
                    binding,
                    "breaker-open",
                    format!(
                        "plugin `{}` skipped: its breaker is open after repeated failures ({}); `pagehook plugin reset {}` closes it",
                        plugin.name,
                        plugin.breaker_error.as_deref().unwrap_or("unknown error"),
                        plugin.name
                    ),
                    String::new(),
                ));
                continue;
            }
            let loaded = match self.loaded(plugin) {
                Ok(l) => l,
                Err(message) => {
                    self.metrics.failure(&plugin.name, "load");
                    out.calls.push(PluginCall {
                        plugin: plugin.name.clone(),
                        succeeded: false,
                        error: Some(message.clone()),
                    });
                    out.failures
                        .push(failure(event_id, binding, "load", message, String::new()));
                    continue;
                }
            };
            let settings = match plugin.manifest.resolve_settings(&binding.settings) {
                Ok(s) => s,
                Err(message) => {
                    out.failures.push(failure(
                        event_id,
                        binding,
                        "settings",
                        message,
                        String::new(),
                    ));
                    continue;
                }
            };
            // A setting naming a Confluence page template reaches the plugin
            // as the template's current body (source::templates).
            let settings = if plugin
                .manifest
                .settings
                .values()
                .any(|s| s.confluence_template)
            {
                let source = binding.source.as_deref().unwrap_or(&event.source);
                let enricher = self.enricher(source, &snapshot.connections).ok().flatten();
                let space = match &binding.scope {
                    crate::store::Scope::Space(key) => Some(key.as_str()),
                    _ => None,
                };
                match crate::source::templates::fill(
                    &plugin.manifest,
                    space,
                    settings,
                    enricher.as_deref(),
                )
                .await
                {
                    Ok(s) => s,
                    // Confluence cannot be read and no body is known yet:
                    // running without the template would lose the event
                    // for this binding, so the whole event waits.
                    Err(crate::source::templates::TemplateError::Unavailable {
                        message,
                        retry_after,
                    }) => {
                        return Ok(Err(Wait {
                            message: format!(
                                "binding {} needs its page template: {message}",
                                binding.id
                            ),
                            retry_after,
                        }));
                    }
                    Err(e) => {
                        out.failures.push(failure(
                            event_id,
                            binding,
                            "template",
                            e.to_string(),
                            String::new(),
                        ));
                        continue;
                    }
                }
            } else {
                settings
            };
            let event = event.clone();
            let call = tokio::task::spawn_blocking(move || loaded.call(&event, &settings));
            calls.push((binding, plugin.clone(), call));
        }
        for (binding, plugin, call) in calls {
            let report = call.await?;
            let seconds = report.elapsed.as_secs_f64();
            match report.outcome {
                Ok(actions) => {
                    self.metrics.call(&plugin.name, seconds, None);
                    out.calls.push(PluginCall {
                        plugin: plugin.name.clone(),
                        succeeded: true,
                        error: None,
                    });
                    let workspaces = snapshot.slack_workspaces();
                    for action in actions {
                        judge(&mut out, binding, &plugin, &workspaces, action);
                    }
                }
                Err(e) => {
                    self.metrics.call(&plugin.name, seconds, Some(e.code()));
                    out.calls.push(PluginCall {
                        plugin: plugin.name.clone(),
                        succeeded: false,
                        error: Some(e.to_string()),
                    });
                    out.failures.push(failure(
                        event_id,
                        binding,
                        e.code(),
                        e.to_string(),
                        report.log,
                    ));
                }
            }
        }
        Ok(Ok(out))
    }

    /// The loaded plugin for an installed record, loading it (from the
    /// compiled cache, normally) when it is new or was reinstalled.
    fn loaded(&self, plugin: &PluginRecord) -> Result<LoadedPlugin, String> {
        let mut plugins = self.plugins.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = plugins.get(&plugin.name)
            && l.sha256() == plugin.sha256
        {
            return Ok(l.clone());
        }
        let loaded = load_pinned(&self.runtime, plugin)?;
        plugins.insert(plugin.name.clone(), loaded.clone());
        Ok(loaded)
    }
}

/// Loads an installed plugin from its copy, refusing it if the component's
/// hash is no longer the one pinned at install.
pub fn load_pinned(runtime: &Runtime, plugin: &PluginRecord) -> Result<LoadedPlugin, String> {
    let package = PluginPackage::open(Path::new(&plugin.dir)).map_err(|e| e.to_string())?;
    if package.sha256 != plugin.sha256 {
        return Err(format!(
            "plugin `{}` at {} is sha256 {}, not the {} pinned at install; reinstall it",
            plugin.name, plugin.dir, package.sha256, plugin.sha256
        ));
    }
    runtime.load(&package).map_err(|e| e.to_string())
}

/// Applies the two-party rule to one action and records the verdict (and,
/// when accepted, the delivery) in `out`; the console's preview of a
/// binding judges with it too.
///
/// Chat answers are held to one more rule: they answer their own event. An
/// `unfurl` only for a link-shared event, only to that event's channel and
/// message, and only with previews of that event's links; a `respond` only
/// for a slash command, only to that command's response URL. Both go back
/// through the Slack connection the event came in on (its source).
pub fn judge(
    out: &mut Dispatched,
    binding: &Binding,
    plugin: &PluginRecord,
    workspaces: &[&str],
    action: Action,
) {
    let kind = action.kind();
    let wanted = action.destination();
    let source = out.event.source.clone();
    let allowing = first_allowing_from(&binding.destinations, &action, &source);
    let workspace = match (&action, allowing) {
        (Action::PostSlack { .. } | Action::DmSlack { .. }, Some(destination)) => {
            slack_workspace(&action, destination, workspaces)
        }
        (Action::Unfurl { .. } | Action::Respond { .. }, Some(_)) => {
            if workspaces.contains(&source.as_str()) {
                Ok(Some(source.clone()))
            } else {
                Err(format!(
                    "`{kind}` answers a chat event through the Slack connection it came from, and `{source}` is not a Slack connection"
                ))
            }
        }
        _ => Ok(None),
    };
    let rejected = if !plugin.manifest.actions.iter().any(|a| a == kind) {
        Some(format!("`{kind}` is not declared in the plugin's manifest"))
    } else if !plugin.grants.iter().any(|g| g == kind) {
        Some(format!("`{kind}` was not granted at install"))
    } else if allowing.is_none() {
        Some(format!(
            "binding {} does not allow `{kind}` to `{wanted}`{} (its destinations: {})",
            binding.id,
            if matches!(action, Action::Unfurl { .. } | Action::Respond { .. }) {
                format!(" in Slack workspace `{source}`")
            } else {
                String::new()
            },
            if binding.destinations.is_empty() {
                "none".to_owned()
            } else {
                binding.destinations.join(", ")
            }
        ))
    } else if let Some(foreign) = not_its_own_event(&action, out.event.chat.as_ref()) {
        Some(foreign)
    } else if let Err(ambiguous) = &workspace {
        Some(ambiguous.clone())
    } else {
        None
    };
    out.audit.push(AuditRecord {
        at: now_ms(),
        event_id: out.event_id,
        binding_id: binding.id,
        plugin: plugin.name.clone(),
        sha256: plugin.sha256.clone(),
        kind: kind.to_owned(),
        destination: wanted,
        verdict: if rejected.is_some() {
            "rejected"
        } else {
            "accepted"
        }
        .to_owned(),
        reason: rejected.clone(),
    });
    if rejected.is_none() {
        let destination = allowing.unwrap_or_default().to_owned();
        let connection = workspace.ok().flatten();
        out.deliveries.push(NewDelivery {
            binding_id: binding.id,
            plugin: plugin.name.clone(),
            lane: lane(&action, &out.event.source, connection.as_deref()),
            source: out.event.source.clone(),
            connection,
            destination,
            action,
            dry_run: binding.dry_run,
        });
    }
}

/// Why a chat answer does not answer its own event (`None` when it does,
/// and for every other action). Never quotes a response URL: it is a
/// capability, and reasons are shown to admins.
fn not_its_own_event(action: &Action, chat: Option<&ChatEvent>) -> Option<String> {
    match (action, chat) {
        (
            Action::Unfurl {
                channel,
                message_ts,
                unfurls,
            },
            Some(ChatEvent::LinkShared {
                channel: theirs,
                message_ts: their_ts,
                links,
                ..
            }),
        ) => {
            if channel != theirs || message_ts != their_ts {
                return Some(format!(
                    "`unfurl` may only preview links in the message that shared them ({theirs} at {their_ts}), not {} at {}",
                    shown(channel),
                    shown(message_ts)
                ));
            }
            let Some(map) = unfurls.as_object().filter(|m| !m.is_empty()) else {
                return Some("`unfurl` carries no previews (its unfurls map is empty)".into());
            };
            map.keys()
                .find(|url| !links.iter().any(|l| &l.url == *url))
                .map(|url| {
                    format!(
                        "`unfurl` may only preview the links the event shared, and `{}` is not one of them",
                        shown(url)
                    )
                })
        }
        (Action::Unfurl { .. }, _) => Some(format!(
            "`unfurl` answers only a link-shared event, and this is {}",
            what_event(chat)
        )),
        (
            Action::Respond { response_url, .. },
            Some(ChatEvent::SlashCommand {
                response_url: theirs,
                ..
            }),
        ) => (response_url != theirs).then(|| {
            "`respond` may only answer the slash command it was given: its response URL is not this command's".to_owned()
        }),
        (Action::Respond { .. }, _) => Some(format!(
            "`respond` answers only a slash-command event, and this is {}",
            what_event(chat)
        )),
        _ => None,
    }
}

fn what_event(chat: Option<&ChatEvent>) -> &'static str {
    match chat {
        Some(ChatEvent::LinkShared { .. }) => "a link-shared event",
        Some(ChatEvent::SlashCommand { .. }) => "a slash-command event",
        None => "not a chat event",
    }
}

/// A plugin-chosen value in a reason, cut short.
fn shown(value: &str) -> String {
    const MAX: usize = 120;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(MAX).collect::<String>())
    }
}

/// Why a chat event does not run now.
enum ChatNotReady {
    /// It waits for a later round: something transient, or a Confluence
    /// connection that is not made yet.
    Wait {
        message: String,
        retry_after: Option<Duration>,
    },
    /// It fails with this reason: an admin must choose the Confluence
    /// connection the Slack connection uses, and waiting would not do it.
    Fail(String),
}

impl ChatNotReady {
    fn wait(message: String) -> ChatNotReady {
        ChatNotReady::Wait {
            message,
            retry_after: None,
        }
    }
}

/// Why an event waits for a later round instead of running now.
struct Wait {
    message: String,
    retry_after: Option<Duration>,
}

/// The lane a delivery is ordered in: one per Slack thread (or channel,
/// for messages without a thread key), DM, Teams channel, Confluence space
/// or page, so messages about one page arrive in the order their events
/// happened while unrelated ones go out side by side. Slack lanes are per
/// workspace: `#eng` in two workspaces are two channels.
pub fn lane(action: &Action, source: &str, workspace: Option<&str>) -> String {
    let ws = workspace.unwrap_or("");
    match action {
        Action::PostSlack {
            channel,
            thread_key,
            ..
        } => {
            let channel = split_workspace(channel)
                .1
                .trim_start_matches('#')
                .to_lowercase();
            match thread_key {
                Some(key) => format!("slack:{ws}/{channel}:{key}"),
                None => format!("slack:{ws}/{channel}"),
            }
        }
        Action::DmSlack { email, .. } => {
            format!("slack-dm:{ws}/{}", split_workspace(email).1.to_lowercase())
        }
        Action::PostTeams { channel, .. } => format!("teams:{channel}"),
        Action::CreatePage { space_key, .. } => format!("confluence:{source}:{space_key}"),
        Action::AddComment { page_id, .. } => format!("confluence:{source}:page-{page_id}"),
        // Chat answers go back through the connection the event came from
        // (its source): one lane per message unfurled, one per command.
        Action::Unfurl {
            channel,
            message_ts,
            ..
        } => format!("slack-unfurl:{source}/{channel}:{message_ts}"),
        Action::Respond { response_url, .. } => {
            use sha2::Digest;
            // Never the URL itself: lanes are shown to admins and logged.
            let digest = hex::encode(sha2::Sha256::digest(response_url.as_bytes()));
            format!("slack-respond:{source}/{}", &digest[..16])
        }
    }
}

fn failure(
    event_id: i64,
    binding: &Binding,
    code: &str,
    message: String,
    log: String,
) -> FailureRecord {
    FailureRecord {
        at: now_ms(),
        event_id,
        binding_id: binding.id,
        plugin: binding.plugin.clone(),
        code: code.to_owned(),
        message,
        log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use crate::model::{ChatUser, EventKind, SharedLink};
    use crate::store::Scope;

    const LINK: &str = "https://wiki.example.com/pages/viewpage.action?pageId=42";
    const RESPONSE_URL: &str = "https://hooks.slack.com/commands/T1/1234/s3cr3t";

    fn plugin() -> PluginRecord {
        let manifest = Manifest::parse(
            r#"
name = "chat"
version = "0.1.0"
description = "answers chat"
wit = "0.2.0"
component = "chat.wasm"
events = ["link-shared", "slash-command", "page-created"]
actions = ["unfurl", "respond"]
"#,
        )
        .unwrap();
        PluginRecord {
            name: "chat".into(),
            version: "0.1.0".into(),
            description: "d".into(),
            sha256: "ab".repeat(32),
            dir: "/nowhere".into(),
            manifest,
            grants: vec!["unfurl".into(), "respond".into()],
            enabled: true,
            failures: 0,
            breaker_until: None,
            breaker_error: None,
            installed_at: 1,
        }
    }

    fn binding(destinations: &[&str]) -> Binding {
        Binding {
            id: 7,
            plugin: "chat".into(),
            source: None,
            scope: Scope::Global,
            events: vec!["*".into()],
            destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
            settings: vec![],
            dry_run: false,
            created_at: 1,
        }
    }

    fn user() -> ChatUser {
        ChatUser {
            id: "U1".into(),
            team_id: "T1".into(),
            confluence: None,
        }
    }

    fn event(kind: EventKind, chat: Option<ChatEvent>) -> Event {
        Event {
            id: "e1".into(),
            kind,
            name: kind.name().into(),
            occurred_at_ms: 0,
            source: "acme".into(),
            actor: None,
            by_pagehook: false,
            content: None,
            update_trigger: None,
            label: None,
            enriched: true,
            people: vec![],
            chat,
        }
    }

    fn link_shared() -> Event {
        event(
            EventKind::LinkShared,
            Some(ChatEvent::LinkShared {
                channel: "C0ENG".into(),
                message_ts: "1700000000.000100".into(),
                user: user(),
                links: vec![SharedLink {
                    url: LINK.into(),
                    page: None,
                }],
            }),
        )
    }

    fn slash_command() -> Event {
        event(
            EventKind::SlashCommand,
            Some(ChatEvent::SlashCommand {
                command: "/confluence".into(),
                text: "launch".into(),
                user: user(),
                channel: "C0ENG".into(),
                response_url: RESPONSE_URL.into(),
                results: vec![],
            }),
        )
    }

    fn unfurl(channel: &str, ts: &str, url: &str) -> Action {
        Action::Unfurl {
            channel: channel.into(),
            message_ts: ts.into(),
            unfurls: serde_json::json!({url: {"blocks": []}}),
        }
    }

    fn respond(url: &str) -> Action {
        Action::Respond {
            response_url: url.into(),
            text: "found 1 page".into(),
            blocks: None,
            in_channel: false,
        }
    }

    /// Judges one action on `event` under `binding`; the audit line and the
    /// delivery, if any.
    fn judged(
        event: Event,
        binding: &Binding,
        action: Action,
    ) -> (AuditRecord, Option<NewDelivery>) {
        let mut out = Dispatched {
            event_id: 1,
            event,
            deliveries: vec![],
            audit: vec![],
            failures: vec![],
            calls: vec![],
        };
        judge(&mut out, binding, &plugin(), &["acme", "beta"], action);
        (out.audit.pop().unwrap(), out.deliveries.pop())
    }

    #[test]
    fn an_unfurl_of_its_own_message_goes_back_through_its_workspace() {
        let b = binding(&["slack-unfurl:acme"]);
        let (audit, delivery) = judged(
            link_shared(),
            &b,
            unfurl("C0ENG", "1700000000.000100", LINK),
        );
        assert_eq!(audit.verdict, "accepted", "{:?}", audit.reason);
        let d = delivery.unwrap();
        assert_eq!(d.connection.as_deref(), Some("acme"));
        assert_eq!(d.destination, "slack-unfurl:acme");
        assert_eq!(d.lane, "slack-unfurl:acme/C0ENG:1700000000.000100");
    }

    #[test]
    fn an_unfurl_elsewhere_or_of_a_foreign_link_is_rejected() {
        let b = binding(&["slack-unfurl:*"]);
        for (action, needle) in [
            (
                unfurl("C0OPS", "1700000000.000100", LINK),
                "C0ENG at 1700000000.000100",
            ),
            (
                unfurl("C0ENG", "1700000000.000200", LINK),
                "not C0ENG at 1700000000.000200",
            ),
            (
                unfurl("C0ENG", "1700000000.000100", "https://evil.example.com/"),
                "`https://evil.example.com/` is not one of them",
            ),
            (
                Action::Unfurl {
                    channel: "C0ENG".into(),
                    message_ts: "1700000000.000100".into(),
                    unfurls: serde_json::json!({}),
                },
                "no previews",
            ),
        ] {
            let (audit, delivery) = judged(link_shared(), &b, action);
            assert_eq!(audit.verdict, "rejected");
            assert!(delivery.is_none());
            let reason = audit.reason.unwrap();
            assert!(reason.contains(needle), "{reason}");
        }
        let (audit, delivery) = judged(
            slash_command(),
            &b,
            unfurl("C0ENG", "1700000000.000100", LINK),
        );
        assert!(delivery.is_none());
        assert!(
            audit
                .reason
                .unwrap()
                .contains("only a link-shared event, and this is a slash-command event")
        );
    }

    #[test]
    fn a_respond_answers_only_its_own_command_and_never_shows_the_url() {
        let b = binding(&["slack-respond:acme"]);
        let (audit, delivery) = judged(slash_command(), &b, respond(RESPONSE_URL));
        assert_eq!(audit.verdict, "accepted", "{:?}", audit.reason);
        assert_eq!(audit.destination, "response-url");
        let d = delivery.unwrap();
        assert_eq!(d.connection.as_deref(), Some("acme"));
        assert!(
            !d.lane.contains("s3cr3t") && !d.lane.contains("hooks.slack.com"),
            "{}",
            d.lane
        );
        assert!(!d.destination.contains("s3cr3t"));

        let other = "https://hooks.slack.com/commands/T1/9999/other";
        let (audit, delivery) = judged(slash_command(), &b, respond(other));
        assert!(delivery.is_none());
        let reason = audit.reason.unwrap();
        assert!(reason.contains("not this command's"), "{reason}");
        assert!(
            !reason.contains("other") && !reason.contains("s3cr3t"),
            "{reason}"
        );
        assert_eq!(audit.destination, "response-url");

        let (audit, delivery) = judged(
            event(EventKind::PageCreated, None),
            &b,
            respond(RESPONSE_URL),
        );
        assert!(delivery.is_none());
        let reason = audit.reason.unwrap();
        assert!(
            reason.contains("only a slash-command event, and this is not a chat event"),
            "{reason}"
        );
        assert!(!reason.contains("s3cr3t"));
    }

    #[test]
    fn chat_answers_need_a_destination_for_their_workspace_and_a_grant() {
        let (audit, delivery) = judged(
            slash_command(),
            &binding(&["slack-respond:beta", "slack:*"]),
            respond(RESPONSE_URL),
        );
        assert!(delivery.is_none());
        let reason = audit.reason.unwrap();
        assert!(
            reason.contains("does not allow `respond` to `response-url` in Slack workspace `acme`"),
            "{reason}"
        );
        let mut b = binding(&["slack-unfurl:*"]);
        b.destinations.push("slack-respond:*".into());
        let mut p = plugin();
        p.grants = vec!["respond".into()];
        let mut out = Dispatched {
            event_id: 1,
            event: link_shared(),
            deliveries: vec![],
            audit: vec![],
            failures: vec![],
            calls: vec![],
        };
        judge(
            &mut out,
            &b,
            &p,
            &["acme"],
            unfurl("C0ENG", "1700000000.000100", LINK),
        );
        assert!(out.deliveries.is_empty());
        assert_eq!(
            out.audit[0].reason.as_deref(),
            Some("`unfurl` was not granted at install")
        );
        // An event whose source is not a Slack connection has nowhere to answer.
        let mut out = Dispatched {
            event_id: 1,
            event: link_shared(),
            deliveries: vec![],
            audit: vec![],
            failures: vec![],
            calls: vec![],
        };
        judge(
            &mut out,
            &b,
            &plugin(),
            &["beta"],
            unfurl("C0ENG", "1700000000.000100", LINK),
        );
        assert!(out.deliveries.is_empty());
        assert!(
            out.audit[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("`acme` is not a Slack connection")
        );
    }
}
