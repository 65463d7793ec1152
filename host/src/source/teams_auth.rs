//! Teams as an event source: is an inbound activity really from the Bot
//! Connector, for this bot?
//!
//! Every activity the Bot Connector posts to the bot's endpoint carries a
//! JWT in `Authorization: Bearer`. [`BotFrameworkKeys::authenticate`]
//! checks it as Microsoft's "Authentication with the Bot Connector API"
//! (*Authenticate requests from the Bot Connector service to your bot*)
//! requires:
//!
//! > 1. The token was sent in the HTTP `Authorization` header with
//! >    `Bearer` scheme.
//! > 2. The token is valid JSON that conforms to the JWT standard.
//! > 3. The token contains an "issuer" claim with value of
//! >    `https://api.botframework.com`.
//! > 4. The token contains an "audience" claim with a value equal to the
//! >    bot's Microsoft App ID.
//! > 5. The token has not yet expired. Industry-standard clock-skew is 5
//! >    minutes.
//! > 6. The token has a valid cryptographic signature, with a key listed in
//! >    the OpenID keys document [...], using the signing algorithm
//! >    specified in the `id_token_signing_alg_values_supported` property of
//! >    the Open Id Metadata document.
//! > 7. The token contains a "serviceUrl" claim with value that matches the
//! >    `serviceUrl` property at the root of the Activity object of the
//! >    incoming request.
//!
//! and, of the keys document: "The `endorsements` property within each key
//! contains one or more endorsement strings which you can use to verify
//! that the channel ID specified in the `channelId` property within the
//! Activity object of the incoming request is authentic." A key that lists
//! endorsements must list the activity's `channelId` (`msteams`), compared
//! ordinally (Activity schema A2021). The algorithm is `RS256`, the only one
//! Bot Framework's metadata lists; `none` and `HS*` are refused before any
//! key is looked at.
//!
//! Keys come from the OpenID metadata
//! ([`BOT_FRAMEWORK_OPENID_METADATA_URL`]) and its `jwks_uri`. They are
//! cached: refetched after [`KEYS_MAX_AGE`] (keys roll over; Microsoft
//! says the list "is relatively stable and may be cached for long periods
//! of time", Pagehook refetches daily), and sooner when a token names a key
//! the cache lacks, but at most once per [`MIN_REFRESH_INTERVAL`], so
//! tokens with made-up key ids cannot make the host hammer Microsoft. If a
//! refetch fails, cached keys stay in use up to [`KEYS_STALE_LIMIT`].
//!
//! The caller answers every refusal with 401 and logs [`AuthError`]'s
//! reason (debug, or warn for the ones an admin may have to act on);
//! [`AuthError::KeysUnavailable`] is not the sender's fault: answer 503,
//! and the Bot Connector sends the activity again.
//!
//! What it must never do: accept an activity whose token it did not check,
//! log or return the token, or let a token choose the key URL, the
//! algorithm or how often keys are fetched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::clock::Clock;

/// Bot Framework's OpenID metadata (public cloud).
pub const BOT_FRAMEWORK_OPENID_METADATA_URL: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";

/// The only issuer of the Bot Connector's tokens to bots.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";

