//! Slack Socket Mode: a Slack connection's events and slash commands over
//! an outbound WebSocket, for sites with no inbound path from the internet.
//!
//! The protocol, as Slack documents it (api.slack.com/apis/socket-mode):
//! `apps.connections.open` with the app-level token gives a single-use
//! `wss://` URL; Slack greets each socket with `hello` (`num_connections`,
//! `debug_info.approximate_connection_time`), then sends envelopes
//! (`envelope_id`, `type`: `events_api`, `slash_commands`, `interactive`;
//! `payload`; `accepts_response_payload`), each to one of the app's sockets
//! (up to 10), and sends an unacknowledged one again. The app acknowledges
//! with `{"envelope_id": ...}`, with a `payload` when the envelope accepts
//! one (a slash command's immediate answer). Before Slack closes a socket it
//! sends `disconnect` with a reason: `warning` (about 10 s ahead) or
//! `refresh_requested` (connections are refreshed every few hours), and
//! `link_disabled` when Socket Mode is turned off in the app's settings.
//!
//! What this module does with that: [`run`] keeps one socket open per Slack
//! connection, and a second one while the first is being retired (a
//! `disconnect` makes it open the replacement *before* the old socket
//! closes, so nothing goes unheard); a socket that drops, or stays silent
//! through a ping, is replaced at once and, when opening fails, again with
//! exponential backoff and jitter. Each envelope goes to the
//! [`EnvelopeHandler`], concurrently, and is acknowledged on the socket it
//! came on only when the handler says so, which the server's handler does
//! only once what the envelope carries is committed.
//!
//! What it must never do: acknowledge an envelope the handler did not
//! acknowledge (Slack would not send it again), log or return the app-level
//! token or the WebSocket URL (its ticket admits a socket), or connect
//! anywhere but through [`crate::http::tunnel`] (the proxy) and with the
//! process's trust ([`crate::http::current`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::secret::SecretSource;
use crate::slack::{SlackClient, SlackError, socket_mode};

/// One envelope, as Slack sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Slack's id for it; the acknowledgement names it.
    pub id: String,
    /// `events_api`, `slash_commands`, `interactive`, ...
    pub kind: String,
    /// What it carries: an Events API body, a command's fields, ...
    pub payload: Value,
    /// Whether the acknowledgement may carry an answer.
    pub accepts_response_payload: bool,
    /// How many times Slack sent it before (`retry_attempt`; 0 the first).
    pub retry_attempt: u64,
}

/// What to send back for an envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Acknowledge {
    /// Acknowledge it now, with an answer if it accepts one.
    Now {
        /// The answer (a slash command's immediate, ephemeral reply).
        payload: Option<Value>,
    },
    /// Do not: it is not committed, and Slack should send it again.
    Not,
}

/// Takes each envelope (for the server: stores it as the HTTP endpoint
/// would) and says when to acknowledge it.
pub trait EnvelopeHandler: Send + Sync + 'static {
    /// Handles one envelope; resolves once it may be acknowledged (or not).
    fn handle(&self, envelope: Envelope) -> impl Future<Output = Acknowledge> + Send;
}

/// One Slack connection's Socket Mode settings.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// The connection's name (logs only).
    pub connection: String,
    /// The Web API base URL (`https://slack.com/api/`).
    pub api_url: String,
    /// The app-level token (`xapp-`), read again for every socket.
    pub app_token: SecretSource,
    /// For `apps.connections.open`, the tunnel, TLS and the WebSocket
    /// handshake, and for `hello` to arrive.
    pub timeout: Duration,
    /// A socket silent this long is sent a ping.
    pub ping_after: Duration,
    /// A socket silent this long (the ping unanswered) is given up.
    pub dead_after: Duration,
    /// The longest wait between failed attempts to open a socket.
    pub max_backoff: Duration,
    /// The connection's own proxy, for `apps.connections.open` and the
    /// WebSocket's tunnel alike (`None`: the global one).
    pub proxy: Option<crate::http::proxy::ProxyOverride>,
}

