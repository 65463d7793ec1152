//! Confluence Data Center's REST API, as far as Pagehook reads it.
//!
//! Authenticates with a personal access token (`Authorization: Bearer`) or
//! Basic credentials, honours `429 Retry-After` (clamped: Confluence has been
//! seen sending 2^63-1), waits briefly and retries on 429 and 5xx, and turns
//! every failure into a [`ClientError`] that never contains the credentials.
//!
//! Personal access tokens expire (90 days by default on Data Center).
//! [`ConfluenceClient::tokens`] reads the account's tokens from
//! `GET /rest/pat/latest/tokens` (a bare JSON array of `id`, `name`,
//! `createdAt`, `expiringAt`, `lastAccessedAt`; Confluence 7.9 and later).
//! The list never shows a token's value, so the token in use cannot be picked
//! out of it; [`token_in_use`] applies Pagehook's rule: of the tokens that have
//! not expired (the one authenticating this very request cannot have), the
//! one that expires first. With a single token on the service account, as
//! the admin guide recommends, that is exactly the token in use; with
//! several, the warning comes early rather than late.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::model::Person;
use crate::secret::Secret;
use crate::store::ConnectionRecord;

/// How the client authenticates.
#[derive(Debug, Clone)]
pub enum ConfluenceAuth {
    /// A personal access token.
    Bearer(Secret),
    /// A user and password (or API token).
    Basic {
        /// The user.
        username: String,
        /// Its password.
        password: Secret,
    },
}

impl ConfluenceAuth {
    /// How to authenticate as a Confluence connection: basic auth when it
    /// names a user, its token as a bearer otherwise; `Ok(None)` for a
    /// webhook-only connection (no token), `Err` when its secret cannot be read.
    pub fn of(conn: &ConnectionRecord) -> Result<Option<ConfluenceAuth>, String> {
        let Some(source) = conn.secret.as_ref() else {
            return Ok(None);
        };
        let secret = source
            .resolve()
            .map_err(|m| format!("token of `{}`: {m}", conn.name))?;
        Ok(Some(match &conn.username {
            Some(username) => ConfluenceAuth::Basic {
                username: username.clone(),
                password: secret,
            },
            None => ConfluenceAuth::Bearer(secret),
        }))
    }
}

/// Timeouts and retry behaviour.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per request.
    pub timeout: Duration,
    /// Longest `Retry-After` believed.
    pub max_retry_after: Duration,
    /// Longest wait spent inside one call before giving the rate limit back
    /// to the caller (which then retries the event later instead of blocking).
    pub max_inline_wait: Duration,
    /// Requests per call, including retries after 429 and 5xx.
    pub attempts: u32,
    /// The connection's own proxy (`None`: the global `[network] proxy`).
    pub proxy: Option<crate::http::proxy::ProxyOverride>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(600),
            max_inline_wait: Duration::from_secs(5),
            attempts: 3,
            proxy: None,
        }
    }
}

/// Why a REST call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// 401: the token or password is wrong or expired. 403: the account
    /// is known but lacks a permission for this request (a write in a space
    /// where it may not add content, an admin-only resource): not a token
    /// problem, see [`ClientError::is_forbidden`].
    #[error("{}", unauthorized_message(*.0))]
    Unauthorized(u16),
    /// 429 beyond what one call waits for.
    #[error("Confluence is rate limiting; retry after {} s", .retry_after.as_secs())]
    RateLimited {
        /// How long Confluence asked to wait (clamped).
        retry_after: Duration,
    },
    /// 5xx after retries.
    #[error("Confluence answered HTTP {0}")]
    Server(u16),
    /// Could not reach Confluence or the request timed out.
    #[error("cannot reach Confluence: {0}")]
    Network(String),
    /// An answer that is not what the API documents.
    #[error("unexpected answer from Confluence: {0}")]
    BadAnswer(String),
    /// A write refused for its content (HTTP 400, or 404 for a missing parent).
    #[error("Confluence refused it (HTTP {status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Confluence's message.
        message: String,
    },
}

impl ClientError {
    /// Worth retrying later (as opposed to needing an admin).
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            ClientError::Unauthorized(_) | ClientError::Rejected { .. }
        )
    }

    /// HTTP 403: the credentials were accepted, the account lacks a
    /// permission (re-entering the token would not help).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ClientError::Unauthorized(403))
    }

    /// How long the caller should wait before trying again, when Confluence said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Fields enrichment asks Confluence to include: among them the content's own
