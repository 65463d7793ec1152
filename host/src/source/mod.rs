//! Confluence as an event source: what its webhooks say ([`webhook`]), how
//! to read details back from its REST API ([`client`]), and how an id-only
//! webhook becomes the full event plugins see ([`enrich`]). Slack is the
//! other source: its Events API and slash commands ([`slack_events`]),
//! over HTTP or over Socket Mode's outbound WebSocket ([`slack_socket`]).
//! For contract 0.2.0 the host also reads who may view what ([`viewers`]),
//! whom a page event concerns ([`people`]) and their emails ([`emails`]),
//! what chat events need from Confluence ([`chat`], from the Confluence
//! connection a Slack connection uses: [`chat_confluence`]), and the page
//! templates bindings name ([`templates`]).

pub mod chat;
pub mod chat_confluence;
pub mod client;
pub mod emails;
pub mod enrich;
pub mod people;
pub mod slack_events;
pub mod slack_socket;
pub mod space_admin;
pub mod templates;
pub mod viewers;
pub mod webhook;
