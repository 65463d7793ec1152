//! Digests (contract 0.3.0): a burst of events told in a few messages.
//!
//! The host hands over a burst of one space's events at once. The same
//! filters as for one event decide which are told; then, per group (see
//! `pagehook_guest::digest::groups`):
//! - pages and blog posts created: one message, who created how many in
//!   which space, the first titles, "and 590 more", and a button to the
//!   Confluence search that lists them all;
//! - one page updated several times: one "edited 7 times" message in the
//!   page's thread, with the edit notes and a button to the changes over
//!   all the versions;
//! - anything else (comments): one message listing them the same way;
//! - a group of one event: the message that event gets on its own, so a
//!   digest changes nothing for single events.
//!
//! `dm-emails` get the channel's messages. People the events concern
//! (`notify-*`) get one direct message each: the event's own message when
//! one event concerns them, else a list of what does.

use pagehook_guest::digest::{self, Group, PersonalDigest};
use pagehook_guest::filters::{self, Filters};
use pagehook_guest::slack::{self, Blocks, LinkButton, Mrkdwn};
use pagehook_guest::{
    Action, Concern, Digest, Event, SettingError, Settings, SlackDirectMessage, SlackMessage, log,
    mrkdwn, text,
};

use super::{MAX_ACTIONS, Message, NOTIFY, why};

/// Longest title in a list line, in characters.
const TITLE_CHARS: usize = 80;
/// Edit notes shown for a page edited several times.
const NOTES_SHOWN: usize = 5;

