//! Microsoft Teams through a bot (Azure Bot, single-tenant Entra app): the
//! bot's own token from Microsoft Entra ID ([`token`]) and the Bot Connector
//! REST API it sends with ([`connector`]). Inbound activities are parsed and
//! their tokens checked in [`crate::source::teams_activity`] and
//! [`crate::source::teams_auth`].
//!
//! What it must never do: log, return or send anywhere but Entra's token
//! endpoint the bot's client secret, or send the bot's token anywhere but
//! the `serviceUrl` an authenticated activity named.

pub mod app_manifest;
pub mod bots;
pub mod connector;
pub mod token;
