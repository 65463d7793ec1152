//! Delivery claims on PostgreSQL: how replicas share the outbox without
//! sending anything twice or out of order. The rules, and the statements the
//! two backends share, are in [`crate::store::claims`]; this module runs
//! them with PostgreSQL's own where the dialects differ (arrays, `LATERAL`,
//! row locks).
//!
//! A delivery round, in one transaction:
//! 1. takes its turn (`pg_advisory_xact_lock`, waiting at most 10 s): rounds
//!    of all replicas run one at a time, which costs milliseconds and means
//!    two rounds never lease lanes in opposite orders (a deadlock) or admit
//!    from the same rate slots;
//! 2. reads the database's clock once, the watermark (the oldest event not
//!    yet dispatched: deliveries of later events wait, so a lane keeps the
//!    events' order), the live leases, and the head of every lane (a
//!    recursive walk of `deliveries_head_order`, one lane a step);
//! 3. locks the rate rows of those heads in key order and walks them
//!    ([`Plan::heads`]);
//! 4. leases the lanes taken (an upsert that only takes an expired lease or
//!    its own), walking again without any lane it could not take, then takes
//!    what follows each lane's head as far as its rate allows
//!    ([`Plan::extend`]), writes the new arrival times back and marks the
//!    deliveries `sending`.
//!
//! Those steps are four round trips to the server: `BEGIN` goes with the
//! first and `COMMIT` with the last ([`super::pipelined`]), and what follows
//! the heads is read with the leases.
//!
//! A result is recorded ([`PgStore::finish_attempts`]) only for a delivery
//! that still carries the round's token: once another round has taken the
//! lane over after the lease ended, the stale round records nothing. The
//! same transaction lets lanes that went through go on
//! ([`going_on_takes`]): their leases renewed, what follows them marked.
//!
//! This module must never record a result without the token check, nor
//! advance a rate for a delivery it did not claim.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use deadpool_postgres::GenericClient;
use tokio_postgres::Statement;

use super::pipelined::Tx;
use super::sql::{bind, query_in};
use super::{ASYNC_COMMIT, DB_NOW, DELIVERY_ROUND_LOCK, Fail, PgResult, PgStore, SYNC_COMMIT};
use crate::store::claims::{
    CLAIMED_COLUMNS, Finished, GoOn, HELD_BY_CLAIM, LaneScan, Plan, Queued, claimed_from_row,
    going_on_in_order, lane_batch, lanes_of, rate_rows, release_lanes_sql, taken_going_on,
};
use crate::store::sql::{Dialect, Param, Row};
use crate::store::{
    AttemptResult, Claim, Claimed, DeliveryRound, HealthChange, Outcome, RatePolicy, SlackThread,
    StoreResult, now_ms,
};

/// The watermark: the oldest event not yet dispatched (deliveries of it and
/// later events wait, so a lane keeps the events' order); null when none.
const WATERMARK: &str = "(SELECT min(id) FROM events WHERE status = 'pending' AND attempts = 0)";

/// The heads of lanes after `$1` by name, up to and including `$2` (none
/// when null), at most `$3`: a recursive walk, one index probe per lane.
const HEADS_AFTER: &str = "WITH RECURSIVE heads AS (
       (SELECT id, event_id, lane, next_try_at, status, 1::bigint AS n FROM deliveries
        WHERE status IN ('pending', 'sending') AND lane > $1
        ORDER BY lane, event_id, id LIMIT 1)
       UNION ALL
       SELECT d.id, d.event_id, d.lane, d.next_try_at, d.status, h.n + 1
       FROM heads h CROSS JOIN LATERAL (
         SELECT id, event_id, lane, next_try_at, status FROM deliveries
         WHERE status IN ('pending', 'sending') AND lane > h.lane
         ORDER BY lane, event_id, id LIMIT 1) d
       WHERE h.n < $3::bigint AND ($2::text IS NULL OR h.lane < $2::text)
     )
     SELECT id, event_id, lane, next_try_at, status FROM heads WHERE $2::text IS NULL OR lane <= $2::text";

/// [`HEADS_AFTER`] from the first lane: up to and including `$1` (none when
/// null), at most `$2`.
const HEADS_FROM_FIRST: &str = "WITH RECURSIVE heads AS (
       (SELECT id, event_id, lane, next_try_at, status, 1::bigint AS n FROM deliveries
        WHERE status IN ('pending', 'sending')
        ORDER BY lane, event_id, id LIMIT 1)
       UNION ALL
       SELECT d.id, d.event_id, d.lane, d.next_try_at, d.status, h.n + 1
       FROM heads h CROSS JOIN LATERAL (
         SELECT id, event_id, lane, next_try_at, status FROM deliveries
         WHERE status IN ('pending', 'sending') AND lane > h.lane
         ORDER BY lane, event_id, id LIMIT 1) d
       WHERE h.n < $2::bigint AND ($1::text IS NULL OR h.lane < $1::text)
     )
     SELECT id, event_id, lane, next_try_at, status FROM heads WHERE $1::text IS NULL OR lane <= $1::text";

