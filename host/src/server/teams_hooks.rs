//! `POST /hooks/teams/{connection}`: the messaging endpoint of a Teams bot
//! connection, where the Bot Connector sends the bot's activities.
//!
//! In order: the connection must be a Teams bot (404); the request must
//! carry a Bot Framework token (401); the body within the limit (413) and a
//! JSON activity (400); the token valid for this bot and this activity
//! (issuer, audience = the app id, signature by a published key endorsed for
//! the channel, expiry, the `serviceurl` claim: [`crate::source::teams_auth`];
//! 401, or 503 when the keys cannot be fetched, so Teams tries again). Only
//! then is anything stored; refusals store nothing.
//!
//! Answers: a message or card action is answered 200 once it is committed
//! (deduplicated on the activity id, so a replay is handled once); an
//! `invoke` gets the invoke response Teams waits for. An installation is
//! answered once its conversation reference is committed, and the person is
//! greeted through the outbox once the Bot Connector says who they are; a
//! removal forgets the reference. The bot added to a team keeps the team
//! (and greets the channel it was added in, through the outbox); removed
//! from it, forgets it. Other activities are answered 200 and
//! dropped.
//!
//! `link` and `unlink` (also `connect` and `disconnect`) written to the bot
//! in a personal chat are the host's own: `link` is answered, in that chat
//! only, with a one-time link to the console where the person signs in to
//! Confluence (as `/confluence link` does in Slack, see
//! [`crate::self_link`]), and once they confirm there the bot says in the
//! chat whom they are connected as ([`confirm_link`]); `unlink` removes
//! their link and says so. Neither is stored or handed to plugins.
//!
//! Never answers or logs a token, the client secret, a one-time link, or an
//! activity's text.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use super::AppState;
use super::hook_error::HookError;
use super::hooks::{answer, body_refused};
use super::slack_link::HostCommand;
use crate::config::Config;
use crate::model::Action;
use crate::ops::changes::{ChangeAction, log_change};
use crate::source::teams_activity::{self, ActivityHeader, Inbound};
use crate::source::teams_auth::BotFrameworkKeys;
use crate::store::teams_conversations::{TeamsConversation, TeamsTeam};
use crate::store::{ConnectionKind, ConnectionRecord, NewDelivery, NewEvent, now_ms};
use crate::teams::bots::TeamsBots;
use crate::teams::connector::BotConnector;

/// What the Teams endpoint keeps between requests: the Bot Framework's
/// signing keys (one set for every bot) and the bots' tokens (for the
/// member lookup that greets a person).
pub struct TeamsState {
    keys: BotFrameworkKeys,
    bots: Arc<TeamsBots>,
    http: crate::http::clients::ClientsByProxy,
}

impl TeamsState {
    /// The state for `config`'s OpenID metadata URL and timeouts, with the
    /// bots' tokens in `bots` (shared with dispatch and delivery).
    pub fn new(config: &Config, bots: Arc<TeamsBots>) -> TeamsState {
        let timeout = config.enrichment_timeout();
        let keys_http = crate::http::client_builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        TeamsState {
            keys: BotFrameworkKeys::new(&config.teams_bot.openid_metadata_url, keys_http),
            bots,
            http: crate::http::clients::ClientsByProxy::new(move |b| b.timeout(timeout)),
        }
    }
}

pub(super) async fn receive(
    State(state): State<Arc<AppState>>,
    Path(connection): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = take(&state, &connection, &headers, body).await;
    answer(&state, result)
}

