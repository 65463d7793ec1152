//! The bot's access token for the Bot Connector, from Microsoft Entra ID.
//!
//! A Teams bot calls the Bot Connector with `Authorization: Bearer <token>`,
//! a token it gets with OAuth 2.0 client credentials. New bots are
//! single-tenant, so the request goes to the bot's own tenant:
//!
//! ```text
//! POST {login_base}{tenant_id}/oauth2/v2.0/token
//! grant_type=client_credentials&client_id=<app id>&client_secret=<secret>
//!   &scope=https://api.botframework.com/.default
//! → {"token_type":"Bearer","expires_in":3599,"access_token":"..."}
//! → {"error":"invalid_client","error_description":"AADSTS7000215: ..."}
//! ```
//!
//! [`TokenCache`] keeps one connection's token until [`RENEW_BEFORE`]
//! before it runs out (half its lifetime when that is shorter), asks Entra
//! once however many callers want a token at the same moment, and forgets
//! the token when the Bot Connector refuses it ([`TokenCache::invalidate_token`]).
//! Outcomes are a [`TokenError`] the caller judges: this module never
//! decides whether to retry.
//!
//! What it must never do: show the client secret or the access token in
//! a log line, an error or `Debug` output, or send the secret anywhere but
//! the token endpoint of the login base it was given.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use super::connector::{MAX_RETRY_AFTER, path_segment};
use crate::clock::Clock;
use crate::secret::Secret;

/// Where Entra ID issues tokens (commercial cloud).
pub const DEFAULT_LOGIN_BASE: &str = "https://login.microsoftonline.com/";

/// The scope a bot asks for to call the Bot Connector.
pub const BOT_FRAMEWORK_SCOPE: &str = "https://api.botframework.com/.default";

/// How long before its expiry a token is renewed: a request started just
/// before expiry must not arrive with a dead token.
pub const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Longest error description kept from Entra (they carry trace ids and
/// timestamps; a page of HTML from a proxy is cut here).
const MAX_DESCRIPTION_CHARS: usize = 500;

/// Largest token answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Entra refused the request: wrong secret (`invalid_client`,
    /// AADSTS7000215), an app unknown in the tenant (`unauthorized_client`,
    /// AADSTS700016), a wrong tenant (AADSTS90002)... An admin must act;
    /// asking again will not help.
    #[error(
        "Microsoft Entra ID refused the bot's credentials ({code}): {description} (check the bot's app id, tenant id and client secret)"
    )]
    Refused {
        /// Entra's `error` (`invalid_client`, `unauthorized_client`, ...).
        code: String,
        /// Entra's `error_description` (AADSTS code and text), cut short;
        /// never contains the secret.
        description: String,
    },
    /// HTTP 429: Entra throttles this app for now.
    #[error("Microsoft Entra ID is rate limiting token requests (HTTP 429)")]
    RateLimited {
        /// Entra's `Retry-After`, clamped to [`MAX_RETRY_AFTER`].
        retry_after: Option<Duration>,
    },
    /// The token endpoint could not be reached or answered 5xx (or
    /// `temporarily_unavailable`, or something that is not Entra's JSON).
    #[error("Microsoft Entra ID's token endpoint is unavailable: {0}")]
    Unavailable(String),
    /// HTTP 200 without a usable token.
    #[error("Microsoft Entra ID's token answer is unusable: {0}")]
    Malformed(&'static str),
}

/// One bot's credentials: its Entra app (client) id, the tenant the app
/// lives in, and a client secret of that app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotCredentials {
    /// The bot's Microsoft App ID (the Entra application's client id).
    pub app_id: String,
    /// The Entra tenant of the single-tenant app (GUID or domain).
    pub tenant_id: String,
    /// A client secret of the app; `Debug` shows `[redacted]`.
    pub client_secret: Secret,
}

/// A token kept with the moment it should be renewed.
struct CachedToken {
    token: Secret,
    /// ms since the epoch, on the cache's clock.
    renew_at_ms: i64,
}

