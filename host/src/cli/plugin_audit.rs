//! `pagehook plugin audit`: what a security reviewer reads before install.
//!
//! Shows what the plugin is (sha256, size), what it declares (manifest), what
//! the component really imports and exports, whether the sandbox would load
//! it and why not, and the limits it would run under. Auditing never runs
//! the plugin's code.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::CacheArgs;
use super::progress::{self, Progress};
use crate::runtime::audit::{self, PluginAudit};
use crate::runtime::{PluginPackage, Runtime};

/// Arguments of `plugin audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plugin directory (plugin.toml and its component).
    dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

/// The report, with the directory it was read from.
#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    #[serde(flatten)]
    audit: PluginAudit,
}

/// Runs the command; exit 1 when the plugin could not be loaded.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let package = PluginPackage::open(&args.dir)?;
    let runtime = Runtime::new(args.cache.runtime_config());
    let progress = Progress::start(progress::loading(
        &package.manifest.name,
        package.wasm.len(),
    ));
    let audit = audit::audit(&runtime, &package);
    match audit.load {
        Some((cache, load_time)) => {
            progress.finish(progress::loaded(&package.manifest.name, cache, load_time))
        }
        None => {
            let took = progress::human(progress.elapsed());
            progress.finish(format!(
                "cannot compile `{}` (after {took})",
                package.manifest.name
            ));
        }
    }
    let report = Report {
        dir: args.dir.display().to_string(),
        audit,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_text(&report)?;
    }
    Ok(if report.audit.loadable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_text(report: &Report) -> std::io::Result<()> {
    let r = &report.audit;
    let m = &r.manifest;
    outln!("plugin      {} {} — {}", m.name, m.version, m.description)?;
    outln!("directory   {}", report.dir)?;
    outln!("component   {} ({} bytes)", r.component, r.size_bytes)?;
    outln!("sha256      {}", r.sha256)?;
    match r.built_against {
        Some(built) if built.version() == m.wit => {
            outln!("contract    {built} (read from the component's imports)")?
        }
        Some(built) => outln!(
            "contract    {built} read from the component's imports, but the manifest says {}",
            m.wit
        )?,
        None => outln!(
            "contract    pagehook:plugin@{} (the manifest's word: the component imports no contract types)",
            m.wit
        )?,
    }
    outln!("events      {}", m.events.join(", "))?;
    outln!(
        "actions     {}",
        if m.actions.is_empty() {
            "none".to_string()
        } else {
            m.actions.join(", ")
        }
    )?;
    if m.settings.is_empty() {
        outln!("settings    none")?;
    }
    for (name, s) in &m.settings {
        let how = match (&s.default, s.required) {
            (_, true) => "required".to_string(),
            (Some(d), _) => format!("default {d:?}"),
            (None, false) => "optional".to_string(),
        };
        outln!("setting     {name} ({how}): {}", s.description)?;
    }
    for i in &r.imports {
        outln!(
            "import      {} {}",
            i.name,
            if i.allowed {
                "(allowed, nothing granted)"
            } else {
                "(REFUSED)"
            }
        )?;
    }
    for e in &r.exports {
        outln!("export      {e}")?;
    }
    if let Some(l) = &r.limits {
        outln!(
            "limits      fuel {} · deadline {} ms · memory {} MiB · stack {} KiB · {} actions · {} B/action · {} B total · {} B log",
            l.fuel,
            l.deadline_ms,
            l.memory_bytes / (1024 * 1024),
            l.stack_bytes / 1024,
            l.max_actions,
            l.action_bytes,
            l.total_bytes,
            l.log_bytes
        )?;
    }
    match &r.problem {
        None => outln!("loadable    yes")?,
        Some(p) => outln!("loadable    NO: {p}")?,
    }
    Ok(())
}
