//! The smallest useful Pagehook plugin: announce new pages and blog posts in
//! a Slack channel.
//!
//! It is the example the README and `docs/plugin-authors.md` walk through:
//! read a required setting, ignore what it does not care about, return one
//! action. Its logic is a plain Rust function, so `cargo test -p
//! hello-plugin` tests it natively; `make plugins` builds the same code as a
//! component that `pagehook plugin run` runs in the sandbox.

use pagehook_guest::{Action, Event, EventKind, Plugin, Settings, SlackMessage, log};

/// Posts `<greeting>: <actor> created "<title>" in <space>: <url>`.
///
/// Slack reads a message's text as mrkdwn, where `<!channel>` in a title
/// would ping everyone; `SlackMessage::new` escapes a plain string, so the
/// title is shown as written.
pub struct Hello;

impl Plugin for Hello {
    fn handle(event: Event, settings: Settings) -> Result<Vec<Action>, String> {
        let channel = settings.required("channel")?;
        let greeting = settings.string_or("greeting", "New page");
        if !matches!(event.kind, EventKind::PageCreated | EventKind::BlogCreated) {
            log::debug(format!("ignoring {}", event.name));
            return Ok(vec![]);
        }
        let Some(content) = event.content else {
            log::warn("created event without content; nothing to announce");
            return Ok(vec![]);
        };
        let actor = event.actor.as_ref().map_or("Someone", |p| p.name());
        let space = content.space_name.as_deref().unwrap_or(&content.space_key);
        let text = format!(
            "{greeting}: {actor} created \"{}\" in {space}: {}",
            content.title, content.url
        );
        log::info(format!("announcing {} in {channel}", content.id));
        Ok(vec![Action::PostSlack(
            SlackMessage::new(channel, text).with_thread_key(format!("page-{}", content.id)),
        )])
    }
}

pagehook_guest::export_plugin!(Hello);

#[cfg(test)]
mod tests {
    use super::*;
    use pagehook_guest::testing;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn announces_a_new_page_in_its_thread() {
        let actions = Hello::handle(
            testing::event(EventKind::PageCreated),
            settings(&[("channel", "#eng")]),
        )
        .unwrap();
        assert_eq!(
            actions,
            vec![Action::PostSlack(SlackMessage {
                channel: "#eng".into(),
                text: "New page: Ada Lovelace created \"Release notes\" in Engineering: \
                       https://wiki.example.com/pages/viewpage.action?pageId=123456"
                    .into(),
                blocks: None,
                thread_key: Some("page-123456".into()),
            })]
        );
    }

    #[test]
    fn titles_cannot_ping_the_channel() {
        let mut event = testing::event(EventKind::PageCreated);
        event.content.as_mut().unwrap().title = "<!channel> launch & <@U123>".into();
        let actions = Hello::handle(event, settings(&[("channel", "#eng")])).unwrap();
        let [Action::PostSlack(message)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        // SlackMessage::new escapes a string: Slack shows the title as written.
        assert!(
            message
                .text
                .contains("\"&lt;!channel&gt; launch &amp; &lt;@U123&gt;\""),
            "{}",
            message.text
        );
    }

    #[test]
    fn greeting_is_a_setting() {
        let actions = Hello::handle(
            testing::event(EventKind::BlogCreated),
            settings(&[("channel", "#news"), ("greeting", "Fresh post")]),
        )
        .unwrap();
        let [Action::PostSlack(message)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert!(message.text.starts_with("Fresh post: "), "{}", message.text);
    }

    #[test]
    fn updates_are_ignored() {
        let actions = Hello::handle(
            testing::event(EventKind::PageUpdated),
            settings(&[("channel", "#eng")]),
        )
        .unwrap();
        assert!(actions.is_empty());
    }

    #[test]
    fn missing_channel_is_an_error_naming_it() {
        let err = Hello::handle(testing::event(EventKind::PageCreated), settings(&[])).unwrap_err();
        assert!(err.contains("channel"), "{err}");
    }
}
