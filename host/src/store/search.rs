//! Paged searches over events and deliveries, for the console and the
//! admin API: newest first, one page at a time by id (keyset), each filter
//! served by an index, so a page costs the same with 100 events stored or
//! 100,000.
//!
//! What it must never do: read whole tables for a page, or let a space
//! admin's query reach past their spaces (`spaces` restricts every query it
//! is set on, on top of the other filters).

use serde::Serialize;

use super::sql::{Column, FromRow, Param, Row, parsed};
use super::{DeliveryStatus, EventStatus, Store, StoreResult};

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// Only this space.
    pub space: Option<String>,
    /// Only these spaces (a space admin's); `Some(empty)` matches nothing.
    pub spaces: Option<Vec<String>>,
    /// Only this page, blog post or comment (its Confluence id).
    pub content_id: Option<String>,
    /// Only this Confluence event name (`page_created`, ...).
    pub name: Option<String>,
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only events older than this id (the next page).
    pub before: Option<i64>,
    /// Most rows.
    pub limit: usize,
}

/// One event in a list: what a row shows, without its bodies.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventSummary {
    pub id: i64,
    /// Source connection.
    pub source: String,
    /// Confluence's event name.
    pub name: String,
    pub received_at: i64,
    pub status: EventStatus,
    pub attempts: u32,
    pub error: Option<String>,
    /// The space, once the event is dispatched (enriched).
    pub space_key: Option<String>,
    /// The page, blog post or comment, once dispatched.
    pub content_id: Option<String>,
    /// Its title, once dispatched.
    pub title: Option<String>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    /// Exactly this destination (`slack:acme/#eng`).
    pub destination: Option<String>,
    pub plugin: Option<String>,
    pub event_id: Option<i64>,
    /// Only deliveries of events in these spaces (a space admin's).
    pub spaces: Option<Vec<String>>,
    /// Only deliveries older than this id (the next page).
    pub before: Option<i64>,
    pub limit: usize,
}

/// How many deliveries are in one status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryCount {
    pub status: DeliveryStatus,
    pub count: u64,
}

/// A cheap fingerprint of what is new: when it changes, a console page's
/// lists are worth reading again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatestIds {
    pub event: i64,
    pub delivery: i64,
    pub attempt: i64,
    /// Events still waiting for dispatch.
    pub pending_events: i64,
    /// Deliveries still waiting to be sent.
    pub pending_deliveries: i64,
}

pub(crate) use super::sql::Dialect;

/// The `WHERE` of a search, built from the filters that are set (a
/// condition per filter, so each can use its index; no `? IS NULL OR`).
#[derive(Debug, Default)]
pub(super) struct Filter {
    clauses: Vec<String>,
    pub params: Vec<Param>,
}

impl Filter {
    fn placeholder(&self, dialect: Dialect, param: &Param) -> String {
        let n = self.params.len() + 1;
        match (dialect, param) {
            (Dialect::Sqlite, Param::Texts(_) | Param::Ints(_)) => {
                format!("(SELECT value FROM json_each(?{n}))")
            }
            (Dialect::Sqlite, _) => format!("?{n}"),
            (Dialect::Postgres, Param::Texts(_)) => format!("ANY(${n}::text[])"),
            (Dialect::Postgres, Param::Ints(_)) => format!("ANY(${n}::bigint[])"),
            (Dialect::Postgres, Param::Text(_)) => format!("${n}::text"),
            (Dialect::Postgres, Param::Int(_)) => format!("${n}::bigint"),
            (Dialect::Postgres, Param::Flag(_)) => format!("${n}::boolean"),
        }
    }

    /// Adds `column <op> <the value>`.
    fn add(&mut self, dialect: Dialect, column: &str, op: &str, param: Param) {
        let placeholder = self.placeholder(dialect, &param);
        self.clauses.push(format!("{column} {op} {placeholder}"));
        self.params.push(param);
    }

    /// Adds `column IN <list>` (`= ANY` on PostgreSQL).
    fn add_in(&mut self, dialect: Dialect, column: &str, values: &[String]) {
        let op = match dialect {
            Dialect::Sqlite => "IN",
            Dialect::Postgres => "=",
        };
        self.add(dialect, column, op, Param::Texts(values.to_vec()));
    }

    /// ` WHERE a AND b` or nothing.
    pub fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The placeholder of the next parameter (the `LIMIT`).
    pub fn next_placeholder(&self, dialect: Dialect) -> String {
        self.placeholder(dialect, &Param::Int(None))
    }
}

/// Most rows a search answers in one page.
pub const MAX_PAGE: usize = 1000;

impl EventQuery {
    pub(super) fn filter(&self, dialect: Dialect) -> Filter {
        let mut f = Filter::default();
        if let Some(spaces) = &self.spaces {
            f.add_in(dialect, "space_key", spaces);
        }
        if let Some(space) = &self.space {
            f.add(dialect, "space_key", "=", space.into());
        }
        if let Some(id) = &self.content_id {
            f.add(dialect, "content_id", "=", id.into());
        }
        if let Some(name) = &self.name {
            f.add(dialect, "name", "=", name.into());
        }
        if let Some(status) = self.status {
            f.add(dialect, "status", "=", status.as_str().into());
        }
        if let Some(before) = self.before {
            f.add(dialect, "id", "<", before.into());
        }
        f
    }

