//! The Bot Connector REST API (v3), as the bot calls it: create a 1:1
//! conversation, send, reply to and update activities, read a member or
//! look one up among a team's members.
//!
//! Every call goes to the `serviceUrl` an authenticated inbound activity
//! named (or a conversation reference stored from one), with the bot's
//! token from [`TokenCache`] as `Authorization: Bearer` and a JSON body.
//! Ids are put in the path as one percent-encoded segment each: Teams ids
//! carry `:`, `;`, `@` and `=` (`19:abc@thread.tacv2;messageid=17...`).
//! Errors are the spec's `ErrorResponse` (`{"error":{"code","message"}}`)
//! read into a [`ConnectorError`] the caller judges; a 401 also makes the
//! cache forget the token it refused.
//!
//! What it must never do: decide whether to retry, log the token, or send
//! the token to a service URL that is not `https` (plain `http` only to
//! loopback, for the tests' fake).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::token::{TokenCache, TokenError};

/// Longest `Retry-After` honoured; longer ones (or absurd ones) are cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Largest answer read from the Bot Connector.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Members asked for per page of `pagedmembers` (the spec calls `pageSize`
/// a suggestion: a page may hold fewer, and a continuation token says more remain).
const MEMBER_PAGE_SIZE: usize = 500;

/// Pages of members read at most when looking for one person (50,000
/// members at [`MEMBER_PAGE_SIZE`]).
const MAX_MEMBER_PAGES: usize = 100;

/// Longest error message kept from an `ErrorResponse`.
const MAX_MESSAGE_CHARS: usize = 500;