async fn take(
    state: &Arc<AppState>,
    connection: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HookError> {
    let bot = match state.store.connection(connection).await {
        Ok(Some(c)) if c.kind == ConnectionKind::TeamsBot => c,
        Ok(_) => {
            return Err(HookError::UnknownConnection(format!(
                "no Teams bot connection named `{connection}`; create it with `pagehook connect teams-bot {connection} --app-id .. --tenant-id .. --client-secret-env VAR`"
            )));
        }
        Err(e) => {
            return Err(HookError::Unavailable(format!(
                "reading the connection: {e}"
            )));
        }
    };
    let Some(app_id) = bot.app_id.clone() else {
        return Err(HookError::NoSecret(format!(
            "Teams bot `{connection}` has no app id, so no token can be checked"
        )));
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if authorization.is_none() {
        return Err(HookError::Signature(
            "no Authorization header: this URL takes activities from the Bot Connector only".into(),
        ));
    }
    let body = body.map_err(|rejection| body_refused(state, rejection))?;
    let activity: Value = serde_json::from_slice(&body)
        .map_err(|_| HookError::Malformed("the body is not a JSON activity".into()))?;
    let (channel_id, service_url) =
        teams_activity::routing(&activity).map_err(|e| HookError::Malformed(e.to_string()))?;
    state
        .teams
        .keys
        .authenticate(authorization, &app_id, channel_id, service_url)
        .await
        .map_err(|e| {
            tracing::warn!(%connection, "Teams activity refused: {e}");
            if e.is_unavailable() {
                HookError::Unavailable(e.to_string())
            } else {
                HookError::Signature(e.to_string())
            }
        })?;
    let inbound = teams_activity::parse(connection, &activity)
        .map_err(|e| HookError::Malformed(e.to_string()))?;
    match inbound {
        Inbound::Store {
            key,
            name,
            payload,
            header,
            invoke,
        } => {
            if let Some(command) = host_command(name, &payload, &header) {
                let base = super::public_url::public_base(
                    state.config.server.public_url.as_deref(),
                    headers,
                );
                let state = state.clone();
                tokio::spawn(async move {
                    self_link(&state, &bot, &header, command, &base).await;
                });
                return Ok(StatusCode::OK.into_response());
            }
            let inserted = state
                .ingest
                .insert(NewEvent {
                    key,
                    source: connection.to_owned(),
                    name: name.to_owned(),
                    payload: payload.to_string(),
                    dispatchable: true,
                })
                .await?;
            state.metrics.received(connection, inserted.duplicate);
            tracing::debug!(event = inserted.id, %connection, duplicate = inserted.duplicate, "Teams {name} stored");
            if header.conversation_type == "personal" {
                remember(state, &bot, &header, None).await;
            }
            Ok(if invoke {
                // Universal Actions wait for an invoke response; the
                // plugin's answer follows as a reply.
                Json(json!({
                    "statusCode": 200,
                    "type": "application/vnd.microsoft.activity.message",
                    "value": "Received."
                }))
                .into_response()
            } else {
                Json(json!({"ok": true, "id": inserted.id, "duplicate": inserted.duplicate}))
                    .into_response()
            })
        }
        Inbound::Installed(header) => {
            remember(state, &bot, &header, None)
                .await
                .ok_or_else(|| HookError::Unavailable("cannot keep the conversation now".into()))?;
            let payload = json!({"type": "teams_installation", "user": header.from_id,
                "tenant": header.tenant_id});
            if first_time(state, connection, &header.id, payload).await? {
                let state = state.clone();
                tokio::spawn(async move { greet(&state, &bot, &header).await });
            }
            Ok(StatusCode::OK.into_response())
        }
        Inbound::Uninstalled(header) => {
            state
                .store
                .remove_teams_conversation(connection, &header.from_id)
                .await
                .map_err(|e| {
                    HookError::Unavailable(format!("cannot forget the conversation now: {e}"))
                })?;
            tracing::info!(%connection, "a person removed the Teams bot; their conversation is forgotten");
            Ok(StatusCode::OK.into_response())
        }
        Inbound::TeamInstalled {
            header,
            team,
            greet,
        } => {
            let kept = TeamsTeam {
                connection: bot.name.clone(),
                team_id: team.id.clone(),
                team_name: team.name.clone(),
                conversation_id: header.conversation_id.clone(),
                tenant_id: header.tenant_id.clone(),
                service_url: header.service_url.clone(),
                updated_at: now_ms(),
            };
            state
                .store
                .save_teams_team(&kept)
                .await
                .map_err(|e| HookError::Unavailable(format!("cannot keep the team now: {e}")))?;
            tracing::info!(%connection, team = %kept.label(), "the Teams bot was added to a team");
            let payload = json!({"type": "teams_team_installation", "team": team.id,
                "tenant": header.tenant_id});
            if greet && first_time(state, connection, &header.id, payload).await? {
                let what = format!("teams-team-installed:{}", header.id);
                if let Err(e) = state
                    .store
                    .enqueue_notice(&what, &team_greeting(&bot.name, &kept))
                    .await
                {
                    tracing::warn!(%connection, error = %e, "cannot queue the team's greeting");
                }
            }
            Ok(StatusCode::OK.into_response())
        }
        Inbound::TeamUninstalled { team_id, .. } => {
            state
                .store
                .remove_teams_team(connection, &team_id)
                .await
                .map_err(|e| HookError::Unavailable(format!("cannot forget the team now: {e}")))?;
            tracing::info!(%connection, "the Teams bot was removed from a team; the team is forgotten");
            Ok(StatusCode::OK.into_response())
        }
        Inbound::Ignored { what } => {
            tracing::debug!(%connection, "Teams {what} acknowledged and dropped");
            Ok(StatusCode::OK.into_response())
        }
    }
}

/// Records an installation activity (kept, not dispatched, under its
/// activity id) and says whether it is the first time: Teams sends an
/// installation again when its answer was slow, and nobody is greeted twice.
/// `payload` carries its `type`, which names it.
async fn first_time(
    state: &AppState,
    connection: &str,
    activity_id: &str,
    payload: Value,
) -> Result<bool, HookError> {
    let name = payload["type"]
        .as_str()
        .unwrap_or("teams_installation")
        .to_owned();
    let inserted = state
        .ingest
        .insert(NewEvent {
            key: format!("teams:{connection}:{activity_id}"),
            source: connection.to_owned(),
            name,
            payload: payload.to_string(),
            dispatchable: false,
        })
        .await?;
    Ok(!inserted.duplicate)
}

/// `link` (or `connect`) or `unlink` (or `disconnect`), written alone to
/// the bot in a personal chat.
fn host_command(name: &str, payload: &Value, h: &ActivityHeader) -> Option<HostCommand> {
    if name != teams_activity::TEAMS_MESSAGE || h.conversation_type != "personal" {
        return None;
    }
    let text = payload.get("text").and_then(Value::as_str)?.trim();
    let is = |word: &str| text.eq_ignore_ascii_case(word);
    if is("link") || is("connect") {
        Some(HostCommand::Link)
    } else if is("unlink") || is("disconnect") {
        Some(HostCommand::Unlink)
    } else {
        None
    }
}

/// Answers `link` (a one-time link to the console, in the person's own
/// chat) or `unlink` (their link removed), as a reply to their message.
async fn self_link(
    state: &AppState,
    bot: &ConnectionRecord,
    h: &ActivityHeader,
    command: HostCommand,
    base: &str,
) {
    let text = match command {
        HostCommand::Link => link_answer(state, bot, h, base).await,
        HostCommand::Unlink => match state.store.remove_user_link(&bot.name, &h.from_id).await {
            Ok(Some(link)) => {
                let actor = format!("Teams user {} of `{}` (unlink)", h.from_id, bot.name);
                log_change(
                    &state.store,
                    &actor,
                    ChangeAction::LinkRemove,
                    &crate::self_link::target(&link),
                    crate::self_link::detail(&link),
                )
                .await;
                format!(
                    "Disconnected: your Teams account is no longer linked to Confluence user {}. Write `connect` to link it again.",
                    link.confluence_label()
                )
            }
            Ok(None) => "Your Teams account is not linked to a Confluence account.".to_owned(),
            Err(e) => {
                tracing::error!(error = %e, connection = %bot.name, "unlink: cannot read links");
                "Pagehook cannot read its database right now. Try again in a moment.".to_owned()
            }
        },
    };
    let http = state.teams.http.get(bot.proxy.as_ref());
    let tokens = match state.teams.bots.tokens(bot, http) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(connection = %bot.name, "cannot answer `link`: {e}");
            return;
        }
    };
    let reply = json!({"type": "message", "text": text, "textFormat": "markdown"});
    if let Err(e) = BotConnector::new(tokens.http(), &tokens)
        .reply_to_activity(&h.service_url, &h.conversation_id, &h.id, &reply)
        .await
    {
        tracing::warn!(connection = %bot.name, "cannot answer `link`/`unlink` in Teams: {e}");
    }
}

