//! Who is calling: the admin token, or a console session.
//!
//! The admin API and the console share one notion of a caller. A request
//! with `Authorization: Bearer <server.admin-token>` is the Pagehook admin
//! (automation, the CLI's peers). A browser carries the `pagehook_session`
//! cookie instead: a random id whose SHA-256 names a row of the store's
//! `sessions` table, so every replica knows it, and that row says who
//! signed in (the admin, or a Confluence space admin with the spaces they
//! administer) and the CSRF token that every change must carry (the
//! `X-CSRF-Token` header for the API, a form field for the console's own
//! forms). Sessions end after [`SESSION_TTL`] or at sign-out.
//!
//! What it must never do: accept a change by cookie without the CSRF token,
//! store the cookie's id (only its hash), or put a credential in a log.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::api::ApiError;
use crate::store::{NewSession, Store, StoreResult, now_ms};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "pagehook_session";

/// The header that carries the CSRF token on API changes made by cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a console session lasts, from sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Who may do what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Principal {
    /// The Pagehook admin: everything.
    Admin,
    /// A Confluence space admin: bindings, events and deliveries of their
    /// spaces; reading plugins and connections.
    SpaceAdmin(SpaceAdmin),
}

/// A Confluence user who administers some spaces, as Confluence said at
/// sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceAdmin {
    /// The Confluence connection they signed in through.
    pub source: String,
    pub user_key: String,
    pub username: String,
    pub display_name: String,
    /// The keys of the spaces they administer.
    pub spaces: BTreeSet<String>,
}

impl Principal {
    /// True for the Pagehook admin.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }

    /// Whether they may configure and read `space` (the admin: any).
    pub fn may_administer(&self, space: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::SpaceAdmin(s) => s.spaces.contains(space),
        }
    }

    /// The spaces a listing must be restricted to: `None` for the admin.
    pub fn space_filter(&self) -> Option<Vec<String>> {
        match self {
            Principal::Admin => None,
            Principal::SpaceAdmin(s) => Some(s.spaces.iter().cloned().collect()),
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The admin token in `Authorization`.
    Token,
    /// A console session.
    Session {
        /// SHA-256 of the cookie's id (to end it).
        id_hash: String,
        /// The token its changes must carry.
        csrf: String,
    },
}

/// An authenticated caller of the admin API or the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub via: Via,
}

impl Caller {
    /// Who, for the change log.
    pub fn actor(&self) -> String {
        match (&self.principal, &self.via) {
            (Principal::Admin, Via::Token) => "admin (API token)".into(),
            (Principal::Admin, Via::Session { .. }) => "admin (console)".into(),
            (Principal::SpaceAdmin(s), _) => {
                format!("{} (Confluence user on `{}`)", s.username, s.source)
            }
        }
    }

    /// The CSRF token of a console session (`None` for the admin token).
    pub fn csrf(&self) -> Option<&str> {
        match &self.via {
            Via::Session { csrf, .. } => Some(csrf),
            Via::Token => None,
        }
    }
}

/// Why a request has no caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The admin API is off (no admin token configured) and no session.
    Disabled,
    /// No credentials, or wrong ones, or an expired session.
    Unauthenticated,
    /// A change by cookie without the session's CSRF token.
    Csrf,
    /// The store could not be read.
    Unavailable,
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// SHA-256 of a session id, hex: what the store keys sessions by.
pub fn id_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// A fresh random token (256 bits, URL-safe base64).
pub fn random_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Finds the caller of a request: the admin token first, then the session
/// cookie (with its CSRF token on anything but GET and HEAD).
pub async fn identify(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Caller, Refusal> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(given) = bearer {
        return match &state.admin_token {
            Some(token) if same_secret(given, token.expose()) => Ok(Caller {
                principal: Principal::Admin,
                via: Via::Token,
            }),
            Some(_) => Err(Refusal::Unauthenticated),
            None => Err(Refusal::Disabled),
        };
    }
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Err(if state.admin_token.is_some() {
            Refusal::Unauthenticated
        } else {
            Refusal::Disabled
        });
    };
    let caller = session_caller(&state.store, id).await?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same_secret(given, caller.csrf().unwrap_or_default()) {
            return Err(Refusal::Csrf);
        }
    }
    Ok(caller)
}

/// The caller a session cookie's id stands for.
pub async fn session_caller(store: &Store, id: &str) -> Result<Caller, Refusal> {
    let hash = id_hash(id);
    let record = match store.session(&hash).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(Refusal::Unauthenticated),
        Err(e) => {
            tracing::error!(error = %e, "cannot read console sessions");
            return Err(Refusal::Unavailable);
        }
    };
    let principal: Principal = match serde_json::from_str(&record.principal) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "a stored session is unreadable; refusing it");
            return Err(Refusal::Unauthenticated);
        }
    };
    Ok(Caller {
        principal,
        via: Via::Session {
            id_hash: hash,
            csrf: record.csrf,
        },
    })
}

/// A new session for `principal`: stored, and the `Set-Cookie` value that
/// hands it to the browser (`secure` when the console is reached over TLS).
pub async fn start(store: &Store, principal: &Principal, secure: bool) -> StoreResult<String> {
    let id = random_token();
    let now = now_ms();
    store
        .create_session(&NewSession {
            id_hash: id_hash(&id),
            principal: serde_json::to_string(principal).expect("a principal serializes"),
            csrf: random_token(),
            created_at: now,
            expires_at: now + SESSION_TTL.as_millis() as i64,
        })
        .await?;
    // A sign-in is a good moment to forget sessions that ended.
    if let Err(e) = store.purge_sessions().await {
        tracing::warn!(error = %e, "cannot forget expired console sessions");
    }
    Ok(set_cookie(
        SESSION_COOKIE,
        &id,
        SESSION_TTL.as_secs(),
        secure,
    ))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, `Secure`
/// over TLS; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the browser reached us over TLS (through a proxy that says so
/// with `X-Forwarded-Proto: https`; the sidecar itself speaks plain HTTP).
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        identify(state, &parts.method, &parts.headers)
            .await
            .map_err(ApiError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; pagehook_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn tokens_are_random_and_hashes_hide_them() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(id_hash(&a).len(), 64);
        assert!(!id_hash(&a).contains(&a));
    }

    #[test]
    fn space_admins_reach_only_their_spaces() {
        let p = Principal::SpaceAdmin(SpaceAdmin {
            source: "wiki".into(),
            user_key: "k".into(),
            username: "jdoe".into(),
            display_name: "J Doe".into(),
            spaces: ["ENG".to_owned()].into(),
        });
        assert!(p.may_administer("ENG"));
        assert!(!p.may_administer("OPS"));
        assert_eq!(p.space_filter(), Some(vec!["ENG".to_owned()]));
        assert!(Principal::Admin.may_administer("OPS"));
        let c = Caller {
            principal: p,
            via: Via::Token,
        };
        assert_eq!(c.actor(), "jdoe (Confluence user on `wiki`)");
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_tls() {
        let c = set_cookie("n", "v", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("; Secure"));
        assert!(!set_cookie("n", "v", 60, false).contains("Secure"));
    }
}
