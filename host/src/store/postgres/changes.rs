//! PostgreSQL's change log and console sessions (see `store::changes`,
//! `store::sessions`).

use super::{PgStore, sql_limit};
use crate::store::changes::{ChangeQuery, ChangeRecord, NewChange};
use crate::store::search::MAX_PAGE;
use crate::store::sessions::{NewSession, SessionRecord};
use crate::store::{StoreResult, from_json, now_ms};

impl PgStore {
    /// Records one change; returns its id.
    pub async fn record_change(&self, c: &NewChange) -> StoreResult<i64> {
        self.run(async {
            let r = self
                .client()
                .await?
                .query_one(
                    "INSERT INTO changes (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[&now_ms(), &c.actor, &c.action, &c.target, &c.detail.to_string()],
                )
                .await?;
            Ok(r.try_get(0)?)
        })
        .await
    }

    /// Changes, newest first.
    pub async fn changes(&self, q: &ChangeQuery) -> StoreResult<Vec<ChangeRecord>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT id, at, actor, action, target, detail FROM changes
                     WHERE $1::bigint IS NULL OR id < $1::bigint ORDER BY id DESC LIMIT $2",
                    &[&q.before, &sql_limit(q.limit.clamp(1, MAX_PAGE))],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let detail: String = r.try_get(5)?;
                    Ok(ChangeRecord {
                        id: r.try_get(0)?,
                        at: r.try_get(1)?,
                        actor: r.try_get(2)?,
                        action: r.try_get(3)?,
                        target: r.try_get(4)?,
                        detail: from_json("change detail", &detail)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Stores a new session.
    pub async fn create_session(&self, s: &NewSession) -> StoreResult<()> {
        self.run(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO sessions (id_hash, principal, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                    &[&s.id_hash, &s.principal, &s.csrf, &s.created_at, &s.expires_at],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// The session with this id hash, unless it has expired.
    pub async fn session(&self, id_hash: &str) -> StoreResult<Option<SessionRecord>> {
        self.run(async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT principal, csrf, created_at, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2",
                    &[&id_hash, &now_ms()],
                )
                .await?;
            row.map(|r| {
                Ok(SessionRecord {
                    principal: r.try_get(0)?,
                    csrf: r.try_get(1)?,
                    created_at: r.try_get(2)?,
                    expires_at: r.try_get(3)?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Ends a session (sign-out); true when there was one.
    pub async fn delete_session(&self, id_hash: &str) -> StoreResult<bool> {
        self.run(async {
            let n = self
                .client()
                .await?
                .execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])
                .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Forgets expired sessions; returns how many.
    pub async fn purge_sessions(&self) -> StoreResult<usize> {
        self.run(async {
            let n = self
                .client()
                .await?
                .execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now_ms()])
                .await?;
            Ok(n as usize)
        })
        .await
    }
}
