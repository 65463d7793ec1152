//! Watching Confluence personal access tokens: when they expire, and the
//! connection health mark that warns an admin in time.

use serde::Serialize;

use crate::store::{ConnectionKind, ConnectionRecord, Store, TokenExpiry, now_ms};

use super::AdminResult;

/// Days before a personal access token expires from which Pagehook warns.
pub const TOKEN_WARN_DAYS: i64 = 14;
/// How often `pagehook serve` reads its Confluence tokens' expiry.
pub const TOKEN_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
/// How a connection's health message about its token starts; such a mark is
/// cleared by the next successful token check.
const TOKEN_HEALTH_PREFIX: &str = "personal access token";
const DAY_MS: i64 = 86_400_000;

/// Where a Confluence connection's personal access token stands, from what
/// the last check recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenStatus {
    /// The connection.
    pub connection: String,
    /// `ok`, `expiring` (within [`TOKEN_WARN_DAYS`]), `expired`,
    /// `never-expires`, or `unknown` (not read yet, or this Confluence does not
    /// list tokens).
    pub state: &'static str,
    /// The token's name in Confluence.
    pub token: Option<String>,
    /// When it expires (ms since the epoch).
    pub expires_at: Option<i64>,
    /// Whole days left, rounded up (negative once expired).
    pub days_left: Option<i64>,
    /// When it was read (ms since the epoch).
    pub checked_at: Option<i64>,
    /// What the admin should do, when anything.
    pub message: Option<String>,
}

/// The token status of a Confluence connection that authenticates with a
/// personal access token; `None` for every other connection.
pub fn token_status(conn: &ConnectionRecord, now: i64) -> Option<TokenStatus> {
    if conn.kind != ConnectionKind::Confluence || conn.secret.is_none() || conn.username.is_some() {
        return None;
    }
    let mut status = TokenStatus {
        connection: conn.name.clone(),
        state: "unknown",
        token: None,
        expires_at: None,
        days_left: None,
        checked_at: None,
        message: None,
    };
    let Some(token) = &conn.token else {
        return Some(status);
    };
    status.token = Some(token.name.clone());
    status.checked_at = Some(token.checked_at);
    status.expires_at = token.expires_at;
    let Some(at) = token.expires_at else {
        status.state = "never-expires";
        return Some(status);
    };
    let left = at - now;
    let days = if left > 0 {
        (left + DAY_MS - 1) / DAY_MS
    } else {
        left / DAY_MS
    };
    status.days_left = Some(days);
    if left <= 0 {
        status.state = "expired";
        status.message = Some(expired_message(conn, &token.name, at));
    } else if left <= TOKEN_WARN_DAYS * DAY_MS {
        status.state = "expiring";
        status.message = Some(format!(
            "the personal access token `{}` of Confluence connection `{}` expires in {days} day{} ({}): create a new one in Confluence (your profile picture > Settings > Personal Access Tokens) and run `{}` with it before then",
            token.name,
            conn.name,
            if days == 1 { "" } else { "s" },
            crate::clock::utc_minutes(at),
            reconnect(conn)
        ));
    } else {
        status.state = "ok";
    }
    Some(status)
}

fn reconnect(conn: &ConnectionRecord) -> String {
    format!(
        "pagehook connect confluence {} --url {} --token-env ... --webhook-secret-env ...",
        conn.name,
        crate::store::redacted_url(&conn.url)
    )
}

fn expired_message(conn: &ConnectionRecord, token: &str, at: i64) -> String {
    format!(
        "{TOKEN_HEALTH_PREFIX} `{token}` expired on {}: Confluence refuses it, so events are not enriched and pages and comments are not written; create a new one in Confluence (your profile picture > Settings > Personal Access Tokens) and run `{}` with it",
        crate::clock::utc_minutes(at),
        reconnect(conn)
    )
}

/// Reads the expiry of every Confluence connection's personal access token
/// from Confluence (`GET /rest/pat/latest/tokens`, all connections at once,
/// each within `timeout`), records it, and marks a connection whose token
/// has expired (or is refused) unhealthy with what to do; a later successful
/// check clears that mark. Returns every PAT connection's status.
pub async fn check_tokens(
    store: &Store,
    timeout: std::time::Duration,
) -> AdminResult<Vec<TokenStatus>> {
    let conns: Vec<ConnectionRecord> = store
        .connections()
        .await?
        .into_iter()
        .filter(|c| token_status(c, 0).is_some())
        .collect();
    let checks = conns.iter().map(|c| check_token(store, c, timeout));
    futures::future::join_all(checks).await;
    let now = now_ms();
    Ok(store
        .connections()
        .await?
        .iter()
        .filter_map(|c| token_status(c, now))
        .collect())
}

