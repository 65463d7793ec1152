//! Connections to Confluence, Slack and Teams: adding, testing, choosing
//! a proxy or the Confluence a Slack workspace uses, removing. A test
//! reports what the service said and never shows a secret.

use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::model::Action;
use crate::secret::SecretSource;
use crate::store::{ConnectionKind, ConnectionRecord, Store, redacted_url};

use super::changes::{ChangeAction, log_change};
use super::{AdminError, AdminResult};
use super::{list_or_none, notice, slack_escape};

/// What an admin gives to create a connection.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// Its name.
    pub name: String,
    /// What it talks to.
    pub kind: ConnectionKind,
    /// Base URL (Slack, Confluence) or workflow URL (Teams).
    pub url: Option<String>,
    /// Confluence Basic-auth user; without it the token is a PAT.
    pub username: Option<String>,
    /// Token (Slack bot token, Confluence PAT or password).
    pub secret: Option<SecretSource>,
    /// Confluence webhook signing secret, or a Slack app's signing secret
    /// (verifies what Slack sends to `/hooks/slack/{name}`).
    pub hook_secret: Option<SecretSource>,
    /// Record deliveries, never send.
    pub dry_run: bool,
    /// Slack: the admin's email, sent a DM once the connection works.
    pub notify: Option<String>,
    /// Slack: the Confluence connection its chat lookups and self-links use
    /// (`None`: the one named before, if the connection existed, else the
    /// only Confluence connection with a token).
    pub confluence: Option<String>,
    /// Slack: the app-level token (`xapp-`, scope `connections:write`);
    /// with it, `serve` takes events and commands over Socket Mode.
    pub app_token: Option<SecretSource>,
    /// Its own egress proxy as given: `direct` or `http(s)://host:port`
    /// (`None`: the global `[network] proxy`); checked by [`connect`].
    pub proxy: Option<String>,
    /// Teams bot: the Microsoft Entra app (client) id.
    pub app_id: Option<String>,
    /// Teams bot: the tenant the single-tenant app is registered in.
    pub tenant_id: Option<String>,
}

/// A connection's proxy override as an admin gives it, checked: `direct`
/// or an `http(s)://host:port` without credentials.
pub fn proxy_override(raw: &str) -> AdminResult<crate::http::proxy::ProxyOverride> {
    crate::http::proxy::ProxyOverride::parse(raw)
        .map_err(|m| AdminError::Invalid(format!("--proxy: {m}")))
}

/// Gives connection `name` its own proxy (`Some("direct")` or a URL) or,
/// with `None` or `""`, puts it back on the global one; nothing changes
/// when the value is refused.
pub async fn set_connection_proxy(
    store: &Store,
    actor: &str,
    name: &str,
    raw: Option<&str>,
) -> AdminResult<ConnectionRecord> {
    let proxy = match raw.map(str::trim).filter(|r| !r.is_empty()) {
        Some(raw) => Some(proxy_override(raw)?),
        None => None,
    };
    store
        .set_connection_proxy(name, proxy.as_ref().map(|p| p.as_str()))
        .await?;
    let c = connection(store, name).await?;
    let detail = json!({ "proxy": c.proxy });
    log_change(store, actor, ChangeAction::ConnectionProxy, name, detail).await;
    Ok(c)
}

/// What `connect` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Connected {
    /// The stored connection (secrets redacted when shown).
    #[serde(flatten)]
    pub connection: ConnectionRecord,
    /// Bindings whose Slack destinations now name the workspace that was
    /// the only one until this connection (they keep meaning it).
    pub qualified_bindings: usize,
    /// The delivery that greets `notify`, if asked.
    pub notice_delivery: Option<i64>,
}

