//! A fake of the Slack Web API methods Pagehook uses, driven by Slack's own published
//! description of them.
//!
//! Why it is built this way: a fake that accepts whatever our client sends proves nothing. The
//! first version merged the query string, a JSON body and a form body for every method, so it
//! honoured JSON arguments on read methods that real Slack silently ignores, and client bugs
//! stayed hidden. This fake reads `slack/slack_web_openapi_v2.json` from [`crate::specs_dir`]
//! (Slack's OpenAPI document, parsed once per process) and takes from it, per method:
//!
//! - `consumes`: the request encodings Slack parses. Methods listing only
//!   `application/x-www-form-urlencoded` (`conversations.list`, `conversations.history`,
//!   `conversations.replies`, `users.lookupByEmail`, `users.info`) read arguments from the
//!   query string or a form body only; a JSON body is ignored entirely, exactly as Slack does,
//!   and the call proceeds as if no arguments were given. Methods that also list
//!   `application/json` take JSON too, with the token in `Authorization: Bearer`.
//! - the parameters: a missing `required` argument (other than `token`) answers
//!   `invalid_arguments`, as does a value that does not fit the parameter's type (`limit=abc`).
//!   Unknown argument names are ignored, as on Slack.
//! - the documented error codes, which the method implementations use.
//!
//! - the scopes (`security`): each method names the scopes any one of which lets a token call
//!   it (`chat.unfurl`: `links:write`). A fake token has every scope until a test narrows it
//!   with [`FakeSlack::set_scopes`]; then a call its scopes do not cover answers
//!   `missing_scope` with `needed` and `provided`, as Slack does, and every answer to a call
//!   made with the token carries the scopes in an `x-oauth-scopes` header (comma-separated,
//!   as Slack sends it and its SDKs read it). A token with every scope has no list to give:
//!   its answers carry no such header.
//!
//! Rate limits follow Slack's tiers (<https://api.slack.com/apis/rate-limits>), per method per
//! workspace, with a sliding one-minute window; see [`FakeSlack::set_tier_limit`].
//!
//! Slash commands' response URLs live on the same server (`/commands/{team}/{id}/{secret}`,
//! minted by [`FakeSlack::mint_response_url`]) and behave as Slack documents them: JSON
//! `{"text", "blocks", "response_type"}` with no token needed, at most 5 answers within 30
//! minutes of the command (then HTTP 404 `used_url` or `expired_url`); see
//! [`FakeSlack::responses`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::server::{
    Journal, Next, Server, SlidingWindows, answer_late, apply_fault, form_pairs, json_response,
    lock, read_body, retry_after_secs, text_response, wait_async, wait_blocking, with_header,
};
use crate::slack_socket::FakeSocketMode;
use crate::{Fault, RecordedRequest};

/// Slack's documented rate-limit tiers, in calls per minute.
#[derive(Debug, Clone, Copy)]
enum Tier {
    /// "Tier 2: 20+ per minute".
    T2,
    /// "Tier 3: 50+ per minute".
    T3,
    /// "Tier 4: 100+ per minute".
    T4,
    /// Slack's "special" tier, limited per channel or otherwise (e.g. `chat.postMessage`,
    /// about one message a second per channel with bursts allowed). Not limited by tier here;
    /// inject `Fault::RateLimited` to exercise it.
    Special,
}

impl Tier {
    fn per_minute(self) -> Option<usize> {
        match self {
            Tier::T2 => Some(20),
            Tier::T3 => Some(50),
            Tier::T4 => Some(100),
            Tier::Special => None,
        }
    }
}

/// The methods this fake implements and their rate-limit tier, from each method's reference
/// page on api.slack.com. `inject` refuses any other name so a typo cannot make a fault
/// silently never fire. (`conversations.history`/`replies` are Tier 3 for Marketplace and
/// internal apps; since 2025 non-Marketplace commercial apps get 1 call a minute there.)
const METHODS: &[(&str, Tier)] = &[
    ("auth.test", Tier::Special),
    ("chat.postMessage", Tier::Special),
    ("chat.unfurl", Tier::T3),
    ("chat.update", Tier::T3),
    ("conversations.history", Tier::T3),
    ("conversations.list", Tier::T2),
    ("conversations.open", Tier::T3),
    ("conversations.replies", Tier::T3),
    ("users.info", Tier::T4),
    ("users.lookupByEmail", Tier::T3),
];

/// Arguments Slack documents today that the published OpenAPI document predates. They are
/// typed like spec parameters (so `include_all_metadata=maybe` is refused) but never required.
const EXTRA_PARAMS: &[(&str, &str, ParamType)] = &[
    ("chat.postMessage", "metadata", ParamType::String),
    ("chat.update", "metadata", ParamType::String),
    (
        "conversations.history",
        "include_all_metadata",
        ParamType::Boolean,
    ),
    (
        "conversations.replies",
        "include_all_metadata",
        ParamType::Boolean,
    ),
    ("conversations.list", "team_id", ParamType::String),
];

const SPEC_FILE: &str = "slack/slack_web_openapi_v2.json";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

const BOT_USER: &str = "U0BOT";
const BOT_ID: &str = "B1";
const APP_ID: &str = "A0PAGEHOOK";
const DEFAULT_TEAM_ID: &str = "T1";
const DEFAULT_TEAM_NAME: &str = "Acme";

/// The type of a documented parameter, as far as the fake checks values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
}

impl ParamType {
    fn from_spec(t: Option<&str>) -> ParamType {
        match t {
            Some("integer") => ParamType::Integer,
            Some("number") => ParamType::Number,
            Some("boolean") => ParamType::Boolean,
            _ => ParamType::String,
        }
    }

    /// Whether Slack would accept `v` for a parameter of this type. Numbers (timestamps) are
    /// left to the methods, which answer with their documented errors (`invalid_ts_oldest`).
    fn accepts(self, v: &Value) -> bool {
        match (self, v) {
            (_, Value::Null) => true,
            (ParamType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (ParamType::Integer, Value::String(s)) => s.is_empty() || s.parse::<i64>().is_ok(),
            (ParamType::Integer, _) => false,
            (ParamType::Boolean, Value::Bool(_)) => true,
            (ParamType::Boolean, Value::Number(n)) => matches!(n.as_u64(), Some(0 | 1)),
            (ParamType::Boolean, Value::String(s)) => {
                matches!(
                    s.to_ascii_lowercase().as_str(),
                    "" | "true" | "false" | "1" | "0"
                )
            }
            (ParamType::Boolean, _) => false,
            (ParamType::String | ParamType::Number, _) => true,
        }
    }
}

#[derive(Debug, Clone)]
struct ParamSpec {
    name: String,
    required: bool,
    ty: ParamType,
}

/// What the published description says about one method.
#[derive(Debug, Clone)]
struct MethodSpec {
    consumes: Vec<String>,
    params: Vec<ParamSpec>,
    /// The scopes any one of which lets a token call it (`security`); empty, or `none`, for
    /// a method that needs none.
    scopes: Vec<String>,
}

impl MethodSpec {
    fn accepts(&self, media_type: &str) -> bool {
        self.consumes.iter().any(|c| c == media_type)
    }
}

type SpecTable = HashMap<&'static str, MethodSpec>;

/// The implemented methods' entries of Slack's OpenAPI document, read once per process.
///
/// # Panics
/// If the document cannot be read or lacks an implemented method; the message names the path.
fn spec_table() -> &'static SpecTable {
    static TABLE: OnceLock<Result<SpecTable, String>> = OnceLock::new();
    match TABLE.get_or_init(load_spec_table) {
        Ok(t) => t,
        Err(e) => panic!("FakeSlack: {e}"),
    }
}