async fn link_answer(
    state: &AppState,
    bot: &ConnectionRecord,
    h: &ActivityHeader,
    base: &str,
) -> String {
    let all = match state.store.connections().await {
        Ok(all) => all,
        Err(e) => {
            tracing::error!(error = %e, connection = %bot.name, "link: cannot read connections");
            return "Pagehook cannot read its database right now, so it cannot link you. Try again in a moment.".into();
        }
    };
    let confluence = match crate::enrich::chat_confluence::chat_confluence(bot, &all) {
        Ok(c) => c,
        Err(why) => {
            return format!(
                "Pagehook cannot link you yet: it does not know which Confluence this bot uses. Please tell your Pagehook admin: {why}"
            );
        }
    };
    let request = crate::self_link::LinkRequest {
        slack_connection: &bot.name,
        slack_team: &h.tenant_id,
        slack_user: &h.from_id,
        trigger_id: &h.id,
        confluence_connection: &confluence.name,
    };
    match crate::self_link::issue(&state.store, &request).await {
        Ok(Some(token)) => {
            tracing::info!(connection = %bot.name, confluence = %confluence.name, "link: one-time link given in Teams");
            format!(
                "[Link your Teams account to Confluence `{}`]({}/console/link/{token}): the link works once, for {} minutes, and only you see it. It asks you to sign in to Confluence and shows who will be linked before anything changes.",
                confluence.name,
                base.trim_end_matches('/'),
                crate::self_link::TOKEN_TTL.as_secs() / 60
            )
        }
        Ok(None) => "This request was answered already. Write `link` again for a new link.".into(),
        Err(e) => {
            tracing::error!(error = %e, connection = %bot.name, "link: cannot store the link request");
            "Pagehook cannot read its database right now, so it cannot link you. Try again in a moment.".into()
        }
    }
}

