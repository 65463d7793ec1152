//! A loopback fake of the three Microsoft services a Teams bot talks to, on one port:
//!
//! - `{base}/login/{tenant}/oauth2/v2.0/token`: Microsoft Entra ID's token endpoint, client
//!   credentials only ([`entra`]); the host's Entra client takes `{base}/login/` as its login
//!   base.
//! - `{base}/botframework/v1/.well-known/openidconfiguration` and `.../keys`: the Bot
//!   Framework's OpenID metadata and signing keys ([`keys`]), which the host fetches to
//!   validate the JWT on every inbound activity. [`FakeTeamsBot::mint_token`] makes such JWTs,
//!   good ones and every kind of bad one, and [`FakeTeamsBot::deliver`] posts an inbound
//!   activity built by [`FakeTeamsBot::activity`] to the host with one.
//! - `{base}/teams/`: the service URL, where the Bot Connector REST API lives ([`connector`]),
//!   driven by Microsoft's Swagger file like the Slack fake is by Slack's OpenAPI file.
//!
//! Why: the host's Teams bot must be tested end to end without Microsoft, and a fake that
//! takes whatever the client sends proves nothing. So every answer here follows a published
//! contract (the Swagger file, the Activity spec, Microsoft's docs, cited in `REFERENCE.md`
//! beside this file), and this fake must never accept what the contract does not describe:
//! a path or method outside the spec, a body of the wrong shape, a token it did not issue
//! or that expired, a proactive message to a user without the app installed.
//!
//! Like the other fakes it runs on its own thread, binds 127.0.0.1:0, records every request
//! with `Authorization` redacted, and serves injected faults per endpoint in order; endpoint
//! names are `token`, `openid`, `keys` and the spec's `operationId`s
//! (`Conversations_SendToConversation`, ...).

mod activity;
mod connector;
mod entra;
mod keys;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::rand::SecureRandom as _;
use serde_json::{Value, json};

pub use activity::{Inbound, InboundResponse, TeamInbound, post_activity, post_activity_async};
pub use entra::BOT_FRAMEWORK_SCOPE;
pub use keys::{
    BOT_FRAMEWORK_ISSUER, CLOCK_SKEW_SECS, Signer, TEAMS_CHANNEL_ID, Tamper, TokenSpec,
};

use crate::server::{
    Journal, Next, Server, answer_late, apply_fault, json_response, lock, read_body, wait_async,
    wait_blocking, with_header,
};
use crate::{Fault, RecordedRequest};
use keys::SigningKey;

/// The endpoint names of the non-connector parts, for [`FakeTeamsBot::inject`].
pub const TOKEN_ENDPOINT: &str = "token";
/// The OpenID metadata document's endpoint name.
pub const OPENID_ENDPOINT: &str = "openid";
/// The signing keys' endpoint name.
pub const KEYS_ENDPOINT: &str = "keys";
/// How long an access token lives unless [`FakeTeamsBot::set_token_lifetime`] says otherwise
/// (what Entra usually answers: `expires_in: 3599`).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

/// A person in the fake tenant, as Teams knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsUser {
    /// The Teams user id, `29:...`.
    pub id: String,
    /// The Entra object id (a GUID).
    pub aad_object_id: String,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// User principal name (sign-in name).
    pub user_principal_name: String,
    /// The tenant they belong to.
    pub tenant_id: String,
}

impl TeamsUser {
    /// The `TeamsChannelAccount` the Bot Connector answers for this user.
    fn channel_account(&self) -> Value {
        let (given, surname) = self
            .name
            .split_once(' ')
            .map_or((self.name.as_str(), ""), |(g, s)| (g, s));
        json!({
            "id": self.id,
            "name": self.name,
            "aadObjectId": self.aad_object_id,
            "givenName": given,
            "surname": surname,
            "email": self.email,
            "userPrincipalName": self.user_principal_name,
            "tenantId": self.tenant_id,
            "userRole": "user",
        })
    }
}

