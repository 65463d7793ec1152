//! Binding a plugin to a scope (events, destinations, settings) and
//! unbinding it. A binding is refused whole when any part is wrong.

use serde::Serialize;
use serde_json::json;

use crate::destination::Destination;
use crate::manifest::Manifest;
use crate::model::{Action, EventKind};
use crate::store::{Binding, ConnectionKind, NewBinding, NewDelivery, Scope, Store};

use super::changes::{ChangeAction, log_change};
use super::{AdminError, AdminResult};
use super::{list_or_none, notice, slack_escape};

/// What an admin gives to bind a plugin.
#[derive(Debug, Clone)]
pub struct BindRequest {
    /// The installed plugin.
    pub plugin: String,
    /// Scope: `global`, `space:KEY`, `page:ID`.
    pub scope: String,
    /// Only events from this Confluence connection.
    pub source: Option<String>,
    /// Event kinds; empty means all the plugin subscribes to.
    pub events: Vec<String>,
    /// Allowed destinations.
    pub to: Vec<String>,
    /// Settings.
    pub settings: Vec<(String, String)>,
    /// Record deliveries, never send.
    pub dry_run: bool,
    /// Do not announce the binding in the Slack channels it names.
    pub quiet: bool,
}

/// What `bind` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Bound {
    /// The stored binding.
    #[serde(flatten)]
    pub binding: Binding,
    /// The deliveries announcing it in each Slack channel it names.
    pub announcements: Vec<i64>,
}