fn load_spec_table() -> Result<SpecTable, String> {
    let path = crate::specs_dir().join(SPEC_FILE);
    let raw = std::fs::read(&path).map_err(|e| {
        format!(
            "cannot read Slack's Web API description {} ({e}); set PAGEHOOK_SPECS_DIR if \
             shared/specs lives elsewhere",
            path.display()
        )
    })?;
    let doc: Value =
        serde_json::from_slice(&raw).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let mut table = SpecTable::new();
    for (method, _) in METHODS {
        let ops = doc
            .pointer(&format!("/paths/~1{method}"))
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{} does not describe {method}", path.display()))?;
        let op = ops
            .values()
            .next()
            .ok_or_else(|| format!("{} has no operation for {method}", path.display()))?;
        let consumes = op
            .get("consumes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let params = op
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        Some(ParamSpec {
                            name: p.get("name")?.as_str()?.to_string(),
                            required: p.get("required").and_then(Value::as_bool) == Some(true),
                            ty: ParamType::from_spec(p.get("type").and_then(Value::as_str)),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let scopes = op
            .pointer("/security/0/slackAuth")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| *s != "none")
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        table.insert(
            method,
            MethodSpec {
                consumes,
                params,
                scopes,
            },
        );
    }
    Ok(table)
}

/// A message the fake accepted through `chat.postMessage` (or, for [`FakeSlack::updates`],
/// an accepted `chat.update`).
#[derive(Debug, Clone)]
pub struct SlackPost {
    /// The resolved channel id (a name such as `#eng` or a user id is resolved first).
    pub channel: String,
    /// The `text` argument, if sent.
    pub text: Option<String>,
    /// The `blocks` argument as JSON (a JSON-encoded string is decoded).
    pub blocks: Option<Value>,
    /// The `thread_ts` argument, if this is a threaded reply.
    pub thread_ts: Option<String>,
    /// The `metadata` argument (`{"event_type":...,"event_payload":{...}}`), if sent.
    pub metadata: Option<Value>,
    /// The `ts` the fake answered with; unique and increasing.
    pub ts: String,
    /// When the post was accepted.
    pub received_at: Instant,
    /// Every argument sent, other than a form `token`, for assertions on the rest.
    pub params: Value,
}

/// One answer a slash command's response URL accepted.
#[derive(Debug, Clone)]
pub struct SlackResponse {
    /// The response URL it was posted to (as minted by [`FakeSlack::mint_response_url`]).
    pub url: String,
    /// The channel of the command the URL was minted for.
    pub channel: String,
    /// `response_type` as sent (`ephemeral` or `in_channel`); `None` when omitted, which
    /// Slack takes as `ephemeral`.
    pub response_type: Option<String>,
    /// The `text`, if sent.
    pub text: Option<String>,
    /// The `blocks`, if sent.
    pub blocks: Option<Value>,
    /// Whether the request carried an `Authorization` header (a response URL needs none, and
    /// a client that sends its bot token there leaks it).
    pub authorization: bool,
    /// When it was accepted.
    pub received_at: Instant,
}

/// A minted response URL: its command's channel, when it was minted (moved back by
/// [`FakeSlack::age_response_urls`]) and how many answers it took.
#[derive(Debug, Clone)]
struct ResponseUrl {
    channel: String,
    minted_at: Instant,
    aged: Duration,
    uses: usize,
}

/// How many answers a response URL takes ("up to 5 times within 30 minutes").
pub const RESPONSE_URL_USES: usize = 5;
/// How long a response URL takes answers.
pub const RESPONSE_URL_TTL: Duration = Duration::from_secs(30 * 60);
/// The endpoint name of response URLs for [`FakeSlack::inject`] and [`FakeSlack::calls`].
pub const RESPONSE_URL_ENDPOINT: &str = "response_url";

/// One accepted `chat.unfurl` call.
#[derive(Debug, Clone)]
pub struct SlackUnfurl {
    /// The channel id of the message.
    pub channel: String,
    /// The `ts` of the message the unfurls attach to.
    pub ts: String,
    /// The `unfurls` map (URL to attachment or blocks), decoded from JSON.
    pub unfurls: Value,
    /// When the call was accepted.
    pub received_at: Instant,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Public,
    Private,
    Im { user: String },
    Mpim,
}

#[derive(Debug, Clone)]
struct Channel {
    id: String,
    name: String,
    kind: Kind,
    member: bool,
    archived: bool,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    email: String,
}

/// A message as the channel holds it now (after any `chat.update`).
#[derive(Debug, Clone)]
struct Message {
    post: SlackPost,
    user: String,
    by_bot: bool,
    edited: Option<String>,
}

struct SlackState {
    token: String,
    revoked: Vec<String>,
    team_id: String,
    team_name: String,
    /// The last `ts` handed out, in microseconds.
    last_ts_micros: u128,
    channels: Vec<Channel>,
    channel_by_id: HashMap<String, usize>,
    channel_by_name: HashMap<String, usize>,
    im_by_user: HashMap<String, usize>,
    users: Vec<User>,
    user_by_id: HashMap<String, usize>,
    user_by_email: HashMap<String, usize>,
    messages: Vec<Message>,
    message_by_ts: HashMap<String, usize>,
    messages_by_channel: HashMap<String, Vec<usize>>,
    posts: Vec<SlackPost>,
    updates: Vec<SlackPost>,
    unfurls: Vec<SlackUnfurl>,
    next_dm: u64,
    next_channel: u64,
    /// The token's scopes; `None`: every scope.
    scopes: Option<Vec<String>>,
    /// Minted response URLs by path.
    response_urls: HashMap<String, ResponseUrl>,
    responses: Vec<SlackResponse>,
    next_command: u64,
}

impl SlackState {
    fn new(token: &str, team_id: &str, team_name: &str) -> SlackState {
        SlackState {
            token: token.to_string(),
            revoked: Vec::new(),
            team_id: team_id.to_string(),
            team_name: team_name.to_string(),
            last_ts_micros: 0,
            channels: Vec::new(),
            channel_by_id: HashMap::new(),
            channel_by_name: HashMap::new(),
            im_by_user: HashMap::new(),
            users: Vec::new(),
            user_by_id: HashMap::new(),
            user_by_email: HashMap::new(),
            messages: Vec::new(),
            message_by_ts: HashMap::new(),
            messages_by_channel: HashMap::new(),
            posts: Vec::new(),
            updates: Vec::new(),
            unfurls: Vec::new(),
            next_dm: 1,
            next_channel: 1,
            scopes: None,
            response_urls: HashMap::new(),
            responses: Vec::new(),
            next_command: 1,
        }
    }

    /// Adds a channel, or replaces the one with the same id in place.
    fn put_channel(&mut self, channel: Channel) {
        let idx = match self.channel_by_id.get(&channel.id) {
            Some(&idx) => {
                let old = &self.channels[idx];
                if self.channel_by_name.get(&old.name) == Some(&idx) {
                    self.channel_by_name.remove(&old.name);
                }
                if let Kind::Im { user } = &old.kind {
                    self.im_by_user.remove(user);
                }
                self.channels[idx] = channel;
                idx
            }
            None => {
                self.channels.push(channel);
                self.channels.len() - 1
            }
        };
        let c = &self.channels[idx];
        self.channel_by_id.insert(c.id.clone(), idx);
        if !c.name.is_empty() {
            self.channel_by_name.insert(c.name.clone(), idx);
        }
        if let Kind::Im { user } = &c.kind {
            self.im_by_user.insert(user.clone(), idx);
        }
    }

    fn channel_by_id(&self, id: &str) -> Option<&Channel> {
        self.channel_by_id.get(id).map(|&i| &self.channels[i])
    }

    /// Finds a channel by id, `#name` or name, as `chat.postMessage` does.
    fn find_channel(&self, id_or_name: &str) -> Option<&Channel> {
        self.channel_by_id(id_or_name).or_else(|| {
            let name = id_or_name.strip_prefix('#').unwrap_or(id_or_name);
            self.channel_by_name.get(name).map(|&i| &self.channels[i])
        })
    }

    fn user_by_id(&self, id: &str) -> Option<&User> {
        self.user_by_id.get(id).map(|&i| &self.users[i])
    }

    /// Slack's `ts` is the time the message was stored, unique per channel:
    /// the wall clock in microseconds, moved on by one when two messages
    /// arrive within the same microsecond. A client that reads history
    /// `oldest` its own clock relies on exactly this.
    fn next_ts(&mut self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let micros = now.max(self.last_ts_micros + 1);
        self.last_ts_micros = micros;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    fn push_message(&mut self, message: Message) {
        let idx = self.messages.len();
        self.message_by_ts.insert(message.post.ts.clone(), idx);
        self.messages_by_channel
            .entry(message.post.channel.clone())
            .or_default()
            .push(idx);
        self.messages.push(message);
    }

    /// The messages of a channel, oldest first.
    fn channel_messages(&self, channel: &str) -> impl Iterator<Item = &Message> {
        self.messages_by_channel
            .get(channel)
            .into_iter()
            .flatten()
            .map(|&i| &self.messages[i])
    }

    fn message_in(&self, channel: &str, ts: &str) -> Option<usize> {
        self.message_by_ts
            .get(ts)
            .copied()
            .filter(|&i| self.messages[i].post.channel == channel)
    }
}

struct App {
    journal: Journal,
    limits: SlidingWindows,
    /// `chat.postMessage` per channel, off unless a test sets it (see
    /// [`FakeSlack::limit_posts_per_channel`]): one window per channel.
    channel_posts: Mutex<Option<(usize, Duration)>>,
    channel_windows: SlidingWindows,
    channel_posts_refused: std::sync::atomic::AtomicUsize,
    state: Mutex<SlackState>,
    /// Socket Mode (`slack_socket.rs`), started when first used.
    socket_mode: OnceLock<FakeSocketMode>,
    bot_token: String,
}

impl App {
    fn socket_mode(&self) -> &FakeSocketMode {
        self.socket_mode
            .get_or_init(|| FakeSocketMode::start(&self.bot_token))
    }
}

/// A fake Slack workspace's Web API at `http://127.0.0.1:PORT/api/`.
///
/// Implements `auth.test`, `chat.postMessage`, `chat.update`, `chat.unfurl`,
/// `conversations.list`, `conversations.open`, `conversations.history`,
/// `conversations.replies`, `users.lookupByEmail` and `users.info` with Slack's envelope:
/// HTTP 200 and `{"ok":false,"error":"..."}` for logical errors. The endpoint name for
/// `inject` and `calls` is the method name, e.g. `"chat.postMessage"`.
///
/// Arguments are read as Slack's published description says (see the module docs): the read
/// methods ignore a JSON body; a missing required argument or a badly typed value answers
/// `invalid_arguments`.
///
/// Authentication follows Slack: `Authorization: Bearer <token>` or a `token` field of a form
/// body. A `token` in a JSON body or in the query string is not a token (Slack stopped
/// accepting query-string tokens for new apps in 2021). No token gives `not_authed`, a wrong
/// one `invalid_auth`, a revoked one `token_revoked`.
///
/// Rate limits are **on by default** with Slack's tier numbers, per method, in a sliding
/// one-minute window: Tier 2 (`conversations.list`) 20 calls, Tier 3 (`conversations.history`,
/// `conversations.replies`, `conversations.open`, `users.lookupByEmail`, `chat.update`,
/// `chat.unfurl`) 50 calls, Tier 4 (`users.info`) 100 calls. `chat.postMessage` and
/// `auth.test` are in Slack's special tier and are not limited (inject
/// `Fault::RateLimited` instead). A refused call gets HTTP 429, `Retry-After: <seconds until
/// a slot frees, at least 1>` and `{"ok":false,"error":"ratelimited"}`; see
/// [`FakeSlack::set_tier_limit`], [`FakeSlack::disable_tier_limits`] and
/// [`FakeSlack::rate_limited`].
pub struct FakeSlack {
    app: Arc<App>,
    server: Server,
}

impl FakeSlack {
    /// Starts a fake workspace (team `T1`, "Acme") whose bot token is `token`.
    ///
    /// # Panics
    /// If Slack's Web API description cannot be read from [`crate::specs_dir`].
    pub fn start(token: &str) -> FakeSlack {
        FakeSlack::start_team(token, DEFAULT_TEAM_ID, DEFAULT_TEAM_NAME)
    }

    /// Starts a fake workspace with its own team id and name, so two fakes can stand for two
    /// workspaces: `auth.test` answers with this team, user and message objects carry its id,
    /// and its `ts` values start at a team-dependent base (see [`FakeSlack::start`]).
    ///
    /// # Panics
    /// If Slack's Web API description cannot be read from [`crate::specs_dir`].
    pub fn start_team(token: &str, team_id: &str, team_name: &str) -> FakeSlack {
        spec_table();
        let app = Arc::new(App {
            journal: Journal::default(),
            limits: SlidingWindows::default(),
            channel_posts: Mutex::new(None),
            channel_windows: SlidingWindows::default(),
            channel_posts_refused: std::sync::atomic::AtomicUsize::new(0),
            state: Mutex::new(SlackState::new(token, team_id, team_name)),
            socket_mode: OnceLock::new(),
            bot_token: token.to_owned(),
        });
        for (method, tier) in METHODS {
            if let Some(n) = tier.per_minute() {
                app.limits.set(method, n, Duration::from_secs(60));
            }
        }
        let router = Router::new().fallback(handle).with_state(app.clone());
        let server = Server::spawn("slack", router);
        FakeSlack { app, server }
    }

    /// The app's Socket Mode: `apps.connections.open` with its app-level token, the
    /// WebSocket server, envelopes and acknowledgements (see `slack_socket.rs`).
    pub fn socket_mode(&self) -> &FakeSocketMode {
        self.app.socket_mode()
    }

    /// The Web API base URL, ending in `/api/`: append a method name to call it.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/", self.server.addr())
    }

    /// The listening address (always on 127.0.0.1).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// The methods this fake implements, sorted.
    pub fn methods() -> Vec<&'static str> {
        METHODS.iter().map(|(m, _)| *m).collect()
    }

    /// The request encodings the fake accepts for `method`: the method's `consumes` list in
    /// Slack's Web API description, which is what the fake enforces. `None` for a method the
    /// fake does not implement.
    ///
    /// # Panics
    /// If Slack's Web API description cannot be read.
    pub fn accepted_encodings(method: &str) -> Option<Vec<String>> {
        spec_table().get(method).map(|s| s.consumes.clone())
    }

    /// Adds a public channel. With `member == false` the bot has not been invited, so posts
    /// fail with `not_in_channel`.
    pub fn add_channel(&self, name: &str, id: &str, member: bool) {
        self.push_channel(name, id, Kind::Public, member);
    }

    /// Adds a private channel. It is listed by `conversations.list` only when the bot is a
    /// member, as on Slack.
    pub fn add_private_channel(&self, name: &str, id: &str, member: bool) {
        self.push_channel(name, id, Kind::Private, member);
    }

    /// Adds many public channels at once: `(name, id, bot is a member)` each. Lookups stay
    /// constant-time however many there are.
    pub fn add_channels(&self, channels: &[(&str, &str, bool)]) {
        let mut st = lock(&self.app.state);
        for (name, id, member) in channels {
            st.put_channel(new_channel(name, id, Kind::Public, *member));
        }
    }

    /// Adds `n` public channels the bot is a member of, named `{prefix}-1` … `{prefix}-{n}`
    /// with fresh ids (`C` and nine digits), and returns their ids in that order.
    pub fn add_numbered_channels(&self, prefix: &str, n: usize) -> Vec<String> {
        let mut st = lock(&self.app.state);
        let mut ids = Vec::with_capacity(n);
        for i in 1..=n {
            let id = loop {
                let id = format!("C{:09}", st.next_channel);
                st.next_channel += 1;
                if !st.channel_by_id.contains_key(&id) {
                    break id;
                }
            };
            st.put_channel(new_channel(
                &format!("{prefix}-{i}"),
                &id,
                Kind::Public,
                true,
            ));
            ids.push(id);
        }
        ids
    }

    fn push_channel(&self, name: &str, id: &str, kind: Kind, member: bool) {
        lock(&self.app.state).put_channel(new_channel(name, id, kind, member));
    }

    /// Deletes a channel (by id), as a workspace admin can: it leaves
    /// `conversations.list`, and its id answers `channel_not_found`. A new channel
    /// may then take its name (with a new id).
    pub fn delete_channel(&self, id: &str) {
        let mut st = lock(&self.app.state);
        if let Some(idx) = st.channel_by_id.remove(id) {
            let name = st.channels[idx].name.clone();
            if st.channel_by_name.get(&name) == Some(&idx) {
                st.channel_by_name.remove(&name);
            }
            st.channels[idx].id.clear();
            st.channels[idx].name.clear();
        }
    }

    /// Archives a channel (by id or name): posts then fail with `is_archived`.
    pub fn archive_channel(&self, id_or_name: &str) {
        let mut st = lock(&self.app.state);
        let wanted = id_or_name.trim_start_matches('#');
        let hits: Vec<usize> = [
            st.channel_by_id.get(id_or_name),
            st.channel_by_name.get(wanted),
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect();
        for i in hits {
            st.channels[i].archived = true;
        }
    }

    /// Adds a workspace member that `users.lookupByEmail` and `users.info` can find and the
    /// bot can DM.
    pub fn add_user(&self, email: &str, id: &str) {
        let mut st = lock(&self.app.state);
        let user = User {
            id: id.to_string(),
            email: email.to_string(),
        };
        let idx = match st.user_by_id.get(id) {
            Some(&i) => {
                let old = st.users[i].email.to_ascii_lowercase();
                st.user_by_email.remove(&old);
                st.users[i] = user;
                i
            }
            None => {
                st.users.push(user);
                st.users.len() - 1
            }
        };
        st.user_by_id.insert(id.to_string(), idx);
        st.user_by_email.insert(email.to_ascii_lowercase(), idx);
    }

    /// Posts a message as a person (not the bot) and returns its `ts`: it shows in history,
    /// the bot cannot `chat.update` it (`cant_update_message`), and it can be unfurled. It is
    /// not one of [`FakeSlack::posts`].
    ///
    /// # Panics
    /// If `channel` is not a known channel id or name.
    pub fn add_user_message(&self, channel: &str, user: &str, text: &str) -> String {
        let mut st = lock(&self.app.state);
        let channel = st
            .find_channel(channel)
            .unwrap_or_else(|| panic!("FakeSlack::add_user_message: unknown channel {channel}"))
            .id
            .clone();
        let ts = st.next_ts();
        st.push_message(Message {
            post: SlackPost {
                channel,
                text: Some(text.to_string()),
                blocks: None,
                thread_ts: None,
                metadata: None,
                ts: ts.clone(),
                received_at: Instant::now(),
                params: json!({}),
            },
            user: user.to_string(),
            by_bot: false,
            edited: None,
        });
        ts
    }

    /// Revokes the current token: further calls with it get `token_revoked`, and `new_token`
    /// becomes the valid one.
    pub fn rotate_token(&self, new_token: &str) {
        let mut st = lock(&self.app.state);
        let old = std::mem::replace(&mut st.token, new_token.to_string());
        st.revoked.push(old);
    }

    /// The DM channel id opened for `user_id`, if any (via `conversations.open` or a post
    /// addressed to the user id).
    pub fn dm_channel(&self, user_id: &str) -> Option<String> {
        let st = lock(&self.app.state);
        st.im_by_user
            .get(user_id)
            .map(|&i| st.channels[i].id.clone())
    }

    /// Every accepted post, in the order accepted, as it was posted (edits show in
    /// [`FakeSlack::message`] and [`FakeSlack::updates`]).
    pub fn posts(&self) -> Vec<SlackPost> {
        lock(&self.app.state).posts.clone()
    }

    /// A message as its channel holds it now, after any `chat.update`; `None` if there is no
    /// message with that `ts` in that channel (id).
    pub fn message(&self, channel: &str, ts: &str) -> Option<SlackPost> {
        let st = lock(&self.app.state);
        st.message_in(channel, ts)
            .map(|i| st.messages[i].post.clone())
    }

    /// Every accepted `chat.update`, in order: `ts` is the edited message's, `text` and
    /// `blocks` what the call sent.
    pub fn updates(&self) -> Vec<SlackPost> {
        lock(&self.app.state).updates.clone()
    }

    /// Every accepted `chat.unfurl`, in order.
    pub fn unfurls(&self) -> Vec<SlackUnfurl> {
        lock(&self.app.state).unfurls.clone()
    }

    /// Async wait for at least `n` accepted `chat.unfurl` calls; needs a tokio runtime.
    pub async fn wait_for_unfurls_async(&self, n: usize, timeout: Duration) -> Vec<SlackUnfurl> {
        wait_async("Slack unfurls", n, timeout, || self.unfurls()).await
    }

    /// Narrows the token's scopes to `scopes` (it has every scope until this is called): a
    /// method none of whose spec scopes is among them answers `missing_scope`. A legacy
    /// `chat:write:bot` requirement is met by the bot scope `chat:write`.
    pub fn set_scopes(&self, scopes: &[&str]) {
        lock(&self.app.state).scopes = Some(scopes.iter().map(|s| (*s).to_string()).collect());
    }

    /// Mints the response URL of a slash command typed in `channel`, as Slack puts it in the
    /// command's payload: `http://127.0.0.1:PORT/commands/{team}/{id}/{secret}`. It takes
    /// JSON answers without a token, at most [`RESPONSE_URL_USES`] of them within
    /// [`RESPONSE_URL_TTL`].
    pub fn mint_response_url(&self, channel: &str) -> String {
        let mut st = lock(&self.app.state);
        let id = st.next_command;
        st.next_command += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let secret = format!(
            "{:016x}",
            (nanos as u64) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        );
        let path = format!("/commands/{}/{id}/{secret}", st.team_id);
        st.response_urls.insert(
            path.clone(),
            ResponseUrl {
                channel: channel.to_string(),
                minted_at: Instant::now(),
                aged: Duration::ZERO,
                uses: 0,
            },
        );
        format!("http://{}{path}", self.server.addr())
    }

    /// Makes every response URL minted so far `by` older, e.g. past [`RESPONSE_URL_TTL`] so
    /// that it answers `expired_url`.
    pub fn age_response_urls(&self, by: Duration) {
        for r in lock(&self.app.state).response_urls.values_mut() {
            r.aged += by;
        }
    }

    /// Every answer a response URL accepted, in order.
    pub fn responses(&self) -> Vec<SlackResponse> {
        lock(&self.app.state).responses.clone()
    }

    /// Async wait for at least `n` accepted response-URL answers; needs a tokio runtime.
    pub async fn wait_for_responses_async(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<SlackResponse> {
        wait_async("response-URL answers", n, timeout, || self.responses()).await
    }

    /// Blocks until at least `n` posts were accepted, then returns all of them.
    ///
    /// # Panics
    /// After `timeout`, with the posts seen so far. Inside an async test use
    /// [`FakeSlack::wait_for_posts_async`], which lets the runtime make progress.
    pub fn wait_for_posts(&self, n: usize, timeout: Duration) -> Vec<SlackPost> {
        wait_blocking("Slack posts", n, timeout, || self.posts())
    }

    /// Async form of [`FakeSlack::wait_for_posts`]; needs a tokio runtime with timers.
    pub async fn wait_for_posts_async(&self, n: usize, timeout: Duration) -> Vec<SlackPost> {
        wait_async("Slack posts", n, timeout, || self.posts()).await
    }

    /// How many requests reached `method` (faulted, rate-limited and rejected ones included).
    pub fn calls(&self, method: &str) -> usize {
        self.app.journal.calls(method)
    }

    /// How many requests to `method` the fake's tier rate limit answered with HTTP 429.
    /// (Injected `Fault::RateLimited` answers are not counted here; see `requests()[i].fault`.)
    pub fn rate_limited(&self, method: &str) -> usize {
        self.app.journal.rate_limited(method)
    }

    /// Limits `method` to `calls` calls in any sliding window of length `per`, replacing its
    /// Slack tier limit (and forgetting earlier calls). Real tiers are per minute; tests use
    /// short windows, e.g. `set_tier_limit("conversations.list", 2, Duration::from_secs(1))`.
    /// Works for every implemented method, `chat.postMessage` included.
    ///
    /// # Panics
    /// If `method` is not one this fake implements.
    pub fn set_tier_limit(&self, method: &str, calls: usize, per: Duration) {
        assert_known(method, "set_tier_limit");
        self.app.limits.set(method, calls, per);
    }

    /// Limits `chat.postMessage` to `calls` posts into any one channel (or DM) in any sliding
    /// window of length `per`; over it a post is answered HTTP 429 `ratelimited` with
    /// `Retry-After`, as Slack answers. Slack's rate-limit page: "chat.postMessage generally
    /// allows posting one message per second per channel, while also maintaining a
    /// workspace-wide limit" and "Posting messages: 1 per second. Short bursts >1 allowed."
    /// (so `limit_posts_per_channel(2, Duration::from_secs(2))` is one a second with a burst
    /// of two). Off by default; [`FakeSlack::rate_limited_posts`] counts the refusals.
    pub fn limit_posts_per_channel(&self, calls: usize, per: Duration) {
        *lock(&self.app.channel_posts) = Some((calls, per));
        self.app.channel_windows.clear();
    }

    /// How many posts the per-channel limit answered with HTTP 429.
    pub fn rate_limited_posts(&self) -> usize {
        self.app
            .channel_posts_refused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Turns every tier rate limit off (limits set later with `set_tier_limit` apply again).
    pub fn disable_tier_limits(&self) {
        self.app.limits.clear();
    }

    /// The rate limit in force for `method`: `(calls, per window)`, or `None` if unlimited.
    pub fn tier_limit(&self, method: &str) -> Option<(usize, Duration)> {
        self.app.limits.get(method)
    }

    /// Queues a fault for the next request to `method`, e.g. `"chat.postMessage"`.
    ///
    /// # Panics
    /// If `method` is not one this fake implements.
    pub fn inject(&self, method: &str, fault: Fault) {
        assert_known(method, "inject");
        self.app.journal.inject(method, fault);
    }

    /// Faults still queued for `method` (0 once all have been served).
    pub fn faults_left(&self, method: &str) -> usize {
        self.app.journal.faults_left(method)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.app.journal.requests()
    }
}

fn is_method(name: &str) -> bool {
    METHODS.iter().any(|(m, _)| *m == name)
}

fn assert_known(method: &str, caller: &str) {
    assert!(
        is_method(method) || (caller == "inject" && method == RESPONSE_URL_ENDPOINT),
        "FakeSlack::{caller}: unknown method {method:?}; known: {:?}",
        FakeSlack::methods()
    );
}

fn new_channel(name: &str, id: &str, kind: Kind, member: bool) -> Channel {
    Channel {
        id: id.to_string(),
        name: name.trim_start_matches('#').to_string(),
        kind,
        member,
        archived: false,
    }
}

fn ok(mut body: Value) -> Response {
    body["ok"] = Value::Bool(true);
    json_response(StatusCode::OK, &body)
}

fn err(code: &str) -> Response {
    json_response(StatusCode::OK, &json!({"ok": false, "error": code}))
}

fn ratelimited(retry_after_secs: u64) -> Response {
    with_header(
        json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"ok": false, "error": "ratelimited"}),
        ),
        "retry-after",
        &retry_after_secs.to_string(),
    )
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => ratelimited(*retry_after_secs),
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text_response(status, &format!("fake slack: injected HTTP {code}"))
        }
        Fault::SlackError(code) => err(code),
        Fault::Delay(_) | Fault::Reset | Fault::StatusAfterEffect(_) => {
            unreachable!("handled by apply_fault")
        }
    }
}