impl SocketSettings {
    /// Settings with the usual timings.
    pub fn new(connection: &str, api_url: &str, app_token: SecretSource) -> SocketSettings {
        SocketSettings {
            connection: connection.to_owned(),
            api_url: api_url.to_owned(),
            app_token,
            timeout: Duration::from_secs(10),
            ping_after: Duration::from_secs(15),
            dead_after: Duration::from_secs(35),
            max_backoff: Duration::from_secs(60),
            proxy: None,
        }
    }
}

/// Why a socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The app-level token cannot be read here.
    #[error("the app-level token is unavailable: {0}")]
    Token(String),
    /// `apps.connections.open` failed.
    #[error("apps.connections.open: {error}{hint}")]
    Slack {
        /// What Slack (or the way to it) said.
        error: SlackError,
        /// What to do about it.
        hint: &'static str,
    },
    /// The URL Slack gave cannot be used.
    #[error("Slack gave an unusable WebSocket URL ({0})")]
    Url(String),
    /// No TCP stream (directly or through the proxy).
    #[error(transparent)]
    Tunnel(#[from] crate::http::tunnel::TunnelError),
    /// TLS or the WebSocket handshake failed.
    #[error("WebSocket to {host}: {why}")]
    Handshake {
        /// The socket's host.
        host: String,
        /// What failed.
        why: String,
    },
    /// Slack did not say `hello`.
    #[error("no hello from Slack: {0}")]
    NoHello(String),
}

impl OpenError {
    /// Whether trying again soon cannot help (a refused token): the admin
    /// must act, so attempts slow down to the longest backoff.
    fn needs_admin(&self) -> bool {
        match self {
            OpenError::Token(_) => true,
            OpenError::Slack { error, .. } => matches!(
                error.code(),
                Some(
                    "not_authed"
                        | "invalid_auth"
                        | "not_allowed_token_type"
                        | "missing_scope"
                        | "token_revoked"
                        | "token_expired"
                        | "account_inactive"
                        | "forbidden_team"
                        | "access_denied"
                )
            ),
            _ => false,
        }
    }
}

/// What Slack's `hello` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// How many sockets the app has open, this one included.
    pub num_connections: u64,
    /// Seconds until Slack means to refresh this socket, if it said.
    pub approximate_connection_time: Option<u64>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// Asks Slack for a URL and opens a socket to it, up to `hello`.
async fn open(
    settings: &SocketSettings,
    http: &reqwest::Client,
) -> Result<(Socket, Hello), OpenError> {
    let token = settings.app_token.resolve().map_err(OpenError::Token)?;
    let url = socket_mode::open_connection(&SlackClient::new(http, &settings.api_url, &token))
        .await
        .map_err(|error| OpenError::Slack {
            hint: error.code().map_or("", socket_mode::refusal_hint),
            error,
        })?;
    let parsed = reqwest::Url::parse(&url).map_err(|e| OpenError::Url(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| OpenError::Url("no host".into()))?
        .to_owned();
    let tls = match parsed.scheme() {
        "wss" => true,
        "ws" => false,
        other => return Err(OpenError::Url(format!("scheme {other}"))),
    };
    let port = parsed.port().unwrap_or(if tls { 443 } else { 80 });
    let tcp = crate::http::tunnel::connect(&host, port, settings.timeout, settings.proxy.as_ref())
        .await?;
    let handshake = |why: String| OpenError::Handshake {
        host: host.clone(),
        why,
    };
    let stream: Box<dyn Io> = if tls {
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| handshake(e.to_string()))?;
        let config = Arc::new(crate::http::current().trust.client_config());
        let tls = tokio::time::timeout(
            settings.timeout,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| handshake("TLS handshake timed out".into()))?
        .map_err(|e| {
            let mut why = e.to_string();
            if let Some(inner) = e.get_ref()
                && let Some(tls) = crate::http::tls::certificate_error(inner)
            {
                why = crate::http::tls::explain(&host, tls, None);
            }
            handshake(why)
        })?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut socket, _) = tokio::time::timeout(
        settings.timeout,
        tokio_tungstenite::client_async(url.as_str(), stream),
    )
    .await
    .map_err(|_| handshake("the WebSocket handshake timed out".into()))?
    .map_err(|e| handshake(e.to_string()))?;
    let hello = tokio::time::timeout(settings.timeout, async {
        while let Some(message) = socket.next().await {
            let message = message.map_err(|e| OpenError::NoHello(e.to_string()))?;
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str())
                .map_err(|e| OpenError::NoHello(format!("unreadable message: {e}")))?;
            match value.get("type").and_then(Value::as_str) {
                Some("hello") => {
                    return Ok(Hello {
                        num_connections: value["num_connections"].as_u64().unwrap_or(1),
                        approximate_connection_time:
                            value["debug_info"]["approximate_connection_time"].as_u64(),
                    });
                }
                Some("disconnect") => {
                    return Err(OpenError::NoHello(format!(
                        "Slack closed it at once ({})",
                        value["reason"].as_str().unwrap_or("no reason")
                    )));
                }
                _ => {}
            }
        }
        Err(OpenError::NoHello("the socket closed".into()))
    })
    .await
    .map_err(|_| OpenError::NoHello("none in time".into()))??;
    Ok((socket, hello))
}

