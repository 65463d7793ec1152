//! Plugins: install or upgrade by upload, and the audit a security reviewer
//! reads before granting anything — sha256, imports and exports, declared
//! against granted actions, limits — with grant, enable, disable, reset
//! breaker and remove beside it.
//!
//! The audit compiles the installed component (from the compiled cache
//! when it is there) and never runs it.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use maud::{Markup, html};

use super::{PageError, PageResult, Section, Viewer, api_form, field, page, when};
use crate::model::ACTION_KINDS;
use crate::runtime::PluginPackage;
use crate::runtime::audit::{PluginAudit, audit};
use crate::server::AppState;
use crate::store::{PluginRecord, now_ms};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/plugins", get(plugins))
        .route("/plugins/{name}", get(plugin))
}

async fn plugins(State(state): State<Arc<AppState>>, viewer: Viewer) -> PageResult {
    let list = state.store.plugins().await?;
    let admin = viewer.is_admin();
    let now = now_ms();
    let body = html! {
        @if list.is_empty() {
            p { "No plugins installed yet." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Plugin" } th scope="col" { "Version" } th scope="col" { "Description" }
                    th scope="col" { "State" } th scope="col" { "Granted actions" } th scope="col" { "Installed" }
                } }
                tbody {
                    @for p in &list {
                        tr {
                            th scope="row" { a href={ "/console/plugins/" (p.name) } { (p.name) } }
                            td { (p.version) }
                            td { (p.description) }
                            td { (state_of(p, now)) }
                            td { (list_or_none(&p.grants)) }
                            td { (when(p.installed_at)) }
                        }
                    }
                }
            }
        }
        @if admin {
            h2 id="install" { "Install or upgrade a plugin" }
            p { "Upload the plugin's plugin.toml and the WebAssembly component it names. Read its audit, then grant the actions it may use on its page: a new plugin is granted nothing. The same name upgrades the installed plugin; its bindings stay, and so do its grants (those the new version still declares)." }
            form data-method="POST" data-path="/api/plugins/upload" data-then="reload" data-done="Installed." enctype="multipart/form-data" {
                (field("manifest", "Manifest (plugin.toml)", None, html! {
                    input id="manifest" name="manifest" type="file" accept=".toml,text/plain" required;
                }))
                (field("component", "Component (.wasm)", None, html! {
                    input id="component" name="component" type="file" accept=".wasm,application/wasm" required;
                }))
                button type="submit" { "Install" }
            }
        }
    };
    Ok(page(&viewer, Section::Plugins, "Plugins", body))
}