/// An activity the bot sent (or an update it made) that the fake accepted.
#[derive(Debug, Clone)]
pub struct TeamsBotMessage {
    /// The bot app whose token the call carried.
    pub app_id: String,
    /// The conversation (`a:...`).
    pub conversation_id: String,
    /// The Teams user id (`29:...`) the conversation is with.
    pub user_id: String,
    /// The activity's id: the one the fake answered with, or for an update the updated one.
    pub activity_id: String,
    /// The activity's `text`, if any.
    pub text: Option<String>,
    /// The activity's `attachments` (cards), in order.
    pub attachments: Vec<Value>,
    /// The activity replied to (`POST .../activities/{activityId}`), if a reply.
    pub reply_to_id: Option<String>,
    /// Whether this was an update (`PUT .../activities/{activityId}`).
    pub update: bool,
    /// The whole activity as sent.
    pub activity: Value,
    /// When it was accepted.
    pub received_at: Instant,
}

#[derive(Debug, Clone)]
struct RegisteredApp {
    tenant_id: String,
    client_secret: String,
}

#[derive(Debug, Clone)]
struct IssuedToken {
    app_id: String,
    expires_at: Instant,
}

/// A team in the fake tenant: its members, and whether the bot's app is installed in it.
#[derive(Debug, Clone, Default)]
struct Team {
    name: String,
    tenant_id: String,
    members: Vec<String>,
    installed: bool,
}

#[derive(Debug, Clone, Default)]
struct Conversation {
    /// The user of a 1:1 conversation; empty for a team's channel.
    user_id: String,
    /// The team of a channel conversation (its id is the team's id: the General channel).
    team: Option<String>,
    /// Every activity id in the conversation (inbound ones the fake built, and the bot's).
    activity_ids: Vec<String>,
    /// The ids of the bot's own activities (what it may update or delete).
    bot_activity_ids: Vec<String>,
}

struct State {
    apps: HashMap<String, RegisteredApp>,
    token_lifetime: Duration,
    tokens: HashMap<String, IssuedToken>,
    tokens_issued: usize,
    /// Every key made, oldest first.
    keys: Vec<SigningKey>,
    /// The `kid`s the JWKS serves.
    served: Vec<String>,
    /// The `kid` that signs.
    signing: String,
    users: HashMap<String, TeamsUser>,
    installed: HashSet<String>,
    teams: HashMap<String, Team>,
    conversations: HashMap<String, Conversation>,
    sent: Vec<TeamsBotMessage>,
    deleted: Vec<String>,
    last_activity_ms: u128,
    conversation_seed: [u8; 16],
    limits: connector::RateLimits,
}

impl State {
    fn key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// A new activity id: the wall clock in milliseconds, as Teams numbers personal-chat
    /// messages, moved on by one when two come in the same millisecond.
    fn next_activity_id(&mut self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        self.last_activity_ms = now.max(self.last_activity_ms + 1);
        self.last_activity_ms.to_string()
    }

    /// The 1:1 conversation id of `user_id`: stable for the fake's lifetime, as Teams keeps
    /// one personal conversation per bot and user.
    fn conversation_id(&self, user_id: &str) -> String {
        let mut input = self.conversation_seed.to_vec();
        input.extend_from_slice(user_id.as_bytes());
        let d = ring::digest::digest(&ring::digest::SHA256, &input);
        format!("a:1{}", B64URL.encode(d.as_ref()))
    }

    /// Whether the bot may write to `user_id`: its app is installed for them, or in a team
    /// they are a member of (Teams lets a bot start a 1:1 chat with a member of a team it is
    /// installed in).
    fn reachable(&self, user_id: &str) -> bool {
        self.installed.contains(user_id)
            || self
                .teams
                .values()
                .any(|t| t.installed && t.members.iter().any(|m| m == user_id))
    }

