//! The admin's day-to-day commands, working directly on the database named
//! by the config: install and manage plugins, connect services, bind
//! plugins, and look at events and deliveries.
//!
//! Lists print a table for people and `--json` for scripts; secrets show
//! only where they come from (`env:SLACK_TOKEN`), never their value.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::parse_setting;
use super::progress::{self, Progress};
use crate::config::Config;
use crate::ops;
use crate::ops::bindings::BindRequest;
use crate::ops::changes::cli_actor;
use crate::ops::connections::ConnectRequest;
use crate::ops::plugins::Install;
use crate::runtime::Runtime;
use crate::secret::SecretSource;
use crate::store::{ConnectionKind, DeliveryStatus, EventStatus, Store, redacted_url};

/// `--json` for list commands.
#[derive(Debug, clap::Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

pub(super) async fn open(config: &Config) -> anyhow::Result<Store> {
    let database = config.store.location().map_err(|e| anyhow::anyhow!(e))?;
    Ok(Store::open(&database).await?)
}

pub(super) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<ExitCode> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> std::io::Result<()> {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        outln!("{}", out.trim_end())
    };
    line(header.iter().map(|s| s.to_string()).collect())?;
    for row in rows {
        line(row)?;
    }
    Ok(())
}

pub(super) fn time(ms: i64) -> String {
    crate::clock::utc_seconds(ms)
}

/// `plugin install`
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Plugin directory (plugin.toml and its component).
    dir: PathBuf,
    /// An action kind the plugin may use (post-slack, dm-slack, post-teams,
    /// create-page, add-comment); only kinds its manifest declares, and any of them.
    ///
    /// An upgrade without --grant keeps the grants it has (those the new version
    /// still declares): it grants nothing new by itself.
    #[arg(long = "grant", value_name = "ACTION")]
    grants: Vec<String>,
    /// Install a lower version than the installed one.
    #[arg(long)]
    allow_downgrade: bool,
    /// Grant an upgrade the limits its manifest requests (otherwise a larger
    /// request runs at the limits granted before).
    #[arg(long)]
    grant_limits: bool,
}

