//! Slack's Socket Mode, as Slack documents it (api.slack.com/apis/socket-mode and
//! api.slack.com/methods/apps.connections.open), beside the fake Web API.
//!
//! - `apps.connections.open`: `POST`, the app-level token in `Authorization: Bearer` only (a
//!   token in the body is refused, as Slack documents), scope `connections:write`. A bot token
//!   answers `not_allowed_token_type`, a wrong one `invalid_auth`, none `not_authed`, a token
//!   without the scope `missing_scope`. It answers `{"ok": true, "url": "ws://127.0.0.1:PORT/
//!   link/?ticket=...&app_id=..."}` (or on the base a test sets, e.g. a `wss://` TLS front); a
//!   ticket admits one socket.
//! - The WebSocket server (tokio-tungstenite) on its own loopback port: `hello` on connect
//!   (`num_connections`, `debug_info`, `connection_info.app_id`); up to 10 sockets per app (an
//!   11th is sent `disconnect` with reason `too_many_websockets` and closed).
//! - Envelopes (`envelope_id`, `type`, `payload`, `accepts_response_payload`; for `events_api`
//!   also `retry_attempt` and `retry_reason`), each sent to *one* open socket, round robin. An
//!   `events_api` envelope not acknowledged within [`FakeSocketMode::set_redelivery_after`]
//!   (3 s by default, Slack's own limit) is sent again, up to 3 retries, as Slack retries
//!   events; a `slash_commands` envelope is not retried (Slack tells the person the command
//!   failed) and is recorded as expired.
//! - Acknowledgements (`{"envelope_id": ..., "payload": ...}`) are recorded with the time and
//!   the socket they came on ([`FakeSocketMode::acks`]).
//! - `disconnect` messages (`warning`, `refresh_requested`, `link_disabled`) followed by a
//!   close after a delay ([`FakeSocketMode::disconnect_all`]), and sockets dropped without a
//!   close ([`FakeSocketMode::drop_sockets`]).

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request as WsRequest};

use crate::server::lock;

/// The fake app's app-level token until a test sets another.
pub const DEFAULT_APP_TOKEN: &str = "xapp-1-A0PAGEHOOK-1-fakeappleveltoken";
/// The fake app's id.
pub const APP_ID: &str = "A0PAGEHOOK";
/// Sockets Slack allows one app.
pub const MAX_SOCKETS: usize = 10;
/// How many times Slack sends an unacknowledged event again.
pub const EVENT_RETRIES: u64 = 3;
/// How long Slack waits for a slash command's acknowledgement.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// An acknowledgement Slack received.
#[derive(Debug, Clone)]
pub struct SocketAck {
    /// The envelope it names.
    pub envelope_id: String,
    /// The socket it came on (1 is the first socket opened).
    pub socket: u64,
    /// When it arrived.
    pub at: Instant,
    /// Its `payload` (a slash command's immediate answer), if any.
    pub payload: Option<Value>,
}

