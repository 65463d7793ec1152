//! slack-poster: tells Slack what happened in Confluence, and answers Slack.
//!
//! Page events: one Block Kit message per event that passes the filters (see
//! `pagehook_guest::filters`) to the binding's channel: who did what to
//! which page in which space, the edit note and an excerpt when there are
//! some, and buttons to open the page and, for updates, to see the changes.
//! Every message about a page carries the thread key `page-<id>`, so updates
//! and comments land in the thread of the page's first message. Optionally
//! the same news goes as a direct message to a list of people (`dm-emails`)
//! and, personally, to the people the event concerns (`notify-creator`,
//! `notify-mentioned`, `notify-watchers`), as the host listed them: never
//! the actor, only people who may view the page.
//!
//! Digests (contract 0.3.0, see [`digest`]): a burst of events the host
//! held (600 pages imported, a page saved seven times) becomes a few
//! messages: who created how many pages, the first titles and a search for
//! the rest; "edited 7 times" in the page's thread; one direct message per
//! person concerned. A single event is told as it always was.
//!
//! Slack events (contract 0.2.0): a Confluence link posted in Slack gets a
//! preview (`unfurl`) of each page the poster may view, and
//! `/confluence search <words>` answers (`respond`, only to the user who
//! asked) with the best pages the host found for them.

use pagehook_guest::chat::UnfurlBuilder;
use pagehook_guest::filters::{self, Filters};
use pagehook_guest::slack::{self, Blocks, LinkButton, Mrkdwn};
mod digest;

use pagehook_guest::{
    Action, ChatEvent, Concern, Digest, Event, EventKind, LinkShared, Plugin, SettingError,
    Settings, SlackDirectMessage, SlackMessage, SlackResponse, SlackUnfurl, SlashCommand, log,
    mrkdwn, text,
};

/// Longest excerpt shown, in characters.
const EXCERPT_CHARS: usize = 500;
/// Most search results shown in an answer.
const MAX_RESULTS: usize = 5;
/// Most actions returned for one event: the host's default limit. Personal
/// notifications past it are left out (watchers first) and logged, so a
/// page with hundreds of watchers never fails the whole call.
const MAX_ACTIONS: usize = 50;
/// The settings that switch on personal notifications, and for whom.
const NOTIFY: [(&str, Concern); 3] = [
    ("notify-creator", Concern::Creator),
    ("notify-mentioned", Concern::Mentioned),
    ("notify-watchers", Concern::Watcher),
];

/// The plugin.
pub struct SlackPoster;

impl Plugin for SlackPoster {
    fn handle(event: Event, settings: Settings) -> Result<Vec<Action>, String> {
        match &event.chat {
            Some(ChatEvent::LinkShared(shared)) => unfurl(shared, &settings),
            Some(ChatEvent::SlashCommand(command)) => Ok(vec![Action::Respond(answer(command))]),
            // Teams bot events are teams-poster's.
            Some(ChatEvent::TeamsMessage(_) | ChatEvent::TeamsCardAction(_)) => Ok(Vec::new()),
            None => page_event(&event, &settings),
        }
    }

    fn handle_digest(digest: Digest, settings: Settings) -> Result<Vec<Action>, String> {
        digest::handle(&digest, &settings)
    }
}

