//! The sandbox: loads plugin components and calls them under limits.
//!
//! Loading compiles (or fetches from the on-disk cache) a component, checks
//! that it imports nothing beyond the plugin world and WASI 0.2, and keeps one
//! `InstancePre` per plugin. Every call then gets a fresh store and instance
//! with fuel, an epoch deadline, a memory limiter and a bounded log, and ends
//! in either the plugin's actions or a typed [`PluginError`]; a misbehaving
//! plugin never takes the host down with it.
//!
//! This module must never give a plugin anything from the host: no files,
//! network, environment, secrets, clock or shared state between calls.

pub mod audit;
mod cache;
mod clocks;
pub mod contract;
mod engine;
mod error;
mod imports;
mod limits;
mod sandbox;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Store, Trap};

pub use cache::{CacheOutcome, ComponentCache};
pub use contract::Contract;
pub use error::{LoadError, PluginError};
pub use imports::{Surface, allowed as import_allowed};
pub use limits::Limits;

use crate::digest::Digest as EventDigest;
use crate::manifest::Manifest;
use crate::model::{Action, Event};
use contract::{Linkers, Prepared};
use sandbox::{CallState, LimitHit};

/// Most calls' worth of fuel and deadline one digest call gets (see
/// [`LoadedPlugin::call_digest`]).
pub const DIGEST_BUDGET_CALLS: usize = 10;

/// A plugin directory read from disk: manifest, component bytes and hash.
#[derive(Debug, Clone)]
pub struct PluginPackage {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// Its validated manifest.
    pub manifest: Manifest,
    /// The component's bytes.
    pub wasm: Arc<Vec<u8>>,
    /// Lowercase hex sha256 of `wasm`: what install pins and audit shows.
    pub sha256: String,
}

impl PluginPackage {
    /// Reads `<dir>/plugin.toml` and the component it names.
    pub fn open(dir: &Path) -> Result<PluginPackage, LoadError> {
        let manifest = Manifest::load(dir)?;
        let path = dir.join(&manifest.component);
        let wasm = std::fs::read(&path).map_err(|source| LoadError::ReadComponent {
            path: path.display().to_string(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&wasm));
        Ok(PluginPackage {
            dir: dir.to_path_buf(),
            manifest,
            wasm: Arc::new(wasm),
            sha256,
        })
    }
}

/// Host-wide sandbox settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Limits for plugins that request nothing.
    pub defaults: Limits,
    /// The most a plugin may request.
    pub ceiling: Limits,
    /// Where compiled components are kept; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            defaults: Limits::default(),
            ceiling: Limits::ceiling(),
            cache_dir: ComponentCache::default_dir(),
        }
    }
}

/// An engine and the linkers (one per contract version) made for it.
type EngineAndLinkers = (Engine, Arc<Linkers>);

/// Compiles, checks and instantiates plugins. Cheap to share across threads.
pub struct Runtime {
    config: RuntimeConfig,
    cache: ComponentCache,
    /// Engines (with their linkers) by stack limit in bytes.
    engines: Mutex<HashMap<u64, EngineAndLinkers>>,
}

/// A component compiled for inspection, whether or not it may run.
pub struct Compiled {
    component: Component,
    engine: Engine,
    linkers: Arc<Linkers>,
    /// What it imports and exports.
    pub surface: Surface,
    /// Whether it came from the compiled cache.
    pub cache: CacheOutcome,
    /// Time to compile or deserialize it.
    pub load_time: Duration,
    /// The limits it would run under.
    pub limits: Limits,
}

impl Compiled {
    /// The contract version the component speaks, read from its imports;
    /// it must be the one its manifest names.
    pub fn contract(&self, manifest: &Manifest) -> Result<Contract, LoadError> {
        let declared =
            Contract::from_version(&manifest.wit).ok_or_else(|| LoadError::Contract {
                plugin: manifest.name.clone(),
                message: format!(
                    "its manifest names contract {}, which this host does not run",
                    manifest.wit
                ),
            })?;
        match Contract::of_imports(self.surface.imports.iter().map(String::as_str)) {
            Some(built) if built != declared => Err(LoadError::Contract {
                plugin: manifest.name.clone(),
                message: format!(
                    "its component was built against {built}, but its manifest says `wit = \"{}\"`",
                    declared.version()
                ),
            }),
            // A component that imports no types (a world whose log it never
            // calls) is taken at its manifest's word; linking checks the rest.
            _ => Ok(declared),
        }
    }
}

