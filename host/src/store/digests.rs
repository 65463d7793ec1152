//! Digests on the store boundary: each binding's digest settings, and the
//! events held for a binding while a burst is collected.
//!
//! An event held for a binding is written in the transaction that marks the
//! event dispatched (its other bindings' deliveries with it), so a crash
//! either holds it or leaves it pending; it is released in the transaction
//! that writes what its plugin made of it, under a claim like any other
//! work, so two replicas never release it twice and a crash before that
//! commit leaves it held, to be released again from the store. When a held
//! event goes, and with which others, is decided above the backends
//! ([`crate::digest::rules`]); this module and its backends only keep rows.

use serde::Serialize;

use super::sql::{FromRow, Param, Row};
use super::{Backend, BreakerPolicy, Claim, Dispatched, Store, StoreError, StoreResult};
use crate::model::Event;

/// A binding's digest settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DigestSettings {
    /// Digests on (the default) or off (every event is run on its own).
    pub enabled: bool,
    /// More than this many events of one space within the window make a
    /// burst (as does one page updated twice within it).
    pub threshold: u32,
    /// The window bursts are measured over, in seconds; also the longest a
    /// digest collects before it is posted.
    pub window_secs: u32,
}

impl Default for DigestSettings {
    fn default() -> Self {
        DigestSettings {
            enabled: true,
            threshold: 20,
            window_secs: 300,
        }
    }
}

impl DigestSettings {
    /// Smallest and largest threshold accepted.
    pub const THRESHOLD: (u32, u32) = (1, 10_000);
    /// Shortest and longest window accepted (seconds: one second to a day).
    pub const WINDOW_SECS: (u32, u32) = (1, 86_400);

    /// Refuses values outside the accepted ranges, naming the setting.
    pub fn check(&self) -> Result<(), String> {
        let (lo, hi) = Self::THRESHOLD;
        if !(lo..=hi).contains(&self.threshold) {
            return Err(format!(
                "digest threshold must be between {lo} and {hi} events, not {}",
                self.threshold
            ));
        }
        let (lo, hi) = Self::WINDOW_SECS;
        if !(lo..=hi).contains(&self.window_secs) {
            return Err(format!(
                "digest window must be between {lo} and {hi} seconds, not {}",
                self.window_secs
            ));
        }
        Ok(())
    }
}

/// An event to hold for a binding (written with the event's dispatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHeld {
    /// The binding it is held for.
    pub binding_id: i64,
    /// The event.
    pub event_id: i64,
    /// The space it happened in (digests are per binding and space).
    pub space_key: String,
    /// For an update of a page or blog post: its content id (repeated
    /// updates of one page make a burst).
    pub page_update: Option<u64>,
}

/// A held event, released or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HeldEvent {
    /// The row's id (hold order).
    pub id: i64,
    /// The binding it is held for.
    pub binding_id: i64,
    /// The event.
    pub event_id: i64,
    /// Its space.
    pub space_key: String,
    /// For an update of a page or blog post: its content id.
    pub page_update: Option<u64>,
    /// When it was held (ms).
    pub held_at: i64,
    /// When it was released (ms); `None` while held.
    pub released_at: Option<i64>,
    /// The event whose deliveries carry it (for a digest, its last event;
    /// for an event run on its own, itself).
    pub released_with: Option<i64>,
}

/// A held event being released, and the event whose deliveries carry it
/// (for a digest, its last event; for an event run on its own, itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// The held row's id.
    pub held_id: i64,
    /// The event that carries it.
    pub with_event: i64,
}

/// A held event claimed for release, with the event as dispatch enriched it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedHeld {
    /// The row.
    pub held: HeldEvent,
    /// The event the plugin will see.
    pub event: Event,
}

impl FromRow for HeldEvent {
    const COLUMNS: &'static str =
        "id, binding_id, event_id, space_key, page_update, held_at, released_at, released_with";

