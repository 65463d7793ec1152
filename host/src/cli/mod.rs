//! The command line: one clap tree, one file per subcommand.
//!
//! Commands print results on stdout and diagnostics on stderr, exit 0 on
//! success and 1 on any failure with a one-line reason; they never print a
//! secret.

mod plugin_audit;
mod plugin_run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::runtime::{ComponentCache, RuntimeConfig};

/// Pagehook: run sandboxed WebAssembly plugins over Confluence events.
#[derive(Debug, Parser)]
#[command(name = "pagehook", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with plugins: run one on an event, audit one before install.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run a plugin in the real sandbox on one event and print its actions.
    Run(plugin_run::Args),
    /// Show what a plugin is and may do: hash, manifest, imports, limits.
    Audit(plugin_audit::Args),
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
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAGEHOOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Plugin(PluginCommand::Run(args)) => plugin_run::run(args),
        Command::Plugin(PluginCommand::Audit(args)) => plugin_audit::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `name=value`.
fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, v)| (n.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected name=value, got `{s}`"))
}
