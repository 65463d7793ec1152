//! The store a single plugin call runs in: WASI with nothing granted, a
//! bounded log, and a limiter that stops memory growth at the plugin's cap.
//!
//! A fresh `CallState` is made for every call and dropped afterwards, so no
//! state leaks from one event to the next. It must never be handed anything
//! from the host's environment: no preopened directories, no environment
//! variables, no arguments, no sockets, no real randomness or stdin, and no
//! real clock: it sees the event's time (see [`super::clocks`]).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::clocks::{EventWallClock, SteppingMonotonicClock};

/// A limit that the guest hit while running; carried inside the trap so the
/// call's error can be classified without guessing from messages.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum LimitHit {
    #[error("memory limit reached")]
    Memory,
    #[error("table limit reached")]
    Table,
    #[error("log limit reached")]
    Log,
}

/// The per-call log: `log` import lines plus raw stdout/stderr, bounded.
#[derive(Debug, Clone)]
pub struct LogSink {
    inner: Arc<Mutex<LogBuf>>,
}

#[derive(Debug)]
struct LogBuf {
    text: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl LogSink {
    fn new(limit: usize) -> LogSink {
        LogSink {
            inner: Arc::new(Mutex::new(LogBuf {
                text: Vec::new(),
                limit,
                overflowed: false,
            })),
        }
    }

    /// Appends bytes; past the limit, keeps what fits and reports the hit.
    fn append(&self, bytes: &[u8]) -> Result<(), LimitHit> {
        let mut buf = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = buf.limit.saturating_sub(buf.text.len());
        if bytes.len() > room {
            buf.text.extend_from_slice(&bytes[..room]);
            buf.overflowed = true;
            return Err(LimitHit::Log);
        }
        buf.text.extend_from_slice(bytes);
        Ok(())
    }

    /// The log so far, lossily decoded.
    pub fn text(&self) -> String {
        let buf = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf.text).into_owned()
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(AsyncLog(self.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes)
            .map_err(|hit| StreamError::Trap(wasmtime::Error::new(hit)))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always accept a full chunk: overflow is reported by `write` as a
        // trap naming the log limit, rather than as a closed stream the
        // guest might silently ignore.
        Ok(64 * 1024)
    }
}

/// Adapter for the async (p3-style) stdout path; writes past the limit fail.
struct AsyncLog(LogSink);

impl tokio::io::AsyncWrite for AsyncLog {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(
            self.0
                .append(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Caps linear memory and tables for one call.
#[derive(Debug)]
pub struct CallLimiter {
    memory_bytes: usize,
    table_elements: usize,
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.memory_bytes {
            return Err(wasmtime::Error::new(LimitHit::Memory));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.table_elements {
            return Err(wasmtime::Error::new(LimitHit::Table));
        }
        Ok(true)
    }
}

/// Everything a store holds during one call.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: CallLimiter,
    pub(crate) log: LogSink,
}

/// Most table elements (function references) one table may hold; large
/// enough for an embedded Python or JavaScript interpreter.
pub const TABLE_ELEMENTS: usize = 200_000;

impl CallState {
    /// A state granting nothing, with the given memory cap and log bound,
    /// whose clocks read the event's time `occurred_at_ms`.
    ///
    /// Randomness is fixed bytes, the same for every call: with the clocks,
    /// that makes a call a function of event and settings alone.
    pub fn new(memory_bytes: u64, log_bytes: usize, occurred_at_ms: u64) -> CallState {
        let log = LogSink::new(log_bytes);
        let wasi = WasiCtx::builder()
            .wall_clock(EventWallClock::new(occurred_at_ms))
            .monotonic_clock(SteppingMonotonicClock::default())
            .stdout(log.clone())
            .stderr(log.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .secure_random(wasmtime_wasi::Deterministic::new(vec![0x5a; 32]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![0xa5; 32]))
            .insecure_random_seed(0)
            .build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: CallLimiter {
                memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
                table_elements: TABLE_ELEMENTS,
            },
            log,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    /// Appends one line of the plugin's log (every contract's `log`).
    pub(crate) fn log_line(&mut self, level: &str, message: &str) -> Result<()> {
        let line = format!("[{level}] {message}\n");
        self.log
            .append(line.as_bytes())
            .map_err(wasmtime::Error::new)
    }
}
