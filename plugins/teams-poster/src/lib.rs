//! teams-poster: tells a Teams channel what happened in Confluence, as an
//! Adaptive Card 1.5; through a Teams bot, tells the people a page concerns
//! personally and answers them.
//!
//! The same events and filters as slack-poster (both read them from
//! `pagehook_guest::filters`), so an admin configures both the same way.
//! The card has the page title as heading, who did what, a FactSet (space,
//! author, version, edit note), the excerpt, and `Action.OpenUrl` buttons;
//! Teams workflows cannot call back, so a channel card has no
//! `Action.Submit`. The SDK's `Card::to_json` keeps the whole message under
//! Teams' 28 KB limit by shortening the longest texts first.
//!
//! Digests (contract 0.3.0, see [`digest`]): a burst of events the host
//! held becomes a few cards (pages created, "edited 7 times", the rest);
//! a single event gets its card as it always did.
//!
//! A Teams bot (contract 0.3.0): with `personal = true`, each person a page
//! event concerns gets a personal message (see [`personal`]), with a
//! "Share to channel" button; what people write to the bot (`search
//! <words>`) and the buttons they press are answered in [`bot`].
//!
//! Every text here is Confluence content given to the SDK's builders as a
//! string, so it is escaped on the way in: a title with `<at>…</at>` or
//! `[label](url)` shows as written and neither mentions nor links.

mod bot;
mod digest;
mod personal;

use pagehook_guest::filters::{self, Filters};
use pagehook_guest::teams::{self, Card};
use pagehook_guest::{
    Action, ChatEvent, Digest, Event, EventKind, Plugin, SettingError, Settings, TeamsMessage, log,
    text,
};

/// Longest excerpt shown before the size limit is even considered.
const EXCERPT_CHARS: usize = 1000;

/// The plugin.
pub struct TeamsPoster;

impl Plugin for TeamsPoster {
    fn handle(event: Event, settings: Settings) -> Result<Vec<Action>, String> {
        match &event.chat {
            Some(ChatEvent::TeamsMessage(message)) => {
                Ok(vec![Action::ReplyTeams(bot::answer(message))])
            }
            Some(ChatEvent::TeamsCardAction(action)) => bot::card_action(action, &settings),
            Some(ChatEvent::LinkShared(_) | ChatEvent::SlashCommand(_)) => {
                log::debug("Slack events are slack-poster's: nothing to do");
                Ok(vec![])
            }
            None => page_event(&event, &settings),
        }
    }

    fn handle_digest(digest: Digest, settings: Settings) -> Result<Vec<Action>, String> {
        digest::handle(&digest, &settings)
    }
}

/// Where a binding's page events go: the channel, people personally, or
/// both. Neither is an error that names `channel`, as before personal
/// notifications existed.
pub(crate) struct Outputs<'a> {
    /// The `channel` setting: the Teams connection cards are posted to.
    pub channel: Option<&'a str>,
    /// The `personal` setting: personal messages through the Teams bot.
    pub personal: bool,
}