async fn check_token(store: &Store, conn: &ConnectionRecord, timeout: std::time::Duration) {
    use crate::confluence::client::{
        ClientError, ClientOptions, ConfluenceAuth, ConfluenceClient, token_in_use,
    };
    let auth = match ConfluenceAuth::of(conn) {
        Ok(Some(auth @ ConfluenceAuth::Bearer(_))) => auth,
        Ok(_) => return,
        Err(message) => {
            tracing::warn!(connection = %conn.name, %message, "cannot read the token to check its expiry");
            return;
        }
    };
    let client = ConfluenceClient::new(
        &conn.url,
        auth,
        ClientOptions {
            timeout,
            max_retry_after: timeout,
            max_inline_wait: std::time::Duration::ZERO,
            attempts: 1,
            proxy: conn.proxy.clone(),
        },
    );
    let now = now_ms();
    let mut health = conn.health.clone();
    let mut refreshed = false;
    match client.tokens().await {
        Ok(Some(tokens)) => {
            let chosen = token_in_use(&tokens, now)
                .or_else(|| tokens.iter().find(|t| t.expires_at.is_none()));
            if let Some(t) = chosen {
                let token = TokenExpiry {
                    name: t.name.clone(),
                    expires_at: t.expires_at,
                    checked_at: now,
                };
                match store.set_token_expiry(&conn.name, Some(&token)).await {
                    Ok(()) => refreshed = true,
                    Err(e) => {
                        tracing::error!(connection = %conn.name, error = %e, "cannot record the token's expiry");
                    }
                }
            }
            if health
                .as_deref()
                .is_some_and(|h| h.starts_with(TOKEN_HEALTH_PREFIX))
            {
                health = None;
            }
        }
        Ok(None) => {
            tracing::debug!(connection = %conn.name, "this Confluence does not list personal access tokens");
        }
        Err(ClientError::Unauthorized(401)) => {
            let expired = conn
                .token
                .as_ref()
                .and_then(|t| Some((t, t.expires_at?)))
                .filter(|(_, at)| *at <= now);
            health = Some(match expired {
                Some((t, at)) => expired_message(conn, &t.name, at),
                None => format!(
                    "{TOKEN_HEALTH_PREFIX} refused by Confluence (HTTP 401): it has expired or been revoked; create a new one in Confluence (your profile picture > Settings > Personal Access Tokens) and run `{}` with it",
                    reconnect(conn)
                ),
            });
        }
        Err(e) => {
            tracing::warn!(connection = %conn.name, error = %e, "cannot read the personal access token's expiry");
        }
    }
    // Confluence unreachable, but the expiry recorded earlier has passed.
    if !refreshed
        && health.is_none()
        && let Some(t) = &conn.token
        && let Some(at) = t.expires_at.filter(|at| *at <= now)
    {
        health = Some(expired_message(conn, &t.name, at));
    }
    if health != conn.health
        && let Err(e) = store
            .set_connection_health(&conn.name, health.as_deref())
            .await
    {
        tracing::error!(connection = %conn.name, error = %e, "cannot record the connection's health");
    }
}

/// `pagehook serve`'s token watch: checks every Confluence PAT at start and
/// then every [`TOKEN_CHECK_EVERY`], logs a warning for each token expiring
/// within [`TOKEN_WARN_DAYS`] and an error for each expired one, and feeds
/// the `pagehook_confluence_token_expiry_seconds` metric, until `shutdown`.
pub async fn watch_tokens(
    store: std::sync::Arc<Store>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    timeout: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match check_tokens(&store, timeout).await {
            Ok(statuses) => {
                metrics.set_token_expiries(
                    statuses
                        .iter()
                        .map(|s| (s.connection.clone(), s.expires_at))
                        .collect(),
                );
                for s in &statuses {
                    match (s.state, &s.message) {
                        ("expired", Some(m)) => tracing::error!(connection = %s.connection, "{m}"),
                        (_, Some(m)) => tracing::warn!(connection = %s.connection, "{m}"),
                        _ => {}
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot check the Confluence tokens' expiry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(TOKEN_CHECK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