/// A Confluence event: the channel post, `dm-emails` and personal notifications.
fn page_event(event: &Event, settings: &Settings) -> Result<Vec<Action>, String> {
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
    let mut actions = Vec::new();
    match filters.skip_reason(event) {
        Some(reason) => log::info(format!("skipped {}: {reason}", event.id)),
        None => {
            let message = Message::of(event, &[]);
            if let Some(channel) = channel {
                actions.push(Action::PostSlack(
                    SlackMessage::new(channel, &message.text)
                        .with_blocks(message.blocks.clone())
                        .with_thread_key(message.thread_key.clone()),
                ));
            }
            for email in &dm_emails {
                if event.actor.as_ref().and_then(|a| a.email.as_deref()) == Some(email.as_str()) {
                    continue; // nobody needs to be told what they just did
                }
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
    if let Some(reason) = filters.personal_skip_reason(event) {
        log::info(format!(
            "no personal notifications for {}: {reason}",
            event.id
        ));
        return Ok(actions);
    }
    let already: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::DmSlack(d) => Some(d.email.trim().to_lowercase()),
            _ => None,
        })
        .collect();
    let mut recipients = event.recipients(&wanted);
    recipients.retain(|r| !already.contains(&r.email.to_lowercase()));
    // Mentions first, then the creator, then watchers: what is cut at the
    // limit is the least personal.
    recipients.sort_by_key(|r| {
        [Concern::Mentioned, Concern::Creator, Concern::Watcher]
            .iter()
            .position(|c| r.concerns.contains(c))
    });
    let room = MAX_ACTIONS.saturating_sub(actions.len());
    if recipients.len() > room {
        log::warn(format!(
            "{}: {} of {} people not notified personally (at most {MAX_ACTIONS} actions per event)",
            event.id,
            recipients.len() - room,
            recipients.len()
        ));
        recipients.truncate(room);
    }
    for recipient in recipients {
        let message = Message::of(event, &recipient.concerns);
        actions.push(Action::DmSlack(
            SlackDirectMessage::new(recipient.email, &message.text).with_blocks(message.blocks),
        ));
    }
    Ok(actions)
}

/// Previews of the shared links' pages: only links whose page the host
/// read (it leaves out pages the poster may not view), and, under
/// `skip-restricted` (default), not pages with view restrictions, since
/// everyone in the channel sees a preview.
fn unfurl(shared: &LinkShared, settings: &Settings) -> Result<Vec<Action>, String> {
    let skip_restricted = settings.bool_or("skip-restricted", true)?;
    let mut previews: UnfurlBuilder<'_> = SlackUnfurl::builder(shared);
    for link in &shared.links {
        match &link.page {
            None => log::debug("a shared link is not a page the poster may view: no preview"),
            Some(page) if page.restricted && skip_restricted => log::info(format!(
                "no preview of page {}: it has view restrictions, and people in the channel may not be allowed to see it (skip-restricted)",
                page.id
            )),
            Some(page) => previews = previews.page(&link.url, &slack::page_preview(page)),
        }
    }
    Ok(previews.into_action().into_iter().collect())
}

/// The answer to `/confluence ...`, only for the user who asked.
fn answer(command: &SlashCommand) -> SlackResponse {
    let (word, words) = command.subcommand();
    match word.as_str() {
        "search" if words.is_empty() => usage(command, Some("Say what to search for.")),
        "search" if !command.user.is_linked() => SlackResponse::ephemeral(
            command,
            mrkdwn!(
                "I can't search Confluence for you yet: I don't know which Confluence account is \
                 yours, so I can't tell which pages you may see. Type `{} link` to link your \
                 Slack and Confluence accounts (you sign in to Confluence once), then try again.",
                command.command.as_str()
            ),
        ),
        "search" if command.results.is_empty() => SlackResponse::ephemeral(
            command,
            mrkdwn!("Nothing found in Confluence for “{}”.", words),
        ),
        "search" => search_results(command, words),
        "" | "help" => usage(command, None),
        _ => usage(
            command,
            Some(&format!("I don't know “{}”.", text::truncate(&word, 40))),
        ),
    }
}

fn search_results(command: &SlashCommand, words: &str) -> SlackResponse {
    let shown: Vec<_> = command.results.iter().take(MAX_RESULTS).collect();
    let count = if shown.len() == 1 {
        "1 page".to_owned()
    } else {
        format!("{} pages", shown.len())
    };
    let mut blocks = Blocks::new();
    blocks.push(slack::section(mrkdwn!(
        "*Confluence: {} for “{}”*",
        count.as_str(),
        words
    )));
    for page in &shown {
        blocks.push(slack::page_result(page));
    }
    if command.results.len() > shown.len() {
        blocks.push(slack::context([
            "The best matches; more words narrow the search.",
        ]));
    }
    let titles: Vec<&str> = shown.iter().map(|p| p.title.as_str()).collect();
    let fallback = format!("{count} for “{words}”: {}", titles.join(", "));
    SlackResponse::ephemeral(command, text::truncate(&fallback, 3000)).with_blocks(&blocks)
}

/// How to use the command, after `problem` when there is one.
fn usage(command: &SlashCommand, problem: Option<&str>) -> SlackResponse {
    let mut text = Mrkdwn::new();
    if let Some(problem) = problem {
        text.push(problem);
        text.push(" ");
    }
    text.push(mrkdwn!(
        "Usage: `{} search &lt;words&gt;` finds the Confluence pages you may view that match \
         your words (only you see the answer). Paste a link to a Confluence page in a channel \
         and it gets a preview. `{} link` links your Slack and Confluence accounts; `{} unlink` \
         undoes it.",
        command.command.as_str(),
        command.command.as_str(),
        command.command.as_str()
    ));
    SlackResponse::ephemeral(command, text)
}

/// Why a person gets a personal notification, as the message says it.
fn why(concern: Concern) -> &'static str {
    match concern {
        Concern::Mentioned => "You are mentioned",
        Concern::Creator => "You created it",
        Concern::Watcher => "You watch it",
    }
}