/// What follows given places in lanes (`$1` lanes, `$2` events, `$3` ids,
/// `$4` how many at most), of events older than the watermark `$5`.
const FOLLOWERS: &str = "SELECT d.id, d.event_id, d.lane, d.next_try_at, d.status
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS l(lane, event_id, id, room, ord)
     CROSS JOIN LATERAL (
       SELECT id, event_id, lane, next_try_at, status FROM deliveries
       WHERE status IN ('pending', 'sending') AND lane = l.lane AND (event_id, id) > (l.event_id, l.id) AND event_id < $5
       ORDER BY event_id, id LIMIT l.room) d
     ORDER BY l.ord, d.event_id, d.id";

/// Marks deliveries (`$1`) taken by a claim (`$2` its token, `$3` its
/// replica), uncertain if they were `sending` (their last holder may have
/// sent them), and reads them.
///
/// Each is looked up by its key, joined from the array: `id = ANY($1) AND
/// status IN (...)` let the planner add a scan of `deliveries_status_id`
/// for those two statuses, which holds an entry for every version of every
/// delivery since the last VACUUM (2.5 ms a round at 1,000 events/s).
static MARK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE deliveries SET status = 'sending', uncertain = (uncertain OR status = 'sending'),
           claim_token = $2, claimed_by = $3
         FROM unnest($1::bigint[]) AS w(wanted)
         WHERE deliveries.id = w.wanted AND status IN ('pending', 'sending')
         RETURNING {CLAIMED_COLUMNS}"
    )
});

/// Lets go of a claim's leases (`$1` its token) on lanes (`$2`).
const LET_GO: &str = "DELETE FROM lane_leases WHERE token = $1 AND lane = ANY($2)";

/// The Slack threads of a round's lanes (`$1` connections, `$2` channels,
/// `$3` thread keys), each looked up by the primary key. The `LIMIT 1`
/// keeps each lookup a probe of the key: without it the planner may join
/// the whole table instead (a hash join over a scan of it, chosen while
/// its statistics said it was small), 1.7 ms a round at 1,000 events/s and
/// growing with every thread.
const THREADS_OF: &str = "SELECT t.connection, t.channel, t.thread_key, t.ts
     FROM unnest($1::text[], $2::text[], $3::text[]) AS w(connection, channel, thread_key)
     CROSS JOIN LATERAL (
       SELECT * FROM slack_threads s
       WHERE s.connection = w.connection AND s.channel = w.channel AND s.thread_key = w.thread_key
       LIMIT 1
     ) t";

/// What follows each of `places` (`(lane, (event, id), at most)`) in its
/// lane, of events older than `watermark` ([`FOLLOWERS`], prepared as
/// `stmt`). Sent when first polled.
async fn followers(
    tx: &impl GenericClient,
    stmt: &Statement,
    places: &[(&str, (i64, i64), usize)],
    watermark: i64,
) -> PgResult<Vec<Queued>> {
    if places.is_empty() {
        return Ok(Vec::new());
    }
    let lanes: Vec<&str> = places.iter().map(|p| p.0).collect();
    let events: Vec<i64> = places.iter().map(|p| p.1.0).collect();
    let ids: Vec<i64> = places.iter().map(|p| p.1.1).collect();
    let rooms: Vec<i64> = places
        .iter()
        .map(|p| i64::try_from(p.2).unwrap_or(i64::MAX))
        .collect();
    tx.query(stmt, &[&lanes, &events, &ids, &rooms, &watermark])
        .await?
        .iter()
        .map(|r| Queued::from_row(r).map_err(Fail::Store))
        .collect()
}

/// Marks deliveries `ids` taken by `claim` ([`MARK`], prepared as `stmt`)
/// and reads them. Sent when first polled.
async fn mark(
    tx: &impl GenericClient,
    stmt: &Statement,
    ids: &[i64],
    claim: &Claim,
) -> PgResult<Vec<Claimed>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    tx.query(stmt, &[&ids, &claim.token, &claim.replica])
        .await?
        .iter()
        .map(|r| claimed_from_row(r).map_err(Fail::Store))
        .collect()
}