/// Keeps (or refreshes) the conversation reference an activity carries,
/// with the member's email when known; `None` when it could not be stored.
async fn remember(
    state: &AppState,
    bot: &ConnectionRecord,
    h: &ActivityHeader,
    member: Option<&crate::teams::connector::TeamsMember>,
) -> Option<()> {
    let reference = TeamsConversation {
        connection: bot.name.clone(),
        user_id: h.from_id.clone(),
        aad_object_id: member
            .and_then(|m| m.aad_object_id.clone())
            .or(h.from_aad_object_id.clone()),
        tenant_id: h.tenant_id.clone(),
        service_url: h.service_url.clone(),
        conversation_id: h.conversation_id.clone(),
        name: member.and_then(|m| m.name.clone()).or(h.from_name.clone()),
        email: member.and_then(|m| m.email.clone()),
        upn: member.and_then(|m| m.user_principal_name.clone()),
        updated_at: now_ms(),
    };
    match state.store.save_teams_conversation(&reference).await {
        Ok(()) => Some(()),
        Err(e) => {
            tracing::warn!(connection = %bot.name, error = %e, "cannot keep a Teams conversation reference");
            None
        }
    }
}

/// Learns who installed the bot (the Bot Connector's member lookup) and
/// greets them through the outbox, saying what they will get. Best effort:
/// the reference is already kept, and the next message to the bot reads
/// the email again if this fails.
async fn greet(state: &AppState, bot: &ConnectionRecord, h: &ActivityHeader) {
    let http = state.teams.http.get(bot.proxy.as_ref());
    let tokens = match state.teams.bots.tokens(bot, http) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(connection = %bot.name, "cannot greet a new Teams user: {e}");
            return;
        }
    };
    let connector = BotConnector::new(tokens.http(), &tokens);
    let member = match connector
        .get_member(&h.service_url, &h.conversation_id, &h.from_id)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(connection = %bot.name, "cannot read who installed the Teams bot: {e}");
            return;
        }
    };
    remember(state, bot, h, Some(&member)).await;
    let Some(email) = member.email.clone().or(member.user_principal_name.clone()) else {
        tracing::warn!(connection = %bot.name, "Teams shows no email for a person who installed the bot; they cannot be matched to Confluence");
        return;
    };
    let text = format!(
        "Pagehook is connected (Teams bot `{}`). You will get a message here about Confluence pages you created, are mentioned in or watch, as the Confluence user with the email {email}. Write `search <words>` to search Confluence.",
        bot.name
    );
    let what = format!("teams-installed:{}", h.id);
    if let Err(e) = state
        .store
        .enqueue_notice(&what, &notice(&bot.name, &email, text))
        .await
    {
        tracing::warn!(connection = %bot.name, error = %e, "cannot queue the Teams greeting");
    }
}

