//! The Bot Connector REST API under the service URL (`/teams/`), driven by Microsoft's
//! Swagger file `teams/botframework-connector-v3.1.json` from [`crate::specs_dir`].
//!
//! Why: a fake that accepts whatever our client sends proves nothing. From the spec this
//! module takes the operations (method + path template + `operationId`), the body parameter
//! each one requires and the definition it must fit, and refuses everything else: a path the
//! spec does not describe is 404, a described path with another method is 405, a missing
//! body or a field of the wrong JSON type (activity spec A2003) is 400 `BadArgument`, always
//! in the spec's `ErrorResponse` shape. Teams' own rules that the spec leaves to prose are
//! added on top and cited in REFERENCE.md: `type` is required (A2010) and must be a known
//! activity type (A2013); a 1:1 conversation needs exactly one member and a tenant id; the app
//! must be installed for the user (403 otherwise); per-conversation rate limits (429 with
//! `Retry-After`). This module must never accept an operation, a method or a body the spec
//! does not describe.

// The checks below return the answer to send as their error; boxing a `Response` on a
// loopback fake buys nothing.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{App, Conversation, State, TeamsBotMessage, TeamsUser};
use crate::server::{json_response, lock, retry_after_secs, with_header};

const SPEC_FILE: &str = "teams/botframework-connector-v3.1.json";

/// One operation of the Swagger file.
#[derive(Debug, Clone)]
pub(super) struct Operation {
    pub(super) method: Method,
    /// `/v3/conversations/{conversationId}/activities` split on `/`.
    segments: Vec<String>,
    pub(super) operation_id: String,
    /// The body parameter's schema, if the operation takes one, and whether it is required.
    body: Option<(Value, bool)>,
}

pub(super) struct Spec {
    pub(super) operations: Vec<Operation>,
    definitions: Map<String, Value>,
    activity_types: Vec<String>,
}

/// The parsed Swagger file, read once per process.
///
/// # Panics
/// If the file cannot be read or parsed; the message names the path.
pub(super) fn spec() -> &'static Spec {
    static SPEC: OnceLock<Result<Spec, String>> = OnceLock::new();
    match SPEC.get_or_init(load) {
        Ok(s) => s,
        Err(e) => panic!("FakeTeamsBot: {e}"),
    }
}

