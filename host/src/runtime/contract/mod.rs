//! The plugin contracts this host runs, one binding module per released
//! version, and the one place that adapts between them and the host's model.
//!
//! Each released WIT package stays frozen (`wit/since_v0.1.0/` and
//! `wit/since_v0.2.0/` are 0.1.0 and 0.2.0 byte for byte; `wit/` is 0.3.0),
//! and a component built against any of them is linked with that version's
//! bindings: a plugin installed under 0.1.0 runs unchanged beside 0.2.0 and
//! 0.3.0 plugins. Only 0.3.0 components may export `handle-digest` (its
//! `digest-plugin` world); every other plugin is called once per event. The host itself thinks only in
//! [`crate::model`]; each version module converts the model's event into its
//! own records (an older version simply never sees what it cannot express)
//! and its actions back into the model. The conversions a version shares
//! with its predecessors are written once, as macros each version expands
//! for its own generated types ([`shared_conversions`] since 0.1.0,
//! [`since_0_2_conversions`] since 0.2.0), so the next version adds only
//! what it adds.
//!
//! Which version a component speaks is read from what it imports (its
//! world's `types` interface names the package version) and must agree with
//! its manifest's `wit`, so a mislabelled plugin is refused at load with both
//! versions named.
//!
//! What this module must never do: give an older plugin an event or an
//! action kind its contract does not have, or accept from a plugin a JSON
//! field (blocks, card, unfurls) that does not parse to the shape its
//! receiver expects.

pub(crate) mod v0_1;
pub(crate) mod v0_2;
pub(crate) mod v0_3;

use std::fmt;

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use super::sandbox::CallState;
use crate::digest::Digest;
use crate::model::{Action, Event};

/// A released contract version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Contract {
    /// `pagehook:plugin@0.1.0`, frozen in `wit/since_v0.1.0/`.
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `pagehook:plugin@0.2.0`, frozen in `wit/since_v0.2.0/`.
    #[serde(rename = "0.2.0")]
    V0_2,
    /// `pagehook:plugin@0.3.0`, in `wit/`: adds digests.
    #[serde(rename = "0.3.0")]
    V0_3,
}

impl Contract {
    /// Every version this host runs, oldest first.
    pub const ALL: [Contract; 3] = [Contract::V0_1, Contract::V0_2, Contract::V0_3];

    /// The newest: what new plugins, the SDK and the examples build against.
    pub const LATEST: Contract = Contract::V0_3;

    /// The version as written in manifests, e.g. `0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
            Contract::V0_3 => "0.3.0",
        }
    }

    /// Parses a manifest's `wit` value.
    pub fn from_version(version: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| c.version() == version)
    }

    /// The interface a component built against this version imports.
    pub fn types_import(self) -> String {
        format!("pagehook:plugin/types@{}", self.version())
    }

    /// The version a component speaks, read from its imports; `None` when it
    /// imports no `pagehook:plugin` types of a version this host knows.
    pub fn of_imports<'a>(imports: impl IntoIterator<Item = &'a str>) -> Option<Contract> {
        imports.into_iter().find_map(|import| {
            Contract::ALL
                .into_iter()
                .find(|c| import == c.types_import())
        })
    }

    /// Whether a plugin of this version can receive events of `kind`.
    pub fn has_event(self, kind: crate::model::EventKind) -> bool {
        match self {
            Contract::V0_1 => !kind.is_chat(),
            Contract::V0_2 => !kind.is_teams(),
            Contract::V0_3 => true,
        }
    }

    /// Whether a plugin of this version can return actions of `kind`.
    pub fn has_action(self, kind: &str) -> bool {
        match self {
            Contract::V0_1 => !crate::model::ACTION_KINDS_SINCE_0_2.contains(&kind),
            Contract::V0_2 => !crate::model::ACTION_KINDS_SINCE_0_3.contains(&kind),
            Contract::V0_3 => true,
        }
    }

    /// Whether a plugin of this version can take digests (`handle-digest`).
    pub fn has_digests(self) -> bool {
        !matches!(self, Contract::V0_1 | Contract::V0_2)
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pagehook:plugin@{}", self.version())
    }
}

