//! Heartbeats: keeping a round's claim alive while it works, and knowing
//! when it may no longer be ours.
//!
//! A claim's lease ends by the database's clock unless it is renewed. While
//! a round runs (plugins, Slack answering slowly, a crash lookup paging
//! through history), [`Heartbeat`] renews it every third of the lease. It
//! also keeps a conservative local deadline: the moment before which the
//! lease is certainly still ours (counted from *before* the request that
//! took or renewed it). Delivery checks it before each send, so a replica
//! that lost its database, or stalled, stops sending before another replica
//! can take the work over; it must never let a send start after that.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{Claim, Store};

/// Renews one claim in the background until dropped.
pub struct Heartbeat {
    held_until: Arc<Mutex<Instant>>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts renewing `claim`, taken by a request that began at `taken_at`.
    pub fn start(store: Store, claim: Claim, taken_at: Instant) -> Heartbeat {
        let lease = Duration::from_millis(claim.lease_ms.max(1) as u64);
        let held_until = Arc::new(Mutex::new(taken_at + safe_part(lease)));
        let until = held_until.clone();
        let task = tokio::spawn(async move {
            let every = lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let asked = Instant::now();
                match store.renew(&claim).await {
                    Ok(_) => {
                        *until.lock().unwrap_or_else(|p| p.into_inner()) = asked + safe_part(lease);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the claim; its work stops when the lease ends");
                    }
                }
            }
        });
        Heartbeat { held_until, task }
    }

    /// Whether the claim is certainly still ours now.
    pub fn held(&self) -> bool {
        Instant::now() < *self.held_until.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The part of a lease we count on: the whole lease less a margin for
/// clocks running at slightly different rates and for the time a request
/// takes to come back.
fn safe_part(lease: Duration) -> Duration {
    lease.mul_f64(0.8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_renewed_claim_stays_held_and_an_unrenewed_one_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("p.db")).unwrap();
        let beat = Heartbeat::start(store.clone(), Claim::new("test", 300), Instant::now());
        assert!(beat.held());
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(beat.held(), "renewed every third of the lease");
        beat.task.abort();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !beat.held(),
            "past the safe part of the lease without a renewal"
        );
    }
}