fn load() -> Result<Spec, String> {
    let path = crate::specs_dir().join(SPEC_FILE);
    let raw = std::fs::read(&path).map_err(|e| {
        format!(
            "cannot read the Bot Connector description {} ({e}); set PAGEHOOK_SPECS_DIR if \
             shared/specs lives elsewhere",
            path.display()
        )
    })?;
    let doc: Value =
        serde_json::from_slice(&raw).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{} has no paths", path.display()))?;
    let mut operations = Vec::new();
    for (template, ops) in paths {
        for (method, op) in ops.as_object().into_iter().flatten() {
            let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            let operation_id = op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let body = op
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p.get("in").and_then(Value::as_str) == Some("body"))
                .map(|p| {
                    (
                        p.get("schema").cloned().unwrap_or(Value::Null),
                        p.get("required").and_then(Value::as_bool) == Some(true),
                    )
                });
            operations.push(Operation {
                method,
                segments: template
                    .trim_start_matches('/')
                    .split('/')
                    .map(str::to_string)
                    .collect(),
                operation_id,
                body,
            });
        }
    }
    let definitions = doc
        .get("definitions")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let activity_types = definitions
        .get("ActivityTypes")
        .and_then(|d| d.get("enum"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for needed in IMPLEMENTED {
        if !operations.iter().any(|o| o.operation_id == *needed) {
            return Err(format!("{} does not describe {needed}", path.display()));
        }
    }
    Ok(Spec {
        operations,
        definitions,
        activity_types,
    })
}

/// The operations this fake carries out; the spec's others answer 501 (a limit of the fake,
/// not of Teams).
pub(super) const IMPLEMENTED: &[&str] = &[
    "Conversations_CreateConversation",
    "Conversations_SendToConversation",
    "Conversations_ReplyToActivity",
    "Conversations_UpdateActivity",
    "Conversations_DeleteActivity",
    "Conversations_GetConversationPagedMembers",
    "Conversations_GetConversationMember",
    "Conversations_GetConversationMembers",
];

/// How a request path under the service URL matched the spec.
pub(super) enum Route {
    /// An operation, with its path parameters (percent-decoded).
    Op(&'static Operation, HashMap<String, String>),
    /// The path is described, but not for this method.
    WrongMethod(Vec<Method>),
    /// The spec describes no such path.
    NoPath,
}

fn percent_decode(s: &str) -> String {
    let escaped = s.replace('+', "%2B");
    form_urlencoded::parse(format!("x={escaped}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Matches `path` (relative to the service URL, e.g. `/v3/conversations`) against the spec.
/// Literal segments win over templates, so `.../activities/history` is not an activity id.
pub(super) fn route(method: &Method, path: &str) -> Route {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut best: Vec<(usize, &'static Operation, HashMap<String, String>)> = Vec::new();
    for op in &spec().operations {
        if op.segments.len() != parts.len() {
            continue;
        }
        let mut params = HashMap::new();
        let mut literal = 0;
        let fits = op.segments.iter().zip(&parts).all(|(seg, part)| {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.insert(name.to_string(), percent_decode(part));
                !part.is_empty()
            } else {
                literal += 1;
                seg == part
            }
        });
        if fits {
            best.push((literal, op, params));
        }
    }
    let Some(top) = best.iter().map(|(l, _, _)| *l).max() else {
        return Route::NoPath;
    };
    best.retain(|(l, _, _)| *l == top);
    let allowed: Vec<Method> = best.iter().map(|(_, op, _)| op.method.clone()).collect();
    match best.into_iter().find(|(_, op, _)| op.method == *method) {
        Some((_, op, params)) => Route::Op(op, params),
        None => Route::WrongMethod(allowed),
    }
}

/// The spec's `ErrorResponse`.
pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

impl Spec {
    /// Checks `value` against `schema`: JSON types only (object, array, string, boolean,
    /// integer, number), following `$ref`, ignoring fields the schema does not name
    /// (activity spec A2005: receivers accept fields they do not understand) and nulls.
    fn check(&self, value: &Value, schema: &Value, at: &str) -> Result<(), String> {
        if value.is_null() {
            return Ok(());
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/definitions/");
            return match self.definitions.get(name) {
                Some(def) => self.check(value, def, at),
                None => Ok(()),
            };
        }
        let ty = schema
            .get("type")
            .and_then(Value::as_str)
            .or_else(|| schema.get("properties").map(|_| "object"));
        let fits = match (ty, value) {
            (None, _) => true,
            (Some("object"), Value::Object(_)) => true,
            (Some("array"), Value::Array(_)) => true,
            (Some("string"), Value::String(_)) => true,
            (Some("boolean"), Value::Bool(_)) => true,
            (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Some("number"), Value::Number(_)) => true,
            _ => false,
        };
        if !fits {
            return Err(format!(
                "{at} must be of type {}, got {}",
                ty.unwrap_or("?"),
                json_type(value)
            ));
        }
        if let (Some(props), Value::Object(obj)) =
            (schema.get("properties").and_then(Value::as_object), value)
        {
            for (k, v) in obj {
                if let Some(p) = props.get(k) {
                    self.check(v, p, &format!("{at}.{k}"))?;
                }
            }
        }
        if let (Some(items), Value::Array(arr)) = (schema.get("items"), value) {
            for (i, v) in arr.iter().enumerate() {
                self.check(v, items, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The bot app a request's bearer token was issued to, or the 401 to answer. The Bot
/// Connector answers an unauthenticated call with ASP.NET's plain message, not an
/// `ErrorResponse`.
pub(super) fn authenticate(st: &State, parts: &Parts) -> Result<String, Response> {
    let denied = || {
        with_header(
            json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "Authorization has been denied for this request."}),
            ),
            "www-authenticate",
            "Bearer",
        )
    };
    let token = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or_else(denied)?;
    match st.tokens.get(token) {
        Some(t) if t.expires_at > Instant::now() => Ok(t.app_id.clone()),
        _ => Err(denied()),
    }
}

/// Per-conversation sliding windows, several per scenario (1 s, 2 s, 30 s, 1 h), as in
/// Microsoft's "per bot per thread" table; a call is admitted only if every window has room.
#[derive(Default)]
pub(super) struct RateLimits {
    /// Scenario → its windows `(calls, per)`. A scenario without windows is not limited.
    pub(super) windows: HashMap<&'static str, Vec<(usize, Duration)>>,
    admitted: HashMap<String, VecDeque<Instant>>,
    pub(super) refused: usize,
}

/// Microsoft's published per-bot-per-thread limits (REFERENCE.md).
pub(super) const SEND_LIMITS: &[(usize, u64)] = &[(7, 1), (8, 2), (60, 30), (1800, 3600)];
pub(super) const MEMBER_LIMITS: &[(usize, u64)] = &[(14, 1), (16, 2), (120, 30), (3600, 3600)];
/// Microsoft's global limit per app per tenant: 50 requests per second.
pub(super) const APP_LIMITS: &[(usize, u64)] = &[(50, 1)];

pub(super) fn windows(table: &[(usize, u64)]) -> Vec<(usize, Duration)> {
    table
        .iter()
        .map(|(n, s)| (*n, Duration::from_secs(*s)))
        .collect()
}

impl RateLimits {
    pub(super) fn defaults() -> RateLimits {
        let mut l = RateLimits::default();
        l.windows.insert("send", windows(SEND_LIMITS));
        l.windows.insert("create", windows(SEND_LIMITS));
        l.windows.insert("members", windows(MEMBER_LIMITS));
        l.windows.insert("app", windows(APP_LIMITS));
        l
    }

    /// Admits one call of `scenario` keyed by `key`, or says how long until one fits.
    fn admit(&mut self, scenario: &'static str, key: &str) -> Result<(), Duration> {
        let Some(wins) = self.windows.get(scenario).filter(|w| !w.is_empty()) else {
            return Ok(());
        };
        let longest = wins.iter().map(|(_, p)| *p).max().unwrap_or_default();
        let now = Instant::now();
        let seen = self
            .admitted
            .entry(format!("{scenario}:{key}"))
            .or_default();
        while seen
            .front()
            .is_some_and(|t| now.duration_since(*t) >= longest)
        {
            seen.pop_front();
        }
        let mut wait = Duration::ZERO;
        for (calls, per) in wins {
            let inside: Vec<&Instant> = seen
                .iter()
                .filter(|t| now.duration_since(**t) < *per)
                .collect();
            if inside.len() >= *calls {
                // The slot frees when the oldest call that keeps the window full leaves it.
                let idx = inside.len() - calls;
                let frees = inside.get(idx).map_or(now + *per, |t| **t + *per);
                wait = wait.max(frees.saturating_duration_since(now));
            }
        }
        if wait > Duration::ZERO || wins.iter().any(|(c, _)| *c == 0) {
            return Err(wait.max(Duration::from_millis(1)));
        }
        seen.push_back(now);
        Ok(())
    }
}

fn throttled(wait: Duration) -> Response {
    with_header(
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests: the bot exceeded the rate limit for this conversation.",
        ),
        "retry-after",
        &retry_after_secs(wait).to_string(),
    )
}

/// The conversation a rate limit applies to, for an operation that has one.
fn limit_key(
    op: &Operation,
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Option<(&'static str, String)> {
    match op.operation_id.as_str() {
        "Conversations_CreateConversation" => {
            let v: Value = serde_json::from_slice(body).ok()?;
            let member = v.pointer("/members/0/id").and_then(Value::as_str)?;
            Some(("create", member.to_string()))
        }
        "Conversations_GetConversationMember"
        | "Conversations_GetConversationMembers"
        | "Conversations_GetConversationPagedMembers" => {
            Some(("members", params.get("conversationId")?.clone()))
        }
        _ => Some(("send", params.get("conversationId")?.clone())),
    }
}

/// Applies the fake's rate limits to an authenticated call. `Err` is the 429 to answer.
pub(super) fn rate_limit(
    st: &mut State,
    app_id: &str,
    op: &Operation,
    params: &HashMap<String, String>,
    body: &Bytes,
) -> Result<(), Response> {
    let tenant = st
        .apps
        .get(app_id)
        .map(|a| a.tenant_id.clone())
        .unwrap_or_default();
    let scoped = limit_key(op, params, body);
    let limits = &mut st.limits;
    let result = limits
        .admit("app", &format!("{app_id}@{tenant}"))
        .and_then(|()| match &scoped {
            Some((scenario, key)) => limits.admit(scenario, &format!("{app_id}:{key}")),
            None => Ok(()),
        });
    result.map_err(|wait| {
        limits.refused += 1;
        throttled(wait)
    })
}

/// Reads a JSON body and checks it against the operation's body schema.
fn body_json(op: &Operation, parts: &Parts, body: &Bytes) -> Result<Option<Value>, Response> {
    let Some((schema, required)) = &op.body else {
        return Ok(None);
    };
    if body.is_empty() {
        if *required {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "BadArgument",
                "The request body is required.",
            ));
        }
        return Ok(None);
    }
    let ct = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !(ct.starts_with("application/json") || ct.starts_with("text/json")) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BadSyntax",
            "The fake Bot Connector reads JSON bodies only (application/json or text/json).",
        ));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "BadSyntax",
            &format!("The request body is not valid JSON: {e}"),
        )
    })?;
    if !v.is_object() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "BadSyntax",
            "The request body must be a JSON object.",
        ));
    }
    spec()
        .check(&v, schema, "body")
        .map_err(|m| error(StatusCode::BAD_REQUEST, "BadArgument", &m))?;
    Ok(Some(v))
}

