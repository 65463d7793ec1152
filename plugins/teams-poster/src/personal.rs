//! Personal notifications (`personal = true`): a Teams bot tells each
//! person a page event concerns (`event.people`: its creator, the people
//! the new version mentions, its watchers) in their personal chat with it,
//! as slack-poster's `notify-*` do in Slack.
//!
//! One message per person per event (a mentioned watcher gets one, which
//! says both), never to the actor (the host leaves them out; `recipients`
//! checks key and email again), and only people the host lists as able to
//! view the content, so a page with view restrictions still reaches them
//! personally while its channel card is skipped. Otherwise the channel's
//! filters apply (events, minor edits, own events, personal spaces,
//! labels, title pattern, page tree).
//!
//! The message: a short text ("Ada Lovelace mentioned you in Release notes
//! in Engineering") and a small card: the title linked to the page, what
//! happened where, why they get it, and buttons to open the page, see the
//! changes and, for content without view restrictions, "Share to channel"
//! (an `Action.Submit` the bot receives: see [`crate::bot`]).
//!
//! What it must never do: write to someone the host did not list, or to
//! the person who did it.

use pagehook_guest::digest::{self, PersonalDigest};
use pagehook_guest::filters::{self, Filters};
use pagehook_guest::teams::{self, Card, Markdown};
use pagehook_guest::{
    Action, Concern, Digest, Event, EventKind, TeamsDirectMessage, log, markdown, text,
};
use serde_json::json;

/// Most actions returned for one call: the host's default limit. People
/// past it are left out (watchers first, then creators) and logged, so a
/// page with hundreds of watchers never fails the whole call.
pub(crate) const MAX_ACTIONS: usize = 50;

/// Longest title in a digest's list line, in characters.
const TITLE_CHARS: usize = 80;

/// What the "Share to channel" button sends back (with `"page-id"`).
pub(crate) const SHARE: &str = "share";

/// Mentions first, then creators, then watchers: what is cut at the
/// limit is the least personal.
const PRIORITY: [Concern; 3] = [Concern::Mentioned, Concern::Creator, Concern::Watcher];

/// The personal messages about one event that passed `personal_skip_reason`,
/// at most `room` of them.
pub(crate) fn for_event(event: &Event, filters: &Filters, room: usize) -> Vec<Action> {
    if let Some(reason) = filters.personal_skip_reason(event) {
        log::info(format!(
            "no personal notifications for {}: {reason}",
            event.id
        ));
        return Vec::new();
    }
    let mut recipients = event.recipients(&Concern::ALL);
    recipients.sort_by_key(|r| PRIORITY.iter().position(|c| r.concerns.contains(c)));
    if recipients.len() > room {
        log::warn(format!(
            "{}: {} of {} people not notified personally (at most {MAX_ACTIONS} actions per event)",
            event.id,
            recipients.len() - room,
            recipients.len()
        ));
        recipients.truncate(room);
    }
    recipients
        .into_iter()
        .map(|r| Action::DmTeams(message(r.email, event, &r.concerns)))
        .collect()
}

/// The personal messages of a digest: one per person the told events
/// concern, the event's own message when one event concerns them, else a
/// list of what does; at most `room` of them.
pub(crate) fn for_digest(digest: &Digest, filters: &Filters, room: usize) -> Vec<Action> {
    let told: Vec<&Event> = digest
        .events
        .iter()
        .filter(|e| match filters.personal_skip_reason(e) {
            Some(reason) => {
                log::info(format!("no personal notifications for {}: {reason}", e.id));
                false
            }
            None => true,
        })
        .collect();
    let mut people = digest::per_person(&told, &Concern::ALL);
    people.sort_by_key(|p| PRIORITY.iter().position(|c| p.concerns.contains(c)));
    if people.len() > room {
        log::warn(format!(
            "digest of {} events in {}: {} of {} people not notified personally (at most {MAX_ACTIONS} actions per call)",
            digest.events.len(),
            digest.space_key,
            people.len() - room,
            people.len()
        ));
        people.truncate(room);
    }
    people
        .iter()
        .map(|person| {
            Action::DmTeams(match person.events.as_slice() {
                [(one, concerns)] => message(person.email, one, concerns),
                _ => summary(person, digest),
            })
        })
        .collect()
}