/// Why a Bot Connector call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// HTTP 429: Teams throttles the bot (per conversation and per app).
    #[error("the Bot Connector is rate limiting the bot (HTTP 429)")]
    RateLimited {
        /// Teams' `Retry-After`, clamped to [`MAX_RETRY_AFTER`].
        retry_after: Option<Duration>,
    },
    /// HTTP 401: the token was refused. The cache has forgotten it, so the
    /// next attempt fetches a new one.
    #[error("the Bot Connector refused the bot's token (HTTP 401)")]
    Unauthorized,
    /// HTTP 403: the bot may not do this, e.g. it is not installed for the
    /// person or the person blocked it. Sending again cannot succeed.
    #[error("the Bot Connector forbids this (HTTP 403): {code}: {message}")]
    Forbidden {
        /// The `ErrorResponse` code (`BotNotInConversationRoster`, ...),
        /// empty when none was sent.
        code: String,
        /// Its message, cut short.
        message: String,
    },
    /// HTTP 404: no such conversation, activity or member.
    #[error(
        "the Bot Connector found no such conversation, activity or member (HTTP 404): {code}: {message}"
    )]
    NotFound {
        /// The `ErrorResponse` code, empty when none was sent.
        code: String,
        /// Its message, cut short.
        message: String,
    },
    /// HTTP 400: the request itself is wrong (a bad activity or card).
    /// Sending it again will not help.
    #[error("the Bot Connector refused the request (HTTP 400): {code}: {message}")]
    BadRequest {
        /// The `ErrorResponse` code, empty when none was sent.
        code: String,
        /// Its message, cut short.
        message: String,
    },
    /// Another 4xx (405, 409, 412, 413, ...).
    #[error("the Bot Connector answered HTTP {status}: {code}: {message}")]
    Unexpected {
        /// The status code.
        status: u16,
        /// The `ErrorResponse` code, empty when none was sent.
        code: String,
        /// Its message, cut short.
        message: String,
    },
    /// HTTP 5xx: the Bot Connector failed for now.
    #[error("the Bot Connector failed (HTTP {status})")]
    Server {
        /// The status code.
        status: u16,
    },
    /// The request failed on the way (connect, timeout, reset).
    #[error("the Bot Connector could not be reached: {message}")]
    Network {
        /// What failed, without the URL.
        message: String,
        /// The request may have reached Teams (it failed after connecting):
        /// a message may have been posted.
        maybe_sent: bool,
    },
    /// A success answer without what the call returns.
    #[error("the Bot Connector's answer is unusable: {0}")]
    Malformed(&'static str),
    /// The service URL is not one a token may be sent to.
    #[error("unusable Bot Connector service URL: {0}")]
    BadServiceUrl(&'static str),
    /// A conversation, activity or member id that cannot be a path
    /// segment (empty, `.` or `..`).
    #[error("an empty or dot-only id cannot address a conversation, activity or member")]
    BadId,
    /// No token for the bot.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// A person in a conversation, as Teams describes them
/// (`TeamsChannelAccount`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamsMember {
    /// The Teams user id (`29:...`), what the bot addresses.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The person's Entra object id.
    #[serde(default)]
    pub aad_object_id: Option<String>,
    /// Email address, when Teams has one.
    #[serde(default)]
    pub email: Option<String>,
    /// Entra user principal name (often, not always, the email).
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// The person's tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// A Bot Connector client for one bot: its token cache and an HTTP client.
pub struct BotConnector<'a> {
    http: &'a reqwest::Client,
    tokens: &'a TokenCache,
}

impl<'a> BotConnector<'a> {
    /// A client sending with `http` and the tokens of `tokens`.
    pub fn new(http: &'a reqwest::Client, tokens: &'a TokenCache) -> BotConnector<'a> {
        BotConnector { http, tokens }
    }

    /// Creates (or finds: Teams answers the same id again) the 1:1
    /// conversation between the bot and `user_id`, for a proactive
    /// message. `bot_id` is the bot as Teams names it (`28:<app id>`, the
    /// `recipient.id` of an inbound activity); `user_id` the person's
    /// Teams id (`29:...`). Needs the app installed for the person.
    pub async fn create_conversation(
        &self,
        service_url: &str,
        bot_id: &str,
        user_id: &str,
        tenant_id: &str,
    ) -> Result<String, ConnectorError> {
        let url = endpoint(service_url, &[])?;
        let body = json!({
            "bot": { "id": bot_id },
            "members": [ { "id": user_id } ],
            "isGroup": false,
            "tenantId": tenant_id,
            "channelData": { "tenant": { "id": tenant_id } },
        });
        let answer = self.call(reqwest::Method::POST, url, Some(&body)).await?;
        resource_id(&answer)?.ok_or(ConnectorError::Malformed("no conversation id"))
    }

    /// Sends `activity` to a conversation (`POST
    /// /v3/conversations/{conversationId}/activities`). The new activity's
    /// id; `None` if the channel sent none (Teams does).
    pub async fn send_activity(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity: &Value,
    ) -> Result<Option<String>, ConnectorError> {
        let url = endpoint(service_url, &[conversation_id, "activities"])?;
        let answer = self
            .call(reqwest::Method::POST, url, Some(activity))
            .await?;
        resource_id(&answer)
    }

    /// Replies to `activity_id` in a conversation (`POST
    /// .../activities/{activityId}`): in a channel, into its thread.
    pub async fn reply_to_activity(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity_id: &str,
        activity: &Value,
    ) -> Result<Option<String>, ConnectorError> {
        let url = endpoint(service_url, &[conversation_id, "activities", activity_id])?;
        let answer = self
            .call(reqwest::Method::POST, url, Some(activity))
            .await?;
        resource_id(&answer)
    }

    /// Replaces a message the bot sent (`PUT .../activities/{activityId}`).
    pub async fn update_activity(
        &self,
        service_url: &str,
        conversation_id: &str,
        activity_id: &str,
        activity: &Value,
    ) -> Result<Option<String>, ConnectorError> {
        let url = endpoint(service_url, &[conversation_id, "activities", activity_id])?;
        let answer = self.call(reqwest::Method::PUT, url, Some(activity)).await?;
        resource_id(&answer)
    }

    /// One member of a conversation (`GET .../members/{memberId}`), with
    /// the email and UPN Teams knows.
    pub async fn get_member(
        &self,
        service_url: &str,
        conversation_id: &str,
        member_id: &str,
    ) -> Result<TeamsMember, ConnectorError> {
        let url = endpoint(service_url, &[conversation_id, "members", member_id])?;
        let answer = self.call(reqwest::Method::GET, url, None).await?;
        serde_json::from_slice(&answer).map_err(|_| ConnectorError::Malformed("not a member"))
    }

    /// The members of a conversation or a team, page by page (`GET
    /// .../pagedmembers?pageSize=..&continuationToken=..`), until `wanted`
    /// picks one (returned) or the pages end (`None`). At most
    /// [`MAX_MEMBER_PAGES`] pages are read.
    pub async fn find_member(
        &self,
        service_url: &str,
        conversation_id: &str,
        wanted: impl Fn(&TeamsMember) -> bool,
    ) -> Result<Option<TeamsMember>, ConnectorError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            continuation_token: Option<String>,
            #[serde(default)]
            members: Vec<TeamsMember>,
        }
        let mut continuation: Option<String> = None;
        for _ in 0..MAX_MEMBER_PAGES {
            let mut url = endpoint(service_url, &[conversation_id, "pagedmembers"])?;
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("pageSize", &MEMBER_PAGE_SIZE.to_string());
                if let Some(token) = &continuation {
                    query.append_pair("continuationToken", token);
                }
            }
            let answer = self.call(reqwest::Method::GET, url, None).await?;
            let page: Page = serde_json::from_slice(&answer)
                .map_err(|_| ConnectorError::Malformed("not a page of members"))?;
            if let Some(found) = page.members.into_iter().find(|m| wanted(m)) {
                return Ok(Some(found));
            }
            match page.continuation_token.filter(|t| !t.is_empty()) {
                Some(next) => continuation = Some(next),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Sends one request with the bot's token; the body of a 2xx answer.
    async fn call(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, ConnectorError> {
        let token = self.tokens.token().await?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.map_err(network)?;
        let status = answer.status().as_u16();
        if status == 429 {
            return Err(ConnectorError::RateLimited {
                retry_after: crate::http::retry_after(answer.headers())
                    .map(|d| d.min(MAX_RETRY_AFTER)),
            });
        }
        if status == 401 {
            self.tokens.invalidate_token(&token).await;
            return Err(ConnectorError::Unauthorized);
        }
        if status >= 500 {
            return Err(ConnectorError::Server { status });
        }
        let body = crate::http::read_capped(answer, MAX_ANSWER_BYTES)
            .await
            .map_err(|message| ConnectorError::Network {
                message,
                maybe_sent: true,
            })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let (code, message) = error_response(&body);
        Err(match status {
            400 => ConnectorError::BadRequest { code, message },
            403 => ConnectorError::Forbidden { code, message },
            404 => ConnectorError::NotFound { code, message },
            _ => ConnectorError::Unexpected {
                status,
                code,
                message,
            },
        })
    }
}

fn network(e: reqwest::Error) -> ConnectorError {
    ConnectorError::Network {
        maybe_sent: !e.is_connect() && !e.is_builder(),
        message: crate::http::describe(e),
    }
}

/// The `id` of a `ResourceResponse` / `ConversationResourceResponse`;
/// an empty answer (202) has none.
fn resource_id(body: &[u8]) -> Result<Option<String>, ConnectorError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct Resource {
        id: Option<String>,
    }
    let resource: Resource = serde_json::from_slice(body)
        .map_err(|_| ConnectorError::Malformed("not a resource response"))?;
    Ok(resource.id.filter(|id| !id.is_empty()))
}