/// Checks what the activity spec requires of an activity a bot sends.
fn check_activity(activity: &Value) -> Result<(), Response> {
    let Some(ty) = activity.get("type").and_then(Value::as_str) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            "Activity.Type is required (activity spec A2010).",
        ));
    };
    if !spec().activity_types.iter().any(|t| t == ty) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            &format!("Unknown activity type '{ty}' (activity spec A2013)."),
        ));
    }
    Ok(())
}

/// 403 for a conversation whose user has the app uninstalled (or blocked it): the body
/// Microsoft documents for proactive messages to such a user.
fn writes_blocked() -> Response {
    json_response(
        StatusCode::FORBIDDEN,
        &json!({
            "errorCode": 209,
            "message": "{\r\n  \"subCode\": \"MessageWritesBlocked\",\r\n  \"details\": \"Thread is blocked from message writes.\",\r\n  \"errorCode\": null,\r\n  \"errorSubCode\": null\r\n}",
        }),
    )
}

/// Carries out an authenticated, admitted operation.
pub(super) fn perform(
    app: &App,
    app_id: &str,
    op: &Operation,
    params: &HashMap<String, String>,
    parts: &Parts,
    body: &Bytes,
) -> Response {
    if !IMPLEMENTED.contains(&op.operation_id.as_str()) {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!(
                "The fake Bot Connector does not implement {} (the spec describes it).",
                op.operation_id
            ),
        );
    }
    let body = match body_json(op, parts, body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = lock(&app.state);
    let conv_id = params.get("conversationId").cloned().unwrap_or_default();
    match op.operation_id.as_str() {
        "Conversations_CreateConversation" => {
            create_conversation(&mut st, app_id, body.unwrap_or_default())
        }
        "Conversations_SendToConversation" | "Conversations_ReplyToActivity" => {
            let activity = body.unwrap_or_default();
            if let Err(r) = check_activity(&activity) {
                return r;
            }
            let reply_to = params.get("activityId").cloned();
            let conv = match writable(&st, &conv_id) {
                Ok(c) => c,
                Err(r) => return r,
            };
            if let Some(id) = &reply_to
                && !conv.activity_ids.iter().any(|a| a == id)
            {
                return error(
                    StatusCode::NOT_FOUND,
                    "ActivityNotFoundInConversation",
                    &format!("The activity {id} is not found in conversation {conv_id}."),
                );
            }
            let id = record(&mut st, app_id, &conv_id, activity, reply_to, false);
            json_response(StatusCode::CREATED, &json!({"id": id}))
        }
        "Conversations_UpdateActivity" => {
            let activity = body.unwrap_or_default();
            if let Err(r) = check_activity(&activity) {
                return r;
            }
            let activity_id = params.get("activityId").cloned().unwrap_or_default();
            let conv = match writable(&st, &conv_id) {
                Ok(c) => c,
                Err(r) => return r,
            };
            if !conv.bot_activity_ids.contains(&activity_id) {
                return error(
                    StatusCode::NOT_FOUND,
                    "ActivityNotFoundInConversation",
                    &format!("The bot sent no activity {activity_id} in conversation {conv_id}."),
                );
            }
            record(
                &mut st,
                app_id,
                &conv_id,
                activity,
                Some(activity_id.clone()),
                true,
            );
            json_response(StatusCode::OK, &json!({"id": activity_id}))
        }
        "Conversations_DeleteActivity" => {
            let activity_id = params.get("activityId").cloned().unwrap_or_default();
            match st.conversations.get_mut(&conv_id) {
                Some(c) if c.bot_activity_ids.contains(&activity_id) => {
                    c.bot_activity_ids.retain(|a| *a != activity_id);
                    st.deleted.push(activity_id);
                    json_response(StatusCode::OK, &json!({}))
                }
                Some(_) => error(
                    StatusCode::NOT_FOUND,
                    "ActivityNotFoundInConversation",
                    &format!("The bot sent no activity {activity_id} in conversation {conv_id}."),
                ),
                None => not_found_conversation(&conv_id),
            }
        }
        "Conversations_GetConversationMember" => {
            let member = params.get("memberId").cloned().unwrap_or_default();
            let Some(conv) = st.conversations.get(&conv_id) else {
                return not_found_conversation(&conv_id);
            };
            match st.users.get(&conv.user_id) {
                Some(u) if u.id == member || u.aad_object_id == member => {
                    json_response(StatusCode::OK, &u.channel_account())
                }
                _ => error(
                    StatusCode::NOT_FOUND,
                    "MemberNotFoundInConversation",
                    "The member was not found in the conversation.",
                ),
            }
        }
        "Conversations_GetConversationMembers" => {
            let Some(conv) = st.conversations.get(&conv_id) else {
                return not_found_conversation(&conv_id);
            };
            json_response(StatusCode::OK, &Value::Array(members_of(&st, conv)))
        }
        "Conversations_GetConversationPagedMembers" => {
            let query: HashMap<String, String> = parts
                .uri
                .query()
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default();
            paged_members(&st, &conv_id, &query)
        }
        other => error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!("The fake Bot Connector does not implement {other}."),
        ),
    }
}

