//! A fake of Microsoft Teams' Workflows ("Post to a channel when a webhook request is
//! received") webhook, the replacement for the retired Office 365 connectors.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::server::{
    Journal, Next, Server, answer_late, apply_fault, json_response, lock, query_param, read_body,
    wait_async, wait_blocking, with_header,
};
use crate::{Fault, RecordedRequest};

/// The largest payload a Workflows webhook takes (28 KB); larger ones get 413.
pub const MAX_PAYLOAD: usize = 28 * 1024;
const ADAPTIVE: &str = "application/vnd.microsoft.card.adaptive";

/// A card the fake accepted.
#[derive(Debug, Clone)]
pub struct TeamsPost {
    /// The workflow name the card was posted to.
    pub workflow: String,
    /// The Adaptive Card (`attachments[0].content`).
    pub card: Value,
    /// The whole request body.
    pub payload: Value,
    /// When the card was accepted.
    pub received_at: Instant,
}

struct App {
    journal: Journal,
    /// Workflow name → the `sig` its URL carries.
    workflows: Mutex<HashMap<String, String>>,
    posts: Mutex<Vec<TeamsPost>>,
    sig_seed: RandomState,
}

/// A fake Teams Workflows webhook host.
///
/// `url(name)` returns a URL shaped like the real one
/// (`.../workflows/{name}/triggers/manual/paths/invoke?api-version=...&sig=...`); the `sig`
/// query parameter is the secret and is checked (401 when missing or wrong), so a client
/// that mangles the URL fails here as it would in production. The endpoint name for
/// `inject` and `calls` is the workflow name. A valid post is answered `202 Accepted` with an
/// empty body.
pub struct FakeTeams {
    app: Arc<App>,
    server: Server,
}

impl FakeTeams {
    /// Starts a fake with no workflows.
    pub fn start() -> FakeTeams {
        let app = Arc::new(App {
            journal: Journal::default(),
            workflows: Mutex::new(HashMap::new()),
            posts: Mutex::new(Vec::new()),
            sig_seed: RandomState::new(),
        });
        let router = Router::new().fallback(handle).with_state(app.clone());
        let server = Server::spawn("teams", router);
        FakeTeams { app, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The listening address (always on 127.0.0.1).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Creates a workflow (a channel's webhook) and returns its URL, like [`FakeTeams::url`].
    pub fn add_workflow(&self, name: &str) -> String {
        let sig = format!("{:016x}", self.app.sig_seed.hash_one(name));
        lock(&self.app.workflows).insert(name.to_string(), sig);
        self.url(name)
    }

    /// Deletes a workflow: its URL then answers 404, as when someone turns the flow off.
    pub fn remove_workflow(&self, name: &str) {
        lock(&self.app.workflows).remove(name);
    }

    /// The webhook URL of a workflow, including its secret `sig`.
    ///
    /// # Panics
    /// If the workflow was never added.
    pub fn url(&self, name: &str) -> String {
        let sig = lock(&self.app.workflows)
            .get(name)
            .cloned()
            .unwrap_or_else(|| {
                panic!("FakeTeams::url: no workflow {name:?}; call add_workflow first")
            });
        let name: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
        format!(
            "{}/workflows/{name}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}",
            self.base_url()
        )
    }

    /// Every accepted card, in the order accepted.
    pub fn posts(&self) -> Vec<TeamsPost> {
        lock(&self.app.posts).clone()
    }

    /// Blocks until at least `n` cards were accepted, then returns all of them.
    ///
    /// # Panics
    /// After `timeout`. Inside an async test use [`FakeTeams::wait_for_posts_async`].
    pub fn wait_for_posts(&self, n: usize, timeout: Duration) -> Vec<TeamsPost> {
        wait_blocking("Teams posts", n, timeout, || self.posts())
    }

    /// Async form of [`FakeTeams::wait_for_posts`]; needs a tokio runtime with timers.
    pub async fn wait_for_posts_async(&self, n: usize, timeout: Duration) -> Vec<TeamsPost> {
        wait_async("Teams posts", n, timeout, || self.posts()).await
    }

    /// How many requests reached the workflow (faulted and rejected ones included).
    pub fn calls(&self, workflow: &str) -> usize {
        self.app.journal.calls(workflow)
    }

    /// Queues a fault for the next request to `workflow`.
    ///
    /// # Panics
    /// For `Fault::SlackError`, which has no meaning here.
    pub fn inject(&self, workflow: &str, fault: Fault) {
        assert!(
            !matches!(fault, Fault::SlackError(_)),
            "FakeTeams::inject: Fault::SlackError is Slack-only"
        );
        self.app.journal.inject(workflow, fault);
    }

    /// Faults still queued for `workflow`.
    pub fn faults_left(&self, workflow: &str) -> usize {
        self.app.journal.faults_left(workflow)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.app.journal.requests()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_secs } => with_header(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "WorkflowTriggerIsThrottled",
                "The workflow trigger is being throttled.",
            ),
            "retry-after",
            &retry_after_secs.to_string(),
        ),
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(
                status,
                "InjectedFault",
                &format!("fake teams: injected HTTP {code}"),
            )
        }
        Fault::SlackError(_) | Fault::Delay(_) | Fault::Reset | Fault::StatusAfterEffect(_) => {
            unreachable!("refused by inject or handled by apply_fault")
        }
    }
}

