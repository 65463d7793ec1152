//! The change log: who changed what through the admin API or the console
//! (installs, grants, connections, bindings, retries, sign-ins).
//!
//! It is a different thing from the `audit` table, which records what each
//! plugin asked for and whether the host allowed it. What it must never
//! hold: a secret (callers put names and ids in `detail`, never tokens).

use serde::Serialize;

/// One change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    /// Who: `admin (API token)`, `admin (console)`, `jdoe (Confluence user on wiki)`.
    pub actor: String,
    /// What, as `resource.verb`: `plugin.install`, `binding.add`, ...
    pub action: String,
    /// Which thing: a plugin or connection name, a binding or delivery id.
    pub target: String,
    /// What else is worth knowing (a space, the grants given); no secrets.
    pub detail: serde_json::Value,
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChangeRecord {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
}

/// Which changes to list: newest first, a page at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeQuery {
    /// Only changes older than this id (the next page).
    pub before: Option<i64>,
    pub limit: usize,
}
