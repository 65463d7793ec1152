//! Pagehook's integration tests, compiled and linked once (wasmtime's
//! `tests/all` shape): a module per area, the shared harnesses in
//! [`common`] (plugins, events, `pagehook serve`, headless Chromium) and
//! [`api_support`] (the admin API in process through `Router::oneshot`).
//!
//! Run one area with `cargo test -p pagehook --test it -- <module>::`.

mod api_support;
mod common;

mod api_access;
mod api_openapi;
mod bundled_plugins;
mod chat_delivery;
mod cluster;
mod confluence_dc;
mod confluence_delivery;
mod confluence_lookups;
mod console;
mod console_feedback;
mod console_pages;
mod console_previews;
mod console_sign_in;
mod console_speed;
mod console_walkthrough;
mod container_image;
mod contract_versions;
mod dc_versions;
mod delivery;
mod deploy_manifests;
mod digests;
mod doctor;
mod egress_proxy;
mod fair_claiming;
mod fuzz_corpus;
mod hostile_plugins;
mod operations;
mod outbound_tls;
mod packaging;
mod plugin_cli;
mod plugin_signing;
mod postgres_tls;
mod replay;
mod restrictions;
mod schema_upgrades;
mod self_linking;
mod shutdown;
mod sidecar;
mod slack_contract;
mod slack_inbound;
mod socket_mode;
mod store_backup;
mod store_suite;
mod teams_bot;
mod two_way_slack;
mod unsafe_links;
