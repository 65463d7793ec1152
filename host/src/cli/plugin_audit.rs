//! `pagehook plugin audit`: what a security reviewer reads before install,
//! and the report they file.
//!
//! Shows what the plugin is (sha256, size), who vouches for it (its
//! signature, checked offline against `[plugins]` keys), how it says it was
//! built (producers, embedded dependency list), what it declares (manifest),
//! what the component really imports and exports, whether the sandbox would
//! load it and why not, and the limits it would run under. `--report md`
//! (or `json`) adds the sandbox's guarantees and, where the plugin is
//! installed, the grants and bindings in force there.
//!
//! What it must never do: run the plugin's code, change the store (it only
//! reads it, and only for `--report`), or print a secret.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::CacheArgs;
use super::progress::{self, Progress};
use crate::config::{Config, Database};
use crate::manifest::LimitRequest;
use crate::plugin_trust::grants::{self, HeldLimit};
use crate::plugin_trust::provenance::Provenance;
use crate::plugin_trust::report::{self, Guarantee, SANDBOX_GUARANTEES};
use crate::plugin_trust::signature::SignatureCheck;
use crate::runtime::audit::{self, PluginAudit};
use crate::runtime::{Limits, PluginPackage, Runtime};
use crate::store::{Binding, Store};

/// Arguments of `plugin audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plugin directory (plugin.toml and its component).
    dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long, conflicts_with = "report")]
    json: bool,
    /// A report to file: `md` (Markdown) or `json`, with the sandbox's guarantees and the
    /// grants and bindings in force where the plugin is installed.
    #[arg(long, value_name = "FORMAT")]
    report: Option<ReportFormat>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// `--report`'s formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    /// Markdown, for a ticket or a review document.
    Md,
    /// One JSON object.
    Json,
}

/// The audit, with the directory it was read from.
#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    #[serde(flatten)]
    audit: PluginAudit,
    /// Who vouches for the files.
    signature: SignatureCheck,
    /// How the component says it was built.
    provenance: Provenance,
    /// What the sandbox guarantees for every plugin (reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<&'static [Guarantee]>,
    /// Where it is installed: grants and bindings in force (reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    installed: Option<Installed>,
    /// When the report was made (reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    generated_at: Option<String>,
}

/// What the store this config names says about the plugin.
#[derive(Debug, Serialize)]
struct Installed {
    /// Whether a plugin of this name is installed there.
    installed: bool,
    /// Why nothing more could be told, when nothing could.
    note: Option<String>,
    /// The installed version.
    version: Option<String>,
    /// The sha256 pinned at install.
    sha256: Option<String>,
    /// Whether the installed component is the audited one.
    same_component: Option<bool>,
    /// Whether it is enabled.
    enabled: Option<bool>,
    /// Action kinds granted.
    grants: Vec<String>,
    /// Action kinds declared but not granted.
    not_granted: Vec<String>,
    /// The limit requests granted.
    limit_grants: Option<LimitRequest>,
    /// The limits the audited version runs with there (requests held to the grant).
    limits_in_force: Option<Limits>,
    /// Requests of the audited version above the grant.
    held_limits: Vec<HeldLimit>,
    /// Its bindings: where it runs, on what, to where, with which settings.
    bindings: Vec<Binding>,
}

