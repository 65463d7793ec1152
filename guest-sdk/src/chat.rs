//! Answering chat: Slack (link previews with `unfurl`, slash commands with
//! `respond`) and Teams bots (`reply-teams`).
//!
//! Since contract 0.2.0 a plugin may receive two events from Slack, with
//! what the host read from Confluence for them already in the event
//! (`event.chat`), filtered to what the Slack user may view:
//!
//! - `link-shared`: someone posted links to Confluence. Each link's `page`
//!   is `Some` only when the host found the page and the user may view it;
//!   answer with one [`SlackUnfurl`] built by [`SlackUnfurl::builder`].
//! - `slash-command`: someone ran e.g. `/confluence search launch plan`;
//!   `results` holds what the host found. Answer with a [`SlackResponse`]
//!   ([`SlackResponse::ephemeral`] or [`SlackResponse::in_channel`]).
//!
//! Since contract 0.3.0, two from a Teams bot:
//!
//! - `teams-message`: someone wrote to the bot, e.g. `search launch plan`
//!   ([`TeamsMessageEvent::command`] splits it); `results` holds what the
//!   host found for them.
//! - `teams-card-action`: someone pressed a [`submit`](crate::teams::submit)
//!   button on one of the bot's cards; [`TeamsCardAction::data`] is the
//!   button's data, and `page` the page it names when they may view it.
//!
//!   Answer either with a [`TeamsReply`] ([`TeamsReply::to_message`],
//!   [`TeamsReply::to_card_action`]), in the conversation it came from.
//!
//! The host accepts an answer only to its own event (the same channel and
//! message, previews only of the links that event shared, the command's own
//! response URL, the Teams activity being handled): these builders take the
//! event, so they cannot get that wrong. Slack text goes through [`Mrkdwn`],
//! so Confluence content is escaped; a Teams reply's text is plain text,
//! and its card escapes content as every [`teams`](crate::teams) builder does.
//!
//! ```
//! use pagehook_guest::{slack, testing, Action, SlackResponse, SlackUnfurl, TeamsReply};
//!
//! let event = testing::link_shared();
//! let shared = event.link_shared().unwrap();
//! let mut unfurl = SlackUnfurl::builder(shared);
//! for link in &shared.links {
//!     if let Some(page) = &link.page {
//!         unfurl = unfurl.page(&link.url, &slack::page_preview(page));
//!     }
//! }
//! let action: Option<Action> = unfurl.into_action();
//! assert!(matches!(action, Some(Action::Unfurl(_))));
//!
//! let event = testing::slash_command("search launch");
//! let command = event.slash_command().unwrap();
//! let answer = SlackResponse::ephemeral(command, "Nothing found for <launch>");
//! assert_eq!(answer.text, "Nothing found for &lt;launch&gt;");
//! assert!(!answer.in_channel);
//!
//! let event = testing::teams_message("search launch");
//! let message = event.teams_message().unwrap();
//! assert_eq!(message.command(), ("search".to_owned(), "launch"));
//! let answer = TeamsReply::to_message(message, "Nothing found for <launch>");
//! assert_eq!(answer.activity_id, message.activity_id);
//! assert_eq!(answer.text, "Nothing found for <launch>"); // plain text
//! ```

use serde_json::{Map, Value};

use crate::slack::{Blocks, Mrkdwn};
use crate::teams::Card;
use crate::{
    Action, ChatEvent, ChatUser, Event, LinkShared, SlackResponse, SlackUnfurl, SlashCommand,
    TeamsCardAction, TeamsMessageEvent, TeamsReply, TeamsUser,
};

impl Event {
    /// The `link-shared` details, when this is one.
    pub fn link_shared(&self) -> Option<&LinkShared> {
        match &self.chat {
            Some(ChatEvent::LinkShared(shared)) => Some(shared),
            _ => None,
        }
    }

    /// The `slash-command` details, when this is one.
    pub fn slash_command(&self) -> Option<&SlashCommand> {
        match &self.chat {
            Some(ChatEvent::SlashCommand(command)) => Some(command),
            _ => None,
        }
    }

    /// The `teams-message` details, when this is one.
    pub fn teams_message(&self) -> Option<&TeamsMessageEvent> {
        match &self.chat {
            Some(ChatEvent::TeamsMessage(message)) => Some(message),
            _ => None,
        }
    }

    /// The `teams-card-action` details, when this is one.
    pub fn teams_card_action(&self) -> Option<&TeamsCardAction> {
        match &self.chat {
            Some(ChatEvent::TeamsCardAction(action)) => Some(action),
            _ => None,
        }
    }
}