/// Creates or replaces a connection after checking it is complete.
pub async fn connect(
    store: &Store,
    actor: &str,
    mut req: ConnectRequest,
) -> AdminResult<Connected> {
    if req.name.is_empty()
        || req.name.len() > 64
        || !req
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(AdminError::Invalid(format!(
            "`{}`: a connection name is 1-64 letters, digits, - or _",
            req.name
        )));
    }
    if req.kind == ConnectionKind::TeamsBot {
        check_teams_bot(&req)?;
    }
    let url = match (req.kind, req.url) {
        (ConnectionKind::Slack, None) => "https://slack.com/api/".to_owned(),
        (ConnectionKind::TeamsBot, None) => crate::teams::token::DEFAULT_LOGIN_BASE.to_owned(),
        (_, Some(url)) => url,
        (kind, None) => {
            return Err(AdminError::Invalid(format!(
                "a {} connection needs --url ({})",
                kind.as_str(),
                match kind {
                    ConnectionKind::Teams => "the workflow's webhook URL",
                    _ => "Confluence's base URL, e.g. https://wiki.example.com",
                }
            )));
        }
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(AdminError::Invalid(format!(
            "`{}`: the URL must start with https:// (or http:// for a local test server)",
            crate::store::redacted_url(&url)
        )));
    }
    let hook_secret_name = match req.kind {
        ConnectionKind::Slack => "signing secret",
        _ => "webhook secret",
    };
    let secret_name = match req.kind {
        ConnectionKind::TeamsBot => "client secret",
        _ => "token",
    };
    for (what, source) in [
        (secret_name, &req.secret),
        (hook_secret_name, &req.hook_secret),
    ] {
        if let Some(source) = source {
            source
                .resolve()
                .map_err(|m| AdminError::Invalid(format!("{what}: {m}")))?;
        }
    }
    // `global` goes back to the global setting; without a value the
    // connection keeps its own (a new token must not change its way out).
    let proxy: Option<Option<crate::http::proxy::ProxyOverride>> =
        match req.proxy.as_deref().map(str::trim) {
            None => None,
            Some(raw) if raw.eq_ignore_ascii_case("global") => Some(None),
            Some(raw) => Some(Some(proxy_override(raw)?)),
        };
    if let Some(app_token) = &req.app_token {
        if req.kind != ConnectionKind::Slack {
            return Err(AdminError::Invalid(
                "an app-level token is for Slack connections (Socket Mode) only".into(),
            ));
        }
        let token = app_token
            .resolve()
            .map_err(|m| AdminError::Invalid(format!("app-level token: {m}")))?;
        if !token.expose().trim().starts_with("xapp-") {
            return Err(AdminError::Invalid(
                "the app-level token starts with xapp- (Slack app settings, Basic Information, App-Level Tokens, with the scope connections:write); the bot token (xoxb-) goes to --token".into(),
            ));
        }
    }
    match req.kind {
        ConnectionKind::Slack if req.secret.is_none() => {
            return Err(AdminError::Invalid(
                "a Slack connection needs the bot token (xoxb-...): --token-env, --token-file or --token".into(),
            ));
        }
        ConnectionKind::Teams if req.hook_secret.is_some() => {
            return Err(AdminError::Invalid(
                "a Teams connection takes no webhook or signing secret (its URL carries its signature)".into(),
            ));
        }
        ConnectionKind::TeamsBot => {}
        _ if req.app_id.is_some() || req.tenant_id.is_some() => {
            return Err(AdminError::Invalid(
                "an app id and tenant id are for Teams bot connections (`connect teams-bot`) only"
                    .into(),
            ));
        }
        ConnectionKind::Confluence if req.hook_secret.is_none() => {
            return Err(AdminError::Invalid(
                "a Confluence connection needs the webhook secret set in Confluence's webhook screen: --webhook-secret-env, --webhook-secret-file or --webhook-secret".into(),
            ));
        }
        _ => {}
    }
    if let Some(email) = &req.notify
        && (req.kind != ConnectionKind::Slack || !email.contains('@') || email.contains('/'))
    {
        return Err(AdminError::Invalid(format!(
            "--notify `{email}`: give the email of a Slack user to greet (Slack connections only)"
        )));
    }
    // An empty name is no name (a form's empty field).
    req.confluence = req
        .confluence
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if let Some(confluence) = &req.confluence {
        if !matches!(req.kind, ConnectionKind::Slack | ConnectionKind::TeamsBot) {
            return Err(AdminError::Invalid(format!(
                "--confluence `{confluence}`: only a Slack or Teams bot connection names the Confluence connection its chat uses"
            )));
        }
        check_chat_confluence(store, confluence).await?;
    }
    let other_workspaces: Vec<String> = store
        .connections()
        .await?
        .into_iter()
        .filter(|c| c.kind == ConnectionKind::Slack && c.name != req.name)
        .map(|c| c.name)
        .collect();
    let mut record = ConnectionRecord::new(&req.name, req.kind, url.trim_end_matches(' '));
    record.username = req.username;
    record.secret = req.secret;
    record.hook_secret = req.hook_secret;
    record.dry_run = req.dry_run;
    // Connecting again (a new token) keeps the Confluence its chat uses
    // unless another is named: forgetting it would break chat.
    record.confluence = match req.confluence {
        Some(named) => Some(named),
        None if matches!(req.kind, ConnectionKind::Slack | ConnectionKind::TeamsBot) => store
            .connection(&req.name)
            .await?
            .filter(|c| c.kind == req.kind)
            .and_then(|c| c.confluence),
        None => None,
    };
    record.app_token = req.app_token;
    record.app_id = req.app_id.map(|a| a.trim().to_owned());
    record.tenant_id = req.tenant_id.map(|t| t.trim().to_owned());
    record.proxy = match proxy {
        Some(given) => given,
        None => store
            .connection(&req.name)
            .await?
            .filter(|c| c.kind == req.kind)
            .and_then(|c| c.proxy),
    };
    store.add_connection(&record).await?;
    // A second workspace: bindings written for the first keep meaning it.
    let qualified_bindings = match other_workspaces.as_slice() {
        [only] if req.kind == ConnectionKind::Slack => {
            store.qualify_slack_destinations(only).await?
        }
        _ => 0,
    };
    let notice_delivery = match &req.notify {
        Some(email) => Some(store.enqueue_notice(
            "connected",
            &notice(
                &record.name,
                Action::DmSlack {
                    email: email.clone(),
                    text: format!(
                        "Pagehook is connected to this Slack workspace (connection `{}`). Confluence events bound to its channels will appear there.",
                        slack_escape(&record.name)
                    ),
                    blocks: None,
                },
                0,
                &format!("slack-dm:{}/{email}", record.name),
            ),
        ).await?),
        None => None,
    };
    let detail = json!({
        "kind": record.kind.as_str(),
        "url": redacted_url(&record.url),
        "dry_run": record.dry_run,
        "confluence": record.confluence,
        "socket_mode": record.app_token.is_some(),
        "proxy": record.proxy,
        "qualified_bindings": qualified_bindings,
    });
    log_change(
        store,
        actor,
        ChangeAction::ConnectionAdd,
        &record.name,
        detail,
    )
    .await;
    Ok(Connected {
        connection: record,
        qualified_bindings,
        notice_delivery,
    })
}