/// Runs the command; exit 1 when the plugin could not be loaded.
pub fn run(args: Args, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let keyring = config.plugins.keyring().map_err(anyhow::Error::msg)?;
    let package = PluginPackage::open(&args.dir)?;
    // The config's limits; its compile cache unless the command line names one.
    let mut runtime_config = config.runtime_config()?;
    if args.cache.no_cache || args.cache.cache_dir.is_some() {
        runtime_config.cache_dir = args.cache.runtime_config().cache_dir;
    }
    let defaults = runtime_config.defaults;
    let runtime = Runtime::new(runtime_config);
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
    let trust = report::examine(&package, &keyring);
    let installed = match args.report {
        Some(_) => Some(super::block_on(installed(
            &config, &runtime, &package, &defaults,
        ))?),
        None => None,
    };
    let report = Report {
        dir: args.dir.display().to_string(),
        audit,
        signature: trust.signature,
        provenance: trust.provenance,
        sandbox: args.report.map(|_| SANDBOX_GUARANTEES),
        installed,
        generated_at: args
            .report
            .map(|_| crate::clock::utc_seconds(crate::store::now_ms())),
    };
    match args.report {
        Some(ReportFormat::Md) => outln!("{}", markdown(&report))?,
        Some(ReportFormat::Json) => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        None if args.json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        None => print_text(&report)?,
    }
    Ok(if report.audit.loadable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Reads what the configured store says about the plugin, without
/// creating a store that is not there.
async fn installed(
    config: &Config,
    runtime: &Runtime,
    package: &PluginPackage,
    defaults: &Limits,
) -> anyhow::Result<Installed> {
    let mut out = Installed {
        installed: false,
        note: None,
        version: None,
        sha256: None,
        same_component: None,
        enabled: None,
        grants: Vec::new(),
        not_granted: Vec::new(),
        limit_grants: None,
        limits_in_force: None,
        held_limits: Vec::new(),
        bindings: Vec::new(),
    };
    let database = config.store.location().map_err(anyhow::Error::msg)?;
    if let Database::Sqlite(path) = &database
        && !path.exists()
    {
        out.note = Some(format!(
            "no store at {}: not installed where this config points",
            path.display()
        ));
        return Ok(out);
    }
    let store = match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        Store::open(&database),
    )
    .await
    {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => {
            out.note = Some(format!("the store cannot be read: {e}"));
            return Ok(out);
        }
        Err(_) => {
            out.note = Some("the store did not answer within 10 s".into());
            return Ok(out);
        }
    };
    let name = &package.manifest.name;
    let Some(record) = store.plugin(name).await? else {
        out.note = Some(format!(
            "no plugin named `{name}` is installed where this config points"
        ));
        return Ok(out);
    };
    let request = grants::in_force(&package.manifest.limits, &record.limit_grants, defaults);
    out.installed = true;
    out.version = Some(record.version.clone());
    out.same_component = Some(record.sha256 == package.sha256);
    out.sha256 = Some(record.sha256.clone());
    out.enabled = Some(record.enabled);
    out.not_granted = package
        .manifest
        .actions
        .iter()
        .filter(|a| !record.grants.contains(a))
        .cloned()
        .collect();
    out.grants = record.grants.clone();
    out.held_limits = grants::held(&package.manifest.limits, &record.limit_grants, defaults);
    out.limits_in_force = defaults
        .with_requests(&request, &runtime.config().ceiling)
        .ok();
    out.limit_grants = Some(record.limit_grants);
    out.bindings = store.bindings(Some(name)).await?;
    Ok(out)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn print_text(report: &Report) -> std::io::Result<()> {
    let r = &report.audit;
    let m = &r.manifest;
    outln!("plugin      {} {} — {}", m.name, m.version, m.description)?;
    outln!("directory   {}", report.dir)?;
    outln!("component   {} ({} bytes)", r.component, r.size_bytes)?;
    outln!("sha256      {}", r.sha256)?;
    outln!("signature   {}", report.signature.summary())?;
    outln!("producers   {}", report.provenance.producers_said())?;
    match &report.provenance.dependencies {
        Some(deps) => outln!(
            "depends on  {} crates (embedded by cargo auditable): {}",
            deps.len(),
            deps.iter()
                .filter(|d| !d.root)
                .map(|d| format!("{} {}", d.name, d.version))
                .collect::<Vec<_>>()
                .join(", ")
        )?,
        None => outln!("depends on  not recorded in the component")?,
    }
    if let Some(problem) = &report.provenance.problem {
        outln!("metadata    {problem}")?;
    }
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
    outln!("actions     {}", list_or_none(&m.actions))?;
    outln!(
        "digests     {}",
        match (m.digests, r.takes_digests) {
            (_, true) =>
                "takes digests: bursts reach it as one handle-digest call (contract 0.3.0)",
            (true, false) => "asked for (digests = true), but the component cannot take them",
            (false, false) => "no: every event is its own call",
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
        outln!("limits      {}", limits_said(l))?;
    }
    match &r.problem {
        None => outln!("loadable    yes")?,
        Some(p) => outln!("loadable    NO: {p}")?,
    }
    Ok(())
}

fn limits_said(l: &Limits) -> String {
    format!(
        "fuel {} · deadline {} ms · memory {} MiB · stack {} KiB · {} actions · {} B/action · {} B total · {} B log",
        l.fuel,
        l.deadline_ms,
        l.memory_bytes / (1024 * 1024),
        l.stack_bytes / 1024,
        l.max_actions,
        l.action_bytes,
        l.total_bytes,
        l.log_bytes
    )
}

/// Text for a Markdown table cell: no pipes or newlines, and backticks
/// kept out so a value cannot end a code span.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace(['\n', '\r'], " ")
        .replace('`', "'")
}

/// The report as Markdown.
fn markdown(report: &Report) -> String {
    use std::fmt::Write as _;
    let r = &report.audit;
    let m = &r.manifest;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Plugin audit: {} {}\n",
        cell(&m.name),
        cell(&m.version)
    );
    let _ = writeln!(
        s,
        "Generated by `pagehook plugin audit --report md` at {} from `{}`. Auditing compiles the component and never runs it.\n",
        report.generated_at.as_deref().unwrap_or(""),
        cell(&report.dir)
    );
    let _ = writeln!(s, "## Identity\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Description | {} |", cell(&m.description));
    let _ = writeln!(
        s,
        "| Component | `{}` ({} bytes) |",
        cell(&r.component),
        r.size_bytes
    );
    let _ = writeln!(s, "| sha256 | `{}` |", r.sha256);
    let contract = match r.built_against {
        Some(built) if built.version() == m.wit => {
            format!("{built} (read from the component's imports)")
        }
        Some(built) => format!(
            "{built} in the component, but the manifest says {}",
            cell(&m.wit)
        ),
        None => format!("pagehook:plugin@{} (the manifest's word)", cell(&m.wit)),
    };
    let _ = writeln!(s, "| Contract | {contract} |");
    let _ = writeln!(
        s,
        "| Loadable | {} |\n",
        match &r.problem {
            None => "yes".to_string(),
            Some(p) => format!("**no**: {}", cell(p)),
        }
    );

    let _ = writeln!(s, "## Signature\n");
    let sig = &report.signature;
    let _ = writeln!(s, "**{}**\n", cell(&sig.summary()));
    let _ = writeln!(
        s,
        "Checked offline against `[plugins] trusted-keys` and `revoked-keys` of this configuration. A verified signature proves that the holder of that key signed exactly this name, version, contract, component and plugin.toml; it says nothing about what the code does (see docs/security.md).\n"
    );

    let _ = writeln!(s, "## Provenance (the builder's own words)\n");
    let p = &report.provenance;
    if p.producers.is_empty() {
        let _ = writeln!(s, "The component records no producers.\n");
    } else {
        let _ = writeln!(s, "| Field | Name | Version |\n|---|---|---|");
        for producer in &p.producers {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                cell(&producer.field),
                cell(&producer.name),
                cell(&producer.version)
            );
        }
        s.push('\n');
    }
    match &p.dependencies {
        Some(deps) => {
            let _ = writeln!(
                s,
                "Embedded dependency list (`cargo auditable`), {} packages:\n\n| Crate | Version | Source | Kind |\n|---|---|---|---|",
                deps.len()
            );
            for d in deps {
                let _ = writeln!(
                    s,
                    "| {}{} | {} | {} | {} |",
                    cell(&d.name),
                    if d.root { " (built)" } else { "" },
                    cell(&d.version),
                    cell(&d.source),
                    cell(&d.kind)
                );
            }
            s.push('\n');
        }
        None => {
            let _ = writeln!(s, "The component embeds no dependency list.\n");
        }
    }
    if let Some(problem) = &p.problem {
        let _ = writeln!(s, "Metadata problem: {}\n", cell(problem));
    }

    let _ = writeln!(s, "## What it declares\n");
    let _ = writeln!(s, "- Events: {}", cell(&m.events.join(", ")));
    let _ = writeln!(s, "- Actions: {}", cell(&list_or_none(&m.actions)));
    if m.settings.is_empty() {
        let _ = writeln!(s, "- Settings: none");
    }
    for (name, setting) in &m.settings {
        let _ = writeln!(
            s,
            "- Setting `{}`{}: {}",
            cell(name),
            if setting.required { " (required)" } else { "" },
            cell(&setting.description)
        );
    }
    s.push('\n');

    let _ = writeln!(s, "## What the component imports and exports\n");
    let _ = writeln!(s, "| Import | Sandbox |\n|---|---|");
    for i in &r.imports {
        let _ = writeln!(
            s,
            "| `{}` | {} |",
            cell(&i.name),
            if i.allowed {
                "allowed, grants nothing"
            } else {
                "**refused**"
            }
        );
    }
    s.push('\n');
    for e in &r.exports {
        let _ = writeln!(s, "- export `{}`", cell(e));
    }
    s.push('\n');

    let _ = writeln!(s, "## Limits\n");
    if let Some(l) = &r.limits {
        let _ = writeln!(
            s,
            "As requested, on this host's defaults: {}.\n",
            limits_said(l)
        );
    }
    if let Some(installed) = &report.installed
        && let Some(l) = &installed.limits_in_force
    {
        let _ = writeln!(
            s,
            "In force where it is installed (requests held to the admin's grant): {}.\n",
            limits_said(l)
        );
        for h in &installed.held_limits {
            let _ = writeln!(
                s,
                "- `{}` requests {}, not granted: runs with {}",
                h.limit, h.requested, h.in_force
            );
        }
        if !installed.held_limits.is_empty() {
            s.push('\n');
        }
    }

    let _ = writeln!(s, "## Sandbox guarantees (every plugin)\n");
    for g in report.sandbox.unwrap_or(SANDBOX_GUARANTEES) {
        let _ = writeln!(s, "- {} ({})", g.guarantee, g.enforced_by);
    }
    s.push('\n');

    let _ = writeln!(s, "## Where it is installed\n");
    match &report.installed {
        None => {
            let _ = writeln!(s, "Not looked up.");
        }
        Some(i) if !i.installed => {
            let _ = writeln!(s, "{}", cell(i.note.as_deref().unwrap_or("Not installed.")));
        }
        Some(i) => {
            let _ = writeln!(
                s,
                "- Installed version {} ({}), sha256 `{}`{}",
                cell(i.version.as_deref().unwrap_or("?")),
                if i.enabled == Some(true) {
                    "enabled"
                } else {
                    "disabled"
                },
                i.sha256.as_deref().unwrap_or("?"),
                if i.same_component == Some(true) {
                    ": the audited component"
                } else {
                    ": **not** the audited component"
                }
            );
            let _ = writeln!(s, "- Granted actions: {}", cell(&list_or_none(&i.grants)));
            let _ = writeln!(
                s,
                "- Declared, not granted: {}",
                cell(&list_or_none(&i.not_granted))
            );
            let _ = writeln!(s, "- Bindings: {}\n", i.bindings.len());
            if !i.bindings.is_empty() {
                let _ = writeln!(
                    s,
                    "| Id | Scope | Events | Destinations | Settings |\n|---|---|---|---|---|"
                );
                for b in &i.bindings {
                    let settings: Vec<String> =
                        b.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} |",
                        b.id,
                        cell(&b.scope.to_string()),
                        cell(&b.events.join(", ")),
                        cell(&b.destinations.join(", ")),
                        cell(&settings.join(", "))
                    );
                }
            }
        }
    }
    s
}
