//! The command line: one clap tree, one file per subcommand.
//!
//! Commands print results on stdout and diagnostics on stderr, exit 0 on
//! success and 1 on any failure with a one-line reason; they never print a
//! secret.
//!
//! A closed stdout (`pagehook events | head`) is not a failure: output goes
//! through [`outln!`], which returns the write error instead of panicking as
//! `println!` does, and [`main`] turns a broken pipe into a quiet exit 0, as
//! a reader that stopped early asked for no more. Diagnostics go through
//! [`errln!`], which ignores a closed stderr.

/// `println!` that returns `std::io::Result<()>` instead of panicking when
/// stdout is closed; use it with `?`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// `eprint!` that ignores a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod admin;
mod digests;
mod doctor;
mod links;
mod plugin_audit;
mod plugin_run;
mod plugin_sign;
mod progress;
mod store;
mod version;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::runtime::{ComponentCache, RuntimeConfig};

/// Pagehook: run sandboxed WebAssembly plugins over Confluence events.
#[derive(Debug, Parser)]
#[command(
    name = "pagehook",
    version,
    about,
    after_help = "`pagehook --version --json`: the version, the plugin contracts and the crates this binary was built from, as JSON."
)]
pub struct Cli {
    /// Configuration file [default: ./pagehook.toml if present, else built-in defaults].
    #[arg(long, global = true, env = "PAGEHOOK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar: webhooks, dispatch, admin API, /healthz, /metrics.
    Serve {
        /// Address to listen on [default: server.listen from the config].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Work with plugins: run, audit, install and manage them.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Add (or update) a Slack, Teams or Confluence connection.
    #[command(subcommand)]
    Connect(admin::ConnectCommand),
    /// List connections (secrets redacted).
    Connections(admin::Output),
    /// Work with one connection.
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Run an installed plugin on events: where, which events, where its actions may go, settings.
    Bind(admin::BindArgs),
    /// Remove a binding.
    Unbind {
        /// Its id (see `pagehook bindings`).
        id: i64,
    },
    /// List bindings.
    Bindings(admin::Output),
    /// Show or change a binding's digests (on/off, threshold, window) and what it is collecting.
    Digest(digests::DigestArgs),
    /// List stored events, newest first.
    Events(admin::ListArgs),
    /// List deliveries (the outbox), newest first.
    Deliveries(admin::ListArgs),
    /// List failed plugin calls, newest first.
    Failures(admin::FailuresArgs),
    /// The change log: who installed, connected, bound, retried or signed in, newest first.
    Changes(admin::ChangesArgs),
    /// Send a dead (or dry-run) delivery again, now.
    Retry {
        /// The delivery's id (see `pagehook deliveries --status dead`).
        id: i64,
    },
    /// List which Slack users linked themselves to which Confluence users (/confluence link).
    Links(admin::Output),
    /// Remove a Slack user's link to their Confluence user.
    Unlink(links::UnlinkArgs),
    /// Work with the store itself.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Check what works with each Confluence and Slack connection, measured now; exits 1 when something a binding uses cannot work.
    Doctor(doctor::Args),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy this installation's SQLite store into an empty PostgreSQL database, ids and all.
    Copy(store::CopyArgs),
    /// Copy the SQLite store into a new file while `pagehook serve` runs (SQLite's online backup); on PostgreSQL, use pg_dump.
    Backup(store::BackupArgs),
}

#[derive(Debug, Subcommand)]
enum ConnectionCommand {
    /// Check the credentials: Slack auth.test, Confluence's current user;
    /// a Teams workflow only with --send-card. A failure marks the
    /// connection's health, a success clears the mark.
    Test {
        /// The connection.
        name: String,
        /// Teams: post a real test card to the workflow's channel (people
        /// there see it); the only way to test a Teams workflow.
        #[arg(long)]
        send_card: bool,
    },
    /// Remove a connection.
    Remove {
        /// The connection.
        name: String,
    },
    /// Print the Teams app manifest (manifest.json) of a Teams bot connection, to zip with
    /// two icons (color.png 192x192, outline.png 32x32) and upload to the org's app catalog.
    TeamsManifest {
        /// The Teams bot connection.
        name: String,
        /// Pagehook's address as Teams reaches it [default: `[server] public-url`].
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
        /// The app package's version (raise it for each upload).
        #[arg(long, default_value = "1.0.0")]
        app_version: String,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run a plugin in the real sandbox on one event and print its actions.
    Run(plugin_run::Args),
    /// Show what a plugin is and may do: hash, signature, producers, manifest, imports, limits.
    Audit(plugin_audit::Args),
    /// Sign a plugin directory with a minisign key (writes plugin.statement and its signature).
    Sign(plugin_sign::SignArgs),
    /// Make a minisign key pair for signing plugins.
    Keygen(plugin_sign::KeygenArgs),
    /// Install (or upgrade) a plugin, granting the actions it may use; pins its sha256.
    Install(admin::InstallArgs),
    /// List installed plugins.
    List(admin::Output),
    /// Set which declared actions an installed plugin may use (replaces its grants).
    Grant {
        /// The plugin.
        name: String,
        /// An action kind it declares (repeat; none: it may do nothing).
        #[arg(long = "grant", value_name = "ACTION")]
        grants: Vec<String>,
        /// Grant the limits its manifest requests (alone: its actions stay as they are).
        #[arg(long)]
        limits: bool,
    },
    /// Let an installed plugin run again.
    Enable {
        /// The plugin.
        name: String,
    },
    /// Stop running a plugin, keeping its bindings.
    Disable {
        /// The plugin.
        name: String,
    },
    /// Close a plugin's breaker after fixing what made it fail.
    Reset {
        /// The plugin.
        name: String,
    },
    /// Uninstall a plugin and remove its bindings.
    Remove {
        /// The plugin.
        name: String,
    },
}

/// Options shared by commands that load components.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// Directory for compiled components [default: $PAGEHOOK_CACHE_DIR or ~/.cache/pagehook].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the component every time instead of using the cache.
    #[arg(long)]
    no_cache: bool,
}

impl CacheArgs {
    fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or_else(ComponentCache::default_dir)
            },
            ..RuntimeConfig::default()
        }
    }
}