/// `code` and `message` of the spec's `ErrorResponse`, empty when the
/// body is not one; one line, cut short.
fn error_response(body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct ErrorResponse {
        error: Option<ErrorBody>,
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        code: Option<String>,
        message: Option<String>,
    }
    let error = serde_json::from_slice::<ErrorResponse>(body)
        .ok()
        .and_then(|r| r.error);
    let (code, message) = error
        .map(|e| (e.code.unwrap_or_default(), e.message.unwrap_or_default()))
        .unwrap_or_default();
    (one_line(&code), one_line(&message))
}

fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX_MESSAGE_CHARS {
        line.push('…');
    }
    line
}

/// `{service_url}/v3/conversations[/{segment}...]`, each segment
/// percent-encoded whole. The service URL must be `https` (or `http` to
/// loopback), without credentials, query or fragment; it may end with
/// or without `/` and carry a path (`https://smba.trafficmanager.net/amer/`).
pub fn endpoint(service_url: &str, segments: &[&str]) -> Result<reqwest::Url, ConnectorError> {
    let base = reqwest::Url::parse(service_url.trim())
        .map_err(|_| ConnectorError::BadServiceUrl("not a URL"))?;
    let host = base
        .host_str()
        .ok_or(ConnectorError::BadServiceUrl("no host"))?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match base.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(ConnectorError::BadServiceUrl("not https")),
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(ConnectorError::BadServiceUrl("carries credentials"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(ConnectorError::BadServiceUrl("carries a query or fragment"));
    }
    // URL parsing drops `.` and `..` segments (even escaped), which would
    // point the request at another resource.
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(ConnectorError::BadId);
    }
    let mut text = base.as_str().trim_end_matches('/').to_owned();
    text.push_str("/v3/conversations");
    for segment in segments {
        text.push('/');
        text.push_str(&path_segment(segment));
    }
    reqwest::Url::parse(&text).map_err(|_| ConnectorError::BadServiceUrl("not a URL"))
}