impl<'a> Outputs<'a> {
    pub(crate) fn of(settings: &'a Settings) -> Result<Outputs<'a>, SettingError> {
        let outputs = Outputs {
            channel: settings.string("channel"),
            personal: settings.bool_or("personal", false)?,
        };
        if outputs.channel.is_none() && !outputs.personal {
            return Err(SettingError::Missing {
                name: "channel".into(),
            });
        }
        Ok(outputs)
    }
}

/// A Confluence event: the channel's card and personal messages.
fn page_event(event: &Event, settings: &Settings) -> Result<Vec<Action>, String> {
    let outputs = Outputs::of(settings)?;
    let filters = Filters::from_settings(settings)?;
    let mut actions = Vec::new();
    match filters.skip_reason(event) {
        Some(reason) => log::info(format!("skipped {}: {reason}", event.id)),
        None => {
            if let Some(channel) = outputs.channel {
                actions.push(Action::PostTeams(TeamsMessage::new(
                    channel,
                    card(event).to_json(),
                )));
            }
        }
    }
    if outputs.personal {
        let room = personal::MAX_ACTIONS.saturating_sub(actions.len());
        actions.extend(personal::for_event(event, &filters, room));
    }
    Ok(actions)
}

/// The card for an event that passed the filters.
pub fn card(event: &Event) -> Card {
    let content = event
        .content
        .as_ref()
        .expect("filters skip events without content");
    let actor = filters::actor_name(event);
    let title = filters::display_title(event);
    let space = filters::space_name(content);
    let what = filters::what_happened(event.kind, "this");
    let mut facts = Vec::new();
    if !content.space_key.is_empty() {
        facts.push(("Space", format!("{space} ({})", content.space_key)));
    }
    facts.push(("Author", actor.to_owned()));
    facts.push(("Version", content.version.to_string()));
    if let Some(note) = content
        .version_message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
    {
        facts.push(("Edit note", note.trim().to_owned()));
    }
    if !content.labels.is_empty() {
        facts.push(("Labels", content.labels.join(", ")));
    }
    let mut card = Card::new()
        .push(teams::heading(title))
        .push(teams::subtle_text(if space.is_empty() {
            format!("{actor} {what}")
        } else {
            format!("{actor} {what} in {space}")
        }))
        .push(teams::fact_set(facts));
    if let Some(excerpt) = content.excerpt.as_deref().filter(|e| !e.trim().is_empty()) {
        card = card.push(teams::text_block(text::truncate(
            excerpt.trim(),
            EXCERPT_CHARS,
        )));
    }
    if !event.enriched {
        card = card.push(teams::subtle_text(
            "Details unavailable: Pagehook could not read this content.",
        ));
    }
    card = card.action(teams::open_url("Open page", &content.url));
    if matches!(event.kind, EventKind::PageUpdated | EventKind::BlogUpdated)
        && let Some(diff) = filters::diff_url(event)
    {
        card = card.action(teams::open_url("View changes", &diff));
    }
    card
}

pagehook_guest::export_plugin!(TeamsPoster);

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use pagehook_guest::{Concern, testing};
    use serde_json::Value;