    fn from_row(r: &dyn Row) -> StoreResult<HeldEvent> {
        Ok(HeldEvent {
            id: r.get("id")?,
            binding_id: r.get("binding_id")?,
            event_id: r.get("event_id")?,
            space_key: r.get("space_key")?,
            page_update: r.get("page_update")?,
            held_at: r.get("held_at")?,
            released_at: r.get("released_at")?,
            released_with: r.get("released_with")?,
        })
    }
}

/// Runs one call on the backend: SQLite on the blocking pool, PostgreSQL
/// directly.
macro_rules! on_backend {
    ($self:ident, |$s:ident| $sqlite:expr, |$p:ident| $pg:expr) => {
        match &$self.backend {
            Backend::Sqlite(s) => {
                let s = s.clone();
                s.run(move |$s| $sqlite).await
            }
            Backend::Postgres($p) => $pg.await,
        }
    };
}

impl Store {
    /// Every binding's digest settings that differ from the defaults.
    pub async fn digest_settings(&self) -> StoreResult<Vec<(i64, DigestSettings)>> {
        self.query(
            "SELECT binding_id, enabled, threshold, window_secs FROM binding_digests ORDER BY binding_id",
            vec![],
            |r| {
                Ok((
                    r.get("binding_id")?,
                    DigestSettings {
                        enabled: r.get("enabled")?,
                        threshold: r.get("threshold")?,
                        window_secs: r.get("window_secs")?,
                    },
                ))
            },
        )
        .await
    }

    /// Sets a binding's digest settings (`None`: back to the defaults); a
    /// NotFound naming the binding when there is none.
    pub async fn set_digest_settings(
        &self,
        binding_id: i64,
        settings: Option<DigestSettings>,
    ) -> StoreResult<()> {
        if self.binding(binding_id).await?.is_none() {
            return Err(StoreError::NotFound(format!(
                "no binding with id {binding_id} (see `pagehook bindings`)"
            )));
        }
        match settings {
            Some(s) => {
                self.execute(
                    "INSERT INTO binding_digests (binding_id, enabled, threshold, window_secs)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (binding_id) DO UPDATE SET enabled = excluded.enabled,
                       threshold = excluded.threshold, window_secs = excluded.window_secs",
                    vec![
                        binding_id.into(),
                        Param::Flag(s.enabled),
                        i64::from(s.threshold).into(),
                        i64::from(s.window_secs).into(),
                    ],
                )
                .await?
            }
            None => {
                self.execute(
                    "DELETE FROM binding_digests WHERE binding_id = ?1",
                    vec![binding_id.into()],
                )
                .await?
            }
        };
        Ok(())
    }

    /// Writes dispatch's results like [`Store::finish_dispatch`], and holds
    /// `held` (each only if its event was still the claim's) in the same
    /// transaction.
    pub async fn finish_dispatch_holding(
        &self,
        claim: &Claim,
        batch: &[Dispatched],
        held: &[NewHeld],
        breaker: BreakerPolicy,
    ) -> StoreResult<usize> {
        let (claim, batch, held) = (claim.clone(), batch.to_vec(), held.to_vec());
        on_backend!(
            self,
            |s| s.finish_dispatch_holding(&claim, &batch, &held, breaker),
            |p| p.finish_dispatch_holding(&claim, &batch, &held, breaker)
        )
    }

    /// Every unreleased held event, and, of each binding and space that
    /// still holds one, those released that were held at or after `since`
    /// (ms), in hold order: what the digest rules look at.
    pub async fn held_events(&self, since: i64) -> StoreResult<Vec<HeldEvent>> {
        // Two halves, so each walks its own index: the unreleased rows
        // (a partial index), then the window's released rows of the
        // bindings and spaces those hold (by time).
        let columns = HeldEvent::COLUMNS;
        self.query(
            &format!(
                "SELECT {columns} FROM held_events WHERE released_at IS NULL
                 UNION ALL
                 SELECT {columns} FROM held_events h
                 WHERE h.held_at >= ?1 AND h.released_at IS NOT NULL AND EXISTS (
                     SELECT 1 FROM held_events u WHERE u.released_at IS NULL
                       AND u.binding_id = h.binding_id AND u.space_key = h.space_key)
                 ORDER BY id"
            ),
            vec![since.into()],
            HeldEvent::from_row,
        )
        .await
    }

