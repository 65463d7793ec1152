//! A Teams bot as an event source: the Bot Framework activities Teams sends
//! to `POST /hooks/teams/{connection}` (`../shared/specs/teams/
//! botframework-activity.md`), once their token is checked
//! ([`super::teams_auth`]).
//!
//! What Pagehook does with each activity type:
//! - `message` with text: a person wrote to the bot. Stored (and handed to
//!   plugins as a `teams-message` chat event).
//! - `message` with a `value` object and no text: a person pressed an
//!   `Action.Submit` button on one of the bot's cards (Teams sends the
//!   button's `data` as the message's `value`). Stored as a
//!   `teams-card-action`; so is an `invoke` named `adaptiveCard/action`
//!   (Universal Actions, `Action.Execute`), with its `value.action.data`.
//! - `installationUpdate` (`action` `add`/`remove`, and the `-upgrade`
//!   forms) and `conversationUpdate` whose `membersAdded` include the bot in
//!   a personal conversation: the person installed or removed the bot. The
//!   conversation reference is kept or forgotten; nothing is stored as an
//!   event.
//! - the same in a team's channel (`channelData.team`), or a
//!   `conversationUpdate` whose `membersAdded`/`membersRemoved` hold the
//!   bot there: the bot was added to or removed from a team. The team is
//!   kept (where the bot may post, whose members it may write to) or
//!   forgotten.
//! - anything else (typing, reactions, `messageUpdate`...): acknowledged and
//!   dropped.
//!
//! What is stored is deduplicated on the activity's `id` (Teams sends an
//! activity again when the bot's answer is slow or lost), so a replayed
//! activity reaches plugins once. [`from_stored`] turns a stored activity
//! back into the chat part of the event plugins see.
//!
//! What it must never do: accept an activity whose token was not checked,
//! or keep more of an activity than the chat event needs (the stored
//! payload is rebuilt from the fields listed here, not copied).

use serde_json::{Map, Value, json};

use crate::model::{ChatEvent, Event, EventKind, TeamsUser};

/// The stored name of a message to the bot.
pub const TEAMS_MESSAGE: &str = "teams_message";
/// The stored name of a card button pressed.
pub const TEAMS_CARD_ACTION: &str = "teams_card_action";
/// `type` of a stored payload, telling it apart from Slack's and
/// Confluence's.
const STORED_TYPE: &str = "teams_activity";

/// The fields every activity Pagehook acts on carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityHeader {
    /// The activity's id.
    pub id: String,
    /// `msteams` for Teams.
    pub channel_id: String,
    /// Where the Bot Connector for this conversation is.
    pub service_url: String,
    /// The conversation's id.
    pub conversation_id: String,
    /// `personal`, `channel` or `groupChat`.
    pub conversation_type: String,
    /// The tenant (`conversation.tenantId`, else `channelData.tenant.id`).
    pub tenant_id: String,
    /// Who sent it (the user's `29:` id).
    pub from_id: String,
    /// Their name, when sent.
    pub from_name: Option<String>,
    /// Their Entra object id, when sent.
    pub from_aad_object_id: Option<String>,
    /// The bot as Teams names it (`28:<app id>`).
    pub bot_id: String,
    /// The activity it answers (`replyToId`): for a card button, the bot's
    /// message that carried the card.
    pub reply_to_id: Option<String>,
}

/// What one activity asks of the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Store it, deduplicated on `key`, and dispatch it.
    Store {
        /// Deduplication key: the connection and the activity id.
        key: String,
        /// [`TEAMS_MESSAGE`] or [`TEAMS_CARD_ACTION`].
        name: &'static str,
        /// What is stored (see [`from_stored`]).
        payload: Value,
        /// Who and where, for the conversation reference.
        header: ActivityHeader,
        /// An `invoke`: Teams waits for an invoke response in the answer.
        invoke: bool,
    },
    /// The person installed the bot (or added it to their personal chat).
    Installed(ActivityHeader),
    /// The person removed the bot.
    Uninstalled(ActivityHeader),
    /// Someone added the bot to a team, in the channel
    /// `header.conversation_id`. `greet`: this is the `installationUpdate`
    /// (Teams also sends a `conversationUpdate`; one greeting is enough).
    TeamInstalled {
        /// Who added it, and where.
        header: ActivityHeader,
        /// The team.
        team: TeamRef,
        /// Whether to greet the channel.
        greet: bool,
    },
    /// The bot was removed from a team.
    TeamUninstalled {
        /// Who removed it.
        header: ActivityHeader,
        /// The team's id.
        team_id: String,
    },
    /// Nothing Pagehook acts on; acknowledged and dropped.
    Ignored {
        /// What it was, for the log.
        what: String,
    },
}