/// One event's message: fallback text, blocks and thread.
struct Message {
    /// The fallback: Slack reads it as mrkdwn too.
    text: Mrkdwn,
    blocks: String,
    thread_key: String,
}

impl Message {
    /// The message about `event`; for a personal notification, `concerns`
    /// (why this person gets it) lead the fallback and the blocks. The
    /// channel's message (`&[]`) is unchanged since contract 0.1.0.
    fn of(event: &Event, concerns: &[Concern]) -> Message {
        let content = event
            .content
            .as_ref()
            .expect("filters skip events without content");
        let actor = filters::actor_name(event);
        let title = filters::display_title(event);
        let space = filters::space_name(content);
        let what = filters::what_happened(event.kind, "the");
        // Everything from Confluence is content: the SDK escapes strings on
        // their way into mrkdwn (the fallback text included), so a title
        // `<!channel>` pings nobody. Markup goes through `mrkdwn!`.
        // An event that could not be enriched may not know its space.
        // The URL only when it is one a reader may follow: a `javascript:`
        // content URL appears nowhere in the message (the SDK's link and
        // button builders leave it out of the blocks).
        let url = text::web_url(&content.url)
            .map(|u| format!(": {u}"))
            .unwrap_or_default();
        let mut text = Mrkdwn::text(&if space.is_empty() {
            format!("{actor} {what} \"{title}\"{url}")
        } else {
            format!("{actor} {what} \"{title}\" in {space}{url}")
        });

        let mut blocks = Blocks::new();
        if let Some(first) = concerns.first() {
            text = mrkdwn!("{}: {}", why(*first), text);
            let reasons: Vec<&str> = concerns.iter().map(|c| why(*c)).collect();
            blocks.push(slack::context([mrkdwn!(
                ":bell: {} (a personal notification)",
                reasons.join(" · ")
            )]));
        }
        blocks.push(slack::header(title)); // plain_text: shown as written
        let in_space = if space.is_empty() {
            Mrkdwn::new()
        } else {
            mrkdwn!(" in *{}*", space)
        };
        blocks.push(slack::section(mrkdwn!(
            "{} {} {}{}",
            actor,
            what,
            Mrkdwn::link(&content.url, title),
            in_space
        )));
        if let Some(note) = content
            .version_message
            .as_deref()
            .filter(|m| !m.trim().is_empty())
        {
            blocks.push(slack::context([mrkdwn!("_“{}”_", note.trim())]));
        }
        if let Some(excerpt) = content.excerpt.as_deref().filter(|e| !e.trim().is_empty()) {
            let quoted = Mrkdwn::text(&text::truncate(excerpt.trim(), EXCERPT_CHARS));
            blocks.push(slack::section(Mrkdwn::trusted(format!(
                ">{}",
                quoted.as_str().replace('\n', "\n>")
            ))));
        }
        let mut facts = vec![if content.space_key.is_empty() {
            mrkdwn!("version {}", content.version)
        } else {
            mrkdwn!("{} · version {}", &content.space_key, content.version)
        }];
        if !content.labels.is_empty() {
            facts.push(mrkdwn!("labels: {}", content.labels.join(", ")));
        }
        if !event.enriched {
            facts.push("details unavailable: Pagehook could not read this content".into());
        }
        blocks.push(slack::context(facts));
        let mut buttons = vec![LinkButton::new("Open page", content.url.clone()).primary()];
        if matches!(event.kind, EventKind::PageUpdated | EventKind::BlogUpdated)
            && let Some(diff) = filters::diff_url(event)
        {
            buttons.push(LinkButton::new("View changes", diff));
        }
        blocks.push(slack::actions(buttons));
        Message {
            text,
            blocks: blocks.to_json(),
            thread_key: format!("page-{}", filters::page_id(event).unwrap_or(content.id)),
        }
    }
}

