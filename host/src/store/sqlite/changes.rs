//! SQLite's change log and console sessions (see `store::changes`,
//! `store::sessions`).

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::changes::{ChangeQuery, ChangeRecord, NewChange};
use crate::store::search::MAX_PAGE;
use crate::store::sessions::{NewSession, SessionRecord};
use crate::store::{StoreResult, from_json, now_ms};

impl SqliteStore {
    /// Records one change; returns its id.
    pub fn record_change(&self, c: &NewChange) -> StoreResult<i64> {
        self.with(|conn| {
            conn.prepare_cached(
                "INSERT INTO changes (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )?
            .query_row(
                params![now_ms(), c.actor, c.action, c.target, c.detail.to_string()],
                |r| r.get(0),
            )
        })
    }

    /// Changes, newest first.
    pub fn changes(&self, q: &ChangeQuery) -> StoreResult<Vec<ChangeRecord>> {
        let rows: Vec<(ChangeRecord, String)> = self.with(|conn| {
            conn.prepare_cached(
                "SELECT id, at, actor, action, target, detail FROM changes
                 WHERE ?1 IS NULL OR id < ?1 ORDER BY id DESC LIMIT ?2",
            )?
            .query_map(params![q.before, q.limit.clamp(1, MAX_PAGE) as i64], |r| {
                Ok((
                    ChangeRecord {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        detail: serde_json::Value::Null,
                    },
                    r.get(5)?,
                ))
            })?
            .collect()
        })?;
        rows.into_iter()
            .map(|(mut c, detail)| {
                c.detail = from_json("change detail", &detail)?;
                Ok(c)
            })
            .collect()
    }

    /// Stores a new session.
    pub fn create_session(&self, s: &NewSession) -> StoreResult<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO sessions (id_hash, principal, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.id_hash, s.principal, s.csrf, s.created_at, s.expires_at],
            )
        })?;
        Ok(())
    }

    /// The session with this id hash, unless it has expired.
    pub fn session(&self, id_hash: &str) -> StoreResult<Option<SessionRecord>> {
        self.with(|conn| {
            conn.prepare_cached(
                "SELECT principal, csrf, created_at, expires_at FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![id_hash, now_ms()], |r| {
                Ok(SessionRecord {
                    principal: r.get(0)?,
                    csrf: r.get(1)?,
                    created_at: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            })
            .optional()
        })
    }

    /// Ends a session (sign-out); true when there was one.
    pub fn delete_session(&self, id_hash: &str) -> StoreResult<bool> {
        self.with(|conn| conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash]))
            .map(|n| n > 0)
    }

    /// Forgets expired sessions; returns how many.
    pub fn purge_sessions(&self) -> StoreResult<usize> {
        self.with(|conn| conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now_ms()]))
    }
}
