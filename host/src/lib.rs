//! Pagehook: a sidecar for Confluence Data Center that runs sandboxed
//! WebAssembly plugins over page, blog and comment events and carries out the
//! delivery actions they return.
//!
//! Modules by role: [`manifest`] (what a plugin declares), [`model`] (events
//! and actions as the host stores and prints them), [`runtime`] (the
//! sandbox, with the generated bindings of each contract version in
//! [`runtime::contract`], used only at the sandbox boundary) and [`cli`] (the
//! admin's and plugin author's commands).

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
pub mod plugin_trust;
pub mod preview;
pub mod runtime;
pub mod secret;
pub mod self_link;
pub mod server;
pub mod slack;
pub mod source;
pub mod store;
