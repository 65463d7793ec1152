//! Digests (contract 0.3.0): a burst of events told in a few cards.
//!
//! The same grouping as slack-poster (`pagehook_guest::digest::groups`),
//! with the same filters as for one event: pages created become one card
//! (who created how many in which space, the first titles, "and 590 more",
//! a button to the Confluence search); a page updated several times one
//! "edited 7 times" card with the changes over all its versions (Teams
//! workflow posts have no threads); the rest one card listing it. A group
//! of one event gets the card that event gets on its own.
//!
//! With `personal = true`, each person the events concern gets one
//! personal message (see [`crate::personal`]): the event's own message
//! when one event concerns them, else a list of what does.

use pagehook_guest::digest::{self, Group};
use pagehook_guest::filters::{self, Filters};
use pagehook_guest::teams::{self, Card, Markdown};
use pagehook_guest::{Action, Digest, Event, Settings, TeamsMessage, log, markdown, text};

use crate::{Outputs, card, personal};

/// Longest title in a list line, in characters.
const TITLE_CHARS: usize = 80;

/// The actions for a digest.
pub(crate) fn handle(digest: &Digest, settings: &Settings) -> Result<Vec<Action>, String> {
    let outputs = Outputs::of(settings)?;
    let filters = Filters::from_settings(settings)?;
    let told: Vec<&Event> = digest
        .events
        .iter()
        .filter(|e| match filters.skip_reason(e) {
            Some(reason) => {
                log::info(format!("skipped {}: {reason}", e.id));
                false
            }
            None => true,
        })
        .collect();
    let mut actions: Vec<Action> = match outputs.channel {
        Some(channel) => digest::groups(&told)
            .iter()
            .map(|group| {
                let card = match group.events().as_slice() {
                    [one] => card(one),
                    _ => summary(group, digest),
                };
                Action::PostTeams(TeamsMessage::new(channel, card.to_json()))
            })
            .collect(),
        None => Vec::new(),
    };
    if outputs.personal {
        let room = personal::MAX_ACTIONS.saturating_sub(actions.len());
        actions.extend(personal::for_digest(digest, &filters, room));
    }
    Ok(actions)
}

fn summary(group: &Group<'_>, digest: &Digest) -> Card {
    let events = group.events();
    let space = digest::space_name(digest);
    let who = digest::people_phrase(&events);
    match group {
        Group::Edited(_, _) => {
            let last = events[events.len() - 1];
            let content = last
                .content
                .as_ref()
                .expect("filters skip events without content");
            let title = filters::display_title(last);
            let span = digest::version_span(&events);
            let mut facts = vec![
                ("Space", format!("{space} ({})", content.space_key)),
                ("Edited by", who.clone()),
            ];
            if let Some((from, to)) = span {
                facts.push(("Versions", format!("{from} to {to}")));
            }
            let mut card = Card::new()
                .push(teams::heading(title))
                .push(teams::subtle_text(format!(
                    "{who} edited this page {} times in {space}",
                    events.len()
                )))
                .push(teams::fact_set(facts))
                .action(teams::open_url("Open page", &content.url));
            if let Some(changes) = span.and_then(|(from, _)| filters::diff_url_since(last, from)) {
                card = card.action(teams::open_url("View changes", &changes));
            }
            card
        }
        Group::Created(_) | Group::Other(_) => {
            let (heading, what) = match group {
                Group::Created(_) => {
                    let how_many = digest::created_phrase(&events);
                    (
                        format!("New in {space}: {how_many}"),
                        format!("{who} created {how_many} in {space}"),
                    )
                }
                _ => {
                    let how_many = digest::count_phrase(events.len(), "update", "updates");
                    (
                        format!("{how_many} in {space}"),
                        format!("{who}: {how_many} in {space}"),
                    )
                }
            };
            let (shown, more) = digest::first_few(&events);
            let mut lines = Markdown::new();
            for (i, e) in shown.iter().enumerate() {
                if i > 0 {
                    lines.push(Markdown::trusted("\n"));
                }
                let title = text::truncate(filters::display_title(e), TITLE_CHARS);
                let link = Markdown::link(&url(e), &title);
                lines.push(match group {
                    Group::Created(_) => markdown!("- {}", link),
                    _ => markdown!(
                        "- {} {} {}",
                        filters::actor_name(e),
                        filters::what_happened(e.kind, "the").as_str(),
                        link
                    ),
                });
            }
            let mut card = Card::new()
                .push(teams::heading(heading.as_str()))
                .push(teams::subtle_text(what.as_str()))
                .push(teams::text_block(lines));
            if let Some(more) = digest::and_more(more) {
                card = card.push(teams::subtle_text(more.as_str()));
            }
            if let Some(search) = digest.search_url.as_deref() {
                card = card.action(teams::open_url("See them in Confluence", search));
            }
            card
        }
    }
}