    /// Makes sure the user's conversation exists and returns its id.
    fn open_conversation(&mut self, user_id: &str) -> String {
        let id = self.conversation_id(user_id);
        self.conversations
            .entry(id.clone())
            .or_insert_with(|| Conversation {
                user_id: user_id.to_string(),
                ..Conversation::default()
            });
        id
    }
}

struct App {
    journal: Journal,
    state: Mutex<State>,
    base: OnceLock<String>,
    token_requests: AtomicUsize,
    metadata_fetches: AtomicUsize,
    keys_fetches: AtomicUsize,
}

impl App {
    fn base(&self) -> &str {
        self.base.get().map_or("", String::as_str)
    }
}

/// The fake Entra ID, Bot Framework OpenID and Bot Connector for one test; see the module
/// docs. Dropping it stops the server.
pub struct FakeTeamsBot {
    app: Arc<App>,
    server: Server,
}

impl FakeTeamsBot {
    /// Starts the fake with a fresh signing key, no apps and no users. Rate limits are on,
    /// with Microsoft's published numbers (see [`FakeTeamsBot::set_send_limits`]).
    ///
    /// # Panics
    /// If the Bot Connector's Swagger file cannot be read from [`crate::specs_dir`].
    pub fn start() -> FakeTeamsBot {
        connector::spec();
        let key = SigningKey::generate(&[TEAMS_CHANNEL_ID]);
        let mut seed = [0u8; 16];
        let _ = ring::rand::SystemRandom::new().fill(&mut seed);
        let state = State {
            apps: HashMap::new(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            tokens: HashMap::new(),
            tokens_issued: 0,
            served: vec![key.kid.clone()],
            signing: key.kid.clone(),
            keys: vec![key],
            users: HashMap::new(),
            installed: HashSet::new(),
            teams: HashMap::new(),
            conversations: HashMap::new(),
            sent: Vec::new(),
            deleted: Vec::new(),
            last_activity_ms: 0,
            conversation_seed: seed,
            limits: connector::RateLimits::defaults(),
        };
        let app = Arc::new(App {
            journal: Journal::default(),
            state: Mutex::new(state),
            base: OnceLock::new(),
            token_requests: AtomicUsize::new(0),
            metadata_fetches: AtomicUsize::new(0),
            keys_fetches: AtomicUsize::new(0),
        });
        let router = Router::new().fallback(handle).with_state(app.clone());
        let server = Server::spawn("teams-bot", router);
        let _ = app.base.set(format!("http://{}", server.addr()));
        FakeTeamsBot { app, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.app.base().to_string()
    }

    /// The listening address (always on 127.0.0.1).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// The login base for the host's Entra client, `{base}/login/`: the token endpoint is
    /// `{login}{tenant}/oauth2/v2.0/token`, as on `https://login.microsoftonline.com/`.
    pub fn login_base(&self) -> String {
        format!("{}/login/", self.base_url())
    }

    /// The token endpoint of `tenant`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}{tenant}/oauth2/v2.0/token", self.login_base())
    }

    /// The Bot Framework OpenID metadata URL (Microsoft's is
    /// `https://login.botframework.com/v1/.well-known/openidconfiguration`).
    pub fn openid_metadata_url(&self) -> String {
        format!(
            "{}/botframework/v1/.well-known/openidconfiguration",
            self.base_url()
        )
    }

    /// The JWKS URL the metadata points to.
    pub fn jwks_url(&self) -> String {
        format!("{}/botframework/v1/.well-known/keys", self.base_url())
    }

    /// The Bot Connector's service URL, `{base}/teams/`: what inbound activities carry as
    /// `serviceUrl` (Microsoft's is `https://smba.trafficmanager.net/teams/`).
    pub fn service_url(&self) -> String {
        format!("{}/teams/", self.base_url())
    }

    // --- Entra ID ---------------------------------------------------------------------

    /// Registers a bot app (single-tenant) with its client secret. Registering an app id
    /// again replaces its tenant and secret (a rotated secret).
    pub fn register_app(&self, app_id: &str, tenant_id: &str, client_secret: &str) {
        lock(&self.app.state).apps.insert(
            app_id.to_string(),
            RegisteredApp {
                tenant_id: tenant_id.to_string(),
                client_secret: client_secret.to_string(),
            },
        );
    }

    /// Sets the lifetime (`expires_in`, whole seconds) of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.app.state).token_lifetime = lifetime;
    }

