//! Delivery claims on PostgreSQL: how replicas share the outbox without
//! sending anything twice or out of order (the rules are in
//! [`crate::store::claims`]; `sqlite/claims.rs` is the same on one server).
//!
//! A delivery round, in one transaction:
//! 1. takes its turn (`pg_advisory_xact_lock`, waiting at most 10 s): rounds
//!    of all replicas run one at a time, which costs milliseconds and means
//!    two rounds never lease lanes in opposite orders (a deadlock) or admit
//!    from the same rate slots;
//! 2. reads the database's clock once, the watermark (the oldest event not
//!    yet dispatched: deliveries of later events wait, so a lane keeps the
//!    events' order) and the oldest deliveries still to send;
//! 3. keeps the head of each lane that no live lease of another round
//!    holds, that is due, and that Slack's rates admit; the rate rows are
//!    locked in key order and advanced in memory as heads are admitted;
//! 4. leases those lanes (an upsert that only takes an expired lease or its
//!    own), redoing the walk without any lane it could not take, writes the
//!    new arrival times back and marks the deliveries `sending`.
//!
//! A result is recorded ([`PgStore::finish_attempts`]) only for a delivery
//! that still carries the round's token: once another round has taken the
//! lane over after the lease ended, the stale round records nothing.
//!
//! This module must never record a result without the token check, nor
//! advance a rate for a delivery it did not claim.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use tokio_postgres::Row;

use super::{ASYNC_COMMIT, DB_NOW, DELIVERY_ROUND_LOCK, PgResult, PgStore, count};
use crate::model::Action;
use crate::store::claims::{RateKeys, admit, rate_keys};
use crate::store::{
    AttemptResult, Claim, Claimed, DeliveryRound, HealthChange, Outcome, RatePolicy, StoreResult,
    from_json, now_ms,
};

/// Deliveries looked at per round (as on SQLite).
const WINDOW: i64 = 500;

/// The oldest deliveries still to send, by event then id, of events older
/// than the watermark.
const CANDIDATES: &str = "SELECT id, event_id, destination, action, dry_run, lane, source, attempts, uncertain, next_try_at, created_at, connection, status
     FROM deliveries
     WHERE status IN ('pending', 'sending') AND event_id < $1
     ORDER BY event_id, id LIMIT $2";

/// Takes a lane for the round: a new lease, an expired one, or its own.
const LEASE: &str = "INSERT INTO lane_leases (lane, replica, token, until_ms)
     SELECT lane, $2, $3, $4 FROM unnest($1::text[]) AS u(lane) ORDER BY lane
     ON CONFLICT (lane) DO UPDATE SET replica = excluded.replica, token = excluded.token, until_ms = excluded.until_ms
     WHERE lane_leases.until_ms <= $5 OR lane_leases.token = excluded.token
     RETURNING lane";

/// Sets connections' health. Rounds of several replicas report on the same
/// connections: only rows that change are locked, in name order, so two
/// rounds never lock them in opposite orders (a deadlock), and a healthy
/// connection reported healthy again is not written at all.
const SET_HEALTH: &str =
    "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[]) AS u(name, error)),
     locked AS (
       SELECT c.name FROM connections c JOIN u ON c.name = u.name
       WHERE c.health_error IS DISTINCT FROM u.error
       ORDER BY c.name
       FOR UPDATE OF c
     )
     UPDATE connections SET health_error = u.error FROM u, locked
     WHERE connections.name = u.name AND connections.name = locked.name";

/// One candidate delivery.
struct Candidate {
    claimed: Claimed,
    /// The action as stored (decoded when claimed).
    action: String,
    /// Its rate keys, if its action decodes and is a Slack message.
    keys: Option<RateKeys>,
    next_try_at: i64,
    /// It was `sending`: a round that ended without recording it may have sent it.
    in_flight: bool,
}

fn candidate(r: &Row) -> PgResult<Candidate> {
    let action: String = r.try_get(3)?;
    let status: String = r.try_get(12)?;
    let mut claimed = Claimed {
        id: r.try_get(0)?,
        event_id: r.try_get(1)?,
        destination: r.try_get(2)?,
        action: Action::DmSlack {
            email: String::new(),
            text: String::new(),
            blocks: None,
        },
        dry_run: r.try_get(4)?,
        lane: r.try_get(5)?,
        source: r.try_get(6)?,
        attempts: count(r.try_get(7)?),
        uncertain: r.try_get(8)?,
        due: true,
        created_at: r.try_get(10)?,
        connection: r.try_get(11)?,
    };
    // The rate is checked on the decoded action; a row that does not decode
    // has no rate (claiming it then reports the corrupt row, as on SQLite).
    let keys = from_json::<Action>("delivery action", &action)
        .ok()
        .and_then(|a| {
            claimed.action = a;
            rate_keys(&claimed)
        });
    Ok(Candidate {
        claimed,
        action,
        keys,
        next_try_at: r.try_get(9)?,
        in_flight: status == "sending",
    })
}

