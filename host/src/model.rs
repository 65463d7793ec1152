//! The host's own, serializable picture of events and actions.
//!
//! These mirror the WIT records field by field but belong to the host: they
//! are what `plugin run` reads and prints, what the store keeps and what the
//! admin API shows. Keeping them apart from the generated bindings means a
//! future contract version only needs a new conversion, never a new storage
//! format. JSON uses snake_case fields and the WIT's kebab-case names for
//! enum values (`"kind": "page-created"`, `"type": "post-slack"`).

use serde::{Deserialize, Serialize};

/// Every event kind the contract names; `Other` keeps unknown names usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    PageCreated,
    PageUpdated,
    PageMoved,
    PageTrashed,
    PageRestored,
    PageRemoved,
    BlogCreated,
    BlogUpdated,
    BlogTrashed,
    BlogRestored,
    BlogRemoved,
    CommentCreated,
    CommentUpdated,
    CommentRemoved,
    LabelAdded,
    LabelRemoved,
    AttachmentCreated,
    AttachmentUpdated,
    AttachmentRemoved,
    LinkShared,
    SlashCommand,
    TeamsMessage,
    TeamsCardAction,
    Other,
}

impl EventKind {
    /// All kinds, in WIT order: manifests and bindings are validated against it.
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

    /// The WIT name (`page-created`), used in manifests, CLI flags and JSON.
    pub fn name(self) -> &'static str {
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

    /// Kinds that come from a chat service (Slack, a Teams bot), not from
    /// Confluence: Slack's new in contract 0.2.0, Teams' in 0.3.0.
    pub fn is_chat(self) -> bool {
        matches!(self, EventKind::LinkShared | EventKind::SlashCommand) || self.is_teams()
    }

    /// Kinds that come from a Teams bot: new in contract 0.3.0.
    pub fn is_teams(self) -> bool {
        matches!(self, EventKind::TeamsMessage | EventKind::TeamsCardAction)
    }

    /// Parses a WIT name; `None` for anything the contract does not list.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A Confluence user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub key: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A page above the content in the page tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ancestor {
    pub id: u64,
    pub title: String,
}

/// The page, blog post, comment or attachment an event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    pub id: u64,
    pub content_type: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub space_key: String,
    #[serde(default)]
    pub space_name: Option<String>,
    #[serde(default)]
    pub url: String,
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub minor_edit: bool,
    #[serde(default)]
    pub version_message: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub ancestors: Vec<Ancestor>,
    #[serde(default)]
    pub restricted: bool,
    #[serde(default)]
    pub container_id: Option<u64>,
    #[serde(default)]
    pub excerpt: Option<String>,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// Why a page event concerns a person (WIT `concern`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Concern {
    Creator,
    Mentioned,
    Watcher,
}

/// A person a page event concerns: listed once, never the actor, only when
/// the host knows they may view the content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcernedPerson {
    pub person: Person,
    pub concerns: Vec<Concern>,
}

/// A page or blog post as read for a chat user who may view it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageSummary {
    pub id: u64,
    pub content_type: String,
    pub title: String,
    pub space_key: String,
    #[serde(default)]
    pub space_name: Option<String>,
    pub url: String,
    #[serde(default)]
    pub excerpt: Option<String>,
    #[serde(default)]
    pub last_editor: Option<Person>,
    #[serde(default)]
    pub last_edited_at_ms: Option<u64>,
    #[serde(default)]
    pub restricted: bool,
}

/// The Slack user behind a chat event, and the Confluence user with the
/// same email when the host found one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatUser {
    pub id: String,
    pub team_id: String,
    #[serde(default)]
    pub confluence: Option<Person>,
}

/// The Teams user behind a chat event from a Teams bot, and the Confluence
/// user the host matched them to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamsUser {
    /// The Bot Framework's id (`29:...`).
    pub id: String,
    #[serde(default)]
    pub aad_object_id: Option<String>,
    pub tenant_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub confluence: Option<Person>,
}

/// One link of a `link-shared` event; `page` only when the user may view it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedLink {
    pub url: String,
    #[serde(default)]
    pub page: Option<PageSummary>,
}

/// What came from a chat service (WIT `chat-event`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChatEvent {
    /// Slack's `link_shared`.
    LinkShared {
        channel: String,
        message_ts: String,
        user: ChatUser,
        links: Vec<SharedLink>,
    },
    /// A slash command.
    SlashCommand {
        command: String,
        text: String,
        user: ChatUser,
        channel: String,
        response_url: String,
        #[serde(default)]
        results: Vec<PageSummary>,
    },
    /// Contract 0.3.0: a message to a Teams bot.
    TeamsMessage {
        activity_id: String,
        conversation_type: String,
        text: String,
        user: TeamsUser,
        #[serde(default)]
        results: Vec<PageSummary>,
    },
    /// Contract 0.3.0: a button pressed on a Teams bot's card.
    TeamsCardAction {
        activity_id: String,
        conversation_type: String,
        /// The button's `data` (a JSON object).
        value: serde_json::Value,
        user: TeamsUser,
        #[serde(default)]
        page: Option<Box<PageSummary>>,
    },
}