/// One sending of an envelope to a socket.
#[derive(Debug, Clone)]
pub struct SocketDelivery {
    /// The envelope.
    pub envelope_id: String,
    /// The socket it went to.
    pub socket: u64,
    /// When it was sent.
    pub at: Instant,
    /// 0 the first time, then 1, 2, ...
    pub retry_attempt: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum Place {
    Pending,
    InFlight { socket: u64, sent_at: Instant },
    Acked,
    Expired,
}

struct Tracked {
    id: String,
    kind: &'static str,
    payload: Value,
    attempt: u64,
    place: Place,
}

enum Outgoing {
    Text(String),
    Close,
    Drop,
    Freeze,
}

struct Socket {
    tx: mpsc::UnboundedSender<Outgoing>,
}

struct State {
    app_token: String,
    bot_token: String,
    app_scopes: Vec<String>,
    tickets: Vec<String>,
    sockets: BTreeMap<u64, Socket>,
    next_socket: u64,
    next_envelope: u64,
    round_robin: u64,
    envelopes: Vec<Tracked>,
    by_id: HashMap<String, usize>,
    acks: Vec<SocketAck>,
    deliveries: Vec<SocketDelivery>,
    expired: Vec<String>,
    redeliver_after: Duration,
    opens: usize,
    sockets_opened: usize,
    public_base: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
}

/// Socket Mode of a fake Slack app: the WebSocket side. Get it with
/// [`crate::FakeSlack::socket_mode`].
pub struct FakeSocketMode {
    shared: Arc<Shared>,
    addr: SocketAddr,
    runtime: tokio::runtime::Handle,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSocketMode {
    pub(crate) fn start(bot_token: &str) -> FakeSocketMode {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("fake Socket Mode: bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                app_token: DEFAULT_APP_TOKEN.to_owned(),
                bot_token: bot_token.to_owned(),
                app_scopes: vec!["connections:write".to_owned()],
                tickets: Vec::new(),
                sockets: BTreeMap::new(),
                next_socket: 1,
                next_envelope: 1,
                round_robin: 0,
                envelopes: Vec::new(),
                by_id: HashMap::new(),
                acks: Vec::new(),
                deliveries: Vec::new(),
                expired: Vec::new(),
                redeliver_after: Duration::from_secs(3),
                opens: 0,
                sockets_opened: 0,
                public_base: None,
            }),
            wake: Notify::new(),
        });
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, mut shutdown_rx) = oneshot::channel::<()>();
        let served = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-slack-socket-mode".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let _ = handle_tx.send(rt.handle().clone());
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    tokio::spawn(schedule(served.clone()));
                    loop {
                        let stream = tokio::select! {
                            _ = &mut shutdown_rx => return,
                            a = listener.accept() => match a { Ok((s, _)) => s, Err(_) => continue },
                        };
                        tokio::spawn(accept(served.clone(), stream));
                    }
                });
            })
            .expect("spawn the fake Socket Mode thread");
        let runtime = handle_rx.recv().expect("fake Socket Mode runtime");
        FakeSocketMode {
            shared,
            addr,
            runtime,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// The WebSocket server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The app-level token `apps.connections.open` accepts.
    pub fn app_token(&self) -> String {
        lock(&self.shared.state).app_token.clone()
    }

    /// Replaces the app-level token (the old one is then `invalid_auth`).
    pub fn set_app_token(&self, token: &str) {
        lock(&self.shared.state).app_token = token.to_owned();
    }

    /// The app-level token's scopes (`connections:write` by default).
    pub fn set_app_token_scopes(&self, scopes: &[&str]) {
        lock(&self.shared.state).app_scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
    }

    /// URLs from `apps.connections.open` start with `base` (`wss://localhost:PORT`, a TLS
    /// front before [`Self::addr`]) instead of `ws://127.0.0.1:PORT`.
    pub fn set_public_base(&self, base: &str) {
        lock(&self.shared.state).public_base = Some(base.trim_end_matches('/').to_owned());
    }

    /// How long an `events_api` envelope waits for its acknowledgement before it is sent
    /// again (Slack: 3 s).
    pub fn set_redelivery_after(&self, after: Duration) {
        lock(&self.shared.state).redeliver_after = after;
    }

    /// Sends an Events API body (`{"type": "event_callback", ...}`) as an `events_api`
    /// envelope; returns its envelope id. Queued until a socket is open.
    pub fn send_event(&self, body: Value) -> String {
        self.enqueue("events_api", body)
    }

    /// Sends a slash command's fields (`command`, `text`, `user_id`, `trigger_id`,
    /// `response_url`, ...) as a `slash_commands` envelope; returns its envelope id.
    pub fn send_slash_command(&self, fields: Value) -> String {
        self.enqueue("slash_commands", fields)
    }

    fn enqueue(&self, kind: &'static str, payload: Value) -> String {
        let id = {
            let mut st = lock(&self.shared.state);
            let n = st.next_envelope;
            st.next_envelope += 1;
            let id = format!("{n:08x}-1543-4f94-bfb4-133d0e6c1545");
            let index = st.envelopes.len();
            st.by_id.insert(id.clone(), index);
            st.envelopes.push(Tracked {
                id: id.clone(),
                kind,
                payload,
                attempt: 0,
                place: Place::Pending,
            });
            id
        };
        self.shared.wake.notify_one();
        id
    }

    /// Every acknowledgement received, in order.
    pub fn acks(&self) -> Vec<SocketAck> {
        lock(&self.shared.state).acks.clone()
    }

    /// Every sending of an envelope, in order (redeliveries included).
    pub fn deliveries(&self) -> Vec<SocketDelivery> {
        lock(&self.shared.state).deliveries.clone()
    }

    /// Envelopes not acknowledged yet (queued or sent), by id.
    pub fn unacknowledged(&self) -> Vec<String> {
        lock(&self.shared.state)
            .envelopes
            .iter()
            .filter(|t| matches!(t.place, Place::Pending | Place::InFlight { .. }))
            .map(|t| t.id.clone())
            .collect()
    }

    /// Envelopes Slack gave up on: a slash command unacknowledged for 3 s, an event after its
    /// last retry.
    pub fn expired(&self) -> Vec<String> {
        lock(&self.shared.state).expired.clone()
    }

    /// Sockets open now.
    pub fn sockets(&self) -> usize {
        lock(&self.shared.state).sockets.len()
    }

    /// Sockets opened so far (each greeted with `hello`).
    pub fn sockets_opened(&self) -> usize {
        lock(&self.shared.state).sockets_opened
    }

    /// Successful `apps.connections.open` calls so far.
    pub fn opens(&self) -> usize {
        lock(&self.shared.state).opens
    }

    /// Waits until `n` sockets are open.
    pub async fn wait_for_sockets_async(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.sockets() >= n).await
    }

    /// Waits until every envelope is acknowledged (or given up on).
    pub async fn wait_until_all_acknowledged_async(&self, timeout: Duration) -> bool {
        wait_until(timeout, || self.unacknowledged().is_empty()).await
    }

    /// Sends every open socket `{"type": "disconnect", "reason": reason}` and closes each
    /// `close_after` later, as Slack does (`warning` comes about 10 s ahead). Returns how many
    /// sockets were told.
    pub fn disconnect_all(&self, reason: &str, close_after: Duration) -> usize {
        let message = json!({
            "type": "disconnect",
            "reason": reason,
            "debug_info": { "host": "wss-fake.slack.com" }
        })
        .to_string();
        let senders: Vec<_> = lock(&self.shared.state)
            .sockets
            .values()
            .map(|s| s.tx.clone())
            .collect();
        for tx in &senders {
            let _ = tx.send(Outgoing::Text(message.clone()));
            let tx = tx.clone();
            self.runtime.spawn(async move {
                tokio::time::sleep(close_after).await;
                let _ = tx.send(Outgoing::Close);
            });
        }
        senders.len()
    }

    /// Makes every open socket go silent without closing: no envelopes, no pongs to the
    /// client's pings (a connection a middlebox stopped carrying). Frozen sockets still count
    /// as open.
    pub fn freeze_sockets(&self) -> usize {
        let senders: Vec<_> = lock(&self.shared.state)
            .sockets
            .values()
            .map(|s| s.tx.clone())
            .collect();
        for tx in &senders {
            let _ = tx.send(Outgoing::Freeze);
        }
        senders.len()
    }

    /// Drops every open socket without a close frame (a network failure).
    pub fn drop_sockets(&self) -> usize {
        let senders: Vec<_> = lock(&self.shared.state)
            .sockets
            .values()
            .map(|s| s.tx.clone())
            .collect();
        for tx in &senders {
            let _ = tx.send(Outgoing::Drop);
        }
        senders.len()
    }
}