/// A team, as `channelData.team` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRef {
    /// The team's id (its General channel's id, `19:...@thread.tacv2`).
    pub id: String,
    /// Its name, when Teams sent one.
    pub name: Option<String>,
}

/// The team of an activity in a team's channel (`channelData.team`).
fn team_of(obj: &Map<String, Value>, h: &ActivityHeader) -> Option<TeamRef> {
    if h.conversation_type != "channel" {
        return None;
    }
    let team = obj.get("channelData")?.get("team")?;
    let id = team
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?;
    Some(TeamRef {
        id: id.to_owned(),
        name: team
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned),
    })
}

/// Whether the bot (`h.bot_id`) is among the members listed under `key`.
fn bot_among(obj: &Map<String, Value>, key: &str, h: &ActivityHeader) -> bool {
    obj.get(key).and_then(Value::as_array).is_some_and(|m| {
        m.iter()
            .any(|m| m.get("id").and_then(Value::as_str) == Some(&h.bot_id))
    })
}

/// Why an activity cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivityError {
    /// Not JSON, or not an object.
    #[error("the activity is not a JSON object")]
    NotJson,
    /// A field Pagehook needs is missing.
    #[error("the activity has no `{0}`")]
    Missing(&'static str),
}

/// The activity's `channelId` and `serviceUrl`, which its token is checked
/// against before anything else is read.
pub fn routing(activity: &Value) -> Result<(&str, &str), ActivityError> {
    let obj = activity.as_object().ok_or(ActivityError::NotJson)?;
    let channel = text(obj, "channelId").ok_or(ActivityError::Missing("channelId"))?;
    let service = text(obj, "serviceUrl").ok_or(ActivityError::Missing("serviceUrl"))?;
    Ok((channel, service))
}

/// Reads one activity that came to bot `connection`.
pub fn parse(connection: &str, activity: &Value) -> Result<Inbound, ActivityError> {
    let obj = activity.as_object().ok_or(ActivityError::NotJson)?;
    let kind = text(obj, "type").ok_or(ActivityError::Missing("type"))?;
    let header = || header(obj);
    let personal = |h: &ActivityHeader| h.conversation_type == "personal";
    match kind {
        "message" => {
            let h = header()?;
            let text = text(obj, "text")
                .map(|t| without_mentions(t, obj))
                .unwrap_or_default();
            let value = obj.get("value").filter(|v| v.is_object());
            match (text.is_empty(), value) {
                (true, Some(value)) => Ok(store(
                    connection,
                    TEAMS_CARD_ACTION,
                    h,
                    None,
                    Some(value),
                    false,
                )),
                (false, _) => Ok(store(
                    connection,
                    TEAMS_MESSAGE,
                    h,
                    Some(&text),
                    None,
                    false,
                )),
                (true, None) => Ok(Inbound::Ignored {
                    what: "an empty message".into(),
                }),
            }
        }
        "invoke" if text(obj, "name") == Some("adaptiveCard/action") => {
            let h = header()?;
            let data = obj
                .get("value")
                .and_then(|v| v.get("action"))
                .and_then(|a| a.get("data"))
                .filter(|d| d.is_object())
                .cloned()
                .unwrap_or_else(|| json!({}));
            Ok(store(
                connection,
                TEAMS_CARD_ACTION,
                h,
                None,
                Some(&data),
                true,
            ))
        }
        "installationUpdate" => {
            let h = header()?;
            let team = team_of(obj, &h);
            match (text(obj, "action"), team) {
                (Some("add" | "add-upgrade"), _) if personal(&h) => Ok(Inbound::Installed(h)),
                (Some("remove" | "remove-upgrade"), _) if personal(&h) => {
                    Ok(Inbound::Uninstalled(h))
                }
                (Some(action @ ("add" | "add-upgrade")), Some(team)) => {
                    Ok(Inbound::TeamInstalled {
                        header: h,
                        team,
                        greet: action == "add",
                    })
                }
                (Some("remove" | "remove-upgrade"), Some(team)) => Ok(Inbound::TeamUninstalled {
                    header: h,
                    team_id: team.id,
                }),
                (other, _) => Ok(Inbound::Ignored {
                    what: format!(
                        "installationUpdate `{}` in a {} conversation",
                        other.unwrap_or("?"),
                        h.conversation_type
                    ),
                }),
            }
        }
        "conversationUpdate" => {
            let h = header()?;
            let added = bot_among(obj, "membersAdded", &h);
            let removed = bot_among(obj, "membersRemoved", &h);
            match team_of(obj, &h) {
                _ if added && personal(&h) => Ok(Inbound::Installed(h)),
                Some(team) if added => Ok(Inbound::TeamInstalled {
                    header: h,
                    team,
                    greet: false,
                }),
                Some(team) if removed => Ok(Inbound::TeamUninstalled {
                    header: h,
                    team_id: team.id,
                }),
                _ => Ok(Inbound::Ignored {
                    what: "a conversationUpdate".into(),
                }),
            }
        }
        other => Ok(Inbound::Ignored {
            what: format!("a `{other}` activity"),
        }),
    }
}

