//! Send-time rate slots on PostgreSQL (see `Store::take_send_slot`): the
//! last check before a message goes to Slack, shared by every replica.
//!
//! Each call locks its two `rate_limits` rows in key order (so two callers
//! never wait on each other in opposite orders), admits by the database's
//! clock and advances them only if the message may go now. It must never
//! advance a slot for a message that is not about to be sent.

use super::{ASYNC_COMMIT, DB_NOW, PgStore};
use crate::store::claims::admit;
use crate::store::{RateKeys, RatePolicy, SendSlot, StoreResult};

impl PgStore {
    /// See `Store::take_send_slot`.
    pub async fn take_send_slot(
        &self,
        keys: &RateKeys,
        rates: RatePolicy,
    ) -> StoreResult<SendSlot> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.batch_execute(ASYNC_COMMIT).await?;
            let mut sorted = [keys.channel.as_str(), keys.workspace.as_str()];
            sorted.sort_unstable();
            let sorted = sorted.to_vec();
            let create = tx
                .prepare_cached(
                    "INSERT INTO rate_limits (key, tat_ms) SELECT k, 0 FROM unnest($1::text[]) AS u(k) ORDER BY k ON CONFLICT DO NOTHING",
                )
                .await?;
            tx.execute(&create, &[&sorted]).await?;
            let lock = tx
                .prepare_cached(&format!(
                    "SELECT key, tat_ms, {DB_NOW} FROM rate_limits WHERE key = ANY($1) ORDER BY key FOR UPDATE"
                ))
                .await?;
            let rows = tx.query(&lock, &[&sorted]).await?;
            let mut channel = 0;
            let mut workspace = 0;
            let mut now = 0;
            for r in &rows {
                let key: String = r.try_get(0)?;
                let tat: i64 = r.try_get(1)?;
                now = r.try_get(2)?;
                if key == keys.channel {
                    channel = tat;
                }
                if key == keys.workspace {
                    workspace = tat;
                }
            }
            let wait = match admit(&rates, channel, workspace, now) {
                Ok((channel, workspace)) => {
                    let put = tx
                        .prepare_cached(
                            "UPDATE rate_limits SET tat_ms = u.tat FROM unnest($1::text[], $2::bigint[]) AS u(key, tat) WHERE rate_limits.key = u.key",
                        )
                        .await?;
                    tx.execute(
                        &put,
                        &[
                            &vec![keys.channel.as_str(), keys.workspace.as_str()],
                            &vec![channel, workspace],
                        ],
                    )
                    .await?;
                    SendSlot::Granted { at: now }
                }
                Err(ms) => SendSlot::Wait { ms },
            };
            tx.commit().await?;
            Ok(wait)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fresh;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slot_is_taken_once_per_gap_across_replicas() {
        let (store, _db) = fresh().await;
        let keys = RateKeys {
            channel: "send:slack-channel:acme/#eng".into(),
            workspace: "send:slack-workspace:acme".into(),
        };
        let rates = RatePolicy::per_second(4.0, 100.0);
        let (a, b) = tokio::join!(
            store.take_send_slot(&keys, rates),
            store.take_send_slot(&keys, rates)
        );
        let results = [a.unwrap(), b.unwrap()];
        let granted = results
            .iter()
            .filter(|r| matches!(r, SendSlot::Granted { .. }))
            .count();
        assert_eq!(granted, 1, "one of them goes: {results:?}");
        let wait = results
            .iter()
            .find_map(|r| match r {
                SendSlot::Wait { ms } => Some(*ms),
                SendSlot::Granted { .. } => None,
            })
            .expect("the other waits");
        assert!(
            (100..=250).contains(&wait),
            "about the channel's gap: {wait}"
        );
        let other = RateKeys {
            channel: "send:slack-channel:acme/#ops".into(),
            workspace: keys.workspace.clone(),
        };
        assert!(matches!(
            store.take_send_slot(&other, rates).await.unwrap(),
            SendSlot::Granted { .. }
        ));
    }
}