impl Drop for FakeSocketMode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn answer(body: Value) -> Response {
    let mut r = Response::new(axum::body::Body::from(body.to_string()));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        "application/json; charset=utf-8".parse().expect("header"),
    );
    *r.status_mut() = StatusCode::OK;
    r
}

fn refuse(code: &str) -> Response {
    answer(json!({ "ok": false, "error": code }))
}

impl FakeSocketMode {
    /// `POST /api/apps.connections.open`, as Slack documents it.
    pub(crate) fn open_connection(&self, parts: &Parts, body: &Bytes) -> Response {
        if parts.method != Method::POST {
            return refuse("insecure_request");
        }
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_owned())
            });
        let mut st = lock(&self.shared.state);
        let Some(token) = bearer else {
            // "passing it as a POST parameter will result in an error"
            let in_body = form_urlencoded::parse(body).any(|(k, _)| k == "token");
            return refuse(if in_body {
                "invalid_auth"
            } else {
                "not_authed"
            });
        };
        if token == st.bot_token || token.starts_with("xoxb-") || token.starts_with("xoxp-") {
            return refuse("not_allowed_token_type");
        }
        if token != st.app_token {
            return refuse("invalid_auth");
        }
        if !st.app_scopes.iter().any(|s| s == "connections:write") {
            return answer(json!({
                "ok": false,
                "error": "missing_scope",
                "needed": "connections:write",
                "provided": st.app_scopes.join(","),
            }));
        }
        st.opens += 1;
        let ticket = format!("{:08x}-{:04x}-fake-ticket", st.opens * 7919, st.opens);
        st.tickets.push(ticket.clone());
        let base = st
            .public_base
            .clone()
            .unwrap_or_else(|| format!("ws://{}", self.addr));
        answer(json!({
            "ok": true,
            "url": format!("{base}/link/?ticket={ticket}&app_id={APP_ID}"),
        }))
    }
}

