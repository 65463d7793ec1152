//! Confluence Data Center as Pagehook reads and writes it, beside
//! [`crate::slack`]: the REST client ([`client`]), who a page concerns
//! ([`people`]: creator, mentions, watchers), who may view what
//! ([`viewers`]), the page templates bindings name ([`templates`]) and
//! whether a person administers a space ([`space_admin`]).
//!
//! Everything here speaks Confluence's documented REST contract for the
//! Data Center versions in docs/admin.md and nothing else; it never decides
//! what a plugin sees (that is enrichment, `enrich/`, which uses this module
//! and is never imported by it) and never hides a refusal as an empty
//! answer: "not allowed" and "could not tell" stay apart.

pub mod client;
pub mod people;
pub mod space_admin;
pub mod templates;
pub mod viewers;