    /// The page size, at most [`MAX_PAGE`].
    pub(super) fn page(&self) -> i64 {
        self.limit.clamp(1, MAX_PAGE) as i64
    }
}

impl DeliveryQuery {
    pub(super) fn filter(&self, dialect: Dialect) -> Filter {
        let mut f = Filter::default();
        if let Some(status) = self.status {
            f.add(dialect, "status", "=", status.as_str().into());
        }
        if let Some(d) = &self.destination {
            f.add(dialect, "destination", "=", d.into());
        }
        if let Some(p) = &self.plugin {
            f.add(dialect, "plugin", "=", p.into());
        }
        if let Some(e) = self.event_id {
            f.add(dialect, "event_id", "=", e.into());
        }
        if let Some(spaces) = &self.spaces {
            let list = f.placeholder(dialect, &Param::Texts(Vec::new()));
            let op = if dialect == Dialect::Sqlite {
                "IN"
            } else {
                "="
            };
            f.clauses.push(format!(
                "event_id IN (SELECT id FROM events WHERE space_key {op} {list})"
            ));
            f.params.push(Param::Texts(spaces.clone()));
        }
        if let Some(before) = self.before {
            f.add(dialect, "id", "<", before.into());
        }
        f
    }

    pub(super) fn page(&self) -> i64 {
        self.limit.clamp(1, MAX_PAGE) as i64
    }
}

impl FromRow for EventSummary {
    const COLUMNS: &'static str =
        "id, source, name, received_at, status, attempts, error, space_key, content_id, title";

    fn from_row(r: &dyn Row) -> StoreResult<EventSummary> {
        Ok(EventSummary {
            id: r.get("id")?,
            source: r.get("source")?,
            name: r.get("name")?,
            received_at: r.get("received_at")?,
            status: r.get("status")?,
            attempts: r.get("attempts")?,
            error: r.get("error")?,
            space_key: r.get("space_key")?,
            content_id: r.get("content_id")?,
            title: r.get("title")?,
        })
    }
}

impl Column for DeliveryStatus {
    fn read(row: &dyn Row, column: &'static str) -> StoreResult<Option<DeliveryStatus>> {
        parsed(row, column, "delivery status", DeliveryStatus::parse)
    }
}

impl Store {
    /// Events matching `q`, newest first, a page at a time.
    pub async fn search_events(&self, q: &EventQuery) -> StoreResult<Vec<EventSummary>> {
        let dialect = self.dialect();
        let filter = q.filter(dialect);
        let from = format!(
            "FROM events{} ORDER BY id DESC LIMIT {}",
            filter.where_sql(),
            filter.next_placeholder(dialect)
        );
        let mut params = filter.params;
        params.push(q.page().into());
        self.select(&from, params).await
    }

    /// How many deliveries are in each status.
    pub async fn delivery_counts(&self) -> StoreResult<Vec<DeliveryCount>> {
        self.query(
            "SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status ORDER BY status",
            vec![],
            |r| {
                Ok(DeliveryCount {
                    status: r.get("status")?,
                    count: r.get("n")?,
                })
            },
        )
        .await
    }

    /// What is newest (for live updates), to tell a console page its lists changed.
    pub async fn latest_ids(&self) -> StoreResult<LatestIds> {
        let latest = self
            .query_opt(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM events) AS event,
                        (SELECT COALESCE(MAX(id), 0) FROM deliveries) AS delivery,
                        (SELECT COALESCE(MAX(id), 0) FROM attempts) AS attempt,
                        (SELECT COUNT(*) FROM events WHERE status = 'pending') AS pending_events,
                        (SELECT COUNT(*) FROM deliveries WHERE status = 'pending') AS pending_deliveries",
                vec![],
                |r| {
                    Ok(LatestIds {
                        event: r.get("event")?,
                        delivery: r.get("delivery")?,
                        attempt: r.get("attempt")?,
                        pending_events: r.get("pending_events")?,
                        pending_deliveries: r.get("pending_deliveries")?,
                    })
                },
            )
            .await?;
        Ok(latest.unwrap_or_default())
    }

    /// Queues every dead delivery to `destination` again (only of events in
    /// `spaces` when set); returns how many.
    pub async fn retry_dead_letters(
        &self,
        destination: &str,
        spaces: Option<&[String]>,
    ) -> StoreResult<usize> {
        let mut sql = "UPDATE deliveries SET status = 'pending', attempts = 0, next_try_at = 0
             WHERE status = 'dead' AND destination = ?1"
            .to_owned();
        let mut params = vec![destination.into()];
        if let Some(spaces) = spaces {
            sql.push_str(&format!(
                " AND event_id IN (SELECT id FROM events WHERE space_key {})",
                self.dialect().in_list(2)
            ));
            params.push(Param::Texts(spaces.to_vec()));
        }
        Ok(self.execute(&sql, params).await? as usize)
    }
}