async fn plugin(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> PageResult {
    let Some(record) = state.store.plugin(&name).await? else {
        return Err(PageError::NotFound(format!(
            "No plugin named `{name}` is installed."
        )));
    };
    let runtime = state.runtime.clone();
    let dir = PathBuf::from(&record.dir);
    let report: Result<PluginAudit, String> = tokio::task::spawn_blocking(move || {
        let package = PluginPackage::open(&dir).map_err(|e| e.to_string())?;
        Ok(audit(&runtime, &package))
    })
    .await
    .map_err(|e| PageError::Internal(format!("plugin audit task: {e}")))?;
    let admin = viewer.is_admin();
    let now = now_ms();
    let m = &record.manifest;
    let body = html! {
        p { (m.description) }
        dl {
            dt { "Version" } dd { (m.version) }
            dt { "State" } dd { (state_of(&record, now)) }
            dt { "Contract" } dd {
                code { "pagehook:plugin@" (m.wit) }
                @if let Ok(a) = &report {
                    @match a.built_against {
                        Some(built) if built.version() == m.wit => " (read from the component's imports)",
                        Some(built) => { " — the component was built against " code { (built) } }
                        None => " (the manifest's word: the component imports no contract types)",
                    }
                }
            }
            dt { "Installed" } dd { (when(record.installed_at)) }
            dt { "Events it subscribes to" } dd { (list_or_none(&m.events)) }
        }
        @match &report {
            Err(problem) => {
                p role="alert" class="alert" { "The installed package cannot be read: " (problem) }
            }
            Ok(a) => {
                h2 { "Audit" }
                dl {
                    dt { "Component" } dd { code { (a.component) } " (" (a.size_bytes) " bytes)" }
                    dt { "sha256" } dd { code id="sha256" { (a.sha256) } }
                    dt { "Loadable" } dd {
                        @if a.loadable { span class="state state-ok" { "yes" } }
                        @else { span class="state state-bad" { "no" } " " (a.problem.clone().unwrap_or_default()) }
                    }
                }
                @if a.sha256 != record.sha256 {
                    p role="alert" class="alert" { "The component on disk does not match the sha256 pinned at install (" code { (record.sha256) } "): it will not load." }
                }
                h3 { "Imports" }
                p class="muted" { "What the component asks the host for. Allowed imports are linked to stubs that grant nothing: no files, no network, no environment." }
                table {
                    thead { tr { th scope="col" { "Import" } th scope="col" { "Sandbox" } } }
                    tbody {
                        @for i in &a.imports {
                            tr {
                                td { code { (i.name) } }
                                td { @if i.allowed { span class="state state-ok" { "allowed, grants nothing" } } @else { span class="state state-bad" { "refused" } } }
                            }
                        }
                    }
                }
                h3 { "Exports" }
                ul { @for e in &a.exports { li { code { (e) } } } }
                @if let Some(l) = &a.limits {
                    h3 { "Limits" }
                    table {
                        tbody {
                            tr { th scope="row" { "Fuel per call" } td class="num" { (l.fuel) } }
                            tr { th scope="row" { "Deadline per call" } td class="num" { (l.deadline_ms) " ms" } }
                            tr { th scope="row" { "Memory" } td class="num" { (l.memory_bytes / (1024 * 1024)) " MiB" } }
                            tr { th scope="row" { "Stack" } td class="num" { (l.stack_bytes / 1024) " KiB" } }
                            tr { th scope="row" { "Actions per call" } td class="num" { (l.max_actions) } }
                            tr { th scope="row" { "Bytes per action" } td class="num" { (l.action_bytes) } }
                            tr { th scope="row" { "Bytes of actions per call" } td class="num" { (l.total_bytes) } }
                            tr { th scope="row" { "Log bytes per call" } td class="num" { (l.log_bytes) } }
                        }
                    }
                }
            }
        }
        h2 { "Actions: declared and granted" }
        p class="muted" { "A plugin may only return actions it declares in plugin.toml and the admin granted; anything else is rejected and written to the audit log." }
        table {
            thead { tr { th scope="col" { "Action" } th scope="col" { "Declared" } th scope="col" { "Granted" } } }
            tbody {
                @for kind in ACTION_KINDS {
                    @let declared = m.actions.iter().any(|a| a == kind);
                    @let granted = record.grants.iter().any(|g| g == kind);
                    tr {
                        td { code { (kind) } }
                        td { @if declared { "yes" } @else { span class="muted" { "no" } } }
                        td { @if granted { span class="state state-ok" { "granted" } } @else { span class="muted" { "not granted" } } }
                    }
                }
            }
        }
        @if !m.settings.is_empty() {
            h2 { "Settings a binding may give it" }
            table {
                thead { tr { th scope="col" { "Setting" } th scope="col" { "Meaning" } th scope="col" { "Default" } } }
                tbody {
                    @for (name, s) in &m.settings {
                        tr {
                            td { code { (name) } @if s.required { " (required)" } }
                            td { (s.description) }
                            td { @if let Some(d) = &s.default { code { (d) } } }
                        }
                    }
                }
            }
        }
        @if admin { (admin_forms(&record)) }
    };
    Ok(page(
        &viewer,
        Section::Plugins,
        &format!("Plugin {name}"),
        body,
    ))
}

fn admin_forms(p: &PluginRecord) -> Markup {
    let m = &p.manifest;
    html! {
        h2 { "Grant actions" }
        (api_form("PUT", &format!("/api/plugins/{}/grants", p.name), "reload", "", html! {
            fieldset {
                legend { "Granted actions" }
                @if m.actions.is_empty() { p class="muted" { "It declares no actions, so there is nothing to grant." } }
                @for kind in &m.actions {
                    label class="check" {
                        input type="checkbox" name="grants[]" value=(kind) id={ "grant-" (kind) } checked[p.grants.contains(kind)];
                        (kind)
                    }
                }
            }
            button type="submit" { "Save grants" }
        }))
        h2 { "Manage" }
        div class="row-actions" {
            @if p.enabled {
                (api_form("POST", &format!("/api/plugins/{}/disable", p.name), "reload", "inline", html! {
                    button type="submit" class="secondary" { "Disable" }
                }))
            } @else {
                (api_form("POST", &format!("/api/plugins/{}/enable", p.name), "reload", "inline", html! {
                    button type="submit" class="secondary" { "Enable" }
                }))
            }
            (api_form("POST", &format!("/api/plugins/{}/reset", p.name), "reload", "inline", html! {
                button type="submit" class="secondary" { "Reset breaker" }
            }))
            form class="inline" data-method="DELETE" data-path={ "/api/plugins/" (p.name) } data-then="reload"
                data-confirm={ "Remove plugin " (p.name) " and its bindings?" } {
                button type="submit" class="danger" { "Remove" }
            }
        }
    }
}

/// Enabled, disabled, or its breaker open (and why), in words.
fn state_of(p: &PluginRecord, now: i64) -> Markup {
    html! {
        @if !p.enabled {
            span class="state state-warn" { "disabled" }
        } @else if let Some(until) = p.breaker_until.filter(|u| *u > now) {
            span class="state state-bad" { "breaker open" }
            " until " (when(until))
            @if let Some(e) = &p.breaker_error { ": " (e) }
        } @else {
            span class="state state-ok" { "enabled" }
            @if p.failures > 0 { " (" (p.failures) " failures in a row)" }
        }
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