/// One event as plugins see it; the JSON form of the WIT `event` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    pub name: String,
    #[serde(default)]
    pub occurred_at_ms: u64,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub actor: Option<Person>,
    #[serde(default)]
    pub by_pagehook: bool,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub update_trigger: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default = "yes")]
    pub enriched: bool,
    /// Contract 0.2.0: the people a page event concerns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<ConcernedPerson>,
    /// Contract 0.2.0: what a chat event carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatEvent>,
}

/// A delivery a plugin asked for; the JSON form of the WIT `action` variant.
///
/// `blocks` and `card` travel through WIT as JSON text; here they are JSON
/// values so that output is readable and a malformed one is caught at the
/// boundary instead of at Slack or Teams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    PostSlack {
        channel: String,
        text: String,
        blocks: Option<serde_json::Value>,
        thread_key: Option<String>,
    },
    DmSlack {
        email: String,
        text: String,
        blocks: Option<serde_json::Value>,
    },
    PostTeams {
        channel: String,
        card: serde_json::Value,
    },
    CreatePage {
        space_key: String,
        parent_id: Option<u64>,
        title: String,
        body: String,
        labels: Vec<String>,
        once_key: Option<String>,
    },
    AddComment {
        page_id: u64,
        body: String,
        once_key: Option<String>,
    },
    /// Contract 0.2.0: previews for a `link-shared` event's links.
    Unfurl {
        channel: String,
        message_ts: String,
        /// URL → preview (`{"blocks": [...]}`), as `chat.unfurl` takes it.
        unfurls: serde_json::Value,
    },
    /// Contract 0.2.0: an answer to a slash command.
    Respond {
        response_url: String,
        text: String,
        blocks: Option<serde_json::Value>,
        in_channel: bool,
    },
    /// Contract 0.3.0: a personal message from a Teams bot.
    DmTeams {
        email: String,
        text: String,
        card: Option<serde_json::Value>,
    },
    /// Contract 0.3.0: an answer to a Teams chat event; with
    /// `replace_card`, the new content of the bot's card whose button was
    /// pressed.
    ReplyTeams {
        activity_id: String,
        text: String,
        card: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replace_card: bool,
    },
}

/// The kinds of action, as named in manifests and `--grant` flags.
pub const ACTION_KINDS: [&str; 9] = [
    "post-slack",
    "dm-slack",
    "post-teams",
    "create-page",
    "add-comment",
    "unfurl",
    "respond",
    "dm-teams",
    "reply-teams",
];

/// Action kinds new in contract 0.2.0: a 0.1.0 manifest cannot declare them.
pub const ACTION_KINDS_SINCE_0_2: [&str; 4] = ["unfurl", "respond", "dm-teams", "reply-teams"];

/// Action kinds new in contract 0.3.0: a 0.1.0 or 0.2.0 manifest cannot
/// declare them.
pub const ACTION_KINDS_SINCE_0_3: [&str; 2] = ["dm-teams", "reply-teams"];

impl Action {
    /// The kind name (`post-slack`, ...), checked against grants and manifests.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::PostSlack { .. } => "post-slack",
            Action::DmSlack { .. } => "dm-slack",
            Action::PostTeams { .. } => "post-teams",
            Action::CreatePage { .. } => "create-page",
            Action::AddComment { .. } => "add-comment",
            Action::Unfurl { .. } => "unfurl",
            Action::Respond { .. } => "respond",
            Action::DmTeams { .. } => "dm-teams",
            Action::ReplyTeams { .. } => "reply-teams",
        }
    }

    /// Where it goes: a channel, an email, a space key or a page id. Bindings
    /// name the destinations an action may use.
    pub fn destination(&self) -> String {
        match self {
            Action::PostSlack { channel, .. } | Action::PostTeams { channel, .. } => {
                channel.clone()
            }
            Action::DmSlack { email, .. } | Action::DmTeams { email, .. } => email.clone(),
            Action::CreatePage { space_key, .. } => space_key.clone(),
            Action::AddComment { page_id, .. } => page_id.to_string(),
            Action::Unfurl { channel, .. } => channel.clone(),
            // Never the URL itself: it is a capability, and audit records
            // and logs show destinations.
            Action::Respond { .. } => "response-url".to_owned(),
            Action::ReplyTeams { activity_id, .. } => activity_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_through_serde_and_from_name() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::from_name("page_created"), None);
    }

    #[test]
    fn minimal_event_json_fills_defaults() {
        let e: Event = serde_json::from_str(
            r#"{"id":"e1","kind":"page-created","name":"page_created",
                "content":{"id":7,"content_type":"page","title":"T"}}"#,
        )
        .unwrap();
        assert!(e.enriched);
        assert_eq!(e.content.as_ref().unwrap().version, 1);
        assert!(e.actor.is_none());
    }

    #[test]
    fn unknown_event_field_is_named() {
        let err = serde_json::from_str::<Event>(
            r#"{"id":"e1","kind":"page-created","name":"x","colour":"red"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn action_json_uses_kebab_type_tag() {
        let a = Action::AddComment {
            page_id: 5,
            body: "<p>x</p>".into(),
            once_key: None,
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["type"], "add-comment");
        assert_eq!(a.destination(), "5");
    }
}
