//! One event's run: the Confluence enricher for its source, every binding
//! that wants it run in the sandbox, the verdicts collected. Writes nothing
//! itself: what a run decided is committed by the round.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::confluence::client::{ClientOptions, ConfluenceAuth, ConfluenceClient};
use crate::enrich::Enricher;
use crate::model::Event;
use crate::runtime::{CallReport, LoadedPlugin, PluginPackage, Runtime};
use crate::store::{
    Binding, ConnectionKind, ConnectionRecord, Dispatched, FailureRecord, NewHeld, PluginCall,
    PluginRecord, now_ms,
};

use super::{Dispatcher, Snapshot, Wait, judge};

impl Dispatcher {
    /// The enricher for a Confluence source, rebuilt when its connection
    /// changes; `None` for a webhook-only source (no REST credentials).
    pub(super) fn enricher(
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

    /// Runs every binding that wants `event` and collects what they decided,
    /// and which bindings hold it for a digest instead (see
    /// [`crate::digest`]); [`Wait`] when the event must wait instead (no
    /// binding's result is kept then: it runs again, whole, on a later round).
    pub(super) async fn run_bindings(
        &self,
        event_id: i64,
        event: Event,
        snapshot: &Snapshot,
    ) -> anyhow::Result<Result<(Dispatched, Vec<NewHeld>), Wait>> {
        let plugins = &snapshot.plugins;
        let mut out = Dispatched {
            event_id,
            event: event.clone(),
            deliveries: vec![],
            audit: vec![],
            failures: vec![],
            calls: vec![],
        };
        let mut held = Vec::new();
        let event = Arc::new(event);
        let mut calls = Vec::new();
        for binding in snapshot.bindings.iter().filter(|b| b.wants(&event)) {
            let Some(plugin) = plugins.get(&binding.plugin) else {
                continue;
            };
            if !plugin.enabled || !plugin.manifest.wants(event.kind) {
                continue;
            }
            if let Some(h) = self.holds(event_id, &event, binding, plugin, snapshot) {
                held.push(h);
                continue;
            }
            let source = binding.source.as_deref().unwrap_or(&event.source);
            let Some((loaded, settings)) = (match self
                .prepare_call(event_id, binding, plugin, source, snapshot, &mut out)
                .await
            {
                Ok(ready) => ready,
                Err(wait) => return Ok(Err(wait)),
            }) else {
                continue;
            };
            let event = event.clone();
            let call = tokio::task::spawn_blocking(move || loaded.call(&event, &settings));
            calls.push((binding, plugin, call));
        }
        let chats = snapshot.chat_connections();
        for (binding, plugin, call) in calls {
            let report = call.await?;
            self.record_call(&mut out, binding, plugin, &chats, report);
        }
        Ok(Ok((out, held)))
    }

    /// The row that holds `event` for `binding` instead of running it now:
    /// when the binding has digests on, its plugin takes them, and the
    /// event is one that is held (see [`crate::digest::hold`]).
    fn holds(
        &self,
        event_id: i64,
        event: &Event,
        binding: &Binding,
        plugin: &PluginRecord,
        snapshot: &Snapshot,
    ) -> Option<NewHeld> {
        if !snapshot.digest_settings(binding.id).enabled || !plugin.manifest.digests {
            return None;
        }
        // A plugin that cannot load runs (and fails) on its own.
        let loaded = self.loaded(plugin).ok()?;
        if !loaded.takes_digests() {
            return None;
        }
        crate::digest::hold::held(event_id, event, binding.id)
    }

    /// What `binding`'s plugin is to be called with: the loaded plugin and
    /// the binding's settings (templates filled in); `None`, with the reason
    /// recorded in `out`, when it is not to be called (its breaker is open,
    /// it does not load, its settings are wrong); [`Wait`] when a template
    /// it needs cannot be read now.
    pub(super) async fn prepare_call(
        &self,
        event_id: i64,
        binding: &Binding,
        plugin: &PluginRecord,
        source: &str,
        snapshot: &Snapshot,
        out: &mut Dispatched,
    ) -> Result<Option<(LoadedPlugin, Vec<(String, String)>)>, Wait> {
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
            return Ok(None);
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
                return Ok(None);
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
                return Ok(None);
            }
        };
        // A setting naming a Confluence page template reaches the plugin
        // as the template's current body (confluence::templates).
        if !plugin
            .manifest
            .settings
            .values()
            .any(|s| s.confluence_template)
        {
            return Ok(Some((loaded, settings)));
        }
        let enricher = self.enricher(source, &snapshot.connections).ok().flatten();
        let space = match &binding.scope {
            crate::store::Scope::Space(key) => Some(key.as_str()),
            _ => None,
        };
        match crate::enrich::template_settings::fill(
            &plugin.manifest,
            space,
            settings,
            enricher.as_deref(),
        )
        .await
        {
            Ok(s) => Ok(Some((loaded, s))),
            // Confluence cannot be read and no body is known yet: running
            // without the template would lose the event for this binding,
            // so the whole event waits.
            Err(crate::confluence::templates::TemplateError::Unavailable {
                message,
                retry_after,
            }) => Err(Wait {
                message: format!("binding {} needs its page template: {message}", binding.id),
                retry_after,
            }),
            Err(e) => {
                out.failures.push(failure(
                    event_id,
                    binding,
                    "template",
                    e.to_string(),
                    String::new(),
                ));
                Ok(None)
            }
        }
    }

    /// Records what one call came to in `out`: its actions judged (see
    /// [`judge`]), or its failure.
    pub(super) fn record_call(
        &self,
        out: &mut Dispatched,
        binding: &Binding,
        plugin: &PluginRecord,
        chats: &crate::destination::ChatConnections<'_>,
        report: CallReport,
    ) {
        let seconds = report.elapsed.as_secs_f64();
        match report.outcome {
            Ok(actions) => {
                self.metrics.call(&plugin.name, seconds, None);
                out.calls.push(PluginCall {
                    plugin: plugin.name.clone(),
                    succeeded: true,
                    error: None,
                });
                for action in actions {
                    judge(out, binding, plugin, chats, action);
                }
            }
            Err(e) => {
                self.metrics.call(&plugin.name, seconds, Some(e.code()));
                out.calls.push(PluginCall {
                    plugin: plugin.name.clone(),
                    succeeded: false,
                    error: Some(e.to_string()),
                });
                let event_id = out.event_id;
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

    /// The loaded plugin for an installed record, loading it (from the
    /// compiled cache, normally) when it is new or was reinstalled.
    pub(super) fn loaded(&self, plugin: &PluginRecord) -> Result<LoadedPlugin, String> {
        let mut plugins = self.plugins.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = plugins.get(&plugin.name)
            && l.sha256() == plugin.sha256
            && l.manifest().limits == limits_in_force(&self.runtime, plugin)
        {
            return Ok(l.clone());
        }
        let loaded = load_pinned(&self.runtime, plugin)?;
        plugins.insert(plugin.name.clone(), loaded.clone());
        Ok(loaded)
    }
}

/// The limit requests an installed plugin runs with: its manifest's, held
/// to what the admin granted (an upgrade that asks for more does not get it
/// by itself; see `plugin_trust::grants`).
fn limits_in_force(runtime: &Runtime, plugin: &PluginRecord) -> crate::manifest::LimitRequest {
    crate::plugin_trust::grants::in_force(
        &plugin.manifest.limits,
        &plugin.limit_grants,
        &runtime.config().defaults,
    )
}

/// Loads an installed plugin from its copy, refusing it if the component's
/// hash is no longer the one pinned at install, under the limits granted.
pub fn load_pinned(runtime: &Runtime, plugin: &PluginRecord) -> Result<LoadedPlugin, String> {
    let mut package = PluginPackage::open(Path::new(&plugin.dir)).map_err(|e| e.to_string())?;
    package.manifest.limits = limits_in_force(runtime, plugin);
    if package.sha256 != plugin.sha256 {
        return Err(format!(
            "plugin `{}` at {} is sha256 {}, not the {} pinned at install; reinstall it",
            plugin.name, plugin.dir, package.sha256, plugin.sha256
        ));
    }
    runtime.load(&package).map_err(|e| e.to_string())
}

pub(super) fn failure(
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
