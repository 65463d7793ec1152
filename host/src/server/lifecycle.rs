//! How `pagehook serve` starts and stops, as its supervisor sees it.
//!
//! Under systemd (`Type=notify`, see `packaging/pagehook.service`) the
//! server says `READY=1` only once the store is open (its migrations ran)
//! and the listener is bound, `STATUS=` lines for what it is doing,
//! `WATCHDOG=1` every half of `WatchdogSec=` while the async runtime still
//! runs tasks, and `STOPPING=1` as soon as SIGTERM arrives. Without
//! `$NOTIFY_SOCKET` (a terminal, a container) nothing is sent. Kubernetes
//! and load balancers ask `GET /readyz` instead, which [`Lifecycle`] turns
//! to 503 from the moment the server begins to stop.
//!
//! The stop itself is [`super::serve`]'s: stop accepting, answer the
//! requests in flight, let running plugin calls and sends finish within
//! `[server] shutdown-grace-ms`, then let go of every claim and lane lease
//! this replica still holds, so another replica takes the work at once.
//!
//! This module must never make serving depend on the supervisor: a
//! notification that cannot be sent is logged once and serving goes on. A
//! `STATUS=` line never carries a secret (the store is described without
//! its password).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// The server's phase, shared by the handlers (`/readyz`) and `serve`.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Set once SIGTERM (or Ctrl-C) arrived.
    stopping: AtomicBool,
    /// A notification could not be sent (logged once).
    notify_failed: AtomicBool,
}

impl Lifecycle {
    /// A server that has not started to stop.
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }

    /// Whether the server has begun to stop (`/readyz` answers 503).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Tells the supervisor what the server is doing (`STATUS=`).
    pub fn status(&self, text: &str) {
        tracing::debug!(status = text, "status");
        self.notify(&[NotifyState::Status(&one_line(text))]);
    }

    /// Tells the supervisor the server is ready (`READY=1`), with a status.
    pub fn ready(&self, text: &str) {
        self.notify(&[NotifyState::Ready, NotifyState::Status(&one_line(text))]);
    }

    /// Marks the server as stopping and tells the supervisor (`STOPPING=1`).
    pub fn stopping(&self, text: &str) {
        self.stopping.store(true, Ordering::SeqCst);
        self.notify(&[NotifyState::Stopping, NotifyState::Status(&one_line(text))]);
    }

    /// When the unit sets `WatchdogSec=`, sends `WATCHDOG=1` every half of
    /// it from a task of the runtime, so a runtime that no longer runs tasks
    /// is restarted; `None` when no watchdog is asked for.
    pub fn start_watchdog(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let every = sd_notify::watchdog_enabled()? / 2;
        let every = every.max(Duration::from_millis(10));
        tracing::info!(every_ms = every.as_millis() as u64, "systemd watchdog");
        let life = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                life.notify(&[NotifyState::Watchdog]);
            }
        }))
    }

    fn notify(&self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states)
            && !self.notify_failed.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(error = %e, "cannot notify the service manager ($NOTIFY_SOCKET); serving anyway");
        }
    }
}

/// A status is one line: systemd reads a notification line by line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Waits for SIGTERM or Ctrl-C (SIGINT).
pub async fn stop_requested() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }

    #[test]
    fn stopping_is_seen_by_readiness() {
        let life = Lifecycle::new();
        assert!(!life.is_stopping());
        life.stopping("stopping");
        assert!(life.is_stopping());
    }
}
