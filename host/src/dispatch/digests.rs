//! Releasing held events: the other half of digests (see [`crate::digest`]).
//!
//! Between dispatch rounds the dispatcher reads the held events, asks
//! [`rules::plan`] which have come due, claims them (so one replica
//! releases them, once), and runs them: one call of `handle-digest` with
//! all of them, or one call of `handle` each, in event order, exactly as
//! dispatch would have. Their deliveries, audit lines and failures are
//! written in the transaction that marks them released; a crash before it
//! leaves them held, and the next run forms the same batch again from the
//! store. A digest's deliveries hang off its last event (the delivery goes
//! where that event's would have gone in its lanes).
//!
//! What this module must never do: release a held event without writing
//! what became of it in the same transaction, or run it twice.

use crate::digest::rules::{self, Due, Release};
use crate::digest::{Digest, search};
use crate::store::{
    Binding, Claim, ClaimedHeld, ConnectionKind, DigestSettings, Dispatched, PluginRecord,
    Released, now_ms,
};

use super::{Dispatcher, Snapshot};

/// How long released held events are kept: bursts are measured over them
/// (within a binding's window), and the console says where an event went.
const KEEP_RELEASED_MS: i64 = 24 * 3_600 * 1_000;

impl Dispatcher {
    /// Releases the held events whose time has come; returns when the next
    /// will be (ms), if any event is still held.
    pub(super) async fn release_held(&self) -> anyhow::Result<Option<i64>> {
        let now = now_ms();
        if !self.store.holds_any().await? {
            self.purge_released(now).await;
            return Ok(None);
        }
        let snapshot = Snapshot::read(&self.store).await?;
        // Bursts are measured over each binding's window: read the released
        // rows of the longest one.
        let longest = snapshot
            .digests
            .values()
            .map(|s| s.window_secs)
            .chain([DigestSettings::default().window_secs])
            .max()
            .unwrap_or_default();
        let rows = self
            .store
            .held_events(now - i64::from(longest) * 1000)
            .await?;
        let plan = rules::plan(&rows, |binding| self.digests_of(binding, &snapshot), now);
        for due in plan.due {
            self.release(due, &snapshot).await?;
        }
        Ok(plan.next_at)
    }

    /// A binding's digest settings while it still holds events: `None` when
    /// it is gone or its plugin no longer takes digests (its held events
    /// then go one by one at once).
    fn digests_of(&self, binding_id: i64, snapshot: &Snapshot) -> Option<DigestSettings> {
        let binding = snapshot.bindings.iter().find(|b| b.id == binding_id)?;
        let plugin = snapshot.plugins.get(&binding.plugin)?;
        let loaded = self.loaded(plugin).ok()?;
        (plugin.manifest.digests && loaded.takes_digests())
            .then(|| snapshot.digest_settings(binding_id))
    }

    /// Forgets released held events older than [`KEEP_RELEASED_MS`], at
    /// most once a minute.
    async fn purge_released(&self, now: i64) {
        {
            let mut last = self.last_purge.lock().unwrap_or_else(|p| p.into_inner());
            if now - *last < 60_000 {
                return;
            }
            *last = now;
        }
        if let Err(e) = self.store.purge_released_held(now - KEEP_RELEASED_MS).await {
            tracing::warn!(error = %e, "could not forget old released held events");
        }
    }

    /// Claims the held events of `due`, runs them and writes what they
    /// came to; leaves them held (and lets the claim go) when that fails.
    async fn release(&self, due: Due, snapshot: &Snapshot) -> anyhow::Result<()> {
        let claim = Claim::new(&self.replica, self.config.store.lease_ms as i64);
        let claimed = self.store.claim_held(&claim, &due.ids).await?;
        if claimed.is_empty() {
            return Ok(()); // another replica has them
        }
        let outcome = self.run_held(&due, &claimed, snapshot).await;
        let results = match outcome {
            Ok(Some(results)) => results,
            Ok(None) => {
                self.store.release_held_claim(&claim).await?;
                return Ok(());
            }
            Err(e) => {
                let _ = self.store.release_held_claim(&claim).await;
                return Err(e);
            }
        };
        let digest = results.len() == 1 && claimed.len() > 1;
        let released: Vec<Released> = claimed
            .iter()
            .map(|c| Released {
                held_id: c.held.id,
                with_event: if digest {
                    results[0].event_id
                } else {
                    c.held.event_id
                },
            })
            .collect();
        let wrote = results.iter().any(|d| !d.deliveries.is_empty());
        let finished = self
            .store
            .finish_held(&claim, &released, &results, self.breaker_policy())
            .await?;
        if !finished {
            tracing::warn!(
                binding = due.binding_id,
                space = due.space_key,
                "held events were taken over by another replica before this one released them; its results were not written"
            );
        } else {
            if digest {
                tracing::info!(
                    binding = due.binding_id,
                    space = due.space_key,
                    events = claimed.len(),
                    "digest released"
                );
            }
            if wrote {
                self.outbox.notify_one();
            }
        }
        Ok(())
    }