/// Records attempts under a claim in one statement: the same writes as
/// [`crate::store::claims::attempt_writes`] (SQLite's, one attempt at a
/// time), over arrays. Each delivery changes only while it still carries the
/// claim's token (`$1`); only those that did get their attempt's row, and a
/// Slack thread one of them started is remembered (the first one wins: a
/// retried root must not move its thread). Returns how many were recorded.
///
/// One statement instead of three per attempt: under a stream of events the
/// server's cost is per statement as much as per row.
const RECORD: &str = "WITH u AS (
       SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                            $7::bool[], $8::bigint[], $9::bigint[], $10::bigint[])
         WITH ORDINALITY AS u(id, outcome, result, next_try_at, error, uncertain, started_at,
                              latency_ms, sent_at, ord)
     ),
     d AS (
       UPDATE deliveries SET
         status = CASE u.outcome WHEN 'retry' THEN 'pending' ELSE u.outcome END,
         result = CASE WHEN u.outcome IN ('sent', 'would-send') THEN u.result ELSE deliveries.result END,
         sent_at = CASE WHEN u.outcome IN ('sent', 'would-send') THEN $11 ELSE deliveries.sent_at END,
         next_try_at = CASE u.outcome WHEN 'retry' THEN u.next_try_at ELSE deliveries.next_try_at END,
         last_error = CASE u.outcome WHEN 'sent' THEN NULL WHEN 'would-send' THEN deliveries.last_error
                                     ELSE u.error END,
         uncertain = CASE u.outcome WHEN 'sent' THEN FALSE WHEN 'retry' THEN deliveries.uncertain OR u.uncertain
                                    ELSE deliveries.uncertain END,
         attempts = deliveries.attempts + 1, claim_token = NULL, claimed_by = NULL
       FROM u WHERE deliveries.id = u.id AND deliveries.claim_token = $1
       RETURNING deliveries.id
     ),
     a AS (
       INSERT INTO attempts (delivery_id, at, outcome, error, latency_ms, sent_at)
       SELECT u.id, u.started_at, u.outcome, u.error, u.latency_ms, u.sent_at
       FROM u JOIN d ON d.id = u.id ORDER BY u.ord
     ),
     t AS (
       INSERT INTO slack_threads (connection, channel, thread_key, ts)
       SELECT t.connection, t.channel, t.thread_key, t.ts
       FROM unnest($12::bigint[], $13::text[], $14::text[], $15::text[], $16::text[])
         WITH ORDINALITY AS t(id, connection, channel, thread_key, ts, ord)
       JOIN d ON d.id = t.id ORDER BY t.ord
       ON CONFLICT DO NOTHING
     )
     SELECT count(*) FROM d";

/// Runs [`RECORD`] (prepared as `stmt`) for `attempts` (`now`: when they
/// are recorded, ms). Sent when first polled.
async fn record(
    tx: &impl GenericClient,
    stmt: &Statement,
    claim: &Claim,
    attempts: &[AttemptResult],
    now: i64,
) -> PgResult<usize> {
    if attempts.is_empty() {
        return Ok(0);
    }
    let n = attempts.len();
    let mut ids = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut results: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut next_tries: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut errors: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut uncertain = Vec::with_capacity(n);
    let mut thread_ids = Vec::new();
    let mut threads: [Vec<&str>; 4] = Default::default();
    for a in attempts {
        ids.push(a.delivery_id);
        let (outcome, result, next_try, error, maybe_sent) = match &a.outcome {
            Outcome::Sent { result, thread } => {
                if let Some(t) = thread {
                    thread_ids.push(a.delivery_id);
                    for (column, value) in
                        threads
                            .iter_mut()
                            .zip([&t.connection, &t.channel, &t.key, &t.ts])
                    {
                        column.push(value.as_str());
                    }
                }
                ("sent", Some(result.as_str()), None, None, false)
            }
            Outcome::WouldSend { request } => {
                ("would-send", Some(request.as_str()), None, None, false)
            }
            Outcome::Retry {
                error,
                at,
                uncertain,
            } => ("retry", None, Some(*at), Some(error.as_str()), *uncertain),
            Outcome::Dead { error } => ("dead", None, None, Some(error.as_str()), false),
        };
        outcomes.push(outcome);
        results.push(result);
        next_tries.push(next_try);
        errors.push(error);
        uncertain.push(maybe_sent);
    }
    let started: Vec<i64> = attempts.iter().map(|a| a.started_at).collect();
    let latencies: Vec<i64> = attempts.iter().map(|a| a.latency_ms).collect();
    let sent_at: Vec<Option<i64>> = attempts.iter().map(|a| a.sent_at).collect();
    let [connections, channels, keys, ts] = &threads;
    let recorded: i64 = tx
        .query_one(
            stmt,
            &[
                &claim.token,
                &ids,
                &outcomes,
                &results,
                &next_tries,
                &errors,
                &uncertain,
                &started,
                &latencies,
                &sent_at,
                &now,
                &thread_ids,
                connections,
                channels,
                keys,
                ts,
            ],
        )
        .await?
        .try_get(0)?;
    Ok(recorded as usize)
}

/// Lets go of `claim`'s leases on `lanes` (taken, or going on, with
/// nothing to send after all); `stmt` is [`LET_GO`] prepared. Sent when
/// first polled.
async fn let_go(
    tx: &impl GenericClient,
    stmt: &Statement,
    claim: &Claim,
    lanes: &[&str],
) -> PgResult<()> {
    if !lanes.is_empty() {
        tx.execute(stmt, &[&claim.token, &lanes]).await?;
    }
    Ok(())
}

/// Lets go of `claim`'s leases on `lanes` once its transaction committed:
/// what the claim took stands, so a failure here must not fail the call
/// (its caller would drop what it took, or record it again); a lease not
/// let go ends by itself.
async fn let_go_after_commit(store: &PgStore, tx: &Tx, claim: &Claim, lanes: &[&str]) {
    if lanes.is_empty() {
        return;
    }
    let done = async {
        let stmt = tx.prepare_cached(LET_GO).await?;
        let_go(&**tx, &stmt, claim, lanes).await
    };
    if let Err(e) = done.await {
        let e = store.error(e);
        tracing::warn!(error = %e, "could not let go of lanes with nothing to send; their leases end by themselves");
    }
}