impl Runtime {
    /// A runtime with the given settings; engines are made on first use.
    pub fn new(config: RuntimeConfig) -> Runtime {
        let cache = ComponentCache::new(config.cache_dir.clone());
        Runtime {
            config,
            cache,
            engines: Mutex::new(HashMap::new()),
        }
    }

    /// The settings this runtime was made with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The limits a manifest's requests resolve to on this host.
    pub fn limits_for(&self, manifest: &Manifest) -> Result<Limits, LoadError> {
        self.config
            .defaults
            .with_requests(&manifest.limits, &self.config.ceiling)
            .map_err(|message| LoadError::Limits {
                plugin: manifest.name.clone(),
                message,
            })
    }

    fn engine(&self, stack_bytes: u64) -> Result<EngineAndLinkers, LoadError> {
        let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((engine, linkers)) = engines.get(&stack_bytes) {
            return Ok((engine.clone(), linkers.clone()));
        }
        let internal = |e: wasmtime::Error| LoadError::Cache {
            path: "engine".into(),
            message: format!("{e:#}"),
        };
        let engine = engine::build(stack_bytes, &self.config.ceiling).map_err(internal)?;
        let linkers = Arc::new(Linkers::new(&engine).map_err(internal)?);
        engines.insert(stack_bytes, (engine.clone(), linkers.clone()));
        Ok((engine, linkers))
    }

    /// Compiles (or loads from cache) a package's component without
    /// deciding whether it may run: what `audit` shows.
    pub fn compile(&self, package: &PluginPackage) -> Result<Compiled, LoadError> {
        let limits = self.limits_for(&package.manifest)?;
        let (engine, linkers) = self.engine(limits.stack_bytes)?;
        let (component, cache, load_time) = self
            .cache
            .load(&engine, &package.wasm, &package.sha256)
            .map_err(|e| LoadError::NotAComponent {
                plugin: package.manifest.name.clone(),
                path: package
                    .dir
                    .join(&package.manifest.component)
                    .display()
                    .to_string(),
                message: format!("{e:#}"),
            })?;
        let surface = imports::surface(&engine, &component);
        Ok(Compiled {
            component,
            engine,
            linkers,
            surface,
            cache,
            load_time,
            limits,
        })
    }

    /// Compiles, checks and prepares a package for calls.
    pub fn load(&self, package: &PluginPackage) -> Result<LoadedPlugin, LoadError> {
        let compiled = self.compile(package)?;
        self.prepare(package, compiled)
    }

    /// Checks a compiled component against the sandbox and prepares it.
    pub fn prepare(
        &self,
        package: &PluginPackage,
        compiled: Compiled,
    ) -> Result<LoadedPlugin, LoadError> {
        let name = package.manifest.name.clone();
        if let Some(import) = imports::first_forbidden(&compiled.surface) {
            return Err(LoadError::ForbiddenImport {
                plugin: name,
                import: import.to_string(),
            });
        }
        let contract = compiled.contract(&package.manifest)?;
        let pre = Prepared::new(&compiled.linkers, &compiled.component, contract).map_err(|e| {
            LoadError::WrongExports {
                plugin: name.clone(),
                contract,
                message: format!("{e:#}"),
            }
        })?;
        if package.manifest.digests && !pre.exports_digests() {
            return Err(LoadError::WrongExports {
                plugin: name,
                contract,
                message: "its manifest says `digests = true`, but the component does not export \
                          `handle-digest`: build it against the `digest-plugin` world (the Rust \
                          SDK does), or remove `digests = true`"
                    .into(),
            });
        }
        Ok(LoadedPlugin {
            inner: Arc::new(Loaded {
                name,
                sha256: package.sha256.clone(),
                manifest: package.manifest.clone(),
                contract,
                limits: compiled.limits,
                engine: compiled.engine,
                pre,
                cache: compiled.cache,
                load_time: compiled.load_time,
            }),
        })
    }
}

