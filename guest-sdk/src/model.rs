//! Small conveniences on the generated contract types.
//!
//! The generated records are plain data with public fields; these helpers
//! only save plugin authors from repeating the same few lines (a person's
//! best name, a message with no blocks, an event kind's WIT name). They must
//! never add behaviour the contract does not have.

use crate::{
    Action, Concern, ConcernedPerson, Event, EventKind, NewComment, NewPage, Person,
    SlackDirectMessage, SlackMessage, TeamsDirectMessage, TeamsMessage,
};

impl Person {
    /// The best name to show for this person: display name, else username,
    /// else the user key (which is always present), so a message never says
    /// "someone" when Confluence told us who it was.
    pub fn name(&self) -> &str {
        [&self.display_name, &self.username]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .unwrap_or(&self.key)
    }
}

impl Concern {
    /// Every reason, in contract order.
    pub const ALL: [Concern; 3] = [Concern::Creator, Concern::Mentioned, Concern::Watcher];

    /// The reason's WIT name (`mentioned`).
    pub fn as_str(self) -> &'static str {
        match self {
            Concern::Creator => "creator",
            Concern::Mentioned => "mentioned",
            Concern::Watcher => "watcher",
        }
    }
}

impl ConcernedPerson {
    /// True when `concern` is one of the reasons this person is listed.
    pub fn is(&self, concern: Concern) -> bool {
        self.concerns.contains(&concern)
    }
}

/// Someone to notify personally about a page event: see [`Event::recipients`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient<'a> {
    /// Their email, trimmed: what `dm-slack` and `dm-teams` need.
    pub email: &'a str,
    /// Who they are.
    pub person: &'a Person,
    /// The reasons they are notified (those asked for that apply), in the
    /// order of [`Concern::ALL`]; never empty.
    pub concerns: Vec<Concern>,
}

impl Event {
    /// The people the event concerns for `concern` (e.g. everyone it
    /// mentions), as the host listed them: never the actor, only people who
    /// may view the content. Empty for events that are not about a page.
    pub fn people_concerned(&self, concern: Concern) -> impl Iterator<Item = &Person> {
        self.people
            .iter()
            .filter(move |p| p.is(concern))
            .map(|p| &p.person)
    }

    /// True when `person` is the one who did it: same user key, or same
    /// email (ignoring case). Nobody needs to be told what they just did.
    pub fn is_actor(&self, person: &Person) -> bool {
        let Some(actor) = &self.actor else {
            return false;
        };
        let same_key = !actor.key.is_empty() && actor.key == person.key;
        let same_email = match (&actor.email, &person.email) {
            (Some(a), Some(b)) => !a.trim().is_empty() && a.trim().eq_ignore_ascii_case(b.trim()),
            _ => false,
        };
        same_key || same_email
    }

    /// Whom to notify personally for any of the `wanted` reasons: each email
    /// once (ignoring case; the first listing wins, with every wanted reason
    /// of every listing under that email), people without an email left
    /// out, and the actor left out, checked here too (key and email) though
    /// the host already excludes them.
    ///
    /// ```
    /// use pagehook_guest::{Concern, EventKind, testing};
    ///
    /// let mut event = testing::event(EventKind::PageUpdated);
    /// event.people = vec![
    ///     testing::concerned("grace@example.com", &[Concern::Mentioned, Concern::Watcher]),
    ///     testing::concerned("linus@example.com", &[Concern::Watcher]),
    /// ];
    /// let to = event.recipients(&[Concern::Mentioned]);
    /// assert_eq!(to.len(), 1);
    /// assert_eq!(to[0].email, "grace@example.com");
    /// assert_eq!(event.people_concerned(Concern::Watcher).count(), 2);
    /// ```
    pub fn recipients(&self, wanted: &[Concern]) -> Vec<Recipient<'_>> {
        let mut out: Vec<Recipient<'_>> = Vec::new();
        for listed in &self.people {
            let concerns: Vec<Concern> = Concern::ALL
                .into_iter()
                .filter(|c| wanted.contains(c) && listed.is(*c))
                .collect();
            let Some(email) = listed.person.email.as_deref().map(str::trim) else {
                continue;
            };
            if concerns.is_empty() || email.is_empty() || self.is_actor(&listed.person) {
                continue;
            }
            match out.iter_mut().find(|r| r.email.eq_ignore_ascii_case(email)) {
                Some(known) => {
                    for c in concerns {
                        if !known.concerns.contains(&c) {
                            known.concerns.push(c);
                        }
                    }
                    known
                        .concerns
                        .sort_by_key(|c| Concern::ALL.iter().position(|x| x == c));
                }
                None => out.push(Recipient {
                    email,
                    person: &listed.person,
                    concerns,
                }),
            }
        }
        out
    }
}

