//! `pagehook:plugin@0.2.0`, the current contract: the bindings of `wit/`
//! and the conversions between the host's model and them.
//!
//! Everything 0.1.0 had converts as it did there (written once, in the
//! parent module); this adds the people a page event concerns, chat events,
//! and the `unfurl` and `respond` actions.

use wasmtime::Store;

use super::{Returned, json};
use crate::model::{
    Action, ChatEvent, ChatUser, Concern, ConcernedPerson, Event, EventKind, PageSummary,
};
use crate::runtime::sandbox::CallState;

super::version_glue!("../wit");

fn event_kind(kind: EventKind) -> types::EventKind {
    common_event_kind(kind).unwrap_or(match kind {
        EventKind::LinkShared => types::EventKind::LinkShared,
        _ => types::EventKind::SlashCommand,
    })
}

fn page_summary(p: &PageSummary) -> types::PageSummary {
    types::PageSummary {
        id: p.id,
        content_type: p.content_type.clone(),
        title: p.title.clone(),
        space_key: p.space_key.clone(),
        space_name: p.space_name.clone(),
        url: p.url.clone(),
        excerpt: p.excerpt.clone(),
        last_editor: p.last_editor.as_ref().map(person),
        last_edited_at_ms: p.last_edited_at_ms,
        restricted: p.restricted,
    }
}

fn chat_user(u: &ChatUser) -> types::ChatUser {
    types::ChatUser {
        id: u.id.clone(),
        team_id: u.team_id.clone(),
        confluence: u.confluence.as_ref().map(person),
    }
}

fn concerned(c: &ConcernedPerson) -> types::ConcernedPerson {
    types::ConcernedPerson {
        person: person(&c.person),
        concerns: c
            .concerns
            .iter()
            .map(|c| match c {
                Concern::Creator => types::Concern::Creator,
                Concern::Mentioned => types::Concern::Mentioned,
                Concern::Watcher => types::Concern::Watcher,
            })
            .collect(),
    }
}

fn chat(c: &ChatEvent) -> types::ChatEvent {
    match c {
        ChatEvent::LinkShared {
            channel,
            message_ts,
            user,
            links,
        } => types::ChatEvent::LinkShared(types::LinkShared {
            channel: channel.clone(),
            message_ts: message_ts.clone(),
            user: chat_user(user),
            links: links
                .iter()
                .map(|l| types::SharedLink {
                    url: l.url.clone(),
                    page: l.page.as_ref().map(page_summary),
                })
                .collect(),
        }),
        ChatEvent::SlashCommand {
            command,
            text,
            user,
            channel,
            response_url,
            results,
        } => types::ChatEvent::SlashCommand(types::SlashCommand {
            command: command.clone(),
            text: text.clone(),
            user: chat_user(user),
            channel: channel.clone(),
            response_url: response_url.clone(),
            results: results.iter().map(page_summary).collect(),
        }),
    }
}

/// The event as 0.2.0 has it.
pub(crate) fn event(e: &Event) -> types::Event {
    common_event!(e, event_kind(e.kind), {
        people: e.people.iter().map(concerned).collect(),
        chat: e.chat.as_ref().map(chat),
    })
}

pub(super) fn call(
    pre: &Pre,
    store: &mut Store<CallState>,
    event_: &Event,
    settings: &[(String, String)],
) -> wasmtime::Result<Returned> {
    let wit_event = event(event_);
    let instance = pre.instantiate(&mut *store)?;
    let returned = instance.call_handle(&mut *store, &wit_event, &settings.to_vec())?;
    Ok(returned.map(|actions| actions.into_iter().map(convert).collect()))
}

/// An action and its kind, converted to the model (or why it cannot be).
pub(crate) fn convert(action: types::Action) -> (&'static str, Result<Action, String>) {
    let kind = common_kind(&action).unwrap_or("unknown");
    let newer = match common_action(action) {
        Ok(converted) => return (kind, converted),
        Err(newer) => *newer,
    };
    match newer {
        types::Action::Unfurl(u) => (
            "unfurl",
            json("unfurls", &u.unfurls, false).map(|unfurls| Action::Unfurl {
                channel: u.channel,
                message_ts: u.message_ts,
                unfurls,
            }),
        ),
        types::Action::Respond(r) => (
            "respond",
            r.blocks
                .map(|b| json("blocks", &b, true))
                .transpose()
                .map(|blocks| Action::Respond {
                    response_url: r.response_url,
                    text: r.text,
                    blocks,
                    in_channel: r.in_channel,
                }),
        ),
        shared => (
            kind,
            Err(format!(
                "`{kind}` was not converted as a shared action: {shared:?}"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_blocks_must_be_a_json_array_and_unfurls_an_object() {
        let post = |blocks: &str| {
            convert(types::Action::PostSlack(types::SlackMessage {
                channel: "#eng".into(),
                text: "t".into(),
                blocks: Some(blocks.into()),
                thread_key: None,
            }))
        };
        assert_eq!(post(r#"[{"type":"divider"}]"#).0, "post-slack");
        assert!(post(r#"[{"type":"divider"}]"#).1.is_ok());
        assert!(post("{").1.unwrap_err().contains("not valid JSON"));
        assert!(post("{}").1.unwrap_err().contains("array"));
        let unfurl = |unfurls: &str| {
            convert(types::Action::Unfurl(types::SlackUnfurl {
                channel: "C1".into(),
                message_ts: "1.2".into(),
                unfurls: unfurls.into(),
            }))
        };
        assert_eq!(unfurl("{}").0, "unfurl");
        assert!(unfurl("[]").1.unwrap_err().contains("object"));
    }
}
