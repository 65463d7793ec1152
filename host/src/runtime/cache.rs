//! Compiled components on disk, so a restart loads a plugin in milliseconds.
//!
//! Compiling an 18 MB Python component takes seconds; loading its compiled
//! form takes milliseconds. Entries are keyed by the component's sha256 and
//! by the engine's compatibility hash plus this binary's version, so a new
//! Wasmtime, new engine settings or a changed component never reuse a stale
//! entry. The cache directory must be writable only by Pagehook: loading a
//! compiled artifact trusts it as native code.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component was obtained, for `audit` and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheOutcome {
    /// Loaded from a compiled artifact.
    Hit,
    /// Compiled now and written to the cache.
    Compiled,
    /// Compiled now; caching is off.
    Uncached,
}

/// Where the compiled artifacts live; `None` disables caching.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// A cache in `dir` (created on first write), or none.
    pub fn new(dir: Option<PathBuf>) -> ComponentCache {
        ComponentCache { dir }
    }

    /// The default location: `$PAGEHOOK_CACHE_DIR`, else `$XDG_CACHE_HOME/pagehook`
    /// or `~/.cache/pagehook`, else no cache.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("PAGEHOOK_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("pagehook"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("pagehook"))
    }

    /// Returns the compiled component, from the cache when possible.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> Result<(Component, CacheOutcome, Duration), wasmtime::Error> {
        let start = Instant::now();
        let Some(dir) = &self.dir else {
            let component = Component::new(engine, wasm)?;
            return Ok((component, CacheOutcome::Uncached, start.elapsed()));
        };
        let path = dir.join(format!("{sha256}-{:016x}.cwasm", engine_key(engine)));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` for an
            // engine with this compatibility hash, in a directory only
            // Pagehook writes to (documented in docs/security.md).
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit, start.elapsed())),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled component")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = write_atomically(dir, &path, &component.serialize()?) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled component cache");
            return Ok((component, CacheOutcome::Uncached, start.elapsed()));
        }
        Ok((component, CacheOutcome::Compiled, start.elapsed()))
    }
}

fn engine_key(engine: &Engine) -> u64 {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    h.finish()
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("component"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
