//! Write Pagehook plugins in Rust.
//!
//! A Pagehook plugin is a pure function from one Confluence event and one
//! binding's settings to a list of delivery actions (see `wit/plugin.wit`,
//! package `pagehook:plugin@0.3.0`). This crate is everything a Rust author
//! needs to write one and nothing more:
//!
//! - the contract's types, re-exported by hand ([`Event`], [`Action`], ...),
//! - the [`Plugin`] trait and the one-line [`export_plugin!`] macro,
//! - typed [`Settings`] with admin-readable [`SettingError`]s,
//! - [`log`], which writes to the host's per-call log (stderr in native tests),
//! - builders that always produce valid output for each destination:
//!   [`storage`] (Confluence storage format), [`slack`] (Block Kit within
//!   Slack's limits) and [`teams`] (Adaptive Cards within Teams' size limit);
//!   each escapes text given as a string, so Confluence content stays text
//!   (no `<!channel>` in Slack, no `<at>` mention or markdown link in Teams,
//!   no markup in a page), and takes author-written markup only through an
//!   explicit type ([`slack::Mrkdwn`], [`teams::Markdown`], [`storage::Xml`])
//!   or the [`mrkdwn!`] / [`markdown!`] macros,
//! - [`filters`], the notification filters admins expect (event kinds,
//!   minor edits, restricted content, labels, title pattern, page tree),
//! - the people a page event concerns, for personal notifications
//!   ([`Event::recipients`], [`Event::people_concerned`]),
//! - [`chat`]: answering Slack (link previews with [`SlackUnfurl::builder`],
//!   slash commands with [`SlackResponse::ephemeral`]), with Block Kit for a
//!   page in [`slack::page_preview`] and [`slack::page_result`]; and a
//!   Teams bot (contract 0.3.0: [`TeamsReply::to_message`],
//!   [`TeamsReply::to_card_action`]), with cards for a page in
//!   [`teams::page_preview`] and [`teams::page_result`],
//! - personal messages from a Teams bot ([`TeamsDirectMessage::new`]),
//!   whose cards may carry buttons the bot receives ([`teams::submit`]),
//! - [`digest`]: bursts of events handed over together (contract 0.3.0):
//!   implement [`Plugin::handle_digest`] and set `digests = true` in the
//!   manifest; [`digest::Summary`] groups a digest into what a message says,
//! - [`testing`], sample events (and digests) for a plugin's own unit tests.
//!
//! ```
//! use pagehook_guest::{Action, Event, EventKind, Plugin, Settings, SlackMessage};
//!
//! struct Shout;
//!
//! impl Plugin for Shout {
//!     fn handle(event: Event, settings: Settings) -> Result<Vec<Action>, String> {
//!         let channel = settings.required("channel")?;
//!         let Some(content) = event.content else { return Ok(vec![]) };
//!         if event.kind != EventKind::PageCreated {
//!             return Ok(vec![]);
//!         }
//!         Ok(vec![Action::PostSlack(SlackMessage::new(channel, content.title.to_uppercase()))])
//!     }
//! }
//!
//! // In the plugin crate (a `cdylib` built for `wasm32-wasip2`):
//! pagehook_guest::export_plugin!(Shout);
//! # fn main() {}
//! ```
//!
//! Plugin logic runs natively too: `cargo test` calls `Shout::handle`
//! directly, and nothing in this crate reaches a WebAssembly import unless
//! it is compiled for a wasm target.

pub mod chat;
pub mod digest;
pub mod filters;
pub mod log;
mod model;
mod settings;
pub mod slack;
pub mod storage;
pub mod teams;
pub mod testing;
pub mod text;

/// The bindings generated from `wit/plugin.wit`, world `digest-plugin`
/// (`plugin` plus `handle-digest`): every plugin built with this crate
/// exports both, and the host calls `handle-digest` only for plugins whose
/// manifest says `digests = true`.
///
/// Public only so that [`export_plugin!`], expanded in a plugin crate, can
/// reach the generated export glue. Not part of the supported API: use the
/// re-exports at the crate root instead.
#[doc(hidden)]
pub mod wit {
    #![allow(missing_docs, clippy::all)]
    wit_bindgen::generate!({
        path: "../wit",
        world: "pagehook:plugin/digest-plugin@0.3.0",
        pub_export_macro: true,
        default_bindings_module: "pagehook_guest::wit",
        additional_derives: [PartialEq, Eq],
    });
}

pub use model::Recipient;
pub use settings::{SettingError, Settings};
pub use wit::pagehook::plugin::types::{
    Action, Ancestor, ChatEvent, ChatUser, Concern, ConcernedPerson, Content, Digest, Event,
    EventKind, LinkShared, LogLevel, NewComment, NewPage, PageSummary, Person, SharedLink,
    SlackDirectMessage, SlackMessage, SlackResponse, SlackUnfurl, SlashCommand, TeamsCardAction,
    TeamsDirectMessage, TeamsMessage, TeamsMessageEvent, TeamsReply, TeamsUser,
};

/// The one thing a plugin implements: turn an event into actions.
///
/// `handle` is an associated function rather than a method because the host
/// creates a fresh instance for every event: a plugin has no state that
/// survives from one call to the next, so there is nothing for `self` to hold.
///
/// Return `Ok(vec![])` to do nothing, and `Err(message)` when the plugin
/// cannot do its job (for example a required setting is missing): the message
/// is shown to the admin and the call is recorded as a failure. Settings
/// errors convert with `?`.
pub trait Plugin {
    /// Handle one event under one binding's settings.
    fn handle(event: Event, settings: Settings) -> Result<Vec<Action>, String>;

    /// Handle a digest: two or more events of one space that the host held
    /// because they came in a burst (see [`digest`]). Called only when the
    /// plugin's manifest says `digests = true`; the events in it never reach
    /// [`Plugin::handle`].
    ///
    /// The default hands each event to [`Plugin::handle`] and returns all
    /// their actions, so a plugin that sets `digests = true` without
    /// writing this still posts every event (within the host's action
    /// limit). Override it to say many things in one message.
    fn handle_digest(digest: Digest, settings: Settings) -> Result<Vec<Action>, String> {
        let mut actions = Vec::new();
        for event in digest.events {
            actions.extend(Self::handle(event, settings.clone())?);
        }
        Ok(actions)
    }
}

/// Export a [`Plugin`] as the component's `handle` and `handle-digest`
/// functions.
///
/// Call it once, at the top level of the plugin crate (built as a `cdylib`
/// for `wasm32-wasip2`):
///
/// ```ignore
/// pagehook_guest::export_plugin!(MyPlugin);
/// ```
///
/// The WebAssembly export is only emitted when compiling for a wasm target,
/// so the same crate also builds and tests natively.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct __PagehookExport;

            impl $crate::wit::Guest for __PagehookExport {
                fn handle(
                    event: $crate::Event,
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Action>, ::std::string::String>
                {
                    <$plugin as $crate::Plugin>::handle(event, $crate::Settings::from(settings))
                }

                fn handle_digest(
                    digest: $crate::Digest,
                    settings: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Action>, ::std::string::String>
                {
                    <$plugin as $crate::Plugin>::handle_digest(
                        digest,
                        $crate::Settings::from(settings),
                    )
                }
            }

            #[cfg(target_family = "wasm")]
    $crate::wit::export!(__PagehookExport with_types_in $crate::wit);
        };
    };
}
