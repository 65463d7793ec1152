//! Connections: Slack workspaces, Teams workflows and Confluence sources.
//! Connect one (the Slack app manifest to paste is on the page), test it,
//! switch dry run, remove it. Secrets are typed in once and never shown:
//! rows show names, URLs without their query, health and token expiry.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use maud::{Markup, html};

use super::{PageError, PageResult, Section, Viewer, field, page, when};
use crate::ops::tokens::token_status;
use crate::server::AppState;
use crate::slack::app_manifest::{slack_app_manifest, slack_app_manifest_socket_mode};
use crate::store::{ConnectionKind, ConnectionRecord, now_ms, redacted_url};

/// What the connect forms say of their Proxy field.
const PROXY_HELP: &str = "Optional: `direct` (this connection never goes through a proxy) or http://host:port (its own proxy, without credentials in it). Empty: the global [network] proxy.";

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/connections", get(connections))
        .route("/connections/{name}", get(edit_page))
}

/// A connect form (`POST /api/connections`), its answer described.
fn said_block(describe: &str, fields: Markup) -> Markup {
    html! {
        form data-method="POST" data-path="/api/connections" data-then="reload" data-describe=(describe) {
            (fields)
        }
    }
}

async fn connections(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    viewer: Viewer,
) -> PageResult {
    let list = state.store.connections().await?;
    let admin = viewer.is_admin();
    let manifest = app_manifest(state.config.server.public_url.as_deref(), &headers, &list);
    let socket_manifest = slack_app_manifest_socket_mode(&confluence_host(&list));
    let body = html! {
        @if !admin {
            p class="notice" { "Only the Pagehook admin changes connections; you can see which exist to use them in your bindings." }
        }
        (table(&list, admin))
        @if admin {
            h2 id="connect-slack" { "Connect Slack" }
            p { "Create a Slack app from this manifest (api.slack.com/apps → Create New App → From an app manifest), install it to your workspace, and paste its Bot User OAuth Token (xoxb-…) below. It asks for exactly the scopes Pagehook uses. Its URLs point at this server as your browser reached it, for a connection named NAME: change both if Slack reaches Pagehook at another address, and NAME to the name you give the connection." }
            (field("slack-manifest", "Slack app manifest", None, html! {
                textarea id="slack-manifest" readonly rows="18" cols="80" { (manifest) }
            }))
            p { "No inbound path from the internet? Use Socket Mode: create the app from the manifest below instead (it turns Socket Mode on and needs no request URL), then under Basic Information, App-Level Tokens, generate a token with the scope connections:write and paste it (xapp-…) as the app-level token. Pagehook then opens an outbound WebSocket to Slack (through the egress proxy, if one is set) and nothing reaches it from outside." }
            (field("slack-socket-manifest", "Slack app manifest for Socket Mode", None, html! {
                textarea id="slack-socket-manifest" readonly rows="18" cols="80" { (socket_manifest) }
            }))
            (said_block("connection-added", html! {
                input type="hidden" name="kind" value="slack";
                (field("slack-name", "Name", Some("Letters, digits, - and _; destinations name it: slack:NAME/#channel."), html! {
                    input id="slack-name" name="name" type="text" required pattern="[A-Za-z0-9_-]{1,64}" aria-describedby="slack-name-help";
                }))
                (field("slack-token", "Bot token", None, html! {
                    input id="slack-token" name="token.value" type="password" required autocomplete="off";
                }))
                (field("slack-app-token", "App-level token (Socket Mode)", Some("xapp-…, scope connections:write: events and commands then arrive over an outbound WebSocket, and the signing secret is not needed."), html! {
                    input id="slack-app-token" name="app_token.value" type="password" autocomplete="off" aria-describedby="slack-app-token-help";
                }))
                (field("slack-signing-secret", "Signing secret", Some("The Slack app's Basic Information, Signing Secret: verifies the shared links and commands Slack sends to /hooks/slack/NAME. Without it that URL refuses them."), html! {
                    input id="slack-signing-secret" name="signing_secret.value" type="password" autocomplete="off" aria-describedby="slack-signing-secret-help";
                }))
                (field("slack-url", "Slack API URL", Some("Leave empty for https://slack.com/api/."), html! {
                    input id="slack-url" name="url" type="url" aria-describedby="slack-url-help";
                }))
                (field("slack-notify", "Greet this email", Some("Optional: a Slack user's email; Pagehook DMs them once the connection works."), html! {
                    input id="slack-notify" name="notify" type="text" aria-describedby="slack-notify-help";
                }))
                (field("slack-confluence", "Confluence for chat", Some("Where this workspace's link previews, /confluence search and /confluence link look people and pages up. With several Confluence connections, choose one (People page changes it later)."), html! {
                    select id="slack-confluence" name="confluence" aria-describedby="slack-confluence-help" {
                        option value="" { "the only one with a token" }
                        @for c in list.iter().filter(|c| c.kind == crate::store::ConnectionKind::Confluence) {
                            option value=(c.name) { (c.name) }
                        }
                    }
                }))
                (field("slack-proxy", "Proxy", Some(PROXY_HELP), html! {
                    input id="slack-proxy" name="proxy" type="text" placeholder="the global [network] proxy" autocomplete="off" aria-describedby="slack-proxy-help";
                }))
                label class="check" { input type="checkbox" name="dry_run" id="slack-dry-run"; "Dry run" }
                button type="submit" { "Connect Slack" }
            }))
            h2 id="connect-teams" { "Connect Teams" }
            p { "In Teams, add the workflow “Post to a channel when a webhook request is received” and paste its URL. Teams answers 202 when it accepts a message." }
            (said_block("connection-added", html! {
                input type="hidden" name="kind" value="teams";
                (field("teams-name", "Name", None, html! { input id="teams-name" name="name" type="text" required; }))
                (field("teams-url", "Workflow URL", None, html! { input id="teams-url" name="url" type="url" required autocomplete="off"; }))
                (field("teams-proxy", "Proxy", Some(PROXY_HELP), html! {
                    input id="teams-proxy" name="proxy" type="text" placeholder="the global [network] proxy" autocomplete="off" aria-describedby="teams-proxy-help";
                }))
                label class="check" { input type="checkbox" name="dry_run" id="teams-dry-run"; "Dry run" }
                button type="submit" { "Connect Teams" }
            }))
            h2 id="connect-teams-bot" { "Connect a Teams bot" }
            p { "For personal notifications, search and card buttons in Teams: an Azure Bot of type Single Tenant (its Microsoft App ID and App Tenant ID, and a client secret of its Entra app registration), with its messaging endpoint set to /hooks/teams/NAME on this server's public address and the Microsoft Teams channel added. Once connected, its page shows the Teams app manifest to upload to your org's app catalog." }
            (said_block("connection-added", html! {
                input type="hidden" name="kind" value="teams-bot";
                (field("teams-bot-name", "Name", Some("Letters, digits, - and _; destinations name it: teams-dm:NAME, teams-reply:NAME."), html! {
                    input id="teams-bot-name" name="name" type="text" required pattern="[A-Za-z0-9_-]{1,64}" aria-describedby="teams-bot-name-help";
                }))
                (field("teams-bot-app-id", "Microsoft App ID", None, html! {
                    input id="teams-bot-app-id" name="app_id" type="text" required autocomplete="off";
                }))
                (field("teams-bot-tenant-id", "App Tenant ID", Some("The directory (tenant) id, or its domain (contoso.onmicrosoft.com)."), html! {
                    input id="teams-bot-tenant-id" name="tenant_id" type="text" required autocomplete="off" aria-describedby="teams-bot-tenant-id-help";
                }))
                (field("teams-bot-secret", "Client secret", None, html! {
                    input id="teams-bot-secret" name="token.value" type="password" required autocomplete="off";
                }))
                (field("teams-bot-confluence", "Confluence for chat", Some("Where the bot's searches and buttons look people and pages up."), html! {
                    select id="teams-bot-confluence" name="confluence" aria-describedby="teams-bot-confluence-help" {
                        option value="" { "the only one with a token" }
                        @for c in list.iter().filter(|c| c.kind == crate::store::ConnectionKind::Confluence) {
                            option value=(c.name) { (c.name) }
                        }
                    }
                }))
                (field("teams-bot-proxy", "Proxy", Some(PROXY_HELP), html! {
                    input id="teams-bot-proxy" name="proxy" type="text" placeholder="the global [network] proxy" autocomplete="off" aria-describedby="teams-bot-proxy-help";
                }))
                label class="check" { input type="checkbox" name="dry_run" id="teams-bot-dry-run"; "Dry run" }
                button type="submit" { "Connect the Teams bot" }
            }))
            h2 id="connect-confluence" { "Connect Confluence" }
            p { "The source of events: its base URL, a service account (personal access token, or username and password) that can read the spaces you bind, and the secret set in Confluence's webhook screen. Confluence then posts to /hooks/confluence/NAME." }
            (said_block("connection-added", html! {
                input type="hidden" name="kind" value="confluence";
                (field("confluence-name", "Name", None, html! { input id="confluence-name" name="name" type="text" required; }))
                (field("confluence-url", "Base URL", Some("With the context path, e.g. https://wiki.example.com/confluence"), html! {
                    input id="confluence-url" name="url" type="url" required aria-describedby="confluence-url-help";
                }))
                (field("confluence-username", "Username", Some("Leave empty for a personal access token."), html! {
                    input id="confluence-username" name="username" type="text" aria-describedby="confluence-username-help";
                }))
                (field("confluence-token", "Password or personal access token", None, html! {
                    input id="confluence-token" name="token.value" type="password" autocomplete="off";
                }))
                (field("confluence-secret", "Webhook secret", None, html! {
                    input id="confluence-secret" name="webhook_secret.value" type="password" required autocomplete="off";
                }))
                (field("confluence-proxy", "Proxy", Some(PROXY_HELP), html! {
                    input id="confluence-proxy" name="proxy" type="text" placeholder="the global [network] proxy" autocomplete="off" aria-describedby="confluence-proxy-help";
                }))
                button type="submit" { "Connect Confluence" }
            }))
        }
    };
    Ok(page(&viewer, Section::Connections, "Connections", body))
}