/// The actions for a digest.
pub(crate) fn handle(digest: &Digest, settings: &Settings) -> Result<Vec<Action>, String> {
    let channel = settings.string("channel");
    let mut wanted = Vec::new();
    for (name, concern) in NOTIFY {
        if settings.bool_or(name, false)? {
            wanted.push(concern);
        }
    }
    if channel.is_none() && wanted.is_empty() {
        return Err(SettingError::Missing {
            name: "channel".into(),
        }
        .into());
    }
    let filters = Filters::from_settings(settings)?;
    let dm_emails = settings.list("dm-emails");
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
    let mut actions = Vec::new();
    for group in digest::groups(&told) {
        let events = group.events();
        let message = match events.as_slice() {
            [one] => Message::of(one, &[]),
            _ => summary(&group, digest),
        };
        if let Some(channel) = channel {
            actions.push(Action::PostSlack(
                SlackMessage::new(channel, &message.text)
                    .with_blocks(message.blocks.clone())
                    .with_thread_key(message.thread_key.clone()),
            ));
        }
        for email in &dm_emails {
            // Nobody needs to be told what only they did.
            let theirs = events
                .iter()
                .all(|e| e.actor.as_ref().and_then(|a| a.email.as_deref()) == Some(email.as_str()));
            if !theirs {
                actions.push(Action::DmSlack(
                    SlackDirectMessage::new(email, &message.text)
                        .with_blocks(message.blocks.clone()),
                ));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(actions);
    }
    let personal: Vec<&Event> = digest
        .events
        .iter()
        .filter(|e| filters.personal_skip_reason(e).is_none())
        .collect();
    let already: Vec<String> = dm_emails.iter().map(|e| e.trim().to_lowercase()).collect();
    let mut people = digest::per_person(&personal, &wanted);
    people.retain(|p| !already.contains(&p.email.to_lowercase()));
    // Mentions first, then creators, then watchers, as for one event.
    people.sort_by_key(|p| {
        [Concern::Mentioned, Concern::Creator, Concern::Watcher]
            .iter()
            .position(|c| p.concerns.contains(c))
    });
    let room = MAX_ACTIONS.saturating_sub(actions.len());
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
    for person in people {
        let message = match person.events.as_slice() {
            [(one, concerns)] => Message::of(one, concerns),
            _ => personal_summary(&person, digest),
        };
        actions.push(Action::DmSlack(
            SlackDirectMessage::new(person.email, &message.text).with_blocks(message.blocks),
        ));
    }
    Ok(actions)
}

/// The message of a group of two or more events.
fn summary(group: &Group<'_>, digest: &Digest) -> Message {
    match group {
        Group::Created(events) => created(events, digest),
        Group::Edited(page, events) => edited(*page, events, digest),
        Group::Other(events) => others(events, digest),
    }
}

/// "Ada Lovelace created 600 pages in Engineering", the first titles, and
/// the search that finds them all.
fn created(events: &[&Event], digest: &Digest) -> Message {
    let who = digest::people_phrase(events);
    let how_many = digest::created_phrase(events);
    let space = digest::space_name(digest);
    let (shown, more) = digest::first_few(events);
    let mut blocks = Blocks::new();
    blocks.push(slack::header(&text::truncate(
        &format!("New in {space}: {how_many}"),
        150,
    )));
    blocks.push(slack::section(mrkdwn!(
        "*{}* created {} in *{}*",
        who.as_str(),
        how_many.as_str(),
        space
    )));
    blocks.push(slack::section(list(&shown, |e| {
        Mrkdwn::link(
            &url(e),
            &text::truncate(filters::display_title(e), TITLE_CHARS),
        )
    })));
    finish(&mut blocks, digest, more);
    let titles: Vec<&str> = shown
        .iter()
        .take(3)
        .map(|e| filters::display_title(e))
        .collect();
    Message {
        text: fallback(
            &format!("{who} created {how_many} in {space}: {}", titles.join(", ")),
            events.len() - titles.len(),
            digest,
        ),
        blocks: blocks.to_json(),
        thread_key: format!("digest-{}-{}", digest.space_key, events[0].id),
    }
}

/// "Ada Lovelace edited "Q3 launch checklist" 7 times", in the page's thread.
fn edited(page: u64, events: &[&Event], digest: &Digest) -> Message {
    let last = events[events.len() - 1];
    let content = last
        .content
        .as_ref()
        .expect("filters skip events without content");
    let who = digest::people_phrase(events);
    let title = filters::display_title(last);
    let space = digest::space_name(digest);
    let times = events.len();
    let mut blocks = Blocks::new();
    blocks.push(slack::header(title));
    blocks.push(slack::section(mrkdwn!(
        "*{}* edited {} {} times in *{}*",
        who.as_str(),
        Mrkdwn::link(&content.url, title),
        times,
        space
    )));
    let notes: Vec<Mrkdwn> = events
        .iter()
        .filter_map(|e| {
            let c = e.content.as_ref()?;
            let note = c.version_message.as_deref()?.trim();
            (!note.is_empty()).then(|| mrkdwn!("v{}: _“{}”_", c.version, text::truncate(note, 200)))
        })
        .collect();
    let hidden = notes.len().saturating_sub(NOTES_SHOWN);
    let mut shown_notes: Vec<Mrkdwn> = notes.into_iter().skip(hidden).collect();
    if hidden > 0 {
        shown_notes.insert(0, mrkdwn!("{} earlier notes", hidden));
    }
    if !shown_notes.is_empty() {
        blocks.push(slack::context(shown_notes));
    }
    let span = digest::version_span(events);
    blocks.push(slack::context([match span {
        Some((from, to)) => mrkdwn!("{} · versions {} to {}", &content.space_key, from, to),
        None => mrkdwn!("{}", &content.space_key),
    }]));
    let mut buttons = vec![LinkButton::new("Open page", content.url.clone()).primary()];
    if let Some(changes) = span.and_then(|(from, _)| filters::diff_url_since(last, from)) {
        buttons.push(LinkButton::new("View changes", changes));
    }
    blocks.push(slack::actions(buttons));
    let url = text::web_url(&content.url)
        .map(|u| format!(": {u}"))
        .unwrap_or_default();
    Message {
        text: Mrkdwn::text(&format!(
            "{who} edited \"{title}\" {times} times in {space}{url}"
        )),
        blocks: blocks.to_json(),
        thread_key: format!("page-{page}"),
    }
}

/// Comments and the rest: who did what to which page, listed.
fn others(events: &[&Event], digest: &Digest) -> Message {
    let who = digest::people_phrase(events);
    let space = digest::space_name(digest);
    let (shown, more) = digest::first_few(events);
    let how_many = digest::count_phrase(events.len(), "update", "updates");
    let mut blocks = Blocks::new();
    blocks.push(slack::header(&text::truncate(
        &format!("{how_many} in {space}"),
        150,
    )));
    blocks.push(slack::section(mrkdwn!(
        "*{}*: {} in *{}*",
        who.as_str(),
        how_many.as_str(),
        space
    )));
    blocks.push(slack::section(list(&shown, line)));
    finish(&mut blocks, digest, more);
    Message {
        text: fallback(&format!("{who}: {how_many} in {space}"), 0, digest),
        blocks: blocks.to_json(),
        thread_key: format!("digest-{}-{}", digest.space_key, events[0].id),
    }
}

/// One person's direct message about the events that concern them.
fn personal_summary(person: &PersonalDigest<'_>, digest: &Digest) -> Message {
    let events: Vec<&Event> = person.events.iter().map(|(e, _)| *e).collect();
    let space = digest::space_name(digest);
    let (shown, more) = digest::first_few(&events);
    let how_many = digest::count_phrase(events.len(), "update", "updates");
    let reasons: Vec<&str> = person.concerns.iter().map(|c| why(*c)).collect();
    let mut blocks = Blocks::new();
    blocks.push(slack::context([mrkdwn!(
        ":bell: {} (a personal notification)",
        reasons.join(" · ")
    )]));
    blocks.push(slack::header(&text::truncate(
        &format!("{how_many} in {space} that concern you"),
        150,
    )));
    blocks.push(slack::section(list(&shown, line)));
    finish(&mut blocks, digest, more);
    let first = person.concerns.first().map_or("For you", |c| why(*c));
    Message {
        text: fallback(
            &format!("{first}: {how_many} in {space} concern you"),
            0,
            digest,
        ),
        blocks: blocks.to_json(),
        thread_key: String::new(),
    }
}

/// A bulleted list of `events`, one line each.
fn list(events: &[&Event], line: impl Fn(&Event) -> Mrkdwn) -> Mrkdwn {
    let mut out = Mrkdwn::new();
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(Mrkdwn::trusted("\n"));
        }
        out.push(Mrkdwn::trusted("• ")).push(line(e));
    }
    out
}

