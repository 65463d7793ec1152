//! Chat events: the event plugins see for a stored Slack request or Teams
//! activity, with the chat user resolved to a Confluence user (a Slack
//! user's self-link, else their email; a Teams user's email or user
//! principal name) and what that person may see. Never sends anything to
//! Slack but `users.info`, nor to Teams but the member lookup, and never
//! decides for a plugin.

use std::sync::Arc;
use std::time::Duration;

use crate::enrich::chat::ChatIdentity;
use crate::enrich::chat_confluence::chat_confluence;
use crate::enrich::{EnrichError, Enricher};
use crate::model::Event;
use crate::source::slack_events::ChatInbound;
use crate::source::teams_activity::TeamsInbound;
use crate::store::teams_conversations::TeamsConversation;
use crate::store::{ConnectionKind, ConnectionRecord, EventRecord, now_ms};
use crate::teams::connector::{BotConnector, ConnectorError};

use super::{Dispatcher, Snapshot};

impl Dispatcher {
    /// The event plugins see for a stored Slack request: the chat part as
    /// Slack sent it, resolved by the Confluence connection the Slack
    /// connection uses ([`Enricher::resolve_chat`]) for the Confluence user
    /// the Slack user linked themselves to, else the one their email (read
    /// with `users.info`) matches. [`ChatNotReady`] when it cannot run now.
    pub(super) async fn chat_event(
        &self,
        record: &EventRecord,
        mut inbound: ChatInbound,
        snapshot: &Snapshot,
    ) -> Result<Event, ChatNotReady> {
        let source = record.source.as_str();
        let (slack, confluence, enricher) =
            self.chat_lookups(source, ConnectionKind::Slack, snapshot)?;
        let link = self
            .store
            .user_link(source, &inbound.user_id)
            .await
            .map_err(|e| ChatNotReady::wait(format!("reading the Slack user's link: {e}")))?
            // A link to another Confluence than the one this workspace uses
            // now says nothing about who they are there.
            .filter(|l| l.confluence_connection == confluence.name);
        let email = match &link {
            Some(_) => None,
            None => self.slack_email(slack, &inbound.user_id).await?,
        };
        let who = match &link {
            Some(link) => ChatIdentity::Linked(&link.confluence_user_key),
            None => ChatIdentity::Email(email.as_deref()),
        };
        resolve(&enricher, who, &mut inbound.chat, "Slack").await?;
        Ok(inbound.into_event(source, &record.key, true))
    }