async fn handle(State(app): State<Arc<App>>, req: Request<Body>) -> Response {
    let (parts, body) = match read_body(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if parts.uri.path() == "/api/apps.connections.open" {
        // Socket Mode's app-level token, not the bot's (slack_socket.rs).
        return app.socket_mode().open_connection(&parts, &body);
    }
    if parts.uri.path().starts_with("/commands/") {
        let fault = app
            .journal
            .record(&parts, &body, Some(RESPONSE_URL_ENDPOINT));
        let delay = match apply_fault(fault, &parts, response_fault).await {
            Next::Respond(r) => return r,
            Next::Proceed { delay } => delay,
        };
        return answer_late(respond(&app, &parts, &body), delay).await;
    }
    let method = parts
        .uri
        .path()
        .strip_prefix("/api/")
        .filter(|m| !m.is_empty() && !m.contains('/'))
        .map(str::to_string);
    let endpoint = method.as_deref().filter(|m| is_method(m));
    if let Some(endpoint) = endpoint
        && let Err(wait) = app.limits.admit(endpoint)
    {
        app.journal.record_rate_limited(&parts, &body, endpoint);
        return ratelimited(retry_after_secs(wait));
    }
    let fault = app.journal.record(&parts, &body, endpoint);
    let Some(method) = method else {
        return text_response(StatusCode::NOT_FOUND, "not a Slack Web API path");
    };
    let delay = match apply_fault(fault, &parts, fault_response).await {
        Next::Respond(r) => return r,
        Next::Proceed { delay } => delay,
    };
    answer_late(dispatch(&app, &parts, &body, &method), delay).await
}

fn dispatch(app: &App, parts: &Parts, body: &Bytes, method: &str) -> Response {
    let Some(spec) = spec_table().get(method) else {
        return err("unknown_method");
    };
    let args = match gather_args(parts, body, spec) {
        Ok(a) => a,
        Err(code) => return err(code),
    };
    if let Err(code) = authenticate(app, parts, args.form_token.as_deref()) {
        return err(code);
    }
    let answer = answer_authenticated(app, spec, &args, method);
    match lock(&app.state).scopes.clone() {
        Some(scopes) => with_header(answer, "x-oauth-scopes", &scopes.join(",")),
        None => answer,
    }
}

/// A call whose token checked out: its scopes, its arguments, the method.
fn answer_authenticated(app: &App, spec: &MethodSpec, args: &Args, method: &str) -> Response {
    if let Some(provided) = lock(&app.state).scopes.clone()
        && !spec.scopes.is_empty()
        && !spec
            .scopes
            .iter()
            .any(|needed| scope_met(needed, &provided))
    {
        return json_response(
            StatusCode::OK,
            &json!({
                "ok": false,
                "error": "missing_scope",
                "needed": spec.scopes.join(","),
                "provided": provided.join(","),
            }),
        );
    }
    if let Err(code) = check_args(method, spec, &args.params) {
        return err(code);
    }
    let p = &args.params;
    if method == CHAT_POST_MESSAGE
        && let Some(wait) = channel_post_wait(app, p)
    {
        return ratelimited(retry_after_secs(wait));
    }
    let mut st = lock(&app.state);
    let response = match method {
        "auth.test" => auth_test(&st),
        "chat.postMessage" => post_message(&mut st, p),
        "chat.update" => chat_update(&mut st, p),
        "chat.unfurl" => chat_unfurl(&mut st, p),
        "conversations.list" => conversations_list(&st, p),
        "conversations.open" => conversations_open(&mut st, p),
        "conversations.history" => conversations_history(&st, p),
        "conversations.replies" => conversations_replies(&st, p),
        "users.lookupByEmail" => lookup_by_email(&st, p),
        "users.info" => users_info(&st, p),
        _ => Err("unknown_method"),
    };
    match response {
        Ok(mut body) => {
            if !args.warnings.is_empty() {
                body["warning"] = Value::String(args.warnings.join(","));
                body["response_metadata"]["warnings"] = json!(args.warnings);
            }
            ok(body)
        }
        Err(code) => err(code),
    }
}

/// Whether a token with `provided` scopes has `needed`: itself, or for a legacy
/// `chat:write:bot` / `chat:write:user` requirement the granular bot scope `chat:write`.
fn scope_met(needed: &str, provided: &[String]) -> bool {
    let granular = needed
        .strip_suffix(":bot")
        .or_else(|| needed.strip_suffix(":user"));
    provided
        .iter()
        .any(|p| p == needed || Some(p.as_str()) == granular)
}

/// A response URL's error: HTTP `status` and `{"ok": false, "error": code}`.
fn response_err(status: StatusCode, code: &str) -> Response {
    json_response(status, &json!({"ok": false, "error": code}))
}

fn response_fault(fault: &Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => with_header(
            response_err(StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            "retry-after",
            &retry_after_secs.to_string(),
        ),
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text_response(status, &format!("fake slack: injected HTTP {code}"))
        }
        Fault::SlackError(code) => response_err(StatusCode::BAD_REQUEST, code),
        Fault::Delay(_) | Fault::Reset | Fault::StatusAfterEffect(_) => {
            unreachable!("handled by apply_fault")
        }
    }
}