pagehook_guest::export_plugin!(SlackPoster);

#[cfg(test)]
mod tests {
    use super::*;
    use pagehook_guest::testing;
    use serde_json::Value;

    fn run(event: Event, pairs: &[(&str, &str)]) -> Vec<Action> {
        let mut all = vec![("channel", "#eng")];
        all.extend_from_slice(pairs);
        SlackPoster::handle(event, Settings::from_pairs(all)).unwrap()
    }

    fn post(actions: &[Action]) -> (&SlackMessage, Value) {
        let Action::PostSlack(m) = &actions[0] else {
            panic!("{actions:?}")
        };
        let blocks = serde_json::from_str(m.blocks.as_deref().unwrap()).unwrap();
        (m, blocks)
    }

    #[test]
    fn a_new_page_gets_header_link_context_and_open_button() {
        let actions = run(testing::event(EventKind::PageCreated), &[]);
        assert_eq!(actions.len(), 1);
        let (m, blocks) = post(&actions);
        assert_eq!(m.channel, "#eng");
        assert_eq!(m.thread_key.as_deref(), Some("page-123456"));
        assert_eq!(
            m.text,
            "Ada Lovelace created the page \"Release notes\" in Engineering: https://wiki.example.com/pages/viewpage.action?pageId=123456"
        );
        assert_eq!(blocks[0]["type"], "header");
        assert!(blocks[1]["text"]["text"].as_str().unwrap().contains(
            "<https://wiki.example.com/pages/viewpage.action?pageId=123456|Release notes>"
        ));
        let buttons = blocks.as_array().unwrap().last().unwrap()["elements"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(buttons.len(), 1, "no View changes on a first version");
    }

    #[test]
    fn a_content_url_that_is_not_http_reaches_no_button_link_or_text() {
        for url in [
            "javascript:alert(document.cookie)//x/pages/viewpage.action?pageId=123456",
            " JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
        ] {
            for kind in [EventKind::PageCreated, EventKind::PageUpdated] {
                let mut e = testing::event(kind);
                e.content.as_mut().unwrap().url = url.into();
                let actions = run(e, &[("dm-emails", "boss@example.com")]);
                assert_eq!(actions.len(), 2, "{actions:?}");
                let (m, blocks) = post(&actions);
                let all = format!("{} {blocks} {actions:?}", m.text).to_ascii_lowercase();
                for bad in ["javascript", "data:text"] {
                    assert!(!all.contains(bad), "{url}: {all}");
                }
                // The message is still there, without a way to open the page.
                assert_eq!(blocks[0]["type"], "header");
                assert!(!blocks.to_string().contains("\"button\""), "{blocks}");
                assert!(m.text.ends_with("in Engineering"), "{}", m.text);
            }
        }
    }

    #[test]
    fn an_update_has_a_view_changes_button_and_the_edit_note() {
        let mut e = testing::event(EventKind::PageUpdated);
        e.content.as_mut().unwrap().version_message = Some("Fixed the <rollback> steps".into());
        let (_, blocks) = post(&run(e, &[]));
        let text = blocks.to_string();
        assert!(text.contains("Fixed the &lt;rollback&gt; steps"), "{text}");
        assert!(text.contains("View changes"));
        assert!(text.contains("selectedPageVersions=1&selectedPageVersions=2"));
    }

    #[test]
    fn comments_thread_under_their_page() {
        let actions = run(
            testing::event(EventKind::CommentCreated),
            &[("events", "comment-created")],
        );
        let (m, _) = post(&actions);
        assert_eq!(m.thread_key.as_deref(), Some("page-123456"));
        assert!(
            m.text
                .starts_with("Ada Lovelace commented on the page \"Engineering Home\""),
            "{}",
            m.text
        );
    }

    #[test]
    fn long_titles_and_excerpts_stay_within_block_kit_limits() {
        let mut e = testing::event(EventKind::PageCreated);
        let c = e.content.as_mut().unwrap();
        c.title = "Ü".repeat(400);
        c.excerpt = Some("x".repeat(10_000));
        let (_, blocks) = post(&run(e, &[]));
        assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
        for b in blocks.as_array().unwrap() {
            if b["type"] == "section" {
                assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 3000);
            }
        }
    }

