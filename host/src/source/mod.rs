//! What the sources send, as they send it: Confluence's webhooks
//! ([`webhook`]), Slack's Events API and slash commands
//! ([`slack_events`]), over HTTP or over Socket Mode's outbound WebSocket
//! ([`slack_socket`]), and a Teams bot's Bot Framework activities
//! ([`teams_activity`]) with their tokens ([`teams_auth`]). Parsing and
//! verifying only: reading details back from Confluence is
//! [`crate::confluence`], turning a stored request into the event plugins
//! see is [`crate::enrich`].

pub mod slack_events;
pub mod slack_socket;
pub mod teams_activity;
pub mod teams_auth;
pub mod webhook;