/// An answer to a slash command at its response URL: a JSON body with `text` and/or
/// `blocks` and an optional `response_type` (`ephemeral`, the default, or `in_channel`). No
/// token is needed (one sent is ignored, and recorded as sent). Unknown URLs answer 404
/// `no_service`; a URL older than [`RESPONSE_URL_TTL`] 404 `expired_url`; one that already
/// took [`RESPONSE_URL_USES`] answers 404 `used_url`. Refused answers do not count as uses.
fn respond(app: &App, parts: &Parts, body: &Bytes) -> Response {
    let path = parts.uri.path().to_string();
    let mut st = lock(&app.state);
    let Some(url) = st.response_urls.get(&path).cloned() else {
        return response_err(StatusCode::NOT_FOUND, "no_service");
    };
    if parts.method != axum::http::Method::POST {
        return response_err(StatusCode::METHOD_NOT_ALLOWED, "invalid_method");
    }
    if url.minted_at.elapsed() + url.aged >= RESPONSE_URL_TTL {
        return response_err(StatusCode::NOT_FOUND, "expired_url");
    }
    if url.uses >= RESPONSE_URL_USES {
        return response_err(StatusCode::NOT_FOUND, "used_url");
    }
    let json_body = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().starts_with(JSON));
    let payload = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) if json_body => map,
        _ => return response_err(StatusCode::BAD_REQUEST, "invalid_payload"),
    };
    let response_type = match payload.get("response_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t == "ephemeral" || t == "in_channel" => Some(t.clone()),
        Some(_) => return response_err(StatusCode::BAD_REQUEST, "invalid_payload"),
    };
    let text = get_text(&payload, "text");
    let blocks = match get_json(&payload, "blocks") {
        Ok(b) => b,
        Err(()) => return response_err(StatusCode::BAD_REQUEST, "invalid_blocks"),
    };
    if let Some(b) = &blocks
        && validate_blocks(b).is_err()
    {
        return response_err(StatusCode::BAD_REQUEST, "invalid_blocks");
    }
    if text.is_none() && !has_blocks(blocks.as_ref()) {
        return response_err(StatusCode::BAD_REQUEST, "no_text");
    }
    if let Some(u) = st.response_urls.get_mut(&path) {
        u.uses += 1;
    }
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    st.responses.push(SlackResponse {
        url: format!("http://{host}{path}"),
        channel: url.channel,
        response_type,
        text,
        blocks,
        authorization: parts.headers.contains_key(AUTHORIZATION),
        received_at: Instant::now(),
    });
    json_response(StatusCode::OK, &json!({"ok": true}))
}

