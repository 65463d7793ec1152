//! Connections: how long a client may take to send a request.
//!
//! A client that opens a connection and sends half a request must not hold
//! it (and a task) forever. Hyper closes a connection whose request headers
//! do not arrive within `server.header-timeout-ms` (this also closes idle
//! keep-alive connections after that long), and [`body_deadline`] answers
//! 408 and closes the connection when the body has not fully arrived within
//! `server.body-timeout-ms` of its headers. `axum::serve` cannot set hyper's
//! header read timeout, so [`serve`] accepts connections itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The body did not arrive in time.
#[derive(Debug)]
struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} ms (server.body-timeout-ms)",
            self.0.as_millis()
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// Middleware: the whole body must arrive within `limit` of the headers;
/// a request whose body is late is answered 408 and its connection closed.
pub(super) async fn body_deadline(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let deadline = tokio::time::Instant::now() + limit;
    let late = Arc::new(AtomicBool::new(false));
    let flag = late.clone();
    let (parts, body) = request.into_parts();
    let stream = body.into_data_stream();
    let timed = futures::stream::unfold(Some(stream), move |stream| {
        let flag = flag.clone();
        async move {
            let mut stream = stream?;
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(stream))),
                Ok(None) => None,
                Err(_) => {
                    flag.store(true, Ordering::SeqCst);
                    Some((Err(axum::Error::new(BodyTimeout(limit))), None))
                }
            }
        }
    });
    let response = next
        .run(Request::from_parts(parts, Body::from_stream(timed)))
        .await;
    if late.load(Ordering::SeqCst) {
        let mut answer = super::error(StatusCode::REQUEST_TIMEOUT, BodyTimeout(limit).to_string());
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return answer;
    }
    response
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and lets the requests in progress finish (idle connections
/// close at once) until the deadline `shutdown` gave; connections still
/// open then are dropped. Returns that deadline.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = tokio::time::Instant>,
) -> tokio::time::Instant {
    let (closing, closed) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let deadline = loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            deadline = &mut shutdown => break deadline,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut closed = closed.clone();
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = closed.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    };
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "requests still in progress at the end of the shutdown grace are dropped"
        );
        connections.shutdown().await;
    }
    deadline
}
