//! `pagehook plugin run`: the plugin author's local test runner.
//!
//! Runs the plugin in exactly the sandbox the sidecar uses, on one event
//! (or, with `--digest`, on a digest of several: contract 0.3.0), and prints
//! the actions as JSON on stdout and the plugin's log on stderr, so a
//! plugin can be tried and its output diffed without a Confluence.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::progress::{self, Progress};
use super::{CacheArgs, parse_setting};
use crate::digest::Digest;
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
        required_unless_present_any = ["event_id", "digest"],
        conflicts_with_all = ["event_id", "digest"]
    )]
    event: Option<PathBuf>,
    /// A digest as JSON, for a plugin that takes digests (`digests = true`):
    /// a list of events (as in examples/events/, oldest first; the space is
    /// the first one's), or an object with `space_key`, `space_name`,
    /// `events` and `search_url`; `-` reads standard input.
    #[arg(long, value_name = "FILE.json", conflicts_with = "event_id")]
    digest: Option<PathBuf>,
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
    if let Some(path) = &args.digest {
        let digest = read_digest(path)?;
        return run_on(&args, Input::Digest(digest));
    }
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
        (None, None) => anyhow::bail!("give --event FILE, --event-id ID or --digest FILE"),
    };
    run_on(&args, Input::Event(Box::new(event)))
}

/// What a run hands the plugin.
enum Input {
    Event(Box<Event>),
    Digest(Digest),
}

/// Reads `--digest`: a list of events, or a whole digest.
fn read_digest(path: &std::path::Path) -> anyhow::Result<Digest> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the digest from stdin")?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read digest {}", path.display()))?
    };
    let digest = match serde_json::from_str::<Vec<Event>>(&text) {
        Ok(events) => {
            let content = events.first().and_then(|e| e.content.as_ref());
            Digest {
                space_key: content.map(|c| c.space_key.clone()).unwrap_or_default(),
                space_name: content.and_then(|c| c.space_name.clone()),
                events,
                search_url: None,
            }
        }
        Err(_) => serde_json::from_str::<Digest>(&text).with_context(|| {
            format!(
                "{} is neither a list of events nor a digest",
                path.display()
            )
        })?,
    };
    if digest.events.len() < 2 {
        anyhow::bail!(
            "a digest has at least two events ({} has {}); run one event with --event",
            path.display(),
            digest.events.len()
        );
    }
    Ok(digest)
}

fn run_on(args: &Args, input: Input) -> anyhow::Result<ExitCode> {
    let package = PluginPackage::open(&args.dir)?;
    let settings = package
        .manifest
        .resolve_settings(&args.settings)
        .map_err(anyhow::Error::msg)?;
    let kinds: Vec<crate::model::EventKind> = match &input {
        Input::Event(e) => vec![e.kind],
        Input::Digest(d) => d.events.iter().map(|e| e.kind).collect(),
    };
    for kind in kinds {
        if !package.manifest.wants(kind) {
            errln!(
                "warning: plugin `{}` does not subscribe to `{}` events; the sidecar would not call it",
                package.manifest.name,
                kind.name()
            );
        }
    }
    let runtime = Runtime::new(args.cache.runtime_config());
    let progress = Progress::start(progress::loading(
        &package.manifest.name,
        package.wasm.len(),
    ));
    let plugin = runtime.load(&package)?;
    let (cache, load_time) = plugin.load_info();
    progress.finish(progress::loaded(plugin.name(), cache, load_time));
    let (report, budget) = match &input {
        Input::Event(event) => (plugin.call(event, &settings), plugin.limits().fuel),
        Input::Digest(digest) => {
            if !plugin.takes_digests() {
                anyhow::bail!(
                    "plugin `{}` does not take digests: its manifest must say `digests = true` (contract 0.3.0) and its component export `handle-digest`",
                    plugin.name()
                );
            }
            let calls = digest
                .events
                .len()
                .clamp(1, crate::runtime::DIGEST_BUDGET_CALLS) as u64;
            (
                plugin.call_digest(digest, &settings),
                plugin.limits().fuel.saturating_mul(calls),
            )
        }
    };
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
        budget,
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
