//! The Slack Web API, in one place and by Slack's own description.
//!
//! - [`methods`]: every method Pagehook calls and how Slack says it must be
//!   called (read methods by query string, messages as JSON, `chat.unfurl` as a
//!   form with its `unfurls` map as JSON text); a test holds the
//!   table to `shared/specs/slack/`.
//! - [`client`]: one workspace's client, turning Slack's envelope, 429s and
//!   transport failures into [`SlackError`].
//! - [`directory`]: channel names and emails to ids, per workspace, paged,
//!   bounded, cached with expiry.
//! - [`auth`]: `auth.test`, for connection tests and greetings.
//! - [`users`]: a Slack user's email (`users.info`), for chat events.
//! - [`socket_mode`]: `apps.connections.open`, a Socket Mode WebSocket URL
//!   for the app-level token.
//!
//! Nothing here decides retries or dead letters (that is `deliver`), and
//! nothing here ever logs or returns a token.

pub mod app_manifest;
pub mod auth;
pub mod client;
pub mod directory;
pub mod methods;
pub mod socket_mode;
pub mod users;

pub use client::{SlackClient, SlackError};
