//! The calls each backend answers in its own SQL: claiming and finishing
//! work (the claim walk, leases, rates), writing dispatch's results, and
//! queueing notices. Everything else the store does is written once, with
//! the same statements on both backends (see `sql.rs` and the record
//! modules). What this module must never do: decide anything itself; it
//! only hands each call to the backend that holds the store.

use super::claims::{Finished, GoOn};
use super::{
    AttemptResult, BreakerPolicy, Claim, DeliveryRound, Dispatched, HealthChange, NewDelivery,
    RateKeys, RatePolicy, SendSlot, Store, StoreResult,
};

impl Store {
    /// Writes dispatch's results for events still held by `claim`, in one
    /// transaction; returns how many events were still held and written.
    pub async fn finish_dispatch(
        &self,
        claim: &Claim,
        batch: &[Dispatched],
        breaker: BreakerPolicy,
    ) -> StoreResult<usize> {
        let (claim, batch) = (claim.clone(), batch.to_vec());
        on_backend!(self, |s| s.finish_dispatch(&claim, &batch, breaker), |p| p
            .finish_dispatch(&claim, &batch, breaker))
    }

    /// Queues a message Pagehook itself sends; returns the delivery's id.
    pub async fn enqueue_notice(&self, what: &str, d: &NewDelivery) -> StoreResult<i64> {
        let (what, d) = (what.to_owned(), d.clone());
        on_backend!(self, |s| s.enqueue_notice(&what, &d), |p| p
            .enqueue_notice(&what, &d))
    }

    /// Claims the head of up to `max` lanes: due, not leased by a live
    /// claim, allowed by Slack's rates (taking their slots), and only of
    /// events whose predecessors are all dispatched. Marks them `sending`.
    pub async fn claim_deliveries(
        &self,
        claim: &Claim,
        rates: RatePolicy,
        max: usize,
    ) -> StoreResult<DeliveryRound> {
        let claim = claim.clone();
        on_backend!(self, |s| s.claim_deliveries(&claim, rates, max), |p| p
            .claim_deliveries(&claim, rates, max))
    }

    /// Records attempts of deliveries still held by `claim` and the health
    /// they showed, in one transaction, and releases the claim's lanes;
    /// returns how many attempts were recorded.
    pub async fn finish_attempts(
        &self,
        claim: &Claim,
        attempts: &[AttemptResult],
        health: &[HealthChange],
    ) -> StoreResult<usize> {
        Ok(self
            .finish_and_go_on(claim, attempts, health, &[])
            .await?
            .recorded)
    }

    /// [`Store::finish_attempts`], except that the lanes in `go_on` the
    /// claim still holds are not let go: each takes what follows its last
    /// delivery (as a round takes what follows a head: due, of events older
    /// than the watermark, up to its batch), marked `sending` under the
    /// same claim in the same transaction; a lane with nothing to take is
    /// let go. Only for lanes no rate paces (`claims::goes_on_unpaced`).
    pub async fn finish_and_go_on(
        &self,
        claim: &Claim,
        attempts: &[AttemptResult],
        health: &[HealthChange],
        go_on: &[GoOn],
    ) -> StoreResult<Finished> {
        let (claim, attempts, health, go_on) = (
            claim.clone(),
            attempts.to_vec(),
            health.to_vec(),
            go_on.to_vec(),
        );
        on_backend!(
            self,
            |s| s.finish_attempts(&claim, &attempts, &health, &go_on),
            |p| p.finish_attempts(&claim, &attempts, &health, &go_on)
        )
    }

    /// Extends the lease of everything `claim` holds; returns how many rows
    /// it still holds.
    pub async fn renew(&self, claim: &Claim) -> StoreResult<usize> {
        let claim = claim.clone();
        on_backend!(self, |s| s.renew(&claim), |p| p.renew(&claim))
    }

    /// Lets go of everything `claim` holds (a clean stop).
    pub async fn release(&self, claim: &Claim) -> StoreResult<()> {
        let claim = claim.clone();
        on_backend!(self, |s| s.release(&claim), |p| p.release(&claim))
    }

    /// Lets go of everything the replica named `replica` holds, whatever
    /// round took it (a stopping server whose rounds did not finish within
    /// its grace): its lanes, its events, and its deliveries in flight, which
    /// go back to pending as uncertain (they may have been sent). Wakes the
    /// other replicas, so they take the work now rather than after the
    /// lease. Returns how many rows it let go.
    pub async fn release_replica(&self, replica: &str) -> StoreResult<usize> {
        let replica = replica.to_owned();
        on_backend!(self, |s| s.release_replica(&replica), |p| p
            .release_replica(&replica))
    }

    /// After a restart of the only server (SQLite): claims left by the
    /// previous run end now and their deliveries become uncertain; returns
    /// how many deliveries were in flight. PostgreSQL leaves them to expire.
    pub async fn release_stale_claims(&self) -> StoreResult<usize> {
        on_backend!(self, |s| s.release_stale_claims(), |p| p
            .release_stale_claims())
    }

    /// Takes the next send-time slot of a message's channel and workspace
    /// (see `claims::send_keys`) if it is due; otherwise takes nothing and
    /// says how long until it is.
    pub async fn take_send_slot(
        &self,
        keys: &RateKeys,
        rates: RatePolicy,
    ) -> StoreResult<SendSlot> {
        let keys = keys.clone();
        on_backend!(self, |s| s.take_send_slot(&keys, rates), |p| p
            .take_send_slot(&keys, rates))
    }
}