    #[test]
    fn filtered_events_produce_nothing_and_dms_skip_the_actor() {
        let mut minor = testing::event(EventKind::PageUpdated);
        minor.content.as_mut().unwrap().minor_edit = true;
        assert!(run(minor, &[]).is_empty());
        let actions = run(
            testing::event(EventKind::PageCreated),
            &[("dm-emails", "ada@example.com, grace@example.com")],
        );
        assert_eq!(actions.len(), 2);
        assert!(matches!(&actions[1], Action::DmSlack(d) if d.email == "grace@example.com"));
    }

    const HOSTILE: &str = "<!channel> <!here> <@U0ADMIN> <https://evil|click> & co";

    /// An event whose every piece of Confluence text is hostile.
    fn hostile(kind: EventKind) -> Event {
        let mut e = testing::event(kind);
        e.actor.as_mut().unwrap().display_name = Some(format!("Ada {HOSTILE}"));
        let c = e.content.as_mut().unwrap();
        c.title = format!("Title {HOSTILE}");
        c.space_name = Some(format!("Space {HOSTILE}"));
        c.space_key = "ENG<&>".into();
        c.excerpt = Some(format!("Excerpt {HOSTILE}\nline two {HOSTILE}"));
        c.version_message = Some(format!("Note {HOSTILE}"));
        c.labels = vec![format!("label{HOSTILE}"), "<@U1>".into()];
        for a in &mut c.ancestors {
            a.title = format!("Ancestor {HOSTILE}");
        }
        e
    }

    /// Every text Slack reads as mrkdwn in `blocks`, and every plain_text.
    fn texts(blocks: &Value, mrkdwn: &mut Vec<String>, plain: &mut Vec<String>) {
        match blocks {
            Value::Object(map) => {
                match map.get("type").and_then(Value::as_str) {
                    Some("mrkdwn") => mrkdwn.push(map["text"].as_str().unwrap().into()),
                    Some("plain_text") => plain.push(map["text"].as_str().unwrap().into()),
                    _ => {}
                }
                map.values().for_each(|v| texts(v, mrkdwn, plain));
            }
            Value::Array(items) => items.iter().for_each(|v| texts(v, mrkdwn, plain)),
            _ => {}
        }
    }

    /// `<` only where the plugin wrote a link to the page.
    fn assert_no_control_sequences(mrkdwn: &str) {
        let without_links = mrkdwn.replace(
            "<https://wiki.example.com/pages/viewpage.action?pageId=123456|",
            "",
        );
        assert!(!without_links.contains('<'), "{mrkdwn}");
        for seq in [
            "<!channel>",
            "<!here>",
            "<@U0ADMIN>",
            "<https://evil|click>",
            "<@U1>",
        ] {
            assert!(!mrkdwn.contains(seq), "{seq} in {mrkdwn}");
        }
    }

