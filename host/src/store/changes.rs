//! The change log: who changed what through the admin API or the console
//! (installs, grants, connections, bindings, retries, sign-ins).
//!
//! It is a different thing from the `audit` table, which records what each
//! plugin asked for and whether the host allowed it. What it must never
//! hold: a secret (callers put names and ids in `detail`, never tokens).

use serde::Serialize;

use super::search::MAX_PAGE;
use super::sql::{FromRow, Row};
use super::{Store, StoreError, StoreResult, now_ms};

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

impl FromRow for ChangeRecord {
    const COLUMNS: &'static str = "id, at, actor, action, target, detail";

    fn from_row(r: &dyn Row) -> StoreResult<ChangeRecord> {
        Ok(ChangeRecord {
            id: r.get("id")?,
            at: r.get("at")?,
            actor: r.get("actor")?,
            action: r.get("action")?,
            target: r.get("target")?,
            detail: r.json("detail", "change detail")?,
        })
    }
}

impl Store {
    /// Records who changed what; returns the change's id.
    pub async fn record_change(&self, c: &NewChange) -> StoreResult<i64> {
        self.query_opt(
            "INSERT INTO changes (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            vec![
                now_ms().into(),
                (&c.actor).into(),
                (&c.action).into(),
                (&c.target).into(),
                c.detail.to_string().into(),
            ],
            |r| r.get("id"),
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt {
            what: "change id",
            message: "the insert returned no id".into(),
        })
    }

    /// The change log, newest first.
    pub async fn changes(&self, q: &ChangeQuery) -> StoreResult<Vec<ChangeRecord>> {
        self.select(
            "FROM changes WHERE CAST(?1 AS BIGINT) IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
            vec![q.before.into(), q.limit.clamp(1, MAX_PAGE).into()],
        )
        .await
    }
}