/// Runs `stmt` with `params` if `wanted`. Sent when first polled.
async fn execute_if(
    tx: &impl GenericClient,
    wanted: bool,
    stmt: &Statement,
    params: &[Param],
) -> PgResult<()> {
    if wanted {
        tx.execute(stmt, &bind(params)).await?;
    }
    Ok(())
}

/// What the lanes going on (leases renewed) take of `followers`, as a
/// round takes what follows a head (see [`taken_going_on`]): each lane
/// with the ids it takes, in `going`'s order.
fn going_on_takes<'a>(
    going: &[&'a GoOn],
    followers: &[Queued],
    now: i64,
) -> Vec<(&'a str, Vec<i64>)> {
    going
        .iter()
        .map(|g| (g.lane.as_str(), taken_going_on(&g.lane, followers, now)))
        .collect()
}

/// Renews the leases of lanes going on (`$1` the claim's token, `$2` the
/// lease, `$3` the lanes) from the database's now: only those the claim
/// still holds come back. It runs before the attempts' updates: a lease,
/// then its deliveries, the order a round taking a lane over locks them in.
static RENEW_GOING_ON: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE lane_leases SET until_ms = {DB_NOW} + $2
         WHERE token = $1 AND lane = ANY($3) RETURNING lane"
    )
});

/// The database's now and the watermark (the oldest event not yet
/// dispatched), for lanes going on.
static GOING_ON_STATE: LazyLock<String> = LazyLock::new(|| format!("SELECT {DB_NOW}, {WATERMARK}"));

/// A record's release of the lanes that do not go on (`$1` the claim's
/// token, `$2` the lanes), in PostgreSQL's dialect: their leases, then
/// their unattempted deliveries put back (see [`release_lanes_sql`]).
static RELEASE_LANES: LazyLock<[String; 2]> = LazyLock::new(|| {
    release_lanes_sql(Dialect::Postgres).map(|sql| Dialect::Postgres.text(&sql).into_owned())
});

/// The database's now, the watermark and the lanes other claims hold
/// (`$1` the round's token), read at one instant.
static ROUND_STATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH t AS (SELECT {DB_NOW} AS now)
         SELECT t.now,
           {WATERMARK} AS watermark,
           ARRAY(SELECT lane FROM lane_leases WHERE until_ms > t.now AND token <> $1) AS leased
         FROM t"
    )
});

/// A round's turn: rounds of all replicas run one at a time, each waiting
/// at most 10 s (run first in the round's transaction).
static ROUND_TURN: LazyLock<String> = LazyLock::new(|| {
    format!("SET LOCAL lock_timeout = '10s'; SELECT pg_advisory_xact_lock({DELIVERY_ROUND_LOCK})")
});

/// A release's deliveries (`$1` the claim's token): what it was sending goes
/// back to the queue as uncertain (it may have been sent).
const RELEASE_SENDING: &str =
    "UPDATE deliveries SET status = 'pending', uncertain = true, claim_token = NULL, claimed_by = NULL
     WHERE claim_token = $1 AND status = 'sending'";

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

/// `(id, lane)` of a row of [`HELD_BY_CLAIM`].
fn held_row(row: &dyn Row) -> StoreResult<(i64, String)> {
    Ok((row.get("id")?, row.get("lane")?))
}

