//! SQLite's side of the console's searches and counts (see `store::search`).

use rusqlite::types::Value;

use super::SqliteStore;
use crate::store::search::{DeliveryCount, Dialect, EventQuery, EventSummary, LatestIds, Param};
use crate::store::{DeliveryStatus, EventStatus, StoreError, StoreResult};

/// A search's parameters as SQLite values (a list as JSON, for `json_each`).
pub(super) fn values(params: &[Param]) -> Vec<Value> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(s) => Value::Text(s.clone()),
            Param::Int(n) => Value::Integer(*n),
            Param::Texts(list) => {
                Value::Text(serde_json::to_string(list).expect("strings serialize"))
            }
        })
        .collect()
}

impl SqliteStore {
    /// Events matching `q`, newest first (see [`EventQuery`]).
    pub fn search_events(&self, q: &EventQuery) -> StoreResult<Vec<EventSummary>> {
        let filter = q.filter(Dialect::Sqlite);
        let sql = format!(
            "SELECT id, source, name, received_at, status, attempts, error, space_key, content_id, title
             FROM events{} ORDER BY id DESC LIMIT {}",
            filter.where_sql(),
            filter.next_placeholder(Dialect::Sqlite)
        );
        let mut values = values(&filter.params);
        values.push(Value::Integer(q.page()));
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            stmt.query_map(rusqlite::params_from_iter(values), |r| {
                Ok((
                    EventSummary {
                        id: r.get(0)?,
                        source: r.get(1)?,
                        name: r.get(2)?,
                        received_at: r.get(3)?,
                        status: EventStatus::Pending,
                        attempts: r.get(5)?,
                        error: r.get(6)?,
                        space_key: r.get(7)?,
                        content_id: r.get(8)?,
                        title: r.get(9)?,
                    },
                    r.get::<_, String>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(mut e, status)| {
                e.status = EventStatus::parse(&status).map_err(|message| StoreError::Corrupt {
                    what: "event status",
                    message,
                })?;
                Ok(e)
            })
            .collect()
    }

    /// How many deliveries are in each status.
    pub fn delivery_counts(&self) -> StoreResult<Vec<DeliveryCount>> {
        let rows: Vec<(String, i64)> = self.with(|conn| {
            conn.prepare_cached(
                "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })?;
        rows.into_iter()
            .map(|(status, count)| {
                Ok(DeliveryCount {
                    status: DeliveryStatus::parse(&status).map_err(|message| {
                        StoreError::Corrupt {
                            what: "delivery status",
                            message,
                        }
                    })?,
                    count: count as u64,
                })
            })
            .collect()
    }

    /// What is newest, to tell a console page its lists changed.
    pub fn latest_ids(&self) -> StoreResult<LatestIds> {
        self.with(|conn| {
            conn.prepare_cached(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM events),
                        (SELECT COALESCE(MAX(id), 0) FROM deliveries),
                        (SELECT COALESCE(MAX(id), 0) FROM attempts),
                        (SELECT COUNT(*) FROM events WHERE status = 'pending'),
                        (SELECT COUNT(*) FROM deliveries WHERE status = 'pending')",
            )?
            .query_row([], |r| {
                Ok(LatestIds {
                    event: r.get(0)?,
                    delivery: r.get(1)?,
                    attempt: r.get(2)?,
                    pending_events: r.get(3)?,
                    pending_deliveries: r.get(4)?,
                })
            })
        })
    }

    /// Queues every dead delivery to `destination` again (of events in
    /// `spaces` when set); returns how many.
    pub fn retry_dead_letters(
        &self,
        destination: &str,
        spaces: Option<&[String]>,
    ) -> StoreResult<usize> {
        let spaces = spaces.map(|s| serde_json::to_string(s).expect("strings serialize"));
        self.with(|conn| {
            conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_try_at = 0
                 WHERE status = 'dead' AND destination = ?1
                   AND (?2 IS NULL OR event_id IN
                        (SELECT id FROM events WHERE space_key IN (SELECT value FROM json_each(?2))))",
                rusqlite::params![destination, spaces],
            )
        })
    }
}