    /// Makes every token issued so far expire now, so the next call with one gets 401.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for t in lock(&self.app.state).tokens.values_mut() {
            t.expires_at = now;
        }
    }

    /// How many requests reached the token endpoint (refused and faulted ones included).
    pub fn token_requests(&self) -> usize {
        self.app.token_requests.load(Ordering::SeqCst)
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.app.state).tokens_issued
    }

    // --- OpenID metadata and keys -----------------------------------------------------

    /// How many times the OpenID metadata document was fetched.
    pub fn metadata_fetches(&self) -> usize {
        self.app.metadata_fetches.load(Ordering::SeqCst)
    }

    /// How many times the JWKS was fetched.
    pub fn keys_fetches(&self) -> usize {
        self.app.keys_fetches.load(Ordering::SeqCst)
    }

    /// The `kid` of the key that signs tokens now.
    pub fn signing_kid(&self) -> String {
        lock(&self.app.state).signing.clone()
    }

    /// The JWKS as served now.
    pub fn jwks(&self) -> Value {
        jwks(&lock(&self.app.state))
    }

    /// Makes a new signing key, which signs from now on, and returns its `kid`. With
    /// `keep_old` the previous keys stay in the JWKS (Microsoft publishes the next key
    /// before using it and keeps the last for a while); without, only the new one is served,
    /// and tokens signed by older keys ([`Signer::Kid`]) must then be refused.
    pub fn rotate_keys(&self, keep_old: bool) -> String {
        let key = SigningKey::generate(&[TEAMS_CHANNEL_ID]);
        let kid = key.kid.clone();
        let mut st = lock(&self.app.state);
        if !keep_old {
            st.served.clear();
        }
        st.served.push(kid.clone());
        st.signing = kid.clone();
        st.keys.push(key);
        kid
    }

    /// Mints an inbound-activity JWT as the Bot Connector sends it (`Authorization: Bearer`
    /// on the POST to the bot's endpoint); see [`TokenSpec`].
    ///
    /// # Panics
    /// For [`Signer::Kid`] naming a key this fake never made.
    pub fn mint_token(&self, spec: &TokenSpec) -> String {
        let (key, kid) = {
            let mut st = lock(&self.app.state);
            match &spec.signer {
                Signer::Current => {
                    let k = st.key(&st.signing).cloned().expect("the signing key");
                    let kid = k.kid.clone();
                    (k, kid)
                }
                Signer::Kid(kid) => {
                    let k = st.key(kid).cloned().unwrap_or_else(|| {
                        panic!("FakeTeamsBot::mint_token: no key with kid {kid}")
                    });
                    (k, kid.clone())
                }
                Signer::Foreign { claim_current_kid } => {
                    let k = keys::foreign_key().clone();
                    let kid = if *claim_current_kid {
                        st.signing.clone()
                    } else {
                        k.kid.clone()
                    };
                    (k, kid)
                }
                Signer::Unendorsed => {
                    let existing = st
                        .keys
                        .iter()
                        .find(|k| !k.endorsements.iter().any(|e| e == TEAMS_CHANNEL_ID))
                        .cloned();
                    let k = match existing {
                        Some(k) => k,
                        None => {
                            let k = SigningKey::generate(&["webchat"]);
                            st.served.push(k.kid.clone());
                            st.keys.push(k.clone());
                            k
                        }
                    };
                    let kid = k.kid.clone();
                    (k, kid)
                }
            }
        };
        keys::mint(spec, &key, &kid)
    }

    // --- Users, installations, conversations ------------------------------------------

    /// Adds (or replaces) a person the bot can reach once its app is installed for them.
    pub fn add_user(&self, user: TeamsUser) {
        lock(&self.app.state).users.insert(user.id.clone(), user);
    }

    /// Installs the app for `user_id` (personal scope): the bot may then create the user's
    /// conversation and write to it. Opens the conversation, as Teams does on install.
    ///
    /// # Panics
    /// If the user was never added.
    pub fn install_for(&self, user_id: &str) {
        let mut st = lock(&self.app.state);
        assert!(
            st.users.contains_key(user_id),
            "FakeTeamsBot::install_for: unknown user {user_id}; call add_user first"
        );
        st.installed.insert(user_id.to_string());
        st.open_conversation(user_id);
    }

    /// Uninstalls the app for `user_id` (or the user blocked the bot): creating their
    /// conversation answers 403, and writing to it answers Microsoft's 403
    /// `MessageWritesBlocked`.
    pub fn uninstall_for(&self, user_id: &str) {
        lock(&self.app.state).installed.remove(user_id);
    }

    /// Adds a team (id `19:...@thread.tacv2`, its General channel's id) with these members
    /// (added with [`FakeTeamsBot::add_user`]); the app is not installed in it yet.
    ///
    /// # Panics
    /// If a member was never added.
    pub fn add_team(&self, team_id: &str, name: &str, members: &[&str]) {
        let mut st = lock(&self.app.state);
        let tenant_id = members
            .iter()
            .map(|m| {
                st.users
                    .get(*m)
                    .map(|u| u.tenant_id.clone())
                    .unwrap_or_else(|| {
                        panic!("FakeTeamsBot::add_team: unknown user {m}; call add_user first")
                    })
            })
            .next()
            .unwrap_or_default();
        st.teams.insert(
            team_id.to_string(),
            Team {
                name: name.to_string(),
                tenant_id,
                members: members.iter().map(|m| m.to_string()).collect(),
                installed: false,
            },
        );
        st.conversations
            .entry(team_id.to_string())
            .or_insert_with(|| Conversation {
                team: Some(team_id.to_string()),
                ..Conversation::default()
            });
    }

    /// Whether the app is installed in team `team_id`.
    pub fn is_installed_in_team(&self, team_id: &str) -> bool {
        lock(&self.app.state)
            .teams
            .get(team_id)
            .is_some_and(|t| t.installed)
    }

    /// Every activity the bot sent to the channel conversation `conversation_id`, in order.
    pub fn sent_to_conversation(&self, conversation_id: &str) -> Vec<TeamsBotMessage> {
        lock(&self.app.state)
            .sent
            .iter()
            .filter(|m| m.conversation_id == conversation_id)
            .cloned()
            .collect()
    }

    /// Whether the app is installed for `user_id`.
    pub fn is_installed(&self, user_id: &str) -> bool {
        lock(&self.app.state).installed.contains(user_id)
    }

    /// The 1:1 conversation id of `user_id` (the same every time for this fake).
    pub fn conversation_id_for(&self, user_id: &str) -> String {
        lock(&self.app.state).conversation_id(user_id)
    }

    /// Every activity the bot sent or updated, in order.
    pub fn sent(&self) -> Vec<TeamsBotMessage> {
        lock(&self.app.state).sent.clone()
    }

    /// The ids of activities the bot deleted, in order.
    pub fn deleted(&self) -> Vec<String> {
        lock(&self.app.state).deleted.clone()
    }

    /// Blocks until at least `n` activities were sent, then returns all of them.
    ///
    /// # Panics
    /// After `timeout`. Inside an async test use [`FakeTeamsBot::wait_for_sent_async`].
    pub fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<TeamsBotMessage> {
        wait_blocking("Teams bot messages", n, timeout, || self.sent())
    }

    /// Async form of [`FakeTeamsBot::wait_for_sent`]; needs a tokio runtime with timers.
    pub async fn wait_for_sent_async(&self, n: usize, timeout: Duration) -> Vec<TeamsBotMessage> {
        wait_async("Teams bot messages", n, timeout, || self.sent()).await
    }

    // --- Rate limits, faults, the request log -----------------------------------------

    /// Replaces the per-conversation limits on sending (send, reply, update, delete) and on
    /// creating a conversation: `(calls, per)` windows that must all have room. The default
    /// is Microsoft's table: 7 per 1 s, 8 per 2 s, 60 per 30 s, 1800 per hour. An empty
    /// slice turns the limit off.
    pub fn set_send_limits(&self, windows: &[(usize, Duration)]) {
        let mut st = lock(&self.app.state);
        st.limits.windows.insert("send", windows.to_vec());
        st.limits.windows.insert("create", windows.to_vec());
    }

    /// Turns every rate limit off (per conversation and per app).
    pub fn disable_rate_limits(&self) {
        lock(&self.app.state).limits = connector::RateLimits::default();
    }

    /// How many calls the fake's own rate limits refused with 429.
    pub fn rate_limited(&self) -> usize {
        lock(&self.app.state).limits.refused
    }

    /// The endpoint names [`FakeTeamsBot::inject`] takes: `token`, `openid`, `keys` and every
    /// `operationId` of the Bot Connector's Swagger file.
    pub fn endpoints() -> Vec<String> {
        let mut names: Vec<String> = [TOKEN_ENDPOINT, OPENID_ENDPOINT, KEYS_ENDPOINT]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        names.extend(
            connector::spec()
                .operations
                .iter()
                .map(|o| o.operation_id.clone()),
        );
        names
    }

    /// Queues a fault for the next request to `endpoint`.
    ///
    /// # Panics
    /// For a name not in [`FakeTeamsBot::endpoints`], or `Fault::SlackError`.
    pub fn inject(&self, endpoint: &str, fault: Fault) {
        assert!(
            !matches!(fault, Fault::SlackError(_)),
            "FakeTeamsBot::inject: Fault::SlackError is Slack-only"
        );
        assert!(
            FakeTeamsBot::endpoints().iter().any(|e| e == endpoint),
            "FakeTeamsBot::inject: unknown endpoint {endpoint:?}; see FakeTeamsBot::endpoints()"
        );
        self.app.journal.inject(endpoint, fault);
    }

    /// Faults still queued for `endpoint`.
    pub fn faults_left(&self, endpoint: &str) -> usize {
        self.app.journal.faults_left(endpoint)
    }

    /// How many requests reached `endpoint` (faulted, refused and throttled ones included).
    pub fn calls(&self, endpoint: &str) -> usize {
        self.app.journal.calls(endpoint)
    }

    /// Every request received, in order, `Authorization` redacted.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.app.journal.requests()
    }
}

