//! What dispatch writes, on PostgreSQL: deliveries, the audit log, plugin
//! failures and the breakers, in the one transaction that marks the events
//! dispatched, and only for events the round still holds.
//!
//! A batch is written with a handful of statements whatever its size
//! (arrays unnested server-side), so dispatch costs one round trip per kind
//! of row, not one per row. This module must never write the results of an
//! event whose claim token is no longer the round's: another replica has it.

use std::collections::HashSet;

use super::pipelined::Tx;
use super::{ASYNC_COMMIT, PgResult, PgStore};
use crate::store::outbox::{apply_breakers_sql, breaker_steps};
use crate::store::search::Dialect;
use crate::store::{
    AuditRecord, BreakerPolicy, Claim, Dispatched, FailureRecord, NewDelivery, NewHeld,
    StoreResult, json, now_ms,
};

/// Inserts deliveries from arrays, keeping their order in the ids (a lane
/// sends by event, then by id).
const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (event_id, binding_id, plugin, kind, destination, action, dry_run, created_at, lane, source, connection)
     SELECT event_id, binding_id, plugin, kind, destination, action, dry_run, $11, lane, source, connection
     FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::text[], $9::text[], $10::text[])
       WITH ORDINALITY AS u(event_id, binding_id, plugin, kind, destination, action, dry_run, lane, source, connection, ord)
     ORDER BY ord
     RETURNING id";

/// Columns of [`INSERT_DELIVERIES`]' arrays.
#[derive(Default)]
struct DeliveryArrays {
    event_id: Vec<i64>,
    binding_id: Vec<i64>,
    plugin: Vec<String>,
    kind: Vec<&'static str>,
    destination: Vec<String>,
    action: Vec<String>,
    dry_run: Vec<bool>,
    lane: Vec<String>,
    source: Vec<String>,
    connection: Vec<Option<String>>,
}

impl DeliveryArrays {
    fn push(&mut self, event_id: i64, d: &NewDelivery) {
        self.event_id.push(event_id);
        self.binding_id.push(d.binding_id);
        self.plugin.push(d.plugin.clone());
        self.kind.push(d.action.kind());
        self.destination.push(d.destination.clone());
        self.action.push(json(&d.action));
        self.dry_run.push(d.dry_run);
        self.lane.push(d.lane.clone());
        self.source.push(d.source.clone());
        self.connection.push(d.connection.clone());
    }