/// The first word of `text`, lowercased, and the rest trimmed.
fn first_word(text: &str) -> (String, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word.to_lowercase(), rest.trim()),
        None => (text.to_lowercase(), ""),
    }
}

impl ChatUser {
    /// True when the host matched the Slack user to a Confluence user (by
    /// email). When false the host cannot tell what they may view, so a
    /// link carries no page and a search no results: tell them to link
    /// their accounts rather than "nothing found".
    pub fn is_linked(&self) -> bool {
        self.confluence.is_some()
    }
}

impl SlashCommand {
    /// The first word of `text`, lowercased, and the rest trimmed:
    /// `"Search  launch plan"` is `("search", "launch plan")`, `""` is
    /// `("", "")`.
    pub fn subcommand(&self) -> (String, &str) {
        first_word(&self.text)
    }
}

impl TeamsUser {
    /// True when the host matched the Teams user to a Confluence user (by
    /// email or user principal name). When false the host cannot tell what
    /// they may view, so a search has no results and a card action no
    /// page: tell them so rather than "nothing found".
    pub fn is_linked(&self) -> bool {
        self.confluence.is_some()
    }
}

impl TeamsMessageEvent {
    /// The first word of `text`, lowercased, and the rest trimmed, as
    /// [`SlashCommand::subcommand`]: `"Search  launch plan"` is
    /// `("search", "launch plan")`.
    pub fn command(&self) -> (String, &str) {
        first_word(&self.text)
    }
}

impl TeamsCardAction {
    /// The button's data (`value`) as a JSON object; empty when it is not
    /// one.
    pub fn data(&self) -> Map<String, Value> {
        match serde_json::from_str(&self.value) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// The string at `key` in the button's data, when there is one.
    pub fn data_str(&self, key: &str) -> Option<String> {
        self.data()
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

impl TeamsReply {
    /// An answer to `message`, in the conversation it came from. `text` is
    /// plain text (cut at [`MAX_BOT_TEXT_BYTES`](crate::teams::MAX_BOT_TEXT_BYTES)
    /// as for [`TeamsDirectMessage::new`](crate::TeamsDirectMessage::new)).
    /// The binding needs `--to teams-reply:<bot>`.
    pub fn to_message(message: &TeamsMessageEvent, text: impl AsRef<str>) -> Self {
        TeamsReply::answering(&message.activity_id, text.as_ref())
    }

    /// An answer to a button pressed on a bot's card, in the conversation
    /// it came from; `text` as in [`TeamsReply::to_message`].
    pub fn to_card_action(action: &TeamsCardAction, text: impl AsRef<str>) -> Self {
        TeamsReply::answering(&action.activity_id, text.as_ref())
    }

    fn answering(activity_id: &str, text: &str) -> Self {
        TeamsReply {
            activity_id: activity_id.to_owned(),
            text: crate::text::truncate_bytes(text, crate::teams::MAX_BOT_TEXT_BYTES),
            card: None,
            replace_card: false,
        }
    }

    /// Replace the bot's card whose button was pressed with this answer
    /// (its text and card) instead of answering below it: for a card that
    /// should now say what its button did, and not offer it again. Only for
    /// an answer to a card action ([`TeamsReply::to_card_action`]); the
    /// host refuses it for a message.
    pub fn replacing_card(mut self) -> Self {
        self.replace_card = true;
        self
    }

    /// Attach an Adaptive Card, fitted beside the text
    /// ([`Card::to_bot_json`]); it may carry [`submit`](crate::teams::submit)
    /// buttons.
    pub fn with_card(mut self, card: &Card) -> Self {
        self.card = Some(card.to_bot_json(&self.text));
        self
    }
}

impl SlackUnfurl {
    /// Start the previews for `event`'s links; add one per link with
    /// [`UnfurlBuilder::page`], then take the action with
    /// [`UnfurlBuilder::into_action`].
    pub fn builder(event: &LinkShared) -> UnfurlBuilder<'_> {
        UnfurlBuilder {
            event,
            previews: Vec::new(),
        }
    }
}

/// The previews of one `link-shared` event's links, written as
/// `chat.unfurl`'s `unfurls` object (`{"<url>": {"blocks": [...]}}`).
#[derive(Debug, Clone)]
pub struct UnfurlBuilder<'a> {
    event: &'a LinkShared,
    /// (url, blocks JSON), in the order added, each url once.
    previews: Vec<(String, String)>,
}

impl UnfurlBuilder<'_> {
    /// Preview `url` with `blocks`. `url` must be one of the event's links
    /// exactly as shared (`link.url`); any other URL is left out (the host
    /// would refuse the whole unfurl), as are empty blocks, and a URL added
    /// twice keeps its first preview.
    pub fn page(mut self, url: &str, blocks: &Blocks) -> Self {
        let shared = self.event.links.iter().any(|l| l.url == url);
        let known = self.previews.iter().any(|(u, _)| u == url);
        if shared && !known && !blocks.is_empty() {
            self.previews.push((url.to_owned(), blocks.to_json()));
        }
        self
    }