/// What a Teams bot connection needs: the app id (a GUID, the bot's id),
/// the tenant (a GUID or a domain: the app is single-tenant, as new bots
/// are since Microsoft stopped creating multi-tenant ones), a client
/// secret, and nothing Slack or Confluence take.
fn check_teams_bot(req: &ConnectRequest) -> AdminResult<()> {
    let name = &req.name;
    let app_id = req.app_id.as_deref().map(str::trim).unwrap_or_default();
    if !is_guid(app_id) {
        return Err(AdminError::Invalid(format!(
            "a Teams bot connection needs --app-id, the Microsoft App ID of the Azure Bot (a GUID such as 00000000-0000-0000-0000-000000000000){}",
            if app_id.is_empty() {
                String::new()
            } else {
                format!("; `{app_id}` is not one")
            }
        )));
    }
    let tenant = req.tenant_id.as_deref().map(str::trim).unwrap_or_default();
    let domain = tenant.contains('.')
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !(is_guid(tenant) || domain) {
        return Err(AdminError::Invalid(format!(
            "a Teams bot connection needs --tenant-id, the directory (tenant) id of the single-tenant Entra app (a GUID, or a domain such as contoso.onmicrosoft.com){}",
            if tenant.is_empty() {
                String::new()
            } else {
                format!("; `{tenant}` is neither")
            }
        )));
    }
    if req.secret.is_none() {
        return Err(AdminError::Invalid(format!(
            "a Teams bot connection needs the Entra app's client secret: `connect teams-bot {name} ... --client-secret-env VAR` (or --client-secret-file)"
        )));
    }
    if req.hook_secret.is_some() || req.username.is_some() || req.notify.is_some() {
        return Err(AdminError::Invalid(
            "a Teams bot connection takes an app id, a tenant id and a client secret; Teams signs what it sends with its own keys, so there is no webhook secret".into(),
        ));
    }
    Ok(())
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Removes connection `name`.
pub async fn disconnect(store: &Store, actor: &str, name: &str) -> AdminResult<()> {
    if !store.remove_connection(name).await? {
        return Err(AdminError::NotFound(format!(
            "no connection named `{name}`"
        )));
    }
    log_change(
        store,
        actor,
        ChangeAction::ConnectionRemove,
        name,
        json!({}),
    )
    .await;
    Ok(())
}

/// Turns connection `name`'s dry run on or off.
pub async fn set_dry_run(
    store: &Store,
    actor: &str,
    name: &str,
    dry_run: bool,
) -> AdminResult<ConnectionRecord> {
    store.set_connection_dry_run(name, dry_run).await?;
    let detail = json!({ "dry_run": dry_run });
    log_change(store, actor, ChangeAction::ConnectionDryRun, name, detail).await;
    connection(store, name).await
}

/// Connection `name`, or why not.
async fn connection(store: &Store, name: &str) -> AdminResult<ConnectionRecord> {
    store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no connection named `{name}`")))
}

/// Refuses a name that is not a Confluence connection, naming the ones
/// there are: a wrong field of the request (400), not a missing resource of
/// its path.
async fn check_chat_confluence(store: &Store, name: &str) -> AdminResult<()> {
    let all = store.connections().await?;
    if all
        .iter()
        .any(|c| c.name == name && c.kind == ConnectionKind::Confluence)
    {
        return Ok(());
    }
    let known: Vec<String> = all
        .into_iter()
        .filter(|c| c.kind == ConnectionKind::Confluence)
        .map(|c| c.name)
        .collect();
    Err(AdminError::Invalid(format!(
        "no Confluence connection named `{name}` (Confluence connections: {})",
        list_or_none(&known)
    )))
}

/// Names the Confluence connection Slack connection `slack`'s chat lookups
/// and self-links use; `None` (or an empty name) goes back to the only
/// Confluence connection with a token. Links made with another Confluence
/// connection stay stored but no longer count for this workspace's chat.
pub async fn set_chat_confluence(
    store: &Store,
    actor: &str,
    slack: &str,
    confluence: Option<&str>,
) -> AdminResult<ConnectionRecord> {
    let confluence = confluence.map(str::trim).filter(|c| !c.is_empty());
    match store.connection(slack).await? {
        Some(c) if c.kind == ConnectionKind::Slack => {}
        _ => {
            return Err(AdminError::NotFound(format!(
                "no Slack connection named `{slack}`"
            )));
        }
    }
    if let Some(name) = confluence {
        check_chat_confluence(store, name).await?;
    }
    store.set_slack_confluence(slack, confluence).await?;
    let c = connection(store, slack).await?;
    let detail = json!({ "confluence": c.confluence });
    log_change(
        store,
        actor,
        ChangeAction::ConnectionConfluence,
        slack,
        detail,
    )
    .await;
    Ok(c)
}

/// The answer to `connection test`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionTest {
    /// Whether the service accepted the credentials (and, for Teams, the
    /// test card).
    pub ok: bool,
    /// `works`, `failed`, or `untested` (a Teams workflow without a test
    /// card: it has no other way to be tested). A test that works clears
    /// the connection's health mark; one that fails sets it.
    pub state: TestState,
    /// What was checked and what it said.
    pub message: String,
}

