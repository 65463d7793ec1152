//! Installing, granting, enabling, disabling, resetting and removing
//! plugins. An install validates the whole package (manifest, component,
//! grants) before it copies or records anything.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::config::Config;
use crate::manifest::Manifest;
use crate::model::ACTION_KINDS;
use crate::runtime::{PluginPackage, Runtime};
use crate::store::{PluginRecord, Store, now_ms};

use super::changes::{ChangeAction, log_change};
use super::list_or_none;
use super::{AdminError, AdminResult};

/// `grants` without repeats, after checking each is an action kind that
/// `manifest` declares. Any subset may be granted: an action the plugin
/// declares but was not granted is rejected at dispatch and audited.
pub fn checked_grants(manifest: &Manifest, grants: &[String]) -> AdminResult<Vec<String>> {
    let mut granted = Vec::new();
    for g in grants {
        if !ACTION_KINDS.contains(&g.as_str()) {
            return Err(AdminError::Invalid(format!(
                "cannot grant `{g}`: action kinds are {}",
                ACTION_KINDS.join(", ")
            )));
        }
        if !manifest.actions.contains(g) {
            return Err(AdminError::Invalid(format!(
                "cannot grant `{g}`: plugin `{}` does not declare it (it declares: {})",
                manifest.name,
                list_or_none(&manifest.actions)
            )));
        }
        if !granted.contains(g) {
            granted.push(g.clone());
        }
    }
    Ok(granted)
}

/// Sets what an installed plugin may do (a subset of what it declares);
/// its breaker and failure count are left as they are.
pub async fn set_grants(
    store: &Store,
    actor: &str,
    name: &str,
    grants: &[String],
) -> AdminResult<PluginRecord> {
    let plugin = store.require_plugin(name).await?;
    let granted = checked_grants(&plugin.manifest, grants)?;
    store.set_plugin_grants(name, &granted).await?;
    let plugin = store.require_plugin(name).await?;
    let detail = json!({ "grants": plugin.grants });
    log_change(store, actor, ChangeAction::PluginGrant, name, detail).await;
    Ok(plugin)
}

/// Lets a disabled plugin run again (`enabled`), or stops calling it; its
/// bindings stay either way.
pub async fn set_enabled(
    store: &Store,
    actor: &str,
    name: &str,
    enabled: bool,
) -> AdminResult<PluginRecord> {
    store.set_plugin_enabled(name, enabled).await?;
    let action = if enabled {
        ChangeAction::PluginEnable
    } else {
        ChangeAction::PluginDisable
    };
    log_change(store, actor, action, name, json!({})).await;
    Ok(store.require_plugin(name).await?)
}

/// Closes a plugin's failure breaker.
pub async fn reset(store: &Store, actor: &str, name: &str) -> AdminResult<PluginRecord> {
    store.reset_breaker(name).await?;
    log_change(store, actor, ChangeAction::PluginReset, name, json!({})).await;
    Ok(store.require_plugin(name).await?)
}

/// Removes a plugin and its bindings; how many bindings went with it.
pub async fn remove(store: &Store, actor: &str, name: &str) -> AdminResult<usize> {
    let bindings_removed = store.remove_plugin(name).await?;
    let detail = json!({ "bindings_removed": bindings_removed });
    log_change(store, actor, ChangeAction::PluginRemove, name, detail).await;
    Ok(bindings_removed)
}

/// Installs (or upgrades) the plugin in `dir`, granting `grants`.
///
/// The component is compiled and checked exactly as dispatch will load it
/// (imports, exports, limits), then the package is copied into the
/// configured plugins directory under its hash, so later changes to `dir`
/// cannot change what runs. `via` says how it came (`cli`, `upload`,
/// `path`) for the change log.
pub async fn install_plugin(
    store: &Store,
    runtime: &Runtime,
    config: &Config,
    install: Install<'_>,
) -> AdminResult<PluginRecord> {
    let Install {
        dir,
        grants,
        actor,
        via,
    } = install;
    let package = PluginPackage::open(dir).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let manifest = &package.manifest;
    let upgrade = store.plugin(&manifest.name).await?.is_some();
    let granted = checked_grants(manifest, grants)?;
    runtime
        .load(&package)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let dest =
        config
            .store
            .plugins_dir
            .join(format!("{}-{}", manifest.name, &package.sha256[..16]));
    copy_package(&package, &dest).map_err(|e| {
        AdminError::Internal(format!("cannot copy the plugin to {}: {e}", dest.display()))
    })?;
    let record = PluginRecord {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        description: manifest.description.clone(),
        sha256: package.sha256.clone(),
        dir: absolute(&dest).display().to_string(),
        manifest: manifest.clone(),
        grants: granted,
        enabled: true,
        failures: 0,
        breaker_until: None,
        breaker_error: None,
        installed_at: now_ms(),
    };
    store.install_plugin(&record).await?;
    let action = if upgrade {
        ChangeAction::PluginUpgrade
    } else {
        ChangeAction::PluginInstall
    };
    let detail = json!({ "version": record.version, "sha256": record.sha256, "grants": record.grants, "via": via });
    log_change(store, actor, action, &record.name, detail).await;
    Ok(record)
}

/// What an admin gives to install a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Install<'a> {
    /// The plugin's directory (plugin.toml and its component).
    pub dir: &'a Path,
    /// The action kinds granted.
    pub grants: &'a [String],
    /// Who installs it, for the change log.
    pub actor: &'a str,
    /// How it came: `cli`, `upload` or `path`.
    pub via: &'a str,
}

fn copy_package(package: &PluginPackage, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    std::fs::copy(package.dir.join("plugin.toml"), dest.join("plugin.toml"))?;
    std::fs::write(
        dest.join(&package.manifest.component),
        package.wasm.as_slice(),
    )?;
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