/// What a walk over the candidates chose.
struct Plan {
    /// Indexes of the heads to claim, in candidate order.
    picks: Vec<usize>,
    /// Arrival times after admitting the picks.
    tats: HashMap<String, i64>,
    /// How long until a held-back head may go.
    wait_ms: Option<i64>,
}

/// Walks the candidates keeping the head of each lane that is free, due and
/// admitted by the rates, at most `max`.
fn walk(
    candidates: &[Candidate],
    unavailable: &HashSet<String>,
    stored_tats: &HashMap<String, i64>,
    rates: &RatePolicy,
    now: i64,
    max: usize,
) -> Plan {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut tats = stored_tats.clone();
    let mut wait: Option<i64> = None;
    let mut hold = |ms: i64| wait = Some(wait.map_or(ms, |w: i64| w.min(ms)));
    let mut picks = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        if picks.len() >= max {
            break;
        }
        let lane = c.claimed.lane.as_str();
        if !seen.insert(lane) || unavailable.contains(lane) {
            continue;
        }
        if c.next_try_at > now {
            hold(c.next_try_at - now);
            continue;
        }
        if let Some(keys) = &c.keys {
            let channel = tats.get(&keys.channel).copied().unwrap_or(0);
            let workspace = tats.get(&keys.workspace).copied().unwrap_or(0);
            match admit(rates, channel, workspace, now) {
                Ok((channel, workspace)) => {
                    tats.insert(keys.channel.clone(), channel);
                    tats.insert(keys.workspace.clone(), workspace);
                }
                Err(ms) => {
                    hold(ms);
                    continue;
                }
            }
        }
        picks.push(i);
    }
    Plan {
        picks,
        tats,
        wait_ms: wait,
    }
}

impl PgStore {
    /// See `Store::claim_deliveries` and the module documentation.
    pub async fn claim_deliveries(
        &self,
        claim: &Claim,
        rates: RatePolicy,
        max: usize,
    ) -> StoreResult<DeliveryRound> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // A round that cannot get its turn in time fails (and is tried
            // again) rather than queueing behind a stuck one indefinitely.
            tx.batch_execute(&format!(
                "SET LOCAL lock_timeout = '10s'; SELECT pg_advisory_xact_lock({DELIVERY_ROUND_LOCK})"
            ))
            .await?;
            let now: i64 = tx
                .query_one(&format!("SELECT {DB_NOW}"), &[])
                .await?
                .try_get(0)?;
            let watermark: Option<i64> = tx
                .query_one(
                    "SELECT min(id) FROM events WHERE status = 'pending' AND attempts = 0",
                    &[],
                )
                .await?
                .try_get(0)?;
            let leased = tx
                .prepare_cached("SELECT lane FROM lane_leases WHERE until_ms > $1 AND token <> $2")
                .await?;
            let mut unavailable: HashSet<String> = tx
                .query(&leased, &[&now, &claim.token])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let select = tx.prepare_cached(CANDIDATES).await?;
            let candidates = tx
                .query(&select, &[&watermark.unwrap_or(i64::MAX), &WINDOW])
                .await?
                .iter()
                .map(candidate)
                .collect::<PgResult<Vec<_>>>()?;