struct CacheState {
    token: Option<CachedToken>,
    /// Fetches finished (success or not), to tell a waiter whether one ran
    /// while it waited.
    fetches: u64,
    /// The last fetch's failure, handed to callers that waited for it.
    last_error: Option<TokenError>,
}

/// One connection's bot token (app id + tenant + login base), fetched on
/// demand and reused until shortly before it expires.
pub struct TokenCache {
    http: reqwest::Client,
    login_base: String,
    credentials: BotCredentials,
    clock: Clock,
    /// Mirrors `CacheState::fetches`, readable without waiting for the lock.
    fetches_seen: AtomicU64,
    state: tokio::sync::Mutex<CacheState>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("login_base", &self.login_base)
            .field("app_id", &self.credentials.app_id)
            .field("tenant_id", &self.credentials.tenant_id)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache for `credentials`, asking `login_base` (normally
    /// [`DEFAULT_LOGIN_BASE`]; with or without a trailing `/`) through
    /// `http` (the connection's client: trust roots, proxy, timeouts).
    pub fn new(
        http: reqwest::Client,
        login_base: impl Into<String>,
        credentials: BotCredentials,
    ) -> TokenCache {
        TokenCache {
            http,
            login_base: login_base.into(),
            credentials,
            clock: Clock::System,
            fetches_seen: AtomicU64::new(0),
            state: tokio::sync::Mutex::new(CacheState {
                token: None,
                fetches: 0,
                last_error: None,
            }),
        }
    }

    /// The same cache reading `clock` for expiry (tests fix it).
    pub fn with_clock(mut self, clock: Clock) -> TokenCache {
        self.clock = clock;
        self
    }

    /// The bot's app id.
    pub fn app_id(&self) -> &str {
        &self.credentials.app_id
    }

    /// The client the cache sends with (the Bot Connector client reuses it).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A token valid for at least a while: the cached one, or a new one.
    ///
    /// Callers asking while a fetch is under way wait for it and share its
    /// outcome, a failure included, so Entra sees one request.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        let seen = self.fetches_seen.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        let now_ms = self.clock.now_ms();
        if let Some(cached) = &state.token
            && now_ms < cached.renew_at_ms
        {
            return Ok(cached.token.clone());
        }
        if state.fetches != seen
            && let Some(e) = &state.last_error
        {
            // A fetch failed while this caller waited: share its answer
            // rather than asking Entra again at once.
            return Err(e.clone());
        }
        let outcome = self.fetch(now_ms).await;
        state.fetches += 1;
        self.fetches_seen.store(state.fetches, Ordering::Release);
        match outcome {
            Ok(cached) => {
                let token = cached.token.clone();
                state.token = Some(cached);
                state.last_error = None;
                Ok(token)
            }
            Err(e) => {
                state.token = None;
                state.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Forgets the cached token, whatever it is: the next [`Self::token`]
    /// asks Entra.
    pub async fn invalidate(&self) {
        self.state.lock().await.token = None;
    }

    /// Forgets `rejected` if it is still the cached token (the Bot
    /// Connector answered 401 to it); a newer token another caller already
    /// fetched is kept.
    pub async fn invalidate_token(&self, rejected: &Secret) {
        let mut state = self.state.lock().await;
        if state.token.as_ref().is_some_and(|c| &c.token == rejected) {
            state.token = None;
        }
    }

    fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_base.trim_end_matches('/'),
            path_segment(&self.credentials.tenant_id)
        )
    }

    /// One request to Entra; `now_ms` is when it was sent, so the lifetime
    /// counts from before the answer arrived.
    async fn fetch(&self, now_ms: i64) -> Result<CachedToken, TokenError> {
        let secret = &self.credentials.client_secret;
        let answer = self
            .http
            .post(self.token_url())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.credentials.app_id.as_str()),
                ("client_secret", secret.expose()),
                ("scope", BOT_FRAMEWORK_SCOPE),
            ])
            .send()
            .await
            .map_err(|e| TokenError::Unavailable(scrub(&crate::http::describe(e), secret)))?;
        let status = answer.status().as_u16();
        if status == 429 {
            return Err(TokenError::RateLimited {
                retry_after: crate::http::retry_after(answer.headers())
                    .map(|d| d.min(MAX_RETRY_AFTER)),
            });
        }
        let body = crate::http::read_capped(answer, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| TokenError::Unavailable(scrub(&e, secret)))?;
        if status >= 500 {
            return Err(TokenError::Unavailable(format!("HTTP {status}")));
        }
        if status != 200 {
            return Err(refusal(status, &body, secret));
        }
        let granted = parse_grant(&body)?;
        Ok(CachedToken {
            renew_at_ms: now_ms.saturating_add(renew_after(granted.lifetime).as_millis() as i64),
            token: granted.token,
        })
    }
}