/// What a socket's task tells [`run`].
#[derive(Debug)]
enum SocketNews {
    /// Slack is about to close it (`warning`, `refresh_requested`, ...):
    /// open the next one now.
    Retiring,
    /// It closed.
    Closed {
        /// Slack said Socket Mode is off (`link_disabled`).
        link_disabled: bool,
    },
}

/// Keeps `settings.connection`'s sockets open until `stop` turns true,
/// giving every envelope to `handler`.
pub async fn run<H: EnvelopeHandler>(
    settings: SocketSettings,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
) {
    let connection = settings.connection.clone();
    let http = match crate::http::client_builder_for(settings.proxy.as_ref())
        .timeout(settings.timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%connection, "Socket Mode: cannot make an HTTP client: {e}");
            return;
        }
    };
    let (news_tx, mut news_rx) = mpsc::unbounded_channel::<SocketNews>();
    let mut open_sockets = 0usize;
    let mut want_socket = true;
    let mut failures = 0u32;
    let mut serial = 0u64;
    loop {
        if *stop.borrow() {
            break;
        }
        if want_socket {
            match open(&settings, &http).await {
                Ok((socket, hello)) => {
                    serial += 1;
                    open_sockets += 1;
                    want_socket = false;
                    if failures > 0 {
                        tracing::info!(%connection, "Socket Mode: connected again after {failures} failed attempt(s)");
                    }
                    failures = 0;
                    tracing::info!(
                        %connection,
                        socket = serial,
                        slack_sockets = hello.num_connections,
                        refresh_in_secs = hello.approximate_connection_time,
                        "Socket Mode: connected"
                    );
                    tokio::spawn(serve_socket(
                        socket,
                        serial,
                        settings.clone(),
                        handler.clone(),
                        news_tx.clone(),
                        stop.clone(),
                    ));
                }
                Err(e) => {
                    failures += 1;
                    let wait = if e.needs_admin() {
                        settings.max_backoff
                    } else {
                        backoff(failures, settings.max_backoff)
                    };
                    if failures == 1 || e.needs_admin() {
                        tracing::error!(%connection, "Socket Mode: cannot connect: {e}; trying again in {} s", wait.as_secs_f32());
                    } else {
                        tracing::warn!(%connection, failures, "Socket Mode: cannot connect: {e}; trying again in {} s", wait.as_secs_f32());
                    }
                    let sleep = tokio::time::sleep(wait);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            _ = stop.changed() => return,
                            news = news_rx.recv() => {
                                if let Some(SocketNews::Closed { .. }) = news {
                                    open_sockets = open_sockets.saturating_sub(1);
                                }
                            }
                        }
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            news = news_rx.recv() => match news {
                Some(SocketNews::Retiring) => want_socket = true,
                Some(SocketNews::Closed { link_disabled }) => {
                    open_sockets = open_sockets.saturating_sub(1);
                    if open_sockets == 0 {
                        want_socket = true;
                        if link_disabled {
                            // Socket Mode is off in the app's settings: try
                            // again slowly until an admin turns it back on.
                            failures = failures.max(8);
                            let wait = settings.max_backoff;
                            tracing::error!(%connection, "Socket Mode is turned off in the Slack app's settings (link_disabled): no events arrive until it is on again; trying again in {} s", wait.as_secs());
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = stop.changed() => return,
                            }
                        }
                    }
                }
                None => return,
            },
            _ = stop.changed() => {}
        }
    }
}