/// A message of Pagehook's own to a person in their chat with `bot`,
/// through the outbox like any delivery.
fn notice(bot: &str, email: &str, text: String) -> NewDelivery {
    let action = Action::DmTeams {
        email: email.to_owned(),
        text,
        card: None,
    };
    crate::ops::notice(bot, action, 0, &format!("teams-dm:{bot}/{email}"))
}

/// The card the bot posts in the channel it was added to, saying what the
/// team gets (through the outbox, to `teams:<bot>/<team id>`).
fn team_greeting(bot: &str, team: &TeamsTeam) -> NewDelivery {
    let card = crate::deliver::teams::connected_card(format!(
        "The Teams bot `{bot}` was added to {}. Pages shared with \"Share to channel\" from a personal notification can be posted here, and members of this team can get personal notifications about Confluence pages they created, are mentioned in or watch.",
        team.label()
    ));
    let channel = format!("{bot}/{}", team.team_id);
    let destination = format!("teams:{channel}");
    crate::ops::notice(bot, Action::PostTeams { channel, card }, 0, &destination)
}

/// Confirms in the person's Teams chat that `link` (just made in the
/// console) connected them, as the console page does: who they are in
/// Confluence now, and how to undo it. Best effort: the link is made
/// either way; without an email or principal name Teams gave for them,
/// the chat cannot be addressed and only the page confirms.
pub(crate) async fn confirm_link(store: &crate::store::Store, link: &crate::store::UserLink) {
    let bot = &link.slack_connection;
    let reference = match store.teams_conversation(bot, &link.slack_user).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(connection = %bot, error = %e, "cannot read the Teams conversation to confirm a link");
            return;
        }
    };
    let Some(email) = reference.email.or(reference.upn) else {
        tracing::info!(connection = %bot, "Teams gave no email for a person who linked; the console page confirmed it");
        return;
    };
    let text = format!(
        "Connected: your Teams account is linked to Confluence user {} of `{}`. Personal notifications and `search` now follow what that user may see. Write `disconnect` to undo it.",
        link.confluence_label(),
        link.confluence_connection
    );
    let what = format!("teams-linked:{bot}:{}:{}", link.slack_user, link.linked_at);
    if let Err(e) = store
        .enqueue_notice(&what, &notice(bot, &email, text))
        .await
    {
        tracing::warn!(connection = %bot, error = %e, "cannot queue the Teams link confirmation");
    }
}
