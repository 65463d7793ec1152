//! A fake of the Slack Web API methods Pagehook uses.

use std::sync::{Arc, Mutex};
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
    Journal, Next, Server, answer_late, apply_fault, form_pairs, json_response, lock, read_body,
    text_response, wait_async, wait_blocking, with_header,
};
use crate::{Fault, RecordedRequest};

/// The methods this fake implements; `inject` refuses any other name so a typo cannot make
/// a fault silently never fire.
const METHODS: &[&str] = &[
    "auth.test",
    "chat.postMessage",
    "conversations.history",
    "conversations.list",
    "conversations.open",
    "conversations.replies",
    "users.lookupByEmail",
];

const BOT_USER: &str = "U0BOT";
const BOT_ID: &str = "B1";
const TEAM_ID: &str = "T1";
const APP_ID: &str = "A0PAGEHOOK";
/// The first `ts` handed out: 1700000000.000100. Later ones are 100 µs apart.
const TS_BASE_MICROS: u128 = 1_700_000_000_000_000;

/// A message the fake accepted through `chat.postMessage`.
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

struct SlackState {
    token: String,
    revoked: Vec<String>,
    channels: Vec<Channel>,
    users: Vec<User>,
    posts: Vec<SlackPost>,
    next_ts: u128,
    next_dm: u64,
}

struct App {
    journal: Journal,
    state: Mutex<SlackState>,
}

/// A fake Slack Web API at `http://127.0.0.1:PORT/api/`.
///
/// Implements `auth.test`, `chat.postMessage`, `conversations.list`, `conversations.open`,
/// `conversations.history`, `conversations.replies` and `users.lookupByEmail` with Slack's
/// envelope: HTTP 200 and `{"ok":false,"error":"..."}` for logical errors. The endpoint name
/// for `inject` and `calls` is the method name, e.g. `"chat.postMessage"`.
///
/// Authentication follows Slack: `Authorization: Bearer <token>` (or a `token` form field);
/// no token gives `not_authed`, a wrong one `invalid_auth`, a revoked one `token_revoked`.
pub struct FakeSlack {
    app: Arc<App>,
    server: Server,
}

impl FakeSlack {
    /// Starts a fake workspace whose bot token is `token`.
    pub fn start(token: &str) -> FakeSlack {
        let app = Arc::new(App {
            journal: Journal::default(),
            state: Mutex::new(SlackState {
                token: token.to_string(),
                revoked: Vec::new(),
                channels: Vec::new(),
                users: Vec::new(),
                posts: Vec::new(),
                next_ts: 1,
                next_dm: 1,
            }),
        });
        let router = Router::new().fallback(handle).with_state(app.clone());
        let server = Server::spawn("slack", router);
        FakeSlack { app, server }
    }

    /// The Web API base URL, ending in `/api/`: append a method name to call it.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/", self.server.addr())
    }

    /// The listening address (always on 127.0.0.1).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
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

    fn push_channel(&self, name: &str, id: &str, kind: Kind, member: bool) {
        let mut st = lock(&self.app.state);
        st.channels.retain(|c| c.id != id);
        st.channels.push(Channel {
            id: id.to_string(),
            name: name.trim_start_matches('#').to_string(),
            kind,
            member,
            archived: false,
        });
    }

    /// Archives a channel (by id or name): posts then fail with `is_archived`.
    pub fn archive_channel(&self, id_or_name: &str) {
        let mut st = lock(&self.app.state);
        let wanted = id_or_name.trim_start_matches('#');
        for c in st.channels.iter_mut() {
            if c.id == id_or_name || c.name == wanted {
                c.archived = true;
            }
        }
    }

    /// Adds a workspace member that `users.lookupByEmail` can find and the bot can DM.
    pub fn add_user(&self, email: &str, id: &str) {
        let mut st = lock(&self.app.state);
        st.users.retain(|u| u.id != id);
        st.users.push(User {
            id: id.to_string(),
            email: email.to_string(),
        });
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
        lock(&self.app.state)
            .channels
            .iter()
            .find(|c| {
                c.kind
                    == Kind::Im {
                        user: user_id.to_string(),
                    }
            })
            .map(|c| c.id.clone())
    }

    /// Every accepted post, in the order accepted.
    pub fn posts(&self) -> Vec<SlackPost> {
        lock(&self.app.state).posts.clone()
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

    /// How many requests reached `method` (faulted and rejected ones included).
    pub fn calls(&self, method: &str) -> usize {
        self.app.journal.calls(method)
    }

    /// Queues a fault for the next request to `method`, e.g. `"chat.postMessage"`.
    ///
    /// # Panics
    /// If `method` is not one this fake implements.
    pub fn inject(&self, method: &str, fault: Fault) {
        assert!(
            METHODS.contains(&method),
            "FakeSlack::inject: unknown method {method:?}; known: {METHODS:?}"
        );
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

fn ok(mut body: Value) -> Response {
    body["ok"] = Value::Bool(true);
    json_response(StatusCode::OK, &body)
}

fn err(code: &str) -> Response {
    json_response(StatusCode::OK, &json!({"ok": false, "error": code}))
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => with_header(
            json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"ok": false, "error": "ratelimited"}),
            ),
            "retry-after",
            &retry_after_secs.to_string(),
        ),
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text_response(status, &format!("fake slack: injected HTTP {code}"))
        }
        Fault::SlackError(code) => err(code),
        Fault::Delay(_) | Fault::Reset => unreachable!("handled by apply_fault"),
    }
}

