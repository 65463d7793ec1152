//! The two-party rule: an action runs only when the plugin's manifest declares
//! it, the install granted it and the binding names its destination; chat
//! answers also answer their own event, and no button or card action opens
//! a URL that is not http(s) ([`super::links`]). Pure: it reads no store and sends
//! nothing, so dispatch and the console's preview judge alike.

use crate::destination::{ChatConnections, first_allowing_from, lane, slack_workspace, teams_bot};
use crate::model::{Action, ChatEvent};
use crate::store::{AuditRecord, Binding, Dispatched, NewDelivery, PluginRecord, now_ms};

/// Applies the two-party rule to one action and records the verdict (and,
/// when accepted, the delivery) in `out`; the console's preview of a
/// binding judges with it too.
///
/// Chat answers are held to one more rule: they answer their own event. An
/// `unfurl` only for a link-shared event, only to that event's channel and
/// message, and only with previews of that event's links; a `respond` only
/// for a slash command, only to that command's response URL. Both go back
/// through the Slack connection the event came in on (its source).
pub fn judge(
    out: &mut Dispatched,
    binding: &Binding,
    plugin: &PluginRecord,
    chats: &ChatConnections<'_>,
    action: Action,
) {
    let workspaces = chats.slack.as_slice();
    let kind = action.kind();
    let wanted = action.destination();
    let source = out.event.source.clone();
    let allowing = first_allowing_from(&binding.destinations, &action, &source);
    let workspace = match (&action, allowing) {
        (Action::PostSlack { .. } | Action::DmSlack { .. }, Some(destination)) => {
            slack_workspace(&action, destination, workspaces)
        }
        (Action::Unfurl { .. } | Action::Respond { .. }, Some(_)) => {
            if workspaces.contains(&source.as_str()) {
                Ok(Some(source.clone()))
            } else {
                Err(format!(
                    "`{kind}` answers a chat event through the Slack connection it came from, and `{source}` is not a Slack connection"
                ))
            }
        }
        (Action::DmTeams { .. }, Some(destination)) => {
            teams_bot(destination, &chats.teams_bots).map(Some)
        }
        (Action::ReplyTeams { .. }, Some(_)) => {
            if chats.teams_bots.contains(&source.as_str()) {
                Ok(Some(source.clone()))
            } else {
                Err(format!(
                    "`{kind}` answers a chat event through the Teams bot it came from, and `{source}` is not a Teams bot connection"
                ))
            }
        }
        _ => Ok(None),
    };
    let rejected = if !plugin.manifest.actions.iter().any(|a| a == kind) {
        Some(format!("`{kind}` is not declared in the plugin's manifest"))
    } else if !plugin.grants.iter().any(|g| g == kind) {
        Some(format!("`{kind}` was not granted at install"))
    } else if allowing.is_none() {
        Some(format!(
            "binding {} does not allow `{kind}` to `{wanted}`{} (its destinations: {})",
            binding.id,
            if matches!(action, Action::Unfurl { .. } | Action::Respond { .. }) {
                format!(" in Slack workspace `{source}`")
            } else if matches!(action, Action::ReplyTeams { .. }) {
                format!(" from Teams bot `{source}`")
            } else {
                String::new()
            },
            if binding.destinations.is_empty() {
                "none".to_owned()
            } else {
                binding.destinations.join(", ")
            }
        ))
    } else if let Some(foreign) = not_its_own_event(&action, out.event.chat.as_ref()) {
        Some(foreign)
    } else if let Some(link) = super::links::unsafe_link(&action) {
        Some(link)
    } else if let Err(ambiguous) = &workspace {
        Some(ambiguous.clone())
    } else {
        None
    };
    out.audit.push(AuditRecord {
        at: now_ms(),
        event_id: out.event_id,
        binding_id: binding.id,
        plugin: plugin.name.clone(),
        sha256: plugin.sha256.clone(),
        kind: kind.to_owned(),
        destination: wanted,
        verdict: if rejected.is_some() {
            "rejected"
        } else {
            "accepted"
        }
        .to_owned(),
        reason: rejected.clone(),
    });
    if rejected.is_none() {
        let destination = allowing.unwrap_or_default().to_owned();
        let connection = workspace.ok().flatten();
        out.deliveries.push(NewDelivery {
            binding_id: binding.id,
            plugin: plugin.name.clone(),
            lane: lane(&action, &out.event.source, connection.as_deref()),
            source: out.event.source.clone(),
            connection,
            destination,
            action,
            dry_run: binding.dry_run,
        });
    }
}