/// Clock skew allowed on `exp` and `nbf`, in seconds (the documented five
/// minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Keys older than this are fetched again before use.
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Cached keys are still used while a refetch fails, up to this age (the
/// Bot Framework SDK's own cache time).
pub const KEYS_STALE_LIMIT: Duration = Duration::from_secs(5 * 24 * 60 * 60);

/// Shortest time between two fetches of the keys, whatever tokens arrive.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Largest metadata or keys document read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Most keys kept from one keys document.
const MAX_KEYS: usize = 100;

/// Longest token looked at (Bot Framework's are about 1.5 KB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why an inbound activity's token was refused. Every variant but
/// [`AuthError::KeysUnavailable`] is answered 401; that one 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no Authorization header: this URL takes activities from the Bot Connector only")]
    Missing,
    /// Not `Bearer <JWT>`, or the JWT cannot be read.
    #[error("malformed Bot Connector token: {0}")]
    Malformed(&'static str),
    /// The token's `alg` is not `RS256`.
    #[error("Bot Connector token signed with {0}: only RS256 is accepted")]
    Algorithm(String),
    /// The token names a key Bot Framework does not list (even after a
    /// refetch, or a refetch was made too recently to try again).
    #[error("Bot Connector token signed with a key Bot Framework does not list")]
    UnknownKey,
    /// The signature does not match the listed key.
    #[error("Bot Connector token's signature does not match")]
    BadSignature,
    /// `iss` is not [`BOT_FRAMEWORK_ISSUER`].
    #[error("Bot Connector token from the wrong issuer ({found:?})")]
    WrongIssuer {
        /// The token's issuer, cut short.
        found: String,
    },
    /// `aud` is not the bot's app id.
    #[error(
        "Bot Connector token for another bot (audience {found:?}): the connection's app id differs from the Azure Bot's"
    )]
    WrongAudience {
        /// The token's audience, cut short.
        found: String,
    },
    /// `exp` is more than the allowed skew in the past.
    #[error(
        "Bot Connector token expired (more than {MAX_CLOCK_SKEW_SECS} s ago by this server's clock)"
    )]
    Expired,
    /// `nbf` is more than the allowed skew in the future.
    #[error(
        "Bot Connector token not valid yet (more than {MAX_CLOCK_SKEW_SECS} s ahead of this server's clock)"
    )]
    NotYetValid,
    /// The signing key lists endorsements and the activity's channel is
    /// not among them.
    #[error("Bot Connector token's key is not endorsed for channel {channel_id:?}")]
    NotEndorsed {
        /// The activity's `channelId`, cut short.
        channel_id: String,
    },
    /// The token's `serviceurl` is missing or differs from the activity's
    /// `serviceUrl`.
    #[error("Bot Connector token was issued for another serviceUrl than the activity's")]
    ServiceUrlMismatch,
    /// Bot Framework's keys could not be fetched (and none usable are
    /// cached): not the sender's fault.
    #[error("Bot Framework's signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// Whether the activity could not be checked at all (answer 503 so the
    /// Bot Connector retries) rather than refused (401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable(_))
    }
}

/// What an accepted token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The audience: the bot's app id.
    pub app_id: String,
    /// The `serviceurl` claim (equal to the activity's `serviceUrl`).
    pub service_url: String,
    /// The signing key's id.
    pub key_id: String,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
}

/// One signing key and the channels it is endorsed for (`None`: the key
/// lists no endorsements).
struct SigningKey {
    key: DecodingKey,
    endorsements: Option<Vec<String>>,
}

/// Keys as fetched at one moment.
struct KeySet {
    keys: HashMap<String, Arc<SigningKey>>,
    fetched_at_ms: i64,
}

#[derive(Default)]
struct KeyState {
    set: Option<Arc<KeySet>>,
    /// When the last fetch started (ms), successful or not.
    last_attempt_ms: Option<i64>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
}

/// Bot Framework's signing keys, fetched from its OpenID metadata and
/// cached; checks inbound tokens with them.
pub struct BotFrameworkKeys {
    metadata_url: String,
    http: reqwest::Client,
    clock: Clock,
    state: tokio::sync::Mutex<KeyState>,
}

impl std::fmt::Debug for BotFrameworkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotFrameworkKeys")
            .field("metadata_url", &self.metadata_url)
            .finish_non_exhaustive()
    }
}

impl BotFrameworkKeys {
    /// A key cache reading `metadata_url` (normally
    /// [`BOT_FRAMEWORK_OPENID_METADATA_URL`]) through `http`. Nothing is
    /// fetched until the first token arrives.
    pub fn new(metadata_url: impl Into<String>, http: reqwest::Client) -> BotFrameworkKeys {
        BotFrameworkKeys {
            metadata_url: metadata_url.into(),
            http,
            clock: Clock::System,
            state: tokio::sync::Mutex::new(KeyState::default()),
        }
    }

    /// The same cache on `clock` (tests fix it).
    pub fn with_clock(mut self, clock: Clock) -> BotFrameworkKeys {
        self.clock = clock;
        self
    }