async fn handle(State(app): State<Arc<App>>, req: Request<Body>) -> Response {
    let (parts, body) = match read_body(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let method = parts
        .uri
        .path()
        .strip_prefix("/api/")
        .filter(|m| !m.is_empty() && !m.contains('/'))
        .map(str::to_string);
    let endpoint = method.as_deref().filter(|m| METHODS.contains(m));
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
    let (params, form_token, warnings) = match parse_params(parts, body) {
        Ok(p) => p,
        Err(code) => return err(code),
    };
    if let Err(code) = authenticate(app, parts, form_token.as_deref()) {
        return err(code);
    }
    let mut st = lock(&app.state);
    let response = match method {
        "auth.test" => auth_test(),
        "chat.postMessage" => post_message(&mut st, &params),
        "conversations.list" => conversations_list(&st, &params),
        "conversations.open" => conversations_open(&mut st, &params),
        "conversations.history" => conversations_history(&st, &params),
        "conversations.replies" => conversations_replies(&st, &params),
        "users.lookupByEmail" => lookup_by_email(&st, &params),
        _ => Err("unknown_method"),
    };
    match response {
        Ok(mut body) => {
            if !warnings.is_empty() {
                body["warning"] = Value::String(warnings.join(","));
                body["response_metadata"]["warnings"] = json!(warnings);
            }
            ok(body)
        }
        Err(code) => err(code),
    }
}

type Params = Map<String, Value>;

/// Gathers arguments the way Slack does: query string, then a JSON or form-encoded body.
fn parse_params(
    parts: &Parts,
    body: &Bytes,
) -> Result<(Params, Option<String>, Vec<&'static str>), &'static str> {
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
    if content_type.starts_with("application/json") {
        if !content_type.contains("charset") {
            warnings.push("missing_charset");
        }
        if !body.is_empty() {
            let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
                return Err("invalid_json");
            };
            params.extend(map);
        }
    } else if content_type.is_empty()
        || content_type.starts_with("application/x-www-form-urlencoded")
    {
        for (k, v) in form_pairs(body) {
            if k == "token" {
                form_token = Some(v);
            } else {
                params.insert(k, Value::String(v));
            }
        }
    } else if !body.is_empty() {
        return Err("invalid_form_data");
    }
    Ok((params, form_token, warnings))
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

fn get_bool(p: &Params, key: &str) -> bool {
    match p.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => s == "true" || s == "1",
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

fn get_limit(p: &Params, default: usize, max: usize) -> usize {
    match get_str(p, "limit").and_then(|s| s.parse::<usize>().ok()) {
        Some(0) | None => default,
        Some(n) => n.min(max),
    }
}

fn encode_cursor(offset: usize) -> String {
    B64.encode(format!("next_offset:{offset}"))
}

fn decode_cursor(p: &Params) -> Result<usize, &'static str> {
    match get_str(p, "cursor").filter(|c| !c.is_empty()) {
        None => Ok(0),
        Some(c) => B64
            .decode(c)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("next_offset:")?.parse().ok())
            .ok_or("invalid_cursor"),
    }
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

fn auth_test() -> Result<Value, &'static str> {
    Ok(json!({
        "url": "https://acme.slack.com/",
        "team": "Acme",
        "user": "pagehook",
        "team_id": TEAM_ID,
        "user_id": BOT_USER,
        "bot_id": BOT_ID,
        "is_enterprise_install": false,
    }))
}

fn find_channel<'a>(st: &'a SlackState, id_or_name: &str) -> Option<&'a Channel> {
    let name = id_or_name.strip_prefix('#');
    st.channels.iter().find(|c| c.id == id_or_name).or_else(|| {
        st.channels
            .iter()
            .find(|c| c.name == name.unwrap_or(id_or_name) && !c.name.is_empty())
    })
}

