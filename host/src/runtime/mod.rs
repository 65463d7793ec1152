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
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

pub use cache::{CacheOutcome, ComponentCache};
pub use error::{LoadError, PluginError};
pub use imports::{Surface, allowed as import_allowed};
pub use limits::Limits;

use crate::manifest::Manifest;
use crate::model::{Action, Event};
use crate::wit;
use sandbox::{CallState, LimitHit};

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

/// An engine and the linker made for it.
type EngineAndLinker = (Engine, Arc<Linker<CallState>>);

/// Compiles, checks and instantiates plugins. Cheap to share across threads.
pub struct Runtime {
    config: RuntimeConfig,
    cache: ComponentCache,
    /// Engines (with their linkers) by stack limit in bytes.
    engines: Mutex<HashMap<u64, EngineAndLinker>>,
}

/// A component compiled for inspection, whether or not it may run.
pub struct Compiled {
    component: Component,
    engine: Engine,
    linker: Arc<Linker<CallState>>,
    /// What it imports and exports.
    pub surface: Surface,
    /// Whether it came from the compiled cache.
    pub cache: CacheOutcome,
    /// Time to compile or deserialize it.
    pub load_time: Duration,
    /// The limits it would run under.
    pub limits: Limits,
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

    fn engine(&self, stack_bytes: u64) -> Result<(Engine, Arc<Linker<CallState>>), LoadError> {
        let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((engine, linker)) = engines.get(&stack_bytes) {
            return Ok((engine.clone(), linker.clone()));
        }
        let internal = |e: wasmtime::Error| LoadError::Cache {
            path: "engine".into(),
            message: format!("{e:#}"),
        };
        let engine = engine::build(stack_bytes, &self.config.ceiling).map_err(internal)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(internal)?;
        wit::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(internal)?;
        let linker = Arc::new(linker);
        engines.insert(stack_bytes, (engine.clone(), linker.clone()));
        Ok((engine, linker))
    }

    /// Compiles (or loads from cache) a package's component without
    /// deciding whether it may run: what `audit` shows.
    pub fn compile(&self, package: &PluginPackage) -> Result<Compiled, LoadError> {
        let limits = self.limits_for(&package.manifest)?;
        let (engine, linker) = self.engine(limits.stack_bytes)?;
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
            linker,
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
        let pre = compiled
            .linker
            .instantiate_pre(&compiled.component)
            .and_then(wit::PluginPre::new)
            .map_err(|e| LoadError::WrongExports {
                plugin: name.clone(),
                message: format!("{e:#}"),
            })?;
        Ok(LoadedPlugin {
            inner: Arc::new(Loaded {
                name,
                sha256: package.sha256.clone(),
                manifest: package.manifest.clone(),
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
    limits: Limits,
    engine: Engine,
    pre: wit::PluginPre<CallState>,
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

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Whether the component came from the compiled cache, and how long loading took.
    pub fn load_info(&self) -> (CacheOutcome, Duration) {
        (self.inner.cache, self.inner.load_time)
    }

    /// Runs `handle(event, settings)` in a fresh instance under the limits.
    ///
    /// The plugin's clocks read the event's time, not the host's, so calling
    /// again with the same event and settings gives the same answer.
    pub fn call(&self, event: &Event, settings: &[(String, String)]) -> CallReport {
        let start = Instant::now();
        let p = &*self.inner;
        let mut store = Store::new(
            &p.engine,
            CallState::new(
                p.limits.memory_bytes,
                p.limits.log_bytes,
                event.occurred_at_ms,
            ),
        );
        store.limiter(|s| &mut s.limiter);
        let fuel_set = store.set_fuel(p.limits.fuel);
        store.set_epoch_deadline(engine::ticks(p.limits.deadline()));
        store.epoch_deadline_trap();

        let wit_event = wit::types::Event::from(event);
        let result = fuel_set.and_then(|()| {
            let instance = p.pre.instantiate(&mut store)?;
            instance.call_handle(&mut store, &wit_event, &settings.to_vec())
        });
        let fuel_used = p.limits.fuel - store.get_fuel().unwrap_or(0);
        let log = store.data().log.text();
        let outcome = match result {
            Ok(Ok(actions)) => self.check_actions(actions),
            Ok(Err(message)) => Err(PluginError::Returned {
                plugin: p.name.clone(),
                message,
            }),
            Err(e) => Err(self.classify(&e, &log)),
        };
        CallReport {
            outcome,
            log,
            fuel_used,
            elapsed: start.elapsed(),
        }
    }

    fn check_actions(&self, actions: Vec<wit::types::Action>) -> Result<Vec<Action>, PluginError> {
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
        for action in actions {
            let kind = action_kind(&action);
            let action =
                Action::from_wit(action).map_err(|message| PluginError::InvalidAction {
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

    fn classify(&self, e: &wasmtime::Error, log: &str) -> PluginError {
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
                fuel: limits.fuel,
            },
            Some(Trap::Interrupt) => PluginError::Deadline {
                plugin,
                ms: limits.deadline_ms,
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

fn action_kind(action: &wit::types::Action) -> &'static str {
    match action {
        wit::types::Action::PostSlack(_) => "post-slack",
        wit::types::Action::DmSlack(_) => "dm-slack",
        wit::types::Action::PostTeams(_) => "post-teams",
        wit::types::Action::CreatePage(_) => "create-page",
        wit::types::Action::AddComment(_) => "add-comment",
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