    /// Checks the `Authorization` header of an activity for the bot
    /// `app_id`; `channel_id` and `service_url` are the activity's
    /// `channelId` and `serviceUrl`.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        app_id: &str,
        channel_id: &str,
        service_url: &str,
    ) -> Result<Claims, AuthError> {
        let header = authorization
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(AuthError::Missing)?;
        let (scheme, token) = header
            .split_once(' ')
            .ok_or(AuthError::Malformed("expected `Bearer <token>`"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed("not a Bearer token"));
        }
        let token = token.trim();
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed("longer than any Bot Framework token"));
        }
        let header = read_header(token)?;
        if header.alg != "RS256" {
            return Err(AuthError::Algorithm(shorten(&header.alg)));
        }
        let key_id = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::Malformed("no kid in the header"))?;
        let signing = self.signing_key(&key_id).await?;

        // Signature and algorithm here; the claims below, on the host's
        // clock and with errors that say which claim failed.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<TokenClaims>(token, &signing.key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                    AuthError::Algorithm("an algorithm the key does not sign with".into())
                }
                _ => AuthError::Malformed("unreadable claims or signature"),
            })?
            .claims;

        let issuer = claims.iss.unwrap_or_default();
        if issuer != BOT_FRAMEWORK_ISSUER {
            return Err(AuthError::WrongIssuer {
                found: shorten(&issuer),
            });
        }
        let audience = match claims.aud {
            Some(Audience::One(a)) => vec![a],
            Some(Audience::Many(a)) => a,
            None => Vec::new(),
        };
        if !audience.iter().any(|a| a == app_id) {
            return Err(AuthError::WrongAudience {
                found: shorten(&audience.join(" ")),
            });
        }
        let now = self.clock.now_secs();
        let expires_at = claims
            .exp
            .map(|e| e.floor() as i64)
            .ok_or(AuthError::Malformed("no exp claim"))?;
        if now > expires_at.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(AuthError::Expired);
        }
        if let Some(not_before) = claims.nbf.map(|n| n.ceil() as i64)
            && not_before > now.saturating_add(MAX_CLOCK_SKEW_SECS)
        {
            return Err(AuthError::NotYetValid);
        }
        if let Some(endorsements) = &signing.endorsements
            && !endorsements.iter().any(|e| e == channel_id)
        {
            return Err(AuthError::NotEndorsed {
                channel_id: shorten(channel_id),
            });
        }
        let token_service_url = claims.serviceurl.unwrap_or_default();
        if token_service_url.is_empty() || token_service_url != service_url {
            return Err(AuthError::ServiceUrlMismatch);
        }
        Ok(Claims {
            app_id: app_id.to_owned(),
            service_url: token_service_url,
            key_id,
            expires_at,
        })
    }

    /// The key `kid`, fetching the keys when none are cached, when they
    /// are older than [`KEYS_MAX_AGE`], or when `kid` is not among them —
    /// never twice within [`MIN_REFRESH_INTERVAL`]. Callers arriving
    /// during a fetch wait for it.
    async fn signing_key(&self, kid: &str) -> Result<Arc<SigningKey>, AuthError> {
        let mut state = self.state.lock().await;
        let now = self.clock.now_ms();
        let age_ms = |set: &KeySet| now.saturating_sub(set.fetched_at_ms);
        let cached = state.set.as_ref().and_then(|s| s.keys.get(kid).cloned());
        let due = state
            .set
            .as_ref()
            .is_none_or(|s| age_ms(s) >= KEYS_MAX_AGE.as_millis() as i64);
        let may_fetch = state
            .last_attempt_ms
            .is_none_or(|at| now.saturating_sub(at) >= MIN_REFRESH_INTERVAL.as_millis() as i64);
        if (due || cached.is_none()) && may_fetch {
            state.last_attempt_ms = Some(now);
            match self.fetch_keys(now).await {
                Ok(set) => {
                    state.set = Some(Arc::new(set));
                    state.last_error = None;
                }
                Err(why) => {
                    state.last_error = Some(why.clone());
                    if cached.is_none() {
                        // Maybe a new key Microsoft rolled to: cannot tell.
                        return Err(AuthError::KeysUnavailable(why));
                    }
                    tracing::warn!(
                        reason = %why,
                        "cannot refresh Bot Framework's signing keys; using the cached ones"
                    );
                }
            }
        }
        let Some(set) = state.set.clone() else {
            return Err(AuthError::KeysUnavailable(
                state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "not fetched yet".to_owned()),
            ));
        };
        if age_ms(&set) >= KEYS_STALE_LIMIT.as_millis() as i64 {
            return Err(AuthError::KeysUnavailable(format!(
                "the cached keys are older than {} days and cannot be refreshed: {}",
                KEYS_STALE_LIMIT.as_secs() / 86_400,
                state.last_error.as_deref().unwrap_or("not tried yet")
            )));
        }
        set.keys.get(kid).cloned().ok_or(AuthError::UnknownKey)
    }

    /// The metadata, then the keys it points at.
    async fn fetch_keys(&self, now_ms: i64) -> Result<KeySet, String> {
        let metadata_url = reqwest::Url::parse(&self.metadata_url)
            .map_err(|_| "the OpenID metadata URL is not a URL".to_owned())?;
        let metadata: OpenIdMetadata = self.get_json(metadata_url.clone(), "metadata").await?;
        let jwks_uri = reqwest::Url::parse(&metadata.jwks_uri)
            .map_err(|_| "the metadata's jwks_uri is not a URL".to_owned())?;
        // The keys must come from somewhere as trustworthy as the metadata:
        // over HTTPS, or from the metadata's own origin.
        if jwks_uri.scheme() != "https" && jwks_uri.origin() != metadata_url.origin() {
            return Err("the metadata's jwks_uri is not https".to_owned());
        }
        let document: KeysDocument = self.get_json(jwks_uri, "keys").await?;
        let mut keys = HashMap::new();
        for jwk in document.keys {
            if keys.len() >= MAX_KEYS {
                break;
            }
            if jwk.kty != "RSA" || jwk.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_rsa_components(&n, &e) else {
                continue;
            };
            keys.insert(
                kid,
                Arc::new(SigningKey {
                    key,
                    endorsements: jwk.endorsements,
                }),
            );
        }
        if keys.is_empty() {
            return Err("the keys document lists no RSA signing key".to_owned());
        }
        Ok(KeySet {
            keys,
            fetched_at_ms: now_ms,
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: reqwest::Url,
        what: &str,
    ) -> Result<T, String> {
        let answer = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{what}: {}", crate::http::describe(e)))?;
        let status = answer.status().as_u16();
        if status != 200 {
            return Err(format!("{what}: HTTP {status}"));
        }
        let body = crate::http::read_capped(answer, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("{what}: unreadable: {e}"))
    }
}

/// The JOSE header fields looked at before any key is.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
}

