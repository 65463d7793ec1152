//! PostgreSQL's webhook write path. Skeleton; being filled in.

use std::sync::Arc;

use tokio::sync::Notify;

use super::PgStore;
use crate::store::NewEvent;
use crate::store::ingest::Inserted;

/// Sends events to the writer task; cheap to clone.
#[derive(Clone)]
pub struct PgIngest {
    _store: PgStore,
}

#[allow(unused_variables)]
impl PgIngest {
    /// Starts the writer task on `store`.
    pub fn start(store: PgStore, stored: Arc<Notify>) -> PgIngest {
        todo!()
    }

    /// Stores `event`; returns once it is committed.
    pub async fn insert(&self, event: NewEvent) -> Result<Inserted, String> {
        todo!()
    }
}
