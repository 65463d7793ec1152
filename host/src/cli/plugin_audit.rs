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
use crate::manifest::Manifest;
use crate::runtime::{Limits, PluginPackage, Runtime, Surface};

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

#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    component: String,
    sha256: String,
    size_bytes: usize,
    manifest: Manifest,
    imports: Vec<Import>,
    exports: Vec<String>,
    loadable: bool,
    problem: Option<String>,
    limits: Option<Limits>,
}

#[derive(Debug, Serialize)]
struct Import {
    name: String,
    allowed: bool,
}

/// Runs the command; exit 1 when the plugin could not be loaded.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let package = PluginPackage::open(&args.dir)?;
    let runtime = Runtime::new(args.cache.runtime_config());
    let mut report = Report {
        dir: args.dir.display().to_string(),
        component: package.manifest.component.clone(),
        sha256: package.sha256.clone(),
        size_bytes: package.wasm.len(),
        manifest: package.manifest.clone(),
        imports: Vec::new(),
        exports: Vec::new(),
        loadable: false,
        problem: None,
        limits: None,
    };
    let progress = Progress::start(progress::loading(
        &package.manifest.name,
        package.wasm.len(),
    ));
    match runtime.compile(&package) {
        Ok(compiled) => {
            progress.finish(progress::loaded(
                &package.manifest.name,
                compiled.cache,
                compiled.load_time,
            ));
            let Surface { imports, exports } = compiled.surface.clone();
            report.imports = imports
                .into_iter()
                .map(|name| Import {
                    allowed: crate::runtime::import_allowed(&name),
                    name,
                })
                .collect();
            report.exports = exports;
            report.limits = Some(compiled.limits);
            match runtime.prepare(&package, compiled) {
                Ok(_) => report.loadable = true,
                Err(e) => report.problem = Some(e.to_string()),
            }
        }
        Err(e) => {
            let took = progress::human(progress.elapsed());
            progress.finish(format!(
                "cannot compile `{}` (after {took})",
                package.manifest.name
            ));
            report.problem = Some(e.to_string());
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_text(&report)?;
    }
    Ok(if report.loadable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_text(r: &Report) -> std::io::Result<()> {
    let m = &r.manifest;
    outln!("plugin      {} {} — {}", m.name, m.version, m.description)?;
    outln!("directory   {}", r.dir)?;
    outln!("component   {} ({} bytes)", r.component, r.size_bytes)?;
    outln!("sha256      {}", r.sha256)?;
    outln!("contract    pagehook:plugin@{}", m.wit)?;
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
