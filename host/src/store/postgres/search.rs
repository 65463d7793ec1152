//! PostgreSQL's side of the console's searches and counts (see `store::search`).

use tokio_postgres::types::ToSql;

use super::{PgStore, count};
use crate::store::search::{DeliveryCount, Dialect, EventQuery, EventSummary, LatestIds, Param};
use crate::store::{DeliveryStatus, EventStatus, StoreError, StoreResult};

/// A search's parameters as driver values.
pub(super) fn values(params: &[Param]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(n) => Box::new(*n),
                Param::Texts(list) => Box::new(list.clone()),
            }
        })
        .collect()
}

/// Borrows `values` as the driver's parameter slice.
pub(super) fn refs(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn corrupt(what: &'static str) -> impl Fn(String) -> StoreError {
    move |message| StoreError::Corrupt { what, message }
}

impl PgStore {
    /// Events matching `q`, newest first (see [`EventQuery`]).
    pub async fn search_events(&self, q: &EventQuery) -> StoreResult<Vec<EventSummary>> {
        let filter = q.filter(Dialect::Postgres);
        let sql = format!(
            "SELECT id, source, name, received_at, status, attempts, error, space_key, content_id, title
             FROM events{} ORDER BY id DESC LIMIT {}",
            filter.where_sql(),
            filter.next_placeholder(Dialect::Postgres)
        );
        let mut values = values(&filter.params);
        values.push(Box::new(q.page()));
        self.run(async {
            let client = self.client().await?;
            let stmt = client.prepare_cached(&sql).await?;
            let rows = client.query(&stmt, &refs(&values)).await?;
            rows.iter()
                .map(|r| {
                    let status: String = r.try_get(4)?;
                    Ok(EventSummary {
                        id: r.try_get(0)?,
                        source: r.try_get(1)?,
                        name: r.try_get(2)?,
                        received_at: r.try_get(3)?,
                        status: EventStatus::parse(&status).map_err(corrupt("event status"))?,
                        attempts: count(r.try_get(5)?),
                        error: r.try_get(6)?,
                        space_key: r.try_get(7)?,
                        content_id: r.try_get(8)?,
                        title: r.try_get(9)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// How many deliveries are in each status.
    pub async fn delivery_counts(&self) -> StoreResult<Vec<DeliveryCount>> {
        self.run(async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let status: String = r.try_get(0)?;
                    let n: i64 = r.try_get(1)?;
                    Ok(DeliveryCount {
                        status: DeliveryStatus::parse(&status)
                            .map_err(corrupt("delivery status"))?,
                        count: n.max(0) as u64,
                    })
                })
                .collect()
        })
        .await
    }

    /// What is newest, to tell a console page its lists changed.
    pub async fn latest_ids(&self) -> StoreResult<LatestIds> {
        self.run(async {
            let r = self
                .client()
                .await?
                .query_one(
                    "SELECT (SELECT COALESCE(max(id), 0) FROM events),
                            (SELECT COALESCE(max(id), 0) FROM deliveries),
                            (SELECT COALESCE(max(id), 0) FROM attempts),
                            (SELECT count(*) FROM events WHERE status = 'pending'),
                            (SELECT count(*) FROM deliveries WHERE status = 'pending')",
                    &[],
                )
                .await?;
            Ok(LatestIds {
                event: r.try_get(0)?,
                delivery: r.try_get(1)?,
                attempt: r.try_get(2)?,
                pending_events: r.try_get(3)?,
                pending_deliveries: r.try_get(4)?,
            })
        })
        .await
    }

    /// Queues every dead delivery to `destination` again (of events in
    /// `spaces` when set); returns how many.
    pub async fn retry_dead_letters(
        &self,
        destination: &str,
        spaces: Option<&[String]>,
    ) -> StoreResult<usize> {
        let spaces: Option<Vec<String>> = spaces.map(<[String]>::to_vec);
        self.run(async {
            let n = self
                .client()
                .await?
                .execute(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, next_try_at = 0
                     WHERE status = 'dead' AND destination = $1
                       AND ($2::text[] IS NULL OR event_id IN
                            (SELECT id FROM events WHERE space_key = ANY($2::text[])))",
                    &[&destination, &spaces],
                )
                .await?;
            Ok(n as usize)
        })
        .await
    }
}