            // The rate rows every possible head counts against, locked in
            // key order (and created at 0 when new).
            let mut keys: BTreeSet<&str> = BTreeSet::new();
            let mut heads: HashSet<&str> = HashSet::new();
            for c in &candidates {
                if heads.insert(c.claimed.lane.as_str())
                    && !unavailable.contains(&c.claimed.lane)
                    && c.next_try_at <= now
                    && let Some(k) = &c.keys
                {
                    keys.insert(&k.channel);
                    keys.insert(&k.workspace);
                }
            }
            let keys: Vec<&str> = keys.into_iter().collect();
            let mut stored_tats: HashMap<String, i64> = HashMap::new();
            if !keys.is_empty() {
                let create = tx
                    .prepare_cached(
                        "INSERT INTO rate_limits (key, tat_ms) SELECT k, 0 FROM unnest($1::text[]) AS u(k) ORDER BY k ON CONFLICT DO NOTHING",
                    )
                    .await?;
                tx.execute(&create, &[&keys]).await?;
                let lock = tx
                    .prepare_cached(
                        "SELECT key, tat_ms FROM rate_limits WHERE key = ANY($1) ORDER BY key FOR UPDATE",
                    )
                    .await?;
                for r in tx.query(&lock, &[&keys]).await? {
                    stored_tats.insert(r.try_get(0)?, r.try_get(1)?);
                }
            }

            // Walk, lease, and walk again without the lanes another round
            // took meanwhile (rare: a lease renewed after it had ended).
            let lease = tx.prepare_cached(LEASE).await?;
            let until = now + claim.lease_ms;
            let plan = loop {
                let plan = walk(&candidates, &unavailable, &stored_tats, &rates, now, max);
                let lanes: Vec<&str> = plan
                    .picks
                    .iter()
                    .map(|&i| candidates[i].claimed.lane.as_str())
                    .collect();
                if lanes.is_empty() {
                    break plan;
                }
                let got: HashSet<String> = tx
                    .query(&lease, &[&lanes, &claim.replica, &claim.token, &until, &now])
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                let lost: Vec<&str> = lanes.into_iter().filter(|l| !got.contains(*l)).collect();
                if lost.is_empty() {
                    break plan;
                }
                unavailable.extend(lost.into_iter().map(str::to_owned));
            };

            let changed: Vec<(&String, &i64)> = plan
                .tats
                .iter()
                .filter(|(k, v)| stored_tats.get(*k) != Some(*v))
                .collect();
            if !changed.is_empty() {
                let put = tx
                    .prepare_cached(
                        "UPDATE rate_limits SET tat_ms = u.tat FROM unnest($1::text[], $2::bigint[]) AS u(key, tat) WHERE rate_limits.key = u.key",
                    )
                    .await?;
                tx.execute(
                    &put,
                    &[
                        &changed.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                        &changed.iter().map(|(_, v)| **v).collect::<Vec<_>>(),
                    ],
                )
                .await?;
            }