    /// Runs claimed held events: what they came to, one [`Dispatched`] per
    /// event, or one for a digest (under its last event); `None` when they
    /// must stay held for now (a template Confluence cannot give yet).
    async fn run_held(
        &self,
        due: &Due,
        claimed: &[ClaimedHeld],
        snapshot: &Snapshot,
    ) -> anyhow::Result<Option<Vec<Dispatched>>> {
        let binding = snapshot.bindings.iter().find(|b| b.id == due.binding_id);
        let plugin = binding
            .and_then(|b| snapshot.plugins.get(&b.plugin))
            .filter(|p| p.enabled);
        let (Some(binding), Some(plugin)) = (binding, plugin) else {
            // The binding went or its plugin was disabled while they were
            // held: they go where dispatch would now send them, nowhere.
            return Ok(Some(vec![]));
        };
        if due.release == Release::Digest && claimed.len() > 1 {
            return Ok(self
                .run_digest(binding, plugin, &due.space_key, claimed, snapshot)
                .await?
                .map(|d| vec![d]));
        }
        let chats = snapshot.chat_connections();
        let mut results = Vec::with_capacity(claimed.len());
        for held in claimed {
            let mut out = dispatched(held);
            let source = binding.source.as_deref().unwrap_or(&held.event.source);
            match self
                .prepare_call(
                    held.held.event_id,
                    binding,
                    plugin,
                    source,
                    snapshot,
                    &mut out,
                )
                .await
            {
                Err(_wait) => return Ok(None),
                Ok(None) => {}
                Ok(Some((loaded, settings))) => {
                    let event = held.event.clone();
                    let report =
                        tokio::task::spawn_blocking(move || loaded.call(&event, &settings)).await?;
                    self.record_call(&mut out, binding, plugin, &chats, report);
                }
            }
            results.push(out);
        }
        Ok(Some(results))
    }

    /// One `handle-digest` call with every claimed event.
    async fn run_digest(
        &self,
        binding: &Binding,
        plugin: &PluginRecord,
        space_key: &str,
        claimed: &[ClaimedHeld],
        snapshot: &Snapshot,
    ) -> anyhow::Result<Option<Dispatched>> {
        let last = claimed.last().expect("a digest has events");
        let mut out = dispatched(last);
        let source = binding.source.as_deref().unwrap_or(&last.event.source);
        let (loaded, settings) = match self
            .prepare_call(
                last.held.event_id,
                binding,
                plugin,
                source,
                snapshot,
                &mut out,
            )
            .await
        {
            Err(_wait) => return Ok(None),
            Ok(None) => return Ok(Some(out)),
            Ok(Some(ready)) => ready,
        };
        let digest = digest_of(space_key, claimed, snapshot);
        let report =
            tokio::task::spawn_blocking(move || loaded.call_digest(&digest, &settings)).await?;
        self.record_call(
            &mut out,
            binding,
            plugin,
            &snapshot.chat_connections(),
            report,
        );
        Ok(Some(out))
    }
}

/// An empty result for one held event.
fn dispatched(held: &ClaimedHeld) -> Dispatched {
    Dispatched {
        event_id: held.held.event_id,
        event: held.event.clone(),
        deliveries: vec![],
        audit: vec![],
        failures: vec![],
        calls: vec![],
    }
}

/// The digest of `claimed` (in event order), with a search link on the
/// Confluence its last event came from.
fn digest_of(space_key: &str, claimed: &[ClaimedHeld], snapshot: &Snapshot) -> Digest {
    let events: Vec<crate::model::Event> = claimed.iter().map(|c| c.event.clone()).collect();
    let source = events.last().map(|e| e.source.as_str()).unwrap_or_default();
    let base = snapshot
        .connections
        .iter()
        .find(|c| c.name == source && c.kind == ConnectionKind::Confluence)
        .map(|c| c.url.as_str());
    Digest {
        space_key: space_key.to_owned(),
        space_name: events
            .iter()
            .filter_map(|e| e.content.as_ref()?.space_name.clone())
            .next(),
        search_url: base.and_then(|b| search::search_url(b, space_key, &events)),
        events,
    }
}
