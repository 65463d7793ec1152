//! Teams bot deliveries: personal messages (`dm-teams`) and answers to a
//! Teams chat event (`reply-teams`), sent through the Bot Connector REST
//! API ([`crate::teams::connector`]) with the bot's token from Microsoft
//! Entra ID ([`crate::teams::token`]).
//!
//! A personal message goes to the 1:1 conversation Teams told the host
//! about when the person installed the bot or wrote to it
//! ([`crate::store::teams_conversations`]), found by the recipient's email
//! or user principal name. A person who never installed the bot cannot be
//! written to (Teams refuses a conversation with them): that is a dead
//! letter that says so. An answer goes into the conversation of the stored
//! activity it answers, as a reply to that activity.
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
use crate::store::{Claimed, ConnectionRecord};
use crate::teams::connector::{BotConnector, ConnectorError};
use crate::teams::token::TokenError;

/// Largest activity Teams takes (about 28 KB of message, card included).
pub const MAX_ACTIVITY: usize = 28 * 1024;

/// The message activity a delivery sends: its text and, with a card, the
/// card as an Adaptive Card attachment.
fn activity(d: &Claimed) -> Result<Value, Attempt> {
    let (text, card) = match &d.action {
        Action::DmTeams { text, card, .. } | Action::ReplyTeams { text, card, .. } => (text, card),
        _ => unreachable!("routed by action kind"),
    };
    if text.trim().is_empty() {
        return Err(Attempt::Dead(
            "a Teams message needs text (the notification shows it); the plugin sent none".into(),
        ));
    }
    let mut activity = json!({"type": "message", "text": text, "textFormat": "plain"});
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
        Action::ReplyTeams { activity_id, .. } => {
            json!({"bot": conn.name, "reply_to": activity_id, "activity": activity})
        }
        _ => unreachable!("routed by action kind"),
    })
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
                Ok(None) => {
                    return Attempt::Dead(format!(
                        "nobody with the email `{email}` has the Teams bot `{}` installed: a bot can write only to people who installed it (or for whom an admin installed it with a Teams app setup policy)",
                        conn.name
                    ));
                }
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
            connector
                .reply_to_activity(
                    &inbound.service_url,
                    &inbound.conversation_id,
                    activity_id,
                    &activity,
                )
                .await
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
