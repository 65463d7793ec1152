//! Console sessions, kept in the store so that every replica knows them.
//!
//! The store sees only the SHA-256 of the cookie's random id, never the id
//! itself, and the signed-in principal as opaque JSON (the server decides
//! what it means). What it must never do: return an expired session.

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