/// Takes a TCP connection through the WebSocket handshake (only with a ticket from
/// `apps.connections.open`, used once) and serves it.
async fn accept(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    let checked = shared.clone();
    // The error type is tungstenite's handshake answer, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &WsRequest, resp| {
        let query = req.uri().query().unwrap_or("");
        let ticket = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v.into_owned());
        let mut st = lock(&checked.state);
        match ticket.and_then(|t| st.tickets.iter().position(|x| *x == t)) {
            Some(i) if req.uri().path() == "/link/" => {
                st.tickets.remove(i);
                Ok(resp)
            }
            _ => {
                let mut refused = ErrorResponse::new(Some("invalid or used ticket".into()));
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                Err(refused)
            }
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    let admitted = {
        let mut st = lock(&shared.state);
        if st.sockets.len() >= MAX_SOCKETS {
            None
        } else {
            let id = st.next_socket;
            st.next_socket += 1;
            st.sockets_opened += 1;
            st.sockets.insert(id, Socket { tx });
            let hello = json!({
                "type": "hello",
                "num_connections": st.sockets.len(),
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 18060
                },
                "connection_info": { "app_id": APP_ID }
            });
            Some((id, hello))
        }
    };
    let Some((id, hello)) = admitted else {
        let _ = sink
            .send(Message::Text(
                json!({"type": "disconnect", "reason": "too_many_websockets"})
                    .to_string()
                    .into(),
            ))
            .await;
        let _ = sink.send(Message::Close(None)).await;
        return;
    };
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_ok()
    {
        shared.wake.notify_one();
        loop {
            tokio::select! {
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => acknowledged(&shared, id, text.as_str()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                out = rx.recv() => match out {
                    Some(Outgoing::Text(t)) => {
                        if sink.send(Message::Text(t.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Outgoing::Close) => {
                        let _ = sink.send(Message::Close(None)).await;
                        break;
                    }
                    Some(Outgoing::Freeze) => {
                        // Half-dead: open, but neither reading nor writing (no pongs).
                        std::future::pending::<()>().await;
                    }
                    Some(Outgoing::Drop) | None => break,
                },
            }
        }
    }
    lock(&shared.state).sockets.remove(&id);
    shared.wake.notify_one();
}

fn acknowledged(shared: &Shared, socket: u64, text: &str) {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Some(id) = value.get("envelope_id").and_then(Value::as_str) else {
        return;
    };
    let mut st = lock(&shared.state);
    st.acks.push(SocketAck {
        envelope_id: id.to_owned(),
        socket,
        at: Instant::now(),
        payload: value.get("payload").cloned(),
    });
    if let Some(&i) = st.by_id.get(id)
        && st.envelopes[i].place != Place::Expired
    {
        st.envelopes[i].place = Place::Acked;
    }
}

/// Sends queued envelopes to open sockets and retries unacknowledged events.
async fn schedule(shared: Arc<Shared>) {
    loop {
        {
            let mut st = lock(&shared.state);
            let now = Instant::now();
            let redeliver_after = st.redeliver_after;
            let mut expired = Vec::new();
            for t in st.envelopes.iter_mut() {
                let Place::InFlight { sent_at, .. } = t.place else {
                    continue;
                };
                let limit = if t.kind == "slash_commands" {
                    COMMAND_TIMEOUT
                } else {
                    redeliver_after
                };
                if now.duration_since(sent_at) < limit {
                    continue;
                }
                if t.kind == "slash_commands" || t.attempt >= EVENT_RETRIES {
                    t.place = Place::Expired;
                    expired.push(t.id.clone());
                } else {
                    t.attempt += 1;
                    t.place = Place::Pending;
                }
            }
            st.expired.extend(expired);
            let open: Vec<u64> = st.sockets.keys().copied().collect();
            if !open.is_empty() {
                let mut sends = Vec::new();
                for i in 0..st.envelopes.len() {
                    if st.envelopes[i].place != Place::Pending {
                        continue;
                    }
                    let socket = open[(st.round_robin as usize) % open.len()];
                    st.round_robin += 1;
                    let t = &mut st.envelopes[i];
                    t.place = Place::InFlight {
                        socket,
                        sent_at: now,
                    };
                    let mut envelope = json!({
                        "envelope_id": t.id,
                        "type": t.kind,
                        "payload": t.payload,
                        "accepts_response_payload": t.kind == "slash_commands",
                    });
                    if t.kind == "events_api" {
                        envelope["retry_attempt"] = json!(t.attempt);
                        envelope["retry_reason"] =
                            json!(if t.attempt == 0 { "" } else { "timeout" });
                    }
                    sends.push((socket, t.id.clone(), t.attempt, envelope.to_string()));
                }
                for (socket, id, attempt, text) in sends {
                    if let Some(s) = st.sockets.get(&socket) {
                        let _ = s.tx.send(Outgoing::Text(text));
                    }
                    st.deliveries.push(SocketDelivery {
                        envelope_id: id,
                        socket,
                        at: now,
                        retry_attempt: attempt,
                    });
                }
            }
        }
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(25)) => {}
        }
    }
}
