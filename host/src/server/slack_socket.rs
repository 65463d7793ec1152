//! Socket Mode for every Slack connection with an app-level token: `serve`
//! keeps a socket open for each ([`crate::source::slack_socket`] speaks the
//! protocol) and takes each envelope exactly as `/hooks/slack/{connection}`
//! takes a signed request: read by [`slack_events::parse_envelope`], stored
//! by [`super::slack_hooks::store`] with the same deduplication key, so an
//! envelope Slack sends again, to this replica or another, or that also
//! arrived over HTTP, is one event. `/confluence link` and `unlink` are
//! answered in the acknowledgement, as they are in the HTTP answer.
//!
//! An envelope is acknowledged only once what it carries is committed (or
//! when there is nothing to keep: an event type Pagehook does not use); one
//! that cannot be stored is not acknowledged, and Slack sends it again.
//!
//! Which connections have sockets follows the store: every
//! [`RECONCILE_EVERY`] the list is read again, sockets start for new or
//! changed connections and stop for removed ones. In cluster mode every
//! replica holds its own socket (Slack allows 10 per app and gives each
//! envelope to one of them).
//!
//! What it must never do: acknowledge before the commit, or log the
//! app-level token (only its source is compared, never its value).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::AppState;
use super::slack_hooks;
use super::slack_link;
use crate::http::proxy::ProxyOverride;
use crate::source::slack_events::{self, Inbound};
use crate::source::slack_socket::{
    Acknowledge, Envelope, EnvelopeHandler, SocketSettings, run as run_sockets,
};
use crate::store::ConnectionKind;

/// How often the connections are read again for sockets to start or stop.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(2);

/// Takes one Slack connection's envelopes into the store.
struct Inbox {
    state: Arc<AppState>,
    connection: String,
}

impl EnvelopeHandler for Inbox {
    async fn handle(&self, envelope: Envelope) -> Acknowledge {
        let connection = self.connection.as_str();
        let state = &self.state;
        let inbound = match slack_events::parse_envelope(
            connection,
            &envelope.kind,
            envelope.payload,
            state.clock.now_secs(),
        ) {
            Ok(inbound) => inbound,
            Err(e) => {
                // Sent again it would be as unreadable: take it off Slack's hands.
                state.metrics.rejected("malformed");
                tracing::warn!(%connection, envelope = %envelope.id, "Socket Mode envelope dropped: {e}");
                return Acknowledge::Now { payload: None };
            }
        };
        let stored = match inbound {
            Inbound::Store(stored) => stored,
            Inbound::Ignored { what } => {
                tracing::debug!(%connection, "Slack {what} acknowledged and dropped");
                return Acknowledge::Now { payload: None };
            }
            Inbound::UrlVerification { .. } => return Acknowledge::Now { payload: None },
        };
        if stored.name == slack_events::SLASH_COMMAND
            && let Some(command) = slack_link::host_command(&stored.payload)
        {
            let answer = slack_link::answer_payload(
                state,
                connection,
                state.config.server.public_url.as_deref(),
                &stored.payload,
                command,
            )
            .await;
            return Acknowledge::Now {
                payload: Some(answer),
            };
        }
        let retry = envelope.retry_attempt.to_string();
        match slack_hooks::store(state, connection, *stored, &retry).await {
            Ok(_) => Acknowledge::Now { payload: None },
            Err(e) => {
                tracing::error!(%connection, envelope = %envelope.id, "Socket Mode envelope not stored, so not acknowledged (Slack sends it again): {e}");
                Acknowledge::Not
            }
        }
    }
}

/// One running connection's sockets.
struct Running {
    /// What they were started with: the API URL, the token's source and
    /// the connection's own proxy (a change restarts them).
    started_with: Started,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

type Started = (String, String, Option<ProxyOverride>);

/// Keeps a socket open for every Slack connection with an app-level token
/// until `stopped` turns true.
pub async fn run(state: Arc<AppState>, mut stopped: watch::Receiver<bool>) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut warned_public_url = false;
    loop {
        match state.store.connections().await {
            Ok(all) => {
                type Wanted = (String, crate::secret::SecretSource, Option<ProxyOverride>);
                let wanted: HashMap<String, Wanted> = all
                    .into_iter()
                    .filter(|c| c.kind == ConnectionKind::Slack)
                    .filter_map(|c| Some((c.name, (c.url, c.app_token?, c.proxy))))
                    .collect();
                running.retain(|name, r| {
                    let keep = wanted.get(name).is_some_and(|(url, token, proxy)| {
                        r.started_with == (url.clone(), token.to_spec(), proxy.clone())
                    });
                    if !keep {
                        tracing::info!(connection = %name, "Socket Mode: stopping (the connection changed or was removed)");
                        let _ = r.stop.send(true);
                    }
                    keep
                });
                for (name, (url, token, proxy)) in wanted {
                    if running.contains_key(&name) {
                        continue;
                    }
                    if state.config.server.public_url.is_none() && !warned_public_url {
                        warned_public_url = true;
                        tracing::warn!(connection = %name, "Socket Mode: no [server] public-url, so /confluence link cannot hand out links (nothing tells Pagehook the address people reach it at)");
                    }
                    let (stop, stop_rx) = watch::channel(false);
                    let started_with = (url.clone(), token.to_spec(), proxy.clone());
                    let mut settings = SocketSettings::new(&name, &url, token);
                    settings.proxy = proxy;
                    let inbox = Arc::new(Inbox {
                        state: state.clone(),
                        connection: name.clone(),
                    });
                    let task = tokio::spawn(run_sockets(settings, inbox, stop_rx));
                    running.insert(
                        name,
                        Running {
                            started_with,
                            stop,
                            task,
                        },
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Socket Mode: cannot read the connections; keeping the sockets there are");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
            _ = stopped.changed() => break,
        }
    }
    for (_, r) in running.drain() {
        let _ = r.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), r.task).await;
    }
}