/// How long after it was requested a token with `lifetime` is renewed:
/// [`RENEW_BEFORE`] before it expires, or at half its lifetime when that
/// comes first.
pub fn renew_after(lifetime: Duration) -> Duration {
    let margin = RENEW_BEFORE.min(lifetime / 2);
    lifetime.saturating_sub(margin)
}

/// What a 200 answer granted.
struct Grant {
    token: Secret,
    lifetime: Duration,
}

/// `expires_in` is a number on the v2.0 endpoint; the v1.0 endpoint and
/// some proxies write it as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
struct TokenAnswer {
    token_type: Option<String>,
    expires_in: Option<Seconds>,
    access_token: Option<String>,
}

/// Reads a 200 answer. Errors name what is wrong, never the value (serde's
/// messages may quote it, and it may be the token).
fn parse_grant(body: &[u8]) -> Result<Grant, TokenError> {
    let answer: TokenAnswer =
        serde_json::from_slice(body).map_err(|_| TokenError::Malformed("not Entra's JSON"))?;
    if !answer
        .token_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
    {
        return Err(TokenError::Malformed("token_type is not Bearer"));
    }
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::Malformed("no access_token"))?;
    let seconds = match answer.expires_in {
        Some(Seconds::Number(n)) => n,
        Some(Seconds::Text(t)) => t
            .trim()
            .parse()
            .map_err(|_| TokenError::Malformed("expires_in is not a number of seconds"))?,
        None => return Err(TokenError::Malformed("no expires_in")),
    };
    if seconds == 0 {
        return Err(TokenError::Malformed("expires_in is 0"));
    }
    Ok(Grant {
        token: Secret::new(token),
        lifetime: Duration::from_secs(seconds),
    })
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
}

/// A 4xx answer: Entra's `{"error", "error_description"}` is a refusal
/// (except `temporarily_unavailable`); anything else came from something
/// in between (a proxy's page) and says nothing about the credentials.
fn refusal(status: u16, body: &[u8], secret: &Secret) -> TokenError {
    let parsed = serde_json::from_slice::<ErrorAnswer>(body).ok();
    let Some(ErrorAnswer {
        error: Some(code),
        error_description,
    }) = parsed
    else {
        return TokenError::Unavailable(format!("HTTP {status} without Entra's error answer"));
    };
    let code = scrub(&code, secret);
    let description = scrub(&error_description.unwrap_or_default(), secret);
    if code == "temporarily_unavailable" {
        return TokenError::Unavailable(format!("{code}: {description}"));
    }
    TokenError::Refused { code, description }
}