type Params = Map<String, Value>;

/// The arguments of one call, read the way Slack reads them for this method.
struct Args {
    params: Params,
    form_token: Option<String>,
    warnings: Vec<&'static str>,
}

/// Gathers arguments as Slack does: always the query string; then a form body; then a JSON
/// body only if the method's `consumes` lists `application/json` (otherwise the JSON body is
/// ignored entirely, so the call proceeds as if those arguments were never sent).
fn gather_args(parts: &Parts, body: &Bytes, spec: &MethodSpec) -> Result<Args, &'static str> {
    let mut params = Params::new();
    let mut warnings = Vec::new();
    for (k, v) in form_pairs(parts.uri.query().unwrap_or("").as_bytes()) {
        params.insert(k, Value::String(v));
    }
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut form_token = None;
    if content_type.starts_with(JSON) {
        if spec.accepts(JSON) {
            if !content_type.contains("charset") {
                warnings.push("missing_charset");
            }
            if !body.is_empty() {
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(map)) => params.extend(map),
                    Ok(_) => return Err("json_not_object"),
                    Err(_) => return Err("invalid_json"),
                }
            }
        }
    } else if content_type.is_empty() || content_type.starts_with(FORM) {
        for (k, v) in form_pairs(body) {
            if k == "token" {
                form_token = Some(v);
            } else {
                params.insert(k, Value::String(v));
            }
        }
    } else if !body.is_empty() {
        return Err("invalid_post_type");
    }
    Ok(Args {
        params,
        form_token,
        warnings,
    })
}