/// `/workflows/{name}` or `/workflows/{name}/triggers/manual/paths/invoke` → name.
fn workflow_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/workflows/")?;
    let name = match rest.split_once('/') {
        None => rest,
        Some((name, "triggers/manual/paths/invoke")) => name,
        Some(_) => return None,
    };
    let name = percent_decode(name)?;
    (!name.is_empty()).then_some(name)
}

fn percent_decode(s: &str) -> Option<String> {
    // form_urlencoded would also turn '+' into ' ', which paths do not do.
    let escaped = s.replace('+', "%2B");
    let decoded: String = form_urlencoded::parse(format!("x={escaped}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    Some(decoded)
}

async fn handle(State(app): State<Arc<App>>, req: Request<Body>) -> Response {
    let (parts, body) = match read_body(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let workflow = workflow_of(parts.uri.path());
    let fault = app.journal.record(&parts, &body, workflow.as_deref());
    let Some(workflow) = workflow else {
        return error(StatusCode::NOT_FOUND, "NotFound", "No such path.");
    };
    let delay = match apply_fault(fault, &parts, fault_response).await {
        Next::Respond(r) => return r,
        Next::Proceed { delay } => delay,
    };
    answer_late(accept(&app, &parts, &body, workflow), delay).await
}

fn accept(app: &App, parts: &Parts, body: &Bytes, workflow: String) -> Response {
    if parts.method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "TriggerRequestMethodNotValid",
            "The HTTP method for this request is not valid: expected 'Post'.",
        );
    }
    let Some(expected_sig) = lock(&app.workflows).get(&workflow).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "WorkflowNotFound",
            &format!("The workflow '{workflow}' could not be found."),
        );
    };
    match query_param(parts, "sig") {
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "DirectApiAuthorizationRequired",
                "The request must be authenticated only by Shared Access scheme.",
            );
        }
        Some(sig) if sig != expected_sig => {
            return error(
                StatusCode::UNAUTHORIZED,
                "DirectApiInvalidAuthorizationSignature",
                "The provided authentication signature is not valid.",
            );
        }
        Some(_) => {}
    }
    if body.len() > MAX_PAYLOAD {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!(
                "The request body is {} bytes; the limit is {MAX_PAYLOAD} bytes.",
                body.len()
            ),
        );
    }
    let is_json = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content type must be 'application/json'.",
        );
    }
    let payload: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                &format!("The request content is not valid JSON: {e}"),
            );
        }
    };
    let card = match check_envelope(&payload) {
        Ok(card) => card,
        Err(message) => return error(StatusCode::BAD_REQUEST, "InvalidRequestContent", &message),
    };
    lock(&app.posts).push(TeamsPost {
        workflow,
        card,
        payload,
        received_at: Instant::now(),
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}

/// Checks the message envelope Workflows expects and returns the first card.
fn check_envelope(payload: &Value) -> Result<Value, String> {
    if payload.get("type").and_then(Value::as_str) != Some("message") {
        return Err("Expected \"type\": \"message\" at the top level.".to_string());
    }
    let attachments = payload
        .get("attachments")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| "Expected a non-empty \"attachments\" array.".to_string())?;
    for (i, a) in attachments.iter().enumerate() {
        if a.get("contentType").and_then(Value::as_str) != Some(ADAPTIVE) {
            return Err(format!(
                "attachments[{i}].contentType must be \"{ADAPTIVE}\"."
            ));
        }
        let content = a
            .get("content")
            .filter(|c| c.is_object())
            .ok_or_else(|| format!("attachments[{i}].content must be an Adaptive Card object."))?;
        if content.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
            return Err(format!(
                "attachments[{i}].content.type must be \"AdaptiveCard\"."
            ));
        }
    }
    Ok(attachments[0]["content"].clone())
}