/// One person's message about one event.
fn message(email: &str, event: &Event, concerns: &[Concern]) -> TeamsDirectMessage {
    TeamsDirectMessage::new(email, sentence(event, concerns)).with_card(&card(event, concerns))
}

/// "Ada Lovelace mentioned you in Release notes in Engineering": plain
/// text, the whole story in a notification.
fn sentence(event: &Event, concerns: &[Concern]) -> String {
    let actor = filters::actor_name(event);
    let title = filters::display_title(event);
    let verb = verb(event.kind, concerns.contains(&Concern::Mentioned));
    let space = event
        .content
        .as_ref()
        .map(filters::space_name)
        .unwrap_or_default();
    if space.is_empty() {
        format!("{actor} {verb} {title}")
    } else {
        format!("{actor} {verb} {title} in {space}")
    }
}

/// What the actor did, as said to the person told.
fn verb(kind: EventKind, mentioned: bool) -> &'static str {
    let comment = matches!(kind, EventKind::CommentCreated | EventKind::CommentUpdated);
    match kind {
        _ if mentioned && comment => "mentioned you in a comment on",
        _ if mentioned => "mentioned you in",
        EventKind::PageCreated => "created",
        EventKind::BlogCreated => "published",
        EventKind::PageUpdated | EventKind::BlogUpdated => "updated",
        EventKind::CommentCreated => "commented on",
        EventKind::CommentUpdated => "edited a comment on",
        _ => "changed",
    }
}

/// Why a person gets it, as the card says it.
fn why(concern: Concern) -> &'static str {
    match concern {
        Concern::Mentioned => "you are mentioned",
        Concern::Creator => "you created it",
        Concern::Watcher => "you watch it",
    }
}

/// "You get this because you are mentioned and you watch it."
fn because(concerns: &[Concern]) -> String {
    let reasons: Vec<&str> = concerns.iter().map(|c| why(*c)).collect();
    match reasons.as_slice() {
        [] => "You get this as a personal notification.".into(),
        [one] => format!("You get this because {one}."),
        [rest @ .., last] => format!("You get this because {} and {last}.", rest.join(", ")),
    }
}

/// The small card of one person's message.
fn card(event: &Event, concerns: &[Concern]) -> Card {
    let content = event
        .content
        .as_ref()
        .expect("filters skip events without content");
    let title = filters::display_title(event);
    let space = filters::space_name(content);
    let what = filters::what_happened(event.kind, "this");
    let actor = filters::actor_name(event);
    let mut card = Card::new()
        .push(teams::heading(Markdown::link(&content.url, title)))
        .push(teams::subtle_text(if space.is_empty() {
            format!("{actor} {what}")
        } else {
            format!("{actor} {what} in {space}")
        }));
    if !content.space_key.is_empty() {
        card = card.push(teams::fact_set([(
            "Space",
            format!("{space} ({})", content.space_key),
        )]));
    }
    card = card
        .push(teams::subtle_text(because(concerns)))
        .action(teams::open_url("Open page", &content.url));
    if matches!(event.kind, EventKind::PageUpdated | EventKind::BlogUpdated)
        && let Some(diff) = filters::diff_url(event)
    {
        card = card.action(teams::open_url("View changes", &diff));
    }
    // A channel may show the page to people who cannot open it: no button
    // to share what has view restrictions.
    if !content.restricted
        && let Some(page) = filters::page_id(event)
    {
        card = card.action(share_button(page));
    }
    card
}

/// "Share to channel": the bot receives `{"action": "share", "page-id": …}`.
pub(crate) fn share_button(page: u64) -> serde_json::Value {
    teams::submit(
        "Share to channel",
        json!({ "action": SHARE, "page-id": page }),
    )
}

