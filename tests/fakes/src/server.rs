//! The machinery every fake shares: a loopback HTTP server on its own thread, the per-endpoint
//! fault queues, the request log, per-endpoint sliding-window rate limits and the helpers tests
//! use to wait for traffic.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::sync::oneshot;
use tower::ServiceExt;

use crate::{Fault, RecordedRequest};

/// Bodies larger than this are refused outright; no fake needs more.
pub(crate) const MAX_BODY: usize = 8 * 1024 * 1024;

/// Locks a mutex even if a panicking test thread poisoned it: the data is plain records, and
/// one failed assertion must not turn every later call into a second, misleading panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lets a handler drop its own connection without answering (`Fault::Reset`).
///
/// Handlers cannot close a hyper connection themselves, so each connection task races its
/// connection future against this signal and drops the socket when it fires.
#[derive(Clone)]
pub(crate) struct ConnControl {
    abort: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

impl ConnControl {
    fn abort(&self) {
        if let Some(tx) = lock(&self.abort).take() {
            let _ = tx.send(());
        }
    }
}

/// A running server; dropping it stops the accept loop and every open connection.
pub(crate) struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds 127.0.0.1 on a random port and serves `router` from a dedicated thread.
    ///
    /// The socket is bound before this returns, so connections made right after are queued
    /// by the kernel even if the runtime has not polled the listener yet.
    pub(crate) fn spawn(name: &str, router: Router) -> Server {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("fake {name}: cannot bind 127.0.0.1:0: {e}"));
        listener
            .set_nonblocking(true)
            .expect("set listener non-blocking");
        let addr = listener.local_addr().expect("listener address");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("fake-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build fake server runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("register listener");
                    let _ = ready_tx.send(());
                    accept_loop(listener, router, shutdown_rx).await;
                });
                // Dropping the runtime cancels every connection task, including ones parked in
                // a `Fault::Delay`, so a dropped fake never answers late.
            })
            .expect("spawn fake server thread");
        ready_rx
            .recv()
            .unwrap_or_else(|_| panic!("fake {name}: server thread died while starting"));
        Server {
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        if !peer.ip().is_loopback() {
            // Unreachable with a 127.0.0.1 listener; kept so the guarantee is local and obvious.
            continue;
        }
        tokio::spawn(serve_connection(stream, router.clone()));
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    // A second handle on the same socket, kept outside hyper, so that an abort can set
    // SO_LINGER to zero and make the close a TCP reset rather than an orderly FIN.
    let twin = match stream.into_std().and_then(|s| {
        let twin = s.try_clone()?;
        Ok((tokio::net::TcpStream::from_std(s)?, twin))
    }) {
        Ok(pair) => pair,
        Err(_) => return,
    };
    let (stream, twin) = twin;
    let (abort_tx, abort_rx) = oneshot::channel::<()>();
    let ctl = ConnControl {
        abort: Arc::new(Mutex::new(Some(abort_tx))),
    };
    let svc = router.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ctl.clone());
        req
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
    tokio::select! {
        _ = conn => {}
        Ok(()) = abort_rx => {
            let _ = socket2::SockRef::from(&twin).set_linger(Some(Duration::ZERO));
        }
    }
    // `conn` (and with it the hyper-owned socket) is dropped here, then `twin`.
}

/// The per-endpoint fault queues, call counters and request log of one fake.
#[derive(Default)]
pub(crate) struct Journal {
    faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    calls: Mutex<HashMap<String, usize>>,
    rate_limited: Mutex<HashMap<String, usize>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

impl Journal {
    pub(crate) fn inject(&self, endpoint: &str, fault: Fault) {
        if let Fault::Status(code) | Fault::StatusAfterEffect(code) = fault {
            assert!(
                StatusCode::from_u16(code).is_ok(),
                "{fault:?}: {code} is not a valid HTTP status"
            );
        }
        lock(&self.faults)
            .entry(endpoint.to_string())
            .or_default()
            .push_back(fault);
    }

    pub(crate) fn faults_left(&self, endpoint: &str) -> usize {
        lock(&self.faults).get(endpoint).map_or(0, VecDeque::len)
    }