fn jwks(st: &State) -> Value {
    let keys: Vec<Value> = st
        .served
        .iter()
        .filter_map(|kid| st.key(kid))
        .map(SigningKey::jwk)
        .collect();
    json!({ "keys": keys })
}

/// Where a request goes.
enum Target {
    Token(String),
    OpenId,
    Keys,
    Connector(String),
    Unknown,
}

fn target(path: &str) -> Target {
    if let Some(rest) = path.strip_prefix("/login/")
        && let Some(tenant) = rest.strip_suffix("/oauth2/v2.0/token")
        && !tenant.is_empty()
        && !tenant.contains('/')
    {
        return Target::Token(tenant.to_string());
    }
    match path {
        "/botframework/v1/.well-known/openidconfiguration" => Target::OpenId,
        "/botframework/v1/.well-known/keys" => Target::Keys,
        _ => match path.strip_prefix("/teams") {
            Some(rest) if rest.starts_with('/') => Target::Connector(rest.to_string()),
            _ => Target::Unknown,
        },
    }
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => with_header(
            connector::error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests (injected).",
            ),
            "retry-after",
            &retry_after_secs.to_string(),
        ),
        Fault::Status(code) => connector::error(
            StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "ServiceError",
            &format!("fake teams bot: injected HTTP {code}"),
        ),
        Fault::SlackError(_) | Fault::Delay(_) | Fault::Reset | Fault::StatusAfterEffect(_) => {
            unreachable!("refused by inject or handled by apply_fault")
        }
    }
}