pub async fn install(config: &Config, args: InstallArgs) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let runtime = Runtime::new(config.runtime_config()?);
    // Compile (or load from the cache) first, with progress, so the install
    // below finds the component in the cache. Skipped when there is no cache
    // (it would compile twice) or when the grants are wrong (install refuses
    // them at once, without compiling).
    let package = crate::runtime::PluginPackage::open(&args.dir).ok();
    let grants_ok = package
        .as_ref()
        .is_some_and(|p| args.grants.iter().all(|g| p.manifest.actions.contains(g)));
    let progress = match &package {
        Some(package) if grants_ok && runtime.config().cache_dir.is_some() => {
            let progress = Progress::start(progress::loading(
                &package.manifest.name,
                package.wasm.len(),
            ));
            match runtime.load(package) {
                Ok(plugin) => {
                    let (cache, took) = plugin.load_info();
                    progress.finish(progress::loaded(plugin.name(), cache, took));
                }
                // install_plugin reports it the way it always does.
                Err(_) => drop(progress),
            }
            None
        }
        Some(package) if grants_ok => Some(Progress::start(format!(
            "installing plugin `{}`",
            package.manifest.name
        ))),
        _ => None,
    };
    let install = Install {
        dir: &args.dir,
        grants: (!args.grants.is_empty()).then_some(args.grants.as_slice()),
        actor: &cli_actor(),
        via: "cli",
        allow_downgrade: args.allow_downgrade,
        grant_limits: args.grant_limits,
    };
    let installed = ops::plugins::install_plugin(&store, &runtime, config, install).await?;
    let p = &installed.plugin;
    if let Some(progress) = progress {
        let took = progress::human(progress.elapsed());
        progress.finish(format!(
            "installed `{}` in {took} (no compile cache configured)",
            p.name
        ));
    }
    if let Some(upgrade) = &installed.upgrade {
        for line in upgrade.lines(&p.grants) {
            outln!("{line}")?;
        }
    }
    outln!(
        "installed {} {} (sha256 {}), {}",
        p.name,
        p.version,
        p.sha256,
        grants_said(p)
    )?;
    outln!("signature: {}", installed.signature)?;
    if installed.upgrade.is_some() && !installed.not_granted.is_empty() {
        outln!(
            "not granted by this upgrade: {} (`pagehook plugin grant {} --grant ACTION` / `--limits`)",
            installed.not_granted.join("; "),
            p.name
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// "granted: post-slack; not granted: dm-slack (...)".
fn grants_said(p: &crate::store::PluginRecord) -> String {
    let granted = if p.grants.is_empty() {
        "nothing".to_owned()
    } else {
        p.grants.join(", ")
    };
    let withheld: Vec<&str> = p
        .manifest
        .actions
        .iter()
        .filter(|a| !p.grants.contains(a))
        .map(String::as_str)
        .collect();
    if withheld.is_empty() {
        format!("granted: {granted}")
    } else {
        format!(
            "granted: {granted}; not granted: {} (such actions are rejected and audited; `pagehook plugin grant` changes this)",
            withheld.join(", ")
        )
    }
}

/// `plugin grant`: replaces an installed plugin's grants; with `limits`,
/// grants the limits its manifest requests (and, without `grants`, leaves
/// its actions as they are).
pub async fn grant(
    config: &Config,
    name: &str,
    grants: &[String],
    limits: bool,
) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let mut p = store.require_plugin(name).await?;
    if limits {
        p = ops::plugins::grant_limits(&store, &cli_actor(), name).await?;
        outln!(
            "{} granted the limits it requests: {}",
            p.name,
            serde_json::to_string(&p.limit_grants)?
        )?;
    }
    if !limits || !grants.is_empty() {
        p = ops::plugins::set_grants(&store, &cli_actor(), name, grants).await?;
    }
    outln!("{} {}", p.name, grants_said(&p))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn list(config: &Config, out: Output) -> anyhow::Result<ExitCode> {
    let plugins = open(config).await?.plugins().await?;
    if out.json {
        return print_json(&plugins);
    }
    let now = crate::store::now_ms();
    table(
        &[
            "NAME", "VERSION", "CONTRACT", "ENABLED", "GRANTS", "BREAKER", "SHA256",
        ],
        plugins
            .into_iter()
            .map(|p| {
                vec![
                    p.name,
                    p.version,
                    p.manifest.wit,
                    if p.enabled { "yes" } else { "no" }.into(),
                    p.grants.join(","),
                    match p.breaker_until {
                        Some(until) if until > now => {
                            format!("OPEN: {}", p.breaker_error.unwrap_or_default())
                        }
                        _ if p.failures > 0 => format!("closed ({} failures)", p.failures),
                        _ => "closed".into(),
                    },
                    p.sha256[..16].to_owned(),
                ]
            })
            .collect(),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn set_enabled(config: &Config, name: &str, enabled: bool) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    ops::plugins::set_enabled(&store, &cli_actor(), name, enabled).await?;
    outln!("{} {name}", if enabled { "enabled" } else { "disabled" })?;
    Ok(ExitCode::SUCCESS)
}

pub async fn reset(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    ops::plugins::reset(&store, &cli_actor(), name).await?;
    outln!("breaker of {name} closed")?;
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let bindings = ops::plugins::remove(&store, &cli_actor(), name).await?;
    outln!("removed {name} and its {bindings} binding(s)")?;
    Ok(ExitCode::SUCCESS)
}

/// A secret given on the command line, from the environment or a file.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The token itself (visible in shell history and `ps`: prefer --token-env or --token-file).
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["token_env", "token_file"])]
    token: Option<String>,
    /// Environment variable holding the token, read when it is used.
    #[arg(long, value_name = "VAR", conflicts_with = "token_file")]
    token_env: Option<String>,
    /// File holding the token, read when it is used.
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
}

impl TokenArgs {
    fn source(&self) -> Option<SecretSource> {
        source(&self.token, &self.token_env, &self.token_file)
    }
}