/// One person's message about several events of a digest.
fn summary(person: &PersonalDigest<'_>, digest: &Digest) -> TeamsDirectMessage {
    let events: Vec<&Event> = person.events.iter().map(|(e, _)| *e).collect();
    let space = digest::space_name(digest);
    let how_many = digest::count_phrase(events.len(), "update", "updates");
    let who = digest::people_phrase(&events);
    let (shown, more) = digest::first_few(&events);
    let mut lines = Markdown::new();
    for (i, (e, concerns)) in person.events.iter().take(shown.len()).enumerate() {
        if i > 0 {
            lines.push(Markdown::trusted("\n"));
        }
        let title = text::truncate(filters::display_title(e), TITLE_CHARS);
        let url = e.content.as_ref().map(|c| c.url.as_str()).unwrap_or("");
        lines.push(markdown!(
            "- {} {} {}",
            filters::actor_name(e),
            verb(e.kind, concerns.contains(&Concern::Mentioned)),
            Markdown::link(url, &title)
        ));
    }
    let mut card = Card::new()
        .push(teams::heading(format!(
            "{how_many} in {space} that concern you"
        )))
        .push(teams::subtle_text(format!("{who} in {space}")))
        .push(teams::text_block(lines));
    if let Some(more) = digest::and_more(more) {
        card = card.push(teams::subtle_text(more.as_str()));
    }
    card = card.push(teams::subtle_text(because(&person.concerns)));
    if let Some(search) = digest.search_url.as_deref() {
        card = card.action(teams::open_url("See them in Confluence", search));
    }
    let titles: Vec<&str> = shown
        .iter()
        .take(3)
        .map(|e| filters::display_title(e))
        .collect();
    let text = format!(
        "{how_many} in {space} concern you: {}{}",
        titles.join(", "),
        if events.len() > titles.len() {
            ", …"
        } else {
            ""
        }
    );
    TeamsDirectMessage::new(person.email, text).with_card(&card)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TeamsPoster;
    use crate::tests::checked_card;
    use pagehook_guest::{Plugin, Settings, testing};
    use serde_json::Value;

    fn run(event: Event, pairs: &[(&str, &str)]) -> Vec<Action> {
        let mut all = vec![("personal", "true"), ("bot", "bot")];
        all.extend_from_slice(pairs);
        TeamsPoster::handle(event, Settings::from_pairs(all)).unwrap()
    }

    /// The personal messages among `actions`, each card checked.
    fn dms(actions: &[Action]) -> Vec<(&TeamsDirectMessage, Value)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::DmTeams(d) => Some(d),
                _ => None,
            })
            .map(|d| {
                assert!(!d.text.trim().is_empty());
                let card = checked_card(d.card.as_deref().unwrap(), Some(&d.text));
                (d, card)
            })
            .collect()
    }

    fn with_people(kind: EventKind) -> Event {
        let mut e = testing::event(kind);
        e.people = vec![
            testing::concerned("linus@example.com", &[Concern::Watcher]),
            testing::concerned("grace@example.com", &[Concern::Mentioned, Concern::Watcher]),
            testing::concerned("mary@example.com", &[Concern::Creator]),
        ];
        e
    }

    #[test]
    fn each_concerned_person_gets_one_message_saying_why() {
        let actions = run(with_people(EventKind::PageUpdated), &[]);
        let dms = dms(&actions);
        assert_eq!(actions.len(), 3, "no channel: only people");
        let to: Vec<&str> = dms.iter().map(|(d, _)| d.email.as_str()).collect();
        assert_eq!(
            to,
            ["grace@example.com", "mary@example.com", "linus@example.com"],
            "mentions first, then the creator, then watchers"
        );
        let texts: Vec<&str> = dms.iter().map(|(d, _)| d.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Ada Lovelace mentioned you in Release notes in Engineering",
                "Ada Lovelace updated Release notes in Engineering",
                "Ada Lovelace updated Release notes in Engineering",
            ]
        );
        let (_, grace) = &dms[0];
        assert_eq!(
            grace["body"][0]["text"],
            "[Release notes](https://wiki.example.com/pages/viewpage.action?pageId=123456)"
        );
        assert_eq!(
            grace["body"][1]["text"],
            "Ada Lovelace updated this page in Engineering"
        );
        assert_eq!(grace["body"][2]["facts"][0]["value"], "Engineering (ENG)");
        assert_eq!(
            grace["body"][3]["text"],
            "You get this because you are mentioned and you watch it."
        );
        let buttons: Vec<&str> = grace["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["title"].as_str().unwrap())
            .collect();
        assert_eq!(buttons, ["Open page", "View changes", "Share to channel"]);
        let share = &grace["actions"][2];
        assert_eq!(share["type"], "Action.Submit");
        assert_eq!(
            share["data"],
            serde_json::json!({"action": "share", "page-id": 123_456})
        );
        assert_eq!(
            dms[1].1["body"][3]["text"],
            "You get this because you created it."
        );
    }

    #[test]
    fn what_they_are_told_follows_the_event() {
        let told = |kind, concern, pairs: &[(&str, &str)]| {
            let mut e = testing::event(kind);
            e.people = vec![testing::concerned("grace@example.com", &[concern])];
            let actions = run(e, pairs);
            dms(&actions)[0].0.text.clone()
        };
        let comments = [("events", "comment-created, blog-created")];
        assert_eq!(
            told(EventKind::PageCreated, Concern::Watcher, &[]),
            "Ada Lovelace created Release notes in Engineering"
        );
        assert_eq!(
            told(EventKind::BlogCreated, Concern::Watcher, &comments),
            "Ada Lovelace published Release notes in Engineering"
        );
        assert_eq!(
            told(EventKind::CommentCreated, Concern::Creator, &comments),
            "Ada Lovelace commented on Engineering Home in Engineering"
        );
        assert_eq!(
            told(EventKind::CommentCreated, Concern::Mentioned, &comments),
            "Ada Lovelace mentioned you in a comment on Engineering Home in Engineering"
        );
    }

    #[test]
    fn the_actor_is_never_told_and_each_person_once() {
        let mut e = testing::event(EventKind::PageCreated);
        let actor = testing::person();
        // The actor by key (another email), by email (another key), and
        // someone listed twice.
        let mut by_key = testing::concerned("ada.other@example.com", &[Concern::Watcher]);
        by_key.person.key = actor.key.clone();
        let mut by_email = testing::concerned("ADA@example.com", &[Concern::Mentioned]);
        by_email.person.key = "someone-else".into();
        e.people = vec![
            by_key,
            by_email,
            testing::concerned("grace@example.com", &[Concern::Watcher]),
            testing::concerned("Grace@Example.com", &[Concern::Mentioned]),
        ];
        let actions = run(e, &[("channel", "eng-news")]);
        let dms = dms(&actions);
        assert_eq!(dms.len(), 1, "{actions:?}");
        assert_eq!(dms[0].0.email, "grace@example.com");
        assert!(dms[0].0.text.contains("mentioned you in"));
        assert!(matches!(actions[0], Action::PostTeams(_)));
    }

    #[test]
    fn nobody_is_told_unless_personal_is_on() {
        for pairs in [
            vec![("channel", "eng-news")],
            vec![("channel", "eng-news"), ("personal", "false")],
        ] {
            let actions = TeamsPoster::handle(
                with_people(EventKind::PageUpdated),
                Settings::from_pairs(pairs),
            )
            .unwrap();
            assert_eq!(actions.len(), 1);
            assert!(matches!(actions[0], Action::PostTeams(_)));
        }
    }

    #[test]
    fn personal_messages_follow_the_skip_rules_but_restrictions() {
        let mut minor = with_people(EventKind::PageUpdated);
        minor.content.as_mut().unwrap().minor_edit = true;
        assert!(run(minor, &[]).is_empty());
        let mut own = with_people(EventKind::PageCreated);
        own.by_pagehook = true;
        assert!(run(own, &[]).is_empty());
        let comment = with_people(EventKind::CommentCreated);
        assert!(run(comment, &[]).is_empty(), "not in `events`");
        let mut labelled = with_people(EventKind::PageCreated);
        labelled.content.as_mut().unwrap().labels = vec!["draft".into()];
        assert!(run(labelled, &[("exclude-labels", "draft")]).is_empty());

        // View restrictions: no channel card, but the people the host
        // listed (who may view it) are told, with no button to share it.
        let mut restricted = with_people(EventKind::PageCreated);
        restricted.content.as_mut().unwrap().restricted = true;
        let actions = run(restricted, &[("channel", "eng-news")]);
        assert_eq!(actions.len(), 3);
        for (_, card) in dms(&actions) {
            assert!(!card.to_string().contains("Action.Submit"), "{card:#}");
            assert!(!card.to_string().contains("Share to channel"));
        }
    }

    #[test]
    fn many_watchers_stay_within_the_action_limit() {
        let mut e = testing::event(EventKind::PageUpdated);
        e.people = (0..80)
            .map(|i| testing::concerned(&format!("w{i}@example.com"), &[Concern::Watcher]))
            .collect();
        e.people.push(testing::concerned(
            "grace@example.com",
            &[Concern::Mentioned],
        ));
        let actions = run(e, &[("channel", "eng-news")]);
        assert_eq!(actions.len(), MAX_ACTIONS);
        let dms = dms(&actions);
        assert_eq!(
            dms[0].0.email, "grace@example.com",
            "mentions are kept first"
        );
    }

    #[test]
    fn confluence_text_in_a_personal_card_cannot_mention_or_link() {
        let hostile = "<at>Everyone</at> [click](https://evil) & co";
        let mut e = with_people(EventKind::PageUpdated);
        e.actor.as_mut().unwrap().display_name = Some(hostile.into());
        let c = e.content.as_mut().unwrap();
        c.title = hostile.into();
        c.space_name = Some(hostile.into());
        c.url = "javascript:alert(1)".into();
        let actions = run(e, &[]);
        for (d, card) in dms(&actions) {
            // The text is plain: the host sends it as such, so it is as written.
            assert!(d.text.contains(hostile), "{}", d.text);
            let all = card.to_string();
            assert!(
                !all.contains("<at>") && !all.contains("[click](https://evil)"),
                "{all}"
            );
            assert!(!all.to_ascii_lowercase().contains("javascript"), "{all}");
        }
    }

    // --- digests ---------------------------------------------------------

    #[test]
    fn a_digest_tells_each_person_once() {
        let mut a = testing::created_page("Alpha", 1);
        a.people = vec![
            testing::concerned("grace@example.com", &[Concern::Watcher]),
            testing::concerned("linus@example.com", &[Concern::Mentioned]),
        ];
        let mut b = testing::created_page("Beta", 2);
        b.people = vec![testing::concerned(
            "GRACE@example.com",
            &[Concern::Mentioned],
        )];
        let c = testing::created_page("Gamma", 3);
        let digest = testing::digest([a, b, c]);
        let channel_only = TeamsPoster::handle_digest(
            digest.clone(),
            Settings::from_pairs([("channel", "eng-news")]),
        )
        .unwrap();
        let actions = TeamsPoster::handle_digest(
            digest,
            Settings::from_pairs([("channel", "eng-news"), ("personal", "true")]),
        )
        .unwrap();
        assert_eq!(channel_only.len(), 1);
        assert_eq!(
            actions[0], channel_only[0],
            "the channel's card is unchanged"
        );
        let dms = dms(&actions);
        assert_eq!(actions.len(), 3);
        let to: Vec<&str> = dms.iter().map(|(d, _)| d.email.as_str()).collect();
        assert_eq!(to, ["grace@example.com", "linus@example.com"]);
        // Grace: two events, one summary.
        let (grace, card) = &dms[0];
        assert_eq!(
            grace.text,
            "2 updates in Engineering concern you: Alpha, Beta"
        );
        let all = card.to_string();
        assert!(
            all.contains("2 updates in Engineering that concern you"),
            "{all}"
        );
        assert!(all.contains("Ada Lovelace created [Alpha]("), "{all}");
        assert!(
            all.contains("Ada Lovelace mentioned you in [Beta]("),
            "{all}"
        );
        assert!(all.contains("you are mentioned and you watch it"), "{all}");
        assert!(all.contains("See them in Confluence"));
        // Linus: one event, its own message.
        assert_eq!(
            dms[1].0.text,
            "Ada Lovelace mentioned you in Alpha in Engineering"
        );
        assert!(dms[1].1.to_string().contains("Share to channel"));
    }

    #[test]
    fn a_digest_for_people_only_needs_no_channel() {
        let mut a = testing::created_page("Alpha", 1);
        a.people = vec![testing::concerned("grace@example.com", &[Concern::Watcher])];
        let mut actor = testing::concerned("ada@example.com", &[Concern::Watcher]);
        actor.person.key = testing::person().key;
        let mut b = testing::created_page("Beta", 2);
        b.people = vec![actor];
        let actions = TeamsPoster::handle_digest(
            testing::digest([a, b]),
            Settings::from_pairs([("personal", "true")]),
        )
        .unwrap();
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(dms(&actions)[0].0.email, "grace@example.com");
        let err = TeamsPoster::handle_digest(
            testing::digest([testing::created_page("A", 1), testing::created_page("B", 2)]),
            Settings::from_pairs([("personal", "false")]),
        )
        .unwrap_err();
        assert!(err.contains("`channel`"), "{err}");
    }
}
