//! Teams bot deliveries: personal messages (`dm-teams`) and answers to a
//! Teams chat event (`reply-teams`), sent through the Bot Connector REST
//! API ([`crate::teams::connector`]) with the bot's token from Microsoft
//! Entra ID ([`crate::teams::token`]).
//!
//! A personal message goes to the 1:1 conversation Teams told the host
//! about when the person installed the bot or wrote to it
//! ([`crate::store::teams_conversations`]), found by the recipient's email
//! or user principal name. For a person who never did, the members of the
//! teams the bot was added to are looked through (`pagedmembers`) and a
//! 1:1 conversation is created with them (`POST /v3/conversations`), then
//! kept: a proactive message. Someone in neither cannot be written to
//! (Teams refuses a conversation with them): that is a dead letter that
//! says so. An answer goes into the conversation of the stored activity it
//! answers, as a reply to that activity, or (`replace_card`) in place of
//! the bot's card whose button was pressed (`PUT` of that activity). A
//! channel card (`post-teams` to `<bot>/<team>`) goes to the channel the
//! bot was added to in that team.
//!
//! Outcomes: 429 is retried after Teams' `Retry-After` (Teams limits each
//! conversation, and each app per tenant); 401 is retried with a new token;
//! credentials Entra refuses mark the connection; 403 (the bot was removed
//! or blocked) and 404 are dead letters; 5xx and a request lost after it
//! was sent are retried as uncertain. The Bot Connector keeps no
//! idempotency key, so a message whose answer was lost may arrive twice;
//! one that was answered is never sent again (its activity id is the
//! delivery's result).
//!
//! What it must never do: send the bot's token to a service URL that did
//! not come from an activity Teams signed (both come from the store), or
//! show a client secret or token in a result or error.

use serde_json::{Value, json};

use super::{Attempt, Deliverer};
use crate::model::Action;
use crate::source::teams_activity;
use crate::store::teams_conversations::TeamsConversation;
use crate::store::{Claimed, ConnectionRecord};
use crate::teams::connector::{BotConnector, ConnectorError, TeamsMember};
use crate::teams::token::TokenError;

/// Largest activity Teams takes (about 28 KB of message, card included).
pub const MAX_ACTIVITY: usize = 28 * 1024;

/// The message activity a delivery sends: its text and, with a card, the
/// card as an Adaptive Card attachment.
fn activity(d: &Claimed) -> Result<Value, Attempt> {
    let (text, card) = match &d.action {
        Action::DmTeams { text, card, .. } | Action::ReplyTeams { text, card, .. } => {
            (text.as_str(), card.as_ref())
        }
        // A channel card through the bot: the card is the message.
        Action::PostTeams { card, .. } => ("", Some(card)),
        _ => unreachable!("routed by action kind"),
    };
    let is_channel_card = matches!(d.action, Action::PostTeams { .. });
    if text.trim().is_empty() && !is_channel_card {
        return Err(Attempt::Dead(
            "a Teams message needs text (the notification shows it); the plugin sent none".into(),
        ));
    }
    let mut activity = if is_channel_card {
        json!({"type": "message"})
    } else {
        json!({"type": "message", "text": text, "textFormat": "plain"})
    };
    if let Some(card) = card {
        activity["attachments"] = json!([{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": card,
        }]);
    }
    let size = activity.to_string().len();
    if size > MAX_ACTIVITY {
        return Err(Attempt::Dead(format!(
            "the Teams message is {size} bytes, over Teams' limit of about {MAX_ACTIVITY}; the plugin must send less"
        )));
    }
    Ok(activity)
}

/// What a dry run records: the activity, and to whom.
pub(super) fn would_send(conn: &ConnectionRecord, d: &Claimed) -> Result<Value, Attempt> {
    let activity = activity(d)?;
    Ok(match &d.action {
        Action::DmTeams { email, .. } => {
            json!({"bot": conn.name, "to": email, "activity": activity})
        }
        Action::ReplyTeams {
            activity_id,
            replace_card: true,
            ..
        } => {
            json!({"bot": conn.name, "replace_card_of": activity_id, "activity": activity})
        }
        Action::ReplyTeams { activity_id, .. } => {
            json!({"bot": conn.name, "reply_to": activity_id, "activity": activity})
        }
        Action::PostTeams { channel, .. } => {
            json!({"bot": conn.name, "team": team_name(channel), "activity": activity})
        }
        _ => unreachable!("routed by action kind"),
    })
}

