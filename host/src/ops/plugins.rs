//! Installing, granting, enabling, disabling, resetting and removing
//! plugins. An install validates the whole package (manifest, component,
//! grants) before it copies or records anything.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::manifest::Manifest;
use crate::model::ACTION_KINDS;
use crate::plugin_trust::diff::{self, Side, UpgradeDiff, VersionOrder};
use crate::plugin_trust::signature::{self, SignedFiles};
use crate::plugin_trust::{grants, report};
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

/// Installs (or upgrades) the plugin in `dir`.
///
/// Its signature is checked first (offline, against `[plugins]` keys: see
/// [`crate::plugin_trust::signature`]), then the component is compiled and
/// checked exactly as dispatch will load it (imports, exports, limits), then
/// the checked bytes are copied into the configured plugins directory under
/// the component's hash, so later changes to `dir` cannot change what runs.
///
/// An upgrade grants nothing new by itself: without explicit `grants` it
/// keeps the granted actions the new version still declares, and it keeps
/// the limit grant unless `grant_limits` (see
/// [`crate::plugin_trust::grants`]). A lower version than the installed one
/// is refused unless `allow_downgrade`. `via` says how it came (`cli`,
/// `upload`, `path`) for the change log, which keeps the upgrade's diff.
pub async fn install_plugin(
    store: &Store,
    runtime: &Runtime,
    config: &Config,
    install: Install<'_>,
) -> AdminResult<Installed> {
    let Install {
        dir,
        grants,
        actor,
        via,
        allow_downgrade,
        grant_limits,
    } = install;
    let package = PluginPackage::open(dir).map_err(|e| AdminError::Invalid(e.to_string()))?;
    let manifest = &package.manifest;
    let files = SignedFiles::read(dir).map_err(|e| {
        AdminError::Invalid(format!(
            "cannot read the plugin's files in {}: {e}",
            dir.display()
        ))
    })?;
    if std::str::from_utf8(&files.manifest)
        .ok()
        .and_then(|text| Manifest::parse(text).ok())
        .as_ref()
        != Some(manifest)
    {
        return Err(AdminError::Invalid(format!(
            "{}/plugin.toml changed while it was being installed; try again",
            dir.display()
        )));
    }
    let keyring = config.plugins.keyring().map_err(AdminError::Invalid)?;
    let signature = signature::check(&package, &files, &keyring);
    if let Some(refusal) = signature.refusal(&manifest.name, keyring.require_signature) {
        return Err(AdminError::Invalid(refusal));
    }
    let old = store.plugin(&manifest.name).await?;
    if let Some(old) = &old
        && diff::order(&old.version, &manifest.version) == VersionOrder::Downgrade
        && !allow_downgrade
    {
        return Err(AdminError::Invalid(format!(
            "plugin `{}` {} is installed and {} is older: a downgrade is refused unless you mean it (`--allow-downgrade`, or `allow_downgrade` in the API)",
            manifest.name, old.version, manifest.version
        )));
    }
    let granted = match (grants, &old) {
        (Some(grants), _) => checked_grants(manifest, grants)?,
        (None, Some(old)) => old
            .grants
            .iter()
            .filter(|g| manifest.actions.contains(g))
            .cloned()
            .collect(),
        (None, None) => Vec::new(),
    };
    let limit_grants = match &old {
        Some(old) if !grant_limits => old.limit_grants.clone(),
        _ => manifest.limits.clone(),
    };
    let compiled = runtime
        .compile(&package)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let imports = compiled.surface.imports.clone();
    runtime
        .prepare(&package, compiled)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let upgrade = old.as_ref().map(|old| {
        upgrade_diff(
            runtime,
            &keyring,
            old,
            &package,
            &imports,
            &signature,
            &limit_grants,
        )
    });
    let dest =
        config
            .store
            .plugins_dir
            .join(format!("{}-{}", manifest.name, &package.sha256[..16]));
    copy_package(&package, &files, &dest).map_err(|e| {
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
        limit_grants,
        enabled: true,
        failures: 0,
        breaker_until: None,
        breaker_error: None,
        installed_at: now_ms(),
    };
    store.install_plugin(&record).await?;
    let not_granted = not_granted(&record, upgrade.as_ref(), runtime);
    let action = if upgrade.is_some() {
        ChangeAction::PluginUpgrade
    } else {
        ChangeAction::PluginInstall
    };
    let detail = json!({
        "version": record.version,
        "sha256": record.sha256,
        "grants": record.grants,
        "via": via,
        "signature": signature.summary(),
        "signer": signature.signer,
        "not_granted": not_granted,
        "upgrade": upgrade,
    });
    log_change(store, actor, action, &record.name, detail).await;
    Ok(Installed {
        plugin: record,
        signature: signature.summary(),
        upgrade,
        not_granted,
    })
}

/// What an install did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Installed {
    /// The installed plugin.
    #[serde(flatten)]
    pub plugin: PluginRecord,
    /// The signature's verdict, in words (`unsigned`, `verified: signed by ...`).
    pub signature: String,
    /// What the upgrade changed; null for a first install.
    #[schema(value_type = Option<Object>)]
    pub upgrade: Option<UpgradeDiff>,
    /// What the plugin declares or requests that it is not granted, in words.
    pub not_granted: Vec<String>,
}

