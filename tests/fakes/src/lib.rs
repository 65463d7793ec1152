//! Loopback fakes of the three services Pagehook delivers to: the Slack Web API, a Microsoft
//! Teams Workflows webhook and Confluence Data Center's REST API.
//!
//! End-to-end tests need targets that speak the real wire formats, remember what they were
//! sent, and misbehave on demand (429 with `Retry-After`, 5xx, slow answers, dropped
//! connections, Slack's HTTP-200 logical errors) without any traffic leaving the machine.
//! Each fake binds `127.0.0.1:0`, so tests can run in parallel and never reach a real service.
//!
//! Every fake runs on its own thread with its own single-threaded tokio runtime: `start()`
//! returns once the socket is listening, the returned value is used through `&self` from
//! plain `#[test]` functions and from async tests alike, and dropping it stops the server.
//!
//! The Slack fake is driven by Slack's own published Web API description
//! (`shared/specs/slack/slack_web_openapi_v2.json`, see [`specs_dir`]): it takes arguments only
//! in the encodings each method documents, refuses missing required arguments and enforces
//! Slack's per-method rate-limit tiers, so it refuses what Slack refuses rather than whatever
//! our own client happens to send.
//!
//! Faults are queued per endpoint with `inject` and each one is consumed by exactly one
//! request, in the order injected. Every request, faulted or not, is appended to the fake's
//! [`RecordedRequest`] log with the `Authorization` value redacted, so tests can assert that
//! a secret meant for one service never shows up anywhere else.
//!
//! - [`FakeTeamsBot`]: a Teams bot's Microsoft side on one port: Entra ID's token endpoint,
//!   the Bot Framework's OpenID metadata and signing keys (and JWTs minted with them for
//!   inbound activities), and the Bot Connector REST API driven by Microsoft's Swagger file
//!   (`shared/specs/teams/botframework-connector-v3.1.json`).
//! - [`proxy::ForwardProxy`]: a forward proxy (CONNECT and absolute-form) that records every
//!   connection it carries, for the egress-proxy tests.
//! - [`tls`]: a CA made per test and a TLS front that serves any fake over HTTPS with a
//!   certificate it issued, for the trust-store tests.
//! - [`postgres::TestPostgres`]: not a fake but a real, throwaway PostgreSQL server on
//!   loopback for the PostgreSQL store backend's tests (`make postgres` installs it).

mod confluence;
pub mod postgres;
pub mod proxy;
mod server;
mod slack;
mod slack_socket;
mod teams;
mod teams_bot;
pub mod tls;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use confluence::{
    ConfluenceAuth, ConfluenceCreated, ContentBuilder, DcVersion, EmailVisibility, FakeConfluence,
    LabelsAdded, SERVICE_DISPLAY_NAME, SERVICE_EMAIL, SERVICE_USER_KEY, SERVICE_USERNAME,
    SpacePermissionsRefusal, endpoints,
};
pub use slack::{
    FakeSlack, RESPONSE_URL_ENDPOINT, RESPONSE_URL_TTL, RESPONSE_URL_USES, SlackPost,
    SlackResponse, SlackUnfurl,
};
pub use slack_socket::{
    APP_ID as SLACK_APP_ID, DEFAULT_APP_TOKEN as SLACK_APP_TOKEN, FakeSocketMode, SocketAck,
    SocketDelivery,
};
pub use teams::{FakeTeams, MAX_PAYLOAD as TEAMS_MAX_PAYLOAD, TeamsPost};
pub use teams_bot::{
    BOT_FRAMEWORK_ISSUER, BOT_FRAMEWORK_SCOPE, CLOCK_SKEW_SECS, DEFAULT_TOKEN_LIFETIME,
    FakeTeamsBot, Inbound, InboundResponse, KEYS_ENDPOINT, OPENID_ENDPOINT, Signer,
    TEAMS_CHANNEL_ID, TOKEN_ENDPOINT, Tamper, TeamInbound, TeamsBotMessage, TeamsUser, TokenSpec,
    post_activity, post_activity_async,
};