/// Why a chat answer does not answer its own event (`None` when it does,
/// and for every other action). Never quotes a response URL: it is a
/// capability, and reasons are shown to admins.
fn not_its_own_event(action: &Action, chat: Option<&ChatEvent>) -> Option<String> {
    match (action, chat) {
        (
            Action::Unfurl {
                channel,
                message_ts,
                unfurls,
            },
            Some(ChatEvent::LinkShared {
                channel: theirs,
                message_ts: their_ts,
                links,
                ..
            }),
        ) => {
            if channel != theirs || message_ts != their_ts {
                return Some(format!(
                    "`unfurl` may only preview links in the message that shared them ({theirs} at {their_ts}), not {} at {}",
                    shown(channel),
                    shown(message_ts)
                ));
            }
            let Some(map) = unfurls.as_object().filter(|m| !m.is_empty()) else {
                return Some("`unfurl` carries no previews (its unfurls map is empty)".into());
            };
            map.keys()
                .find(|url| !links.iter().any(|l| &l.url == *url))
                .map(|url| {
                    format!(
                        "`unfurl` may only preview the links the event shared, and `{}` is not one of them",
                        shown(url)
                    )
                })
        }
        (Action::Unfurl { .. }, _) => Some(format!(
            "`unfurl` answers only a link-shared event, and this is {}",
            what_event(chat)
        )),
        (
            Action::Respond { response_url, .. },
            Some(ChatEvent::SlashCommand {
                response_url: theirs,
                ..
            }),
        ) => (response_url != theirs).then(|| {
            "`respond` may only answer the slash command it was given: its response URL is not this command's".to_owned()
        }),
        (Action::Respond { .. }, _) => Some(format!(
            "`respond` answers only a slash-command event, and this is {}",
            what_event(chat)
        )),
        (
            Action::ReplyTeams {
                replace_card: true,
                ..
            },
            Some(ChatEvent::TeamsMessage { .. }),
        ) => Some(
            "`reply-teams` may replace a card only for a card action (a button pressed on the bot's card), and this is a message".to_owned(),
        ),
        (
            Action::ReplyTeams { activity_id, .. },
            Some(
                ChatEvent::TeamsMessage {
                    activity_id: theirs,
                    ..
                }
                | ChatEvent::TeamsCardAction {
                    activity_id: theirs,
                    ..
                },
            ),
        ) => (activity_id != theirs).then(|| {
            format!(
                "`reply-teams` may only answer the Teams activity it was given ({theirs}), not {}",
                shown(activity_id)
            )
        }),
        (Action::ReplyTeams { .. }, _) => Some(format!(
            "`reply-teams` answers only a Teams message or card action, and this is {}",
            what_event(chat)
        )),
        _ => None,
    }
}

fn what_event(chat: Option<&ChatEvent>) -> &'static str {
    match chat {
        Some(ChatEvent::LinkShared { .. }) => "a link-shared event",
        Some(ChatEvent::SlashCommand { .. }) => "a slash-command event",
        Some(ChatEvent::TeamsMessage { .. }) => "a Teams message",
        Some(ChatEvent::TeamsCardAction { .. }) => "a Teams card action",
        None => "not a chat event",
    }
}