/// One linker per contract version: every version's world imports a
/// function named `log`, with its own `log-level` type, so the versions
/// cannot share one linker.
pub(super) struct Linkers {
    v0_1: Linker<CallState>,
    v0_2: Linker<CallState>,
    v0_3: Linker<CallState>,
}

impl Linkers {
    /// Linkers with WASI 0.2 (granting nothing) and each version's world.
    pub(super) fn new(engine: &wasmtime::Engine) -> wasmtime::Result<Linkers> {
        let mut v0_1 = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut v0_1)?;
        v0_1::add_to_linker(&mut v0_1)?;
        let mut v0_2 = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut v0_2)?;
        v0_2::add_to_linker(&mut v0_2)?;
        let mut v0_3 = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut v0_3)?;
        v0_3::add_to_linker(&mut v0_3)?;
        Ok(Linkers { v0_1, v0_2, v0_3 })
    }
}

/// A component checked against its version's world, ready to instantiate.
pub(super) enum Prepared {
    V0_1(v0_1::Pre),
    V0_2(v0_2::Pre),
    V0_3(v0_3::Prepared),
}

/// What `handle` returned: each action converted to the model (or why it
/// could not be, with the action's kind), or the plugin's own error.
pub(super) type Returned = Result<Vec<(&'static str, Result<Action, String>)>, String>;

impl Prepared {
    /// Links `component` as a plugin of `contract`.
    pub(super) fn new(
        linkers: &Linkers,
        component: &Component,
        contract: Contract,
    ) -> wasmtime::Result<Prepared> {
        Ok(match contract {
            Contract::V0_1 => Prepared::V0_1(v0_1::prepare(&linkers.v0_1, component)?),
            Contract::V0_2 => Prepared::V0_2(v0_2::prepare(&linkers.v0_2, component)?),
            Contract::V0_3 => Prepared::V0_3(v0_3::Prepared::new(&linkers.v0_3, component)?),
        })
    }

    /// Whether the component exports `handle-digest` (0.3.0's
    /// `digest-plugin` world).
    pub(super) fn exports_digests(&self) -> bool {
        matches!(self, Prepared::V0_3(p) if p.exports_digests())
    }

    /// Instantiates the component in `store` and calls `handle`.
    pub(super) fn call(
        &self,
        store: &mut Store<CallState>,
        event: &Event,
        settings: &[(String, String)],
    ) -> wasmtime::Result<Returned> {
        match self {
            Prepared::V0_1(pre) => v0_1::call(pre, store, event, settings),
            Prepared::V0_2(pre) => v0_2::call(pre, store, event, settings),
            Prepared::V0_3(pre) => pre.call(store, event, settings),
        }
    }

    /// Instantiates the component in `store` and calls `handle-digest`;
    /// an error when the component does not export it.
    pub(super) fn call_digest(
        &self,
        store: &mut Store<CallState>,
        digest: &Digest,
        settings: &[(String, String)],
    ) -> wasmtime::Result<Returned> {
        match self {
            Prepared::V0_3(pre) => pre.call_digest(store, digest, settings),
            Prepared::V0_1(_) | Prepared::V0_2(_) => Err(wasmtime::Error::msg(
                "contracts before 0.3.0 have no `handle-digest`",
            )),
        }
    }
}

/// Parses a JSON field a plugin returned as text: blocks must be an array,
/// a card or an unfurls map an object.
fn json(field: &str, text: &str, want_array: bool) -> Result<serde_json::Value, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("`{field}` is not valid JSON: {e}"))?;
    match (want_array, &value) {
        (true, serde_json::Value::Array(_)) | (false, serde_json::Value::Object(_)) => Ok(value),
        (true, _) => Err(format!("`{field}` must be a JSON array of blocks")),
        (false, _) => Err(format!("`{field}` must be a JSON object")),
    }
}