    /// What resolving a chat event from connection `source` (of `kind`)
    /// needs: that connection, the Confluence connection its chat uses
    /// ([`chat_confluence`]) and its enricher. [`ChatNotReady::Fail`] when
    /// an admin must choose that Confluence; a wait otherwise.
    fn chat_lookups<'s>(
        &self,
        source: &str,
        kind: ConnectionKind,
        snapshot: &'s Snapshot,
    ) -> Result<(&'s ConnectionRecord, &'s ConnectionRecord, Arc<Enricher>), ChatNotReady> {
        let chat = snapshot
            .connections
            .iter()
            .find(|c| c.name == source && c.kind == kind)
            .ok_or_else(|| {
                ChatNotReady::wait(format!(
                    "{} connection `{source}` no longer exists",
                    if kind == ConnectionKind::Slack {
                        "Slack"
                    } else {
                        "Teams bot"
                    }
                ))
            })?;
        let confluence = match chat_confluence(chat, &snapshot.connections) {
            Ok(c) => c,
            Err(why) if why.needs_admin() => return Err(ChatNotReady::Fail(why.to_string())),
            Err(why) => return Err(ChatNotReady::wait(why.to_string())),
        };
        let enricher = self
            .enricher(&confluence.name, &snapshot.connections)
            .map_err(ChatNotReady::wait)?
            .ok_or_else(|| {
                ChatNotReady::wait(format!(
                    "Confluence connection `{}` has no token to read pages with",
                    confluence.name
                ))
            })?;
        Ok((chat, confluence, enricher))
    }

    /// The event plugins see for a stored Teams activity: the chat part as
    /// Teams sent it, resolved by the Confluence connection the bot uses
    /// for the Confluence user whose email (or user principal name) is the
    /// Teams user's. Who the Teams user is comes from the conversation
    /// reference the host keeps; when it has no email yet, the Bot
    /// Connector's member lookup gives it (and it is kept).
    pub(super) async fn teams_event(
        &self,
        record: &EventRecord,
        mut inbound: TeamsInbound,
        snapshot: &Snapshot,
    ) -> Result<Event, ChatNotReady> {
        let source = record.source.as_str();
        let (bot, confluence, enricher) =
            self.chat_lookups(source, ConnectionKind::TeamsBot, snapshot)?;
        let link = self
            .store
            .user_link(source, &inbound.user_id)
            .await
            .map_err(|e| ChatNotReady::wait(format!("reading the Teams user's link: {e}")))?
            .filter(|l| l.confluence_connection == confluence.name);
        let email = match &link {
            Some(_) => None,
            None => self.teams_email(bot, &inbound).await?,
        };
        let who = match &link {
            Some(link) => ChatIdentity::Linked(&link.confluence_user_key),
            None => ChatIdentity::Email(email.as_deref()),
        };
        resolve(&enricher, who, &mut inbound.chat, "Teams").await?;
        Ok(inbound.into_event(source, &record.key, true))
    }

    /// The email (else the user principal name) of the Teams user who
    /// sent `inbound` to `bot`: kept with their conversation reference, or
    /// read with the Bot Connector's member lookup and kept. `None` when
    /// Teams shows neither.
    async fn teams_email(
        &self,
        bot: &ConnectionRecord,
        inbound: &TeamsInbound,
    ) -> Result<Option<String>, ChatNotReady> {
        let known = self
            .store
            .teams_conversation(&bot.name, &inbound.user_id)
            .await
            .map_err(|e| ChatNotReady::wait(format!("reading the Teams conversation: {e}")))?;
        if let Some(found) = known
            .as_ref()
            .and_then(|c| c.email.clone().or(c.upn.clone()))
        {
            return Ok(Some(found));
        }
        let tokens = self
            .teams_bots
            .tokens(bot, self.http.get(bot.proxy.as_ref()))
            .map_err(|e| ChatNotReady::Fail(e.to_string()))?;
        let connector = BotConnector::new(tokens.http(), &tokens);
        let member = connector
            .get_member(
                &inbound.service_url,
                &inbound.conversation_id,
                &inbound.user_id,
            )
            .await
            .map_err(|e| {
                let retry_after = match &e {
                    ConnectorError::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                ChatNotReady::Wait {
                    message: format!("reading the Teams user's email (member lookup): {e}"),
                    retry_after,
                }
            })?;
        let (tenant_id, user, personal) = match &inbound.chat {
            crate::model::ChatEvent::TeamsMessage {
                user,
                conversation_type,
                ..
            }
            | crate::model::ChatEvent::TeamsCardAction {
                user,
                conversation_type,
                ..
            } => (
                user.tenant_id.clone(),
                user,
                conversation_type == "personal",
            ),
            _ => unreachable!("a Teams activity reads back as a Teams chat event"),
        };
        if known.is_none() && !personal {
            // Only a 1:1 conversation can carry personal messages.
            return Ok(member.email.or(member.user_principal_name));
        }
        let reference = TeamsConversation {
            connection: bot.name.clone(),
            user_id: inbound.user_id.clone(),
            aad_object_id: member.aad_object_id.clone().or(user.aad_object_id.clone()),
            tenant_id,
            service_url: inbound.service_url.clone(),
            conversation_id: known
                .map(|k| k.conversation_id)
                .unwrap_or_else(|| inbound.conversation_id.clone()),
            name: member.name.clone().or(user.name.clone()),
            email: member.email.clone(),
            upn: member.user_principal_name.clone(),
            updated_at: now_ms(),
        };
        if let Err(e) = self.store.save_teams_conversation(&reference).await {
            tracing::warn!(error = %e, "cannot keep the Teams user's email");
        }
        Ok(member.email.or(member.user_principal_name))
    }

    /// The email of Slack user `user` of connection `slack` (`users.info`,
    /// cached); `None` when Slack shows none.
    pub(super) async fn slack_email(
        &self,
        slack: &ConnectionRecord,
        user: &str,
    ) -> Result<Option<String>, ChatNotReady> {
        let name = slack.name.as_str();
        let token = slack
            .secret
            .as_ref()
            .ok_or_else(|| format!("Slack connection `{name}` has no bot token"))
            .and_then(|s| {
                s.resolve()
                    .map_err(|m| format!("the bot token of Slack connection `{name}`: {m}"))
            })
            .map_err(ChatNotReady::wait)?;
        let http = self.http.get(slack.proxy.as_ref());
        let client = crate::slack::SlackClient::new(&http, &slack.url, &token);
        self.slack_emails
            .email(name, &client, user)
            .await
            .map_err(|e| {
                let retry_after = match &e {
                    crate::slack::SlackError::RateLimited { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let hint = e.code().map_or("", crate::slack::auth::refusal_hint);
                ChatNotReady::Wait {
                    message: format!("reading the Slack user's email (users.info): {e}{hint}"),
                    retry_after,
                }
            })
    }
}

/// Fills in what the chat user `who` (of `service`) may see; a wait, with
/// Confluence's `Retry-After`, when Confluence cannot say now.
async fn resolve(
    enricher: &Enricher,
    who: ChatIdentity<'_>,
    chat: &mut crate::model::ChatEvent,
    service: &str,
) -> Result<(), ChatNotReady> {
    enricher.resolve_chat(who, chat).await.map_err(|e| {
        let retry_after = match &e {
            EnrichError::Transient { retry_after, .. } => *retry_after,
            EnrichError::Permanent(_) => None,
        };
        ChatNotReady::Wait {
            message: format!("reading what the {service} user may see in Confluence: {e}"),
            retry_after,
        }
    })
}

/// Why a chat event does not run now.
pub(super) enum ChatNotReady {
    /// It waits for a later round: something transient, or a Confluence
    /// connection that is not made yet.
    Wait {
        message: String,
        retry_after: Option<Duration>,
    },
    /// It fails with this reason: an admin must choose the Confluence
    /// connection the Slack connection uses, and waiting would not do it.
    Fail(String),
}

impl ChatNotReady {
    pub(super) fn wait(message: String) -> ChatNotReady {
        ChatNotReady::Wait {
            message,
            retry_after: None,
        }
    }
}