async fn handle(AxumState(app): AxumState<Arc<App>>, req: Request<Body>) -> Response {
    let (parts, body) = match read_body(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match target(parts.uri.path()) {
        Target::Token(tenant) => {
            app.token_requests.fetch_add(1, Ordering::SeqCst);
            serve(&app, &parts, &body, TOKEN_ENDPOINT, |app| {
                entra::token(app, &parts, &body, &tenant)
            })
            .await
        }
        Target::OpenId => {
            app.metadata_fetches.fetch_add(1, Ordering::SeqCst);
            serve(&app, &parts, &body, OPENID_ENDPOINT, |app| {
                if parts.method != Method::GET {
                    return connector::error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "MethodNotAllowed",
                        "GET only.",
                    );
                }
                json_response(
                    StatusCode::OK,
                    &json!({
                        "issuer": BOT_FRAMEWORK_ISSUER,
                        "authorization_endpoint": "https://invalid.botframework.com",
                        "jwks_uri": format!("{}/botframework/v1/.well-known/keys", app.base()),
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                    }),
                )
            })
            .await
        }
        Target::Keys => {
            app.keys_fetches.fetch_add(1, Ordering::SeqCst);
            serve(&app, &parts, &body, KEYS_ENDPOINT, |app| {
                if parts.method != Method::GET {
                    return connector::error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "MethodNotAllowed",
                        "GET only.",
                    );
                }
                json_response(StatusCode::OK, &jwks(&lock(&app.state)))
            })
            .await
        }
        Target::Connector(rest) => connector_request(&app, &parts, &body, &rest).await,
        Target::Unknown => {
            app.journal.record(&parts, &body, None);
            connector::error(StatusCode::NOT_FOUND, "NotFound", "No such path.")
        }
    }
}