/// Refuses a call that lacks a required argument or sends a value its type cannot take.
fn check_args(method: &str, spec: &MethodSpec, p: &Params) -> Result<(), &'static str> {
    let documented = spec
        .params
        .iter()
        .filter(|s| s.name != "token")
        .map(|s| (s.name.as_str(), s.required, s.ty))
        .chain(
            EXTRA_PARAMS
                .iter()
                .filter(|(m, _, _)| *m == method)
                .map(|(_, name, ty)| (*name, false, *ty)),
        );
    for (name, required, ty) in documented {
        let value = p.get(name);
        let blank = match value {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if required && blank {
            return Err("invalid_arguments");
        }
        if let Some(v) = value
            && !ty.accepts(v)
        {
            return Err("invalid_arguments");
        }
    }
    Ok(())
}

fn authenticate(app: &App, parts: &Parts, form_token: Option<&str>) -> Result<(), &'static str> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(token) = header.or(form_token) else {
        return Err("not_authed");
    };
    let st = lock(&app.state);
    if token == st.token {
        Ok(())
    } else if st.revoked.iter().any(|t| t == token) {
        Err("token_revoked")
    } else {
        Err("invalid_auth")
    }
}

fn get_str(p: &Params, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A non-empty string argument.
fn get_text(p: &Params, key: &str) -> Option<String> {
    get_str(p, key).filter(|s| !s.is_empty())
}

fn get_bool(p: &Params, key: &str) -> bool {
    match p.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true") || s == "1",
        _ => false,
    }
}

/// A JSON argument that may also arrive JSON-encoded in a string (form posts, or clients
/// that pre-serialise `blocks`).
fn get_json(p: &Params, key: &str) -> Result<Option<Value>, ()> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
        Some(v) => Ok(Some(v.clone())),
    }
}

/// The page size: `default` when absent or 0, at most `max` (Slack caps larger values).
/// `check_args` has already refused values that are not integers.
fn get_limit(p: &Params, default: usize, max: usize) -> Result<usize, &'static str> {
    match get_str(p, "limit").filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(0) => Ok(default),
            Ok(n) if n > 0 => Ok(usize::try_from(n).unwrap_or(max).min(max)),
            _ => Err("invalid_arguments"),
        },
    }
}

fn encode_cursor(offset: usize) -> String {
    B64.encode(format!("next_offset:{offset}"))
}

fn decode_cursor(p: &Params) -> Result<usize, &'static str> {
    match get_text(p, "cursor") {
        None => Ok(0),
        Some(c) => B64
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("next_offset:")?.parse().ok())
            .ok_or("invalid_cursor"),
    }
}

/// One page of `items` from the request's cursor, and the next cursor ("" at the end).
fn page<'a, T>(
    items: &'a [T],
    p: &Params,
    default: usize,
    max: usize,
) -> Result<(&'a [T], String), &'static str> {
    let limit = get_limit(p, default, max)?;
    let start = decode_cursor(p)?.min(items.len());
    let end = start.saturating_add(limit).min(items.len());
    let next = if end < items.len() {
        encode_cursor(end)
    } else {
        String::new()
    };
    Ok((&items[start..end], next))
}

/// Orders Slack timestamps numerically ("1700000000.000100" → micros).
fn ts_key(ts: &str) -> Option<u128> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let secs: u128 = secs.parse().ok()?;
    let mut frac = frac.to_string();
    if frac.len() > 6 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while frac.len() < 6 {
        frac.push('0');
    }
    Some(secs * 1_000_000 + frac.parse::<u128>().ok()?)
}

/// The `oldest`/`latest`/`inclusive` window of the history methods: exclusive bounds unless
/// `inclusive` is set.
fn ts_window(p: &Params) -> Result<impl Fn(&str) -> bool, &'static str> {
    let inclusive = get_bool(p, "inclusive");
    let oldest = match get_text(p, "oldest") {
        Some(s) => ts_key(&s).ok_or("invalid_ts_oldest")?,
        None => 0,
    };
    let latest = match get_text(p, "latest") {
        Some(s) => ts_key(&s).ok_or("invalid_ts_latest")?,
        None => u128::MAX,
    };
    Ok(move |ts: &str| {
        ts_key(ts).is_some_and(|k| {
            if inclusive {
                k >= oldest && k <= latest
            } else {
                k > oldest && k < latest
            }
        })
    })
}

fn team_url(team_name: &str) -> String {
    let slug: String = team_name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("https://{slug}.slack.com/")
}

fn auth_test(st: &SlackState) -> Result<Value, &'static str> {
    Ok(json!({
        "url": team_url(&st.team_name),
        "team": st.team_name,
        "user": "pagehook",
        "team_id": st.team_id,
        "user_id": BOT_USER,
        "bot_id": BOT_ID,
        "is_enterprise_install": false,
    }))
}

/// Opens (or reuses) the bot's DM with a user, as `conversations.open` does.
fn open_im(st: &mut SlackState, user_id: &str) -> (String, bool) {
    if let Some(&i) = st.im_by_user.get(user_id) {
        return (st.channels[i].id.clone(), true);
    }
    let id = format!("D{:08}", st.next_dm);
    st.next_dm += 1;
    st.put_channel(Channel {
        id: id.clone(),
        name: String::new(),
        kind: Kind::Im {
            user: user_id.to_string(),
        },
        member: true,
        archived: false,
    });
    (id, false)
}

