//! The host's own, serializable picture of events and actions.
//!
//! These mirror the WIT records field by field but belong to the host: they
//! are what `plugin run` reads and prints, what the store keeps and what the
//! admin API shows. Keeping them apart from the generated bindings means a
//! future contract version only needs a new conversion, never a new storage
//! format. JSON uses snake_case fields and the WIT's kebab-case names for
//! enum values (`"kind": "page-created"`, `"type": "post-slack"`).

use serde::{Deserialize, Serialize};

use crate::wit::types as wit;

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
    Other,
}

impl EventKind {
    /// All kinds, in WIT order: manifests and bindings are validated against it.
    pub const ALL: [EventKind; 20] = [
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
            EventKind::Other => "other",
        }
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
}

/// The kinds of action, as named in manifests and `--grant` flags.
pub const ACTION_KINDS: [&str; 5] = [
    "post-slack",
    "dm-slack",
    "post-teams",
    "create-page",
    "add-comment",
];

impl Action {
    /// The kind name (`post-slack`, ...), checked against grants and manifests.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::PostSlack { .. } => "post-slack",
            Action::DmSlack { .. } => "dm-slack",
            Action::PostTeams { .. } => "post-teams",
            Action::CreatePage { .. } => "create-page",
            Action::AddComment { .. } => "add-comment",
        }
    }

    /// Where it goes: a channel, an email, a space key or a page id. Bindings
    /// name the destinations an action may use.
    pub fn destination(&self) -> String {
        match self {
            Action::PostSlack { channel, .. } | Action::PostTeams { channel, .. } => {
                channel.clone()
            }
            Action::DmSlack { email, .. } => email.clone(),
            Action::CreatePage { space_key, .. } => space_key.clone(),
            Action::AddComment { page_id, .. } => page_id.to_string(),
        }
    }

    /// Converts what a plugin returned, rejecting JSON fields that do not
    /// parse or have the wrong shape (blocks must be an array, a card an object).
    pub fn from_wit(action: wit::Action) -> Result<Action, String> {
        fn json(field: &str, text: &str, want_array: bool) -> Result<serde_json::Value, String> {
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| format!("`{field}` is not valid JSON: {e}"))?;
            match (want_array, &value) {
                (true, serde_json::Value::Array(_)) | (false, serde_json::Value::Object(_)) => {
                    Ok(value)
                }
                (true, _) => Err(format!("`{field}` must be a JSON array of blocks")),
                (false, _) => Err(format!("`{field}` must be a JSON object")),
            }
        }
        Ok(match action {
            wit::Action::PostSlack(m) => Action::PostSlack {
                blocks: m.blocks.map(|b| json("blocks", &b, true)).transpose()?,
                channel: m.channel,
                text: m.text,
                thread_key: m.thread_key,
            },
            wit::Action::DmSlack(m) => Action::DmSlack {
                blocks: m.blocks.map(|b| json("blocks", &b, true)).transpose()?,
                email: m.email,
                text: m.text,
            },
            wit::Action::PostTeams(m) => Action::PostTeams {
                card: json("card", &m.card, false)?,
                channel: m.channel,
            },
            wit::Action::CreatePage(p) => Action::CreatePage {
                space_key: p.space_key,
                parent_id: p.parent_id,
                title: p.title,
                body: p.body,
                labels: p.labels,
                once_key: p.once_key,
            },
            wit::Action::AddComment(c) => Action::AddComment {
                page_id: c.page_id,
                body: c.body,
                once_key: c.once_key,
            },
        })
    }
}

impl From<EventKind> for wit::EventKind {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::PageCreated => wit::EventKind::PageCreated,
            EventKind::PageUpdated => wit::EventKind::PageUpdated,
            EventKind::PageMoved => wit::EventKind::PageMoved,
            EventKind::PageTrashed => wit::EventKind::PageTrashed,
            EventKind::PageRestored => wit::EventKind::PageRestored,
            EventKind::PageRemoved => wit::EventKind::PageRemoved,
            EventKind::BlogCreated => wit::EventKind::BlogCreated,
            EventKind::BlogUpdated => wit::EventKind::BlogUpdated,
            EventKind::BlogTrashed => wit::EventKind::BlogTrashed,
            EventKind::BlogRestored => wit::EventKind::BlogRestored,
            EventKind::BlogRemoved => wit::EventKind::BlogRemoved,
            EventKind::CommentCreated => wit::EventKind::CommentCreated,
            EventKind::CommentUpdated => wit::EventKind::CommentUpdated,
            EventKind::CommentRemoved => wit::EventKind::CommentRemoved,
            EventKind::LabelAdded => wit::EventKind::LabelAdded,
            EventKind::LabelRemoved => wit::EventKind::LabelRemoved,
            EventKind::AttachmentCreated => wit::EventKind::AttachmentCreated,
            EventKind::AttachmentUpdated => wit::EventKind::AttachmentUpdated,
            EventKind::AttachmentRemoved => wit::EventKind::AttachmentRemoved,
            EventKind::Other => wit::EventKind::Other,
        }
    }
}

impl From<&Event> for wit::Event {
    fn from(e: &Event) -> Self {
        wit::Event {
            id: e.id.clone(),
            kind: e.kind.into(),
            name: e.name.clone(),
            occurred_at_ms: e.occurred_at_ms,
            source: e.source.clone(),
            actor: e.actor.as_ref().map(|p| wit::Person {
                key: p.key.clone(),
                username: p.username.clone(),
                display_name: p.display_name.clone(),
                email: p.email.clone(),
            }),
            by_pagehook: e.by_pagehook,
            content: e.content.as_ref().map(|c| wit::Content {
                id: c.id,
                content_type: c.content_type.clone(),
                title: c.title.clone(),
                space_key: c.space_key.clone(),
                space_name: c.space_name.clone(),
                url: c.url.clone(),
                version: c.version,
                minor_edit: c.minor_edit,
                version_message: c.version_message.clone(),
                labels: c.labels.clone(),
                ancestors: c
                    .ancestors
                    .iter()
                    .map(|a| wit::Ancestor {
                        id: a.id,
                        title: a.title.clone(),
                    })
                    .collect(),
                restricted: c.restricted,
                container_id: c.container_id,
                excerpt: c.excerpt.clone(),
            }),
            update_trigger: e.update_trigger.clone(),
            label: e.label.clone(),
            enriched: e.enriched,
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
    fn slack_blocks_must_be_a_json_array() {
        let action = |blocks: &str| {
            Action::from_wit(wit::Action::PostSlack(wit::SlackMessage {
                channel: "#eng".into(),
                text: "t".into(),
                blocks: Some(blocks.into()),
                thread_key: None,
            }))
        };
        assert!(action(r#"[{"type":"divider"}]"#).is_ok());
        assert!(action("{").unwrap_err().contains("not valid JSON"));
        assert!(action("{}").unwrap_err().contains("array"));
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
