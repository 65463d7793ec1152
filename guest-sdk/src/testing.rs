//! Sample events for a plugin's own unit tests.
//!
//! An [`Event`] has a dozen fields and a nested [`Content`]; writing one out
//! in every test buries what the test is about. These builders return a
//! realistic, fully enriched event (space `ENG`, page "Release notes",
//! author Ada Lovelace) that a test then changes in the one field it cares
//! about:
//!
//! ```
//! use pagehook_guest::EventKind;
//! use pagehook_guest::testing;
//!
//! let mut event = testing::event(EventKind::PageUpdated);
//! event.content.as_mut().unwrap().minor_edit = true;
//! assert_eq!(event.name, "page_updated");
//! ```
//!
//! Chat events (contract 0.2.0) have their own builders, [`link_shared`]
//! and [`slash_command`], and [`concerned`] makes an entry of `event.people`.
//! Digests (contract 0.3.0): [`digest`] wraps events, [`created_page`] makes
//! many distinct ones. Teams bot events (contract 0.3.0): [`teams_message`]
//! and [`teams_card_action`].

use crate::{
    Ancestor, ChatEvent, ChatUser, Concern, ConcernedPerson, Content, Digest, Event, EventKind,
    LinkShared, PageSummary, Person, SharedLink, SlashCommand, TeamsCardAction, TeamsMessageEvent,
    TeamsUser,
};

/// Ada Lovelace, with every optional field filled.
pub fn person() -> Person {
    Person {
        key: "8a7f808a8d3e2f1b018d3e3c5a5e0001".into(),
        username: Some("ada".into()),
        display_name: Some("Ada Lovelace".into()),
        email: Some("ada@example.com".into()),
    }
}

/// The page "Release notes" (id 123456, space ENG, version 1, labels
/// `release`, under "Engineering Home"); for blog and comment kinds use
/// [`event`], which adjusts the content type.
pub fn content() -> Content {
    Content {
        id: 123_456,
        content_type: "page".into(),
        title: "Release notes".into(),
        space_key: "ENG".into(),
        space_name: Some("Engineering".into()),
        url: "https://wiki.example.com/pages/viewpage.action?pageId=123456".into(),
        version: 1,
        minor_edit: false,
        version_message: None,
        labels: vec!["release".into()],
        ancestors: vec![Ancestor {
            id: 1000,
            title: "Engineering Home".into(),
        }],
        restricted: false,
        container_id: None,
        excerpt: Some("What changed in this release, and why.".into()),
    }
}