fn source(
    value: &Option<String>,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Option<SecretSource> {
    value
        .clone()
        .map(SecretSource::Value)
        .or_else(|| env.clone().map(SecretSource::Env))
        .or_else(|| {
            file.clone()
                .map(|p| SecretSource::File(std::path::absolute(&p).unwrap_or(p)))
        })
}

/// `connect`
#[derive(Debug, clap::Subcommand)]
pub enum ConnectCommand {
    /// A Slack workspace, by its bot token (xoxb-...).
    Slack {
        /// Name for this workspace.
        name: String,
        /// Slack Web API base URL.
        #[arg(long, default_value = "https://slack.com/api/")]
        url: String,
        #[command(flatten)]
        token: TokenArgs,
        /// Record deliveries instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// Send this Slack user (by email) a DM once the connection works.
        #[arg(long, value_name = "EMAIL")]
        notify: Option<String>,
        /// The Confluence connection this workspace's chat uses: who a Slack user is, what
        /// their shared links and searches may show, where /confluence link signs them in.
        /// Needed when several Confluence connections have tokens [default: the one named
        /// before when connecting again, else the only one with a token].
        #[arg(long, value_name = "NAME")]
        confluence: Option<String>,
        /// The Slack app's signing secret (Basic Information), which verifies the events and
        /// slash commands Slack sends to /hooks/slack/<name> (visible in shell history: prefer
        /// the -env or -file form). Without it that URL refuses every request.
        #[arg(long, value_name = "SECRET", conflicts_with_all = ["signing_secret_env", "signing_secret_file"])]
        signing_secret: Option<String>,
        /// Environment variable holding the signing secret, read when it is used.
        #[arg(long, value_name = "VAR", conflicts_with = "signing_secret_file")]
        signing_secret_env: Option<String>,
        /// File holding the signing secret, read when it is used.
        #[arg(long, value_name = "PATH")]
        signing_secret_file: Option<PathBuf>,
        /// The Slack app's app-level token (xapp-..., scope connections:write; Basic
        /// Information, App-Level Tokens). With it `pagehook serve` receives events and
        /// slash commands over Socket Mode, an outbound WebSocket: nothing inbound is needed
        /// (visible in shell history: prefer the -env or -file form).
        #[arg(long, value_name = "TOKEN", conflicts_with_all = ["app_token_env", "app_token_file"])]
        app_token: Option<String>,
        /// Environment variable holding the app-level token, read when it is used.
        #[arg(long, value_name = "VAR", conflicts_with = "app_token_file")]
        app_token_env: Option<String>,
        /// File holding the app-level token, read when it is used.
        #[arg(long, value_name = "PATH")]
        app_token_file: Option<PathBuf>,
        /// This connection's own egress proxy: `direct` (never through a proxy, not even the
        /// environment's) or http://host:port (every request of this connection goes through it;
        /// [network] proxy-credentials apply only when it is the same proxy as [network] proxy),
        /// or `global` (back to the global [network] proxy, else HTTPS_PROXY/NO_PROXY).
        /// Without it: a new connection uses the global setting; connecting again keeps its own.
        #[arg(long, value_name = "URL|direct|global")]
        proxy: Option<String>,
    },
    /// A Teams channel, by its Workflows webhook URL; `teams:<name>` destinations use it.
    Teams {
        /// Name for this channel.
        name: String,
        /// The workflow's webhook URL (it embeds its signature: keep it secret).
        #[arg(long)]
        url: String,
        /// Record deliveries instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// This connection's own egress proxy: `direct` (never through a proxy, not even the
        /// environment's) or http://host:port (every request of this connection goes through it;
        /// [network] proxy-credentials apply only when it is the same proxy as [network] proxy),
        /// or `global` (back to the global [network] proxy, else HTTPS_PROXY/NO_PROXY).
        /// Without it: a new connection uses the global setting; connecting again keeps its own.
        #[arg(long, value_name = "URL|direct|global")]
        proxy: Option<String>,
    },
    /// A Teams bot (an Azure Bot over a single-tenant Microsoft Entra app): personal
    /// notifications, search and card actions in Teams; activities arrive at
    /// /hooks/teams/<name>, and `teams-dm:<name>` / `teams-reply:<name>` destinations use it.
    TeamsBot {
        /// Name for this bot (the messaging endpoint's last segment).
        name: String,
        /// The Azure Bot's Microsoft App ID (the Entra application's client id).
        #[arg(long, value_name = "GUID")]
        app_id: String,
        /// The directory (tenant) id the single-tenant app is registered in.
        #[arg(long, value_name = "GUID|DOMAIN")]
        tenant_id: String,
        /// A client secret of the Entra app (visible in shell history: prefer the -env or
        /// -file form).
        #[arg(long, value_name = "SECRET", conflicts_with_all = ["client_secret_env", "client_secret_file"])]
        client_secret: Option<String>,
        /// Environment variable holding the client secret, read when it is used.
        #[arg(long, value_name = "VAR", conflicts_with = "client_secret_file")]
        client_secret_env: Option<String>,
        /// File holding the client secret, read when it is used.
        #[arg(long, value_name = "PATH")]
        client_secret_file: Option<PathBuf>,
        /// The Confluence connection the bot's chat uses: who a Teams user is, what their
        /// searches may show [default: the only one with a token].
        #[arg(long, value_name = "NAME")]
        confluence: Option<String>,
        /// Microsoft Entra ID's sign-in base, where the bot's token comes from.
        #[arg(
            long,
            value_name = "URL",
            default_value = "https://login.microsoftonline.com/"
        )]
        login_url: String,
        /// Record deliveries instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// This connection's own egress proxy: `direct`, http://host:port or `global` (as for
        /// the other connections).
        #[arg(long, value_name = "URL|direct|global")]
        proxy: Option<String>,
    },
    /// A Confluence Data Center instance: webhooks arrive at /hooks/confluence/<name>.
    Confluence {
        /// Name for this instance (the webhook URL's last segment).
        name: String,
        /// Base URL, with context path, e.g. https://wiki.example.com
        #[arg(long)]
        url: String,
        /// For Basic auth: the user; the token is then its password. Without it the token is a PAT.
        /// Without any token the source is webhook-only: events are not enriched.
        #[arg(long)]
        username: Option<String>,
        #[command(flatten)]
        token: TokenArgs,
        /// The webhook secret set in Confluence (visible in shell history: prefer the -env or -file form).
        #[arg(long, value_name = "SECRET", conflicts_with_all = ["webhook_secret_env", "webhook_secret_file"])]
        webhook_secret: Option<String>,
        /// Environment variable holding the webhook secret.
        #[arg(long, value_name = "VAR", conflicts_with = "webhook_secret_file")]
        webhook_secret_env: Option<String>,
        /// File holding the webhook secret.
        #[arg(long, value_name = "PATH")]
        webhook_secret_file: Option<PathBuf>,
        /// Record deliveries instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// This connection's own egress proxy: `direct` (never through a proxy, not even the
        /// environment's) or http://host:port (every request of this connection goes through it;
        /// [network] proxy-credentials apply only when it is the same proxy as [network] proxy),
        /// or `global` (back to the global [network] proxy, else HTTPS_PROXY/NO_PROXY).
        /// Without it: a new connection uses the global setting; connecting again keeps its own.
        #[arg(long, value_name = "URL|direct|global")]
        proxy: Option<String>,
    },
}

