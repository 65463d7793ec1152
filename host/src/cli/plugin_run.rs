//! `pagehook plugin run`: the plugin author's local test runner.
//!
//! Runs the plugin in exactly the sandbox the sidecar uses, on one event,
//! and prints the actions as JSON on stdout and the plugin's log on stderr,
//! so a plugin can be tried and its output diffed without a Confluence.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::progress::{self, Progress};
use super::{CacheArgs, parse_setting};
use crate::model::Event;
use crate::runtime::{PluginPackage, Runtime};

/// Arguments of `plugin run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plugin directory (plugin.toml and its component).
    dir: PathBuf,
    /// Event as JSON (see examples/events/); `-` reads standard input.
    #[arg(
        long,
        value_name = "FILE.json",
        required_unless_present = "event_id",
        conflicts_with = "event_id"
    )]
    event: Option<PathBuf>,
    /// A stored event, as it was enriched (see `pagehook events`): try a new
    /// plugin version on real traffic before installing it.
    #[arg(long, value_name = "ID")]
    event_id: Option<i64>,
    /// A setting for this run, as a binding would give it; repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Runs the command; exit 1 with the typed error when the plugin fails.
pub fn run(args: Args, config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let event: Event = match (&args.event, args.event_id) {
        (_, Some(id)) => super::block_on(super::admin::stored_event(
            &crate::config::Config::load(config)?,
            id,
        ))?,
        (Some(path), None) => {
            let text = if path.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the event from stdin")?;
                s
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read event {}", path.display()))?
            };
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid event", path.display()))?
        }
        (None, None) => anyhow::bail!("give --event FILE or --event-id ID"),
    };

    let package = PluginPackage::open(&args.dir)?;
    let settings = package
        .manifest
        .resolve_settings(&args.settings)
        .map_err(anyhow::Error::msg)?;
    if !package.manifest.wants(event.kind) {
        errln!(
            "warning: plugin `{}` does not subscribe to `{}` events; the sidecar would not call it",
            package.manifest.name,
            event.kind.name()
        );
    }
    let runtime = Runtime::new(args.cache.runtime_config());
    let progress = Progress::start(progress::loading(
        &package.manifest.name,
        package.wasm.len(),
    ));
    let plugin = runtime.load(&package)?;
    let (cache, load_time) = plugin.load_info();
    progress.finish(progress::loaded(plugin.name(), cache, load_time));
    let report = plugin.call(&event, &settings);
    if !report.log.is_empty() {
        err!("{}", report.log);
        if !report.log.ends_with('\n') {
            errln!();
        }
    }
    errln!(
        "plugin `{}` ({}): {:.1} ms, fuel {} of {}",
        plugin.name(),
        plugin.contract(),
        report.elapsed.as_secs_f64() * 1000.0,
        report.fuel_used,
        plugin.limits().fuel,
    );
    match report.outcome {
        Ok(actions) => {
            for (i, action) in actions.iter().enumerate() {
                if !package.manifest.actions.iter().any(|a| a == action.kind()) {
                    errln!(
                        "warning: action {i} is `{}`, which plugin.toml does not declare; the sidecar will reject it",
                        action.kind()
                    );
                }
            }
            outln!("{}", serde_json::to_string_pretty(&actions)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            errln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
