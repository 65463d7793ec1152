//! Plugins: install or upgrade by upload, and the audit a security reviewer
//! reads before granting anything — sha256, signature and signer (checked
//! now, against today's `[plugins]` keys, so a revoked key shows), what the
//! component says about how it was built, imports and exports, declared
//! against granted actions, limits requested against limits in force, and
//! what the last upgrade changed — with grant, enable, disable, reset
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

use super::{PageError, PageResult, Section, Viewer, field, page, when};
use crate::model::ACTION_KINDS;
use crate::plugin_trust::grants::{self, HeldLimit};
use crate::plugin_trust::report::{self, TrustFacts};
use crate::runtime::PluginPackage;
use crate::runtime::audit::{PluginAudit, audit};
use crate::server::AppState;
use crate::store::{ChangeQuery, ChangeRecord, PluginRecord, now_ms};

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
            p { "Upload the plugin's plugin.toml and the WebAssembly component it names, and for a signed plugin its plugin.statement and plugin.statement.minisig. Read its audit, then grant the actions it may use on its page: a new plugin is granted nothing. The same name upgrades the installed plugin; its bindings stay, and so do its grants (those the new version still declares). An upgrade grants nothing new by itself: new actions stay ungranted and larger limits wait for you on its page, where its changes are listed." }
            form data-method="POST" data-path="/api/plugins/upload" data-then="reload" data-done="Installed." enctype="multipart/form-data" {
                (field("manifest", "Manifest (plugin.toml)", None, html! {
                    input id="manifest" name="manifest" type="file" accept=".toml,text/plain" required;
                }))
                (field("component", "Component (.wasm)", None, html! {
                    input id="component" name="component" type="file" accept=".wasm,application/wasm" required;
                }))
                (field("statement", "Signed statement (plugin.statement, optional)", None, html! {
                    input id="statement" name="statement" type="file" accept=".statement,text/plain";
                }))
                (field("signature", "Signature (plugin.statement.minisig, optional)", None, html! {
                    input id="signature" name="signature" type="file" accept=".minisig,text/plain";
                }))
                label class="check" {
                    input type="checkbox" name="allow_downgrade" id="allow_downgrade" value="true";
                    "Allow installing a lower version than the installed one"
                }
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
    let keyring = state.config.plugins.keyring().unwrap_or_default();
    let examined: Result<(PluginAudit, TrustFacts), String> =
        tokio::task::spawn_blocking(move || {
            let package = PluginPackage::open(&dir).map_err(|e| e.to_string())?;
            Ok((
                audit(&runtime, &package),
                report::examine(&package, &keyring),
            ))
        })
        .await
        .map_err(|e| PageError::Internal(format!("plugin audit task: {e}")))?;
    let (report, trust) = match examined {
        Ok((audit, trust)) => (Ok(audit), Some(trust)),
        Err(e) => (Err(e), None),
    };
    let held = grants::held(
        &record.manifest.limits,
        &record.limit_grants,
        &state.runtime.config().defaults,
    );
    let last_change = last_install(&state, &name).await?;
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
                @if let Some(t) = &trust { (trust_section(t)) }
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
                    @if held.is_empty() {
                        p class="muted" { "What it requests, on this host's defaults; every request is granted." }
                    } @else {
                        p class="muted" { "What it requests, on this host's defaults. Some requests are not granted, so it runs with less:" }
                        (held_table(&held))
                        @if admin {
                            form data-method="POST" data-path={ "/api/plugins/" (record.name) "/grant-limits" }
                                data-then="reload" data-describe="limits-granted" data-held=(held_words(&held)) {
                                button type="submit" id="grant-limits" { "Grant the limits it requests" }
                            }
                        }
                    }
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
        @if let Some(change) = &last_change { (last_install_section(change)) }
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
        @if admin { (admin_forms(&record, now)) }
    };
    Ok(page(
        &viewer,
        Section::Plugins,
        &format!("Plugin {name}"),
        body,
    ))
}

fn admin_forms(p: &PluginRecord, now: i64) -> Markup {
    let m = &p.manifest;
    let name = &p.name;
    let breaker_open = p.breaker_until.is_some_and(|u| u > now);
    html! {
        h2 { "Grant actions" }
        form data-method="PUT" data-path={ "/api/plugins/" (name) "/grants" } data-then="reload" data-describe="grants-saved" {
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
        }
        h2 { "Manage" }
        div class="row-actions" {
            @if p.enabled {
                form class="inline" data-method="POST" data-path={ "/api/plugins/" (name) "/disable" } data-then="reload" data-describe="plugin-disabled" {
                    button type="submit" class="secondary" { "Disable" }
                }
            } @else {
                form class="inline" data-method="POST" data-path={ "/api/plugins/" (name) "/enable" } data-then="reload" data-describe="plugin-enabled" {
                    button type="submit" class="secondary" { "Enable" }
                }
            }
            form class="inline" data-method="POST" data-path={ "/api/plugins/" (name) "/reset" } data-then="reload"
                data-describe="breaker-reset" data-breaker=(if breaker_open { "open" } else { "closed" })
                data-failures=(p.failures) {
                button type="submit" class="secondary" { "Reset breaker" }
            }
            form class="inline" data-method="DELETE" data-path={ "/api/plugins/" (name) } data-then="reload"
                data-confirm={ "Remove plugin " (name) " and its bindings?" } {
                button type="submit" class="danger" { "Remove" }
            }
        }
    }
}