/// `failures`th wait: 0.5 s doubling up to `max`, each within ±25 %.
fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(500)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max);
    let jitter = getrandom::u32().unwrap_or(0) % 501; // 0..=500 ‰ of half the base
    base.mul_f64(0.75 + f64::from(jitter) / 1000.0)
}

/// One socket: reads until it closes, hands each envelope to `handler`
/// and sends its acknowledgement back on this socket.
async fn serve_socket<H: EnvelopeHandler>(
    socket: Socket,
    serial: u64,
    settings: SocketSettings,
    handler: Arc<H>,
    news: mpsc::UnboundedSender<SocketNews>,
    mut stop: watch::Receiver<bool>,
) {
    let connection = settings.connection.as_str();
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut last_heard = Instant::now();
    let mut pinged = false;
    let mut retiring = false;
    let mut link_disabled = false;
    loop {
        let check_at = last_heard
            + if pinged {
                settings.dead_after
            } else {
                settings.ping_after
            };
        tokio::select! {
            message = stream.next() => {
                let message = match message {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        tracing::warn!(connection, socket = serial, "Socket Mode: socket failed: {e}");
                        break;
                    }
                    None => break,
                };
                last_heard = Instant::now();
                pinged = false;
                match message {
                    Message::Text(text) => {
                        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                            tracing::warn!(connection, socket = serial, "Socket Mode: unreadable message dropped");
                            continue;
                        };
                        if let Some(envelope) = envelope(&value) {
                            let handler = handler.clone();
                            let out = out_tx.clone();
                            tokio::spawn(async move {
                                let id = envelope.id.clone();
                                let accepts = envelope.accepts_response_payload;
                                if let Acknowledge::Now { payload } = handler.handle(envelope).await {
                                    let ack = match payload {
                                        Some(p) if accepts => json!({ "envelope_id": id, "payload": p }),
                                        _ => json!({ "envelope_id": id }),
                                    };
                                    // A closed socket loses the ack: Slack sends the envelope again.
                                    let _ = out.send(Message::Text(ack.to_string().into()));
                                }
                            });
                            continue;
                        }
                        match value.get("type").and_then(Value::as_str) {
                            Some("disconnect") => {
                                let reason = value["reason"].as_str().unwrap_or("").to_owned();
                                tracing::info!(connection, socket = serial, reason, "Socket Mode: Slack is closing this socket");
                                if reason == "link_disabled" {
                                    link_disabled = true;
                                } else if !retiring {
                                    retiring = true;
                                    let _ = news.send(SocketNews::Retiring);
                                }
                            }
                            Some("hello") => {}
                            other => tracing::debug!(connection, socket = serial, kind = other, "Socket Mode: message ignored"),
                        }
                    }
                    Message::Close(_) => break,
                    // tungstenite answers pings by itself.
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(check_at) => {
                if pinged {
                    tracing::warn!(connection, socket = serial, "Socket Mode: no answer to a ping in {} s; opening another socket", settings.dead_after.as_secs());
                    break;
                }
                pinged = true;
                if out_tx.send(Message::Ping(Vec::new().into())).is_err() {
                    break;
                }
            }
            _ = stop.changed() => {
                let _ = out_tx.send(Message::Close(None));
                break;
            }
        }
    }
    drop(out_tx);
    // Acknowledgements still being decided keep their clone of the sender;
    // the writer ends once they are sent (or the socket is gone).
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(30), writer).await;
    });
    tracing::info!(connection, socket = serial, "Socket Mode: socket closed");
    let _ = news.send(SocketNews::Closed { link_disabled });
}