pub async fn connect(config: &Config, cmd: ConnectCommand) -> anyhow::Result<ExitCode> {
    let req = match cmd {
        ConnectCommand::Slack {
            name,
            url,
            token,
            dry_run,
            notify,
            confluence,
            signing_secret,
            signing_secret_env,
            signing_secret_file,
            app_token,
            app_token_env,
            app_token_file,
            proxy,
        } => ConnectRequest {
            name,
            kind: ConnectionKind::Slack,
            url: Some(url),
            username: None,
            secret: token.source(),
            hook_secret: source(&signing_secret, &signing_secret_env, &signing_secret_file),
            dry_run,
            notify,
            confluence,
            app_token: source(&app_token, &app_token_env, &app_token_file),
            proxy,
            app_id: None,
            tenant_id: None,
        },
        ConnectCommand::Teams {
            name,
            url,
            dry_run,
            proxy,
        } => ConnectRequest {
            name,
            kind: ConnectionKind::Teams,
            url: Some(url),
            username: None,
            secret: None,
            hook_secret: None,
            dry_run,
            notify: None,
            confluence: None,
            app_token: None,
            proxy,
            app_id: None,
            tenant_id: None,
        },
        ConnectCommand::TeamsBot {
            name,
            app_id,
            tenant_id,
            client_secret,
            client_secret_env,
            client_secret_file,
            confluence,
            login_url,
            dry_run,
            proxy,
        } => ConnectRequest {
            name,
            kind: ConnectionKind::TeamsBot,
            url: Some(login_url),
            username: None,
            secret: source(&client_secret, &client_secret_env, &client_secret_file),
            hook_secret: None,
            dry_run,
            notify: None,
            confluence,
            app_token: None,
            proxy,
            app_id: Some(app_id),
            tenant_id: Some(tenant_id),
        },
        ConnectCommand::Confluence {
            name,
            url,
            username,
            token,
            webhook_secret,
            webhook_secret_env,
            webhook_secret_file,
            dry_run,
            proxy,
        } => ConnectRequest {
            name,
            kind: ConnectionKind::Confluence,
            url: Some(url),
            username,
            secret: token.source(),
            hook_secret: source(&webhook_secret, &webhook_secret_env, &webhook_secret_file),
            dry_run,
            notify: None,
            confluence: None,
            app_token: None,
            proxy,
            app_id: None,
            tenant_id: None,
        },
    };
    let store = open(config).await?;
    let ops::connections::Connected {
        connection: c,
        qualified_bindings,
        notice_delivery,
    } = ops::connections::connect(&store, &cli_actor(), req).await?;
    outln!(
        "connected {} `{}` at {}{}",
        c.kind.as_str(),
        c.name,
        redacted_url(&c.url),
        if c.dry_run {
            " (dry run: deliveries are recorded, not sent)"
        } else {
            ""
        }
    )?;
    match &c.proxy {
        Some(crate::http::proxy::ProxyOverride::Direct) => outln!(
            "proxy: `{}` is reached directly, never through a proxy",
            c.name
        )?,
        Some(crate::http::proxy::ProxyOverride::Via(url)) => outln!(
            "proxy: `{}` goes through {url}{}",
            c.name,
            if crate::http::current()
                .proxy
                .as_ref()
                .is_some_and(|g| g.url() == url.as_str())
            {
                " (with [network] proxy-credentials, if set)"
            } else {
                " (without credentials: [network] proxy-credentials are for [network] proxy)"
            }
        )?,
        None => {}
    }
    if c.kind == ConnectionKind::Confluence && c.secret.is_none() {
        outln!(
            "no token: events from `{}` are not read back from Confluence (enriched = false); rich (Confluence 7/8) webhooks still carry title, space and URL",
            c.name
        )?;
    }
    if c.kind == ConnectionKind::Confluence {
        outln!(
            "point Confluence's webhook at http://<this host>:<port>/hooks/confluence/{} with the same secret",
            c.name
        )?;
    }
    // Chat needs inbound requests (Socket Mode or the signing secret) and a Confluence.
    if c.kind == ConnectionKind::Slack && (c.hook_secret.is_some() || c.app_token.is_some()) {
        let all = store.connections().await?;
        match crate::enrich::chat_confluence::chat_confluence(&c, &all) {
            Ok(conf) => outln!(
                "its chat (link previews, /confluence search, /confluence link) uses Confluence `{}`",
                conf.name
            )?,
            Err(why) => outln!("warning: {why}")?,
        }
    }
    if c.kind == ConnectionKind::Slack && c.app_token.is_some() {
        outln!(
            "Socket Mode: `pagehook serve` opens an outbound WebSocket to Slack for `{}`'s events and slash commands (turn Socket Mode on in the Slack app's settings; nothing inbound is needed{})",
            c.name,
            if c.hook_secret.is_some() {
                "; /hooks/slack/".to_owned() + &c.name + " also takes signed requests"
            } else {
                String::new()
            }
        )?;
    } else if c.kind == ConnectionKind::Slack && c.hook_secret.is_some() {
        outln!(
            "set the Slack app's Event Subscriptions and slash commands Request URL to https://<this host>/hooks/slack/{}",
            c.name
        )?;
    }
    if qualified_bindings > 0 {
        outln!(
            "{qualified_bindings} binding(s) written for the only Slack workspace until now keep going to it: their destinations now name it (see `pagehook bindings`)"
        )?;
    }
    if let Some(id) = notice_delivery {
        outln!(
            "a greeting DM is queued as delivery {id}: it is sent by `pagehook serve` and shows whether the connection works (`pagehook deliveries`)"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists connections; first reads each Confluence personal access token's
/// expiry from Confluence (at most a few seconds), so the listing shows it
/// and warns about tokens expiring within 14 days.
pub async fn connections(config: &Config, out: Output) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let timeout = config
        .enrichment_timeout()
        .min(std::time::Duration::from_secs(5));
    let tokens = ops::tokens::check_tokens(&store, timeout).await?;
    let conns = store.connections().await?;
    if out.json {
        return print_json(&conns);
    }
    let all = conns.clone();
    let now = crate::store::now_ms();
    table(
        &[
            "NAME",
            "KIND",
            "URL",
            "TOKEN",
            "TOKEN EXPIRES",
            "DRY-RUN",
            "PROXY",
            "HEALTH",
        ],
        conns
            .into_iter()
            .map(|c| {
                let expires = match ops::tokens::token_status(&c, now) {
                    None => "-".to_owned(),
                    Some(t) => match (t.state, t.expires_at, t.days_left) {
                        ("never-expires", ..) => "never".to_owned(),
                        (_, Some(at), Some(days)) if days > 0 => format!(
                            "{} (in {days} day{})",
                            &time(at)[..10],
                            if days == 1 { "" } else { "s" }
                        ),
                        (_, Some(at), _) => format!("EXPIRED {}", &time(at)[..10]),
                        _ => "unknown".to_owned(),
                    },
                };
                vec![
                    c.name,
                    c.kind.as_str().into(),
                    redacted_url(&c.url),
                    c.secret.map(|s| s.redacted()).unwrap_or_else(|| "-".into()),
                    expires,
                    if c.dry_run { "yes" } else { "no" }.into(),
                    c.proxy
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_else(|| "global".into()),
                    c.health.unwrap_or_else(|| "ok".into()),
                ]
            })
            .collect(),
    )?;
    for t in tokens.iter().filter(|t| t.state == "expiring") {
        if let Some(message) = &t.message {
            outln!("warning: {message}")?;
        }
    }
    // Which Confluence each Slack connection's chat uses, or why none.
    for slack in all
        .iter()
        .filter(|c| c.kind == ConnectionKind::Slack && c.hook_secret.is_some())
    {
        match crate::enrich::chat_confluence::chat_confluence(slack, &all) {
            Ok(conf) => outln!(
                "slack `{}`: chat uses Confluence `{}`{}",
                slack.name,
                conf.name,
                if slack.confluence.is_some() {
                    ""
                } else {
                    " (the only one with a token)"
                }
            )?,
            Err(why) => outln!("warning: {why}")?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn disconnect(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    ops::connections::disconnect(&store, &cli_actor(), name).await?;
    outln!("removed connection {name}")?;
    Ok(ExitCode::SUCCESS)
}

/// `connection teams-manifest NAME`: the Teams app manifest of a Teams bot.
pub async fn teams_manifest(
    config: &Config,
    name: &str,
    public_url: Option<&str>,
    app_version: &str,
) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let bot = store
        .connection(name)
        .await?
        .filter(|c| c.kind == ConnectionKind::TeamsBot)
        .ok_or_else(|| anyhow::anyhow!("no Teams bot connection named `{name}`"))?;
    let Some(public_url) = public_url.or(config.server.public_url.as_deref()) else {
        anyhow::bail!(
            "say where Teams reaches Pagehook: --public-url https://pagehook.example.com (or `[server] public-url` in the config); the bot's messaging endpoint is then <that>/hooks/teams/{name}"
        );
    };
    let app_id = bot.app_id.as_deref().unwrap_or_default();
    let manifest = crate::teams::app_manifest::teams_app_manifest(app_id, public_url, app_version);
    outln!("{}", serde_json::to_string_pretty(&manifest)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `connection test NAME [--send-card]`: exit 1 when the service refused
/// (not when a Teams workflow is left untested).
pub async fn test_connection(
    config: &Config,
    name: &str,
    send_card: bool,
) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    let result = if send_card {
        ops::connections::send_test_card(&store, &cli_actor(), name, config).await?
    } else {
        ops::connections::test_connection(&store, &cli_actor(), name, config).await?
    };
    outln!("{}", result.message)?;
    Ok(match result.state {
        ops::connections::TestState::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// `bind`
#[derive(Debug, clap::Args)]
pub struct BindArgs {
    /// Installed plugin to run.
    plugin: String,
    /// global, space:<KEY> or page:<ID> (the page and everything under it).
    #[arg(long, default_value = "global")]
    scope: String,
    /// Only events from this Confluence connection [default: every source].
    #[arg(long)]
    source: Option<String>,
    /// Event kinds, comma-separated [default: all the plugin handles].
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    /// Where its actions may go: slack:[<workspace>/]#chan, slack-dm:[<workspace>/]<email|*>, teams:<conn> (or teams:<bot>/<team>: the channel a Teams bot was added to in that team), confluence:<SPACE>, comment:<id|*>, teams-dm:<bot>[/<email>] (personal messages through a Teams bot), teams-reply:<bot> (answers to that bot's messages and card buttons); <bot> may be * for any.
    #[arg(long = "to", value_name = "DESTINATION")]
    to: Vec<String>,
    /// A plugin setting; repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Record this binding's deliveries instead of sending them.
    #[arg(long)]
    dry_run: bool,
    /// Do not post a message in each Slack channel saying what it will receive.
    #[arg(long)]
    quiet: bool,
    /// Digests (plugins that take them): `on` (the default) holds a burst
    /// of events and hands it to the plugin as one digest; `off` runs every
    /// event on its own. See also `pagehook digest`.
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    digest: Option<bool>,
    /// More than this many events of one space within the digest window
    /// make a burst [default: 20].
    #[arg(long, value_name = "EVENTS")]
    digest_threshold: Option<u32>,
    /// The digest window in seconds [default: 300].
    #[arg(long, value_name = "SECONDS")]
    digest_window: Option<u32>,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("`{other}` is neither `on` nor `off`")),
    }
}

pub async fn bind(config: &Config, args: BindArgs) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    // Digest settings are checked before anything is stored: a bad value
    // refuses the whole binding.
    let digest = ops::digests::DigestChange {
        enabled: args.digest,
        threshold: args.digest_threshold,
        window_secs: args.digest_window,
        defaults: false,
    };
    let defaults = crate::store::DigestSettings::default();
    crate::store::DigestSettings {
        enabled: digest.enabled.unwrap_or(defaults.enabled),
        threshold: digest.threshold.unwrap_or(defaults.threshold),
        window_secs: digest.window_secs.unwrap_or(defaults.window_secs),
    }
    .check()
    .map_err(|e| anyhow::anyhow!(e))?;
    let b = ops::bindings::bind(
        &store,
        &cli_actor(),
        BindRequest {
            plugin: args.plugin,
            scope: args.scope,
            source: args.source,
            events: args.events,
            to: args.to,
            settings: args.settings,
            dry_run: args.dry_run,
            quiet: args.quiet,
        },
    )
    .await?;
    let ops::bindings::Bound {
        binding: b,
        announcements,
    } = b;
    if digest != ops::digests::DigestChange::default() {
        ops::digests::set(&store, &cli_actor(), b.id, &digest).await?;
    }
    outln!(
        "binding {}: {} on {} in {} -> {}",
        b.id,
        b.plugin,
        b.events.join(","),
        b.scope,
        b.destinations.join(", ")
    )?;
    if !announcements.is_empty() {
        outln!(
            "announced in each Slack channel it names (deliveries {}); --quiet skips this",
            announcements
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn unbind(config: &Config, id: i64) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    ops::bindings::unbind(&store, &cli_actor(), id).await?;
    outln!("removed binding {id}")?;
    Ok(ExitCode::SUCCESS)
}

pub async fn bindings(config: &Config, out: Output) -> anyhow::Result<ExitCode> {
    let bindings = open(config).await?.bindings(None).await?;
    if out.json {
        return print_json(&bindings);
    }
    table(
        &[
            "ID", "PLUGIN", "SCOPE", "SOURCE", "EVENTS", "TO", "SETTINGS",
        ],
        bindings
            .into_iter()
            .map(|b| {
                vec![
                    b.id.to_string(),
                    b.plugin,
                    b.scope.to_string(),
                    b.source.unwrap_or_else(|| "*".into()),
                    b.events.join(","),
                    format!(
                        "{}{}",
                        b.destinations.join(","),
                        if b.dry_run { " (dry run)" } else { "" }
                    ),
                    b.settings
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            })
            .collect(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `events` and `deliveries`
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this status.
    #[arg(long)]
    status: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    out: Output,
}

pub async fn events(config: &Config, args: ListArgs) -> anyhow::Result<ExitCode> {
    let status = args
        .status
        .as_deref()
        .map(EventStatus::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let events = open(config).await?.events(status, args.limit).await?;
    if args.out.json {
        return print_json(&events);
    }
    table(
        &[
            "ID", "RECEIVED", "SOURCE", "EVENT", "CONTENT", "STATUS", "NOTE",
        ],
        events
            .into_iter()
            .map(|e| {
                let content = e
                    .event
                    .as_ref()
                    .and_then(|ev| ev.content.as_ref())
                    .map(|c| format!("{} \"{}\" ({})", c.id, c.title, c.space_key))
                    .unwrap_or_default();
                vec![
                    e.id.to_string(),
                    time(e.received_at),
                    e.source,
                    e.name,
                    content,
                    e.status.as_str().into(),
                    e.error.unwrap_or_default(),
                ]
            })
            .collect(),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn deliveries(config: &Config, args: ListArgs) -> anyhow::Result<ExitCode> {
    let status = args
        .status
        .as_deref()
        .map(DeliveryStatus::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let deliveries = open(config).await?.deliveries(status, args.limit).await?;
    if args.out.json {
        return print_json(&deliveries);
    }
    table(
        &[
            "ID",
            "EVENT",
            "PLUGIN",
            "ACTION",
            "TO",
            "STATUS",
            "ATTEMPTS",
            "LAST ERROR",
        ],
        deliveries
            .into_iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.event_id.to_string(),
                    d.plugin,
                    d.kind,
                    d.action.destination(),
                    format!(
                        "{}{}",
                        d.status.as_str(),
                        if d.dry_run { " (dry run)" } else { "" }
                    ),
                    d.attempts.to_string(),
                    match d.status.as_str() {
                        "sent" => d.result.unwrap_or_default(),
                        "would-send" => "dry run: see --json for the request".into(),
                        _ => d.last_error.unwrap_or_default(),
                    },
                ]
            })
            .collect(),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub async fn retry(config: &Config, id: i64) -> anyhow::Result<ExitCode> {
    let store = open(config).await?;
    ops::deliveries::retry(&store, &cli_actor(), id).await?;
    outln!("delivery {id} is queued again; a running `pagehook serve` sends it within a second")?;
    Ok(ExitCode::SUCCESS)
}

/// `failures`
#[derive(Debug, clap::Args)]
pub struct FailuresArgs {
    /// Only this plugin's.
    #[arg(long)]
    plugin: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    out: Output,
}

pub async fn failures(config: &Config, args: FailuresArgs) -> anyhow::Result<ExitCode> {
    let failures = open(config)
        .await?
        .failures(args.plugin.as_deref(), args.limit)
        .await?;
    if args.out.json {
        return print_json(&failures);
    }
    table(
        &["AT", "EVENT", "BINDING", "PLUGIN", "CODE", "MESSAGE"],
        failures
            .into_iter()
            .map(|f| {
                vec![
                    time(f.at),
                    f.event_id.to_string(),
                    f.binding_id.to_string(),
                    f.plugin,
                    f.code,
                    f.message,
                ]
            })
            .collect(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `changes`
#[derive(Debug, clap::Args)]
pub struct ChangesArgs {
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    out: Output,
}

/// The change log: who changed what, through the CLI, the API or the console.
pub async fn changes(config: &Config, args: ChangesArgs) -> anyhow::Result<ExitCode> {
    let changes = open(config)
        .await?
        .changes(&crate::store::ChangeQuery {
            before: None,
            limit: args.limit,
        })
        .await?;
    if args.out.json {
        return print_json(&changes);
    }
    table(
        &["AT", "WHO", "ACTION", "TARGET", "DETAIL"],
        changes
            .into_iter()
            .map(|c| {
                vec![
                    time(c.at),
                    c.actor,
                    c.action,
                    c.target,
                    if c.detail.is_null() {
                        String::new()
                    } else {
                        c.detail.to_string()
                    },
                ]
            })
            .collect(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The stored, enriched event `id`, for `plugin run --event-id`.
pub async fn stored_event(config: &Config, id: i64) -> anyhow::Result<crate::model::Event> {
    let record = open(config).await?.event(id).await?.with_context(|| {
        format!(
            "no event with id {id} in {}",
            config.store.database.display()
        )
    })?;
    record.event.with_context(|| {
        format!(
            "event {id} ({}) is {}: it has not been enriched yet, so there is nothing to replay",
            record.name,
            record.status.as_str()
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00");
        assert_eq!(super::time(1_768_241_233_603), "2026-01-12 18:07:13");
        assert_eq!(super::time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
