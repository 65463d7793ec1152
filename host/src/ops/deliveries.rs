//! Putting dead or dry-run deliveries back in the queue: one, or every dead
//! letter of a destination.

use serde_json::json;

use super::AdminResult;
use super::changes::{ChangeAction, log_change};
use crate::store::Store;

/// Queues delivery `id` again (it must be dead or dry-run) and logs it.
pub async fn retry(store: &Store, actor: &str, id: i64) -> AdminResult<()> {
    store.retry_delivery(id).await?;
    log_change(
        store,
        actor,
        ChangeAction::DeliveryRetry,
        &id.to_string(),
        json!({}),
    )
    .await;
    Ok(())
}

/// Queues every dead letter to `destination` again (within `spaces` when
/// given: a space admin's); how many.
pub async fn retry_dead(
    store: &Store,
    actor: &str,
    destination: &str,
    spaces: Option<&[String]>,
) -> AdminResult<usize> {
    let queued = store.retry_dead_letters(destination, spaces).await?;
    let detail = json!({ "queued": queued });
    log_change(
        store,
        actor,
        ChangeAction::DeliveryRetryDead,
        destination,
        detail,
    )
    .await;
    Ok(queued)
}