/// The team a `post-teams` through bot `<bot>/<team>` names.
fn team_name(channel: &str) -> &str {
    channel.split_once('/').map_or("", |(_, team)| team)
}

/// The team of bot `conn` that `channel` (`<bot>/<team id or name>`) names.
async fn team_of(
    w: &Deliverer,
    conn: &ConnectionRecord,
    channel: &str,
) -> Result<crate::store::teams_conversations::TeamsTeam, Attempt> {
    let wanted = team_name(channel);
    let found = {
        let _turn = w.store_turn().await;
        w.store.teams_team(&conn.name, wanted).await
    };
    match found {
        Ok(Some(team)) => Ok(team),
        Ok(None) => Err(Attempt::Dead(format!(
            "the Teams bot `{}` is not in a team named `{wanted}`: add the bot to that team in Teams (Apps, then Add to a team), then `pagehook retry`",
            conn.name
        ))),
        Err(e) => Err(Attempt::retry(format!("reading the bot's teams: {e}"))),
    }
}

/// A 1:1 conversation with the person whose email or user principal name is
/// `email`, who never wrote to the bot: looked up among the members of the
/// teams the bot is in (`pagedmembers`), then created (`POST
/// /v3/conversations`, which Teams allows for the members of a team the
/// bot is installed in) and kept, so the next message goes straight there.
async fn start_conversation(
    w: &Deliverer,
    conn: &ConnectionRecord,
    connector: &BotConnector<'_>,
    email: &str,
) -> Result<TeamsConversation, Attempt> {
    let nobody = || {
        Attempt::Dead(format!(
            "nobody with the email `{email}` has the Teams bot `{}` installed or is in a team it was added to: a bot can write only to people who installed it (or for whom an admin installed it with a Teams app setup policy) and to the members of its teams",
            conn.name
        ))
    };
    let teams = {
        let _turn = w.store_turn().await;
        w.store.teams_teams(&conn.name).await
    };
    let teams = teams.map_err(|e| Attempt::retry(format!("reading the bot's teams: {e}")))?;
    let Some(app_id) = conn.app_id.as_deref() else {
        return Err(nobody());
    };
    let wanted = email.trim().to_lowercase();
    let is_them = |m: &TeamsMember| {
        [&m.email, &m.user_principal_name]
            .into_iter()
            .flatten()
            .any(|e| e.trim().to_lowercase() == wanted)
    };
    for team in &teams {
        let member = match connector
            .find_member(&team.service_url, &team.team_id, is_them)
            .await
        {
            Ok(Some(member)) => member,
            Ok(None) => continue,
            // A team the bot left without Teams telling the host: the others may still hold them.
            Err(ConnectorError::NotFound { .. } | ConnectorError::Forbidden { .. }) => continue,
            Err(e) => return Err(verdict(&conn.name, e)),
        };
        let tenant = member
            .tenant_id
            .clone()
            .unwrap_or_else(|| team.tenant_id.clone());
        let conversation_id = connector
            .create_conversation(
                &team.service_url,
                &format!("28:{app_id}"),
                &member.id,
                &tenant,
            )
            .await
            .map_err(|e| verdict(&conn.name, e))?;
        let reference = TeamsConversation {
            connection: conn.name.clone(),
            user_id: member.id.clone(),
            aad_object_id: member.aad_object_id.clone(),
            tenant_id: tenant,
            service_url: team.service_url.clone(),
            conversation_id,
            name: member.name.clone(),
            email: member.email.clone(),
            upn: member.user_principal_name.clone(),
            updated_at: crate::store::now_ms(),
        };
        let saved = {
            let _turn = w.store_turn().await;
            w.store.save_teams_conversation(&reference).await
        };
        if let Err(e) = saved {
            // The conversation exists in Teams either way; it is found again next time.
            tracing::warn!(connection = %conn.name, error = %e, "cannot keep a Teams conversation started for a team member");
        }
        return Ok(reference);
    }
    Err(nobody())
}