fn header(obj: &Map<String, Value>) -> Result<ActivityHeader, ActivityError> {
    let nested = |outer: &str, key: &str| {
        obj.get(outer)
            .and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let required = |outer: &str, key: &str, name: &'static str| {
        nested(outer, key).ok_or(ActivityError::Missing(name))
    };
    let tenant_id = nested("conversation", "tenantId")
        .or_else(|| {
            obj.get("channelData")
                .and_then(|c| c.get("tenant"))
                .and_then(|t| t.get("id"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
        .ok_or(ActivityError::Missing("conversation.tenantId"))?;
    Ok(ActivityHeader {
        id: text(obj, "id")
            .filter(|s| !s.is_empty())
            .ok_or(ActivityError::Missing("id"))?
            .to_owned(),
        channel_id: text(obj, "channelId")
            .ok_or(ActivityError::Missing("channelId"))?
            .to_owned(),
        service_url: text(obj, "serviceUrl")
            .ok_or(ActivityError::Missing("serviceUrl"))?
            .to_owned(),
        conversation_id: required("conversation", "id", "conversation.id")?,
        conversation_type: nested("conversation", "conversationType")
            .unwrap_or_else(|| "personal".to_owned()),
        tenant_id,
        from_id: required("from", "id", "from.id")?,
        from_name: nested("from", "name"),
        from_aad_object_id: nested("from", "aadObjectId"),
        bot_id: required("recipient", "id", "recipient.id")?,
        reply_to_id: text(obj, "replyToId")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    })
}

fn store(
    connection: &str,
    name: &'static str,
    h: ActivityHeader,
    message: Option<&str>,
    value: Option<&Value>,
    invoke: bool,
) -> Inbound {
    let reply_to = value.and(h.reply_to_id.as_deref());
    let payload = json!({
        "type": STORED_TYPE,
        "name": name,
        "id": h.id,
        "serviceUrl": h.service_url,
        "conversation": {"id": h.conversation_id, "conversationType": h.conversation_type},
        "tenantId": h.tenant_id,
        "from": {"id": h.from_id, "name": h.from_name, "aadObjectId": h.from_aad_object_id},
        "bot": h.bot_id,
        "text": message,
        "value": value,
        "replyToId": reply_to,
    });
    Inbound::Store {
        key: format!("teams:{connection}:{}", h.id),
        name,
        payload,
        header: h,
        invoke,
    }
}

/// The text without the `<at>Bot</at>` mentions Teams puts in it (the
/// `mention` entities), trimmed.
fn without_mentions(text: &str, obj: &Map<String, Value>) -> String {
    let mut text = text.to_owned();
    if let Some(entities) = obj.get("entities").and_then(Value::as_array) {
        for e in entities {
            if e.get("type").and_then(Value::as_str) == Some("mention")
                && let Some(shown) = e.get("text").and_then(Value::as_str)
            {
                text = text.replace(shown, "");
            }
        }
    }
    text.trim().to_owned()
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// A stored Teams activity read back for dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamsInbound {
    /// The user's Teams id (`29:...`).
    pub user_id: String,
    /// Where the Bot Connector for the conversation is.
    pub service_url: String,
    /// The conversation it came in.
    pub conversation_id: String,
    /// For a card action: the bot's message whose button was pressed
    /// (what `reply-teams` with `replace_card` replaces).
    pub reply_to_id: Option<String>,
    /// The chat part of the event, not yet resolved against Confluence.
    pub chat: ChatEvent,
}

impl TeamsInbound {
    /// The event plugins see, with the chat part as it stands.
    pub fn into_event(self, source: &str, id: &str, enriched: bool) -> Event {
        let (kind, name) = match self.chat {
            ChatEvent::TeamsCardAction { .. } => (EventKind::TeamsCardAction, TEAMS_CARD_ACTION),
            _ => (EventKind::TeamsMessage, TEAMS_MESSAGE),
        };
        Event {
            id: id.to_owned(),
            kind,
            name: name.to_owned(),
            occurred_at_ms: 0,
            source: source.to_owned(),
            actor: None,
            by_pagehook: false,
            content: None,
            update_trigger: None,
            label: None,
            enriched,
            people: vec![],
            chat: Some(self.chat),
        }
    }
}

/// Reads a stored payload as a Teams activity; `None` when it is not one,
/// `Some(Err)` when it is one that cannot be read.
pub fn from_stored(payload: &Value) -> Option<Result<TeamsInbound, String>> {
    let obj = payload.as_object()?;
    if text(obj, "type")? != STORED_TYPE {
        return None;
    }
    Some(stored(obj))
}

fn stored(obj: &Map<String, Value>) -> Result<TeamsInbound, String> {
    let get = |path: &[&str]| -> Option<String> {
        let mut v = obj.get(path[0])?;
        for key in &path[1..] {
            v = v.get(key)?;
        }
        v.as_str().map(str::to_owned)
    };
    let need = |path: &[&str]| {
        get(path).ok_or_else(|| format!("a stored Teams activity without `{}`", path.join(".")))
    };
    let user = TeamsUser {
        id: need(&["from", "id"])?,
        aad_object_id: get(&["from", "aadObjectId"]),
        tenant_id: need(&["tenantId"])?,
        name: get(&["from", "name"]),
        confluence: None,
    };
    let activity_id = need(&["id"])?;
    let conversation_type =
        get(&["conversation", "conversationType"]).unwrap_or_else(|| "personal".into());
    let chat = match text(obj, "name") {
        Some(TEAMS_MESSAGE) => ChatEvent::TeamsMessage {
            activity_id,
            conversation_type,
            text: get(&["text"]).unwrap_or_default(),
            user: user.clone(),
            results: vec![],
        },
        Some(TEAMS_CARD_ACTION) => ChatEvent::TeamsCardAction {
            activity_id,
            conversation_type,
            value: obj
                .get("value")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
            user: user.clone(),
            page: None,
        },
        other => return Err(format!("a stored Teams activity named {other:?}")),
    };
    Ok(TeamsInbound {
        user_id: user.id,
        service_url: need(&["serviceUrl"])?,
        conversation_id: need(&["conversation", "id"])?,
        reply_to_id: get(&["replyToId"]).filter(|id| !id.is_empty()),
        chat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(kind: &str) -> Value {
        json!({
            "type": kind,
            "id": "1700000000001",
            "channelId": "msteams",
            "serviceUrl": "https://smba.trafficmanager.net/emea/",
            "from": {"id": "29:ada", "name": "Ada", "aadObjectId": "aad-ada"},
            "recipient": {"id": "28:app", "name": "Pagehook"},
            "conversation": {"id": "a:1ada", "conversationType": "personal", "tenantId": "tenant-1"},
            "channelData": {"tenant": {"id": "tenant-1"}},
        })
    }

    #[test]
    fn a_message_is_stored_without_the_bots_mention_and_reads_back() {
        let mut a = activity("message");
        a["text"] = json!("<at>Pagehook</at> search launch plan ");
        a["entities"] = json!([{"type": "mention", "text": "<at>Pagehook</at>", "mentioned": {"id": "28:app"}}]);
        a["extra"] = json!("not kept");
        let Inbound::Store {
            key,
            name,
            payload,
            invoke,
            ..
        } = parse("bot", &a).unwrap()
        else {
            panic!("not stored")
        };
        assert_eq!(key, "teams:bot:1700000000001");
        assert_eq!(name, TEAMS_MESSAGE);
        assert!(!invoke);
        assert!(payload.get("extra").is_none());
        let back = from_stored(&payload).unwrap().unwrap();
        assert_eq!(back.user_id, "29:ada");
        assert_eq!(back.conversation_id, "a:1ada");
        let ChatEvent::TeamsMessage { text, user, .. } = &back.chat else {
            panic!()
        };
        assert_eq!(text, "search launch plan");
        assert_eq!(user.tenant_id, "tenant-1");
        assert_eq!(
            back.into_event("bot", "k", false).kind,
            EventKind::TeamsMessage
        );
    }

    #[test]
    fn a_submit_button_and_an_execute_invoke_are_card_actions() {
        let mut a = activity("message");
        a["value"] = json!({"action": "share", "page-id": 42});
        let Inbound::Store { name, payload, .. } = parse("bot", &a).unwrap() else {
            panic!()
        };
        assert_eq!(name, TEAMS_CARD_ACTION);
        let ChatEvent::TeamsCardAction { value, .. } = from_stored(&payload).unwrap().unwrap().chat
        else {
            panic!()
        };
        assert_eq!(value["page-id"], 42);

        let mut i = activity("invoke");
        i["name"] = json!("adaptiveCard/action");
        i["value"] =
            json!({"action": {"type": "Action.Execute", "verb": "share", "data": {"page-id": 7}}});
        let Inbound::Store {
            name,
            payload,
            invoke,
            ..
        } = parse("bot", &i).unwrap()
        else {
            panic!()
        };
        assert!(invoke);
        assert_eq!(name, TEAMS_CARD_ACTION);
        assert_eq!(payload["value"]["page-id"], 7);
    }

    #[test]
    fn installs_and_removals_in_personal_scope_are_told_apart() {
        let mut a = activity("installationUpdate");
        a["action"] = json!("add");
        assert!(
            matches!(parse("bot", &a).unwrap(), Inbound::Installed(h) if h.from_id == "29:ada" && h.bot_id == "28:app")
        );
        a["action"] = json!("remove");
        assert!(matches!(parse("bot", &a).unwrap(), Inbound::Uninstalled(_)));
        a["conversation"]["conversationType"] = json!("channel");
        assert!(matches!(parse("bot", &a).unwrap(), Inbound::Ignored { .. }));

        let mut c = activity("conversationUpdate");
        c["membersAdded"] = json!([{"id": "28:app"}]);
        assert!(matches!(parse("bot", &c).unwrap(), Inbound::Installed(_)));
        c["membersAdded"] = json!([{"id": "29:someone"}]);
        assert!(matches!(parse("bot", &c).unwrap(), Inbound::Ignored { .. }));
        assert!(matches!(
            parse("bot", &activity("typing")).unwrap(),
            Inbound::Ignored { .. }
        ));
    }

    #[test]
    fn a_bot_added_to_or_removed_from_a_team_names_the_team_and_the_channel() {
        let mut a = activity("installationUpdate");
        a["action"] = json!("add");
        a["conversation"] = json!({"id": "19:general@thread.tacv2", "conversationType": "channel",
            "isGroup": true, "tenantId": "tenant-1"});
        a["channelData"]["team"] = json!({"id": "19:general@thread.tacv2", "name": "Engineering"});
        let Inbound::TeamInstalled {
            header,
            team,
            greet,
        } = parse("bot", &a).unwrap()
        else {
            panic!("not a team install")
        };
        assert_eq!(header.conversation_id, "19:general@thread.tacv2");
        assert_eq!(team.id, "19:general@thread.tacv2");
        assert_eq!(team.name.as_deref(), Some("Engineering"));
        assert!(greet, "the installationUpdate greets the channel");

        a["action"] = json!("remove");
        assert!(matches!(parse("bot", &a).unwrap(),
            Inbound::TeamUninstalled { team_id, .. } if team_id == "19:general@thread.tacv2"));

        // The conversationUpdate Teams sends beside it keeps the team, greets no one.
        let mut c = a.clone();
        c["type"] = json!("conversationUpdate");
        c.as_object_mut().unwrap().remove("action");
        c["membersAdded"] = json!([{"id": "28:app"}]);
        assert!(matches!(
            parse("bot", &c).unwrap(),
            Inbound::TeamInstalled { greet: false, .. }
        ));
        c.as_object_mut().unwrap().remove("membersAdded");
        c["membersRemoved"] = json!([{"id": "28:app"}]);
        assert!(matches!(
            parse("bot", &c).unwrap(),
            Inbound::TeamUninstalled { .. }
        ));
        // A member joining the team is not the bot being added.
        c.as_object_mut().unwrap().remove("membersRemoved");
        c["membersAdded"] = json!([{"id": "29:someone"}]);
        assert!(matches!(parse("bot", &c).unwrap(), Inbound::Ignored { .. }));
    }

    #[test]
    fn an_activity_without_what_it_needs_is_refused_by_name() {
        let mut a = activity("message");
        a["text"] = json!("hi");
        a.as_object_mut().unwrap().remove("id");
        assert_eq!(parse("bot", &a).unwrap_err(), ActivityError::Missing("id"));
        let mut a = activity("message");
        a["text"] = json!("hi");
        a["conversation"]
            .as_object_mut()
            .unwrap()
            .remove("tenantId");
        a.as_object_mut().unwrap().remove("channelData");
        assert_eq!(
            parse("bot", &a).unwrap_err(),
            ActivityError::Missing("conversation.tenantId")
        );
        assert_eq!(
            parse("bot", &json!([1])).unwrap_err(),
            ActivityError::NotJson
        );
        assert!(from_stored(&json!({"type": "event_callback"})).is_none());
    }
}