/// What every version module has, written once: its bindings generated
/// from the WIT at `$wit` (a path from `host/`), the `log` import, linking,
/// preparing, and the shared conversions.
macro_rules! version_glue {
    ($wit:tt) => {
        mod bindings {
            wasmtime::component::bindgen!({
                path: $wit,
                world: "plugin",
                imports: { default: trappable },
            });
        }

        use bindings::{Plugin, PluginImports, PluginPre};
        use wasmtime::component::{HasSelf, Linker};

        pub(crate) use self::bindings::pagehook::plugin::types;
        use self::types::LogLevel;

        pub(crate) type Pre = PluginPre<CallState>;

        super::shared_conversions!();
        use super::common_event;

        impl types::Host for CallState {}

        impl PluginImports for CallState {
            fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
                self.log_line(log_level(level), &message)
            }
        }

        pub(super) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
            Plugin::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
        }

        pub(super) fn prepare(
            linker: &Linker<CallState>,
            component: &wasmtime::component::Component,
        ) -> wasmtime::Result<Pre> {
            PluginPre::new(linker.instantiate_pre(component)?)
        }
    };
}
use version_glue;

/// The conversions both versions share, written once: the records 0.2.0
/// kept from 0.1.0 unchanged, generated for each version's own types.
macro_rules! shared_conversions {
    () => {
        fn log_level(level: LogLevel) -> &'static str {
            match level {
                LogLevel::Debug => "debug",
                LogLevel::Info => "info",
                LogLevel::Warn => "warn",
                LogLevel::Error => "error",
            }
        }

        fn person(p: &crate::model::Person) -> types::Person {
            types::Person {
                key: p.key.clone(),
                username: p.username.clone(),
                display_name: p.display_name.clone(),
                email: p.email.clone(),
            }
        }

        fn content(c: &crate::model::Content) -> types::Content {
            types::Content {
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
                    .map(|a| types::Ancestor {
                        id: a.id,
                        title: a.title.clone(),
                    })
                    .collect(),
                restricted: c.restricted,
                container_id: c.container_id,
                excerpt: c.excerpt.clone(),
            }
        }

        /// The actions both versions have, converted (or why not);
        /// `Err(action)` hands back one that only a newer version has.
        fn common_action(
            action: types::Action,
        ) -> Result<Result<Action, String>, Box<types::Action>> {
            use super::json;
            Ok(match action {
                types::Action::PostSlack(m) => m
                    .blocks
                    .map(|b| json("blocks", &b, true))
                    .transpose()
                    .map(|blocks| Action::PostSlack {
                        blocks,
                        channel: m.channel,
                        text: m.text,
                        thread_key: m.thread_key,
                    }),
                types::Action::DmSlack(m) => m
                    .blocks
                    .map(|b| json("blocks", &b, true))
                    .transpose()
                    .map(|blocks| Action::DmSlack {
                        blocks,
                        email: m.email,
                        text: m.text,
                    }),
                types::Action::PostTeams(m) => {
                    json("card", &m.card, false).map(|card| Action::PostTeams {
                        card,
                        channel: m.channel,
                    })
                }
                types::Action::CreatePage(p) => Ok(Action::CreatePage {
                    space_key: p.space_key,
                    parent_id: p.parent_id,
                    title: p.title,
                    body: p.body,
                    labels: p.labels,
                    once_key: p.once_key,
                }),
                types::Action::AddComment(c) => Ok(Action::AddComment {
                    page_id: c.page_id,
                    body: c.body,
                    once_key: c.once_key,
                }),
                #[allow(unreachable_patterns)]
                newer => return Err(Box::new(newer)),
            })
        }

        /// The kind name of an action of this version.
        fn common_kind(action: &types::Action) -> Option<&'static str> {
            Some(match action {
                types::Action::PostSlack(_) => "post-slack",
                types::Action::DmSlack(_) => "dm-slack",
                types::Action::PostTeams(_) => "post-teams",
                types::Action::CreatePage(_) => "create-page",
                types::Action::AddComment(_) => "add-comment",
                #[allow(unreachable_patterns)]
                _ => return None,
            })
        }

        /// The event kinds both versions have; `None` for newer ones.
        fn common_event_kind(kind: crate::model::EventKind) -> Option<types::EventKind> {
            use crate::model::EventKind as K;
            Some(match kind {
                K::PageCreated => types::EventKind::PageCreated,
                K::PageUpdated => types::EventKind::PageUpdated,
                K::PageMoved => types::EventKind::PageMoved,
                K::PageTrashed => types::EventKind::PageTrashed,
                K::PageRestored => types::EventKind::PageRestored,
                K::PageRemoved => types::EventKind::PageRemoved,
                K::BlogCreated => types::EventKind::BlogCreated,
                K::BlogUpdated => types::EventKind::BlogUpdated,
                K::BlogTrashed => types::EventKind::BlogTrashed,
                K::BlogRestored => types::EventKind::BlogRestored,
                K::BlogRemoved => types::EventKind::BlogRemoved,
                K::CommentCreated => types::EventKind::CommentCreated,
                K::CommentUpdated => types::EventKind::CommentUpdated,
                K::CommentRemoved => types::EventKind::CommentRemoved,
                K::LabelAdded => types::EventKind::LabelAdded,
                K::LabelRemoved => types::EventKind::LabelRemoved,
                K::AttachmentCreated => types::EventKind::AttachmentCreated,
                K::AttachmentUpdated => types::EventKind::AttachmentUpdated,
                K::AttachmentRemoved => types::EventKind::AttachmentRemoved,
                K::Other => types::EventKind::Other,
                K::LinkShared | K::SlashCommand | K::TeamsMessage | K::TeamsCardAction => {
                    return None;
                }
            })
        }
    };
}
use shared_conversions;

