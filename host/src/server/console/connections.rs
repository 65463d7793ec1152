//! Connections: Slack workspaces, Teams workflows and Confluence sources.
//! Connect one (the Slack app manifest to paste is on the page), test it,
//! switch dry run, remove it. Secrets are typed in once and never shown:
//! rows show names, URLs without their query, health and token expiry.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use maud::{Markup, html};

use super::{PageResult, Section, Viewer, api_form, field, page, when};
use crate::ops::tokens::token_status;
use crate::server::AppState;
use crate::slack::app_manifest::{slack_app_manifest, slack_app_manifest_socket_mode};
use crate::store::{ConnectionRecord, now_ms, redacted_url};

/// What the connect forms say of their Proxy field.
const PROXY_HELP: &str = "Optional: `direct` (this connection never goes through a proxy) or http://host:port (its own proxy, without credentials in it). Empty: the global [network] proxy.";

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/connections", get(connections))
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
            (api_form("POST", "/api/connections", "reload", "", html! {
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
            (api_form("POST", "/api/connections", "reload", "", html! {
                input type="hidden" name="kind" value="teams";
                (field("teams-name", "Name", None, html! { input id="teams-name" name="name" type="text" required; }))
                (field("teams-url", "Workflow URL", None, html! { input id="teams-url" name="url" type="url" required autocomplete="off"; }))
                (field("teams-proxy", "Proxy", Some(PROXY_HELP), html! {
                    input id="teams-proxy" name="proxy" type="text" placeholder="the global [network] proxy" autocomplete="off" aria-describedby="teams-proxy-help";
                }))
                label class="check" { input type="checkbox" name="dry_run" id="teams-dry-run"; "Dry run" }
                button type="submit" { "Connect Teams" }
            }))
            h2 id="connect-confluence" { "Connect Confluence" }
            p { "The source of events: its base URL, a service account (personal access token, or username and password) that can read the spaces you bind, and the secret set in Confluence's webhook screen. Confluence then posts to /hooks/confluence/NAME." }
            (api_form("POST", "/api/connections", "reload", "", html! {
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
                        tr {
                            th scope="row" { (c.name) }
                            td { (c.kind.as_str()) @if c.app_token.is_some() { " " span class="muted" { "(Socket Mode)" } } }
                            td { code { (redacted_url(&c.url)) } }
                            td { (health(c, now)) }
                            td { @if c.dry_run { span class="state state-warn" { "dry run" } } @else { "live" } }
                            td { @match &c.proxy {
                                Some(p) => code { (p.as_str()) },
                                None => span class="muted" { "global" },
                            } }
                            td { (when(c.created_at)) }
                            @if admin {
                                td class="row-actions" {
                                    (api_form("POST", &format!("/api/connections/{}/test", c.name), "show:test-result", "inline", html! {
                                        button type="submit" class="secondary" aria-label={ "Test " (c.name) } { "Test" }
                                    }))
                                    (api_form("PATCH", &format!("/api/connections/{}", c.name), "reload", "inline", html! {
                                        @if c.dry_run {
                                            input type="hidden" name="dry_run" value="false" data-type="bool";
                                            button type="submit" class="secondary" aria-label={ "Dry run off for " (c.name) } { "Dry run off" }
                                        } @else {
                                            input type="hidden" name="dry_run" value="true" data-type="bool";
                                            button type="submit" class="secondary" aria-label={ "Dry run on for " (c.name) } { "Dry run on" }
                                        }
                                    }))
                                    form class="inline" data-method="DELETE" data-path={ "/api/connections/" (c.name) } data-then="reload"
                                        data-confirm={ "Remove connection " (c.name) "? Bindings that deliver through it will fail until it is back." } {
                                        button type="submit" class="danger" aria-label={ "Remove " (c.name) } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            pre id="test-result" hidden aria-live="polite" {}
        }
    }
}

/// Health in words: refused tokens and expiring PATs first.
fn health(c: &ConnectionRecord, now: i64) -> Markup {
    let token = token_status(c, now);
    html! {
        @if let Some(problem) = &c.health {
            span class="state state-bad" { "failing" } " " span { (problem) }
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