/// Parses arguments, runs the command and turns its error into exit code 1.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if version::wanted(&args) {
        // A closed stdout is no failure here either.
        let _ = outln!("{:#}", version::report());
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse_from(args);
    init_logging();
    let result = run(cli);
    match result {
        Ok(code) => code,
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `PAGEHOOK_LOG` (default `warn`), as text
/// or, with `PAGEHOOK_LOG_FORMAT=json`, as one JSON object per line: the
/// event's fields at the top level (`message`, `level`, `target`,
/// `timestamp`, `delivery`, ...) and the fields of the span it happened in
/// under `span` (`{"name": "delivery", "delivery": 12, "event": 7}`), so
/// every line about one event or delivery names it.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAGEHOOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let format = std::env::var("PAGEHOOK_LOG_FORMAT").unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.to_ascii_lowercase().as_str() {
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        "" | "text" => builder.init(),
        other => {
            builder.init();
            tracing::warn!("PAGEHOOK_LOG_FORMAT={other:?} is not `json` or `text`; logging text");
        }
    }
}

/// Whether `e` is stdout closed by its reader (`| head`): the reader has
/// what it wanted, so the command stops quietly and successfully.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every command that reads the config may reach Confluence or Slack:
    // the trust roots and proxy it names apply before any client is built.
    let config = || {
        let config = Config::load(cli.config.as_deref())?;
        crate::http::install(&config)?;
        anyhow::Ok(config)
    };
    match cli.command {
        Command::Plugin(PluginCommand::Run(args)) => plugin_run::run(args, cli.config.as_deref()),
        Command::Plugin(PluginCommand::Audit(args)) => {
            plugin_audit::run(args, cli.config.as_deref())
        }
        Command::Plugin(PluginCommand::Sign(args)) => plugin_sign::sign(args),
        Command::Plugin(PluginCommand::Keygen(args)) => plugin_sign::keygen(args),
        Command::Plugin(PluginCommand::Install(args)) => block_on(admin::install(&config()?, args)),
        Command::Plugin(PluginCommand::List(out)) => block_on(admin::list(&config()?, out)),
        Command::Plugin(PluginCommand::Grant {
            name,
            grants,
            limits,
        }) => block_on(admin::grant(&config()?, &name, &grants, limits)),
        Command::Plugin(PluginCommand::Enable { name }) => {
            block_on(admin::set_enabled(&config()?, &name, true))
        }
        Command::Plugin(PluginCommand::Disable { name }) => {
            block_on(admin::set_enabled(&config()?, &name, false))
        }
        Command::Plugin(PluginCommand::Reset { name }) => block_on(admin::reset(&config()?, &name)),
        Command::Plugin(PluginCommand::Remove { name }) => {
            block_on(admin::remove(&config()?, &name))
        }
        Command::Serve { listen } => {
            let config = config()?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(crate::server::serve(config, listen))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Connect(cmd) => block_on(admin::connect(&config()?, cmd)),
        Command::Connections(out) => block_on(admin::connections(&config()?, out)),
        Command::Connection(ConnectionCommand::Test { name, send_card }) => {
            block_on(admin::test_connection(&config()?, &name, send_card))
        }
        Command::Connection(ConnectionCommand::Remove { name }) => {
            block_on(admin::disconnect(&config()?, &name))
        }
        Command::Connection(ConnectionCommand::TeamsManifest {
            name,
            public_url,
            app_version,
        }) => block_on(admin::teams_manifest(
            &config()?,
            &name,
            public_url.as_deref(),
            &app_version,
        )),
        Command::Bind(args) => block_on(admin::bind(&config()?, args)),
        Command::Unbind { id } => block_on(admin::unbind(&config()?, id)),
        Command::Bindings(out) => block_on(admin::bindings(&config()?, out)),
        Command::Events(args) => block_on(admin::events(&config()?, args)),
        Command::Deliveries(args) => block_on(admin::deliveries(&config()?, args)),
        Command::Failures(args) => block_on(admin::failures(&config()?, args)),
        Command::Changes(args) => block_on(admin::changes(&config()?, args)),
        Command::Retry { id } => block_on(admin::retry(&config()?, id)),
        Command::Links(out) => block_on(links::list(&config()?, out)),
        Command::Digest(args) => block_on(digests::run(&config()?, args)),
        Command::Unlink(args) => block_on(links::unlink(&config()?, args)),
        Command::Store(StoreCommand::Copy(args)) => block_on(store::copy(&config()?, args)),
        Command::Store(StoreCommand::Backup(args)) => store::backup(&config()?, args),
        Command::Doctor(args) => block_on(doctor::run(&config()?, args)),
    }
}

/// Runs an admin command's future on a runtime of its own (one thread:
/// the CLI does one thing at a time).
pub(crate) fn block_on<T>(
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Parses `name=value`.
fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, v)| (n.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected name=value, got `{s}`"))
}