    async fn insert(
        &self,
        tx: &impl deadpool_postgres::GenericClient,
        now: i64,
    ) -> PgResult<Vec<i64>> {
        let stmt = tx.prepare_cached(INSERT_DELIVERIES).await?;
        let rows = tx
            .query(
                &stmt,
                &[
                    &self.event_id,
                    &self.binding_id,
                    &self.plugin,
                    &self.kind,
                    &self.destination,
                    &self.action,
                    &self.dry_run,
                    &self.lane,
                    &self.source,
                    &self.connection,
                    &now,
                ],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

impl PgStore {
    /// Queues a message Pagehook itself sends (a new connection's greeting,
    /// a new binding's announcement) through the outbox, hung off an event
    /// of its own (`pagehook_notice`, never dispatched to plugins). Returns
    /// the delivery's id.
    pub async fn enqueue_notice(&self, what: &str, d: &NewDelivery) -> StoreResult<i64> {
        let now = now_ms();
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // The event's id comes from its sequence before the insert, so
            // the key (`pagehook-notice:<ms>:<id>`) is unique across replicas.
            let event_id: i64 = tx
                .query_one(
                    "WITH n AS (SELECT nextval(pg_get_serial_sequence('events', 'id')) AS id)
                     INSERT INTO events (id, key, source, name, received_at, payload, status, dispatched_at)
                     SELECT n.id, 'pagehook-notice:' || $1::bigint || ':' || n.id, 'pagehook', 'pagehook_notice', $1, $2, 'dispatched', $1
                     FROM n RETURNING id",
                    &[&now, &json(&serde_json::json!({ "notice": what }))],
                )
                .await?
                .try_get(0)?;
            let mut arrays = DeliveryArrays::default();
            arrays.push(event_id, d);
            let ids = arrays.insert(&tx, now).await?;
            tx.execute("SELECT pg_notify('pagehook_deliveries', '')", &[])
                .await?;
            tx.commit().await?;
            Ok(ids[0])
        })
        .await
    }

    /// Writes dispatch's results for the events of `batch` that `claim`
    /// still holds and marks them dispatched, in one transaction; returns
    /// how many were written. The other events belong to another round now
    /// and nothing of theirs is written.
    pub async fn finish_dispatch(
        &self,
        claim: &Claim,
        batch: &[Dispatched],
        breaker: BreakerPolicy,
    ) -> StoreResult<usize> {
        self.finish_dispatch_holding(claim, batch, &[], breaker)
            .await
    }

    /// [`Self::finish_dispatch`], holding `held` for their bindings in the
    /// same transaction (each only if its event was still the claim's).
    ///
    /// Most often every event is still the claim's, so the results of all of
    /// them are sent with the transaction's start and the marking, in one
    /// round trip, and committed (a second) if the marking took every
    /// event. If it did not (the claim ran out and another round took
    /// some), or that transaction failed, it is rolled back and the marking
    /// is done again, writing only what it took.
    pub async fn finish_dispatch_holding(
        &self,
        claim: &Claim,
        batch: &[Dispatched],
        held: &[NewHeld],
        breaker: BreakerPolicy,
    ) -> StoreResult<usize> {
        if batch.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        self.run(async {
            let tx = Tx::new(self.client().await?);
            let all: Vec<&Dispatched> = batch.iter().collect();
            // The transaction's start (committing without waiting for the
            // disk: a lost commit leaves the events pending, to be run
            // again), the marking and every result: sent together.
            let whole = futures::future::try_join3(
                tx.begin(ASYNC_COMMIT),
                mark_dispatched(&*tx, claim, batch, now),
                write_results_holding(&*tx, &all, held.iter(), now, breaker),
            )
            .await;
            if let Ok(((), still_ours, ())) = &whole
                && still_ours.len() == batch.len()
            {
                tx.commit().await?;
                return Ok(batch.len());
            }
            // Nothing of it stays; a lost connection fails the next step.
            let _ = tx.rollback().await;

            let ((), still_ours) = futures::future::try_join(
                tx.begin(ASYNC_COMMIT),
                mark_dispatched(&*tx, claim, batch, now),
            )
            .await?;
            let written: Vec<&Dispatched> = batch
                .iter()
                .filter(|d| still_ours.contains(&d.event_id))
                .collect();
            if written.is_empty() {
                tx.commit().await?;
                return Ok(0);
            }
            let held = held.iter().filter(|h| still_ours.contains(&h.event_id));
            write_results_holding(&*tx, &written, held, now, breaker).await?;
            tx.commit().await?;
            Ok(written.len())
        })
        .await
    }
}

/// [`write_results`], then `held` held for their bindings.
async fn write_results_holding<'a>(
    tx: &impl deadpool_postgres::GenericClient,
    written: &[&Dispatched],
    held: impl Iterator<Item = &'a NewHeld>,
    now: i64,
    breaker: BreakerPolicy,
) -> PgResult<()> {
    write_results(tx, written, now, breaker).await?;
    super::digests::hold(tx, held, now).await
}

