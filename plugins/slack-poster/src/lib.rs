//! slack-poster: tells a Slack channel what happened in Confluence.
//!
//! One Block Kit message per event that passes the filters (see
//! `pagehook_guest::filters`): who did what to which page in which space,
//! the edit note and an excerpt when there are some, and buttons to open the
//! page and, for updates, to see the changes. Every message about a page
//! carries the thread key `page-<id>`, so updates and comments land in the
//! thread of the page's first message. Optionally the same news goes as a
//! direct message to a list of people.

use pagehook_guest::filters::{self, Filters};
use pagehook_guest::slack::{self, Blocks, LinkButton, Mrkdwn};
use pagehook_guest::{
    Action, Event, EventKind, Plugin, Settings, SlackDirectMessage, SlackMessage, log, mrkdwn, text,
};

/// Longest excerpt shown, in characters.
const EXCERPT_CHARS: usize = 500;

/// The plugin.
pub struct SlackPoster;

impl Plugin for SlackPoster {
    fn handle(event: Event, settings: Settings) -> Result<Vec<Action>, String> {
        let channel = settings.required("channel")?;
        let filters = Filters::from_settings(&settings)?;
        let dm_emails = settings.list("dm-emails");
        if let Some(reason) = filters.skip_reason(&event) {
            log::info(format!("skipped {}: {reason}", event.id));
            return Ok(vec![]);
        }
        let message = Message::of(&event);
        let mut actions = vec![Action::PostSlack(
            SlackMessage::new(channel, &message.text)
                .with_blocks(message.blocks.clone())
                .with_thread_key(message.thread_key.clone()),
        )];
        for email in dm_emails {
            if event.actor.as_ref().and_then(|a| a.email.as_deref()) == Some(email.as_str()) {
                continue; // nobody needs to be told what they just did
            }
            actions.push(Action::DmSlack(
                SlackDirectMessage::new(email, &message.text).with_blocks(message.blocks.clone()),
            ));
        }
        Ok(actions)
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
    fn of(event: &Event) -> Message {
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
        let text = Mrkdwn::text(&if space.is_empty() {
            format!("{actor} {what} \"{title}\": {}", content.url)
        } else {
            format!("{actor} {what} \"{title}\" in {space}: {}", content.url)
        });

        let mut blocks = Blocks::new();
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
}