/// The conversions every version since 0.2.0 shares, written once: the
/// people a page event concerns, the Slack side of chat events, and the
/// Slack answers (`unfurl`, `respond`), for each version's own types.
macro_rules! since_0_2_conversions {
    () => {
        fn page_summary(p: &crate::model::PageSummary) -> types::PageSummary {
            types::PageSummary {
                id: p.id,
                content_type: p.content_type.clone(),
                title: p.title.clone(),
                space_key: p.space_key.clone(),
                space_name: p.space_name.clone(),
                url: p.url.clone(),
                excerpt: p.excerpt.clone(),
                last_editor: p.last_editor.as_ref().map(person),
                last_edited_at_ms: p.last_edited_at_ms,
                restricted: p.restricted,
            }
        }

        fn chat_user(u: &crate::model::ChatUser) -> types::ChatUser {
            types::ChatUser {
                id: u.id.clone(),
                team_id: u.team_id.clone(),
                confluence: u.confluence.as_ref().map(person),
            }
        }

        fn concerned(c: &crate::model::ConcernedPerson) -> types::ConcernedPerson {
            use crate::model::Concern;
            types::ConcernedPerson {
                person: person(&c.person),
                concerns: c
                    .concerns
                    .iter()
                    .map(|c| match c {
                        Concern::Creator => types::Concern::Creator,
                        Concern::Mentioned => types::Concern::Mentioned,
                        Concern::Watcher => types::Concern::Watcher,
                    })
                    .collect(),
            }
        }

        /// A chat event from Slack, as every version since 0.2.0 has it;
        /// `None` for one from Teams (see [`teams_chat`] since 0.3.0).
        fn slack_chat(c: &crate::model::ChatEvent) -> Option<types::ChatEvent> {
            use crate::model::ChatEvent;
            Some(match c {
                ChatEvent::LinkShared {
                    channel,
                    message_ts,
                    user,
                    links,
                } => types::ChatEvent::LinkShared(types::LinkShared {
                    channel: channel.clone(),
                    message_ts: message_ts.clone(),
                    user: chat_user(user),
                    links: links
                        .iter()
                        .map(|l| types::SharedLink {
                            url: l.url.clone(),
                            page: l.page.as_ref().map(page_summary),
                        })
                        .collect(),
                }),
                ChatEvent::SlashCommand {
                    command,
                    text,
                    user,
                    channel,
                    response_url,
                    results,
                } => types::ChatEvent::SlashCommand(types::SlashCommand {
                    command: command.clone(),
                    text: text.clone(),
                    user: chat_user(user),
                    channel: channel.clone(),
                    response_url: response_url.clone(),
                    results: results.iter().map(page_summary).collect(),
                }),
                ChatEvent::TeamsMessage { .. } | ChatEvent::TeamsCardAction { .. } => return None,
            })
        }

        /// The event kinds every version since 0.2.0 has; `None` for
        /// newer ones.
        fn since_0_2_event_kind(kind: crate::model::EventKind) -> Option<types::EventKind> {
            use crate::model::EventKind;
            common_event_kind(kind).or(match kind {
                EventKind::LinkShared => Some(types::EventKind::LinkShared),
                EventKind::SlashCommand => Some(types::EventKind::SlashCommand),
                _ => None,
            })
        }

        /// The actions every version since 0.2.0 has, with their kind,
        /// converted (or why not); `Err(action)` hands back one that only a
        /// newer version has.
        fn since_0_2_action(
            action: types::Action,
        ) -> Result<(&'static str, Result<Action, String>), Box<types::Action>> {
            use super::json;
            let kind = common_kind(&action).unwrap_or("unknown");
            let newer = match common_action(action) {
                Ok(converted) => return Ok((kind, converted)),
                Err(newer) => *newer,
            };
            Ok(match newer {
                types::Action::Unfurl(u) => (
                    "unfurl",
                    json("unfurls", &u.unfurls, false).map(|unfurls| Action::Unfurl {
                        channel: u.channel,
                        message_ts: u.message_ts,
                        unfurls,
                    }),
                ),
                types::Action::Respond(r) => (
                    "respond",
                    r.blocks
                        .map(|b| json("blocks", &b, true))
                        .transpose()
                        .map(|blocks| Action::Respond {
                            response_url: r.response_url,
                            text: r.text,
                            blocks,
                            in_channel: r.in_channel,
                        }),
                ),
                #[allow(unreachable_patterns)]
                newer => return Err(Box::new(newer)),
            })
        }
    };
}
use since_0_2_conversions;

