//! Paged searches over events and deliveries, for the console and the
//! admin API: newest first, one page at a time by id (keyset), each filter
//! served by an index, so a page costs the same with 100 events stored or
//! 100,000.
//!
//! What it must never do: read whole tables for a page, or let a space
//! admin's query reach past their spaces (`spaces` restricts every query it
//! is set on, on top of the other filters).

use serde::Serialize;

use super::{DeliveryStatus, EventStatus};

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

/// One filter's value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    Text(String),
    Int(i64),
    /// A list (of space keys).
    Texts(Vec<String>),
}

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
            (Dialect::Sqlite, Param::Texts(_)) => format!("(SELECT value FROM json_each(?{n}))"),
            (Dialect::Sqlite, _) => format!("?{n}"),
            (Dialect::Postgres, Param::Texts(_)) => format!("ANY(${n}::text[])"),
            (Dialect::Postgres, Param::Text(_)) => format!("${n}::text"),
            (Dialect::Postgres, Param::Int(_)) => format!("${n}::bigint"),
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
        self.placeholder(dialect, &Param::Int(0))
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
            f.add(dialect, "space_key", "=", Param::Text(space.clone()));
        }
        if let Some(id) = &self.content_id {
            f.add(dialect, "content_id", "=", Param::Text(id.clone()));
        }
        if let Some(name) = &self.name {
            f.add(dialect, "name", "=", Param::Text(name.clone()));
        }
        if let Some(status) = self.status {
            f.add(dialect, "status", "=", Param::Text(status.as_str().into()));
        }
        if let Some(before) = self.before {
            f.add(dialect, "id", "<", Param::Int(before));
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
            f.add(dialect, "status", "=", Param::Text(status.as_str().into()));
        }
        if let Some(d) = &self.destination {
            f.add(dialect, "destination", "=", Param::Text(d.clone()));
        }
        if let Some(p) = &self.plugin {
            f.add(dialect, "plugin", "=", Param::Text(p.clone()));
        }
        if let Some(e) = self.event_id {
            f.add(dialect, "event_id", "=", Param::Int(e));
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
            f.add(dialect, "id", "<", Param::Int(before));
        }
        f
    }

    pub(super) fn page(&self) -> i64 {
        self.limit.clamp(1, MAX_PAGE) as i64
    }
}