    /// How many links have a preview.
    pub fn len(&self) -> usize {
        self.previews.len()
    }

    /// True when no link has a preview (then send nothing).
    pub fn is_empty(&self) -> bool {
        self.previews.is_empty()
    }

    /// The unfurl, or `None` when no link has a preview: Slack (and the
    /// host) refuse an empty one.
    pub fn build(self) -> Option<SlackUnfurl> {
        if self.previews.is_empty() {
            return None;
        }
        let mut unfurls = String::from("{");
        for (i, (url, blocks)) in self.previews.iter().enumerate() {
            if i > 0 {
                unfurls.push(',');
            }
            unfurls.push_str(&serde_json::to_string(url).expect("a string serializes"));
            unfurls.push_str(":{\"blocks\":");
            unfurls.push_str(blocks);
            unfurls.push('}');
        }
        unfurls.push('}');
        Some(SlackUnfurl {
            channel: self.event.channel.clone(),
            message_ts: self.event.message_ts.clone(),
            unfurls,
        })
    }

    /// [`build`](Self::build) as an [`Action::Unfurl`].
    pub fn into_action(self) -> Option<Action> {
        self.build().map(Action::Unfurl)
    }
}

impl SlackResponse {
    /// An answer only the user who ran `command` sees. `text` is escaped
    /// as in [`SlackMessage::new`](crate::SlackMessage::new); pass a
    /// [`Mrkdwn`] for markup.
    pub fn ephemeral(command: &SlashCommand, text: impl Into<Mrkdwn>) -> Self {
        SlackResponse {
            response_url: command.response_url.clone(),
            text: text.into().into_string(),
            blocks: None,
            in_channel: false,
        }
    }

    /// An answer everyone in the command's channel sees.
    pub fn in_channel(command: &SlashCommand, text: impl Into<Mrkdwn>) -> Self {
        SlackResponse {
            in_channel: true,
            ..SlackResponse::ephemeral(command, text)
        }
    }