            let mut claimed = Vec::with_capacity(plan.picks.len());
            if !plan.picks.is_empty() {
                let ids: Vec<i64> = plan.picks.iter().map(|&i| candidates[i].claimed.id).collect();
                let mark = tx
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'sending', uncertain = (uncertain OR status = 'sending'),
                           claim_token = $2, claimed_by = $3
                         WHERE id = ANY($1) AND status IN ('pending', 'sending')
                         RETURNING id",
                    )
                    .await?;
                let marked: HashSet<i64> = tx
                    .query(&mark, &[&ids, &claim.token, &claim.replica])
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                let mut idle = Vec::new();
                for &i in &plan.picks {
                    let c = &candidates[i];
                    if !marked.contains(&c.claimed.id) {
                        // Finished by its previous holder after this round
                        // read it: nothing to send in this lane now.
                        idle.push(c.claimed.lane.as_str());
                        continue;
                    }
                    let mut d = c.claimed.clone();
                    d.action = from_json("delivery action", &c.action)?;
                    d.uncertain |= c.in_flight;
                    d.due = true;
                    claimed.push(d);
                }
                if !idle.is_empty() {
                    tx.execute(
                        "DELETE FROM lane_leases WHERE token = $1 AND lane = ANY($2)",
                        &[&claim.token, &idle],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(DeliveryRound {
                claimed,
                wait_ms: plan.wait_ms,
            })
        })
        .await
    }

    /// Records the attempts of deliveries `claim` still holds and the
    /// health they showed, in one transaction, and lets go of the claim's
    /// lanes; returns how many attempts were recorded.
    pub async fn finish_attempts(
        &self,
        claim: &Claim,
        attempts: &[AttemptResult],
        health: &[HealthChange],
    ) -> StoreResult<usize> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.batch_execute(ASYNC_COMMIT).await?;
            // Leases first: a round taking a lane over locks its lease, then
            // its delivery; the same order here cannot deadlock with it.
            tx.execute("DELETE FROM lane_leases WHERE token = $1", &[&claim.token])
                .await?;
            let mut recorded = 0;
            for a in attempts {
                recorded += record_attempt(&tx, claim, a).await? as usize;
            }
            if !health.is_empty() {
                // The last word per connection, applied in one statement.
                let last: BTreeMap<&str, Option<&str>> = health
                    .iter()
                    .map(|h| (h.connection.as_str(), h.error.as_deref()))
                    .collect();
                let stmt = tx.prepare_cached(SET_HEALTH).await?;
                tx.execute(
                    &stmt,
                    &[
                        &last.keys().copied().collect::<Vec<_>>(),
                        &last.values().copied().collect::<Vec<_>>(),
                    ],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(recorded)
        })
        .await
    }

    /// Extends the lease of everything `claim` holds to the database's now
    /// plus the lease; returns how many rows it still holds.
    pub async fn renew(&self, claim: &Claim) -> StoreResult<usize> {
        self.run(async {
            let n: i64 = self
                .client()
                .await?
                .query_one(
                    &format!(
                        "WITH now AS MATERIALIZED (SELECT {DB_NOW} AS ms),
                         e AS (UPDATE events SET claim_until = (SELECT ms FROM now) + $2
                               WHERE claim_token = $1 AND status = 'pending' RETURNING 1),
                         l AS (UPDATE lane_leases SET until_ms = (SELECT ms FROM now) + $2
                               WHERE token = $1 RETURNING 1)
                         SELECT (SELECT count(*) FROM e) + (SELECT count(*) FROM l)"
                    ),
                    &[&claim.token, &claim.lease_ms],
                )
                .await?
                .try_get(0)?;
            Ok(n as usize)
        })
        .await
    }

    /// Lets go of everything `claim` holds (a clean stop): its lanes, its
    /// events, and its deliveries, which go back to pending as uncertain
    /// (they may have been sent).
    pub async fn release(&self, claim: &Claim) -> StoreResult<()> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.batch_execute(ASYNC_COMMIT).await?;
            tx.execute("DELETE FROM lane_leases WHERE token = $1", &[&claim.token])
                .await?;
            tx.execute(
                "UPDATE deliveries SET status = 'pending', uncertain = true, claim_token = NULL, claimed_by = NULL
                 WHERE claim_token = $1 AND status = 'sending'",
                &[&claim.token],
            )
            .await?;
            tx.execute(
                "UPDATE events SET claim_token = NULL, claim_until = NULL WHERE claim_token = $1",
                &[&claim.token],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// See `Store::release_replica`. The other replicas are told at once
    /// (`NOTIFY`), so they take the work within their next round.
    pub async fn release_replica(&self, replica: &str) -> StoreResult<usize> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Leases first, as in `finish_attempts`: the order a round
            // taking a lane over locks them in.
            let mut n = tx
                .execute("DELETE FROM lane_leases WHERE replica = $1", &[&replica])
                .await?;
            n += tx
                .execute(
                    "UPDATE deliveries SET status = 'pending', uncertain = true, claim_token = NULL, claimed_by = NULL
                     WHERE claimed_by = $1 AND status = 'sending'",
                    &[&replica],
                )
                .await?;
            n += tx
                .execute(
                    "UPDATE events SET claim_token = NULL, claim_until = NULL
                     WHERE claimed_by = $1 AND claim_token IS NOT NULL",
                    &[&replica],
                )
                .await?;
            if n > 0 {
                tx.batch_execute("NOTIFY pagehook_events; NOTIFY pagehook_deliveries")
                    .await?;
            }
            tx.commit().await?;
            Ok(n as usize)
        })
        .await
    }

    /// Nothing to do on PostgreSQL: the claims in the database may be other
    /// live replicas'; a dead replica's leases end by themselves and its
    /// work is taken over then.
    pub async fn release_stale_claims(&self) -> StoreResult<usize> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::super::events::tests::stored_events;
    use super::super::outbox::tests::{BREAKER, dispatched, slack};
    use super::super::testing::fresh;
    use super::*;
    use crate::store::{DeliveryStatus, EventStatus, NewDelivery};
    use pagehook_fakes::postgres::TestPostgres;

    /// No rate holds anything back.
    fn unlimited() -> RatePolicy {
        RatePolicy::per_second(1_000_000.0, 1_000_000.0)
    }

    /// Stores one event per entry, dispatched with its deliveries (`None`:
    /// left pending, claimed by nobody); returns the events' ids.
    async fn outbox(store: &PgStore, events: Vec<Option<Vec<NewDelivery>>>) -> Vec<i64> {
        let ids = stored_events(store, "e", events.len()).await;
        let dispatch = Claim::new("dispatch", 60_000);
        store.claim_events(&dispatch, 1000).await.unwrap();
        let batch: Vec<_> = ids
            .iter()
            .zip(events)
            .filter_map(|(&id, d)| d.map(|d| dispatched(id, d)))
            .collect();
        store
            .finish_dispatch(&dispatch, &batch, BREAKER)
            .await
            .unwrap();
        store.release(&dispatch).await.unwrap();
        ids
    }

    fn sent(id: i64) -> AttemptResult {
        AttemptResult {
            delivery_id: id,
            started_at: 1,
            outcome: Outcome::Sent {
                result: "ts".into(),
                thread: None,
            },
            latency_ms: 2,
            sent_at: None,
        }
    }

    fn ids(round: &DeliveryRound) -> Vec<i64> {
        round.claimed.iter().map(|c| c.id).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_head_per_lane_leases_hold_and_a_stale_claim_records_nothing() {
        let (store, db) = fresh().await;
        outbox(
            &store,
            vec![
                Some(vec![slack("#x", "x"), slack("#x", "x")]),
                Some(vec![slack("#y", "y")]),
            ],
        )
        .await;
        let all = store.deliveries(None, 10).await.unwrap();
        let (d0, d1, d2) = (all[2].id, all[1].id, all[0].id);

        let a = Claim::new("a", 60_000);
        let round = store.claim_deliveries(&a, unlimited(), 10).await.unwrap();
        assert_eq!(ids(&round), [d0, d2], "the head of each lane, in order");
        assert!(round.claimed.iter().all(|c| c.due && !c.uncertain));
        assert_eq!(
            store
                .deliveries(Some(DeliveryStatus::Sending), 10)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(store.renew(&a).await.unwrap(), 2, "two lanes leased");

        let b = Claim::new("b", 60_000);
        let held = store.claim_deliveries(&b, unlimited(), 10).await.unwrap();
        assert!(held.claimed.is_empty(), "both lanes are a's: {held:?}");

        // a records one attempt and drops its lanes; the other delivery it
        // held stays `sending`, so b takes it up as uncertain.
        assert_eq!(
            store.finish_attempts(&a, &[sent(d0)], &[]).await.unwrap(),
            1
        );
        let round = store.claim_deliveries(&b, unlimited(), 10).await.unwrap();
        assert_eq!(ids(&round), [d1, d2]);
        assert_eq!(
            round
                .claimed
                .iter()
                .map(|c| c.uncertain)
                .collect::<Vec<_>>(),
            [false, true]
        );
        // a is too late for it now: nothing is recorded.
        assert_eq!(
            store.finish_attempts(&a, &[sent(d2)], &[]).await.unwrap(),
            0
        );
        assert!(store.attempts(d2).await.unwrap().is_empty());

        // b stalls past its lease: c takes the lanes over, b records nothing.
        TestPostgres::shared().psql(&db, "UPDATE lane_leases SET until_ms = 0");
        let c = Claim::new("c", 60_000);
        let round = store.claim_deliveries(&c, unlimited(), 10).await.unwrap();
        assert_eq!(ids(&round), [d1, d2]);
        assert!(round.claimed.iter().all(|d| d.uncertain));
        assert_eq!(
            store.renew(&b).await.unwrap(),
            0,
            "b holds nothing any more"
        );
        assert_eq!(
            store
                .finish_attempts(&b, &[sent(d1), sent(d2)], &[])
                .await
                .unwrap(),
            0
        );
        let acme = crate::store::ConnectionRecord::new(
            "acme",
            crate::store::ConnectionKind::Slack,
            "https://slack",
        );
        store.add_connection(&acme).await.unwrap();
        store
            .set_connection_health("acme", Some("refused"))
            .await
            .unwrap();
        let change = |error: Option<&str>| crate::store::HealthChange {
            connection: "acme".into(),
            error: error.map(str::to_owned),
        };
        // The last word counts.
        let health = [change(Some("token revoked")), change(None)];
        assert_eq!(
            store
                .finish_attempts(&c, &[sent(d1), sent(d2)], &health)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store.connection("acme").await.unwrap().unwrap().health,
            None
        );
        assert_eq!(store.attempts(d2).await.unwrap().len(), 1);
        assert_eq!(store.first_attempt_at(d2).await.unwrap(), Some(1));
        assert_eq!(
            store
                .deliveries(Some(DeliveryStatus::Sent), 10)
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(
            store
                .claim_deliveries(&c, unlimited(), 10)
                .await
                .unwrap()
                .claimed
                .is_empty()
        );
        assert_eq!(
            TestPostgres::shared().psql(&db, "SELECT count(*) FROM lane_leases"),
            "0"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deliveries_of_events_after_an_undispatched_one_wait() {
        let (store, _db) = fresh().await;
        let ids = outbox(
            &store,
            vec![
                Some(vec![slack("#x", "x")]),
                None,
                Some(vec![slack("#y", "y")]),
            ],
        )
        .await;
        let a = Claim::new("a", 60_000);
        let round = store.claim_deliveries(&a, unlimited(), 10).await.unwrap();
        assert_eq!(
            round.claimed.iter().map(|c| c.event_id).collect::<Vec<_>>(),
            [ids[0]]
        );
        // The middle event is dispatched (with nothing to send): the last one's go.
        let d = Claim::new("dispatch", 60_000);
        assert_eq!(store.claim_events(&d, 10).await.unwrap().len(), 1);
        assert!(
            store
                .close_event(&d, ids[1], EventStatus::Ignored, None)
                .await
                .unwrap()
        );
        // A new round (a new token): lane x is still a's.
        let b = Claim::new("b", 60_000);
        let round = store.claim_deliveries(&b, unlimited(), 10).await.unwrap();
        assert_eq!(
            round.claimed.iter().map(|c| c.event_id).collect::<Vec<_>>(),
            [ids[2]]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_channels_rate_holds_across_claims_and_rounds_stop_at_max() {
        let (store, _db) = fresh().await;
        // Two threads in one channel (two lanes), and another channel.
        outbox(
            &store,
            vec![Some(vec![
                slack("#eng", "eng/t1"),
                slack("#eng", "eng/t2"),
                slack("#ops", "ops"),
            ])],
        )
        .await;
        let all = store.deliveries(None, 10).await.unwrap();
        let (t1, t2, ops) = (all[2].id, all[1].id, all[0].id);
        let rates = RatePolicy::per_second(4.0, 100.0);

        let a = Claim::new("a", 60_000);
        let round = store.claim_deliveries(&a, rates, 1).await.unwrap();
        assert_eq!(ids(&round), [t1], "max 1");
        let round = store.claim_deliveries(&a, rates, 10).await.unwrap();
        assert_eq!(ids(&round), [ops], "#eng's second message waits");
        let wait = round.wait_ms.expect("a wait");
        assert!(
            (100..=250).contains(&wait),
            "about the channel's gap: {wait}"
        );

        let b = Claim::new("b", 60_000);
        let round = store.claim_deliveries(&b, rates, 10).await.unwrap();
        assert!(
            round.claimed.is_empty(),
            "the rate is the cluster's, not a's"
        );
        assert!(round.wait_ms.is_some_and(|w| w > 0 && w <= 250));

        tokio::time::sleep(Duration::from_millis(260)).await;
        let round = store.claim_deliveries(&b, rates, 10).await.unwrap();
        assert_eq!(ids(&round), [t2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_rounds_share_the_lanes_and_release_gives_them_back() {
        let (store, _db) = fresh().await;
        let lanes: Vec<NewDelivery> = (0..60)
            .map(|i| slack(&format!("#c{i}"), &format!("lane{i}")))
            .collect();
        outbox(&store, vec![Some(lanes)]).await;
        let (a, b) = (Claim::new("a", 60_000), Claim::new("b", 60_000));
        let (ra, rb) = tokio::join!(
            store.claim_deliveries(&a, unlimited(), 40),
            store.claim_deliveries(&b, unlimited(), 40)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let sa: HashSet<i64> = ids(&ra).into_iter().collect();
        let sb: HashSet<i64> = ids(&rb).into_iter().collect();
        assert!(sa.is_disjoint(&sb));
        assert_eq!(sa.len() + sb.len(), 60);

        store.release(&a).await.unwrap();
        assert_eq!(store.release_stale_claims().await.unwrap(), 0);
        let c = Claim::new("c", 60_000);
        let rc = store.claim_deliveries(&c, unlimited(), 100).await.unwrap();
        assert_eq!(ids(&rc).into_iter().collect::<HashSet<_>>(), sa);
        assert!(
            rc.claimed.iter().all(|d| d.uncertain),
            "released while sending"
        );
    }
}