/// Records the request against `endpoint`, applies its fault, then answers with `f`.
async fn serve(
    app: &Arc<App>,
    parts: &Parts,
    body: &Bytes,
    endpoint: &str,
    f: impl FnOnce(&App) -> Response,
) -> Response {
    let fault = app.journal.record(parts, body, Some(endpoint));
    let delay = match apply_fault(fault, parts, fault_response).await {
        Next::Respond(r) => return r,
        Next::Proceed { delay } => delay,
    };
    answer_late(f(app), delay).await
}

async fn connector_request(app: &Arc<App>, parts: &Parts, body: &Bytes, rest: &str) -> Response {
    let (op, params) = match connector::route(&parts.method, rest) {
        connector::Route::Op(op, params) => (op, params),
        connector::Route::WrongMethod(allowed) => {
            app.journal.record(parts, body, None);
            let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            return with_header(
                connector::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    &format!(
                        "The requested resource does not support http method '{}'.",
                        parts.method
                    ),
                ),
                "allow",
                &allow.join(", "),
            );
        }
        connector::Route::NoPath => {
            app.journal.record(parts, body, None);
            return connector::error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("The Bot Connector API describes no resource at {rest}."),
            );
        }
    };
    // A throttled call never reaches the operation, so it consumes no injected fault.
    let throttled = {
        let mut st = lock(&app.state);
        match connector::authenticate(&st, parts) {
            Ok(app_id) => connector::rate_limit(&mut st, &app_id, op, &params, body).err(),
            Err(_) => None,
        }
    };
    if let Some(r) = throttled {
        app.journal
            .record_rate_limited(parts, body, &op.operation_id);
        return r;
    }
    serve(app, parts, body, &op.operation_id, |app| {
        let app_id = match connector::authenticate(&lock(&app.state), parts) {
            Ok(a) => a,
            Err(r) => return r,
        };
        connector::perform(app, &app_id, op, &params, parts, body)
    })
    .await
}