/// A plugin-chosen value in a reason, cut short.
fn shown(value: &str) -> String {
    const MAX: usize = 120;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        format!("{}…", value.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChatUser, Event, EventKind, SharedLink};
    use crate::store::Scope;

    const LINK: &str = "https://wiki.example.com/pages/viewpage.action?pageId=42";
    const RESPONSE_URL: &str = "https://hooks.slack.com/commands/T1/1234/s3cr3t";

    fn plugin() -> PluginRecord {
        crate::testing::plugin(
            crate::testing::manifest(
                r#"
name = "chat"
version = "0.1.0"
description = "answers chat"
wit = "0.2.0"
component = "chat.wasm"
events = ["link-shared", "slash-command", "page-created"]
actions = ["unfurl", "respond"]
"#,
            ),
            &["unfurl", "respond"],
        )
    }

    fn binding(destinations: &[&str]) -> Binding {
        Binding {
            id: 7,
            plugin: "chat".into(),
            source: None,
            scope: Scope::Global,
            events: vec!["*".into()],
            destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
            settings: vec![],
            dry_run: false,
            created_at: 1,
        }
    }

    fn user() -> ChatUser {
        ChatUser {
            id: "U1".into(),
            team_id: "T1".into(),
            confluence: None,
        }
    }

    fn event(kind: EventKind, chat: Option<ChatEvent>) -> Event {
        Event {
            id: "e1".into(),
            kind,
            name: kind.name().into(),
            occurred_at_ms: 0,
            source: "acme".into(),
            actor: None,
            by_pagehook: false,
            content: None,
            update_trigger: None,
            label: None,
            enriched: true,
            people: vec![],
            chat,
        }
    }

    fn link_shared() -> Event {
        event(
            EventKind::LinkShared,
            Some(ChatEvent::LinkShared {
                channel: "C0ENG".into(),
                message_ts: "1700000000.000100".into(),
                user: user(),
                links: vec![SharedLink {
                    url: LINK.into(),
                    page: None,
                }],
            }),
        )
    }

    fn slash_command() -> Event {
        event(
            EventKind::SlashCommand,
            Some(ChatEvent::SlashCommand {
                command: "/confluence".into(),
                text: "launch".into(),
                user: user(),
                channel: "C0ENG".into(),
                response_url: RESPONSE_URL.into(),
                results: vec![],
            }),
        )
    }

    fn unfurl(channel: &str, ts: &str, url: &str) -> Action {
        Action::Unfurl {
            channel: channel.into(),
            message_ts: ts.into(),
            unfurls: serde_json::json!({url: {"blocks": []}}),
        }
    }

    fn respond(url: &str) -> Action {
        Action::Respond {
            response_url: url.into(),
            text: "found 1 page".into(),
            blocks: None,
            in_channel: false,
        }
    }

    /// Judges one action on `event` under `binding`; the audit line and the
    /// delivery, if any.
    fn judged(
        event: Event,
        binding: &Binding,
        action: Action,
    ) -> (AuditRecord, Option<NewDelivery>) {
        let mut out = Dispatched {
            event_id: 1,
            event,
            deliveries: vec![],
            audit: vec![],
            failures: vec![],
            calls: vec![],
        };
        let chats = ChatConnections {
            slack: vec!["acme", "beta"],
            teams_bots: vec!["bot"],
        };
        judge(&mut out, binding, &plugin(), &chats, action);
        (out.audit.pop().unwrap(), out.deliveries.pop())
    }

    #[test]
    fn an_unfurl_of_its_own_message_goes_back_through_its_workspace() {
        let b = binding(&["slack-unfurl:acme"]);
        let (audit, delivery) = judged(
            link_shared(),
            &b,
            unfurl("C0ENG", "1700000000.000100", LINK),
        );
        assert_eq!(audit.verdict, "accepted", "{:?}", audit.reason);
        let d = delivery.unwrap();
        assert_eq!(d.connection.as_deref(), Some("acme"));
        assert_eq!(d.destination, "slack-unfurl:acme");
        assert_eq!(d.lane, "slack-unfurl:acme/C0ENG:1700000000.000100");
    }

    #[test]
    fn an_unfurl_elsewhere_or_of_a_foreign_link_is_rejected() {
        let b = binding(&["slack-unfurl:*"]);
        for (action, needle) in [
            (
                unfurl("C0OPS", "1700000000.000100", LINK),
                "C0ENG at 1700000000.000100",
            ),
            (
                unfurl("C0ENG", "1700000000.000200", LINK),
                "not C0ENG at 1700000000.000200",
            ),
            (
                unfurl("C0ENG", "1700000000.000100", "https://evil.example.com/"),
                "`https://evil.example.com/` is not one of them",
            ),
            (
                Action::Unfurl {
                    channel: "C0ENG".into(),
                    message_ts: "1700000000.000100".into(),
                    unfurls: serde_json::json!({}),
                },
                "no previews",
            ),
        ] {
            let (audit, delivery) = judged(link_shared(), &b, action);
            assert_eq!(audit.verdict, "rejected");
            assert!(delivery.is_none());
            let reason = audit.reason.unwrap();
            assert!(reason.contains(needle), "{reason}");
        }
        let (audit, delivery) = judged(
            slash_command(),
            &b,
            unfurl("C0ENG", "1700000000.000100", LINK),
        );
        assert!(delivery.is_none());
        assert!(
            audit
                .reason
                .unwrap()
                .contains("only a link-shared event, and this is a slash-command event")
        );
    }

    #[test]
    fn a_respond_answers_only_its_own_command_and_never_shows_the_url() {
        let b = binding(&["slack-respond:acme"]);
        let (audit, delivery) = judged(slash_command(), &b, respond(RESPONSE_URL));
        assert_eq!(audit.verdict, "accepted", "{:?}", audit.reason);
        assert_eq!(audit.destination, "response-url");
        let d = delivery.unwrap();
        assert_eq!(d.connection.as_deref(), Some("acme"));
        assert!(
            !d.lane.contains("s3cr3t") && !d.lane.contains("hooks.slack.com"),
            "{}",
            d.lane
        );
        assert!(!d.destination.contains("s3cr3t"));

        let other = "https://hooks.slack.com/commands/T1/9999/other";
        let (audit, delivery) = judged(slash_command(), &b, respond(other));
        assert!(delivery.is_none());
        let reason = audit.reason.unwrap();
        assert!(reason.contains("not this command's"), "{reason}");
        assert!(
            !reason.contains("other") && !reason.contains("s3cr3t"),
            "{reason}"
        );
        assert_eq!(audit.destination, "response-url");

        let (audit, delivery) = judged(
            event(EventKind::PageCreated, None),
            &b,
            respond(RESPONSE_URL),
        );
        assert!(delivery.is_none());
        let reason = audit.reason.unwrap();
        assert!(
            reason.contains("only a slash-command event, and this is not a chat event"),
            "{reason}"
        );
        assert!(!reason.contains("s3cr3t"));
    }

    #[test]
    fn chat_answers_need_a_destination_for_their_workspace_and_a_grant() {
        let (audit, delivery) = judged(
            slash_command(),
            &binding(&["slack-respond:beta", "slack:*"]),
            respond(RESPONSE_URL),
        );
        assert!(delivery.is_none());
        let reason = audit.reason.unwrap();
        assert!(
            reason.contains("does not allow `respond` to `response-url` in Slack workspace `acme`"),
            "{reason}"
        );
        let mut b = binding(&["slack-unfurl:*"]);
        b.destinations.push("slack-respond:*".into());
        let mut p = plugin();
        p.grants = vec!["respond".into()];
        let mut out = Dispatched {
            event_id: 1,
            event: link_shared(),
            deliveries: vec![],
            audit: vec![],
            failures: vec![],
            calls: vec![],
        };
        judge(
            &mut out,
            &b,
            &p,
            &ChatConnections {
                slack: vec!["acme"],
                ..Default::default()
            },
            unfurl("C0ENG", "1700000000.000100", LINK),
        );
        assert!(out.deliveries.is_empty());
        assert_eq!(
            out.audit[0].reason.as_deref(),
            Some("`unfurl` was not granted at install")
        );
        // An event whose source is not a Slack connection has nowhere to answer.
        let mut out = Dispatched {
            event_id: 1,
            event: link_shared(),
            deliveries: vec![],
            audit: vec![],
            failures: vec![],
            calls: vec![],
        };
        judge(
            &mut out,
            &b,
            &plugin(),
            &ChatConnections {
                slack: vec!["beta"],
                ..Default::default()
            },
            unfurl("C0ENG", "1700000000.000100", LINK),
        );
        assert!(out.deliveries.is_empty());
        assert!(
            out.audit[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("`acme` is not a Slack connection")
        );
    }

    #[test]
    fn a_teams_card_is_replaced_only_for_the_card_action_being_answered() {
        let user = crate::model::TeamsUser {
            id: "29:ada".into(),
            aad_object_id: None,
            tenant_id: "t".into(),
            name: None,
            confluence: None,
        };
        let message = ChatEvent::TeamsMessage {
            activity_id: "1".into(),
            conversation_type: "personal".into(),
            text: "search x".into(),
            user: user.clone(),
            results: vec![],
        };
        let pressed = ChatEvent::TeamsCardAction {
            activity_id: "2".into(),
            conversation_type: "personal".into(),
            value: serde_json::json!({"action": "share"}),
            user,
            page: None,
        };
        let reply = |id: &str, replace_card: bool| Action::ReplyTeams {
            activity_id: id.into(),
            text: "Shared.".into(),
            card: None,
            replace_card,
        };
        assert_eq!(not_its_own_event(&reply("2", true), Some(&pressed)), None);
        assert_eq!(not_its_own_event(&reply("1", false), Some(&message)), None);
        let why = not_its_own_event(&reply("1", true), Some(&message)).unwrap();
        assert!(why.contains("only for a card action"), "{why}");
        let why = not_its_own_event(&reply("1", true), Some(&pressed)).unwrap();
        assert!(
            why.contains("may only answer the Teams activity it was given (2)"),
            "{why}"
        );
    }
}