/// A plugin ready to be called; clones share the compiled component.
#[derive(Clone)]
pub struct LoadedPlugin {
    inner: Arc<Loaded>,
}

struct Loaded {
    name: String,
    sha256: String,
    manifest: Manifest,
    contract: Contract,
    limits: Limits,
    engine: Engine,
    pre: Prepared,
    cache: CacheOutcome,
    load_time: Duration,
}

/// Bytes `action` takes as JSON, counted without building the text: the
/// limit check runs on every action of every call.
fn serialized_len(action: &Action) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, action) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// What one call did: its outcome plus what it cost and logged.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The actions, or why there are none.
    pub outcome: Result<Vec<Action>, PluginError>,
    /// What the plugin logged (bounded by its log limit).
    pub log: String,
    /// Fuel the call consumed.
    pub fuel_used: u64,
    /// Wall-clock time of instantiation plus call.
    pub elapsed: Duration,
}

impl LoadedPlugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The sha256 of the component it runs.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The contract version its component was built against.
    pub fn contract(&self) -> Contract {
        self.inner.contract
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Whether the component came from the compiled cache, and how long loading took.
    pub fn load_info(&self) -> (CacheOutcome, Duration) {
        (self.inner.cache, self.inner.load_time)
    }

    /// Whether bursts reach this plugin as digests: its manifest says
    /// `digests = true` and its component exports `handle-digest` (checked
    /// at load).
    pub fn takes_digests(&self) -> bool {
        self.inner.manifest.digests && self.inner.pre.exports_digests()
    }

    /// Runs `handle-digest(digest, settings)` in a fresh instance under the
    /// limits, with the fuel and deadline of one call per event in it (at
    /// most [`DIGEST_BUDGET_CALLS`] calls' worth): a digest does the work of
    /// many calls, and must not fail where those calls would not.
    ///
    /// The plugin's clocks read the digest's last event's time.
    pub fn call_digest(&self, digest: &EventDigest, settings: &[(String, String)]) -> CallReport {
        let calls = digest.events.len().clamp(1, DIGEST_BUDGET_CALLS) as u64;
        let at = digest.events.last().map_or(0, |e| e.occurred_at_ms);
        self.run(at, calls, |pre, store| {
            pre.call_digest(store, digest, settings)
        })
    }

    /// Runs `handle(event, settings)` in a fresh instance under the limits.
    ///
    /// The plugin's clocks read the event's time, not the host's, so calling
    /// again with the same event and settings gives the same answer.
    pub fn call(&self, event: &Event, settings: &[(String, String)]) -> CallReport {
        self.run(event.occurred_at_ms, 1, |pre, store| {
            pre.call(store, event, settings)
        })
    }

    /// One call in a fresh store whose clocks read `at`, with `calls` times
    /// the per-call fuel and deadline (the other limits as they are).
    fn run(
        &self,
        at: u64,
        calls: u64,
        call: impl FnOnce(&Prepared, &mut Store<CallState>) -> wasmtime::Result<contract::Returned>,
    ) -> CallReport {
        let start = Instant::now();
        let p = &*self.inner;
        let mut store = Store::new(
            &p.engine,
            CallState::new(p.limits.memory_bytes, p.limits.log_bytes, at),
        );
        store.limiter(|s| &mut s.limiter);
        let fuel = p.limits.fuel.saturating_mul(calls);
        let fuel_set = store.set_fuel(fuel);
        store.set_epoch_deadline(engine::ticks(
            p.limits.deadline().saturating_mul(calls as u32),
        ));
        store.epoch_deadline_trap();

        let result = fuel_set.and_then(|()| call(&p.pre, &mut store));
        let fuel_used = fuel - store.get_fuel().unwrap_or(0);
        let log = store.data().log.text();
        let outcome = match result {
            Ok(Ok(actions)) => self.check_actions(actions),
            Ok(Err(message)) => Err(PluginError::Returned {
                plugin: p.name.clone(),
                message,
            }),
            Err(e) => Err(self.classify(&e, &log, calls)),
        };
        CallReport {
            outcome,
            log,
            fuel_used,
            elapsed: start.elapsed(),
        }
    }

    fn check_actions(
        &self,
        actions: Vec<(&'static str, Result<Action, String>)>,
    ) -> Result<Vec<Action>, PluginError> {
        let p = &*self.inner;
        let limits = &p.limits;
        if actions.len() > limits.max_actions {
            return Err(PluginError::TooManyActions {
                plugin: p.name.clone(),
                count: actions.len(),
                limit: limits.max_actions,
            });
        }
        let mut total = 0;
        let mut out = Vec::with_capacity(actions.len());
        for (kind, action) in actions {
            let action = action.map_err(|message| PluginError::InvalidAction {
                plugin: p.name.clone(),
                action: kind.to_string(),
                message,
            })?;
            let bytes = serialized_len(&action);
            if bytes > limits.action_bytes {
                return Err(PluginError::ActionTooLarge {
                    plugin: p.name.clone(),
                    bytes,
                    limit: limits.action_bytes,
                });
            }
            total += bytes;
            if total > limits.total_bytes {
                return Err(PluginError::OutputTooLarge {
                    plugin: p.name.clone(),
                    bytes: total,
                    limit: limits.total_bytes,
                });
            }
            out.push(action);
        }
        Ok(out)
    }

    fn classify(&self, e: &wasmtime::Error, log: &str, calls: u64) -> PluginError {
        let plugin = self.inner.name.clone();
        let limits = &self.inner.limits;
        if let Some(hit) = e.downcast_ref::<LimitHit>() {
            return match hit {
                LimitHit::Memory | LimitHit::Table => PluginError::Memory {
                    plugin,
                    mib: limits.memory_bytes / (1024 * 1024),
                },
                LimitHit::Log => PluginError::LogLimit {
                    plugin,
                    limit: limits.log_bytes,
                },
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => PluginError::OutOfFuel {
                plugin,
                fuel: limits.fuel.saturating_mul(calls),
            },
            Some(Trap::Interrupt) => PluginError::Deadline {
                plugin,
                ms: limits.deadline_ms.saturating_mul(calls),
            },
            Some(Trap::StackOverflow) => PluginError::StackOverflow {
                plugin,
                kib: limits.stack_bytes / 1024,
            },
            Some(Trap::UnreachableCodeReached) => match panic_message(log) {
                Some(message) => PluginError::Panic { plugin, message },
                None => PluginError::Trap {
                    plugin,
                    message: "reached unreachable code (an abort)".into(),
                },
            },
            Some(trap) => PluginError::Trap {
                plugin,
                message: trap.to_string(),
            },
            None => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => PluginError::Trap {
                    plugin,
                    message: format!("called exit({})", exit.0),
                },
                None => PluginError::Trap {
                    plugin,
                    message: format!("{e:#}"),
                },
            },
        }
    }
}

/// Finds the message of a Rust guest panic in its captured stderr:
/// `thread '<unnamed>' panicked at src/lib.rs:3:5:\n<message>`.
fn panic_message(log: &str) -> Option<String> {
    let at = log.find("panicked at")?;
    let after = &log[at..];
    let (location_line, rest) = after.split_once('\n').unwrap_or((after, ""));
    let message: Vec<&str> = rest
        .lines()
        .take_while(|l| !l.starts_with("note:") && !l.is_empty())
        .collect();
    let location = location_line
        .trim_start_matches("panicked at ")
        .trim_end_matches(':');
    if message.is_empty() {
        Some(location_line.trim_end_matches(':').to_string())
    } else {
        Some(format!("{} (at {location})", message.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_is_found_in_rust_panic_output() {
        let log = "[info] starting\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom here\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(log).as_deref(),
            Some("boom here (at src/lib.rs:12:9)")
        );
        assert_eq!(panic_message("[info] nothing"), None);
    }

    #[test]
    fn serialized_len_counts_the_json_bytes() {
        let action = Action::PostSlack {
            channel: "#eng".into(),
            text: "naïve \"quoted\" text\n".into(),
            blocks: Some(serde_json::json!([{ "type": "divider" }])),
            thread_key: None,
        };
        assert_eq!(
            serialized_len(&action),
            serde_json::to_vec(&action).unwrap().len()
        );
    }
}
