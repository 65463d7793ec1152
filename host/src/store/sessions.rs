//! Console sessions, kept in the store so that every replica knows them.
//!
//! The store sees only the SHA-256 of the cookie's random id, never the id
//! itself, and the signed-in principal as opaque JSON (the server decides
//! what it means). What it must never do: return an expired session.

use super::sql::{FromRow, Row};
use super::{Store, StoreResult, now_ms};

/// A session to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// SHA-256 of the cookie's id, hex.
    pub id_hash: String,
    /// Who signed in, as the server's JSON.
    pub principal: String,
    /// The token every change must carry.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A live session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub principal: String,
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl FromRow for SessionRecord {
    const COLUMNS: &'static str = "principal, csrf, created_at, expires_at";

    fn from_row(r: &dyn Row) -> StoreResult<SessionRecord> {
        Ok(SessionRecord {
            principal: r.get("principal")?,
            csrf: r.get("csrf")?,
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
        })
    }
}

impl Store {
    /// Stores a console session.
    pub async fn create_session(&self, s: &NewSession) -> StoreResult<()> {
        self.execute(
            "INSERT INTO sessions (id_hash, principal, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            vec![
                (&s.id_hash).into(),
                (&s.principal).into(),
                (&s.csrf).into(),
                s.created_at.into(),
                s.expires_at.into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// The live (unexpired) session with this id hash.
    pub async fn session(&self, id_hash: &str) -> StoreResult<Option<SessionRecord>> {
        self.select_opt(
            "FROM sessions WHERE id_hash = ?1 AND expires_at > ?2",
            vec![id_hash.into(), now_ms().into()],
        )
        .await
    }

    /// Ends a session (sign-out); true when there was one.
    pub async fn delete_session(&self, id_hash: &str) -> StoreResult<bool> {
        let n = self
            .execute(
                "DELETE FROM sessions WHERE id_hash = ?1",
                vec![id_hash.into()],
            )
            .await?;
        Ok(n > 0)
    }

    /// Forgets expired sessions; returns how many.
    pub async fn purge_sessions(&self) -> StoreResult<usize> {
        let n = self
            .execute(
                "DELETE FROM sessions WHERE expires_at <= ?1",
                vec![now_ms().into()],
            )
            .await?;
        Ok(n as usize)
    }
}