    /// Whether any event is held (unreleased) now: the cheap question
    /// dispatch asks between rounds before it reads them.
    pub async fn holds_any(&self) -> StoreResult<bool> {
        Ok(self
            .query_opt(
                "SELECT id FROM held_events WHERE released_at IS NULL LIMIT 1",
                vec![],
                |r| r.get::<i64>("id"),
            )
            .await?
            .is_some())
    }

    /// Where one event was held, for each binding that held it.
    pub async fn event_held(&self, event_id: i64) -> StoreResult<Vec<HeldEvent>> {
        self.select(
            "FROM held_events WHERE event_id = ?1 ORDER BY id",
            vec![event_id.into()],
        )
        .await
    }

    /// The batch event `event_id` is in for `binding_id`, in event order:
    /// the held events released with the same event (its digest), or, while
    /// it is held, those held with it in its space. Empty when the binding
    /// did not hold it.
    pub async fn held_batch(&self, binding_id: i64, event_id: i64) -> StoreResult<Vec<HeldEvent>> {
        self.select(
            "FROM held_events h WHERE h.binding_id = ?1 AND (
                 h.released_with = (SELECT released_with FROM held_events
                                    WHERE binding_id = ?1 AND event_id = ?2)
                 OR (h.released_at IS NULL AND EXISTS (
                     SELECT 1 FROM held_events x WHERE x.binding_id = ?1 AND x.event_id = ?2
                       AND x.released_at IS NULL AND x.space_key = h.space_key)))
             ORDER BY h.event_id",
            vec![binding_id.into(), event_id.into()],
        )
        .await
    }

    /// Claims those of `ids` that are unreleased and not claimed by a live
    /// claim, in event order, with their events.
    pub async fn claim_held(&self, claim: &Claim, ids: &[i64]) -> StoreResult<Vec<ClaimedHeld>> {
        let (claim, ids) = (claim.clone(), ids.to_vec());
        on_backend!(self, |s| s.claim_held(&claim, &ids), |p| p
            .claim_held(&claim, &ids))
    }

    /// Releases held events with what their plugin made of them
    /// (`results`: one per event run on its own, or one for a digest,
    /// under the event that carries it), in one transaction; nothing, and
    /// false, when any of them is no longer the claim's.
    pub async fn finish_held(
        &self,
        claim: &Claim,
        released: &[Released],
        results: &[Dispatched],
        breaker: BreakerPolicy,
    ) -> StoreResult<bool> {
        let (claim, released, results) = (claim.clone(), released.to_vec(), results.to_vec());
        on_backend!(
            self,
            |s| s.finish_held(&claim, &released, &results, breaker),
            |p| p.finish_held(&claim, &released, &results, breaker)
        )
    }

    /// Lets go of the held events `claim` holds (its round failed).
    pub async fn release_held_claim(&self, claim: &Claim) -> StoreResult<()> {
        self.execute(
            "UPDATE held_events SET claim_token = NULL, claim_until = NULL, claimed_by = NULL
             WHERE claim_token = ?1",
            vec![claim.token.into()],
        )
        .await?;
        Ok(())
    }

    /// After a restart of the only server (SQLite): claims on held events
    /// left by the previous run end now. PostgreSQL leaves them to expire.
    pub async fn release_stale_held_claims(&self) -> StoreResult<usize> {
        match &self.backend {
            Backend::Sqlite(s) => s.run(|s| s.release_stale_held_claims()).await,
            Backend::Postgres(_) => Ok(0),
        }
    }

    /// Forgets released held events held before `before` (ms); how many.
    pub async fn purge_released_held(&self, before: i64) -> StoreResult<u64> {
        self.execute(
            "DELETE FROM held_events WHERE released_at IS NOT NULL AND held_at < ?1",
            vec![before.into()],
        )
        .await
    }
}