    pub(crate) fn calls(&self, endpoint: &str) -> usize {
        lock(&self.calls).get(endpoint).copied().unwrap_or(0)
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// How many requests to `endpoint` the fake's own rate limit refused.
    pub(crate) fn rate_limited(&self, endpoint: &str) -> usize {
        lock(&self.rate_limited).get(endpoint).copied().unwrap_or(0)
    }

    /// Logs the request, counts it against its endpoint and takes the next fault queued for
    /// that endpoint, all under one decision so concurrent requests consume faults in order.
    pub(crate) fn record(
        &self,
        parts: &Parts,
        body: &Bytes,
        endpoint: Option<&str>,
    ) -> Option<Fault> {
        let fault = endpoint.and_then(|e| {
            *lock(&self.calls).entry(e.to_string()).or_default() += 1;
            lock(&self.faults).get_mut(e).and_then(VecDeque::pop_front)
        });
        self.log(parts, body, endpoint, fault.clone(), false);
        fault
    }

    /// Logs a request that the fake's own rate limit refused. It counts as a call, but it
    /// consumes no injected fault: a throttled request never reaches the method.
    pub(crate) fn record_rate_limited(&self, parts: &Parts, body: &Bytes, endpoint: &str) {
        *lock(&self.calls).entry(endpoint.to_string()).or_default() += 1;
        *lock(&self.rate_limited)
            .entry(endpoint.to_string())
            .or_default() += 1;
        self.log(parts, body, Some(endpoint), None, true);
    }

    fn log(
        &self,
        parts: &Parts,
        body: &Bytes,
        endpoint: Option<&str>,
        fault: Option<Fault>,
        rate_limited: bool,
    ) {
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                let value = if *name == AUTHORIZATION {
                    match value.split_once(' ') {
                        Some((scheme, _)) => format!("{scheme} [redacted]"),
                        None => "[redacted]".to_string(),
                    }
                } else {
                    value
                };
                (name.as_str().to_string(), value)
            })
            .collect();
        lock(&self.requests).push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path_and_query().map_or_else(
                || parts.uri.path().to_string(),
                |pq| pq.as_str().to_string(),
            ),
            endpoint: endpoint.map(str::to_string),
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
            received_at: Instant::now(),
            fault,
            rate_limited,
        });
    }
}

/// Per-endpoint sliding-window rate limits: at most `calls` admitted requests in any window of
/// length `per`. Requests the limit refuses do not count against the window.
#[derive(Default)]
pub(crate) struct SlidingWindows {
    limits: Mutex<HashMap<String, (usize, Duration)>>,
    admitted: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SlidingWindows {
    /// Sets (or replaces) the limit for `endpoint` and forgets its earlier calls, so a test
    /// that changes a limit starts from an empty window.
    pub(crate) fn set(&self, endpoint: &str, calls: usize, per: Duration) {
        lock(&self.limits).insert(endpoint.to_string(), (calls, per));
        lock(&self.admitted).remove(endpoint);
    }

    /// Removes every limit.
    pub(crate) fn clear(&self) {
        lock(&self.limits).clear();
        lock(&self.admitted).clear();
    }

    pub(crate) fn get(&self, endpoint: &str) -> Option<(usize, Duration)> {
        lock(&self.limits).get(endpoint).copied()
    }

    /// Admits one call to `endpoint` now, or answers how long until the window frees a slot.
    pub(crate) fn admit(&self, endpoint: &str) -> Result<(), Duration> {
        let Some((calls, per)) = self.get(endpoint) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut admitted = lock(&self.admitted);
        let seen = admitted.entry(endpoint.to_string()).or_default();
        while seen.front().is_some_and(|t| now.duration_since(*t) >= per) {
            seen.pop_front();
        }
        if seen.len() < calls {
            seen.push_back(now);
            return Ok(());
        }
        // The window is full; the slot frees when its oldest call leaves the window. With
        // `calls == 0` nothing ever gets in, so a whole window is the honest wait.
        let frees_at = seen.front().map_or(now + per, |t| *t + per);
        Err(frees_at.saturating_duration_since(now))
    }
}

/// A wait as a `Retry-After` value: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// What to do with a request after its fault (if any) has been looked at.
pub(crate) enum Next {
    /// Carry the request out now, then answer as `delay` says (see [`answer_late`]).
    Proceed { delay: Late },
    /// Answer with this instead.
    Respond(Response),
}

/// How to answer a request that was carried out: after a pause (`Fault::Delay`), and/or with
/// a replacement answer (`Fault::StatusAfterEffect`) instead of the real one.
#[derive(Default)]
pub(crate) struct Late {
    pause: Option<Duration>,
    replacement: Option<Response>,
}

/// Applies the transport-level part of a fault. `Delay` and `StatusAfterEffect` proceed and
/// change only the answer (see [`answer_late`]), `Reset` never returns (the connection is
/// dropped under it); the rest are answered by `shaped`, which renders them in the service's
/// own error format. `StatusAfterEffect(code)` is rendered by `shaped` as `Status(code)`, so
/// every fake supports it without knowing about it.
pub(crate) async fn apply_fault(
    fault: Option<Fault>,
    parts: &Parts,
    shaped: impl FnOnce(&Fault) -> Response,
) -> Next {
    match fault {
        None => Next::Proceed {
            delay: Late::default(),
        },
        Some(Fault::Delay(d)) => Next::Proceed {
            delay: Late {
                pause: Some(d),
                replacement: None,
            },
        },
        Some(Fault::StatusAfterEffect(code)) => Next::Proceed {
            delay: Late {
                pause: None,
                replacement: Some(shaped(&Fault::Status(code))),
            },
        },
        Some(Fault::Reset) => {
            if let Some(ctl) = parts.extensions.get::<ConnControl>() {
                ctl.abort();
            }
            std::future::pending::<()>().await;
            unreachable!("the connection task drops this future when it aborts")
        }
        Some(other) => Next::Respond(shaped(&other)),
    }
}

/// Holds an answer back, or swaps it for the fault's answer. The work was already done: hyper
/// drops a handler whose client hung up, so sleeping *before* the work would let a timed-out
/// request vanish, whereas real services finish it anyway and the client's retry makes a
/// duplicate. Likewise a `StatusAfterEffect` request has taken effect before its error goes
/// out, as when a proxy fails on the way back.
pub(crate) async fn answer_late(response: Response, late: Late) -> Response {
    if let Some(d) = late.pause {
        tokio::time::sleep(d).await;
    }
    late.replacement.unwrap_or(response)
}

/// Reads the whole body, splitting the request so handlers can look at both halves freely.
pub(crate) async fn read_body(req: Request<Body>) -> Result<(Parts, Bytes), Response> {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => Ok((parts, bytes)),
        Err(_) => Err(text_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or unreadable",
        )),
    }
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut r = Response::new(Body::from(
        serde_json::to_vec(value).expect("serialize JSON"),
    ));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