/// What a connection test found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TestState {
    /// The service accepted it.
    Works,
    /// The service refused it, or could not be reached.
    Failed,
    /// Nothing could be tested without sending something visible.
    Untested,
}

/// A Teams bot's credentials, tested the only way that sends nothing
/// anyone sees: Microsoft Entra ID is asked for the bot's token.
async fn teams_bot_test(conn: &ConnectionRecord, timeout: std::time::Duration) -> ConnectionTest {
    let failed = |message: String| ConnectionTest {
        ok: false,
        state: TestState::Failed,
        message,
    };
    let http = match crate::http::client_builder_for(conn.proxy.as_ref())
        .timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot make an HTTP client: {e}")),
    };
    let tokens = match crate::teams::bots::TeamsBots::default().tokens(conn, http) {
        Ok(t) => t,
        Err(why) => return failed(why.to_string()),
    };
    match tokens.token().await {
        Ok(_) => ConnectionTest {
            ok: true,
            state: TestState::Works,
            message: format!(
                "Microsoft Entra ID issues the bot's token (app {}, tenant {}); Teams reaches the bot at /hooks/teams/{} once its messaging endpoint is set",
                conn.app_id.as_deref().unwrap_or("?"),
                conn.tenant_id.as_deref().unwrap_or("?"),
                conn.name
            ),
        },
        Err(e) => failed(e.to_string()),
    }
}

