//! The token caches of the Teams bot connections, one per bot, shared by
//! whatever sends for it (deliveries, chat lookups, connection tests), so a
//! bot asks Microsoft Entra ID for a token once an hour, not once a message.
//!
//! A cache is keyed by everything its token depends on (the connection's
//! name, sign-in base, app id, tenant and where its secret comes from), so
//! `pagehook connect teams-bot` with a new secret starts a new cache rather
//! than reuse a token of the old one. What it must never do: hand one
//! connection's token to another, or keep a secret's value anywhere but in
//! the cache that uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::token::{BotCredentials, TokenCache};
use crate::store::{ConnectionKind, ConnectionRecord};

/// Caches kept before the map starts again (connections are few).
const MAX_CACHES: usize = 64;

/// Token caches by Teams bot connection.
#[derive(Default)]
pub struct TeamsBots {
    caches: Mutex<HashMap<String, Arc<TokenCache>>>,
}

impl std::fmt::Debug for TeamsBots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsBots").finish_non_exhaustive()
    }
}

/// Why a connection cannot have a token cache: it says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotABot(pub String);

impl TeamsBots {
    /// The token cache of Teams bot connection `conn`, sending with `http`
    /// (the connection's client) when it is new.
    pub fn tokens(
        &self,
        conn: &ConnectionRecord,
        http: reqwest::Client,
    ) -> Result<Arc<TokenCache>, NotABot> {
        let name = &conn.name;
        if conn.kind != ConnectionKind::TeamsBot {
            return Err(NotABot(format!("`{name}` is not a Teams bot connection")));
        }
        let (Some(app_id), Some(tenant_id)) = (&conn.app_id, &conn.tenant_id) else {
            return Err(NotABot(format!(
                "Teams bot `{name}` has no app id or tenant id: set them with `pagehook connect teams-bot {name} --app-id .. --tenant-id ..`"
            )));
        };
        let source = conn.secret.as_ref().ok_or_else(|| {
            NotABot(format!(
                "Teams bot `{name}` has no client secret: set it with `pagehook connect teams-bot {name} ... --client-secret-env VAR`"
            ))
        })?;
        let key = format!(
            "{name}\n{}\n{app_id}\n{tenant_id}\n{}",
            conn.url,
            source.to_spec()
        );
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cache) = caches.get(&key) {
            return Ok(cache.clone());
        }
        let client_secret = source
            .resolve()
            .map_err(|m| NotABot(format!("the client secret of Teams bot `{name}`: {m}")))?;
        if caches.len() >= MAX_CACHES {
            caches.clear();
        }
        let cache = Arc::new(TokenCache::new(
            http,
            conn.url.clone(),
            BotCredentials {
                app_id: app_id.clone(),
                tenant_id: tenant_id.clone(),
                client_secret,
            },
        ));
        caches.insert(key, cache.clone());
        Ok(cache)
    }
}