/// "Ada Lovelace commented on the page <Title>".
fn line(e: &Event) -> Mrkdwn {
    mrkdwn!(
        "{} {} {}",
        filters::actor_name(e),
        filters::what_happened(e.kind, "the").as_str(),
        Mrkdwn::link(
            &url(e),
            &text::truncate(filters::display_title(e), TITLE_CHARS)
        )
    )
}

fn url(e: &Event) -> String {
    e.content
        .as_ref()
        .map(|c| c.url.clone())
        .unwrap_or_default()
}

/// "and 590 more" and the button to the search that lists everything.
fn finish(blocks: &mut Blocks, digest: &Digest, more: usize) {
    if let Some(more) = digest::and_more(more) {
        blocks.push(slack::context([more]));
    }
    if let Some(search) = digest.search_url.as_deref() {
        blocks.push(slack::actions([LinkButton::new(
            "See them in Confluence",
            search,
        )
        .primary()]));
    }
}

/// The plain-text fallback: `summary`, "and N more", and the search link.
fn fallback(summary: &str, more: usize, digest: &Digest) -> Mrkdwn {
    let mut text = summary.to_owned();
    if let Some(more) = digest::and_more(more) {
        text.push_str(&format!(" {more}"));
    }
    if let Some(search) = digest.search_url.as_deref().and_then(text::web_url) {
        text.push_str(&format!(": {search}"));
    }
    Mrkdwn::text(&text::truncate(&text, 3000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SlackPoster;
    use pagehook_guest::{EventKind, Plugin, testing};
    use serde_json::Value;

    fn run(d: Digest, pairs: &[(&str, &str)]) -> Vec<Action> {
        let mut all = vec![("channel", "#eng")];
        all.extend_from_slice(pairs);
        handle(&d, &Settings::from_pairs(all)).unwrap()
    }

    fn posts(actions: &[Action]) -> Vec<(&SlackMessage, Value)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::PostSlack(m) => Some((m, serde_json::from_str(m.blocks.as_deref()?).ok()?)),
                _ => None,
            })
            .collect()
    }

    fn import(n: u64) -> Digest {
        testing::digest(
            (0..n).map(|i| testing::created_page(&format!("Imported page {i}"), 1_000 + i)),
        )
    }

    #[test]
    fn six_hundred_new_pages_are_one_message_with_ten_titles_and_a_search() {
        let actions = run(import(600), &[]);
        assert_eq!(actions.len(), 1, "{actions:?}");
        let (m, blocks) = &posts(&actions)[0];
        assert_eq!(m.channel, "#eng");
        assert!(
            m.text.starts_with(
                "Ada Lovelace created 600 pages in Engineering: Imported page 0, Imported page 1, Imported page 2 and 597 more: https://wiki.example.com/dosearchsite.action?cql="
            ),
            "{}",
            m.text
        );
        let all = blocks.to_string();
        assert!(all.contains("New in Engineering: 600 pages"), "{all}");
        assert!(
            all.contains("Imported page 9") && !all.contains("Imported page 10"),
            "{all}"
        );
        assert!(all.contains("and 590 more"), "{all}");
        assert!(all.contains("See them in Confluence"), "{all}");
        assert!(blocks.as_array().unwrap().len() <= 50);
    }

    #[test]
    fn seven_edits_of_one_page_are_one_update_in_its_thread() {
        let edits = (2..=8).map(|v| {
            let mut e = testing::event(EventKind::PageUpdated);
            let c = e.content.as_mut().unwrap();
            c.version = v;
            c.version_message = Some(format!("note {v}"));
            e
        });
        let actions = run(testing::digest(edits), &[]);
        assert_eq!(actions.len(), 1, "{actions:?}");
        let (m, blocks) = &posts(&actions)[0];
        assert_eq!(m.thread_key.as_deref(), Some("page-123456"));
        assert!(
            m.text
                .starts_with("Ada Lovelace edited \"Release notes\" 7 times in Engineering"),
            "{}",
            m.text
        );
        let all = blocks.to_string();
        assert!(all.contains("versions 1 to 8"), "{all}");
        assert!(
            all.contains("selectedPageVersions=1&selectedPageVersions=8"),
            "{all}"
        );
        assert!(
            all.contains("2 earlier notes") && all.contains("note 8") && !all.contains("note 3"),
            "{all}"
        );
    }

    #[test]
    fn a_single_event_in_a_digest_gets_its_own_message() {
        let one = testing::event(EventKind::PageUpdated);
        let alone =
            SlackPoster::handle(one.clone(), Settings::from_pairs([("channel", "#eng")])).unwrap();
        let mut minor = testing::created_page("minor", 9);
        minor.content.as_mut().unwrap().minor_edit = true;
        let mut own = testing::created_page("own", 10);
        own.by_pagehook = true;
        let actions = run(testing::digest([one, minor, own]), &[]);
        assert_eq!(actions, alone);
    }

    #[test]
    fn each_person_concerned_gets_one_message() {
        let events = (0..30).map(|i| {
            let mut e = testing::created_page(&format!("p{i}"), 100 + i);
            e.people = vec![testing::concerned(
                "grace@example.com",
                &[Concern::Mentioned],
            )];
            if i == 0 {
                e.people
                    .push(testing::concerned("linus@example.com", &[Concern::Watcher]));
            }
            e
        });
        let actions = run(
            testing::digest(events),
            &[("notify-mentioned", "true"), ("notify-watchers", "true")],
        );
        let dms: Vec<&SlackDirectMessage> = actions
            .iter()
            .filter_map(|a| match a {
                Action::DmSlack(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(actions.len(), 3, "{actions:?}");
        assert_eq!(dms[0].email, "grace@example.com");
        assert!(
            dms[0]
                .text
                .starts_with("You are mentioned: 30 updates in Engineering concern you"),
            "{}",
            dms[0].text
        );
        assert_eq!(dms[1].email, "linus@example.com");
        assert!(
            dms[1]
                .text
                .starts_with("You watch it: Ada Lovelace created the page \"p0\"")
        );
    }

    #[test]
    fn confluence_text_in_a_digest_cannot_mention_or_link() {
        let hostile = "<!channel> <@U0ADMIN> <https://evil|click> & co";
        let events = (0..3).map(|i| {
            let mut e = testing::created_page(&format!("{hostile} {i}"), 100 + i);
            e.actor.as_mut().unwrap().display_name = Some(hostile.into());
            e.content.as_mut().unwrap().space_name = Some(hostile.into());
            e
        });
        let actions = run(testing::digest(events), &[]);
        let (m, blocks) = &posts(&actions)[0];
        // Every text Slack reads as mrkdwn (headers are plain_text, shown
        // as written).
        fn mrkdwn(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    if map.get("type").and_then(Value::as_str) == Some("mrkdwn") {
                        out.push(map["text"].as_str().unwrap().into());
                    }
                    map.values().for_each(|v| mrkdwn(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| mrkdwn(v, out)),
                _ => {}
            }
        }
        let mut texts = vec![m.text.clone()];
        mrkdwn(blocks, &mut texts);
        assert!(texts.len() >= 3, "{texts:?}");
        for t in texts {
            for seq in ["<!channel>", "<@U0ADMIN>", "<https://evil|click>"] {
                assert!(!t.contains(seq), "{seq} in {t}");
            }
        }
    }
}