/// `auth.test` against a workspace, in words an admin can act on.
async fn slack_connection_test(
    base_url: &str,
    token: &crate::secret::Secret,
    timeout: std::time::Duration,
    proxy: Option<&crate::http::proxy::ProxyOverride>,
) -> ConnectionTest {
    use crate::slack::{SlackClient, SlackError, auth};
    let http = match crate::http::client_builder_for(proxy)
        .timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return ConnectionTest {
                ok: false,
                state: TestState::Failed,
                message: format!("cannot make an HTTP client: {e}"),
            };
        }
    };
    match auth::auth_test(&SlackClient::new(&http, base_url, token)).await {
        Ok(ws) => ConnectionTest {
            ok: true,
            state: TestState::Works,
            message: format!(
                "Slack accepts the token: bot user {} in workspace {} ({})",
                ws.user, ws.team, ws.url
            ),
        },
        Err(SlackError::Api { code, .. }) => ConnectionTest {
            ok: false,
            state: TestState::Failed,
            message: format!(
                "Slack refused the token: {code}{}",
                auth::refusal_hint(&code)
            ),
        },
        Err(e) => ConnectionTest {
            ok: false,
            state: TestState::Failed,
            message: match crate::http::tls::check_via(base_url, proxy).await {
                Err(certificate) => format!("Slack at {base_url}: {certificate}"),
                Ok(()) => {
                    format!("Slack at {base_url} could not be reached or answered oddly: {e}")
                }
            },
        },
    }
}

/// `apps.connections.open` with the app-level token: whether Socket Mode
/// can connect (the URL Slack gives is not used, nor shown).
async fn socket_mode_test(
    base_url: &str,
    app_token: &crate::secret::Secret,
    timeout: std::time::Duration,
    proxy: Option<&crate::http::proxy::ProxyOverride>,
) -> ConnectionTest {
    use crate::slack::{SlackClient, SlackError, socket_mode};
    let http = match crate::http::client_builder_for(proxy)
        .timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return ConnectionTest {
                ok: false,
                state: TestState::Failed,
                message: format!("cannot make an HTTP client: {e}"),
            };
        }
    };
    match socket_mode::open_connection(&SlackClient::new(&http, base_url, app_token)).await {
        Ok(_) => ConnectionTest {
            ok: true,
            state: TestState::Works,
            message: "Socket Mode: Slack accepts the app-level token (apps.connections.open)"
                .into(),
        },
        Err(SlackError::Api { code, .. }) => ConnectionTest {
            ok: false,
            state: TestState::Failed,
            message: format!(
                "Socket Mode: Slack refused the app-level token: {code}{}",
                socket_mode::refusal_hint(&code)
            ),
        },
        Err(e) => ConnectionTest {
            ok: false,
            state: TestState::Failed,
            message: format!("Socket Mode: {e}"),
        },
    }
}

/// Checks a connection's credentials against the service, and logs that
/// it was tested and whether the service accepted them.
pub async fn test_connection(
    store: &Store,
    actor: &str,
    name: &str,
    config: &Config,
) -> AdminResult<ConnectionTest> {
    let tested = probe(store, name, config).await?;
    record_test(store, actor, name, &tested, false).await;
    Ok(tested)
}

/// Posts a test card to Teams connection `name`'s workflow (a real card
/// people in the channel see: the console asks first), and tells whether
/// Teams took it; logged and recorded as the connection's health like a
/// test. Dry run or not, the card is sent: that is what was asked.
pub async fn send_test_card(
    store: &Store,
    actor: &str,
    name: &str,
    config: &Config,
) -> AdminResult<ConnectionTest> {
    let conn = store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no connection named `{name}`")))?;
    if conn.kind != ConnectionKind::Teams {
        return Err(AdminError::Invalid(format!(
            "`{name}` is a {} connection; test cards are for Teams connections (`pagehook connection test {name}` tests it)",
            conn.kind.as_str()
        )));
    }
    let tested =
        match crate::deliver::teams::test_card(&conn, actor, config.enrichment_timeout()).await {
            Ok(said) => ConnectionTest {
                ok: true,
                state: TestState::Works,
                message: said,
            },
            Err(why) => ConnectionTest {
                ok: false,
                state: TestState::Failed,
                message: why,
            },
        };
    record_test(store, actor, name, &tested, true).await;
    Ok(tested)
}

