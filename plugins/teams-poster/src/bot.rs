//! Answering the Teams bot (contract 0.3.0): what people write to it and
//! the buttons they press on its cards, each answered with `reply-teams`
//! in the conversation it came from.
//!
//! - `search <words>`: the pages the host found for the person who asked
//!   (only what they may view, best first), at most ten, each with its
//!   title linked, space, last editor and excerpt; "No pages found that you
//!   may view" when there are none; and, when the host matched them to no
//!   Confluence user, that it does not know who they are. Results are the
//!   asker's: they are listed only in the personal chat with the bot, never
//!   in a channel or group chat where others would read them.
//! - anything else: a short help.
//! - "Share to channel" on a personal notification
//!   (`{"action": "share", "page-id": …}`): the page's card to the
//!   binding's `channel` (`post-teams`), and "Shared … to …"; or why not
//!   (the host did not give the page: it does not exist or they may not
//!   view it; view restrictions under `skip-restricted`; no `channel`).
//!
//! What it must never do: show a page the host did not read for the person
//! who asked, or answer anything but the event being handled.

use pagehook_guest::teams::{self, Card};
use pagehook_guest::{
    Action, PageSummary, Settings, TeamsCardAction, TeamsMessage, TeamsMessageEvent, TeamsReply,
    TeamsUser, log, text,
};

use crate::personal::SHARE;

/// Most search results listed.
const MAX_RESULTS: usize = 10;
/// Longest excerpt on a shared page's card, as on the channel's cards.
const EXCERPT_CHARS: usize = 1000;

/// The answer to a message to the bot.
pub(crate) fn answer(message: &TeamsMessageEvent) -> TeamsReply {
    let (word, words) = message.command();
    match word.as_str() {
        "search" if words.is_empty() => help(message, Some("Say what to search for.")),
        "search" if !message.user.is_linked() => TeamsReply::to_message(
            message,
            "I don't know who you are in Confluence: Teams shows no email that matches a \
             Confluence user, so I can't tell which pages you may view. Write `link` to link \
             your Teams account to your Confluence account (you sign in to Confluence once).",
        ),
        "search" if message.conversation_type != "personal" => TeamsReply::to_message(
            message,
            "I search only in our personal chat: the results are the pages you may view, and \
             others here may not be allowed to see them. Write \"search <words>\" to me there.",
        ),
        "search" if message.results.is_empty() => TeamsReply::to_message(
            message,
            format!(
                "No pages found that you may view for \u{201c}{}\u{201d}.",
                text::truncate(words, 200)
            ),
        ),
        "search" => results(message, words),
        "" | "help" | "hi" | "hello" => help(message, None),
        _ => help(
            message,
            Some(&format!(
                "I don't know \u{201c}{}\u{201d}.",
                text::truncate(&word, 40)
            )),
        ),
    }
}

/// The search results as a card.
fn results(message: &TeamsMessageEvent, words: &str) -> TeamsReply {
    let shown: Vec<&PageSummary> = message.results.iter().take(MAX_RESULTS).collect();
    let count = if shown.len() == 1 {
        "1 page".to_owned()
    } else {
        format!("{} pages", shown.len())
    };
    let words = text::truncate(words, 200);
    let mut card = Card::new().push(teams::heading(format!(
        "Confluence: {count} for \u{201c}{words}\u{201d}"
    )));
    for page in &shown {
        card = card.push(teams::page_result(page));
    }
    if message.results.len() > shown.len() {
        card = card.push(teams::subtle_text(
            "The best matches; more words narrow the search.",
        ));
    }
    let titles: Vec<&str> = shown.iter().map(|p| p.title.as_str()).collect();
    let text = text::truncate(
        &format!("{count} for \u{201c}{words}\u{201d}: {}", titles.join(", ")),
        1000,
    );
    TeamsReply::to_message(message, text).with_card(&card)
}

