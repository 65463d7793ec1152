//! Confluence as an event source: what its webhooks say ([`webhook`]), how
//! to read details back from its REST API ([`client`]), and how an id-only
//! webhook becomes the full event plugins see ([`enrich`]). Slack is the
//! other source: its Events API and slash commands ([`slack_events`]).

pub mod client;
pub mod enrich;
pub mod slack_events;
pub mod space_admin;
pub mod webhook;
