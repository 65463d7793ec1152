//! Wake-ups from other replicas: `LISTEN` on a connection of its own.
//!
//! A replica that stores an event sends `NOTIFY pagehook_events`; one that
//! writes deliveries sends `NOTIFY pagehook_deliveries`. This task listens
//! to both on a dedicated connection (a pooled one would be handed to other
//! work) and wakes the matching worker. A notification is only a hint: the
//! workers poll as well, so one lost while this connection is down only
//! delays. After every (re)connection both workers are woken, since
//! something may have been missed meanwhile.
//!
//! It must never stop for good (it reconnects with a backoff, logging once
//! per outage), never log the password, and never hold up a worker: it only
//! calls `notify_one`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Inner, PgStore, pg_message};

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Channel names, as `NOTIFY` sends them.
pub(super) const EVENTS: &str = "pagehook_events";
pub(super) const DELIVERIES: &str = "pagehook_deliveries";

impl PgStore {
    /// Starts the listening task on the current tokio runtime: `events` is
    /// woken when any replica stored an event, `deliveries` when one wrote
    /// deliveries. The task ends once every handle on this store is gone.
    pub fn listen(&self, events: Arc<Notify>, deliveries: Arc<Notify>) {
        let store = Arc::downgrade(&self.inner);
        tokio::spawn(run(store, events, deliveries));
    }
}

async fn run(store: Weak<Inner>, events: Arc<Notify>, deliveries: Arc<Notify>) {
    let mut backoff = MIN_BACKOFF;
    // Logged once per outage.
    let mut down = false;
    loop {
        let Some((config, tls, described)) = store.upgrade().map(|inner| {
            (
                inner.config.clone(),
                inner.tls.clone(),
                inner.described.clone(),
            )
        }) else {
            return;
        };
        let mut on_listening = || {
            if std::mem::take(&mut down) {
                tracing::info!(database = %described, "listening for other replicas' wake-ups again");
            }
            backoff = MIN_BACKOFF;
            events.notify_one();
            deliveries.notify_one();
        };
        let error = listen_once(
            &config,
            tls,
            &store,
            &events,
            &deliveries,
            &mut on_listening,
        )
        .await;
        let Some(error) = error else {
            return;
        };
        if !down {
            tracing::warn!(
                database = %described,
                error = %error,
                "the connection listening for other replicas' wake-ups failed; reconnecting (workers keep polling meanwhile)"
            );
            down = true;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Connects, listens and forwards notifications until the connection fails
/// (returns why) or the store is gone (returns `None`).
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    store: &Weak<Inner>,
    events: &Notify,
    deliveries: &Notify,
    on_listening: &mut impl FnMut(),
) -> Option<String> {
    let (client, mut connection) = match config.connect(tls).await {
        Ok(c) => c,
        Err(e) => return Some(pg_message(&e)),
    };
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql = format!("LISTEN {EVENTS}; LISTEN {DELIVERIES}");
    let subscribe = client.batch_execute(&sql);
    tokio::pin!(subscribe);
    let mut listening = false;
    // Checks now and then whether the store is still wanted.
    let mut alive = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            done = &mut subscribe, if !listening => match done {
                Ok(()) => {
                    listening = true;
                    on_listening();
                }
                Err(e) => return Some(pg_message(&e)),
            },
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => match n.channel() {
                    EVENTS => events.notify_one(),
                    DELIVERIES => deliveries.notify_one(),
                    _ => {}
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(pg_message(&e)),
                None => return Some("the server closed the connection".to_owned()),
            },
            _ = alive.tick() => {
                if store.strong_count() == 0 {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::config;
    use super::*;
    use pagehook_fakes::postgres::TestPostgres;

    async fn woken(n: &Notify) {
        tokio::time::timeout(Duration::from_secs(10), n.notified())
            .await
            .expect("woken in time");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_replicas_writes_wake_this_one_also_after_a_reconnect() {
        // A server of its own: it kills connections.
        let pg = TestPostgres::start();
        let db = pg.fresh_database();
        let store = PgStore::connect(&config(&pg, &db)).await.unwrap();
        let other = PgStore::connect(&config(&pg, &db)).await.unwrap();
        let (events, deliveries) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        store.listen(events.clone(), deliveries.clone());
        // Connected: both are woken once.
        woken(&events).await;
        woken(&deliveries).await;

        let ingest = super::super::ingest::PgIngest::start(other.clone(), Arc::new(Notify::new()));
        ingest
            .insert(crate::store::NewEvent {
                key: "k".into(),
                source: "prod".into(),
                name: "page_created".into(),
                payload: "{}".into(),
                dispatchable: true,
            })
            .await
            .unwrap();
        woken(&events).await;
        other
            .client()
            .await
            .unwrap()
            .batch_execute("NOTIFY pagehook_deliveries")
            .await
            .unwrap();
        woken(&deliveries).await;

        // The listening connection is killed: it comes back and wakes both.
        assert!(pg.terminate_connections(&db, "pagehook") >= 1);
        woken(&events).await;
        woken(&deliveries).await;
        other
            .client()
            .await
            .unwrap()
            .batch_execute("NOTIFY pagehook_events")
            .await
            .unwrap();
        woken(&events).await;
    }
}