    #[test]
    fn confluence_text_cannot_mention_or_link_in_any_mrkdwn() {
        for (kind, events) in [
            (EventKind::PageUpdated, "page-updated"),
            (EventKind::CommentCreated, "comment-created"),
        ] {
            let actions = run(
                hostile(kind),
                &[("events", events), ("dm-emails", "grace@example.com")],
            );
            assert_eq!(actions.len(), 2);
            for action in &actions {
                let (text, blocks) = match action {
                    Action::PostSlack(m) => (&m.text, &m.blocks),
                    Action::DmSlack(d) => (&d.text, &d.blocks),
                    other => panic!("{other:?}"),
                };
                assert_no_control_sequences(text);
                assert!(
                    text.contains("&lt;!channel&gt; &lt;!here&gt; &lt;@U0ADMIN&gt;"),
                    "{text}"
                );
                let blocks: Value = serde_json::from_str(blocks.as_deref().unwrap()).unwrap();
                let (mut mrkdwn, mut plain) = (Vec::new(), Vec::new());
                texts(&blocks, &mut mrkdwn, &mut plain);
                assert!(mrkdwn.len() >= 4, "{mrkdwn:?}");
                mrkdwn.iter().for_each(|t| assert_no_control_sequences(t));
                // The header is plain_text: Slack shows it literally.
                let title = if kind == EventKind::CommentCreated {
                    "Ancestor"
                } else {
                    "Title"
                };
                assert_eq!(plain[0], format!("{title} {HOSTILE}"));
                let all = mrkdwn.join("\n");
                for piece in [
                    "Ada",
                    "Space",
                    "Note",
                    "Excerpt",
                    "line two",
                    "label",
                    "ENG&lt;&amp;&gt;",
                    title,
                ] {
                    assert!(all.contains(piece), "{piece} missing from {all}");
                }
            }
        }
    }

    #[test]
    fn missing_channel_is_an_error() {
        let err = SlackPoster::handle(testing::event(EventKind::PageCreated), Settings::default())
            .unwrap_err();
        assert_eq!(err, "setting `channel` is required");
    }

    // --- contract 0.2.0: personal notifications -------------------------

    use pagehook_guest::testing::concerned;

