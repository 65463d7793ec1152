//! What dispatch wrote, read back for admins: deliveries (listed and
//! searched), the audit log of every action a plugin asked for, and failed
//! plugin calls. The same SQL on both backends; writing them is dispatch's
//! business (`outbox.rs` and the backends).

use super::search::DeliveryQuery;
use super::sql::{FromRow, Row};
use super::{AuditRecord, DeliveryRecord, DeliveryStatus, FailureRecord, Store, StoreResult};

/// Most rows the lists of one event's deliveries and failures read.
const PER_EVENT: usize = 10_000;

impl FromRow for DeliveryRecord {
    const COLUMNS: &'static str = "id, event_id, binding_id, plugin, kind, destination, action, dry_run, status, attempts, last_error, created_at, result";

    fn from_row(r: &dyn Row) -> StoreResult<DeliveryRecord> {
        Ok(DeliveryRecord {
            id: r.get("id")?,
            event_id: r.get("event_id")?,
            binding_id: r.get("binding_id")?,
            plugin: r.get("plugin")?,
            kind: r.get("kind")?,
            destination: r.get("destination")?,
            action: r.json("action", "delivery action")?,
            dry_run: r.get("dry_run")?,
            status: r.get("status")?,
            attempts: r.get("attempts")?,
            last_error: r.get("last_error")?,
            result: r.get("result")?,
            created_at: r.get("created_at")?,
        })
    }
}

impl FromRow for AuditRecord {
    const COLUMNS: &'static str =
        "at, event_id, binding_id, plugin, sha256, kind, destination, verdict, reason";

    fn from_row(r: &dyn Row) -> StoreResult<AuditRecord> {
        Ok(AuditRecord {
            at: r.get("at")?,
            event_id: r.get("event_id")?,
            binding_id: r.get("binding_id")?,
            plugin: r.get("plugin")?,
            sha256: r.get("sha256")?,
            kind: r.get("kind")?,
            destination: r.get("destination")?,
            verdict: r.get("verdict")?,
            reason: r.get("reason")?,
        })
    }
}

impl FromRow for FailureRecord {
    const COLUMNS: &'static str = "at, event_id, binding_id, plugin, code, message, log";

    fn from_row(r: &dyn Row) -> StoreResult<FailureRecord> {
        Ok(FailureRecord {
            at: r.get("at")?,
            event_id: r.get("event_id")?,
            binding_id: r.get("binding_id")?,
            plugin: r.get("plugin")?,
            code: r.get("code")?,
            message: r.get("message")?,
            log: r.get("log")?,
        })
    }
}

impl Store {
    /// Deliveries, newest first, optionally in one status.
    pub async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        self.search_deliveries(&DeliveryQuery {
            status,
            limit,
            ..DeliveryQuery::default()
        })
        .await
    }

    /// The deliveries one event produced.
    pub async fn event_deliveries(&self, event_id: i64) -> StoreResult<Vec<DeliveryRecord>> {
        self.search_deliveries(&DeliveryQuery {
            event_id: Some(event_id),
            limit: PER_EVENT,
            ..DeliveryQuery::default()
        })
        .await
    }

    /// Deliveries matching `q`, newest first, a page at a time.
    pub async fn search_deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<DeliveryRecord>> {
        let dialect = self.dialect();
        let filter = q.filter(dialect);
        let from = format!(
            "FROM deliveries{} ORDER BY id DESC LIMIT {}",
            filter.where_sql(),
            filter.next_placeholder(dialect)
        );
        let mut params = filter.params;
        params.push(q.page().into());
        self.select(&from, params).await
    }

    /// The audit log, newest first, optionally for one event.
    pub async fn audit(
        &self,
        event_id: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<AuditRecord>> {
        self.select(
            "FROM audit WHERE CAST(?1 AS BIGINT) IS NULL OR event_id = ?1 ORDER BY id DESC LIMIT ?2",
            vec![event_id.into(), limit.into()],
        )
        .await
    }

    /// Failed plugin calls, newest first, optionally of one plugin.
    pub async fn failures(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<FailureRecord>> {
        self.failures_where(plugin, None, limit).await
    }

    /// The failed calls of one event.
    pub async fn event_failures(&self, event_id: i64) -> StoreResult<Vec<FailureRecord>> {
        self.failures_where(None, Some(event_id), PER_EVENT).await
    }

    async fn failures_where(
        &self,
        plugin: Option<&str>,
        event_id: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<FailureRecord>> {
        self.select(
            "FROM failures WHERE (CAST(?1 AS TEXT) IS NULL OR plugin = ?1)
               AND (CAST(?3 AS BIGINT) IS NULL OR event_id = ?3)
             ORDER BY id DESC LIMIT ?2",
            vec![plugin.into(), limit.into(), event_id.into()],
        )
        .await
    }
}