/// A version's `event` record: the fields every version has, `kind`
/// already mapped, then the version's own fields.
macro_rules! common_event {
    ($e:expr, $kind:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        types::Event {
            id: $e.id.clone(),
            kind: $kind,
            name: $e.name.clone(),
            occurred_at_ms: $e.occurred_at_ms,
            source: $e.source.clone(),
            actor: $e.actor.as_ref().map(person),
            by_pagehook: $e.by_pagehook,
            content: $e.content.as_ref().map(content),
            update_trigger: $e.update_trigger.clone(),
            label: $e.label.clone(),
            enriched: $e.enriched,
            $($field: $value),*
        }
    };
}
use common_event;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_the_types_import() {
        assert_eq!(
            Contract::of_imports(["wasi:cli/stdout@0.2.6", "pagehook:plugin/types@0.1.0"]),
            Some(Contract::V0_1)
        );
        assert_eq!(
            Contract::of_imports(["pagehook:plugin/types@0.2.0"]),
            Some(Contract::V0_2)
        );
        assert_eq!(
            Contract::of_imports(["pagehook:plugin/types@0.3.0"]),
            Some(Contract::V0_3)
        );
        assert_eq!(Contract::of_imports(["pagehook:plugin/types@0.4.0"]), None);
        assert_eq!(Contract::of_imports(["log"]), None);
        for c in Contract::ALL {
            assert_eq!(Contract::from_version(c.version()), Some(c));
            assert_eq!(c.to_string(), format!("pagehook:plugin@{}", c.version()));
        }
        assert_eq!(Contract::LATEST, Contract::V0_3);
        assert!(Contract::V0_3.has_digests());
        assert!(!Contract::V0_2.has_digests() && !Contract::V0_1.has_digests());
    }

    #[test]
    fn a_digest_reaches_0_3_0_whole_and_in_order() {
        let event = |id: &str, kind: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "id": id, "kind": kind, "name": kind.replace('-', "_"), "source": "acme",
                "content": {"id": 1, "content_type": "page", "title": id, "space_key": "ENG",
                            "url": "https://wiki/x", "version": 2}
            }))
            .unwrap()
        };
        let d = Digest {
            space_key: "ENG".into(),
            space_name: Some("Engineering".into()),
            events: vec![
                event("acme:1", "page-created"),
                event("acme:2", "page-updated"),
                event("acme:3", "comment-created"),
            ],
            search_url: Some("https://wiki/dosearchsite.action?cql=x".into()),
        };
        let wit = v0_3::digest(&d);
        assert_eq!(wit.space_key, "ENG");
        assert_eq!(wit.space_name.as_deref(), Some("Engineering"));
        assert_eq!(wit.search_url, d.search_url);
        let ids: Vec<&str> = wit.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["acme:1", "acme:2", "acme:3"]);
        // Each event is the one `handle` would get, as in 0.2.0.
        assert_eq!(
            format!("{:?}", wit.events[1]),
            format!("{:?}", v0_3::event(&d.events[1]))
        );
        assert_eq!(
            format!("{:?}", v0_3::event(&d.events[1])),
            format!("{:?}", v0_2::event(&d.events[1])).replace("v0_2", "v0_3")
        );
    }

    #[test]
    fn an_older_version_never_gets_what_it_cannot_express() {
        use crate::model::EventKind;
        for kind in EventKind::ALL {
            assert!(Contract::V0_3.has_event(kind));
            assert_eq!(Contract::V0_2.has_event(kind), !kind.is_teams(), "{kind:?}");
            assert_eq!(Contract::V0_1.has_event(kind), !kind.is_chat(), "{kind:?}");
        }
        for kind in crate::model::ACTION_KINDS {
            assert!(Contract::V0_3.has_action(kind));
            assert_eq!(
                Contract::V0_2.has_action(kind),
                !crate::model::ACTION_KINDS_SINCE_0_3.contains(&kind)
            );
        }
        assert!(!Contract::V0_2.has_action("dm-teams"));
        assert!(!Contract::V0_2.has_action("reply-teams"));
        assert!(!Contract::V0_1.has_action("unfurl"));
        assert!(!Contract::V0_1.has_action("respond"));
        assert!(Contract::V0_1.has_action("post-slack"));

        // A chat event given to a 0.1.0 plugin anyway reads `other`, without
        // the 0.2.0 fields; the same event in 0.2.0 keeps them.
        let event: Event = serde_json::from_value(serde_json::json!({
            "id": "acme:Ev1", "kind": "slash-command", "name": "slash_command",
            "source": "acme",
            "chat": {"type": "slash-command", "command": "/confluence", "text": "search x",
                     "user": {"id": "U1", "team_id": "T1"}, "channel": "C1",
                     "response_url": "https://hooks.slack.com/commands/T1/1/x"}
        }))
        .unwrap();
        let old = v0_1::event(&event);
        assert_eq!(old.kind, v0_1::types::EventKind::Other);
        let new = v0_2::event(&event);
        assert_eq!(new.kind, v0_2::types::EventKind::SlashCommand);
        assert!(matches!(
            new.chat,
            Some(v0_2::types::ChatEvent::SlashCommand(ref c)) if c.text == "search x"
        ));
    }
}