fn not_found_conversation(conv_id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ConversationNotFound",
        &format!("Conversation {conv_id} not found."),
    )
}

/// The conversation, if it exists and the bot may still write to it: its user has the app
/// installed (or is in a team that has it), or, for a team's channel, the team has it.
fn writable<'a>(st: &'a State, conv_id: &str) -> Result<&'a Conversation, Response> {
    let Some(conv) = st.conversations.get(conv_id) else {
        return Err(not_found_conversation(conv_id));
    };
    let allowed = match &conv.team {
        Some(team) => st.teams.get(team).is_some_and(|t| t.installed),
        None => st.reachable(&conv.user_id),
    };
    if !allowed {
        return Err(if conv.team.is_some() {
            error(
                StatusCode::FORBIDDEN,
                "BotNotInConversationRoster",
                "The bot is not part of the conversation roster.",
            )
        } else {
            writes_blocked()
        });
    }
    Ok(conv)
}

/// The members of a conversation: a 1:1 chat's user, or a team's members.
fn members_of(st: &State, conv: &Conversation) -> Vec<Value> {
    match &conv.team {
        Some(team) => st
            .teams
            .get(team)
            .map(|t| {
                t.members
                    .iter()
                    .filter_map(|m| st.users.get(m))
                    .map(TeamsUser::channel_account)
                    .collect()
            })
            .unwrap_or_default(),
        None => st
            .users
            .get(&conv.user_id)
            .map(TeamsUser::channel_account)
            .into_iter()
            .collect(),
    }
}