/// view restrictions and, through `ancestors.restrictions...`, each ancestor's
/// own, so one request tells whether the content inherits a restriction (see
/// enrichment's module doc, `enrich/mod.rs`).
/// `body.storage` is the new version's storage format, where the people it
/// mentions are (`ri:user`, see [`super::people`]).
pub const CONTENT_EXPAND: &str = "space,version,history,metadata.labels,ancestors,container,restrictions.read.restrictions.user,restrictions.read.restrictions.group,ancestors.restrictions.read.restrictions.user,ancestors.restrictions.read.restrictions.group,body.view,body.storage";

/// What [`ConfluenceClient::search`] asks for each result: enough to judge
/// who may view it (its own and its ancestors' restrictions) and to
/// summarise it (`body.view` for an excerpt), without storage bodies.
pub const SEARCH_EXPAND: &str = "space,version,ancestors,restrictions.read.restrictions.user,restrictions.read.restrictions.group,ancestors.restrictions.read.restrictions.user,ancestors.restrictions.read.restrictions.group,body.view";

/// [`SEARCH_EXPAND`] without the nested `ancestors.restrictions...`
/// expansion: what [`ConfluenceClient::search`] asks for again when the
/// nested one answers 404 (reported when one result's ancestor is in the
/// trash). Each result's ancestors then come back without restrictions and
/// [`super::viewers::Viewers::restrictions`] reads each one by itself
/// (cached), as it does for any unexpanded ancestor.
pub const SEARCH_EXPAND_FLAT: &str = "space,version,ancestors,restrictions.read.restrictions.user,restrictions.read.restrictions.group,body.view";

/// What [`ConfluenceClient::own_restrictions`] asks for: the view restrictions
/// set on the content itself (Confluence lists no inherited ones there).
pub const RESTRICTIONS_EXPAND: &str =
    "restrictions.read.restrictions.user,restrictions.read.restrictions.group";

/// A client for one Confluence instance.
#[derive(Clone)]
pub struct ConfluenceClient {
    base: String,
    auth: ConfluenceAuth,
    http: reqwest::Client,
    options: ClientOptions,
}