/// The header of a compact JWS, read without trusting it.
fn read_header(token: &str) -> Result<JoseHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "not a JWT (three dot-separated parts)",
        ));
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("the header is not base64url"))?;
    serde_json::from_slice(&json).map_err(|_| AuthError::Malformed("the header is not JSON"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims Bot Framework's tokens carry that are checked.
#[derive(Deserialize)]
struct TokenClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    nbf: Option<f64>,
    serviceurl: Option<String>,
}

#[derive(Deserialize)]
struct OpenIdMetadata {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct KeysDocument {
    keys: Vec<Jwk>,
}

/// A JWK as Bot Framework lists it, with its `endorsements`.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    endorsements: Option<Vec<String>>,
}

/// A value from a token, fit for a log line: at most 100 characters, no
/// control characters.
fn shorten(text: &str) -> String {
    text.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::sync::Mutex as StdMutex;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    use super::*;

    const APP_ID: &str = "00000000-0000-0000-0000-0000000000b0";
    const SERVICE_URL: &str = "https://smba.trafficmanager.net/amer/";
    const NOW: i64 = 1_768_241_233;

    /// An RSA key made by the `openssl` command: PKCS#1 DER for signing,
    /// the modulus (base64url) for the JWK.
    struct TestKey {
        der: Vec<u8>,
        n: String,
    }

    fn openssl(args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl command makes these tests' RSA keys");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn make_key() -> TestKey {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("key.pem");
        let pem = pem.to_str().unwrap();
        openssl(&["genrsa", "-out", pem, "2048"]);
        // OpenSSL 3 writes PKCS#8 unless told `-traditional` (PKCS#1, what
        // ring reads); 1.1 writes PKCS#1 and has no such flag.
        let der = Command::new("openssl")
            .args(["rsa", "-in", pem, "-outform", "DER", "-traditional"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
            .unwrap_or_else(|| openssl(&["rsa", "-in", pem, "-outform", "DER"]));
        let modulus =
            String::from_utf8(openssl(&["rsa", "-in", pem, "-noout", "-modulus"])).unwrap();
        let hex_digits = modulus.trim().strip_prefix("Modulus=").unwrap();
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(hex::decode(hex_digits).unwrap());
        TestKey { der, n }
    }

    /// Two keys, made once for all tests.
    fn keys() -> &'static [TestKey; 2] {
        static KEYS: OnceLock<[TestKey; 2]> = OnceLock::new();
        KEYS.get_or_init(|| [make_key(), make_key()])
    }

    fn jwk(kid: &str, key: &TestKey, endorsements: Option<&[&str]>) -> Value {
        let mut jwk = json!({"kty": "RSA", "use": "sig", "kid": kid, "x5t": kid, "n": key.n, "e": "AQAB",
            "x5c": ["MIIDBTCCAe2gAwIBAgIQ..."]});
        if let Some(e) = endorsements {
            jwk["endorsements"] = json!(e);
        }
        jwk
    }

    fn good_claims() -> Value {
        json!({
            "serviceurl": SERVICE_URL,
            "nbf": NOW - 10,
            "exp": NOW + 3600,
            "iss": "https://api.botframework.com",
            "aud": APP_ID,
        })
    }

    fn mint(key: &TestKey, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let token =
            jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&key.der)).unwrap();
        format!("Bearer {token}")
    }

    /// A fake login.botframework.com: metadata and keys, counting fetches.
    #[derive(Default)]
    struct BotFramework {
        jwks: StdMutex<Vec<Value>>,
        metadata_fetches: AtomicUsize,
        key_fetches: AtomicUsize,
        down: AtomicBool,
    }

    async fn metadata(
        State(bf): State<Arc<BotFramework>>,
        headers: HeaderMap,
    ) -> impl IntoResponse {
        bf.metadata_fetches.fetch_add(1, Ordering::SeqCst);
        if bf.down.load(Ordering::SeqCst) {
            return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({}))).into_response();
        }
        let host = headers["host"].to_str().unwrap();
        axum::Json(json!({
            "issuer": "https://api.botframework.com",
            "authorization_endpoint": "https://invalid.botframework.com",
            "jwks_uri": format!("http://{host}/v1/.well-known/keys"),
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        }))
        .into_response()
    }

    async fn key_document(State(bf): State<Arc<BotFramework>>) -> impl IntoResponse {
        bf.key_fetches.fetch_add(1, Ordering::SeqCst);
        axum::Json(json!({ "keys": *bf.jwks.lock().unwrap() }))
    }

    struct Setup {
        bf: Arc<BotFramework>,
        keys: BotFrameworkKeys,
    }

    impl Setup {
        async fn new(jwks: Vec<Value>) -> Setup {
            let bf = Arc::new(BotFramework::default());
            *bf.jwks.lock().unwrap() = jwks;
            let app = axum::Router::new()
                .route(
                    "/v1/.well-known/openidconfiguration",
                    axum::routing::get(metadata),
                )
                .route("/v1/.well-known/keys", axum::routing::get(key_document))
                .with_state(bf.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let keys = BotFrameworkKeys::new(
                format!("http://{addr}/v1/.well-known/openidconfiguration"),
                http,
            )
            .with_clock(Clock::Fixed(NOW * 1000));
            Setup { bf, keys }
        }

        async fn check(&self, authorization: &str) -> Result<Claims, AuthError> {
            self.keys
                .authenticate(Some(authorization), APP_ID, "msteams", SERVICE_URL)
                .await
        }

        fn fetches(&self) -> usize {
            self.bf.key_fetches.load(Ordering::SeqCst)
        }

        fn at(&mut self, secs: i64) {
            self.keys.clock = Clock::Fixed(secs * 1000);
        }
    }

    #[tokio::test]
    async fn teams_auth_accepts_a_bot_connector_token_and_caches_the_keys() {
        let [a, _] = keys();
        let s = Setup::new(vec![jwk("key-a", a, Some(&["msteams", "skype"]))]).await;
        let claims = s.check(&mint(a, "key-a", &good_claims())).await.unwrap();
        assert_eq!(
            claims,
            Claims {
                app_id: APP_ID.into(),
                service_url: SERVICE_URL.into(),
                key_id: "key-a".into(),
                expires_at: NOW + 3600,
            }
        );
        // The scheme is case-insensitive; keys are not fetched again.
        let lower = mint(a, "key-a", &good_claims()).replacen("Bearer", "bearer", 1);
        s.check(&lower).await.unwrap();
        assert_eq!(s.bf.metadata_fetches.load(Ordering::SeqCst), 1);
        assert_eq!(s.fetches(), 1);
    }

    #[tokio::test]
    async fn teams_auth_refuses_each_broken_rule_by_name() {
        let [a, b] = keys();
        let s = Setup::new(vec![
            jwk("key-a", a, Some(&["msteams"])),
            jwk("key-open", b, None),
        ])
        .await;
        let with = |change: &dyn Fn(&mut Value)| {
            let mut claims = good_claims();
            change(&mut claims);
            mint(a, "key-a", &claims)
        };
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let payload = b64(good_claims());
        let unsigned = format!(
            "Bearer {}.{payload}.",
            b64(json!({"alg": "none", "kid": "key-a"}))
        );
        let hs256 = {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("key-a".into());
            let t = jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(b"k"))
                .unwrap();
            format!("Bearer {t}")
        };
        let signed_a = mint(a, "key-a", &good_claims());
        let token_a = signed_a.strip_prefix("Bearer ").unwrap();
        let parts: Vec<&str> = token_a.split('.').collect();
        let mut richer = good_claims();
        richer["aud"] = json!([APP_ID, "someone-else"]);
        let tampered = format!("Bearer {}.{}.{}", parts[0], b64(richer), parts[2]);

        let cases: Vec<(String, AuthError)> = vec![
            (
                "Basic dXNlcjpwYXNz".into(),
                AuthError::Malformed("not a Bearer token"),
            ),
            (
                "Bearer".into(),
                AuthError::Malformed("expected `Bearer <token>`"),
            ),
            (
                "Bearer abc.def".into(),
                AuthError::Malformed("not a JWT (three dot-separated parts)"),
            ),
            (unsigned, AuthError::Algorithm("none".into())),
            (hs256, AuthError::Algorithm("HS256".into())),
            (mint(b, "key-a", &good_claims()), AuthError::BadSignature),
            (tampered, AuthError::BadSignature),
            (
                with(&|c| c["iss"] = json!("https://sts.windows.net/attacker/")),
                AuthError::WrongIssuer {
                    found: "https://sts.windows.net/attacker/".into(),
                },
            ),
            (
                with(&|c| c["iss"] = json!("https://api.botframework.com/")),
                AuthError::WrongIssuer {
                    found: "https://api.botframework.com/".into(),
                },
            ),
            (
                with(&|c| c["aud"] = json!("another-bot")),
                AuthError::WrongAudience {
                    found: "another-bot".into(),
                },
            ),
            (
                with(&|c| c["exp"] = json!(NOW - MAX_CLOCK_SKEW_SECS - 1)),
                AuthError::Expired,
            ),
            (
                with(&|c| c["nbf"] = json!(NOW + MAX_CLOCK_SKEW_SECS + 1)),
                AuthError::NotYetValid,
            ),
            (
                with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
                AuthError::Malformed("no exp claim"),
            ),
            (
                with(&|c| c["serviceurl"] = json!("https://attacker.example/")),
                AuthError::ServiceUrlMismatch,
            ),
            (
                with(&|c| c["serviceurl"] = json!("https://smba.trafficmanager.net/amer")),
                AuthError::ServiceUrlMismatch,
            ),
            (
                with(&|c| {
                    c.as_object_mut().unwrap().remove("serviceurl");
                }),
                AuthError::ServiceUrlMismatch,
            ),
        ];
        for (authorization, expected) in cases {
            assert_eq!(
                s.check(&authorization).await,
                Err(expected.clone()),
                "{expected}"
            );
        }
        assert_eq!(
            s.keys
                .authenticate(None, APP_ID, "msteams", SERVICE_URL)
                .await,
            Err(AuthError::Missing)
        );
        // Within the skew: accepted.
        s.check(&with(&|c| c["exp"] = json!(NOW - MAX_CLOCK_SKEW_SECS + 1)))
            .await
            .unwrap();
        s.check(&with(&|c| c["nbf"] = json!(NOW + MAX_CLOCK_SKEW_SECS - 1)))
            .await
            .unwrap();
        // Endorsements: a key that lists them must list the channel; one
        // that lists none does not restrict it.
        let token = mint(a, "key-a", &good_claims());
        assert_eq!(
            s.keys
                .authenticate(Some(&token), APP_ID, "webchat", SERVICE_URL)
                .await,
            Err(AuthError::NotEndorsed {
                channel_id: "webchat".into()
            })
        );
        let open = mint(b, "key-open", &good_claims());
        s.keys
            .authenticate(Some(&open), APP_ID, "webchat", SERVICE_URL)
            .await
            .unwrap();
        // None of it fetched the keys more than once.
        assert_eq!(s.fetches(), 1);
    }

    #[tokio::test]
    async fn teams_auth_unknown_kid_refreshes_the_keys_at_most_once_a_minute() {
        let [a, b] = keys();
        let mut s = Setup::new(vec![jwk("key-a", a, Some(&["msteams"]))]).await;
        s.check(&mint(a, "key-a", &good_claims())).await.unwrap();
        assert_eq!(s.fetches(), 1);

        // Microsoft rolls to key B; a token signed with it triggers a refresh.
        s.bf.jwks
            .lock()
            .unwrap()
            .push(jwk("key-b", b, Some(&["msteams"])));
        s.at(NOW + 120);
        s.check(&mint(b, "key-b", &good_claims())).await.unwrap();
        assert_eq!(s.fetches(), 2);

        // Made-up key ids: refused, and the keys are not fetched again
        // within the interval however many arrive.
        for kid in ["made-up-1", "made-up-2", "made-up-3"] {
            assert_eq!(
                s.check(&mint(a, kid, &good_claims())).await,
                Err(AuthError::UnknownKey)
            );
        }
        assert_eq!(s.fetches(), 2);
        s.at(NOW + 120 + MIN_REFRESH_INTERVAL.as_secs() as i64);
        assert_eq!(
            s.check(&mint(a, "made-up-4", &good_claims())).await,
            Err(AuthError::UnknownKey)
        );
        assert_eq!(s.fetches(), 3);
    }

    #[tokio::test]
    async fn teams_auth_keys_are_refetched_daily_and_kept_while_microsoft_is_down() {
        let [a, _] = keys();
        let mut s = Setup::new(vec![jwk("key-a", a, Some(&["msteams"]))]).await;
        s.check(&mint(a, "key-a", &good_claims())).await.unwrap();
        let day = KEYS_MAX_AGE.as_secs() as i64;
        let at = |s: &mut Setup, t: i64| {
            s.at(t);
            let mut claims = good_claims();
            claims["nbf"] = json!(t - 10);
            claims["exp"] = json!(t + 3600);
            mint(a, "key-a", &claims)
        };
        let token = at(&mut s, NOW + day - 1);
        s.check(&token).await.unwrap();
        assert_eq!(s.fetches(), 1);
        let token = at(&mut s, NOW + day);
        s.check(&token).await.unwrap();
        assert_eq!(s.fetches(), 2);

        // Down: the cached keys still serve, up to the stale limit.
        s.bf.down.store(true, Ordering::SeqCst);
        let token = at(&mut s, NOW + 2 * day + 1);
        s.check(&token).await.unwrap();
        assert_eq!(s.bf.metadata_fetches.load(Ordering::SeqCst), 3);
        let stale = KEYS_STALE_LIMIT.as_secs() as i64;
        let token = at(&mut s, NOW + day + stale);
        let err = s.check(&token).await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
    }

    #[tokio::test]
    async fn teams_auth_keys_unavailable_is_not_the_senders_fault() {
        let [a, _] = keys();
        let s = Setup::new(vec![jwk("key-a", a, Some(&["msteams"]))]).await;
        s.bf.down.store(true, Ordering::SeqCst);
        let err = s
            .check(&mint(a, "key-a", &good_claims()))
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::KeysUnavailable("metadata: HTTP 503".into()));
        assert!(err.is_unavailable());
        // Within the interval nothing is fetched; the reason is kept.
        assert_eq!(
            s.check(&mint(a, "key-a", &good_claims())).await,
            Err(AuthError::KeysUnavailable("metadata: HTTP 503".into()))
        );
        assert_eq!(s.bf.metadata_fetches.load(Ordering::SeqCst), 1);
        assert!(!AuthError::UnknownKey.is_unavailable());
    }
}
