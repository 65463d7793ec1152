//! The shared backend: PostgreSQL, any number of replicas.
//!
//! Skeleton; being filled in.

pub mod ingest;

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::config::PostgresConfig;
use crate::store::{
    AttemptRecord, AttemptResult, AuditRecord, Binding, BreakerPolicy, Claim, ConnectionRecord,
    DeliveryRecord, DeliveryRound, DeliveryStatus, Dispatched, EventCount, EventRecord,
    EventStatus, FailureRecord, HealthChange, NewBinding, NewDelivery, PluginRecord, RatePolicy,
    StoreResult, TokenExpiry,
};

/// A pool of connections to one PostgreSQL database; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<()>,
}

#[allow(unused_variables)]
impl PgStore {
    pub async fn connect(config: &PostgresConfig) -> StoreResult<PgStore> {
        todo!()
    }
    pub fn describe(&self) -> String {
        todo!()
    }
    pub async fn ping(&self) -> StoreResult<()> {
        todo!()
    }
    pub async fn is_empty(&self) -> StoreResult<bool> {
        todo!()
    }
    pub async fn export_table(&self, table: &str) -> StoreResult<Vec<Map<String, Value>>> {
        todo!()
    }
    pub async fn import_table(&self, table: &str, rows: &[Map<String, Value>]) -> StoreResult<()> {
        todo!()
    }
    pub fn listen(&self, events: Arc<Notify>, deliveries: Arc<Notify>) {
        todo!()
    }

    pub async fn install_plugin(&self, p: &PluginRecord) -> StoreResult<()> {
        todo!()
    }
    pub async fn plugin(&self, name: &str) -> StoreResult<Option<PluginRecord>> {
        todo!()
    }
    pub async fn require_plugin(&self, name: &str) -> StoreResult<PluginRecord> {
        todo!()
    }
    pub async fn plugins(&self) -> StoreResult<Vec<PluginRecord>> {
        todo!()
    }
    pub async fn set_plugin_enabled(&self, name: &str, enabled: bool) -> StoreResult<()> {
        todo!()
    }
    pub async fn reset_breaker(&self, name: &str) -> StoreResult<()> {
        todo!()
    }
    pub async fn remove_plugin(&self, name: &str) -> StoreResult<usize> {
        todo!()
    }

    pub async fn add_connection(&self, c: &ConnectionRecord) -> StoreResult<()> {
        todo!()
    }
    pub async fn connection(&self, name: &str) -> StoreResult<Option<ConnectionRecord>> {
        todo!()
    }
    pub async fn connections(&self) -> StoreResult<Vec<ConnectionRecord>> {
        todo!()
    }
    pub async fn remove_connection(&self, name: &str) -> StoreResult<bool> {
        todo!()
    }
    pub async fn set_token_expiry(
        &self,
        name: &str,
        token: Option<&TokenExpiry>,
    ) -> StoreResult<()> {
        todo!()
    }
    pub async fn set_connection_health(&self, name: &str, error: Option<&str>) -> StoreResult<()> {
        todo!()
    }
    pub async fn set_connection_dry_run(&self, name: &str, dry_run: bool) -> StoreResult<()> {
        todo!()
    }

    pub async fn add_binding(&self, b: &NewBinding) -> StoreResult<Binding> {
        todo!()
    }
    pub async fn bindings(&self, plugin: Option<&str>) -> StoreResult<Vec<Binding>> {
        todo!()
    }
    pub async fn binding(&self, id: i64) -> StoreResult<Option<Binding>> {
        todo!()
    }
    pub async fn qualify_slack_destinations(&self, workspace: &str) -> StoreResult<usize> {
        todo!()
    }
    pub async fn remove_binding(&self, id: i64) -> StoreResult<()> {
        todo!()
    }

    pub async fn event(&self, id: i64) -> StoreResult<Option<EventRecord>> {
        todo!()
    }
    pub async fn events(
        &self,
        status: Option<EventStatus>,
        limit: usize,
    ) -> StoreResult<Vec<EventRecord>> {
        todo!()
    }
    pub async fn event_counts(&self) -> StoreResult<Vec<EventCount>> {
        todo!()
    }
    pub async fn claim_events(&self, claim: &Claim, limit: usize) -> StoreResult<Vec<EventRecord>> {
        todo!()
    }
    pub async fn defer_event(
        &self,
        claim: &Claim,
        id: i64,
        error: &str,
        next_try_at: i64,
    ) -> StoreResult<bool> {
        todo!()
    }
    pub async fn close_event(
        &self,
        claim: &Claim,
        id: i64,
        status: EventStatus,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        todo!()
    }

    pub async fn finish_dispatch(
        &self,
        claim: &Claim,
        batch: &[Dispatched],
        breaker: BreakerPolicy,
    ) -> StoreResult<usize> {
        todo!()
    }
    pub async fn enqueue_notice(&self, what: &str, d: &NewDelivery) -> StoreResult<i64> {
        todo!()
    }
    pub async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        todo!()
    }
    pub async fn event_deliveries(&self, event_id: i64) -> StoreResult<Vec<DeliveryRecord>> {
        todo!()
    }
    pub async fn audit(
        &self,
        event_id: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<AuditRecord>> {
        todo!()
    }
    pub async fn failures(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<FailureRecord>> {
        todo!()
    }
    pub async fn event_failures(&self, event_id: i64) -> StoreResult<Vec<FailureRecord>> {
        todo!()
    }

    pub async fn claim_deliveries(
        &self,
        claim: &Claim,
        rates: RatePolicy,
        max: usize,
    ) -> StoreResult<DeliveryRound> {
        todo!()
    }
    pub async fn finish_attempts(
        &self,
        claim: &Claim,
        attempts: &[AttemptResult],
        health: &[HealthChange],
    ) -> StoreResult<usize> {
        todo!()
    }
    pub async fn renew(&self, claim: &Claim) -> StoreResult<usize> {
        todo!()
    }
    pub async fn release(&self, claim: &Claim) -> StoreResult<()> {
        todo!()
    }
    pub async fn release_stale_claims(&self) -> StoreResult<usize> {
        todo!()
    }
    pub async fn attempts(&self, delivery_id: i64) -> StoreResult<Vec<AttemptRecord>> {
        todo!()
    }
    pub async fn first_attempt_at(&self, delivery_id: i64) -> StoreResult<Option<i64>> {
        todo!()
    }
    pub async fn retry_delivery(&self, id: i64) -> StoreResult<()> {
        todo!()
    }
    pub async fn thread_ts(
        &self,
        connection: &str,
        channel: &str,
        key: &str,
    ) -> StoreResult<Option<String>> {
        todo!()
    }
    pub async fn once_key(&self, source: &str, key: &str) -> StoreResult<Option<u64>> {
        todo!()
    }
    pub async fn set_once_key(&self, source: &str, key: &str, content_id: u64) -> StoreResult<()> {
        todo!()
    }
}