    /// Attach Block Kit blocks (a JSON array, e.g. `&blocks` for a
    /// [`Blocks`]), as for [`SlackMessage::with_blocks`](crate::SlackMessage::with_blocks).
    pub fn with_blocks(mut self, blocks: impl Into<String>) -> Self {
        self.blocks = Some(blocks.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SharedLink, slack, testing};
    use serde_json::Value;

    #[test]
    fn chat_details_are_reached_by_kind() {
        let e = testing::link_shared();
        assert!(e.link_shared().is_some() && e.slash_command().is_none());
        let e = testing::slash_command("search x");
        assert!(e.slash_command().is_some() && e.link_shared().is_none());
        assert!(
            testing::event(crate::EventKind::PageCreated)
                .link_shared()
                .is_none()
        );
        let e = testing::teams_message("search x");
        assert!(e.teams_message().is_some() && e.teams_card_action().is_none());
        assert!(e.slash_command().is_none());
        let e = testing::teams_card_action(r#"{"action":"share","page-id":123456}"#);
        assert!(e.teams_card_action().is_some() && e.teams_message().is_none());
    }

    #[test]
    fn teams_answers_go_to_their_own_activity_as_plain_text() {
        let e = testing::teams_message("  Search   launch <plan> ");
        let m = e.teams_message().unwrap();
        assert_eq!(m.command(), ("search".to_owned(), "launch <plan>"));
        assert!(m.user.is_linked());
        let card = crate::teams::Card::new().push(crate::teams::text_block("<at>x</at>"));
        let r = TeamsReply::to_message(m, "Found <at>x</at> & co").with_card(&card);
        assert_eq!(r.activity_id, m.activity_id);
        assert_eq!(r.text, "Found <at>x</at> & co");
        assert!(
            r.card
                .as_deref()
                .unwrap()
                .contains("&lt;at&gt;x&lt;/at&gt;")
        );

        let e = testing::teams_card_action(r#"{"action":"share","page-id":123456}"#);
        let a = e.teams_card_action().unwrap();
        assert_eq!(a.data_str("action").as_deref(), Some("share"));
        assert_eq!(a.data()["page-id"], 123_456);
        assert_eq!(a.data_str("page-id"), None, "a number, not a string");
        assert_eq!(
            TeamsReply::to_card_action(a, "ok").activity_id,
            a.activity_id
        );
        let mut broken = a.clone();
        broken.value = "not json".into();
        assert!(broken.data().is_empty());
    }

    #[test]
    fn a_bot_message_fits_text_and_card_in_one_activity() {
        use crate::teams::{self, Card};
        let long = "é\"".repeat(10_000);
        let card = Card::new()
            .push(teams::heading("Release notes"))
            .push(teams::text_block(&long))
            .action(teams::submit(
                "Share to channel",
                serde_json::json!({"action": "share"}),
            ));
        let dm = crate::TeamsDirectMessage::new("grace@example.com", &long).with_card(&card);
        assert!(dm.text.len() <= teams::MAX_BOT_TEXT_BYTES && dm.text.ends_with('…'));
        let card: Value = serde_json::from_str(dm.card.as_deref().unwrap()).unwrap();
        let size = teams::bot_message_size(&dm.text, Some(&card));
        assert!(size <= teams::MAX_MESSAGE_BYTES, "{size}");
        assert!(
            size > teams::MAX_MESSAGE_BYTES - 200,
            "cut only what was needed: {size}"
        );
        assert_eq!(card["actions"][0]["type"], "Action.Submit");
    }

    #[test]
    fn subcommand_splits_the_first_word() {
        let mut c = testing::slash_command("").slash_command().unwrap().clone();
        for (text, word, rest) in [
            ("Search  launch plan ", "search", "launch plan"),
            ("help", "help", ""),
            ("  ", "", ""),
            ("search\tq3", "search", "q3"),
        ] {
            c.text = text.into();
            assert_eq!(c.subcommand(), (word.to_owned(), rest), "{text:?}");
        }
    }

    #[test]
    fn unfurl_previews_only_the_events_own_links_once() {
        let mut event = testing::link_shared();
        let shared = event.link_shared().unwrap().clone();
        let url = shared.links[0].url.clone();
        let page = shared.links[0].page.clone().unwrap();
        let blocks = slack::page_preview(&page);
        let unfurl = SlackUnfurl::builder(&shared)
            .page("https://elsewhere.example.com/x", &blocks)
            .page(&url, &blocks)
            .page(&url, &Blocks::new())
            .page(&url, &slack::page_preview(&testing::page_summary()))
            .build()
            .unwrap();
        assert_eq!(unfurl.channel, shared.channel);
        assert_eq!(unfurl.message_ts, shared.message_ts);
        let map: Value = serde_json::from_str(&unfurl.unfurls).unwrap();
        let map = map.as_object().unwrap();
        assert_eq!(map.len(), 1);
        assert_eq!(map[&url]["blocks"], blocks.to_value());

        // A URL with quotes or backslashes stays one JSON key.
        let odd = "https://wiki.example.com/x?q=\"a\\b\"".to_owned();
        if let Some(ChatEvent::LinkShared(s)) = &mut event.chat {
            s.links.push(SharedLink {
                url: odd.clone(),
                page: None,
            });
        }
        let shared = event.link_shared().unwrap();
        let unfurl = SlackUnfurl::builder(shared)
            .page(&odd, &blocks)
            .build()
            .unwrap();
        let map: Value = serde_json::from_str(&unfurl.unfurls).unwrap();
        assert!(map.get(&odd).is_some(), "{map}");
        assert!(SlackUnfurl::builder(shared).into_action().is_none());
    }

    #[test]
    fn responses_answer_the_commands_own_url_and_escape_text() {
        let event = testing::slash_command("search <!here>");
        let command = event.slash_command().unwrap();
        let r = SlackResponse::ephemeral(command, format!("No pages for {}", command.text));
        assert_eq!(r.response_url, command.response_url);
        assert_eq!(r.text, "No pages for search &lt;!here&gt;");
        assert!(!r.in_channel && r.blocks.is_none());
        let r = SlackResponse::in_channel(command, crate::mrkdwn!("*{}*", "a & b"));
        assert!(r.in_channel && r.blocks.is_none());
        assert_eq!(r.text, "*a &amp; b*");
        let mut blocks = Blocks::new();
        blocks.push(slack::divider());
        let r = r.with_blocks(&blocks);
        assert_eq!(r.blocks.as_deref(), Some(r#"[{"type":"divider"}]"#));
    }
}