fn validate_blocks(blocks: &Value) -> Result<(), &'static str> {
    let arr = blocks.as_array().ok_or("invalid_blocks_format")?;
    if arr.len() > 50 {
        return Err("invalid_blocks");
    }
    for b in arr {
        let kind = b
            .get("type")
            .and_then(Value::as_str)
            .ok_or("invalid_blocks")?;
        let text_len = |v: &Value| {
            v.get("text")
                .and_then(|t| t.get("text"))
                .and_then(Value::as_str)
                .map(|s| s.chars().count())
        };
        match kind {
            "header" => {
                let ok_type = b.pointer("/text/type").and_then(Value::as_str) == Some("plain_text");
                match text_len(b) {
                    Some(n) if ok_type && n <= 150 => {}
                    _ => return Err("invalid_blocks"),
                }
            }
            "section" => {
                let fields = b.get("fields").and_then(Value::as_array);
                if text_len(b).is_none() && fields.is_none() {
                    return Err("invalid_blocks");
                }
                if text_len(b).is_some_and(|n| n > 3000) {
                    return Err("invalid_blocks");
                }
                if let Some(fields) = fields {
                    let too_long = fields.iter().any(|f| {
                        f.get("text")
                            .and_then(Value::as_str)
                            .is_none_or(|t| t.chars().count() > 2000)
                    });
                    if fields.len() > 10 || too_long {
                        return Err("invalid_blocks");
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn message_json(st: &SlackState, m: &Message, include_metadata: bool) -> Value {
    let post = &m.post;
    let mut json = json!({
        "type": "message",
        "user": m.user,
        "team": st.team_id,
        "text": post.text.clone().unwrap_or_default(),
        "ts": post.ts,
    });
    if m.by_bot {
        json["bot_id"] = json!(BOT_ID);
        json["app_id"] = json!(APP_ID);
    }
    if let Some(b) = &post.blocks {
        json["blocks"] = b.clone();
    }
    if let Some(t) = &post.thread_ts {
        json["thread_ts"] = Value::String(t.clone());
        if let Some(parent) = st.message_by_ts.get(t).map(|&i| &st.messages[i]) {
            json["parent_user_id"] = Value::String(parent.user.clone());
        }
    }
    if let Some(edit_ts) = &m.edited {
        json["edited"] = json!({"user": BOT_USER, "ts": edit_ts});
    }
    if include_metadata && let Some(md) = &post.metadata {
        json["metadata"] = md.clone();
    }
    json
}

/// `text`, `blocks` (validated) and `metadata` (validated) of a post or an update.
type Content = (Option<String>, Option<Value>, Option<Value>);

fn message_content(p: &Params) -> Result<Content, &'static str> {
    let text = get_text(p, "text");
    let blocks = get_json(p, "blocks").map_err(|()| "invalid_blocks_format")?;
    if let Some(b) = &blocks {
        validate_blocks(b)?;
    }
    if text.as_ref().is_some_and(|t| t.chars().count() > 40_000) {
        return Err("msg_too_long");
    }
    let metadata = get_json(p, "metadata").map_err(|()| "invalid_metadata_format")?;
    if let Some(md) = &metadata {
        let typed = md.get("event_type").and_then(Value::as_str).is_some();
        let payload = md.get("event_payload").is_some_and(Value::is_object);
        if !typed || !payload {
            return Err("invalid_metadata_format");
        }
    }
    Ok((text, blocks, metadata))
}

fn has_blocks(blocks: Option<&Value>) -> bool {
    blocks
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// `chat.postMessage`, by name.
const CHAT_POST_MESSAGE: &str = "chat.postMessage";

/// With a per-channel limit set: `Some(wait)` if this post's channel is over it (the post is
/// counted as refused), `None` if it may go (it is counted in its channel's window).
fn channel_post_wait(app: &App, p: &Params) -> Option<Duration> {
    let (calls, per) = (*lock(&app.channel_posts))?;
    let target = get_text(p, "channel").unwrap_or_default();
    let channel = lock(&app.state)
        .find_channel(&target)
        .map_or(target, |c| c.id.clone());
    let key = format!("{CHAT_POST_MESSAGE} {channel}");
    if app.channel_windows.get(&key).is_none() {
        app.channel_windows.set(&key, calls, per);
    }
    let wait = app.channel_windows.admit(&key).err()?;
    app.channel_posts_refused
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(wait)
}

fn post_message(st: &mut SlackState, p: &Params) -> Result<Value, &'static str> {
    let target = get_text(p, "channel").ok_or("channel_not_found")?;
    let channel_id = match st.find_channel(&target) {
        Some(c) if c.archived => return Err("is_archived"),
        Some(c) if !c.member => return Err("not_in_channel"),
        Some(c) => c.id.clone(),
        None if st.user_by_id(&target).is_some() => open_im(st, &target).0,
        None => return Err("channel_not_found"),
    };
    let (text, blocks, metadata) = message_content(p)?;
    if text.is_none() && !has_blocks(blocks.as_ref()) {
        return Err("no_text");
    }
    let ts = st.next_ts();
    let post = SlackPost {
        channel: channel_id.clone(),
        text,
        blocks,
        thread_ts: get_text(p, "thread_ts"),
        metadata,
        ts: ts.clone(),
        received_at: Instant::now(),
        params: Value::Object(p.clone()),
    };
    let message = Message {
        post: post.clone(),
        user: BOT_USER.to_string(),
        by_bot: true,
        edited: None,
    };
    let json = message_json(st, &message, true);
    st.push_message(message);
    st.posts.push(post);
    Ok(json!({"channel": channel_id, "ts": ts, "message": json}))
}

/// `chat.update`: edits the text/blocks of one of the bot's messages. Omitted `blocks` keep
/// the old ones (an empty array removes them); omitted `text` keeps the old text.
fn chat_update(st: &mut SlackState, p: &Params) -> Result<Value, &'static str> {
    let channel = get_text(p, "channel").ok_or("channel_not_found")?;
    let ts = get_text(p, "ts").ok_or("message_not_found")?;
    let channel = st
        .channel_by_id(&channel)
        .ok_or("channel_not_found")?
        .id
        .clone();
    let idx = st.message_in(&channel, &ts).ok_or("message_not_found")?;
    if !st.messages[idx].by_bot {
        return Err("cant_update_message");
    }
    let (text, blocks, metadata) = message_content(p)?;
    if text.is_none() && blocks.is_none() {
        return Err("no_text");
    }
    let edit_ts = st.next_ts();
    let m = &mut st.messages[idx];
    if let Some(t) = &text {
        m.post.text = Some(t.clone());
    }
    if let Some(b) = &blocks {
        m.post.blocks = has_blocks(Some(b)).then(|| b.clone());
    }
    if metadata.is_some() {
        m.post.metadata = metadata.clone();
    }
    m.edited = Some(edit_ts);
    let current_text = m.post.text.clone().unwrap_or_default();
    let message = st.messages[idx].clone();
    let json = message_json(st, &message, true);
    st.updates.push(SlackPost {
        channel: channel.clone(),
        text,
        blocks,
        thread_ts: message.post.thread_ts.clone(),
        metadata,
        ts: ts.clone(),
        received_at: Instant::now(),
        params: Value::Object(p.clone()),
    });
    Ok(json!({"channel": channel, "ts": ts, "text": current_text, "message": json}))
}

/// `chat.unfurl`: records unfurls for URLs that appear in the message. The channel must
/// exist (`cannot_find_channel`) and, if private, have the bot in it (`not_in_channel`); the
/// message must be in it (`cannot_find_message`); every key of `unfurls` (a JSON map, sent as
/// JSON text in a form or as an object in JSON) must appear in the message
/// (`cannot_unfurl_url`), and each preview must be an object whose `blocks`, if any, are
/// valid Block Kit (`invalid_blocks`).
fn chat_unfurl(st: &mut SlackState, p: &Params) -> Result<Value, &'static str> {
    let channel = get_text(p, "channel").ok_or("cannot_find_channel")?;
    let ts = get_text(p, "ts").ok_or("cannot_find_message")?;
    let channel = match st.channel_by_id(&channel) {
        None => return Err("cannot_find_channel"),
        Some(c) if c.kind == Kind::Private && !c.member => return Err("not_in_channel"),
        Some(c) => c.id.clone(),
    };
    let idx = st.message_in(&channel, &ts).ok_or("cannot_find_message")?;
    let unfurls = get_json(p, "unfurls")
        .map_err(|()| "invalid_unfurls")?
        .ok_or("missing_unfurls")?;
    let map = unfurls.as_object().ok_or("invalid_unfurls")?;
    if map.is_empty() {
        return Err("missing_unfurls");
    }
    for preview in map.values() {
        let preview = preview.as_object().ok_or("invalid_unfurls")?;
        if let Some(blocks) = preview.get("blocks") {
            validate_blocks(blocks)?;
        }
    }
    let post = &st.messages[idx].post;
    let haystack = format!(
        "{} {}",
        post.text.as_deref().unwrap_or(""),
        post.blocks
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default()
    );
    if map.keys().any(|url| !haystack.contains(url.as_str())) {
        return Err("cannot_unfurl_url");
    }
    st.unfurls.push(SlackUnfurl {
        channel,
        ts,
        unfurls,
        received_at: Instant::now(),
    });
    Ok(json!({}))
}

fn channel_json(c: &Channel) -> Value {
    match &c.kind {
        Kind::Im { user } => json!({
            "id": c.id, "created": 1_700_000_000, "is_im": true, "is_org_shared": false,
            "user": user, "is_user_deleted": false, "priority": 0,
        }),
        kind => json!({
            "id": c.id,
            "name": c.name,
            "name_normalized": c.name,
            "is_channel": *kind == Kind::Public,
            "is_group": *kind == Kind::Private,
            "is_im": false,
            "is_mpim": *kind == Kind::Mpim,
            "is_private": *kind != Kind::Public,
            "is_archived": c.archived,
            "is_general": false,
            "is_member": c.member,
            "is_shared": false,
            "is_org_shared": false,
            "created": 1_700_000_000,
            "creator": "U0ADMIN",
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }),
    }
}

/// `conversations.list`: public channels only unless `types` says otherwise, 100 a page
/// (at most 1000), archived ones included unless `exclude_archived`; private channels and
/// group DMs only where the bot is a member.
fn conversations_list(st: &SlackState, p: &Params) -> Result<Value, &'static str> {
    let types = get_text(p, "types").unwrap_or_else(|| "public_channel".to_string());
    let mut wanted = Vec::new();
    for t in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match t {
            "public_channel" | "private_channel" | "im" | "mpim" => wanted.push(t),
            _ => return Err("invalid_types"),
        }
    }
    let exclude_archived = get_bool(p, "exclude_archived");
    let visible: Vec<&Channel> = st
        .channels
        .iter()
        .filter(|c| match c.kind {
            Kind::Public => wanted.contains(&"public_channel"),
            Kind::Private => wanted.contains(&"private_channel") && c.member,
            Kind::Im { .. } => wanted.contains(&"im"),
            Kind::Mpim => wanted.contains(&"mpim") && c.member,
        })
        .filter(|c| !c.id.is_empty())
        .filter(|c| !(exclude_archived && c.archived))
        .collect();
    let (channels, next) = page(&visible, p, 100, 1000)?;
    let channels: Vec<Value> = channels.iter().map(|c| channel_json(c)).collect();
    Ok(json!({"channels": channels, "response_metadata": {"next_cursor": next}}))
}