/// `pagedmembers`: `pageSize` members from the `continuationToken` on (the fake's token is
/// the offset; Teams' is opaque), with a token while more remain. The spec calls `pageSize`
/// a suggestion: the fake serves at most 500 a page (and 200 without one), so a caller must
/// follow the token.
fn paged_members(st: &State, conv_id: &str, query: &HashMap<String, String>) -> Response {
    let Some(conv) = st.conversations.get(conv_id) else {
        return not_found_conversation(conv_id);
    };
    if conv.team.is_some() && writable(st, conv_id).is_err() {
        return error(
            StatusCode::FORBIDDEN,
            "BotNotInConversationRoster",
            "The bot is not part of the conversation roster.",
        );
    }
    let members = members_of(st, conv);
    let size = query
        .get("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(200)
        .min(500);
    let from = match query.get("continuationToken") {
        None => 0,
        Some(token) => match token.parse::<usize>() {
            Ok(n) if n <= members.len() => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadArgument",
                    "Invalid continuation token.",
                );
            }
        },
    };
    let to = (from + size).min(members.len());
    let mut page = json!({"members": members[from..to]});
    if to < members.len() {
        page["continuationToken"] = json!(to.to_string());
    }
    json_response(StatusCode::OK, &page)
}

/// Stores an activity the bot sent and returns its new id (for an update: none is made).
fn record(
    st: &mut State,
    app_id: &str,
    conv_id: &str,
    activity: Value,
    reply_to: Option<String>,
    update: bool,
) -> String {
    let id = match (&reply_to, update) {
        (Some(existing), true) => existing.clone(),
        _ => st.next_activity_id(),
    };
    let user_id = st
        .conversations
        .get(conv_id)
        .map(|c| c.user_id.clone())
        .unwrap_or_default();
    if let Some(conv) = st.conversations.get_mut(conv_id)
        && !update
    {
        conv.activity_ids.push(id.clone());
        conv.bot_activity_ids.push(id.clone());
    }
    st.sent.push(TeamsBotMessage {
        app_id: app_id.to_string(),
        conversation_id: conv_id.to_string(),
        user_id,
        activity_id: id.clone(),
        text: activity
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_string),
        attachments: activity
            .get("attachments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        reply_to_id: if update { None } else { reply_to },
        update,
        activity,
        received_at: Instant::now(),
    });
    id
}