    pub(crate) fn validator() -> &'static jsonschema::Validator {
        static V: OnceLock<jsonschema::Validator> = OnceLock::new();
        V.get_or_init(|| {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/schemas/adaptive-card-1.6.schema.json"
            );
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
                panic!("{path}: {e} (the shared folder must sit beside the repository)")
            });
            jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
        })
    }

    /// A card from an action, parsed and checked against Microsoft's
    /// schema and Teams' size limit (with `text`, a bot message's).
    pub(crate) fn checked_card(card: &str, text: Option<&str>) -> Value {
        let card: Value = serde_json::from_str(card).unwrap();
        let errors: Vec<String> = validator()
            .iter_errors(&card)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "card does not validate: {errors:?}\n{card:#}"
        );
        assert_eq!(card["version"], "1.5");
        let size = match text {
            Some(text) => teams::bot_message_size(text, Some(&card)),
            None => teams::message_size(&card),
        };
        assert!(size <= teams::MAX_MESSAGE_BYTES, "{size}");
        card
    }

    fn card_of(event: Event, pairs: &[(&str, &str)]) -> Value {
        let mut all = vec![("channel", "eng-news")];
        all.extend_from_slice(pairs);
        let actions = TeamsPoster::handle(event, Settings::from_pairs(all)).unwrap();
        let [Action::PostTeams(m)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(m.channel, "eng-news");
        let card: Value = serde_json::from_str(&m.card).unwrap();
        let errors: Vec<String> = validator()
            .iter_errors(&card)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "card does not validate: {errors:?}\n{card:#}"
        );
        assert!(!card.to_string().contains("Action.Submit"));
        assert!(teams::message_size(&card) <= 28_000);
        card
    }

    #[test]
    fn a_content_url_that_is_not_http_reaches_no_action() {
        for url in [
            "javascript:alert(document.cookie)//x/pages/viewpage.action?pageId=123456",
            " JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
        ] {
            for kind in [EventKind::PageCreated, EventKind::PageUpdated] {
                let mut e = testing::event(kind);
                e.content.as_mut().unwrap().url = url.into();
                let card = card_of(e, &[("events", "page-created, page-updated")]);
                let text = card.to_string().to_ascii_lowercase();
                assert!(!text.contains("javascript"), "{url}: {card:#}");
                assert!(!text.contains("data:text"), "{url}: {card:#}");
                assert!(card.get("actions").is_none(), "{card:#}");
            }
        }
    }

    #[test]
    fn update_card_has_facts_excerpt_and_two_buttons() {
        let mut e = testing::event(EventKind::PageUpdated);
        e.content.as_mut().unwrap().version_message = Some("Added rollback steps".into());
        let card = card_of(e, &[]);
        assert_eq!(card["version"], "1.5");
        assert_eq!(card["body"][0]["text"], "Release notes");
        let facts = card["body"][2]["facts"].to_string();
        assert!(
            facts.contains("Edit note") && facts.contains("Added rollback steps"),
            "{facts}"
        );
        assert_eq!(card["actions"].as_array().unwrap().len(), 2);
        assert_eq!(card["actions"][1]["title"], "View changes");
    }

    #[test]
    fn huge_cards_are_shortened_to_fit() {
        let mut e = testing::event(EventKind::BlogCreated);
        let c = e.content.as_mut().unwrap();
        c.title = "標題".repeat(127);
        c.excerpt = Some("ü\"".repeat(50_000));
        c.labels = (0..500)
            .map(|i| format!("{i}-{}", "ł".repeat(60)))
            .collect();
        let card = card_of(e, &[]);
        assert_eq!(
            card["body"][0]["text"],
            "標題".repeat(127),
            "a real title fits"
        );
        let labels = card["body"][2]["facts"][3]["value"].as_str().unwrap();
        assert!(labels.ends_with('…'), "{labels}");
        assert!(
            teams::message_size(&card) > 27_000,
            "cut only what was needed"
        );
    }

    const HOSTILE: &str =
        "<at>Everyone</at> <!channel> <@U0ADMIN> [click](https://evil) <https://evil|click> & co";

    fn hostile(kind: EventKind) -> Event {
        let mut e = testing::event(kind);
        e.actor.as_mut().unwrap().display_name = Some(format!("Ada {HOSTILE}"));
        let c = e.content.as_mut().unwrap();
        c.title = format!("Title {HOSTILE}");
        c.space_name = Some(format!("Space {HOSTILE}"));
        c.excerpt = Some(format!("Excerpt {HOSTILE}"));
        c.version_message = Some(format!("Note {HOSTILE}"));
        c.labels = vec![format!("label {HOSTILE}")];
        for a in &mut c.ancestors {
            a.title = format!("Ancestor {HOSTILE}");
        }
        e
    }

    /// Every string of the card body (TextBlock text, fact titles and values).
    fn body_strings(card: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![&card["body"]];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => stack.extend(map.values()),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn confluence_text_cannot_mention_or_link() {
        for (kind, events) in [
            (EventKind::PageUpdated, "page-updated"),
            (EventKind::CommentCreated, "comment-created"),
        ] {
            let card = card_of(hostile(kind), &[("events", events)]);
            let texts = body_strings(&card);
            let all = texts.join("\n");
            for t in &texts {
                assert!(!t.contains('<') && !t.contains("]("), "{t}");
            }
            for piece in [
                "Title",
                "Ada",
                "Space",
                "Note",
                "Excerpt",
                "label",
                "&lt;at&gt;Everyone",
            ] {
                if kind == EventKind::CommentCreated && piece == "Title" {
                    continue; // a comment's heading is its page: the ancestor
                }
                assert!(all.contains(piece), "{piece} missing from {all}");
            }
            if kind == EventKind::CommentCreated {
                assert!(all.contains("Ancestor &lt;at&gt;"), "{all}");
            }
            assert!(card.get("msteams").is_none(), "no mention entities");
        }
    }

    #[test]
    fn absurd_content_still_fits_the_envelope_limit() {
        let mut e = hostile(EventKind::PageUpdated);
        let c = e.content.as_mut().unwrap();
        c.title = "<at>T</at>&".repeat(364);
        assert!(c.title.chars().count() >= 4_000);
        c.labels = (0..300).map(|i| format!("<at>label-{i}</at>")).collect();
        c.excerpt = Some(format!("{HOSTILE} ").repeat(1_200));
        assert!(c.excerpt.as_ref().unwrap().len() > 100_000);
        let card = card_of(e, &[]);
        let size = teams::message_size(&card);
        assert!(size <= teams::MAX_MESSAGE_BYTES, "{size}");
        for t in body_strings(&card) {
            assert!(!t.contains('<'), "{t}");
        }
        assert_eq!(card["actions"].as_array().unwrap().len(), 2, "buttons kept");
    }

    #[test]
    fn filters_are_the_shared_ones() {
        let mut restricted = testing::event(EventKind::PageCreated);
        restricted.content.as_mut().unwrap().restricted = true;
        let actions =
            TeamsPoster::handle(restricted, Settings::from_pairs([("channel", "x")])).unwrap();
        assert!(actions.is_empty());
        let card = card_of(
            testing::event(EventKind::CommentCreated),
            &[("events", "comment-created")],
        );
        assert_eq!(card["body"][0]["text"], "Engineering Home");
    }

    #[test]
    fn channel_cards_are_the_same_with_personal_notifications_on() {
        for kind in [
            EventKind::PageCreated,
            EventKind::PageUpdated,
            EventKind::BlogCreated,
        ] {
            let mut e = hostile(kind);
            e.people = vec![
                testing::concerned("grace@example.com", &[Concern::Mentioned]),
                testing::concerned("linus@example.com", &[Concern::Watcher]),
            ];
            let events = [("events", "page-created, page-updated, blog-created")];
            let plain = TeamsPoster::handle(
                e.clone(),
                Settings::from_pairs([("channel", "eng-news")].into_iter().chain(events)),
            )
            .unwrap();
            let personal = TeamsPoster::handle(
                e,
                Settings::from_pairs(
                    [
                        ("channel", "eng-news"),
                        ("personal", "true"),
                        ("bot", "bot"),
                    ]
                    .into_iter()
                    .chain(events),
                ),
            )
            .unwrap();
            assert_eq!(plain.len(), 1);
            assert_eq!(personal.len(), 3, "{personal:?}");
            assert_eq!(
                personal[0], plain[0],
                "the channel's card comes first, unchanged"
            );
            assert!(
                personal[1..]
                    .iter()
                    .all(|a| matches!(a, Action::DmTeams(_)))
            );
        }
    }

    #[test]
    fn a_page_event_needs_a_channel_or_personal() {
        let e = testing::event(EventKind::PageCreated);
        for pairs in [vec![], vec![("personal", "false")], vec![("bot", "bot")]] {
            let err = TeamsPoster::handle(e.clone(), Settings::from_pairs(pairs)).unwrap_err();
            assert!(err.contains("`channel`"), "{err}");
        }
        let err = TeamsPoster::handle(
            e.clone(),
            Settings::from_pairs([("channel", "eng-news"), ("personal", "maybe")]),
        )
        .unwrap_err();
        assert!(err.contains("`personal`"), "{err}");
        // Personal only: no channel needed, nobody concerned, nothing sent.
        let none = TeamsPoster::handle(e, Settings::from_pairs([("personal", "true")])).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn slack_events_are_not_this_plugins() {
        for e in [testing::link_shared(), testing::slash_command("search x")] {
            let actions =
                TeamsPoster::handle(e, Settings::from_pairs([("channel", "eng-news")])).unwrap();
            assert!(actions.is_empty());
        }
    }
}