    fn dms(actions: &[Action]) -> Vec<&SlackDirectMessage> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::DmSlack(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    fn with_people(kind: EventKind) -> Event {
        let mut e = testing::event(kind);
        e.people = vec![
            concerned("grace@example.com", &[Concern::Watcher]),
            concerned("linus@example.com", &[Concern::Mentioned, Concern::Watcher]),
            concerned("LINUS@example.com", &[Concern::Creator]),
            concerned("barbara@example.com", &[Concern::Creator]),
        ];
        e
    }

    #[test]
    fn people_are_not_notified_unless_asked() {
        let actions = run(with_people(EventKind::PageUpdated), &[]);
        assert_eq!(actions.len(), 1);
        assert!(matches!(actions[0], Action::PostSlack(_)));
    }

    #[test]
    fn each_concerned_person_gets_one_dm_with_the_reason() {
        let actions = run(
            with_people(EventKind::PageUpdated),
            &[("notify-mentioned", "true"), ("notify-watchers", "true")],
        );
        assert!(matches!(actions[0], Action::PostSlack(_)));
        let sent = dms(&actions);
        let emails: Vec<_> = sent.iter().map(|d| d.email.as_str()).collect();
        // Mentions first; linus once though listed twice.
        assert_eq!(emails, ["linus@example.com", "grace@example.com"]);
        assert!(
            sent[0]
                .text
                .starts_with("You are mentioned: Ada Lovelace updated the page")
        );
        assert!(sent[1].text.starts_with("You watch it: "));
        let blocks: Value = serde_json::from_str(sent[0].blocks.as_deref().unwrap()).unwrap();
        assert_eq!(blocks[0]["type"], "context");
        assert!(
            blocks[0]
                .to_string()
                .contains("You are mentioned · You watch it"),
            "{blocks}"
        );
        assert_eq!(blocks[1]["type"], "header");

        let actions = run(
            with_people(EventKind::PageUpdated),
            &[("notify-creator", "yes")],
        );
        let emails: Vec<_> = dms(&actions).iter().map(|d| d.email.clone()).collect();
        assert_eq!(emails, ["LINUS@example.com", "barbara@example.com"]);
    }

    #[test]
    fn the_actor_and_dm_emails_are_not_told_twice() {
        let mut e = with_people(EventKind::PageCreated);
        let mut actor = concerned("ada@example.com", &[Concern::Creator]);
        actor.person.key = "another-key".into();
        e.people.push(actor);
        let mut actor = concerned("ada.other@example.com", &[Concern::Creator]);
        actor.person.key = testing::person().key;
        e.people.push(actor);
        let actions = run(
            e,
            &[
                ("notify-creator", "true"),
                ("dm-emails", "barbara@example.com"),
            ],
        );
        let emails: Vec<_> = dms(&actions).iter().map(|d| d.email.clone()).collect();
        assert_eq!(emails, ["barbara@example.com", "LINUS@example.com"]);
    }

    #[test]
    fn personal_notifications_follow_the_skip_rules_but_restrictions() {
        let notify = [("notify-watchers", "true")];
        let mut minor = with_people(EventKind::PageUpdated);
        minor.content.as_mut().unwrap().minor_edit = true;
        assert!(run(minor, &notify).is_empty());
        let mut own = with_people(EventKind::PageUpdated);
        own.by_pagehook = true;
        assert!(run(own, &notify).is_empty());
        let comment = with_people(EventKind::CommentCreated);
        assert!(run(comment, &notify).is_empty(), "not in `events`");
        // Restricted: no channel post, but the host listed only people who
        // may view the page.
        let mut restricted = with_people(EventKind::PageUpdated);
        restricted.content.as_mut().unwrap().restricted = true;
        let actions = run(restricted, &notify);
        assert_eq!(dms(&actions).len(), 2);
        assert_eq!(actions.len(), 2);
    }

    #[test]
    fn without_a_channel_only_people_are_notified() {
        let e = with_people(EventKind::PageUpdated);
        let actions = SlackPoster::handle(
            e.clone(),
            Settings::from_pairs([("notify-mentioned", "true")]),
        )
        .unwrap();
        assert_eq!(actions.len(), 1);
        assert!(matches!(&actions[0], Action::DmSlack(d) if d.email == "linus@example.com"));
        let err =
            SlackPoster::handle(e, Settings::from_pairs([("notify-mentioned", "no")])).unwrap_err();
        assert_eq!(err, "setting `channel` is required");
        let err = SlackPoster::handle(
            testing::event(EventKind::PageCreated),
            Settings::from_pairs([("notify-watchers", "maybe")]),
        )
        .unwrap_err();
        assert!(err.contains("`notify-watchers`"), "{err}");
    }

    #[test]
    fn many_watchers_stay_within_the_action_limit() {
        let mut e = testing::event(EventKind::PageUpdated);
        e.people = (0..200)
            .map(|i| concerned(&format!("w{i}@example.com"), &[Concern::Watcher]))
            .collect();
        e.people
            .push(concerned("mentioned@example.com", &[Concern::Mentioned]));
        let actions = run(
            e,
            &[("notify-watchers", "true"), ("notify-mentioned", "true")],
        );
        assert_eq!(actions.len(), MAX_ACTIONS);
        assert_eq!(dms(&actions)[0].email, "mentioned@example.com");
    }

    // --- contract 0.2.0: Slack ------------------------------------------

    fn chat(event: Event, pairs: &[(&str, &str)]) -> Vec<Action> {
        SlackPoster::handle(event, Settings::from_pairs(pairs.iter().copied())).unwrap()
    }

    fn only_link(event: &mut Event) -> &mut pagehook_guest::SharedLink {
        let Some(ChatEvent::LinkShared(shared)) = &mut event.chat else {
            unreachable!()
        };
        &mut shared.links[0]
    }

    #[test]
    fn a_shared_page_link_is_unfurled_with_its_preview() {
        let mut e = testing::link_shared();
        let page = only_link(&mut e).page.as_mut().unwrap();
        page.title = format!("Title {HOSTILE}");
        page.excerpt = Some(format!("Excerpt {HOSTILE}"));
        let url = page.url.clone();
        let actions = chat(e, &[]);
        let [Action::Unfurl(u)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(
            (u.channel.as_str(), u.message_ts.as_str()),
            ("C0ENG", "1767225600.000100")
        );
        let unfurls: Value = serde_json::from_str(&u.unfurls).unwrap();
        let blocks = &unfurls[&url]["blocks"];
        let (mut mrkdwn, mut plain) = (Vec::new(), Vec::new());
        texts(blocks, &mut mrkdwn, &mut plain);
        let all = mrkdwn.join("\n");
        assert!(all.contains("Title &lt;!channel&gt;") && all.contains("Excerpt &lt;!channel&gt;"));
        for t in &mrkdwn {
            let t = t.replace("<!date^1767225600^on {date_short}|on Jan 1, 2026>", "");
            assert_no_control_sequences(&t);
        }
        assert!(plain.contains(&"Open in Confluence".to_owned()));
    }

    #[test]
    fn links_without_a_viewable_page_or_restricted_ones_get_no_preview() {
        let mut e = testing::link_shared();
        only_link(&mut e).page = None;
        assert!(chat(e, &[]).is_empty());
        let mut e = testing::link_shared();
        only_link(&mut e).page.as_mut().unwrap().restricted = true;
        assert!(chat(e.clone(), &[]).is_empty());
        let actions = chat(e, &[("skip-restricted", "false")]);
        assert!(
            matches!(actions.as_slice(), [Action::Unfurl(u)] if u.unfurls.contains(":lock: restricted"))
        );
    }

    fn respond(text: &str, edit: impl FnOnce(&mut SlashCommand)) -> SlackResponse {
        let mut e = testing::slash_command(text);
        let Some(ChatEvent::SlashCommand(c)) = &mut e.chat else {
            unreachable!()
        };
        edit(c);
        let actions = chat(e, &[]);
        let [Action::Respond(r)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert!(!r.in_channel, "answers are only for the user who asked");
        assert_eq!(
            r.response_url,
            "https://hooks.slack.com/commands/T0ENG/1/abc"
        );
        r.clone()
    }

    #[test]
    fn search_answers_with_at_most_five_results() {
        let r = respond("search release <notes>", |c| {
            let page = c.results[0].clone();
            c.results = (0..8)
                .map(|i| {
                    let mut p = page.clone();
                    p.id = i;
                    p.title = format!("Page {i} {HOSTILE}");
                    p
                })
                .collect();
        });
        assert!(
            r.text
                .starts_with("5 pages for “release &lt;notes&gt;”: Page 0"),
            "{}",
            r.text
        );
        assert_no_control_sequences(&r.text);
        let blocks: Value = serde_json::from_str(r.blocks.as_deref().unwrap()).unwrap();
        let blocks = blocks.as_array().unwrap();
        assert_eq!(blocks.len(), 1 + 5 + 1);
        assert!(
            blocks[0]
                .to_string()
                .contains("5 pages for “release &lt;notes&gt;”")
        );
        assert_eq!(blocks[1]["accessory"]["text"]["text"], "Open in Confluence");
        let one = respond("search release", |_| {});
        assert!(
            one.text.starts_with("1 page for “release”: Release notes"),
            "{}",
            one.text
        );
    }

    #[test]
    fn search_says_nothing_found_or_how_to_link_accounts() {
        let r = respond("search <!here>", |c| c.results.clear());
        assert_eq!(r.text, "Nothing found in Confluence for “&lt;!here&gt;”.");
        let r = respond("search launch", |c| {
            c.results.clear();
            c.user.confluence = None;
        });
        assert!(
            r.text
                .contains("Type `/confluence link` to link your Slack and Confluence accounts"),
            "{}",
            r.text
        );
        assert!(r.blocks.is_none());
    }

    #[test]
    fn anything_else_gets_usage_help() {
        for (text, lead) in [
            ("", "Usage: `/confluence search &lt;words&gt;`"),
            ("help", "Usage:"),
            ("search", "Say what to search for. Usage:"),
            ("<!channel> now", "I don't know “&lt;!channel&gt;”. Usage:"),
        ] {
            let r = respond(text, |_| {});
            assert!(r.text.starts_with(lead), "{text:?}: {}", r.text);
        }
    }
}