/// An enriched event of `kind` by [`person`] on [`content`], with the
/// content type, Confluence event name and kind-specific fields (update
/// trigger, label, container) set the way Confluence would.
///
/// For `link-shared` and `slash-command` it returns [`link_shared`] and
/// [`slash_command`]`("search release notes")`; for `teams-message` and
/// `teams-card-action`, [`teams_message`]`("search release notes")` and
/// [`teams_card_action`] of a "share" button on [`content`]'s page.
pub fn event(kind: EventKind) -> Event {
    match kind {
        EventKind::LinkShared => return link_shared(),
        EventKind::SlashCommand => return slash_command("search release notes"),
        EventKind::TeamsMessage => return teams_message("search release notes"),
        EventKind::TeamsCardAction => {
            return teams_card_action(r#"{"action":"share","page-id":123456}"#);
        }
        _ => {}
    }
    let name = match kind {
        EventKind::Other => "space_created".to_owned(),
        k => k.as_str().replace('-', "_"),
    };
    let mut content = content();
    let kind_name = kind.as_str();
    if kind_name.starts_with("blog-") {
        content.content_type = "blogpost".into();
    } else if kind_name.starts_with("comment-") || kind_name.starts_with("attachment-") {
        content.content_type = if kind_name.starts_with("comment-") {
            "comment"
        } else {
            "attachment"
        }
        .into();
        content.id = 123_457;
        content.container_id = Some(123_456);
    }
    if !kind_name.ends_with("-created") {
        content.version = 2;
    }
    Event {
        id: format!("evt-{name}-0001"),
        kind,
        name,
        occurred_at_ms: 1_767_225_600_000,
        source: "wiki".into(),
        actor: Some(person()),
        by_pagehook: false,
        content: Some(content),
        update_trigger: matches!(kind, EventKind::PageUpdated | EventKind::BlogUpdated)
            .then(|| "edit_page".into()),
        label: matches!(kind, EventKind::LabelAdded | EventKind::LabelRemoved)
            .then(|| "release".into()),
        enriched: true,
        people: vec![],
        chat: None,
    }
}

/// A person the event concerns for `concerns`, with this email (name and
/// key derived from it), for `event.people`:
///
/// ```
/// use pagehook_guest::{Concern, EventKind, testing};
///
/// let mut event = testing::event(EventKind::PageUpdated);
/// event.people.push(testing::concerned("grace@example.com", &[Concern::Mentioned]));
/// assert_eq!(event.people[0].person.name(), "grace");
/// ```
pub fn concerned(email: &str, concerns: &[Concern]) -> ConcernedPerson {
    let name = email.trim().split('@').next().unwrap_or("").to_lowercase();
    ConcernedPerson {
        person: Person {
            key: format!("key-{name}"),
            username: Some(name),
            display_name: None,
            email: Some(email.into()),
        },
        concerns: concerns.to_vec(),
    }
}

/// [`content`]'s page as the host reads it for a chat user: last edited by
/// Grace Hopper on 2026-01-01, not restricted.
pub fn page_summary() -> PageSummary {
    let c = content();
    PageSummary {
        id: c.id,
        content_type: c.content_type,
        title: c.title,
        space_key: c.space_key,
        space_name: c.space_name,
        url: c.url,
        excerpt: c.excerpt,
        last_editor: Some(Person {
            key: "8a7f808a8d3e2f1b018d3e3c5a5e0002".into(),
            username: Some("grace".into()),
            display_name: Some("Grace Hopper".into()),
            email: Some("grace@example.com".into()),
        }),
        last_edited_at_ms: Some(1_767_225_600_000),
        restricted: false,
    }
}

/// The Slack user `U0ADA` in team `T0ENG`, linked to [`person`] in Confluence.
pub fn chat_user() -> ChatUser {
    ChatUser {
        id: "U0ADA".into(),
        team_id: "T0ENG".into(),
        confluence: Some(person()),
    }
}

/// The Teams user `29:1ada` in tenant `tenant-1`, linked to [`person`] in
/// Confluence.
pub fn teams_user() -> TeamsUser {
    TeamsUser {
        id: "29:1ada".into(),
        aad_object_id: Some("00000000-0000-0000-0000-00000000ada1".into()),
        tenant_id: "tenant-1".into(),
        name: Some("Ada Lovelace".into()),
        confluence: Some(person()),
    }
}

/// The shell every chat event shares: from the Slack connection `slack`
/// (a Teams event: the Teams bot connection `teams-bot`), no content, no
/// people.
fn chat_event(kind: EventKind, chat: ChatEvent) -> Event {
    let name = kind.as_str().replace('-', "_");
    let source = match chat {
        ChatEvent::TeamsMessage(_) | ChatEvent::TeamsCardAction(_) => "teams-bot",
        ChatEvent::LinkShared(_) | ChatEvent::SlashCommand(_) => "slack",
    };
    Event {
        id: format!("evt-{name}-0001"),
        kind,
        name,
        occurred_at_ms: 1_767_225_600_000,
        source: source.into(),
        actor: None,
        by_pagehook: false,
        content: None,
        update_trigger: None,
        label: None,
        enriched: true,
        people: vec![],
        chat: Some(chat),
    }
}

/// [`chat_user`] posted a link to [`page_summary`]'s page in channel
/// `C0ENG`: one link, with its page.
pub fn link_shared() -> Event {
    let page = page_summary();
    chat_event(
        EventKind::LinkShared,
        ChatEvent::LinkShared(LinkShared {
            channel: "C0ENG".into(),
            message_ts: "1767225600.000100".into(),
            user: chat_user(),
            links: vec![SharedLink {
                url: page.url.clone(),
                page: Some(page),
            }],
        }),
    )
}

/// [`chat_user`] ran `/confluence <text>` in channel `C0ENG`; when `text`
/// starts with `search`, the host found [`page_summary`].
pub fn slash_command(text: &str) -> Event {
    let searching = text.trim_start().to_lowercase().starts_with("search");
    chat_event(
        EventKind::SlashCommand,
        ChatEvent::SlashCommand(SlashCommand {
            command: "/confluence".into(),
            text: text.into(),
            user: chat_user(),
            channel: "C0ENG".into(),
            response_url: "https://hooks.slack.com/commands/T0ENG/1/abc".into(),
            results: if searching {
                vec![page_summary()]
            } else {
                vec![]
            },
        }),
    )
}

/// [`teams_user`] wrote `text` to the bot in their personal chat with it;
/// when `text` starts with `search`, the host found [`page_summary`].
pub fn teams_message(text: &str) -> Event {
    let searching = text.trim_start().to_lowercase().starts_with("search");
    chat_event(
        EventKind::TeamsMessage,
        ChatEvent::TeamsMessage(TeamsMessageEvent {
            activity_id: "1767225600000".into(),
            conversation_type: "personal".into(),
            text: text.into(),
            user: teams_user(),
            results: if searching {
                vec![page_summary()]
            } else {
                vec![]
            },
        }),
    )
}

/// [`teams_user`] pressed a button whose data is `value` (a JSON object)
/// on one of the bot's cards in their personal chat; when `value` has a
/// `"page-id"`, the host read [`page_summary`] for them (whatever the id:
/// change `page` to test another).
pub fn teams_card_action(value: &str) -> Event {
    let names_page =
        serde_json::from_str::<serde_json::Value>(value).is_ok_and(|v| v.get("page-id").is_some());
    chat_event(
        EventKind::TeamsCardAction,
        ChatEvent::TeamsCardAction(TeamsCardAction {
            activity_id: "1767225600001".into(),
            conversation_type: "personal".into(),
            value: value.into(),
            user: teams_user(),
            page: names_page.then(page_summary),
        }),
    )
}

/// A page created by [`person`] in `ENG`: [`event`]`(PageCreated)` with
/// this title and content id (its URL follows the id), a second apart per id.
pub fn created_page(title: &str, id: u64) -> Event {
    let mut e = event(EventKind::PageCreated);
    e.id = format!("evt-page_created-{id}");
    e.occurred_at_ms += id * 1_000;
    let c = e.content.as_mut().expect("a page event has content");
    c.id = id;
    c.title = title.into();
    c.url = format!("https://wiki.example.com/pages/viewpage.action?pageId={id}");
    e
}

/// A digest of `events` in their space (the first event's), with a search
/// URL, as the host would hand it to `handle-digest` (contract 0.3.0).
pub fn digest(events: impl IntoIterator<Item = Event>) -> Digest {
    let events: Vec<Event> = events.into_iter().collect();
    let content = events.first().and_then(|e| e.content.clone());
    let space_key = content
        .as_ref()
        .map_or_else(|| "ENG".to_owned(), |c| c.space_key.clone());
    Digest {
        search_url: Some(format!(
            "https://wiki.example.com/dosearchsite.action?cql=space+%3D+%22{space_key}%22"
        )),
        space_name: content.and_then(|c| c.space_name),
        space_key,
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_look_like_confluence_sends_them() {
        let e = event(EventKind::BlogCreated);
        assert_eq!(e.name, "blog_created");
        assert_eq!(e.content.as_ref().unwrap().content_type, "blogpost");
        assert_eq!(e.content.as_ref().unwrap().version, 1);
        let c = event(EventKind::CommentCreated);
        assert_eq!(c.content.as_ref().unwrap().container_id, Some(123_456));
        let u = event(EventKind::PageUpdated);
        assert_eq!(u.update_trigger.as_deref(), Some("edit_page"));
        assert_eq!(u.content.as_ref().unwrap().version, 2);
        assert_eq!(
            event(EventKind::LabelAdded).label.as_deref(),
            Some("release")
        );
        for kind in EventKind::ALL {
            assert_eq!(event(kind).kind, kind);
            assert_eq!(
                event(kind).chat.is_some(),
                matches!(
                    kind,
                    EventKind::LinkShared
                        | EventKind::SlashCommand
                        | EventKind::TeamsMessage
                        | EventKind::TeamsCardAction
                )
            );
        }
        assert_eq!(link_shared().name, "link_shared");
        assert_eq!(slash_command("help").name, "slash_command");
        assert_eq!(teams_message("help").source, "teams-bot");
        assert!(
            teams_message("help")
                .teams_message()
                .unwrap()
                .results
                .is_empty()
        );
        assert!(
            teams_card_action("{}")
                .teams_card_action()
                .unwrap()
                .page
                .is_none()
        );
        assert!(
            event(EventKind::TeamsCardAction)
                .teams_card_action()
                .unwrap()
                .page
                .is_some()
        );
        assert!(
            slash_command("help")
                .slash_command()
                .unwrap()
                .results
                .is_empty()
        );
    }
}
