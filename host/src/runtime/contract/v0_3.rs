//! `pagehook:plugin@0.3.0`, the current contract: the bindings of `wit/`
//! and the conversions between the host's model and them.
//!
//! Everything 0.2.0 had converts as it did there (written once, in the
//! parent module). 0.3.0 adds digests: a component of the `digest-plugin`
//! world also exports `handle-digest`, which takes a [`Digest`] (events of
//! one space that the host held together) instead of one event. A component
//! of the plain `plugin` world is linked the same way and never gets one.

use wasmtime::Store;

use super::Returned;
use crate::digest::Digest;
use crate::model::{Action, Event};
use crate::runtime::sandbox::CallState;

super::version_glue!("../wit");
super::since_0_2_conversions!();

/// The bindings of the `digest-plugin` world, sharing the `types` of the
/// `plugin` world's bindings (its imports are the same, so one linker
/// serves both).
mod digest_bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "digest-plugin",
        imports: { default: trappable },
        with: { "pagehook:plugin/types": super::bindings::pagehook::plugin::types },
    });
}

/// The name of the optional export.
const HANDLE_DIGEST: &str = "handle-digest";

/// A 0.3.0 component ready to instantiate: as a `plugin`, and as a
/// `digest-plugin` too when it exports `handle-digest`.
pub(crate) struct Prepared {
    plugin: Pre,
    digest: Option<digest_bindings::DigestPluginPre<CallState>>,
}

impl Prepared {
    /// Checks `component` against the `plugin` world, and against
    /// `digest-plugin` when it exports `handle-digest` (a wrongly typed one
    /// refuses it).
    pub(super) fn new(
        linker: &wasmtime::component::Linker<CallState>,
        component: &wasmtime::component::Component,
    ) -> wasmtime::Result<Prepared> {
        let plugin = prepare(linker, component)?;
        let exports_digest = component
            .component_type()
            .exports(linker.engine())
            .any(|(name, _)| name == HANDLE_DIGEST);
        let digest = if exports_digest {
            Some(digest_bindings::DigestPluginPre::new(
                plugin.instance_pre().clone(),
            )?)
        } else {
            None
        };
        Ok(Prepared { plugin, digest })
    }

    pub(super) fn exports_digests(&self) -> bool {
        self.digest.is_some()
    }

    pub(super) fn call(
        &self,
        store: &mut Store<CallState>,
        event_: &Event,
        settings: &[(String, String)],
    ) -> wasmtime::Result<Returned> {
        let wit_event = event(event_);
        let instance = self.plugin.instantiate(&mut *store)?;
        let returned = instance.call_handle(&mut *store, &wit_event, &settings.to_vec())?;
        Ok(returned.map(|actions| actions.into_iter().map(convert).collect()))
    }

    pub(super) fn call_digest(
        &self,
        store: &mut Store<CallState>,
        digest_: &Digest,
        settings: &[(String, String)],
    ) -> wasmtime::Result<Returned> {
        let Some(pre) = &self.digest else {
            return Err(wasmtime::Error::msg(
                "the component does not export `handle-digest`",
            ));
        };
        let wit_digest = digest(digest_);
        let instance = pre.instantiate(&mut *store)?;
        let returned = instance.call_handle_digest(&mut *store, &wit_digest, &settings.to_vec())?;
        Ok(returned.map(|actions| actions.into_iter().map(convert).collect()))
    }
}

/// The event as 0.3.0 has it: as 0.2.0 had it, and chat events from a
/// Teams bot.
pub(crate) fn event(e: &Event) -> types::Event {
    use crate::model::EventKind;
    let kind = since_0_2_event_kind(e.kind).unwrap_or(match e.kind {
        EventKind::TeamsMessage => types::EventKind::TeamsMessage,
        EventKind::TeamsCardAction => types::EventKind::TeamsCardAction,
        _ => types::EventKind::Other,
    });
    common_event!(e, kind, {
        people: e.people.iter().map(concerned).collect(),
        chat: e.chat.as_ref().and_then(|c| slack_chat(c).or_else(|| teams_chat(c))),
    })
}

fn teams_user(u: &crate::model::TeamsUser) -> types::TeamsUser {
    types::TeamsUser {
        id: u.id.clone(),
        aad_object_id: u.aad_object_id.clone(),
        tenant_id: u.tenant_id.clone(),
        name: u.name.clone(),
        confluence: u.confluence.as_ref().map(person),
    }
}

/// A chat event from a Teams bot; `None` for one from Slack.
fn teams_chat(c: &crate::model::ChatEvent) -> Option<types::ChatEvent> {
    use crate::model::ChatEvent;
    Some(match c {
        ChatEvent::TeamsMessage {
            activity_id,
            conversation_type,
            text,
            user,
            results,
        } => types::ChatEvent::TeamsMessage(types::TeamsMessageEvent {
            activity_id: activity_id.clone(),
            conversation_type: conversation_type.clone(),
            text: text.clone(),
            user: teams_user(user),
            results: results.iter().map(page_summary).collect(),
        }),
        ChatEvent::TeamsCardAction {
            activity_id,
            conversation_type,
            value,
            user,
            page,
        } => types::ChatEvent::TeamsCardAction(types::TeamsCardAction {
            activity_id: activity_id.clone(),
            conversation_type: conversation_type.clone(),
            value: value.to_string(),
            user: teams_user(user),
            page: page.as_deref().map(page_summary),
        }),
        ChatEvent::LinkShared { .. } | ChatEvent::SlashCommand { .. } => return None,
    })
}

/// A digest as 0.3.0 has it.
pub(crate) fn digest(d: &Digest) -> types::Digest {
    types::Digest {
        space_key: d.space_key.clone(),
        space_name: d.space_name.clone(),
        events: d.events.iter().map(event).collect(),
        search_url: d.search_url.clone(),
    }
}

/// An action and its kind, converted to the model (or why it cannot be).
pub(crate) fn convert(action: types::Action) -> (&'static str, Result<Action, String>) {
    let newer = match since_0_2_action(action) {
        Ok(converted) => return converted,
        Err(newer) => *newer,
    };
    let card = |card: Option<String>| card.map(|c| super::json("card", &c, false)).transpose();
    match newer {
        types::Action::DmTeams(m) => (
            "dm-teams",
            card(m.card).map(|card| Action::DmTeams {
                email: m.email,
                text: m.text,
                card,
            }),
        ),
        types::Action::ReplyTeams(r) => (
            "reply-teams",
            card(r.card).map(|card| Action::ReplyTeams {
                activity_id: r.activity_id,
                text: r.text,
                card,
                replace_card: r.replace_card,
            }),
        ),
        newer => (
            "unknown",
            Err(format!("not an action of contract 0.3.0: {newer:?}")),
        ),
    }
}
