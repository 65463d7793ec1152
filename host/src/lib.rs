//! Pagehook: a sidecar for Confluence Data Center that runs sandboxed
//! WebAssembly plugins over page, blog and comment events and carries out the
//! delivery actions they return.
//!
//! The modules follow the data flow:
//!
//! 1. **ingest**: [`server`] takes webhooks (`/hooks/confluence`,
//!    `/hooks/slack`, and `/hooks/teams`, a Teams bot's messaging endpoint)
//!    and Slack's Socket Mode; [`source`] verifies and parses what each
//!    source sends (a Teams activity's Bot Framework token in
//!    [`source::teams_auth`], the activity in [`source::teams_activity`]).
//!    Nothing is answered before it is stored.
//! 2. **store**: [`store`], on SQLite or PostgreSQL (cluster mode): events,
//!    deliveries, the outbox, the change log.
//! 3. **enrich**: [`enrich`] turns an id-only webhook into the event plugins
//!    see, reading Confluence through [`confluence`] (the REST client, who a
//!    page concerns, who may view it) and Slack through [`slack`].
//! 4. **dispatch**: [`dispatch`] runs each binding's plugin and holds every
//!    action to the two-party rule ([`dispatch::judge`]); lanes are named
//!    beside the [`destination`]s.
//! 5. **runtime**: [`runtime`] is the sandbox (wasmtime), with the generated
//!    bindings of each contract version in [`runtime::contract`], used only at
//!    the sandbox boundary; [`manifest`] is what a plugin declares.
//! 6. **outbox → deliver**: [`deliver`] sends what was accepted, lane by lane,
//!    true to each service's contract; a Teams bot's messages and answers go
//!    through [`deliver::teams_bot`], which sends with [`teams`] (the bot's
//!    Entra ID token and the Bot Connector client).
//!
//! Around it: [`ops`] (every admin change and its change-log line, shared by
//! [`cli`] and the admin API and console in [`server`]), [`doctor`] (what is
//! wrong and how to fix it), [`http`] (trust store and egress proxy for every
//! outbound connection), [`model`] (events and actions as the host stores and
//! prints them), `ttl_cache` (what is read from Confluence and Slack, kept
//! for a while).

pub mod cli;
pub mod clock;
pub mod config;
pub mod confluence;
pub mod deliver;
pub mod destination;
pub mod digest;
pub mod dispatch;
pub mod doctor;
pub mod enrich;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod heartbeat;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod pickers;
pub mod plugin_trust;
pub mod preview;
pub mod runtime;
pub mod secret;
pub mod self_link;
pub mod server;
pub mod slack;
pub mod source;
pub mod store;
pub mod teams;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub(crate) mod ttl_cache;