/// Opens (or reuses) the bot's DM with a user, as `conversations.open` does.
fn open_im(st: &mut SlackState, user_id: &str) -> (String, bool) {
    let kind = Kind::Im {
        user: user_id.to_string(),
    };
    if let Some(c) = st.channels.iter().find(|c| c.kind == kind) {
        return (c.id.clone(), true);
    }
    let id = format!("D{:08}", st.next_dm);
    st.next_dm += 1;
    st.channels.push(Channel {
        id: id.clone(),
        name: String::new(),
        kind,
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

fn message_json(post: &SlackPost, include_metadata: bool) -> Value {
    let mut m = json!({
        "type": "message",
        "user": BOT_USER,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "team": TEAM_ID,
        "text": post.text.clone().unwrap_or_default(),
        "ts": post.ts,
    });
    if let Some(b) = &post.blocks {
        m["blocks"] = b.clone();
    }
    if let Some(t) = &post.thread_ts {
        m["thread_ts"] = Value::String(t.clone());
        m["parent_user_id"] = Value::String(BOT_USER.to_string());
    }
    if include_metadata && let Some(md) = &post.metadata {
        m["metadata"] = md.clone();
    }
    m
}

fn post_message(st: &mut SlackState, p: &Params) -> Result<Value, &'static str> {
    let target = get_str(p, "channel")
        .filter(|c| !c.is_empty())
        .ok_or("channel_not_found")?;
    let channel_id = match find_channel(st, &target) {
        Some(c) if c.archived => return Err("is_archived"),
        Some(c) if !c.member => return Err("not_in_channel"),
        Some(c) => c.id.clone(),
        None if st.users.iter().any(|u| u.id == target) => open_im(st, &target).0,
        None => return Err("channel_not_found"),
    };
    let text = get_str(p, "text").filter(|t| !t.is_empty());
    let blocks = get_json(p, "blocks").map_err(|()| "invalid_blocks_format")?;
    if let Some(b) = &blocks {
        validate_blocks(b)?;
    }
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if text.is_none() && !has_blocks {
        return Err("no_text");
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
    let micros = TS_BASE_MICROS + st.next_ts * 100;
    st.next_ts += 1;
    let ts = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    let post = SlackPost {
        channel: channel_id.clone(),
        text,
        blocks,
        thread_ts: get_str(p, "thread_ts").filter(|t| !t.is_empty()),
        metadata,
        ts: ts.clone(),
        received_at: Instant::now(),
        params: Value::Object(p.clone()),
    };
    let message = message_json(&post, true);
    st.posts.push(post);
    Ok(json!({"channel": channel_id, "ts": ts, "message": message}))
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

fn conversations_list(st: &SlackState, p: &Params) -> Result<Value, &'static str> {
    let types = get_str(p, "types").unwrap_or_else(|| "public_channel".to_string());
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
        .filter(|c| !(exclude_archived && c.archived))
        .collect();
    let limit = get_limit(p, 100, 1000);
    let start = decode_cursor(p)?;
    let page: Vec<Value> = visible
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| channel_json(c))
        .collect();
    let next = if start + limit < visible.len() {
        encode_cursor(start + limit)
    } else {
        String::new()
    };
    Ok(json!({"channels": page, "response_metadata": {"next_cursor": next}}))
}

fn conversations_open(st: &mut SlackState, p: &Params) -> Result<Value, &'static str> {
    if let Some(id) = get_str(p, "channel").filter(|c| !c.is_empty()) {
        let c = find_channel(st, &id).ok_or("channel_not_found")?;
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
    if users
        .iter()
        .any(|u| !st.users.iter().any(|known| &known.id == u))
    {
        return Err("user_not_found");
    }
    let (id, already) = if let [user] = users.as_slice() {
        open_im(st, user)
    } else {
        let name = format!("mpdm-{}", users.join("--"));
        match st
            .channels
            .iter()
            .find(|c| c.kind == Kind::Mpim && c.name == name)
        {
            Some(c) => (c.id.clone(), true),
            None => {
                let id = format!("G{:08}", st.next_dm);
                st.next_dm += 1;
                st.channels.push(Channel {
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
        let c = st
            .channels
            .iter()
            .find(|c| c.id == id)
            .expect("just opened");
        channel_json(c)
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
    let id = get_str(p, "channel").ok_or("channel_not_found")?;
    let c = st
        .channels
        .iter()
        .find(|c| c.id == id)
        .ok_or("channel_not_found")?;
    if !c.member {
        return Err("not_in_channel");
    }
    Ok(c)
}

fn conversations_history(st: &SlackState, p: &Params) -> Result<Value, &'static str> {
    let channel = readable_channel(st, p)?;
    let with_metadata = get_bool(p, "include_all_metadata");
    let inclusive = get_bool(p, "inclusive");
    let oldest = match get_str(p, "oldest") {
        Some(s) => ts_key(&s).ok_or("invalid_ts_oldest")?,
        None => 0,
    };
    let latest = match get_str(p, "latest") {
        Some(s) => ts_key(&s).ok_or("invalid_ts_latest")?,
        None => u128::MAX,
    };
    let in_range = |k: u128| {
        if inclusive {
            k >= oldest && k <= latest
        } else {
            k > oldest && k < latest
        }
    };
    // Slack's history holds top-level messages only; thread replies live in
    // conversations.replies unless they were broadcast to the channel.
    let mut top: Vec<&SlackPost> = st
        .posts
        .iter()
        .filter(|m| m.channel == channel.id)
        .filter(|m| {
            m.thread_ts.as_ref().is_none_or(|t| *t == m.ts)
                || get_bool(as_params(&m.params), "reply_broadcast")
        })
        .filter(|m| ts_key(&m.ts).is_some_and(in_range))
        .collect();
    top.reverse();
    let limit = get_limit(p, 100, 999);
    let start = decode_cursor(p)?;
    let messages: Vec<Value> = top
        .iter()
        .skip(start)
        .take(limit)
        .map(|m| {
            let mut json = message_json(m, with_metadata);
            let replies: Vec<&SlackPost> = st
                .posts
                .iter()
                .filter(|r| {
                    r.channel == m.channel && r.thread_ts.as_deref() == Some(&m.ts) && r.ts != m.ts
                })
                .collect();
            if let Some(last) = replies.last() {
                json["thread_ts"] = Value::String(m.ts.clone());
                json["reply_count"] = json!(replies.len());
                json["reply_users"] = json!([BOT_USER]);
                json["reply_users_count"] = json!(1);
                json["latest_reply"] = Value::String(last.ts.clone());
            }
            json
        })
        .collect();
    let has_more = start + limit < top.len();
    let next = if has_more {
        encode_cursor(start + limit)
    } else {
        String::new()
    };
    Ok(json!({
        "messages": messages,
        "has_more": has_more,
        "pin_count": 0,
        "response_metadata": {"next_cursor": next},
    }))
}

fn conversations_replies(st: &SlackState, p: &Params) -> Result<Value, &'static str> {
    let channel = readable_channel(st, p)?;
    let ts = get_str(p, "ts").ok_or("thread_not_found")?;
    let with_metadata = get_bool(p, "include_all_metadata");
    let parent = st
        .posts
        .iter()
        .find(|m| m.channel == channel.id && m.ts == ts)
        .ok_or("thread_not_found")?;
    let thread: Vec<&SlackPost> = std::iter::once(parent)
        .chain(st.posts.iter().filter(|m| {
            m.channel == channel.id && m.thread_ts.as_deref() == Some(&ts) && m.ts != ts
        }))
        .collect();
    let limit = get_limit(p, 1000, 1000);
    let start = decode_cursor(p)?;
    let messages: Vec<Value> = thread
        .iter()
        .skip(start)
        .take(limit)
        .map(|m| message_json(m, with_metadata))
        .collect();
    let has_more = start + limit < thread.len();
    let next = if has_more {
        encode_cursor(start + limit)
    } else {
        String::new()
    };
    Ok(
        json!({"messages": messages, "has_more": has_more, "response_metadata": {"next_cursor": next}}),
    )
}

fn as_params(v: &Value) -> &Params {
    static EMPTY: std::sync::OnceLock<Params> = std::sync::OnceLock::new();
    v.as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(Params::new))
}

fn lookup_by_email(st: &SlackState, p: &Params) -> Result<Value, &'static str> {
    let email = get_str(p, "email")
        .filter(|e| !e.is_empty())
        .ok_or("invalid_arguments")?;
    let user = st
        .users
        .iter()
        .find(|u| u.email.eq_ignore_ascii_case(&email))
        .ok_or("users_not_found")?;
    let name = user.email.split('@').next().unwrap_or_default();
    Ok(json!({
        "user": {
            "id": user.id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": false,
            "real_name": name,
            "is_bot": false,
            "profile": {"email": user.email, "real_name": name, "display_name": name},
        }
    }))
}