fn create_conversation(st: &mut State, app_id: &str, params: Value) -> Response {
    if params.get("isGroup").and_then(Value::as_bool) == Some(true) {
        return error(
            StatusCode::BAD_REQUEST,
            "BadSyntax",
            "Incorrect conversation creation parameters: a bot can create 1:1 conversations only.",
        );
    }
    let members = params
        .get("members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if members.len() != 1 {
        return error(
            StatusCode::BAD_REQUEST,
            "BadSyntax",
            "Incorrect conversation creation parameters: exactly one member is required.",
        );
    }
    let tenant = params.get("tenantId").and_then(Value::as_str).or_else(|| {
        params
            .pointer("/channelData/tenant/id")
            .and_then(Value::as_str)
    });
    let Some(tenant) = tenant.map(str::to_string) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            "A tenant id is required (tenantId or channelData.tenant.id).",
        );
    };
    if let Some(bot) = params.pointer("/bot/id").and_then(Value::as_str)
        && bot.trim_start_matches("28:") != app_id
    {
        return error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            &format!("bot.id {bot} does not match the app the token was issued to."),
        );
    }
    let member = &members[0];
    let wanted = member
        .get("id")
        .and_then(Value::as_str)
        .or_else(|| member.get("aadObjectId").and_then(Value::as_str))
        .unwrap_or_default();
    let Some(user) = st
        .users
        .values()
        .find(|u| !wanted.is_empty() && (u.id == wanted || u.aad_object_id == wanted))
        .cloned()
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadArgument",
            &format!("Invalid user identity in provided tenant: {wanted}"),
        );
    };
    if user.tenant_id != tenant || !st.reachable(&user.id) {
        return error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "The bot is not installed for user {} in tenant {tenant}: a bot can start a \
                 1:1 conversation only with a user who has its app installed or is a member \
                 of a team that has it.",
                user.id
            ),
        );
    }
    let conv_id = st.open_conversation(&user.id);
    let mut answer = json!({"id": conv_id});
    if let Some(activity) = params.get("activity").filter(|a| a.is_object()) {
        if let Err(r) = check_activity(activity) {
            return r;
        }
        let id = record(st, app_id, &conv_id, activity.clone(), None, false);
        answer["activityId"] = json!(id);
    }
    json_response(StatusCode::CREATED, &answer)
}