/// `text` cut to [`MAX_DESCRIPTION_CHARS`], one line, with the secret
/// replaced should anything ever echo it.
fn scrub(text: &str, secret: &Secret) -> String {
    let mut text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let value = secret.expose();
    if !value.is_empty() && text.contains(value) {
        text = text.replace(value, "[redacted]");
    }
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        text = text.chars().take(MAX_DESCRIPTION_CHARS).collect();
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::AtomicUsize;

    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;

    use super::*;

    const SECRET: &str = "s3cr3t~value.with+chars";
    const T0: i64 = 1_768_241_233_000;

    /// A header the fake adds to its answer.
    type ExtraHeader = Option<(&'static str, String)>;
    /// A tenant and the form fields the fake received.
    type SeenForm = (String, Vec<(String, String)>);

    /// What the fake Entra answers and what it saw.
    #[derive(Default)]
    struct Entra {
        requests: AtomicUsize,
        forms: StdMutex<Vec<SeenForm>>,
        /// Status, extra header, body; the default grants a token.
        answer: StdMutex<Option<(u16, ExtraHeader, String)>>,
        delay_ms: u64,
    }

    async fn token_endpoint(
        State(entra): State<Arc<Entra>>,
        Path(tenant): Path<String>,
        axum::Form(form): axum::Form<Vec<(String, String)>>,
    ) -> impl IntoResponse {
        let n = entra.requests.fetch_add(1, Ordering::SeqCst) + 1;
        entra.forms.lock().unwrap().push((tenant, form));
        if entra.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(entra.delay_ms)).await;
        }
        let answer = entra.answer.lock().unwrap().clone();
        let (status, header, body) = answer.unwrap_or_else(|| {
            (
                200,
                None,
                format!(r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"token-{n}"}}"#),
            )
        });
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        if let Some((name, value)) = header {
            headers.insert(name, value.parse().unwrap());
        }
        (StatusCode::from_u16(status).unwrap(), headers, body)
    }

    async fn fake_entra(entra: Arc<Entra>) -> String {
        let app = axum::Router::new()
            .route(
                "/{tenant}/oauth2/v2.0/token",
                axum::routing::post(token_endpoint),
            )
            .with_state(entra);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/")
    }

    fn credentials() -> BotCredentials {
        BotCredentials {
            app_id: "00000000-0000-0000-0000-0000000000b0".into(),
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_secret: Secret::new(SECRET),
        }
    }

    fn loopback_client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    async fn cache(entra: &Arc<Entra>) -> TokenCache {
        let base = fake_entra(entra.clone()).await;
        TokenCache::new(loopback_client(), base, credentials()).with_clock(Clock::Fixed(T0))
    }

    #[tokio::test]
    async fn teams_token_asks_entra_once_with_client_credentials_and_reuses_it() {
        let entra = Arc::new(Entra::default());
        let cache = cache(&entra).await;
        assert_eq!(cache.token().await.unwrap().expose(), "token-1");
        assert_eq!(cache.token().await.unwrap().expose(), "token-1");
        assert_eq!(entra.requests.load(Ordering::SeqCst), 1);
        let forms = entra.forms.lock().unwrap();
        let (tenant, form) = &forms[0];
        assert_eq!(tenant, "contoso.onmicrosoft.com");
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(field("grant_type"), Some("client_credentials"));
        assert_eq!(
            field("client_id"),
            Some("00000000-0000-0000-0000-0000000000b0")
        );
        assert_eq!(field("client_secret"), Some(SECRET));
        assert_eq!(
            field("scope"),
            Some("https://api.botframework.com/.default")
        );
        assert!(!format!("{cache:?}").contains(SECRET));
    }

    #[tokio::test]
    async fn teams_token_is_renewed_five_minutes_before_expiry() {
        let entra = Arc::new(Entra::default());
        let mut cache = cache(&entra).await;
        cache.token().await.unwrap();
        cache.clock = Clock::Fixed(T0 + (3599 - 300 - 1) * 1000);
        assert_eq!(cache.token().await.unwrap().expose(), "token-1");
        cache.clock = Clock::Fixed(T0 + (3599 - 300) * 1000);
        assert_eq!(cache.token().await.unwrap().expose(), "token-2");
    }

    #[test]
    fn teams_token_short_lifetimes_renew_at_half() {
        assert_eq!(
            renew_after(Duration::from_secs(3599)),
            Duration::from_secs(3299)
        );
        assert_eq!(
            renew_after(Duration::from_secs(120)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renew_after(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
    }

    #[tokio::test]
    async fn teams_token_concurrent_callers_share_one_fetch() {
        let entra = Arc::new(Entra {
            delay_ms: 100,
            ..Entra::default()
        });
        let cache = Arc::new(cache(&entra).await);
        let calls = (0..8).map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        });
        for outcome in futures::future::join_all(calls).await {
            assert_eq!(outcome.unwrap().unwrap().expose(), "token-1");
        }
        assert_eq!(entra.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn teams_token_waiters_share_a_failure_too() {
        let entra = Arc::new(Entra {
            delay_ms: 100,
            ..Entra::default()
        });
        *entra.answer.lock().unwrap() = Some((503, None, "busy".into()));
        let cache = Arc::new(cache(&entra).await);
        let calls = (0..5).map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        });
        for outcome in futures::future::join_all(calls).await {
            assert_eq!(
                outcome.unwrap(),
                Err(TokenError::Unavailable("HTTP 503".into()))
            );
        }
        assert_eq!(entra.requests.load(Ordering::SeqCst), 1);
        // A later caller asks again.
        *entra.answer.lock().unwrap() = None;
        assert_eq!(cache.token().await.unwrap().expose(), "token-2");
    }

    #[tokio::test]
    async fn teams_token_invalidate_forgets_only_the_rejected_token() {
        let entra = Arc::new(Entra::default());
        let cache = cache(&entra).await;
        let first = cache.token().await.unwrap();
        cache
            .invalidate_token(&Secret::new("some-other-token"))
            .await;
        assert_eq!(cache.token().await.unwrap(), first);
        cache.invalidate_token(&first).await;
        assert_eq!(cache.token().await.unwrap().expose(), "token-2");
        cache.invalidate().await;
        assert_eq!(cache.token().await.unwrap().expose(), "token-3");
    }

    #[tokio::test]
    async fn teams_token_refusal_names_the_aadsts_code_never_the_secret() {
        let entra = Arc::new(Entra::default());
        // Even an answer that echoes the secret does not carry it further.
        *entra.answer.lock().unwrap() = Some((
            401,
            None,
            format!(
                r#"{{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided ({SECRET}).\r\nTrace ID: 1","error_codes":[7000215]}}"#
            ),
        ));
        let cache = cache(&entra).await;
        let err = cache.token().await.unwrap_err();
        let TokenError::Refused { code, description } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(code, "invalid_client");
        assert!(description.starts_with("AADSTS7000215: Invalid client secret"));
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(!shown.contains('\n'), "{shown}");
        }
    }

    #[tokio::test]
    async fn teams_token_other_answers_become_typed_errors() {
        let entra = Arc::new(Entra::default());
        let cache = cache(&entra).await;
        let cases: [(u16, ExtraHeader, &str, TokenError); 6] = [
            (
                429,
                Some(("retry-after", "9223372036854775807".into())),
                "",
                TokenError::RateLimited {
                    retry_after: Some(MAX_RETRY_AFTER),
                },
            ),
            (
                429,
                Some(("retry-after", "7".into())),
                "",
                TokenError::RateLimited {
                    retry_after: Some(Duration::from_secs(7)),
                },
            ),
            (
                502,
                None,
                "<html>",
                TokenError::Unavailable("HTTP 502".into()),
            ),
            (
                403,
                None,
                "<html>proxy says no</html>",
                TokenError::Unavailable("HTTP 403 without Entra's error answer".into()),
            ),
            (
                200,
                None,
                r#"{"token_type":"Bearer","access_token":"abc"}"#,
                TokenError::Malformed("no expires_in"),
            ),
            (
                200,
                None,
                r#"{"token_type":"Bearer","expires_in":"3599","access_token":{"x":"leak"}}"#,
                TokenError::Malformed("not Entra's JSON"),
            ),
        ];
        for (status, header, body, expected) in cases {
            *entra.answer.lock().unwrap() = Some((status, header, body.into()));
            assert_eq!(cache.token().await, Err(expected), "{status} {body}");
        }
        *entra.answer.lock().unwrap() = Some((
            200,
            None,
            r#"{"token_type":"Bearer","expires_in":"3599","access_token":"from-v1"}"#.into(),
        ));
        assert_eq!(cache.token().await.unwrap().expose(), "from-v1");
    }

    #[tokio::test]
    async fn teams_token_unreachable_endpoint_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let cache = TokenCache::new(loopback_client(), base, credentials());
        let err = cache.token().await.unwrap_err();
        assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains(SECRET));
    }
}