/// A test's result as the connection's health (a failure marks it, a
/// success clears the mark; untested changes nothing) and a change-log line.
async fn record_test(store: &Store, actor: &str, name: &str, tested: &ConnectionTest, card: bool) {
    let health = match tested.state {
        TestState::Works => Some(None),
        TestState::Failed => Some(Some(tested.message.as_str())),
        TestState::Untested => None,
    };
    if let Some(health) = health
        && let Err(e) = store.set_connection_health(name, health).await
    {
        tracing::error!(connection = name, error = %e, "cannot record the connection's health");
    }
    let detail = json!({ "ok": tested.ok, "state": tested.state, "test_card": card });
    log_change(store, actor, ChangeAction::ConnectionTest, name, detail).await;
}

/// What the service says of connection `name`'s credentials.
async fn probe(store: &Store, name: &str, config: &Config) -> AdminResult<ConnectionTest> {
    let conn = store
        .connection(name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no connection named `{name}`")))?;
    let secret = match &conn.secret {
        Some(s) => Some(
            s.resolve()
                .map_err(|m| AdminError::Invalid(format!("token: {m}")))?,
        ),
        None => None,
    };
    Ok(match conn.kind {
        ConnectionKind::TeamsBot => teams_bot_test(&conn, config.enrichment_timeout()).await,
        ConnectionKind::Teams => ConnectionTest {
            ok: false,
            state: TestState::Untested,
            message: "not tested: a Teams workflow has no test endpoint, so nothing was sent. Send a test card to test it (a small card saying Pagehook is connected, which people in the channel see).".into(),
        },
        ConnectionKind::Slack => {
            let token = secret.ok_or_else(|| AdminError::Invalid("the connection has no token".into()))?;
            let bot = slack_connection_test(
                &conn.url,
                &token,
                config.enrichment_timeout(),
                conn.proxy.as_ref(),
            )
            .await;
            match &conn.app_token {
                None => bot,
                Some(app_token) => {
                    let app_token = app_token
                        .resolve()
                        .map_err(|m| AdminError::Invalid(format!("app-level token: {m}")))?;
                    let socket =
                        socket_mode_test(
                            &conn.url,
                            &app_token,
                            config.enrichment_timeout(),
                            conn.proxy.as_ref(),
                        )
                        .await;
                    ConnectionTest {
                        ok: bot.ok && socket.ok,
                        state: if bot.ok && socket.ok {
                            TestState::Works
                        } else {
                            TestState::Failed
                        },
                        message: format!("{}; {}", bot.message, socket.message),
                    }
                }
            }
        }
        ConnectionKind::Confluence => {
            use crate::confluence::client::{ClientOptions, ConfluenceAuth, ConfluenceClient};
            let secret = secret.ok_or_else(|| AdminError::Invalid("the connection has no token".into()))?;
            let auth = match &conn.username {
                Some(u) => ConfluenceAuth::Basic {
                    username: u.clone(),
                    password: secret,
                },
                None => ConfluenceAuth::Bearer(secret),
            };
            let client = ConfluenceClient::new(
                &conn.url,
                auth,
                ClientOptions {
                    timeout: config.enrichment_timeout(),
                    proxy: conn.proxy.clone(),
                    ..ClientOptions::default()
                },
            );
            match client.current_user().await {
                Ok(user) => ConnectionTest {
                    ok: true,
                    state: TestState::Works,
                    message: format!(
                        "Confluence at {} accepts the credentials of {} ({}); events this account causes are marked by-pagehook",
                        conn.url,
                        user.display_name.as_deref().or(user.username.as_deref()).unwrap_or(&user.key),
                        user.key
                    ),
                },
                Err(e) => ConnectionTest {
                    ok: false,
                    state: TestState::Failed,
                    message: match crate::http::tls::check_via(&conn.url, conn.proxy.as_ref()).await {
                        Err(certificate) => format!("Confluence at {}: {certificate}", conn.url),
                        Ok(()) => format!("Confluence at {}: {e}", conn.url),
                    },
                },
            }
        }
    })
}