/// The heads of lanes in name order: of lanes after `after` (all when
/// `None`), up to and including `up_to`, at most `limit`.
async fn lane_heads(
    tx: &impl GenericClient,
    after: Option<&str>,
    up_to: Option<&str>,
    limit: usize,
) -> PgResult<Vec<Queued>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match after {
        Some(after) => {
            let stmt = tx.prepare_cached(HEADS_AFTER).await?;
            tx.query(&stmt, &[&after, &up_to, &limit]).await?
        }
        None => {
            let stmt = tx.prepare_cached(HEADS_FROM_FIRST).await?;
            tx.query(&stmt, &[&up_to, &limit]).await?
        }
    };
    rows.iter()
        .map(|r| Queued::from_row(r).map_err(Fail::Store))
        .collect()
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
            let tx = Tx::new(self.client().await?);
            let state = tx.prepare_cached(&ROUND_STATE).await?;
            let scan = LaneScan::start(&self.describe());
            // The transaction's start, the round's turn, the state and the
            // first lanes' heads: sent together, run in this order (one
            // round trip), so both reads see what the previous round
            // committed. A round that cannot get its turn in time fails
            // (and is tried again) rather than queueing behind a stuck one
            // indefinitely.
            let ((), state, mut seen) = futures::future::try_join3(
                tx.begin(&ROUND_TURN),
                async {
                    tx.query_one(&state, &[&claim.token])
                        .await
                        .map_err(Fail::from)
                },
                lane_heads(&*tx, scan.after.as_deref(), None, LaneScan::room_after(0)),
            )
            .await?;
            let now: i64 = state.try_get(0)?;
            let watermark: i64 = state.try_get::<_, Option<i64>>(1)?.unwrap_or(i64::MAX);
            let mut unavailable: HashSet<String> =
                state.try_get::<_, Vec<String>>(2)?.into_iter().collect();

            if let Some(after) = scan.after.as_deref() {
                let room = LaneScan::room_after(seen.len());
                seen.extend(lane_heads(&*tx, None, Some(after), room).await?);
            }
            let more_lanes = scan.finish(&seen);
            let heads: Vec<Queued> = seen.into_iter().filter(|h| h.event_id < watermark).collect();

            // The rate rows every possible head counts against, locked in
            // key order (and created at 0 when new).
            let keys = rate_rows(&heads, &unavailable, now);
            let mut stored: HashMap<String, i64> = HashMap::new();
            if !keys.is_empty() {
                let create = tx
                    .prepare_cached(
                        "INSERT INTO rate_limits (key, tat_ms) SELECT k, 0 FROM unnest($1::text[]) AS u(k) ORDER BY k ON CONFLICT DO NOTHING",
                    )
                    .await?;
                let lock = tx
                    .prepare_cached(
                        "SELECT key, tat_ms FROM rate_limits WHERE key = ANY($1) ORDER BY key FOR UPDATE",
                    )
                    .await?;
                // Sent together, run in this order (one round trip).
                let (_, rows) = futures::future::try_join(
                    tx.execute(&create, &[&keys]),
                    tx.query(&lock, &[&keys]),
                )
                .await?;
                for r in rows {
                    stored.insert(r.try_get(0)?, r.try_get(1)?);
                }
            }

            // Walk, lease, and walk again without the lanes another round
            // took meanwhile (rare: a lease renewed after it had ended).
            // What follows the walk's heads is read in the lease's round
            // trip; a walk that could not lease every lane is thrown away
            // with what it read.
            let lease = tx.prepare_cached(LEASE).await?;
            let follow = tx.prepare_cached(FOLLOWERS).await?;
            let until = now + claim.lease_ms;
            let (mut plan, more) = loop {
                let plan = Plan::heads(&heads, &unavailable, &stored, rates, now, max);
                let lanes: Vec<&str> = plan.lanes.iter().map(|l| l.lane.as_str()).collect();
                if lanes.is_empty() {
                    break (plan, Vec::new());
                }
                let (leased, more) = futures::future::try_join(
                    async {
                        tx.query(&lease, &[&lanes, &claim.replica, &claim.token, &until, &now])
                            .await
                            .map_err(Fail::from)
                    },
                    followers(&*tx, &follow, &plan.wanting_more(), watermark),
                )
                .await?;
                let got: HashSet<String> = leased
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                let lost: Vec<String> = lanes
                    .into_iter()
                    .filter(|l| !got.contains(*l))
                    .map(str::to_owned)
                    .collect();
                if lost.is_empty() {
                    break (plan, more);
                }
                unavailable.extend(lost);
            };
            plan.extend(&more);

            // The channels' new rate times, the marks and the commit, sent
            // together: one round trip (each statement prepared first, so
            // none is overtaken by the commit). The commit waits for the
            // WAL to be flushed: the marks come before the sends.
            let changed = plan.changed_tats();
            let put = tx
                .prepare_cached(
                    "UPDATE rate_limits SET tat_ms = u.tat FROM unnest($1::text[], $2::bigint[]) AS u(key, tat) WHERE rate_limits.key = u.key",
                )
                .await?;
            let marking = tx.prepare_cached(&MARK).await?;
            let keys: Vec<&str> = changed.iter().map(|(k, _)| k.as_str()).collect();
            let tats: Vec<i64> = changed.iter().map(|(_, v)| *v).collect();
            let ids = plan.ids();
            let (_, marked, ()) = futures::future::try_join3(
                async {
                    if changed.is_empty() {
                        return Ok(0);
                    }
                    Ok(tx.execute(&put, &[&keys, &tats]).await?)
                },
                mark(&*tx, &marking, &ids, claim),
                tx.commit(),
            )
            .await?;
            // A lane none of whose deliveries could be marked was finished
            // by its previous holder after this round read it: its lease
            // goes right after the commit (until then rounds only skip it).
            let idle = match ids.is_empty() {
                true => Vec::new(),
                false => plan.idle_lanes(&marked),
            };
            let idle: Vec<&str> = idle.iter().map(String::as_str).collect();
            let_go_after_commit(self, &tx, claim, &idle).await;
            Ok(DeliveryRound {
                claimed: plan.in_order(marked),
                wait_ms: plan.wait_ms,
                more_lanes,
            })
        })
        .await
    }

    /// Records the attempts of deliveries `claim` still holds and the
    /// health they showed, in one transaction, and lets go of their lanes
    /// (see [`crate::store::claims`]), except the lanes in `go_on` it still
    /// holds: those take what follows them in the same transaction (marked
    /// `sending` under the same claim, committed durably before any of it
    /// is sent), and a lane with nothing to take is let go.
    pub async fn finish_attempts(
        &self,
        claim: &Claim,
        attempts: &[AttemptResult],
        health: &[HealthChange],
        go_on: &[GoOn],
    ) -> StoreResult<Finished> {
        self.run(async {
            let tx = Tx::new(self.client().await?);
            let token = Param::from(claim.token);
            // The transaction's start (committing without waiting for the
            // disk, unless lanes go on: below), what the claim holds, and
            // the leases of the lanes going on renewed with the database's
            // clock and the watermark read: one round trip. A lease the
            // claim no longer holds (it ended and another round took the
            // lane) does not come back: that lane does not go on.
            let asked: Vec<&str> = go_on.iter().map(|g| g.lane.as_str()).collect();
            let renew = tx.prepare_cached(&RENEW_GOING_ON).await?;
            let state = tx.prepare_cached(&GOING_ON_STATE).await?;
            let ((), held, renewed, state) = futures::future::try_join4(
                tx.begin(ASYNC_COMMIT),
                query_in(&*tx, HELD_BY_CLAIM, std::slice::from_ref(&token), held_row),
                async {
                    if asked.is_empty() {
                        return Ok(Vec::new());
                    }
                    tx.query(&renew, &[&claim.token, &claim.lease_ms, &asked])
                        .await
                        .map_err(Fail::from)
                },
                async {
                    if asked.is_empty() {
                        return Ok(None);
                    }
                    tx.query_one(&state, &[])
                        .await
                        .map(Some)
                        .map_err(Fail::from)
                },
            )
            .await?;
            let held: HashMap<i64, String> = held.into_iter().collect();
            let renewed: HashSet<String> = renewed
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let going: Vec<&GoOn> = go_on.iter().filter(|g| renewed.contains(&g.lane)).collect();
            let lanes: Vec<String> = lanes_of(attempts, &held)
                .into_iter()
                .filter(|l| !renewed.contains(l))
                .collect();
            let [leases, back] = &*RELEASE_LANES;
            let releasing = !lanes.is_empty();
            let on_lanes = [token.clone(), Param::Texts(lanes)];
            let places: Vec<(&str, (i64, i64), usize)> = going
                .iter()
                .map(|g| (g.lane.as_str(), g.after, lane_batch(&g.lane)))
                .collect();
            let (watermark, db_now): (i64, i64) = match &state {
                Some(state) => (
                    state.try_get::<_, Option<i64>>(1)?.unwrap_or(i64::MAX),
                    state.try_get(0)?,
                ),
                None => (i64::MAX, 0),
            };
            // Everything from here on is prepared first: the statements of
            // a trip then reach the server in the order written (a statement
            // prepared on the way would be overtaken by the ones after it),
            // and the commit can go with the last of them.
            let let_go_leases = tx.prepare_cached(leases).await?;
            let recording = tx.prepare_cached(RECORD).await?;
            let put_back = tx.prepare_cached(back).await?;
            let follow = tx.prepare_cached(FOLLOWERS).await?;
            let set_health = tx.prepare_cached(SET_HEALTH).await?;
            // The last word per connection, applied in one statement.
            let last: BTreeMap<&str, Option<&str>> = health
                .iter()
                .map(|h| (h.connection.as_str(), h.error.as_deref()))
                .collect();
            let names: Vec<&str> = last.keys().copied().collect();
            let errors: Vec<Option<&str>> = last.values().copied().collect();
            let write_health = async {
                if !names.is_empty() {
                    tx.execute(&set_health, &[&names, &errors]).await?;
                }
                PgResult::Ok(())
            };
            // The lanes' leases let go, every attempt's record (one
            // statement, see [`RECORD`]), the lanes' unattempted deliveries
            // put back, and what follows the lanes going on read: one round
            // trip, whatever the number of attempts, in this order. Leases
            // first: a round taking a lane over locks its lease, then its
            // delivery; the same order here cannot deadlock with it. Put
            // back after the record: what was attempted no longer carries
            // the claim's token by then. With no lane going on, the health
            // and the commit go too.
            let release = |stmt| execute_if(&*tx, releasing, stmt, &on_lanes);
            let record_all = record(&*tx, &recording, claim, attempts, now_ms());
            if going.is_empty() {
                let ((), recorded, (), (), ()) = futures::future::try_join5(
                    release(&let_go_leases),
                    record_all,
                    release(&put_back),
                    write_health,
                    tx.commit(),
                )
                .await?;
                return Ok(Finished {
                    recorded,
                    next: going_on_in_order(go_on, Vec::new()),
                });
            }
            let ((), recorded, (), followers) = futures::future::try_join4(
                release(&let_go_leases),
                record_all,
                release(&put_back),
                followers(&*tx, &follow, &places, watermark),
            )
            .await?;

            // A lane going on with nothing to take is let go; what the
            // others take is marked, a claim like a round's: the commit then
            // waits for the WAL to be flushed, since the marks come before
            // the sends. With the health and the commit: one round trip.
            let takes = going_on_takes(&going, &followers, db_now);
            let ids: Vec<i64> = takes
                .iter()
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect();
            let idle: Vec<&str> = takes
                .iter()
                .filter(|(_, ids)| ids.is_empty())
                .map(|(lane, _)| *lane)
                .collect();
            let leave = tx.prepare_cached(LET_GO).await?;
            let marking = tx.prepare_cached(&MARK).await?;
            let ((), (), marked, (), ()) = futures::future::try_join5(
                let_go(&*tx, &leave, claim, &idle),
                async {
                    if !ids.is_empty() {
                        tx.batch_execute(SYNC_COMMIT).await?;
                    }
                    PgResult::Ok(())
                },
                mark(&*tx, &marking, &ids, claim),
                write_health,
                tx.commit(),
            )
            .await?;
            // A lane none of whose takes could be marked (finished meanwhile
            // by a claim that had ended) is let go right after the commit.
            let busy: HashSet<&str> = marked.iter().map(|d| d.lane.as_str()).collect();
            let emptied: Vec<&str> = takes
                .iter()
                .filter(|(lane, ids)| !ids.is_empty() && !busy.contains(lane))
                .map(|(lane, _)| *lane)
                .collect();
            let_go_after_commit(self, &tx, claim, &emptied).await;
            Ok(Finished {
                recorded,
                next: going_on_in_order(go_on, marked),
            })
        })
        .await
    }

    /// See `Store::threads_of`: the wanted threads as arrays, each looked up
    /// by the primary key ([`THREADS_OF`]; a list of `OR`s or `IN (VALUES
    /// ...)` cost 8 to 20 times the per-lane reads it replaces in the bench).
    pub async fn threads_of(
        &self,
        wanted: &[(String, String, String)],
    ) -> StoreResult<Vec<SlackThread>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let column = |f: fn(&(String, String, String)) -> &str| -> Vec<&str> {
            wanted.iter().map(f).collect()
        };
        let (connections, channels, keys) = (column(|w| &w.0), column(|w| &w.1), column(|w| &w.2));
        self.run(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(THREADS_OF).await?;
            client
                .query(&stmt, &[&connections, &channels, &keys])
                .await?
                .iter()
                .map(|r| {
                    Ok(SlackThread {
                        connection: r.try_get(0)?,
                        channel: r.try_get(1)?,
                        key: r.try_get(2)?,
                        ts: r.try_get(3)?,
                    })
                })
                .collect()
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
            tx.execute(RELEASE_SENDING, &[&claim.token])
            .await?;
            tx.execute(
                "UPDATE events SET claim_token = NULL, claim_until = NULL WHERE claim_token = $1 AND status = 'pending'",
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
    use crate::store::{DeliveryStatus, EventStatus, NewDelivery, Outcome};
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

        // a records one attempt and lets go of its lane; the other lane
        // stays a's until a lets go of everything, and its delivery, still
        // `sending`, is then taken up by b as uncertain.
        assert_eq!(
            store
                .finish_attempts(&a, &[sent(d0)], &[], &[])
                .await
                .unwrap()
                .recorded,
            1
        );
        let round = store.claim_deliveries(&b, unlimited(), 10).await.unwrap();
        assert_eq!(ids(&round), [d1], "lane y is still a's");
        assert!(!round.claimed[0].uncertain);
        store.release(&a).await.unwrap();
        let b2 = Claim::new("b", 60_000);
        let round = store.claim_deliveries(&b2, unlimited(), 10).await.unwrap();
        assert_eq!(ids(&round), [d2]);
        assert!(round.claimed[0].uncertain, "a may have sent it");
        // a is too late for it now: nothing is recorded.
        assert_eq!(
            store
                .finish_attempts(&a, &[sent(d2)], &[], &[])
                .await
                .unwrap()
                .recorded,
            0
        );
        assert!(store.attempts(d2).await.unwrap().is_empty());

        // b's rounds stall past their leases: c takes the lanes over, b
        // records nothing.
        TestPostgres::shared().psql(&db, "UPDATE lane_leases SET until_ms = 0");
        let c = Claim::new("c", 60_000);
        let round = store.claim_deliveries(&c, unlimited(), 10).await.unwrap();
        assert_eq!(ids(&round), [d1, d2]);
        assert!(round.claimed.iter().all(|d| d.uncertain));
        for b in [&b, &b2] {
            assert_eq!(store.renew(b).await.unwrap(), 0, "b holds nothing any more");
        }
        assert_eq!(
            store
                .finish_attempts(&b, &[sent(d1)], &[], &[])
                .await
                .unwrap()
                .recorded
                + store
                    .finish_attempts(&b2, &[sent(d2)], &[], &[])
                    .await
                    .unwrap()
                    .recorded,
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
                .finish_attempts(&c, &[sent(d1), sent(d2)], &health, &[])
                .await
                .unwrap()
                .recorded,
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
                slack("#eng", "slack:acme/eng:t1"),
                slack("#eng", "slack:acme/eng:t2"),
                slack("#ops", "slack:acme/ops"),
            ])],
        )
        .await;
        let all = store.deliveries(None, 10).await.unwrap();
        let (t1, t2, ops) = (all[2].id, all[1].id, all[0].id);
        // Two a second: #eng's next slot is 500 ms on, claimable 250 ms early.
        let rates = RatePolicy::per_second(2.0, 100.0);

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

    /// Queues 2,000 deliveries over 100 lanes and sends them all through
    /// claims and records, each recorded as `result` says, with no VACUUM or
    /// ANALYZE between (as under a stream of events); how many were recorded.
    async fn send_all(store: &PgStore, result: impl Fn(&Claimed) -> AttemptResult) -> usize {
        let lanes: Vec<String> = (0..100).map(|i| format!("#c{i}")).collect();
        outbox(
            store,
            (0..20)
                .map(|_| Some(lanes.iter().map(|l| slack(l, l)).collect()))
                .collect(),
        )
        .await;
        let mut recorded = 0;
        loop {
            let claim = Claim::new("r", 60_000);
            let round = store
                .claim_deliveries(&claim, unlimited(), 512)
                .await
                .unwrap();
            if round.claimed.is_empty() {
                return recorded;
            }
            let results: Vec<AttemptResult> = round.claimed.iter().map(&result).collect();
            recorded += store
                .finish_attempts(&claim, &results, &[], &[])
                .await
                .unwrap()
                .recorded;
        }
    }

    /// The indexes a plan reads (`EXPLAIN (FORMAT JSON)` as psql prints it).
    fn indexes_read(plan: &str) -> Vec<String> {
        fn walk(node: &serde_json::Value, into: &mut Vec<String>) {
            match node {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(name)) = map.get("Index Name") {
                        into.push(name.clone());
                    }
                    map.values().for_each(|v| walk(v, into));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, into)),
                _ => {}
            }
        }
        let plan: serde_json::Value = serde_json::from_str(plan).expect("a JSON plan");
        let mut names = Vec::new();
        walk(&plan, &mut names);
        names
    }

    /// A record, letting go of lanes and a release look for the deliveries
    /// a claim holds (`status = 'sending'`, by token). Every delivery passes
    /// through 'sending' once, and each old version of it stays in every
    /// index until VACUUM runs: a plan that reads a status index for
    /// 'sending' reads all of them (at 1,000 events/s, 1-8 ms per record).
    /// After 2,000 deliveries were sent, with no VACUUM or ANALYZE since,
    /// as under a stream of events, each lookup reads `deliveries_sending`
    /// and nothing else.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claims_deliveries_are_looked_up_among_those_being_sent_only() {
        let (store, db) = fresh().await;
        assert_eq!(send_all(&store, |c| sent(c.id)).await, 2_000);
        let pg = TestPostgres::shared();
        let [_, back] = release_lanes_sql(Dialect::Postgres);
        for sql in [
            Dialect::Postgres.text(HELD_BY_CLAIM),
            Dialect::Postgres.text(&back),
            RELEASE_SENDING.into(),
        ] {
            let plan = pg.psql(
                &db,
                &format!(
                    "PREPARE q AS {sql}; EXPLAIN (FORMAT JSON) EXECUTE q(42{})",
                    if sql.contains("$2") { ", '{#c1}'" } else { "" }
                ),
            );
            assert_eq!(indexes_read(&plan), ["deliveries_sending"], "{sql}\n{plan}");
        }
    }

    /// The plan of `sql` with `args` as PostgreSQL would run it from the
    /// statement cache: a custom plan, and the generic plan it switches to
    /// after five runs and keeps until the table's statistics change.
    fn plans(db: &str, sql: &str, args: &str) -> [String; 2] {
        let pg = TestPostgres::shared();
        ["auto", "force_generic_plan"].map(|mode| {
            pg.psql(
                db,
                &format!(
                    "SET plan_cache_mode = {mode}; PREPARE q AS {sql}; \
                     EXPLAIN (FORMAT JSON) EXECUTE q({args})"
                ),
            )
        })
    }

    /// A round marks the deliveries it took, and reads its lanes' Slack
    /// threads, by their keys, whatever the statistics say. Marking once
    /// read `deliveries_status_id` for 'pending' and 'sending' too (every
    /// version of every delivery since the last VACUUM), and the threads'
    /// read, planned while `slack_threads` was small, joined all of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_round_marks_its_deliveries_and_reads_their_threads_by_key() {
        let (store, db) = fresh().await;
        let threads_of = |db: &str| plans(db, THREADS_OF, "'{s,s}', '{#a,#b}', '{k1,k2}'");
        for plan in threads_of(&db) {
            assert_eq!(
                indexes_read(&plan),
                ["slack_threads_pkey"],
                "empty table\n{plan}"
            );
        }
        let recorded = send_all(&store, |c| {
            let mut result = sent(c.id);
            result.outcome = Outcome::Sent {
                result: "ts".into(),
                thread: Some(SlackThread {
                    connection: "s".into(),
                    channel: c.lane.clone(),
                    key: format!("k{}", c.id),
                    ts: format!("1.{}", c.id),
                }),
            };
            result
        })
        .await;
        assert_eq!(recorded, 2_000);
        assert_eq!(
            TestPostgres::shared().psql(&db, "SELECT count(*) FROM slack_threads"),
            "2000",
            "every record kept its thread"
        );
        for plan in threads_of(&db) {
            assert_eq!(
                indexes_read(&plan),
                ["slack_threads_pkey"],
                "2,000 threads\n{plan}"
            );
        }
        for plan in plans(&db, &MARK, "'{1,2,3}', 42, 'r'") {
            assert_eq!(indexes_read(&plan), ["deliveries_pkey"], "{plan}");
        }
    }
}