fn table(list: &[ConnectionRecord], admin: bool) -> Markup {
    let now = now_ms();
    html! {
        @if list.is_empty() {
            p { "No connections yet." }
        } @else {
            table {
                caption class="muted" { "Connections" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "URL" }
                    th scope="col" { "Health" } th scope="col" { "Mode" } th scope="col" { "Proxy" } th scope="col" { "Since" }
                    @if admin { th scope="col" { "Actions" } }
                } }
                tbody {
                    @for c in list {
                        tr id={ "connection-" (c.name) } {
                            th scope="row" { a href={ "/console/connections/" (c.name) } { (c.name) } }
                            td { (c.kind.as_str()) @if c.app_token.is_some() { " " span class="muted" { "(Socket Mode)" } } }
                            td { code { (redacted_url(&c.url)) } }
                            td {
                                span data-health { (health(c, now)) }
                                div data-test-result hidden aria-live="polite" {}
                            }
                            td { (mode(c.dry_run)) }
                            td { @match &c.proxy {
                                Some(p) => code { (p.as_str()) },
                                None => span class="muted" { "global" },
                            } }
                            td { (when(c.created_at)) }
                            @if admin {
                                td class="row-actions" {
                                    (row_actions(c))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A connection's buttons: Test (its result stays on the row), for Teams
/// "Send test card" (asked first: people see it), Edit, the dry-run switch
/// saying what it does, Remove.
fn row_actions(c: &ConnectionRecord) -> Markup {
    let name = &c.name;
    html! {
        (said_form("POST", &format!("/api/connections/{name}/test"), "call:row-test", None, html! {
            button type="submit" class="secondary" aria-label={ "Test " (name) } { "Test" }
        }))
        @if c.kind == ConnectionKind::Teams {
            form class="inline" data-method="POST" data-path={ "/api/connections/" (name) "/test-card" }
                data-then="call:row-test"
                data-confirm={ "Post a test card to the Teams channel of " (name) "? People in the channel will see “Pagehook is connected”." } {
                button type="submit" class="secondary" aria-label={ "Send a test card to " (name) } { "Send test card" }
            }
        }
        a class="button secondary" href={ "/console/connections/" (name) } aria-label={ "Edit " (name) } { "Edit" }
        (said_form("PATCH", &format!("/api/connections/{name}"), "reload", Some("connection-changed"), html! {
            @if c.dry_run {
                input type="hidden" name="dry_run" value="false" data-type="bool";
                button type="submit" class="secondary" title="Deliveries through it are sent from now on"
                    aria-label={ "Start sending through " (name) } { "Start sending" }
            } @else {
                input type="hidden" name="dry_run" value="true" data-type="bool";
                button type="submit" class="secondary" title="Deliveries through it are recorded, not sent"
                    aria-label={ "Switch " (name) " to dry run" } { "Switch to dry run" }
            }
        }))
        form class="inline" data-method="DELETE" data-path={ "/api/connections/" (name) } data-then="reload"
            data-confirm={ "Remove connection " (name) "? Bindings that deliver through it will fail until it is back." } {
            button type="submit" class="danger" aria-label={ "Remove " (name) } { "Remove" }
        }
    }
}

/// A form sent to the API whose answer `forms.js` describes (`describe`).
fn said_form(
    method: &str,
    path: &str,
    then: &str,
    describe: Option<&str>,
    fields: Markup,
) -> Markup {
    html! {
        form class="inline" data-method=(method) data-path=(path) data-then=(then) data-describe=[describe] {
            (fields)
        }
    }
}

/// The mode in words that say what it does.
fn mode(dry_run: bool) -> Markup {
    html! {
        @if dry_run {
            span class="state state-warn" { "dry run" } " " span class="muted" { "records, sends nothing" }
        } @else {
            "live" " " span class="muted" { "sends" }
        }
    }
}

/// A health mark: what happened, and the fix on its own line.
fn mark(kind: ConnectionKind, problem: &str) -> Markup {
    let (what, fix) = super::overview::mark_parts(kind, problem);
    html! {
        span { (what) }
        p class="fix" { strong { "Fix: " } (fix) }
    }
}

/// Health in words: refused tokens and expiring PATs first.
fn health(c: &ConnectionRecord, now: i64) -> Markup {
    let token = token_status(c, now);
    html! {
        @if let Some(problem) = &c.health {
            span class="state state-bad" { "failing" } " " (mark(c.kind, problem))
        } @else if let Some(t) = token.as_ref().filter(|t| t.state == "expired") {
            span class="state state-bad" { "token expired" } " " (t.message.clone().unwrap_or_default())
        } @else if let Some(t) = token.as_ref().filter(|t| t.state == "expiring") {
            span class="state state-warn" { "token expiring" } " " (t.message.clone().unwrap_or_default())
        } @else {
            span class="state state-ok" { "ok" }
        }
    }
}

/// The Slack app manifest with this server's address (`[server]
/// public-url`, else as the browser reached it: see
/// [`crate::server::public_url`]) and the first Confluence connection's
/// host, so it can be pasted as it is.
fn app_manifest(
    configured: Option<&str>,
    headers: &axum::http::HeaderMap,
    list: &[ConnectionRecord],
) -> String {
    let base = crate::server::public_url::public_base(configured, headers);
    slack_app_manifest(&base, "NAME", &confluence_host(list))
}

/// The first Confluence connection's host, whose links are previewed.
fn confluence_host(list: &[ConnectionRecord]) -> String {
    list.iter()
        .filter(|c| c.kind == crate::store::ConnectionKind::Confluence)
        .find_map(|c| {
            reqwest::Url::parse(&c.url)
                .ok()?
                .host_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "confluence.example.com".to_owned())
}

/// `/console/connections/{name}`: one connection, its health with the fix,
/// and the form that edits it in place (URL, secrets, dry run, proxy):
/// `PATCH /api/connections/{name}`, checked whole before anything changes,
/// logged as `connection.edit` without values. Secrets are never shown:
/// an empty field keeps what is there.
async fn edit_page(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    viewer: Viewer,
) -> PageResult {
    viewer.require_admin("connection details")?;
    let c =
        state.store.connection(&name).await?.ok_or_else(|| {
            PageError::NotFound(format!("There is no connection named `{name}`."))
        })?;
    let now = now_ms();
    let all = state.store.connections().await?;
    let dead = state
        .store
        .search_deliveries(&crate::store::DeliveryQuery {
            status: Some(crate::store::DeliveryStatus::Dead),
            limit: super::overview::DEAD_SCAN,
            ..crate::store::DeliveryQuery::default()
        })
        .await?
        .iter()
        .filter(|d| super::overview::connection_of(d, &all) == Some(c.name.as_str()))
        .count();
    let (url_label, url_help) = match c.kind {
        ConnectionKind::Teams => (
            "Workflow URL",
            "The URL Teams shows for the workflow “Post to a channel when a webhook request is received”, with its signature. Empty keeps the current one.",
        ),
        ConnectionKind::Confluence => (
            "Base URL",
            "With the context path, e.g. https://wiki.example.com/confluence. Empty keeps the current one.",
        ),
        ConnectionKind::Slack => (
            "Slack API URL",
            "Empty keeps the current one (https://slack.com/api/ unless it was set).",
        ),
        ConnectionKind::TeamsBot => (
            "Microsoft Entra sign-in URL",
            "Where the bot's token comes from; empty keeps the current one (https://login.microsoftonline.com/ unless it was set).",
        ),
    };
    let title = format!("Connection {}", c.name);
    let body = html! {
        p { a href="/console/connections" { "All connections" } }
        dl class="facts" {
            dt { "Kind" } dd { (c.kind.as_str()) @if c.app_token.is_some() { " (Socket Mode)" } }
            dt { "URL" } dd { code { (redacted_url(&c.url)) } }
            dt { "Health" } dd { (health(&c, now)) }
            dt { "Mode" } dd { (mode(c.dry_run)) }
            dt { "Dead letters" } dd {
                (dead)
                @if dead > 0 { " — " a href="/console/overview#attention" { "retry them from the Overview" } " once it is repaired" }
            }
            dt { "Since" } dd { (when(c.created_at)) }
        }
        @if c.kind == ConnectionKind::TeamsBot {
            @let base = crate::server::public_url::public_base(state.config.server.public_url.as_deref(), &headers);
            p { "Teams sends the bot's activities to " code { (base.trim_end_matches('/')) "/hooks/teams/" (c.name) } " (the Azure Bot's messaging endpoint). Zip this manifest.json with two icons (color.png 192×192, outline.png 32×32) and upload it in the Teams admin center (Manage apps, Upload new app)." }
            (field("teams-manifest", "Teams app manifest", None, html! {
                textarea id="teams-manifest" readonly rows="18" cols="80" {
                    (serde_json::to_string_pretty(&crate::teams::app_manifest::teams_app_manifest(
                        c.app_id.as_deref().unwrap_or_default(), &base, "1.0.0")).unwrap_or_default())
                }
            }))
        }
        h2 { "Edit" }
        form class="edit-connection" data-method="PATCH" data-path={ "/api/connections/" (c.name) }
            data-then="reload" data-describe="connection-edited" {
            (field("edit-url", url_label, Some(url_help), html! {
                input id="edit-url" name="url" type="url" autocomplete="off"
                    placeholder=(redacted_url(&c.url)) aria-describedby="edit-url-help";
            }))
            @match c.kind {
                ConnectionKind::Slack => {
                    (field("edit-token", "Bot token", Some("xoxb-…; empty keeps the current one."), html! {
                        input id="edit-token" name="token.value" type="password" autocomplete="off" aria-describedby="edit-token-help";
                    }))
                    (field("edit-signing-secret", "Signing secret", Some("Empty keeps the current one."), html! {
                        input id="edit-signing-secret" name="signing_secret.value" type="password" autocomplete="off" aria-describedby="edit-signing-secret-help";
                    }))
                    (field("edit-app-token", "App-level token (Socket Mode)", Some("xapp-…; empty keeps the current one."), html! {
                        input id="edit-app-token" name="app_token.value" type="password" autocomplete="off" aria-describedby="edit-app-token-help";
                    }))
                }
                ConnectionKind::Confluence => {
                    (field("edit-username", "Username", Some("Empty for a personal access token."), html! {
                        input id="edit-username" name="username" type="text" value=[c.username.as_deref()] aria-describedby="edit-username-help";
                    }))
                    (field("edit-token", "Password or personal access token", Some("Empty keeps the current one."), html! {
                        input id="edit-token" name="token.value" type="password" autocomplete="off" aria-describedby="edit-token-help";
                    }))
                    (field("edit-webhook-secret", "Webhook secret", Some("Empty keeps the current one."), html! {
                        input id="edit-webhook-secret" name="webhook_secret.value" type="password" autocomplete="off" aria-describedby="edit-webhook-secret-help";
                    }))
                }
                ConnectionKind::TeamsBot => {
                    (field("edit-token", "Client secret", Some("The Entra app's client secret; empty keeps the current one."), html! {
                        input id="edit-token" name="token.value" type="password" autocomplete="off" aria-describedby="edit-token-help";
                    }))
                }
                ConnectionKind::Teams => {}
            }
            (field("edit-proxy", "Proxy", Some(PROXY_HELP), html! {
                input id="edit-proxy" name="proxy" type="text" value=[c.proxy.as_ref().map(|p| p.as_str())]
                    placeholder="the global [network] proxy" autocomplete="off" aria-describedby="edit-proxy-help";
            }))
            label class="check" {
                input type="checkbox" name="dry_run" id="edit-dry-run" checked[c.dry_run];
                "Dry run (record what it would send, send nothing)"
            }
            button type="submit" { "Save changes" }
        }
    };
    Ok(page(&viewer, Section::Connections, &title, body))
}