/// The capabilities `record` declares or requests without holding them.
fn not_granted(
    record: &PluginRecord,
    upgrade: Option<&UpgradeDiff>,
    runtime: &Runtime,
) -> Vec<String> {
    let mut out: Vec<String> = record
        .manifest
        .actions
        .iter()
        .filter(|a| !record.grants.contains(a))
        .map(|a| format!("action {a}"))
        .collect();
    for held in grants::held(
        &record.manifest.limits,
        &record.limit_grants,
        &runtime.config().defaults,
    ) {
        out.push(format!(
            "{} {} (runs with {})",
            held.limit, held.requested, held.in_force
        ));
    }
    if let Some(upgrade) = upgrade {
        for s in upgrade.settings.iter().filter(|s| s.change == "added") {
            out.push(format!("setting {} (no binding sets it)", s.name));
        }
    }
    out
}

/// The diff between the installed `old` and the new package (the installed
/// copy is read, and its component compiled from the cache, for its imports
/// and signature; what cannot be read is shown as unknown).
fn upgrade_diff(
    runtime: &Runtime,
    keyring: &crate::plugin_trust::Keyring,
    old: &PluginRecord,
    new: &PluginPackage,
    new_imports: &[String],
    new_signature: &crate::plugin_trust::SignatureCheck,
    limit_grants: &crate::manifest::LimitRequest,
) -> UpgradeDiff {
    let old_package = PluginPackage::open(Path::new(&old.dir)).ok();
    let old_imports = old_package
        .as_ref()
        .and_then(|p| runtime.compile(p).ok())
        .map(|c| c.surface.imports);
    let old_signature = match &old_package {
        Some(p) => report::examine(p, keyring).signature.summary(),
        None => "unknown (the installed copy cannot be read)".into(),
    };
    diff::diff(
        &Side {
            manifest: &old.manifest,
            imports: old_imports.as_deref(),
            signature: old_signature,
            sha256: &old.sha256,
        },
        &Side {
            manifest: &new.manifest,
            imports: Some(new_imports),
            signature: new_signature.summary(),
            sha256: &new.sha256,
        },
        limit_grants,
        &runtime.config().defaults,
    )
}

/// Grants `name` the limits its installed manifest requests.
pub async fn grant_limits(store: &Store, actor: &str, name: &str) -> AdminResult<PluginRecord> {
    let plugin = store.require_plugin(name).await?;
    store
        .set_plugin_limit_grants(name, &plugin.manifest.limits)
        .await?;
    let detail = json!({ "limits": plugin.manifest.limits });
    log_change(store, actor, ChangeAction::PluginGrant, name, detail).await;
    Ok(store.require_plugin(name).await?)
}

/// What an admin gives to install a plugin.
#[derive(Debug, Clone, Copy)]
pub struct Install<'a> {
    /// The plugin's directory (plugin.toml and its component).
    pub dir: &'a Path,
    /// The action kinds granted; `None` keeps an upgraded plugin's grants
    /// (those the new version still declares) and grants a new one nothing.
    pub grants: Option<&'a [String]>,
    /// Who installs it, for the change log.
    pub actor: &'a str,
    /// How it came: `cli`, `upload` or `path`.
    pub via: &'a str,
    /// Install a lower version than the installed one.
    pub allow_downgrade: bool,
    /// Grant an upgrade the limits it requests (a new install always is).
    pub grant_limits: bool,
}

/// Copies the checked files (the very bytes whose signature was checked)
/// and the component into `dest`.
fn copy_package(package: &PluginPackage, files: &SignedFiles, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    std::fs::write(dest.join("plugin.toml"), &files.manifest)?;
    std::fs::write(
        dest.join(&package.manifest.component),
        package.wasm.as_slice(),
    )?;
    files.write_signature(dest)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
