//! Confluence as an event source: what its webhooks say ([`webhook`]), how
//! to read details back from its REST API ([`client`]), and how an id-only
//! webhook becomes the full event plugins see ([`enrich`]).

pub mod client;
pub mod enrich;
pub mod space_admin;
pub mod webhook;