pub(crate) fn text_response(status: StatusCode, text: &str) -> Response {
    let mut r = Response::new(Body::from(text.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(crate) fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

/// Parses `a=1&b=2` into pairs.
pub(crate) fn form_pairs(input: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(input).into_owned().collect()
}

/// The value of one query parameter.
pub(crate) fn query_param(parts: &Parts, name: &str) -> Option<String> {
    form_pairs(parts.uri.query().unwrap_or("").as_bytes())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Polls `get` until it yields at least `n` items, blocking the calling thread.
pub(crate) fn wait_blocking<T: Debug>(
    what: &str,
    n: usize,
    timeout: Duration,
    get: impl Fn() -> Vec<T>,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let items = get();
        if items.len() >= n {
            return items;
        }
        if Instant::now() >= deadline {
            panic!(
                "expected at least {n} {what} within {timeout:?}, got {}: {items:#?}",
                items.len()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Like [`wait_blocking`] but yields to the caller's tokio runtime between polls, so the code
/// under test can make progress on the same runtime.
pub(crate) async fn wait_async<T: Debug>(
    what: &str,
    n: usize,
    timeout: Duration,
    get: impl Fn() -> Vec<T>,
) -> Vec<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let items = get();
        if items.len() >= n {
            return items;
        }
        if Instant::now() >= deadline {
            panic!(
                "expected at least {n} {what} within {timeout:?}, got {}: {items:#?}",
                items.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Now as an ISO-8601 UTC timestamp with milliseconds, the way Confluence writes dates.
pub(crate) fn iso_now() -> String {
    iso_at(std::time::SystemTime::now(), "Z")
}

/// `2026-01-12T18:07:13.603<zone>` in UTC: how Atlassian's and Microsoft's answers write
/// times (`zone` is `Z` or `+0000`).
pub(crate) fn iso_at(at: std::time::SystemTime, zone: &str) -> String {
    let at = time::OffsetDateTime::from(at);
    let items = time::format_description::parse_borrowed::<2>(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]",
    )
    .expect("a valid format description");
    format!("{}{zone}", at.format(&items).unwrap_or_default())
}