/// Marks the events of `batch` that `claim` still holds dispatched (with the
/// event as dispatch saw it) and returns their ids.
async fn mark_dispatched(
    tx: &impl deadpool_postgres::GenericClient,
    claim: &Claim,
    batch: &[Dispatched],
    now: i64,
) -> PgResult<HashSet<i64>> {
    let ids: Vec<i64> = batch.iter().map(|d| d.event_id).collect();
    let events: Vec<String> = batch.iter().map(|d| json(&d.event)).collect();
    let mark = tx
        .prepare_cached(
            "UPDATE events SET status = 'dispatched', event = u.event, error = NULL, attempts = attempts + 1,
               dispatched_at = $3, claim_token = NULL, claim_until = NULL
             FROM unnest($1::bigint[], $2::text[]) AS u(id, event)
             WHERE events.id = u.id AND events.claim_token = $4 AND events.status = 'pending'
             RETURNING events.id",
        )
        .await?;
    let marked = tx
        .query(&mark, &[&ids, &events, &now, &claim.token])
        .await?;
    Ok(marked
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Writes what dispatch (or a digest's release) decided for some events:
/// their deliveries, the audit line of every action, failed calls, and what
/// the calls do to their plugins' breakers, and, when it wrote a delivery,
/// the notice that wakes every replica's senders at commit.
pub(super) async fn write_results(
    tx: &impl deadpool_postgres::GenericClient,
    written: &[&Dispatched],
    now: i64,
    breaker: BreakerPolicy,
) -> PgResult<()> {
    let mut deliveries = DeliveryArrays::default();
    for d in written {
        for del in &d.deliveries {
            deliveries.push(d.event_id, del);
        }
    }
    let wrote = !deliveries.event_id.is_empty();
    let deliveries = async {
        if wrote {
            deliveries.insert(tx, now).await?;
            // Wakes the other replicas' senders at commit.
            tx.execute("SELECT pg_notify('pagehook_deliveries', '')", &[])
                .await?;
        }
        PgResult::Ok(())
    };

    let audit: Vec<(i64, &AuditRecord)> = written
        .iter()
        .flat_map(|d| d.audit.iter().map(|a| (d.event_id, a)))
        .collect();
    let audit = async {
        if audit.is_empty() {
            return PgResult::Ok(());
        }
        let stmt = tx
            .prepare_cached(
                "INSERT INTO audit (at, event_id, binding_id, plugin, sha256, kind, destination, verdict, reason)
                 SELECT $1, event_id, binding_id, plugin, sha256, kind, destination, verdict, reason
                 FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
                   WITH ORDINALITY AS u(event_id, binding_id, plugin, sha256, kind, destination, verdict, reason, ord)
                 ORDER BY ord",
            )
            .await?;
        let col =
            |f: fn(&AuditRecord) -> &str| audit.iter().map(|(_, a)| f(a)).collect::<Vec<&str>>();
        tx.execute(
            &stmt,
            &[
                &now,
                &audit.iter().map(|(e, _)| *e).collect::<Vec<i64>>(),
                &audit
                    .iter()
                    .map(|(_, a)| a.binding_id)
                    .collect::<Vec<i64>>(),
                &col(|a| &a.plugin),
                &col(|a| &a.sha256),
                &col(|a| &a.kind),
                &col(|a| &a.destination),
                &col(|a| &a.verdict),
                &audit
                    .iter()
                    .map(|(_, a)| a.reason.as_deref())
                    .collect::<Vec<Option<&str>>>(),
            ],
        )
        .await?;
        Ok(())
    };

    let failures: Vec<(i64, &FailureRecord)> = written
        .iter()
        .flat_map(|d| d.failures.iter().map(|f| (d.event_id, f)))
        .collect();
    let failures = async {
        if failures.is_empty() {
            return PgResult::Ok(());
        }
        let stmt = tx
            .prepare_cached(
                "INSERT INTO failures (at, event_id, binding_id, plugin, code, message, log)
                 SELECT $1, event_id, binding_id, plugin, code, message, log
                 FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
                   WITH ORDINALITY AS u(event_id, binding_id, plugin, code, message, log, ord)
                 ORDER BY ord",
            )
            .await?;
        let col = |f: fn(&FailureRecord) -> &str| {
            failures.iter().map(|(_, x)| f(x)).collect::<Vec<&str>>()
        };
        tx.execute(
            &stmt,
            &[
                &now,
                &failures.iter().map(|(e, _)| *e).collect::<Vec<i64>>(),
                &failures
                    .iter()
                    .map(|(_, f)| f.binding_id)
                    .collect::<Vec<i64>>(),
                &col(|f| &f.plugin),
                &col(|f| &f.code),
                &col(|f| &f.message),
                &col(|f| &f.log),
            ],
        )
        .await?;
        Ok(())
    };

    let steps = breaker_steps(written.iter().flat_map(|d| d.calls.iter()));
    let breakers = async {
        if steps.is_empty() {
            return PgResult::Ok(());
        }
        let stmt = tx
            .prepare_cached(&Dialect::Postgres.text(&apply_breakers_sql(Dialect::Postgres)))
            .await?;
        tx.execute(
            &stmt,
            &[
                &steps.iter().map(|s| s.plugin.as_str()).collect::<Vec<_>>(),
                &steps.iter().map(|s| s.reset).collect::<Vec<_>>(),
                &steps.iter().map(|s| s.failed).collect::<Vec<_>>(),
                &steps.iter().map(|s| s.error.as_deref()).collect::<Vec<_>>(),
                &i64::from(breaker.threshold),
                &(now + breaker.cooldown_ms),
            ],
        )
        .await?;
        Ok(())
    };

    // The statements go to the server together (in one round trip once they
    // are prepared); none depends on another.
    futures::future::try_join4(deliveries, audit, failures, breakers).await?;
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::events::tests::stored_events;
    use super::super::testing::fresh;
    use super::*;
    use crate::model::{Action, Event, EventKind};
    use crate::store::{DeliveryStatus, PluginCall};

    pub fn slack(channel: &str, lane: &str) -> NewDelivery {
        NewDelivery {
            binding_id: 1,
            plugin: "p".into(),
            destination: channel.into(),
            action: Action::PostSlack {
                channel: channel.into(),
                text: "hi".into(),
                blocks: None,
                thread_key: None,
            },
            dry_run: false,
            lane: lane.into(),
            source: "prod".into(),
            connection: Some("acme".into()),
        }
    }

    pub fn dispatched(event_id: i64, deliveries: Vec<NewDelivery>) -> Dispatched {
        Dispatched {
            event_id,
            event: Event {
                id: event_id.to_string(),
                kind: EventKind::PageCreated,
                name: "page_created".into(),
                occurred_at_ms: 0,
                source: "prod".into(),
                actor: None,
                by_pagehook: false,
                content: None,
                update_trigger: None,
                label: None,
                enriched: true,
                people: vec![],
                chat: None,
            },
            deliveries,
            audit: vec![AuditRecord {
                at: 0,
                event_id,
                binding_id: 1,
                plugin: "p".into(),
                sha256: "abc".into(),
                kind: "post-slack".into(),
                destination: "#eng".into(),
                verdict: "accepted".into(),
                reason: None,
            }],
            failures: vec![],
            calls: vec![],
        }
    }

    pub const BREAKER: BreakerPolicy = BreakerPolicy {
        threshold: 3,
        cooldown_ms: 60_000,
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_token_writes_nothing_and_breakers_count_across_batches() {
        let (store, _db) = fresh().await;
        let ids = stored_events(&store, "e", 3).await;
        let a = Claim::new("a", 60_000);
        assert_eq!(store.claim_events(&a, 10).await.unwrap().len(), 3);
        let stale = Claim::new("stale", 60_000);
        let batch: Vec<Dispatched> = ids
            .iter()
            .map(|&id| dispatched(id, vec![slack("#eng", "slack:acme/#eng")]))
            .collect();
        assert_eq!(
            store
                .finish_dispatch(&stale, &batch, BREAKER)
                .await
                .unwrap(),
            0
        );
        assert!(store.deliveries(None, 100).await.unwrap().is_empty());
        assert!(store.audit(None, 100).await.unwrap().is_empty());
        assert_eq!(
            store.event(ids[0]).await.unwrap().unwrap().status,
            crate::store::EventStatus::Pending
        );

        // The holder writes two of them; the third was lost to another round.
        assert!(
            store
                .defer_event(&a, ids[2], "later", i64::MAX)
                .await
                .unwrap()
        );
        assert_eq!(store.finish_dispatch(&a, &batch, BREAKER).await.unwrap(), 2);
        let written = store
            .deliveries(Some(DeliveryStatus::Pending), 100)
            .await
            .unwrap();
        assert_eq!(written.len(), 2);
        assert!(written[0].id > written[1].id, "newest first");
        assert_eq!(store.event_deliveries(ids[0]).await.unwrap().len(), 1);
        assert!(store.event_deliveries(ids[2]).await.unwrap().is_empty());
        assert_eq!(store.audit(Some(ids[1]), 10).await.unwrap().len(), 1);
        assert_eq!(
            store.event(ids[0]).await.unwrap().unwrap().status,
            crate::store::EventStatus::Dispatched
        );
        // Written once: finishing again writes nothing more.
        assert_eq!(store.finish_dispatch(&a, &batch, BREAKER).await.unwrap(), 0);
        assert_eq!(store.deliveries(None, 100).await.unwrap().len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_breaker_opens_at_the_threshold_and_a_success_closes_it() {
        let (store, _db) = fresh().await;
        store
            .client()
            .await
            .unwrap()
            .batch_execute(
                "INSERT INTO plugins (name, version, description, sha256, dir, manifest, grants, installed_at)
                 VALUES ('p', '1', '', '', '', '{}', '[]', 0)",
            )
            .await
            .unwrap();
        let ids = stored_events(&store, "e", 4).await;
        let fail = |id: i64, error: &str| {
            let mut d = dispatched(id, vec![]);
            d.failures.push(FailureRecord {
                at: 0,
                event_id: id,
                binding_id: 1,
                plugin: "p".into(),
                code: "panic".into(),
                message: error.into(),
                log: String::new(),
            });
            d.calls.push(PluginCall {
                plugin: "p".into(),
                succeeded: false,
                error: Some(error.into()),
            });
            d
        };
        let read = || async {
            store
                .client()
                .await
                .unwrap()
                .query_one(
                    "SELECT failures, breaker_until IS NOT NULL, breaker_error FROM plugins",
                    &[],
                )
                .await
                .unwrap()
        };
        let c = Claim::new("a", 60_000);
        store.claim_events(&c, 10).await.unwrap();
        store
            .finish_dispatch(&c, &[fail(ids[0], "one"), fail(ids[1], "two")], BREAKER)
            .await
            .unwrap();
        let r = read().await;
        assert_eq!((r.get::<_, i64>(0), r.get::<_, bool>(1)), (2, false));
        store
            .finish_dispatch(&c, &[fail(ids[2], "three")], BREAKER)
            .await
            .unwrap();
        let r = read().await;
        assert_eq!(
            (
                r.get::<_, i64>(0),
                r.get::<_, bool>(1),
                r.get::<_, Option<String>>(2)
            ),
            (3, true, Some("three".into()))
        );
        assert_eq!(store.failures(Some("p"), 10).await.unwrap().len(), 3);
        assert_eq!(
            store.event_failures(ids[2]).await.unwrap()[0].message,
            "three"
        );
        let mut ok = dispatched(ids[3], vec![]);
        ok.calls.push(PluginCall {
            plugin: "p".into(),
            succeeded: true,
            error: None,
        });
        store.finish_dispatch(&c, &[ok], BREAKER).await.unwrap();
        let r = read().await;
        assert_eq!(
            (
                r.get::<_, i64>(0),
                r.get::<_, bool>(1),
                r.get::<_, Option<String>>(2)
            ),
            (0, false, None)
        );
    }
}