/// How to use the bot, after `problem` when there is one.
fn help(message: &TeamsMessageEvent, problem: Option<&str>) -> TeamsReply {
    let usage = "Write \"search <words>\" to find the Confluence pages you may view that match \
                 your words. I also tell you about pages that concern you (ones you created, \
                 watch or are mentioned in) when your admin turned that on; \"Share to channel\" \
                 on one of those posts it to your team's channel.";
    let text = match problem {
        Some(problem) => format!("{problem} {usage}"),
        None => usage.to_owned(),
    };
    TeamsReply::to_message(message, text)
}

/// The answer to a button pressed on one of the bot's cards.
pub(crate) fn card_action(
    action: &TeamsCardAction,
    settings: &Settings,
) -> Result<Vec<Action>, String> {
    match action.data_str("action").as_deref() {
        Some(SHARE) => share(action, settings),
        other => {
            log::info(format!(
                "a card action this plugin does not know: {}",
                text::truncate(other.unwrap_or("(none)"), 40)
            ));
            Ok(vec![Action::ReplyTeams(TeamsReply::to_card_action(
                action,
                "I don't know what that button does any more. Write \"help\" to see what I can do.",
            ))])
        }
    }
}

/// "Share to channel": the page's card to the binding's channel, or why not.
fn share(action: &TeamsCardAction, settings: &Settings) -> Result<Vec<Action>, String> {
    let skip_restricted = settings.bool_or("skip-restricted", true)?;
    let reply = |text: String| Action::ReplyTeams(TeamsReply::to_card_action(action, text));
    let Some(page) = &action.page else {
        let why = if action.user.is_linked() {
            "I can't share that page: it no longer exists, or you may not view it."
        } else {
            "I can't share that page: I don't know who you are in Confluence (Teams shows no \
             email that matches a Confluence user), so I can't tell whether you may view it. \
             Write `link` to link your Teams account to your Confluence account."
        };
        return Ok(vec![reply(why.to_owned())]);
    };
    let title = page_title(page);
    if page.restricted && skip_restricted {
        log::info(format!(
            "not sharing page {}: it has view restrictions (skip-restricted)",
            page.id
        ));
        return Ok(vec![reply(format!(
            "I can't share {title} to a channel: it has view restrictions, and people in the \
             channel may not be allowed to see it."
        ))]);
    }
    let Some(channel) = settings.string("channel") else {
        return Ok(vec![reply(format!(
            "I can't share {title}: no channel is set up for sharing. Ask your Pagehook admin \
             to set `channel` on this bot's binding."
        ))]);
    };
    // The card shared goes to the channel; the card whose button was
    // pressed becomes one that says it was shared, without the button, so
    // it is not shared twice by a second press.
    let shown = channel_shown(channel);
    let done = format!("Shared {title} to {shown}.");
    let kind = kind_of(page);
    Ok(vec![
        Action::PostTeams(TeamsMessage::new(
            channel,
            shared_card(page, &action.user).to_json(),
        )),
        Action::ReplyTeams(
            TeamsReply::to_card_action(action, &done)
                .with_card(&page_card(
                    page,
                    format!("You shared this {kind} to {shown}"),
                ))
                .replacing_card(),
        ),
    ])
}

/// The channel as people name it: `bot/Engineering` (a team the Teams bot
/// is in) is "Engineering"; a Workflows connection goes by its name.
fn channel_shown(channel: &str) -> &str {
    channel.split_once('/').map_or(channel, |(_, team)| team)
}

/// The title as people read it: "Untitled page" when it has none.
fn page_title(page: &PageSummary) -> &str {
    let title = page.title.trim();
    if title.is_empty() {
        "Untitled page"
    } else {
        title
    }
}

/// A shared page's card for the channel, laid out as the channel's cards
/// for page events are: title, who shared it from where, facts, excerpt,
/// "Open page". No `Action.Submit`: a channel's workflow calls nobody back.
fn shared_card(page: &PageSummary, sharer: &TeamsUser) -> Card {
    let who = sharer
        .confluence
        .as_ref()
        .map(|p| p.name())
        .or(sharer.name.as_deref().filter(|n| !n.trim().is_empty()))
        .unwrap_or("Someone");
    let space = space_of(page);
    let kind = kind_of(page);
    page_card(
        page,
        if space.is_empty() {
            format!("{who} shared this {kind}")
        } else {
            format!("{who} shared this {kind} from {space}")
        },
    )
}