fn conversations_open(st: &mut SlackState, p: &Params) -> Result<Value, &'static str> {
    if let Some(id) = get_text(p, "channel") {
        let c = st.find_channel(&id).ok_or("channel_not_found")?;
        return Ok(json!({"channel": {"id": c.id}, "no_op": true, "already_open": true}));
    }
    let users: Vec<String> = get_str(p, "users")
        .unwrap_or_default()
        .split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if users.is_empty() {
        return Err("users_list_not_supplied");
    }
    if users.iter().any(|u| st.user_by_id(u).is_none()) {
        return Err("user_not_found");
    }
    let (id, already) = if let [user] = users.as_slice() {
        open_im(st, user)
    } else {
        let name = format!("mpdm-{}", users.join("--"));
        match st.channel_by_name.get(&name).map(|&i| &st.channels[i]) {
            Some(c) if c.kind == Kind::Mpim => (c.id.clone(), true),
            _ => {
                let id = format!("G{:08}", st.next_dm);
                st.next_dm += 1;
                st.put_channel(Channel {
                    id: id.clone(),
                    name,
                    kind: Kind::Mpim,
                    member: true,
                    archived: false,
                });
                (id, false)
            }
        }
    };
    let channel = if get_bool(p, "return_im") {
        channel_json(st.channel_by_id(&id).expect("just opened"))
    } else {
        json!({"id": id})
    };
    let mut body = json!({"channel": channel});
    if already {
        body["no_op"] = Value::Bool(true);
        body["already_open"] = Value::Bool(true);
    }
    Ok(body)
}

/// Resolves a channel for the read methods, which take ids only and need membership.
fn readable_channel<'a>(st: &'a SlackState, p: &Params) -> Result<&'a Channel, &'static str> {
    let id = get_text(p, "channel").ok_or("channel_not_found")?;
    let c = st.channel_by_id(&id).ok_or("channel_not_found")?;
    if !c.member {
        return Err("not_in_channel");
    }
    Ok(c)
}

fn is_broadcast(m: &Message) -> bool {
    get_bool(
        m.post.params.as_object().unwrap_or(&Params::new()),
        "reply_broadcast",
    )
}

/// `conversations.history`: top-level messages newest first, 100 a page (at most 999),
/// `metadata` only with `include_all_metadata`.
fn conversations_history(st: &SlackState, p: &Params) -> Result<Value, &'static str> {
    let channel = readable_channel(st, p)?;
    let with_metadata = get_bool(p, "include_all_metadata");
    let in_window = ts_window(p)?;
    // Slack's history holds top-level messages only; thread replies live in
    // conversations.replies unless they were broadcast to the channel.
    let mut top: Vec<&Message> = st
        .channel_messages(&channel.id)
        .filter(|m| m.post.thread_ts.as_ref().is_none_or(|t| *t == m.post.ts) || is_broadcast(m))
        .filter(|m| in_window(&m.post.ts))
        .collect();
    top.reverse();
    let (shown, next) = page(&top, p, 100, 999)?;
    let messages: Vec<Value> = shown
        .iter()
        .map(|m| {
            let mut json = message_json(st, m, with_metadata);
            let replies: Vec<&Message> = st
                .channel_messages(&channel.id)
                .filter(|r| {
                    r.post.thread_ts.as_deref() == Some(&m.post.ts) && r.post.ts != m.post.ts
                })
                .collect();
            if let Some(last) = replies.last() {
                let mut users: Vec<&str> = replies.iter().map(|r| r.user.as_str()).collect();
                users.sort_unstable();
                users.dedup();
                json["thread_ts"] = Value::String(m.post.ts.clone());
                json["reply_count"] = json!(replies.len());
                json["reply_users"] = json!(users);
                json["reply_users_count"] = json!(users.len());
                json["latest_reply"] = Value::String(last.post.ts.clone());
            }
            json
        })
        .collect();
    Ok(json!({
        "messages": messages,
        "has_more": !next.is_empty(),
        "pin_count": 0,
        "response_metadata": {"next_cursor": next},
    }))
}

/// `conversations.replies`: the thread's parent first, then its replies oldest first, 100 a
/// page (at most 999). `ts` may name the parent or any reply. `oldest`/`latest` filter the
/// replies; the parent is always listed.
fn conversations_replies(st: &SlackState, p: &Params) -> Result<Value, &'static str> {
    let channel = readable_channel(st, p)?;
    let ts = get_text(p, "ts").ok_or("thread_not_found")?;
    let with_metadata = get_bool(p, "include_all_metadata");
    let in_window = ts_window(p)?;
    let named = st
        .message_in(&channel.id, &ts)
        .map(|i| &st.messages[i])
        .ok_or("thread_not_found")?;
    let parent_ts = named
        .post
        .thread_ts
        .clone()
        .unwrap_or_else(|| named.post.ts.clone());
    let parent = st
        .message_in(&channel.id, &parent_ts)
        .map(|i| &st.messages[i])
        .ok_or("thread_not_found")?;
    let thread: Vec<&Message> = std::iter::once(parent)
        .chain(st.channel_messages(&channel.id).filter(|m| {
            m.post.thread_ts.as_deref() == Some(&parent_ts)
                && m.post.ts != parent_ts
                && in_window(&m.post.ts)
        }))
        .collect();
    let (shown, next) = page(&thread, p, 100, 999)?;
    let messages: Vec<Value> = shown
        .iter()
        .map(|m| message_json(st, m, with_metadata))
        .collect();
    Ok(json!({
        "messages": messages,
        "has_more": !next.is_empty(),
        "response_metadata": {"next_cursor": next},
    }))
}

fn user_json(st: &SlackState, user: &User) -> Value {
    let name = user.email.split('@').next().unwrap_or_default();
    json!({
        "id": user.id,
        "team_id": st.team_id,
        "name": name,
        "deleted": false,
        "real_name": name,
        "is_bot": false,
        "profile": {"email": user.email, "real_name": name, "display_name": name},
    })
}

fn lookup_by_email(st: &SlackState, p: &Params) -> Result<Value, &'static str> {
    let email = get_text(p, "email").ok_or("invalid_arguments")?;
    let user = st
        .user_by_email
        .get(&email.to_ascii_lowercase())
        .map(|&i| &st.users[i])
        .ok_or("users_not_found")?;
    Ok(json!({"user": user_json(st, user)}))
}

fn users_info(st: &SlackState, p: &Params) -> Result<Value, &'static str> {
    let id = get_text(p, "user").ok_or("user_not_found")?;
    let user = st.user_by_id(&id).ok_or("user_not_found")?;
    let mut json = user_json(st, user);
    if get_bool(p, "include_locale") {
        json["locale"] = json!("en-US");
    }
    Ok(json!({"user": json}))
}