/// The envelope in a message, if it is one.
fn envelope(value: &Value) -> Option<Envelope> {
    let id = value.get("envelope_id")?.as_str()?.to_owned();
    Some(Envelope {
        id,
        kind: value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        payload: value.get("payload").cloned().unwrap_or(Value::Null),
        accepts_response_payload: value
            .get("accepts_response_payload")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        retry_attempt: value
            .get("retry_attempt")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_read_as_slack_documents_them() {
        let command: Value = serde_json::from_str(
            r#"{"payload":{"command":"/randorilke","text":""},"envelope_id":"dbdd0ef3-1543-4f94-bfb4-133d0e6c1545",
                "type":"slash_commands","accepts_response_payload":true}"#,
        )
        .unwrap();
        let e = envelope(&command).unwrap();
        assert_eq!(e.id, "dbdd0ef3-1543-4f94-bfb4-133d0e6c1545");
        assert_eq!(e.kind, "slash_commands");
        assert!(e.accepts_response_payload);
        assert_eq!(e.retry_attempt, 0);
        assert_eq!(e.payload["command"], "/randorilke");
        let retried: Value = serde_json::from_str(
            r#"{"payload":{},"envelope_id":"e2","type":"events_api","accepts_response_payload":false,"retry_attempt":2,"retry_reason":"timeout"}"#,
        )
        .unwrap();
        assert_eq!(envelope(&retried).unwrap().retry_attempt, 2);
        let hello: Value = serde_json::from_str(r#"{"type":"hello","num_connections":1}"#).unwrap();
        assert!(envelope(&hello).is_none());
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_with_jitter() {
        let max = Duration::from_secs(60);
        for (n, base_ms) in [(1, 500u64), (2, 1000), (3, 2000), (8, 60_000), (40, 60_000)] {
            let w = backoff(n, max).as_millis() as u64;
            assert!(
                w >= base_ms * 3 / 4 && w <= base_ms * 5 / 4,
                "attempt {n}: {w} ms"
            );
        }
    }

    struct Collect {
        seen: std::sync::Mutex<Vec<Envelope>>,
    }

    impl EnvelopeHandler for Collect {
        async fn handle(&self, envelope: Envelope) -> Acknowledge {
            let refuse = envelope.payload["event_id"] == "refuse";
            self.seen.lock().unwrap().push(envelope);
            if refuse {
                Acknowledge::Not
            } else {
                Acknowledge::Now {
                    payload: Some(json!({ "text": "answered" })),
                }
            }
        }
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_what_the_handler_takes_is_acknowledged_and_a_silent_socket_is_replaced() {
        let slack = pagehook_fakes::FakeSlack::start("xoxb-unit-tests");
        let sm = slack.socket_mode();
        sm.set_redelivery_after(Duration::from_secs(60));
        let mut settings = SocketSettings::new(
            "acme",
            &slack.base_url(),
            SecretSource::Value(sm.app_token()),
        );
        settings.ping_after = Duration::from_millis(200);
        settings.dead_after = Duration::from_millis(700);
        let handler = Arc::new(Collect {
            seen: std::sync::Mutex::new(Vec::new()),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(settings, handler.clone(), stopped));
        until("a socket", || sm.sockets() == 1).await;

        let kept = sm.send_event(json!({ "event_id": "keep" }));
        let refused = sm.send_event(json!({ "event_id": "refuse" }));
        let command = sm.send_slash_command(json!({ "trigger_id": "t1" }));
        until("three envelopes handled", || {
            handler.seen.lock().unwrap().len() == 3
        })
        .await;
        until("two acknowledgements", || sm.acks().len() == 2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let acks = sm.acks();
        assert_eq!(acks.len(), 2, "{acks:?}");
        let ack = |id: &str| acks.iter().find(|a| a.envelope_id == id);
        assert!(
            ack(&refused).is_none(),
            "an envelope the handler kept is not acknowledged"
        );
        assert_eq!(
            ack(&kept).unwrap().payload,
            None,
            "events_api takes no answer"
        );
        assert_eq!(
            ack(&command).unwrap().payload,
            Some(json!({ "text": "answered" })),
            "a slash command's answer rides on its acknowledgement"
        );

        // The socket goes silent: the ping goes unanswered, another socket opens.
        assert_eq!(sm.freeze_sockets(), 1);
        until("a second socket", || sm.sockets_opened() == 2).await;
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("run stops when asked")
            .unwrap();
    }
}