impl ConfluenceClient {
    /// A client for the instance at `base_url` (with its context path).
    pub fn new(base_url: &str, auth: ConfluenceAuth, options: ClientOptions) -> ConfluenceClient {
        let http = crate::http::client_builder_for(options.proxy.as_ref())
            .timeout(options.timeout)
            .user_agent(concat!("pagehook/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        ConfluenceClient {
            base: base_url.trim_end_matches('/').to_owned(),
            auth,
            http,
            options,
        }
    }

    /// `GET /rest/api/content/{id}?status=any&expand=...`; `None` when it does not exist (or we may not see it).
    pub async fn content(&self, id: u64) -> Result<Option<Value>, ClientError> {
        self.get(&format!(
            "/rest/api/content/{id}?status=any&expand={CONTENT_EXPAND}"
        ))
        .await
    }

    /// `GET /rest/api/content/{id}?status=any&expand=restrictions.read...`: the
    /// view restrictions set on content `id` itself (enrichment's fallback for
    /// an ancestor whose restrictions did not come back expanded); `None` when
    /// it does not exist or we may not see it.
    pub async fn own_restrictions(&self, id: u64) -> Result<Option<Value>, ClientError> {
        self.get(&format!(
            "/rest/api/content/{id}?status=any&expand={RESTRICTIONS_EXPAND}"
        ))
        .await
    }

    /// `GET /rest/api/user?key=`; `None` for an unknown (e.g. deleted) user.
    pub async fn user(&self, key: &str) -> Result<Option<Person>, ClientError> {
        let key: String = form_urlencoded(key);
        Ok(self
            .get(&format!("/rest/api/user?key={key}"))
            .await?
            .map(|v| person(&v, None)))
    }

    /// `GET /rest/api/user/current`: whom the credentials belong to.
    pub async fn current_user(&self) -> Result<Person, ClientError> {
        let v = self
            .get("/rest/api/user/current")
            .await?
            .ok_or_else(|| ClientError::BadAnswer("/rest/api/user/current answered 404".into()))?;
        let p = person(&v, None);
        if p.key.is_empty() {
            return Err(ClientError::BadAnswer(
                "the current user has no userKey".into(),
            ));
        }
        Ok(p)
    }

    /// The page titled `title` in `space`, if there is one (titles are
    /// unique within a space): what delivery checks before creating a page.
    pub async fn find_page(&self, space: &str, title: &str) -> Result<Option<u64>, ClientError> {
        let path = format!(
            "/rest/api/content?type=page&spaceKey={}&title={}&status=current",
            form_urlencoded(space),
            form_urlencoded(title)
        );
        Ok(self
            .get(&path)
            .await?
            .and_then(|v| v.pointer("/results/0/id").cloned())
            .and_then(|id| id.as_u64().or_else(|| id.as_str()?.parse().ok())))
    }

    /// The page's (or blog post's) top-level comments with their storage
    /// bodies, every page of them (Confluence pages lists; at most 5,000).
    pub async fn comments(&self, page_id: u64) -> Result<Vec<Value>, ClientError> {
        self.every_page(format!(
            "/rest/api/content/{page_id}/child/comment?expand=body.storage&limit=100"
        ))
        .await
    }

    /// The keys of every global space the credentials may view
    /// (`GET /rest/api/space`, page by page; at most 5,000).
    pub async fn spaces(&self) -> Result<Vec<String>, ClientError> {
        Ok(self
            .every_page("/rest/api/space?type=global&limit=100".to_owned())
            .await?
            .iter()
            .filter_map(|s| s.get("key").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// Every global space the credentials may view as (key, name), by key
    /// (`GET /rest/api/space`, page by page; at most 5,000): what the
    /// console's space picker offers.
    pub async fn space_list(&self) -> Result<Vec<(String, Option<String>)>, ClientError> {
        let mut spaces: Vec<(String, Option<String>)> = self
            .every_page("/rest/api/space?type=global&limit=100".to_owned())
            .await?
            .iter()
            .filter_map(|s| {
                let key = s.get("key").and_then(Value::as_str)?.to_owned();
                let name = s.get("name").and_then(Value::as_str).map(str::to_owned);
                Some((key, name))
            })
            .collect();
        spaces.sort();
        Ok(spaces)
    }

    /// `GET /rest/api/space/{key}/permissions` (Confluence 9.1 and later):
    /// who holds which permission in the space, when Confluence lists them
    /// (see [`SpaceGrants`]); `None` in every other case.
    pub async fn space_permissions(&self, key: &str) -> Result<Option<Vec<Value>>, ClientError> {
        Ok(self.space_grants(key).await?.listed())
    }

    /// `GET /rest/api/space/{key}/permissions`, and what its answer means.
    ///
    /// Confluence lists a space's permissions only to the space's (and
    /// Confluence) administrators; to others it answers 403, or, as reported
    /// in CONFSERVER-99908, 500. A 5xx is therefore asked once more and then
    /// taken as [`SpaceGrants::NotKnown`], never retried again and again.
    /// 401 (credentials refused) and 429 beyond the inline wait stay errors.
    pub async fn space_grants(&self, key: &str) -> Result<SpaceGrants, ClientError> {
        let path = format!("/rest/api/space/{}/permissions", form_urlencoded(key));
        match self.send(reqwest::Method::GET, &path, None, 2).await {
            Ok(Some(Value::Array(grants))) => Ok(SpaceGrants::Listed(grants)),
            Ok(Some(_)) => Err(ClientError::BadAnswer(
                "space permissions are not a list".into(),
            )),
            Ok(None) => Ok(SpaceGrants::Missing),
            Err(ClientError::Unauthorized(403)) => Ok(SpaceGrants::Refused),
            Err(ClientError::Server(status)) => {
                tracing::info!(
                    space = key,
                    status,
                    "space permissions answered a server error twice (CONFSERVER-99908: Confluence answers 500 to callers who do not administer the space): not known"
                );
                Ok(SpaceGrants::NotKnown(status))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether space `key` exists and the account may view it
    /// (`GET /rest/api/space?spaceKey=`, filtered here as well).
    pub async fn space_exists(&self, key: &str) -> Result<bool, ClientError> {
        let path = format!(
            "/rest/api/space?spaceKey={}&limit=100",
            form_urlencoded(key)
        );
        Ok(self
            .every_page(path)
            .await?
            .iter()
            .any(|s| s.get("key").and_then(Value::as_str) == Some(key)))
    }

    /// The names of the groups `username` belongs to
    /// (`GET /rest/api/user/memberof`, every page).
    pub async fn groups(&self, username: &str) -> Result<Vec<String>, ClientError> {
        Ok(self
            .every_page(format!(
                "/rest/api/user/memberof?username={}&limit=200",
                form_urlencoded(username)
            ))
            .await?
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// The instance's base URL (with its context path, no trailing slash):
    /// links into this Confluence start with it.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /rest/api/user?username=`; `None` for an unknown user.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<Person>, ClientError> {
        Ok(self
            .get(&format!(
                "/rest/api/user?username={}",
                form_urlencoded(username)
            ))
            .await?
            .map(|v| person(&v, None)))
    }

    /// The names of the groups of the user with key `key`
    /// (`GET /rest/api/user/memberof?key=`, every page); `None` when
    /// Confluence does not know the user.
    pub async fn groups_by_key(&self, key: &str) -> Result<Option<Vec<String>>, ClientError> {
        let path = format!(
            "/rest/api/user/memberof?key={}&limit=200",
            form_urlencoded(key)
        );
        Ok(self.pages(path).await?.map(|groups| {
            groups
                .iter()
                .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        }))
    }

    /// `GET /rest/api/content/{id}/watchers` (Data Center 9): the users
    /// watching content `id`, every page. Confluence answers only
    /// Confluence and space administrators; `None` when it refuses (403),
    /// does not know the resource or the content (404).
    pub async fn watchers(&self, id: u64) -> Result<Option<Vec<Value>>, ClientError> {
        match self
            .pages(format!("/rest/api/content/{id}/watchers?limit=100"))
            .await
        {
            Err(ClientError::Unauthorized(403)) => Ok(None),
            other => other,
        }
    }

    /// `GET /rest/api/content/search?cql=...&limit=&expand=`: content the
    /// service account may view that matches `cql` (one page of at most
    /// `limit`), each expanded as [`SEARCH_EXPAND`].
    ///
    /// Confluence has been reported to answer the whole search 404 when the
    /// nested `ancestors.restrictions` expansion meets an ancestor in the
    /// trash. A 404 is therefore not "no results": the search is made again
    /// with [`SEARCH_EXPAND_FLAT`], whose results carry their ancestors
    /// without restrictions, for the caller to read one by one. Only a
    /// second 404 gives no results (logged).
    pub async fn search(&self, cql: &str, limit: usize) -> Result<Vec<Value>, ClientError> {
        let path = |expand: &str| {
            format!(
                "/rest/api/content/search?cql={}&limit={limit}&expand={expand}",
                form_urlencoded(cql)
            )
        };
        let results = |v: Value| {
            v.get("results")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        if let Some(found) = self.get(&path(SEARCH_EXPAND)).await? {
            return Ok(results(found));
        }
        tracing::info!(
            "CQL search with ancestors' restrictions expanded answered 404 (an ancestor in the trash?): searching again without that expansion"
        );
        match self.get(&path(SEARCH_EXPAND_FLAT)).await? {
            Some(found) => Ok(results(found)),
            None => {
                tracing::warn!(
                    "CQL search answered 404 with and without the nested expansion: no results"
                );
                Ok(Vec::new())
            }
        }
    }

    /// `GET /rest/mobile/1.0/profile/{username}`: the user's profile as
    /// Confluence's mobile app reads it (`userName`, `fullName`, `email`,
    /// `unknownUser`, ...; any field may be missing, and `email` obeys the
    /// instance's email-visibility setting). `None` when Confluence answers
    /// 404 (no such user, or no such resource on this instance).
    pub async fn mobile_profile(&self, username: &str) -> Result<Option<Value>, ClientError> {
        self.get(&format!(
            "/rest/mobile/1.0/profile/{}",
            form_urlencoded(username)
        ))
        .await
    }

    /// `GET /rest/api/admin/users/list/active` (Data Center 9.4 and later,
    /// Confluence administrators only): every active user, page by page (at
    /// most 50 pages of 100). `None` when Confluence refuses (403) or has no
    /// such resource (404).
    pub async fn active_users(&self) -> Result<Option<Vec<Value>>, ClientError> {
        match self
            .pages("/rest/api/admin/users/list/active?limit=100".to_owned())
            .await
        {
            Err(ClientError::Unauthorized(403)) => Ok(None),
            other => other,
        }
    }

    /// `GET /rest/experimental/template/page?spaceKey=&expand=body`: the page
    /// templates of `space` with their storage bodies, every page; `None`
    /// when the space does not exist or the account may not see it.
    pub async fn page_templates(&self, space: &str) -> Result<Option<Vec<Value>>, ClientError> {
        let path = format!(
            "/rest/experimental/template/page?spaceKey={}&expand=body&limit=100",
            form_urlencoded(space)
        );
        self.pages(path).await
    }

    /// Every `results` entry of a paged list, following `_links.next`
    /// (at most 50 pages).
    async fn every_page(&self, path: String) -> Result<Vec<Value>, ClientError> {
        Ok(self.pages(path).await?.unwrap_or_default())
    }

    /// [`Self::every_page`], but `None` when the first page answers 404.
    async fn pages(&self, mut path: String) -> Result<Option<Vec<Value>>, ClientError> {
        let mut all = Vec::new();
        for n in 0..50 {
            let Some(page) = self.get(&path).await? else {
                if n == 0 {
                    return Ok(None);
                }
                break;
            };
            if let Some(results) = page.get("results").and_then(Value::as_array) {
                all.extend(results.iter().cloned());
            }
            match page.pointer("/_links/next").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => path = self.relative(next),
                _ => break,
            }
        }
        Ok(Some(all))
    }

    /// The storage body of content `id`; `None` when it does not exist.
    pub async fn storage(&self, id: u64) -> Result<Option<String>, ClientError> {
        Ok(self
            .get(&format!("/rest/api/content/{id}?expand=body.storage"))
            .await?
            .and_then(|v| {
                v.pointer("/body/storage/value")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }))
    }

    /// The type of content `id` (`page`, `blogpost`, `comment`, ...); `None`
    /// when it does not exist or the account may not see it.
    pub async fn content_type(&self, id: u64) -> Result<Option<String>, ClientError> {
        Ok(self.content_type_and_space(id).await?.map(|(kind, _)| kind))
    }

    /// The type of content `id` and the key of its space (when Confluence
    /// says); `None` when it does not exist or the account may not see it.
    pub async fn content_type_and_space(
        &self,
        id: u64,
    ) -> Result<Option<(String, Option<String>)>, ClientError> {
        Ok(self
            .get(&format!("/rest/api/content/{id}?expand=space"))
            .await?
            .and_then(|v| {
                let kind = v.get("type").and_then(Value::as_str)?.to_owned();
                let space = v
                    .pointer("/space/key")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Some((kind, space))
            }))
    }

    /// `POST /rest/api/content`: creates a page or comment; sent once (the
    /// caller decides about retries, after checking what exists).
    pub async fn create(&self, body: &Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::POST, "/rest/api/content", Some(body), 1)
            .await?
            .ok_or_else(|| ClientError::BadAnswer("POST /rest/api/content answered 404".into()))
    }

    /// `POST /rest/api/content/{id}/label` with `[{"prefix":"global","name":..}]`:
    /// adds labels (ones already there are left as they are, so it can be repeated).
    pub async fn add_labels(&self, id: u64, labels: &[String]) -> Result<(), ClientError> {
        let body = Value::Array(
            labels
                .iter()
                .map(|l| serde_json::json!({"prefix": "global", "name": l}))
                .collect(),
        );
        self.send(
            reqwest::Method::POST,
            &format!("/rest/api/content/{id}/label"),
            Some(&body),
            self.options.attempts,
        )
        .await?;
        Ok(())
    }

    /// `GET /rest/pat/latest/tokens`: the authenticated account's personal
    /// access tokens; `None` when this Confluence has no such resource (before
    /// 7.9, or PATs disabled).
    pub async fn tokens(&self) -> Result<Option<Vec<PatToken>>, ClientError> {
        let Some(list) = self.get("/rest/pat/latest/tokens").await? else {
            return Ok(None);
        };
        let items = match &list {
            Value::Array(items) => items,
            other => other
                .get("results")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    ClientError::BadAnswer("/rest/pat/latest/tokens is not a list".into())
                })?,
        };
        Ok(Some(items.iter().filter_map(PatToken::from_json).collect()))
    }

    /// A `_links.next` (relative to the context path, or absolute) as a path
    /// under this client's base URL.
    fn relative(&self, link: &str) -> String {
        if let Some(rest) = link.strip_prefix(&self.base) {
            return rest.to_owned();
        }
        match link.find("/rest/") {
            Some(i) if link.starts_with("http") => link[i..].to_owned(),
            _ => link.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> Result<Option<Value>, ClientError> {
        self.send(reqwest::Method::GET, path, None, self.options.attempts)
            .await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        attempts: u32,
    ) -> Result<Option<Value>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = self
                .http
                .request(method.clone(), &url)
                .header("Accept", "application/json");
            let req = match body {
                Some(b) => req.json(b),
                None => req,
            };
            let req = match &self.auth {
                ConfluenceAuth::Bearer(token) => req.bearer_auth(token.expose()),
                ConfluenceAuth::Basic { username, password } => {
                    req.basic_auth(username, Some(password.expose()))
                }
            };
            let answer = match req.send().await {
                Ok(a) => a,
                Err(e) if attempt < attempts => {
                    tracing::debug!(error = %e.without_url(), "Confluence request failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(ClientError::Network(crate::http::describe(e))),
            };
            let status = answer.status();
            match status {
                s if s.is_success() => {
                    return answer
                        .json::<Value>()
                        .await
                        .map(Some)
                        .map_err(|e| ClientError::BadAnswer(e.without_url().to_string()));
                }
                StatusCode::NOT_FOUND if body.is_none() => return Ok(None),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(ClientError::Unauthorized(status.as_u16()));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(answer.headers(), self.options.max_retry_after);
                    if attempt >= self.options.attempts
                        || waited + wait > self.options.max_inline_wait
                    {
                        return Err(ClientError::RateLimited { retry_after: wait });
                    }
                    waited += wait;
                    tokio::time::sleep(wait).await;
                }
                s if s.is_server_error() => {
                    if attempt >= attempts {
                        return Err(ClientError::Server(s.as_u16()));
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                s if s.is_client_error() => {
                    let text = answer.text().await.unwrap_or_default();
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_else(|| text.chars().take(300).collect());
                    return Err(ClientError::Rejected {
                        status: s.as_u16(),
                        message,
                    });
                }
                s => {
                    return Err(ClientError::BadAnswer(format!(
                        "HTTP {} for {}",
                        s.as_u16(),
                        path.split('?').next().unwrap_or(path)
                    )));
                }
            }
        }
    }
}

/// What `GET /rest/api/space/{key}/permissions` said.
#[derive(Debug, Clone, PartialEq)]
pub enum SpaceGrants {
    /// The space's permission grants.
    Listed(Vec<Value>),
    /// 403: the account does not administer the space.
    Refused,
    /// 404: no such space, or no such resource (before Data Center 9.1).
    Missing,
    /// A server error, asked twice (CONFSERVER-99908: what non-admins get).
    NotKnown(u16),
}

impl SpaceGrants {
    /// The grants, when Confluence listed them.
    pub fn listed(self) -> Option<Vec<Value>> {
        match self {
            SpaceGrants::Listed(grants) => Some(grants),
            _ => None,
        }
    }
}

/// [`ClientError::Unauthorized`] in words: 401 is the credentials, 403 a
/// permission the account lacks.
fn unauthorized_message(status: u16) -> String {
    if status == 403 {
        "Confluence refused the request (HTTP 403): the connection's account lacks a permission it needs".to_owned()
    } else {
        format!("Confluence refused the credentials (HTTP {status}): check the connection's token")
    }
}

/// One of the account's personal access tokens, as `GET /rest/pat/latest/tokens`
/// lists it (never with its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatToken {
    /// Confluence's id for it.
    pub id: Option<u64>,
    /// The name its owner gave it.
    pub name: String,
    /// When it was created (ms since the epoch).
    pub created_at: Option<i64>,
    /// When it expires (ms since the epoch); `None`: never.
    pub expires_at: Option<i64>,
    /// When it was last used (ms since the epoch).
    pub last_accessed_at: Option<i64>,
}

impl PatToken {
    fn from_json(v: &Value) -> Option<PatToken> {
        let time = |k: &str| v.get(k).and_then(timestamp_ms);
        Some(PatToken {
            id: v
                .get("id")
                .and_then(|id| id.as_u64().or_else(|| id.as_str()?.parse().ok())),
            name: v.get("name")?.as_str()?.to_owned(),
            created_at: time("createdAt"),
            expires_at: time("expiringAt"),
            last_accessed_at: time("lastAccessedAt"),
        })
    }
}

/// Which listed token Pagehook takes to be the one it authenticates with:
/// of those not expired at `now_ms`, the one that expires first; `None` when
/// none of them expires (or none is listed).
pub fn token_in_use(tokens: &[PatToken], now_ms: i64) -> Option<&PatToken> {
    tokens
        .iter()
        .filter(|t| t.expires_at.is_some_and(|at| at > now_ms))
        .min_by_key(|t| t.expires_at)
}

/// A Confluence timestamp in ms since the epoch: ISO 8601 with an offset
/// (`2026-01-12T18:07:13.603+0000`, `+01:00`, `Z`; fraction optional), or a
/// number of ms.
pub fn timestamp_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => crate::clock::parse_iso8601_ms(s),
        _ => None,
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 * u64::from(attempt))
}

/// `Retry-After` in seconds, clamped to `max`; a missing or unreadable value means one second.
fn retry_after(headers: &reqwest::header::HeaderMap, max: Duration) -> Duration {
    crate::http::retry_after(headers)
        .unwrap_or(Duration::from_secs(1))
        .min(max)
}

fn form_urlencoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A person from a REST user object (`userKey`, `username`, `displayName`, `email`).
pub fn person(v: &Value, fallback_key: Option<&str>) -> Person {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Person {
        key: s("userKey")
            .or_else(|| fallback_key.map(str::to_owned))
            .unwrap_or_default(),
        username: s("username"),
        display_name: s("displayName"),
        email: s("email"),
    }
}

// --- `pagehook doctor`'s probes (see `crate::doctor::probes`) ---

/// What one `GET` answered, status and all: `pagehook doctor` must tell a
/// refusal (403) from a resource this version lacks (404) from a server
/// error (500), which the methods above fold into `None` or an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    /// The HTTP status.
    pub status: u16,
    /// The body, when it is JSON.
    pub body: Option<Value>,
}

impl ConfluenceClient {
    /// One authenticated `GET path` (relative to the base URL, already
    /// encoded), sent once and never retried, answered with its status and
    /// JSON body whatever the status; `Err` only when no answer came
    /// (network, timeout, TLS). Never carries the credentials.
    pub async fn probe(&self, path: &str) -> Result<Probed, ClientError> {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Accept", "application/json");
        let req = match &self.auth {
            ConfluenceAuth::Bearer(token) => req.bearer_auth(token.expose()),
            ConfluenceAuth::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose()))
            }
        };
        let answer = req
            .send()
            .await
            .map_err(|e| ClientError::Network(e.without_url().to_string()))?;
        let status = answer.status().as_u16();
        let text = answer
            .text()
            .await
            .map_err(|e| ClientError::Network(e.without_url().to_string()))?;
        Ok(Probed {
            status,
            body: serde_json::from_str(&text).ok(),
        })
    }
}

/// `s` encoded for a path segment or a query value.
pub fn encoded(s: &str) -> String {
    form_urlencoded(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_clamped_and_defaults() {
        let mut h = reqwest::header::HeaderMap::new();
        let max = Duration::from_secs(600);
        assert_eq!(retry_after(&h, max), Duration::from_secs(1));
        h.insert("retry-after", "9223372036854775807".parse().unwrap());
        assert_eq!(retry_after(&h, max), max);
        h.insert(
            "retry-after",
            "99999999999999999999999999999".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, max), max);
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h, max), Duration::from_secs(3));
    }

    #[test]
    fn confluence_timestamps_are_strings_or_numbers() {
        assert_eq!(timestamp_ms(&serde_json::json!(42)), Some(42));
        assert_eq!(
            timestamp_ms(&serde_json::json!("2026-01-12T18:07:13.603+0000")),
            Some(1_768_241_233_603)
        );
        assert_eq!(timestamp_ms(&serde_json::json!(true)), None);
    }

    #[test]
    fn the_token_in_use_is_the_earliest_unexpired() {
        let t = |name: &str, expires_at: Option<i64>| PatToken {
            id: None,
            name: name.into(),
            created_at: None,
            expires_at,
            last_accessed_at: None,
        };
        let tokens = [
            t("old", Some(50)),
            t("later", Some(900)),
            t("forever", None),
            t("sooner", Some(300)),
        ];
        assert_eq!(token_in_use(&tokens, 100).unwrap().name, "sooner");
        assert_eq!(token_in_use(&tokens, 400).unwrap().name, "later");
        assert!(token_in_use(&tokens, 1000).is_none());
        let listed = PatToken::from_json(&serde_json::json!({
            "id": 7, "name": "sidecar", "createdAt": "2026-01-12T18:07:13.603+0000",
            "expiringAt": "2026-04-12T18:07:13.603+0000"
        }))
        .unwrap();
        assert_eq!(listed.id, Some(7));
        assert_eq!(
            listed.expires_at.unwrap() - listed.created_at.unwrap(),
            90 * 86_400_000
        );
        assert_eq!(listed.last_accessed_at, None);
    }

    mod against_the_fake {
        use pagehook_fakes::{
            ConfluenceAuth as FakeAuth, ContentBuilder, FakeConfluence, Fault, SERVICE_USERNAME,
            endpoints,
        };

        use super::super::*;

        const PAT: &str = "client-pat";

        fn client(fake: &FakeConfluence) -> ConfluenceClient {
            ConfluenceClient::new(
                &fake.base_url(),
                ConfluenceAuth::Bearer(Secret::new(PAT)),
                ClientOptions {
                    attempts: 1,
                    ..ClientOptions::default()
                },
            )
        }

        #[tokio::test]
        async fn space_permissions_answering_500_are_not_known_after_one_retry() {
            let fake = FakeConfluence::start(FakeAuth::Bearer(PAT.into()));
            fake.add_space("ENG", "Engineering");
            fake.grant_space("ENG", SERVICE_USERNAME, &["administer"]);
            let c = client(&fake);
            fake.inject(endpoints::SPACE_PERMISSIONS, Fault::Status(500));
            assert!(
                matches!(c.space_grants("ENG").await, Ok(SpaceGrants::Listed(_))),
                "one 500, then the list"
            );
            fake.inject(endpoints::SPACE_PERMISSIONS, Fault::Status(500));
            fake.inject(endpoints::SPACE_PERMISSIONS, Fault::Status(500));
            assert_eq!(c.space_grants("ENG").await, Ok(SpaceGrants::NotKnown(500)));
            assert_eq!(
                fake.calls(endpoints::SPACE_PERMISSIONS),
                4,
                "two requests for two 500s, never more"
            );
            fake.inject(endpoints::SPACE_PERMISSIONS, Fault::Status(500));
            fake.inject(endpoints::SPACE_PERMISSIONS, Fault::Status(500));
            assert_eq!(c.space_permissions("ENG").await, Ok(None));
            fake.inject(endpoints::SPACE_PERMISSIONS, Fault::Status(403));
            assert_eq!(c.space_grants("ENG").await, Ok(SpaceGrants::Refused));
            fake.inject(endpoints::SPACE_PERMISSIONS, Fault::Status(401));
            assert_eq!(
                c.space_grants("ENG").await,
                Err(ClientError::Unauthorized(401)),
                "the credentials stay an error"
            );
        }

        #[tokio::test]
        async fn a_search_that_404s_with_the_nested_expansion_is_made_again_without_it() {
            let fake = FakeConfluence::start(FakeAuth::Bearer(PAT.into()));
            fake.put_content(
                1,
                ContentBuilder::page(1, "ENG", "Launch plan")
                    .body_storage("<p>launch</p>")
                    .build(),
            );
            let c = client(&fake);
            let cql = "text ~ \"launch\" and type in (page, blogpost)";
            fake.inject(endpoints::CQL_SEARCH, Fault::Status(404));
            let found = c.search(cql, 10).await.unwrap();
            assert_eq!(found.len(), 1, "{found:?}");
            let asked: Vec<String> = fake
                .requests()
                .iter()
                .filter(|r| r.endpoint.as_deref() == Some(endpoints::CQL_SEARCH))
                .map(|r| r.path.clone())
                .collect();
            assert_eq!(asked.len(), 2);
            assert!(asked[0].contains("ancestors.restrictions"), "{asked:?}");
            assert!(!asked[1].contains("ancestors.restrictions"), "{asked:?}");
            fake.inject(endpoints::CQL_SEARCH, Fault::Status(404));
            fake.inject(endpoints::CQL_SEARCH, Fault::Status(404));
            assert_eq!(c.search(cql, 10).await, Ok(vec![]), "404 twice: nothing");
        }
    }

    #[test]
    fn errors_never_carry_the_token() {
        let e = ClientError::Unauthorized(401);
        assert!(!e.is_transient() && !e.is_forbidden());
        assert!(e.to_string().contains("check the connection's token"));
        let e = ClientError::Unauthorized(403);
        assert!(!e.is_transient() && e.is_forbidden());
        assert!(e.to_string().contains("lacks a permission"), "{e}");
        assert_eq!(form_urlencoded("a b/ü"), "a%20b%2F%C3%BC");
    }
}