pub(super) async fn deliver(
    w: &Deliverer,
    conn: &ConnectionRecord,
    d: &Claimed,
    dry_run: bool,
) -> Attempt {
    let activity = match activity(d) {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    if dry_run {
        return match would_send(conn, d) {
            Ok(request) => Attempt::WouldSend(request),
            Err(refused) => refused,
        };
    }
    let tokens = match w.teams_bots.tokens(conn, w.http(conn)) {
        Ok(t) => t,
        Err(why) => return Attempt::Dead(why.to_string()),
    };
    let connector = BotConnector::new(tokens.http(), &tokens);
    let sent = match &d.action {
        Action::DmTeams { email, .. } => {
            let found = {
                let _turn = w.store_turn().await;
                w.store
                    .teams_conversation_for_email(&conn.name, email)
                    .await
            };
            let conversation = match found {
                Ok(Some(c)) => c,
                Ok(None) => match start_conversation(w, conn, &connector, email).await {
                    Ok(c) => c,
                    Err(attempt) => return attempt,
                },
                Err(e) => return Attempt::retry(format!("reading the Teams conversation: {e}")),
            };
            connector
                .send_activity(
                    &conversation.service_url,
                    &conversation.conversation_id,
                    &activity,
                )
                .await
        }
        Action::PostTeams { channel, .. } => {
            let team = match team_of(w, conn, channel).await {
                Ok(t) => t,
                Err(attempt) => return attempt,
            };
            connector
                .send_activity(&team.service_url, &team.conversation_id, &activity)
                .await
        }
        Action::ReplyTeams { activity_id, .. } => {
            let stored = {
                let _turn = w.store_turn().await;
                w.store.event(d.event_id).await
            };
            let inbound = match stored {
                Ok(Some(record)) => {
                    teams_activity::from_stored(&record.payload).and_then(Result::ok)
                }
                Ok(None) => None,
                Err(e) => {
                    return Attempt::retry(format!("reading the Teams activity answered: {e}"));
                }
            };
            let Some(inbound) = inbound else {
                return Attempt::Dead(
                    "the Teams activity this answers is no longer stored, so there is no conversation to answer in".into(),
                );
            };
            if let Action::ReplyTeams {
                replace_card: true, ..
            } = &d.action
            {
                let Some(card_message) = &inbound.reply_to_id else {
                    return Attempt::Dead(
                        "the card action names no message of the bot's (Teams sent no replyToId), so there is no card to replace".into(),
                    );
                };
                // Replacing is the same request each time: sent again, it
                // leaves one card, not two.
                connector
                    .update_activity(
                        &inbound.service_url,
                        &inbound.conversation_id,
                        card_message,
                        &activity,
                    )
                    .await
                    .map(|id| id.or_else(|| Some(card_message.clone())))
            } else {
                connector
                    .reply_to_activity(
                        &inbound.service_url,
                        &inbound.conversation_id,
                        activity_id,
                        &activity,
                    )
                    .await
            }
        }
        _ => unreachable!("routed by action kind"),
    };
    match sent {
        Ok(id) => Attempt::sent(id.unwrap_or_else(|| "sent".to_owned())),
        Err(e) => verdict(&conn.name, e),
    }
}

/// What a Bot Connector failure means for the delivery.
fn verdict(bot: &str, e: ConnectorError) -> Attempt {
    match e {
        ConnectorError::RateLimited { retry_after } => Attempt::Retry {
            error: e.to_string(),
            retry_after,
            uncertain: false,
        },
        ConnectorError::Unauthorized => Attempt::retry(e.to_string()),
        ConnectorError::Server { .. } => Attempt::Retry {
            error: e.to_string(),
            retry_after: None,
            uncertain: true,
        },
        ConnectorError::Network { maybe_sent, .. } => Attempt::Retry {
            error: e.to_string(),
            retry_after: None,
            uncertain: maybe_sent,
        },
        ConnectorError::Token(TokenError::Refused { .. }) => Attempt::Reauth {
            connection: bot.to_owned(),
            error: e.to_string(),
        },
        ConnectorError::Token(TokenError::RateLimited { retry_after }) => Attempt::Retry {
            error: e.to_string(),
            retry_after,
            uncertain: false,
        },
        ConnectorError::Token(_) => Attempt::retry(e.to_string()),
        ConnectorError::Forbidden { .. } => Attempt::Dead(format!(
            "{e} (the person may have removed or blocked the bot `{bot}`)"
        )),
        ConnectorError::NotFound { .. }
        | ConnectorError::BadRequest { .. }
        | ConnectorError::Unexpected { .. }
        | ConnectorError::Malformed(_)
        | ConnectorError::BadServiceUrl(_)
        | ConnectorError::BadId => Attempt::Dead(e.to_string()),
    }
}