impl EventKind {
    /// Every kind, in contract order; lets tests and tables cover them all.
    pub const ALL: [EventKind; 24] = [
        EventKind::PageCreated,
        EventKind::PageUpdated,
        EventKind::PageMoved,
        EventKind::PageTrashed,
        EventKind::PageRestored,
        EventKind::PageRemoved,
        EventKind::BlogCreated,
        EventKind::BlogUpdated,
        EventKind::BlogTrashed,
        EventKind::BlogRestored,
        EventKind::BlogRemoved,
        EventKind::CommentCreated,
        EventKind::CommentUpdated,
        EventKind::CommentRemoved,
        EventKind::LabelAdded,
        EventKind::LabelRemoved,
        EventKind::AttachmentCreated,
        EventKind::AttachmentUpdated,
        EventKind::AttachmentRemoved,
        EventKind::LinkShared,
        EventKind::SlashCommand,
        EventKind::TeamsMessage,
        EventKind::TeamsCardAction,
        EventKind::Other,
    ];

    /// The kind's WIT name (`page-created`), as written in `plugin.toml`'s
    /// `events` list, so a plugin can log or compare in the manifest's terms.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PageCreated => "page-created",
            EventKind::PageUpdated => "page-updated",
            EventKind::PageMoved => "page-moved",
            EventKind::PageTrashed => "page-trashed",
            EventKind::PageRestored => "page-restored",
            EventKind::PageRemoved => "page-removed",
            EventKind::BlogCreated => "blog-created",
            EventKind::BlogUpdated => "blog-updated",
            EventKind::BlogTrashed => "blog-trashed",
            EventKind::BlogRestored => "blog-restored",
            EventKind::BlogRemoved => "blog-removed",
            EventKind::CommentCreated => "comment-created",
            EventKind::CommentUpdated => "comment-updated",
            EventKind::CommentRemoved => "comment-removed",
            EventKind::LabelAdded => "label-added",
            EventKind::LabelRemoved => "label-removed",
            EventKind::AttachmentCreated => "attachment-created",
            EventKind::AttachmentUpdated => "attachment-updated",
            EventKind::AttachmentRemoved => "attachment-removed",
            EventKind::LinkShared => "link-shared",
            EventKind::SlashCommand => "slash-command",
            EventKind::TeamsMessage => "teams-message",
            EventKind::TeamsCardAction => "teams-card-action",
            EventKind::Other => "other",
        }
    }
}

impl Action {
    /// The action's WIT kind (`post-slack`), as written in `plugin.toml`'s
    /// `actions` list: a plugin may only return kinds it declares there.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::PostSlack(_) => "post-slack",
            Action::DmSlack(_) => "dm-slack",
            Action::PostTeams(_) => "post-teams",
            Action::CreatePage(_) => "create-page",
            Action::AddComment(_) => "add-comment",
            Action::Unfurl(_) => "unfurl",
            Action::Respond(_) => "respond",
            Action::DmTeams(_) => "dm-teams",
            Action::ReplyTeams(_) => "reply-teams",
        }
    }
}

