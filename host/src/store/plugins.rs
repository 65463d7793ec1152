//! Installed plugins: the pinned component hash, the admin's grants, the
//! enabled flag and the failure breaker.

use serde::Serialize;

use crate::manifest::Manifest;

/// An installed plugin.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PluginRecord {
    /// Its manifest name.
    pub name: String,
    /// Its manifest version.
    pub version: String,
    /// Its manifest description.
    pub description: String,
    /// The component's sha256, pinned at install: a different file will not load.
    pub sha256: String,
    /// Where install copied the package (manifest + component).
    pub dir: String,
    /// The manifest as installed.
    pub manifest: Manifest,
    /// Action kinds the admin granted (a subset of the manifest's).
    pub grants: Vec<String>,
    /// Disabled plugins keep their bindings but are not called.
    pub enabled: bool,
    /// Consecutive failed calls; reset by a success.
    pub failures: u32,
    /// While set and in the future, the breaker is open and calls are skipped.
    pub breaker_until: Option<i64>,
    /// The failure that opened the breaker.
    pub breaker_error: Option<String>,
    /// When it was (last) installed.
    pub installed_at: i64,
}
