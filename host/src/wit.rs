//! The one place that turns `wit/plugin.wit` into Rust.
//!
//! Everything else in the host talks to plugins through these generated types
//! (converted from and to [`crate::model`] at the boundary), so a second
//! contract version later gets a sibling module here rather than edits
//! scattered across the crate.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: trappable },
});

pub use self::pagehook::plugin::types;