impl SlackMessage {
    /// A message to `channel`, no blocks, no thread: the common case in one
    /// call. Add blocks or a thread with the builder methods.
    ///
    /// `text` is also the fallback Slack shows in notifications, and Slack
    /// reads it as mrkdwn: a string is escaped (a title `<!channel>` stays
    /// text and pings nobody); pass a [`Mrkdwn`](crate::slack::Mrkdwn) (e.g.
    /// from [`mrkdwn!`](crate::mrkdwn!)) for markup such as links.
    pub fn new(channel: impl Into<String>, text: impl Into<crate::slack::Mrkdwn>) -> Self {
        SlackMessage {
            channel: channel.into(),
            text: text.into().into_string(),
            blocks: None,
            thread_key: None,
        }
    }

    /// Attach Block Kit blocks (a JSON array, e.g. from
    /// [`slack::Blocks::to_json`](crate::slack::Blocks::to_json)).
    pub fn with_blocks(mut self, blocks: impl Into<String>) -> Self {
        self.blocks = Some(blocks.into());
        self
    }

    /// Put the message in the thread named `key` (the first message with a
    /// key opens the thread, later ones reply in it).
    pub fn with_thread_key(mut self, key: impl Into<String>) -> Self {
        self.thread_key = Some(key.into());
        self
    }
}

impl SlackDirectMessage {
    /// A direct message to the Slack user with this email; `text` is escaped
    /// as in [`SlackMessage::new`].
    pub fn new(email: impl Into<String>, text: impl Into<crate::slack::Mrkdwn>) -> Self {
        SlackDirectMessage {
            email: email.into(),
            text: text.into().into_string(),
            blocks: None,
        }
    }

    /// Attach Block Kit blocks (a JSON array).
    pub fn with_blocks(mut self, blocks: impl Into<String>) -> Self {
        self.blocks = Some(blocks.into());
        self
    }
}

impl TeamsMessage {
    /// A card for the Teams channel the admin named `channel`; `card` is the
    /// Adaptive Card JSON, e.g. from [`teams::Card::to_json`](crate::teams::Card::to_json).
    pub fn new(channel: impl Into<String>, card: impl Into<String>) -> Self {
        TeamsMessage {
            channel: channel.into(),
            card: card.into(),
        }
    }
}

impl TeamsDirectMessage {
    /// A personal message from a Teams bot to the person with this email
    /// (contract 0.3.0). `text` is plain text (the host sends it as such:
    /// nothing in it is markup, so it needs no escaping); it is the whole
    /// message without a card and the notification's preview with one. A
    /// text over [`MAX_BOT_TEXT_BYTES`](crate::teams::MAX_BOT_TEXT_BYTES)
    /// is cut, with "…". The binding needs `--to teams-dm:<bot>`.
    ///
    /// ```
    /// use pagehook_guest::teams::{self, Card};
    /// use pagehook_guest::{Action, TeamsDirectMessage};
    ///
    /// let card = Card::new().push(teams::heading("Release notes"));
    /// let dm = TeamsDirectMessage::new("grace@example.com", "Ada mentioned you in Release notes")
    ///     .with_card(&card);
    /// assert!(dm.card.is_some());
    /// assert_eq!(Action::DmTeams(dm).kind(), "dm-teams");
    /// ```
    pub fn new(email: impl Into<String>, text: impl AsRef<str>) -> Self {
        TeamsDirectMessage {
            email: email.into(),
            text: crate::text::truncate_bytes(text.as_ref(), crate::teams::MAX_BOT_TEXT_BYTES),
            card: None,
        }
    }

    /// Attach an Adaptive Card, fitted beside the text
    /// ([`Card::to_bot_json`](crate::teams::Card::to_bot_json)). It may
    /// carry [`submit`](crate::teams::submit) buttons: the bot receives them.
    pub fn with_card(mut self, card: &crate::teams::Card) -> Self {
        self.card = Some(card.to_bot_json(&self.text));
        self
    }
}

impl NewPage {
    /// A page titled `title` at the top of `space_key`, with a storage-format
    /// body (build it with [`storage`](crate::storage)), no labels, no once-key.
    pub fn new(
        space_key: impl Into<String>,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        NewPage {
            space_key: space_key.into(),
            parent_id: None,
            title: title.into(),
            body: body.into(),
            labels: Vec::new(),
            once_key: None,
        }
    }
}