/// The held limits in words for the grant's answer:
/// `memory-mib 64 (ran with 32)`.
fn held_words(held: &[HeldLimit]) -> String {
    held.iter()
        .map(|h| format!("{} {} (ran with {})", h.limit, h.requested, h.in_force))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The signature and provenance part of the audit.
fn trust_section(t: &TrustFacts) -> Markup {
    let sig = &t.signature;
    let p = &t.provenance;
    html! {
        h3 { "Signature" }
        p id="signature" {
            @if sig.verified() { span class="state state-ok" { "verified" } }
            @else if matches!(sig.status, crate::plugin_trust::SignatureStatus::Unsigned) { span class="state state-warn" { "unsigned" } }
            @else { span class="state state-bad" { "not verified" } }
            " " (sig.summary())
        }
        p class="muted" { "Checked now, offline, against [plugins] trusted-keys and revoked-keys: a key revoked since install shows here. A signature proves who released these exact files, not what the code does." }
        h3 { "Provenance" }
        p class="muted" { "What the component says about how it was built (its producers sections), in the builder's own words." }
        @if p.producers.is_empty() {
            p { "The component records no producers." }
        } @else {
            table id="producers" {
                thead { tr { th scope="col" { "Field" } th scope="col" { "Name" } th scope="col" { "Version" } } }
                tbody {
                    @for producer in &p.producers {
                        tr { td { (producer.field) } td { code { (producer.name) } } td { (producer.version) } }
                    }
                }
            }
        }
        @match &p.dependencies {
            Some(deps) => {
                details {
                    summary { "Embedded dependency list (cargo auditable): " (deps.len()) " packages" }
                    table {
                        thead { tr { th scope="col" { "Crate" } th scope="col" { "Version" } th scope="col" { "Source" } } }
                        tbody {
                            @for d in deps {
                                tr { td { code { (d.name) } @if d.root { " (built)" } } td { (d.version) } td { (d.source) } }
                            }
                        }
                    }
                }
            }
            None => p class="muted" { "It embeds no dependency list." },
        }
        @if let Some(problem) = &p.problem { p class="alert" { (problem) } }
    }
}

/// The limits a plugin requests that it is not granted.
fn held_table(held: &[HeldLimit]) -> Markup {
    html! {
        table id="held-limits" {
            thead { tr { th scope="col" { "Limit" } th scope="col" { "Requested" } th scope="col" { "Runs with" } } }
            tbody {
                @for h in held {
                    tr { td { code { (h.limit) } } td class="num" { (h.requested) } td class="num" { (h.in_force) } }
                }
            }
        }
    }
}

/// The newest install or upgrade of plugin `name` in the change log (the
/// newest 500 changes are read).
async fn last_install(state: &AppState, name: &str) -> Result<Option<ChangeRecord>, PageError> {
    let changes = state
        .store
        .changes(&ChangeQuery {
            before: None,
            limit: 500,
        })
        .await?;
    Ok(changes.into_iter().find(|c| {
        c.target == name && (c.action == "plugin.upgrade" || c.action == "plugin.install")
    }))
}

/// What the newest install or upgrade changed and left ungranted.
fn last_install_section(change: &ChangeRecord) -> Markup {
    let d = &change.detail;
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let upgrade = d.get("upgrade").filter(|u| !u.is_null());
    let not_granted = strings(&d["not_granted"]);
    html! {
        h2 id="last-upgrade" {
            @if upgrade.is_some() { "Last upgrade" } @else { "Installed" }
        }
        p class="muted" { (when(change.at)) " by " (change.actor) }
        @if let Some(u) = upgrade {
            @let rows = upgrade_rows(u);
            table id="upgrade-diff" {
                thead { tr { th scope="col" { "What" } th scope="col" { "Change" } } }
                tbody {
                    @for (what, change) in &rows { tr { th scope="row" { (what) } td { (change) } } }
                }
            }
        }
        @if !not_granted.is_empty() {
            p role="status" class="alert" id="not-granted" {
                "Not granted by this install: " (not_granted.join("; ")) ". Grant actions below; grant limits under Limits."
            }
        }
    }
}

/// The rows of a stored upgrade diff (`plugin_trust::diff::UpgradeDiff` as JSON).
fn upgrade_rows(u: &serde_json::Value) -> Vec<(String, String)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut rows = vec![(
        "Version".to_owned(),
        format!(
            "{} → {} ({})",
            text(&u["version"]["before"]),
            text(&u["version"]["after"]),
            text(&u["order"])
        ),
    )];
    for (key, label) in [
        ("events_added", "Event added"),
        ("events_removed", "Event removed"),
        ("actions_added", "Action added (not granted by the upgrade)"),
        ("actions_removed", "Action removed"),
        ("imports_added", "Import added"),
        ("imports_removed", "Import removed"),
    ] {
        for item in list(&u[key]) {
            rows.push((label.to_owned(), item));
        }
    }
    for s in u["settings"].as_array().into_iter().flatten() {
        rows.push((
            format!("Setting {}", text(&s["change"])),
            format!("{}: {}", text(&s["name"]), text(&s["detail"])),
        ));
    }
    let shown = |v: &serde_json::Value| v.as_u64().map_or("default".to_owned(), |n| n.to_string());
    for l in u["limits"].as_array().into_iter().flatten() {
        let held = match l["held_at"].as_u64() {
            Some(h) => format!(" — not granted: runs with {h}"),
            None => String::new(),
        };
        rows.push((
            format!("Limit {}", text(&l["limit"])),
            format!("{} → {}{held}", shown(&l["before"]), shown(&l["after"])),
        ));
    }
    for (key, label) in [
        ("contract", "Contract"),
        ("signer", "Signature"),
        ("sha256", "sha256"),
    ] {
        if u[key].is_object() {
            rows.push((
                label.to_owned(),
                format!("{} → {}", text(&u[key]["before"]), text(&u[key]["after"])),
            ));
        }
    }
    rows
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