fn url(e: &Event) -> String {
    e.content
        .as_ref()
        .map(|c| c.url.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::TeamsPoster;
    use pagehook_guest::{EventKind, Plugin, testing};
    use serde_json::Value;

    fn validator() -> &'static jsonschema::Validator {
        static V: OnceLock<jsonschema::Validator> = OnceLock::new();
        V.get_or_init(|| {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/schemas/adaptive-card-1.6.schema.json"
            );
            let text = std::fs::read_to_string(path).unwrap();
            jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
        })
    }

    fn cards(d: Digest) -> Vec<Value> {
        let actions = handle(&d, &Settings::from_pairs([("channel", "eng-news")])).unwrap();
        actions
            .iter()
            .map(|a| {
                let Action::PostTeams(m) = a else {
                    panic!("{a:?}")
                };
                let card: Value = serde_json::from_str(&m.card).unwrap();
                let errors: Vec<String> = validator()
                    .iter_errors(&card)
                    .map(|e| e.to_string())
                    .collect();
                assert!(errors.is_empty(), "{errors:?}\n{card:#}");
                assert!(teams::message_size(&card) <= 28_000);
                card
            })
            .collect()
    }

    #[test]
    fn six_hundred_new_pages_are_one_card() {
        let d = testing::digest(
            (0..600).map(|i| testing::created_page(&format!("Imported page {i}"), 1_000 + i)),
        );
        let cards = cards(d);
        assert_eq!(cards.len(), 1);
        let all = cards[0].to_string();
        assert!(all.contains("New in Engineering: 600 pages"), "{all}");
        assert!(
            all.contains("Ada Lovelace created 600 pages in Engineering"),
            "{all}"
        );
        assert!(all.contains("Imported page 9") && !all.contains("Imported page 10"));
        assert!(all.contains("and 590 more"));
        assert!(all.contains("See them in Confluence") && all.contains("dosearchsite.action"));
    }

    #[test]
    fn seven_edits_are_one_card_and_one_event_its_usual_card() {
        let edits = (2..=8).map(|v| {
            let mut e = testing::event(EventKind::PageUpdated);
            e.content.as_mut().unwrap().version = v;
            e
        });
        let cards = cards(testing::digest(edits));
        assert_eq!(cards.len(), 1);
        let all = cards[0].to_string();
        assert!(all.contains("edited this page 7 times"), "{all}");
        assert!(
            all.contains("selectedPageVersions=1&selectedPageVersions=8"),
            "{all}"
        );

        let one = testing::event(EventKind::PageCreated);
        let alone =
            TeamsPoster::handle(one.clone(), Settings::from_pairs([("channel", "eng-news")]))
                .unwrap();
        let mut minor = testing::event(EventKind::PageUpdated);
        minor.content.as_mut().unwrap().minor_edit = true;
        let d = testing::digest([one, minor]);
        assert_eq!(
            handle(&d, &Settings::from_pairs([("channel", "eng-news")])).unwrap(),
            alone
        );
    }

    #[test]
    fn confluence_text_in_a_digest_cannot_mention_or_link() {
        let hostile = "<at>All</at> [win](https://evil)";
        let events = (0..3).map(|i| {
            let mut e = testing::created_page(&format!("{hostile} {i}"), 100 + i);
            e.actor.as_mut().unwrap().display_name = Some(hostile.into());
            e
        });
        let all = cards(testing::digest(events))[0].to_string();
        assert!(
            !all.contains("<at>") && !all.contains("[win](https://evil)"),
            "{all}"
        );
    }
}