/// `text` percent-encoded as one path segment: everything but RFC 3986's
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`) is escaped, so `/`, `:`,
/// `;`, `@`, `=`, `%`, `?` and `#` cannot change the path.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::{Request, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;

    use super::*;
    use crate::secret::Secret;
    use crate::teams::token::BotCredentials;

    /// One request the fake Bot Connector saw.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        authorization: String,
        body: Value,
    }

    /// A header the fake adds to its answer.
    type ExtraHeader = Option<(&'static str, &'static str)>;

    /// A fake Entra token endpoint and Bot Connector on one loopback port.
    #[derive(Default)]
    struct Fake {
        tokens_issued: AtomicUsize,
        seen: StdMutex<Vec<Seen>>,
        /// Status, extra header, body; the default is 200 `{"id":"activity-1"}`.
        answer: StdMutex<Option<(u16, ExtraHeader, String)>>,
    }

    async fn token_endpoint(State(fake): State<Arc<Fake>>) -> impl IntoResponse {
        let n = fake.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
        axum::Json(
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": format!("bot-token-{n}")}),
        )
    }

    async fn connector(State(fake): State<Arc<Fake>>, request: Request) -> impl IntoResponse {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        fake.seen.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            authorization: parts
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        });
        let answer = fake.answer.lock().unwrap().clone();
        let (status, header, body) =
            answer.unwrap_or((200, None, r#"{"id":"activity-1"}"#.to_owned()));
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        if let Some((name, value)) = header {
            headers.insert(name, value.parse().unwrap());
        }
        (StatusCode::from_u16(status).unwrap(), headers, body)
    }

    /// The fake's base URL (`http://127.0.0.1:port`).
    async fn spawn(fake: Arc<Fake>) -> String {
        let app = axum::Router::new()
            .route(
                "/tenant-1/oauth2/v2.0/token",
                axum::routing::post(token_endpoint),
            )
            .fallback(connector)
            .with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    struct Setup {
        fake: Arc<Fake>,
        base: String,
        http: reqwest::Client,
        tokens: TokenCache,
    }

    impl Setup {
        async fn new() -> Setup {
            let fake = Arc::new(Fake::default());
            let base = spawn(fake.clone()).await;
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let tokens = TokenCache::new(
                http.clone(),
                format!("{base}/"),
                BotCredentials {
                    app_id: "app-1".into(),
                    tenant_id: "tenant-1".into(),
                    client_secret: Secret::new("secret-1"),
                },
            );
            Setup {
                fake,
                base,
                http,
                tokens,
            }
        }

        fn connector(&self) -> BotConnector<'_> {
            BotConnector::new(&self.http, &self.tokens)
        }

        fn answer(&self, status: u16, header: ExtraHeader, body: &str) {
            *self.fake.answer.lock().unwrap() = Some((status, header, body.to_owned()));
        }

        fn last(&self) -> Seen {
            self.fake.seen.lock().unwrap().last().cloned().unwrap()
        }
    }

    const CHANNEL_THREAD: &str = "19:abc@thread.tacv2;messageid=1768241233603";

    #[tokio::test]
    async fn teams_connector_creates_a_proactive_one_to_one_conversation() {
        let s = Setup::new().await;
        s.answer(201, None, r#"{"id":"a:1xyz"}"#);
        let id = s
            .connector()
            .create_conversation(
                &format!("{}/amer/", s.base),
                "28:app-1",
                "29:user",
                "tenant-1",
            )
            .await
            .unwrap();
        assert_eq!(id, "a:1xyz");
        let seen = s.last();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path, "/amer/v3/conversations");
        assert_eq!(seen.authorization, "Bearer bot-token-1");
        assert_eq!(
            seen.body,
            json!({
                "bot": {"id": "28:app-1"},
                "members": [{"id": "29:user"}],
                "isGroup": false,
                "tenantId": "tenant-1",
                "channelData": {"tenant": {"id": "tenant-1"}},
            })
        );
    }

    #[tokio::test]
    async fn teams_connector_sends_replies_and_updates_with_ids_as_one_segment() {
        let s = Setup::new().await;
        let c = s.connector();
        let activity = json!({"type": "message", "text": "hello"});
        // Without a trailing slash and without a path: the same join.
        for service_url in [s.base.clone(), format!("{}/", s.base)] {
            let id = c
                .send_activity(&service_url, CHANNEL_THREAD, &activity)
                .await
                .unwrap();
            assert_eq!(id.as_deref(), Some("activity-1"));
            let seen = s.last();
            assert_eq!(
                (seen.method.as_str(), seen.path.as_str()),
                (
                    "POST",
                    "/v3/conversations/19%3Aabc%40thread.tacv2%3Bmessageid%3D1768241233603/activities"
                )
            );
            assert_eq!(seen.body, activity);
        }
        c.reply_to_activity(&s.base, "a:1/x", "1768241233603", &activity)
            .await
            .unwrap();
        let seen = s.last();
        assert_eq!(seen.method, "POST");
        assert_eq!(
            seen.path,
            "/v3/conversations/a%3A1%2Fx/activities/1768241233603"
        );
        s.answer(202, None, "");
        let id = c
            .update_activity(&s.base, "a:1", "f:2?x#y", &activity)
            .await
            .unwrap();
        assert_eq!(id, None);
        let seen = s.last();
        assert_eq!(seen.method, "PUT");
        assert_eq!(
            seen.path,
            "/v3/conversations/a%3A1/activities/f%3A2%3Fx%23y"
        );
        // One token for all of it.
        assert_eq!(s.fake.tokens_issued.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn teams_connector_reads_a_member_with_email_and_upn() {
        let s = Setup::new().await;
        s.answer(
            200,
            None,
            r#"{"id":"29:1abc","name":"Ada Lovelace","aadObjectId":"6f1b...","email":"ada@contoso.com",
                "userPrincipalName":"ada@contoso.com","tenantId":"tenant-1","givenName":"Ada","surname":"Lovelace","userRole":"user"}"#,
        );
        let member = s
            .connector()
            .get_member(&s.base, "a:1", "29:1abc")
            .await
            .unwrap();
        assert_eq!(
            member,
            TeamsMember {
                id: "29:1abc".into(),
                name: Some("Ada Lovelace".into()),
                aad_object_id: Some("6f1b...".into()),
                email: Some("ada@contoso.com".into()),
                user_principal_name: Some("ada@contoso.com".into()),
                tenant_id: Some("tenant-1".into()),
            }
        );
        let seen = s.last();
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.path, "/v3/conversations/a%3A1/members/29%3A1abc");
    }

    #[tokio::test]
    async fn teams_connector_401_makes_the_next_attempt_fetch_a_new_token() {
        let s = Setup::new().await;
        let c = s.connector();
        let activity = json!({"type": "message"});
        s.answer(
            401,
            None,
            r#"{"message":"Authorization has been denied for this request."}"#,
        );
        assert_eq!(
            c.send_activity(&s.base, "a:1", &activity).await,
            Err(ConnectorError::Unauthorized)
        );
        assert_eq!(s.last().authorization, "Bearer bot-token-1");
        *s.fake.answer.lock().unwrap() = None;
        c.send_activity(&s.base, "a:1", &activity).await.unwrap();
        assert_eq!(s.last().authorization, "Bearer bot-token-2");
        assert_eq!(s.fake.tokens_issued.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn teams_connector_statuses_become_typed_errors() {
        let s = Setup::new().await;
        let c = s.connector();
        let forbidden = r#"{"error":{"code":"BotNotInConversationRoster","message":"The bot is not part of the conversation roster."}}"#;
        let cases: Vec<(u16, ExtraHeader, &str, ConnectorError)> = vec![
            (
                429,
                Some(("retry-after", "9223372036854775807")),
                "",
                ConnectorError::RateLimited {
                    retry_after: Some(MAX_RETRY_AFTER),
                },
            ),
            (
                429,
                Some(("retry-after", "3")),
                "",
                ConnectorError::RateLimited {
                    retry_after: Some(Duration::from_secs(3)),
                },
            ),
            (
                429,
                None,
                "",
                ConnectorError::RateLimited { retry_after: None },
            ),
            (
                403,
                None,
                forbidden,
                ConnectorError::Forbidden {
                    code: "BotNotInConversationRoster".into(),
                    message: "The bot is not part of the conversation roster.".into(),
                },
            ),
            (
                404,
                None,
                r#"{"error":{"code":"ConversationNotFound","message":"Conversation not found."}}"#,
                ConnectorError::NotFound {
                    code: "ConversationNotFound".into(),
                    message: "Conversation not found.".into(),
                },
            ),
            (
                400,
                None,
                r#"{"error":{"code":"BadArgument","message":"Unknown activity type\r\n"}}"#,
                ConnectorError::BadRequest {
                    code: "BadArgument".into(),
                    message: "Unknown activity type  ".into(),
                },
            ),
            (
                413,
                None,
                "<html>too large</html>",
                ConnectorError::Unexpected {
                    status: 413,
                    code: String::new(),
                    message: String::new(),
                },
            ),
            (502, None, "", ConnectorError::Server { status: 502 }),
            (
                200,
                None,
                "[1,2]",
                ConnectorError::Malformed("not a resource response"),
            ),
        ];
        for (status, header, body, expected) in cases {
            s.answer(status, header, body);
            assert_eq!(
                c.send_activity(&s.base, "a:1", &json!({})).await,
                Err(expected),
                "{status} {body}"
            );
        }
    }

    #[tokio::test]
    async fn teams_connector_refuses_service_urls_before_sending_the_token() {
        let s = Setup::new().await;
        let c = s.connector();
        for (url, why) in [
            ("http://smba.trafficmanager.net/amer/", "not https"),
            ("ftp://127.0.0.1/", "not https"),
            (
                "https://user:pw@smba.trafficmanager.net/",
                "carries credentials",
            ),
            (
                "https://smba.trafficmanager.net/amer/?x=1",
                "carries a query or fragment",
            ),
            ("/v3/relative", "not a URL"),
        ] {
            assert_eq!(
                c.send_activity(url, "a:1", &json!({})).await,
                Err(ConnectorError::BadServiceUrl(why)),
                "{url}"
            );
        }
        for id in ["", ".", ".."] {
            assert_eq!(
                c.send_activity(&s.base, id, &json!({})).await,
                Err(ConnectorError::BadId)
            );
        }
        assert_eq!(s.fake.tokens_issued.load(Ordering::SeqCst), 0);
        assert!(s.fake.seen.lock().unwrap().is_empty());
    }

    #[test]
    fn teams_connector_joins_service_urls_as_teams_writes_them() {
        for (service_url, expected) in [
            (
                "https://smba.trafficmanager.net/amer/",
                "https://smba.trafficmanager.net/amer/v3/conversations/a%3A1/activities",
            ),
            (
                "https://smba.trafficmanager.net/emea",
                "https://smba.trafficmanager.net/emea/v3/conversations/a%3A1/activities",
            ),
            (
                "https://smba.trafficmanager.net/",
                "https://smba.trafficmanager.net/v3/conversations/a%3A1/activities",
            ),
            (
                "http://[::1]:8080/teams/",
                "http://[::1]:8080/teams/v3/conversations/a%3A1/activities",
            ),
        ] {
            assert_eq!(
                endpoint(service_url, &["a:1", "activities"])
                    .unwrap()
                    .as_str(),
                expected
            );
        }
        assert_eq!(
            path_segment("19:x@thread.v2;m=1 %/"),
            "19%3Ax%40thread.v2%3Bm%3D1%20%25%2F"
        );
    }

    #[tokio::test]
    async fn teams_connector_unreachable_service_is_a_network_error() {
        let s = Setup::new().await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let err = s
            .connector()
            .send_activity(&closed, "a:1", &json!({}))
            .await
            .unwrap_err();
        let ConnectorError::Network {
            maybe_sent,
            message,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert!(!maybe_sent, "{message}");
        assert!(!err.to_string().contains("bot-token"));
    }
}
