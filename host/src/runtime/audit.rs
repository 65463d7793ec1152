//! What a security reviewer reads about a plugin: what it is (sha256,
//! size), what it declares (its manifest), what its component really
//! imports and exports, whether the sandbox would load it and why not, and
//! the limits it would run under. Shared by `pagehook plugin audit` and the
//! console's plugin page.
//!
//! What it must never do: run the plugin's code (auditing only compiles it).

use serde::Serialize;

use super::{Contract, Limits, PluginPackage, Runtime, Surface, import_allowed};
use crate::manifest::Manifest;

/// The audit of one plugin package.
#[derive(Debug, Clone, Serialize)]
pub struct PluginAudit {
    /// The component's file name in the package.
    pub component: String,
    pub sha256: String,
    pub size_bytes: usize,
    pub manifest: Manifest,
    /// The contract version the component was built against, read from
    /// its imports (`None`: it imports no contract types this host knows).
    /// The sandbox runs it only when this is the version its manifest names.
    pub built_against: Option<Contract>,
    /// Every import, and whether the sandbox links it.
    pub imports: Vec<Import>,
    pub exports: Vec<String>,
    /// Whether the sandbox would load it.
    pub loadable: bool,
    /// Whether bursts reach it as digests (contract 0.3.0): its manifest
    /// says `digests = true` and its component exports `handle-digest`.
    pub takes_digests: bool,
    /// Why not.
    pub problem: Option<String>,
    /// The limits it would run under (once it compiles).
    pub limits: Option<Limits>,
    /// Whether the component came from the compiled cache, and how long
    /// loading took.
    #[serde(skip)]
    pub load: Option<(super::CacheOutcome, std::time::Duration)>,
}

/// One import of the component.
#[derive(Debug, Clone, Serialize)]
pub struct Import {
    pub name: String,
    /// Whether the sandbox links it (it grants nothing by itself).
    pub allowed: bool,
}

/// Compiles `package` (without running it) and reports what it is.
pub fn audit(runtime: &Runtime, package: &PluginPackage) -> PluginAudit {
    let mut report = PluginAudit {
        component: package.manifest.component.clone(),
        sha256: package.sha256.clone(),
        size_bytes: package.wasm.len(),
        manifest: package.manifest.clone(),
        built_against: None,
        imports: Vec::new(),
        exports: Vec::new(),
        loadable: false,
        takes_digests: false,
        problem: None,
        limits: None,
        load: None,
    };
    match runtime.compile(package) {
        Ok(compiled) => {
            report.load = Some((compiled.cache, compiled.load_time));
            let Surface { imports, exports } = compiled.surface.clone();
            report.built_against = Contract::of_imports(imports.iter().map(String::as_str));
            report.imports = imports
                .into_iter()
                .map(|name| Import {
                    allowed: import_allowed(&name),
                    name,
                })
                .collect();
            report.exports = exports;
            report.limits = Some(compiled.limits);
            match runtime.prepare(package, compiled) {
                Ok(loaded) => {
                    report.loadable = true;
                    report.takes_digests = loaded.takes_digests();
                }
                Err(e) => report.problem = Some(e.to_string()),
            }
        }
        Err(e) => report.problem = Some(e.to_string()),
    }
    report
}