impl NewComment {
    /// A comment on page or blog post `page_id` with a storage-format body.
    pub fn new(page_id: u64, body: impl Into<String>) -> Self {
        NewComment {
            page_id,
            body: body.into(),
            once_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_name_prefers_display_name_then_username_then_key() {
        let mut p = Person {
            key: "8a7f".into(),
            username: Some("ada".into()),
            display_name: Some("Ada Lovelace".into()),
            email: None,
        };
        assert_eq!(p.name(), "Ada Lovelace");
        p.display_name = Some("  ".into());
        assert_eq!(p.name(), "ada");
        p.username = None;
        assert_eq!(p.name(), "8a7f");
    }

    #[test]
    fn recipients_are_deduped_by_email_and_never_the_actor() {
        use crate::testing::{self, concerned};
        let mut e = testing::event(EventKind::PageUpdated);
        let mut actor_by_key = concerned("someone-else@example.com", &[Concern::Watcher]);
        actor_by_key.person.key = testing::person().key;
        let mut actor_by_email = concerned(" ADA@example.com ", &[Concern::Mentioned]);
        actor_by_email.person.key = "other-key".into();
        let mut no_email = concerned("x@example.com", &[Concern::Mentioned]);
        no_email.person.email = None;
        e.people = vec![
            concerned("grace@example.com", &[Concern::Watcher]),
            actor_by_key,
            actor_by_email,
            no_email,
            concerned("linus@example.com", &[Concern::Creator]),
            concerned(
                "Grace@Example.com ",
                &[Concern::Mentioned, Concern::Creator],
            ),
        ];
        let to = e.recipients(&[Concern::Mentioned, Concern::Watcher]);
        let emails: Vec<_> = to.iter().map(|r| r.email).collect();
        assert_eq!(emails, ["grace@example.com"]);
        assert_eq!(to[0].concerns, [Concern::Mentioned, Concern::Watcher]);
        let to = e.recipients(&Concern::ALL);
        let emails: Vec<_> = to.iter().map(|r| r.email).collect();
        assert_eq!(emails, ["grace@example.com", "linus@example.com"]);
        assert_eq!(to[0].concerns, Concern::ALL);
        assert!(e.recipients(&[]).is_empty());
        e.actor = None;
        assert_eq!(e.recipients(&[Concern::Mentioned]).len(), 2);
        assert_eq!(e.people_concerned(Concern::Mentioned).count(), 3);
    }

    #[test]
    fn event_kind_names_are_the_wit_names() {
        assert_eq!(EventKind::PageCreated.as_str(), "page-created");
        assert_eq!(EventKind::AttachmentRemoved.as_str(), "attachment-removed");
        let names: std::collections::BTreeSet<_> =
            EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
    }

    #[test]
    fn slack_message_builder_sets_optional_fields() {
        let m = SlackMessage::new("#eng", "hi")
            .with_blocks("[]")
            .with_thread_key("page-1");
        assert_eq!(m.blocks.as_deref(), Some("[]"));
        assert_eq!(m.thread_key.as_deref(), Some("page-1"));
        assert_eq!(Action::PostSlack(m).kind(), "post-slack");
    }

    #[test]
    fn slack_fallback_text_is_escaped_unless_it_is_mrkdwn() {
        let m = SlackMessage::new(
            "#eng",
            "<!channel> launch & <@U0ADMIN> <https://evil|click>",
        );
        assert_eq!(
            m.text,
            "&lt;!channel&gt; launch &amp; &lt;@U0ADMIN&gt; &lt;https://evil|click&gt;"
        );
        let d = SlackDirectMessage::new("a@example.com", String::from("<!here>"));
        assert_eq!(d.text, "&lt;!here&gt;");
        let m = SlackMessage::new("#eng", crate::mrkdwn!("*New:* {}", "<!here>"));
        assert_eq!(m.text, "*New:* &lt;!here&gt;");
        let m = SlackMessage::new("#eng", crate::slack::Mrkdwn::trusted("<!here> *deploy*"));
        assert_eq!(m.text, "<!here> *deploy*");
    }
}
