//! Which events a digest-taking binding holds: those about content in a
//! space. Chat events (a shared link, a slash command) answer a person and
//! are never held; neither is an event without a space.

use crate::model::{Event, EventKind};
use crate::store::NewHeld;

/// The row that holds `event` for `binding_id`, or `None` when the event is
/// never held (it runs at once, as without digests).
pub fn held(event_id: i64, event: &Event, binding_id: i64) -> Option<NewHeld> {
    if event.chat.is_some() || event.kind.is_chat() {
        return None;
    }
    let content = event.content.as_ref()?;
    if content.space_key.is_empty() {
        return None;
    }
    let page_update =
        matches!(event.kind, EventKind::PageUpdated | EventKind::BlogUpdated).then_some(content.id);
    Some(NewHeld {
        binding_id,
        event_id,
        space_key: content.space_key.clone(),
        page_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, space: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "id": "acme:1", "kind": kind, "name": kind.replace('-', "_"), "source": "acme",
            "content": {"id": 42, "content_type": "page", "title": "T", "space_key": space,
                        "url": "https://wiki/x", "version": 2}
        }))
        .unwrap()
    }

    #[test]
    fn content_in_a_space_is_held_updates_by_page() {
        let created = held(7, &event("page-created", "ENG"), 3).unwrap();
        assert_eq!(
            created,
            NewHeld {
                binding_id: 3,
                event_id: 7,
                space_key: "ENG".into(),
                page_update: None
            }
        );
        assert_eq!(
            held(7, &event("page-updated", "ENG"), 3)
                .unwrap()
                .page_update,
            Some(42)
        );
        assert_eq!(
            held(7, &event("blog-updated", "ENG"), 3)
                .unwrap()
                .page_update,
            Some(42)
        );
        assert_eq!(
            held(7, &event("comment-updated", "ENG"), 3)
                .unwrap()
                .page_update,
            None
        );
        assert_eq!(held(7, &event("page-created", ""), 3), None);
        let mut chat = event("slash-command", "ENG");
        chat.content = None;
        assert_eq!(held(7, &chat, 3), None);
    }
}