/// "page" or "blog post".
fn kind_of(page: &PageSummary) -> &'static str {
    if page.content_type == "blogpost" {
        "blog post"
    } else {
        "page"
    }
}

/// The space's name, else its key.
fn space_of(page: &PageSummary) -> &str {
    page.space_name
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(&page.space_key)
}

/// A page's card: its title, `line` under it, facts, excerpt, "Open page".
fn page_card(page: &PageSummary, line: String) -> Card {
    let space = space_of(page);
    let mut facts = Vec::new();
    if !page.space_key.is_empty() {
        facts.push(("Space", format!("{space} ({})", page.space_key)));
    }
    if let Some(editor) = &page.last_editor {
        facts.push(("Last edited by", editor.name().to_owned()));
    }
    if let Some(ms) = page.last_edited_at_ms {
        facts.push(("Last edited", text::utc_date(ms)));
    }
    let mut card = Card::new()
        .push(teams::heading(page_title(page)))
        .push(teams::subtle_text(line));
    if !facts.is_empty() {
        card = card.push(teams::fact_set(facts));
    }
    if let Some(excerpt) = page.excerpt.as_deref().filter(|e| !e.trim().is_empty()) {
        card = card.push(teams::text_block(text::truncate(
            excerpt.trim(),
            EXCERPT_CHARS,
        )));
    }
    card.action(teams::open_url("Open page", &page.url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TeamsPoster;
    use crate::tests::checked_card;
    use pagehook_guest::{Event, Plugin, testing};
    use serde_json::Value;

    fn run(event: Event, pairs: &[(&str, &str)]) -> Vec<Action> {
        TeamsPoster::handle(event, Settings::from_pairs(pairs.iter().copied())).unwrap()
    }

    /// The one reply among `actions`, with its card checked when it has one.
    fn reply(actions: &[Action], activity_id: &str) -> (TeamsReply, Option<Value>) {
        let replies: Vec<&TeamsReply> = actions
            .iter()
            .filter_map(|a| match a {
                Action::ReplyTeams(r) => Some(r),
                _ => None,
            })
            .collect();
        let [r] = replies.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(r.activity_id, activity_id);
        assert!(!r.text.trim().is_empty());
        let card = r.card.as_deref().map(|c| checked_card(c, Some(&r.text)));
        ((*r).clone(), card)
    }

    fn ask(text: &str, edit: impl FnOnce(&mut TeamsMessageEvent)) -> (TeamsReply, Option<Value>) {
        let mut e = testing::teams_message(text);
        let Some(pagehook_guest::ChatEvent::TeamsMessage(m)) = e.chat.as_mut() else {
            unreachable!()
        };
        edit(m);
        let id = m.activity_id.clone();
        let actions = run(e, &[]);
        assert_eq!(actions.len(), 1, "{actions:?}");
        reply(&actions, &id)
    }

    #[test]
    fn search_lists_at_most_ten_results_with_links() {
        let (r, card) = ask("search release notes", |m| {
            m.results = (0..12)
                .map(|i| {
                    let mut p = testing::page_summary();
                    p.id = 1_000 + i;
                    p.title = format!("Release notes {i}");
                    p.url = format!(
                        "https://wiki.example.com/pages/viewpage.action?pageId={}",
                        p.id
                    );
                    p
                })
                .collect();
        });
        let card = card.expect("results come as a card");
        assert!(
            r.text
                .starts_with("10 pages for \u{201c}release notes\u{201d}: Release notes 0, "),
            "{}",
            r.text
        );
        let body = card["body"].as_array().unwrap();
        assert_eq!(
            body[0]["text"],
            "Confluence: 10 pages for \u{201c}release notes\u{201d}"
        );
        let items: Vec<&Value> = body.iter().filter(|b| b["type"] == "Container").collect();
        assert_eq!(items.len(), 10);
        assert_eq!(
            items[0]["items"][0]["text"],
            "**[Release notes 0](https://wiki.example.com/pages/viewpage.action?pageId=1000)**"
        );
        assert!(
            items[0]
                .to_string()
                .contains("Engineering · last edited by Grace Hopper")
        );
        assert!(
            items[0]
                .to_string()
                .contains("What changed in this release")
        );
        assert!(!card.to_string().contains("Release notes 10"));
        assert!(card.to_string().contains("more words narrow the search"));
    }

    #[test]
    fn one_result() {
        let (r, card) = ask("search release", |_| {});
        assert_eq!(r.text, "1 page for \u{201c}release\u{201d}: Release notes");
        assert!(card.unwrap().to_string().contains("Release notes"));
    }

    #[test]
    fn search_without_results_or_without_a_confluence_user() {
        let (r, card) = ask("search nothing-like-it", |m| m.results.clear());
        assert_eq!(
            r.text,
            "No pages found that you may view for \u{201c}nothing-like-it\u{201d}."
        );
        assert!(card.is_none());

        let (r, card) = ask("search launch", |m| {
            m.user.confluence = None;
            m.results.clear();
        });
        assert!(
            r.text.starts_with(
                "I don't know who you are in Confluence: Teams shows no email that matches a Confluence user"
            ),
            "{}",
            r.text
        );
        assert!(r.text.contains("Write `link`"), "{}", r.text);
        assert!(card.is_none());
    }

    #[test]
    fn search_results_stay_in_the_personal_chat() {
        let (r, card) = ask("search release", |m| m.conversation_type = "channel".into());
        assert!(card.is_none());
        assert!(!r.text.contains("Release notes"), "{}", r.text);
        assert!(r.text.contains("personal chat"), "{}", r.text);
    }

    #[test]
    fn anything_else_gets_help() {
        for text in ["", "help", "what can you do"] {
            let (r, card) = ask(text, |_| {});
            assert!(r.text.contains("\"search <words>\""), "{}", r.text);
            assert!(card.is_none());
        }
        let (r, _) = ask("search", |_| {});
        assert!(r.text.starts_with("Say what to search for."), "{}", r.text);
        let (r, _) = ask("delete everything", |_| {});
        assert!(
            r.text.starts_with("I don't know \u{201c}delete\u{201d}."),
            "{}",
            r.text
        );
    }

    fn press(
        value: &str,
        edit: impl FnOnce(&mut TeamsCardAction),
        pairs: &[(&str, &str)],
    ) -> Vec<Action> {
        let mut e = testing::teams_card_action(value);
        let Some(pagehook_guest::ChatEvent::TeamsCardAction(a)) = e.chat.as_mut() else {
            unreachable!()
        };
        edit(a);
        run(e, pairs)
    }

    const SHARE_IT: &str = r#"{"action":"share","page-id":123456}"#;

    #[test]
    fn share_posts_the_page_card_to_the_channel() {
        let actions = press(SHARE_IT, |_| {}, &[("channel", "eng-news")]);
        assert_eq!(actions.len(), 2, "{actions:?}");
        let Action::PostTeams(post) = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(post.channel, "eng-news");
        let card = checked_card(&post.card, None);
        assert!(
            !card.to_string().contains("Action.Submit"),
            "a channel's workflow calls nobody back"
        );
        assert_eq!(card["body"][0]["text"], "Release notes");
        assert_eq!(
            card["body"][1]["text"],
            "Ada Lovelace shared this page from Engineering"
        );
        let facts = card["body"][2]["facts"].to_string();
        assert!(
            facts.contains("Engineering (ENG)") && facts.contains("Grace Hopper"),
            "{facts}"
        );
        assert!(facts.contains("Jan 1, 2026"), "{facts}");
        assert_eq!(card["actions"][0]["title"], "Open page");
        assert_eq!(
            card["actions"][0]["url"],
            "https://wiki.example.com/pages/viewpage.action?pageId=123456"
        );
        // The pressed card is replaced by one that says it was shared, with
        // no button left to share it twice.
        let (r, done) = reply(&actions, "1767225600001");
        assert_eq!(r.text, "Shared Release notes to eng-news.");
        assert!(r.replace_card, "the card is replaced, not answered below");
        let done = done.expect("a card");
        assert_eq!(done["body"][0]["text"], "Release notes");
        assert!(
            done.to_string()
                .contains("You shared this page to eng-news"),
            "{done}"
        );
        assert!(!done.to_string().contains("Action.Submit"), "{done}");

        // Through a Teams bot's team, the team is named.
        let actions = press(SHARE_IT, |_| {}, &[("channel", "bot/Engineering")]);
        let (r, _) = reply(&actions, "1767225600001");
        assert_eq!(r.text, "Shared Release notes to Engineering.");
    }

    #[test]
    fn share_without_a_page_is_refused() {
        for (linked, says) in [
            (true, "may not view it"),
            (false, "I don't know who you are in Confluence"),
        ] {
            let actions = press(
                SHARE_IT,
                |a| {
                    a.page = None;
                    if !linked {
                        a.user.confluence = None;
                    }
                },
                &[("channel", "eng-news")],
            );
            assert_eq!(actions.len(), 1, "nothing posted: {actions:?}");
            let (r, _) = reply(&actions, "1767225600001");
            assert!(r.text.starts_with("I can't share that page"), "{}", r.text);
            assert!(r.text.contains(says), "{}", r.text);
        }
    }

    #[test]
    fn share_of_a_restricted_page_or_without_a_channel_is_refused() {
        let restricted = |a: &mut TeamsCardAction| a.page.as_mut().unwrap().restricted = true;
        let actions = press(SHARE_IT, restricted, &[("channel", "eng-news")]);
        assert_eq!(actions.len(), 1, "{actions:?}");
        let (r, _) = reply(&actions, "1767225600001");
        assert!(r.text.contains("view restrictions"), "{}", r.text);
        // The admin said restricted pages may go to the channel.
        let actions = press(
            SHARE_IT,
            restricted,
            &[("channel", "eng-news"), ("skip-restricted", "false")],
        );
        assert!(matches!(actions[0], Action::PostTeams(_)), "{actions:?}");

        let actions = press(SHARE_IT, |_| {}, &[]);
        assert_eq!(actions.len(), 1, "{actions:?}");
        let (r, _) = reply(&actions, "1767225600001");
        assert!(r.text.contains("no channel is set up"), "{}", r.text);
    }

    #[test]
    fn an_unknown_button_gets_an_answer_and_nothing_else() {
        for value in [r#"{"action":"delete","page-id":1}"#, "{}", "not json"] {
            let actions = press(value, |_| {}, &[("channel", "eng-news")]);
            assert_eq!(actions.len(), 1, "{actions:?}");
            let (r, _) = reply(&actions, "1767225600001");
            assert!(
                r.text.contains("don't know what that button does"),
                "{}",
                r.text
            );
        }
    }

    #[test]
    fn confluence_text_in_answers_cannot_mention_or_link() {
        let hostile = "<at>Everyone</at> [click](https://evil)";
        let (_, card) = ask("search x", |m| {
            m.results[0].title = hostile.into();
            m.results[0].excerpt = Some(hostile.into());
        });
        let all = card.unwrap().to_string();
        assert!(
            !all.contains("<at>") && !all.contains("[click](https://evil)"),
            "{all}"
        );
        let actions = press(
            SHARE_IT,
            |a| {
                let p = a.page.as_mut().unwrap();
                p.title = hostile.into();
                p.excerpt = Some(hostile.into());
                a.user.confluence.as_mut().unwrap().display_name = Some(hostile.into());
            },
            &[("channel", "eng-news")],
        );
        let Action::PostTeams(post) = &actions[0] else {
            panic!("{actions:?}")
        };
        assert!(!post.card.contains("<at>") && !post.card.contains("[click](https://evil)"));
    }
}