/// A misbehaviour to serve instead of (or before) the normal answer.
///
/// Faults model what delivery code must survive in production; each is consumed by one
/// request to the endpoint it was injected for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: <retry_after_secs>`. Values up to `u64::MAX` are sent
    /// verbatim, because Confluence has been seen answering `Retry-After: 9223372036854775807`
    /// and clients must clamp it.
    RateLimited {
        /// The value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// An HTTP error status with a body in the service's usual error shape.
    Status(u16),
    /// Carry the request out at once but hold the answer back this long, so a client can time
    /// out. The request still takes effect, so a client that times out and retries produces a
    /// duplicate, just as in production.
    Delay(Duration),
    /// Read the whole request, then drop the connection (with a TCP reset) without answering.
    /// The request is *not* carried out.
    Reset,
    /// Carry the request out, then answer with this HTTP status (and the service's usual error
    /// body) instead of the real answer: a 500 *after* the message landed, as when a proxy
    /// fails on the way back. A client that retries on the error produces a duplicate, and one
    /// that records "failed" is wrong about what the target holds.
    StatusAfterEffect(u16),
    /// Slack only: HTTP 200 with `{"ok":false,"error":"<code>"}` (for example
    /// `not_in_channel`, `invalid_auth`, `channel_not_found`, `ratelimited`).
    SlackError(String),
}

/// One request as a fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path and query string exactly as sent.
    pub path: String,
    /// The endpoint name used by `inject` and `calls`, if the path maps to one.
    pub endpoint: Option<String>,
    /// Header names (lower case) and values. The `Authorization` value is replaced by its
    /// scheme followed by `[redacted]`, so asserting "this secret appears nowhere in the log"
    /// is meaningful.
    pub headers: Vec<(String, String)>,
    /// The body, decoded as UTF-8 (lossily). Never redacted: a secret sent in a body (say a
    /// Slack `token` form field, or a token pasted into a message) stays visible so tests
    /// can catch it.
    pub body: String,
    /// When the request was fully read.
    pub received_at: Instant,
    /// The fault that was served to this request, if any.
    pub fault: Option<Fault>,
    /// The fake's own rate limit refused this request with HTTP 429 (for Slack: the method's
    /// rate-limit tier). Injected `Fault::RateLimited` answers show in `fault` instead.
    pub rate_limited: bool,
}

impl RecordedRequest {
    /// The first value of a header, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The shared fixtures directory (`shared/fixtures` beside the repository).
///
/// The fakes build Confluence answers from these files so that tests and fakes agree on one
/// source of truth for Confluence's shapes. `PAGEHOOK_FIXTURES_DIR` overrides the location.
pub fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAGEHOOK_FIXTURES_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

/// The shared specifications directory (`shared/specs` beside the repository), holding the
/// services' own published API descriptions, e.g. `slack/slack_web_openapi_v2.json`.
///
/// The Slack fake reads its method table from there. `PAGEHOOK_SPECS_DIR` overrides the
/// location.
pub fn specs_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PAGEHOOK_SPECS_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs")
}

/// The raw bytes of a fixture, e.g. `fixture_bytes("confluence/webhook-id-only/page_created.json")`.
///
/// Raw bytes matter for webhook tests: the HMAC signature covers the body exactly as sent.
///
/// # Panics
/// If the file cannot be read; the message names the path tried.
pub fn fixture_bytes(relative: &str) -> Vec<u8> {
    let path = fixtures_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read fixture {} ({e}); set PAGEHOOK_FIXTURES_DIR if shared/fixtures lives elsewhere",
            path.display()
        )
    })
}

/// A fixture parsed as JSON, e.g. `fixture("confluence/rest/user.json")`.
///
/// # Panics
/// If the file cannot be read or is not JSON.
pub fn fixture(relative: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture_bytes(relative))
        .unwrap_or_else(|e| panic!("fixture {relative} is not valid JSON: {e}"))
}