/// Creates a binding after checking it against the plugin and its grants.
pub async fn bind(store: &Store, actor: &str, req: BindRequest) -> AdminResult<Bound> {
    let plugin = store.require_plugin(&req.plugin).await?;
    let manifest: &Manifest = &plugin.manifest;
    let scope: Scope = req.scope.parse().map_err(AdminError::Invalid)?;
    if let Some(source) = &req.source {
        match store.connection(source).await? {
            // Slack connections and Teams bots are sources too: their chat events.
            Some(c)
                if matches!(
                    c.kind,
                    ConnectionKind::Confluence | ConnectionKind::Slack | ConnectionKind::TeamsBot
                ) => {}
            _ => {
                return Err(AdminError::NotFound(format!(
                    "no Confluence connection named `{source}`, nor a Slack one or a Teams bot (see `pagehook connections`)"
                )));
            }
        }
    }
    let events = if req.events.is_empty() {
        manifest.events.clone()
    } else {
        for e in &req.events {
            let Some(kind) = EventKind::from_name(e) else {
                return Err(AdminError::Invalid(format!(
                    "unknown event kind `{e}` (kinds: {})",
                    EventKind::ALL.map(EventKind::name).join(", ")
                )));
            };
            if !manifest.wants(kind) {
                return Err(AdminError::Invalid(format!(
                    "plugin `{}` does not handle `{e}` events (it handles: {})",
                    plugin.name,
                    manifest.events.join(", ")
                )));
            }
        }
        req.events.clone()
    };
    if req.to.is_empty() && !plugin.grants.is_empty() {
        return Err(AdminError::Invalid(format!(
            "say where its actions may go with --to (e.g. slack:#eng); plugin `{}` may return {}",
            plugin.name,
            plugin.grants.join(", ")
        )));
    }
    let workspaces: Vec<String> = store
        .connections()
        .await?
        .into_iter()
        .filter(|c| c.kind == ConnectionKind::Slack)
        .map(|c| c.name)
        .collect();
    let mut destinations = Vec::with_capacity(req.to.len());
    for to in &req.to {
        let dest: Destination = to.parse().map_err(AdminError::Invalid)?;
        let dest = match (dest.is_slack(), dest.workspace(), workspaces.as_slice()) {
            (true, None, [only]) => dest.in_workspace(only),
            (true, None, several) if several.len() > 1 => {
                return Err(AdminError::Invalid(format!(
                    "`{to}` is ambiguous: Pagehook has Slack workspaces {}; name one, e.g. {}",
                    several.join(", "),
                    dest.in_workspace(&several[0])
                )));
            }
            (true, Some(ws), _) if !workspaces.iter().any(|w| w == ws) => {
                return Err(AdminError::NotFound(format!(
                    "`{to}` names Slack workspace `{ws}`, which is not connected (see `pagehook connections`)"
                )));
            }
            _ => dest,
        };
        destinations.push(dest.clone());
        if !plugin.grants.iter().any(|g| g == dest.action_kind()) {
            return Err(AdminError::Invalid(format!(
                "destination `{to}` receives `{}` actions, which plugin `{}` was not granted (granted: {})",
                dest.action_kind(),
                plugin.name,
                list_or_none(&plugin.grants)
            )));
        }
    }
    // Settings in step with the binding: a channel setting the destinations
    // allow (or filled from them), event kinds once, defaults not stored.
    let settings = super::binding_settings::in_step(
        &plugin.name,
        manifest,
        &req.events,
        &destinations,
        &req.settings,
    )?;
    let resolved = manifest
        .resolve_settings(&settings)
        .map_err(AdminError::Invalid)?;
    // Settings naming a Confluence page template must name one that exists.
    crate::confluence::templates::check_settings(
        manifest,
        match &scope {
            Scope::Space(key) => Some(key.as_str()),
            _ => None,
        },
        &resolved,
        &store.connections().await?,
        req.source.as_deref(),
    )
    .await
    .map_err(AdminError::Invalid)?;
    let binding = store
        .add_binding(&NewBinding {
            plugin: plugin.name,
            source: req.source,
            scope,
            events,
            destinations: destinations.iter().map(ToString::to_string).collect(),
            settings,
            dry_run: req.dry_run,
        })
        .await?;
    let mut announcements = Vec::new();
    if !req.quiet {
        for dest in destinations
            .iter()
            .filter(|d| d.action_kind() == "post-slack")
        {
            let Some(channel) = dest.channel().filter(|c| *c != "*") else {
                continue;
            };
            let Some(ws) = dest.workspace().or(workspaces.first().map(String::as_str)) else {
                continue;
            };
            let text = format!(
                "Pagehook will post Confluence {} events from {} here (plugin `{}`, binding {}).",
                slack_escape(&binding.events.join(", ")),
                slack_escape(&match &binding.scope {
                    Scope::Global => "every space".to_owned(),
                    other => other.to_string(),
                }),
                slack_escape(&binding.plugin),
                binding.id
            );
            let action = Action::PostSlack {
                channel: channel.to_owned(),
                text,
                blocks: None,
                thread_key: None,
            };
            announcements.push(
                store
                    .enqueue_notice(
                        "bound",
                        &NewDelivery {
                            dry_run: binding.dry_run,
                            ..notice(ws, action, binding.id, &dest.to_string())
                        },
                    )
                    .await?,
            );
        }
    }
    let detail = json!({
        "plugin": binding.plugin,
        "scope": binding.scope.to_string(),
        "events": binding.events,
        "destinations": binding.destinations,
        "dry_run": binding.dry_run,
    });
    log_change(
        store,
        actor,
        ChangeAction::BindingAdd,
        &binding.id.to_string(),
        detail,
    )
    .await;
    Ok(Bound {
        binding,
        announcements,
    })
}

/// Removes binding `id`; the binding as it was.
pub async fn unbind(store: &Store, actor: &str, id: i64) -> AdminResult<Binding> {
    let binding = store
        .binding(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no binding with id {id}")))?;
    store.remove_binding(id).await?;
    let detail = json!({ "plugin": binding.plugin, "scope": binding.scope.to_string() });
    log_change(
        store,
        actor,
        ChangeAction::BindingRemove,
        &id.to_string(),
        detail,
    )
    .await;
    Ok(binding)
}
