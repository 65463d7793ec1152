//! Sample events for a plugin's own unit tests.
//!
//! An [`Event`] has a dozen fields and a nested [`Content`]; writing one out
//! in every test buries what the test is about. These builders return a
//! realistic, fully enriched event (space `ENG`, page "Release notes",
//! author Ada Lovelace) that a test then changes in the one field it cares
//! about:
//!
//! ```
//! use pagehook_guest::EventKind;
//! use pagehook_guest::testing;
//!
//! let mut event = testing::event(EventKind::PageUpdated);
//! event.content.as_mut().unwrap().minor_edit = true;
//! assert_eq!(event.name, "page_updated");
//! ```

use crate::{Ancestor, Content, Event, EventKind, Person};

/// Ada Lovelace, with every optional field filled.
pub fn person() -> Person {
    Person {
        key: "8a7f808a8d3e2f1b018d3e3c5a5e0001".into(),
        username: Some("ada".into()),
        display_name: Some("Ada Lovelace".into()),
        email: Some("ada@example.com".into()),
    }
}

/// The page "Release notes" (id 123456, space ENG, version 1, labels
/// `release`, under "Engineering Home"); for blog and comment kinds use
/// [`event`], which adjusts the content type.
pub fn content() -> Content {
    Content {
        id: 123_456,
        content_type: "page".into(),
        title: "Release notes".into(),
        space_key: "ENG".into(),
        space_name: Some("Engineering".into()),
        url: "https://wiki.example.com/pages/viewpage.action?pageId=123456".into(),
        version: 1,
        minor_edit: false,
        version_message: None,
        labels: vec!["release".into()],
        ancestors: vec![Ancestor {
            id: 1000,
            title: "Engineering Home".into(),
        }],
        restricted: false,
        container_id: None,
        excerpt: Some("What changed in this release, and why.".into()),
    }
}

/// An enriched event of `kind` by [`person`] on [`content`], with the
/// content type, Confluence event name and kind-specific fields (update
/// trigger, label, container) set the way Confluence would.
pub fn event(kind: EventKind) -> Event {
    let name = match kind {
        EventKind::Other => "space_created".to_owned(),
        k => k.as_str().replace('-', "_"),
    };
    let mut content = content();
    let kind_name = kind.as_str();
    if kind_name.starts_with("blog-") {
        content.content_type = "blogpost".into();
    } else if kind_name.starts_with("comment-") || kind_name.starts_with("attachment-") {
        content.content_type = if kind_name.starts_with("comment-") {
            "comment"
        } else {
            "attachment"
        }
        .into();
        content.id = 123_457;
        content.container_id = Some(123_456);
    }
    if !kind_name.ends_with("-created") {
        content.version = 2;
    }
    Event {
        id: format!("evt-{name}-0001"),
        kind,
        name,
        occurred_at_ms: 1_767_225_600_000,
        source: "wiki".into(),
        actor: Some(person()),
        by_pagehook: false,
        content: Some(content),
        update_trigger: matches!(kind, EventKind::PageUpdated | EventKind::BlogUpdated)
            .then(|| "edit_page".into()),
        label: matches!(kind, EventKind::LabelAdded | EventKind::LabelRemoved)
            .then(|| "release".into()),
        enriched: true,
        people: vec![],
        chat: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_look_like_confluence_sends_them() {
        let e = event(EventKind::BlogCreated);
        assert_eq!(e.name, "blog_created");
        assert_eq!(e.content.as_ref().unwrap().content_type, "blogpost");
        assert_eq!(e.content.as_ref().unwrap().version, 1);
        let c = event(EventKind::CommentCreated);
        assert_eq!(c.content.as_ref().unwrap().container_id, Some(123_456));
        let u = event(EventKind::PageUpdated);
        assert_eq!(u.update_trigger.as_deref(), Some("edit_page"));
        assert_eq!(u.content.as_ref().unwrap().version, 2);
        assert_eq!(
            event(EventKind::LabelAdded).label.as_deref(),
            Some("release")
        );
        for kind in EventKind::ALL {
            assert_eq!(event(kind).kind, kind);
        }
    }
}
